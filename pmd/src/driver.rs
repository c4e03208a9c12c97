//! The driver interface (small, as ixy's `IxyDevice`) and the registry that picks a
//! driver by vdev name prefix or PCI id. Driver structs stay private to their modules.

use std::ptr::NonNull;
use std::sync::Mutex;

use eal::pci::PciDevice;
use eal::Eal;
use mbuf::{Mbuf, PktmbufPool};

use crate::shared::QueueCounters;
use crate::{
    DescLim, DevCapa, Error, EthConf, Link, Result, RssHf, RxConf, RxOffloads, TxConf, TxOffloads,
};

/// Static facts a driver reports (the ethdev layer adds queue counts and MTU).
#[derive(Debug, Clone)]
pub struct DriverInfo {
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub rx_desc_lim: DescLim,
    pub tx_desc_lim: DescLim,
    pub capa: DevCapa,
    pub rx_offload_capa: RxOffloads,
    pub tx_offload_capa: TxOffloads,
    pub flow_type_rss_offloads: RssHf,
    pub max_rx_pktlen: u32,
    pub min_mtu: u32,
    pub max_mtu: u32,
    pub if_name: Option<String>,
    /// Whether the ethdev layer drops TX frames longer than MTU + Ethernet header
    /// (counted in `oerrors`) before the driver sees them. On for drivers with a wire or
    /// a file behind them; `net_ring` turns it off, as DPDK's net_ring does not check
    /// either, so its data path never reads an mbuf header.
    pub tx_mtu_check: bool,
}

impl Default for DriverInfo {
    fn default() -> Self {
        DriverInfo {
            max_rx_queues: 1,
            max_tx_queues: 1,
            rx_desc_lim: DescLim::ANY,
            tx_desc_lim: DescLim::ANY,
            capa: DevCapa::empty(),
            rx_offload_capa: RxOffloads::empty(),
            tx_offload_capa: TxOffloads::empty(),
            flow_type_rss_offloads: RssHf::empty(),
            max_rx_pktlen: 9618,
            min_mtu: 68,
            max_mtu: 9600,
            if_name: None,
            tx_mtu_check: true,
        }
    }
}

/// A queue's counters in the port's shared memzone. Handed to a queue at setup; only the
/// thread polling that queue writes through it. Valid until the port is closed (the
/// ethdev layer drops every queue before it frees the memzone).
#[derive(Clone, Copy)]
pub struct QueueStats(NonNull<QueueCounters>);

// SAFETY: points into EAL shared memory that outlives every queue (see type docs); all
// fields are atomics.
unsafe impl Send for QueueStats {}
// SAFETY: as above.
unsafe impl Sync for QueueStats {}

impl QueueStats {
    pub(crate) fn new(p: &QueueCounters) -> QueueStats {
        QueueStats(NonNull::from(p))
    }
}

impl std::ops::Deref for QueueStats {
    type Target = QueueCounters;
    #[inline(always)]
    fn deref(&self) -> &QueueCounters {
        // SAFETY: valid for the queue's life (type docs); only atomics behind it.
        unsafe { self.0.as_ref() }
    }
}

/// One RX queue of a driver. Called by one thread at a time (the ethdev layer's queue
/// claim guarantees it).
pub trait RxQueueOps: Send {
    /// Append up to `max` received packets to `out`; return how many. Counts them (and
    /// their bytes, errors, allocation failures) in the queue's [`QueueStats`].
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize;
}

/// One TX queue of a driver. Called by one thread at a time.
pub trait TxQueueOps: Send {
    /// Take up to `max` packets from the front of `pkts` (removing them, in order) and
    /// return how many were taken; the rest stay in `pkts`, untouched. Taken packets are
    /// sent, or dropped and counted as errors. Counts in the queue's [`QueueStats`].
    fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>, max: usize) -> usize;
}

