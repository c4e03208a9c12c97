//! virtio 1.x structures for a network device over PCI: the vendor capabilities, the
//! common configuration, device status and feature bits, the split virtqueue layout, the
//! network device's configuration, header and control commands.
//!
//! Source for every number here: *Virtual I/O Device (VIRTIO) Version 1.2*, OASIS
//! Committee Specification 01 (cited as "virtio" with the section). All multi-byte
//! fields are little-endian; this module targets little-endian hosts (x86-64), where the
//! in-memory layout is the wire layout.

use std::mem::{offset_of, size_of};

// ------------------------------------------------------------------------------------
// PCI identity and capabilities (virtio 4.1.2, 4.1.4)
// ------------------------------------------------------------------------------------

/// PCI vendor of every virtio device (virtio 4.1.2).
pub const PCI_VENDOR: u16 = 0x1af4;
/// Modern network device: 0x1040 + device type 1 (virtio 4.1.2.1).
pub const PCI_DEVICE_NET_MODERN: u16 = 0x1041;
/// Transitional network device (legacy and modern interfaces; virtio 4.1.2.3).
pub const PCI_DEVICE_NET_TRANSITIONAL: u16 = 0x1000;

/// PCI capability id of a vendor-specific capability (PCI 3.0 appendix H), which
/// virtio uses for its structures (virtio 4.1.4).
pub const PCI_CAP_ID_VNDR: u8 = 0x09;
/// Config-space offset of the PCI status register; bit 4 says a capability list exists
/// (PCI 3.0, 6.2.3).
pub const PCI_STATUS: u64 = 0x06;
/// Status register: capabilities list present.
pub const PCI_STATUS_CAP_LIST: u16 = 1 << 4;
/// Config-space offset of the capabilities pointer (PCI 3.0, 6.7).
pub const PCI_CAPABILITY_LIST: u64 = 0x34;

/// `cfg_type` values of [`PciCap`] (virtio 4.1.4).
pub mod cfg_type {
    /// Common configuration.
    pub const COMMON: u8 = 1;
    /// Notifications.
    pub const NOTIFY: u8 = 2;
    /// ISR status.
    pub const ISR: u8 = 3;
    /// Device-specific configuration.
    pub const DEVICE: u8 = 4;
    /// PCI configuration access window.
    pub const PCI_CFG: u8 = 5;
}

/// `struct virtio_pci_cap` (virtio 4.1.4): where one virtio structure lives: `bar`,
/// `offset`, `length`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PciCap {
    /// [`PCI_CAP_ID_VNDR`].
    pub cap_vndr: u8,
    /// Offset of the next capability in config space (0: last).
    pub cap_next: u8,
    /// Length of this capability, at least 16.
    pub cap_len: u8,
    /// One of [`cfg_type`].
    pub cfg_type: u8,
    /// BAR holding the structure (0..=5).
    pub bar: u8,
    /// Identifies several capabilities of one type.
    pub id: u8,
    pub padding: [u8; 2],
    /// Offset of the structure within the BAR.
    pub offset: u32,
    /// Length of the structure.
    pub length: u32,
}
const _: () = assert!(size_of::<PciCap>() == 16);

/// `struct virtio_pci_notify_cap` (virtio 4.1.4.4): a [`PciCap`] followed by the
/// multiplier of `queue_notify_off`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PciNotifyCap {
    pub cap: PciCap,
    /// A queue's notify address is `offset + queue_notify_off * notify_off_multiplier`.
    pub notify_off_multiplier: u32,
}
const _: () = assert!(size_of::<PciNotifyCap>() == 20);

impl PciCap {
    /// Parse the 16 bytes of a capability read from config space.
    pub fn from_bytes(b: &[u8; 16]) -> PciCap {
        PciCap {
            cap_vndr: b[0],
            cap_next: b[1],
            cap_len: b[2],
            cfg_type: b[3],
            bar: b[4],
            id: b[5],
            padding: [b[6], b[7]],
            offset: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            length: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        }
    }
}

// ------------------------------------------------------------------------------------
// Common configuration (virtio 4.1.4.3)
// ------------------------------------------------------------------------------------

