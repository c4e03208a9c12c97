//! One virtqueue served by a reactor poller (SPDK's vhost poll groups, on our
//! framework): the poller takes requests from the avail ring, maps each onto bdev I/O
//! with the guest's buffers as its scatter-gather list, and the bdev completion (on the
//! same framework thread) writes the status byte and puts the request on the used ring.
//!
//! # Notifications and idle mode
//!
//! While requests keep coming the queue runs with guest notifications (kicks) off, so
//! the guest never exits to signal us. Once the avail ring has been empty for the
//! notify window ([`set_notify_window_us`], default [`DEFAULT_NOTIFY_WINDOW_US`]: at
//! once, as QEMU's own back ends do) it turns them back on (virtio-queue's
//! `enable_notification`, which re-checks the avail index after the flag store so no
//! request slips between) and reports idle; the kick eventfd is a framework interrupt,
//! so a reactor that went to sleep (the framework's interrupt mode) wakes on the next
//! kick. Until then the poller reports busy: a reactor must not sleep while the guest
//! is told not to kick (whatever the reactor's own idle time before sleeping; otherwise
//! requests wait for an unrelated wake-up, about 100 ms).
//!
//! # Interrupts to the guest
//!
//! Completions only put their heads on the used ring; the queue's poller then asks
//! once per poll whether the guest wants an interrupt (EVENT_IDX's `used_event`, or
//! always without it) and writes the call eventfd at most once, so a batch of
//! completions costs one interrupt. The poller reports busy while one is pending, so
//! the reactor cannot sleep before sending it. Kicks read and calls written are
//! counted per queue ([`QueueCounters`]).
//!
//! # Guest memory
//!
//! Every request holds an `Arc` of the memory mapping its buffers point into, so a new
//! memory table from the front end never unmaps memory a bdev is still reading or
//! writing.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bdev::{BdevIoChannel, Descriptor, IoStatus, IoVec};
use framework::interrupt::{self, Interrupt};
use framework::poller::{self, Poller};
use framework::PollStatus;
use virtio_queue::{Queue, QueueT};

use crate::chain;
use crate::inflight::InflightQueue;
use crate::memory::GuestMem;
use crate::request::{self, BlkReq, Geometry, Op, Parsed};
use crate::spec::{status, ID_BYTES};
use crate::sys;

/// Most requests taken from the ring in one poll.
const BATCH: usize = 32;
/// Default notify window: guest notifications go back on as soon as the avail ring is
/// found empty.
pub const DEFAULT_NOTIFY_WINDOW_US: u64 = 0;
/// Largest notify window [`set_notify_window_us`] takes (microseconds).
pub const MAX_NOTIFY_WINDOW_US: u64 = 1_000_000;

static NOTIFY_WINDOW_US: AtomicU64 = AtomicU64::new(DEFAULT_NOTIFY_WINDOW_US);

/// Set how long (microseconds) a queue whose avail ring is empty keeps polling with
/// guest notifications off before it turns them on (and lets its reactor sleep);
/// queues started afterwards take it. Values above [`MAX_NOTIFY_WINDOW_US`] are
/// refused.
pub fn set_notify_window_us(us: u64) -> Result<(), String> {
    if us > MAX_NOTIFY_WINDOW_US {
        return Err(format!(
            "notify window {us} us: at most {MAX_NOTIFY_WINDOW_US}"
        ));
    }
    NOTIFY_WINDOW_US.store(us, Ordering::Relaxed);
    Ok(())
}

/// The notify window new queues take (microseconds).
pub fn notify_window_us() -> u64 {
    NOTIFY_WINDOW_US.load(Ordering::Relaxed)
}

/// What a queue counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Queue index.
    pub index: u16,
    /// Requests completed.
    pub completed: u64,
    /// Kick eventfd reads that found a kick.
    pub kicks: u64,
    /// Call eventfd writes (guest interrupts).
    pub calls: u64,
}

