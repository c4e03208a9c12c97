//! Intel 8254x (82540EM) registers, bits and descriptors.
//!
//! Source for every number here: Intel, *PCI/PCI-X Family of Gigabit Ethernet Controllers
//! Software Developer's Manual* (8254x SDM, 317453006EN, rev. 4.0), cited as "SDM" with
//! the section. Offsets are byte offsets into BAR 0 (memory-mapped, 128 KiB on the
//! 82540EM). Every register is 32 bits wide and is accessed with one 32-bit volatile
//! load or store.

use std::mem::size_of;

// ------------------------------------------------------------------------------------
// General registers (SDM 13.4.1 - 13.4.21)
// ------------------------------------------------------------------------------------

/// Device Control (SDM 13.4.1).
pub const CTRL: u64 = 0x0000;
/// Device Status, read only (SDM 13.4.2).
pub const STATUS: u64 = 0x0008;
/// EEPROM/Flash Control (SDM 13.4.3).
pub const EECD: u64 = 0x0010;
/// EEPROM Read (SDM 13.4.4).
pub const EERD: u64 = 0x0014;
/// Extended Device Control (SDM 13.4.6).
pub const CTRL_EXT: u64 = 0x0018;
/// Flow Control Address Low/High, Type, Transmit Timer Value (SDM 13.4.9 - 13.4.12).
pub const FCAL: u64 = 0x0028;
pub const FCAH: u64 = 0x002C;
pub const FCT: u64 = 0x0030;
pub const FCTTV: u64 = 0x0170;
/// Interrupt Cause Read, clear on read (SDM 13.4.17).
pub const ICR: u64 = 0x00C0;
/// Interrupt Mask Set/Read (SDM 13.4.20).
pub const IMS: u64 = 0x00D0;
/// Interrupt Mask Clear (SDM 13.4.21): writing 1 to a bit masks that cause.
pub const IMC: u64 = 0x00D8;

/// CTRL bits (SDM 13.4.1, table 13-3).
pub mod ctrl {
    /// Full duplex.
    pub const FD: u32 = 1 << 0;
    /// Link reset.
    pub const LRST: u32 = 1 << 3;
    /// Auto-speed detection enable.
    pub const ASDE: u32 = 1 << 5;
    /// Set link up.
    pub const SLU: u32 = 1 << 6;
    /// Invert loss-of-signal.
    pub const ILOS: u32 = 1 << 7;
    /// Force speed.
    pub const FRCSPD: u32 = 1 << 11;
    /// Force duplex.
    pub const FRCDPLX: u32 = 1 << 12;
    /// Device reset, self-clearing.
    pub const RST: u32 = 1 << 26;
    /// VLAN mode enable.
    pub const VME: u32 = 1 << 30;
    /// PHY reset.
    pub const PHY_RST: u32 = 1 << 31;
}

/// STATUS bits (SDM 13.4.2, table 13-5).
pub mod status {
    /// Full duplex.
    pub const FD: u32 = 1 << 0;
    /// Link up.
    pub const LU: u32 = 1 << 1;
    /// Speed, bits 7:6: 00 = 10, 01 = 100, 10/11 = 1000 Mb/s.
    pub const SPEED_SHIFT: u32 = 6;
    pub const SPEED_MASK: u32 = 0b11 << SPEED_SHIFT;
}

/// EERD bits for the 82540EM (SDM 13.4.4, table 13-7: START bit 0, DONE bit 4, ADDR
/// bits 15:8, DATA bits 31:16).
pub mod eerd {
    pub const START: u32 = 1 << 0;
    pub const DONE: u32 = 1 << 4;
    pub const ADDR_SHIFT: u32 = 8;
    pub const DATA_SHIFT: u32 = 16;
}

// ------------------------------------------------------------------------------------
// Receive registers (SDM 13.4.22 - 13.4.32)
// ------------------------------------------------------------------------------------

