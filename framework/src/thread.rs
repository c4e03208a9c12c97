//! Lightweight threads (SPDK's `spdk_thread`): a message ring, pollers, interrupts and
//! I/O channels, run by one reactor at a time.
//!
//! # Halves
//!
//! A thread has a shared half ([`ThreadHandle`], `Arc` inside: id, name, message ring,
//! host reactor, counters) that any OS thread may hold and send to, and a local half
//! ([`Thread`]: pollers, interrupts, channels) that only the hosting reactor touches. The
//! local half moves between reactors inside an event; the event ring's release/acquire
//! pair orders the old reactor's last use before the new one's first, which is also what
//! makes the message ring's single-consumer contract hold across moves.
//!
//! While a reactor runs a thread's messages, pollers or interrupt handlers, that thread is
//! the *current* thread of the OS thread (a thread-local pointer, set for the duration of
//! the call): [`current`], [`crate::poller::register`], [`crate::interrupt::register`],
//! [`exit`] and the I/O channel calls act on it.
//!
//! # Lifecycle
//!
//! Running → Exiting ([`exit`], on the thread) → Exited. An exiting thread keeps running
//! its messages and pollers; the reactor destroys it once it has no poller, interrupt,
//! channel or queued message left, or when the exit timeout passes (then whatever is left
//! is dropped, channel destroy callbacks included, on the thread). Messages sent to an
//! exited thread are refused and handed back; a message that slips in during the exit is
//! dropped when the last handle goes (every message runs or is dropped exactly once).

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::intr_set::{self, IntrSet};
use crate::msg::{Msg, MsgRing};
use crate::poller_set::{PollStatus, PollerSet};

/// `host` before the first adoption.
const NO_HOST: usize = usize::MAX;

const RUNNING: u8 = 0;
const EXITING: u8 = 1;
const EXITED: u8 = 2;

/// A per-thread I/O channel as the thread stores it (type-erased; see `io_channel`).
pub(crate) trait ChannelEntry: Send {
    /// The device's id.
    fn device_id(&self) -> u64;
    /// Users holding it.
    fn refs(&self) -> usize;
    /// Run the device's destroy callback (on the owning thread) and free the channel.
    fn destroy(self: Box<Self>);
    /// The typed context, for `io_channel` to downcast.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// The registry of every live thread of one framework instance.
pub(crate) struct Registry {
    pub(crate) hub: Arc<Hub>,
    threads: Mutex<Vec<ThreadHandle>>,
    next_id: AtomicU64,
    rr: AtomicUsize,
    ring_size: u32,
    /// TSC ticks an exiting thread may take before its leftovers are dropped.
    pub(crate) exit_timeout_tsc: u64,
    /// Refuse new threads.
    pub(crate) closed: AtomicBool,
    /// The EAL the framework runs on (DMA memory, devices).
    pub(crate) eal: eal::Eal,
}

impl Registry {
    pub(crate) fn new(
        hub: Arc<Hub>,
        ring_size: u32,
        exit_timeout_tsc: u64,
        eal: eal::Eal,
    ) -> Registry {
        Registry {
            eal,
            hub,
            threads: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            rr: AtomicUsize::new(0),
            ring_size,
            exit_timeout_tsc,
            closed: AtomicBool::new(false),
        }
    }

    /// Every live thread, in creation order.
    pub(crate) fn threads(&self) -> Vec<ThreadHandle> {
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn remove(&self, id: u64) {
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|t| t.id() != id);
    }

    /// Reactor numbers a cpumask allows (empty mask = all).
    pub(crate) fn allowed(&self, cpumask: &[u32]) -> Vec<usize> {
        (0..self.hub.ports.len())
            .filter(|&i| cpumask.is_empty() || cpumask.contains(&self.hub.ports[i].lcore))
            .collect()
    }

