//! Bdevs and the module interface (SPDK's `struct spdk_bdev`, `spdk_bdev_fn_table`,
//! `spdk_bdev_register` / `spdk_bdev_unregister`).
//!
//! A module makes a [`BdevInfo`] (name, size, geometry) and an object implementing
//! [`BdevModule`], and calls [`register`]. The layer then owns the bdev: descriptors open
//! it by name, each thread gets a [`crate::BdevIoChannel`] that wraps the module's own
//! per-thread [`ModuleChannel`], and [`unregister`] tells every open descriptor (remove
//! event, on the descriptor's thread), waits for all of them to close and for every
//! channel to go, then calls [`BdevModule::destruct`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use framework::io_channel::{self, IoDevice};
use framework::{thread, ThreadHandle};

use crate::channel::BdevChannel;
use crate::error::{Error, Result};
use crate::io::{IoType, IoTypeSet};
use crate::qos::{QosLimits, QosValues};
use crate::stats::IoStats;

pub use crate::types::{BdevEvent, BdevInfo, BdevModule, ModuleChannel};

/// What a bdev needs of an open descriptor (the descriptors of [`crate::desc`]
/// implement it: the bdev lists and tells them without naming that module).
pub(crate) trait OpenDesc: Send + Sync {
    /// Its unique id.
    fn id(&self) -> u64;
    /// Whether it may write.
    fn writable(&self) -> bool;
    /// The bdev is being removed: refuse new I/O (under the bdev's state lock).
    fn forbid_io(&self);
    /// Deliver `ev` on the descriptor's thread; false if that thread is gone.
    fn notify(self: Arc<Self>, ev: BdevEvent) -> bool;
    /// Deliver the remove event; closes the descriptor if its thread is gone.
    fn notify_remove(self: Arc<Self>);
}

/// A reset's completion callback.
pub(crate) type ResetCb = Box<dyn FnOnce(crate::io::IoStatus) + Send>;

/// Resets waiting for the running one: where and whom to tell.
pub(crate) type ResetWaiters = Vec<(ThreadHandle, ResetCb)>;

/// Offered each bdev as it registers: the examiners' entry, set by
/// [`crate::examine`] once one is added (this module stays below that one).
static ON_REGISTER: OnceLock<fn(&Bdev)> = OnceLock::new();

/// Have `f` called with each bdev that registers from now on.
pub(crate) fn set_register_hook(f: fn(&Bdev)) {
    let _ = ON_REGISTER.set(f);
}

pub(crate) struct Claim {
    pub(crate) module: String,
    pub(crate) desc_id: u64,
}

type UnregisterDone = Box<dyn FnOnce(Result<()>) + Send>;

pub(crate) struct BdevState {
    pub(crate) removing: bool,
    pub(crate) descs: Vec<Arc<dyn OpenDesc>>,
    pub(crate) claim: Option<Claim>,
    /// Statistics of channels already destroyed.
    pub(crate) retired: IoStats,
    pub(crate) unregister_done: Option<(ThreadHandle, UnregisterDone)>,
    /// `Some` while a reset runs: later resets wait here for its status.
    pub(crate) reset_waiters: Option<ResetWaiters>,
}

pub(crate) struct BdevShared {
    pub(crate) info: Arc<BdevInfo>,
    pub(crate) module: Arc<dyn BdevModule>,
    pub(crate) io_device: IoDevice<BdevChannel>,
    pub(crate) qos: Arc<QosLimits>,
    /// The types the module takes (asked once, at registration).
    pub(crate) supported: IoTypeSet,
    /// Mirrors `BdevState::removing` for the submit path's check (set once, under the
    /// state lock; read without it: a submit racing the start of a removal may pass,
    /// as it may with the lock, and the removal waits for its channel anyway).
    removing: AtomicBool,
    /// The current block count (starts at `info.num_blocks`; stored under the state
    /// lock by [`crate::resize`], read without it).
    pub(crate) blockcnt: AtomicU64,
    /// The current aliases (start as `info.aliases`; changed by [`alias_add`] and
    /// [`alias_del`] under the registry lock).
    aliases: Mutex<Vec<String>>,
    state: Mutex<BdevState>,
}

impl BdevShared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, BdevState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A registered bdev. Cheap to clone; a clone keeps the object, not the registration.
#[derive(Clone)]
pub struct Bdev(pub(crate) Arc<BdevShared>);

impl std::fmt::Debug for Bdev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bdev")
            .field("name", &self.0.info.name)
            .finish()
    }
}

impl Bdev {
    /// Its properties.
    pub fn info(&self) -> &BdevInfo {
        &self.0.info
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.0.info.name
    }

