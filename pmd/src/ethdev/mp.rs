//! Ports shared between the processes of an EAL group, after DPDK's multi-process
//! ethdev: the primary probes and configures ports; a secondary attaches to every one of
//! them ([`attach_secondary`]) and drives the queues it claims ([`queue_claim`]).
//!
//! # Who owns what
//!
//! * The port's state is in its shared memzone ([`crate::shared::PortShared`]):
//!   configuration (queue counts, MTU, MAC, pool of each RX queue), the started flag,
//!   link, counters, the per-queue driver words (ring cursors) and the pid of the
//!   secondary driving each queue. Only the primary changes the port: in a secondary,
//!   configure, queue setup, start, stop and the settings fail with
//!   [`Error::NotOwner`] and the port keeps running.
//! * A queue is driven by one process at a time. The primary arbitrates: a secondary's
//!   claim is an IPC request (`fp_eth_queue`) that the primary's handler grants by
//!   taking the queue's slot in its own port table (claim value `REMOTE`, so the
//!   primary's bursts on it return 0 and queue changes are refused) and recording the
//!   claimant's pid; a second claimant gets [`Error::QueueOwned`] naming the holder.
//! * Per-process driver state is rebuilt in the secondary: the primary's driver sends
//!   what it takes ([`crate::EthDriver::share_queue`]: parameters, for AF_PACKET and
//!   TAP the queue's file descriptor, for the e1000 the VFIO device, container and group
//!   descriptors, all over `SCM_RIGHTS`), and the driver's
//!   [`crate::QueueAttach`] makes the queue object there. Ring memory and mbuf pools
//!   are EAL memory, mapped at the same addresses in every process.
//!
//! # Failure
//!
//! * A secondary that dies keeps its claims until the primary reclaims them: at the next
//!   claim of the same queue, or when the primary calls [`reclaim_dead_queues`] (the
//!   claimant's pid is gone: `kill(pid, 0)` fails; a zombie child counts as alive until
//!   reaped). The queue's driver words were saved per frame, so the primary's own queue
//!   object goes on where the dead process stopped. Mbufs the dead process held in its
//!   own hands (a burst between RX and TX) are out of the pool until the application
//!   takes them back once no secondary is attached (`mbuf::PktmbufPool::
//!   take_back_all_out`, as `symmetric_mp`, `mp_server -p` and `testpmd` do).
//! * When the primary dies, the EAL's watcher in each secondary runs the callback set by
//!   [`attach_secondary`], which stops the attached ports locally (bursts return 0); the
//!   applications see [`eal::Eal::primary_alive`] turn false and exit.

use std::sync::atomic::Ordering;
use std::time::Duration;

use eal::mp::{Message, Peer};
use eal::Eal;
use mbuf::PktmbufPool;

use super::port::{lock, slot, PortCtl, QSlot, SharedPtr, State, ALLOC, HANDLE, REMOTE};
use crate::driver::{AttachCtx, EthDriver, QueueShare, QueueStats, SHARE_BLOB_MAX};
use crate::error::{Error, Result};
use crate::registry;
use crate::shared::{self, PortShared};
use crate::types::{DevInfo, MAX_PORTS, MAX_QUEUES};

/// The IPC action the primary serves.
const ACTION: &str = "fp_eth_queue";
const OP_CLAIM: u8 = 1;
const OP_RELEASE: u8 = 2;
/// How long a secondary waits for the primary's answer.
const IPC_TIMEOUT: Duration = Duration::from_secs(10);

fn dir(rx: bool) -> &'static str {
    if rx {
        "RX"
    } else {
        "TX"
    }
}

/// Register the primary's handler on `eal`'s IPC channel (once; later calls do nothing).
pub(super) fn serve(eal: &Eal) {
    // Exists on the second call: the handler is already there.
    let _ = eal.mp().action_register(ACTION, handle);
}

