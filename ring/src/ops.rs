//! The funnel every operation goes through: one dispatch on the side's mode per call,
//! into a body specialised for that mode, so the head move, the slot copy and the tail
//! update of one mode are straight-line code (DPDK's `__rte_ring_do_enqueue_elem` and
//! friends, with the mode chosen per call).

use crate::backoff::{maybe_in_flight, wait_for_other_side};
use crate::c11;
use crate::claim::{Behavior, Claim, Sides};
use crate::copy::{is_word, SLOTS_BY_RING};
use crate::flags::SyncMode;
use crate::handle::Ring;
use crate::hts;
use crate::opt;
use crate::primitive::Ordering;
use crate::rts;

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

// A claim as an outcome: its count and what is left beside it.
impl From<Claim> for Enqueued {
    #[inline(always)]
    fn from(Claim { n, avail, .. }: Claim) -> Self {
        let free_space = avail - n;
        Enqueued { n, free_space }
    }
}

impl From<Claim> for Dequeued {
    #[inline(always)]
    fn from(Claim { n, avail, .. }: Claim) -> Self {
        let available = avail - n;
        Dequeued { n, available }
    }
}

/// [`SyncMode::Multi`] as the const parameter of [`Ring::enq_ms`] / [`Ring::deq_m`].
pub(crate) const MULTI: u8 = SyncMode::Multi as u8;

/// The [`SyncMode`] a const `M` of `enq_ms`/`deq_m` stands for (folds at compile time).
#[inline(always)]
const fn mode_of(m: u8) -> SyncMode {
    match m {
        x if x == SyncMode::Single as u8 => SyncMode::Single,
        x if x == SyncMode::Multi as u8 => SyncMode::Multi,
        x if x == SyncMode::Rts as u8 => SyncMode::Rts,
        _ => SyncMode::Hts,
    }
}

/// Head move of `mode` on side `s`.
#[inline(always)]
pub(crate) fn head_on<const PROD: bool>(
    s: Sides<'_>,
    mode: SyncMode,
    n: u32,
    b: Behavior,
) -> Claim {
    match mode {
        SyncMode::Single => c11::head_single::<PROD>(s, n, b),
        // An optimistic side's words are a multi side's (its large dequeues are multi
        // ones; `opt`).
        SyncMode::Multi | SyncMode::Optimistic => c11::head_multi::<PROD>(s, n, b),
        SyncMode::Rts => rts::head::<PROD>(s, n, b),
        SyncMode::Hts => hts::head::<PROD>(s, n, b),
    }
}

/// Tail update of `mode` for a claim `old..old+n` on side `s`.
#[inline(always)]
pub(crate) fn tail_on(s: Sides<'_>, mode: SyncMode, old: u32, n: u32) {
    tail_with(s, mode, old, n, Ordering::Release);
}

/// [`tail_on`] with the ordering of the publishing store or CAS given: `Release` (R1),
/// or `SeqCst` for [`Ring::enqueue_seqcst`].
#[inline(always)]
fn tail_with(s: Sides<'_>, mode: SyncMode, old: u32, n: u32, publish: Ordering) {
    match mode {
        SyncMode::Single => c11::tail_single(s.me, old, n, publish),
        SyncMode::Multi | SyncMode::Optimistic => c11::tail_multi(s.me, old, n, publish),
        SyncMode::Rts => rts::tail(s.me, publish),
        SyncMode::Hts => hts::tail(s.me, old, n, publish),
    }
}

/// An operation asking for `n` got nothing: if the other side may have an operation in
/// flight, wait for it before reporting the failure (`backoff::wait_for_other_side`).
#[inline(always)]
fn failed(s: Sides<'_>, n: u32) {
    if n != 0 && maybe_in_flight(s.other) {
        core::hint::cold_path();
        wait_for_other_side(s.other);
    }
}

/// Mode for an explicit single-thread entry point: RTS/HTS sides keep their own protocol
/// (which is also correct for one thread).
#[inline(always)]
pub(crate) fn as_single(m: SyncMode) -> SyncMode {
    match m {
        SyncMode::Single | SyncMode::Multi => SyncMode::Single,
        other => other,
    }
}

/// Mode for an explicit multi-thread entry point: RTS/HTS/optimistic sides keep their own
/// protocol (which is multi-thread safe too).
#[inline(always)]
pub(crate) fn as_multi(m: SyncMode) -> SyncMode {
    match m {
        SyncMode::Single | SyncMode::Multi => SyncMode::Multi,
        other => other,
    }
}

impl<T: Copy> Ring<T> {
    /// Enqueue through the protocol of `mode`.
    #[inline(always)]
    pub(crate) fn enq(&self, mode: SyncMode, src: *const T, n: u32, b: Behavior) -> Enqueued {
        match mode {
            SyncMode::Single => self.enq_ms::<{ SyncMode::Single as u8 }, SLOTS_BY_RING>(src, n, b),
            SyncMode::Multi => self.enq_ms::<MULTI, SLOTS_BY_RING>(src, n, b),
            SyncMode::Rts => self.enq_ms::<{ SyncMode::Rts as u8 }, SLOTS_BY_RING>(src, n, b),
            SyncMode::Hts => self.enq_ms::<{ SyncMode::Hts as u8 }, SLOTS_BY_RING>(src, n, b),
            // Producers are never optimistic (`sync_modes` refuses it).
            SyncMode::Optimistic => unreachable!("optimistic is a consumer mode"),
        }
    }

