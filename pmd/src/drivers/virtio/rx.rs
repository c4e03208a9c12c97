//! The RX queue: receiveq `q` (virtqueue `2q`), one mbuf per descriptor.
//!
//! Invariants (`n` = queue size, indices free-running `u16`, slots `idx & (n - 1)`):
//! * descriptor `i` always holds the mbuf `sw[i]` (device-writable, at the mbuf's data
//!   address minus [`NET_HDR_LEN`], so the device writes the `virtio_net_hdr` into the
//!   headroom and the frame lands at the data offset), except inside `rx_burst` between
//!   taking a used buffer and posting its replacement into the same descriptor;
//! * `last_used` is the next used element to read; `avail_idx` the next available slot
//!   to fill; every descriptor is either available or used-but-not-yet-read, so
//!   `avail_idx - last_used == n` after every burst.
//!
//! Buffers come back in bulk from the pool; if the pool cannot replace a whole batch the
//! frames stay in the used ring and are taken on a later burst (counted in `rx_nombuf`).
//! With MRG_RXBUF a frame may span several buffers (`num_buffers` in the header); a
//! frame that does is dropped whole and counted as one error (frames up to the MTU fit
//! one buffer).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use mbuf::{Mbuf, PktmbufPool, PKTMBUF_HEADROOM};

use super::hw::Hw;
use super::spec::{self, desc_flags, feature, VirtqDesc, VirtqUsedElem, NET_HDR_LEN};
use super::vq::Vq;
use crate::driver::{QueueStats, RxQueueOps, RxSetup, Tally};
use crate::drivers::pci_nic::{self, IdlePolls};
use crate::error::Result;

/// Used elements handled per refill batch: the replacements come from one bulk get.
const BATCH: usize = 32;
/// Smallest frame room a buffer must have without MRG_RXBUF (virtio 5.1.6.3.1: 1526
/// bytes with the header).
const MIN_ROOM: u16 = 1514;

pub(super) struct RxQueue {
    hw: Arc<Hw>,
    vq: Vq,
    sw: Vec<Option<Mbuf>>,
    last_used: u16,
    avail_idx: u16,
    pool: PktmbufPool,
    stats: QueueStats,
    mrg: bool,
    /// Buffers still to drop of a frame that spans several.
    discard: u16,
    idle: IdlePolls,
    fresh: [Option<Mbuf>; BATCH],
    elems: [VirtqUsedElem; BATCH],
}

/// The descriptor posting `m` (a fresh mbuf) for the device to fill.
#[inline(always)]
fn rx_desc(m: &Mbuf) -> VirtqDesc {
    VirtqDesc {
        addr: m.data_iova().0 - u64::from(NET_HDR_LEN),
        len: u32::from(m.tailroom()) + u32::from(NET_HDR_LEN),
        flags: desc_flags::WRITE,
        next: 0,
    }
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
        let qerr = |why: String| pci_nic::queue_error("virtio", &hw.addr, "RX", q, why);
        let room = pool.data_room_size().saturating_sub(PKTMBUF_HEADROOM);
        if room < MIN_ROOM {
            return Err(qerr(format!(
                "pool '{}' has {room} bytes of data room after the headroom; a frame needs {MIN_ROOM}",
                pool.mempool().name()
            )));
        }
        if PKTMBUF_HEADROOM < NET_HDR_LEN {
            return Err(qerr(
                "the mbuf headroom cannot hold the virtio-net header".into(),
            ));
        }
        if pool.mempool().eal().memory().iova_mode() == eal::args::IovaMode::Pa {
            crate::drivers::dma::check_pool_iova(pool).map_err(qerr)?;
        }
        let vq = hw.setup_vq(spec::rx_vq(q), nb_desc).map_err(qerr)?;
        let n = vq.size;
        if pool.size() < u32::from(n) + BATCH as u32 {
            return Err(qerr(format!(
                "pool '{}' has {} mbufs; a {n}-entry receive queue needs at least {}",
                pool.mempool().name(),
                pool.size(),
                u32::from(n) + BATCH as u32
            )));
        }
        let mut sw: Vec<Option<Mbuf>> = (0..n).map(|_| None).collect();
        Mbuf::alloc_bulk(pool, &mut sw).map_err(|_| {
            qerr(format!(
                "pool '{}' has fewer than {n} free mbufs",
                pool.mempool().name()
            ))
        })?;
        for (i, m) in sw.iter().enumerate() {
            let Some(m) = m else { continue };
            if !m.data_iova().is_valid() {
                return Err(qerr(format!(
                    "pool '{}' has mbufs without an IOVA (not DMA memory)",
                    pool.mempool().name()
                )));
            }
            vq.write_desc(i as u16, rx_desc(m));
            vq.write_avail(i as u16, i as u16);
        }
        vq.publish(n);
        let mrg = hw.has(feature::NET_MRG_RXBUF);
        Ok(RxQueue {
            hw,
            vq,
            sw,
            last_used: 0,
            avail_idx: n,
            pool: pool.clone(),
            stats,
            mrg,
            discard: 0,
            idle: IdlePolls::default(),
            fresh: [const { None }; BATCH],
            elems: [VirtqUsedElem::default(); BATCH],
        })
    }

    #[cold]
    fn idle_check(&mut self) {
        let _ = self.hw.status(); // marks the device gone on all-ones
    }

    /// `num_buffers` of the header the device wrote before the frame in `m`.
    #[inline(always)]
    fn num_buffers(&self, m: &Mbuf) -> u16 {
        if !self.mrg {
            return 1;
        }
        let h = m.header();
        let at = u64::from(h.data_off) - u64::from(NET_HDR_LEN) + spec::NET_HDR_NUM_BUFFERS as u64;
        // SAFETY: inside the mbuf's headroom (data_off >= NET_HDR_LEN, checked at setup
        // for the pool's headroom), which the device wrote before the used index moved
        // (acquire in `used_idx`); the buffer is ours again.
        unsafe { std::ptr::read_unaligned(h.buf_addr.add(at).as_ptr::<u16>()) }
    }
}