/// Request: op u8 | port u16 LE | rx u8 | queue u16 LE. Reply: 0 | blob (claim) or
/// nothing (release); 1 | error text; 2 | holder text (the queue is another's,
/// [`Error::QueueOwned`]).
fn handle(m: &Message, peer: &Peer) -> Option<Message> {
    let p = m.param();
    let res = if p.len() != 6 {
        Err((1, format!("request of {} bytes, expected 6", p.len())))
    } else {
        let port = u16::from_le_bytes([p[1], p[2]]);
        let rx = p[3] != 0;
        let q = u16::from_le_bytes([p[4], p[5]]);
        let pid = peer.pid().max(0) as u32;
        match p[0] {
            OP_CLAIM => grant(port, rx, q, pid).map_err(refusal),
            OP_RELEASE => take_back(port, rx, q, pid)
                .map(|()| QueueShare::default())
                .map_err(refusal),
            op => Err((1, format!("unknown operation {op}"))),
        }
    };
    let mut out = Message::new(ACTION).ok()?;
    match res {
        Ok(share) => {
            let mut param = vec![0u8];
            param.extend(&share.blob);
            out = out.with_param(&param).ok()?;
            for fd in share.fds {
                out.push_fd(fd).ok()?;
            }
        }
        Err((status, why)) => {
            let mut param = vec![status];
            let why = why.as_bytes();
            param.extend(&why[..why.len().min(eal::mp::MAX_PARAM_LEN - 1)]);
            out = out.with_param(&param).ok()?;
        }
    }
    Some(out)
}

/// A refusal as the reply carries it: status 2 with the holder for
/// [`Error::QueueOwned`] (the claimant rebuilds that error), else 1 with the text.
fn refusal(e: Error) -> (u8, String) {
    match e {
        Error::QueueOwned { holder, .. } => (2, holder),
        e => (1, e.to_string()),
    }
}

/// The owner word of queue `q` in one direction.
fn owner_of(sh: &PortShared, rx: bool, q: u16) -> &std::sync::atomic::AtomicU32 {
    if rx {
        &sh.rx_owner[q as usize]
    } else {
        &sh.tx_owner[q as usize]
    }
}

/// Release the primary's slot of a queue whose secondary owner is dead; true if it was.
fn reclaim_if_dead<T: ?Sized>(c: &PortCtl, qs: &QSlot<T>, rx: bool, q: u16) -> Option<u32> {
    let w = owner_of(c.shared(), rx, q);
    let pid = w.load(Ordering::Acquire);
    if pid == 0 || eal::sys::mem::process_exists(pid as i32) {
        return None;
    }
    w.store(0, Ordering::Release);
    if qs.claim.load(Ordering::Relaxed) == REMOTE {
        qs.release();
    }
    Some(pid)
}

