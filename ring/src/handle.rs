//! The ring handle: construction in caller memory, attachment, the geometry and mode
//! accessors, counts, diagnostics. The operations are in `ops` (the funnel every entry
//! point goes through), `entry` (the public enqueue/dequeue calls), `peek`, `zero_copy`
//! and `mpmc` (the typed handles).

use core::marker::PhantomData;
use core::mem::size_of;
use core::ptr::{self, NonNull};
use std::io::{self, Write};

use crate::claim::Sides;
use crate::copy::{is_word, SlotArray};
use crate::flags::{sync_modes, RingFlags, SyncMode};
use crate::layout::{
    cons_at, geometry, lo, memsize_for, pack, pos, HeadTail, RingHeader, LAYOUT_VERSION, MAGIC,
    MAX_ELEM_SIZE, NAME_MAX, NO_CACHE, PROD_AT, RING_ALIGN,
};
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use crate::{Error, Result};

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
    /// The slot array, with copies of the read-only geometry, so the hot paths do not
    /// touch the header line.
    pub(crate) slots: SlotArray<T>,
    pub(crate) capacity: u32,
    pub(crate) prod_mode: SyncMode,
    pub(crate) cons_mode: SyncMode,
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
            slots: self.slots.clone(),
            capacity: self.capacity,
            prod_mode: self.prod_mode,
            cons_mode: self.cons_mode,
            backing: self.backing.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Copy> Ring<T> {
    const ELEM_OK: () = assert!(
        size_of::<T>() > 0
            && size_of::<T>() <= MAX_ELEM_SIZE
            && core::mem::align_of::<T>() <= RING_ALIGN,
        "ring elements must be 1..=128 bytes"
    );
    /// Refuse `MC_OPT_DEQ` for elements that are not one aligned 8-byte word.
    fn check_opt(flags: RingFlags) -> Result<()> {
        if flags.contains(RingFlags::MC_OPT_DEQ) && !is_word::<T>() {
            return Err(Error::BadFlags {
                flags: flags.bits(),
                why: "MC_OPT_DEQ needs 8-byte, 8-aligned elements",
            });
        }
        Ok(())
    }

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
        let (prod_mode, cons_mode) = sync_modes(flags).map_err(|why| Error::BadFlags {
            flags: flags.bits(),
            why,
        })?;
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
                // RTS: DPDK's default, an eighth of the capacity (rte_ring_rts.h,
                // HTD_MAX_DEF). Other modes: the count of threads asleep on the tail.
                htd_max: AtomicU32::new(if used && mode == SyncMode::Rts {
                    (g.capacity / 8).max(1)
                } else {
                    0
                }),
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
        // SAFETY: derived from a non-null pointer by an in-bounds offset.
        let slots = unsafe { NonNull::new_unchecked(slots) };
        // SAFETY: `size` slots of `T` follow the header inside `len` (checked above), and
        // stay valid as long as the handle (the constructor's contract); `size` is a power
        // of two (checked); an optimistic ring's `T` is one padding-free word
        // (`check_opt` and the constructor's contract).
        let slots = unsafe { SlotArray::new(slots, h.size, cm == SyncMode::Optimistic) };
        Ok(Ring {
            // SAFETY: `mem` is non-null (checked by check_mem).
            hdr: unsafe { NonNull::new_unchecked(hdr_ptr) },
            cons: NonNull::from(&h.sync[cons_i]),
            slots,
            capacity: h.capacity,
            prod_mode: pm,
            cons_mode: cm,
            backing: std::sync::Arc::new(backing),
            _t: PhantomData,
        })
    }

    #[inline(always)]
    pub(crate) fn hdr(&self) -> &RingHeader {
        // SAFETY: the handle's constructor verified the header; the memory outlives the
        // handle (constructor contract); all mutable fields are atomics.
        unsafe { self.hdr.as_ref() }
    }

    #[inline(always)]
    pub(crate) fn prod(&self) -> &HeadTail {
        &self.hdr().sync[PROD_AT]
    }

    #[inline(always)]
    pub(crate) fn cons(&self) -> &HeadTail {
        // SAFETY: points into the verified header (set by the constructor from the
        // header's own flags), which outlives the handle like `hdr`.
        unsafe { self.cons.as_ref() }
    }

    /// The words an operation of one side works on (`PROD`: an enqueue).
    #[inline(always)]
    pub(crate) fn sides<const PROD: bool>(&self) -> Sides<'_> {
        let (me, other, mode) = if PROD {
            (self.prod(), self.cons(), self.prod_mode)
        } else {
            (self.cons(), self.prod(), self.cons_mode)
        };
        Sides {
            me,
            other,
            capacity: self.capacity,
            created_single: mode == SyncMode::Single,
        }
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
        self.slots.size
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
}

fn set_htd(side: &HeadTail, mode: SyncMode, v: u32, cap: u32) -> bool {
    if mode != SyncMode::Rts || v == 0 || v > cap {
        return false;
    }
    // Relaxed: a throttle read afresh by every head move.
    side.htd_max.store(v, Ordering::Relaxed);
    true
}

pub(crate) fn name_bytes(buf: &[u8; 32]) -> &[u8] {
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