    /// Create a thread and place it on a reactor its cpumask allows (round robin).
    pub(crate) fn spawn(self: &Arc<Self>, name: &str, cpumask: &[u32]) -> Result<ThreadHandle> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Stopping("create a thread"));
        }
        let allowed = self.allowed(cpumask);
        if allowed.is_empty() {
            return Err(Error::EmptyCpumask(name.to_string()));
        }
        let idx = allowed[self.rr.fetch_add(1, Ordering::Relaxed) % allowed.len()];
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let shared = ThreadHandle(Arc::new(ThreadShared {
            id,
            name: name.to_string(),
            ring: MsgRing::new(&format!("th{id}"), self.ring_size)?,
            overflow: Mutex::new(Vec::new()),
            has_overflow: AtomicBool::new(false),
            host: AtomicUsize::new(NO_HOST),
            state: AtomicU8::new(RUNNING),
            cpumask: cpumask.to_vec(),
            registry: self.clone(),
            busy_tsc: AtomicU64::new(0),
            idle_tsc: AtomicU64::new(0),
        }));
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(shared.clone());
        let t = Thread(Box::new(ThreadInner {
            shared: shared.clone(),
            pollers: RefCell::new(PollerSet::default()),
            intrs: RefCell::new(IntrSet::default()),
            channels: RefCell::new(Vec::new()),
            host_epoll: Cell::new(-1),
            exit_since: Cell::new(None),
            last_tsc: Cell::new(0),
        }));
        deliver(&self.hub, t, idx);
        Ok(shared)
    }
}

thread_local! {
    /// Threads delivered to the reactor of this OS thread, waiting to be adopted.
    static ARRIVALS: RefCell<Vec<Thread>> = const { RefCell::new(Vec::new()) };
    /// The thread being run on this OS thread (null outside a thread's callbacks).
    static CURRENT: Cell<*const ThreadInner> = const { Cell::new(std::ptr::null()) };
}

/// Send `t` to reactor `idx` (it adopts it in its next iteration).
pub(crate) fn deliver(hub: &Hub, t: Thread, idx: usize) {
    // M1: SeqCst so that a sender whose W1 comes after the new host's sleep fence W2
    // reads the new host (`ThreadHandle::send_boxed`; the adopt event orders M1
    // before W2).
    t.0.shared.0.host.store(idx, Ordering::SeqCst);
    hub.send_event_wait(
        idx,
        Box::new(move || ARRIVALS.with(|a| a.borrow_mut().push(t))),
    );
}

/// Threads delivered to this reactor since the last call.
pub(crate) fn take_arrivals() -> Vec<Thread> {
    ARRIVALS.with(|a| std::mem::take(&mut *a.borrow_mut()))
}

/// The shared half of a thread.
pub struct ThreadShared {
    id: u64,
    name: String,
    ring: MsgRing,
    /// Control-path messages that found the ring full (never lost, order not kept).
    overflow: Mutex<Vec<Msg>>,
    has_overflow: AtomicBool,
    host: AtomicUsize,
    state: AtomicU8,
    cpumask: Vec<u32>,
    registry: Arc<Registry>,
    busy_tsc: AtomicU64,
    idle_tsc: AtomicU64,
}

/// A handle to a framework thread: send it messages, read its counters. Cheap to clone,
/// `Send + Sync`, usable from any OS thread.
#[derive(Clone)]
pub struct ThreadHandle(Arc<ThreadShared>);

impl std::fmt::Debug for ThreadHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadHandle")
            .field("id", &self.0.id)
            .field("name", &self.0.name)
            .finish()
    }
}

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFailure {
    /// The thread has exited.
    Exited,
    /// Its ring is full (try again later).
    Full,
}

/// A message that could not be sent, handed back to the sender.
pub struct SendError {
    /// Why.
    pub reason: SendFailure,
    /// The message, not run; dropping it runs its destructor.
    pub msg: Msg,
}

impl std::fmt::Debug for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SendError({:?})", self.reason)
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reason {
            SendFailure::Exited => f.write_str("failed to send a message: the thread has exited"),
            SendFailure::Full => f.write_str("failed to send a message: its ring is full"),
        }
    }
}

impl std::error::Error for SendError {}

/// A thread's counters.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ThreadStats {
    /// Thread id.
    pub id: u64,
    /// Thread name.
    pub name: String,
    /// Lcore of the reactor running it (`None` while it moves or before it starts).
    pub lcore: Option<u32>,
    /// TSC ticks spent in iterations that did work.
    pub busy: u64,
    /// TSC ticks spent in iterations that found nothing to do.
    pub idle: u64,
    /// Allowed lcores (empty = any).
    pub cpumask: Vec<u32>,
}

impl ThreadHandle {
    /// Thread id (unique in its framework instance, from 1).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// Thread name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Allowed lcores (empty = any).
    pub fn cpumask(&self) -> &[u32] {
        &self.0.cpumask
    }

