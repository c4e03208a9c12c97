//! The NVMe/TCP initiator: the `TCP` transport of `bdev_nvme_attach_controller`
//! (SPDK's `bdev_nvme` over `nvme_tcp`).
//!
//! Attaching brings the remote controller up on a control thread (`ctrlr`: admin
//! queue, keep-alive, reconnect), then registers one bdev per active namespace,
//! `<name>n<nsid>`, on the thread that called attach. Each bdev channel opens its own
//! I/O queue (`qpair`) on its thread, served by a poller there. When a connection
//! drops, the control thread reconnects the admin queue every `reconnect_delay_sec`
//! (1 s by default) until `ctrlr_loss_timeout_sec` (-1 or 0: forever); the I/O queues
//! fail their outstanding I/O and reconnect once the controller is back.
//!
//! Limits: connection set-up (ICReq, Connect) blocks the calling thread for at most
//! a few seconds (it is a round trip on a healthy network); an I/O queue's poller
//! keeps its reactor awake.

mod ctrlr;
mod qpair;
pub mod setup;

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bdev::modules::nvme_attach::{
    register_transport, AttachDone, AttachParams, DetachDone, NvmeTransport,
};
use bdev::{BdevInfo, BdevIo, BdevModule, IoType, ModuleChannel, Uuid};
use framework::thread;
use jsonrpc::RpcError;
use serde_json::json;

