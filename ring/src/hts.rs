//! Head/tail sync ([`SyncMode::Hts`](crate::SyncMode::Hts)), after DPDK's
//! `rte_ring_hts_elem_pvt.h`: one 64-bit word per side holds (tail, head), and an
//! operation may claim only when head == tail, so one operation per side is in flight.
//! A thread that finds one in flight waits for it, backing off to the scheduler after a
//! bounded spin (`backoff`), since its owner may be preempted. Peek and zero-copy hold
//! the side the same way until finished. Labels in `claim`.

use crate::backoff::{Backoff, Then};
use crate::claim::{offer, Behavior, Claim, Sides};
use crate::layout::{lo, pack, pos, HeadTail};
use crate::primitive::Ordering;

#[inline(always)]
pub(crate) fn head<const PROD: bool>(s: Sides<'_>, n: u32, b: Behavior) -> Claim {
    let me = s.me;
    // A5: pairs with R5.
    let mut old = me.tail.load(Ordering::Acquire);
    loop {
        // One operation in flight per side: wait until the previous one finished.
        if lo(old) != pos(old) {
            core::hint::cold_path();
            old = wait_idle(me);
        }
        let c = offer::<PROD>(s, lo(old), n, b);
        if c.n == 0 {
            return c;
        }
        // Relaxed on success: nobody synchronises on the reservation itself; the other
        // side reading this word still gets the previous R5 through the release sequence
        // this RMW continues. A5 on failure.
        match me.tail.compare_exchange_weak(
            old,
            pack(c.old, c.old.wrapping_add(c.n)),
            Ordering::Relaxed,
            Ordering::Acquire,
        ) {
            Ok(_) => return c,
            Err(cur) => old = cur,
        }
    }
}

/// Wait until no operation is in flight on the side; returns its word then.
#[inline(always)]
fn wait_idle(me: &HeadTail) -> u64 {
    let mut wait = Backoff::new(Then::Yield);
    loop {
        wait.snooze();
        // A5.
        let old = me.tail.load(Ordering::Acquire);
        if lo(old) == pos(old) {
            return old;
        }
    }
}

#[inline(always)]
pub(crate) fn tail(me: &HeadTail, old: u32, n: u32, publish: Ordering) {
    let new = old.wrapping_add(n);
    // R1 + R5. A plain store is enough: while head != tail no other thread of this side
    // writes the word (their CAS expects head == tail), the other side never does.
    // `publish`: Release, or SeqCst for `Ring::enqueue_seqcst`.
    me.tail.store(pack(new, new), publish);
}
