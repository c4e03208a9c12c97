//! The RX queue: a ring of legacy receive descriptors (SDM 3.2), each holding one mbuf.
//!
//! Invariants (`n` descriptors, indices mod `n`):
//! * every descriptor always has an mbuf posted (its slot in the ring's software half is
//!   `Some`) with its buffer IOVA in `addr`, except inside `rx_burst` between taking a
//!   completed mbuf and posting its replacement;
//! * `next` is the next descriptor to complete; the device owns `[RDH, RDT)` and
//!   `RDT == next - 1` after every burst, so one descriptor (the one at RDT) is always
//!   held back and the ring never looks empty to the device when it is full (SDM 3.2.6).
//!
//! `next` and the "discarding the rest of a frame" flag live in the queue's shared
//! `drv` words (0 and 1), loaded at the start of each burst and saved after each
//! descriptor, so the process that drives the queue next (a secondary that claims it, or
//! the primary taking it back from a dead one) goes on where the last one stopped. A
//! process killed between re-posting a descriptor and saving the cursor (a few
//! instructions) leaves that descriptor posted without the cursor past it; the ring then
//! stalls until the port's queues are set up again.

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use mbuf::{Mbuf, PktmbufPool, PKTMBUF_HEADROOM};

use super::hw::Hw;
use super::regs::{self, rxd, RxDesc};
use super::ring::Ring;
use crate::driver::{QueueStats, RxQueueOps, RxSetup, Tally};
use crate::drivers::pci_nic::{self, IdlePolls};
use crate::error::Result;

/// Descriptors examined per refill batch: the replacement mbufs come from one bulk get.
const BATCH: usize = 32;

pub(super) struct RxQueue {
    hw: Arc<Hw>,
    ring: Ring<RxDesc>,
    pool: PktmbufPool,
    stats: QueueStats,
    idle: IdlePolls,
    fresh: [Option<Mbuf>; BATCH],
    hi: [u64; BATCH],
}

impl RxQueue {
    pub(super) fn new(hw: Arc<Hw>, s: RxSetup<'_>) -> Result<RxQueue> {
        let RxSetup {
            queue: q,
            nb_desc,
            pool,
            stats,
            ..
        } = s;
        let qerr = |why: String| pci_nic::queue_error("e1000", &hw.addr, "RX", q, why);
        let room = pool.data_room_size().saturating_sub(PKTMBUF_HEADROOM);
        if room < regs::RX_BUF_SIZE {
            return Err(qerr(format!(
                "pool '{}' has {room} bytes of data room after the headroom; the device writes up to {} per buffer",
                pool.mempool().name(),
                regs::RX_BUF_SIZE
            )));
        }
        if pool.size() < u32::from(nb_desc) + BATCH as u32 {
            return Err(qerr(format!(
                "pool '{}' has {} mbufs; {nb_desc} descriptors need at least {}",
                pool.mempool().name(),
                pool.size(),
                u32::from(nb_desc) + BATCH as u32
            )));
        }
        if pool.mempool().eal().memory().iova_mode() == eal::args::IovaMode::Pa {
            crate::drivers::dma::check_pool_iova(pool).map_err(qerr)?;
        }
        // Disable receive while the ring changes (a previous queue may have left it on).
        hw.rctl_update(0, regs::rctl::EN);
        let mut ring = Ring::<RxDesc>::new(&hw, nb_desc, "RX ring")?;
        let mut sw: Vec<Option<Mbuf>> = (0..nb_desc).map(|_| None).collect();
        Mbuf::alloc_bulk(pool, &mut sw).map_err(|_| {
            qerr(format!(
                "pool '{}' has fewer than {nb_desc} free mbufs",
                pool.mempool().name()
            ))
        })?;
        if sw.iter().flatten().any(|m| !m.data_iova().is_valid()) {
            return Err(qerr(format!(
                "pool '{}' has mbufs without an IOVA (not DMA memory)",
                pool.mempool().name()
            )));
        }
        for (i, m) in sw.into_iter().enumerate() {
            let iova = m.as_ref().map_or(eal::Iova::BAD, |m| m.data_iova());
            ring.sw_replace(i as u16, m);
            ring.write(
                i as u16,
                RxDesc {
                    addr: iova.0,
                    ..RxDesc::default()
                },
            );
        }
        // SDM 14.4: base, length, head 0, tail = last descriptor (n - 1 posted).
        let base = ring.iova().0;
        hw.wr(regs::RDBAL, base as u32);
        hw.wr(regs::RDBAH, (base >> 32) as u32);
        hw.wr(regs::RDLEN, ring.bytes());
        hw.wr(regs::RDH, 0);
        // Release: the descriptor writes above are visible before the tail publishes
        // them (pairs with the device's descriptor fetch after it sees RDT).
        fence(Ordering::Release);
        hw.wr(regs::RDT, u32::from(nb_desc - 1));
        hw.rx_ring.store(true, Ordering::Relaxed);
        stats.drv[0].store(0, Ordering::Relaxed);
        stats.drv[1].store(0, Ordering::Relaxed);
        *hw.rx_geo.lock().unwrap_or_else(|e| e.into_inner()) = Some(ring.geometry());
        Ok(Self::attach(hw, ring, pool, stats))
    }

