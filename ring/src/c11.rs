//! Head moves and tail updates of single and multi sides, as DPDK's
//! `rte_ring_c11_pvt.h` does them with C11 atomics (labels in `claim`).
//!
//! * Single ([`SyncMode::Single`](crate::SyncMode::Single)): one thread owns the side; it
//!   computes its claim from its own head and the other side's tail (or a cached copy of
//!   it) and stores head and tail together when it is done.
//! * Multi ([`SyncMode::Multi`](crate::SyncMode::Multi)): threads claim by CAS on the
//!   head and publish in claim order, each waiting until the tail reaches its claim
//!   (`tail_multi`). That wait is what a preempted thread stretches; it backs off to the
//!   scheduler after a bounded spin (`backoff`).

use crate::backoff::{park_on_tail, wake_tail_waiters, Backoff, Then};
use crate::claim::{avail, offer, take, Behavior, Claim, Sides};
use crate::layout::{lo, pack, pos, HeadTail, NO_CACHE};
use crate::primitive::{spin_loop, Ordering};

#[inline(always)]
pub(crate) fn head_single<const PROD: bool>(s: Sides<'_>, n: u32, b: Behavior) -> Claim {
    let me = s.me;
    // Relaxed: only this (single) thread writes this side's head.
    let head = pos(me.head.load(Ordering::Relaxed));
    // The cached copy of the other side's tail is kept only on a side created single. On
    // a side created multi, an explicit single-thread call (`sp_enqueue`...) reads the
    // other tail every time, as DPDK's does: the multi path then never has to touch
    // `cached` (see head_multi).
    // Relaxed: `cached` is this thread's own note; the value in it was loaded with
    // Acquire (A1) when it was stored.
    let c = if s.created_single {
        me.cached.load(Ordering::Relaxed)
    } else {
        NO_CACHE
    };
    let mut room = if c == NO_CACHE {
        0
    } else {
        avail::<PROD>(s.capacity, head, lo(c))
    };
    if room < n || c == NO_CACHE {
        // A1: pairs with R1 of the other side.
        let t = pos(s.other.tail.load(Ordering::Acquire));
        if s.created_single {
            me.cached.store(u64::from(t), Ordering::Relaxed);
        }
        room = avail::<PROD>(s.capacity, head, t);
    }
    // The head word is not moved here: between the head and the tail move nobody but
    // this thread may use the side (single contract), and nobody reads a single side's
    // head in that window (the other side reads only tails; `dump` is a snapshot).
    // `tail_single` moves head and tail together, so one store per word per operation,
    // and a peek/zero-copy reservation that commits fewer slots than it claimed needs
    // nothing undone.
    Claim {
        old: head,
        n: take(room, n, b),
        avail: room,
    }
}

#[inline(always)]
pub(crate) fn tail_single(me: &HeadTail, old: u32, n: u32, publish: Ordering) {
    let new = pack(old.wrapping_add(n), 0);
    // Relaxed: single writer (see head_single); read back by this thread, and by the
    // multi paths of this side only after whatever ordered them after this call (the
    // single contract).
    me.head.store(new, Ordering::Relaxed);
    // R1: pairs with A1 on the other side (`publish`: Release, or SeqCst for
    // `Ring::enqueue_seqcst`).
    me.tail.store(new, publish);
}

#[inline(always)]
pub(crate) fn head_multi<const PROD: bool>(s: Sides<'_>, n: u32, b: Behavior) -> Claim {
    let me = s.me;
    // A2: pairs with R2.
    let mut old = me.head.load(Ordering::Acquire);
    loop {
        let c = offer::<PROD>(s, pos(old), n, b);
        if c.n == 0 {
            return c;
        }
        // R2 on success / A2 on failure.
        match me.head.compare_exchange_weak(
            old,
            pack(c.old.wrapping_add(c.n), 0),
            Ordering::Release,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                // Only a side created single keeps a cached tail (see head_single), and
                // it may be stale now that a multi path moved this side. Relaxed: every
                // writer stores the same value. On a side created multi nothing is
                // touched: under contention a second access to the head line right
                // after the CAS can find it taken by the other core and cost one more
                // transfer (measured: about 8% of a two-core MP/MC get/put loop).
                if s.created_single && me.cached.load(Ordering::Relaxed) != NO_CACHE {
                    me.cached.store(NO_CACHE, Ordering::Relaxed);
                }
                return c;
            }
            Err(cur) => {
                // Another thread moved the head since our load. One spin hint before the
                // retry: without it the two threads' CASes kept colliding on the line
                // (two cores, no mempool cache: with the tail on its own line 1.17 of
                // DPDK's rate with it, 1.04 without; with head and tail on one line, 1.04
                // with it against 0.99 without).
                spin_loop();
                old = cur;
            }
        }
    }
}

/// Publish a multi claim `old..old+n`: wait until the threads that claimed before us have
/// published (the tail reaches `old`), then move the tail past ours.
#[inline(always)]
pub(crate) fn tail_multi(me: &HeadTail, old: u32, n: u32, publish: Ordering) {
    // A3: pairs with R3 of the thread that claimed just before us.
    if pos(me.tail.load(Ordering::Acquire)) != old {
        core::hint::cold_path();
        wait_tail(me, old);
    }
    // R1 + R3 (P1 of `backoff::park_on_tail`; `publish`: Release, or SeqCst for
    // `Ring::enqueue_seqcst`).
    let new = old.wrapping_add(n);
    me.tail.store(pack(new, 0), publish);
    wake_tail_waiters(me, new);
}

/// The slow part of `tail_multi`: the thread before us is still between its claim and
/// its publication (running on another core, or preempted). Out of line so that the
/// common case stays one load and one store.
#[inline(always)]
fn wait_tail(me: &HeadTail, old: u32) {
    let mut wait = Backoff::new(Then::Sleep);
    let mut seen = pos(me.tail.load(Ordering::Relaxed));
    loop {
        if wait.spun_out() {
            // Asleep until a thread before us publishes (it wakes us).
            park_on_tail(me, seen, Some(old));
        } else {
            wait.snooze();
        }
        // A3.
        let t = pos(me.tail.load(Ordering::Acquire));
        if t == old {
            return;
        }
        if t != seen {
            seen = t;
        }
    }
}
