//! `net_af_xdp`: one AF_XDP socket (XSK) per queue pair, bound to consecutive queues
//! `start_queue..start_queue + queue_count` of a kernel interface, and our XDP program
//! (see [`prog`]) redirecting those queues' frames to the XSKs through an XSKMAP.
//!
//! UMEM: anonymous memory (not the mempool's), a UMEM per XSK, or with `shared_umem=1`
//! one UMEM for all the port's XSKs (registered once, the other sockets bound with
//! `XDP_SHARED_UMEM`, each queue in a region of its own). RX copies frames out into
//! mbufs of the queue's pool and TX copies mbufs in, as `net_af_packet` does: UMEM
//! chunks never leave the driver (no mbuf whose buffer the kernel may still own, no
//! constraint on how the mempool's memory is laid out or aligned); the cost is one copy
//! per frame. Zero-copy binding (driver support) still saves the kernel's own copy.
//!
//! Keys as DPDK's driver: `iface` (required), `start_queue` (0), `queue_count` (1),
//! `shared_umem` (0; 1: one UMEM for the port's queues, `xstats` `shared_umem`),
//! `busy_budget` (0: off; N: preferred busy polling, N frames per poll),
//! `force_copy` (0; 1: copy mode); and ours, `zero_copy` (0; 1: zero-copy or fail).
//! Without either, the kernel picks zero-copy where the driver has it, else copy
//! (`xstats`: `zero_copy`, `xdp_native`), and each socket's kernel counters
//! (`XDP_STATISTICS`) as `rx_qN_dropped`, `rx_qN_ring_full`, `rx_qN_fill_ring_empty`,
//! `rx_qN_invalid_descs`, `tx_qN_invalid_descs`, `tx_qN_ring_empty`; frames the kernel
//! dropped (dropped + ring full) count in `imissed`.

mod prog;
mod queue;
mod xsk;

use std::sync::{Arc, Mutex};

use super::netif::NetIf;
use crate::driver::{
    DevControl, DriverStats, EthDriver, RxQueueOps, RxSetup, TxQueueOps, TxSetup, VdevCtx,
    VdevDriver,
};
use crate::error::{Error, Result};
use crate::sys;
use crate::types::{DevCapa, DevInfo, Link, TxOffloads};
use prog::{XdpMode, XdpProg};
use queue::{Core, RxPart, Slot, TxPart};
use xsk::{CopyMode, UmemPart, Xsk, FRAME_SIZE};

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

struct QueuePair {
    core: Arc<Core>,
    rx: Slot<RxPart>,
    tx: Slot<TxPart>,
    zero_copy: bool,
    /// The socket's dropped frames (`rx_dropped + rx_ring_full`) as of the last
    /// `stats` call, which reports the difference as `imissed`.
    missed_seen: u64,
}

struct AfXdp {
    netif: NetIf,
    pairs: Vec<QueuePair>,
    prog: XdpProg,
    port: u16,
    shared_umem: bool,
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
    let xsks = open_xsks(
        &iface,
        netif.index,
        start..start + count,
        mode,
        budget,
        shared,
    )?;
    let prog = XdpProg::attach(&iface, netif.index, start + count)?;
    for (i, x) in xsks.iter().enumerate() {
        prog.insert(&iface, start + i as u32, x.raw_fd())?;
    }
    let pairs = xsks
        .into_iter()
        .map(|x| {
            let zero_copy = x.zero_copy;
            let (core, rx, tx) = queue::split(x);
            QueuePair {
                core,
                rx: Arc::new(Mutex::new(Some(rx))),
                tx: Arc::new(Mutex::new(Some(tx))),
                zero_copy,
                missed_seen: 0,
            }
        })
        .collect();
    Ok(Box::new(AfXdp {
        netif,
        pairs,
        prog,
        port: ctx.port_id,
        shared_umem: shared,
    }))
}

/// The port's XSKs, one per queue of `queues`: each with a UMEM of its own, or all in
/// one UMEM registered on the first socket (`shared`).
fn open_xsks(
    iface: &str,
    ifindex: i32,
    queues: std::ops::Range<u32>,
    mode: CopyMode,
    budget: u32,
    shared: bool,
) -> Result<Vec<Xsk>> {
    let n = queues.len() as u32;
    let one = shared.then(|| xsk::umem_map(iface, n)).transpose()?;
    let mut xsks: Vec<Xsk> = Vec::with_capacity(n as usize);
    for (i, q) in queues.enumerate() {
        let part = match &one {
            Some(map) => UmemPart {
                map: map.clone(),
                base: (i * xsk::REGION) as u64,
                owner: xsks.first().map(|x| &x.fd),
            },
            None => UmemPart {
                map: xsk::umem_map(iface, 1)?,
                base: 0,
                owner: None,
            },
        };
        let x = Xsk::open(iface, ifindex, q, mode, budget, part)?;
        xsks.push(x);
    }
    eal::log_info!(
        "pmd: net_af_xdp: {iface}: {n} queue(s), {}, frames copied between UMEM and mbufs",
        if shared {
            "one UMEM shared by all (XDP_SHARED_UMEM)"
        } else {
            "a UMEM per queue"
        }
    );
    Ok(xsks)
}

/// Take a queue half out of its slot (it is back there once the previous queue object
/// of that queue was dropped, which the ethdev layer does before setting up again).
fn take<T>(slot: &Slot<T>, dir: &'static str, q: u16) -> Result<T> {
    slot.lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .ok_or_else(|| {
            Error::os(
                "set up",
                format!("{dir} queue {q}: its XSK ring is in use"),
                std::io::Error::from(std::io::ErrorKind::ResourceBusy),
            )
        })
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
        let p = &self.pairs[s.queue as usize];
        Ok(Box::new(queue::RxQ {
            core: p.core.clone(),
            part: Some(take(&p.rx, "RX", s.queue)?),
            slot: p.rx.clone(),
            pool: s.pool.clone(),
            port: self.port,
            stats: s.stats,
        }))
    }

    fn tx_queue_setup(&mut self, s: TxSetup<'_>) -> Result<Box<dyn TxQueueOps>> {
        let p = &self.pairs[s.queue as usize];
        Ok(Box::new(queue::TxQ {
            core: p.core.clone(),
            part: Some(take(&p.tx, "TX", s.queue)?),
            slot: p.tx.clone(),
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
        let mut xstats = vec![
            (
                "zero_copy".into(),
                u64::from(self.pairs.iter().all(|p| p.zero_copy)),
            ),
            (
                "xdp_native".into(),
                u64::from(self.prog.mode == XdpMode::Native),
            ),
            ("shared_umem".into(), u64::from(self.shared_umem)),
        ];
        let mut missed = 0;
        for (q, p) in self.pairs.iter_mut().enumerate() {
            // The kernel's counters of each XSK (XDP_STATISTICS); a socket that cannot
            // be read (never: it lives as long as the port) just adds nothing.
            let Ok(st) = sys::statistics(&p.core.fd) else {
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