/// `struct virtio_pci_common_cfg` (virtio 4.1.4.3). Never instantiated: it gives the
/// field offsets ([`common`]) within the BAR window the common capability names. Fields
/// from `queue_select` on refer to the queue selected.
#[repr(C)]
pub struct CommonCfg {
    pub device_feature_select: u32,
    pub device_feature: u32,
    pub driver_feature_select: u32,
    pub driver_feature: u32,
    pub config_msix_vector: u16,
    pub num_queues: u16,
    pub device_status: u8,
    pub config_generation: u8,
    pub queue_select: u16,
    pub queue_size: u16,
    pub queue_msix_vector: u16,
    pub queue_enable: u16,
    pub queue_notify_off: u16,
    pub queue_desc: u64,
    pub queue_driver: u64,
    pub queue_device: u64,
}
const _: () = assert!(size_of::<CommonCfg>() == 56);

/// Offsets of [`CommonCfg`]'s fields.
pub mod common {
    use super::CommonCfg;
    use std::mem::offset_of;

    pub const DEVICE_FEATURE_SELECT: u64 = offset_of!(CommonCfg, device_feature_select) as u64;
    pub const DEVICE_FEATURE: u64 = offset_of!(CommonCfg, device_feature) as u64;
    pub const DRIVER_FEATURE_SELECT: u64 = offset_of!(CommonCfg, driver_feature_select) as u64;
    pub const DRIVER_FEATURE: u64 = offset_of!(CommonCfg, driver_feature) as u64;
    pub const CONFIG_MSIX_VECTOR: u64 = offset_of!(CommonCfg, config_msix_vector) as u64;
    pub const NUM_QUEUES: u64 = offset_of!(CommonCfg, num_queues) as u64;
    pub const DEVICE_STATUS: u64 = offset_of!(CommonCfg, device_status) as u64;
    pub const CONFIG_GENERATION: u64 = offset_of!(CommonCfg, config_generation) as u64;
    pub const QUEUE_SELECT: u64 = offset_of!(CommonCfg, queue_select) as u64;
    pub const QUEUE_SIZE: u64 = offset_of!(CommonCfg, queue_size) as u64;
    pub const QUEUE_MSIX_VECTOR: u64 = offset_of!(CommonCfg, queue_msix_vector) as u64;
    pub const QUEUE_ENABLE: u64 = offset_of!(CommonCfg, queue_enable) as u64;
    pub const QUEUE_NOTIFY_OFF: u64 = offset_of!(CommonCfg, queue_notify_off) as u64;
    pub const QUEUE_DESC: u64 = offset_of!(CommonCfg, queue_desc) as u64;
    pub const QUEUE_DRIVER: u64 = offset_of!(CommonCfg, queue_driver) as u64;
    pub const QUEUE_DEVICE: u64 = offset_of!(CommonCfg, queue_device) as u64;
    /// Bytes the common capability must span.
    pub const LEN: u64 = size_of::<CommonCfg>() as u64;
    use std::mem::size_of;
}
const _: () = assert!(offset_of!(CommonCfg, device_status) == 0x14);
const _: () = assert!(offset_of!(CommonCfg, queue_select) == 0x16);
const _: () = assert!(offset_of!(CommonCfg, queue_desc) == 0x20);
const _: () = assert!(offset_of!(CommonCfg, queue_device) == 0x30);

/// "No MSI-X vector" for `config_msix_vector` / `queue_msix_vector` (virtio 4.1.5.1.2).
pub const MSI_NO_VECTOR: u16 = 0xffff;

/// Device status bits (virtio 2.1).
pub mod status {
    /// The guest OS found the device and recognised it as a valid virtio device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest OS knows how to drive the device.
    pub const DRIVER: u8 = 2;
    /// The driver is set up and ready to drive the device.
    pub const DRIVER_OK: u8 = 4;
    /// The driver acknowledged the features it understands; negotiation is complete.
    pub const FEATURES_OK: u8 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u8 = 64;
    /// The driver gave up on the device.
    pub const FAILED: u8 = 128;
}

// ------------------------------------------------------------------------------------
// Feature bits (virtio 6 "Reserved Feature Bits", 5.1.3 network device)
// ------------------------------------------------------------------------------------

