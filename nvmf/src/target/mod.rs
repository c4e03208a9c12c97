//! The NVMe/TCP target (SPDK's `lib/nvmf` with its TCP transport).
//!
//! * [`subsys`]: NVM subsystems and the discovery subsystem: NQN, serial, model,
//!   namespaces (open bdev descriptors), listeners, the host allow list.
//! * [`ctrlr`]: controllers, made by an admin-queue Connect: properties (CC/CSTS),
//!   features, keep-alive, the I/O queues granted.
//! * `conn`: one TCP connection = one queue: PDU handling (ICReq, capsules with
//!   in-capsule data, R2T/H2CData, C2HData), command life cycle, TermReq on bad input.
//! * `admin` and `io`: what commands do (identify, features, logs; bdev I/O).
//! * `completion`: a group's bdev channels and finished-I/O list, as its
//!   connections see them.
//! * `group`: poll groups, one framework thread per reactor, each serving its
//!   connections from a poller (and, when its reactor sleeps, an interrupt on its
//!   epoll set); accepted connections are spread over them round robin.
//! * `listener`: listening sockets, accepted on the app thread.
//!
//! # Threads
//! The target's tables ([`Target`]) are behind mutexes and may be read from any
//! thread; RPCs change them on the app thread. A connection and everything it owns
//! (receive buffer, pending commands, the bdev channels of its group) stays on its
//! group's thread. Controllers are shared (`Arc`) between the group serving the admin
//! queue and those serving its I/O queues: their state is atomics and a mutex.

pub(crate) mod admin;
pub(crate) mod completion;
pub(crate) mod conn;
pub mod ctrlr;
pub(crate) mod group;
pub(crate) mod io;
pub(crate) mod listener;
pub mod subsys;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use crate::error::{Error, Result};
use ctrlr::Ctrlr;
use subsys::Subsys;

/// `nvmf_create_transport` options the TCP transport honours (SPDK's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportOpts {
    /// Entries per queue (CAP.MQES + 1; also the I/O queue size limit at Connect).
    pub max_queue_depth: u16,
    /// I/O queues per controller.
    pub max_io_qpairs_per_ctrlr: u16,
    /// In-capsule data on I/O queues (bytes).
    pub in_capsule_data_size: u32,
    /// Largest transfer of one command (bytes; MDTS and MAXH2CDATA).
    pub max_io_size: u32,
}

impl Default for TransportOpts {
    fn default() -> Self {
        TransportOpts {
            max_queue_depth: 128,
            max_io_qpairs_per_ctrlr: 127,
            in_capsule_data_size: 4096,
            max_io_size: 131072,
        }
    }
}

/// In-capsule data the admin queue takes (the Linux host sends up to 8 KiB there).
pub const ADMIN_IN_CAPSULE: u32 = 8192;

/// The process's target.
pub struct Target {
    pub(crate) transport: Mutex<Option<TransportOpts>>,
    pub(crate) subsystems: Mutex<Vec<Arc<Subsys>>>,
    pub(crate) ctrlrs: Mutex<HashMap<u16, Arc<Ctrlr>>>,
    pub(crate) listeners: Mutex<Vec<listener::Listener>>,
    pub(crate) groups: Mutex<Vec<group::GroupHandle>>,
    next_group: AtomicUsize,
    next_cntlid: Mutex<u16>,
    /// Discovery log generation counter.
    pub(crate) genctr: AtomicU64,
    /// Commands alive (received, not yet answered or dropped): the data buffers they
    /// hold. Back to zero when the target is idle: no buffer leaks.
    pub(crate) live_cmds: AtomicU64,
    /// Connections accepted and closed.
    pub(crate) accepted: AtomicU64,
    pub(crate) closed: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The target.
pub fn tgt() -> &'static Target {
    static T: OnceLock<Target> = OnceLock::new();
    T.get_or_init(|| Target {
        transport: Mutex::new(None),
        subsystems: Mutex::new(vec![Arc::new(Subsys::discovery())]),
        ctrlrs: Mutex::new(HashMap::new()),
        listeners: Mutex::new(Vec::new()),
        groups: Mutex::new(Vec::new()),
        next_group: AtomicUsize::new(0),
        next_cntlid: Mutex::new(1),
        genctr: AtomicU64::new(0),
        live_cmds: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        closed: AtomicU64::new(0),
    })
}

