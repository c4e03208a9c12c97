//! Zero-copy enqueue and dequeue, after DPDK's `rte_ring_peek_zc.h`: a start call claims
//! a range on a single or HTS side (a peek `Reservation`) and hands out the slots
//! themselves, as up to two runs split at the wrap, to be written or read in place.

use core::mem::MaybeUninit;

use crate::claim::Behavior;
use crate::flags::SyncMode;
use crate::handle::Ring;
use crate::peek::{reservation_accessors, Reservation};
use crate::{Error, Result};

/// A zero-copy enqueue in progress ([`Ring::enqueue_zc_bulk_start`]). Dropping it
/// enqueues nothing.
pub struct ZcEnqueue<'a, T: Copy>(Reservation<'a, T, true>);

reservation_accessors!(
    ZcEnqueue,
    "Slots",
    free_space,
    "Free slots after the reservation, as seen by it."
);

impl<T: Copy> ZcEnqueue<'_, T> {
    /// The reserved slots, in ring order, as up to two runs (the second is empty unless
    /// the reservation wraps).
    pub fn slots(&mut self) -> (&mut [MaybeUninit<T>], &mut [MaybeUninit<T>]) {
        let slots = &self.0.ring.slots;
        let c = self.0.claim;
        let ((p1, n1), (p2, n2)) = slots.runs(c.old, c.n);
        slots.tracker.write(c.old & slots.mask, c.n);
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
        self.0.commit(n)
    }
}

/// A zero-copy dequeue in progress ([`Ring::dequeue_zc_bulk_start`]). Dropping it
/// consumes nothing.
pub struct ZcDequeue<'a, T: Copy>(Reservation<'a, T, false>);

reservation_accessors!(
    ZcDequeue,
    "Entries",
    available,
    "Entries left behind the claimed ones, as seen by the claim."
);

impl<T: Copy> ZcDequeue<'_, T> {
    /// The claimed entries, in ring order, as up to two runs.
    pub fn slots(&self) -> (&[T], &[T]) {
        let slots = &self.0.ring.slots;
        let c = self.0.claim;
        let ((p1, n1), (p2, n2)) = slots.runs(c.old, c.n);
        slots.tracker.read(c.old & slots.mask, c.n);
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
        self.0.commit(n)
    }
}

impl<T: Copy> Ring<T> {
    /// Zero-copy enqueue: reserve exactly `n` slots (or none) and get them as up to two
    /// slices to write in place. Single or HTS producer side only, and not on a ring with
    /// optimistic consumers (see [`Ring::enqueue_zc_burst_start`]).
    pub fn enqueue_zc_bulk_start(&self, n: u32) -> Result<ZcEnqueue<'_, T>> {
        self.zc_enq(n, Behavior::Bulk)
    }

    /// Zero-copy enqueue of up to `n` slots; see [`Ring::enqueue_zc_bulk_start`].
    ///
    /// Refused on a ring with optimistic consumers: the caller writes the slots with
    /// plain stores, and a consumer about to lose its claim may be reading those slots
    /// at the same time, which only atomic writes make defined.
    pub fn enqueue_zc_burst_start(&self, n: u32) -> Result<ZcEnqueue<'_, T>> {
        self.zc_enq(n, Behavior::Burst)
    }

    /// Zero-copy dequeue: claim exactly `n` entries (or none) and read them in place.
    /// Single or HTS consumer side only.
    pub fn dequeue_zc_bulk_start(&self, n: u32) -> Result<ZcDequeue<'_, T>> {
        Reservation::start(self, n, Behavior::Bulk, "start a zero-copy dequeue").map(ZcDequeue)
    }

    /// Zero-copy dequeue of up to `n` entries; see [`Ring::dequeue_zc_bulk_start`].
    pub fn dequeue_zc_burst_start(&self, n: u32) -> Result<ZcDequeue<'_, T>> {
        Reservation::start(self, n, Behavior::Burst, "start a zero-copy dequeue").map(ZcDequeue)
    }

    fn zc_enq(&self, n: u32, b: Behavior) -> Result<ZcEnqueue<'_, T>> {
        const OP: &str = "start a zero-copy enqueue";
        if self.cons_mode == SyncMode::Optimistic {
            return Err(Error::ModeUnsupported {
                op: OP,
                name: self.name(),
                side: "consumer",
                mode: SyncMode::Optimistic,
            });
        }
        Reservation::start(self, n, b, OP).map(ZcEnqueue)
    }
}