/// Feature bits, as bit numbers.
pub mod feature {
    /// Device handles packets with partial checksum (5.1.3).
    pub const NET_CSUM: u32 = 0;
    /// Driver handles packets with partial checksum.
    pub const NET_GUEST_CSUM: u32 = 1;
    /// Device reports its maximum MTU in the config.
    pub const NET_MTU: u32 = 3;
    /// Device has a MAC address in its config.
    pub const NET_MAC: u32 = 5;
    /// Driver can merge receive buffers (`num_buffers` in the header).
    pub const NET_MRG_RXBUF: u32 = 15;
    /// The config's `status` field is valid (link state).
    pub const NET_STATUS: u32 = 16;
    /// A control virtqueue exists.
    pub const NET_CTRL_VQ: u32 = 17;
    /// Control channel RX mode (promiscuous, all-multicast).
    pub const NET_CTRL_RX: u32 = 18;
    /// Control channel VLAN filtering.
    pub const NET_CTRL_VLAN: u32 = 19;
    /// Multiqueue with automatic receive steering.
    pub const NET_MQ: u32 = 22;
    /// Set the MAC address through the control channel.
    pub const NET_CTRL_MAC_ADDR: u32 = 23;
    /// Device reports speed and duplex in the config.
    pub const NET_SPEED_DUPLEX: u32 = 63;
    /// Indirect descriptors (2.7.5.3).
    pub const RING_INDIRECT_DESC: u32 = 28;
    /// `used_event` / `avail_event` notification suppression (2.7.7, 2.7.10).
    pub const RING_EVENT_IDX: u32 = 29;
    /// Compliance with virtio 1.x (6).
    pub const VERSION_1: u32 = 32;
    /// The device's DMA goes through the platform's IOMMU (6).
    pub const ACCESS_PLATFORM: u32 = 33;
    /// Packed virtqueues (2.8).
    pub const RING_PACKED: u32 = 34;
    /// Buffers are used in the order they were made available (6).
    pub const IN_ORDER: u32 = 35;

    /// Bit mask of feature `bit`.
    pub const fn bit(bit: u32) -> u64 {
        1 << bit
    }

    /// Names of the bits above, for logs and the `features` xstat.
    pub const NAMES: &[(u32, &str)] = &[
        (NET_CSUM, "CSUM"),
        (NET_GUEST_CSUM, "GUEST_CSUM"),
        (NET_MTU, "MTU"),
        (NET_MAC, "MAC"),
        (NET_MRG_RXBUF, "MRG_RXBUF"),
        (NET_STATUS, "STATUS"),
        (NET_CTRL_VQ, "CTRL_VQ"),
        (NET_CTRL_RX, "CTRL_RX"),
        (NET_CTRL_VLAN, "CTRL_VLAN"),
        (NET_MQ, "MQ"),
        (NET_CTRL_MAC_ADDR, "CTRL_MAC_ADDR"),
        (NET_SPEED_DUPLEX, "SPEED_DUPLEX"),
        (RING_INDIRECT_DESC, "RING_INDIRECT_DESC"),
        (RING_EVENT_IDX, "RING_EVENT_IDX"),
        (VERSION_1, "VERSION_1"),
        (ACCESS_PLATFORM, "ACCESS_PLATFORM"),
        (RING_PACKED, "RING_PACKED"),
        (IN_ORDER, "IN_ORDER"),
    ];

    /// `A|B|C` names of the known bits set in `f`, then `+0x...` for unknown ones.
    pub fn describe(f: u64) -> String {
        let mut known = 0u64;
        let mut s: Vec<String> = Vec::new();
        for &(b, n) in NAMES {
            known |= bit(b);
            if f & bit(b) != 0 {
                s.push(n.to_string());
            }
        }
        if f & !known != 0 {
            s.push(format!("+{:#x}", f & !known));
        }
        s.join("|")
    }
}

// ------------------------------------------------------------------------------------
// Split virtqueues (virtio 2.7)
// ------------------------------------------------------------------------------------

/// Largest queue size of a split virtqueue (2.7: "Queue Size ... maximum 32768").
pub const VQ_MAX_SIZE: u16 = 32768;

/// `struct virtq_desc` (virtio 2.7.5): one buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VirtqDesc {
    /// Buffer address (IOVA).
    pub addr: u64,
    /// Buffer length.
    pub len: u32,
    /// [`desc_flags`].
    pub flags: u16,
    /// Next descriptor of the chain if `flags` has NEXT.
    pub next: u16,
}
const _: () = assert!(size_of::<VirtqDesc>() == 16);

/// `virtq_desc.flags` (virtio 2.7.5).
pub mod desc_flags {
    /// The chain continues in `next`.
    pub const NEXT: u16 = 1;
    /// Device-writable buffer (otherwise device-readable).
    pub const WRITE: u16 = 2;
    /// The buffer holds a table of descriptors.
    pub const INDIRECT: u16 = 4;
}

