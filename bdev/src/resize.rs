//! Block-count changes (SPDK's `spdk_bdev_notify_blockcnt_change` and
//! `SPDK_BDEV_EVENT_RESIZE`): a module whose device changed size tells the layer, which
//! takes the new count for its range checks ([`Bdev::num_blocks`]) and delivers
//! [`BdevEvent::Resize`] to every open descriptor on that descriptor's thread.
//!
//! As in SPDK, a bdev may shrink only while no descriptor is open (an open user could
//! have I/O in flight past the new end); growing is always allowed. The null module's
//! `bdev_null_resize` (SPDK's name and parameters: `name`, `new_size` in MiB, grow
//! only) is the RPC that uses it, and so is `bdev_malloc_resize` (ours: SPDK has no
//! malloc resize RPC; the same parameters, see [`crate::modules::malloc::resize`]).
//! `bdev_uring_rescan {name}` (SPDK's) takes up the size a uring bdev's file has now.

use std::sync::atomic::Ordering;

use jsonrpc::{Request, RpcError};
use serde::Deserialize;
use serde_json::json;

use crate::bdev::{self, Bdev, BdevEvent};
use crate::error::{Error, Result};
use crate::modules::{malloc, null, uring};
use crate::rpc::{params, rpc_error};

/// Set `b`'s block count to `num_blocks` and tell its open descriptors. Refused when
/// the count is 0 or overflows the byte size, when `b` is being removed, and when it
/// would shrink with descriptors open. Setting the count it has is a no-op.
pub fn notify_blockcnt_change(b: &Bdev, num_blocks: u64) -> Result<()> {
    let bs = u64::from(b.info().block_size);
    if num_blocks == 0 || num_blocks.checked_mul(bs).is_none() {
        return Err(Error::Invalid {
            what: "num_blocks",
            why: format!("{num_blocks} blocks of {bs} bytes"),
        });
    }
    let descs = {
        let st = b.0.lock();
        if st.removing {
            return Err(Error::Removed {
                what: "resize",
                name: b.name().to_string(),
            });
        }
        let old = b.num_blocks();
        if num_blocks == old {
            return Ok(());
        }
        if num_blocks < old && !st.descs.is_empty() {
            return Err(Error::Invalid {
                what: "num_blocks",
                why: format!(
                    "bdev '{}' cannot shrink from {old} to {num_blocks} blocks while {} \
                     descriptor(s) are open",
                    b.name(),
                    st.descs.len()
                ),
            });
        }
        // Pairs with the Acquire load in `Bdev::num_blocks`: a user told of the
        // change reads the new count.
        b.0.blockcnt.store(num_blocks, Ordering::Release);
        st.descs.clone()
    };
    eal::log_notice!(
        "bdev '{}': block count now {num_blocks} ({} descriptor(s) told)",
        b.name(),
        descs.len()
    );
    for d in descs {
        // A descriptor whose thread is gone is being torn down; nothing to tell.
        let _ = d.notify(BdevEvent::Resize);
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResizeParams {
    name: String,
    /// MiB.
    new_size: u64,
}

/// `bdev_null_resize {name, new_size}`: grow a null bdev to `new_size` MiB.
pub(crate) fn null_resize_rpc(r: Request) {
    resize_rpc(r, "null", null::resize)
}

/// `bdev_malloc_resize {name, new_size}` (ours): grow a malloc bdev to `new_size` MiB.
pub(crate) fn malloc_resize_rpc(r: Request) {
    resize_rpc(r, "malloc", malloc::resize)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RescanParams {
    name: String,
}

/// `bdev_uring_rescan {name}`: the uring bdev takes its file's size now.
pub(crate) fn uring_rescan_rpc(r: Request) {
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

/// The block count of `new_size_mib` MiB on `b`, refused unless whole blocks and at
/// least the current count (the grow-only resize RPCs).
pub(crate) fn grown_blocks(b: &Bdev, new_size_mib: u64) -> Result<u64> {
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
    Ok(blocks)
}
