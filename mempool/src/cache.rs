//! The per-lcore object cache and its flush/refill policy, on memory the caller owns.
//!
//! A cache is a LIFO array of free objects in front of the backend. The policy (ours;
//! DPDK v22.11's `rte_mempool_do_generic_get/put` in lib/mempool/rte_mempool.h is the
//! model, and the 1.5 multiplier is DPDK's `CACHE_FLUSHTHRESH_MULTIPLIER`):
//!
//! * `size` is the cache's nominal fill, `flush_threshold = size * 3 / 2` its ceiling.
//! * **get n**: objects come off the top of the cache first (most recently freed =
//!   hottest in the CPU cache). If the cache runs dry with `r` objects still missing and
//!   `r <= size`, the cache is refilled with one backend dequeue of `size / 2 + r`
//!   objects, `r` of them are handed out, and the cache is left half full. If that
//!   dequeue fails, the `r` objects are dequeued straight from the backend; if that fails
//!   too, the objects already taken go back on the cache and the get fails (all or
//!   nothing). `r > size` goes straight to the backend.
//! * **put n**: objects go on top of the cache while `len + n <= flush_threshold`.
//!   Otherwise the coldest objects (the bottom of the array) are flushed to the backend in
//!   one enqueue until `size / 2` remain, and the new ones go on top. `n > size` goes
//!   straight to the backend.
//!
//! Half full after a refill and after a flush means a burst of up to `size / 2` gets or
//! up to `size` puts is absorbed without touching the backend, whichever comes next;
//! DPDK v22.11 refills to `size` and flushes to zero instead.
//!
//! Invariant: `len <= flush_threshold <= CACHE_OBJS`. A refill writes `size / 2 + r <=
//! size * 3 / 2` slots; a put leaves at most `flush_threshold` objects (after a flush,
//! `size / 2 + n <= size * 3 / 2` since `n <= size`).
//!
//! The cache is not thread safe: one owner thread at a time (see [`CacheShared`]).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

use eal::VirtAddr;

/// Largest cache size (DPDK's `RTE_MEMPOOL_CACHE_MAX_SIZE`).
pub const CACHE_MAX_SIZE: u32 = 512;

/// Slots in a cache's object array: the flush threshold of the largest cache.
pub const CACHE_OBJS: usize = (CACHE_MAX_SIZE as usize) * 3 / 2;

/// Flush threshold for a cache of `size` objects (DPDK's `CALC_CACHE_FLUSHTHRESH`: 1.5 x).
pub const fn flush_threshold(size: u32) -> u32 {
    size * 3 / 2
}

/// What the cache needs from the pool's backend: all-or-nothing bulk moves.
pub trait BulkBackend {
    /// Enqueue all of `objs` or none; true on success.
    fn enqueue(&self, objs: &[VirtAddr]) -> bool;
    /// Dequeue exactly `objs.len()` objects or none; true on success. On failure the
    /// contents of `objs` are unspecified.
    fn dequeue(&self, objs: &mut [VirtAddr]) -> bool;
}

/// How a get was served (for the statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetOutcome {
    /// Entirely from the cache.
    Hit,
    /// Cache plus one refill dequeue of `refill` objects from the backend.
    Refill { refill: u32 },
    /// Cache plus a direct backend dequeue of `direct` objects.
    Direct { direct: u32 },
    /// Not enough objects; nothing taken.
    Fail,
}

/// How a put was served (for the statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Into the cache only.
    Cached,
    /// Into the cache after flushing `flushed` objects to the backend.
    Flushed { flushed: u32 },
    /// Straight to the backend.
    Direct,
    /// The backend refused an enqueue; nothing was put.
    Fail,
}

/// One object cache, `#[repr(C)]` so it can live in a pool header in shared memory (one
/// per lcore) or on the heap (a user-owned cache).
///
/// Ownership rule: at any time at most one thread runs [`get`](Self::get),
/// [`put`](Self::put) or [`drain`](Self::drain) on a cache. For the per-lcore caches that
/// thread is the one holding that EAL lcore id (in whichever process). Other threads may
/// only read [`len`](Self::len), which is an atomic so the read is a plain racy snapshot
/// (written with relaxed stores by the owner; no ordering is implied).
#[repr(C, align(64))]
pub struct CacheShared {
    size: u32,
    flush_threshold: u32,
    len: AtomicU32,
    _pad: u32,
    /// Pool header address for a user cache bound to a pool; 0 for per-lcore caches.
    pub(crate) owner: VirtAddr,
    _pad2: [u64; 5],
    objs: UnsafeCell<[VirtAddr; CACHE_OBJS]>,
}

