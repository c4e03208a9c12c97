//! The slot array and the element copies in and out of it (DPDK's
//! `rte_ring_elem_pvt.h` copy routines): at most two runs per operation, split at the
//! wrap, plain copies by default and 8-byte atomic words on a ring with optimistic
//! consumers.

use core::mem::size_of;
use core::ptr::{self, NonNull};

use crate::primitive::{Ordering, SlotTracker};
// Slots of an optimistic ring are accessed as plain std atomics on raw memory (loom does
// not model them; its models cover the head/tail words, and `SlotTracker` the slots).
use std::sync::atomic::AtomicU64 as StdAtomicU64;

/// Slot copy kinds for [`SlotArray::write`]: follow the ring (atomic words if its
/// consumers are optimistic), or fixed by a typed handle that knows.
pub(crate) const SLOTS_BY_RING: u8 = 0;
pub(crate) const SLOTS_PLAIN: u8 = 1;
pub(crate) const SLOTS_ATOMIC: u8 = 2;

/// The slot array of one ring: `size` (a power of two) elements of `T` right after the
/// header. Positions are free-running; `pos & mask` is the index.
pub(crate) struct SlotArray<T> {
    ptr: NonNull<T>,
    pub size: u32,
    pub mask: u32,
    /// Every slot access is an 8-byte atomic (`MC_OPT_DEQ`; `T` is one padding-free
    /// word, checked at creation and vouched for by the constructor's caller).
    atomic: bool,
    pub tracker: SlotTracker,
}

impl<T> Clone for SlotArray<T> {
    fn clone(&self) -> Self {
        SlotArray {
            ptr: self.ptr,
            size: self.size,
            mask: self.mask,
            atomic: self.atomic,
            #[allow(clippy::clone_on_copy)] // Copy only outside loom
            tracker: self.tracker.clone(),
        }
    }
}

/// Whether `T` has the shape an optimistic consumer needs: one 8-byte, 8-aligned word.
/// (That it has no padding is the `unsafe` constructors' contract.)
pub(crate) const fn is_word<T>() -> bool {
    size_of::<T>() == 8 && core::mem::align_of::<T>() == 8
}

impl<T: Copy> SlotArray<T> {
    /// # Safety
    /// `ptr` points to `size` slots of `T` that stay valid while the array is used;
    /// `size` is a power of two; if `atomic`, `T` is one padding-free 8-byte word.
    pub(crate) unsafe fn new(ptr: NonNull<T>, size: u32, atomic: bool) -> Self {
        SlotArray {
            ptr,
            size,
            mask: size - 1,
            atomic: atomic && is_word::<T>(),
            tracker: SlotTracker::new(size),
        }
    }

    /// Write `n` values from `src` to positions `head..head+n`.
    ///
    /// # Safety
    /// Slots `head..head+n` are claimed by the caller for writing (`n` <= capacity <
    /// size); `src` holds `n` values; with `SLOTS_ATOMIC`, the array is atomic.
    #[inline(always)]
    pub(crate) unsafe fn write<const KIND: u8>(&self, head: u32, src: *const T, n: u32) {
        let idx = head & self.mask;
        let atomic = match KIND {
            SLOTS_PLAIN => false,
            SLOTS_ATOMIC => true,
            _ => self.atomic,
        };
        if is_word::<T>() && atomic {
            // SAFETY: forwarded (same claim); the array is atomic, so `T` is a
            // padding-free 8-byte word.
            unsafe { self.write_atomic(idx, src, n) };
            return;
        }
        self.tracker.write(idx, n);
        let dst = self.ptr.as_ptr();
        // SAFETY: idx < size; if idx + n <= size the run is inside the slot array,
        // otherwise it splits into idx..size and 0..n-first (n <= capacity < size); the
        // claim makes these slots ours; `src` is caller memory holding n values, which
        // cannot overlap slots we own.
        unsafe {
            // `mask + 1` (== size) in usize rather than `size`: the compiler knows
            // `idx <= mask` and nothing overflows, so a constant `n == 1` (single-object
            // calls) compiles to no wrap check at all.
            if idx as usize + n as usize <= self.mask as usize + 1 {
                copy_run(src, dst.add(idx as usize), n as usize);
            } else {
                let first = (self.size - idx) as usize;
                copy_run(src, dst.add(idx as usize), first);
                copy_run(src.add(first), dst, n as usize - first);
            }
        }
    }

