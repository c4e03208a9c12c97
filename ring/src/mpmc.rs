//! Typed MP/MC handles: [`MpMcRing`] (multi producers, multi consumers) and
//! [`MpOptRing`] (multi producers, optimistic consumers), whose calls run their protocol
//! compiled in.

use crate::claim::{len_u32, Behavior};
use crate::copy::{SLOTS_ATOMIC, SLOTS_PLAIN};
use crate::flags::SyncMode;
use crate::handle::Ring;
use crate::ops::{Dequeued, Enqueued, MULTI};

/// A handle to a ring whose producer side was created multi and whose consumer side is
/// multi (`OPT == false`, from [`Ring::into_mp_mc`]) or optimistic (`OPT == true`,
/// [`MpOptRing`], from [`Ring::into_mp_opt`]): its calls run that protocol compiled in,
/// with no per-call dispatch on the modes (checked once, when the handle is made).
/// DPDK's `rte_ring_mp_enqueue_bulk` and friends are fixed at compile time the same way,
/// with the mode left to the caller to get right; here the check makes it safe.
///
/// What it is for: a ring's every call pays for the dispatch on the side's mode that
/// [`Ring`]'s mode-following calls make, a few instructions and a branch, which matter
/// where the ring is most of the work: the mempool's ring backends use these handles
/// for every get and put (`ring_mp_mc` an [`MpOptRing`], a `ring_mp_mc` of a pool made
/// without `MC_OPT_DEQ` an [`MpMcRing`]). One handle type that chose between the two
/// consumer protocols per call measured 10-20% slower on one core than either alone (the
/// two inlined bodies around a branch), hence the two types.
///
/// Dereferences to the [`Ring`] for everything else (counts, dump, the other entry
/// points).
pub struct MpMcRing<T: Copy = usize, const OPT: bool = false>(Ring<T>);

/// Multi producers, optimistic consumers (`MC_OPT_DEQ`, [`SyncMode::Optimistic`]),
/// protocol compiled in. The mempool's default ring backend; see [`SyncMode::Optimistic`]
/// for what the mode is for and what it measured.
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
        self.get(out.as_mut_ptr(), len_u32(out.len()), Behavior::Bulk)
    }

    /// Dequeue up to `out.len()` objects into the front of `out`.
    #[inline]
    pub fn dequeue_burst(&self, out: &mut [T]) -> Dequeued {
        self.get(out.as_mut_ptr(), len_u32(out.len()), Behavior::Burst)
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
    fn get(&self, dst: *mut T, n: u32, b: Behavior) -> Dequeued {
        if OPT {
            self.0.deq_opt(dst, n, b)
        } else {
            self.0.deq_m::<MULTI>(dst, n, b)
        }
    }
}
