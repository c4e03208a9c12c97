//! The ring handle and its enqueue/dequeue paths.

use core::marker::PhantomData;
use core::mem::{size_of, MaybeUninit};
use core::ptr::{self, NonNull};
use std::io::{self, Write};

use crate::flags::{sync_modes, RingFlags, SyncMode};
use crate::layout::{
    cons_at, geometry, lo, memsize_for, pack, pos, HeadTail, RingHeader, LAYOUT_VERSION, MAGIC,
    MAX_ELEM_SIZE, NAME_MAX, NO_CACHE, PROD_AT, RING_ALIGN,
};
use crate::primitive::{spin_loop, AtomicU32, AtomicU64, Ordering, SlotTracker};
use crate::{Error, Result};
// Slots of an optimistic ring are accessed as plain std atomics on raw memory (loom does
// not model them; its models cover the head/tail words).
use std::sync::atomic::AtomicU64 as StdAtomicU64;

/// Outcome of an enqueue: how many objects went in and how much room is left after them.
///
/// `free_space` is a snapshot and a lower bound: consumers may have freed more since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// Objects enqueued (bulk: 0 or all; burst: 0..=asked).
    pub n: u32,
    /// Free slots after this enqueue, as seen by it.
    pub free_space: u32,
}

/// Outcome of a dequeue: how many objects came out and how many are left behind them.
///
/// `available` is a snapshot and a lower bound: producers may have added more since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dequeued {
    /// Objects dequeued (bulk: 0 or all; burst: 0..=asked).
    pub n: u32,
    /// Entries left after this dequeue, as seen by it.
    pub available: u32,
}

/// Where the ring's memory came from, and what keeps it alive.
#[allow(dead_code)] // fields only keep things alive
pub(crate) enum Backing {
    /// Caller-owned memory ([`Ring::init_in`], [`Ring::attach`]); the caller keeps it alive.
    Caller,
    /// An EAL memzone; the EAL handle (an `Arc` inside) keeps the memory mapped.
    Memzone { eal: eal::Eal, mz: eal::Memzone },
}

/// A handle to a fixed-size FIFO of `T` in memory it does not own (see the crate docs
/// for the contracts). Cheap to clone; every clone addresses the same ring.
pub struct Ring<T: Copy = usize> {
    hdr: NonNull<RingHeader>,
    /// The consumer side inside the header (where depends on `ONE_LINE`).
    cons: NonNull<HeadTail>,
    slots: NonNull<T>,
    // Copies of the read-only geometry, so the hot paths do not touch the header line.
    size: u32,
    mask: u32,
    capacity: u32,
    prod_mode: SyncMode,
    cons_mode: SyncMode,
    tracker: SlotTracker,
    pub(crate) backing: std::sync::Arc<Backing>,
    _t: PhantomData<T>,
}

// SAFETY: the handle is a pointer to shared memory whose mutable state is only touched
// through atomics (head/tail) or through slot ranges that the head/tail protocol hands
// to exactly one thread at a time; elements move between threads, hence `T: Send`.
unsafe impl<T: Copy + Send> Send for Ring<T> {}
// SAFETY: as above; every method takes `&self` and is safe to call concurrently within
// the sync-mode contract accepted when the handle was made (`create`/`init_in`/`lookup`).
unsafe impl<T: Copy + Send> Sync for Ring<T> {}

impl<T: Copy> Clone for Ring<T> {
    fn clone(&self) -> Self {
        Ring {
            hdr: self.hdr,
            cons: self.cons,
            slots: self.slots,
            size: self.size,
            mask: self.mask,
            capacity: self.capacity,
            prod_mode: self.prod_mode,
            cons_mode: self.cons_mode,
            #[allow(clippy::clone_on_copy)] // Copy only outside loom
            tracker: self.tracker.clone(),
            backing: self.backing.clone(),
            _t: PhantomData,
        }
    }
}

/// Bulk (all or nothing) or burst (as many as fit).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Behavior {
    Bulk,
    Burst,
}

/// A successful head move: `n` slots from `old` belong to the caller.
#[derive(Clone, Copy)]
struct Claim {
    old: u32,
    n: u32,
    /// Free slots (producer) or entries (consumer) seen before the claim.
    avail: u32,
}

#[inline(always)]
fn take(avail: u32, n: u32, b: Behavior) -> u32 {
    if n <= avail {
        n
    } else if b == Behavior::Bulk {
        0
    } else {
        avail
    }
}

