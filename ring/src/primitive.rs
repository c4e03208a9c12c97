//! The synchronisation primitives the ring uses, in one place so that the loom models in
//! `tests/loom.rs` can swap them: under `cfg(loom)` the atomics, the spin hint, the
//! scheduler yield, the short sleep and the slot-access tracker come from [loom](https://docs.rs/loom);
//! otherwise they are `std`'s and the tracker compiles to nothing. (The crossbeam
//! pattern.)

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64};

pub(crate) use std::sync::atomic::Ordering;

// The three ways of waiting: a busy-wait hint inside a spin loop, a `sched_yield`, and
// the shortest sleep the kernel grants (a 1 µs request; the timer slack makes it about
// 50 µs on Linux). Under loom all three are a loom yield, so that the model checker
// schedules the thread being waited for.
#[cfg(not(any(loom, miri)))]
pub(crate) use crate::sys::{sched_yield as yield_now, sleep_briefly};
#[cfg(loom)]
pub(crate) use loom::thread::{yield_now, yield_now as spin_loop, yield_now as sleep_briefly};
// Miri runs no `syscall` instruction and few raw system calls: std's yield and sleep.
#[cfg(all(miri, not(loom)))]
pub(crate) use std::thread::yield_now;
#[cfg(all(miri, not(loom)))]
pub(crate) fn sleep_briefly() {
    std::thread::sleep(std::time::Duration::from_micros(1));
}
#[cfg(not(loom))]
pub(crate) use core::hint::spin_loop;

/// Shadow cells for the slots, so that loom sees every slot read and write and reports
/// two accesses that are not ordered by happens-before (the slots themselves are plain
/// memory that loom cannot observe). Outside loom this is a zero-sized no-op.
#[cfg(loom)]
pub(crate) struct SlotTracker {
    cells: std::sync::Arc<Vec<loom::cell::UnsafeCell<()>>>,
}

#[cfg(loom)]
impl SlotTracker {
    pub(crate) fn new(size: u32) -> Self {
        let cells = (0..size).map(|_| loom::cell::UnsafeCell::new(())).collect();
        // Only touched through `Ring`, whose Send/Sync impls state the contract; loom
        // checks the accesses themselves.
        #[allow(clippy::arc_with_non_send_sync)]
        SlotTracker {
            cells: std::sync::Arc::new(cells),
        }
    }

    /// Record a write of `n` slots from index `idx` (masked by the caller).
    pub(crate) fn write(&self, idx: u32, n: u32) {
        let len = self.cells.len() as u32;
        for i in 0..n {
            self.cells[((idx + i) % len) as usize].with_mut(|_| ());
        }
    }

    /// Record a read of `n` slots from index `idx`.
    pub(crate) fn read(&self, idx: u32, n: u32) {
        let len = self.cells.len() as u32;
        for i in 0..n {
            self.cells[((idx + i) % len) as usize].with(|_| ());
        }
    }
}

#[cfg(loom)]
impl Clone for SlotTracker {
    fn clone(&self) -> Self {
        SlotTracker {
            cells: self.cells.clone(),
        }
    }
}

#[cfg(not(loom))]
#[derive(Clone, Copy)]
pub(crate) struct SlotTracker;

#[cfg(not(loom))]
impl SlotTracker {
    #[inline(always)]
    pub(crate) fn new(_size: u32) -> Self {
        SlotTracker
    }
    #[inline(always)]
    pub(crate) fn write(&self, _idx: u32, _n: u32) {}
    #[inline(always)]
    pub(crate) fn read(&self, _idx: u32, _n: u32) {}
}
