//! Per-lcore statistics counters, in the pool header in shared memory.
//!
//! Slot `i < MAX_LCORE` belongs to EAL lcore `i` (in whichever process holds that lcore):
//! only that thread writes it, with a relaxed load and a relaxed store (no atomic
//! read-modify-write on the fast path). The extra slot `MAX_LCORE` is shared by every
//! thread that is not an EAL lcore and is updated with relaxed `fetch_add`. Readers (a
//! dump, [`Mempool::stats`](crate::Mempool::stats)) load with relaxed ordering at any time:
//! each counter is exact, the set of counters is a snapshot only when the pool is quiet.
//!
//! Cost on the hot path: a get served from a cache updates two counters
//! (`get_success_bulk`, `get_success_objs`), a put into a cache two (`put_bulk`,
//! `put_objs`). `cache_hits` is not stored but derived when read: every successful get is
//! a cache hit, a cache miss, or a get without cache, and the last two each made exactly
//! one successful backend dequeue, so `cache_hits = get_success_bulk -
//! backend_dequeue_bulk` (per slot; clamped at 0 for a racy read).
//!
//! Statistics are per pool and off unless the pool is created with
//! [`PoolFlags::STATS`](crate::PoolFlags::STATS): without it no counter is updated at all
//! and every statistic reads 0, as in a DPDK build without `RTE_LIBRTE_MEMPOOL_STATS`
//! (Debian's). The flag lives in the pool header, so every process agrees on it; the
//! counters are in the header either way.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Statistics of one lcore, or the sum over all lcores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MempoolStats {
    /// Successful get calls.
    pub get_success_bulk: u64,
    /// Objects handed out by successful gets.
    pub get_success_objs: u64,
    /// Failed get calls (not enough objects).
    pub get_fail_bulk: u64,
    /// Objects asked for by failed gets.
    pub get_fail_objs: u64,
    /// Put calls.
    pub put_bulk: u64,
    /// Objects put.
    pub put_objs: u64,
    /// Gets served entirely from a cache (derived: `get_success_bulk -
    /// backend_dequeue_bulk`, see the module docs).
    pub cache_hits: u64,
    /// Gets through a cache that had to go to the backend (refill or direct).
    pub cache_misses: u64,
    /// Backend dequeue calls that succeeded (refills and direct gets).
    pub backend_dequeue_bulk: u64,
    /// Objects dequeued from the backend.
    pub backend_dequeue_objs: u64,
    /// Backend enqueue calls (flushes and direct puts).
    pub backend_enqueue_bulk: u64,
    /// Objects enqueued to the backend.
    pub backend_enqueue_objs: u64,
}

/// `$to.f += $from.f` for each listed field `f`.
macro_rules! add_fields {
    ($to:ident, $from:ident; $($f:ident)*) => { $($to.$f += $from.$f;)* };
}

impl core::ops::AddAssign for MempoolStats {
    fn add_assign(&mut self, o: MempoolStats) {
        add_fields!(self, o;
            get_success_bulk get_success_objs get_fail_bulk get_fail_objs put_bulk put_objs
            cache_hits cache_misses backend_dequeue_bulk backend_dequeue_objs
            backend_enqueue_bulk backend_enqueue_objs
        );
    }
}

/// The shared-memory counters of one slot (see the module docs for who writes).
#[repr(C, align(128))]
#[derive(Default)]
pub(crate) struct StatsShared {
    pub get_success_bulk: AtomicU64,
    pub get_success_objs: AtomicU64,
    pub get_fail_bulk: AtomicU64,
    pub get_fail_objs: AtomicU64,
    pub put_bulk: AtomicU64,
    pub put_objs: AtomicU64,
    /// Was `cache_hits`; no longer written (derived on read). Kept so the layout, and
    /// [`LAYOUT_VERSION`](crate::LAYOUT_VERSION), stay as they were.
    pub _reserved: AtomicU64,
    pub cache_misses: AtomicU64,
    pub backend_dequeue_bulk: AtomicU64,
    pub backend_dequeue_objs: AtomicU64,
    pub backend_enqueue_bulk: AtomicU64,
    pub backend_enqueue_objs: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<StatsShared>() == 128);

