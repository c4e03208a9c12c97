//! Offload flags (`ol_flags`) and the packed TX-offload lengths.
//!
//! Bit positions are DPDK v22.11's `RTE_MBUF_F_*` (lib/mbuf/rte_mbuf_core.h), so a dump
//! or a driver written against DPDK's datasheet-derived values reads the same. Multi-bit
//! fields (IP/L4 checksum status, TX L4 type, tunnel type) have a `*_MASK` and named
//! values; compare `flags & MASK` against the value.

bitflags::bitflags! {
    /// Offload flags of an mbuf (64 bits; RX flags low, TX flags high, as DPDK).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct OlFlags: u64 {
        // ---- RX (bits 0..=22) ----
        /// VLAN TCI saved in `vlan_tci` (bit 0).
        const RX_VLAN = 1 << 0;
        /// RSS hash in `rss_hash` (bit 1).
        const RX_RSS_HASH = 1 << 1;
        /// Flow director match (bit 2).
        const RX_FDIR = 1 << 2;
        /// L4 checksum status bits (3 and 8).
        const RX_L4_CKSUM_MASK = (1 << 3) | (1 << 8);
        /// L4 checksum bad.
        const RX_L4_CKSUM_BAD = 1 << 3;
        /// L4 checksum good.
        const RX_L4_CKSUM_GOOD = 1 << 8;
        /// IP checksum status bits (4 and 7).
        const RX_IP_CKSUM_MASK = (1 << 4) | (1 << 7);
        /// IP checksum bad.
        const RX_IP_CKSUM_BAD = 1 << 4;
        /// IP checksum good.
        const RX_IP_CKSUM_GOOD = 1 << 7;
        /// Outer IP checksum bad (bit 5).
        const RX_OUTER_IP_CKSUM_BAD = 1 << 5;
        /// VLAN stripped by hardware (bit 6).
        const RX_VLAN_STRIPPED = 1 << 6;
        /// IEEE 1588 PTP packet (bit 9).
        const RX_IEEE1588_PTP = 1 << 9;
        /// IEEE 1588 timestamped (bit 10).
        const RX_IEEE1588_TMST = 1 << 10;
        /// FDIR id reported (bit 13).
        const RX_FDIR_ID = 1 << 13;
        /// FDIR flexible bytes reported (bit 14).
        const RX_FDIR_FLX = 1 << 14;
        /// Outer VLAN stripped (bit 15).
        const RX_QINQ_STRIPPED = 1 << 15;
        /// LRO packet (bit 16).
        const RX_LRO = 1 << 16;
        /// Security offload processed (bit 18).
        const RX_SEC_OFFLOAD = 1 << 18;
        /// Security offload failed (bit 19).
        const RX_SEC_OFFLOAD_FAILED = 1 << 19;
        /// QinQ: both TCIs saved (bit 20).
        const RX_QINQ = 1 << 20;
        /// Outer L4 checksum status bits (21 and 22).
        const RX_OUTER_L4_CKSUM_MASK = (1 << 21) | (1 << 22);
        /// Outer L4 checksum bad.
        const RX_OUTER_L4_CKSUM_BAD = 1 << 21;
        /// Outer L4 checksum good.
        const RX_OUTER_L4_CKSUM_GOOD = 1 << 22;

        // ---- TX (bits 41..=60) ----
        /// Outer UDP checksum offload (bit 41).
        const TX_OUTER_UDP_CKSUM = 1 << 41;
        /// UDP fragmentation offload (bit 42).
        const TX_UDP_SEG = 1 << 42;
        /// Security offload (bit 43).
        const TX_SEC_OFFLOAD = 1 << 43;
        /// MACsec (bit 44).
        const TX_MACSEC = 1 << 44;
        /// Tunnel type field (bits 45..=48).
        const TX_TUNNEL_MASK = 0xF << 45;
        /// VXLAN tunnel.
        const TX_TUNNEL_VXLAN = 0x1 << 45;
        /// GRE tunnel.
        const TX_TUNNEL_GRE = 0x2 << 45;
        /// IP-in-IP tunnel.
        const TX_TUNNEL_IPIP = 0x3 << 45;
        /// GENEVE tunnel.
        const TX_TUNNEL_GENEVE = 0x4 << 45;
        /// Insert outer VLAN (QinQ) (bit 49).
        const TX_QINQ = 1 << 49;
        /// TCP segmentation offload (bit 50).
        const TX_TCP_SEG = 1 << 50;
        /// Timestamp on send (bit 51).
        const TX_IEEE1588_TMST = 1 << 51;
        /// L4 checksum type field (bits 52..=53).
        const TX_L4_MASK = 3 << 52;
        /// TCP checksum offload.
        const TX_TCP_CKSUM = 1 << 52;
        /// SCTP checksum offload.
        const TX_SCTP_CKSUM = 2 << 52;
        /// UDP checksum offload.
        const TX_UDP_CKSUM = 3 << 52;
        /// IP checksum offload (bit 54).
        const TX_IP_CKSUM = 1 << 54;
        /// Packet is IPv4 (bit 55).
        const TX_IPV4 = 1 << 55;
        /// Packet is IPv6 (bit 56).
        const TX_IPV6 = 1 << 56;
        /// Insert VLAN (bit 57).
        const TX_VLAN = 1 << 57;
        /// Outer IP checksum offload (bit 58).
        const TX_OUTER_IP_CKSUM = 1 << 58;
        /// Outer header is IPv4 (bit 59).
        const TX_OUTER_IPV4 = 1 << 59;
        /// Outer header is IPv6 (bit 60).
        const TX_OUTER_IPV6 = 1 << 60;

        // ---- buffer kind ----
        /// Buffer is external (bit 61; not produced by this crate).
        const EXTERNAL = 1 << 61;
        /// Indirect mbuf: attached to another mbuf's buffer (bit 62).
        const INDIRECT = 1 << 62;
    }
}

