//! The data path: bursts by (port, queue) and through exclusive queue handles. No lock,
//! no allocation beyond the caller's `Vec`, one atomic claim per (port, queue) call.

use std::sync::atomic::Ordering;

use mbuf::Mbuf;

use super::port::{lock, slot, PortSlot, QSlot, BURST, HANDLE, NO_TX_CHECK};
use crate::driver::{RxQueueOps, TxQueueOps};
use crate::error::{Error, Result};

#[inline(always)]
fn rx_on(s: &PortSlot, qs: &QSlot<dyn RxQueueOps>, out: &mut Vec<Mbuf>, nb: u16) -> u16 {
    // S2: Acquire pairs with S1 (start).
    if !s.started.load(Ordering::Acquire) {
        return 0;
    }
    // SAFETY: the caller holds the slot's claim.
    match unsafe { &mut *qs.q.get() } {
        Some(q) => q.rx_burst(out, nb as usize) as u16,
        None => 0,
    }
}

#[inline(always)]
fn tx_on(s: &PortSlot, qs: &QSlot<dyn TxQueueOps>, pkts: &mut Vec<Mbuf>) -> u16 {
    if !s.started.load(Ordering::Acquire) {
        return 0;
    }
    // SAFETY: the caller holds the slot's claim.
    let Some(q) = (unsafe { &mut *qs.q.get() }) else {
        return 0;
    };
    let max = pkts.len().min(u16::MAX as usize);
    let lim = s.frame_max.load(Ordering::Relaxed);
    let mut dropped = 0usize;
    if lim != NO_TX_CHECK && pkts[..max].iter().any(|m| m.pkt_len() > lim) {
        dropped = drop_oversize(pkts, max, lim);
        // SAFETY: claimed; set with the queue.
        if let Some(st) = unsafe { &*qs.stats.get() } {
            st.add_errors(dropped as u64);
        }
    }
    let sent = q.tx_burst(pkts, max - dropped);
    (sent + dropped) as u16
}

/// Free the packets over `lim` among the first `max`, keeping the order of the rest.
#[cold]
fn drop_oversize(pkts: &mut Vec<Mbuf>, max: usize, lim: u32) -> usize {
    let tail = pkts.split_off(max);
    let before = pkts.len();
    pkts.retain(|m| m.pkt_len() <= lim);
    let d = before - pkts.len();
    pkts.extend(tail);
    d
}

/// Receive up to `nb_pkts` packets from queue `queue` of `port`, appending them to
/// `out`; returns how many. Returns 0 (and leaves `out` alone) if the port is not
/// started, the ids are out of range, the queue is not set up, or a [`RxQueue`] handle
/// holds the queue. Data path: one atomic claim of the queue per call, no lock.
#[inline]
pub fn rx_burst(port: u16, queue: u16, out: &mut Vec<Mbuf>, nb_pkts: u16) -> u16 {
    let Some(s) = slot(port) else { return 0 };
    let Some(qs) = s.rx.get(queue as usize) else {
        return 0;
    };
    if !qs.try_claim(BURST) {
        return 0;
    }
    let n = rx_on(s, qs, out, nb_pkts);
    qs.release();
    n
}

/// Send packets from the front of `pkts` on queue `queue` of `port`. Returns how many
/// were consumed (sent, or dropped as over the MTU and counted in `oerrors`, see
/// [`mtu_set`](super::mtu_set)); those are
/// removed from `pkts`, and the rest stay there in order, still owned by the caller.
/// Returns 0 with `pkts` untouched if the port is stopped, the ids are out of range, the
/// queue is not set up, or a [`TxQueue`] handle holds it.
#[inline]
pub fn tx_burst(port: u16, queue: u16, pkts: &mut Vec<Mbuf>) -> u16 {
    let Some(s) = slot(port) else { return 0 };
    let Some(qs) = s.tx.get(queue as usize) else {
        return 0;
    };
    if !qs.try_claim(BURST) {
        return 0;
    }
    let n = tx_on(s, qs, pkts);
    qs.release();
    n
}

/// Exclusive hold on one queue slot, released on drop.
struct Held<T: ?Sized + 'static> {
    port: u16,
    queue: u16,
    s: &'static PortSlot,
    qs: &'static QSlot<T>,
}

impl<T: ?Sized> Drop for Held<T> {
    fn drop(&mut self) {
        self.qs.release();
    }
}

/// Exclusive handle to one RX queue, for the lcore that polls it: no claim per burst.
/// `Send`, not `Clone`; while it lives, [`rx_burst`] on the same queue returns 0 and the
/// control calls that change queues (setup, configure, close) fail with
/// [`Error::QueueBusy`]. `start`/`stop` still work: a stopped port's handle receives 0.
pub struct RxQueue(Held<dyn RxQueueOps>);

/// Exclusive handle to one TX queue (see [`RxQueue`]).
pub struct TxQueue(Held<dyn TxQueueOps>);

/// Claim queue `queue` of `port` for a handle; `pick` chooses the direction's slots and
/// `nb` its configured count.
fn hold<T: ?Sized>(
    port: u16,
    queue: u16,
    dir: &'static str,
    pick: fn(&'static PortSlot) -> &'static [QSlot<T>],
    nb: fn(&super::port::PortCtl) -> u16,
) -> Result<Held<T>> {
    // The claim is taken under the control lock, so close/configure see it.
    let (s, g) = lock(port, "get a queue handle of")?;
    let n = nb(g.as_ref().expect("checked by lock"));
    if queue >= n {
        return Err(Error::BadQueue {
            op: "get a handle to",
            dir,
            port,
            queue,
            why: format!("port has {n} {dir} queues"),
        });
    }
    let qs = &pick(s)[queue as usize];
    if !qs.try_claim(HANDLE) {
        return Err(Error::QueueBusy {
            op: "get a queue handle of",
            dir,
            port,
            queue,
        });
    }
    // SAFETY: claimed.
    if unsafe { (*qs.q.get()).is_none() } {
        qs.release();
        return Err(Error::BadQueue {
            op: "get a handle to",
            dir,
            port,
            queue,
            why: "queue is not set up".into(),
        });
    }
    Ok(Held { port, queue, s, qs })
}

/// Take the handle of RX queue `queue` of `port` (control path, once per lcore).
pub fn rx_queue(port: u16, queue: u16) -> Result<RxQueue> {
    hold(port, queue, "RX", |s| &s.rx, |c| c.nb_rxq).map(RxQueue)
}

/// Take the handle of TX queue `queue` of `port`.
pub fn tx_queue(port: u16, queue: u16) -> Result<TxQueue> {
    hold(port, queue, "TX", |s| &s.tx, |c| c.nb_txq).map(TxQueue)
}

impl RxQueue {
    /// As [`rx_burst`] without the per-call claim.
    #[inline]
    pub fn rx_burst(&mut self, out: &mut Vec<Mbuf>, nb_pkts: u16) -> u16 {
        rx_on(self.0.s, self.0.qs, out, nb_pkts)
    }
    /// (port, queue).
    pub fn id(&self) -> (u16, u16) {
        (self.0.port, self.0.queue)
    }
}

impl TxQueue {
    /// As [`tx_burst`] without the per-call claim.
    #[inline]
    pub fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) -> u16 {
        tx_on(self.0.s, self.0.qs, pkts)
    }
    /// (port, queue).
    pub fn id(&self) -> (u16, u16) {
        (self.0.port, self.0.queue)
    }
}
