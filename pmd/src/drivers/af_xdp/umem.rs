//! A UMEM over a packet-mbuf pool's memory, as DPDK's net_af_xdp registers its
//! mempool (drivers/net/af_xdp/rte_eth_af_xdp.c, `xdp_umem_configure` with
//! `XDP_UMEM_UNALIGNED_CHUNK_FLAG`): the pool's one memory area, page aligned, is the
//! UMEM; each mbuf object is a chunk that starts at the mbuf header, so an address the
//! kernel hands back (fill → RX, TX → completion) names its mbuf without a lookup.
//!
//! Geometry (the kernel's rules for an unaligned UMEM, `xdp_umem_reg`): the chunk size is
//! the mempool element (`MBUF_HEADER_LEN + priv_size + data_room`), between
//! `XDP_UMEM_MIN_CHUNK_SIZE` and the page size; the UMEM headroom is the mbuf header and
//! private area, so received data lands `XDP_PACKET_HEADROOM` bytes into the mbuf's
//! buffer (`data_off` = 256) and ends at most at the chunk's end, the buffer's end: the
//! kernel never writes outside the data room. The pool must be one memory chunk (DPDK
//! needs the same: the UMEM is one contiguous range). A pool that does not fit keeps
//! the copy path ([`PoolUmem::new`] says why).

use eal::VirtAddr;
use mbuf::{PktmbufPool, MBUF_HEADER_LEN};

use crate::sys;

/// Bytes of a page: UMEM start and length granularity.
const PAGE: u64 = 4096;
/// Smallest frame a mempool UMEM must take: a full Ethernet frame (1500-byte MTU).
const MIN_FRAME: u32 = 1518;

/// Where a pool's mbufs sit in the UMEM registered over its memory.
#[derive(Clone, Debug)]
pub(super) struct PoolUmem {
    pub pool: PktmbufPool,
    /// Page-aligned start of the UMEM (≤ the first object).
    pub base: u64,
    /// Bytes registered (whole pages).
    pub len: usize,
    /// The kernel's chunk size: one mempool element.
    pub chunk: u32,
    /// The kernel's UMEM headroom: mbuf header and private area.
    pub headroom: u32,
    /// First object (mbuf) and the stride between objects.
    pub first: u64,
    pub index: ObjIndex,
    /// Objects in the pool.
    pub count: u32,
}

impl PoolUmem {
    /// The UMEM geometry of `pool`, or why its layout cannot be a UMEM.
    pub(super) fn new(pool: &PktmbufPool) -> Result<PoolUmem, String> {
        let mp = pool.mempool();
        let chunks = mp.memory_chunks();
        let [(addr, len)] = chunks[..] else {
            return Err(format!(
                "its objects are in {} memory chunks, a UMEM is one contiguous range",
                chunks.len()
            ));
        };
        let sz = mp.obj_size();
        let chunk = sz.elt_size;
        if !(sys::XDP_UMEM_MIN_CHUNK_SIZE..=PAGE as u32).contains(&chunk) {
            return Err(format!(
                "its mbufs are {chunk} bytes, a UMEM chunk is {}..{PAGE}",
                sys::XDP_UMEM_MIN_CHUNK_SIZE
            ));
        }
        let headroom = (MBUF_HEADER_LEN as u32) + u32::from(pool.priv_size());
        let frame = chunk.saturating_sub(headroom + sys::XDP_PACKET_HEADROOM);
        if frame < MIN_FRAME {
            return Err(format!(
                "a frame may take {frame} bytes of its {}-byte data room after the kernel's \
                 {}-byte headroom; {MIN_FRAME} are needed",
                pool.data_room_size(),
                sys::XDP_PACKET_HEADROOM
            ));
        }
        let base = addr.0 & !(PAGE - 1);
        let end = (addr.0 + len).div_ceil(PAGE) * PAGE;
        Ok(PoolUmem {
            pool: pool.clone(),
            base,
            len: (end - base) as usize,
            chunk,
            headroom,
            first: addr.0 + u64::from(sz.header_size),
            index: ObjIndex::new(sz.total_size),
            count: mp.size(),
        })
    }

    /// Biggest frame a chunk takes.
    pub(super) fn max_frame(&self) -> u32 {
        self.chunk - self.headroom - sys::XDP_PACKET_HEADROOM
    }

    /// The UMEM address (chunk) of the mbuf at `obj`.
    #[inline(always)]
    pub(super) fn addr_of(&self, obj: VirtAddr) -> u64 {
        obj.0 - self.base
    }

