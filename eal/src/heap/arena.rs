//! The heap arena: one first-fit allocator over one memseg list, shared by memzones and
//! `malloc`-style allocations (like DPDK's malloc_heap / malloc_elem). Control path only.
//!
//! # Design
//!
//! Each memseg list (a VA-contiguous run of pages of one socket) is one *arena*. The arena
//! is a sequence of blocks that tile it exactly. Every block starts with a 64-byte
//! [`BlockHdr`] inline in EAL memory:
//!
//! ```text
//! | hdr 64 B | payload ...            | hdr 64 B | payload ...  | ...
//!   size = whole block incl. header      prev_size = size of the block before (boundary tag)
//! ```
//!
//! - All links are **offsets from the arena base**, never pointers, so the headers are
//!   valid in every process that maps EAL memory at the recorded base.
//! - Free blocks are on an address-ordered doubly linked free list whose head lives in the
//!   list's [`HeapHeader`] in the shared config. Allocation is first fit: walk the free
//!   list, find the lowest address where an aligned payload (and, for memzones, one that
//!   does not cross `bound` and is IOVA-contiguous) fits, and carve it out. A leading gap
//!   stays a free block (so the payload can be placed at any alignment) if it is at least
//!   [`MIN_BLOCK`]; a trailing remainder below [`MIN_BLOCK`] is absorbed.
//! - Free coalesces with both physical neighbours using `size` / `prev_size`, so there
//!   are never two adjacent free blocks.
//! - Payloads are 64-byte (cache line) aligned at least and sizes are rounded to 64.
//! - A header carries a magic (free/used), its own offset, the kind (heap or memzone) and
//!   a check word; [`Heap::free`] rejects pointers whose header does not match
//!   ([`Error::BadFree`]): double frees, pointers into the middle of a block, memzone
//!   addresses, pointers outside EAL memory.
//!
//! # Concurrency
//!
//! An [`Arena`] is borrowed with the shared-config lock held ([`crate::config`]); it never
//! takes a lock itself.

use static_assertions::const_assert_eq;

use crate::addr::VirtAddr;
use crate::config::{HeapHeader, NONE};

/// Header size; also the minimum alignment and size granule.
pub const HDR: u64 = 64;
/// Smallest block: header plus one cache line.
pub const MIN_BLOCK: u64 = 2 * HDR;
/// Default and minimum alignment (cache line).
pub const CACHE_LINE: u64 = 64;

const MAGIC_FREE: u32 = 0xF4EE_B10C;
const MAGIC_USED: u32 = 0xA110_CA7E;

/// Who owns a used block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// `malloc` family.
    Heap = 1,
    /// A memzone.
    Memzone = 2,
}

/// Inline block header (in EAL memory).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockHdr {
    magic: u32,
    kind: u32,
    size: u64,
    prev_size: u64,
    next_free: u64,
    prev_free: u64,
    self_off: u64,
    req_len: u64,
    check: u64,
}
const_assert_eq!(std::mem::size_of::<BlockHdr>(), HDR as usize);

impl BlockHdr {
    fn seal(&mut self) {
        self.check = Self::check_of(self);
    }
    fn check_of(b: &BlockHdr) -> u64 {
        (b.magic as u64)
            ^ b.size.rotate_left(17)
            ^ b.self_off.rotate_left(41)
            ^ 0x5EA1_5EA1_5EA1_5EA1
    }
    fn valid(&self, off: u64) -> bool {
        (self.magic == MAGIC_USED || self.magic == MAGIC_FREE)
            && self.self_off == off
            && self.check == Self::check_of(self)
    }
}

/// Per-socket heap statistics (like rte_malloc_socket_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes managed (sum of the socket's memseg lists).
    pub heap_size: u64,
    /// Bytes in free blocks (headers included).
    pub free_bytes: u64,
    /// Bytes in used blocks (headers included).
    pub alloc_bytes: u64,
    /// Largest payload a single allocation (align 64) could get now.
    pub largest_free: u64,
    /// Live allocations (heap and memzones).
    pub alloc_count: u64,
    /// Free blocks.
    pub free_count: u64,
}