#[inline(always)]
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl<T: Copy> Ring<T> {
    const ELEM_OK: () = assert!(
        size_of::<T>() > 0
            && size_of::<T>() <= MAX_ELEM_SIZE
            && core::mem::align_of::<T>() <= RING_ALIGN,
        "ring elements must be 1..=128 bytes"
    );
    /// Whether `T` has the shape an optimistic consumer needs: one 8-byte, 8-aligned word.
    /// (That it has no padding is the `unsafe` constructors' contract.)
    const WORD: bool = size_of::<T>() == 8 && core::mem::align_of::<T>() == 8;

    /// Refuse `MC_OPT_DEQ` for elements that are not one aligned 8-byte word.
    fn check_opt(flags: RingFlags) -> Result<()> {
        if flags.contains(RingFlags::MC_OPT_DEQ) && !Self::WORD {
            return Err(Error::BadFlags {
                flags: flags.bits(),
                why: "MC_OPT_DEQ needs 8-byte, 8-aligned elements",
            });
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------
    // Construction
    // ------------------------------------------------------------------------------

    /// Bytes needed for a ring of `count` elements of `T` with `flags`
    /// (header plus slots, a multiple of [`RING_ALIGN`](crate::RING_ALIGN)).
    pub fn memsize(count: u32, flags: RingFlags) -> Result<usize> {
        #[allow(clippy::let_unit_value)]
        let () = Self::ELEM_OK;
        let g = geometry(count, flags.contains(RingFlags::EXACT_SZ))?;
        memsize_for(g.size, size_of::<T>()).ok_or(Error::TooLarge {
            count,
            size: u64::from(g.size),
            max: crate::RING_SZ_MASK,
        })
    }

    /// Lay a new, empty ring out in caller-owned memory and return a handle to it.
    ///
    /// `mem` must be aligned to [`RING_ALIGN`](crate::RING_ALIGN) (128) and `len` at least
    /// [`Ring::memsize`]; both are checked and refused with [`Error::BadMemory`].
    ///
    /// # Safety
    /// - `mem..mem+len` is valid for reads and writes, not used by anything else (no other
    ///   ring, no live references), and stays valid for as long as this handle or any
    ///   clone, or any handle from [`Ring::attach`] on it, is used;
    /// - if `flags` make a side single (`SP_ENQ`, `SC_DEQ`), at most one thread at a time
    ///   (over all processes and handles) enqueues (resp. dequeues), whatever entry point it
    ///   uses;
    /// - with `MC_OPT_DEQ`, `T` has no padding or other uninitialised bytes (its size and
    ///   alignment, 8 and 8, are checked): slots are copied as whole `u64` words.
    pub unsafe fn init_in(
        mem: *mut u8,
        len: usize,
        name: &str,
        count: u32,
        flags: RingFlags,
    ) -> Result<Ring<T>> {
        check_name(name)?;
        let need = Self::memsize(count, flags)?;
        let (prod_mode, cons_mode) = sync_modes(flags, flags.bits())?;
        Self::check_opt(flags)?;
        let g = geometry(count, flags.contains(RingFlags::EXACT_SZ))?;
        check_mem(mem, len, need)?;
        let mut name_buf = [0u8; 32];
        name_buf[..name.len()].copy_from_slice(name.as_bytes());
        let cons = cons_at(flags.contains(RingFlags::ONE_LINE));
        let side = |i: usize| {
            let (mode, used) = match i {
                PROD_AT => (prod_mode, true),
                _ if i == cons => (cons_mode, true),
                _ => (SyncMode::Multi, false),
            };
            HeadTail {
                head: AtomicU64::new(0),
                tail: AtomicU64::new(0),
                cached: AtomicU64::new(if used { NO_CACHE } else { 0 }),
                // DPDK's default: an eighth of the capacity (rte_ring_rts.h, HTD_MAX_DEF).
                htd_max: AtomicU32::new(if used { (g.capacity / 8).max(1) } else { 0 }),
                sync: mode as u32,
            }
        };
        let hdr = RingHeader {
            magic: MAGIC,
            version: LAYOUT_VERSION,
            flags: flags.bits(),
            name: name_buf,
            size: g.size,
            mask: g.mask,
            capacity: g.capacity,
            elem_size: size_of::<T>() as u32,
            memsize: need as u64,
            _gap: [0; 7],
            sync: core::array::from_fn(side),
        };
        // SAFETY: `check_mem` proved `mem` non-null, 128-aligned and at least `need` >=
        // size_of::<RingHeader>() bytes long; the caller guarantees it is writable and
        // unaliased. The slots stay uninitialised until producers write them.
        unsafe { ptr::write(mem.cast::<RingHeader>(), hdr) };
        // SAFETY: just initialised above, same preconditions.
        unsafe { Self::from_initialised(mem, len, Backing::Caller) }
    }

    /// Attach to a ring that [`Ring::init_in`] (or `create`) laid out at `mem`, verifying
    /// magic, layout version, element size and that it fits in `len` bytes.
    ///
    /// # Safety
    /// `mem..mem+len` is valid for reads and writes and stays valid while the handle is
    /// used; the ring there was created for this same `T` (an element-size match does not
    /// prove it); the single-side contract of [`Ring::init_in`] holds.
    pub unsafe fn attach(mem: *mut u8, len: usize) -> Result<Ring<T>> {
        // SAFETY: forwarded to the caller.
        unsafe { Self::from_initialised(mem, len, Backing::Caller) }
    }

    /// # Safety
    /// As [`Ring::attach`].
    pub(crate) unsafe fn from_initialised(
        mem: *mut u8,
        len: usize,
        backing: Backing,
    ) -> Result<Ring<T>> {
        #[allow(clippy::let_unit_value)]
        let () = Self::ELEM_OK;
        check_mem(mem, len, size_of::<RingHeader>())?;
        let hdr_ptr = mem.cast::<RingHeader>();
        // SAFETY: `mem` is aligned and holds at least a header (checked); the metadata
        // fields are plain integers written once before the ring was published.
        let h = unsafe { &*hdr_ptr };
        let name = String::from_utf8_lossy(name_bytes(&h.name)).into_owned();
        if h.magic != MAGIC {
            return Err(Error::BadMagic {
                name,
                found: h.magic,
            });
        }
        if h.version != LAYOUT_VERSION {
            return Err(Error::BadVersion {
                name,
                found: h.version,
                expected: LAYOUT_VERSION,
            });
        }
        if h.elem_size != size_of::<T>() as u32 {
            return Err(Error::ElemSizeMismatch {
                name,
                found: h.elem_size,
                expected: size_of::<T>() as u32,
            });
        }
        let bad = |why| Error::BadMemory {
            addr: mem as usize,
            len,
            why,
        };
        let Some(flags) = RingFlags::from_bits(h.flags) else {
            return Err(bad("corrupt ring header: unknown flag bits"));
        };
        Self::check_opt(flags)?;
        let cons_i = cons_at(flags.contains(RingFlags::ONE_LINE));
        let (Some(pm), Some(cm)) = (
            SyncMode::from_u32(h.sync[PROD_AT].sync),
            SyncMode::from_u32(h.sync[cons_i].sync),
        ) else {
            return Err(bad("corrupt ring header: unknown sync mode"));
        };
        if !h.size.is_power_of_two()
            || h.mask != h.size - 1
            || h.capacity > h.mask
            || h.size > crate::RING_SZ_MASK
        {
            return Err(bad("corrupt ring header: inconsistent size/mask/capacity"));
        }
        match memsize_for(h.size, size_of::<T>()) {
            Some(need) if need <= len && need as u64 == h.memsize => {}
            _ => return Err(bad("memory smaller than the ring it holds")),
        }
        // SAFETY: the slot array starts right after the header, inside `len` (checked).
        let slots = unsafe { mem.add(size_of::<RingHeader>()) }.cast::<T>();
        Ok(Ring {
            // SAFETY: `mem` is non-null (checked by check_mem).
            hdr: unsafe { NonNull::new_unchecked(hdr_ptr) },
            cons: NonNull::from(&h.sync[cons_i]),
            // SAFETY: derived from a non-null pointer by an in-bounds offset.
            slots: unsafe { NonNull::new_unchecked(slots) },
            size: h.size,
            mask: h.mask,
            capacity: h.capacity,
            prod_mode: pm,
            cons_mode: cm,
            tracker: SlotTracker::new(h.size),
            backing: std::sync::Arc::new(backing),
            _t: PhantomData,
        })
    }

    // ------------------------------------------------------------------------------
    // Accessors
    // ------------------------------------------------------------------------------

    #[inline(always)]
    fn hdr(&self) -> &RingHeader {
        // SAFETY: the handle's constructor verified the header; the memory outlives the
        // handle (constructor contract); all mutable fields are atomics.
        unsafe { self.hdr.as_ref() }
    }

    #[inline(always)]
    fn prod(&self) -> &HeadTail {
        &self.hdr().sync[PROD_AT]
    }

    #[inline(always)]
    fn cons(&self) -> &HeadTail {
        // SAFETY: points into the verified header (set by the constructor from the
        // header's own flags), which outlives the handle like `hdr`.
        unsafe { self.cons.as_ref() }
    }

    /// The ring's name.
    pub fn name(&self) -> String {
        String::from_utf8_lossy(name_bytes(&self.hdr().name)).into_owned()
    }

    /// Flags given at creation.
    pub fn flags(&self) -> RingFlags {
        RingFlags::from_bits_retain(self.hdr().flags)
    }

    /// Producer sync mode.
    pub fn prod_sync(&self) -> SyncMode {
        self.prod_mode
    }

    /// Consumer sync mode.
    pub fn cons_sync(&self) -> SyncMode {
        self.cons_mode
    }

    /// Usable slots (what [`Ring::count`] reaches when full).
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Slot array length (a power of two, > capacity).
    #[inline]
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Address of the ring's memory (the header).
    pub fn as_ptr(&self) -> *const u8 {
        self.hdr.as_ptr().cast()
    }

    /// Entries in the ring now (a snapshot).
    #[inline]
    pub fn count(&self) -> u32 {
        // A6: pairs with R1 on the consumer side: the consumer acquired a producer tail at
        // least this far before releasing it, so the producer tail we load next is not
        // older and the difference cannot underflow.
        let c = pos(self.cons().tail.load(Ordering::Acquire));
        // Relaxed: a snapshot; no slot is accessed on the strength of it.
        let p = pos(self.prod().tail.load(Ordering::Relaxed));
        p.wrapping_sub(c).min(self.capacity)
    }

    /// Free slots now (a snapshot).
    #[inline]
    pub fn free_count(&self) -> u32 {
        self.capacity - self.count()
    }

    /// True if the ring holds `capacity` entries (a snapshot).
    #[inline]
    pub fn full(&self) -> bool {
        self.free_count() == 0
    }

    /// True if the ring holds nothing (a snapshot).
    #[inline]
    pub fn empty(&self) -> bool {
        self.count() == 0
    }

    /// RTS producer head-tail distance limit (`None` unless the producer side is RTS).
    pub fn prod_htd_max(&self) -> Option<u32> {
        (self.prod_mode == SyncMode::Rts).then(|| self.prod().htd_max.load(Ordering::Relaxed))
    }

    /// RTS consumer head-tail distance limit (`None` unless the consumer side is RTS).
    pub fn cons_htd_max(&self) -> Option<u32> {
        (self.cons_mode == SyncMode::Rts).then(|| self.cons().htd_max.load(Ordering::Relaxed))
    }

    /// Set the RTS producer head-tail distance limit (1..=capacity); returns false if the
    /// side is not RTS or `v` is out of range.
    pub fn set_prod_htd_max(&self, v: u32) -> bool {
        set_htd(self.prod(), self.prod_mode, v, self.capacity)
    }

    /// Set the RTS consumer head-tail distance limit; see [`Ring::set_prod_htd_max`].
    pub fn set_cons_htd_max(&self, v: u32) -> bool {
        set_htd(self.cons(), self.cons_mode, v, self.capacity)
    }

    /// Write a human-readable description of the ring to `w`.
    pub fn dump(&self, w: &mut dyn Write) -> io::Result<()> {
        let h = self.hdr();
        writeln!(w, "ring <{}>@{:p}", self.name(), self.hdr.as_ptr())?;
        writeln!(w, "  flags={:#x} ({:?})", h.flags, self.flags())?;
        writeln!(w, "  size={}", h.size)?;
        writeln!(w, "  capacity={}", h.capacity)?;
        writeln!(w, "  elem_size={}", h.elem_size)?;
        writeln!(w, "  memsize={}", h.memsize)?;
        for (label, side, mode) in [
            ("prod", self.prod(), self.prod_mode),
            ("cons", self.cons(), self.cons_mode),
        ] {
            // Relaxed: diagnostics only.
            let hw = side.head.load(Ordering::Relaxed);
            let tw = side.tail.load(Ordering::Relaxed);
            let (head, tail) = match mode {
                SyncMode::Hts => (lo(tw), pos(tw)),
                _ => (pos(hw), pos(tw)),
            };
            write!(w, "  {label}: sync={mode:?} head={head} tail={tail}")?;
            if mode == SyncMode::Rts {
                write!(
                    w,
                    " head_cnt={} tail_cnt={} htd_max={}",
                    lo(hw),
                    lo(tw),
                    side.htd_max.load(Ordering::Relaxed)
                )?;
            }
            writeln!(w)?;
        }
        writeln!(w, "  used={}", self.count())?;
        writeln!(w, "  avail={}", self.free_count())
    }

    /// Test hook: make the empty ring start at position `start` (every head and tail set
    /// to it), so tests can run across the `u32` wrap of the indices.
    ///
    /// # Safety
    /// The ring is empty and no other thread or process uses it during the call.
    #[doc(hidden)]
    pub unsafe fn reset_at(&self, start: u32) {
        for (side, mode) in [(self.prod(), self.prod_mode), (self.cons(), self.cons_mode)] {
            // Relaxed: the caller guarantees exclusive use; whoever uses the ring next is
            // synchronised with us by whatever handed the ring over (thread spawn, join).
            match mode {
                SyncMode::Hts => {
                    side.head.store(0, Ordering::Relaxed);
                    side.tail.store(pack(start, start), Ordering::Relaxed);
                }
                _ => {
                    side.head.store(pack(start, 0), Ordering::Relaxed);
                    side.tail.store(pack(start, 0), Ordering::Relaxed);
                }
            }
            side.cached.store(NO_CACHE, Ordering::Relaxed);
        }
    }

    // ------------------------------------------------------------------------------
    // Head moves. `PROD` selects the producer side (avail = free slots) or the consumer
    // side (avail = entries). Orderings, labelled at both ends:
    //   R1 tail store/CAS, Release -> A1 the other side's tail load, Acquire: publishes
    //      the slots written (producer) or frees the slots read (consumer) before the
    //      tail moved.
    //   R2 head CAS success, Release -> A2 same-side head load / CAS failure, Acquire:
    //      a thread that starts from another's head also sees at least the other-side
    //      tail that one saw, so `avail` can never be computed from an older tail
    //      against a newer head and wrap into a huge number.
    //   R3 Multi tail store (R1 too) -> A3 the next same-side thread's wait for it:
    //      chains every earlier thread's slot accesses into the later tail publication.
    //   R4 RTS tail CAS (R1 too) -> A4 same-side tail load / CAS failure: the thread
    //      that finally moves the tail position sees every head reservation counted.
    //   R5 HTS tail store (R1 too) -> A5 same-side word load: the next operation starts
    //      after the previous one's slot accesses and with its view of the other side.
    //   The optimistic consumer (`deq_opt`) uses R1/R2/R3 and A1/A2/A3 as a multi
    //      consumer does; its early slot copy is ordered before a producer's overwrite by
    //      R1, its tail store.
    // ------------------------------------------------------------------------------

    #[inline(always)]
    fn avail<const PROD: bool>(&self, head: u32, other_tail: u32) -> u32 {
        if PROD {
            self.capacity.wrapping_add(other_tail).wrapping_sub(head)
        } else {
            other_tail.wrapping_sub(head)
        }
    }

    /// The side's mode as created (not the mode an explicit sp_/mp_ entry point runs).
    #[inline(always)]
    fn created_mode<const PROD: bool>(&self) -> SyncMode {
        if PROD {
            self.prod_mode
        } else {
            self.cons_mode
        }
    }

    #[inline(always)]
    fn head_single<const PROD: bool>(
        &self,
        me: &HeadTail,
        other: &HeadTail,
        n: u32,
        b: Behavior,
    ) -> Claim {
        // Relaxed: only this (single) thread writes this side's head.
        let head = pos(me.head.load(Ordering::Relaxed));
        // The cached copy of the other side's tail is kept only on a side created single.
        // On a side created multi, an explicit single-thread call (`sp_enqueue`...) reads
        // the other tail every time, as DPDK's does: the multi path then never has to
        // touch `cached` (see head_multi).
        let use_cache = self.created_mode::<PROD>() == SyncMode::Single;
        // Relaxed: `cached` is this thread's own note; the value in it was loaded with
        // Acquire (A1) when it was stored.
        let c = if use_cache {
            me.cached.load(Ordering::Relaxed)
        } else {
            NO_CACHE
        };
        let mut avail = if c == NO_CACHE {
            0
        } else {
            self.avail::<PROD>(head, lo(c))
        };
        if avail < n || c == NO_CACHE {
            // A1: pairs with R1 of the other side.
            let t = pos(other.tail.load(Ordering::Acquire));
            if use_cache {
                me.cached.store(u64::from(t), Ordering::Relaxed);
            }
            avail = self.avail::<PROD>(head, t);
        }
        // The head word is not moved here: between the head and the tail move nobody but
        // this thread may use the side (single contract), and nobody reads a single
        // side's head in that window (the other side reads only tails; `dump` is a
        // snapshot). `tail_single` moves head and tail together, so one store per word
        // per operation, and a peek/zero-copy reservation that commits fewer slots than
        // it claimed needs nothing undone.
        Claim {
            old: head,
            n: take(avail, n, b),
            avail,
        }
    }

    #[inline(always)]
    fn tail_single(&self, me: &HeadTail, old: u32, n: u32) {
        let new = pack(old.wrapping_add(n), 0);
        // Relaxed: single writer (see head_single); read back by this thread, and by the
        // multi paths of this side only after whatever ordered them after this call
        // (the single contract).
        me.head.store(new, Ordering::Relaxed);
        // R1: pairs with A1 on the other side.
        me.tail.store(new, Ordering::Release);
    }

    #[inline(always)]
    fn head_multi<const PROD: bool>(
        &self,
        me: &HeadTail,
        other: &HeadTail,
        n: u32,
        b: Behavior,
    ) -> Claim {
        // A2: pairs with R2.
        let mut old = me.head.load(Ordering::Acquire);
        loop {
            let oh = pos(old);
            // A1: pairs with R1 of the other side.
            let t = pos(other.tail.load(Ordering::Acquire));
            let avail = self.avail::<PROD>(oh, t);
            let k = take(avail, n, b);
            if k == 0 {
                return Claim {
                    old: oh,
                    n: 0,
                    avail,
                };
            }
            // R2 on success / A2 on failure.
            match me.head.compare_exchange_weak(
                old,
                pack(oh.wrapping_add(k), 0),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // Only a side created single keeps a cached tail (see head_single),
                    // and it may be stale now that a multi path moved this side.
                    // Relaxed: every writer stores the same value. On a side created
                    // multi nothing is touched: under contention a second access to the
                    // head line right after the CAS can find it taken by the other core
                    // and cost one more transfer (measured: about 8% of a two-core
                    // MP/MC get/put loop).
                    if self.created_mode::<PROD>() == SyncMode::Single
                        && me.cached.load(Ordering::Relaxed) != NO_CACHE
                    {
                        me.cached.store(NO_CACHE, Ordering::Relaxed);
                    }
                    return Claim {
                        old: oh,
                        n: k,
                        avail,
                    };
                }
                Err(cur) => {
                    // Another thread moved the head since our load. One spin hint before
                    // the retry: without it the two threads' CASes kept colliding on
                    // the line (fifth session, two cores, no mempool cache: with the
                    // tail on its own line 1.17 of DPDK's rate with it, 1.04 without;
                    // on the one line of layout 3, 1.04 with it against 0.99 without).
                    spin_loop();
                    old = cur;
                }
            }
        }
    }

    #[inline(always)]
    fn tail_multi(&self, me: &HeadTail, old: u32, n: u32) {
        // A3: pairs with R3 of the thread that reserved just before us. Waiting for it is
        // what makes MP/MC not preemption safe.
        while pos(me.tail.load(Ordering::Acquire)) != old {
            spin_loop();
        }
        // R1 + R3.
        me.tail
            .store(pack(old.wrapping_add(n), 0), Ordering::Release);
    }

    #[inline(always)]
    fn head_rts<const PROD: bool>(
        &self,
        me: &HeadTail,
        other: &HeadTail,
        n: u32,
        b: Behavior,
    ) -> Claim {
        // A2: pairs with R2.
        let mut old = me.head.load(Ordering::Acquire);
        loop {
            // Relaxed: only a throttle, re-checked on every pass.
            let max = me.htd_max.load(Ordering::Relaxed);
            while pos(old).wrapping_sub(pos(me.tail.load(Ordering::Relaxed))) > max {
                spin_loop();
                // A2.
                old = me.head.load(Ordering::Acquire);
            }
            let oh = pos(old);
            // A1: pairs with R1 of the other side.
            let t = pos(other.tail.load(Ordering::Acquire));
            let avail = self.avail::<PROD>(oh, t);
            let k = take(avail, n, b);
            if k == 0 {
                return Claim {
                    old: oh,
                    n: 0,
                    avail,
                };
            }
            let new = pack(oh.wrapping_add(k), lo(old).wrapping_add(1));
            // R2 on success / A2 on failure.
            match me
                .head
                .compare_exchange_weak(old, new, Ordering::Release, Ordering::Acquire)
            {
                Ok(_) => {
                    return Claim {
                        old: oh,
                        n: k,
                        avail,
                    }
                }
                Err(cur) => old = cur,
            }
        }
    }

    #[inline(always)]
    fn tail_rts(&self, me: &HeadTail) {
        // A4: pairs with R4 of other threads of this side.
        let mut ot = me.tail.load(Ordering::Acquire);
        loop {
            // Relaxed: ordered after the Acquire on `ot` (A4), which is all we need to see
            // every head reservation whose tail increment `ot` includes.
            let h = me.head.load(Ordering::Relaxed);
            let cnt = lo(ot).wrapping_add(1);
            let p = if cnt == lo(h) { pos(h) } else { pos(ot) };
            // R1 + R4 on success / A4 on failure.
            match me.tail.compare_exchange_weak(
                ot,
                pack(p, cnt),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(cur) => ot = cur,
            }
        }
    }

    #[inline(always)]
    fn head_hts<const PROD: bool>(
        &self,
        me: &HeadTail,
        other: &HeadTail,
        n: u32,
        b: Behavior,
    ) -> Claim {
        // A5: pairs with R5.
        let mut old = me.tail.load(Ordering::Acquire);
        loop {
            // One operation in flight per side: wait until the previous one finished.
            while lo(old) != pos(old) {
                spin_loop();
                // A5.
                old = me.tail.load(Ordering::Acquire);
            }
            let oh = lo(old);
            // A1: pairs with R1 of the other side.
            let t = pos(other.tail.load(Ordering::Acquire));
            let avail = self.avail::<PROD>(oh, t);
            let k = take(avail, n, b);
            if k == 0 {
                return Claim {
                    old: oh,
                    n: 0,
                    avail,
                };
            }
            // Relaxed on success: nobody synchronises on the reservation itself; the
            // other side reading this word still gets the previous R5 through the release
            // sequence this RMW continues. A5 on failure.
            match me.tail.compare_exchange_weak(
                old,
                pack(oh, oh.wrapping_add(k)),
                Ordering::Relaxed,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Claim {
                        old: oh,
                        n: k,
                        avail,
                    }
                }
                Err(cur) => old = cur,
            }
        }
    }

    #[inline(always)]
    fn tail_hts(&self, me: &HeadTail, old: u32, n: u32) {
        let new = old.wrapping_add(n);
        // R1 + R5. A plain store is enough: while head != tail no other thread of this
        // side writes the word (their CAS expects head == tail), the other side never does.
        me.tail.store(pack(new, new), Ordering::Release);
    }

    #[inline(always)]
    fn head<const PROD: bool>(&self, mode: SyncMode, n: u32, b: Behavior) -> Claim {
        let (me, other) = self.sides::<PROD>();
        self.head_on::<PROD>(me, other, mode, n, b)
    }

    /// (this side, the other side).
    #[inline(always)]
    fn sides<const PROD: bool>(&self) -> (&HeadTail, &HeadTail) {
        if PROD {
            (self.prod(), self.cons())
        } else {
            (self.cons(), self.prod())
        }
    }

    #[inline(always)]
    fn head_on<const PROD: bool>(
        &self,
        me: &HeadTail,
        other: &HeadTail,
        mode: SyncMode,
        n: u32,
        b: Behavior,
    ) -> Claim {
        match mode {
            SyncMode::Single => self.head_single::<PROD>(me, other, n, b),
            // An optimistic side's words are a multi side's (its large dequeues are
            // multi ones; `deq_opt`).
            SyncMode::Multi | SyncMode::Optimistic => self.head_multi::<PROD>(me, other, n, b),
            SyncMode::Rts => self.head_rts::<PROD>(me, other, n, b),
            SyncMode::Hts => self.head_hts::<PROD>(me, other, n, b),
        }
    }

    #[inline(always)]
    fn tail<const PROD: bool>(&self, mode: SyncMode, old: u32, n: u32) {
        let me = if PROD { self.prod() } else { self.cons() };
        self.tail_on(me, mode, old, n)
    }

    #[inline(always)]
    fn tail_on(&self, me: &HeadTail, mode: SyncMode, old: u32, n: u32) {
        match mode {
            SyncMode::Single => self.tail_single(me, old, n),
            SyncMode::Multi | SyncMode::Optimistic => self.tail_multi(me, old, n),
            SyncMode::Rts => self.tail_rts(me),
            SyncMode::Hts => self.tail_hts(me, old, n),
        }
    }

    // ------------------------------------------------------------------------------
    // Slot copies: at most two `copy_nonoverlapping`s, split at the wrap.
    // ------------------------------------------------------------------------------

    /// # Safety
    /// Slots `head..head+n` are claimed by the caller for writing; `src` holds `n` values.
    #[inline(always)]
    unsafe fn write_slots<const SLOTS: u8>(&self, head: u32, src: *const T, n: u32) {
        let idx = head & self.mask;
        let atomic = match SLOTS {
            SLOTS_PLAIN => false,
            SLOTS_ATOMIC => true,
            _ => self.cons_mode == SyncMode::Optimistic,
        };
        if Self::WORD && atomic {
            // SAFETY: forwarded (same claim); the consumer mode is Optimistic, so `T` is
            // a padding-free 8-byte word (checked size and alignment, the constructors'
            // contract for the rest).
            unsafe { self.write_slots_atomic(idx, src, n) };
            return;
        }
        self.tracker.write(idx, n);
        let dst = self.slots.as_ptr();
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

    /// # Safety
    /// Slots `head..head+n` are claimed by the caller for reading and were published by
    /// producers; `dst` has room for `n` values.
    #[inline(always)]
    unsafe fn read_slots(&self, head: u32, dst: *mut T, n: u32) {
        let idx = head & self.mask;
        self.tracker.read(idx, n);
        let src = self.slots.as_ptr();
        // SAFETY: as in write_slots, with the roles reversed.
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

    /// Slot copies of an optimistic ring, one 8-byte atomic store per element: a
    /// consumer that is about to lose its CAS may be reading the same slot (it read it
    /// one lap ago), and only atomic accesses make that race defined. Split at the wrap
    /// like `write_slots`; each run goes four elements per step, as `copy_run` does.
    ///
    /// # Safety
    /// As [`Ring::write_slots`] (`idx` already masked); `T` is an 8-byte, 8-aligned type
    /// without padding ([`Ring::WORD`] and the ring's consumer mode say so).
    #[inline(always)]
    unsafe fn write_slots_atomic(&self, idx: u32, src: *const T, n: u32) {
        let base = self.slots.as_ptr().cast::<u64>();
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

    /// Optimistic dequeue (`MC_OPT_DEQ`). Up to four entries: copy them (into registers),
    /// then claim them with the head CAS, then publish the tail as a multi consumer does
    /// (usually at once: the copy is already done, so nothing sits between the claim and
    /// the tail store). More than four: the multi consumer's claim, copy, publish, so a
    /// large copy never sits inside the claim's window.
    ///
    /// Why a successful head CAS means the early copy was good: a producer writes a slot
    /// for position `p + size` only after it has seen the consumer tail beyond `p`, the
    /// tail never passes the head, and our CAS from `old` succeeds only if no consumer
    /// moved the head since we loaded it; so the positions `old..old+k` we copied were
    /// claimed by nobody and overwritten by nobody. R1 (our tail store, after the copy)
    /// is what a producer of the next lap must see first.
    #[inline(always)]
    fn deq_opt(&self, dst: *mut T, n: u32, b: Behavior) -> Dequeued {
        if !Self::WORD || n > 4 {
            return self.deq_m::<MULTI>(dst, n, b);
        }
        let (me, other) = self.sides::<false>();
        let base = self.slots.as_ptr().cast::<u64>().cast_const();
        // A2: pairs with R2.
        let mut old = me.head.load(Ordering::Acquire);
        loop {
            let oh = pos(old);
            // A1: pairs with R1 of the producers: the slots before their tail are written.
            let t = pos(other.tail.load(Ordering::Acquire));
            let avail = t.wrapping_sub(oh);
            if avail > self.capacity {
                // A head overtaken between our two loads; reload rather than copy a
                // slot that was never published.
                spin_loop();
                // A2.
                old = me.head.load(Ordering::Acquire);
                continue;
            }
            let k = take(avail, n, b);
            if k == 0 {
                return Dequeued {
                    n: 0,
                    available: avail,
                };
            }
            // Indices first, second, second-to-last and last (overlapping below four);
            // one entry is one load.
            let (last, i1, i2) = (k - 1, (k - 1).min(1), (k - 1).saturating_sub(1));
            let slot = |i: u32| {
                // SAFETY: masked, so inside the 8-aligned slot array; every access to a
                // slot of an optimistic ring is atomic (write_slots_atomic); positions
                // oh..oh+k are before the producer tail, so each slot holds a whole value.
                unsafe {
                    StdAtomicU64::from_ptr(
                        base.add((oh.wrapping_add(i) & self.mask) as usize)
                            .cast_mut(),
                    )
                    .load(Ordering::Relaxed)
                }
            };
            let v = if k == 1 {
                [slot(0); 4]
            } else {
                [slot(0), slot(i1), slot(i2), slot(last)]
            };
            // R2 on success / A2 on failure.
            match me.head.compare_exchange_weak(
                old,
                pack(oh.wrapping_add(k), 0),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // R1 + R3 (waits for earlier multi-path consumers, if any).
                    self.tail_multi(me, oh, k);
                    let dst = dst.cast::<u64>();
                    // SAFETY: `dst` holds >= n >= k values of T (8-aligned u64 words,
                    // since T is one); every index is < k.
                    unsafe {
                        dst.write(v[0]);
                        if k > 1 {
                            dst.add(i1 as usize).write(v[1]);
                            dst.add(i2 as usize).write(v[2]);
                            dst.add(last as usize).write(v[3]);
                        }
                    }
                    return Dequeued {
                        n: k,
                        available: avail - k,
                    };
                }
                Err(cur) => {
                    // Another consumer claimed first; our copy may be stale.
                    spin_loop();
                    old = cur;
                }
            }
        }
    }

    // ------------------------------------------------------------------------------
    // The two generic operations every entry point funnels into.
    // ------------------------------------------------------------------------------

    /// One dispatch on the mode per call, into a body specialised for that mode (`M` is
    /// a [`SyncMode`] as `u8`), so the head move, the copy and the tail move of one mode
    /// are straight-line code rather than two matches with all four protocols
    /// interleaved in between.
    #[inline(always)]
    fn enq(&self, mode: SyncMode, src: *const T, n: u32, b: Behavior) -> Enqueued {
        match mode {
            SyncMode::Single => self.enq_m::<{ SyncMode::Single as u8 }>(src, n, b),
            SyncMode::Multi => self.enq_m::<{ SyncMode::Multi as u8 }>(src, n, b),
            SyncMode::Rts => self.enq_m::<{ SyncMode::Rts as u8 }>(src, n, b),
            SyncMode::Hts => self.enq_m::<{ SyncMode::Hts as u8 }>(src, n, b),
            // Producers are never optimistic (`sync_modes` refuses it).
            SyncMode::Optimistic => unreachable!("optimistic is a consumer mode"),
        }
    }

    #[inline(always)]
    fn deq(&self, mode: SyncMode, dst: *mut T, n: u32, b: Behavior) -> Dequeued {
        match mode {
            SyncMode::Single => self.deq_m::<{ SyncMode::Single as u8 }>(dst, n, b),
            SyncMode::Multi => self.deq_m::<{ SyncMode::Multi as u8 }>(dst, n, b),
            SyncMode::Rts => self.deq_m::<{ SyncMode::Rts as u8 }>(dst, n, b),
            SyncMode::Hts => self.deq_m::<{ SyncMode::Hts as u8 }>(dst, n, b),
            SyncMode::Optimistic => self.deq_opt(dst, n, b),
        }
    }

    #[inline(always)]
    fn enq_m<const M: u8>(&self, src: *const T, n: u32, b: Behavior) -> Enqueued {
        self.enq_ms::<M, SLOTS_BY_MODE>(src, n, b)
    }

    /// `enq_m` with the slot-copy kind fixed (`SLOTS_*`): the typed MP/MC handles know
    /// whether their ring's slots are atomic, so their puts carry no test for it.
    #[inline(always)]
    fn enq_ms<const M: u8, const SLOTS: u8>(&self, src: *const T, n: u32, b: Behavior) -> Enqueued {
        let mode = mode_of(M);
        // The side references are taken once, before the copy: the copy writes through a
        // raw pointer, after which the compiler must assume the handle's fields changed
        // and would load the header pointer again (a chain of dependent loads in front of
        // the tail wait, measured at about 10% of a single-thread MP/MC get/put loop).
        let (me, other) = self.sides::<true>();
        let c = self.head_on::<true>(me, other, mode, n, b);
        if c.n == 0 {
            return Enqueued {
                n: 0,
                free_space: c.avail,
            };
        }
        // SAFETY: the head move gave us slots c.old..c.old+c.n; src holds >= n >= c.n.
        unsafe { self.write_slots::<SLOTS>(c.old, src, c.n) };
        self.tail_on(me, mode, c.old, c.n);
        Enqueued {
            n: c.n,
            free_space: c.avail - c.n,
        }
    }

    #[inline(always)]
    fn deq_m<const M: u8>(&self, dst: *mut T, n: u32, b: Behavior) -> Dequeued {
        let mode = mode_of(M);
        // Sides taken once, before the copy (see enq_m).
        let (me, other) = self.sides::<false>();
        let c = self.head_on::<false>(me, other, mode, n, b);
        if c.n == 0 {
            return Dequeued {
                n: 0,
                available: c.avail,
            };
        }
        // SAFETY: the head move gave us published slots c.old..c.old+c.n; dst has room.
        unsafe { self.read_slots(c.old, dst, c.n) };
        self.tail_on(me, mode, c.old, c.n);
        Dequeued {
            n: c.n,
            available: c.avail - c.n,
        }
    }

    /// Mode for an explicit single-thread entry point: RTS/HTS sides keep their own
    /// protocol (which is also correct for one thread).
    #[inline(always)]
    fn as_single(m: SyncMode) -> SyncMode {
        match m {
            SyncMode::Single | SyncMode::Multi => SyncMode::Single,
            other => other,
        }
    }

    /// Mode for an explicit multi-thread entry point: RTS/HTS sides keep their own
    /// protocol (which is multi-thread safe too).
    #[inline(always)]
    fn as_multi(m: SyncMode) -> SyncMode {
        match m {
            SyncMode::Single | SyncMode::Multi => SyncMode::Multi,
            other => other,
        }
    }

    // ------------------------------------------------------------------------------
    // Mode-following entry points.
    // ------------------------------------------------------------------------------

    /// Enqueue one object; hands it back if the ring is full.
    #[inline]
    pub fn enqueue(&self, obj: T) -> Result<(), T> {
        match self.enq(self.prod_mode, &obj, 1, Behavior::Bulk).n {
            0 => Err(obj),
            _ => Ok(()),
        }
    }

    /// Enqueue all of `objs` or none.
    #[inline]
    pub fn enqueue_bulk(&self, objs: &[T]) -> Enqueued {
        self.enq(
            self.prod_mode,
            objs.as_ptr(),
            len_u32(objs.len()),
            Behavior::Bulk,
        )
    }

    /// Enqueue as many of `objs` (from the front) as fit.
    #[inline]
    pub fn enqueue_burst(&self, objs: &[T]) -> Enqueued {
        self.enq(
            self.prod_mode,
            objs.as_ptr(),
            len_u32(objs.len()),
            Behavior::Burst,
        )
    }

    /// Dequeue one object, `None` if the ring is empty.
    #[inline]
    pub fn dequeue(&self) -> Option<T> {
        let mut v = MaybeUninit::<T>::uninit();
        match self
            .deq(self.cons_mode, v.as_mut_ptr(), 1, Behavior::Bulk)
            .n
        {
            0 => None,
            // SAFETY: one element was copied into `v`.
            _ => Some(unsafe { v.assume_init() }),
        }
    }

    /// Dequeue exactly `out.len()` objects into `out`, or none.
    #[inline]
    pub fn dequeue_bulk(&self, out: &mut [T]) -> Dequeued {
        self.deq(
            self.cons_mode,
            out.as_mut_ptr(),
            len_u32(out.len()),
            Behavior::Bulk,
        )
    }

    /// Dequeue up to `out.len()` objects into the front of `out`.
    #[inline]
    pub fn dequeue_burst(&self, out: &mut [T]) -> Dequeued {
        self.deq(
            self.cons_mode,
            out.as_mut_ptr(),
            len_u32(out.len()),
            Behavior::Burst,
        )
    }

    /// [`Ring::dequeue_bulk`] into uninitialised storage; on `n > 0` the first `n`
    /// elements of `out` are initialised.
    #[inline]
    pub fn dequeue_bulk_uninit(&self, out: &mut [MaybeUninit<T>]) -> Dequeued {
        self.deq(
            self.cons_mode,
            out.as_mut_ptr().cast(),
            len_u32(out.len()),
            Behavior::Bulk,
        )
    }

    /// [`Ring::dequeue_burst`] into uninitialised storage; the first `n` elements of
    /// `out` are initialised.
    #[inline]
    pub fn dequeue_burst_uninit(&self, out: &mut [MaybeUninit<T>]) -> Dequeued {
        self.deq(
            self.cons_mode,
            out.as_mut_ptr().cast(),
            len_u32(out.len()),
            Behavior::Burst,
        )
    }

    // ------------------------------------------------------------------------------
    // Explicit multi-thread entry points (safe from any number of threads). On an RTS or
    // HTS side they use that side's protocol.
    // ------------------------------------------------------------------------------

    /// Multi-producer enqueue of one object.
    #[inline]
    pub fn mp_enqueue(&self, obj: T) -> Result<(), T> {
        match self
            .enq(Self::as_multi(self.prod_mode), &obj, 1, Behavior::Bulk)
            .n
        {
            0 => Err(obj),
            _ => Ok(()),
        }
    }

    /// Multi-producer bulk enqueue.
    #[inline]
    pub fn mp_enqueue_bulk(&self, objs: &[T]) -> Enqueued {
        self.enq(
            Self::as_multi(self.prod_mode),
            objs.as_ptr(),
            len_u32(objs.len()),
            Behavior::Bulk,
        )
    }

    /// Multi-producer burst enqueue.
    #[inline]
    pub fn mp_enqueue_burst(&self, objs: &[T]) -> Enqueued {
        self.enq(
            Self::as_multi(self.prod_mode),
            objs.as_ptr(),
            len_u32(objs.len()),
            Behavior::Burst,
        )
    }

    /// Multi-consumer dequeue of one object.
    #[inline]
    pub fn mc_dequeue(&self) -> Option<T> {
        let mut v = MaybeUninit::<T>::uninit();
        match self
            .deq(
                Self::as_multi(self.cons_mode),
                v.as_mut_ptr(),
                1,
                Behavior::Bulk,
            )
            .n
        {
            0 => None,
            // SAFETY: one element was copied into `v`.
            _ => Some(unsafe { v.assume_init() }),
        }
    }

    /// Multi-consumer bulk dequeue.
    #[inline]
    pub fn mc_dequeue_bulk(&self, out: &mut [T]) -> Dequeued {
        self.deq(
            Self::as_multi(self.cons_mode),
            out.as_mut_ptr(),
            len_u32(out.len()),
            Behavior::Bulk,
        )
    }

    /// Multi-consumer burst dequeue.
    #[inline]
    pub fn mc_dequeue_burst(&self, out: &mut [T]) -> Dequeued {
        self.deq(
            Self::as_multi(self.cons_mode),
            out.as_mut_ptr(),
            len_u32(out.len()),
            Behavior::Burst,
        )
    }

    // ------------------------------------------------------------------------------
    // Explicit single-thread entry points.
    // ------------------------------------------------------------------------------

    /// Single-producer enqueue of one object.
    ///
    /// # Safety
    /// No other thread (in any process) enqueues on this ring during the call.
    #[inline]
    pub unsafe fn sp_enqueue(&self, obj: T) -> Result<(), T> {
        match self
            .enq(Self::as_single(self.prod_mode), &obj, 1, Behavior::Bulk)
            .n
        {
            0 => Err(obj),
            _ => Ok(()),
        }
    }

    /// Single-producer bulk enqueue.
    ///
    /// # Safety
    /// As [`Ring::sp_enqueue`].
    #[inline]
    pub unsafe fn sp_enqueue_bulk(&self, objs: &[T]) -> Enqueued {
        self.enq(
            Self::as_single(self.prod_mode),
            objs.as_ptr(),
            len_u32(objs.len()),
            Behavior::Bulk,
        )
    }

    /// Single-producer burst enqueue.
    ///
    /// # Safety
    /// As [`Ring::sp_enqueue`].
    #[inline]
    pub unsafe fn sp_enqueue_burst(&self, objs: &[T]) -> Enqueued {
        self.enq(
            Self::as_single(self.prod_mode),
            objs.as_ptr(),
            len_u32(objs.len()),
            Behavior::Burst,
        )
    }

    /// Single-consumer dequeue of one object.
    ///
    /// # Safety
    /// No other thread (in any process) dequeues from this ring during the call.
    #[inline]
    pub unsafe fn sc_dequeue(&self) -> Option<T> {
        let mut v = MaybeUninit::<T>::uninit();
        match self
            .deq(
                Self::as_single(self.cons_mode),
                v.as_mut_ptr(),
                1,
                Behavior::Bulk,
            )
            .n
        {
            0 => None,
            // SAFETY: one element was copied into `v`.
            _ => Some(unsafe { v.assume_init() }),
        }
    }

    /// Single-consumer bulk dequeue.
    ///
    /// # Safety
    /// As [`Ring::sc_dequeue`].
    #[inline]
    pub unsafe fn sc_dequeue_bulk(&self, out: &mut [T]) -> Dequeued {
        self.deq(
            Self::as_single(self.cons_mode),
            out.as_mut_ptr(),
            len_u32(out.len()),
            Behavior::Bulk,
        )
    }

    /// Single-consumer burst dequeue.
    ///
    /// # Safety
    /// As [`Ring::sc_dequeue`].
    #[inline]
    pub unsafe fn sc_dequeue_burst(&self, out: &mut [T]) -> Dequeued {
        self.deq(
            Self::as_single(self.cons_mode),
            out.as_mut_ptr(),
            len_u32(out.len()),
            Behavior::Burst,
        )
    }

    // ------------------------------------------------------------------------------
    // Peek and zero-copy (Single and HTS sides only).
    // ------------------------------------------------------------------------------

    fn peek_mode(&self, prod: bool, op: &'static str) -> Result<SyncMode> {
        let (mode, side) = if prod {
            (self.prod_mode, "producer")
        } else {
            (self.cons_mode, "consumer")
        };
        match mode {
            SyncMode::Single | SyncMode::Hts => Ok(mode),
            _ => Err(Error::ModeUnsupported {
                op,
                name: self.name(),
                side,
                mode,
            }),
        }
    }

    fn enq_start(&self, n: u32, b: Behavior, op: &'static str) -> Result<Reservation<'_, T, true>> {
        let mode = self.peek_mode(true, op)?;
        let c = self.head::<true>(mode, n, b);
        Ok(Reservation {
            ring: self,
            mode,
            claim: c,
            done: false,
        })
    }

    fn deq_start(
        &self,
        n: u32,
        b: Behavior,
        op: &'static str,
    ) -> Result<Reservation<'_, T, false>> {
        let mode = self.peek_mode(false, op)?;
        let c = self.head::<false>(mode, n, b);
        Ok(Reservation {
            ring: self,
            mode,
            claim: c,
            done: false,
        })
    }

    /// Reserve room for exactly `n` objects (or nothing); write them with
    /// [`EnqueuePeek::finish`]. Single or HTS producer side only. Until the reservation
    /// is finished or dropped, no other enqueue may run on this ring (HTS ones wait).
    pub fn enqueue_bulk_start(&self, n: u32) -> Result<EnqueuePeek<'_, T>> {
        self.enq_start(n, Behavior::Bulk, "start a peek enqueue")
            .map(EnqueuePeek)
    }

    /// Reserve room for up to `n` objects; see [`Ring::enqueue_bulk_start`].
    pub fn enqueue_burst_start(&self, n: u32) -> Result<EnqueuePeek<'_, T>> {
        self.enq_start(n, Behavior::Burst, "start a peek enqueue")
            .map(EnqueuePeek)
    }

    /// Copy exactly `out.len()` objects (or none) out of the ring without consuming
    /// them; [`DequeuePeek::finish`] decides how many are consumed. Single or HTS
    /// consumer side only.
    pub fn dequeue_bulk_start(&self, out: &mut [T]) -> Result<DequeuePeek<'_, T>> {
        let r = self.deq_start(len_u32(out.len()), Behavior::Bulk, "start a peek dequeue")?;
        // SAFETY: the claim covers published slots r.claim.old..+n; `out` has room.
        unsafe { self.read_slots(r.claim.old, out.as_mut_ptr(), r.claim.n) };
        Ok(DequeuePeek(r))
    }

    /// Copy up to `out.len()` objects out without consuming them; see
    /// [`Ring::dequeue_bulk_start`].
    pub fn dequeue_burst_start(&self, out: &mut [T]) -> Result<DequeuePeek<'_, T>> {
        let r = self.deq_start(len_u32(out.len()), Behavior::Burst, "start a peek dequeue")?;
        // SAFETY: as above.
        unsafe { self.read_slots(r.claim.old, out.as_mut_ptr(), r.claim.n) };
        Ok(DequeuePeek(r))
    }

    /// Zero-copy enqueue: reserve exactly `n` slots (or none) and get them as up to two
    /// slices to write in place. Single or HTS producer side only.
    pub fn enqueue_zc_bulk_start(&self, n: u32) -> Result<ZcEnqueue<'_, T>> {
        self.zc_enq_allowed()?;
        self.enq_start(n, Behavior::Bulk, "start a zero-copy enqueue")
            .map(ZcEnqueue)
    }

    /// Zero-copy enqueue of up to `n` slots; see [`Ring::enqueue_zc_bulk_start`].
    pub fn enqueue_zc_burst_start(&self, n: u32) -> Result<ZcEnqueue<'_, T>> {
        self.zc_enq_allowed()?;
        self.enq_start(n, Behavior::Burst, "start a zero-copy enqueue")
            .map(ZcEnqueue)
    }

    /// Zero-copy enqueue hands the slots to the caller, who writes them with plain
    /// stores; on a ring with optimistic consumers a losing consumer may be reading those
    /// slots at the same time, which only atomic writes make defined. Refused there.
    fn zc_enq_allowed(&self) -> Result<()> {
        if self.cons_mode == SyncMode::Optimistic {
            return Err(Error::ModeUnsupported {
                op: "start a zero-copy enqueue",
                name: self.name(),
                side: "consumer",
                mode: SyncMode::Optimistic,
            });
        }
        Ok(())
    }

    /// Zero-copy dequeue: claim exactly `n` entries (or none) and read them in place.
    /// Single or HTS consumer side only.
    pub fn dequeue_zc_bulk_start(&self, n: u32) -> Result<ZcDequeue<'_, T>> {
        self.deq_start(n, Behavior::Bulk, "start a zero-copy dequeue")
            .map(ZcDequeue)
    }

    /// Zero-copy dequeue of up to `n` entries; see [`Ring::dequeue_zc_bulk_start`].
    pub fn dequeue_zc_burst_start(&self, n: u32) -> Result<ZcDequeue<'_, T>> {
        self.deq_start(n, Behavior::Burst, "start a zero-copy dequeue")
            .map(ZcDequeue)
    }

    /// The two slot runs `head..head+n` (split at the wrap) as raw parts.
    fn runs(&self, head: u32, n: u32) -> ((*mut T, usize), (*mut T, usize)) {
        let idx = head & self.mask;
        let first = n.min(self.size - idx);
        // SAFETY: idx < size, so the offset stays inside the slot array.
        let p1 = unsafe { self.slots.as_ptr().add(idx as usize) };
        (
            (p1, first as usize),
            (self.slots.as_ptr(), (n - first) as usize),
        )
    }
}

