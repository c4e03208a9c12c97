//! The passthru bdev module (SPDK's `vbdev_passthru`): a virtual bdev that forwards
//! every request, unchanged, to one base bdev. It does nothing useful by itself; it is
//! the example to copy when writing a module that stacks on another bdev.
//!
//! # The five things a stacking module does
//!
//! 1. **Open and claim the base** ([`create`]): open it on the current framework thread
//!    with a callback for its remove event, and claim it so nobody else writes to it
//!    behind our back ([`vbdev::open_claimed`]).
//! 2. **Register its own bdev** with the base's geometry and a [`BdevModule`]
//!    ([`PassthruBdev`]).
//! 3. **Per thread, a channel to the base** ([`BdevModule::create_channel`] runs on the
//!    thread that will submit): [`PassthruChannel`] holds that thread's
//!    [`BdevIoChannel`] to the base.
//! 4. **Forward each request** ([`ModuleChannel::submit`]): submit a child to the base on
//!    the same thread and complete the parent from the child's callback
//!    ([`vbdev::forward`]); the parent's buffers are lent until then.
//! 5. **Follow the base's removal**: the remove callback unregisters our bdev (our own
//!    users get their remove event); once they closed and our channels went,
//!    [`BdevModule::destruct`] closes the base descriptor, which lets the base's
//!    removal finish.
//!
//! RPC: `bdev_passthru_create` (`base_bdev_name`, `name`, optional `uuid`) and
//! `bdev_passthru_delete` (`name`), as SPDK names them.

use std::sync::{Arc, Mutex, OnceLock};

use framework::subsystem::ConfigCall;
use jsonrpc::Request;
use serde::Deserialize;
use serde_json::json;

use crate::bdev::{self, Bdev, BdevInfo, BdevModule, ModuleChannel};
use crate::desc::{BdevIoChannel, Descriptor};
use crate::error::{Error, Result};
use crate::io::{BdevIo, IoType};
use crate::modules::vbdev;
use crate::uuid::Uuid;

/// The module name (claims, `bdev_get_bdevs`).
pub const MODULE: &str = "passthru";

/// One passthru bdev.
struct PassthruBdev {
    name: String,
    base_name: String,
    /// The claimed base; taken (closed) at destruct.
    base: Mutex<Option<Arc<Descriptor>>>,
}

/// A thread's channel: the base descriptor and this thread's channel to the base.
struct PassthruChannel {
    base: Arc<Descriptor>,
    base_ch: BdevIoChannel,
}

impl ModuleChannel for PassthruChannel {
    fn submit(&self, io: BdevIo) {
        // The same blocks on the base (a split or RAID module maps them here).
        let at = io.offset_blocks();
        vbdev::forward(&self.base, &self.base_ch, io, at);
    }
}

impl PassthruBdev {
    fn base(&self) -> Option<Arc<Descriptor>> {
        self.base.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl BdevModule for PassthruBdev {
    fn module_name(&self) -> &str {
        MODULE
    }

    fn io_type_supported(&self, t: IoType) -> bool {
        // Whatever the base takes.
        self.base().is_some_and(|d| d.bdev().io_type_supported(t))
    }

    fn create_channel(&self) -> std::result::Result<Box<dyn ModuleChannel>, String> {
        let base = self
            .base()
            .ok_or_else(|| format!("base bdev '{}' is closed", self.base_name))?;
        let base_ch = base.get_io_channel().map_err(|e| e.to_string())?;
        Ok(Box::new(PassthruChannel { base, base_ch }))
    }

    fn destruct(&self) {
        // Every channel (and so every channel to the base) is gone: close the base.
        self.base.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn write_config(&self, info: &BdevInfo) -> Option<ConfigCall> {
        let base = json!({ "base_bdev_name": self.base_name });
        super::create_call("bdev_passthru_create", info, base)
    }

    fn info_json(&self) -> Option<serde_json::Value> {
        Some(json!({ "passthru": { "name": self.name, "base_bdev_name": self.base_name } }))
    }
}

/// Create passthru bdev `name` over `base` (on a framework thread; the base's remove
/// event comes to this thread).
pub fn create(base: &str, name: &str, uuid: Option<Uuid>) -> Result<Bdev> {
    if bdev::get(name).is_some() {
        return Err(Error::Exists(name.to_string()));
    }
    let b = bdev::get(base).ok_or_else(|| Error::NotFound(base.to_string()))?;
    // The remove callback needs our bdev's name, known before the base is opened.
    let me: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let me2 = me.clone();
    let desc = vbdev::open_claimed(base, MODULE, move || {
        if let Some(n) = me2.get() {
            // Already removing (deleted meanwhile) is fine: nothing more to do.
            let _ = bdev::unregister(n, |_| {});
        }
    })?;
    let bi = b.info();
    let info = BdevInfo {
        name: name.to_string(),
        aliases: Vec::new(),
        uuid: uuid.unwrap_or_else(Uuid::random),
        product_name: "passthru".into(),
        block_size: bi.block_size,
        num_blocks: bi.num_blocks,
        optimal_io_boundary: bi.optimal_io_boundary,
        write_cache: bi.write_cache,
        max_transfer_blocks: bi.max_transfer_blocks,
    };
    let module = Arc::new(PassthruBdev {
        name: name.to_string(),
        base_name: b.name().to_string(),
        base: Mutex::new(Some(desc)),
    });
    // On failure the module (and with it the descriptor and claim) is dropped.
    let v = bdev::register(info, module)?;
    let _ = me.set(name.to_string());
    Ok(v)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateParams {
    base_bdev_name: String,
    name: String,
    #[serde(default)]
    uuid: Option<String>,
}

/// `bdev_passthru_create`: answers with the new bdev's name.
pub(crate) fn create_rpc(r: Request) {
    let res = (|| {
        let p: CreateParams = crate::rpc_util::params(&r)?;
        let uuid = crate::rpc_util::parse_uuid(p.uuid.as_deref())?;
        create(&p.base_bdev_name, &p.name, uuid)
            .map(|b| json!(b.name()))
            .map_err(|e| crate::rpc_util::rpc_error(&e))
    })();
    r.respond(res)
}

/// `bdev_passthru_delete`.
pub(crate) fn delete_rpc(r: Request) {
    crate::rpc_util::delete(r, MODULE)
}