    /// Read positions `head..head+n` into `dst`.
    ///
    /// # Safety
    /// Slots `head..head+n` are claimed by the caller for reading and were published by
    /// producers; `dst` has room for `n` values.
    #[inline(always)]
    pub(crate) unsafe fn read(&self, head: u32, dst: *mut T, n: u32) {
        let idx = head & self.mask;
        self.tracker.read(idx, n);
        let src = self.ptr.as_ptr();
        // SAFETY: as in `write`, with the roles reversed.
        unsafe {
            if idx as usize + n as usize <= self.mask as usize + 1 {
                copy_run(src.add(idx as usize), dst, n as usize);
            } else {
                let first = (self.size - idx) as usize;
                copy_run(src.add(idx as usize), dst, first);
                copy_run(src, dst.add(first), n as usize - first);
            }
        }
    }

    /// One slot of an atomic array as a word, loaded with a relaxed atomic load.
    ///
    /// # Safety
    /// The array is atomic (so `T` is one 8-byte word and every access to a slot is
    /// atomic); the slot at `pos` was written at least once (it is before the producer
    /// tail as the caller saw it).
    #[inline(always)]
    pub(crate) unsafe fn load_word(&self, pos: u32) -> u64 {
        let base = self.ptr.as_ptr().cast::<u64>();
        // SAFETY: masked, so inside the 8-aligned slot array; every access to a slot of
        // an atomic array is atomic (`write_atomic`), so racing with a producer of the
        // next lap is defined (the caller throws such a copy away).
        unsafe {
            StdAtomicU64::from_ptr(base.add((pos & self.mask) as usize)).load(Ordering::Relaxed)
        }
    }

    /// Slot copies of an atomic array, one 8-byte atomic store per element: a consumer
    /// that is about to lose its CAS may be reading the same slot (it read it one lap
    /// ago), and only atomic accesses make that race defined. Split at the wrap like
    /// `write`; each run goes four elements per step, as `copy_run` does.
    ///
    /// # Safety
    /// As [`SlotArray::write`] (`idx` already masked); `T` is an 8-byte, 8-aligned type
    /// without padding.
    #[inline(always)]
    unsafe fn write_atomic(&self, idx: u32, src: *const T, n: u32) {
        let base = self.ptr.as_ptr().cast::<u64>();
        let src = src.cast::<u64>();
        let (idx, n) = (idx as usize, n as usize);
        if n == 1 {
            // SAFETY: as below, for the one slot `idx < size`.
            unsafe { StdAtomicU64::from_ptr(base.add(idx)).store(src.read(), Ordering::Relaxed) };
            return;
        }
        // SAFETY: `src` holds n values of T, each one initialised u64 (no padding, the
        // caller's contract); idx < size, and the runs idx..idx+first and 0..n-first
        // (n <= capacity < size) stay inside the 8-aligned slot array; the claim makes
        // these slots ours to write, and every other access to them is atomic too.
        unsafe {
            let store = |s: *const u64, d: *mut u64| {
                StdAtomicU64::from_ptr(d).store(s.read(), Ordering::Relaxed)
            };
            if idx + n <= self.mask as usize + 1 {
                copy_words(src, base.add(idx), n, store);
            } else {
                let first = self.mask as usize + 1 - idx;
                copy_words(src, base.add(idx), first, store);
                copy_words(src.add(first), base, n - first, store);
            }
        }
    }

    /// The two slot runs `head..head+n` (split at the wrap) as raw parts, for zero-copy.
    pub(crate) fn runs(&self, head: u32, n: u32) -> ((*mut T, usize), (*mut T, usize)) {
        let idx = head & self.mask;
        let first = n.min(self.size - idx);
        // SAFETY: idx < size, so the offset stays inside the slot array.
        let p1 = unsafe { self.ptr.as_ptr().add(idx as usize) };
        (
            (p1, first as usize),
            (self.ptr.as_ptr(), (n - first) as usize),
        )
    }
}

