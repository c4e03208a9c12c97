//! The mbuf header: two 64-byte cache lines in front of every packet buffer.
//!
//! The layout follows DPDK v22.11's `struct rte_mbuf` (lib/mbuf/rte_mbuf_core.h, built
//! with `RTE_IOVA_AS_PA`): line 0 holds what the RX path writes (buffer address and IOVA,
//! the 8-byte "rearm" word of `data_off`/`refcnt`/`nb_segs`/`port`, offload flags, the
//! "rx_descriptor_fields1" of packet type, lengths, VLAN and RSS hash, the buffer length
//! and the pool); line 1 what only TX and slow paths touch (next segment, the packed
//! TX-offload lengths, the direct mbuf of a clone, private size, timesync, dynamic
//! fields). Offsets are pinned by the `const` assertions below so a driver can rely on
//! them (e.g. rearm with one 8-byte store at offset 16).
//!
//! Differences from DPDK: addresses are [`VirtAddr`]/[`Iova`] newtypes (the same bits);
//! the 16 bytes of DPDK's `hash` union are an `rss_hash` plus a `hash_hi` word; DPDK's
//! `shinfo` pointer slot (offset 80) holds `direct`, the mbuf an indirect mbuf is attached
//! to (DPDK recomputes it from `buf_addr` and `priv_size`).

use core::sync::atomic::AtomicU16;

use eal::{Iova, VirtAddr};

/// Bytes of the mbuf header (DPDK: `sizeof(struct rte_mbuf)` = 2 cache lines).
pub const MBUF_HEADER_LEN: usize = 128;
/// Headroom reserved in front of packet data at allocation (DPDK's `RTE_PKTMBUF_HEADROOM`).
pub const PKTMBUF_HEADROOM: u16 = 128;
/// Default data room (DPDK's `RTE_MBUF_DEFAULT_DATAROOM`).
pub const MBUF_DEFAULT_DATAROOM: u16 = 2048;
/// Default buffer size, data room plus headroom (DPDK's `RTE_MBUF_DEFAULT_BUF_SIZE`: 2176).
pub const MBUF_DEFAULT_BUF_SIZE: u16 = MBUF_DEFAULT_DATAROOM + PKTMBUF_HEADROOM;
/// `port` of an mbuf not received on any port (DPDK's `RTE_MBUF_PORT_INVALID`).
pub const PORT_INVALID: u16 = u16::MAX;
/// Most segments in one packet (DPDK's `RTE_MBUF_MAX_NB_SEGS`).
pub const MAX_NB_SEGS: u16 = u16::MAX;
/// Alignment of the per-mbuf private area size (DPDK's `RTE_MBUF_PRIV_ALIGN`).
pub const PRIV_ALIGN: u16 = 8;

/// The mbuf header, in shared memory at the start of every pool object.
///
/// Who writes what: the holder of the (single) [`Mbuf`](crate::Mbuf) handle owns every
/// field except `refcnt`, which clones on other threads update atomically. A buffer whose
/// `refcnt` is above 1 or that is attached (indirect) is shared and its data read-only.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct MbufHeader {
    // ---- cache line 0: RX path ----
    /// Virtual address of the segment buffer (start of headroom).
    pub buf_addr: VirtAddr,
    /// IOVA of `buf_addr` ([`Iova::BAD`] if unknown).
    pub buf_iova: Iova,
    /// Offset of the packet data from `buf_addr`.
    pub data_off: u16,
    /// References to this buffer: handles plus attached indirect mbufs.
    pub refcnt: AtomicU16,
    /// Segments in the packet (first segment only).
    pub nb_segs: u16,
    /// Input port.
    pub port: u16,
    /// Offload flags ([`OlFlags`](crate::OlFlags) bits).
    pub ol_flags: u64,
    /// Packet type (L2/L3/L4 and tunnel information, DPDK's `RTE_PTYPE_*`).
    pub packet_type: u32,
    /// Bytes in the whole packet, all segments (first segment only).
    pub pkt_len: u32,
    /// Bytes of data in this segment.
    pub data_len: u16,
    /// VLAN TCI (valid with `RX_VLAN` / for `TX_VLAN`).
    pub vlan_tci: u16,
    /// RSS hash (valid with `RX_RSS_HASH`).
    pub rss_hash: u32,
    /// Upper hash word (flow director id, scheduler data).
    pub hash_hi: u32,
    /// Outer VLAN TCI (QinQ).
    pub vlan_tci_outer: u16,
    /// Bytes of the segment buffer.
    pub buf_len: u16,
    /// The pool the mbuf came from (its header address).
    pub pool: VirtAddr,
    // ---- cache line 1: TX and slow path ----
    /// Next segment, or 0.
    pub next: VirtAddr,
    /// Packed TX offload lengths (see [`TxOffload`](crate::TxOffload)).
    pub tx_offload: u64,
    /// For an indirect mbuf: the direct mbuf whose buffer it uses; else 0.
    pub direct: VirtAddr,
    /// Bytes of the private area between header and buffer.
    pub priv_size: u16,
    /// Timesync index (IEEE 1588).
    pub timesync: u16,
    /// Room for dynamic fields (DPDK's `dynfield1`).
    pub dynfield: [u32; 9],
}