/// Receive Control (SDM 13.4.22).
pub const RCTL: u64 = 0x0100;
/// Receive Descriptor Base Address Low/High (SDM 13.4.25, 13.4.26): 16-byte aligned.
pub const RDBAL: u64 = 0x2800;
pub const RDBAH: u64 = 0x2804;
/// Receive Descriptor Length in bytes (SDM 13.4.27): a multiple of 128.
pub const RDLEN: u64 = 0x2808;
/// Receive Descriptor Head (SDM 13.4.28).
pub const RDH: u64 = 0x2810;
/// Receive Descriptor Tail (SDM 13.4.29): the device owns descriptors [RDH, RDT).
pub const RDT: u64 = 0x2818;
/// Receive Delay Timer and Absolute Delay Timer (SDM 13.4.30, 13.4.31).
pub const RDTR: u64 = 0x2820;
pub const RADV: u64 = 0x282C;

/// RCTL bits (SDM 13.4.22, table 13-67).
pub mod rctl {
    /// Receiver enable.
    pub const EN: u32 = 1 << 1;
    /// Store bad packets.
    pub const SBP: u32 = 1 << 2;
    /// Unicast promiscuous.
    pub const UPE: u32 = 1 << 3;
    /// Multicast promiscuous.
    pub const MPE: u32 = 1 << 4;
    /// Long packet enable (frames up to 16384 bytes).
    pub const LPE: u32 = 1 << 5;
    /// Broadcast accept mode.
    pub const BAM: u32 = 1 << 15;
    /// Buffer size, bits 17:16 with BSEX = 0: 00 = 2048 bytes.
    pub const BSIZE_2048: u32 = 0b00 << 16;
    /// Buffer size extension (multiplies BSIZE by 16).
    pub const BSEX: u32 = 1 << 25;
    /// Strip Ethernet CRC from incoming packets.
    pub const SECRC: u32 = 1 << 26;
}

// ------------------------------------------------------------------------------------
// Transmit registers (SDM 13.4.33 - 13.4.41)
// ------------------------------------------------------------------------------------

/// Transmit Control (SDM 13.4.33).
pub const TCTL: u64 = 0x0400;
/// Transmit Inter-Packet Gap (SDM 13.4.34).
pub const TIPG: u64 = 0x0410;
/// Transmit Descriptor Base Address Low/High, Length, Head, Tail (SDM 13.4.36 - 13.4.40).
pub const TDBAL: u64 = 0x3800;
pub const TDBAH: u64 = 0x3804;
pub const TDLEN: u64 = 0x3808;
pub const TDH: u64 = 0x3810;
pub const TDT: u64 = 0x3818;
/// Transmit Interrupt Delay Value (SDM 13.4.41).
pub const TIDV: u64 = 0x3820;

/// TCTL bits (SDM 13.4.33, table 13-76).
pub mod tctl {
    /// Transmit enable.
    pub const EN: u32 = 1 << 1;
    /// Pad short packets (to 64 bytes with the CRC).
    pub const PSP: u32 = 1 << 3;
    /// Collision threshold, bits 11:4; 0x0F is the recommended value.
    pub const CT_SHIFT: u32 = 4;
    pub const CT_DEFAULT: u32 = 0x0F;
    /// Collision distance, bits 21:12; 0x40 (64 byte times) for full duplex.
    pub const COLD_SHIFT: u32 = 12;
    pub const COLD_FULL_DUPLEX: u32 = 0x40;
}

/// TIPG fields (SDM 13.4.34, table 13-77): IPGT bits 9:0 (10 for 10/100/1000BASE-T on
/// the 82540), IPGR1 bits 19:10 (8), IPGR2 bits 29:20 (6), the IEEE 802.3 values.
pub mod tipg {
    pub const IPGT_COPPER: u32 = 10;
    pub const IPGR1: u32 = 8;
    pub const IPGR2: u32 = 6;
    pub const IPGR1_SHIFT: u32 = 10;
    pub const IPGR2_SHIFT: u32 = 20;
    /// The full register value.
    pub const DEFAULT: u32 = IPGT_COPPER | IPGR1 << IPGR1_SHIFT | IPGR2 << IPGR2_SHIFT;
}

// ------------------------------------------------------------------------------------
// Filter registers (SDM 13.5)
// ------------------------------------------------------------------------------------