/// A handle to a ring whose producer side was created multi and whose consumer side is
/// multi (`OPT == false`, from [`Ring::into_mp_mc`]) or optimistic (`OPT == true`,
/// [`MpOptRing`], from [`Ring::into_mp_opt`]): its calls run that protocol compiled in,
/// with no per-call dispatch on the modes (checked once, when the handle is made).
/// DPDK's `rte_ring_mp_enqueue_bulk` and friends are fixed at compile time the same way,
/// with the mode left to the caller to get right; here the check makes it safe. A
/// mempool's default backend is an [`MpOptRing`]. (One handle type that chose between
/// the two consumer protocols per call measured 10-20% slower on one core than either
/// alone: the two inlined bodies around a branch.)
///
/// Dereferences to the [`Ring`] for everything else (counts, dump, the other entry
/// points).
pub struct MpMcRing<T: Copy = usize, const OPT: bool = false>(Ring<T>);

/// Multi producers, optimistic consumers (`MC_OPT_DEQ`), protocol compiled in.
pub type MpOptRing<T = usize> = MpMcRing<T, true>;

impl<T: Copy, const OPT: bool> Clone for MpMcRing<T, OPT> {
    fn clone(&self) -> Self {
        MpMcRing(self.0.clone())
    }
}

impl<T: Copy, const OPT: bool> core::ops::Deref for MpMcRing<T, OPT> {
    type Target = Ring<T>;
    fn deref(&self) -> &Ring<T> {
        &self.0
    }
}