/// Check, at compile time, that each listed field of `$t` is at its byte offset.
macro_rules! assert_offsets {
    ($t:ty: $($f:ident $off:literal),* $(,)?) => {
        $(assert!(core::mem::offset_of!($t, $f) == $off);)*
    };
}

const _: () = {
    use core::mem::size_of;
    assert!(size_of::<MbufHeader>() == MBUF_HEADER_LEN);
    assert!(core::mem::align_of::<MbufHeader>() == 64);
    // Offsets as DPDK v22.11 rte_mbuf_core.h (64-bit, RTE_IOVA_AS_PA): the lines start at
    // rearm_data (16), rx_descriptor_fields1 (32) and cacheline1 (64); `direct` stands
    // where DPDK has shinfo.
    assert_offsets! { MbufHeader:
        buf_addr 0, buf_iova 8,
        data_off 16, refcnt 18, nb_segs 20, port 22, ol_flags 24,
        packet_type 32, pkt_len 36, data_len 40, vlan_tci 42, rss_hash 44,
        vlan_tci_outer 52, buf_len 54, pool 56,
        next 64, tx_offload 72, direct 80, priv_size 88, timesync 90, dynfield 92
    }
};

impl MbufHeader {
    /// Reset the header of an mbuf just taken from its pool for a single-segment packet
    /// of `data_len` bytes at `data_off`, from `port` (DPDK's `rte_pktmbuf_reset` and
    /// the length and port stores an RX path adds, in six stores): the 8-byte "rearm"
    /// word (data_off, refcnt 1, nb_segs 1, port) at 16 and the two 8-byte words at 32
    /// (packet_type 0, pkt_len) and 40 (data_len, vlan_tci 0, rss_hash 0) each in one
    /// store, as DPDK's vector RX paths write them; ol_flags keeps only INDIRECT and
    /// EXTERNAL; vlan_tci_outer and tx_offload are cleared. `next` is not written: a
    /// free mbuf keeps it 0 (the free path restores it).
    ///
    /// # Safety
    /// `h` is an mbuf header that the caller alone holds (just taken from its pool),
    /// and `data_off + data_len <= buf_len`.
    #[inline(always)]
    pub(crate) unsafe fn rearm(h: *mut MbufHeader, data_off: u16, data_len: u16, port: u16) {
        let rearm = u64::from(data_off) | 1 << 16 | 1 << 32 | u64::from(port) << 48;
        let keep = crate::OlFlags::INDIRECT.bits() | crate::OlFlags::EXTERNAL.bits();
        // SAFETY: the caller holds the header alone, so plain stores over its atomic
        // refcnt race with nothing; the words are at the offsets asserted above
        // (16..24, 32..40, 40..48), inside the header and 8-aligned (the header is
        // 64-aligned).
        unsafe {
            debug_assert!((*h).next.0 == 0, "a free mbuf with a next segment");
            let b = h.cast::<u8>();
            b.add(16).cast::<u64>().write(rearm);
            (*h).ol_flags &= keep;
            b.add(32).cast::<u64>().write(u64::from(data_len) << 32);
            b.add(40).cast::<u64>().write(u64::from(data_len));
            (*h).vlan_tci_outer = 0;
            (*h).tx_offload = 0;
        }
    }

    /// Write a fresh header for a buffer of `buf_len` bytes at `buf_addr`, as a pool
    /// initialises every mbuf once (DPDK's `rte_pktmbuf_init`): refcnt 1, one segment,
    /// no data, default headroom.
    ///
    /// # Safety
    /// `this` is valid for writes of an `MbufHeader` and not shared yet.
    pub unsafe fn init(
        this: *mut MbufHeader,
        pool: VirtAddr,
        buf_addr: VirtAddr,
        buf_iova: Iova,
        buf_len: u16,
        priv_size: u16,
    ) {
        // SAFETY: forwarded contract.
        unsafe {
            this.write(MbufHeader {
                buf_addr,
                buf_iova,
                data_off: PKTMBUF_HEADROOM.min(buf_len),
                refcnt: AtomicU16::new(1),
                nb_segs: 1,
                port: PORT_INVALID,
                ol_flags: 0,
                packet_type: 0,
                pkt_len: 0,
                data_len: 0,
                vlan_tci: 0,
                rss_hash: 0,
                hash_hi: 0,
                vlan_tci_outer: 0,
                buf_len,
                pool,
                next: VirtAddr(0),
                tx_offload: 0,
                direct: VirtAddr(0),
                priv_size,
                timesync: 0,
                dynfield: [0; 9],
            })
        };
    }
}

/// Raw header pointer of a segment address.
#[inline(always)]
pub(crate) fn hp(a: VirtAddr) -> *mut MbufHeader {
    a.as_ptr()
}
