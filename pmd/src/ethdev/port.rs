//! The port table: one static slot per port id, its control state behind a mutex and its
//! queues behind claim words (the protocol the data path and control path share).

use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};

use eal::{Eal, Memzone};

use crate::driver::{DevControl, EthDriver, QueueStats, RxQueueOps, TxQueueOps};
use crate::error::{Error, Result};
use crate::shared::PortShared;
use crate::types::{EthConf, DEFAULT_MTU, ETHER_HDR_LEN, MAX_PORTS, MAX_QUEUES};

/// `frame_max` value that turns the per-packet TX length check off.
pub(super) const NO_TX_CHECK: u32 = u32::MAX;

/// The TX length limit for a port of this driver at this MTU.
pub(super) fn frame_limit(check: bool, mtu: u32) -> u32 {
    if check {
        mtu + ETHER_HDR_LEN
    } else {
        NO_TX_CHECK
    }
}

/// Claim word values: free, held by one burst call, by a queue handle, by the control
/// path.
pub(super) const FREE: u8 = 0;
pub(super) const BURST: u8 = 1;
pub(super) const HANDLE: u8 = 2;
const CTL: u8 = 3;
/// Primary only: the queue is driven by a secondary process (its pid is in the port's
/// shared `rx_owner`/`tx_owner`); released by the secondary's IPC release or when the
/// primary reclaims the queue of a dead process.
pub(super) const REMOTE: u8 = 4;

/// One queue of one port: the driver's queue object behind a claim word. Whoever moves
/// `claim` from FREE owns `q` until it stores FREE again.
pub(super) struct QSlot<T: ?Sized> {
    pub(super) claim: AtomicU8,
    pub(super) q: UnsafeCell<Option<Box<T>>>,
    /// Counters of the queue (null until set up), for the ethdev layer's own drops.
    pub(super) stats: UnsafeCell<Option<QueueStats>>,
}

// SAFETY: `q` and `stats` are only touched by the holder of `claim` (see the CAS sites:
// C1 acquire/C2 release pairs), and the objects are `Send`.
unsafe impl<T: ?Sized + Send> Sync for QSlot<T> {}

impl<T: ?Sized> QSlot<T> {
    const fn new() -> Self {
        QSlot {
            claim: AtomicU8::new(FREE),
            q: UnsafeCell::new(None),
            stats: UnsafeCell::new(None),
        }
    }