/// Primary: hand queue (`rx`, `q`) of `port` to process `pid`.
fn grant(port: u16, rx: bool, q: u16, pid: u32) -> Result<QueueShare> {
    let (s, mut g) = lock(port, "share a queue of")?;
    let c = g.as_mut().expect("checked by lock");
    let n = if rx { c.nb_rxq } else { c.nb_txq };
    if q >= n || q as usize >= MAX_QUEUES {
        return Err(Error::BadQueue {
            op: "claim",
            dir: dir(rx),
            port,
            queue: q,
            why: format!("port has {n} {} queues", dir(rx)),
        });
    }
    let (rq, tq) = (s.rxq(port), s.txq(port));
    let claim = if rx {
        let qs = rq.slot(q as usize).expect("q < MAX_QUEUES");
        reclaim_if_dead(c, qs, rx, q);
        take_slot(qs)
    } else {
        let qs = tq.slot(q as usize).expect("q < MAX_QUEUES");
        reclaim_if_dead(c, qs, rx, q);
        take_slot(qs)
    };
    let release = || {
        if rx {
            s.rx[q as usize].release()
        } else {
            s.tx[q as usize].release()
        }
    };
    match claim {
        Ok(true) => {}
        Ok(false) => {
            release();
            return Err(Error::BadQueue {
                op: "claim",
                dir: dir(rx),
                port,
                queue: q,
                why: "queue is not set up".into(),
            });
        }
        Err(holder) => {
            let cur = owner_of(c.shared(), rx, q).load(Ordering::Acquire);
            let holder = match holder {
                REMOTE if cur == pid => format!("this process (pid {pid}) already"),
                REMOTE => format!("process {cur}"),
                HANDLE => format!(
                    "the primary process (pid {}) through a queue handle",
                    std::process::id()
                ),
                _ => "the primary process's control path".into(),
            };
            return Err(Error::QueueOwned {
                dir: dir(rx),
                port,
                queue: q,
                holder,
            });
        }
    }
    let share = match c.driver.share_queue(rx, q) {
        Some(Ok(sh)) if sh.blob.len() <= SHARE_BLOB_MAX && sh.fds.len() <= eal::mp::MAX_FDS => sh,
        Some(Ok(_)) => {
            release();
            return Err(Error::Mp {
                op: "share a queue of",
                port,
                why: "driver's queue parameters do not fit one message".into(),
            });
        }
        Some(Err(e)) => {
            release();
            return Err(e);
        }
        None => {
            release();
            return Err(Error::Mp {
                op: "share a queue of",
                port,
                why: format!(
                    "driver {} cannot share its queues with another process",
                    c.driver.info().driver_name
                ),
            });
        }
    };
    owner_of(c.shared(), rx, q).store(pid, Ordering::Release);
    eal::log_info!(
        "pmd: port {port}: {} queue {q} handed to process {pid}",
        dir(rx)
    );
    Ok(share)
}

/// Take a slot for a secondary: `Ok(set_up)` (the caller releases it if not set up), or
/// the holder's claim value.
fn take_slot<T: ?Sized>(qs: &QSlot<T>) -> std::result::Result<bool, u8> {
    qs.claim_long(REMOTE)?;
    // SAFETY: claimed (C1 in claim_long); nobody else touches the slot until release.
    Ok(unsafe { (*qs.q.get()).is_some() })
}

/// Primary: process `pid` gives queue (`rx`, `q`) of `port` back.
fn take_back(port: u16, rx: bool, q: u16, pid: u32) -> Result<()> {
    let (s, g) = lock(port, "take back a queue of")?;
    let c = g.as_ref().expect("checked by lock");
    if q as usize >= MAX_QUEUES {
        return Err(Error::BadQueue {
            op: "release",
            dir: dir(rx),
            port,
            queue: q,
            why: "no such queue".into(),
        });
    }
    let w = owner_of(c.shared(), rx, q);
    let cur = w.load(Ordering::Acquire);
    if cur != pid {
        return Err(Error::QueueOwned {
            dir: dir(rx),
            port,
            queue: q,
            holder: format!("process {cur}, not {pid}"),
        });
    }
    w.store(0, Ordering::Release);
    if rx {
        s.rx[q as usize].release();
    } else {
        s.tx[q as usize].release();
    }
    eal::log_info!(
        "pmd: port {port}: {} queue {q} back from process {pid}",
        dir(rx)
    );
    Ok(())
}

/// A queue the primary took back from a dead process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reclaimed {
    pub port: u16,
    pub rx: bool,
    pub queue: u16,
    /// The dead process.
    pub pid: u32,
}