/// Copy `n` elements. Short runs (up to 256 bytes, the common burst sizes) of elements of
/// at most 8 bytes (pointers: mempools, mbuf rings) are copied one element at a time with
/// volatile accesses, which pins them to plain element-sized loads and stores in order:
/// the compiler otherwise merges them into 16-byte vector moves, and with the slots'
/// lines moving between cores those measured 20-25% slower than DPDK's scalar copy in a
/// two-core MP/MC get/put loop (same process, alternating with DPDK's ring). Short runs of
/// larger elements go in blocks of four elements and a 0..=3 element rest, fixed-size
/// copies the compiler turns into vector moves (a volatile access of a 16-byte element
/// is split badly). Long runs use one `copy_nonoverlapping`.
///
/// # Safety
/// `src` is valid for `n` reads, `dst` for `n` writes, and they do not overlap.
#[inline(always)]
unsafe fn copy_run<T: Copy>(src: *const T, dst: *mut T, n: usize) {
    // SAFETY: forwarded from the caller; every block below lies inside 0..n.
    unsafe {
        if n == 1 {
            dst.write(src.read());
        } else if size_of::<T>() <= 8 && n * size_of::<T>() <= 256 {
            // Four per step and a 0..=3 rest, as DPDK's 64-bit element copy does: a run of
            // four (a common burst) is one straight block with no per-element branch.
            // (The same shape as `copy_words`, written out: this is the form measured.)
            let one = |i: usize| dst.add(i).write_volatile(src.add(i).read_volatile());
            let blocks = n & !3;
            let mut i = 0;
            while i < blocks {
                one(i);
                one(i + 1);
                one(i + 2);
                one(i + 3);
                i += 4;
            }
            match n & 3 {
                3 => {
                    one(i);
                    one(i + 1);
                    one(i + 2);
                }
                2 => {
                    one(i);
                    one(i + 1);
                }
                1 => one(i),
                _ => {}
            }
        } else if n * size_of::<T>() <= 256 {
            let blocks = n & !3;
            let mut i = 0;
            while i < blocks {
                ptr::copy_nonoverlapping(src.add(i), dst.add(i), 4);
                i += 4;
            }
            match n & 3 {
                3 => ptr::copy_nonoverlapping(src.add(i), dst.add(i), 3),
                2 => ptr::copy_nonoverlapping(src.add(i), dst.add(i), 2),
                1 => ptr::copy_nonoverlapping(src.add(i), dst.add(i), 1),
                _ => {}
            }
        } else {
            ptr::copy_nonoverlapping(src, dst, n);
        }
    }
}

/// `n` 8-byte words from `src` to `dst`, one `one(src_i, dst_i)` per word, four per step
/// and a rest of 0..=3 (the shape of `copy_run`'s pointer-sized path; `one` does the
/// atomic side of an atomic array's slot copy).
///
/// # Safety
/// `one` is sound for every `(src.add(i), dst.add(i))` with `i < n`.
#[inline(always)]
unsafe fn copy_words(
    src: *const u64,
    dst: *mut u64,
    n: usize,
    one: impl Fn(*const u64, *mut u64) + Copy,
) {
    let at = |i: usize| {
        // SAFETY: every call below has i < n, inside both runs by the caller's contract.
        let (s, d) = unsafe { (src.add(i), dst.add(i)) };
        one(s, d)
    };
    let blocks = n & !3;
    let mut i = 0;
    while i < blocks {
        at(i);
        at(i + 1);
        at(i + 2);
        at(i + 3);
        i += 4;
    }
    match n & 3 {
        3 => {
            at(i);
            at(i + 1);
            at(i + 2);
        }
        2 => {
            at(i);
            at(i + 1);
        }
        1 => at(i),
        _ => {}
    }
}
