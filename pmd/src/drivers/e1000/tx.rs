//! The TX queue: a ring of legacy transmit descriptors (SDM 3.3), one per packet.
//!
//! Invariants (`n` descriptors, indices mod `n`):
//! * `tail` is the next descriptor to fill and equals TDT after every burst; `clean` is
//!   the oldest descriptor not yet reclaimed; `in_flight = tail - clean` descriptors hold
//!   an mbuf (their slots in the ring's software half are `Some`);
//! * at most `n - 1` are in flight, so TDT never catches up with TDH from behind (a full
//!   ring would look empty to the device, SDM 3.3.1);
//! * every descriptor is written with EOP | IFCS | RS: one frame per descriptor, the
//!   device appends the CRC and writes DD back when it has read the buffer; reclaiming
//!   walks from `clean` while DD is set, in batches, and frees those mbufs in one bulk
//!   free.
//!
//! `tail` and `clean` live in the queue's shared `drv` words (0 and 1), loaded at the
//! start of each burst and saved at its end, so whichever process drives the queue next
//! goes on from there (see `rx`). A slot found occupied at `tail` holds a packet a killed
//! process wrote but never handed to the device (TDT did not move): it is freed.

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use mbuf::Mbuf;

use super::hw::Hw;
use super::regs::{self, txd, TxDesc};
use super::ring::Ring;
use crate::driver::{QueueStats, TxQueueOps, TxSetup};
use crate::drivers::pci_nic::IdlePolls;
use crate::error::Result;

/// Reclaim when fewer descriptors than this are free (or on an empty burst).
const FREE_THRESH: u16 = 32;
/// Most descriptors reclaimed per call.
const RECLAIM_MAX: usize = 64;

pub(super) struct TxQueue {
    hw: Arc<Hw>,
    ring: Ring<TxDesc>,
    tail: u16,
    clean: u16,
    in_flight: u16,
    stats: QueueStats,
    full: IdlePolls,
    done: Vec<Mbuf>,
}

impl TxQueue {
    pub(super) fn new(hw: Arc<Hw>, s: TxSetup<'_>) -> Result<TxQueue> {
        let TxSetup { nb_desc, stats, .. } = s;
        // Disable transmit while the ring changes (SDM 14.5 programs the ring first).
        hw.wr(regs::TCTL, 0);
        let ring = Ring::<TxDesc>::new(&hw, nb_desc, "TX ring")?;
        let base = ring.iova().0;
        hw.wr(regs::TDBAL, base as u32);
        hw.wr(regs::TDBAH, (base >> 32) as u32);
        hw.wr(regs::TDLEN, ring.bytes());
        hw.wr(regs::TDH, 0);
        hw.wr(regs::TDT, 0);
        hw.tx_ring.store(true, Ordering::Relaxed);
        stats.drv[0].store(0, Ordering::Relaxed);
        stats.drv[1].store(0, Ordering::Relaxed);
        *hw.tx_geo.lock().unwrap_or_else(|e| e.into_inner()) = Some(ring.geometry());
        Ok(Self::attach(hw, ring, stats))
    }

    /// The queue as another process set it up (its ring at `ring`), driven from here
    /// from the cursors in `stats`. Dropping it leaves the device and the ring alone.
    pub(super) fn attach(hw: Arc<Hw>, ring: Ring<TxDesc>, stats: QueueStats) -> TxQueue {
        TxQueue {
            hw,
            ring,
            tail: 0,
            clean: 0,
            in_flight: 0,
            stats,
            full: IdlePolls::default(),
            done: Vec::with_capacity(RECLAIM_MAX),
        }
    }

    /// Load the cursors of the last driver of the queue (module docs).
    #[inline(always)]
    fn load(&mut self) {
        let n = u64::from(self.ring.n);
        self.tail = (self.stats.drv[0].load(Ordering::Relaxed) % n) as u16;
        self.clean = (self.stats.drv[1].load(Ordering::Relaxed) % n) as u16;
        self.in_flight = (self.tail + self.ring.n - self.clean) % self.ring.n;
    }

