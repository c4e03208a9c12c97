//! The `vhost_blk` subsystem: its RPC methods, its saved configuration (one create
//! call per controller) and, at fini, every controller deleted.

use std::sync::{Arc, Mutex};

use framework::subsystem::{ConfigCall, Done, RpcRegistrar, Subsystem};
use serde_json::json;

use crate::controller;

/// Add with `app.add_subsystem(VhostSubsystem)`.
pub struct VhostSubsystem;

impl Subsystem for VhostSubsystem {
    fn name(&self) -> &str {
        "vhost_blk"
    }

    fn depends_on(&self) -> Vec<String> {
        vec!["bdev".into()]
    }

    fn register_rpcs(&self, rpc: &dyn RpcRegistrar) -> framework::Result<()> {
        crate::rpc::register(rpc)
    }

    fn fini(&self, done: Done) {
        let names: Vec<String> = controller::list()
            .iter()
            .map(|c| c.opts().name.clone())
            .collect();
        delete_next(names, Arc::new(Mutex::new(Some(done))));
    }

    fn write_config(&self) -> Vec<ConfigCall> {
        controller::list()
            .iter()
            .map(|c| {
                let o = c.opts();
                let mut p = json!({ "ctrlr": o.name, "dev_name": o.bdev, "readonly": o.readonly });
                if !o.cpumask_text.is_empty() {
                    p["cpumask"] = json!(o.cpumask_text);
                }
                ConfigCall {
                    method: "vhost_create_blk_controller".into(),
                    params: Some(p),
                }
            })
            .collect()
    }
}

fn delete_next(mut names: Vec<String>, done: Arc<Mutex<Option<Done>>>) {
    let Some(n) = names.pop() else {
        if let Some(d) = done.lock().unwrap_or_else(|e| e.into_inner()).take() {
            d.ok();
        }
        return;
    };
    let (n2, d2) = (names.clone(), done.clone());
    if let Err(e) = controller::delete(&n, move || delete_next(n2, d2)) {
        eal::log_err!("vhost fini: controller '{n}' not deleted: {e}");
        delete_next(names, done);
    }
}
