//! The PCIe transport of `bdev_nvme_attach_controller` (trtype `PCIe`): opens the
//! controller at `traddr` (bound to vfio-pci or uio_pci_generic) through the EAL of the
//! framework the RPC runs on, registers a bdev per active namespace ([`super::nvme`]),
//! and watches it for removal.
//!
//! # Removal
//! A poller on the attaching thread looks every 100 ms at whether a queue pair found
//! the device gone, and once a second asks the kernel (unbind requested, driver
//! changed, config space all-ones). When the device is gone it unregisters the
//! controller's bdevs: every open descriptor gets the remove event; once the last
//! channel and descriptor are gone the controller is dropped, which releases the device
//! (a VFIO unbind waits for that). `bdev_nvme_detach_controller` does the same and then
//! shuts the controller down (CC.SHN).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use eal::pci::PciAddr;
use framework::{poller, thread, PollStatus, Poller, ThreadHandle};
use jsonrpc::RpcError;
use nvme::{Controller, ControllerOptions};
use serde_json::json;

use crate::bdev;
use crate::error::{Error, Result};
use crate::modules::nvme::{CtrlrCtx, NvmeNs};
use crate::modules::nvme_attach::{
    register_transport, AttachDone, AttachParams, DetachDone, NvmeTransport,
};

/// Monitor period; the kernel is asked every `ALIVE_EVERY` periods.
const MONITOR_US: u64 = 100_000;
const ALIVE_EVERY: u32 = 10;
/// Queue pair entries per channel (SPDK's default io_queue_size is 1024, capped by
/// CAP.MQES; 256 keeps the per-channel memory small).
const IO_QUEUE_SIZE: u16 = 256;

struct Attached {
    ctx: Arc<CtrlrCtx>,
    bdevs: Vec<String>,
    monitor: Option<Poller>,
}

/// The PCIe transport (register with [`register`]).
#[derive(Default, Clone)]
pub struct PcieTransport {
    ctrlrs: Arc<Mutex<HashMap<String, Attached>>>,
}

impl PcieTransport {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Attached>> {
        self.ctrlrs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attach controller `name` at `addr` with `opts` on the calling framework thread
    /// and register its namespaces' bdevs; returns their names. `attach` is the call
    /// `save_config` writes back.
    pub fn attach_pcie(
        &self,
        name: &str,
        addr: PciAddr,
        opts: ControllerOptions,
        attach: serde_json::Value,
    ) -> Result<Vec<String>> {
        let me = thread::current().ok_or(framework::Error::NotOnThread {
            what: "attach an NVMe controller",
        })?;
        let eal = thread::current_eal().ok_or(framework::Error::NotOnThread {
            what: "attach an NVMe controller",
        })?;
        if self.lock().contains_key(name) {
            return Err(Error::Exists(name.to_string()));
        }
        let ctrlr = Controller::open(&eal, addr, opts).map_err(|e| Error::Create {
            name: name.to_string(),
            why: format!("NVMe controller at {addr}: {e}"),
        })?;
        let ctx = Arc::new(CtrlrCtx {
            name: name.to_string(),
            ctrlr,
            eal,
            attach,
            io_queue_size: IO_QUEUE_SIZE,
        });
        let mut names = Vec::new();
        for (i, ns) in ctx.ctrlr.namespaces().iter().enumerate() {
            let m = NvmeNs {
                ctx: ctx.clone(),
                ns: ns.clone(),
                writes_config: i == 0,
            };
            let info = m.info();
            match bdev::register(info, Arc::new(m)) {
                Ok(b) => names.push(b.name().to_string()),
                Err(e) => {
                    // Nothing is open on the ones made yet: take them away again.
                    for n in &names {
                        let _ = bdev::unregister(n, |_| {});
                    }
                    return Err(e);
                }
            }
        }
        let monitor = self.monitor(name.to_string(), me)?;
        self.lock().insert(
            name.to_string(),
            Attached {
                ctx,
                bdevs: names.clone(),
                monitor: Some(monitor),
            },
        );
        Ok(names)
    }