/// How a [`StatsSlot`] is updated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Update {
    /// Statistics are off for the pool: nothing is written.
    Off,
    /// The slot of the calling EAL lcore: single writer, plain load + store.
    Owned,
    /// The slot shared by threads that are not EAL lcores: `fetch_add`.
    Shared,
}

/// A counter slot plus how to update it.
#[derive(Clone, Copy)]
pub(crate) struct StatsSlot<'a> {
    pub slot: &'a StatsShared,
    how: Update,
}

impl<'a> StatsSlot<'a> {
    /// The slot `slot`; `on` is the pool's [`PoolFlags::STATS`](crate::PoolFlags::STATS),
    /// `shared` says whether threads other than one lcore write it.
    #[inline(always)]
    pub fn new(slot: &'a StatsShared, on: bool, shared: bool) -> StatsSlot<'a> {
        let how = match (on, shared) {
            (false, _) => Update::Off,
            (true, false) => Update::Owned,
            (true, true) => Update::Shared,
        };
        StatsSlot { slot, how }
    }

    /// True when the pool counts statistics (the slot is written).
    #[inline(always)]
    pub fn counted(&self) -> bool {
        self.how != Update::Off
    }

    /// This slot with its mode narrowed by a compile-time `counted`: `false` gives `Off`
    /// as a constant (no counter code is generated); `true` keeps the run-time mode,
    /// which the caller knows is `Owned` or `Shared` ([`CacheRef::run`](crate::CacheRef::run)).
    #[inline(always)]
    pub fn fixed(self, counted: bool) -> StatsSlot<'a> {
        if counted {
            self
        } else {
            StatsSlot {
                slot: self.slot,
                how: Update::Off,
            }
        }
    }

    /// Add `v` to counter `c` of this slot (nothing when the pool's statistics are off).
    #[inline(always)]
    pub fn add(&self, c: &AtomicU64, v: u64) {
        match self.how {
            Update::Off => {}
            Update::Owned => bump(c, v),
            Update::Shared => {
                c.fetch_add(v, Relaxed);
            }
        }
    }

    /// Count one operation on `n` objects: 1 to `calls`, `n` to `objs` (one test of the
    /// update mode for the pair: this is on every get and put).
    #[inline(always)]
    pub fn op(&self, calls: &AtomicU64, objs: &AtomicU64, n: u64) {
        match self.how {
            Update::Off => {}
            Update::Owned => {
                bump(calls, 1);
                bump(objs, n);
            }
            Update::Shared => {
                calls.fetch_add(1, Relaxed);
                objs.fetch_add(n, Relaxed);
            }
        }
    }
}

/// Single-writer add (the lcore owning the slot): a plain load + store suffices and
/// avoids a locked instruction. Relaxed: statistics order nothing.
#[inline(always)]
fn bump(c: &AtomicU64, v: u64) {
    c.store(c.load(Relaxed).wrapping_add(v), Relaxed);
}

impl StatsShared {
    pub fn snapshot(&self) -> MempoolStats {
        let get_success_bulk = self.get_success_bulk.load(Relaxed);
        let backend_dequeue_bulk = self.backend_dequeue_bulk.load(Relaxed);
        MempoolStats {
            get_success_bulk,
            get_success_objs: self.get_success_objs.load(Relaxed),
            get_fail_bulk: self.get_fail_bulk.load(Relaxed),
            get_fail_objs: self.get_fail_objs.load(Relaxed),
            put_bulk: self.put_bulk.load(Relaxed),
            put_objs: self.put_objs.load(Relaxed),
            cache_hits: get_success_bulk.saturating_sub(backend_dequeue_bulk),
            cache_misses: self.cache_misses.load(Relaxed),
            backend_dequeue_bulk,
            backend_dequeue_objs: self.backend_dequeue_objs.load(Relaxed),
            backend_enqueue_bulk: self.backend_enqueue_bulk.load(Relaxed),
            backend_enqueue_objs: self.backend_enqueue_objs.load(Relaxed),
        }
    }
}