/// Primary: take back every queue whose secondary owner has died (control path; call it
/// from time to time, or before changing ports secondaries used). Returns what was
/// taken back. The primary's own queue objects go on where the dead process stopped.
pub fn reclaim_dead_queues() -> Vec<Reclaimed> {
    let mut out = Vec::new();
    for port in 0..MAX_PORTS as u16 {
        let Ok((s, g)) = lock(port, "reclaim queues of") else {
            continue;
        };
        let c = g.as_ref().expect("checked by lock");
        if c.remote.is_some() {
            continue;
        }
        for q in 0..MAX_QUEUES as u16 {
            if let Some(pid) = reclaim_if_dead(c, &s.rx[q as usize], true, q) {
                out.push(Reclaimed {
                    port,
                    rx: true,
                    queue: q,
                    pid,
                });
            }
            if let Some(pid) = reclaim_if_dead(c, &s.tx[q as usize], false, q) {
                out.push(Reclaimed {
                    port,
                    rx: false,
                    queue: q,
                    pid,
                });
            }
        }
    }
    for r in &out {
        eal::log_warn!(
            "pmd: port {}: {} queue {} taken back from dead process {}",
            r.port,
            dir(r.rx),
            r.queue,
            r.pid
        );
    }
    out
}

/// The driver object of a port in a secondary: it answers `info` from the shared block
/// and nothing else (every change goes through `primary_only` before reaching it).
struct Remote {
    driver: &'static str,
    nb_rxq: u16,
    nb_txq: u16,
}

impl EthDriver for Remote {
    fn info(&self) -> DevInfo {
        DevInfo::new(self.driver, self.nb_rxq, self.nb_txq)
    }

    // Never reached: the ethdev layer refuses queue setup in a secondary first.
    fn rx_queue_setup(
        &mut self,
        _s: crate::driver::RxSetup<'_>,
    ) -> Result<Box<dyn crate::RxQueueOps>> {
        Err(Error::Unsupported {
            port: 0,
            why: "queues of an attached port are set up by the primary".into(),
        })
    }

    fn tx_queue_setup(
        &mut self,
        _s: crate::driver::TxSetup<'_>,
    ) -> Result<Box<dyn crate::TxQueueOps>> {
        Err(Error::Unsupported {
            port: 0,
            why: "queues of an attached port are set up by the primary".into(),
        })
    }
}

/// Secondary: attach to every port of the primary, at the same port ids (control path,
/// once after EAL init). Returns the ids. A port that cannot be attached (a layout of
/// another build) is an error naming it. No queue is claimed yet.
pub fn attach_secondary(eal: &Eal) -> Result<Vec<u16>> {
    if eal.is_primary() {
        return Err(Error::Mp {
            op: "attach to",
            port: 0,
            why: "this is the primary process".into(),
        });
    }
    let _a = ALLOC.lock().unwrap_or_else(|e| e.into_inner());
    let mut made = Vec::new();
    for port in 0..MAX_PORTS as u16 {
        let name = shared::memzone_name(port);
        let Some(mz) = eal.memzones().lookup(&name) else {
            continue;
        };
        let sh = shared::attach(eal, port)?;
        let driver_name = sh.driver();
        let driver = registry::queue_attach_name(&driver_name);
        let s = slot(port).expect("port < MAX_PORTS");
        let mut g = s.ctl.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_some() {
            return Err(Error::Mp {
                op: "attach",
                port,
                why: "this process has a port of its own with that id".into(),
            });
        }
        let (nrx, ntx) = (
            sh.nb_rxq.load(Ordering::Relaxed) as u16,
            sh.nb_txq.load(Ordering::Relaxed) as u16,
        );
        let mtu = sh.mtu.load(Ordering::Relaxed);
        let mac = sh.mac();
        let p = std::ptr::NonNull::from(sh);
        // The local gate stays open: the primary's start/stop is the shared flag, which
        // the queue wrappers below check before each burst.
        s.started.store(true, Ordering::Release);
        // The TX length check at the MTU the primary had when we attached (net_ring,
        // like the primary's, opts out).
        s.frame_max.store(
            super::port::frame_limit(driver != "net_ring", mtu),
            Ordering::Relaxed,
        );
        *g = Some(PortCtl {
            eal: eal.clone(),
            mz,
            shared: SharedPtr(p),
            name: sh.name(),
            driver: Box::new(Remote {
                driver,
                nb_rxq: nrx,
                nb_txq: ntx,
            }),
            state: State::Configured,
            nb_rxq: nrx,
            nb_txq: ntx,
            conf: Default::default(),
            mtu,
            mac,
            promisc: false,
            allmulti: false,
            link_admin_up: true,
            remote: Some(eal.primary_pid()),
            claimed: Vec::new(),
        });
        made.push(port);
    }
    let ports = made.clone();
    eal.on_primary_exit(move || {
        for &p in &ports {
            if let Some(s) = slot(p) {
                s.started.store(false, Ordering::Release);
            }
        }
        eal::log_warn!("pmd: the primary process is gone; attached ports stopped");
    });
    Ok(made)
}

