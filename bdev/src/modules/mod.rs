//! The bdev modules of this crate (malloc, null) and what they share: completions
//! deferred to a per-channel poller, so a submitter's callback never runs inside its
//! own submit call (a callback that submits again would otherwise recurse without
//! bound).

pub mod malloc;
pub mod null;

use std::sync::{Arc, Mutex};

use framework::{poller, PollStatus, Poller};

use crate::io::{BdevIo, IoStatus};

type DoneList = Arc<Mutex<Vec<(BdevIo, IoStatus)>>>;

/// Completions waiting for the channel's poller (all on the channel's thread; the
/// mutex is never contended, it only makes the list `Send` for the poller).
pub(crate) struct Deferred {
    list: DoneList,
    poller: Option<Poller>,
}

impl Deferred {
    /// Register the completion poller on the current thread.
    pub(crate) fn new(name: &str) -> std::result::Result<Deferred, String> {
        let list: DoneList = Arc::new(Mutex::new(Vec::new()));
        let l2 = list.clone();
        let mut batch = Vec::new();
        let p = poller::register(name, 0, move || {
            std::mem::swap(
                &mut *l2.lock().unwrap_or_else(|e| e.into_inner()),
                &mut batch,
            );
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
            list,
            poller: Some(p),
        })
    }

    /// Complete `io` with `st` from the poller.
    pub(crate) fn push(&self, io: BdevIo, st: IoStatus) {
        self.list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((io, st));
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if let Some(p) = self.poller.take() {
            let _ = p.unregister();
        }
        // Anything still listed is completed (dropped BdevIos fail) here, on the
        // channel's thread.
        let left = std::mem::take(&mut *self.list.lock().unwrap_or_else(|e| e.into_inner()));
        for (io, st) in left {
            io.complete(st);
        }
    }
}
