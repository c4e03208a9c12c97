//! `net_af_xdp`: one AF_XDP socket (XSK) per queue pair, bound to consecutive queues
//! `start_queue..start_queue + queue_count` of a kernel interface, and our XDP program
//! (see [`prog`]) redirecting those queues' frames to the XSKs through an XSKMAP.
//!
//! The XSK of a queue is opened by its RX queue setup (as DPDK's `eth_rx_queue_setup`
//! does): the UMEM is the RX pool's memory when its layout allows (see [`umem`]: one
//! memory chunk, an mbuf of 2048..4096 bytes), and mbufs themselves go round the fill,
//! RX, TX and completion rings with no copy in user space (see [`pooled`]); TX queue
//! setup needs its RX queue set up first. A pool that does not fit keeps the copy path
//! (our own anonymous UMEM, frames copied to and from mbufs), with the reason logged.
//! `xstats` `mbuf_umem` says which: 1 if every open queue's UMEM is its pool's memory.
//! Zero-copy binding (driver support, `zero_copy`) is independent: it saves the
//! kernel's own copy.
//!
//! Keys as DPDK's driver: `iface` (required), `start_queue` (0), `queue_count` (1),
//! `shared_umem` (0; 1: as DPDK, every queue of any port whose RX pool is the same
//! mempool shares one UMEM, bound with `XDP_SHARED_UMEM`, Linux 5.10+; copy-path
//! queues share the port's one anonymous UMEM; `xstats` `shared_umem` and
//! `umem_borrowed_queues`, the queues bound to another socket's UMEM),
//! `busy_budget` (0: off; N: preferred busy polling, N frames per poll),
//! `force_copy` (0; 1: copy mode); and ours, `zero_copy` (0; 1: zero-copy or fail).
//! Without either, the kernel picks zero-copy where the driver has it, else copy
//! (`xstats`: `zero_copy`, `xdp_native`), and each socket's kernel counters
//! (`XDP_STATISTICS`) as `rx_qN_dropped`, `rx_qN_ring_full`, `rx_qN_fill_ring_empty`,
//! `rx_qN_invalid_descs`, `tx_qN_invalid_descs`, `tx_qN_ring_empty`; frames the kernel
//! dropped (dropped + ring full) count in `imissed`.

mod pooled;
mod prog;
mod queue;
mod umem;
mod xsk;

use std::sync::{Arc, Mutex, Weak};

use mbuf::PktmbufPool;

use super::netif::NetIf;
use crate::driver::{
    DevControl, DriverStats, EthDriver, RxQueueOps, RxSetup, TxQueueOps, TxSetup, VdevCtx,
    VdevDriver,
};
use crate::error::{Error, Result};
use crate::sys::{self, Mapping};
use crate::types::{DevCapa, DevInfo, Link, TxOffloads};
use prog::{XdpMode, XdpProg};
use queue::{Core, RxHalf, Slot, TxHalf};
use umem::PoolUmem;
use xsk::{CopyMode, UmemSrc, Xsk, FRAME_SIZE, RING};

pub const DRIVER: VdevDriver = VdevDriver {
    name: "net_af_xdp",
    aliases: &["eth_af_xdp"],
    keys: &[
        "iface",
        "start_queue",
        "queue_count",
        "shared_umem",
        "busy_budget",
        "force_copy",
        "zero_copy",
    ],
    create,
};

/// A queue's XSK, opened by RX queue setup (its pool may be the UMEM).
struct Open {
    core: Arc<Core>,
    rx: Slot<RxHalf>,
    tx: Slot<TxHalf>,
    zero_copy: bool,
    /// The pool whose memory is the UMEM (None: our own memory, frames copied).
    umem_pool: Option<PktmbufPool>,
    /// Bound to a UMEM another socket registered (`XDP_SHARED_UMEM`).
    borrowed: bool,
}

#[derive(Default)]
struct QueuePair {
    open: Option<Open>,
    /// The socket's dropped frames (`rx_dropped + rx_ring_full`) as of the last
    /// `stats` call, which reports the difference as `imissed`.
    missed_seen: u64,
}

struct AfXdp {
    netif: NetIf,
    pairs: Vec<QueuePair>,
    prog: XdpProg,
    port: u16,
    start_queue: u32,
    mode: CopyMode,
    busy_budget: u32,
    /// `shared_umem=1`: queues over the same mempool share its UMEM (across ports);
    /// queues on the copy path share the port's one anonymous UMEM.
    shared_umem: bool,
    /// The port's anonymous UMEM (a region per queue) and the socket it is registered
    /// on, once a copy-path queue with `shared_umem=1` is open.
    anon_shared: Option<(Arc<Mapping>, Option<Arc<Core>>)>,
}