const _: () = assert!(core::mem::size_of::<CacheShared>() == 64 + CACHE_OBJS * 8);
const _: () = assert!(core::mem::offset_of!(CacheShared, objs) == 64);

// SAFETY: the object array is only touched by the single owner thread (type contract
// above, enforced by `unsafe` on the mutating methods); `len` is atomic.
unsafe impl Sync for CacheShared {}

impl CacheShared {
    /// Initialise a cache of `size` (1..=CACHE_MAX_SIZE, or 0 for "no cache") in place.
    ///
    /// # Safety
    /// `this` must be valid for writes of a `CacheShared` and not in use by anyone.
    pub unsafe fn init(this: *mut CacheShared, size: u32, owner: VirtAddr) {
        debug_assert!(size <= CACHE_MAX_SIZE);
        // SAFETY: caller guarantees `this` is writable and unshared; the array is left
        // uninitialised-as-garbage-but-valid (VirtAddr is plain data; only 0..len is read).
        unsafe {
            core::ptr::addr_of_mut!((*this).size).write(size);
            core::ptr::addr_of_mut!((*this).flush_threshold).write(flush_threshold(size));
            core::ptr::addr_of_mut!((*this).len).write(AtomicU32::new(0));
            core::ptr::addr_of_mut!((*this)._pad).write(0);
            core::ptr::addr_of_mut!((*this).owner).write(owner);
            core::ptr::addr_of_mut!((*this)._pad2).write([0; 5]);
        }
    }

    /// A zeroed cache of `size` on the heap (for user-owned caches and tests).
    pub fn new_boxed(size: u32, owner: VirtAddr) -> Box<CacheShared> {
        let mut b = Box::<CacheShared>::new_uninit();
        // SAFETY: fresh allocation of the right layout, not shared; `init` writes every
        // field but the array, which we zero here so the whole value is initialised.
        unsafe {
            let p = b.as_mut_ptr();
            core::ptr::addr_of_mut!((*p).objs).write(UnsafeCell::new([VirtAddr(0); CACHE_OBJS]));
            CacheShared::init(p, size, owner);
            b.assume_init()
        }
    }

    /// Nominal size.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Flush threshold (1.5 x size).
    pub fn flush_threshold(&self) -> u32 {
        self.flush_threshold
    }

    /// Objects currently cached (a racy snapshot when read by a non-owner).
    pub fn len(&self) -> u32 {
        // Relaxed: a statistic; the owner's relaxed store is the only writer.
        self.len.load(Relaxed)
    }

    /// True when no object is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline(always)]
    fn slots(&self) -> *mut VirtAddr {
        self.objs.get().cast::<VirtAddr>()
    }

