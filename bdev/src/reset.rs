//! Bdev reset (SPDK's `spdk_bdev_reset`): freeze every channel, wait until no I/O is at
//! the module, reset the module, thaw. See [`crate::channel`] for what freezing does
//! to a channel's queues.
//!
//! A reset asked for while another runs on the same bdev does not start a second one:
//! it completes, on its own thread, with the running reset's status.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use framework::io_channel::IoChannel;
use framework::thread;

use crate::bdev::{Bdev, ResetCb};
use crate::channel::{self, BdevChannel};
use crate::error::Result;
use crate::io::{Callback, IoStatus};

/// Start a reset of `b` from `my` (the caller's channel, on its thread).
pub(crate) fn start(b: &Bdev, my: IoChannel<BdevChannel>, cb: ResetCb) -> Result<()> {
    let me = thread::current().ok_or(framework::Error::NotOnThread {
        what: "reset a bdev",
    })?;
    {
        let mut st = b.0.lock();
        if let Some(w) = st.reset_waiters.as_mut() {
            w.push((me, cb));
            return Ok(());
        }
        st.reset_waiters = Some(Vec::new());
    }
    let b2 = b.clone();
    let r = b.0.io_device.for_each_channel(
        |c: &BdevChannel| c.freeze(),
        move || wait_drained(b2, my, cb),
    );
    if let Err(e) = r {
        // Nothing was frozen: nobody waits.
        b.0.lock().reset_waiters = None;
        return Err(e.into());
    }
    Ok(())
}

/// Count I/O at the module over every channel; again (from a message) until none.
fn wait_drained(b: Bdev, my: IoChannel<BdevChannel>, cb: ResetCb) {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let b2 = b.clone();
    let r = b.0.io_device.for_each_channel(
        move |c: &BdevChannel| {
            n2.fetch_add(c.outstanding(), Ordering::Relaxed);
        },
        move || {
            if n.load(Ordering::Relaxed) > 0 {
                let again = move || wait_drained(b2, my, cb);
                match thread::current().map(|t| t.send_msg(again)) {
                    Some(Ok(())) => {}
                    _ => eal::log_err!("bdev reset: cannot wait for in-flight I/O"),
                }
                return;
            }
            let b3 = b2.clone();
            let done: ResetCb = Box::new(move |st| finish(b3, st, cb));
            if let Err(e) = channel::submit_reset(&my, Callback::new(done)) {
                eal::log_err!("bdev '{}': reset not submitted: {e}", b2.name());
            }
        },
    );
    if let Err(e) = r {
        eal::log_err!("bdev '{}': reset stalled: {e}", b.name());
    }
}

/// The module reset: thaw every channel, then tell the caller and the resets that
/// waited.
fn finish(b: Bdev, st: IoStatus, cb: ResetCb) {
    let b2 = b.clone();
    let r = b.0.io_device.for_each_channel(
        |c: &BdevChannel| c.thaw(),
        move || {
            let waiters = b2.0.lock().reset_waiters.take().unwrap_or_default();
            cb(st);
            for (t, w) in waiters {
                if t.send_msg(move || w(st)).is_err() {
                    eal::log_err!("bdev reset: a waiting caller's thread is gone");
                }
            }
        },
    );
    if let Err(e) = r {
        eal::log_err!("bdev '{}': thawing after reset failed: {e}", b.name());
    }
}
