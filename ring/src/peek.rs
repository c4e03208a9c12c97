//! Peek (two-phase) enqueue and dequeue, after DPDK's `rte_ring_peek.h`: a start call
//! claims a range on a single or HTS side and holds the side; `finish` commits all or
//! part of it, and dropping commits nothing. The claimed range itself is a
//! [`Reservation`], which `zero_copy` shares.

use crate::claim::{len_u32, Behavior, Claim};
use crate::copy::SLOTS_BY_RING;
use crate::flags::SyncMode;
use crate::handle::Ring;
use crate::ops::{head_on, tail_on};
use crate::{Error, Result};

/// A claimed range on one side, committed by `commit` (or, with 0, on drop).
pub(crate) struct Reservation<'a, T: Copy, const PROD: bool> {
    pub ring: &'a Ring<T>,
    mode: SyncMode,
    pub claim: Claim,
    done: bool,
}

impl<'a, T: Copy, const PROD: bool> Reservation<'a, T, PROD> {
    /// Claim up to `n` on the `PROD` side, which must be single or HTS (the only modes in
    /// which a claim may be held open: one operation per side in flight).
    pub(crate) fn start(ring: &'a Ring<T>, n: u32, b: Behavior, op: &'static str) -> Result<Self> {
        let (mode, side) = if PROD {
            (ring.prod_mode, "producer")
        } else {
            (ring.cons_mode, "consumer")
        };
        if !matches!(mode, SyncMode::Single | SyncMode::Hts) {
            return Err(Error::ModeUnsupported {
                op,
                name: ring.name(),
                side,
                mode,
            });
        }
        let claim = head_on::<PROD>(ring.sides::<PROD>(), mode, n, b);
        Ok(Reservation {
            ring,
            mode,
            claim,
            done: false,
        })
    }

    /// Slots (producer) or entries (consumer) claimed.
    pub(crate) fn len(&self) -> u32 {
        self.claim.n
    }

    /// What is left on the side after the claim, as seen by it.
    pub(crate) fn left(&self) -> u32 {
        self.claim.avail - self.claim.n
    }

    /// Publish the first `min(n, len())` of the claim and end it; returns how many.
    pub(crate) fn commit(&mut self, n: u32) -> u32 {
        if self.done {
            return 0;
        }
        self.done = true;
        let n = n.min(self.claim.n);
        if self.claim.n != 0 {
            tail_on(self.ring.sides::<PROD>(), self.mode, self.claim.old, n);
        }
        n
    }
}

/// The accessors every reservation wrapper has: `len`, `is_empty`, and what is left on
/// the side (`$left`: free space for an enqueue, entries for a dequeue).
macro_rules! reservation_accessors {
    ($ty:ident, $what:literal, $left:ident, $left_doc:literal) => {
        impl<T: Copy> $ty<'_, T> {
            #[doc = concat!($what, " claimed.")]
            pub fn len(&self) -> u32 {
                self.0.len()
            }

            #[doc = concat!("True if nothing was claimed (no ", $what, ").")]
            pub fn is_empty(&self) -> bool {
                self.0.len() == 0
            }

            #[doc = $left_doc]
            pub fn $left(&self) -> u32 {
                self.0.left()
            }
        }
    };
}
pub(crate) use reservation_accessors;

impl<T: Copy, const PROD: bool> Drop for Reservation<'_, T, PROD> {
    fn drop(&mut self) {
        self.commit(0);
    }
}

/// A peek enqueue in progress ([`Ring::enqueue_bulk_start`]). Dropping it enqueues
/// nothing.
pub struct EnqueuePeek<'a, T: Copy>(Reservation<'a, T, true>);

reservation_accessors!(
    EnqueuePeek,
    "Slots",
    free_space,
    "Free slots after the reservation, as seen by it."
);

impl<T: Copy> EnqueuePeek<'_, T> {
    /// Write the first `min(objs.len(), len())` of `objs` and publish them; returns how
    /// many were enqueued.
    pub fn finish(mut self, objs: &[T]) -> u32 {
        let n = len_u32(objs.len()).min(self.0.claim.n);
        // SAFETY: the reservation owns slots claim.old..+claim.n >= n; objs holds n.
        unsafe {
            self.0
                .ring
                .slots
                .write::<SLOTS_BY_RING>(self.0.claim.old, objs.as_ptr(), n)
        };
        self.0.commit(n)
    }
}

/// A peek dequeue in progress ([`Ring::dequeue_bulk_start`]). Dropping it consumes
/// nothing (the objects stay in the ring).
pub struct DequeuePeek<'a, T: Copy>(Reservation<'a, T, false>);

reservation_accessors!(
    DequeuePeek,
    "Objects copied out and held back from other consumers",
    available,
    "Entries left behind the peeked ones, as seen by the peek."
);

impl<T: Copy> DequeuePeek<'_, T> {
    /// Consume the first `min(n, len())` peeked objects; the rest stay in the ring.
    /// Returns how many were consumed.
    pub fn finish(mut self, n: u32) -> u32 {
        self.0.commit(n)
    }
}

impl<T: Copy> Ring<T> {
    /// Reserve room for exactly `n` objects (or nothing); write them with
    /// [`EnqueuePeek::finish`]. Single or HTS producer side only. Until the reservation
    /// is finished or dropped, no other enqueue may run on this ring (HTS ones wait).
    pub fn enqueue_bulk_start(&self, n: u32) -> Result<EnqueuePeek<'_, T>> {
        Reservation::start(self, n, Behavior::Bulk, "start a peek enqueue").map(EnqueuePeek)
    }

    /// Reserve room for up to `n` objects; see [`Ring::enqueue_bulk_start`].
    pub fn enqueue_burst_start(&self, n: u32) -> Result<EnqueuePeek<'_, T>> {
        Reservation::start(self, n, Behavior::Burst, "start a peek enqueue").map(EnqueuePeek)
    }

    /// Copy exactly `out.len()` objects (or none) out of the ring without consuming
    /// them; [`DequeuePeek::finish`] decides how many are consumed. Single or HTS
    /// consumer side only.
    pub fn dequeue_bulk_start(&self, out: &mut [T]) -> Result<DequeuePeek<'_, T>> {
        self.peek_out(out, Behavior::Bulk)
    }

    /// Copy up to `out.len()` objects out without consuming them; see
    /// [`Ring::dequeue_bulk_start`].
    pub fn dequeue_burst_start(&self, out: &mut [T]) -> Result<DequeuePeek<'_, T>> {
        self.peek_out(out, Behavior::Burst)
    }

    fn peek_out(&self, out: &mut [T], b: Behavior) -> Result<DequeuePeek<'_, T>> {
        let r = Reservation::start(self, len_u32(out.len()), b, "start a peek dequeue")?;
        // SAFETY: the claim covers published slots r.claim.old..+n; `out` has room.
        unsafe { self.slots.read(r.claim.old, out.as_mut_ptr(), r.claim.n) };
        Ok(DequeuePeek(r))
    }
}