    /// Its aliases now (the registration's, changed by [`alias_add`] / [`alias_del`]).
    pub fn aliases(&self) -> Vec<String> {
        self.0
            .aliases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Its size in blocks now (the registration's, or the last
    /// [`crate::resize::notify_blockcnt_change`]).
    pub fn num_blocks(&self) -> u64 {
        // Pairs with the Release store in `resize::notify_blockcnt_change`.
        self.0.blockcnt.load(Ordering::Acquire)
    }

    /// Its module.
    pub fn module(&self) -> &Arc<dyn BdevModule> {
        &self.0.module
    }

    /// Whether the module takes `t`.
    pub fn io_type_supported(&self, t: IoType) -> bool {
        self.0.supported.contains(t)
    }

    /// The module claiming it, if any.
    pub fn claimed_by(&self) -> Option<String> {
        self.0.lock().claim.as_ref().map(|c| c.module.clone())
    }

    /// Open descriptors.
    pub fn open_descs(&self) -> usize {
        self.0.lock().descs.len()
    }

    /// Whether [`unregister`] has started on it.
    pub fn is_removing(&self) -> bool {
        self.0.removing.load(Ordering::Acquire)
    }

    /// The QoS limits (see [`crate::qos`]).
    pub fn qos(&self) -> &QosLimits {
        &self.0.qos
    }

    /// Set its QoS limits (see [`crate::qos`]; 0 clears one, all 0 turns QoS off), on
    /// a framework thread, which becomes the QoS thread if QoS was off. Each channel
    /// follows the switch once a message reaches its thread, as SPDK's channels do.
    pub fn set_qos_limits(&self, v: QosValues) -> Result<()> {
        if self.is_removing() {
            return Err(Error::Removed {
                what: "set QoS limits",
                name: self.name().to_string(),
            });
        }
        crate::qos::set_limits(&self.0.qos, self.name(), v)?;
        self.0
            .io_device
            .for_each_channel(|ch: &BdevChannel| ch.sync_qos(), || {})?;
        Ok(())
    }

    /// Statistics summed over every channel (each visited on its thread), then `done`
    /// with the total on the calling thread (a framework thread).
    pub fn get_iostat<D: FnOnce(IoStats) + Send + 'static>(&self, done: D) -> Result<()> {
        let total = Arc::new(Mutex::new(self.0.lock().retired));
        let t2 = total.clone();
        self.0.io_device.for_each_channel(
            move |ch: &BdevChannel| {
                let s = ch.stats();
                t2.lock().unwrap_or_else(|e| e.into_inner()).add(&s);
            },
            move || {
                let s = *total.lock().unwrap_or_else(|e| e.into_inner());
                done(s)
            },
        )?;
        Ok(())
    }

    /// Each live channel's statistics with its thread id, then `done` on the calling
    /// thread (a framework thread).
    pub fn get_channel_iostats<D>(&self, done: D) -> Result<()>
    where
        D: FnOnce(Vec<(u64, IoStats)>) + Send + 'static,
    {
        let all = Arc::new(Mutex::new(Vec::new()));
        let a2 = all.clone();
        self.0.io_device.for_each_channel(
            move |ch: &BdevChannel| {
                let tid = thread::current().map(|t| t.id()).unwrap_or(0);
                a2.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((tid, ch.stats()));
            },
            move || {
                let v = std::mem::take(&mut *all.lock().unwrap_or_else(|e| e.into_inner()));
                done(v)
            },
        )?;
        Ok(())
    }

    pub(crate) fn retire_stats(&self, s: &IoStats) {
        self.0.lock().retired.add(s);
    }
}

static REGISTRY: Mutex<Vec<Bdev>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<Bdev>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn named(b: &Bdev, name: &str) -> bool {
    b.0.info.name == name || b.aliases().iter().any(|a| a == name)
}

/// Give registered bdev `b` the alias `alias` (SPDK's `spdk_bdev_alias_add`): refused
/// if any bdev has that name or alias.
pub fn alias_add(b: &Bdev, alias: &str) -> Result<()> {
    if alias.is_empty() {
        return Err(Error::Invalid {
            what: "bdev alias",
            why: "empty".into(),
        });
    }
    let reg = registry();
    if reg.iter().any(|x| named(x, alias)) {
        return Err(Error::Exists(alias.to_string()));
    }
    b.0.aliases
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(alias.to_string());
    drop(reg);
    Ok(())
}

/// Take alias `alias` from bdev `b` (SPDK's `spdk_bdev_alias_del`).
pub fn alias_del(b: &Bdev, alias: &str) -> Result<()> {
    let _reg = registry();
    let mut a = b.0.aliases.lock().unwrap_or_else(|e| e.into_inner());
    let before = a.len();
    a.retain(|x| x != alias);
    if a.len() == before {
        return Err(Error::NotFound(alias.to_string()));
    }
    Ok(())
}

/// Register a bdev; names and aliases must be unused (across both). The examiners
/// ([`crate::examine`]) are offered it before this returns, without waiting for them.
pub fn register(info: BdevInfo, module: Arc<dyn BdevModule>) -> Result<Bdev> {
    info.validate()?;
    let info = Arc::new(info);
    let mut reg = registry();
    for n in std::iter::once(&info.name).chain(info.aliases.iter()) {
        if reg.iter().any(|b| named(b, n)) {
            return Err(Error::Exists(n.clone()));
        }
    }
    let qos = Arc::new(QosLimits::default());
    let shared = Arc::new_cyclic(|weak: &Weak<BdevShared>| {
        let w2 = weak.clone();
        let q1 = qos.clone();
        let (info1, m1) = (info.clone(), module.clone());
        let io_device = io_channel::register(
            &info.name,
            move || BdevChannel::new(info1.clone(), q1.clone(), m1.create_channel()),
            move |ch: BdevChannel| {
                let stats = ch.retire();
                if let Some(b) = w2.upgrade() {
                    Bdev(b).retire_stats(&stats);
                }
            },
        );
        BdevShared {
            info: info.clone(),
            supported: IoTypeSet::from_fn(|t| module.io_type_supported(t)),
            module,
            io_device,
            qos,
            removing: AtomicBool::new(false),
            blockcnt: AtomicU64::new(info.num_blocks),
            aliases: Mutex::new(info.aliases.clone()),
            state: Mutex::new(BdevState {
                removing: false,
                descs: Vec::new(),
                claim: None,
                retired: IoStats::default(),
                unregister_done: None,
                reset_waiters: None,
            }),
        }
    });
    let b = Bdev(shared);
    reg.push(b.clone());
    drop(reg);
    if let Some(f) = ON_REGISTER.get() {
        f(&b);
    }
    Ok(b)
}

/// The bdev named (or aliased) `name`.
pub fn get(name: &str) -> Option<Bdev> {
    registry().iter().find(|b| named(b, name)).cloned()
}

/// Every registered bdev, in registration order.
pub fn list() -> Vec<Bdev> {
    registry().clone()
}

/// Unregister `name` (on a framework thread): every open descriptor gets
/// [`BdevEvent::Remove`] on its own thread; once all are closed and every channel is
/// gone the module's `destruct` runs, the name is freed, and `done` runs on this thread.
pub fn unregister<D: FnOnce(Result<()>) + Send + 'static>(name: &str, done: D) -> Result<()> {
    let me = thread::current().ok_or(framework::Error::NotOnThread {
        what: "unregister a bdev",
    })?;
    let b = get(name).ok_or_else(|| Error::NotFound(name.to_string()))?;
    let descs = {
        let mut st = b.0.lock();
        if st.removing {
            return Err(Error::Removed {
                what: "unregister",
                name: name.to_string(),
            });
        }
        st.removing = true;
        // Pairs with the Acquire load in `is_removing`.
        b.0.removing.store(true, Ordering::Release);
        for d in &st.descs {
            d.forbid_io();
        }
        st.unregister_done = Some((me, Box::new(done)));
        st.descs.clone()
    };
    if descs.is_empty() {
        finish_unregister(&b);
    }
    for d in descs {
        d.notify_remove();
    }
    Ok(())
}

/// Called when the last descriptor of a removing bdev closes (or at once if none was
/// open): wait for the channels on the unregistering thread, then destruct.
pub(crate) fn finish_unregister(b: &Bdev) {
    let Some((t, done)) = b.0.lock().unregister_done.take() else {
        return;
    };
    let b2 = b.clone();
    let m = move || {
        let b3 = b2.clone();
        let r = b2.0.io_device.unregister(move || {
            crate::qos::stop(&b3.0.qos);
            b3.0.module.destruct();
            registry().retain(|x| !Arc::ptr_eq(&x.0, &b3.0));
            done(Ok(()));
        });
        if let Err(e) = r {
            eal::log_err!(
                "bdev '{}': unregistering its I/O device failed: {e}",
                b2.name()
            );
        }
    };
    if let Err(e) = t.send_msg(m) {
        eal::log_err!("bdev '{}': the unregistering thread is gone: {e}", b.name());
    }
}
