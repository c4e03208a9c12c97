//! The RX and TX halves of an XSK as ethdev queues, over either UMEM:
//!
//! * the mempool's memory ([`super::pooled`]): mbufs travel through the rings
//!   themselves, no copy;
//! * the driver's own anonymous memory (the copy path, for pools whose layout cannot be
//!   a UMEM and for `shared_umem=1`): RX copies each frame out of the UMEM into an mbuf
//!   and puts the chunk straight back on the fill ring; TX copies mbufs into free TX
//!   chunks.
//!
//! Both wake the kernel (`sendto`) when the TX ring asks for it (`need_wakeup`; in copy
//! mode it always does), once per burst, and the RX side with `recvfrom` when the fill
//! ring asks.
//!
//! Teardown: mbufs lent to the kernel (posted to the fill ring, queued for TX) are only
//! ours again once the socket is closed. A half being dropped hands them to its
//! [`Core`] (`orphans`), which closes the socket first and then frees them.

use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use mbuf::{Mbuf, PktmbufPool};

use super::super::netif::{copy_out, mbuf_from, RxDrop};
use super::pooled::{PoolRx, PoolTx};
use super::umem::PoolUmem;
use super::xsk::{Ring, Xsk, FRAMES, FRAME_SIZE, RING};
use crate::driver::{QueueStats, RxQueueOps, Tally, TxQueueOps};
use crate::sys::{self, Mapping, XdpDesc};

/// What an XSK's halves share: the socket, and the mbufs to free once it is closed.
pub(super) struct Core {
    fd: ManuallyDrop<OwnedFd>,
    /// Mbufs the kernel held when their half was dropped.
    orphans: Mutex<Vec<Mbuf>>,
    /// Keeps the orphans' pool attached until they are back.
    _pool: Option<PktmbufPool>,
}

impl Core {
    pub(super) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Take mbufs the kernel may still hold, to free once the socket is closed.
    pub(super) fn adopt(&self, mbufs: impl Iterator<Item = Mbuf>) {
        let mut o = self.orphans.lock().unwrap_or_else(|e| e.into_inner());
        o.extend(mbufs);
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // SAFETY: dropped once, here; nothing uses the fd after (the core is going).
        unsafe { ManuallyDrop::drop(&mut self.fd) };
        // The socket is closed: the kernel lets go of every UMEM chunk, so the mbufs
        // it held are ours to free.
        let v = std::mem::take(self.orphans.get_mut().unwrap_or_else(|e| e.into_inner()));
        Mbuf::free_bulk(v);
    }
}

/// RX half of a queue.
pub(super) enum RxHalf {
    Copy(CopyRx),
    Pool(PoolRx),
}

/// TX half of a queue.
pub(super) enum TxHalf {
    Copy(CopyTx),
    Pool(PoolTx),
}

/// Copy path RX: the RX and fill rings over the queue's anonymous UMEM region.
pub(super) struct CopyRx {
    rx: Ring,
    fill: Ring,
    umem: Arc<Mapping>,
}

/// Copy path TX: the TX and completion rings and the free TX chunks.
pub(super) struct CopyTx {
    tx: Ring,
    comp: Ring,
    free: Vec<u64>,
    umem: Arc<Mapping>,
}

/// A queue half lent to a queue object while it lives, returned to the slot on drop.
pub(super) type Slot<T> = Arc<Mutex<Option<T>>>;

/// Split an XSK over a region of an anonymous UMEM (`base`: its offset, `REGION`
/// bytes) into its core and halves: the first half of the region primes the fill ring,
/// the second is the TX free list.
pub(super) fn split_copy(x: Xsk, umem: Arc<Mapping>, base: u64) -> (Arc<Core>, RxHalf, TxHalf) {
    let Xsk {
        fd,
        rx,
        mut fill,
        tx,
        comp,
        ..
    } = x;
    for i in 0..RING {
        // SAFETY: slot i of the fill ring, which nobody else writes before submit.
        unsafe { fill.slot::<u64>(i).write(base + u64::from(i * FRAME_SIZE)) };
    }
    fill.submit(RING);
    let free = (FRAMES / 2..FRAMES)
        .map(|i| base + u64::from(i * FRAME_SIZE))
        .collect();
    let core = Arc::new(Core {
        fd: ManuallyDrop::new(fd),
        orphans: Mutex::new(Vec::new()),
        _pool: None,
    });
    let rx = RxHalf::Copy(CopyRx {
        rx,
        fill,
        umem: umem.clone(),
    });
    let tx = TxHalf::Copy(CopyTx {
        tx,
        comp,
        free,
        umem,
    });
    (core, rx, tx)
}

