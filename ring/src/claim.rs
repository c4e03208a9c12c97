//! What a head move hands its caller, shared by every synchronisation mode: the
//! bulk/burst choice going in and the claimed range coming out.
//!
//! ## Orderings of the head/tail protocols, labelled at both ends
//!
//! Every mode module (`c11`, `rts`, `hts`, `opt`) names its atomics by these labels:
//!
//! * R1 tail store/CAS, Release -> A1 the other side's tail load, Acquire: publishes the
//!   slots written (producer) or frees the slots read (consumer) before the tail moved.
//! * R2 head CAS success, Release -> A2 same-side head load / CAS failure, Acquire: a
//!   thread that starts from another's head also sees at least the other-side tail that
//!   one saw, so `avail` can never be computed from an older tail against a newer head
//!   and wrap into a huge number.
//! * R3 Multi tail store (R1 too) -> A3 the next same-side thread's wait for it: chains
//!   every earlier thread's slot accesses into the later tail publication.
//! * R4 RTS tail CAS (R1 too) -> A4 same-side tail load / CAS failure: the thread that
//!   finally moves the tail position sees every head reservation counted.
//! * R5 HTS tail store (R1 too) -> A5 same-side word load: the next operation starts
//!   after the previous one's slot accesses and with its view of the other side.
//! * A6 (`Ring::count`) pairs with R1 of the consumer side.
//!
//! The optimistic consumer (`opt`) uses R1/R2/R3 and A1/A2/A3 as a multi consumer does;
//! its early slot copy is ordered before a producer's overwrite by R1, its tail store.

use crate::layout::{pos, HeadTail};
use crate::primitive::Ordering;

/// What one operation works on: its own side's words, the other side's, and the numbers
/// a head move needs. Built once per operation, before the slot copy (after a copy
/// through a raw pointer the compiler must assume the handle changed and would reload
/// the header pointer in front of the tail update: measured at about 10% of a
/// single-thread MP/MC get/put loop).
#[derive(Clone, Copy)]
pub(crate) struct Sides<'a> {
    /// This side (producer for an enqueue, consumer for a dequeue).
    pub me: &'a HeadTail,
    /// The other side; only its tail is read.
    pub other: &'a HeadTail,
    /// Usable slots of the ring.
    pub capacity: u32,
    /// Whether this side was created single, so keeps a cached copy of the other tail
    /// (`c11`).
    pub created_single: bool,
}

/// Bulk (all or nothing) or burst (as many as fit).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behavior {
    Bulk,
    Burst,
}

/// A successful head move: `n` slots from `old` belong to the caller.
#[derive(Clone, Copy)]
pub(crate) struct Claim {
    pub old: u32,
    pub n: u32,
    /// Free slots (producer) or entries (consumer) seen before the claim.
    pub avail: u32,
}

/// How many of `n` to take when `avail` are there.
#[inline(always)]
pub(crate) fn take(avail: u32, n: u32, b: Behavior) -> u32 {
    if n <= avail {
        n
    } else if b == Behavior::Bulk {
        0
    } else {
        avail
    }
}

/// Free slots (`PROD`) or entries (consumer) for a side at `head` whose other side's tail
/// is `other_tail`.
#[inline(always)]
pub(crate) fn avail<const PROD: bool>(capacity: u32, head: u32, other_tail: u32) -> u32 {
    if PROD {
        capacity.wrapping_add(other_tail).wrapping_sub(head)
    } else {
        other_tail.wrapping_sub(head)
    }
}

/// A slice length as a ring count (a length past `u32::MAX` asks for more than any ring
/// holds, so saturating keeps bulk refusing and burst taking what fits).
#[inline(always)]
pub(crate) fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// What a side at `head` can claim of `n` now: loads the other side's tail (A1: pairs
/// with R1 of the other side) and returns the claim a successful head move would make
/// (`n == 0`: nothing to claim, report the failure).
#[inline(always)]
pub(crate) fn offer<const PROD: bool>(s: Sides<'_>, head: u32, n: u32, b: Behavior) -> Claim {
    // A1.
    let t = pos(s.other.tail.load(Ordering::Acquire));
    let room = avail::<PROD>(s.capacity, head, t);
    Claim {
        old: head,
        n: take(room, n, b),
        avail: room,
    }
}