/// Multicast Table Array: 128 registers of 32 bits (SDM 13.5.1).
pub const MTA: u64 = 0x5200;
/// Number of MTA registers.
pub const MTA_LEN: u64 = 128;
/// Receive Address Low `n` (SDM 13.5.2): the first four bytes of the address, byte 0 in
/// bits 7:0.
pub const fn ral(n: u64) -> u64 {
    0x5400 + 8 * n
}
/// Receive Address High `n` (SDM 13.5.3): bytes 4 and 5 in bits 15:0, AS in 17:16,
/// Address Valid in bit 31.
pub const fn rah(n: u64) -> u64 {
    0x5404 + 8 * n
}
/// RAH Address Valid.
pub const RAH_AV: u32 = 1 << 31;

// ------------------------------------------------------------------------------------
// Statistics (SDM 13.7): all clear on read; 64-bit counters read low then high (reading
// the high register clears both).
// ------------------------------------------------------------------------------------

/// CRC Error Count (SDM 13.7.1).
pub const CRCERRS: u64 = 0x4000;
/// Alignment Error Count (SDM 13.7.2).
pub const ALGNERRC: u64 = 0x4004;
/// Symbol Error Count (SDM 13.7.3).
pub const SYMERRS: u64 = 0x4008;
/// RX Error Count (SDM 13.7.4).
pub const RXERRC: u64 = 0x400C;
/// Missed Packets Count: dropped for lack of room in the receive FIFO (SDM 13.7.5).
pub const MPC: u64 = 0x4010;
/// Collision counters and others up to the size buckets (SDM 13.7.6 - 13.7.20).
pub const SCC: u64 = 0x4014;
pub const ECOL: u64 = 0x4018;
pub const MCC: u64 = 0x401C;
pub const LATECOL: u64 = 0x4020;
pub const COLC: u64 = 0x4028;
pub const DC: u64 = 0x4030;
pub const TNCRS: u64 = 0x4034;
pub const SEC: u64 = 0x4038;
pub const CEXTERR: u64 = 0x403C;
/// Receive Length Error Count (SDM 13.7.15).
pub const RLEC: u64 = 0x4040;
pub const XONRXC: u64 = 0x4048;
pub const XONTXC: u64 = 0x404C;
pub const XOFFRXC: u64 = 0x4050;
pub const XOFFTXC: u64 = 0x4054;
pub const FCRUC: u64 = 0x4058;
/// Packets Received by size (SDM 13.7.21 - 13.7.26).
pub const PRC64: u64 = 0x405C;
pub const PRC1522: u64 = 0x4070;
/// Good Packets Received Count (SDM 13.7.27).
pub const GPRC: u64 = 0x4074;
/// Broadcast / Multicast Packets Received (SDM 13.7.28, 13.7.29).
pub const BPRC: u64 = 0x4078;
pub const MPRC: u64 = 0x407C;
/// Good Packets Transmitted Count (SDM 13.7.30).
pub const GPTC: u64 = 0x4080;
/// Good Octets Received Count, low/high: destination address through CRC (SDM 13.7.31).
pub const GORCL: u64 = 0x4088;
pub const GORCH: u64 = 0x408C;
/// Good Octets Transmitted Count, low/high (SDM 13.7.32).
pub const GOTCL: u64 = 0x4090;
pub const GOTCH: u64 = 0x4094;
/// Receive No Buffers Count: no descriptor was free (SDM 13.7.33).
pub const RNBC: u64 = 0x40A0;
/// Receive Undersize / Fragment / Oversize / Jabber Count (SDM 13.7.34 - 13.7.37).
pub const RUC: u64 = 0x40A4;
pub const RFC: u64 = 0x40A8;
pub const ROC: u64 = 0x40AC;
pub const RJC: u64 = 0x40B0;
/// Total Octets Received / Transmitted, low/high (SDM 13.7.41, 13.7.42).
pub const TORL: u64 = 0x40C0;
pub const TORH: u64 = 0x40C4;
pub const TOTL: u64 = 0x40C8;
pub const TOTH: u64 = 0x40CC;
/// Total Packets Received / Transmitted (SDM 13.7.43, 13.7.44).
pub const TPR: u64 = 0x40D0;
pub const TPT: u64 = 0x40D4;
/// Multicast / Broadcast Packets Transmitted (SDM 13.7.51, 13.7.52).
pub const MPTC: u64 = 0x40F0;
pub const BPTC: u64 = 0x40F4;
/// First and last statistics register (the block is cleared by reading it whole).
pub const STATS_FIRST: u64 = 0x4000;
pub const STATS_LAST: u64 = 0x40FC;

