//! Queue halves over a UMEM that is the mempool's memory ([`PoolUmem`]), DPDK's
//! zero-copy mbuf path (drivers/net/af_xdp/rte_eth_af_xdp.c, `af_xdp_rx_zc`,
//! `af_xdp_tx_zc`, `reserve_fill_queue_zc`, `pull_umem_cq`):
//!
//! * RX: mbufs taken from the pool are posted to the fill ring by address; the kernel
//!   writes a frame into one and returns its address (with the data's offset in the top
//!   16 bits) on the RX ring; that address is the mbuf, which is handed up as is. As
//!   many new mbufs as were received go back on the fill ring.
//! * TX: an mbuf of the UMEM's pool (one segment, its own buffer) goes on the TX ring
//!   as its address plus data offset, and is freed when the completion ring returns
//!   it. Any other mbuf is copied into a fresh mbuf of the UMEM's pool first (as DPDK
//!   does) and freed at once.
//!
//! Every mbuf lent to the kernel has its bit set in a [`Lent`] map until it comes
//! back; dropping a half hands the rest to the socket's [`Core`], which frees them once
//! the socket is closed. An address from the kernel that is not a lent mbuf is counted
//! as an error and never touched.

use std::ptr::NonNull;
use std::sync::Arc;

use eal::VirtAddr;
use mbuf::{Mbuf, OlFlags};

use super::super::netif::copy_out;
use super::queue::Core;
use super::umem::{Lent, PoolUmem};
use super::xsk::{Ring, RING};
use crate::driver::{QueueStats, Tally};
use crate::sys::{self, XdpDesc};

/// Objects fetched from the pool per `get_bulk` when refilling.
const REFILL_CHUNK: usize = 64;

/// RX half: the RX and fill rings, the fill ring kept at `target` mbufs.
pub(super) struct PoolRx {
    rx: Ring,
    fill: Ring,
    umem: PoolUmem,
    lent: Lent,
    /// Mbufs on the fill ring or held by the kernel.
    posted: u32,
    target: u32,
    core: Arc<Core>,
}

impl PoolRx {
    pub(super) fn new(rx: Ring, fill: Ring, umem: PoolUmem, target: u32, core: Arc<Core>) -> Self {
        PoolRx {
            lent: Lent::new(umem.count),
            rx,
            fill,
            umem,
            posted: 0,
            target: target.min(RING),
            core,
        }
    }

    /// Post fresh mbufs until `target` are lent (or the pool runs dry). Returns false
    /// if the pool could not supply what was missing.
    #[inline]
    pub(super) fn refill(&mut self) -> bool {
        if self.posted >= self.target {
            return true;
        }
        self.refill_slow()
    }

    #[inline(never)]
    fn refill_slow(&mut self) -> bool {
        let mut objs = [VirtAddr(0); REFILL_CHUNK];
        while self.posted < self.target {
            let k = ((self.target - self.posted) as usize).min(REFILL_CHUNK);
            // Room is certain: the fill ring holds RING >= target entries and at most
            // `posted` of them are in use.
            if self.umem.pool.mempool().get_bulk(&mut objs[..k]).is_err() {
                return false;
            }
            for (i, &o) in objs[..k].iter().enumerate() {
                self.lent.set(self.umem.obj_index(o));
                let at = self.fill.local.wrapping_add(i as u32);
                // SAFETY: a fill slot we own (see above), written before submit.
                unsafe { self.fill.slot::<u64>(at).write(self.umem.addr_of(o)) };
            }
            self.fill.submit(k as u32);
            self.posted += k as u32;
        }
        true
    }

    /// Up to `max` received frames appended to `out`; (frames, the fill ring wants a
    /// wakeup).
    pub(super) fn rx_burst(
        &mut self,
        out: &mut Vec<Mbuf>,
        max: usize,
        port: u16,
        stats: &QueueStats,
    ) -> (usize, bool) {
        let n = self.rx.ready().min(max as u32);
        if n == 0 {
            // An empty poll: nothing to count, the fill ring is as full as it gets.
            if !self.refill() {
                stats.add_nombuf(1);
            }
            return (0, self.fill.needs_wakeup());
        }
        let mut t = Tally::default();
        out.reserve(n as usize);
        let hdr = self.umem.headroom as u64;
        let room = u64::from(self.umem.pool.data_room_size());
        for i in 0..n {
            // SAFETY: one of the `ready` slots, ours until released.
            let d: XdpDesc = unsafe {
                self.rx
                    .slot::<XdpDesc>(self.rx.local.wrapping_add(i))
                    .read()
            };
            let Some((obj, _)) = self.umem.lookup(d.addr).filter(|&(_, k)| self.lent.take(k))
            else {
                t.errs += 1; // not an mbuf we posted: leave it alone
                continue;
            };
            self.posted -= 1;
            let off = (d.addr >> sys::XSK_UNALIGNED_BUF_OFFSET_SHIFT).wrapping_sub(hdr);
            if off.saturating_add(u64::from(d.len)) > room {
                // The kernel keeps data within the chunk; anything else goes back.
                // SAFETY: an object of the pool that we held (lent bit was set).
                drop(unsafe { Mbuf::from_raw_rx(obj, 0, 0, port) });
                t.errs += 1;
                continue;
            }
            // SAFETY: the mbuf was taken from the pool by `refill` and lent to the
            // kernel, which gave it back (its bit was set); `off + len` is inside its
            // buffer (checked).
            let m = unsafe { Mbuf::from_raw_rx(obj, off as u16, d.len as u16, port) };
            t.bytes += u64::from(d.len);
            t.n += 1;
            out.push(m);
        }
        if n > 0 {
            self.rx.release(n);
        }
        if !self.refill() {
            stats.add_nombuf(1);
        }
        stats.add_rx(&t);
        (t.n, self.fill.needs_wakeup())
    }
}