use ctrlr::{HostCtrlr, NsInfo};
use qpair::Qpair;
use setup::Endpoint;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Attached {
    ctrlr: Arc<HostCtrlr>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn attached() -> &'static Mutex<HashMap<String, Attached>> {
    static A: OnceLock<Mutex<HashMap<String, Attached>>> = OnceLock::new();
    A.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The transport object registered under `TCP`.
pub struct TcpTransport;

/// Register the transport with the bdev layer's attach RPC.
pub fn register() {
    register_transport("TCP", Arc::new(TcpTransport));
}

/// Stop every attached controller (at fini; the bdev subsystem unregisters the bdevs).
pub(crate) fn stop_all() {
    let all: Vec<Attached> = lock(attached()).drain().map(|(_, a)| a).collect();
    for mut a in all {
        a.ctrlr.stop.store(true, Ordering::Release);
        if let Some(t) = a.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reconnects done by controller `name` (for tests and `bdev_get_bdevs`).
pub fn reconnects(name: &str) -> Option<u64> {
    lock(attached())
        .get(name)
        .map(|a| a.ctrlr.reconnects.load(Ordering::Relaxed))
}

struct TcpNs {
    ctrlr: Arc<HostCtrlr>,
    nsid: u32,
}

struct TcpChannel(Qpair);

impl ModuleChannel for TcpChannel {
    fn submit(&self, io: BdevIo) {
        self.0.submit(io);
    }
}

impl BdevModule for TcpNs {
    fn module_name(&self) -> &str {
        "nvme"
    }
    fn io_type_supported(&self, t: IoType) -> bool {
        matches!(
            t,
            IoType::Read | IoType::Write | IoType::Flush | IoType::WriteZeroes | IoType::Unmap
        )
    }
    fn create_channel(&self) -> Result<Box<dyn ModuleChannel>, String> {
        Ok(Box::new(TcpChannel(Qpair::new(
            self.ctrlr.clone(),
            self.nsid,
        )?)))
    }
    fn info_json(&self) -> Option<serde_json::Value> {
        let c = &self.ctrlr;
        Some(json!({"nvme": [{
            "trid": {
                "trtype": "TCP",
                "adrfam": if c.ep.addr.is_ipv4() { "IPv4" } else { "IPv6" },
                "traddr": c.ep.addr.ip().to_string(),
                "trsvcid": c.ep.addr.port().to_string(),
                "subnqn": c.ep.subnqn,
            },
            "ctrlr_data": {"cntlid": c.cntlid.load(Ordering::Relaxed)},
            "connected": c.connected.load(Ordering::Relaxed),
            "reconnects": c.reconnects.load(Ordering::Relaxed),
        }]}))
    }
}

fn bad(msg: String) -> RpcError {
    RpcError::invalid_params(msg)
}

fn endpoint(p: &AttachParams) -> Result<Endpoint, RpcError> {
    let port: u16 = p
        .trsvcid
        .as_deref()
        .unwrap_or("4420")
        .parse()
        .map_err(|_| {
            bad(format!(
                "invalid trsvcid: '{}'",
                p.trsvcid.as_deref().unwrap_or("")
            ))
        })?;
    let addr: SocketAddr = (p.traddr.as_str(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| bad(format!("invalid traddr: '{}'", p.traddr)))?;
    let subnqn = p
        .subnqn
        .clone()
        .ok_or_else(|| bad("invalid subnqn: required for TCP".into()))?;
    let hostid = Uuid::random();
    let hostnqn = p
        .hostnqn
        .clone()
        .unwrap_or_else(|| format!("nqn.2014-08.org.nvmexpress:uuid:{hostid}"));
    if subnqn.len() > 223 || hostnqn.len() > 223 {
        return Err(bad(
            "invalid subnqn or hostnqn: longer than 223 bytes".into()
        ));
    }
    Ok(Endpoint {
        addr,
        subnqn,
        hostnqn,
        hostid: hostid.0,
        hdgst: p.hdgst,
        ddgst: p.ddgst,
    })
}

impl NvmeTransport for TcpTransport {
    fn attach(&self, p: AttachParams, done: AttachDone) {
        let ep = match endpoint(&p) {
            Ok(e) => e,
            Err(e) => return done(Err(e)),
        };
        let Some(home) = thread::current() else {
            return done(Err(RpcError::internal(
                "attach must run on a framework thread",
            )));
        };
        let name = p.name.clone();
        let want = if p.num_io_queues == 0 {
            4
        } else {
            p.num_io_queues.min(1024) as u16
        };
        let delay = Duration::from_secs(if p.reconnect_delay_sec == 0 {
            1
        } else {
            p.reconnect_delay_sec
        });
        let loss = match p.ctrlr_loss_timeout_sec {
            t if t <= 0 => None,
            t => Some(Duration::from_secs(t as u64)),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("nvme_tcp_{name}"))
            .spawn(move || {
                let (q, info) = match ctrlr::bring_up(&ep, want) {
                    Ok(x) => x,
                    Err(e) => {
                        return done(Err(RpcError::internal(format!(
                            "failed to attach controller '{name}': {e}"
                        ))))
                    }
                };
                let c = Arc::new(HostCtrlr::new(name.clone(), ep, &q, info, delay));
                lock(attached()).insert(
                    name.clone(),
                    Attached {
                        ctrlr: c.clone(),
                        thread: None,
                    },
                );
                let c2 = c.clone();
                // Register the bdevs on the attaching thread, then keep the admin queue.
                let r = home.send_msg(move || {
                    let ns = c2.info.ns.clone();
                    let names = sync_bdevs(&c2, ns);
                    done(Ok(names));
                });
                if r.is_err() {
                    return;
                }
                let c3 = c.clone();
                let on_ns = move |ns: Vec<NsInfo>| {
                    let c4 = c3.clone();
                    if let Err(e) = home.send_msg(move || {
                        sync_bdevs(&c4, ns);
                    }) {
                        eal::log_err!("nvme tcp {}: namespaces not updated: {e}", c3.name);
                    }
                };
                ctrlr::run(c, Some(q), loss, &on_ns);
            });
        // The control thread ends on its own once told to stop (within 100 ms).
        if let Err(e) = spawned {
            eal::log_err!("nvme tcp: no control thread: {e}");
        }
    }

    fn owns(&self, name: &str) -> bool {
        lock(attached()).contains_key(name)
    }

    fn detach(&self, name: &str, done: DetachDone) {
        let Some(mut a) = lock(attached()).remove(name) else {
            return done(Err(RpcError::new(
                -19,
                format!("no NVMe controller named '{name}'"),
            )));
        };
        a.ctrlr.stop.store(true, Ordering::Release);
        let bdevs = lock(&a.ctrlr.bdevs).clone();
        let t = a.thread.take();
        unregister_all(
            bdevs,
            Box::new(move || {
                if let Some(t) = t {
                    let _ = t.join();
                }
                done(Ok(()))
            }),
        );
    }
}

/// The bdev of namespace `ns` of controller `c`.
fn ns_bdev_info(c: &HostCtrlr, ns: &NsInfo) -> BdevInfo {
    BdevInfo {
        name: format!("{}n{}", c.name, ns.nsid),
        aliases: Vec::new(),
        uuid: Uuid(ns.nguid),
        product_name: "NVMe disk".into(),
        block_size: ns.block_size,
        num_blocks: ns.num_blocks,
        optimal_io_boundary: 0,
        write_cache: true,
        max_transfer_blocks: (c.info.max_xfer / ns.block_size as usize) as u32,
    }
}

/// Make the controller's bdevs those of the active namespaces `ns` (on the attaching
/// thread): register the new ones, unregister the gone ones. Returns the names of
/// the bdevs registered now.
fn sync_bdevs(c: &Arc<HostCtrlr>, ns: Vec<NsInfo>) -> Vec<String> {
    if c.stop.load(Ordering::Acquire) {
        return Vec::new();
    }
    let want: Vec<BdevInfo> = ns.iter().map(|n| ns_bdev_info(c, n)).collect();
    let mut have = lock(&c.bdevs);
    let gone: Vec<String> = have
        .iter()
        .filter(|h| !want.iter().any(|w| &w.name == *h))
        .cloned()
        .collect();
    have.retain(|h| !gone.contains(h));
    let mut added = Vec::new();
    for (bi, n) in want.into_iter().zip(&ns) {
        if have.contains(&bi.name) {
            continue;
        }
        let bname = bi.name.clone();
        let m = Arc::new(TcpNs {
            ctrlr: c.clone(),
            nsid: n.nsid,
        });
        match bdev::bdev::register(bi, m) {
            Ok(_) => {
                eal::log_info!("nvme tcp {}: namespace {} is bdev {bname}", c.name, n.nsid);
                have.push(bname.clone());
                added.push(bname);
            }
            Err(e) => eal::log_err!("nvme tcp {}: bdev {bname} not registered: {e}", c.name),
        }
    }
    drop(have);
    if !gone.is_empty() {
        eal::log_info!("nvme tcp {}: namespaces gone: {gone:?}", c.name);
        unregister_all(gone, Box::new(|| {}));
    }
    added
}

fn unregister_all(mut names: Vec<String>, then: Box<dyn FnOnce() + Send>) {
    let Some(n) = names.pop() else {
        return then();
    };
    let (rest, t2) = (names.clone(), then);
    let slot = Arc::new(Mutex::new(Some((rest, t2))));
    let s2 = slot.clone();
    let r = bdev::bdev::unregister(&n, move |_| {
        if let Some((rest, then)) = lock(&s2).take() {
            unregister_all(rest, then);
        }
    });
    if r.is_err() {
        if let Some((rest, then)) = lock(&slot).take() {
            unregister_all(rest, then);
        }
    }
}