const MULTI: u8 = SyncMode::Multi as u8;

/// Slot copy kinds for `write_slots`: follow the ring's consumer mode (atomic words on an
/// optimistic ring), or fixed by a typed handle.
const SLOTS_BY_MODE: u8 = 0;
const SLOTS_PLAIN: u8 = 1;
const SLOTS_ATOMIC: u8 = 2;

impl<T: Copy> Ring<T> {
    /// This handle as an [`MpMcRing`] if both sides were created [`SyncMode::Multi`];
    /// otherwise the handle back unchanged.
    pub fn into_mp_mc(self) -> core::result::Result<MpMcRing<T>, Ring<T>> {
        if self.prod_mode == SyncMode::Multi && self.cons_mode == SyncMode::Multi {
            Ok(MpMcRing(self))
        } else {
            Err(self)
        }
    }

    /// This handle as an [`MpOptRing`] if the producer side was created
    /// [`SyncMode::Multi`] and the consumer side [`SyncMode::Optimistic`]; otherwise the
    /// handle back unchanged.
    pub fn into_mp_opt(self) -> core::result::Result<MpOptRing<T>, Ring<T>> {
        if self.prod_mode == SyncMode::Multi && self.cons_mode == SyncMode::Optimistic {
            Ok(MpMcRing(self))
        } else {
            Err(self)
        }
    }
}