impl Drop for PoolRx {
    fn drop(&mut self) {
        self.core.adopt(self.lent.iter().map(|i| {
            // SAFETY: an object taken from the pool by `refill` and never returned to
            // us (its bit is set); fresh since then but for frame data.
            unsafe { Mbuf::from_raw_rx(self.umem.obj_at(i), 0, 0, mbuf::PORT_INVALID) }
        }));
    }
}

/// TX half: the TX and completion rings.
pub(super) struct PoolTx {
    tx: Ring,
    comp: Ring,
    umem: PoolUmem,
    lent: Lent,
    core: Arc<Core>,
    /// Completed mbufs to free (kept to reuse its allocation).
    done: Vec<Mbuf>,
    /// The UMEM's pool's header address, as mbufs record their pool.
    pool_addr: u64,
}

impl PoolTx {
    pub(super) fn new(tx: Ring, comp: Ring, umem: PoolUmem, core: Arc<Core>) -> Self {
        PoolTx {
            lent: Lent::new(umem.count),
            pool_addr: umem.pool.mempool().addr().0,
            tx,
            comp,
            umem,
            core,
            done: Vec::with_capacity(RING as usize),
        }
    }

    /// True if `m` can go on the TX ring as it is: an mbuf of the UMEM's pool, one
    /// segment, its own buffer.
    #[inline(always)]
    fn fits(&self, m: &Mbuf) -> bool {
        let h = m.header();
        h.pool.0 == self.pool_addr
            && h.nb_segs == 1
            && h.ol_flags & (OlFlags::INDIRECT.bits() | OlFlags::EXTERNAL.bits()) == 0
    }

    /// Free what the kernel has sent.
    fn reclaim(&mut self) {
        let n = self.comp.ready();
        for i in 0..n {
            // SAFETY: a ready completion slot, ours until released.
            let a = unsafe {
                self.comp
                    .slot::<u64>(self.comp.local.wrapping_add(i))
                    .read()
            };
            if let Some((obj, _)) = self.umem.lookup(a).filter(|&(_, k)| self.lent.take(k)) {
                // SAFETY: an mbuf we queued (bit set) whose handle we gave up then.
                self.done
                    .push(unsafe { Mbuf::from_raw(NonNull::new_unchecked(obj.as_ptr())) });
            }
        }
        if n > 0 {
            self.comp.release(n);
            Mbuf::free_bulk(self.done.drain(..));
        }
    }

    /// Queue up to `max` of `pkts`; (taken, descriptors queued, wake the kernel).
    pub(super) fn tx_burst(
        &mut self,
        pkts: &mut Vec<Mbuf>,
        max: usize,
        stats: &QueueStats,
    ) -> (usize, u32, bool) {
        self.reclaim();
        let room = self.tx.room().min(RING) as usize;
        let k = max.min(pkts.len()).min(room);
        let mut t = Tally::default();
        let mut queued = 0u32;
        for m in &pkts[..k] {
            let src = if self.fits(m) {
                None
            } else {
                match self.copy(m) {
                    Ok(c) => Some(c),
                    Err(true) => break, // pool dry: the rest waits
                    Err(false) => {
                        t.errs += 1; // larger than a chunk: dropped
                        t.n += 1;
                        continue;
                    }
                }
            };
            let s = src.as_ref().unwrap_or(m);
            let obj = s.addr();
            let data = s.data().as_ptr() as u64 - obj.0;
            let i = self.tx.local.wrapping_add(queued);
            // SAFETY: a TX slot within `room`, ours until submitted.
            unsafe {
                self.tx.slot::<XdpDesc>(i).write(XdpDesc {
                    addr: self.umem.addr_of(obj) | data << sys::XSK_UNALIGNED_BUF_OFFSET_SHIFT,
                    len: u32::from(s.data_len()),
                    options: 0,
                })
            };
            self.lent.set(self.umem.obj_index(obj));
            queued += 1;
            t.bytes += u64::from(s.data_len());
            t.n += 1;
            if let Some(c) = src {
                let _ = c.into_raw(); // the kernel has it now; freed on completion
            }
        }
        if queued > 0 {
            self.tx.submit(queued);
        }
        for m in pkts.drain(..t.n) {
            if self.fits(&m) {
                let _ = m.into_raw(); // lent to the kernel, freed on completion
            } else {
                drop(m); // copied (or dropped): the original goes back now
            }
        }
        stats.add_tx(&t);
        (t.n, queued, queued > 0 && self.tx.needs_wakeup())
    }

    /// A copy of `m` in a fresh mbuf of the UMEM's pool. Err(true): the pool is dry;
    /// Err(false): `m` does not fit in one mbuf.
    fn copy(&self, m: &Mbuf) -> Result<Mbuf, bool> {
        let mut c = Mbuf::alloc(&self.umem.pool).ok_or(true)?;
        let len = m.pkt_len() as usize;
        if len > c.tailroom() as usize {
            return Err(false);
        }
        let dst = c.append(len as u16).map_err(|_| false)?;
        copy_out(m, dst).ok_or(false)?;
        Ok(c)
    }
}

impl Drop for PoolTx {
    fn drop(&mut self) {
        self.core.adopt(self.lent.iter().map(|i| {
            // SAFETY: an mbuf we queued for TX (bit set) and never got back.
            unsafe { Mbuf::from_raw(NonNull::new_unchecked(self.umem.obj_at(i).as_ptr())) }
        }));
    }
}
