//! The bdev modules of this crate (malloc, null, uring, aio, nvme over our PCIe driver;
//! the virtual passthru, split and raid, stacked on other bdevs through [`vbdev`]; the
//! NVMe attach RPCs' transport registry) and what they share: completions
//! deferred to a per-channel poller, so a submitter's callback never runs inside its
//! own submit call (a callback that submits again would otherwise recurse without
//! bound).

pub mod aio;
mod file;
mod kernel_queue;
pub mod malloc;
pub mod null;
pub mod nvme;
pub mod nvme_attach;
pub mod nvme_pcie;
pub mod passthru;
pub mod raid;
pub mod split;
pub mod uring;
pub(crate) mod vbdev;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex, Weak};

use framework::{poller, PollStatus, Poller};

use crate::bdev::Bdev;
use crate::io::{BdevIo, IoStatus};

/// The live disks of one module, found again from their bdev by identity (the layer
/// hands a module out only as `dyn BdevModule`): what a module's resize needs.
pub(crate) struct Disks<T>(Mutex<Vec<Weak<T>>>);

impl<T> Disks<T> {
    pub(crate) const fn new() -> Disks<T> {
        Disks(Mutex::new(Vec::new()))
    }

    /// Remember `d` (forgotten once dropped).
    pub(crate) fn add(&self, d: &Arc<T>) {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(d));
    }

    /// The disk that is `b`'s module, if it is one of these.
    pub(crate) fn of(&self, b: &Bdev) -> Option<Arc<T>> {
        let want = Arc::as_ptr(b.module()).cast::<()>();
        let all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.iter()
            .filter_map(Weak::upgrade)
            .find(|d| Arc::as_ptr(d).cast::<()>() == want)
    }
}

/// The completion list shared by a module channel and its poller. Both live on the
/// channel's framework thread and only ever run there (a framework thread is polled by
/// one reactor at a time, and a move to another reactor is ordered by the framework's
/// events), so a plain `Rc<RefCell>` serves: no lock or atomic per I/O.
struct DoneList(Rc<RefCell<Vec<(BdevIo, IoStatus)>>>);

// SAFETY: see the type's doc: every clone stays with one framework thread, whose code
// never runs on two OS threads at once, and each move between OS threads happens
// through the framework's release/acquire handover of the whole thread.
unsafe impl Send for DoneList {}

/// Completions waiting for the channel's poller (all on the channel's thread).
pub(crate) struct Deferred {
    list: DoneList,
    poller: Option<Poller>,
}

impl Deferred {
    /// Register the completion poller on the current thread.
    pub(crate) fn new(name: &str) -> std::result::Result<Deferred, String> {
        let list = Rc::new(RefCell::new(Vec::new()));
        let l2 = DoneList(list.clone());
        let mut batch = Vec::new();
        let p = poller::register(name, 0, move || {
            let l2 = &l2;
            std::mem::swap(&mut *l2.0.borrow_mut(), &mut batch);
            if batch.is_empty() {
                return PollStatus::Idle;
            }
            for (io, st) in batch.drain(..) {
                io.complete(st);
            }
            PollStatus::Busy
        })
        .map_err(|e| e.to_string())?;
        Ok(Deferred {
            list: DoneList(list),
            poller: Some(p),
        })
    }

    /// Complete `io` with `st` from the poller.
    pub(crate) fn push(&self, io: BdevIo, st: IoStatus) {
        self.list.0.borrow_mut().push((io, st));
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if let Some(p) = self.poller.take() {
            let _ = p.unregister();
        }
        // Anything still listed is completed (dropped BdevIos fail) here, on the
        // channel's thread.
        let left = std::mem::take(&mut *self.list.0.borrow_mut());
        for (io, st) in left {
            io.complete(st);
        }
    }
}

/// The `write_config` call that makes the bdev `info` again: `method` with `params` (an
/// object) plus the bdev's name and UUID.
pub(crate) fn create_call(
    method: &str,
    info: &crate::BdevInfo,
    mut params: serde_json::Value,
) -> Option<framework::subsystem::ConfigCall> {
    params["name"] = info.name.as_str().into();
    params["uuid"] = info.uuid.to_string().into();
    Some(framework::subsystem::ConfigCall {
        method: method.into(),
        params: Some(params),
    })
}