    /// C1: take the slot for `how`. Acquire pairs with C2 of the previous holder, so its
    /// writes to the queue object are visible.
    #[inline(always)]
    pub(super) fn try_claim(&self, how: u8) -> bool {
        self.claim
            .compare_exchange(FREE, how, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// C2: give the slot back; Release publishes our writes to the queue object.
    #[inline(always)]
    pub(super) fn release(&self) {
        self.claim.store(FREE, Ordering::Release);
    }

    /// Claim for the control path: spin past bursts in flight, fail if a handle or
    /// another process holds it.
    pub(super) fn claim_ctl(&self) -> std::result::Result<(), ()> {
        self.claim_long(CTL).map_err(|_| ())
    }

    /// Claim for a long hold (`CTL`, `HANDLE`, `REMOTE`): spin past bursts in flight
    /// (they end by themselves), fail with the holder's claim value otherwise. C1 as
    /// [`try_claim`](Self::try_claim).
    pub(super) fn claim_long(&self, how: u8) -> std::result::Result<(), u8> {
        loop {
            match self
                .claim
                .compare_exchange(FREE, how, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(BURST) => std::hint::spin_loop(),
                Err(other) => return Err(other),
            }
        }
    }
}

/// A port id's slot: control state behind a mutex, data-path state in atomics and queue
/// slots. Slots are static: a port id's slot lives forever and is reused after close.
pub(super) struct PortSlot {
    pub(super) ctl: Mutex<Option<PortCtl>>,
    /// Data-path gate: true between start and stop. S1 (Release at start) pairs with S2.
    pub(super) started: AtomicBool,
    /// Largest frame accepted on TX (MTU + Ethernet header), or [`NO_TX_CHECK`] for
    /// drivers that opt out (`EthDriver::tx_mtu_check`).
    pub(super) frame_max: AtomicU32,
    pub(super) rx: [QSlot<dyn RxQueueOps>; MAX_QUEUES],
    pub(super) tx: [QSlot<dyn TxQueueOps>; MAX_QUEUES],
}

impl PortSlot {
    const fn new() -> Self {
        PortSlot {
            ctl: Mutex::new(None),
            started: AtomicBool::new(false),
            frame_max: AtomicU32::new(DEFAULT_MTU + ETHER_HDR_LEN),
            rx: [const { QSlot::new() }; MAX_QUEUES],
            tx: [const { QSlot::new() }; MAX_QUEUES],
        }
    }
}

pub(super) static PORTS: [PortSlot; MAX_PORTS] = [const { PortSlot::new() }; MAX_PORTS];
/// Serialises port creation (id and name allocation).
pub(super) static ALLOC: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Attached,
    Configured,
    Started,
}

pub(super) struct SharedPtr(pub(super) NonNull<PortShared>);
// SAFETY: points into EAL memory kept alive by the `Eal` clone next to it; all mutable
// fields are atomics.
unsafe impl Send for SharedPtr {}

pub(super) struct PortCtl {
    pub(super) eal: Eal,
    pub(super) mz: Memzone,
    pub(super) shared: SharedPtr,
    pub(super) name: String,
    pub(super) driver: Box<dyn EthDriver>,
    pub(super) state: State,
    pub(super) nb_rxq: u16,
    pub(super) nb_txq: u16,
    pub(super) conf: EthConf,
    pub(super) mtu: u32,
    pub(super) mac: [u8; 6],
    pub(super) promisc: bool,
    pub(super) allmulti: bool,
    pub(super) link_admin_up: bool,
    /// In a secondary process: the pid of the primary that owns the port (the port was
    /// attached from its shared memzone, see `super::mp`); `None` in the primary.
    pub(super) remote: Option<i32>,
    /// In a secondary: the queues this process claimed from the primary, (rx, queue).
    pub(super) claimed: Vec<(bool, u16)>,
}

impl PortCtl {
    /// Apply a setting to the device, if the driver has device settings (software
    /// ports keep them in the port state only).
    pub(super) fn on_device(
        &mut self,
        f: impl FnOnce(&mut dyn DevControl) -> Result<()>,
    ) -> Result<()> {
        match self.driver.control() {
            Some(d) => f(d),
            None => Ok(()),
        }
    }

    /// Refuse a change of the port in a secondary process ([`Error::NotOwner`]).
    pub(super) fn primary_only(&self, op: &'static str, port: u16) -> Result<()> {
        match self.remote {
            Some(primary) => Err(Error::NotOwner { op, port, primary }),
            None => Ok(()),
        }
    }

    /// The port's shared block.
    pub(super) fn shared(&self) -> &PortShared {
        // SAFETY: see `SharedPtr`.
        unsafe { self.shared.0.as_ref() }
    }
}

pub(super) fn slot(port: u16) -> Option<&'static PortSlot> {
    PORTS.get(port as usize)
}

pub(super) fn lock(
    port: u16,
    op: &'static str,
) -> Result<(&'static PortSlot, MutexGuard<'static, Option<PortCtl>>)> {
    let s = slot(port).ok_or(Error::NoSuchPort { op, port })?;
    let g = s.ctl.lock().unwrap_or_else(|e| e.into_inner());
    if g.is_none() {
        return Err(Error::NoSuchPort { op, port });
    }
    Ok((s, g))
}

/// Run `$body` with the port's slot and control state, under its control lock;
/// [`Error::NoSuchPort`] if the id is unused.
macro_rules! with_port {
    ($port:expr, $op:expr, |$s:ident, $c:ident| $body:expr) => {{
        let (s, mut g) = $crate::ethdev::port::lock($port, $op)?;
        let $s = s;
        let $c: &mut $crate::ethdev::port::PortCtl = g.as_mut().expect("checked by lock");
        $body
    }};
}
pub(super) use with_port;

/// The name of a queue direction in messages ("RX" / "TX").
pub(super) type Dir = &'static str;

/// One direction's queue slots of a port, with what errors about them name.
pub(super) struct Queues<'a, T: ?Sized> {
    slots: &'a [QSlot<T>],
    dir: Dir,
    port: u16,
}