    /// The hit path of [`CacheShared::get`]: if the cache holds `out.len()` objects, move
    /// the top ones (hottest first) to `out` and return true; else touch nothing and
    /// return false.
    ///
    /// # Safety
    /// The calling thread must be the cache's only user right now (type docs).
    #[inline(always)]
    pub unsafe fn try_get_hit(&self, out: &mut [VirtAddr]) -> bool {
        let n = out.len();
        let len = self.len.load(Relaxed) as usize;
        if n > len {
            return false;
        }
        let top = len - n;
        // The new length first (as DPDK does): the next call's read of it then does not
        // wait behind this copy.
        self.len.store(top as u32, Relaxed);
        // SAFETY: top + n = len <= CACHE_OBJS (module invariant), so the n slots from
        // `top` are in the array; single owner (contract), and `out` is the caller's own
        // slice, which cannot alias the cache's private array. Every move below stays in
        // 0..n of both sides: blocks of eight only when n >= 8, halves of four when n >= 5,
        // and the unaligned reads and writes need no alignment.
        unsafe {
            let src = self.slots().add(top);
            let dst = out.as_mut_ptr();
            // Up to four objects without a loop: the first and last one or two, which
            // overlap for n = 1 and 3 (same value written twice). A loop for n < 4 ran
            // its vector-loop test, then a one-element loop with reloaded addresses:
            // loops that get 1 or 4 at a time went from 1.0-1.4 to 1.4-2.2 of DPDK's rate
            // in `mempool_ab.sh` (DESIGN.md, "Mempool hot path"). Larger bulks: 64-byte
            // blocks (no bounds checks, no `memcpy` call, no element tail loop).
            if n <= 2 {
                if n != 0 {
                    let (a, b) = (*src.add(n - 1), *src);
                    *dst = a;
                    *dst.add(n - 1) = b;
                }
            } else if n <= 4 {
                let (a, b, c, d) = (*src.add(n - 1), *src.add(n - 2), *src.add(1), *src);
                *dst = a;
                *dst.add(1) = b;
                *dst.add(n - 2) = c;
                *dst.add(n - 1) = d;
            } else {
                // 5 and more: blocks of eight objects (64 bytes), the last block ending at
                // `n` and overlapping the one before it when n is not a multiple of
                // eight; below eight, the first and last four, overlapping.
                let rev8 = |from: usize, to: usize| {
                    let b = core::ptr::read_unaligned(src.add(from).cast::<[VirtAddr; 8]>());
                    let mut r = [VirtAddr(0); 8];
                    for k in 0..8 {
                        r[k] = b[7 - k];
                    }
                    core::ptr::write_unaligned(dst.add(to).cast::<[VirtAddr; 8]>(), r);
                };
                if n < 8 {
                    let a = core::ptr::read_unaligned(src.add(n - 4).cast::<[VirtAddr; 4]>());
                    let b = core::ptr::read_unaligned(src.cast::<[VirtAddr; 4]>());
                    core::ptr::write_unaligned(dst.cast(), [a[3], a[2], a[1], a[0]]);
                    core::ptr::write_unaligned(dst.add(n - 4).cast(), [b[3], b[2], b[1], b[0]]);
                } else {
                    let mut i = 0;
                    while i + 8 <= n {
                        rev8(n - 8 - i, i);
                        i += 8;
                    }
                    if i != n {
                        rev8(0, n - 8);
                    }
                }
            }
        }
        true
    }

    /// Get `out.len()` objects, all or nothing, through the cache.
    ///
    /// # Safety
    /// The calling thread must be the cache's only user right now (type docs).
    #[inline(always)]
    pub unsafe fn get<B: BulkBackend + ?Sized>(
        &self,
        backend: &B,
        out: &mut [VirtAddr],
    ) -> GetOutcome {
        // SAFETY: forwarded.
        if unsafe { self.try_get_hit(out) } {
            GetOutcome::Hit
        } else {
            // SAFETY: forwarded.
            unsafe { self.get_miss(backend, out) }
        }
    }

    /// [`CacheShared::get`] when the cache holds fewer than `out.len()` objects.
    ///
    /// # Safety
    /// As [`CacheShared::get`].
    #[cold]
    #[inline(never)]
    pub unsafe fn get_miss<B: BulkBackend + ?Sized>(
        &self,
        backend: &B,
        out: &mut [VirtAddr],
    ) -> GetOutcome {
        let n = out.len();
        let len = self.len.load(Relaxed) as usize;
        let slots = self.slots();
        // Called directly on a cache that can serve the get: a hit after all.
        // SAFETY: forwarded.
        if n <= len && unsafe { self.try_get_hit(out) } {
            return GetOutcome::Hit;
        }
        // Hand out everything cached (hot objects first), then find `r` more.
        let taken = len;
        for (i, o) in out[..taken].iter_mut().enumerate() {
            // SAFETY: as above.
            *o = unsafe { *slots.add(len - 1 - i) };
        }
        let r = n - taken;
        let size = self.size as usize;
        if r <= size {
            let req = size / 2 + r;
            // SAFETY: req <= size * 3 / 2 <= CACHE_OBJS; single owner, so no other
            // reference to the array exists while this slice lives.
            let fill = unsafe { core::slice::from_raw_parts_mut(slots, req) };
            if backend.dequeue(fill) {
                for (i, o) in out[taken..].iter_mut().enumerate() {
                    *o = fill[req - 1 - i];
                }
                self.len.store((size / 2) as u32, Relaxed);
                return GetOutcome::Refill { refill: req as u32 };
            }
        }
        if backend.dequeue(&mut out[taken..]) {
            self.len.store(0, Relaxed);
            return GetOutcome::Direct { direct: r as u32 };
        }
        // Roll back: the objects we took go back in their original order.
        for (i, o) in out[..taken].iter().enumerate() {
            // SAFETY: taken - 1 - i < taken <= CACHE_OBJS; single owner.
            unsafe { *slots.add(taken - 1 - i) = *o };
        }
        self.len.store(taken as u32, Relaxed);
        GetOutcome::Fail
    }