/// One allocation request.
pub(crate) struct Request<'a> {
    pub len: u64,
    pub align: u64,
    pub bound: u64,
    pub kind: Kind,
    /// Placement filter: `None` = accept `(addr, len)`, `Some(next)` = retry at or after
    /// `next`.
    pub accept: &'a dyn Fn(VirtAddr, u64) -> Option<VirtAddr>,
}

/// One arena, borrowed with the lock held.
pub(crate) struct Arena<'a> {
    hdr: &'a mut HeapHeader,
    base: VirtAddr,
}

impl<'a> Arena<'a> {
    /// # Safety
    /// `[base, base + hdr.len)` must be mapped read-write EAL memory used only by this
    /// arena's blocks and their payloads, and the shared-config lock must be held for the
    /// life of the arena (`hdr` comes from a [`ConfigGuard`]).
    pub unsafe fn new(hdr: &'a mut HeapHeader, base: VirtAddr) -> Self {
        Arena { hdr, base }
    }

    /// Make the whole arena one free block of `len` bytes (multiple of 64, ≥ MIN_BLOCK).
    pub fn init(&mut self, len: u64) {
        self.hdr.len = len;
        self.hdr.alloc_count = 0;
        let mut b = BlockHdr {
            magic: MAGIC_FREE,
            kind: 0,
            size: len,
            prev_size: 0,
            next_free: NONE,
            prev_free: NONE,
            self_off: 0,
            req_len: 0,
            check: 0,
        };
        b.seal();
        self.write(0, b);
        self.hdr.free_head = 0;
    }

    fn read(&self, off: u64) -> BlockHdr {
        debug_assert!(off + HDR <= self.hdr.len && off.is_multiple_of(HDR));
        // SAFETY: `off` is a block offset inside the arena (new's contract), 64-aligned;
        // the lock is held so nobody writes it concurrently.
        unsafe { std::ptr::read(self.base.add(off).as_ptr::<BlockHdr>()) }
    }

    fn write(&mut self, off: u64, b: BlockHdr) {
        debug_assert!(off + HDR <= self.hdr.len && off.is_multiple_of(HDR));
        // SAFETY: as in `read`; we hold the lock exclusively.
        unsafe { std::ptr::write(self.base.add(off).as_ptr::<BlockHdr>(), b) }
    }

    fn set_prev_size_of_next(&mut self, off: u64, size: u64) {
        let next = off + size;
        if next < self.hdr.len {
            let mut n = self.read(next);
            n.prev_size = size;
            self.write(next, n);
        }
    }

    fn list_remove(&mut self, off: u64, b: &BlockHdr) {
        if b.prev_free == NONE {
            self.hdr.free_head = b.next_free;
        } else {
            let mut p = self.read(b.prev_free);
            p.next_free = b.next_free;
            self.write(b.prev_free, p);
        }
        if b.next_free != NONE {
            let mut n = self.read(b.next_free);
            n.prev_free = b.prev_free;
            self.write(b.next_free, n);
        }
        let _ = off;
    }

    /// Insert free block `off` (header already written with magic FREE) in address order.
    fn list_insert(&mut self, off: u64) {
        let mut prev = NONE;
        let mut cur = self.hdr.free_head;
        while cur != NONE && cur < off {
            prev = cur;
            cur = self.read(cur).next_free;
        }
        let mut b = self.read(off);
        b.prev_free = prev;
        b.next_free = cur;
        self.write(off, b);
        if prev == NONE {
            self.hdr.free_head = off;
        } else {
            let mut p = self.read(prev);
            p.next_free = off;
            self.write(prev, p);
        }
        if cur != NONE {
            let mut c = self.read(cur);
            c.prev_free = off;
            self.write(cur, c);
        }
    }