/// What every queue of a controller shares: the bdev, the thread's channel, geometry.
pub struct Ctx {
    /// The open bdev.
    pub desc: Descriptor,
    /// The controller thread's channel (used only on that thread; the mutex makes
    /// the context shareable with the pollers and is never contended).
    pub ch: Mutex<BdevIoChannel>,
    /// Block size and read-only flag (its `num_blocks` is the size at open; the
    /// current one is [`Ctx::num_blocks`]).
    pub geo: Geometry,
    /// The bdev's size in blocks now (changed by a resize event).
    pub num_blocks: AtomicU64,
    /// `GET_ID` answer.
    pub id: [u8; ID_BYTES],
    /// Controller name (logs).
    pub name: String,
}

impl Ctx {
    /// The geometry for range checks and the config space, with the current size.
    pub fn geometry(&self) -> Geometry {
        Geometry {
            // Relaxed: requests parsed just before a resize see the old size, as a
            // guest's requests racing a real disk's resize would.
            num_blocks: self.num_blocks.load(Ordering::Relaxed),
            ..self.geo
        }
    }
}

/// A queue's state, shared by its poller, its kick handler and its completions (all on
/// the controller's thread; the mutex is never contended).
pub struct VqState {
    index: u16,
    queue: Queue,
    mem: Arc<GuestMem>,
    call: Option<Arc<File>>,
    inflight: Option<InflightQueue>,
    resubmit: VecDeque<u16>,
    counter: u64,
    outstanding: u32,
    running: bool,
    notify_on: bool,
    idle_since: Option<u64>,
    idle_tsc: u64,
    /// Heads put on the used ring since the guest was last asked about an interrupt.
    call_pending: bool,
    /// Requests refused as malformed.
    pub bad: u64,
    /// Requests completed.
    pub completed: u64,
    /// Kicks read.
    pub kicks: u64,
    /// Calls written.
    pub calls: u64,
}

impl VqState {
    /// The counters.
    pub fn counters(&self) -> QueueCounters {
        QueueCounters {
            index: self.index,
            completed: self.completed,
            kicks: self.kicks,
            calls: self.calls,
        }
    }
}

/// Shared handle.
pub type SharedVq = Arc<Mutex<VqState>>;

fn lock(v: &SharedVq) -> MutexGuard<'_, VqState> {
    v.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running queue: its state, poller and kick interrupt.
pub struct RunningVq {
    /// The state.
    pub state: SharedVq,
    poller: Poller,
    intr: Option<Interrupt>,
    _kick: Option<Arc<File>>,
}

/// How to start a queue.
pub struct VqStart {
    /// Queue index.
    pub index: u16,
    /// Ring size.
    pub size: u16,
    /// Guest addresses of the descriptor table, avail and used rings.
    pub desc: u64,
    /// Avail ring.
    pub avail: u64,
    /// Used ring.
    pub used: u64,
    /// First avail index to take (`SET_VRING_BASE`).
    pub base: u16,
    /// EVENT_IDX negotiated.
    pub event_idx: bool,
    /// Kick eventfd.
    pub kick: Option<Arc<File>>,
    /// Call eventfd.
    pub call: Option<Arc<File>>,
    /// Inflight tracking.
    pub inflight: Option<InflightQueue>,
}