/// A device driver: control path only. Every method runs under the port's control lock.
/// Methods must not touch queue objects they handed out (those belong to the ethdev
/// layer's queue slots and may be in use on an lcore).
pub trait EthDriver: Send {
    /// Driver name (`net_null`, ...).
    fn name(&self) -> &'static str;
    /// Static facts.
    fn info(&self) -> DriverInfo;
    /// Check and apply a configuration (the ethdev layer already checked queue counts
    /// and offloads against [`info`](Self::info)). `Err` carries the reason.
    fn configure(
        &mut self,
        _nb_rxq: u16,
        _nb_txq: u16,
        _conf: &EthConf,
    ) -> std::result::Result<(), String> {
        Ok(())
    }
    /// Make RX queue `q`.
    fn rx_queue_setup(
        &mut self,
        q: u16,
        nb_desc: u16,
        conf: &RxConf,
        pool: &PktmbufPool,
        stats: QueueStats,
    ) -> Result<Box<dyn RxQueueOps>>;
    /// Make TX queue `q`.
    fn tx_queue_setup(
        &mut self,
        q: u16,
        nb_desc: u16,
        conf: &TxConf,
        stats: QueueStats,
    ) -> Result<Box<dyn TxQueueOps>>;
    /// Start the device.
    fn start(&mut self) -> Result<()> {
        Ok(())
    }
    /// Stop the device.
    fn stop(&mut self) -> Result<()> {
        Ok(())
    }
    /// The device's own link state; `None` for software ports (the ethdev layer then
    /// reports up while started and not set down).
    fn link(&mut self) -> Option<Link> {
        None
    }
    /// Bring the device's link up or down (software ports: nothing to do).
    fn set_link(&mut self, _up: bool) -> Result<()> {
        Ok(())
    }
    /// Promiscuous mode on the device.
    fn set_promiscuous(&mut self, _on: bool) -> Result<()> {
        Ok(())
    }
    /// All-multicast mode on the device.
    fn set_allmulticast(&mut self, _on: bool) -> Result<()> {
        Ok(())
    }
    /// The device's MAC, if it has one of its own (else the ethdev layer picks one).
    fn mac(&mut self) -> Option<[u8; 6]> {
        None
    }
    /// Set the device's MAC.
    fn set_mac(&mut self, _mac: [u8; 6]) -> Result<()> {
        Ok(())
    }
    /// Set the device's MTU.
    fn set_mtu(&mut self, _mtu: u32) -> Result<()> {
        Ok(())
    }
    /// Frames the device dropped since the last call (kernel socket drops); added to
    /// `imissed`.
    fn take_missed(&mut self) -> u64 {
        0
    }
    /// Driver-specific extended statistics (name, value).
    fn xstats(&mut self) -> Vec<(String, u64)> {
        Vec::new()
    }
    /// Release device resources (queues are already dropped).
    fn close(&mut self) {}
}

// ------------------------------------------------------------------------------------
// vdev arguments
// ------------------------------------------------------------------------------------

/// A parsed `--vdev` string: `name,key=value,key=value,...` (keys may repeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VdevArgs {
    pub name: String,
    pub kv: Vec<(String, String)>,
}

impl VdevArgs {
    /// Parse `s`. Empty items (a trailing comma) are ignored; an item without `=` is an
    /// error naming it.
    pub fn parse(s: &str) -> Result<VdevArgs> {
        let mut it = s.split(',');
        let name = it.next().unwrap_or("").trim().to_string();
        if name.is_empty() {
            return Err(Error::BadArg {
                dev: s.into(),
                key: "name".into(),
                value: String::new(),
                why: "empty device name".into(),
            });
        }
        let mut kv = Vec::new();
        for item in it {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let Some((k, v)) = item.split_once('=') else {
                return Err(Error::BadArg {
                    dev: name,
                    key: item.into(),
                    value: String::new(),
                    why: "expected key=value".into(),
                });
            };
            kv.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(VdevArgs { name, kv })
    }

    /// Refuse keys outside `valid`.
    pub fn check_keys(&self, valid: &[&str]) -> Result<()> {
        for (k, _) in &self.kv {
            if !valid.contains(&k.as_str()) {
                return Err(Error::UnknownKey {
                    dev: self.name.clone(),
                    key: k.clone(),
                    valid: if valid.is_empty() {
                        "none".into()
                    } else {
                        valid.join(", ")
                    },
                });
            }
        }
        Ok(())
    }

    /// Last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.kv
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.kv
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Parse `key` as a number in `lo..=hi` (decimal or 0x hex), `default` if absent.
    pub fn num(&self, key: &str, default: u64, lo: u64, hi: u64) -> Result<u64> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        let parsed = if let Some(h) = v.strip_prefix("0x") {
            u64::from_str_radix(h, 16)
        } else {
            v.parse::<u64>()
        };
        match parsed {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            Ok(_) => Err(self.bad(key, v, &format!("must be in {lo}..={hi}"))),
            Err(_) => Err(self.bad(key, v, "not a number")),
        }
    }

