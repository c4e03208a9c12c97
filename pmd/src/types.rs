//! Configuration, information and statistics types of the ethdev API.

bitflags::bitflags! {
    /// RX offloads, with DPDK's bit values (`RTE_ETH_RX_OFFLOAD_*`, rte_ethdev.h v22.11).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct RxOffloads: u64 {
        const VLAN_STRIP = 1 << 0;
        const IPV4_CKSUM = 1 << 1;
        const UDP_CKSUM = 1 << 2;
        const TCP_CKSUM = 1 << 3;
        const TCP_LRO = 1 << 4;
        const SCATTER = 1 << 13;
        const TIMESTAMP = 1 << 14;
        const RSS_HASH = 1 << 19;
    }
}

bitflags::bitflags! {
    /// TX offloads, with DPDK's bit values (`RTE_ETH_TX_OFFLOAD_*`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct TxOffloads: u64 {
        const VLAN_INSERT = 1 << 0;
        const IPV4_CKSUM = 1 << 1;
        const UDP_CKSUM = 1 << 2;
        const TCP_CKSUM = 1 << 3;
        const TCP_TSO = 1 << 5;
        const MULTI_SEGS = 1 << 15;
        const MBUF_FAST_FREE = 1 << 16;
    }
}

bitflags::bitflags! {
    /// RSS hash functions, with DPDK's bit values (`RTE_ETH_RSS_*`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct RssHf: u64 {
        const IPV4 = 1 << 2;
        const NONFRAG_IPV4_TCP = 1 << 4;
        const NONFRAG_IPV4_UDP = 1 << 5;
        const IPV6 = 1 << 8;
        const NONFRAG_IPV6_TCP = 1 << 10;
        const NONFRAG_IPV6_UDP = 1 << 11;
    }
}

bitflags::bitflags! {
    /// What a port can do besides moving packets.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct DevCapa: u64 {
        /// `mac_addr_set` reaches a real device (else it only changes the recorded MAC).
        const MAC_SET = 1 << 0;
        /// `mtu_set` reaches a real device.
        const MTU_SET = 1 << 1;
        /// Promiscuous / all-multicast reach a real device.
        const PROMISC = 1 << 2;
        /// `set_link_up`/`down` reach a real device.
        const LINK_SET = 1 << 3;
    }
}

/// Multi-queue RX mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MqMode {
    /// One queue, or queues the application fills by its own rule.
    #[default]
    None,
    /// Spread flows over the RX queues by hash.
    Rss,
}

/// RSS configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RssConf {
    /// Hash key (`None`: the device's default). Software drivers take none.
    pub key: Option<Vec<u8>>,
    /// Hash functions; must be a subset of [`DevInfo::flow_type_rss_offloads`].
    pub hf: RssHf,
}

/// Port configuration given to [`configure`](crate::configure).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EthConf {
    pub mq_mode: MqMode,
    pub rss: RssConf,
    pub rx_offloads: RxOffloads,
    pub tx_offloads: TxOffloads,
    /// MTU to set at configure (`None`: keep the current one, 1500 by default).
    pub mtu: Option<u32>,
}

/// RX queue configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RxConf {
    /// Per-queue offloads (added to the port's).
    pub offloads: RxOffloads,
}

/// TX queue configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxConf {
    /// Per-queue offloads (added to the port's).
    pub offloads: TxOffloads,
}

/// Descriptor count limits of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescLim {
    pub min: u16,
    pub max: u16,
    /// `nb_desc` must be a multiple of this.
    pub align: u16,
}

impl DescLim {
    /// Any count from 1 to 65535.
    pub const ANY: DescLim = DescLim {
        min: 1,
        max: u16::MAX,
        align: 1,
    };
}

/// What a port is and can do ([`dev_info`](crate::dev_info)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevInfo {
    /// Driver name (`net_null`, `net_ring`, ...).
    pub driver_name: &'static str,
    /// Device name (the vdev name or PCI address).
    pub device_name: String,
    /// Kernel interface behind the port, if any.
    pub if_name: Option<String>,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub rx_desc_lim: DescLim,
    pub tx_desc_lim: DescLim,
    pub capa: DevCapa,
    pub rx_offload_capa: RxOffloads,
    pub tx_offload_capa: TxOffloads,
    pub flow_type_rss_offloads: RssHf,
    /// Largest frame the port receives whole.
    pub max_rx_pktlen: u32,
    pub min_mtu: u32,
    pub max_mtu: u32,
    /// MTU a fresh port starts with (1500).
    pub default_mtu: u32,
    /// Queues configured now.
    pub nb_rx_queues: u16,
    pub nb_tx_queues: u16,
}

impl DevInfo {
    /// The defaults a driver starts its [`EthDriver::info`](crate::EthDriver::info)
    /// from: its name and queue limits, any descriptor count, no capabilities or
    /// offloads, frames up to 9618 bytes, MTU 68..=9600.
    pub fn new(driver_name: &'static str, max_rx_queues: u16, max_tx_queues: u16) -> DevInfo {
        DevInfo {
            driver_name,
            device_name: String::new(),
            if_name: None,
            max_rx_queues,
            max_tx_queues,
            rx_desc_lim: DescLim::ANY,
            tx_desc_lim: DescLim::ANY,
            capa: DevCapa::empty(),
            rx_offload_capa: RxOffloads::empty(),
            tx_offload_capa: TxOffloads::empty(),
            flow_type_rss_offloads: RssHf::empty(),
            max_rx_pktlen: 9618,
            min_mtu: 68,
            max_mtu: 9600,
            default_mtu: DEFAULT_MTU,
            nb_rx_queues: 0,
            nb_tx_queues: 0,
        }
    }
}

/// Default MTU of every port.
pub const DEFAULT_MTU: u32 = 1500;
/// Ethernet header bytes counted on top of the MTU for the TX size check.
pub const ETHER_HDR_LEN: u32 = 14;

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Link {
    /// Mb/s (0 if unknown).
    pub speed_mbps: u32,
    pub full_duplex: bool,
    pub autoneg: bool,
    pub up: bool,
}

/// Basic statistics (DPDK's `rte_eth_stats`), net of the last reset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EthStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Frames dropped for lack of room: software ring/queue full, kernel socket drops.
    pub imissed: u64,
    /// Bad frames received (malformed pcap records, frames larger than an mbuf).
    pub ierrors: u64,
    /// Frames dropped on TX (over the MTU, larger than the device's frame).
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
    /// Per RX queue, index = queue id, length = configured RX queues.
    pub q_ipackets: Vec<u64>,
    pub q_ibytes: Vec<u64>,
    /// Per RX queue errors (DPDK's `q_errors`).
    pub q_errors: Vec<u64>,
    /// Per TX queue.
    pub q_opackets: Vec<u64>,
    pub q_obytes: Vec<u64>,
}

/// One extended statistic: index into [`xstats_names`](crate::xstats_names) and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XStat {
    pub id: u64,
    pub value: u64,
}

/// Port ids available (DPDK's `RTE_MAX_ETHPORTS` default).
pub const MAX_PORTS: usize = 32;
/// Queues per direction per port.
pub const MAX_QUEUES: usize = 16;

/// Format a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
