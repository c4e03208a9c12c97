//! The shared half of every reactor (its "port"): the event ring, the wake handshake and
//! the busy/idle counters, in one table indexed by reactor number. Any thread may send an
//! event to any port; only the port's reactor consumes them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::msg::{Msg, MsgRing};
use crate::wake::Wake;

/// Continuous idle time before a reactor in interrupt mode sleeps (microseconds).
pub const IDLE_BEFORE_SLEEP_US: u64 = 200;

/// Events a reactor's ring holds at most.
const EVENT_RING: u32 = 4096;

/// The part of a reactor other threads can reach.
pub(crate) struct Port {
    /// EAL lcore id the reactor runs on.
    pub(crate) lcore: u32,
    /// Events (closures run by the reactor outside any thread).
    pub(crate) events: MsgRing,
    pub(crate) wake: Wake,
    /// TSC ticks spent on iterations that did work / did none (including sleeps).
    pub(crate) busy_tsc: AtomicU64,
    pub(crate) idle_tsc: AtomicU64,
    /// TSC ticks spent asleep in epoll (part of `idle_tsc`).
    pub(crate) sleep_tsc: AtomicU64,
    /// How many times the reactor went to sleep (counted on entry).
    pub(crate) sleeps: AtomicU64,
    /// Whether the reactor may sleep when idle (interrupt mode).
    pub(crate) interrupt_mode: AtomicBool,
    /// Continuous idle time (TSC ticks) before it sleeps, in interrupt mode.
    pub(crate) idle_sleep_tsc: AtomicU64,
}

/// Every reactor's port, indexed by reactor number (ascending lcore order).
pub(crate) struct Hub {
    pub(crate) ports: Box<[Port]>,
    /// Set once: every reactor leaves its loop when it has no thread left.
    pub(crate) stopping: AtomicBool,
    /// Set when a reactor died (a callback panicked): every reactor leaves at once.
    pub(crate) aborted: AtomicBool,
}

impl Hub {
    pub(crate) fn new(lcores: &[u32], interrupt_mode: bool) -> Result<Hub> {
        let ports = lcores
            .iter()
            .map(|&lcore| {
                Ok(Port {
                    lcore,
                    events: MsgRing::new(&format!("ev{lcore}"), EVENT_RING)?,
                    wake: Wake::new()?,
                    busy_tsc: AtomicU64::new(0),
                    idle_tsc: AtomicU64::new(0),
                    sleep_tsc: AtomicU64::new(0),
                    sleeps: AtomicU64::new(0),
                    interrupt_mode: AtomicBool::new(interrupt_mode),
                    idle_sleep_tsc: AtomicU64::new(crate::poller_set::us_to_tsc(
                        IDLE_BEFORE_SLEEP_US,
                    )),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Hub {
            ports: ports.into_boxed_slice(),
            stopping: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
        })
    }

    /// The reactor number of `lcore`.
    pub(crate) fn index_of(&self, lcore: u32) -> Result<usize> {
        self.ports
            .iter()
            .position(|p| p.lcore == lcore)
            .ok_or(Error::NoSuchLcore(lcore))
    }

    /// Queue an event on reactor `index` and wake it if it sleeps. A full event ring hands
    /// the event back.
    pub(crate) fn send_event(&self, index: usize, ev: Msg) -> std::result::Result<(), Msg> {
        let port = &self.ports[index];
        port.events.push(ev)?;
        port.wake.kick();
        Ok(())
    }

    /// Queue an event, retrying while the ring is full (control path: thread placement,
    /// stop). The event ring drains every iteration, so this waits for at most a few.
    pub(crate) fn send_event_wait(&self, index: usize, mut ev: Msg) {
        loop {
            match self.send_event(index, ev) {
                Ok(()) => return,
                Err(back) => {
                    ev = back;
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Make every reactor leave its loop now (a reactor is unwinding from a panic).
    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        self.stop();
    }

    /// Ask every reactor to stop once its threads are gone.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        for p in self.ports.iter() {
            p.wake.force();
        }
    }
}