    /// Whether the thread has been destroyed.
    pub fn is_exited(&self) -> bool {
        self.0.state.load(Ordering::Acquire) == EXITED
    }

    /// Whether two handles name the same thread.
    pub fn same(&self, other: &ThreadHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Reactor number hosting it now (`None` while in transit or not yet placed).
    pub(crate) fn host(&self) -> Option<usize> {
        let h = self.0.host.load(Ordering::Acquire);
        (h != NO_HOST).then_some(h)
    }

    /// Lcore of the reactor hosting it now.
    pub fn lcore(&self) -> Option<u32> {
        self.host().map(|h| self.0.registry.hub.ports[h].lcore)
    }

    /// Counters.
    pub fn stats(&self) -> ThreadStats {
        ThreadStats {
            id: self.0.id,
            name: self.0.name.clone(),
            lcore: self.lcore(),
            busy: self.0.busy_tsc.load(Ordering::Relaxed),
            idle: self.0.idle_tsc.load(Ordering::Relaxed),
            cpumask: self.0.cpumask.clone(),
        }
    }

    /// Run `f` on the thread. Messages from one sender run in the order sent. No lock,
    /// no allocation beyond the closure's box. A full ring or an exited thread hands the
    /// message back.
    #[inline]
    pub fn send_msg<F: FnOnce() + Send + 'static>(
        &self,
        f: F,
    ) -> std::result::Result<(), SendError> {
        self.send_boxed(Box::new(f))
    }

    /// [`ThreadHandle::send_msg`] for an already boxed message.
    #[inline]
    pub fn send_boxed(&self, m: Msg) -> std::result::Result<(), SendError> {
        let s = &*self.0;
        if s.state.load(Ordering::Acquire) == EXITED {
            return Err(SendError {
                reason: SendFailure::Exited,
                msg: m,
            });
        }
        if let Err(m) = s.ring.push(m) {
            return Err(SendError {
                reason: SendFailure::Full,
                msg: m,
            });
        }
        self.kick_host();
        Ok(())
    }

    /// Control-path send: a full ring does not fail (the message waits in an overflow
    /// list, so order with other messages is not kept). Refused only if exited.
    pub(crate) fn send_reliable(&self, m: Msg) -> std::result::Result<(), SendError> {
        match self.send_boxed(m) {
            Err(SendError {
                reason: SendFailure::Full,
                msg,
            }) => {
                self.0
                    .overflow
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(msg);
                self.0.has_overflow.store(true, Ordering::Release);
                // W1 for this path: the overflow flag is a Release store, not the
                // ring's SeqCst publication (see `wake`).
                fence(Ordering::SeqCst);
                self.kick_host();
                Ok(())
            }
            r => r,
        }
    }

    #[inline]
    fn kick_host(&self) {
        // After W1 (see `wake`: the push's SeqCst publication, or the fence of the
        // overflow path), the host and sleep-flag loads, both SeqCst. Pairs with the host
        // reactor's W2 and, through M1, with moves: if this load reads a host older than
        // M1, it precedes M1 in S (both SeqCst), M1 strongly happens before the new
        // host's W2 (the adopt event), so W1 precedes that W2 and the new host's check
        // after W2 sees the message.
        let h = self.0.host.load(Ordering::SeqCst);
        if h != NO_HOST {
            self.0.registry.hub.ports[h].wake.kick();
        }
    }

    /// Ask the thread to exit (it runs [`exit`] on itself).
    pub fn request_exit(&self) {
        let _ = self.send_reliable(Box::new(exit_quiet));
    }
}

fn exit_quiet() {
    let _ = exit();
}

/// The local half of a thread, owned by the reactor that runs it.
pub(crate) struct Thread(Box<ThreadInner>);

pub(crate) struct ThreadInner {
    pub(crate) shared: ThreadHandle,
    pub(crate) pollers: RefCell<PollerSet>,
    pub(crate) intrs: RefCell<IntrSet>,
    pub(crate) channels: RefCell<Vec<Box<dyn ChannelEntry>>>,
    /// Epoll set of the hosting reactor (-1 in transit).
    pub(crate) host_epoll: Cell<RawFd>,
    exit_since: Cell<Option<u64>>,
    /// TSC at the start of the current poll (or interrupt run): see [`last_tsc`].
    last_tsc: Cell<u64>,
}

/// Restores the previous current thread when dropped.
struct Enter(*const ThreadInner);

impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

fn enter(t: &ThreadInner) -> Enter {
    Enter(CURRENT.with(|c| c.replace(t as *const ThreadInner)))
}

/// Run `f` with the current thread's local half, if there is one.
pub(crate) fn with_current<R>(f: impl FnOnce(&ThreadInner) -> R) -> Option<R> {
    let p = CURRENT.with(|c| c.get());
    if p.is_null() {
        return None;
    }
    // SAFETY: CURRENT is non-null only while an `Enter` guard lives inside a `&self`
    // method of the `Thread` it points to (poll, run_interrupt, destroy), on this OS
    // thread; the thread cannot be moved or freed until that call returns.
    Some(f(unsafe { &*p }))
}

/// The TSC at the start of the current thread's poll (or interrupt run), SPDK's
/// `spdk_thread_get_last_tsc`: a cached "now" for per-I/O timestamps, which would
/// otherwise pay a TSC read each (tens of nanoseconds, more under a hypervisor). It
/// lags the true time by at most the work of one poll. Off any framework thread it is
/// a fresh TSC read.
#[inline]
pub fn last_tsc() -> u64 {
    with_current(|t| t.last_tsc.get()).unwrap_or_else(eal::timer::rdtsc)
}

/// Whether `h` is the framework thread running on this OS thread now (a check of one
/// thread-local pointer; no reference is taken).
#[inline]
pub fn is_current(h: &ThreadHandle) -> bool {
    with_current(|t| t.shared.same(h)).unwrap_or(false)
}

/// [`last_tsc`] if `h` is the framework thread running on this OS thread now, `None`
/// otherwise: the thread check and the cached time of a per-I/O path in one
/// thread-local read.
#[inline]
pub fn last_tsc_on(h: &ThreadHandle) -> Option<u64> {
    with_current(|t| t.shared.same(h).then(|| t.last_tsc.get())).flatten()
}

/// The current framework thread (inside a message, poller or interrupt handler).
pub fn current() -> Option<ThreadHandle> {
    with_current(|t| t.shared.clone())
}

/// The EAL the current thread's framework runs on (inside a message, poller or
/// interrupt handler): what a module needs for DMA memory or to open a device. A
/// process may run several frameworks, each on its own EAL, so this is per framework
/// rather than global.
pub fn current_eal() -> Option<eal::Eal> {
    with_current(|t| t.shared.0.registry.eal.clone())
}

/// Begin exiting the current thread (SPDK's `spdk_thread_exit`): it is destroyed once
/// its pollers, interrupts and channels are gone and its queue is empty.
pub fn exit() -> Result<()> {
    with_current(|t| {
        let s = &t.shared.0;
        let _ = s
            .state
            .compare_exchange(RUNNING, EXITING, Ordering::AcqRel, Ordering::Acquire);
        if t.exit_since.get().is_none() {
            t.exit_since.set(Some(eal::timer::rdtsc()));
        }
    })
    .ok_or(Error::NotOnThread {
        what: "exit a thread",
    })
}

/// Create a thread from inside the framework; `cpumask` lists the lcores it may run on
/// (empty = any).
pub fn spawn(name: &str, cpumask: &[u32]) -> Result<ThreadHandle> {
    let reg = with_current(|t| t.shared.0.registry.clone()).ok_or(Error::NotOnThread {
        what: "create a thread",
    })?;
    reg.spawn(name, cpumask)
}

/// Every live thread of the current thread's framework.
pub fn threads() -> Result<Vec<ThreadHandle>> {
    with_current(|t| t.shared.0.registry.threads()).ok_or(Error::NotOnThread {
        what: "list threads",
    })
}

/// Run `f` on every live thread, one after the other, then `done` on the calling thread
/// (SPDK's `spdk_for_each_thread`). Threads that exit meanwhile are skipped.
pub fn for_each_thread<F, D>(f: F, done: D) -> Result<()>
where
    F: Fn() + Send + Sync + 'static,
    D: FnOnce() + Send + 'static,
{
    let origin = current().ok_or(Error::NotOnThread {
        what: "iterate over threads",
    })?;
    let list: Arc<[ThreadHandle]> = origin.0.registry.threads().into();
    chain(list, 0, Arc::new(f), origin, Box::new(done));
    Ok(())
}

