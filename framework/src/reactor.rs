//! Reactors (SPDK's `spdk_reactor`): one loop per lcore that runs events and then every
//! thread it hosts, and sleeps in epoll when all of them are idle.
//!
//! # One iteration
//!
//! 1. Run queued events (closures sent with [`event_call`], thread arrivals, move
//!    requests).
//! 2. Poll every hosted thread once (messages, active pollers, due timed pollers),
//!    charging the ticks to the thread's busy or idle counter.
//! 3. At most every [`INTR_CHECK_US`] while busy, look at the epoll set for ready
//!    interrupt descriptors and run their handlers.
//! 4. Destroy threads that finished exiting.
//! 5. In interrupt mode, after [`IDLE_BEFORE_SLEEP_US`] (or what
//!    [`crate::Framework::set_idle_before_sleep_us`] set) of consecutive idle iterations,
//!    sleep in epoll until an event, a message, a descriptor or the next timed poller's
//!    deadline (the handshake in [`crate::wake`]).
//!
//! Active pollers do not run while their reactor sleeps: an active poller reports idle
//! when it has nothing to do, and whatever gives it work (a message, a descriptor)
//! wakes the reactor. A poller that must be polled without such a signal registers with
//! `keep_awake`.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::msg::Msg;
use crate::thread::{self, Thread};

/// How often a busy reactor checks its interrupt descriptors (microseconds).
pub const INTR_CHECK_US: u64 = 1000;
pub use crate::hub::IDLE_BEFORE_SLEEP_US;

thread_local! {
    /// Move requests (thread id, destination reactor) delivered to this reactor.
    static MOVES: RefCell<Vec<(u64, usize)>> = const { RefCell::new(Vec::new()) };
    /// The hub of the reactor running on this OS thread.
    static HUB: RefCell<Option<Arc<Hub>>> = const { RefCell::new(None) };
}

/// Run `f` on the reactor of `lcore`, outside any thread (SPDK's `spdk_event_call`).
/// Must be called from inside the framework (a reactor's OS thread).
pub fn event_call<F: FnOnce() + Send + 'static>(lcore: u32, f: F) -> Result<()> {
    let hub = HUB.with(|h| h.borrow().clone()).ok_or(Error::NotOnThread {
        what: "send an event",
    })?;
    let idx = hub.index_of(lcore)?;
    hub.send_event(idx, Box::new(f))
        .map_err(|_| Error::QueueFull(format!("reactor {lcore} events")))
}

/// Ask the reactor hosting thread `id` (`src`) to move it to reactor `dst`.
pub(crate) fn request_move(hub: &Hub, src: usize, id: u64, dst: usize) {
    let m: Msg = Box::new(move || MOVES.with(|m| m.borrow_mut().push((id, dst))));
    hub.send_event_wait(src, m);
}

fn ms_until(now: u64, deadline: u64) -> i32 {
    if deadline <= now {
        return 0;
    }
    let hz = u128::from(eal::timer::tsc_hz().max(1));
    // Rounded up: waking early only costs an idle iteration; late would delay a poller.
    let ms = (u128::from(deadline - now) * 1000).div_ceil(hz);
    i32::try_from(ms).unwrap_or(i32::MAX)
}

/// One reactor's loop state.
pub(crate) struct Reactor {
    idx: usize,
    hub: Arc<Hub>,
    threads: Vec<Thread>,
    ready: Vec<u64>,
    intr_check_tsc: u64,
}

impl Reactor {
    pub(crate) fn new(hub: Arc<Hub>, idx: usize) -> Reactor {
        Reactor {
            idx,
            hub,
            threads: Vec::new(),
            ready: Vec::new(),
            intr_check_tsc: crate::poller_set::us_to_tsc(INTR_CHECK_US),
        }
    }

