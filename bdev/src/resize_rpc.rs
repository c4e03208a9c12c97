//! The resize RPC handlers: `bdev_null_resize` (SPDK's), `bdev_malloc_resize` (ours)
//! and `bdev_uring_rescan` (SPDK's), over [`crate::resize`] and the modules' resize
//! functions.

use jsonrpc::{Request, RpcError};
use serde::Deserialize;
use serde_json::json;

use crate::bdev::{self, Bdev};
use crate::error::{Error, Result};
use crate::modules::{malloc, null, uring};
use crate::rpc_util::{params, rpc_error};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResizeParams {
    name: String,
    /// MiB.
    new_size: u64,
}

/// `bdev_null_resize {name, new_size}`: grow a null bdev to `new_size` MiB.
pub(crate) fn null_resize(r: Request) {
    resize_rpc(r, "null", null::resize)
}

/// `bdev_malloc_resize {name, new_size}` (ours): grow a malloc bdev to `new_size` MiB.
pub(crate) fn malloc_resize(r: Request) {
    resize_rpc(r, "malloc", malloc::resize)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RescanParams {
    name: String,
}

/// `bdev_uring_rescan {name}`: the uring bdev takes its file's size now.
pub(crate) fn uring_rescan(r: Request) {
    let p: RescanParams = match params(&r) {
        Ok(p) => p,
        Err(e) => return r.respond(Err(e)),
    };
    let res = with_module(&p.name, "uring", uring::rescan);
    r.respond(res)
}

/// `f` on bdev `name` if it is of module `module`.
fn with_module(
    name: &str,
    module: &str,
    f: impl FnOnce(&Bdev) -> Result<()>,
) -> std::result::Result<serde_json::Value, RpcError> {
    let b = bdev::get(name).ok_or_else(|| rpc_error(&Error::NotFound(name.to_string())))?;
    if b.module().module_name() != module {
        return Err(RpcError::invalid_params(format!(
            "bdev '{name}' is not a {module} bdev"
        )));
    }
    f(&b).map_err(|e| rpc_error(&e))?;
    Ok(json!(true))
}

/// `{name, new_size}` to `resize` of a bdev of module `module`.
fn resize_rpc(r: Request, module: &str, resize: fn(&Bdev, u64) -> Result<()>) {
    let p: ResizeParams = match params(&r) {
        Ok(p) => p,
        Err(e) => return r.respond(Err(e)),
    };
    let res = with_module(&p.name, module, |b| resize(b, p.new_size));
    r.respond(res)
}