fn create(ctx: &VdevCtx<'_>) -> Result<Box<dyn EthDriver>> {
    let a = ctx.args;
    let netif = NetIf::from_args(a)?;
    let iface = netif.name.clone();
    let start = a.num("start_queue", 0, 0, 4095)? as u32;
    let count = a.num("queue_count", 1, 1, crate::types::MAX_QUEUES as u64)? as u32;
    let shared = a.flag("shared_umem")?;
    let budget = a.num("busy_budget", 0, 0, 65535)? as u32;
    let mode = match (a.flag("force_copy")?, a.flag("zero_copy")?) {
        (true, true) => {
            return Err(a.bad("zero_copy", "1", "contradicts force_copy=1"));
        }
        (true, false) => CopyMode::Copy,
        (false, true) => CopyMode::ZeroCopy,
        (false, false) => CopyMode::Auto,
    };
    if let Some(n) = netif.rx_queues() {
        if start + count > n {
            return Err(a.bad(
                if start >= n {
                    "start_queue"
                } else {
                    "queue_count"
                },
                &format!("{start}+{count}"),
                &format!(
                    "queues {start}..{} are out of range: {iface} has {n} RX queues",
                    start + count
                ),
            ));
        }
    }
    let prog = XdpProg::attach(&iface, netif.index, start + count)?;
    Ok(Box::new(AfXdp {
        netif,
        pairs: (0..count).map(|_| QueuePair::default()).collect(),
        prog,
        port: ctx.port_id,
        start_queue: start,
        mode,
        busy_budget: budget,
        shared_umem: shared,
        anon_shared: None,
    }))
}

/// Sockets whose UMEM is a pool's memory and may be shared (`shared_umem=1`), by pool
/// header address: DPDK shares one UMEM between every queue, of any port, that uses the
/// same mempool. Weak: a closed owner leaves the next socket to register anew.
static POOL_UMEMS: Mutex<Vec<(u64, Weak<Core>)>> = Mutex::new(Vec::new());

/// A live socket with `pool`'s memory registered as its UMEM, if any.
fn pool_umem_owner(pool: &PktmbufPool) -> Option<Arc<Core>> {
    let key = pool.mempool().addr().0;
    let mut v = POOL_UMEMS.lock().unwrap_or_else(|e| e.into_inner());
    v.retain(|(_, w)| w.strong_count() > 0);
    v.iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, w)| w.upgrade())
}

/// A queue's new socket: its core and halves, whether the kernel runs it zero-copy, and
/// whether it is bound to another socket's UMEM.
type Opened = (Arc<Core>, RxHalf, TxHalf, bool, bool);

impl AfXdp {
    /// Open queue `q`'s XSK for RX pool `pool`: its UMEM is the pool's memory if the
    /// pool's layout allows, else our own memory (frames copied; the log says why).
    fn open(&mut self, q: u16, pool: &PktmbufPool) -> Result<Open> {
        let ((core, rx, tx, zero_copy, borrowed), umem_pool) = match PoolUmem::new(pool) {
            Ok(u) => (self.open_pooled(q, u)?, Some(pool.clone())),
            Err(why) => {
                eal::log_warn!(
                    "pmd: net_af_xdp: {} queue {}: mempool {} cannot be the UMEM ({why}): \
                     frames are copied between our own UMEM and mbufs",
                    self.netif.name,
                    self.start_queue + u32::from(q),
                    pool.mempool().name()
                );
                (self.open_copy(q)?, None)
            }
        };
        self.prog.insert(
            &self.netif.name,
            self.start_queue + u32::from(q),
            std::os::fd::AsRawFd::as_raw_fd(core.fd()),
        )?;
        Ok(Open {
            core,
            rx: Arc::new(Mutex::new(Some(rx))),
            tx: Arc::new(Mutex::new(Some(tx))),
            zero_copy,
            umem_pool,
            borrowed,
        })
    }

    fn xsk(&self, q: u16, src: UmemSrc<'_>) -> Result<Xsk> {
        let queue = self.start_queue + u32::from(q);
        let n = &self.netif;
        Xsk::open(&n.name, n.index, queue, self.mode, self.busy_budget, src)
    }