impl PortSlot {
    /// The RX queue slots of port `port` (this slot).
    pub(super) fn rxq(&self, port: u16) -> Queues<'_, dyn RxQueueOps> {
        Queues {
            slots: &self.rx,
            dir: "RX",
            port,
        }
    }

    /// The TX queue slots of port `port` (this slot).
    pub(super) fn txq(&self, port: u16) -> Queues<'_, dyn TxQueueOps> {
        Queues {
            slots: &self.tx,
            dir: "TX",
            port,
        }
    }
}

impl<T: ?Sized> Queues<'_, T> {
    fn busy(&self, op: &'static str, q: usize) -> Error {
        Error::QueueBusy {
            op,
            dir: self.dir,
            port: self.port,
            queue: q as u16,
        }
    }

    /// Refuse with [`Error::QueueBusy`] if a handle holds one of the slots from `from`
    /// on. Handles are only made under the port's control lock, which the caller holds.
    pub(super) fn check_no_handles(&self, from: usize, op: &'static str) -> Result<()> {
        match self.slots[from..]
            .iter()
            .position(|qs| matches!(qs.claim.load(Ordering::Relaxed), HANDLE | REMOTE))
        {
            Some(q) => Err(self.busy(op, from + q)),
            None => Ok(()),
        }
    }

    /// Drop the queue objects from slot `from` on (control path, slots claimed one by
    /// one); their mbufs go back to their pools.
    pub(super) fn drop_from(&self, from: usize, op: &'static str) -> Result<()> {
        for (q, qs) in self.slots.iter().enumerate().skip(from) {
            qs.claim_ctl().map_err(|_| self.busy(op, q))?;
            // SAFETY: claimed (C1 in claim_ctl); nobody else touches the slot until
            // release.
            unsafe {
                *qs.q.get() = None;
                *qs.stats.get() = None;
            }
            qs.release();
        }
        Ok(())
    }

    /// Put the queue `make` returns into slot `q`, under the control claim: the old
    /// queue is dropped first (its mbufs go back to their pools), and on error the slot
    /// stays empty. Refused with [`Error::QueueBusy`] while a queue handle holds the slot.
    pub(super) fn install(
        &self,
        q: u16,
        stats: QueueStats,
        make: impl FnOnce(QueueStats) -> Result<Box<T>>,
    ) -> Result<()> {
        let qs = &self.slots[q as usize];
        let op = if self.dir == "RX" {
            "set up RX queue of"
        } else {
            "set up TX queue of"
        };
        qs.claim_ctl().map_err(|_| self.busy(op, q as usize))?;
        // SAFETY: claimed above; nobody else touches the slot until `release`.
        unsafe { *qs.q.get() = None };
        let res = make(stats).map(|b| {
            // SAFETY: claimed.
            unsafe {
                *qs.q.get() = Some(b);
                *qs.stats.get() = Some(stats);
            }
        });
        qs.release();
        res
    }

    /// Drop the queue object of slot `q` (control path); its mbufs go back to their pool.
    pub(super) fn drop_one(&self, q: usize, op: &'static str) -> Result<()> {
        let qs = &self.slots[q];
        qs.claim_ctl().map_err(|_| self.busy(op, q))?;
        // SAFETY: claimed (C1); nobody else touches the slot until release.
        unsafe {
            *qs.q.get() = None;
            *qs.stats.get() = None;
        }
        qs.release();
        Ok(())
    }

    /// The slot of queue `q`.
    pub(super) fn slot(&self, q: usize) -> Option<&QSlot<T>> {
        self.slots.get(q)
    }

    /// Check that each of the first `n` slots holds a queue (for `start`).
    pub(super) fn check_set_up(&self, n: u16) -> Result<()> {
        for (q, qs) in self.slots.iter().enumerate().take(n as usize) {
            // A queue held by a handle is set up (handles need it, setup is refused
            // while one lives).
            let ok = match qs.claim_ctl() {
                Err(()) => true,
                Ok(()) => {
                    // SAFETY: claimed.
                    let ok = unsafe { (*qs.q.get()).is_some() };
                    qs.release();
                    ok
                }
            };
            if !ok {
                return Err(Error::BadQueue {
                    op: "start with",
                    dir: self.dir,
                    port: self.port,
                    queue: q as u16,
                    why: "queue is not set up".into(),
                });
            }
        }
        Ok(())
    }
}