    /// The mbuf whose chunk `addr` (a descriptor address, offset bits included) is.
    #[inline(always)]
    pub(super) fn obj_of(&self, addr: u64) -> VirtAddr {
        VirtAddr(self.base + (addr & ((1 << sys::XSK_UNALIGNED_BUF_OFFSET_SHIFT) - 1)))
    }

    /// Index of the object at `obj` in the pool.
    #[inline(always)]
    pub(super) fn obj_index(&self, obj: VirtAddr) -> usize {
        self.index.of(obj.0 - self.first)
    }

    /// The object `addr` (as read from a kernel ring, offset bits included) names and
    /// its index in the pool, or None if it names none of the pool's objects.
    #[inline(always)]
    pub(super) fn lookup(&self, addr: u64) -> Option<(VirtAddr, usize)> {
        let obj = self.obj_of(addr);
        let k = self
            .index
            .exact(obj.0.wrapping_sub(self.first), self.count)?;
        Some((obj, k))
    }

    /// The object at `index`.
    pub(super) fn obj_at(&self, index: usize) -> VirtAddr {
        VirtAddr(self.first + index as u64 * self.index.stride)
    }
}

/// Exact division by the object stride without a divide: `stride = odd << shift`, and
/// a multiple of it divided by it is `(off >> shift) * odd⁻¹ mod 2⁶⁴` (Hacker's Delight
/// 10-16, exact division by a constant).
#[derive(Clone, Copy, Debug)]
pub(super) struct ObjIndex {
    shift: u32,
    inv: u64,
    stride: u64,
}

impl ObjIndex {
    fn new(stride: u32) -> ObjIndex {
        let stride = u64::from(stride.max(1));
        let shift = stride.trailing_zeros();
        let odd = stride >> shift;
        // Newton's iteration doubles the correct low bits each step: 3 → 6 → ... → 96.
        let mut inv = odd;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(inv)));
        }
        debug_assert_eq!(odd.wrapping_mul(inv), 1);
        ObjIndex { shift, inv, stride }
    }

    /// `off / stride` if `off` is `k * stride` with `k < count` (no divide: the exact
    /// division's result times the stride gives `off` back only for a multiple).
    #[inline(always)]
    fn exact(&self, off: u64, count: u32) -> Option<usize> {
        let k = self.of(off);
        (k < count as usize && (k as u64).wrapping_mul(self.stride) == off).then_some(k)
    }

    /// `off / stride` for `off` a multiple of the stride.
    #[inline(always)]
    fn of(&self, off: u64) -> usize {
        ((off >> self.shift).wrapping_mul(self.inv)) as usize
    }
}

/// One bit per pool object: which mbufs a queue has lent to the kernel (fill ring, TX
/// ring), so that those never returned can be taken back once the socket is closed.
pub(super) struct Lent(Vec<u64>);

impl Lent {
    pub(super) fn new(count: u32) -> Lent {
        Lent(vec![0; (count as usize).div_ceil(64)])
    }

    #[inline(always)]
    pub(super) fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    /// Clear bit `i`; false if it was not set (an address we never lent).
    #[inline(always)]
    pub(super) fn take(&mut self, i: usize) -> bool {
        let (w, b) = (i / 64, 1u64 << (i % 64));
        match self.0.get_mut(w) {
            Some(x) if *x & b != 0 => {
                *x &= !b;
                true
            }
            _ => false,
        }
    }

    /// Indices still set.
    pub(super) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &x)| {
            (0..64)
                .filter(move |b| x & (1 << b) != 0)
                .map(move |b| w * 64 + b)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_division_by_strides() {
        for stride in [2368u32, 2496, 2432, 4096, 2112, 37 * 64, 1] {
            let ix = ObjIndex::new(stride);
            for k in [0u64, 1, 2, 511, 4095, 65535] {
                assert_eq!(ix.of(k * u64::from(stride)), k as usize, "stride {stride}");
                assert_eq!(ix.exact(k * u64::from(stride), 65536), Some(k as usize));
            }
            assert_eq!(ix.exact(u64::from(stride) * 10, 10), None, "past the end");
            if stride > 1 {
                assert_eq!(ix.exact(u64::from(stride) + 1, 10), None, "not a multiple");
                assert_eq!(ix.exact(u64::MAX - 3, 10), None, "below the first");
            }
        }
    }

    #[test]
    fn lent_bits() {
        let mut l = Lent::new(130);
        l.set(0);
        l.set(129);
        l.set(64);
        assert!(l.take(64));
        assert!(!l.take(64), "taken twice");
        assert!(!l.take(5000), "out of range");
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![0, 129]);
    }
}