    /// The socket over the pool's memory: registered here, or with `shared_umem=1`
    /// bound to the UMEM another socket registered over the same pool.
    fn open_pooled(&mut self, q: u16, u: PoolUmem) -> Result<Opened> {
        let owner = self.shared_umem.then(|| pool_umem_owner(&u.pool)).flatten();
        let x = match &owner {
            Some(o) => self.xsk(q, UmemSrc::Shared(o.fd()))?,
            None => self.xsk(
                q,
                UmemSrc::Own {
                    // The pool's memory, mapped while the pool lives (the core and the
                    // queue halves hold handles to it).
                    addr: u.base as *mut u8,
                    len: u.len,
                    chunk: u.chunk,
                    headroom: u.headroom,
                    flags: sys::XDP_UMEM_UNALIGNED_CHUNK_FLAG,
                },
            )?,
        };
        let zc = x.zero_copy;
        // As many mbufs on the fill ring as the copy path's RX half has chunks (the
        // kernel drops frames it has no fill entry for while this process is
        // descheduled), keeping three quarters of the pool for the application and the
        // other queues. DPDK's driver also sizes its rings itself, not by `nb_desc`.
        let per_queue = u.pool.size() / (4 * self.pairs.len() as u32);
        let fill = RING.min(per_queue).max(1);
        eal::log_info!(
            "pmd: net_af_xdp: {} queue {}: UMEM is mempool {}'s memory ({} KiB, {}-byte \
             chunks, frames up to {} bytes{}), {fill} mbufs on the fill ring, no copy in \
             user space",
            self.netif.name,
            self.start_queue + u32::from(q),
            u.pool.mempool().name(),
            u.len / 1024,
            u.chunk,
            u.max_frame(),
            if owner.is_some() {
                ", shared with another socket"
            } else {
                ""
            }
        );
        let key = u.pool.mempool().addr().0;
        let (core, rx, tx) = queue::split_pool(x, u, fill);
        if self.shared_umem && owner.is_none() {
            let mut v = POOL_UMEMS.lock().unwrap_or_else(|e| e.into_inner());
            v.push((key, Arc::downgrade(&core)));
        }
        Ok((core, rx, tx, zc, owner.is_some()))
    }

    /// The socket over our own memory: a UMEM of its own, or with `shared_umem=1` a
    /// region of the port's one anonymous UMEM.
    fn open_copy(&mut self, q: u16) -> Result<Opened> {
        if !self.shared_umem {
            let map = xsk::umem_map(&self.netif.name, 1)?;
            let x = self.xsk(q, own(&map))?;
            let zc = x.zero_copy;
            let (c, r, t) = queue::split_copy(x, map, 0);
            return Ok((c, r, t, zc, false));
        }
        if self.anon_shared.is_none() {
            let map = xsk::umem_map(&self.netif.name, self.pairs.len() as u32)?;
            self.anon_shared = Some((map, None));
        }
        let (map, owner) = self.anon_shared.as_ref().expect("made above");
        let borrowed = owner.is_some();
        let x = match owner {
            Some(o) => self.xsk(q, UmemSrc::Shared(o.fd()))?,
            None => self.xsk(q, own(map))?,
        };
        let zc = x.zero_copy;
        let base = u64::from(q) * xsk::REGION as u64;
        let (c, r, t) = queue::split_copy(x, map.clone(), base);
        if let Some((_, owner @ None)) = &mut self.anon_shared {
            *owner = Some(c.clone());
        }
        Ok((c, r, t, zc, borrowed))
    }
}

/// Registration of an anonymous UMEM in `FRAME_SIZE` chunks.
fn own(map: &Mapping) -> UmemSrc<'static> {
    UmemSrc::Own {
        addr: map.as_ptr(),
        len: map.len(),
        chunk: FRAME_SIZE,
        headroom: 0,
        flags: 0,
    }
}

/// Take a queue half out of its slot (it is back there once the previous queue object
/// of that queue was dropped, which the ethdev layer does before setting up again).
fn take<T>(slot: &Slot<T>, dir: &'static str, q: u16) -> Result<T> {
    slot.lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .ok_or_else(|| busy(dir, q, "its XSK ring is in use"))
}

fn busy(dir: &str, q: u16, why: &str) -> Error {
    Error::os(
        "set up",
        format!("{dir} queue {q}: {why}"),
        std::io::Error::from(std::io::ErrorKind::ResourceBusy),
    )
}

