//! The null bdev module (SPDK's `bdev_null`): no storage. Writes, write-zeroes, unmap,
//! flush and reset succeed; reads succeed and leave the buffers as they were (SPDK's
//! behaviour without metadata). Completions come from a per-channel poller.

use std::sync::Arc;

use framework::subsystem::ConfigCall;
use jsonrpc::{Request, RpcError};
use serde::Deserialize;
use serde_json::json;

use crate::bdev::{self, Bdev, BdevInfo, BdevModule, ModuleChannel};
use crate::error::{Error, Result};
use crate::io::{BdevIo, IoStatus, IoType};
use crate::modules::Deferred;
use crate::rpc_util::{params, rpc_error};
use crate::uuid::Uuid;

/// What `bdev_null_create` takes.
#[derive(Debug, Clone)]
pub struct NullOpts {
    /// Bdev name.
    pub name: String,
    /// Size in blocks.
    pub num_blocks: u64,
    /// Block size (power of two, >= 512).
    pub block_size: u32,
    /// UUID (random if `None`).
    pub uuid: Option<Uuid>,
}

struct NullDisk;

struct NullChannel(Deferred);

impl ModuleChannel for NullChannel {
    fn submit(&self, io: BdevIo) {
        self.0.push(io, IoStatus::Success);
    }
}

impl BdevModule for NullDisk {
    fn module_name(&self) -> &str {
        "null"
    }
    fn io_type_supported(&self, t: IoType) -> bool {
        matches!(
            t,
            IoType::Read
                | IoType::Write
                | IoType::WriteZeroes
                | IoType::Unmap
                | IoType::Flush
                | IoType::Reset
        )
    }
    fn create_channel(&self) -> std::result::Result<Box<dyn ModuleChannel>, String> {
        Ok(Box::new(NullChannel(Deferred::new("bdev_null")?)))
    }
    fn write_config(&self, info: &BdevInfo) -> Option<ConfigCall> {
        Some(ConfigCall {
            method: "bdev_null_create".into(),
            params: Some(json!({
                "name": info.name,
                "num_blocks": info.num_blocks,
                "block_size": info.block_size,
                "uuid": info.uuid.to_string(),
            })),
        })
    }
}

/// Create and register a null bdev.
pub fn create(opts: NullOpts) -> Result<Bdev> {
    let info = BdevInfo {
        name: opts.name.clone(),
        aliases: Vec::new(),
        uuid: opts.uuid.unwrap_or_else(Uuid::random),
        product_name: "Null disk".into(),
        block_size: opts.block_size,
        num_blocks: opts.num_blocks,
        optimal_io_boundary: 0,
        write_cache: false,
        max_transfer_blocks: 0,
    };
    bdev::register(info, Arc::new(NullDisk))
}

/// Grow null bdev `b` to `new_size_mib` MiB (SPDK's `bdev_null_resize`): the new size
/// must be whole blocks and not below the current one; open descriptors get the
/// resize event.
pub fn resize(b: &Bdev, new_size_mib: u64) -> Result<()> {
    let bs = u64::from(b.info().block_size);
    let bytes = new_size_mib
        .checked_mul(1 << 20)
        .filter(|n| n % bs == 0)
        .ok_or_else(|| Error::Invalid {
            what: "new_size",
            why: format!("{new_size_mib} MiB is not a whole number of {bs}-byte blocks"),
        })?;
    let blocks = bytes / bs;
    if blocks < b.num_blocks() {
        return Err(Error::Invalid {
            what: "new_size",
            why: format!(
                "{new_size_mib} MiB is below the current {} blocks of {bs} bytes",
                b.num_blocks()
            ),
        });
    }
    crate::resize::notify_blockcnt_change(b, blocks)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NullResize {
    name: String,
    /// MiB.
    new_size: u64,
}

/// `bdev_null_resize {name, new_size}`: grow a null bdev to `new_size` MiB.
pub(crate) fn resize_rpc(r: Request) {
    let p: NullResize = match params(&r) {
        Ok(p) => p,
        Err(e) => return r.respond(Err(e)),
    };
    let res = (|| {
        let b = bdev::get(&p.name).ok_or_else(|| rpc_error(&Error::NotFound(p.name.clone())))?;
        if b.module().module_name() != "null" {
            return Err(RpcError::invalid_params(format!(
                "bdev '{}' is not a null bdev",
                p.name
            )));
        }
        resize(&b, p.new_size).map_err(|e| rpc_error(&e))?;
        Ok(json!(true))
    })();
    r.respond(res)
}
