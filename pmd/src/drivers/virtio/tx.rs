//! The TX queue: transmitq `q` (virtqueue `2q + 1`), one descriptor per packet.
//!
//! Each packet's 12-byte `virtio_net_hdr` (all zero: no offloads) is written into the
//! mbuf's own headroom (`prepend`), so header and frame are one device-readable buffer
//! (allowed in virtio 1.x, 5.1.6.6: no framing requirement). Packets that cannot take
//! it (chained, a shared buffer, no headroom, not in DMA memory) are dropped and
//! counted as errors.
//!
//! Invariants (`n` = queue size): `free` holds the ids of descriptors the device does
//! not own; `sw[id]` is `Some` exactly for the ids handed to the device and not yet
//! reclaimed; `avail_idx - last_used` is that count. Completions (used elements) are
//! reclaimed in batches of up to [`RECLAIM_MAX`] when fewer than [`FREE_THRESH`]
//! descriptors are free or the burst is empty, and their mbufs freed in one bulk free.
//! The device is notified once per burst, and only if it has not said (`used.flags`
//! NO_NOTIFY) that it is processing the queue already.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use mbuf::Mbuf;

use super::hw::Hw;
use super::spec::{self, VirtqDesc, NET_HDR_LEN};
use super::vq::Vq;
use crate::driver::{QueueStats, TxQueueOps, TxSetup};
use crate::drivers::pci_nic::{self, IdlePolls};
use crate::error::Result;

/// Reclaim when fewer descriptors than this are free (or on an empty burst).
const FREE_THRESH: usize = 32;
/// Most completions reclaimed per call.
const RECLAIM_MAX: usize = 64;

pub(super) struct TxQueue {
    hw: Arc<Hw>,
    vq: Vq,
    sw: Vec<Option<Mbuf>>,
    free: Vec<u16>,
    avail_idx: u16,
    last_used: u16,
    stats: QueueStats,
    full: IdlePolls,
    done: Vec<Mbuf>,
}

impl TxQueue {
    pub(super) fn new(hw: Arc<Hw>, s: TxSetup<'_>) -> Result<TxQueue> {
        let TxSetup {
            queue: q,
            nb_desc,
            stats,
            ..
        } = s;
        let vq = hw
            .setup_vq(spec::tx_vq(q), nb_desc)
            .map_err(|why| pci_nic::queue_error("virtio", &hw.addr, "TX", q, why))?;
        let n = vq.size;
        hw.tx_rings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(vq.view());
        Ok(TxQueue {
            hw,
            vq,
            sw: (0..n).map(|_| None).collect(),
            free: (0..n).rev().collect(),
            avail_idx: 0,
            last_used: 0,
            stats,
            full: IdlePolls::default(),
            done: Vec::with_capacity(RECLAIM_MAX),
        })
    }

    /// Take back up to [`RECLAIM_MAX`] completed descriptors and free their mbufs.
    fn reclaim(&mut self) {
        let used = self.vq.used_idx();
        while self.last_used != used && self.done.len() < RECLAIM_MAX {
            let e = self.vq.used_elem(self.last_used);
            self.last_used = self.last_used.wrapping_add(1);
            if let Some(m) = self.sw.get_mut(e.id as usize).and_then(Option::take) {
                self.done.push(m);
                self.free.push(e.id as u16);
            }
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
        // Relaxed: see RxQueue::rx_burst.
        if self.hw.is_gone() || !self.hw.started.load(Ordering::Relaxed) {
            return 0;
        }
        if self.free.len() < FREE_THRESH || pkts.is_empty() {
            self.reclaim();
        }
        let n = max.min(pkts.len()).min(self.free.len());
        if n == 0 {
            if !pkts.is_empty() && self.full.tick() {
                self.full_check();
            }
            return 0;
        }
        self.full.busy();
        let (mut sent, mut bytes, mut errors) = (0u64, 0u64, 0u64);
        for mut m in pkts.drain(..n) {
            let len = m.data_len();
            if m.nb_segs() != 1 || len == 0 || !m.data_iova().is_valid() {
                errors += 1;
                continue;
            }
            match m.prepend(NET_HDR_LEN) {
                Ok(h) => h.fill(0),
                Err(_) => {
                    errors += 1;
                    continue;
                }
            }
            let id = self.free.pop().expect("n <= free.len()");
            self.vq.write_desc(
                id,
                VirtqDesc {
                    addr: m.data_iova().0,
                    len: u32::from(len) + u32::from(NET_HDR_LEN),
                    flags: 0,
                    next: 0,
                },
            );
            self.vq.write_avail(self.avail_idx, id);
            self.avail_idx = self.avail_idx.wrapping_add(1);
            self.sw[usize::from(id)] = Some(m);
            sent += 1;
            bytes += u64::from(len);
        }
        if sent > 0 {
            self.vq.publish(self.avail_idx);
            self.vq.kick();
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
        // Reset the device (after letting queued frames go out: `quiesce`) before the
        // ring and the mbufs in it are freed (fields drop after this body).
        self.hw.quiesce();
    }
}