impl<T: Copy, const OPT: bool> MpMcRing<T, OPT> {
    /// The plain handle back.
    pub fn into_inner(self) -> Ring<T> {
        self.0
    }

    /// Enqueue all of `objs` or none.
    #[inline]
    pub fn enqueue_bulk(&self, objs: &[T]) -> Enqueued {
        self.put(objs.as_ptr(), len_u32(objs.len()), Behavior::Bulk)
    }

    /// Enqueue as many of `objs` as fit, from the front.
    #[inline]
    pub fn enqueue_burst(&self, objs: &[T]) -> Enqueued {
        self.put(objs.as_ptr(), len_u32(objs.len()), Behavior::Burst)
    }

    /// Dequeue `out.len()` objects or none.
    #[inline]
    pub fn dequeue_bulk(&self, out: &mut [T]) -> Dequeued {
        self.deq(out.as_mut_ptr(), len_u32(out.len()), Behavior::Bulk)
    }

    /// Dequeue up to `out.len()` objects into the front of `out`.
    #[inline]
    pub fn dequeue_burst(&self, out: &mut [T]) -> Dequeued {
        self.deq(out.as_mut_ptr(), len_u32(out.len()), Behavior::Burst)
    }

    /// The MP put, with the slot copy of the handle's ring kind fixed (atomic words on an
    /// optimistic ring; `OPT` is a constant, so the branch folds).
    #[inline(always)]
    fn put(&self, src: *const T, n: u32, b: Behavior) -> Enqueued {
        if OPT {
            self.0.enq_ms::<MULTI, SLOTS_ATOMIC>(src, n, b)
        } else {
            self.0.enq_ms::<MULTI, SLOTS_PLAIN>(src, n, b)
        }
    }