/// Alignment of the descriptor table (virtio 2.7, table "Virtqueue Part Alignment").
pub const DESC_ALIGN: usize = 16;
/// Alignment of the available ring.
pub const AVAIL_ALIGN: usize = 2;
/// Alignment of the used ring.
pub const USED_ALIGN: usize = 4;

/// Header of `struct virtq_avail` (virtio 2.7.6): `flags`, `idx`, then `ring[size]`
/// of `u16` (and `used_event` with EVENT_IDX).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VirtqAvailHdr {
    pub flags: u16,
    pub idx: u16,
}
const _: () = assert!(size_of::<VirtqAvailHdr>() == 4);

/// `virtq_avail.flags`: the driver needs no interrupt when buffers are used (2.7.7).
pub const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// `struct virtq_used_elem` (virtio 2.7.8): a used descriptor chain's head id and the
/// bytes the device wrote into it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VirtqUsedElem {
    pub id: u32,
    pub len: u32,
}
const _: () = assert!(size_of::<VirtqUsedElem>() == 8);

/// Header of `struct virtq_used` (virtio 2.7.8): `flags`, `idx`, then `ring[size]` of
/// [`VirtqUsedElem`] (and `avail_event` with EVENT_IDX).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VirtqUsedHdr {
    pub flags: u16,
    pub idx: u16,
}
const _: () = assert!(size_of::<VirtqUsedHdr>() == 4);

/// `virtq_used.flags`: the device needs no notification when buffers are added (2.7.10).
pub const USED_F_NO_NOTIFY: u16 = 1;

/// Byte layout of one split virtqueue in one DMA block: descriptor table at 0, the
/// available ring after it, the used ring at the next cache line (the device writes it;
/// keeping it off the driver's lines avoids false sharing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitLayout {
    pub size: u16,
    pub avail: usize,
    pub used: usize,
    pub total: usize,
}

impl SplitLayout {
    /// The layout of a queue of `size` entries (2.7: sizes per part; no EVENT_IDX, so no
    /// trailing `used_event` / `avail_event`, but room is kept for them anyway).
    pub const fn new(size: u16) -> SplitLayout {
        let n = size as usize;
        let avail = n * size_of::<VirtqDesc>();
        let avail_len = size_of::<VirtqAvailHdr>() + 2 * n + 2;
        let used = (avail + avail_len).next_multiple_of(64);
        let used_len = size_of::<VirtqUsedHdr>() + size_of::<VirtqUsedElem>() * n + 2;
        SplitLayout {
            size,
            avail,
            used,
            total: used + used_len,
        }
    }
}

// ------------------------------------------------------------------------------------
// Network device (virtio 5.1)
// ------------------------------------------------------------------------------------

/// `struct virtio_net_config` (virtio 5.1.4), the fields up to `duplex` (the RSS fields
/// after it are not used).
#[repr(C)]
pub struct NetConfig {
    pub mac: [u8; 6],
    pub status: u16,
    pub max_virtqueue_pairs: u16,
    pub mtu: u16,
    pub speed: u32,
    pub duplex: u8,
}
const _: () = assert!(offset_of!(NetConfig, status) == 6);
const _: () = assert!(offset_of!(NetConfig, max_virtqueue_pairs) == 8);
const _: () = assert!(offset_of!(NetConfig, mtu) == 10);
const _: () = assert!(offset_of!(NetConfig, speed) == 12);
const _: () = assert!(offset_of!(NetConfig, duplex) == 16);

/// Offsets of [`NetConfig`]'s fields.
pub mod net_cfg {
    use super::NetConfig;
    use std::mem::offset_of;

    pub const MAC: u64 = offset_of!(NetConfig, mac) as u64;
    pub const STATUS: u64 = offset_of!(NetConfig, status) as u64;
    pub const MAX_VIRTQUEUE_PAIRS: u64 = offset_of!(NetConfig, max_virtqueue_pairs) as u64;
    pub const MTU: u64 = offset_of!(NetConfig, mtu) as u64;
    pub const SPEED: u64 = offset_of!(NetConfig, speed) as u64;
    pub const DUPLEX: u64 = offset_of!(NetConfig, duplex) as u64;
    /// `status`: link up.
    pub const S_LINK_UP: u16 = 1;
    /// `speed`: unknown.
    pub const SPEED_UNKNOWN: u32 = u32::MAX;
    /// `duplex`: full.
    pub const DUPLEX_FULL: u8 = 1;
}