impl RxQueueOps for RxQueue {
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        // Relaxed: the flag only gates the data path; start/stop are not synchronised
        // with bursts beyond "eventually".
        if self.hw.is_gone() || !self.hw.started.load(Ordering::Relaxed) {
            return 0;
        }
        let mut delivered = 0usize;
        let (mut bytes, mut errors) = (0u64, 0u64);
        let mut posted = false;
        let mut used = self.vq.used_idx();
        while delivered < max {
            let ready = usize::from(used.wrapping_sub(self.last_used));
            if ready == 0 {
                break;
            }
            let n = ready.min(BATCH).min(max - delivered);
            if ready > usize::from(self.vq.size) {
                self.hw.mark_gone("used index ran ahead of the ring");
                return delivered;
            }
            for k in 0..n {
                self.elems[k] = self.vq.used_elem(self.last_used.wrapping_add(k as u16));
            }
            if Mbuf::alloc_bulk(&self.pool, &mut self.fresh[..n]).is_err() {
                self.stats.add_nombuf(n as u64);
                break;
            }
            for k in 0..n {
                let VirtqUsedElem { id, len } = self.elems[k];
                let fresh = self.fresh[k].take().expect("filled by alloc_bulk");
                let Some(slot) = self.sw.get_mut(id as usize) else {
                    // An id we never posted: the device is broken; stop using it.
                    drop(fresh);
                    self.hw
                        .mark_gone("used element names an unknown descriptor");
                    return delivered;
                };
                let m = slot.replace(fresh);
                let d = rx_desc(slot.as_ref().expect("just posted"));
                self.vq.write_desc(id as u16, d);
                self.vq.write_avail(self.avail_idx, id as u16);
                self.avail_idx = self.avail_idx.wrapping_add(1);
                let Some(mut m) = m else { continue };
                if self.discard > 0 {
                    self.discard -= 1;
                    continue;
                }
                let nb = self.num_buffers(&m);
                let Some(plen) = len.checked_sub(u32::from(NET_HDR_LEN)) else {
                    errors += 1;
                    continue;
                };
                if nb != 1 || plen == 0 || plen > u32::from(m.tailroom()) {
                    // A frame over several buffers (dropped whole), or a length we cannot
                    // trust.
                    self.discard = nb.saturating_sub(1);
                    errors += 1;
                    continue;
                }
                if m.append(plen as u16).is_err() {
                    errors += 1;
                    continue;
                }
                bytes += u64::from(plen);
                out.push(m);
                delivered += 1;
            }
            self.last_used = self.last_used.wrapping_add(n as u16);
            posted = true;
            if usize::from(used.wrapping_sub(self.last_used)) == 0 && delivered < max {
                used = self.vq.used_idx();
            }
        }
        if posted {
            self.vq.publish(self.avail_idx);
            self.vq.kick();
        }
        let t = Tally {
            n: delivered,
            bytes,
            errs: errors,
        };
        if self.idle.rx_end(posted, &self.stats, &t) {
            self.idle_check();
        }
        delivered
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        // The device may write any posted buffer until it is reset: reset it before the
        // ring and the mbufs are freed (fields drop after this body).
        self.hw.quiesce();
    }
}
