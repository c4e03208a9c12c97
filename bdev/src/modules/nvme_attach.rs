//! `bdev_nvme_attach_controller` and `bdev_nvme_detach_controller`: one RPC pair for
//! every NVMe transport, as in SPDK. A transport (PCIe over our driver, TCP in the
//! NVMe-oF crate) registers itself under its `trtype` with [`register_transport`]; the
//! attach RPC hands it the parsed parameters and answers with the names of the bdevs it
//! made (`<name>n<nsid>`), the detach RPC asks each transport whether it owns the named
//! controller. Attaching is asynchronous (a controller reset or a TCP connect takes
//! time): the transport answers through the callback, on any thread.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonrpc::{Request, RpcError};
use serde::Deserialize;
use serde_json::{json, Value};

/// The attach parameters, with SPDK's names (rpc.py bdev_nvme_attach_controller).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachParams {
    /// Controller name; bdevs are `<name>n<nsid>`.
    pub name: String,
    /// Transport type: `PCIe`, `TCP` (case-insensitive).
    pub trtype: String,
    /// PCI address (PCIe) or IP address (TCP).
    pub traddr: String,
    /// Address family for fabrics: `IPv4`, `IPv6`.
    #[serde(default)]
    pub adrfam: Option<String>,
    /// Service id (TCP port).
    #[serde(default)]
    pub trsvcid: Option<String>,
    /// Subsystem NQN (fabrics).
    #[serde(default)]
    pub subnqn: Option<String>,
    /// Host NQN to present (fabrics).
    #[serde(default)]
    pub hostnqn: Option<String>,
    /// Local address to connect from (fabrics).
    #[serde(default)]
    pub hostaddr: Option<String>,
    /// Local port to connect from (fabrics).
    #[serde(default)]
    pub hostsvcid: Option<String>,
    /// NVMe/TCP header digest.
    #[serde(default)]
    pub hdgst: bool,
    /// NVMe/TCP data digest.
    #[serde(default)]
    pub ddgst: bool,
    /// Number of I/O queues to ask for (0: the transport's default).
    #[serde(default)]
    pub num_io_queues: u32,
    /// Seconds to keep trying to reconnect before giving up the controller (fabrics;
    /// -1: forever, 0: the transport's default).
    #[serde(default)]
    pub ctrlr_loss_timeout_sec: i64,
    /// Seconds between reconnect attempts (fabrics; 0: the transport's default).
    #[serde(default)]
    pub reconnect_delay_sec: u64,
    /// Seconds after which I/O fails while reconnecting (fabrics; 0: the default).
    #[serde(default)]
    pub fast_io_fail_timeout_sec: u64,
    /// SPDK's multipath mode; only `disable` (or absent) is supported.
    #[serde(default)]
    pub multipath: Option<String>,
}

/// Where an attach answers: the bdev names made, or the error.
pub type AttachDone = Box<dyn FnOnce(Result<Vec<String>, RpcError>) + Send>;
/// Where a detach answers.
pub type DetachDone = Box<dyn FnOnce(Result<(), RpcError>) + Send>;

/// One NVMe transport behind the attach and detach RPCs.
pub trait NvmeTransport: Send + Sync {
    /// Attach the controller `p` names and register a bdev per active namespace.
    fn attach(&self, p: AttachParams, done: AttachDone);
    /// Whether a controller named `name` is attached through this transport.
    fn owns(&self, name: &str) -> bool;
    /// Detach controller `name`: its bdevs are unregistered (open descriptors get the
    /// remove event) and it is shut down.
    fn detach(&self, name: &str, done: DetachDone);
}

fn registry() -> &'static Mutex<HashMap<String, Arc<dyn NvmeTransport>>> {
    static R: std::sync::OnceLock<Mutex<HashMap<String, Arc<dyn NvmeTransport>>>> =
        std::sync::OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Make `trtype` (case-insensitive: `PCIe`, `TCP`) attachable; a second registration
/// under the same name replaces the first.
pub fn register_transport(trtype: &str, t: Arc<dyn NvmeTransport>) {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(trtype.to_ascii_lowercase(), t);
}

fn transport(trtype: &str) -> Option<Arc<dyn NvmeTransport>> {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&trtype.to_ascii_lowercase())
        .cloned()
}

fn transports() -> Vec<Arc<dyn NvmeTransport>> {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect()
}

fn params<T: for<'de> Deserialize<'de>>(r: &Request) -> Result<T, RpcError> {
    let v = r.raw_params().cloned().unwrap_or(Value::Null);
    let v = if v.is_null() { json!({}) } else { v };
    serde_json::from_value(v).map_err(|e| RpcError::invalid_params(format!("{}: {e}", r.method())))
}

/// The `bdev_nvme_attach_controller` handler.
pub(crate) fn attach_rpc(r: Request) {
    let p: AttachParams = match params(&r) {
        Ok(p) => p,
        Err(e) => return r.respond(Err(e)),
    };
    if p.name.is_empty() {
        return r.respond(Err(RpcError::invalid_params("invalid name: empty")));
    }
    if p.multipath.as_deref().is_some_and(|m| m != "disable") {
        return r.respond(Err(RpcError::invalid_params(
            "invalid multipath: only 'disable' is supported",
        )));
    }
    if transports().iter().any(|t| t.owns(&p.name)) {
        return r.respond(Err(RpcError::new(
            -17,
            format!("controller '{}' already exists", p.name),
        )));
    }
    let Some(t) = transport(&p.trtype) else {
        return r.respond(Err(RpcError::invalid_params(format!(
            "invalid trtype: '{}' is not an attachable NVMe transport here",
            p.trtype
        ))));
    };
    let resp = r.into_responder();
    t.attach(
        p,
        Box::new(move |res| resp.respond(res.map(|names| json!(names)))),
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Detach {
    name: String,
    #[serde(default)]
    trtype: Option<String>,
    #[serde(default)]
    traddr: Option<String>,
    #[serde(default)]
    adrfam: Option<String>,
    #[serde(default)]
    trsvcid: Option<String>,
    #[serde(default)]
    subnqn: Option<String>,
    #[serde(default)]
    hostaddr: Option<String>,
    #[serde(default)]
    hostsvcid: Option<String>,
}

/// The `bdev_nvme_detach_controller` handler.
pub(crate) fn detach_rpc(r: Request) {
    let p: Detach = match params(&r) {
        Ok(p) => p,
        Err(e) => return r.respond(Err(e)),
    };
    let _ = (
        &p.trtype,
        &p.traddr,
        &p.adrfam,
        &p.trsvcid,
        &p.subnqn,
        &p.hostaddr,
        &p.hostsvcid,
    );
    let Some(t) = transports().into_iter().find(|t| t.owns(&p.name)) else {
        return r.respond(Err(RpcError::new(
            -19,
            format!("no NVMe controller named '{}'", p.name),
        )));
    };
    let resp = r.into_responder();
    t.detach(
        &p.name,
        Box::new(move |res| resp.respond(res.map(|()| json!(true)))),
    );
}