    /// The common path of [`CacheShared::put`]: if `objs` fit under the flush threshold
    /// (and are not more than the cache size), push them on top and return true; else
    /// touch nothing and return false.
    ///
    /// # Safety
    /// The calling thread must be the cache's only user right now (type docs).
    #[inline(always)]
    pub unsafe fn try_put_cached(&self, objs: &[VirtAddr]) -> bool {
        let n = objs.len();
        let len = self.len.load(Relaxed) as usize;
        // `|`, not `||`: one branch. n <= size is the policy's bypass rule (module docs).
        if (len + n > self.flush_threshold as usize) | (n > self.size as usize) {
            return false;
        }
        // The new length first, as in `try_get_hit`.
        self.len.store((len + n) as u32, Relaxed);
        // SAFETY: len + n <= flush_threshold <= CACHE_OBJS (module invariant); single
        // owner (contract); `objs` is the caller's slice, which cannot alias the cache's
        // private array. Every move below stays in 0..n of both sides, as in
        // `try_get_hit`.
        unsafe {
            let dst = self.slots().add(len);
            let src = objs.as_ptr();
            // As in `try_get_hit`: up to four objects as the first and last one or two;
            // larger bulks in 64-byte blocks (a `memcpy` call costs more than the copy).
            if n <= 2 {
                if n != 0 {
                    let (a, b) = (*src, *src.add(n - 1));
                    *dst = a;
                    *dst.add(n - 1) = b;
                }
            } else if n <= 4 {
                let (a, b, c, d) = (*src, *src.add(1), *src.add(n - 2), *src.add(n - 1));
                *dst = a;
                *dst.add(1) = b;
                *dst.add(n - 2) = c;
                *dst.add(n - 1) = d;
            } else {
                // As in `try_get_hit`: blocks of eight, the last one overlapping.
                let cp = |at: usize| {
                    let b = core::ptr::read_unaligned(src.add(at).cast::<[VirtAddr; 8]>());
                    core::ptr::write_unaligned(dst.add(at).cast::<[VirtAddr; 8]>(), b);
                };
                if n < 8 {
                    let a = core::ptr::read_unaligned(src.cast::<[VirtAddr; 4]>());
                    let b = core::ptr::read_unaligned(src.add(n - 4).cast::<[VirtAddr; 4]>());
                    core::ptr::write_unaligned(dst.cast(), a);
                    core::ptr::write_unaligned(dst.add(n - 4).cast(), b);
                } else {
                    let mut i = 0;
                    while i + 8 <= n {
                        cp(i);
                        i += 8;
                    }
                    if i != n {
                        cp(n - 8);
                    }
                }
            }
        }
        true
    }

    /// Put all of `objs` through the cache.
    ///
    /// # Safety
    /// The calling thread must be the cache's only user right now (type docs).
    #[inline(always)]
    pub unsafe fn put<B: BulkBackend + ?Sized>(
        &self,
        backend: &B,
        objs: &[VirtAddr],
    ) -> PutOutcome {
        // SAFETY: forwarded.
        if unsafe { self.try_put_cached(objs) } {
            PutOutcome::Cached
        } else {
            // SAFETY: forwarded.
            unsafe { self.put_slow(backend, objs) }
        }
    }