/// The TX offload lengths packed into `tx_offload` (DPDK's bit-field layout, little-endian:
/// l2_len 7 bits, l3_len 9, l4_len 8, tso_segsz 16, outer_l3_len 9, outer_l2_len 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxOffload {
    /// L2 (MAC) header length (< 128).
    pub l2_len: u16,
    /// L3 header length (< 512).
    pub l3_len: u16,
    /// L4 header length (< 256).
    pub l4_len: u16,
    /// TCP segment size for TSO.
    pub tso_segsz: u16,
    /// Outer L3 header length (< 512).
    pub outer_l3_len: u16,
    /// Outer L2 header length (< 128).
    pub outer_l2_len: u16,
}

const FIELDS: [(&str, u32, u32); 6] = [
    ("l2_len", 0, 7),
    ("l3_len", 7, 9),
    ("l4_len", 16, 8),
    ("tso_segsz", 24, 16),
    ("outer_l3_len", 40, 9),
    ("outer_l2_len", 49, 7),
];

impl TxOffload {
    fn values(&self) -> [u16; 6] {
        [
            self.l2_len,
            self.l3_len,
            self.l4_len,
            self.tso_segsz,
            self.outer_l3_len,
            self.outer_l2_len,
        ]
    }

    /// Pack into the `tx_offload` word; `Err((field, value, max))` if a length does not fit.
    pub fn pack(&self) -> Result<u64, (&'static str, u16, u16)> {
        let mut w = 0u64;
        for ((name, shift, bits), v) in FIELDS.iter().zip(self.values()) {
            let max = ((1u32 << bits) - 1) as u16;
            if u32::from(v) > u32::from(max) {
                return Err((name, v, max));
            }
            w |= u64::from(v) << shift;
        }
        Ok(w)
    }

    /// Unpack a `tx_offload` word.
    pub fn unpack(w: u64) -> TxOffload {
        let f = |i: usize| {
            let (_, shift, bits) = FIELDS[i];
            ((w >> shift) & ((1u64 << bits) - 1)) as u16
        };
        TxOffload {
            l2_len: f(0),
            l3_len: f(1),
            l4_len: f(2),
            tso_segsz: f(3),
            outer_l3_len: f(4),
            outer_l2_len: f(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpdk_bit_positions() {
        assert_eq!(OlFlags::RX_VLAN.bits(), 1);
        assert_eq!(OlFlags::RX_IP_CKSUM_GOOD.bits(), 1 << 7);
        assert_eq!(OlFlags::TX_TCP_SEG.bits(), 1 << 50);
        assert_eq!(OlFlags::TX_UDP_CKSUM.bits(), 3 << 52);
        assert_eq!(OlFlags::TX_VLAN.bits(), 1 << 57);
        assert_eq!(OlFlags::INDIRECT.bits(), 1 << 62);
        let f = OlFlags::TX_UDP_CKSUM | OlFlags::TX_IPV4;
        assert_eq!(f & OlFlags::TX_L4_MASK, OlFlags::TX_UDP_CKSUM);
    }

    #[test]
    fn tx_offload_round_trip_and_limits() {
        let t = TxOffload {
            l2_len: 14,
            l3_len: 20,
            l4_len: 20,
            tso_segsz: 1460,
            outer_l3_len: 40,
            outer_l2_len: 14,
        };
        let w = t.pack().unwrap();
        assert_eq!(w & 0x7f, 14);
        assert_eq!((w >> 7) & 0x1ff, 20);
        assert_eq!((w >> 24) & 0xffff, 1460);
        assert_eq!(TxOffload::unpack(w), t);
        let max = TxOffload {
            l2_len: 127,
            l3_len: 511,
            l4_len: 255,
            tso_segsz: u16::MAX,
            outer_l3_len: 511,
            outer_l2_len: 127,
        };
        assert_eq!(TxOffload::unpack(max.pack().unwrap()), max);
        assert_eq!(max.pack().unwrap() >> 56, 0, "top 8 bits unused");
        assert_eq!(
            TxOffload { l2_len: 128, ..t }.pack(),
            Err(("l2_len", 128, 127))
        );
        assert_eq!(
            TxOffload { l3_len: 512, ..t }.pack(),
            Err(("l3_len", 512, 511))
        );
        assert_eq!(
            TxOffload {
                outer_l2_len: 200,
                ..t
            }
            .pack(),
            Err(("outer_l2_len", 200, 127))
        );
    }
}