    /// The consumer protocol the handle was made for (a constant).
    #[inline(always)]
    fn deq(&self, dst: *mut T, n: u32, b: Behavior) -> Dequeued {
        if OPT {
            self.0.deq_opt(dst, n, b)
        } else {
            self.0.deq_m::<MULTI>(dst, n, b)
        }
    }
}

/// A claimed range on one side, committed by `finish` or (with 0) on drop.
struct Reservation<'a, T: Copy, const PROD: bool> {
    ring: &'a Ring<T>,
    mode: SyncMode,
    claim: Claim,
    done: bool,
}

impl<T: Copy, const PROD: bool> Reservation<'_, T, PROD> {
    fn commit(&mut self, n: u32) {
        if self.done {
            return;
        }
        self.done = true;
        if self.claim.n == 0 {
            return;
        }
        let n = n.min(self.claim.n);
        self.ring.tail::<PROD>(self.mode, self.claim.old, n);
    }
}

impl<T: Copy, const PROD: bool> Drop for Reservation<'_, T, PROD> {
    fn drop(&mut self) {
        self.commit(0);
    }
}

/// A peek enqueue in progress ([`Ring::enqueue_bulk_start`]). Dropping it enqueues
/// nothing.
pub struct EnqueuePeek<'a, T: Copy>(Reservation<'a, T, true>);

