//! Ferroplane's optimistic consumer ([`SyncMode::Optimistic`](crate::SyncMode::Optimistic),
//! `MC_OPT_DEQ`; DPDK has no such mode). A dequeue of up to four entries copies them
//! (into registers) first, then claims them with the head CAS, then publishes the tail
//! as a multi consumer does; usually at once, since nothing is left to do between the
//! claim and the tail store. Larger dequeues run the multi protocol (claim, copy,
//! publish; `c11`), so a large copy never sits inside the claim's window. Both paths
//! use the same head and tail words and mix on one ring.
//!
//! **What it is for.** One user: the mempool's default ring backend, whose gets are
//! mostly one to four objects from threads that also put. There, the window between a
//! consumer's claim and its publication is what the other core waits on, and closing it
//! took dpdk-test's two-core no-cache mempool group to 1.41 of DPDK's rate, against
//! 1.21-1.26 for the plain MP/MC consumer (docs/mempool-perf-history.md).
//!
//! **Why a successful head CAS means the early copy was good.** A producer writes a slot
//! for position `p + size` only after it has seen the consumer tail beyond `p`; the tail
//! never passes the head; and our CAS from `old` succeeds only if no consumer moved the
//! head since we loaded it. So the positions `old..old+k` we copied were claimed by
//! nobody and overwritten by nobody. R1 (our tail store, after the copy) is what a
//! producer of the next lap must see first. A consumer that loses the CAS may have read
//! a slot while a producer of the next lap wrote it: every slot access of such a ring is
//! an 8-byte relaxed atomic (`copy`), which makes that race defined; the copy is thrown
//! away. Labels in `claim`.
//!
//! Not preemption safe in DPDK's sense (the tail is published in claim order); the wait
//! for earlier consumers backs off to the scheduler like the multi one (`backoff`).

use crate::c11::tail_multi;
use crate::claim::{take, Behavior, Claim, Sides};
use crate::copy::SlotArray;
use crate::layout::{pack, pos};
use crate::primitive::{spin_loop, Ordering};

/// Largest dequeue that copies before it claims.
pub(crate) const EARLY_COPY_MAX: u32 = 4;

/// Dequeue up to [`EARLY_COPY_MAX`] entries into `dst`: copy, claim, publish. Returns
/// the claim (`n == 0`: nothing dequeued, `avail` entries seen).
///
/// # Safety
/// `s` is the consumer side of the ring whose slots are `slots`, an atomic array of
/// 8-byte words `T`; `n <= EARLY_COPY_MAX`; `dst` has room for `n` values.
#[inline(always)]
pub(crate) unsafe fn dequeue_small<T: Copy>(
    s: Sides<'_>,
    slots: &SlotArray<T>,
    dst: *mut T,
    n: u32,
    b: Behavior,
) -> Claim {
    let me = s.me;
    // A2: pairs with R2.
    let mut old = me.head.load(Ordering::Acquire);
    loop {
        let oh = pos(old);
        // A1: pairs with R1 of the producers: the slots before their tail are written.
        let t = pos(s.other.tail.load(Ordering::Acquire));
        let room = t.wrapping_sub(oh);
        if room > s.capacity {
            // A head overtaken between our two loads; reload rather than copy a slot
            // that was never published.
            spin_loop();
            // A2.
            old = me.head.load(Ordering::Acquire);
            continue;
        }
        let k = take(room, n, b);
        if k == 0 {
            return Claim {
                old: oh,
                n: 0,
                avail: room,
            };
        }
        // Indices first, second, second-to-last and last (overlapping below four); one
        // entry is one load.
        let (last, i1, i2) = (k - 1, (k - 1).min(1), (k - 1).saturating_sub(1));
        // SAFETY: the array is atomic (caller); positions oh..oh+k are before the
        // producer tail we loaded, so each slot holds a whole value.
        let slot = |i: u32| unsafe { slots.load_word(oh.wrapping_add(i)) };
        let v = if k == 1 {
            [slot(0); 4]
        } else {
            [slot(0), slot(i1), slot(i2), slot(last)]
        };
        // R2 on success / A2 on failure.
        match me.head.compare_exchange_weak(
            old,
            pack(oh.wrapping_add(k), 0),
            Ordering::Release,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                // R1 + R3 (waits for earlier multi-path consumers, if any).
                tail_multi(me, oh, k, Ordering::Release);
                let dst = dst.cast::<u64>();
                // SAFETY: `dst` holds >= n >= k values of T (8-aligned u64 words, since
                // T is one); every index is < k.
                unsafe {
                    dst.write(v[0]);
                    if k > 1 {
                        dst.add(i1 as usize).write(v[1]);
                        dst.add(i2 as usize).write(v[2]);
                        dst.add(last as usize).write(v[3]);
                    }
                }
                return Claim {
                    old: oh,
                    n: k,
                    avail: room,
                };
            }
            Err(cur) => {
                // Another consumer claimed first; our copy may be stale.
                spin_loop();
                old = cur;
            }
        }
    }
}
