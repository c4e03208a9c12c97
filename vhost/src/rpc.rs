//! The vhost RPC methods under SPDK's names and parameters:
//! `vhost_create_blk_controller`, `vhost_get_controllers`, `vhost_delete_controller`.
//! Handlers run on the app thread; creation and deletion finish on the controller's own
//! thread and answer from there.
//!
//! Errors: bad parameters are `-32602`, an unknown controller or bdev `-19` (ENODEV), a
//! name in use `-17` (EEXIST), as SPDK answers.

use framework::subsystem::RpcRegistrar;
use jsonrpc::{Request, RpcError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::controller::{self, BlkOpts};
use crate::error::Error;

fn rpc_error(e: &Error) -> RpcError {
    match e {
        Error::NotFound(_) => RpcError::new(-19, e.to_string()),
        Error::Bdev { source, .. } if matches!(**source, bdev::Error::NotFound(_)) => {
            RpcError::new(-19, e.to_string())
        }
        Error::Exists(_) => RpcError::new(-17, e.to_string()),
        Error::Invalid { .. } => RpcError::invalid_params(e.to_string()),
        _ => RpcError::internal(e.to_string()),
    }
}

fn params<T: for<'de> Deserialize<'de>>(r: &Request) -> Result<T, RpcError> {
    let v = r.raw_params().cloned().unwrap_or(Value::Null);
    let v = if v.is_null() { json!({}) } else { v };
    serde_json::from_value(v).map_err(|e| RpcError::invalid_params(format!("{}: {e}", r.method())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBlk {
    ctrlr: String,
    dev_name: String,
    #[serde(default)]
    cpumask: Option<String>,
    #[serde(default)]
    readonly: bool,
    #[serde(default)]
    packed_ring: bool,
    #[serde(default)]
    transport: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaybeName {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ctrlr {
    ctrlr: String,
}

/// SPDK's cpumask: hex (`0x3`) or a list in brackets (`[0-1,3]`); the lcores it names.
pub fn parse_cpumask(s: &str) -> Result<Vec<u32>, String> {
    if let Some(list) = s.strip_prefix('[') {
        let list = list
            .strip_suffix(']')
            .ok_or_else(|| format!("cpumask '{s}': a list must end with ']'"))?;
        return eal::lcore::parse_id_list(list, eal::lcore::MAX_LCORE as u32)
            .map_err(|e| format!("cpumask '{s}': {e}"));
    }
    let pairs = eal::args::parse_coremask(s).map_err(|e| format!("cpumask '{s}': {e}"))?;
    Ok(pairs.into_iter().map(|(l, _)| l).collect())
}

fn create(r: Request) {
    let p: CreateBlk = match params(&r) {
        Ok(p) => p,
        Err(e) => return r.respond(Err(e)),
    };
    if p.packed_ring {
        return r.respond(Err(RpcError::invalid_params(
            "invalid packed_ring: packed virtqueues are not supported",
        )));
    }
    if p.transport
        .as_deref()
        .is_some_and(|t| t != "vhost_user_blk")
    {
        return r.respond(Err(RpcError::invalid_params(
            "invalid transport: only vhost_user_blk",
        )));
    }
    let cpumask = match p.cpumask.as_deref().map(parse_cpumask).transpose() {
        Ok(m) => m.unwrap_or_default(),
        Err(e) => return r.respond(Err(RpcError::invalid_params(format!("invalid {e}")))),
    };
    let opts = BlkOpts {
        name: p.ctrlr,
        bdev: p.dev_name,
        cpumask,
        cpumask_text: p.cpumask.unwrap_or_default(),
        readonly: p.readonly,
    };
    let resp = std::sync::Arc::new(std::sync::Mutex::new(Some(r.into_responder())));
    let r2 = resp.clone();
    let res = controller::create(opts, move |res| {
        if let Some(x) = r2.lock().unwrap_or_else(|e| e.into_inner()).take() {
            x.respond(res.map(|()| json!(true)).map_err(|e| rpc_error(&e)));
        }
    });
    if let Err(e) = res {
        if let Some(x) = resp.lock().unwrap_or_else(|e| e.into_inner()).take() {
            x.respond(Err(rpc_error(&e)));
        }
    }
}

fn controller_json(c: &controller::Controller) -> Value {
    let st = c.status();
    let (connected, connections, queues, refused) =
        (st.connected, st.connections, st.queues, st.bad);
    let completed: u64 = queues.iter().map(|q| q.completed).sum();
    let per_queue: Vec<Value> = queues
        .iter()
        .map(|q| json!({"queue": q.index, "requests": q.completed, "kicks": q.kicks, "calls": q.calls}))
        .collect();
    let o = c.opts();
    json!({
        "ctrlr": o.name,
        "cpumask": o.cpumask_text,
        "delay_base_us": 0,
        "iops_threshold": 0,
        "socket": c.path().display().to_string(),
        "sessions": if connected {
            json!([{ "vid": 0, "id": 0, "name": format!("{}s0", o.name),
                     "started": !queues.is_empty(), "queues": queues.len(),
                     "requests": completed, "bad_requests": refused,
                     "queue_requests": per_queue }])
        } else {
            json!([])
        },
        "connections": connections,
        "backend_specific": { "block": { "readonly": o.readonly, "bdev": o.bdev } },
    })
}

fn get(r: Request) {
    let p: MaybeName = match params(&r) {
        Ok(p) => p,
        Err(e) => return r.respond(Err(e)),
    };
    let res = match &p.name {
        Some(n) => match controller::get(n) {
            Some(c) => Ok(json!([controller_json(&c)])),
            None => Err(rpc_error(&Error::NotFound(n.clone()))),
        },
        None => Ok(Value::Array(
            controller::list()
                .iter()
                .map(|c| controller_json(c))
                .collect(),
        )),
    };
    r.respond(res)
}

fn delete(r: Request) {
    let p: Ctrlr = match params(&r) {
        Ok(p) => p,
        Err(e) => return r.respond(Err(e)),
    };
    let resp = std::sync::Arc::new(std::sync::Mutex::new(Some(r.into_responder())));
    let r2 = resp.clone();
    let res = controller::delete(&p.ctrlr, move || {
        if let Some(x) = r2.lock().unwrap_or_else(|e| e.into_inner()).take() {
            x.respond(Ok(json!(true)));
        }
    });
    if let Err(e) = res {
        if let Some(x) = resp.lock().unwrap_or_else(|e| e.into_inner()).take() {
            x.respond(Err(rpc_error(&e)));
        }
    }
}

type Handler = Box<dyn Fn(Request) + Send + Sync>;

/// Register the methods.
pub fn register(reg: &dyn RpcRegistrar) -> framework::Result<()> {
    let methods: Vec<(&str, Handler)> = vec![
        ("vhost_create_blk_controller", Box::new(create)),
        ("vhost_get_controllers", Box::new(get)),
        ("vhost_delete_controller", Box::new(delete)),
    ];
    for (m, h) in methods {
        reg.register(m, false, h)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpumasks() {
        assert_eq!(parse_cpumask("0x3").unwrap(), vec![0, 1]);
        assert_eq!(parse_cpumask("[0-1,3]").unwrap(), vec![0, 1, 3]);
        assert!(parse_cpumask("[0-1").is_err());
        assert!(parse_cpumask("zz").is_err());
    }
}
