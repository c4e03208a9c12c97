//! Helpers the RPC handlers of the layer and of its modules share: parameter decoding,
//! the error mapping (SPDK's codes) and the common delete. A leaf below [`crate::rpc`]
//! (the method table) and the modules that register handlers there.

use std::sync::{Arc, Mutex};

use jsonrpc::{Request, RpcError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::bdev;
use crate::error::Error;
use crate::uuid::Uuid;

/// The JSON-RPC error for a layer error.
pub fn rpc_error(e: &Error) -> RpcError {
    match e {
        Error::NotFound(_) => RpcError::new(-19, e.to_string()),
        Error::Exists(_) => RpcError::new(-17, e.to_string()),
        Error::Invalid { .. } => RpcError::invalid_params(e.to_string()),
        // SPDK answers a claim conflict with -EPERM.
        Error::Claimed { .. } => RpcError::new(-1, e.to_string()),
        _ => RpcError::internal(e.to_string()),
    }
}

/// An optional UUID parameter.
pub(crate) fn parse_uuid(s: Option<&str>) -> Result<Option<Uuid>, RpcError> {
    s.map(|u| {
        Uuid::parse(u)
            .ok_or_else(|| RpcError::invalid_params(format!("invalid uuid: '{u}' is not a UUID")))
    })
    .transpose()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ByName {
    name: String,
}

/// Decode `r`'s parameters (absent ones as an empty object).
pub(crate) fn params<T: for<'de> Deserialize<'de>>(r: &Request) -> Result<T, RpcError> {
    // Absent params decode as an empty object (so all-optional methods take none).
    let v = r.raw_params().cloned().unwrap_or(Value::Null);
    let v = if v.is_null() { json!({}) } else { v };
    serde_json::from_value(v).map_err(|e| RpcError::invalid_params(format!("{}: {e}", r.method())))
}

/// `bdev_*_delete {name}` for a bdev of `module`: unregister it, answer when done.
pub(crate) fn delete(r: Request, module: &'static str) {
    let p: ByName = match params(&r) {
        Ok(p) => p,
        Err(e) => return r.respond(Err(e)),
    };
    match bdev::get(&p.name) {
        Some(b) if b.module().module_name() == module => {}
        Some(_) => {
            return r.respond(Err(RpcError::new(
                -19,
                format!("bdev '{}' is not a {module} bdev", p.name),
            )))
        }
        None => return r.respond(Err(rpc_error(&Error::NotFound(p.name)))),
    }
    let resp = r.into_responder();
    let resp = Arc::new(Mutex::new(Some(resp)));
    let r2 = resp.clone();
    let res = bdev::unregister(&p.name, move |res| {
        if let Some(x) = r2.lock().unwrap_or_else(|e| e.into_inner()).take() {
            x.respond(res.map(|_| json!(true)).map_err(|e| rpc_error(&e)));
        }
    });
    if let Err(e) = res {
        if let Some(x) = resp.lock().unwrap_or_else(|e| e.into_inner()).take() {
            x.respond(Err(rpc_error(&e)));
        }
    }
}