/// Start serving a queue on the current (controller) thread.
pub fn start(ctx: &Arc<Ctx>, mem: Arc<GuestMem>, s: VqStart) -> Result<RunningVq, String> {
    let mut q = Queue::new(s.size.max(1)).map_err(|e| format!("queue size {}: {e}", s.size))?;
    q.set_size(s.size);
    q.set_desc_table_address(Some(s.desc as u32), Some((s.desc >> 32) as u32));
    q.set_avail_ring_address(Some(s.avail as u32), Some((s.avail >> 32) as u32));
    q.set_used_ring_address(Some(s.used as u32), Some((s.used >> 32) as u32));
    q.set_event_idx(s.event_idx);
    q.set_ready(true);
    if !q.is_valid(mem.mmap()) {
        return Err(format!(
            "queue {} (size {}, desc {:#x}, avail {:#x}, used {:#x}) is not inside guest memory",
            s.index, s.size, s.desc, s.avail, s.used
        ));
    }
    let used = q
        .used_idx(mem.mmap(), std::sync::atomic::Ordering::Acquire)
        .map_err(|e| format!("queue {}: reading the used index: {e}", s.index))?
        .0;
    q.set_next_used(used);
    let mut resubmit = VecDeque::new();
    let mut counter = 0;
    let mut base = s.base;
    if let Some(i) = &s.inflight {
        let (heads, next) = i.recover(used);
        // Everything taken is either on the used ring or in flight (libvhost-user's
        // rule): resume the avail ring after both.
        base = used.wrapping_add(heads.len() as u16);
        counter = next;
        if !heads.is_empty() {
            eal::log_notice!(
                "vhost: queue {} resubmits {} request(s) in flight before the restart",
                s.index,
                heads.len()
            );
        }
        resubmit.extend(heads);
    }
    q.set_next_avail(base);
    let hz = eal::timer::tsc_hz().max(1);
    let state = Arc::new(Mutex::new(VqState {
        index: s.index,
        queue: q,
        mem,
        call: s.call,
        inflight: s.inflight,
        outstanding: resubmit.len() as u32,
        resubmit,
        counter,
        running: true,
        notify_on: true,
        idle_since: None,
        idle_tsc: hz * notify_window_us() / 1_000_000,
        call_pending: false,
        bad: 0,
        completed: 0,
        kicks: 0,
        calls: 0,
    }));
    let (c1, s1) = (ctx.clone(), state.clone());
    let name = format!("vhost_{}_vq{}", ctx.name, s.index);
    // Without a kick descriptor (the front end asked for a polled ring) nothing would
    // wake a sleeping reactor: the poller then keeps it awake.
    let opts = poller::PollerOpts {
        keep_awake: s.kick.is_none(),
    };
    let poller = poller::register_with(&name, 0, opts, move || poll(&s1, &c1))
        .map_err(|e| format!("register the poller of queue {}: {e}", s.index))?;
    let intr = match &s.kick {
        Some(k) => {
            let (c2, s2, k2) = (ctx.clone(), state.clone(), k.clone());
            if let Err(e) = sys::set_nonblocking(&**k) {
                let _ = poller.unregister();
                return Err(e.to_string());
            }
            match interrupt::register(&name, std::os::fd::AsRawFd::as_raw_fd(&**k), move || {
                if sys::eventfd_drain(&k2) {
                    lock(&s2).kicks += 1;
                }
                poll(&s2, &c2)
            }) {
                Ok(i) => Some(i),
                Err(e) => {
                    let _ = poller.unregister();
                    return Err(format!("watch the kick of queue {}: {e}", s.index));
                }
            }
        }
        None => None,
    };
    Ok(RunningVq {
        state,
        poller,
        intr,
        _kick: s.kick,
    })
}

impl RunningVq {
    /// Stop taking requests (outstanding ones still complete) and return the next
    /// avail index (`GET_VRING_BASE`).
    pub fn stop(self) -> u16 {
        let _ = self.poller.unregister();
        if let Some(i) = self.intr {
            let _ = i.unregister();
        }
        let mut s = lock(&self.state);
        s.running = false;
        s.queue.next_avail()
    }
}

/// One poll of a queue.
fn poll(vq: &SharedVq, ctx: &Arc<Ctx>) -> PollStatus {
    let mut work: Vec<(u16, BlkReq, Arc<GuestMem>)> = Vec::new();
    {
        let mut s = lock(vq);
        if !s.running {
            return PollStatus::Idle;
        }
        let signalled = flush_call(&mut s);
        let mem = s.mem.clone();
        let mut popped = 0;
        while popped < BATCH {
            let head = if let Some(h) = s.resubmit.pop_front() {
                h
            } else {
                let Some(c) = s.queue.pop_descriptor_chain(mem.mmap()) else {
                    break;
                };
                let h = c.head_index();
                s.counter += 1;
                let n = s.counter;
                if let Some(i) = &s.inflight {
                    i.taken(h, n);
                }
                s.outstanding += 1;
                h
            };
            popped += 1;
            eal::log_debug!("vhost {}: queue {}: head {head}", ctx.name, s.index);
            let parsed = match chain::walk(&mem, s.queue.desc_table(), s.queue.size(), head) {
                Ok(c) => request::parse(&c, ctx.geometry()),
                Err(why) => Parsed::Broken(why),
            };
            match parsed {
                Parsed::Ok(r) => work.push((head, r, mem.clone())),
                Parsed::Fail { status, code, why } => {
                    s.bad += 1;
                    log_bad(&ctx.name, s.index, &why);
                    // SAFETY: `status` is the last byte of a writable buffer translated
                    // from the mapping `mem` holds.
                    unsafe { std::ptr::write_volatile(status, code) };
                    complete_locked(&mut s, head, 1);
                }
                Parsed::Broken(why) => {
                    s.bad += 1;
                    log_bad(&ctx.name, s.index, &why);
                    complete_locked(&mut s, head, 0);
                }
            }
        }
        if popped == 0 {
            return idle(&mut s, &mem, signalled);
        }
        s.idle_since = None;
        if s.notify_on {
            let _ = s.queue.disable_notification(mem.mmap());
            s.notify_on = false;
        }
    }
    for (head, r, mem) in work {
        submit(ctx, vq, head, r, mem);
    }
    // Requests that completed at submission (malformed ones, GET_ID, refusals, bdevs
    // that complete inline) interrupt the guest now.
    flush_call(&mut lock(vq));
    PollStatus::Busy
}