impl EthDriver for AfXdp {
    fn info(&self) -> DevInfo {
        let n = self.pairs.len() as u16;
        let max = FRAME_SIZE - 256; // XDP_PACKET_HEADROOM in each chunk
        DevInfo {
            capa: DevCapa::MAC_SET | DevCapa::MTU_SET | DevCapa::PROMISC | DevCapa::LINK_SET,
            tx_offload_capa: TxOffloads::MULTI_SEGS,
            max_rx_pktlen: max,
            max_mtu: max - crate::types::ETHER_HDR_LEN,
            if_name: Some(self.netif.name.clone()),
            ..DevInfo::new(DRIVER.name, n, n)
        }
    }

    fn rx_queue_setup(&mut self, s: RxSetup<'_>) -> Result<Box<dyn RxQueueOps>> {
        let q = s.queue;
        let same_umem = |o: &Open| match &o.umem_pool {
            Some(p) => p.mempool().addr() == s.pool.mempool().addr(),
            None => PoolUmem::new(s.pool).is_err(),
        };
        let reuse = match &self.pairs[q as usize].open {
            Some(o) if same_umem(o) => true,
            Some(o) => {
                if o.tx.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
                    return Err(busy("RX", q, "TX queue of the same XSK is set up"));
                }
                false
            }
            None => false,
        };
        if !reuse {
            // The old socket (if any) closes once its halves are dropped here.
            self.pairs[q as usize].open = None;
            let o = self.open(q, s.pool)?;
            self.pairs[q as usize].open = Some(o);
        }
        let o = self.pairs[q as usize].open.as_ref().expect("opened above");
        Ok(Box::new(queue::RxQ {
            core: o.core.clone(),
            part: Some(take(&o.rx, "RX", q)?),
            slot: o.rx.clone(),
            pool: s.pool.clone(),
            port: self.port,
            stats: s.stats,
            rx_wakeup: o.zero_copy || self.busy_budget > 0,
        }))
    }

    fn tx_queue_setup(&mut self, s: TxSetup<'_>) -> Result<Box<dyn TxQueueOps>> {
        let Some(o) = &self.pairs[s.queue as usize].open else {
            return Err(busy(
                "TX",
                s.queue,
                "its XSK is opened by RX queue setup (its mempool is the UMEM): set up RX \
                 queue first",
            ));
        };
        Ok(Box::new(queue::TxQ {
            core: o.core.clone(),
            part: Some(take(&o.tx, "TX", s.queue)?),
            slot: o.tx.clone(),
            stats: s.stats,
            wake_errors: 0,
        }))
    }

    fn start(&mut self) -> Result<()> {
        self.netif.set_flag(sys::IFF_UP, true)
    }

    fn link(&mut self) -> Option<Link> {
        Some(self.netif.link())
    }

    fn control(&mut self) -> Option<&mut dyn DevControl> {
        Some(&mut self.netif)
    }

    fn stats(&mut self) -> DriverStats {
        let open = || self.pairs.iter().filter_map(|p| p.open.as_ref());
        let mut xstats = vec![
            ("zero_copy".into(), u64::from(open().all(|o| o.zero_copy))),
            (
                "xdp_native".into(),
                u64::from(self.prog.mode == XdpMode::Native),
            ),
            ("shared_umem".into(), u64::from(self.shared_umem)),
            (
                "mbuf_umem".into(),
                u64::from(open().count() > 0 && open().all(|o| o.umem_pool.is_some())),
            ),
            (
                "umem_borrowed_queues".into(),
                open().filter(|o| o.borrowed).count() as u64,
            ),
        ];
        let mut missed = 0;
        for (q, p) in self.pairs.iter_mut().enumerate() {
            let Some(o) = &p.open else { continue };
            // The kernel's counters of each XSK (XDP_STATISTICS); a socket that cannot
            // be read (never: it lives as long as the queue) just adds nothing.
            let Ok(st) = sys::statistics(o.core.fd()) else {
                continue;
            };
            let dropped = st.rx_dropped + st.rx_ring_full;
            missed += dropped.saturating_sub(p.missed_seen);
            p.missed_seen = dropped;
            xstats.extend([
                (format!("rx_q{q}_dropped"), st.rx_dropped),
                (format!("rx_q{q}_ring_full"), st.rx_ring_full),
                (
                    format!("rx_q{q}_fill_ring_empty"),
                    st.rx_fill_ring_empty_descs,
                ),
                (format!("rx_q{q}_invalid_descs"), st.rx_invalid_descs),
                (format!("tx_q{q}_invalid_descs"), st.tx_invalid_descs),
                (format!("tx_q{q}_ring_empty"), st.tx_ring_empty_descs),
            ]);
        }
        DriverStats { missed, xstats }
    }

    fn close(&mut self) {
        self.prog.detach();
    }
}