/// `struct virtio_net_hdr` (virtio 5.1.6) as in virtio 1.x: `num_buffers` is always
/// there (12 bytes). Precedes every packet in both directions.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
    /// Buffers the packet spans (with MRG_RXBUF; 1 otherwise).
    pub num_buffers: u16,
}
const _: () = assert!(size_of::<NetHdr>() == 12);
/// Bytes of [`NetHdr`].
pub const NET_HDR_LEN: u16 = size_of::<NetHdr>() as u16;
/// Offset of `num_buffers` in [`NetHdr`].
pub const NET_HDR_NUM_BUFFERS: usize = offset_of!(NetHdr, num_buffers);

/// Queue index of receiveq `n` (virtio 5.1.2: receiveq1 = 0, transmitq1 = 1, ...).
pub const fn rx_vq(pair: u16) -> u16 {
    2 * pair
}
/// Queue index of transmitq `n`.
pub const fn tx_vq(pair: u16) -> u16 {
    2 * pair + 1
}
/// Queue index of the control queue: after the `max_pairs` data pairs (virtio 5.1.2;
/// `max_pairs` is 1 unless MQ is negotiated).
pub const fn ctrl_vq(max_pairs: u16) -> u16 {
    2 * max_pairs
}

/// Control command header `struct virtio_net_ctrl` (5.1.6.5): `class`, `command`, then
/// command data (device-readable), then one `ack` byte (device-writable).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NetCtrlHdr {
    pub class: u8,
    pub command: u8,
}
const _: () = assert!(size_of::<NetCtrlHdr>() == 2);

/// Control classes and commands (virtio 5.1.6.5.x).
pub mod ctrl {
    /// `ack`: done.
    pub const OK: u8 = 0;
    /// `ack`: refused.
    pub const ERR: u8 = 1;
    /// RX mode class (needs CTRL_RX), 5.1.6.5.1.
    pub const CLASS_RX: u8 = 0;
    pub const RX_PROMISC: u8 = 0;
    pub const RX_ALLMULTI: u8 = 1;
    /// MAC class, 5.1.6.5.2.
    pub const CLASS_MAC: u8 = 1;
    pub const MAC_ADDR_SET: u8 = 1;
    /// Multiqueue class (needs MQ), 5.1.6.5.6.
    pub const CLASS_MQ: u8 = 4;
    pub const MQ_VQ_PAIRS_SET: u8 = 0;
    /// Smallest and largest `virtqueue_pairs`.
    pub const MQ_VQ_PAIRS_MIN: u16 = 1;
    pub const MQ_VQ_PAIRS_MAX: u16 = 0x8000;
}

#[cfg(test)]
mod tests {
    use super::*;

    const _: () = assert!(DESC_ALIGN <= 4096, "DMA memory is 4 KiB aligned");

    #[test]
    fn split_layout_respects_the_alignments() {
        for size in [1u16, 2, 64, 256, 1024, VQ_MAX_SIZE] {
            let l = SplitLayout::new(size);
            assert_eq!(l.avail, 16 * size as usize);
            assert!(l.avail.is_multiple_of(AVAIL_ALIGN));
            assert!(l.used.is_multiple_of(USED_ALIGN));
            assert!(l.used >= l.avail + 4 + 2 * size as usize);
            assert_eq!(l.total, l.used + 4 + 8 * size as usize + 2);
        }
    }

    #[test]
    fn queue_indices_follow_the_spec() {
        assert_eq!((rx_vq(0), tx_vq(0)), (0, 1));
        assert_eq!((rx_vq(3), tx_vq(3)), (6, 7));
        assert_eq!(ctrl_vq(1), 2);
        assert_eq!(ctrl_vq(4), 8);
    }

    #[test]
    fn capability_bytes_parse() {
        let b = [9, 0x50, 16, 1, 4, 0, 0, 0, 0x00, 0x10, 0, 0, 0x38, 0, 0, 0];
        let c = PciCap::from_bytes(&b);
        assert_eq!(c.cap_vndr, PCI_CAP_ID_VNDR);
        assert_eq!(c.cap_next, 0x50);
        assert_eq!(c.cfg_type, cfg_type::COMMON);
        assert_eq!(c.bar, 4);
        assert_eq!(c.offset, 0x1000);
        assert_eq!(c.length, 0x38);
    }

    #[test]
    fn features_describe() {
        let f = feature::bit(feature::VERSION_1) | feature::bit(feature::NET_MAC) | 1 << 50;
        assert_eq!(feature::describe(f), "MAC|VERSION_1|+0x4000000000000");
    }
}