fn chain(
    list: Arc<[ThreadHandle]>,
    mut i: usize,
    f: Arc<dyn Fn() + Send + Sync>,
    origin: ThreadHandle,
    mut done: Msg,
) {
    while i < list.len() {
        let t = list[i].clone();
        let (l, g, o) = (list.clone(), f.clone(), origin.clone());
        // `done` travels with the chain; if the send is refused it comes back inside
        // the message, which is then unpacked and the next thread tried.
        let slot = Arc::new(Mutex::new(Some(done)));
        let slot2 = slot.clone();
        let m: Msg = Box::new(move || {
            g();
            if let Some(d) = slot2.lock().unwrap_or_else(|e| e.into_inner()).take() {
                chain(l, i + 1, g, o, d);
            }
        });
        match t.send_reliable(m) {
            Ok(()) => return,
            Err(e) => {
                drop(e.msg);
                done = match slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    Some(d) => d,
                    None => return,
                };
                i += 1;
            }
        }
    }
    if let Err(e) = origin.send_reliable(done) {
        // The caller exited: run nothing, but drop the callback on this thread.
        drop(e.msg);
    }
}

/// What one [`Thread::poll`] did.
pub(crate) struct PollResult {
    pub(crate) busy: bool,
}

impl Thread {
    pub(crate) fn handle(&self) -> &ThreadHandle {
        &self.0.shared
    }

    pub(crate) fn id(&self) -> u64 {
        self.0.shared.0.id
    }

    /// One pass: messages, active pollers, due timed pollers. `now` is the TSC at the
    /// start of the reactor iteration.
    #[inline]
    pub(crate) fn poll(&self, now: u64) -> PollResult {
        let t = &*self.0;
        let _g = enter(t);
        t.last_tsc.set(now);
        let s = &t.shared.0;
        // SAFETY: only the reactor hosting this thread calls `poll`, and the thread is
        // hosted by one reactor at a time (moves are ordered by events).
        let mut busy = unsafe { s.ring.run_burst() } > 0;
        if s.has_overflow.load(Ordering::Acquire) {
            s.has_overflow.store(false, Ordering::Relaxed);
            let more = std::mem::take(&mut *s.overflow.lock().unwrap_or_else(|e| e.into_inner()));
            busy |= !more.is_empty();
            for m in more {
                m();
            }
        }
        let n = t.pollers.borrow().active_len();
        for i in 0..n {
            let taken = t.pollers.borrow_mut().take_active(i);
            if let Some((slot, gen, mut f)) = taken {
                let st = f();
                busy |= st == PollStatus::Busy;
                let dropped = t.pollers.borrow_mut().put_back(slot, gen, f, st, now);
                drop(dropped);
            }
        }
        if n > 0 {
            t.pollers.borrow_mut().compact();
        }
        // A TSC read costs tens of nanoseconds (more under a hypervisor): only when a
        // timed poller may be due.
        if !t.pollers.borrow().has_timers() {
            return PollResult { busy };
        }
        let now = eal::timer::rdtsc();
        t.last_tsc.set(now);
        loop {
            let taken = t.pollers.borrow_mut().take_due(now);
            let Some((slot, gen, mut f)) = taken else {
                break;
            };
            let started = eal::timer::rdtsc();
            let st = f();
            busy |= st == PollStatus::Busy;
            let dropped = t.pollers.borrow_mut().put_back(slot, gen, f, st, started);
            drop(dropped);
        }
        PollResult { busy }
    }

    /// Add the thread's interrupt descriptors to `epoll` (on adoption).
    pub(crate) fn attach(&self, epoll: RawFd) {
        self.0.host_epoll.set(epoll);
        for (fd, tok) in self.0.intrs.borrow().fds(self.id()) {
            if let Err(e) = crate::sys::epoll_add(epoll, fd, tok) {
                eal::log_err!("thread {}: {e}", self.0.shared.name());
            }
        }
    }

    /// Remove the thread's interrupt descriptors from its reactor's epoll (before a move).
    pub(crate) fn detach(&self) {
        let epoll = self.0.host_epoll.replace(-1);
        if epoll < 0 {
            return;
        }
        for (fd, _) in self.0.intrs.borrow().fds(self.id()) {
            let _ = crate::sys::epoll_del(epoll, fd);
        }
    }

