//! The `nvmf` framework subsystem: at init one poll group per reactor (a framework
//! thread pinned to that reactor's lcore) and the TCP initiator transport registered
//! for `bdev_nvme_attach_controller`; at fini every subsystem deleted, the listeners
//! stopped and the poll groups closed (each on its thread). Depends on `bdev`, whose
//! fini (unregistering every bdev) then finds the namespaces' descriptors closed.
//! [`NvmfHostSubsystem`] is the initiator alone (for apps that serve no target, such
//! as bdevperf): the transport registered at init, the attached controllers stopped
//! at fini.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use framework::subsystem::{ConfigCall, Done, RpcRegistrar, Subsystem};
use framework::thread;

use crate::target::{group, listener, tgt};

/// Add with `app.add_subsystem(NvmfSubsystem)`.
pub struct NvmfSubsystem;

/// The initiator alone: add with `app.add_subsystem(NvmfHostSubsystem)` (not
/// together with [`NvmfSubsystem`], which includes it).
pub struct NvmfHostSubsystem;

impl Subsystem for NvmfHostSubsystem {
    fn name(&self) -> &str {
        "nvme_tcp_host"
    }

    fn depends_on(&self) -> Vec<String> {
        vec!["bdev".into()]
    }

    fn init(&self, done: Done) {
        crate::host::register();
        done.ok();
    }

    fn fini(&self, done: Done) {
        crate::host::stop_all();
        done.ok();
    }
}

/// Highest lcore id probed for reactors.
const MAX_LCORE: u32 = 256;

type DoneFn = Box<dyn FnOnce(Result<(), String>) + Send>;
type SharedDone = Arc<Mutex<Option<DoneFn>>>;

fn finish(d: &SharedDone, r: Result<(), String>) {
    if let Some(d) = d.lock().unwrap_or_else(|e| e.into_inner()).take() {
        d(r);
    }
}

/// Start one poll group per reactor (on a framework thread); `done` runs once all
/// are up (or the first failed). The subsystem's init; public for in-process users.
pub fn start_poll_groups<F: FnOnce(Result<(), String>) + Send + 'static>(done: F) {
    // One poll group per reactor: a thread whose cpumask is one lcore can only be
    // made where a reactor runs on that lcore.
    let mut threads = Vec::new();
    for lc in 0..MAX_LCORE {
        match thread::spawn(&format!("nvmf_tgt_poll_group_{lc}"), &[lc]) {
            Ok(t) => threads.push(t),
            Err(framework::Error::EmptyCpumask(_)) => {}
            Err(e) => return done(Err(format!("nvmf: poll group thread: {e}"))),
        }
    }
    if threads.is_empty() {
        return done(Err("nvmf: no reactor to host a poll group".into()));
    }
    let done: SharedDone = Arc::new(Mutex::new(Some(Box::new(done))));
    let left = Arc::new(AtomicUsize::new(threads.len()));
    for t in threads {
        let (d, l) = (done.clone(), left.clone());
        let r = t.send_msg(move || {
            match group::start() {
                Ok(h) => tgt()
                    .groups
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(h),
                Err(e) => return finish(&d, Err(format!("nvmf: poll group: {e}"))),
            }
            if l.fetch_sub(1, Ordering::AcqRel) == 1 {
                finish(&d, Ok(()));
            }
        });
        if let Err(e) = r {
            finish(&done, Err(format!("nvmf: poll group thread: {e}")));
            return;
        }
    }
}

/// Delete every subsystem, stop the listeners, the attached controllers and the poll
/// groups (each on its thread, which then exits); `done` runs after the last.
pub fn stop<F: FnOnce() + Send + 'static>(done: F) {
    let t = tgt();
    for s in t.subsystems() {
        if !s.is_discovery() {
            let _ = t.delete_subsystem(&s.nqn);
        }
    }
    listener::stop_all();
    crate::host::stop_all();
    let groups = std::mem::take(&mut *t.groups.lock().unwrap_or_else(|e| e.into_inner()));
    if groups.is_empty() {
        return done();
    }
    let done: SharedDone = Arc::new(Mutex::new(Some(Box::new(move |_| done()))));
    let left = Arc::new(AtomicUsize::new(groups.len()));
    for g in groups {
        let (d, l, g2) = (done.clone(), left.clone(), g.clone());
        let r = g.thread.send_msg(move || {
            group::stop(&g2);
            let _ = thread::exit();
            if l.fetch_sub(1, Ordering::AcqRel) == 1 {
                finish(&d, Ok(()));
            }
        });
        if r.is_err() && left.fetch_sub(1, Ordering::AcqRel) == 1 {
            finish(&done, Ok(()));
        }
    }
}

impl Subsystem for NvmfSubsystem {
    fn name(&self) -> &str {
        "nvmf"
    }

    fn depends_on(&self) -> Vec<String> {
        vec!["bdev".into()]
    }

    fn register_rpcs(&self, rpc: &dyn RpcRegistrar) -> framework::Result<()> {
        crate::rpc::register(rpc)
    }

    fn init(&self, done: Done) {
        crate::host::register();
        start_poll_groups(move |r| done.complete(r));
    }

    fn fini(&self, done: Done) {
        stop(move || done.ok());
    }

    fn write_config(&self) -> Vec<ConfigCall> {
        crate::rpc::write_config()
    }
}