/// A poll that found the avail ring empty: turn guest notifications on once the notify
/// window has passed (keeping the reactor polling until then).
fn idle(s: &mut VqState, mem: &GuestMem, signalled: bool) -> PollStatus {
    let busy = if signalled {
        PollStatus::Busy
    } else {
        PollStatus::Idle
    };
    if s.notify_on {
        return busy;
    }
    let now = eal::timer::rdtsc();
    let since = *s.idle_since.get_or_insert(now);
    if s.idle_tsc > 0 && now.wrapping_sub(since) < s.idle_tsc {
        // Kicks are off: keep the reactor polling.
        return PollStatus::Busy;
    }
    let more = s.queue.enable_notification(mem.mmap()).unwrap_or(true);
    s.notify_on = true;
    if more {
        PollStatus::Busy
    } else {
        busy
    }
}

/// Interrupt the guest if heads went on the used ring since the last call and it wants
/// to hear (EVENT_IDX: once its `used_event` is passed); true if anything was pending.
fn flush_call(s: &mut VqState) -> bool {
    if !s.call_pending {
        return false;
    }
    s.call_pending = false;
    let mem = s.mem.clone();
    if s.queue.needs_notification(mem.mmap()).unwrap_or(true) {
        if let Some(c) = &s.call {
            match sys::eventfd_signal(c) {
                Ok(()) => s.calls += 1,
                Err(e) => eal::log_warn!("vhost: queue {}: {e}", s.index),
            }
        }
    }
    true
}

fn log_bad(ctrlr: &str, q: u16, why: &str) {
    eal::log_warn!("vhost {ctrlr}: queue {q}: bad request: {why}");
}

/// Put `head` on the used ring with `len` bytes written; the queue's next poll
/// interrupts the guest if it wants to hear ([`flush_call`]).
fn complete_locked(s: &mut VqState, head: u16, len: u32) {
    let mem = s.mem.clone();
    if let Some(i) = &s.inflight {
        i.pre_put(head);
    }
    if s.queue.add_used(mem.mmap(), head, len).is_err() {
        s.bad += 1;
    }
    if let Some(i) = &s.inflight {
        i.post_put(head, s.queue.next_used());
    }
    s.outstanding = s.outstanding.saturating_sub(1);
    s.completed += 1;
    s.call_pending = true;
    if !s.running {
        // A stopped queue has no poller left to send it.
        flush_call(s);
    }
}

/// The status byte and what completes a request, moved into the bdev callback.
struct Completion {
    vq: SharedVq,
    head: u16,
    status: *mut u8,
    written: u32,
    _mem: Arc<GuestMem>,
}

// SAFETY: `status` points into the guest mapping `_mem` keeps alive; the completion runs
// on the controller's framework thread (bdev completions run on the submitting thread).
unsafe impl Send for Completion {}

impl Completion {
    fn finish(self, code: u8) {
        eal::log_debug!("vhost: head {} done: {code}", self.head);
        // SAFETY: as on the type: a byte of a live mapping, writable by the device.
        unsafe { std::ptr::write_volatile(self.status, code) };
        let len = if code == status::OK { self.written } else { 1 };
        let mut s = lock(&self.vq);
        complete_locked(&mut s, self.head, len);
    }
}

fn code_of(st: IoStatus) -> u8 {
    if st == IoStatus::Success {
        status::OK
    } else {
        status::IOERR
    }
}