    #[inline(always)]
    fn save(&self) {
        self.stats.drv[0].store(u64::from(self.tail), Ordering::Relaxed);
        self.stats.drv[1].store(u64::from(self.clean), Ordering::Relaxed);
    }

    #[inline(always)]
    fn free_slots(&self) -> u16 {
        self.ring.n - 1 - self.in_flight
    }

    /// Free the mbufs of up to [`RECLAIM_MAX`] descriptors the device has finished.
    fn reclaim(&mut self) {
        while self.in_flight > 0 && self.done.len() < RECLAIM_MAX {
            let hi = self.ring.load_hi(self.clean);
            if (hi >> 32) as u8 & txd::STAT_DD == 0 {
                break;
            }
            if let Some(m) = self.ring.sw_replace(self.clean, None) {
                self.done.push(m);
            }
            self.clean = if self.clean + 1 == self.ring.n {
                0
            } else {
                self.clean + 1
            };
            self.in_flight -= 1;
        }
        if !self.done.is_empty() {
            Mbuf::free_bulk(self.done.drain(..));
        }
    }

    #[cold]
    fn full_check(&mut self) {
        let _ = self.hw.status(); // marks the device gone on all-ones
    }
}

impl TxQueueOps for TxQueue {
    fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>, max: usize) -> usize {
        if self.hw.is_gone() {
            return 0;
        }
        self.load();
        if self.free_slots() < FREE_THRESH || pkts.is_empty() {
            self.reclaim();
            self.save();
        }
        let n = max.min(pkts.len()).min(usize::from(self.free_slots()));
        if n == 0 {
            if !pkts.is_empty() && self.full.tick() {
                self.full_check();
            }
            return 0;
        }
        self.full.busy();
        let (mut sent, mut bytes, mut errors) = (0u64, 0u64, 0u64);
        for m in pkts.drain(..n) {
            let len = u32::from(m.data_len());
            let iova = m.data_iova();
            if m.nb_segs() != 1 || len == 0 || len > regs::TX_MAX_BUF || !iova.is_valid() {
                // Chained, empty, oversized or not in DMA memory: dropped, counted.
                errors += 1;
                drop(m);
                continue;
            }
            self.ring.write(
                self.tail,
                TxDesc {
                    addr: iova.0,
                    length: len as u16,
                    cmd: txd::CMD_EOP | txd::CMD_IFCS | txd::CMD_RS,
                    ..TxDesc::default()
                },
            );
            if let Some(stale) = self.ring.sw_replace(self.tail, Some(m)) {
                drop(stale); // written by a process killed before it moved TDT
            }
            self.tail = if self.tail + 1 == self.ring.n {
                0
            } else {
                self.tail + 1
            };
            self.in_flight += 1;
            sent += 1;
            bytes += u64::from(len);
        }
        if sent > 0 {
            // Release: the descriptors written above are visible before the tail moves
            // (pairs with the device's descriptor fetch after it sees TDT).
            fence(Ordering::Release);
            self.hw.wr(regs::TDT, u32::from(self.tail));
            self.save();
            self.stats.add(sent, bytes);
        }
        if errors > 0 {
            self.stats.add_errors(errors);
        }
        n
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        if !self.ring.owned() {
            return; // another process's queue: left as it is (see RxQueue's Drop)
        }
        // Let queued frames go out, then stop the transmitter before the ring and the
        // mbufs in it are freed.
        self.hw.tx_ring.store(false, Ordering::Relaxed);
        *self.hw.tx_geo.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if !self.hw.is_gone() {
            self.hw.tx_drain(std::time::Duration::from_millis(100));
            self.hw.wr(regs::TCTL, 0);
            self.hw.wr(regs::TDLEN, 0);
            let _ = self.hw.rd(regs::STATUS); // flush the posted writes
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.ring.free_all();
    }
}
