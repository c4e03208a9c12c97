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
//!   before; the waiter sleeps on a futex on the tail word ([`park_on_tail`]) and the
//!   thread that moves the tail wakes the waiter whose claim starts at the new position
//!   ([`wake_tail_waiters`]). Asleep, the waiter is off the run queue, so the preempted
//!   thread gets the CPU, and it wakes as soon as its turn comes rather than at the end
//!   of a timed sleep: a chain of k waiters behind one preempted thread drains at the
//!   scheduler's wake-up latency per link, where 50 µs sleeps (a 1 µs request stretched
//!   by the default timer slack) cost about 50 µs per link. `sched_yield` does not help
//!   here on Linux's EEVDF scheduler: each yield pushes the yielder's deadline back by a
//!   slice, so the waiter that must publish next is scheduled last;
//! * HTS and RTS waits can be ended by any of the waiters (the side idle again, the
//!   head back within reach), so the waiters `sched_yield` and stay runnable: the first
//!   one scheduled goes on. With the sleep instead, the side sat idle until a sleeper
//!   woke, and both modes slowed from seconds to stalls.
//!
//! The fourth wait is the caller's own: a program that retries a failed enqueue or
//! dequeue at once (a full or empty ring) keeps the CPU from the thread it waits for.
//! [`wait_for_other_side`] makes such a failure, when the other side is multi and has an
//! operation in flight, wait for that operation the same way (spin, then one futex sleep
//! until that side's tail moves) before it reports the failure; a ring that is full or
//! empty with nothing in flight fails at once as before.
//!
//! What the path where nobody waits pays for this: after each multi tail store, a
//! compare of the side's waiter count with 0 and a branch not taken. The sleep and the
//! wake are assembly blocks (`sys`) that sit out of line and save the registers they
//! use, so the compiler sees statements that clobber only the flags; a call into libc
//! (or a Rust function) on the cold branch made the values live across it take
//! callee-saved registers or stack slots on the hot path too (4-10 instructions per
//! enqueue/dequeue pair under callgrind).

use crate::flags::SyncMode;
use crate::layout::{pos, HeadTail};
use crate::primitive::{sleep_briefly, spin_loop, yield_now, Ordering};

/// The 32-bit half of `side`'s tail word that holds the position (the high half).
#[cfg(all(
    not(all(target_arch = "x86_64", target_os = "linux")),
    not(any(loom, miri))
))]
#[inline(always)]
fn tail_pos_word(side: &HeadTail) -> *const u32 {
    let w = side.tail.as_ptr().cast::<u32>().cast_const();
    // The high half is at +4 on a little-endian machine.
    // SAFETY: inside the 8-byte tail word.
    unsafe { w.add(usize::from(cfg!(target_endian = "little"))) }
}

/// The futex bit of a waiter for the tail to reach `until` (`None`: any move). A
/// multi side's tail waiter needs one particular position, the start of its claim; a
/// publisher wakes only the waiters whose bit is that of the position it stored, so a
/// publication wakes (about) the one thread that publishes next rather than every
/// sleeper, which would each be scheduled only to go back to sleep (the first version,
/// waking all, measured barely better than the 50 µs sleep with 8+8 threads on two
/// CPUs). Positions of consecutive claims differ in their low bits by the claim sizes,
/// often all equal, so the bit comes from a multiplicative hash of the whole position.
#[cfg(not(any(loom, miri)))]
#[inline(always)]
fn wake_bit(until: Option<u32>) -> u32 {
    match until {
        Some(p) => 1 << (p.wrapping_mul(0x9E37_79B1) >> 27),
        None => u32::MAX,
    }
}

/// Sleep until `side`'s tail position may have moved from `seen` (a futex on it), or
/// `sys::PARK_TIMEOUT_NS` passes. The threads that move a multi side's tail call
/// [`wake_tail_waiters`] after their store.
///
/// No lost wake-up (the Dekker pattern, labels as in `claim`): W1 the waiter's
/// increment of the count and F1 its SeqCst fence come before W2, its load of the tail;
/// the publisher does P1, its Release tail store, then P2, a load of the count. If W2
/// still reads the old tail, the waiter sleeps only if the kernel, comparing the word
/// under its futex lock, still finds the old position; a publisher whose P1 the kernel
/// does not see yet and whose P2 ran before W1 reached it is the one window left (the
/// publisher side has no store-load fence: that is the pinned fast path). The store is
/// then sitting in the publisher's store buffer, which drains in nanoseconds, while the
/// waiter goes through a fence and a system call entry; and if it ever happened the
/// sleep would end at the timeout, a delay and not a hang.
#[inline(always)]
pub(crate) fn park_on_tail(side: &HeadTail, seen: u32, until: Option<u32>) {
    #[cfg(all(target_arch = "x86_64", target_os = "linux", not(any(loom, miri))))]
    // SAFETY: `side` is a live HeadTail of a mapped ring. W1, F1 and W2 are in there.
    unsafe {
        crate::sys::park_on_tail_asm(side, seen, wake_bit(until))
    };
    #[cfg(all(
        not(all(target_arch = "x86_64", target_os = "linux")),
        not(any(loom, miri))
    ))]
    {
        let waiters = side.tail_waiters();
        // W1.
        waiters.fetch_add(1, Ordering::SeqCst);
        // F1.
        core::sync::atomic::fence(Ordering::SeqCst);
        // W2.
        if pos(side.tail.load(Ordering::SeqCst)) == seen {
            // SAFETY: the tail word is live shared memory (the handle keeps it mapped)
            // and 8-aligned, so its halves are 4-aligned.
            unsafe {
                crate::sys::futex_wait(
                    tail_pos_word(side),
                    seen,
                    wake_bit(until),
                    crate::sys::PARK_TIMEOUT_NS,
                )
            };
        }
        waiters.fetch_sub(1, Ordering::Relaxed);
    }
    // Under loom and Miri the park is a yield (loom: the model checker runs another
    // thread) or a short sleep; the count is kept all the same.
    #[cfg(any(loom, miri))]
    {
        let _ = (seen, until);
        side.tail_waiters().fetch_add(1, Ordering::SeqCst);
        sleep_briefly();
        side.tail_waiters().fetch_sub(1, Ordering::Relaxed);
    }
}

/// After a thread moved `side`'s tail (P1, its Release store): wake the threads asleep
/// on it, if any (P2: one relaxed load of a word on the line the store just wrote; see
/// [`park_on_tail`] for why it needs no fence).
#[inline(always)]
pub(crate) fn wake_tail_waiters(side: &HeadTail, tail: u32) {
    // P2, with the wake out of line (`sys::wake_tail_waiters_asm`).
    #[cfg(all(target_arch = "x86_64", target_os = "linux", not(any(loom, miri))))]
    {
        let _ = tail;
        // SAFETY: `side` is a live HeadTail of a mapped ring.
        unsafe { crate::sys::wake_tail_waiters_asm(side) };
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(any(loom, miri)))))]
    if side.tail_waiters().load(Ordering::Relaxed) != 0 {
        core::hint::cold_path();
        #[cfg(not(any(loom, miri)))]
        // SAFETY: as in park_on_tail.
        unsafe {
            crate::sys::futex_wake(tail_pos_word(side), wake_bit(Some(tail)))
        };
    }
}

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
    pub(crate) fn spun_out(&self) -> bool {
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
            // The operation in flight wakes us when it publishes.
            park_on_tail(other, pos(other.tail.load(Ordering::Relaxed)), None);
            return;
        }
        wait.snooze();
    }
}