    /// [`CacheShared::put`] when the objects do not simply fit: flush first, or bypass the
    /// cache for a bulk larger than its size.
    ///
    /// # Safety
    /// As [`CacheShared::put`].
    #[cold]
    #[inline(never)]
    pub unsafe fn put_slow<B: BulkBackend + ?Sized>(
        &self,
        backend: &B,
        objs: &[VirtAddr],
    ) -> PutOutcome {
        let n = objs.len();
        let size = self.size as usize;
        if n > size {
            return if backend.enqueue(objs) {
                PutOutcome::Direct
            } else {
                PutOutcome::Fail
            };
        }
        let mut len = self.len.load(Relaxed) as usize;
        let slots = self.slots();
        let mut outcome = PutOutcome::Cached;
        if len + n > self.flush_threshold as usize {
            // len > size / 2 here (n <= size), so at least one object is flushed.
            let keep = size / 2;
            let flush = len - keep;
            // SAFETY: flush <= len <= CACHE_OBJS; single owner.
            let cold = unsafe { core::slice::from_raw_parts(slots, flush) };
            if !backend.enqueue(cold) {
                return PutOutcome::Fail;
            }
            // SAFETY: both ranges lie within 0..len; `copy` handles the overlap.
            unsafe { core::ptr::copy(slots.add(flush), slots, keep) };
            len = keep;
            outcome = PutOutcome::Flushed {
                flushed: flush as u32,
            };
        }
        // An element loop, not `copy_nonoverlapping`: bulks are small and a `memcpy` call
        // costs more than the copy.
        for (i, &o) in objs.iter().enumerate() {
            // SAFETY: len + n <= flush_threshold <= CACHE_OBJS (module invariant); the
            // source is the caller's slice, which cannot alias the cache's private array.
            unsafe { *slots.add(len + i) = o };
        }
        self.len.store((len + n) as u32, Relaxed);
        outcome
    }

    /// Move every cached object to the backend. False (and nothing moved) if it refused.
    ///
    /// # Safety
    /// The calling thread must be the cache's only user right now (type docs).
    pub unsafe fn drain<B: BulkBackend + ?Sized>(&self, backend: &B) -> bool {
        let len = self.len.load(Relaxed) as usize;
        if len == 0 {
            return true;
        }
        // SAFETY: 0..len are initialised slots; single owner.
        let all = unsafe { core::slice::from_raw_parts(self.slots(), len) };
        if backend.enqueue(all) {
            self.len.store(0, Relaxed);
            true
        } else {
            false
        }
    }

