//! Relaxed tail sync ([`SyncMode::Rts`](crate::SyncMode::Rts)), after DPDK's
//! `rte_ring_rts_elem_pvt.h`: head and tail are (position, count) pairs in one 64-bit
//! word each. A head move bumps the head count; a tail update bumps the tail count, and
//! the thread whose bump makes the counts equal (the last one in flight) moves the tail
//! position to the head's. No thread waits for a particular other one, except that the
//! head may run at most `htd_max` ahead of the tail: past that, head moves wait, backing
//! off to the scheduler after a bounded spin (`backoff`), since the threads they wait
//! for may be preempted. Labels in `claim`.

use crate::backoff::{Backoff, Then};
use crate::claim::{offer, Behavior, Claim, Sides};
use crate::layout::{lo, pack, pos, HeadTail};
use crate::primitive::Ordering;

#[inline(always)]
pub(crate) fn head<const PROD: bool>(s: Sides<'_>, n: u32, b: Behavior) -> Claim {
    let me = s.me;
    // A2: pairs with R2.
    let mut old = me.head.load(Ordering::Acquire);
    loop {
        // Relaxed: only a throttle, re-checked on every pass.
        let max = me.htd_max.load(Ordering::Relaxed);
        if too_far(me, old, max) {
            core::hint::cold_path();
            old = wait_distance(me, max);
        }
        let c = offer::<PROD>(s, pos(old), n, b);
        if c.n == 0 {
            return c;
        }
        let new = pack(c.old.wrapping_add(c.n), lo(old).wrapping_add(1));
        // R2 on success / A2 on failure.
        match me
            .head
            .compare_exchange_weak(old, new, Ordering::Release, Ordering::Acquire)
        {
            Ok(_) => return c,
            Err(cur) => old = cur,
        }
    }
}

/// Whether the head word `head` is more than `max` ahead of the tail.
#[inline(always)]
fn too_far(me: &HeadTail, head: u64, max: u32) -> bool {
    // Relaxed: a throttle; the head move that follows reloads what it relies on.
    pos(head).wrapping_sub(pos(me.tail.load(Ordering::Relaxed))) > max
}

/// Wait until the head is within `max` of the tail; returns the head word then.
#[inline(always)]
fn wait_distance(me: &HeadTail, max: u32) -> u64 {
    let mut wait = Backoff::new(Then::Yield);
    loop {
        wait.snooze();
        // A2.
        let old = me.head.load(Ordering::Acquire);
        if !too_far(me, old, max) {
            return old;
        }
    }
}

#[inline(always)]
pub(crate) fn tail(me: &HeadTail, publish: Ordering) {
    // A4: pairs with R4 of other threads of this side.
    let mut ot = me.tail.load(Ordering::Acquire);
    loop {
        // Relaxed: ordered after the Acquire on `ot` (A4), which is all we need to see
        // every head reservation whose tail increment `ot` includes.
        let h = me.head.load(Ordering::Relaxed);
        let cnt = lo(ot).wrapping_add(1);
        let p = if cnt == lo(h) { pos(h) } else { pos(ot) };
        // R1 + R4 on success (`publish`: Release, or SeqCst for `Ring::enqueue_seqcst`)
        // / A4 on failure.
        match me
            .tail
            .compare_exchange_weak(ot, pack(p, cnt), publish, Ordering::Acquire)
        {
            Ok(_) => return,
            Err(cur) => ot = cur,
        }
    }
}