/// Milliseconds since the first call (keep-alive clock).
pub(crate) fn now_ms() -> u64 {
    static T0: OnceLock<Instant> = OnceLock::new();
    T0.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Counters for `nvmf_get_stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetStats {
    /// Connections accepted so far.
    pub accepted: u64,
    /// Connections closed so far.
    pub closed: u64,
    /// Commands holding buffers now.
    pub live_cmds: u64,
    /// Controllers now.
    pub ctrlrs: u64,
}

impl Target {
    /// The transport options, if `nvmf_create_transport` ran.
    pub fn transport(&self) -> Option<TransportOpts> {
        *lock(&self.transport)
    }

    /// Create the TCP transport (once).
    pub fn create_transport(&self, o: TransportOpts) -> Result<()> {
        let mut t = lock(&self.transport);
        if t.is_some() {
            return Err(Error::Exists("transport TCP".into()));
        }
        *t = Some(o);
        Ok(())
    }

    /// Every subsystem (the discovery subsystem first).
    pub fn subsystems(&self) -> Vec<Arc<Subsys>> {
        lock(&self.subsystems).clone()
    }

    /// The subsystem named `nqn`.
    pub fn subsystem(&self, nqn: &str) -> Option<Arc<Subsys>> {
        lock(&self.subsystems)
            .iter()
            .find(|s| s.nqn == nqn)
            .cloned()
    }

    /// Add a subsystem (unique NQN).
    pub fn add_subsystem(&self, s: Subsys) -> Result<Arc<Subsys>> {
        let mut l = lock(&self.subsystems);
        if l.iter().any(|x| x.nqn == s.nqn) {
            return Err(Error::Exists(format!("subsystem {}", s.nqn)));
        }
        let s = Arc::new(s);
        l.push(s.clone());
        self.genctr.fetch_add(1, Ordering::Relaxed);
        Ok(s)
    }

    /// Delete subsystem `nqn`: its controllers are torn down (their connections close
    /// on their groups' next timer tick) and its namespaces closed.
    pub fn delete_subsystem(&self, nqn: &str) -> Result<()> {
        let s = {
            let mut l = lock(&self.subsystems);
            let i = l
                .iter()
                .position(|x| x.nqn == nqn && !x.is_discovery())
                .ok_or_else(|| Error::NotFound(format!("subsystem {nqn}")))?;
            l.remove(i)
        };
        s.shut_down();
        let ctrlrs: Vec<Arc<Ctrlr>> = lock(&self.ctrlrs)
            .values()
            .filter(|c| Arc::ptr_eq(&c.subsys, &s))
            .cloned()
            .collect();
        for c in ctrlrs {
            c.kill("its subsystem was deleted");
        }
        self.genctr.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A new controller id (1..=0xffef), skipping those in use.
    pub(crate) fn alloc_cntlid(&self) -> Option<u16> {
        let mut n = lock(&self.next_cntlid);
        let used = lock(&self.ctrlrs);
        for _ in 0..0xffef {
            let id = *n;
            *n = if *n >= 0xffef { 1 } else { *n + 1 };
            if !used.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }

    /// The next poll group, round robin.
    pub(crate) fn pick_group(&self) -> Option<group::GroupHandle> {
        let g = lock(&self.groups);
        if g.is_empty() {
            return None;
        }
        let i = self.next_group.fetch_add(1, Ordering::Relaxed) % g.len();
        Some(g[i].clone())
    }

    /// Whether some listener serves `addr`.
    pub fn listening_on(&self, addr: SocketAddr) -> bool {
        lock(&self.listeners).iter().any(|l| l.addr == addr)
    }

    /// The counters.
    pub fn stats(&self) -> TargetStats {
        TargetStats {
            accepted: self.accepted.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed),
            live_cmds: self.live_cmds.load(Ordering::Relaxed),
            ctrlrs: lock(&self.ctrlrs).len() as u64,
        }
    }
}

/// A command's claim on the live-command counter, dropped with its buffers.
pub(crate) struct CmdToken(());

impl CmdToken {
    pub(crate) fn new() -> CmdToken {
        tgt().live_cmds.fetch_add(1, Ordering::Relaxed);
        CmdToken(())
    }
}

impl Drop for CmdToken {
    fn drop(&mut self) {
        tgt().live_cmds.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Make subsystem `s` listen on `addr` (on the app thread): the socket is opened
/// unless some subsystem listens there already.
pub fn listen(s: &Subsys, addr: SocketAddr) -> Result<()> {
    if tgt().transport().is_none() {
        return Err(Error::NotFound("transport TCP".into()));
    }
    listener::ensure(addr)?;
    s.add_listener(addr)?;
    tgt().genctr.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
