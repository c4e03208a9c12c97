//! The RX and TX halves of an XSK as ethdev queues. RX copies each frame out of the
//! UMEM into an mbuf and puts the chunk straight back on the fill ring; TX copies mbufs
//! into free TX chunks, produces descriptors, and wakes the kernel (`sendto`) when the
//! TX ring asks for it (`need_wakeup`; in copy mode it always does), once per burst.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use mbuf::{Mbuf, PktmbufPool};

use super::super::netif::{copy_out, mbuf_from, RxDrop};
use super::xsk::{Ring, Xsk, FRAMES, FRAME_SIZE, RING};
use crate::driver::{QueueStats, RxQueueOps, Tally, TxQueueOps};
use crate::sys::{self, Mapping, XdpDesc};

/// What an XSK's halves share: the socket and the UMEM (the port's, if shared).
pub(super) struct Core {
    pub fd: std::os::fd::OwnedFd,
    pub umem: Arc<Mapping>,
}

/// RX half: the RX and fill rings.
pub(super) struct RxPart {
    rx: Ring,
    fill: Ring,
}

/// TX half: the TX and completion rings and the free TX chunks.
pub(super) struct TxPart {
    tx: Ring,
    comp: Ring,
    free: Vec<u64>,
}

/// A queue half lent to a queue object while it lives, returned to the slot on drop.
pub(super) type Slot<T> = Arc<Mutex<Option<T>>>;

/// Split an XSK into its shared core and its two halves.
pub(super) fn split(x: Xsk) -> (Arc<Core>, RxPart, TxPart) {
    let free = (FRAMES / 2..FRAMES)
        .map(|i| x.base + u64::from(i * FRAME_SIZE))
        .collect();
    (
        Arc::new(Core {
            fd: x.fd,
            umem: x.umem,
        }),
        RxPart {
            rx: x.rx,
            fill: x.fill,
        },
        TxPart {
            tx: x.tx,
            comp: x.comp,
            free,
        },
    )
}

impl Core {
    /// `len` bytes of the UMEM at `addr`, if inside it.
    fn frame(&self, addr: u64, len: usize) -> Option<*mut u8> {
        let a = addr as usize;
        (a.checked_add(len)? <= self.umem.len()).then(|| {
            // SAFETY: in bounds (checked).
            unsafe { self.umem.as_ptr().add(a) }
        })
    }
}

pub(super) struct RxQ {
    pub core: Arc<Core>,
    pub part: Option<RxPart>,
    pub slot: Slot<RxPart>,
    pub pool: PktmbufPool,
    pub port: u16,
    pub stats: QueueStats,
}

impl Drop for RxQ {
    fn drop(&mut self) {
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        *s = self.part.take();
    }
}

impl RxQueueOps for RxQ {
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let Some(p) = self.part.as_mut() else {
            return 0;
        };
        let mut t = Tally::default();
        let n = p.rx.ready().min(max as u32);
        let mut done = 0;
        while done < n {
            // SAFETY: one of the `ready` slots, ours until released.
            let d: XdpDesc = unsafe { p.rx.slot::<XdpDesc>(p.rx.local.wrapping_add(done)).read() };
            match self.core.frame(d.addr, d.len as usize) {
                Some(f) => {
                    // SAFETY: the chunk is ours (the kernel handed it over in the RX ring)
                    // and in bounds.
                    let bytes = unsafe { std::slice::from_raw_parts(f, d.len as usize) };
                    match mbuf_from(&self.pool, self.port, &[bytes]) {
                        Ok(m) => {
                            t.bytes += u64::from(m.pkt_len());
                            out.push(m);
                            t.n += 1;
                        }
                        Err(RxDrop::NoMbuf) => {
                            self.stats.add_nombuf(1);
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
        if p.fill.needs_wakeup() {
            let _ = sys::xsk_wake_rx(self.core.fd.as_raw_fd());
        }
        self.stats.add_rx(&t);
        t.n
    }
}

pub(super) struct TxQ {
    pub core: Arc<Core>,
    pub part: Option<TxPart>,
    pub slot: Slot<TxPart>,
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
        let Some(p) = self.part.as_mut() else {
            return 0;
        };
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
            let Some(f) = self.core.frame(a, FRAME_SIZE as usize) else {
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
        if (queued > 0 || p.free.len() + (done as usize) < RING as usize) && p.tx.needs_wakeup() {
            // Copy mode sends a batch (32) per call and says EAGAIN while descriptors
            // remain: call again, a bounded number of times; what is left goes with the
            // next burst's wakeup.
            for _ in 0..=queued / 32 + 1 {
                match sys::xsk_wake_tx(self.core.fd.as_raw_fd()) {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(_) => {
                        self.wake_errors += 1;
                        break;
                    }
                }
            }
        }
        Mbuf::free_bulk(pkts.drain(..t.n));
        self.stats.add_tx(&t);
        t.n
    }
}