/// Split an XSK whose UMEM is `umem`'s pool memory into its core and halves, the fill
/// ring primed with up to `fill` mbufs of the pool.
pub(super) fn split_pool(x: Xsk, umem: PoolUmem, fill: u32) -> (Arc<Core>, RxHalf, TxHalf) {
    let Xsk {
        fd,
        rx,
        fill: fill_ring,
        tx,
        comp,
        ..
    } = x;
    let core = Arc::new(Core {
        fd: ManuallyDrop::new(fd),
        orphans: Mutex::new(Vec::new()),
        _pool: Some(umem.pool.clone()),
    });
    let mut r = PoolRx::new(rx, fill_ring, umem.clone(), fill, core.clone());
    r.refill();
    let t = PoolTx::new(tx, comp, umem, core.clone());
    (core, RxHalf::Pool(r), TxHalf::Pool(t))
}

/// `len` bytes of `umem` at `addr`, if inside it.
fn frame(umem: &Mapping, addr: u64, len: usize) -> Option<*mut u8> {
    let a = addr as usize;
    (a.checked_add(len)? <= umem.len()).then(|| {
        // SAFETY: in bounds (checked).
        unsafe { umem.as_ptr().add(a) }
    })
}

pub(super) struct RxQ {
    pub core: Arc<Core>,
    pub part: Option<RxHalf>,
    pub slot: Slot<RxHalf>,
    pub pool: PktmbufPool,
    pub port: u16,
    pub stats: QueueStats,
    /// Wake the kernel when the fill ring asks: only a zero-copy socket (its driver
    /// fills from the ring in NAPI) or one with busy polling (the call polls). In copy
    /// mode the flag stays set and the call does nothing but cost a syscall per poll:
    /// the kernel copies frames in from the device's own receive path.
    pub rx_wakeup: bool,
}

impl Drop for RxQ {
    fn drop(&mut self) {
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        *s = self.part.take();
    }
}

impl RxQueueOps for RxQ {
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let (n, wake) = match self.part.as_mut() {
            Some(RxHalf::Pool(p)) => p.rx_burst(out, max, self.port, &self.stats),
            Some(RxHalf::Copy(p)) => copy_rx(p, &self.pool, self.port, &self.stats, out, max),
            None => return 0,
        };
        if self.rx_wakeup && wake {
            let _ = sys::xsk_wake_rx(self.core.fd.as_raw_fd());
        }
        n
    }
}

/// Copy path RX burst: (frames delivered, the fill ring wants a wakeup).
fn copy_rx(
    p: &mut CopyRx,
    pool: &PktmbufPool,
    port: u16,
    stats: &QueueStats,
    out: &mut Vec<Mbuf>,
    max: usize,
) -> (usize, bool) {
    let mut t = Tally::default();
    let n = p.rx.ready().min(max as u32);
    let mut done = 0;
    while done < n {
        // SAFETY: one of the `ready` slots, ours until released.
        let d: XdpDesc = unsafe { p.rx.slot::<XdpDesc>(p.rx.local.wrapping_add(done)).read() };
        match frame(&p.umem, d.addr, d.len as usize) {
            Some(f) => {
                // SAFETY: the chunk is ours (the kernel handed it over in the RX ring)
                // and in bounds.
                let bytes = unsafe { std::slice::from_raw_parts(f, d.len as usize) };
                match mbuf_from(pool, port, &[bytes]) {
                    Ok(m) => {
                        t.bytes += u64::from(m.pkt_len());
                        out.push(m);
                        t.n += 1;
                    }
                    Err(RxDrop::NoMbuf) => {
                        stats.add_nombuf(1);
                        break; // leave it in the RX ring for the next poll
                    }
                    Err(RxDrop::TooBig) => t.errs += 1,
                }
            }
            None => t.errs += 1,
        }
        // Chunk back to the fill ring: it holds RING entries for RING RX chunks, so
        // there is room for every chunk we hold.
        let fi = p.fill.local;
        // SAFETY: a fill slot we own (room is guaranteed by frame conservation).
        unsafe {
            p.fill
                .slot::<u64>(fi)
                .write(d.addr & !u64::from(FRAME_SIZE - 1))
        };
        p.fill.submit(1);
        done += 1;
    }
    if done > 0 {
        p.rx.release(done);
    }
    stats.add_rx(&t);
    (t.n, p.fill.needs_wakeup())
}