    /// Parse `key` as 0/1 (also true/false, yes/no).
    pub fn flag(&self, key: &str) -> Result<bool> {
        match self.get(key) {
            None => Ok(false),
            Some("1") | Some("true") | Some("yes") | Some("on") => Ok(true),
            Some("0") | Some("false") | Some("no") | Some("off") => Ok(false),
            Some(v) => Err(self.bad(key, v, "expected 0 or 1")),
        }
    }

    /// A [`Error::BadArg`] for `key`.
    pub fn bad(&self, key: &str, value: &str, why: &str) -> Error {
        Error::BadArg {
            dev: self.name.clone(),
            key: key.into(),
            value: value.into(),
            why: why.into(),
        }
    }
}

// ------------------------------------------------------------------------------------
// Registry
// ------------------------------------------------------------------------------------

/// What a vdev driver's constructor gets.
pub struct VdevCtx<'a> {
    pub eal: &'a Eal,
    pub args: &'a VdevArgs,
    /// Port id the device will get (for unique names: fanout ids, MACs).
    pub port_id: u16,
}

/// A virtual-device driver, matched by name prefix.
pub struct VdevDriver {
    /// Driver name, also the main prefix (`net_null`).
    pub name: &'static str,
    /// Other accepted prefixes (`eth_null`).
    pub aliases: &'static [&'static str],
    /// Keys the driver takes.
    pub keys: &'static [&'static str],
    /// Make the driver.
    pub create: fn(&VdevCtx<'_>) -> Result<Box<dyn EthDriver>>,
}

/// The built-in vdev drivers.
pub(crate) fn vdev_drivers() -> &'static [VdevDriver] {
    &[
        crate::drivers::null::DRIVER,
        crate::drivers::ring::DRIVER,
        crate::drivers::af_packet::DRIVER,
        crate::drivers::tap::DRIVER,
        crate::drivers::pcap::DRIVER,
    ]
}

/// The driver whose name or alias prefixes `name`.
pub(crate) fn find_vdev_driver(name: &str) -> Result<&'static VdevDriver> {
    let ds = vdev_drivers();
    ds.iter()
        .find(|d| name.starts_with(d.name) || d.aliases.iter().any(|a| name.starts_with(a)))
        .ok_or_else(|| Error::UnknownDriver {
            name: name.into(),
            known: ds.iter().map(|d| d.name).collect::<Vec<_>>().join(", "),
        })
}

/// A (vendor, device) pair a PCI driver handles; [`PciId::ANY`] in either field matches
/// every value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciId {
    pub vendor: u16,
    pub device: u16,
}

impl PciId {
    /// Wildcard.
    pub const ANY: u16 = 0xffff;

    /// True if `dev` is matched.
    pub fn matches(&self, dev: &PciDevice) -> bool {
        (self.vendor == Self::ANY || self.vendor == dev.vendor_id)
            && (self.device == Self::ANY || self.device == dev.device_id)
    }
}

/// A PCI driver: a name, the ids it takes, and a probe that makes the driver for one
/// device.
#[derive(Clone, Copy)]
pub struct PciDriver {
    pub name: &'static str,
    pub id_table: &'static [PciId],
    pub probe: fn(&Eal, &PciDevice) -> Result<Box<dyn EthDriver>>,
}

static PCI_DRIVERS: Mutex<Vec<PciDriver>> = Mutex::new(Vec::new());

/// Register a PCI driver (control path; drivers registered later are tried later).
/// Registering a second driver with the same name replaces the first.
pub fn register_pci_driver(d: PciDriver) {
    let mut v = PCI_DRIVERS.lock().unwrap_or_else(|e| e.into_inner());
    v.retain(|x| x.name != d.name);
    v.push(d);
}

/// Remove a PCI driver by name; true if it was registered.
pub fn unregister_pci_driver(name: &str) -> bool {
    let mut v = PCI_DRIVERS.lock().unwrap_or_else(|e| e.into_inner());
    let before = v.len();
    v.retain(|x| x.name != name);
    v.len() != before
}

/// The built-in PCI drivers, tried after the registered ones.
pub(crate) fn builtin_pci_drivers() -> &'static [PciDriver] {
    &[crate::drivers::e1000::DRIVER]
}

/// The first registered driver whose id table matches `dev`, else the first built-in one.
pub fn match_pci_driver(dev: &PciDevice) -> Option<PciDriver> {
    let v = PCI_DRIVERS.lock().unwrap_or_else(|e| e.into_inner());
    v.iter()
        .chain(builtin_pci_drivers())
        .find(|d| d.id_table.iter().any(|id| id.matches(dev)))
        .copied()
}