    /// First-fit allocation; returns the payload address.
    pub fn alloc(&mut self, r: &Request<'_>) -> Option<VirtAddr> {
        let len_r = r.len.checked_next_multiple_of(CACHE_LINE)?;
        let align = r.align.max(CACHE_LINE);
        let base = self.base.0;
        let mut off = self.hdr.free_head;
        while off != NONE {
            let f = self.read(off);
            let blk_start = base + off;
            let blk_end = blk_start + f.size;
            let mut u = (blk_start + HDR).checked_next_multiple_of(align)?;
            let found = loop {
                if r.bound != 0 && (u ^ (u + r.len - 1)) & !(r.bound - 1) != 0 {
                    u = u
                        .checked_next_multiple_of(r.bound)?
                        .checked_next_multiple_of(align)?;
                    continue;
                }
                let lead = u - HDR - blk_start;
                if lead != 0 && lead < MIN_BLOCK {
                    u = u.checked_add(align)?;
                    continue;
                }
                if u.checked_add(len_r)? > blk_end {
                    break None;
                }
                match (r.accept)(VirtAddr(u), r.len) {
                    None => break Some(u),
                    Some(next) if next.0 > u => {
                        // Payload must start at or after `next`, header before it.
                        u = next
                            .0
                            .max(blk_start + HDR)
                            .checked_next_multiple_of(align)?;
                    }
                    Some(_) => break None,
                }
            };
            if let Some(u) = found {
                self.carve(off, f, u - HDR - base, len_r, r);
                return Some(VirtAddr(u));
            }
            off = f.next_free;
        }
        None
    }

    fn carve(&mut self, off: u64, f: BlockHdr, used_off: u64, len_r: u64, r: &Request<'_>) {
        let blk_end = off + f.size;
        let lead = used_off - off;
        let used_end = used_off + HDR + len_r;
        let tail = blk_end - used_end;
        let used_size = if tail >= MIN_BLOCK {
            used_end - used_off
        } else {
            blk_end - used_off
        };
        if lead == 0 {
            self.list_remove(off, &f);
        } else {
            let mut f2 = self.read(off);
            f2.size = lead;
            f2.seal();
            self.write(off, f2);
        }
        let mut u = BlockHdr {
            magic: MAGIC_USED,
            kind: r.kind as u32,
            size: used_size,
            prev_size: if lead == 0 { f.prev_size } else { lead },
            next_free: NONE,
            prev_free: NONE,
            self_off: used_off,
            req_len: r.len,
            check: 0,
        };
        u.seal();
        self.write(used_off, u);
        if tail >= MIN_BLOCK {
            let mut t = BlockHdr {
                magic: MAGIC_FREE,
                kind: 0,
                size: tail,
                prev_size: used_size,
                next_free: NONE,
                prev_free: NONE,
                self_off: used_end,
                req_len: 0,
                check: 0,
            };
            t.seal();
            self.write(used_end, t);
            self.list_insert(used_end);
            self.set_prev_size_of_next(used_end, tail);
        } else {
            self.set_prev_size_of_next(used_off, used_size);
        }
        self.hdr.alloc_count += 1;
    }

    /// Header offset of the used block whose payload is `user`, if it is one of `kind`.
    fn used_block(&self, user: VirtAddr, kind: Kind) -> Option<(u64, BlockHdr)> {
        let off_u = user.0.checked_sub(self.base.0)?;
        if off_u < HDR || off_u >= self.hdr.len || off_u % CACHE_LINE != 0 {
            return None;
        }
        let h = off_u - HDR;
        let b = self.read(h);
        (b.valid(h) && b.magic == MAGIC_USED && b.kind == kind as u32 && b.size <= self.hdr.len - h)
            .then_some((h, b))
    }

    /// Requested length of the live block at `user`.
    pub fn block_len(&self, user: VirtAddr, kind: Kind) -> Option<u64> {
        self.used_block(user, kind).map(|(_, b)| b.req_len)
    }