pub(super) struct TxQ {
    pub core: Arc<Core>,
    pub part: Option<TxHalf>,
    pub slot: Slot<TxHalf>,
    pub stats: QueueStats,
    pub wake_errors: u64,
}

impl Drop for TxQ {
    fn drop(&mut self) {
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        *s = self.part.take();
    }
}

impl TxQueueOps for TxQ {
    fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>, max: usize) -> usize {
        let (n, queued, wake) = match self.part.as_mut() {
            Some(TxHalf::Pool(p)) => p.tx_burst(pkts, max, &self.stats),
            Some(TxHalf::Copy(p)) => copy_tx(p, pkts, max, &self.stats),
            None => return 0,
        };
        if wake {
            kick_tx(self.core.fd.as_raw_fd(), queued, &mut self.wake_errors);
        }
        n
    }
}

/// Wake the kernel's TX side after `queued` new descriptors. Copy mode sends a batch
/// (32) per call and says EAGAIN while descriptors remain: call again, a bounded number
/// of times; what is left goes with the next burst's wakeup.
fn kick_tx(fd: i32, queued: u32, errors: &mut u64) {
    for _ in 0..=queued / 32 + 1 {
        match sys::xsk_wake_tx(fd) {
            Ok(true) => continue,
            Ok(false) => break,
            Err(_) => {
                *errors += 1;
                break;
            }
        }
    }
}

/// Copy path TX burst: (frames taken, descriptors queued, wake the kernel).
fn copy_tx(
    p: &mut CopyTx,
    pkts: &mut Vec<Mbuf>,
    max: usize,
    stats: &QueueStats,
) -> (usize, u32, bool) {
    // Reclaim what the kernel has sent.
    let done = p.comp.ready();
    for i in 0..done {
        // SAFETY: a ready completion slot, ours until released.
        let a = unsafe { p.comp.slot::<u64>(p.comp.local.wrapping_add(i)).read() };
        p.free.push(a & !u64::from(FRAME_SIZE - 1));
    }
    if done > 0 {
        p.comp.release(done);
    }
    let room = p.tx.room().min(RING);
    let mut t = Tally::default();
    let mut queued = 0u32;
    for m in &pkts[..max] {
        if queued == room {
            break;
        }
        let Some(&a) = p.free.last() else {
            break; // every TX chunk is in flight
        };
        t.n += 1;
        let Some(f) = frame(&p.umem, a, FRAME_SIZE as usize) else {
            t.errs += 1;
            continue;
        };
        // SAFETY: a free TX chunk (ours), FRAME_SIZE bytes in bounds.
        let dst = unsafe { std::slice::from_raw_parts_mut(f, FRAME_SIZE as usize) };
        let Some(len) = copy_out(m, dst) else {
            t.errs += 1; // larger than a chunk: dropped
            continue;
        };
        p.free.pop();
        let i = p.tx.local.wrapping_add(queued);
        // SAFETY: a TX slot within `room`, ours until submitted.
        unsafe {
            p.tx.slot::<XdpDesc>(i).write(XdpDesc {
                addr: a,
                len: len as u32,
                options: 0,
            })
        };
        queued += 1;
        t.bytes += len as u64;
    }
    if queued > 0 {
        p.tx.submit(queued);
    }
    let wake =
        (queued > 0 || p.free.len() + (done as usize) < RING as usize) && p.tx.needs_wakeup();
    Mbuf::free_bulk(pkts.drain(..t.n));
    stats.add_tx(&t);
    (t.n, queued, wake)
}