impl<T: Copy> EnqueuePeek<'_, T> {
    /// Slots reserved.
    pub fn len(&self) -> u32 {
        self.0.claim.n
    }

    /// True if nothing could be reserved.
    pub fn is_empty(&self) -> bool {
        self.0.claim.n == 0
    }

    /// Free slots after the reservation, as seen by it.
    pub fn free_space(&self) -> u32 {
        self.0.claim.avail - self.0.claim.n
    }

    /// Write the first `min(objs.len(), len())` of `objs` and publish them; returns how
    /// many were enqueued.
    pub fn finish(mut self, objs: &[T]) -> u32 {
        let n = len_u32(objs.len()).min(self.0.claim.n);
        // SAFETY: the reservation owns slots claim.old..+claim.n >= n; objs holds n.
        unsafe {
            self.0
                .ring
                .write_slots::<SLOTS_BY_MODE>(self.0.claim.old, objs.as_ptr(), n)
        };
        self.0.commit(n);
        n
    }
}

/// A peek dequeue in progress ([`Ring::dequeue_bulk_start`]). Dropping it consumes
/// nothing (the objects stay in the ring).
pub struct DequeuePeek<'a, T: Copy>(Reservation<'a, T, false>);

impl<T: Copy> DequeuePeek<'_, T> {
    /// Objects copied out (and held back from other consumers).
    pub fn len(&self) -> u32 {
        self.0.claim.n
    }

    /// True if nothing was copied out.
    pub fn is_empty(&self) -> bool {
        self.0.claim.n == 0
    }

    /// Entries left behind the peeked ones, as seen by the peek.
    pub fn available(&self) -> u32 {
        self.0.claim.avail - self.0.claim.n
    }

    /// Consume the first `min(n, len())` peeked objects; the rest stay in the ring.
    /// Returns how many were consumed.
    pub fn finish(mut self, n: u32) -> u32 {
        let n = n.min(self.0.claim.n);
        self.0.commit(n);
        n
    }
}