    /// Run until the hub stops and no thread is left.
    pub(crate) fn run(mut self) {
        /// A callback that panics unwinds out of this loop: stop the other reactors too,
        /// so the framework returns (the panic then reaches the caller) instead of
        /// hanging.
        struct AbortOnUnwind(Arc<Hub>);
        impl Drop for AbortOnUnwind {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.abort();
                }
            }
        }
        let _guard = AbortOnUnwind(self.hub.clone());
        HUB.with(|h| *h.borrow_mut() = Some(self.hub.clone()));
        let mut next_intr_check = 0u64;
        let mut idle_since: Option<u64> = None;
        let mut last = eal::timer::rdtsc();
        loop {
            let now = eal::timer::rdtsc();
            let mut busy = self.run_events();
            // One TSC read per thread: each thread's end is the next one's start (a
            // read costs tens of nanoseconds, more under a hypervisor).
            let mut t0 = if busy { eal::timer::rdtsc() } else { now };
            for t in &self.threads {
                let r = t.poll(now);
                let t1 = eal::timer::rdtsc();
                t.add_time(r.busy, t1.wrapping_sub(t0));
                t0 = t1;
                busy |= r.busy;
            }
            let mut end = t0;
            if now >= next_intr_check {
                next_intr_check = now + self.intr_check_tsc;
                let mut ready = std::mem::take(&mut self.ready);
                if let Err(e) = self.hub.ports[self.idx].wake.poll_ready(&mut ready) {
                    eal::log_err!("reactor {}: {e}", self.port_lcore());
                }
                busy |= self.dispatch(&mut ready);
                self.ready = ready;
                end = eal::timer::rdtsc();
            }
            self.reap(now);
            self.account(busy, end.wrapping_sub(last));
            last = end;
            if self.hub.aborted.load(Ordering::Acquire) {
                eal::log_err!(
                    "reactor {}: leaving, another reactor died",
                    self.port_lcore()
                );
                break;
            }
            if self.hub.stopping.load(Ordering::Acquire)
                && self.threads.is_empty()
                && self.hub.ports[self.idx].events.is_empty()
            {
                break;
            }
            if busy {
                idle_since = None;
                continue;
            }
            let since = *idle_since.get_or_insert(now);
            let hub = self.hub.clone();
            let port = &hub.ports[self.idx];
            if port.interrupt_mode.load(Ordering::Relaxed)
                && end.wrapping_sub(since) >= port.idle_sleep_tsc.load(Ordering::Relaxed)
            {
                let slept = self.try_sleep();
                last = eal::timer::rdtsc();
                port.idle_tsc.fetch_add(slept, Ordering::Relaxed);
                idle_since = None;
            }
        }
        HUB.with(|h| *h.borrow_mut() = None);
    }

    fn port_lcore(&self) -> u32 {
        self.hub.ports[self.idx].lcore
    }

    fn account(&self, busy: bool, ticks: u64) {
        let p = &self.hub.ports[self.idx];
        let c = if busy { &p.busy_tsc } else { &p.idle_tsc };
        c.fetch_add(ticks, Ordering::Relaxed);
    }

    /// Events, arrivals and move requests; true if any.
    fn run_events(&mut self) -> bool {
        let port = &self.hub.ports[self.idx];
        // SAFETY: a reactor is the only consumer of its own event ring.
        let n = unsafe { port.events.run_burst() };
        if n == 0 {
            return false;
        }
        let stopping = self.hub.stopping.load(Ordering::Acquire);
        for t in thread::take_arrivals() {
            t.attach(port.wake.epoll_fd());
            if stopping {
                t.handle().request_exit();
            }
            self.threads.push(t);
        }
        let moves = MOVES.with(|m| std::mem::take(&mut *m.borrow_mut()));
        for (id, dst) in moves {
            let Some(pos) = self.threads.iter().position(|t| t.id() == id) else {
                continue;
            };
            if dst == self.idx {
                continue;
            }
            let t = self.threads.remove(pos);
            t.detach();
            thread::deliver(&self.hub, t, dst);
        }
        true
    }

    /// Run the handlers of ready interrupt tokens; true if any reported busy.
    fn dispatch(&self, ready: &mut Vec<u64>) -> bool {
        let mut busy = false;
        for tok in ready.drain(..) {
            let (id, slot) = thread::token_thread(tok);
            if let Some(t) = self.threads.iter().find(|t| t.id() == id) {
                let t0 = eal::timer::rdtsc();
                let b = t.run_interrupt(slot, t0);
                t.add_time(b, eal::timer::rdtsc().wrapping_sub(t0));
                busy |= b;
            }
        }
        busy
    }

    /// Destroy threads that finished exiting (or overran the exit timeout).
    fn reap(&mut self, now: u64) {
        if !self.threads.iter().any(|t| t.exiting()) {
            return;
        }
        let mut i = 0;
        while i < self.threads.len() {
            match self.threads[i].ready_to_destroy(now) {
                Some(forced) => {
                    let t = self.threads.remove(i);
                    t.destroy(forced);
                }
                None => i += 1,
            }
        }
    }

    /// Sleep if nothing is pending; returns the ticks spent asleep.
    fn try_sleep(&mut self) -> u64 {
        let hub = self.hub.clone();
        let port = &hub.ports[self.idx];
        if !self.threads.iter().all(|t| t.may_sleep()) {
            return 0;
        }
        port.wake.prepare_sleep();
        // After W2: anything published before a sender's W1 is visible here.
        let pending = !port.events.is_empty()
            || !self.threads.iter().all(|t| t.may_sleep())
            || self.hub.stopping.load(Ordering::Acquire);
        let mut slept = 0;
        if !pending {
            let now = eal::timer::rdtsc();
            let mut deadline = self.threads.iter().filter_map(|t| t.next_deadline()).min();
            if self.threads.iter().any(|t| t.exiting()) {
                // Wake to check exiting threads' timeouts now and then.
                let soon = now + self.intr_check_tsc * 100;
                deadline = Some(deadline.map_or(soon, |d| d.min(soon)));
            }
            let timeout = deadline.map_or(-1, |d| ms_until(now, d));
            let mut ready = std::mem::take(&mut self.ready);
            // Counted on entry, so a reactor in its first, still unfinished, sleep shows.
            port.sleeps.fetch_add(1, Ordering::Relaxed);
            let efd = match port.wake.wait(timeout, &mut ready) {
                Ok(k) => k,
                Err(e) => {
                    eal::log_err!("reactor {}: {e}", port.lcore);
                    true
                }
            };
            slept = eal::timer::rdtsc().wrapping_sub(now);
            port.sleep_tsc.fetch_add(slept, Ordering::Relaxed);
            port.wake.finish_sleep(efd);
            self.dispatch(&mut ready);
            self.ready = ready;
        } else {
            port.wake.finish_sleep(false);
        }
        slept
    }

    /// Thread ids and names hosted here (statistics).
    #[allow(dead_code)]
    pub(crate) fn thread_ids(&self) -> Vec<u64> {
        self.threads.iter().map(|t| t.id()).collect()
    }

    /// Whether any hosted thread has active pollers (statistics).
    #[allow(dead_code)]
    pub(crate) fn polling(&self) -> bool {
        self.threads.iter().any(|t| t.has_active_pollers())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up() {
        let hz = eal::timer::tsc_hz();
        assert_eq!(ms_until(100, 50), 0);
        assert_eq!(ms_until(0, 1), 1, "a tick away is a whole millisecond");
        assert_eq!(ms_until(0, hz / 1000), 1);
        assert_eq!(ms_until(0, hz), 1000);
        assert!(ms_until(0, u64::MAX) > 0);
    }
}