    /// Run interrupt `slot`'s handler (its descriptor is ready); `now` is the TSC
    /// just before.
    pub(crate) fn run_interrupt(&self, slot: u32, now: u64) -> bool {
        let t = &*self.0;
        let _g = enter(t);
        t.last_tsc.set(now);
        let taken = {
            let mut intrs = t.intrs.borrow_mut();
            match intrs.slots.get_mut(slot as usize) {
                Some(Some(e)) if !e.dead => e.f.take().map(|f| (e.gen, f)),
                _ => None,
            }
        };
        let Some((gen, mut f)) = taken else {
            return false;
        };
        let st = f();
        let dropped = {
            let mut intrs = t.intrs.borrow_mut();
            match intrs.slots.get_mut(slot as usize) {
                Some(Some(e)) if e.gen == gen && !e.dead => {
                    e.f = Some(f);
                    None
                }
                Some(Some(e)) if e.gen == gen => {
                    // Unregistered while running (its descriptor already left epoll).
                    intrs.remove(slot);
                    Some(f)
                }
                _ => Some(f),
            }
        };
        drop(dropped);
        st == PollStatus::Busy
    }

    /// The earliest timed-poller deadline.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.0.pollers.borrow_mut().next_deadline()
    }

    /// Whether the reactor may sleep as far as this thread is concerned: nothing queued,
    /// no running keep-awake poller.
    pub(crate) fn may_sleep(&self) -> bool {
        let s = &self.0.shared.0;
        s.ring.is_empty()
            && !s.has_overflow.load(Ordering::Acquire)
            && !self.0.pollers.borrow().keeps_awake()
    }

    /// Whether active pollers exist (they run again only after a wake-up while asleep).
    pub(crate) fn has_active_pollers(&self) -> bool {
        self.0.pollers.borrow().has_running_active()
    }

    pub(crate) fn add_time(&self, busy: bool, ticks: u64) {
        let s = &self.0.shared.0;
        // Single writer: only the hosting reactor updates the counters.
        let c = if busy { &s.busy_tsc } else { &s.idle_tsc };
        c.store(
            c.load(Ordering::Relaxed).wrapping_add(ticks),
            Ordering::Relaxed,
        );
    }

    /// Whether an exiting thread is done (or overdue, `now` past its timeout).
    pub(crate) fn ready_to_destroy(&self, now: u64) -> Option<bool> {
        let t = &*self.0;
        let since = t.exit_since.get()?;
        let s = &t.shared.0;
        let clean = t.pollers.borrow().len() == 0
            && t.intrs.borrow().len() == 0
            && t.channels.borrow().is_empty()
            && s.ring.is_empty()
            && !s.has_overflow.load(Ordering::Acquire);
        if clean {
            return Some(false);
        }
        let overdue = now.saturating_sub(since) > s.registry.exit_timeout_tsc;
        overdue.then_some(true)
    }

    /// Whether the thread has started exiting.
    pub(crate) fn exiting(&self) -> bool {
        self.0.exit_since.get().is_some()
    }

    /// Destroy the thread: drop what is left (running channel destroy callbacks on it),
    /// mark it exited, drop queued messages, leave the registry.
    pub(crate) fn destroy(self, forced: bool) {
        let t = &*self.0;
        let s = &t.shared.0;
        {
            let _g = enter(t);
            if forced {
                eal::log_warn!(
                    "thread '{}' did not finish exiting in time: dropping {} poller(s), {} interrupt(s), {} channel(s), {} message(s)",
                    s.name,
                    t.pollers.borrow().len(),
                    t.intrs.borrow().len(),
                    t.channels.borrow().len(),
                    s.ring.len()
                );
            }
            self.detach();
            let pollers = t.pollers.borrow_mut().drain();
            drop(pollers);
            let intrs = std::mem::take(&mut *t.intrs.borrow_mut());
            drop(intrs);
            loop {
                let ch = t.channels.borrow_mut().pop();
                let Some(ch) = ch else { break };
                ch.destroy();
            }
        }
        s.state.store(EXITED, Ordering::Release);
        s.host.store(NO_HOST, Ordering::Release);
        // SAFETY: the hosting reactor is the ring's only consumer; it is here.
        unsafe { s.ring.drop_all() };
        let more = std::mem::take(&mut *s.overflow.lock().unwrap_or_else(|e| e.into_inner()));
        drop(more);
        s.registry.remove(s.id);
    }
}

/// The token's thread id (interrupt dispatch).
pub(crate) fn token_thread(token: u64) -> (u64, u32) {
    intr_set::untoken(token)
}
