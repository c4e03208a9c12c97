//! `net_af_xdp`: one AF_XDP socket (XSK) per queue pair, bound to consecutive queues
//! `start_queue..start_queue + queue_count` of a kernel interface, and our XDP program
//! (see [`prog`]) redirecting those queues' frames to the XSKs through an XSKMAP.
//!
//! UMEM: each XSK has its own private UMEM (anonymous memory, not the mempool's): RX
//! copies frames out into mbufs of the queue's pool and TX copies mbufs in, as
//! `net_af_packet` does. Chosen so that UMEM chunks never leave the driver (no mbuf
//! whose buffer the kernel may still own, no constraint on how the mempool's memory is
//! laid out or aligned); the cost is one copy per frame. Zero-copy binding (driver
//! support) still saves the kernel's own copy.
//!
//! Keys as DPDK's driver: `iface` (required), `start_queue` (0), `queue_count` (1),
//! `shared_umem` (0; 1 is refused: with private copying UMEMs there is nothing to
//! share), `busy_budget` (0: off; N: preferred busy polling, N frames per poll),
//! `force_copy` (0; 1: copy mode); and ours, `zero_copy` (0; 1: zero-copy or fail).
//! Without either, the kernel picks zero-copy where the driver has it, else copy
//! (`xstats`: `zero_copy`, `xdp_native`).

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
use xsk::{CopyMode, Xsk, FRAME_SIZE};

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
}

struct AfXdp {
    netif: NetIf,
    pairs: Vec<QueuePair>,
    prog: XdpProg,
    port: u16,
}

fn create(ctx: &VdevCtx<'_>) -> Result<Box<dyn EthDriver>> {
    let a = ctx.args;
    let iface = a
        .get("iface")
        .ok_or_else(|| a.bad("iface", "", "required: the interface to attach to"))?
        .to_string();
    let start = a.num("start_queue", 0, 0, 4095)? as u32;
    let count = a.num("queue_count", 1, 1, crate::types::MAX_QUEUES as u64)? as u32;
    if a.flag("shared_umem")? {
        return Err(a.bad(
            "shared_umem",
            "1",
            "not supported: each queue has its own private UMEM that frames are copied \
             through, so there is no mempool-backed UMEM to share",
        ));
    }
    let budget = a.num("busy_budget", 0, 0, 65535)? as u32;
    let mode = match (a.flag("force_copy")?, a.flag("zero_copy")?) {
        (true, true) => {
            return Err(a.bad("zero_copy", "1", "contradicts force_copy=1"));
        }
        (true, false) => CopyMode::Copy,
        (false, true) => CopyMode::ZeroCopy,
        (false, false) => CopyMode::Auto,
    };
    let netif = NetIf::open(&iface)?;
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
    let mut xsks = Vec::with_capacity(count as usize);
    for q in start..start + count {
        xsks.push(Xsk::open(&iface, netif.index, q, mode, budget)?);
    }
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
            }
        })
        .collect();
    Ok(Box::new(AfXdp {
        netif,
        pairs,
        prog,
        port: ctx.port_id,
    }))
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
        DriverStats {
            missed: 0,
            xstats: vec![
                (
                    "zero_copy".into(),
                    u64::from(self.pairs.iter().all(|p| p.zero_copy)),
                ),
                (
                    "xdp_native".into(),
                    u64::from(self.prog.mode == XdpMode::Native),
                ),
            ],
        }
    }

    fn close(&mut self) {
        self.prog.detach();
    }
}