    /// Dequeue through the protocol of `mode`.
    #[inline(always)]
    pub(crate) fn deq(&self, mode: SyncMode, dst: *mut T, n: u32, b: Behavior) -> Dequeued {
        match mode {
            SyncMode::Single => self.deq_m::<{ SyncMode::Single as u8 }>(dst, n, b),
            SyncMode::Multi => self.deq_m::<MULTI>(dst, n, b),
            SyncMode::Rts => self.deq_m::<{ SyncMode::Rts as u8 }>(dst, n, b),
            SyncMode::Hts => self.deq_m::<{ SyncMode::Hts as u8 }>(dst, n, b),
            SyncMode::Optimistic => self.deq_opt(dst, n, b),
        }
    }

    /// Enqueue with the mode (`M`, a [`SyncMode`] as `u8`) and the slot-copy kind
    /// (`SLOTS`, `copy::SLOTS_*`) fixed: the typed MP/MC handles know whether their
    /// ring's slots are atomic, so their puts carry no test for it.
    #[inline(always)]
    pub(crate) fn enq_ms<const M: u8, const SLOTS: u8>(
        &self,
        src: *const T,
        n: u32,
        b: Behavior,
    ) -> Enqueued {
        let mode = mode_of(M);
        let s = self.sides::<true>();
        let c = head_on::<true>(s, mode, n, b);
        if c.n == 0 {
            failed(s, n);
            return c.into();
        }
        // SAFETY: the head move gave us slots c.old..c.old+c.n; src holds >= n >= c.n.
        unsafe { self.slots.write::<SLOTS>(c.old, src, c.n) };
        tail_on(s, mode, c.old, c.n);
        c.into()
    }

    /// Enqueue of one object in the producer side's own mode whose publication (the
    /// tail store or CAS) is `SeqCst` rather than `Release`.
    ///
    /// This is for a producer that, after publishing, loads a flag its consumer sets
    /// before checking the ring (a store-buffer / Dekker handshake, such as a sleep
    /// flag): with the publication `SeqCst`, the producer's later `SeqCst` load of the
    /// flag and the consumer's `SeqCst` fence between its flag store and its tail load
    /// make one of the two see the other, with no separate fence on the producer side.
    /// On x86 a `SeqCst` store is an `xchg` and a `SeqCst` CAS is the `lock cmpxchg` a
    /// `Release` one already is (RTS), where a fence would add an `mfence`.
    #[inline]
    pub fn enqueue_seqcst(&self, obj: T) -> Result<(), T> {
        let s = self.sides::<true>();
        let mode = self.prod_mode;
        let c = head_on::<true>(s, mode, 1, Behavior::Bulk);
        if c.n == 0 {
            failed(s, 1);
            return Err(obj);
        }
        // SAFETY: the head move gave us slot c.old; `obj` is one element.
        unsafe { self.slots.write::<SLOTS_BY_RING>(c.old, &obj, 1) };
        tail_with(s, mode, c.old, 1, Ordering::SeqCst);
        Ok(())
    }

    /// Dequeue with the mode fixed (`M`, a [`SyncMode`] as `u8`). The side references
    /// are taken once, before the copy (see `Sides`).
    #[inline(always)]
    pub(crate) fn deq_m<const M: u8>(&self, dst: *mut T, n: u32, b: Behavior) -> Dequeued {
        let mode = mode_of(M);
        let s = self.sides::<false>();
        let c = head_on::<false>(s, mode, n, b);
        if c.n == 0 {
            failed(s, n);
            return c.into();
        }
        // SAFETY: the head move gave us published slots c.old..c.old+c.n; dst has room.
        unsafe { self.slots.read(c.old, dst, c.n) };
        tail_on(s, mode, c.old, c.n);
        c.into()
    }

    /// Optimistic dequeue: copy-then-claim up to `opt::EARLY_COPY_MAX`, the multi
    /// protocol above that.
    #[inline(always)]
    pub(crate) fn deq_opt(&self, dst: *mut T, n: u32, b: Behavior) -> Dequeued {
        if !is_word::<T>() || n > opt::EARLY_COPY_MAX {
            return self.deq_m::<MULTI>(dst, n, b);
        }
        let s = self.sides::<false>();
        // SAFETY: only reached on a ring whose consumer side is optimistic (the mode
        // dispatch, or an `MpOptRing` checked at creation), so its slot array is atomic
        // and `T` one 8-byte word; n <= EARLY_COPY_MAX; `dst` has room for n (callers).
        let c = unsafe { opt::dequeue_small(s, &self.slots, dst, n, b) };
        if c.n == 0 {
            failed(s, n);
        }
        c.into()
    }
}