/// The last register offset the driver touches, plus 4: BAR 0 must be at least this big.
pub const BAR0_MIN_LEN: u64 = rah(0) + 4;

// ------------------------------------------------------------------------------------
// Descriptors
// ------------------------------------------------------------------------------------

/// Marker for plain-old-data types the device reads or writes by DMA: `#[repr(C)]`,
/// every bit pattern valid, no padding, no pointers.
///
/// # Safety
/// Implementors must satisfy exactly that: any bytes the device writes are a valid
/// value, so volatile reads of it are sound.
pub unsafe trait DmaPod: Copy + 'static {}

/// Legacy receive descriptor (SDM 3.2.3, table 3-1): the driver writes `addr`, the device
/// writes `length`, `csum`, `status`, `errors` and `special` when it has filled the
/// buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxDesc {
    /// Buffer address (IOVA).
    pub addr: u64,
    /// Bytes written to the buffer.
    pub length: u16,
    /// Packet checksum.
    pub csum: u16,
    /// Status bits ([`rxd`]).
    pub status: u8,
    /// Error bits ([`rxd`]).
    pub errors: u8,
    /// VLAN tag.
    pub special: u16,
}
const _: () = assert!(size_of::<RxDesc>() == 16);
// SAFETY: repr(C) integers only, no padding (8 + 2 + 2 + 1 + 1 + 2 = 16).
unsafe impl DmaPod for RxDesc {}

/// Receive descriptor status and error bits (SDM 3.2.3.1 table 3-2, 3.2.3.2 table 3-3).
pub mod rxd {
    /// Status: descriptor done.
    pub const STAT_DD: u8 = 1 << 0;
    /// Status: end of packet.
    pub const STAT_EOP: u8 = 1 << 1;
    /// Errors: CRC or alignment error.
    pub const ERR_CE: u8 = 1 << 0;
    /// Errors: symbol error.
    pub const ERR_SE: u8 = 1 << 1;
    /// Errors: sequence error.
    pub const ERR_SEQ: u8 = 1 << 2;
    /// Errors: carrier extension error.
    pub const ERR_CXE: u8 = 1 << 4;
    /// Errors: RX data error.
    pub const ERR_RXE: u8 = 1 << 7;
    /// The errors that mean the frame is bad (checksum errors TCPE/IPE are not: they
    /// are offload results, and we do not enable checksum offload).
    pub const ERR_FRAME: u8 = ERR_CE | ERR_SE | ERR_SEQ | ERR_CXE | ERR_RXE;
}

/// Legacy transmit descriptor (SDM 3.3.3, table 3-8): the driver writes everything; the
/// device writes `status` (DD) back when `cmd` has RS.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxDesc {
    /// Buffer address (IOVA).
    pub addr: u64,
    /// Bytes in the buffer.
    pub length: u16,
    /// Checksum offset.
    pub cso: u8,
    /// Command bits ([`txd`]).
    pub cmd: u8,
    /// Status bits ([`txd`]), low nibble; the high nibble is reserved.
    pub status: u8,
    /// Checksum start.
    pub css: u8,
    /// VLAN tag.
    pub special: u16,
}
const _: () = assert!(size_of::<TxDesc>() == 16);
// SAFETY: repr(C) integers only, no padding (8 + 2 + 1 + 1 + 1 + 1 + 2 = 16).
unsafe impl DmaPod for TxDesc {}

/// Transmit descriptor command and status bits (SDM 3.3.3.1 table 3-10, 3.3.3.2
/// table 3-11).
pub mod txd {
    /// Command: end of packet.
    pub const CMD_EOP: u8 = 1 << 0;
    /// Command: insert FCS (CRC).
    pub const CMD_IFCS: u8 = 1 << 1;
    /// Command: report status (write DD back).
    pub const CMD_RS: u8 = 1 << 3;
    /// Status: descriptor done.
    pub const STAT_DD: u8 = 1 << 0;
}