fn submit(ctx: &Arc<Ctx>, vq: &SharedVq, head: u16, r: BlkReq, mem: Arc<GuestMem>) {
    let c = Completion {
        vq: vq.clone(),
        head,
        status: r.status,
        written: r.written,
        _mem: mem,
    };
    let (data, off, n) = (r.data, r.offset_blocks, r.num_blocks);
    let op = match r.op {
        Op::GetId => {
            copy_id(&ctx.id, &data);
            c.finish(status::OK);
            return;
        }
        Op::Discard(ranges) => return multi(ctx, ranges, c, true),
        Op::WriteZeroes(ranges) => return multi(ctx, ranges, c, false),
        op => op,
    };
    let d = &ctx.desc;
    let ch = ctx.ch.lock().unwrap_or_else(|e| e.into_inner());
    let res = match op {
        // SAFETY: the iovecs point into the guest mapping the completion holds until
        // the callback runs; we do not touch them meanwhile (the guest may: that is the
        // guest's own race, as with any DMA).
        Op::Read => unsafe { d.readv(&ch, &data, off, n, move |st| c.finish(code_of(st))) },
        // SAFETY: as for reads.
        Op::Write => unsafe { d.writev(&ch, &data, off, n, move |st| c.finish(code_of(st))) },
        _ => d.flush(&ch, 0, n, move |st| c.finish(code_of(st))),
    };
    drop(ch);
    if let Err(e) = res {
        eal::log_warn!("vhost {}: request not submitted: {e}", ctx.name);
        // The closure (and the completion in it) came back with the error: dropped.
        // Answer with a fresh completion for the same head.
        fail_head(vq, head, r.status, r.written);
    }
}

/// A request the bdev refused at submission: its completion was dropped with the
/// closure, so complete the head here.
fn fail_head(vq: &SharedVq, head: u16, st: *mut u8, _written: u32) {
    let s_mem = lock(vq).mem.clone();
    Completion {
        vq: vq.clone(),
        head,
        status: st,
        written: 1,
        _mem: s_mem,
    }
    .finish(status::IOERR);
}

fn copy_id(id: &[u8; ID_BYTES], data: &[IoVec]) {
    let mut done = 0;
    for v in data {
        let n = v.len.min(ID_BYTES - done);
        // SAFETY: device-writable guest buffers of the live mapping.
        unsafe { std::ptr::copy_nonoverlapping(id.as_ptr().add(done), v.base, n) };
        done += n;
    }
}

struct Join {
    left: usize,
    code: u8,
    c: Option<Completion>,
}

fn join_done(j: &Arc<Mutex<Join>>, code: u8) {
    let mut g = j.lock().unwrap_or_else(|e| e.into_inner());
    if code != status::OK {
        g.code = code;
    }
    g.left -= 1;
    if g.left == 0 {
        let (code, c) = (g.code, g.c.take());
        drop(g);
        if let Some(c) = c {
            c.finish(code);
        }
    }
}

/// Discard or write-zeroes over several ranges: one bdev I/O each, the request completes
/// when the last does (failed if any failed).
fn multi(ctx: &Arc<Ctx>, ranges: Vec<(u64, u64)>, c: Completion, discard: bool) {
    let join = Arc::new(Mutex::new(Join {
        left: ranges.len(),
        code: status::OK,
        c: Some(c),
    }));
    for (off, n) in ranges {
        let j = join.clone();
        let cb = move |st: IoStatus| join_done(&j, code_of(st));
        let ch = ctx.ch.lock().unwrap_or_else(|e| e.into_inner());
        let r = if discard {
            ctx.desc.unmap(&ch, off, n, cb)
        } else {
            ctx.desc.write_zeroes(&ch, off, n, cb)
        };
        drop(ch);
        if let Err(e) = r {
            eal::log_warn!("vhost {}: range not submitted: {e}", ctx.name);
            join_done(&join, status::IOERR);
        }
    }
}

impl RunningVq {
    /// A new call descriptor (QEMU swaps it when the guest masks the vector).
    pub fn set_call(&self, call: Option<Arc<File>>) {
        lock(&self.state).call = call;
    }

    /// A new memory table.
    pub fn set_mem(&self, mem: Arc<GuestMem>) {
        lock(&self.state).mem = mem;
    }
}
