//! `net_ring`: ports over `ring::Ring<usize>` holding mbuf addresses (EAL virtual
//! addresses of mbuf headers, valid in every process of the group).
//!
//! * `--vdev net_ringN` creates 16 rings `ETH_RXTX<i>_<name>` of 1024 slots, single
//!   producer / single consumer, and uses ring i for both RX queue i and TX queue i, so
//!   what a port sends on queue i it receives on queue i. This is DPDK's CREATE mode
//!   (drivers/net/ring/rte_eth_ring.c, v22.11: `eth_dev_ring_create` passes the same
//!   `rxtx` array as RX and TX rings). Closing the port frees the packets left in its
//!   rings and the rings.
//! * [`crate::eth_from_rings`] makes a port over rings the caller made (DPDK's
//!   `rte_eth_from_rings`); closing it leaves the rings and their contents alone.
//!
//! The data path moves addresses only and never reads or writes an mbuf header, as
//! DPDK's net_ring: a burst is one ring copy between the caller's `Vec<Mbuf>` and the
//! ring (an `Mbuf` is laid out as its address). So, like DPDK's, it counts packets but
//! not bytes (`ibytes`/`obytes` stay 0), leaves `Mbuf::port` as the sender set it, and
//! opts out of the ethdev layer's TX MTU check (`DriverInfo::tx_mtu_check`): frames
//! between rings never meet a wire.

use core::mem::MaybeUninit;

use mbuf::header::MbufHeader;
use mbuf::Mbuf;
use ring::{Ring, RingFlags};

use crate::driver::{
    AttachCtx, EthDriver, QueueAttach, QueueShare, QueueStats, RxQueueOps, RxSetup, TxQueueOps,
    TxSetup, VdevCtx, VdevDriver,
};
use crate::error::{Error, Result};
use crate::types::{DevInfo, TxOffloads, MAX_QUEUES};

pub const DRIVER: VdevDriver = VdevDriver {
    name: "net_ring",
    aliases: &["eth_ring"],
    keys: &[],
    create,
};

/// Rings a `net_ring` vdev creates (DPDK's `RTE_PMD_RING_MAX_RX_RINGS`).
pub const VDEV_RINGS: usize = 16;
/// Slots per ring a vdev creates.
pub const VDEV_RING_SIZE: u32 = 1024;
const CHUNK: usize = 64;

/// Queues in a secondary process: the blob is the ring's name; the ring is an EAL
/// memzone, looked up there.
pub const ATTACH: QueueAttach = QueueAttach {
    rx: |c| {
        Ok(Box::new(RingRx {
            r: lookup(&c)?,
            stats: c.stats,
        }))
    },
    tx: |c| {
        Ok(Box::new(RingTx {
            r: lookup(&c)?,
            stats: c.stats,
        }))
    },
};

fn lookup(c: &AttachCtx<'_>) -> Result<Ring<usize>> {
    let name = String::from_utf8_lossy(c.blob).into_owned();
    // SAFETY: the ring was made by this driver in the primary for mbuf addresses
    // (`usize`); the primary handed this queue, and with it the ring's single side, to
    // this process alone (the queue claim), so the SP/SC contract holds.
    unsafe { Ring::<usize>::lookup(c.eal, &name) }.map_err(|source| Error::Ring {
        op: "look up",
        what: name,
        source: Box::new(source),
    })
}

struct RingPort {
    rx: Vec<Ring<usize>>,
    tx: Vec<Ring<usize>>,
    /// True if the port created the rings (vdev): it drains and frees them at close.
    owned: bool,
    port: u16,
}

fn create(ctx: &VdevCtx<'_>) -> Result<Box<dyn EthDriver>> {
    let name = &ctx.args.name;
    let mut rings: Vec<Ring<usize>> = Vec::with_capacity(VDEV_RINGS);
    for i in 0..VDEV_RINGS {
        let rn = format!("ETH_RXTX{i}_{name}");
        // SAFETY: SP/SC: ring i is produced only by TX queue i and consumed only by RX
        // queue i of this port, each used by one thread at a time (the ethdev queue
        // claim); the elements are mbuf addresses (usize).
        let r = unsafe {
            Ring::<usize>::create(
                ctx.eal,
                &rn,
                VDEV_RING_SIZE,
                None,
                RingFlags::SP_ENQ | RingFlags::SC_DEQ,
            )
        };
        match r {
            Ok(r) => rings.push(r),
            Err(source) => {
                for r in rings {
                    // SAFETY: fresh rings nobody else has seen.
                    let _ = unsafe { r.free() };
                }
                return Err(Error::Ring {
                    op: "create",
                    what: rn,
                    source: Box::new(source),
                });
            }
        }
    }
    Ok(Box::new(RingPort {
        rx: rings.clone(),
        tx: rings,
        owned: true,
        port: ctx.port_id,
    }))
}

/// The driver for a `net_ring` port over rings the caller made (behind
/// [`crate::eth_from_rings`]): checks the lists and returns the constructor that takes
/// the port id.
///
/// # Safety
/// As [`crate::eth_from_rings`]: the rings carry only `into_raw` mbuf addresses, and
/// their single sides are used only through this port's queues.
pub unsafe fn from_rings(
    name: &str,
    rx: &[Ring<usize>],
    tx: &[Ring<usize>],
) -> Result<impl FnOnce(u16) -> Box<dyn EthDriver>> {
    if rx.is_empty() && tx.is_empty() {
        return Err(Error::BadArg {
            dev: name.into(),
            key: "rings".into(),
            value: String::new(),
            why: "no rings given".into(),
        });
    }
    if rx.len() > MAX_QUEUES || tx.len() > MAX_QUEUES {
        return Err(Error::BadArg {
            dev: name.into(),
            key: "rings".into(),
            value: format!("{}/{}", rx.len(), tx.len()),
            why: format!("at most {MAX_QUEUES} rings per direction"),
        });
    }
    let (rx, tx) = (rx.to_vec(), tx.to_vec());
    Ok(move |port| {
        Box::new(RingPort {
            rx,
            tx,
            owned: false,
            port,
        }) as Box<dyn EthDriver>
    })
}

