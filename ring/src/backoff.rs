//! How a thread waits for another thread: a bounded spin, then the scheduler.
//!
//! Three waits in the ring depend on another thread of the same side making progress: a
//! multi (or optimistic) side's tail update waits for the threads that claimed before it
//! to publish (`c11::tail_multi`), an HTS head move waits for the operation in flight to
//! finish (`hts::head`), and an RTS head move waits while the head has run `htd_max`
//! ahead of the tail (`rts::head`). On cores of their own the awaited thread is running
//! and the wait lasts for its slot copy, well under a microsecond. With more threads than
//! cores, the awaited thread may have been preempted between its head CAS and its tail
//! store; a waiter that only spins then burns its time slice, every later thread of the
//! side joins it, and the ring advances by about one operation per scheduler decision
//! (8 producers and 8 consumers on two cores through a 1024-slot MP/MC ring moved about
//! 700 elements/s for minutes, where RTS moved 16 M in about a second).
//!
//! [`Backoff::snooze`] spins with a spin-loop hint for the first [`SPIN_LIMIT`] rounds,
//! re-reading the awaited word between hints exactly as a plain spin does, so a wait of
//! that length costs what it did before. Past it, each round gives up the CPU, in one of
//! two ways ([`Then`]):
//!
//! * a multi side's tail waits for one particular thread, the one that claimed just
//!   before; the waiter sleeps for the shortest time the kernel grants (a 1 µs request,
//!   about 50-60 µs with the default timer slack), which takes it off the run queue so
//!   the preempted thread gets the CPU. `sched_yield` does not do that on Linux's EEVDF
//!   scheduler: each yield pushes the yielder's deadline back by a slice, so the waiter
//!   that must publish next is scheduled last, and MP/MC still stalled with it;
//! * HTS and RTS waits can be ended by any of the waiters (the side idle again, the
//!   head back within reach), so the waiters `sched_yield` and stay runnable: the first
//!   one scheduled goes on. With the sleep instead, the side sat idle until a sleeper
//!   woke, and both modes slowed from seconds to stalls.
//!
//! The fourth wait is the caller's own: a program that retries a failed enqueue or
//! dequeue at once (a full or empty ring) keeps the CPU from the thread it waits for.
//! [`wait_for_other_side`] makes such a failure, when the other side is multi and has an
//! operation in flight, wait for that operation the same way (spin, then one short
//! sleep) before it reports the failure; a ring that is full or empty with nothing in
//! flight fails at once as before. Without it, 8+8 threads on an MP/MC ring still
//! stalled with the sleeping tail wait.
//!
//! The waits are inlined behind `core::hint::cold_path` and give up the CPU through the
//! `sys` module's inline `syscall` instructions, not calls into libc: a call on even a
//! never-taken branch made the values live across it take callee-saved registers or
//! stack slots on the path where nothing waits (4-8 instructions per enqueue/dequeue
//! pair under callgrind); a `syscall` clobbers only `rax`, `rcx` and `r11`.

use crate::flags::SyncMode;
use crate::layout::HeadTail;
use crate::primitive::{sleep_briefly, spin_loop, yield_now, Ordering};

/// Spin-loop hints before a waiter starts sleeping. 128 hints last 1-20 µs depending on
/// the CPU's `pause` latency: many times a running thread's slot copy (so threads on
/// cores of their own never reach the sleep) and a small fraction of a time slice.
/// Under loom a few, to keep the models small.
#[cfg(not(loom))]
pub(crate) const SPIN_LIMIT: u32 = 128;
#[cfg(loom)]
pub(crate) const SPIN_LIMIT: u32 = 2;

/// What a waiter does once its spin is over.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Then {
    /// Sleep briefly: the wait is for one particular thread (a multi side's tail moves
    /// in claim order), which needs the CPU more than any waiter.
    Sleep,
    /// `sched_yield`: any waiter may go next (an HTS side idle again, an RTS head back
    /// within reach), so the waiters stay runnable and the first one scheduled takes it.
    Yield,
}

/// The state of one wait.
pub(crate) struct Backoff {
    spins: u32,
    then: Then,
}

impl Backoff {
    #[inline(always)]
    pub(crate) const fn new(then: Then) -> Self {
        Backoff { spins: 0, then }
    }

    /// One round of waiting: a spin hint for the first [`SPIN_LIMIT`] rounds, then a
    /// short sleep or a yield each round.
    #[inline(always)]
    pub(crate) fn snooze(&mut self) {
        if self.spins < SPIN_LIMIT {
            self.spins += 1;
            spin_loop();
        } else {
            self.give_up_cpu();
        }
    }

    #[inline(always)]
    fn give_up_cpu(&self) {
        match self.then {
            Then::Sleep => sleep_briefly(),
            Then::Yield => yield_now(),
        }
    }

    /// Whether the wait has passed its spin phase.
    #[inline(always)]
    fn spun_out(&self) -> bool {
        self.spins >= SPIN_LIMIT
    }
}

/// Whether `side` may have an operation between its claim and its publication (its head
/// word differs from its tail word; for HTS, the two halves of its one word differ).
/// Relaxed loads: a hint only, the caller reports its failure either way.
#[inline(always)]
pub(crate) fn maybe_in_flight(side: &HeadTail) -> bool {
    side.head.load(Ordering::Relaxed) != side.tail.load(Ordering::Relaxed)
}

/// An operation found the ring full (empty) and the other side may have an operation
/// in flight. If that side is multi (or optimistic), whose threads publish in claim
/// order, wait for the operation (a bounded spin, then one short sleep) before the
/// failure is reported, so that a caller retrying at once leaves the CPU to a preempted
/// thread of the other side. On an RTS or HTS side any of its threads can make progress,
/// and there the wait measured worse than none (the failing caller returns at once).
#[inline(always)]
pub(crate) fn wait_for_other_side(other: &HeadTail) {
    if !matches!(
        SyncMode::from_u32(other.sync),
        Some(SyncMode::Multi | SyncMode::Optimistic)
    ) {
        return;
    }
    let mut wait = Backoff::new(Then::Sleep);
    while maybe_in_flight(other) {
        if wait.spun_out() {
            wait.give_up_cpu();
            return;
        }
        wait.snooze();
    }
}
