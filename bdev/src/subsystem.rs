//! The `bdev` subsystem: its RPC methods, its saved configuration (one create call
//! per bdev whose module can recreate it, then its QoS limits, then
//! `bdev_wait_for_examine`) and, at fini, every
//! bdev unregistered in reverse registration order.

use std::sync::{Arc, Mutex};

use framework::subsystem::{ConfigCall, Done, RpcRegistrar, Subsystem};
use serde_json::json;

use crate::bdev::{self, Bdev};

/// Add with `app.add_subsystem(BdevSubsystem)`.
pub struct BdevSubsystem;

impl Subsystem for BdevSubsystem {
    fn name(&self) -> &str {
        "bdev"
    }

    fn register_rpcs(&self, rpc: &dyn RpcRegistrar) -> framework::Result<()> {
        crate::modules::nvme_pcie::register();
        crate::examine::register_rpc(rpc)?;
        crate::rpc::register(rpc)
    }

    fn fini(&self, done: Done) {
        let mut list = bdev::list();
        list.reverse();
        unregister_next(list, Arc::new(Mutex::new(Some(done))));
    }

    fn write_config(&self) -> Vec<ConfigCall> {
        let mut out = Vec::new();
        for b in bdev::list() {
            if let Some(c) = b.module().write_config(b.info()) {
                out.push(c);
            }
            let q = b.qos().get();
            if q != Default::default() {
                out.push(ConfigCall {
                    method: "bdev_set_qos_limit".into(),
                    params: Some(json!({
                        "name": b.name(),
                        "rw_ios_per_sec": q.rw_ios_per_sec,
                        "rw_mbytes_per_sec": q.rw_mbytes_per_sec,
                        "r_mbytes_per_sec": q.r_mbytes_per_sec,
                        "w_mbytes_per_sec": q.w_mbytes_per_sec,
                    })),
                });
            }
        }
        // As SPDK's: a replay waits here until the examiners have registered what they
        // found on these bdevs (lvol stores and their lvols).
        out.push(ConfigCall {
            method: "bdev_wait_for_examine".into(),
            params: None,
        });
        out
    }
}

fn unregister_next(mut list: Vec<Bdev>, done: Arc<Mutex<Option<Done>>>) {
    let Some(b) = list.first().cloned() else {
        if let Some(d) = done.lock().unwrap_or_else(|e| e.into_inner()).take() {
            d.ok();
        }
        return;
    };
    list.remove(0);
    let (l2, d2) = (list.clone(), done.clone());
    let r = bdev::unregister(b.name(), move |_| unregister_next(l2, d2));
    if let Err(e) = r {
        eal::log_err!("bdev fini: '{}' not unregistered: {e}", b.name());
        unregister_next(list, done);
    }
}