impl EthDriver for RingPort {
    fn info(&self) -> DevInfo {
        DevInfo {
            tx_offload_capa: TxOffloads::MULTI_SEGS | TxOffloads::MBUF_FAST_FREE,
            max_rx_pktlen: u32::MAX,
            max_mtu: 65535,
            ..DevInfo::new(DRIVER.name, self.rx.len() as u16, self.tx.len() as u16)
        }
    }

    fn tx_mtu_check(&self) -> bool {
        false
    }

    fn rx_queue_setup(&mut self, s: RxSetup<'_>) -> Result<Box<dyn RxQueueOps>> {
        let r = ring_for(&self.rx, s.queue, "RX", self.port)?;
        Ok(Box::new(RingRx { r, stats: s.stats }))
    }

    fn tx_queue_setup(&mut self, s: TxSetup<'_>) -> Result<Box<dyn TxQueueOps>> {
        let r = ring_for(&self.tx, s.queue, "TX", self.port)?;
        Ok(Box::new(RingTx { r, stats: s.stats }))
    }

    fn share_queue(&mut self, rx: bool, q: u16) -> Option<Result<QueueShare>> {
        let rings = if rx { &self.rx } else { &self.tx };
        let r = rings.get(q as usize)?;
        Some(Ok(QueueShare {
            blob: r.name().into_bytes(),
            fds: Vec::new(),
        }))
    }

    fn close(&mut self) {
        if !self.owned {
            return;
        }
        for r in self.rx.drain(..) {
            let mut buf = [0usize; CHUNK];
            loop {
                let n = r.dequeue_burst(&mut buf).n as usize;
                if n == 0 {
                    break;
                }
                // SAFETY: our TX put only `into_raw` mbuf addresses in our own rings.
                Mbuf::free_bulk(buf[..n].iter().map(|&a| unsafe { to_mbuf(a) }));
            }
            // SAFETY: every queue (the only other handles) was dropped before close.
            let _ = unsafe { r.free() };
        }
        self.tx.clear();
    }
}

/// The ring of queue `q` in one direction's list.
fn ring_for(rings: &[Ring<usize>], q: u16, dir: &'static str, port: u16) -> Result<Ring<usize>> {
    rings
        .get(q as usize)
        .cloned()
        .ok_or_else(|| Error::BadQueue {
            op: "set up",
            dir,
            port,
            queue: q,
            why: "no ring for it".into(),
        })
}

/// # Safety
/// `a` is an mbuf address released with `into_raw` (the `crate::eth_from_rings` contract).
#[inline(always)]
unsafe fn to_mbuf(a: usize) -> Mbuf {
    // SAFETY: forwarded; a non-zero address of a valid header.
    unsafe { Mbuf::from_raw(std::ptr::NonNull::new_unchecked(a as *mut MbufHeader)) }
}

struct RingRx {
    r: Ring<usize>,
    stats: QueueStats,
}

impl RxQueueOps for RingRx {
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        out.reserve(max);
        let len = out.len();
        // SAFETY: `reserve(max)` left room for `max` more elements after `len`; an
        // `Mbuf` is one non-null pointer (`#[repr(transparent)]`), so the spare capacity
        // viewed as `usize` slots is what the ring writes mbuf addresses into. The ring
        // initialises the first `n` of them and nothing else reads the rest.
        let spare = unsafe {
            core::slice::from_raw_parts_mut(
                out.as_mut_ptr().add(len).cast::<MaybeUninit<usize>>(),
                max,
            )
        };
        let n = self.r.dequeue_burst_uninit(spare).n as usize;
        // SAFETY: the `n` slots after `len` now hold `into_raw` mbuf addresses (module
        // contract), which is exactly the representation of an owned `Mbuf`.
        unsafe { out.set_len(len + n) };
        self.stats.add_packets(n as u64);
        n
    }
}

struct RingTx {
    r: Ring<usize>,
    stats: QueueStats,
}

impl TxQueueOps for RingTx {
    fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>, max: usize) -> usize {
        let max = max.min(pkts.len());
        // SAFETY: an `Mbuf` is one non-null pointer (`#[repr(transparent)]`), so the
        // first `max` handles read as `usize` are their mbuf addresses; the ring copies
        // them and does not keep the borrow.
        let addrs = unsafe { core::slice::from_raw_parts(pkts.as_ptr().cast::<usize>(), max) };
        let done = self.r.enqueue_burst(addrs).n as usize;
        // The ring owns the first `done` now: take them out of `pkts` without dropping
        // (freeing) them, and move the rest to the front.
        let rest = pkts.len() - done;
        // SAFETY: the first `done` elements are forgotten (the ring owns them); the
        // `rest` live elements after them move to the front (`ptr::copy` allows
        // overlap) and the length then covers exactly those. Nothing in between can
        // panic. (The usual case, everything sent, is just the length store.)
        unsafe {
            let p = pkts.as_mut_ptr();
            if rest != 0 {
                core::ptr::copy(p.add(done), p, rest);
            }
            pkts.set_len(rest);
        }
        self.stats.add_packets(done as u64);
        done
    }
}