/// Ask the primary; returns its reply (status checked) with the descriptors.
fn ask(eal: &Eal, op: u8, port: u16, rx: bool, q: u16) -> Result<Message> {
    let what = if op == OP_CLAIM {
        "claim a queue of"
    } else {
        "release a queue of"
    };
    let mut p = vec![op];
    p.extend(port.to_le_bytes());
    p.push(u8::from(rx));
    p.extend(q.to_le_bytes());
    let mp_err = |why: String| Error::Mp {
        op: what,
        port,
        why,
    };
    let m = Message::new(ACTION)
        .and_then(|m| m.with_param(&p))
        .map_err(|e| mp_err(e.to_string()))?;
    let r = eal
        .mp()
        .request_sync(&m, IPC_TIMEOUT)
        .map_err(|e| mp_err(e.to_string()))?;
    let Some(reply) = r.replies.into_iter().next() else {
        return Err(mp_err(format!(
            "no answer within {IPC_TIMEOUT:?} (is the primary alive and serving ports?)"
        )));
    };
    let msg = reply.msg;
    match msg.param().first() {
        Some(0) => Ok(msg),
        Some(2) => Err(Error::QueueOwned {
            dir: dir(rx),
            port,
            queue: q,
            holder: String::from_utf8_lossy(&msg.param()[1..]).into_owned(),
        }),
        Some(_) => Err(mp_err(
            String::from_utf8_lossy(&msg.param()[1..]).into_owned(),
        )),
        None => Err(mp_err("empty answer".into())),
    }
}

/// Secondary: claim RX (`rx`) or TX queue `q` of `port` from the primary and set it up
/// in this process; from then on [`crate::rx_burst`]/[`crate::tx_burst`] (or a queue
/// handle) here drive it, and the primary's bursts on it return 0. Refused with
/// [`Error::QueueOwned`] while another process drives the queue.
pub fn queue_claim(port: u16, rx: bool, q: u16) -> Result<()> {
    let (s, mut g) = lock(port, "claim a queue of")?;
    let c = g.as_mut().expect("checked by lock");
    if c.remote.is_none() {
        return Err(Error::Mp {
            op: "claim a queue of",
            port,
            why: "this is the primary process (its queues are its own)".into(),
        });
    }
    if c.claimed.contains(&(rx, q)) {
        return Ok(());
    }
    let driver = c.driver.info().driver_name;
    let Some(att) = registry::queue_attach(driver) else {
        return Err(Error::Mp {
            op: "claim a queue of",
            port,
            why: format!(
                "driver '{}' cannot share queues between processes",
                c.shared().driver()
            ),
        });
    };
    let eal = c.eal.clone();
    let mut reply = ask(&eal, OP_CLAIM, port, rx, q)?;
    let fds = reply.take_fds();
    let blob = reply.param()[1..].to_vec();
    let sh = c.shared();
    let started = std::ptr::NonNull::from(&sh.started);
    let made = if rx {
        let pool_name = sh.rx_pool_name(q as usize);
        let pool = if pool_name.is_empty() {
            None
        } else {
            Some(
                PktmbufPool::lookup(&eal, &pool_name).map_err(|e| Error::Mp {
                    op: "claim a queue of",
                    port,
                    why: format!("look up the queue's pool '{pool_name}': {e}"),
                })?,
            )
        };
        let stats = QueueStats::new(&sh.rxq[q as usize]);
        s.rxq(port).install(q, stats, |st| {
            let inner = (att.rx)(AttachCtx {
                eal: &eal,
                port,
                queue: q,
                blob: &blob,
                fds,
                pool: pool.as_ref(),
                stats: st,
            })?;
            Ok(Box::new(GatedRx { inner, started }) as Box<dyn crate::RxQueueOps>)
        })
    } else {
        let stats = QueueStats::new(&sh.txq[q as usize]);
        s.txq(port).install(q, stats, |st| {
            let inner = (att.tx)(AttachCtx {
                eal: &eal,
                port,
                queue: q,
                blob: &blob,
                fds,
                pool: None,
                stats: st,
            })?;
            Ok(Box::new(GatedTx { inner, started }) as Box<dyn crate::TxQueueOps>)
        })
    };
    if let Err(e) = made {
        let _ = ask(&eal, OP_RELEASE, port, rx, q);
        return Err(e);
    }
    c.claimed.push((rx, q));
    Ok(())
}