/// Descriptor ring limits: RDLEN/TDLEN are multiples of 128 bytes (8 descriptors)
/// (SDM 13.4.27, 13.4.38); 32..=4096 is what we accept.
pub const DESC_ALIGN: u16 = 8;
pub const DESC_MIN: u16 = 32;
pub const DESC_MAX: u16 = 4096;
/// Ring base alignment: the SDM asks 16 bytes (SDM 13.4.25); we use 128, a cache-line
/// multiple, as the SDM recommends for performance (SDM 3.2.6).
pub const RING_ALIGN: usize = 128;

/// Receive buffer size programmed in RCTL (BSIZE 2048, BSEX 0).
pub const RX_BUF_SIZE: u16 = 2048;
/// Longest frame without LPE: 1518 plus a VLAN tag (SDM 13.7.36: "over 1522 bytes are
/// oversized if LongPacketEnable is 0b"), CRC stripped.
pub const MAX_FRAME: u32 = 1518;
/// Largest buffer a legacy transmit descriptor may carry (SDM 3.3.3: length up to 16288
/// bytes).
pub const TX_MAX_BUF: u32 = 16288;

/// Decode STATUS speed bits into Mb/s (SDM 13.4.2).
pub fn speed_mbps(status: u32) -> u32 {
    match (status & status::SPEED_MASK) >> status::SPEED_SHIFT {
        0 => 10,
        1 => 100,
        _ => 1000,
    }
}

/// RAL/RAH values for `mac` with Address Valid set (SDM 13.5.2, 13.5.3).
pub fn mac_to_ra(mac: [u8; 6]) -> (u32, u32) {
    let lo = u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]);
    let hi = u32::from(u16::from_le_bytes([mac[4], mac[5]])) | RAH_AV;
    (lo, hi)
}

/// The MAC in RAL/RAH, `None` unless Address Valid is set.
pub fn ra_to_mac(lo: u32, hi: u32) -> Option<[u8; 6]> {
    if hi & RAH_AV == 0 {
        return None;
    }
    let l = lo.to_le_bytes();
    let h = hi.to_le_bytes();
    Some([l[0], l[1], l[2], l[3], h[0], h[1]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn descriptor_layouts_match_the_sdm() {
        assert_eq!(offset_of!(RxDesc, length), 8);
        assert_eq!(offset_of!(RxDesc, csum), 10);
        assert_eq!(offset_of!(RxDesc, status), 12);
        assert_eq!(offset_of!(RxDesc, errors), 13);
        assert_eq!(offset_of!(RxDesc, special), 14);
        assert_eq!(offset_of!(TxDesc, length), 8);
        assert_eq!(offset_of!(TxDesc, cso), 10);
        assert_eq!(offset_of!(TxDesc, cmd), 11);
        assert_eq!(offset_of!(TxDesc, status), 12);
        assert_eq!(offset_of!(TxDesc, css), 13);
        assert_eq!(offset_of!(TxDesc, special), 14);
    }

    #[test]
    fn register_values() {
        // TIPG for copper: 10 | 8 << 10 | 6 << 20 (SDM 13.4.34).
        assert_eq!(tipg::DEFAULT, 0x0060_200A);
        assert_eq!(speed_mbps(0b10 << 6), 1000);
        assert_eq!(speed_mbps(0b11 << 6), 1000);
        assert_eq!(speed_mbps(0b01 << 6), 100);
        assert_eq!(speed_mbps(0), 10);
        assert_eq!(ral(1), 0x5408);
        assert_eq!(rah(0), 0x5404);
    }

    #[test]
    fn receive_address_round_trip() {
        let mac = [0x52, 0x54, 0x00, 0xfe, 0x00, 0x01];
        let (lo, hi) = mac_to_ra(mac);
        assert_eq!(lo, 0xfe00_5452);
        assert_eq!(hi, 0x8000_0100);
        assert_eq!(ra_to_mac(lo, hi), Some(mac));
        assert_eq!(ra_to_mac(lo, hi & !RAH_AV), None);
    }
}