    /// The queue as another process set it up (its ring at `ring`), driven from here
    /// from the cursors in `stats`. Dropping it leaves the device and the ring alone.
    pub(super) fn attach(
        hw: Arc<Hw>,
        ring: Ring<RxDesc>,
        pool: &PktmbufPool,
        stats: QueueStats,
    ) -> RxQueue {
        RxQueue {
            hw,
            ring,
            pool: pool.clone(),
            stats,
            idle: IdlePolls::default(),
            fresh: [const { None }; BATCH],
            hi: [0; BATCH],
        }
    }

    #[inline(always)]
    fn wrap(&self, i: u32) -> u16 {
        (i % u32::from(self.ring.n)) as u16
    }

    #[cold]
    fn idle_check(&mut self) {
        let _ = self.hw.status(); // marks the device gone on all-ones
    }
}

impl RxQueueOps for RxQueue {
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        if self.hw.is_gone() {
            return 0;
        }
        let mut delivered = 0usize;
        let mut bytes = 0u64;
        let mut errors = 0u64;
        let mut refilled = false;
        // The cursors (module docs): the last driver of this queue may have been another
        // process.
        let mut next = self.wrap(self.stats.drv[0].load(Ordering::Relaxed) as u32);
        let mut discard = self.stats.drv[1].load(Ordering::Relaxed) != 0;
        while delivered < max {
            let want = (max - delivered).min(BATCH);
            // 1. How many descriptors are done (DD), reading each write-back half once.
            let mut n = 0;
            while n < want {
                let i = self.wrap(u32::from(next) + n as u32);
                let hi = self.ring.load_hi(i);
                if (hi >> 32) as u8 & rxd::STAT_DD == 0 {
                    break;
                }
                self.hi[n] = hi;
                n += 1;
            }
            if n == 0 {
                break;
            }
            // 2. Replacements for all of them, or none (the frames then stay in the ring
            //    and are retried on the next burst).
            if Mbuf::alloc_bulk(&self.pool, &mut self.fresh[..n]).is_err() {
                self.stats.add_nombuf(n as u64);
                break;
            }
            // 3. Hand the filled mbufs out, post the fresh ones.
            for k in 0..n {
                let i = self.wrap(u32::from(next) + k as u32);
                let hi = self.hi[k];
                let len = hi as u16;
                let status = (hi >> 32) as u8;
                let errs = (hi >> 40) as u8;
                let fresh = self.fresh[k].take().expect("filled by alloc_bulk");
                self.ring.write(
                    i,
                    RxDesc {
                        addr: fresh.data_iova().0,
                        ..RxDesc::default()
                    },
                );
                let old = self.ring.sw_replace(i, Some(fresh));
                let eop = status & rxd::STAT_EOP != 0;
                let was_discarding = discard;
                discard = !eop;
                // Saved per descriptor: a process killed mid-burst leaves an exact
                // position (module docs).
                self.stats.drv[0].store(u64::from(self.wrap(u32::from(i) + 1)), Ordering::Relaxed);
                self.stats.drv[1].store(u64::from(discard), Ordering::Relaxed);
                let Some(mut m) = old else {
                    continue;
                };
                if was_discarding
                    || !eop
                    || errs & rxd::ERR_FRAME != 0
                    || len == 0
                    || len > regs::RX_BUF_SIZE
                {
                    // A frame spanning buffers (its pieces up to EOP), a bad frame, or a
                    // length we cannot trust: drop it, count one error per frame.
                    if !was_discarding {
                        errors += 1; // pieces after the first belong to a counted frame
                    }
                    drop(m);
                    continue;
                }
                if m.append(len).is_err() {
                    errors += 1;
                    continue;
                }
                bytes += u64::from(len);
                out.push(m);
                delivered += 1;
            }
            next = self.wrap(u32::from(next) + n as u32);
            refilled = true;
        }
        if refilled {
            // Release: the descriptors posted above are visible before the tail moves
            // (pairs with the device's descriptor fetch after it sees RDT).
            fence(Ordering::Release);
            self.hw.wr(
                regs::RDT,
                u32::from(self.wrap(u32::from(next) + u32::from(self.ring.n) - 1)),
            );
        }
        let t = Tally {
            n: delivered,
            bytes,
            errs: errors,
        };
        if self.idle.rx_end(refilled, &self.stats, &t) {
            self.idle_check();
        }
        delivered
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        if !self.ring.owned() {
            // Another process's queue driven from here: it stays as it is, for the
            // owner to go on with.
            return;
        }
        // Stop the receiver before the ring and the posted mbufs are freed (the ring
        // drops after this body). A frame being written when EN clears completes within
        // microseconds; wait well past that.
        self.hw.rx_ring.store(false, Ordering::Relaxed);
        *self.hw.rx_geo.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if !self.hw.is_gone() {
            self.hw.rctl_update(0, regs::rctl::EN);
            self.hw.wr(regs::RDLEN, 0);
            let _ = self.hw.rd(regs::STATUS); // flush the posted writes
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.ring.free_all();
    }
}