/// A zero-copy enqueue in progress ([`Ring::enqueue_zc_bulk_start`]). Dropping it
/// enqueues nothing.
pub struct ZcEnqueue<'a, T: Copy>(Reservation<'a, T, true>);

impl<T: Copy> ZcEnqueue<'_, T> {
    /// Slots reserved.
    pub fn len(&self) -> u32 {
        self.0.claim.n
    }

    /// True if nothing could be reserved.
    pub fn is_empty(&self) -> bool {
        self.0.claim.n == 0
    }

    /// Free slots after the reservation, as seen by it.
    pub fn free_space(&self) -> u32 {
        self.0.claim.avail - self.0.claim.n
    }

    /// The reserved slots, in ring order, as up to two runs (the second is empty unless
    /// the reservation wraps).
    pub fn slots(&mut self) -> (&mut [MaybeUninit<T>], &mut [MaybeUninit<T>]) {
        let ((p1, n1), (p2, n2)) = self.0.ring.runs(self.0.claim.old, self.0.claim.n);
        self.0
            .ring
            .tracker
            .write(self.0.claim.old & self.0.ring.mask, self.0.claim.n);
        // SAFETY: the two runs are disjoint, inside the slot array and owned by this
        // reservation until it is finished; `&mut self` keeps them unaliased.
        unsafe {
            (
                core::slice::from_raw_parts_mut(p1.cast(), n1),
                core::slice::from_raw_parts_mut(p2.cast(), n2),
            )
        }
    }

    /// Publish the first `min(n, len())` reserved slots (in ring order).
    ///
    /// # Safety
    /// Those slots were all written through [`ZcEnqueue::slots`].
    pub unsafe fn finish(mut self, n: u32) -> u32 {
        let n = n.min(self.0.claim.n);
        self.0.commit(n);
        n
    }
}

/// A zero-copy dequeue in progress ([`Ring::dequeue_zc_bulk_start`]). Dropping it
/// consumes nothing.
pub struct ZcDequeue<'a, T: Copy>(Reservation<'a, T, false>);

impl<T: Copy> ZcDequeue<'_, T> {
    /// Entries claimed.
    pub fn len(&self) -> u32 {
        self.0.claim.n
    }

    /// True if nothing was claimed.
    pub fn is_empty(&self) -> bool {
        self.0.claim.n == 0
    }

    /// Entries left behind the claimed ones, as seen by the claim.
    pub fn available(&self) -> u32 {
        self.0.claim.avail - self.0.claim.n
    }

    /// The claimed entries, in ring order, as up to two runs.
    pub fn slots(&self) -> (&[T], &[T]) {
        let ((p1, n1), (p2, n2)) = self.0.ring.runs(self.0.claim.old, self.0.claim.n);
        self.0
            .ring
            .tracker
            .read(self.0.claim.old & self.0.ring.mask, self.0.claim.n);
        // SAFETY: published slots owned by this claim until finish; nobody writes them
        // before the consumer tail moves past them.
        unsafe {
            (
                core::slice::from_raw_parts(p1, n1),
                core::slice::from_raw_parts(p2, n2),
            )
        }
    }

    /// Consume the first `min(n, len())` claimed entries; returns how many.
    pub fn finish(mut self, n: u32) -> u32 {
        let n = n.min(self.0.claim.n);
        self.0.commit(n);
        n
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
/// atomic side of an optimistic ring's slot copy).
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

/// The [`SyncMode`] a const `M` of `enq_m`/`deq_m` stands for (folds at compile time).
#[inline(always)]
const fn mode_of(m: u8) -> SyncMode {
    match m {
        x if x == SyncMode::Single as u8 => SyncMode::Single,
        x if x == SyncMode::Multi as u8 => SyncMode::Multi,
        x if x == SyncMode::Rts as u8 => SyncMode::Rts,
        _ => SyncMode::Hts,
    }
}

fn set_htd(side: &HeadTail, mode: SyncMode, v: u32, cap: u32) -> bool {
    if mode != SyncMode::Rts || v == 0 || v > cap {
        return false;
    }
    // Relaxed: a throttle read afresh by every head move.
    side.htd_max.store(v, Ordering::Relaxed);
    true
}

fn name_bytes(buf: &[u8; 32]) -> &[u8] {
    let end = buf
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(buf.len())
        .min(NAME_MAX);
    &buf[..end]
}

pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > NAME_MAX || name.as_bytes().contains(&0) {
        return Err(Error::BadName {
            name: name.to_string(),
            max: NAME_MAX,
        });
    }
    Ok(())
}

fn check_mem(mem: *mut u8, len: usize, need: usize) -> Result<()> {
    let bad = |why| Error::BadMemory {
        addr: mem as usize,
        len,
        why,
    };
    if mem.is_null() {
        return Err(bad("null pointer"));
    }
    if (mem as usize) & (RING_ALIGN - 1) != 0 {
        return Err(bad("not aligned to 128 bytes"));
    }
    if len < need {
        return Err(bad("too small for the ring (see Ring::memsize)"));
    }
    Ok(())
}