    /// Call `f` on each cached object (bottom to top).
    ///
    /// # Safety
    /// The calling thread must be the cache's only user right now, or the pool must be
    /// quiescent (no thread using this cache).
    pub unsafe fn for_each(&self, mut f: impl FnMut(VirtAddr)) {
        let len = self.len.load(Relaxed) as usize;
        for i in 0..len {
            // SAFETY: i < len <= CACHE_OBJS.
            f(unsafe { *self.slots().add(i) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A backend on the heap: a Vec used as a LIFO, with a capacity.
    struct VecBackend {
        objs: RefCell<Vec<VirtAddr>>,
        cap: usize,
        enq_calls: RefCell<u32>,
        deq_calls: RefCell<u32>,
    }

    impl VecBackend {
        fn new(n: u64) -> Self {
            VecBackend {
                objs: RefCell::new((1..=n).map(|i| VirtAddr(i * 64)).collect()),
                cap: n as usize,
                enq_calls: RefCell::new(0),
                deq_calls: RefCell::new(0),
            }
        }
        fn count(&self) -> usize {
            self.objs.borrow().len()
        }
    }

    impl BulkBackend for VecBackend {
        fn enqueue(&self, objs: &[VirtAddr]) -> bool {
            *self.enq_calls.borrow_mut() += 1;
            let mut v = self.objs.borrow_mut();
            if v.len() + objs.len() > self.cap {
                return false;
            }
            v.extend_from_slice(objs);
            true
        }
        fn dequeue(&self, out: &mut [VirtAddr]) -> bool {
            *self.deq_calls.borrow_mut() += 1;
            let mut v = self.objs.borrow_mut();
            if v.len() < out.len() {
                return false;
            }
            let at = v.len() - out.len();
            out.copy_from_slice(&v[at..]);
            v.truncate(at);
            true
        }
    }

    fn assert_unique(all: impl IntoIterator<Item = VirtAddr>, n: u64) {
        let mut seen = vec![false; n as usize + 1];
        let mut count = 0;
        for a in all {
            let i = (a.0 / 64) as usize;
            assert!(i >= 1 && i <= n as usize, "bogus object {a:?}");
            assert!(!seen[i], "object {a:?} twice");
            seen[i] = true;
            count += 1;
        }
        assert_eq!(count, n as usize, "objects lost");
    }

    #[test]
    fn hit_miss_refill_flush() {
        let b = VecBackend::new(1000);
        let c = CacheShared::new_boxed(64, VirtAddr(0));
        assert_eq!(c.flush_threshold(), 96);
        let mut out = [VirtAddr(0); 8];
        // SAFETY: this thread is the cache's only user.
        unsafe {
            // empty cache: refill with 32 + 8, hand out 8, keep 32
            assert_eq!(c.get(&b, &mut out), GetOutcome::Refill { refill: 40 });
            assert_eq!(c.len(), 32);
            assert_eq!(b.count(), 960);
            // hit
            let mut one = [VirtAddr(0); 1];
            assert_eq!(c.get(&b, &mut one), GetOutcome::Hit);
            assert_eq!(c.len(), 31);
            // put back 9: 40 cached
            assert_eq!(c.put(&b, &out), PutOutcome::Cached);
            assert_eq!(c.put(&b, &one), PutOutcome::Cached);
            assert_eq!(c.len(), 40);
            // LIFO: the last put comes out first
            let last = one[0];
            one[0] = VirtAddr(0);
            assert_eq!(c.get(&b, &mut one), GetOutcome::Hit);
            assert_eq!(one[0], last);
            let mut two = [VirtAddr(0); 2];
            assert_eq!(c.get(&b, &mut two), GetOutcome::Hit);
            assert_eq!(two, [out[7], out[6]]);
            c.put(&b, &[two[1], two[0], one[0]]);
        }
        // Fill to the threshold, then one more put flushes down to size/2.
        let mut held: Vec<VirtAddr> = vec![VirtAddr(0); 56];
        // SAFETY: single user.
        unsafe {
            // 40 from the cache, then a refill of 32 + 16; half the cache stays
            assert_eq!(c.get(&b, &mut held), GetOutcome::Refill { refill: 48 });
            assert_eq!(c.len(), 32);
            let mut more = vec![VirtAddr(0); 40];
            assert_eq!(c.get(&b, &mut more), GetOutcome::Refill { refill: 40 });
            assert_eq!(c.len(), 32);
            held.extend_from_slice(&more);
            // put 64 -> 96 == threshold: still cached
            assert_eq!(c.put(&b, &held[..64]), PutOutcome::Cached);
            assert_eq!(c.len(), 96);
            // one more: flush 96 - 32 = 64 coldest, then add 1
            let deq_before = *b.enq_calls.borrow();
            assert_eq!(
                c.put(&b, &held[64..65]),
                PutOutcome::Flushed { flushed: 64 }
            );
            assert_eq!(*b.enq_calls.borrow(), deq_before + 1);
            assert_eq!(c.len(), 33);
            // the hottest stayed: the top is the object just put, then the last of the 64
            let mut top = [VirtAddr(0); 2];
            assert_eq!(c.get(&b, &mut top), GetOutcome::Hit);
            assert_eq!(top, [held[64], held[63]]);
            c.put(&b, &top);
            c.put(&b, &held[65..]);
            assert!(c.drain(&b));
        }
        assert_eq!(c.len(), 0);
        assert_unique(b.objs.borrow().iter().copied(), 1000);
    }

    #[test]
    fn every_small_bulk_copies_exactly() {
        // The hit and put copies special-case n <= 2 and n <= 4 (overlapping moves), 5-7
        // (two overlapping halves) and move larger bulks in blocks of eight, the last one
        // overlapping: check every size up to the cache size for order and for the slots
        // around them.
        for n in 0..=64usize {
            let b = VecBackend::new(0);
            let c = CacheShared::new_boxed(64, VirtAddr(0));
            let base: Vec<VirtAddr> = (1..=5).map(|i| VirtAddr(i * 8)).collect();
            let objs: Vec<VirtAddr> = (0..n as u64).map(|i| VirtAddr(0x1000 + i * 8)).collect();
            // SAFETY: this test thread is the cache's only user.
            unsafe {
                assert!(c.try_put_cached(&base));
                assert!(c.try_put_cached(&objs), "put {n}");
                assert_eq!(c.len() as usize, 5 + n);
                let mut all = Vec::new();
                c.for_each(|o| all.push(o));
                let want: Vec<VirtAddr> = base.iter().chain(objs.iter()).copied().collect();
                assert_eq!(all, want, "cache after put {n}");
                let mut out = vec![VirtAddr(1); n + 1];
                assert!(c.try_get_hit(&mut out[..n]), "get {n}");
                let rev: Vec<VirtAddr> = objs.iter().rev().copied().collect();
                assert_eq!(&out[..n], &rev[..], "get {n} order");
                assert_eq!(out[n], VirtAddr(1), "get {n} wrote past its slice");
                assert_eq!(c.len(), 5);
                let mut top = [VirtAddr(0); 5];
                assert_eq!(c.get(&b, &mut top), GetOutcome::Hit);
                assert_eq!(top.to_vec(), base.iter().rev().copied().collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn big_requests_bypass_and_failure_rolls_back() {
        let b = VecBackend::new(100);
        let c = CacheShared::new_boxed(16, VirtAddr(0));
        let mut big = vec![VirtAddr(0); 40];
        // SAFETY: single user.
        unsafe {
            assert_eq!(c.get(&b, &mut big), GetOutcome::Direct { direct: 40 });
            assert_eq!(c.len(), 0);
            assert_eq!(c.put(&b, &big), PutOutcome::Direct);
            let mut five = [VirtAddr(0); 5];
            assert_eq!(c.get(&b, &mut five), GetOutcome::Refill { refill: 13 });
            assert_eq!(c.len(), 8);
            // ask for more than exist: nothing taken, cache unchanged
            let before: Vec<VirtAddr> = {
                let mut v = Vec::new();
                c.for_each(|o| v.push(o));
                v
            };
            let mut huge = vec![VirtAddr(0); 200];
            assert_eq!(c.get(&b, &mut huge), GetOutcome::Fail);
            let mut after = Vec::new();
            c.for_each(|o| after.push(o));
            assert_eq!(before, after);
            assert_eq!(b.count(), 87);
            // refill too big for what is left, but the direct path has enough
            let mut rest = vec![VirtAddr(0); 8 + 85];
            assert_eq!(c.get(&b, &mut rest), GetOutcome::Direct { direct: 85 });
            assert_eq!(b.count(), 2);
            c.put(&b, &rest);
            c.put(&b, &five);
            assert!(c.drain(&b));
        }
        assert_unique(b.objs.borrow().iter().copied(), 100);
    }

    #[test]
    fn random_ops_keep_every_object() {
        // Deterministic pseudo-random get/put sizes; every object accounted for at the end.
        let n = 700u64;
        let b = VecBackend::new(n);
        for size in [1u32, 2, 7, 64, 512] {
            let c = CacheShared::new_boxed(size, VirtAddr(0));
            let mut held: Vec<VirtAddr> = Vec::new();
            let mut x = 0x1234_5678u32 ^ size;
            for _ in 0..3000 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let k = (x % 70) as usize + 1;
                if x & 0x100 != 0 {
                    let mut out = vec![VirtAddr(0); k];
                    // SAFETY: single user.
                    if unsafe { c.get(&b, &mut out) } != GetOutcome::Fail {
                        held.extend_from_slice(&out);
                    }
                } else if held.len() >= k {
                    let at = held.len() - k;
                    // SAFETY: single user.
                    assert_ne!(unsafe { c.put(&b, &held[at..]) }, PutOutcome::Fail);
                    held.truncate(at);
                }
                assert!(c.len() <= c.flush_threshold().max(1));
                assert_eq!(held.len() + c.len() as usize + b.count(), n as usize);
            }
            // SAFETY: single user.
            unsafe {
                c.put(&b, &held);
                assert!(c.drain(&b));
            }
            assert_unique(b.objs.borrow().iter().copied(), n);
        }
    }
}