    /// Free the block whose payload is `user`. `false` if it is not a live block of `kind`.
    pub fn free(&mut self, user: VirtAddr, kind: Kind) -> bool {
        let Some((mut h, mut b)) = self.used_block(user, kind) else {
            return false;
        };
        b.magic = MAGIC_FREE;
        b.kind = 0;
        b.req_len = 0;
        // Merge with the next block.
        let next = h + b.size;
        if next < self.hdr.len {
            let n = self.read(next);
            if n.magic == MAGIC_FREE {
                self.list_remove(next, &n);
                b.size += n.size;
                self.wipe(next);
            }
        }
        // Merge with the previous block.
        let mut in_list = false;
        if b.prev_size != 0 {
            let p_off = h - b.prev_size;
            let mut p = self.read(p_off);
            if p.magic == MAGIC_FREE {
                p.size += b.size;
                p.seal();
                self.write(p_off, p);
                self.wipe(h);
                h = p_off;
                b = p;
                in_list = true;
            }
        }
        if !in_list {
            b.seal();
            self.write(h, b);
            self.list_insert(h);
        }
        self.set_prev_size_of_next(h, b.size);
        self.hdr.alloc_count -= 1;
        true
    }

    fn wipe(&mut self, off: u64) {
        let mut w = self.read(off);
        w.magic = 0;
        w.check = 0;
        w.self_off = NONE;
        self.write(off, w);
    }

    /// Visit every block: `(offset, header)`.
    fn walk(&self, mut f: impl FnMut(u64, &BlockHdr)) {
        let mut off = 0;
        while off < self.hdr.len {
            let b = self.read(off);
            f(off, &b);
            if b.size == 0 {
                break;
            }
            off += b.size;
        }
    }

    /// Add this arena's numbers to `s`.
    pub fn add_stats(&self, s: &mut HeapStats) {
        s.heap_size += self.hdr.len;
        s.alloc_count += self.hdr.alloc_count;
        self.walk(|_, b| {
            if b.magic == MAGIC_FREE {
                s.free_bytes += b.size;
                s.free_count += 1;
                s.largest_free = s.largest_free.max(b.size - HDR);
            } else {
                s.alloc_bytes += b.size;
            }
        });
    }