    /// The removal watch of controller `name` (see the module docs).
    fn monitor(&self, name: String, me: ThreadHandle) -> Result<Poller> {
        let t = self.clone();
        let mut ticks = 0u32;
        let mut fired = false;
        let p = poller::register("bdev_nvme_monitor", MONITOR_US, move || {
            if fired {
                return PollStatus::Idle;
            }
            let Some(c) = t.lock().get(&name).map(|a| a.ctx.ctrlr.clone()) else {
                return PollStatus::Idle;
            };
            ticks = ticks.wrapping_add(1);
            let gone =
                c.is_gone() || (ticks.is_multiple_of(ALIVE_EVERY) && c.check_alive().is_err());
            if !gone {
                return PollStatus::Idle;
            }
            fired = true;
            eal::log_err!(
                "bdev nvme: controller '{name}' ({}) is gone; removing its bdevs",
                c.addr()
            );
            let (t2, n2) = (t.clone(), name.clone());
            // From a message, not inside this poller (which the removal unregisters).
            if let Err(e) = me.send_msg(move || t2.remove(&n2, false, None)) {
                eal::log_err!("bdev nvme: cannot schedule the removal of '{name}': {e}");
            }
            PollStatus::Busy
        })?;
        Ok(p)
    }

    /// Unregister controller `name`'s bdevs one by one (descriptors get the remove
    /// event), then shut it down if `shutdown` and it is still there; `done` at the end.
    fn remove(&self, name: &str, shutdown: bool, done: Option<DetachDone>) {
        let Some(mut a) = self.lock().remove(name) else {
            if let Some(d) = done {
                d(Err(RpcError::new(
                    -19,
                    format!("no NVMe controller named '{name}'"),
                )));
            }
            return;
        };
        if let Some(p) = a.monitor.take() {
            let _ = p.unregister();
        }
        let ctx = a.ctx.clone();
        let bdevs = std::mem::take(&mut a.bdevs);
        drop(a);
        unregister_all(
            bdevs,
            Box::new(move || {
                if shutdown && !ctx.ctrlr.is_gone() {
                    if let Err(e) = ctx.ctrlr.shutdown() {
                        eal::log_warn!("bdev nvme: shutdown of '{}' failed: {e}", ctx.name);
                    }
                }
                eal::log_info!("bdev nvme: controller '{}' detached", ctx.name);
                drop(ctx);
                if let Some(d) = done {
                    d(Ok(()));
                }
            }),
        );
    }

    /// Names of the attached controllers.
    pub fn controllers(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

/// Unregister `names` in order, then `then` (on the calling thread).
fn unregister_all(mut names: Vec<String>, then: Box<dyn FnOnce() + Send>) {
    let Some(n) = names.pop() else {
        return then();
    };
    let next = Arc::new(Mutex::new(Some((names, then))));
    let n2 = next.clone();
    let r = bdev::unregister(&n, move |_| {
        if let Some((names, then)) = n2.lock().unwrap_or_else(|e| e.into_inner()).take() {
            unregister_all(names, then);
        }
    });
    if let Err(e) = r {
        eal::log_warn!("bdev nvme: bdev '{n}' not unregistered: {e}");
        if let Some((names, then)) = next.lock().unwrap_or_else(|e| e.into_inner()).take() {
            unregister_all(names, then);
        }
    }
}

impl NvmeTransport for PcieTransport {
    fn attach(&self, p: AttachParams, done: AttachDone) {
        let addr: PciAddr = match p.traddr.parse() {
            Ok(a) => a,
            Err(e) => {
                return done(Err(RpcError::invalid_params(format!(
                    "invalid traddr '{}': {e}",
                    p.traddr
                ))))
            }
        };
        let mut opts = ControllerOptions::default();
        if p.num_io_queues > 0 {
            opts.io_queues = p.num_io_queues.min(u32::from(u16::MAX)) as u16;
        }
        let mut params = json!({
            "name": p.name,
            "trtype": "PCIe",
            "traddr": p.traddr,
        });
        if p.num_io_queues > 0 {
            params["num_io_queues"] = json!(p.num_io_queues);
        }
        let r = self.attach_pcie(&p.name, addr, opts, params);
        done(r.map_err(|e| match e {
            Error::Exists(n) => {
                RpcError::new(-17, format!("controller or bdev '{n}' already exists"))
            }
            e => RpcError::new(-19, e.to_string()),
        }))
    }

    fn owns(&self, name: &str) -> bool {
        self.lock().contains_key(name)
    }

    fn detach(&self, name: &str, done: DetachDone) {
        self.remove(name, true, Some(done));
    }
}

/// Make `PCIe` attachable through the RPCs (and `--json`); returns the transport so a
/// program can attach directly. There is one per process (as the bdev registry is):
/// registering again registers the same one.
pub fn register() -> PcieTransport {
    static PCIE: std::sync::OnceLock<PcieTransport> = std::sync::OnceLock::new();
    let t = PCIE.get_or_init(PcieTransport::default).clone();
    register_transport("PCIe", Arc::new(t.clone()));
    t
}
