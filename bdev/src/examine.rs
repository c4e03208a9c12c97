//! Examine (SPDK's `examine_config` / `examine_disk`, `spdk_bdev_module_examine_done`
//! and `bdev_wait_for_examine`): a module that builds on other bdevs (the lvol store)
//! adds an examiner once; every bdev registered afterwards is offered to each examiner,
//! which looks at it and may claim it and register bdevs of its own.
//!
//! # Threads and waiting
//!
//! [`crate::bdev::register`] calls the examiners on the registering thread after the
//! bdev is in the registry, and returns without waiting for them, as SPDK's
//! asynchronous `examine_disk`: an examiner must not block that thread (one that reads
//! the bdev hands the work to another thread). Each examination holds an
//! [`ExamineDone`] until it has finished; dropping it says finished. [`wait`] (the
//! `bdev_wait_for_examine` method, which ends every saved bdev configuration, as in
//! SPDK) answers once no examination is running, so a replayed configuration finds
//! the bdevs the examiners registered.

use std::sync::{Arc, Mutex, MutexGuard};

use framework::subsystem::RpcRegistrar;
use framework::{thread, ThreadHandle};
use jsonrpc::{Request, RpcError};
use serde_json::json;

use crate::bdev::Bdev;

/// What an examiner is called with: the new bdev and the token to drop when done.
pub type Examiner = Arc<dyn Fn(Bdev, ExamineDone) + Send + Sync>;

type Waiter = (ThreadHandle, Box<dyn FnOnce() + Send>);

struct State {
    examiners: Vec<(String, Examiner)>,
    running: usize,
    waiters: Vec<Waiter>,
}

static STATE: Mutex<State> = Mutex::new(State {
    examiners: Vec::new(),
    running: 0,
    waiters: Vec::new(),
});

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// One running examination; dropping it ends it (SPDK's
/// `spdk_bdev_module_examine_done`).
pub struct ExamineDone(());

impl Drop for ExamineDone {
    fn drop(&mut self) {
        let waiters = {
            let mut st = state();
            st.running -= 1;
            if st.running > 0 {
                return;
            }
            std::mem::take(&mut st.waiters)
        };
        for (t, f) in waiters {
            if let Err(e) = t.send_msg(f) {
                eal::log_err!("bdev examine: a waiting thread is gone: {e}");
            }
        }
    }
}

/// Add (or replace) `module`'s examiner; bdevs registered from now on are offered to it.
pub fn add_examiner(module: &str, f: Examiner) {
    crate::bdev::set_register_hook(examine);
    let mut st = state();
    st.examiners.retain(|(m, _)| m != module);
    st.examiners.push((module.to_string(), f));
}

/// Offer `b` to every examiner (from `register`, on the registering thread).
fn examine(b: &Bdev) {
    let list: Vec<Examiner> = {
        let mut st = state();
        st.running += st.examiners.len();
        st.examiners.iter().map(|(_, f)| f.clone()).collect()
    };
    for f in list {
        f(b.clone(), ExamineDone(()));
    }
}

/// Run `done` on the calling framework thread once no examination is running.
pub fn wait<D: FnOnce() + Send + 'static>(done: D) -> crate::Result<()> {
    let me = thread::current().ok_or(framework::Error::NotOnThread {
        what: "wait for examine",
    })?;
    let mut st = state();
    if st.running == 0 {
        drop(st);
        done();
    } else {
        st.waiters.push((me, Box::new(done)));
    }
    Ok(())
}

/// Register `bdev_wait_for_examine`.
pub(crate) fn register_rpc(reg: &dyn RpcRegistrar) -> framework::Result<()> {
    reg.register(
        "bdev_wait_for_examine",
        false,
        Box::new(|r: Request| {
            let resp = r.into_responder();
            let slot = Arc::new(Mutex::new(Some(resp)));
            let s2 = slot.clone();
            let res = wait(move || {
                if let Some(x) = s2.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    x.respond(Ok(json!(true)));
                }
            });
            if let Err(e) = res {
                if let Some(x) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    x.respond(Err(RpcError::internal(e.to_string())));
                }
            }
        }),
    )
}
