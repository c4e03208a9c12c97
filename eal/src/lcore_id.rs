//! The calling thread's lcore id (DPDK's per-lcore `_lcore_id`). A leaf module, so the
//! logger can print it without depending on the lcore machinery ([`crate::lcore`]) that
//! sets it.

use std::cell::Cell;

/// The id of a thread that is no lcore.
pub(crate) const NO_LCORE: u32 = u32::MAX;

thread_local! {
    static LCORE_ID: Cell<u32> = const { Cell::new(NO_LCORE) };
}

/// Record the calling thread's lcore id ([`NO_LCORE`] to clear it).
pub(crate) fn set_lcore_id(id: u32) {
    LCORE_ID.with(|c| c.set(id));
}

/// The lcore id of the calling thread: `Some` in an lcore worker thread and in the thread
/// that started the [`crate::lcore::LcoreSet`] (the main lcore), `None` in any other
/// thread.
pub fn lcore_id() -> Option<u32> {
    let id = LCORE_ID.with(|c| c.get());
    (id != NO_LCORE).then_some(id)
}