/// Secondary: drop this process's queue object of (`rx`, `q`) and give the queue back to
/// the primary. Refused with [`Error::QueueBusy`] while a queue handle here holds it.
pub fn queue_release(port: u16, rx: bool, q: u16) -> Result<()> {
    let (s, mut g) = lock(port, "release a queue of")?;
    let c = g.as_mut().expect("checked by lock");
    release_locked(port, s, c, rx, q)
}

pub(super) fn release_locked(
    port: u16,
    s: &super::port::PortSlot,
    c: &mut PortCtl,
    rx: bool,
    q: u16,
) -> Result<()> {
    let Some(i) = c.claimed.iter().position(|&x| x == (rx, q)) else {
        return Err(Error::BadQueue {
            op: "release",
            dir: dir(rx),
            port,
            queue: q,
            why: "this process did not claim it".into(),
        });
    };
    if rx {
        s.rxq(port).drop_one(q as usize, "release a queue of")?;
    } else {
        s.txq(port).drop_one(q as usize, "release a queue of")?;
    }
    c.claimed.swap_remove(i);
    if c.eal.primary_alive() {
        ask(&c.eal, OP_RELEASE, port, rx, q)?;
    }
    Ok(())
}

/// A secondary's queue: the driver's queue behind the primary's started flag.
struct GatedRx {
    inner: Box<dyn crate::RxQueueOps>,
    started: std::ptr::NonNull<std::sync::atomic::AtomicU32>,
}

/// See [`GatedRx`].
struct GatedTx {
    inner: Box<dyn crate::TxQueueOps>,
    started: std::ptr::NonNull<std::sync::atomic::AtomicU32>,
}

// SAFETY: `started` points into the port's shared memzone, mapped while the EAL lives;
// queue objects are dropped before the port (and its `Eal` clone) goes. An atomic.
unsafe impl Send for GatedRx {}
// SAFETY: as above.
unsafe impl Send for GatedTx {}

#[inline(always)]
fn open(p: std::ptr::NonNull<std::sync::atomic::AtomicU32>) -> bool {
    // SAFETY: see the Send impls: valid while the queue lives.
    // Acquire pairs with the primary's Release store at start (S1 in lifecycle).
    unsafe { p.as_ref() }.load(Ordering::Acquire) != 0
}

impl crate::RxQueueOps for GatedRx {
    fn rx_burst(&mut self, out: &mut Vec<mbuf::Mbuf>, max: usize) -> usize {
        if !open(self.started) {
            return 0;
        }
        self.inner.rx_burst(out, max)
    }
}

impl crate::TxQueueOps for GatedTx {
    fn tx_burst(&mut self, pkts: &mut Vec<mbuf::Mbuf>, max: usize) -> usize {
        if !open(self.started) {
            return 0;
        }
        self.inner.tx_burst(pkts, max)
    }
}