    /// Check every invariant; `Err` describes the first violation. For tests and dumps.
    pub fn check(&self) -> std::result::Result<(), String> {
        let mut err = None;
        let mut total = 0;
        let mut prev_size = 0;
        let mut prev_free = false;
        let mut frees = Vec::new();
        let mut used = 0;
        self.walk(|off, b| {
            if err.is_some() {
                return;
            }
            if !b.valid(off) {
                err = Some(format!("bad header at {off:#x}: {b:?}"));
            } else if b.prev_size != prev_size {
                err = Some(format!(
                    "prev_size {} != {} at {off:#x}",
                    b.prev_size, prev_size
                ));
            } else if b.magic == MAGIC_FREE && prev_free {
                err = Some(format!("adjacent free blocks at {off:#x}"));
            } else if b.size < MIN_BLOCK.min(self.hdr.len) || b.size % CACHE_LINE != 0 {
                err = Some(format!("bad size {} at {off:#x}", b.size));
            }
            prev_free = b.magic == MAGIC_FREE;
            if prev_free {
                frees.push(off);
            } else {
                used += 1;
            }
            prev_size = b.size;
            total += b.size;
        });
        if let Some(e) = err {
            return Err(e);
        }
        if total != self.hdr.len {
            return Err(format!("blocks cover {total} of {} bytes", self.hdr.len));
        }
        if used != self.hdr.alloc_count {
            return Err(format!(
                "{used} used blocks, alloc_count {}",
                self.hdr.alloc_count
            ));
        }
        let mut list = Vec::new();
        let (mut cur, mut prev) = (self.hdr.free_head, NONE);
        while cur != NONE && list.len() <= frees.len() {
            let b = self.read(cur);
            if b.prev_free != prev {
                return Err(format!("free list back link broken at {cur:#x}"));
            }
            list.push(cur);
            prev = cur;
            cur = b.next_free;
        }
        if list != frees {
            return Err(format!("free list {list:x?} != free blocks {frees:x?}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A private arena over ordinary memory.
    struct Fixture {
        buf: Vec<u8>,
        hdr: HeapHeader,
    }

    impl Fixture {
        fn new(len: usize) -> Self {
            // Over-allocate to align the base to 4096.
            Fixture {
                buf: vec![0u8; len + 4096],
                hdr: HeapHeader::default(),
            }
        }
        fn arena(&mut self) -> Arena<'_> {
            let p = self.buf.as_mut_ptr() as u64;
            let base = VirtAddr(p.next_multiple_of(4096));
            // SAFETY: the buffer outlives the arena, is used by nothing else, and the test
            // is single-threaded (no lock needed).
            unsafe { Arena::new(&mut self.hdr, base) }
        }
        /// [`arena`](Self::arena), initialised as one free block over the whole buffer.
        fn fresh_arena(&mut self) -> Arena<'_> {
            let len = (self.buf.len() - 4096) as u64;
            let mut a = self.arena();
            a.init(len);
            a
        }
    }

    fn req(len: u64, align: u64, bound: u64) -> Request<'static> {
        Request {
            len,
            align,
            bound,
            kind: Kind::Heap,
            accept: &|_, _| None,
        }
    }

    #[test]
    fn alloc_free_coalesce() {
        let mut fx = Fixture::new(1 << 16);
        let mut a = fx.fresh_arena();
        a.check().unwrap();
        let p1 = a.alloc(&req(100, 0, 0)).unwrap();
        let p2 = a.alloc(&req(64, 0, 0)).unwrap();
        let p3 = a.alloc(&req(1, 0, 0)).unwrap();
        a.check().unwrap();
        assert_eq!(p1.0 % 64, 0);
        assert_eq!(p2.0 - p1.0, 128 + HDR); // 100 rounds to 128
        assert_eq!(p3.0 - p2.0, 64 + HDR);
        assert_eq!(a.block_len(p1, Kind::Heap), Some(100));
        // Free middle, then neighbours: ends in one free block.
        assert!(a.free(p2, Kind::Heap));
        assert!(!a.free(p2, Kind::Heap), "double free is refused");
        a.check().unwrap();
        assert!(a.free(p1, Kind::Heap));
        a.check().unwrap();
        assert!(a.free(p3, Kind::Heap));
        a.check().unwrap();
        let mut s = HeapStats::default();
        a.add_stats(&mut s);
        assert_eq!(
            (s.free_count, s.alloc_count, s.free_bytes, s.largest_free),
            (1, 0, 1 << 16, (1 << 16) - HDR)
        );
    }

    #[test]
    fn alignment_bound_and_lead_gap() {
        let mut fx = Fixture::new(1 << 20);
        let mut a = fx.fresh_arena();
        let p = a.alloc(&req(64, 4096, 0)).unwrap();
        assert_eq!(p.0 % 4096, 0);
        a.check().unwrap();
        let q = a.alloc(&req(64, 65536, 0)).unwrap();
        assert_eq!(q.0 % 65536, 0);
        a.check().unwrap();
        // Bound: 3000 bytes must not cross a 4096 boundary.
        for _ in 0..20 {
            let r = a.alloc(&req(3000, 64, 4096)).unwrap();
            assert_eq!(r.0 / 4096, (r.0 + 2999) / 4096, "{r:?} crosses 4K");
        }
        a.check().unwrap();
        assert!(a.free(p, Kind::Heap));
        assert!(a.free(q, Kind::Heap));
        a.check().unwrap();
        // Wrong kind and bogus pointers are refused.
        let m = Request {
            len: 64,
            align: 64,
            bound: 0,
            kind: Kind::Memzone,
            accept: &|_, _| None,
        };
        let z = a.alloc(&m).unwrap();
        assert!(!a.free(z, Kind::Heap));
        assert!(!a.free(z.add(64), Kind::Memzone));
        assert!(!a.free(VirtAddr(z.0 + 1), Kind::Memzone));
        assert!(a.free(z, Kind::Memzone));
        a.check().unwrap();
    }

    #[test]
    fn exhaustion_and_reuse() {
        let mut fx = Fixture::new(1 << 14);
        let mut a = fx.fresh_arena();
        let mut v = Vec::new();
        while let Some(p) = a.alloc(&req(192, 0, 0)) {
            v.push(p);
        }
        // Each block is 256 bytes: 16 KiB / 256 = 64.
        assert_eq!(v.len(), 64);
        assert!(a.alloc(&req(1, 0, 0)).is_none());
        a.check().unwrap();
        // Free every other block: no 2-block hole exists, so a 400-byte request fails.
        for p in v.iter().step_by(2) {
            assert!(a.free(*p, Kind::Heap));
        }
        a.check().unwrap();
        assert!(a.alloc(&req(400, 0, 0)).is_none());
        let refill = a.alloc(&req(192, 0, 0)).unwrap();
        assert_eq!(refill, v[0], "first fit reuses the lowest hole");
        assert!(a.free(refill, Kind::Heap));
        for p in v.iter().skip(1).step_by(2) {
            assert!(a.free(*p, Kind::Heap));
        }
        a.check().unwrap();
        assert!(a.alloc(&req((1 << 14) - HDR, 0, 0)).is_some());
        // Too big / overflow.
        assert!(a.alloc(&req(u64::MAX - 10, 0, 0)).is_none());
    }

    #[test]
    fn accept_filter_moves_placement() {
        let mut fx = Fixture::new(1 << 16);
        let mut a = fx.fresh_arena();
        let base = a.base.0;
        // Pretend an IOVA break at base + 8192: placements crossing it must move past it.
        let brk = base + 8192;
        let accept = move |u: VirtAddr, l: u64| {
            if u.0 < brk && u.0 + l > brk {
                Some(VirtAddr(brk))
            } else {
                None
            }
        };
        let r1 = Request {
            len: 6000,
            align: 64,
            bound: 0,
            kind: Kind::Heap,
            accept: &accept,
        };
        let p = a.alloc(&r1).unwrap();
        assert!(p.0 + 6000 <= brk);
        let p2 = a.alloc(&r1).unwrap();
        assert!(p2.0 >= brk, "second placement must skip the break");
        a.check().unwrap();
    }

    #[test]
    fn randomized_against_model() {
        // Deterministic xorshift; checks invariants after every operation.
        let mut fx = Fixture::new(1 << 18);
        let mut a = fx.fresh_arena();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut live: Vec<(VirtAddr, u64)> = Vec::new();
        for _ in 0..3000 {
            if live.is_empty() || rnd() % 3 != 0 {
                let len = 1 + rnd() % 5000;
                let align = 64u64 << (rnd() % 6);
                if let Some(p) = a.alloc(&req(len, align, 0)) {
                    assert_eq!(p.0 % align, 0);
                    for &(q, ql) in &live {
                        assert!(p.0 + len <= q.0 || q.0 + ql <= p.0, "overlap");
                    }
                    live.push((p, len));
                }
            } else {
                let i = (rnd() as usize) % live.len();
                let (p, _) = live.swap_remove(i);
                assert!(a.free(p, Kind::Heap));
            }
            a.check().unwrap();
        }
        for (p, _) in live {
            assert!(a.free(p, Kind::Heap));
        }
        a.check().unwrap();
        let mut s = HeapStats::default();
        a.add_stats(&mut s);
        assert_eq!(s.free_count, 1);
    }
}
