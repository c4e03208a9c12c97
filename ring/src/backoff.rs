//! How a thread waits for another thread of its own side: a bounded spin, then the
//! scheduler.
//!
//! Three waits in the ring depend on another thread making progress: a multi (and
//! optimistic) side's tail update waits for the threads that claimed before it to
//! publish (`c11::tail_multi`), an HTS head move waits for the operation in flight to
//! finish (`hts::head`), and an RTS head move waits while the head has run `htd_max`
//! ahead of the tail (`rts::head`). On cores of their own the awaited thread is running
//! and the wait lasts for its slot copy, well under a microsecond. When there are more
//! threads than cores, the awaited thread may have been preempted between its head CAS
//! and its tail store; a waiter that only spins then burns its whole time slice, and
//! every later thread of the side joins it, so the ring advances by one operation per
//! scheduler tick (measured before this module existed: 8 producers and 8 consumers on
//! two cores through a 1024-slot MP/MC ring moved about 700 elements/s for minutes).
//!
//! [`Backoff::snooze`] spins with a spin-loop hint for the first [`SPIN_LIMIT`] rounds,
//! re-reading the awaited word between hints exactly as a plain spin does, so a wait of
//! that length costs the same as before; past it, every round calls `sched_yield`, which
//! hands the CPU to the preempted thread if it is runnable there (and costs about a
//! microsecond otherwise). The waits stay unbounded (the protocols need the awaited
//! thread to finish) but a preempted thread now gets the CPU back within a few
//! scheduler decisions instead of a whole time slice per waiter.
//!
//! The wait loops live out of line (`#[cold]`): the first check of the awaited word
//! stays inline, so the uncontended path runs the same instructions as a plain spin.

use crate::primitive::{spin_loop, yield_now};

/// Spin-loop hints before a waiter starts yielding. 128 hints last 1-20 µs depending on
/// the CPU's `pause` latency, many times a running thread's slot copy (so pinned threads
/// never reach the yield) and a small fraction of a scheduler time slice.
pub(crate) const SPIN_LIMIT: u32 = 128;

/// The state of one wait.
pub(crate) struct Backoff {
    spins: u32,
}

impl Backoff {
    #[inline(always)]
    pub(crate) const fn new() -> Self {
        Backoff { spins: 0 }
    }

    /// One round of waiting: a spin hint for the first [`SPIN_LIMIT`] rounds, a
    /// `sched_yield` after that.
    #[inline(always)]
    pub(crate) fn snooze(&mut self) {
        if self.spins < SPIN_LIMIT {
            self.spins += 1;
            spin_loop();
        } else {
            yield_now();
        }
    }
}
