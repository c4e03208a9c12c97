//! Per-thread bdev channels (SPDK's `spdk_bdev_channel`): the module's channel for this
//! thread, the free list of I/O objects, the out-of-resources queue and the counters.
//!
//! # I/O objects
//!
//! Each channel keeps its own free list of boxed I/O bodies, grown on demand up to
//! [`CHANNEL_IO_MAX`] outstanding objects (submits beyond that fail with
//! [`Error::NoMem`], SPDK's `-ENOMEM` from `spdk_bdev_read`). The mempool crate is not
//! used: its objects live in EAL shared memory, where this project's rules forbid heap
//! pointers, and an I/O carries a completion closure and an iovec list. A channel is
//! only touched by its own framework thread, so the free list needs no atomics; that is
//! what a per-lcore mempool cache would give, without tying objects to an OS thread
//! that a lightweight thread may leave. A recycled object keeps its iovec lists'
//! capacity and stores a small completion closure in place, so a submit allocates
//! nothing once the list is warm.
//!
//! # The per-I/O path
//!
//! As SPDK's `bdev_io->internal.ch`, an I/O points at its channel without taking a
//! reference. The channel's state lives in one heap block ([`ChanCore`]) that stays
//! put while the framework moves the channel value around, and the channel stays
//! alive while it has I/O objects in use: a user handle ([`crate::BdevIoChannel`])
//! dropped while I/O is out parks its reference in the channel, which lets it go when
//! the last object comes back. Latency is timed with the thread's cached poll time
//! ([`framework::thread::last_tsc`], SPDK's `spdk_thread_get_last_tsc`) rather than a
//! TSC read at submission and another at completion (each tens of nanoseconds in a
//! VM), so it is exact to one poll of the thread.
//!
//! # Out of resources
//!
//! A module that completes an I/O with [`IoStatus::NoMem`] gives it back; it waits in
//! the channel's queue (new submissions queue behind it, keeping order) and is
//! submitted again after the next completion on the channel, or from a message to the
//! channel's thread if nothing else is outstanding. Submitters never see `NoMem`.
//!
//! # Reset
//!
//! A reset ([`crate::Descriptor::reset`], SPDK's `spdk_bdev_reset`) freezes every
//! channel of the bdev (each on its thread): I/O waiting for resources or for QoS
//! budget is aborted, and new I/O waits in the channel's frozen queue instead of going
//! to the module. Once no channel has I/O at the module any more, the reset goes to
//! the module; when it completes every channel thaws and submits what it held, in
//! order. A reset asked for while one runs completes with it.
//!
//! # Splitting
//!
//! Read, write and compare requests crossing a multiple of the bdev's
//! `optimal_io_boundary`, or longer than `max_transfer_blocks`, go to the module as
//! children over slices of the caller's iovecs; the caller's callback runs once, after
//! the last child, with the first failure (if any). Statistics count the parent.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use framework::io_channel::IoChannel;
use framework::{poller, thread, PollStatus, Poller, ThreadHandle};

use crate::error::{Error, Result};
use crate::io::{
    iovs_slice_into, BdevIo, Callback, IoInner, IoStatus, IoType, IoVec, Notify, SplitParent,
};
use crate::qos::{QosLimits, TIMESLICE_US};
use crate::stats::{ChannelCounters, IoStats};
use crate::types::{BdevInfo, ModuleChannel};

mod dispatch;

/// Outstanding I/O objects one channel may have (SPDK's default `bdev_io_pool_size`
/// is 65535 for the whole process; this bounds one thread's share).
pub const CHANNEL_IO_MAX: usize = 8192;

/// Free I/O objects a channel keeps for reuse.
const FREE_KEEP: usize = 1024;

/// The channel's queues and flags off the common path (the common path only reads
/// [`ChanCore::slow`]).
#[derive(Default)]
struct ChState {
    /// Children of one split request between allocation and start (kept for its
    /// capacity).
    #[allow(clippy::vec_box)]
    pieces: Vec<Box<IoInner>>,
    nomem: VecDeque<Box<IoInner>>,
    /// Pieces waiting for QoS budget, in order.
    qos_queue: VecDeque<Box<IoInner>>,
    /// Drains `qos_queue` each slice while it is not empty.
    qos_poller: Option<Poller>,
    /// The bdev's QoS limits are on (as of the last [`ChanCore::sync_qos`]): I/O
    /// takes the queueing path, which asks the limits themselves.
    qos_on: bool,
    /// A reset of the bdev runs: new I/O waits in `frozen_q`.
    frozen: bool,
    frozen_q: VecDeque<Box<IoInner>>,
    retrying: bool,
    nomem_in_retry: bool,
    retry_msg_pending: bool,
    /// The last user handle, dropped while I/O objects were in use: released when
    /// `in_use` falls to 0.
    keep: Option<IoChannel<BdevChannel>>,
}

/// A thread's channel state for one bdev, at a fixed address (see the module docs).
pub(crate) struct ChanCore {
    info: Arc<BdevInfo>,
    qos: Arc<QosLimits>,
    /// The thread the channel was made on (and the only one that touches `st`).
    owner: ThreadHandle,
    /// The module's channel, or [`NoModule`] if the module could not make one (then
    /// `module_err` says why, and the channel is never handed out) and once the
    /// channel is being destroyed. Only touched on the channel's thread: read by
    /// `to_module`, replaced once by the destructor, which is never reached from
    /// inside a submit (a channel is destroyed from a message).
    module: UnsafeCell<Box<dyn ModuleChannel>>,
    module_err: Option<String>,
    /// The bdev's block size (I/O objects of this channel carry it from creation).
    block_size: u32,
    /// Whether requests may be split (an optimal boundary or a transfer limit).
    splits: bool,
    /// I/Os at the module.
    outstanding: Cell<usize>,
    /// I/O objects in use (at the module, queued, or being completed).
    in_use: Cell<usize>,
    /// I/O objects of this channel (in use or in `free`): at most
    /// [`CHANNEL_IO_MAX`], checked where one is made, so taking a free one needs
    /// no check.
    objects: Cell<usize>,
    /// Set while QoS is on, a reset holds the channel or anything waits in the
    /// out-of-resources or QoS queue: then I/O takes the queueing path. Set with every such change,
    /// cleared by [`refresh_slow`](ChanCore::refresh_slow) once all is clear.
    slow: Cell<bool>,
    // Boxed on purpose: an I/O body travels to the module and back as one allocation.
    // Not a `RefCell`: only touched by `free_pop` and `free_push`, on the channel's
    // thread, which call nothing while they hold the list (see their SAFETY notes).
    #[allow(clippy::vec_box)]
    free: UnsafeCell<Vec<Box<IoInner>>>,
    /// Only touched by `count` and `counters`, on the channel's thread, as `free`.
    stats: UnsafeCell<ChannelCounters>,
    st: RefCell<ChState>,
}

/// Stands in for the module's channel where there is none (it could not be made, or
/// the channel is being destroyed): fails what it is given. A zero-sized box: no
/// allocation.
struct NoModule;

impl ModuleChannel for NoModule {
    fn submit(&self, io: BdevIo) {
        io.complete(IoStatus::Failed);
    }
}

/// A thread's channel context for one bdev: owns its [`ChanCore`].
pub(crate) struct BdevChannel {
    core: NonNull<ChanCore>,
}

// SAFETY: the core is owned by this value alone (I/O objects point at it but only use
// it on the owning thread); the framework keeps a channel context on its thread and
// only moves it with the whole framework thread.
unsafe impl Send for BdevChannel {}

impl BdevChannel {
    /// Where its core lives (fixed for the channel's life).
    pub(crate) fn core_ptr(&self) -> NonNull<ChanCore> {
        self.core
    }
}

impl Deref for BdevChannel {
    type Target = ChanCore;
    fn deref(&self) -> &ChanCore {
        // SAFETY: allocated in `new`, freed only in `drop`.
        unsafe { self.core.as_ref() }
    }
}

/// One request as the descriptor checked it (the iovec lists are the caller's; each
/// piece copies its part).
pub(crate) struct Request<'a> {
    pub(crate) io_type: IoType,
    pub(crate) offset_blocks: u64,
    pub(crate) num_blocks: u64,
    pub(crate) iovs: &'a [IoVec],
    pub(crate) cmp_iovs: &'a [IoVec],
}

impl BdevChannel {
    pub(crate) fn new(
        info: Arc<BdevInfo>,
        qos: Arc<QosLimits>,
        module: std::result::Result<Box<dyn ModuleChannel>, String>,
    ) -> BdevChannel {
        let core = Box::new(ChanCore {
            splits: info.optimal_io_boundary > 0 || info.max_transfer_blocks > 0,
            block_size: info.block_size,
            qos,
            info,
            owner: thread::current().expect("the framework makes channel contexts on its threads"),
            module_err: module.as_ref().err().cloned(),
            module: UnsafeCell::new(module.unwrap_or_else(|_| Box::new(NoModule))),
            outstanding: Cell::new(0),
            in_use: Cell::new(0),
            objects: Cell::new(0),
            slow: Cell::new(false),
            free: UnsafeCell::new(Vec::new()),
            stats: UnsafeCell::new(ChannelCounters::default()),
            st: RefCell::new(ChState::default()),
        });
        core.sync_qos();
        BdevChannel {
            core: NonNull::from(Box::leak(core)),
        }
    }

    /// The channel is being destroyed: its counters go to the bdev.
    pub(crate) fn retire(self) -> IoStats {
        self.stats()
    }
}

impl Drop for BdevChannel {
    fn drop(&mut self) {
        let core: &ChanCore = self;
        let (poller, keep) = {
            let mut st = core.st.borrow_mut();
            (st.qos_poller.take(), st.keep.take())
        };
        if let Some(p) = poller {
            let _ = p.unregister();
        }
        // Set only if the thread is destroyed with I/O out (a forced exit): that
        // reference is to this very channel, whose entry is going; it is not put.
        std::mem::forget(keep);
        // SAFETY: on the channel's thread (the framework destroys a context there),
        // not inside `to_module` (see `module`); the borrow ends at once. The module
        // channel drops after it is taken out, while the rest of the core is intact
        // for any I/O it completes as it goes (I/O sent on from then fails).
        let module = std::mem::replace(unsafe { &mut *core.module.get() }, Box::new(NoModule));
        drop(module);
        // SAFETY: allocated by `new` (Box::leak); no I/O object points here any more:
        // the module channel that held them is gone, and the queues drop with the core.
        drop(unsafe { Box::from_raw(self.core.as_ptr()) });
    }
}

impl ChanCore {
    /// The core at `core` and the thread's cached time (see [`thread::last_tsc`]) if
    /// this is the channel's thread: the per-I/O thread check.
    ///
    /// # Safety
    /// The core must stay alive while the returned reference is used.
    #[inline]
    pub(crate) unsafe fn on_own_thread<'a>(core: NonNull<ChanCore>) -> Option<(&'a ChanCore, u64)> {
        // SAFETY: alive (the caller's contract); `owner` is set once at creation and
        // `ThreadHandle` is `Sync`, so reading it from any thread is sound.
        let owner = unsafe { &*std::ptr::addr_of!((*core.as_ptr()).owner) };
        let now = thread::last_tsc_on(owner)?;
        // SAFETY: on the channel's thread (checked), the only one that uses the core;
        // alive as above.
        Some((unsafe { core.as_ref() }, now))
    }

    pub(crate) fn module_error(&self) -> Option<&str> {
        self.module_err.as_deref()
    }

    /// This channel's counters (on its thread).
    pub(crate) fn stats(&self) -> IoStats {
        // SAFETY: the channel context is only used on its thread (the framework hands
        // it out there: `for_each_channel`, the destructor, the I/O path), and no
        // reference into `stats` outlives `count`, which calls nothing.
        unsafe { &*self.stats.get() }.stats(self.block_size)
    }

    /// Count a completed request of `blocks` that started at `start` and ends `now`.
    #[inline]
    fn count(&self, t: IoType, blocks: u64, start: u64, now: u64, ok: bool) {
        let ticks = now.wrapping_sub(start);
        // SAFETY: as in `stats`: on the channel's thread, and the borrow ends here.
        unsafe { &mut *self.stats.get() }.account(t, blocks, ticks, ok);
    }

    /// A recycled I/O object, if the free list has one.
    #[inline]
    fn free_pop(&self) -> Option<Box<IoInner>> {
        // SAFETY: only the channel's thread gets here (`submit` and `complete` check
        // it: `on_own_thread`), and the borrow ends before anything else is called.
        unsafe { &mut *self.free.get() }.pop()
    }

    /// Keep `io` for reuse (up to [`FREE_KEEP`] objects).
    #[inline]
    fn free_push(&self, io: Box<IoInner>) {
        // SAFETY: as in `free_pop`.
        let free = unsafe { &mut *self.free.get() };
        if free.len() < FREE_KEEP {
            free.push(io);
        } else {
            self.objects.set(self.objects.get() - 1);
        }
    }

    /// I/Os at the module and waiting in the out-of-resources queue.
    pub(crate) fn depth(&self) -> (usize, usize) {
        (self.outstanding.get(), self.st.borrow().nomem.len())
    }

    /// Clear [`slow`](Self::slow) if nothing needs the queueing path any more.
    fn refresh_slow(&self, st: &ChState) {
        self.slow
            .set(st.qos_on || st.frozen || !st.nomem.is_empty() || !st.qos_queue.is_empty());
    }

    /// Follow the bdev's QoS switch (at creation, when a user gets the channel, and
    /// on each channel, on its thread, after the limits change: SPDK's per-channel
    /// QoS flag).
    pub(crate) fn sync_qos(&self) {
        let mut st = self.st.borrow_mut();
        st.qos_on = self.qos.active();
        self.refresh_slow(&st);
    }

    /// Pieces waiting for QoS budget.
    pub(crate) fn qos_queued(&self) -> usize {
        self.st.borrow().qos_queue.len()
    }

    /// One I/O object, filled but for its data lists and callback.
    #[inline]
    fn alloc(&self, t: IoType, off: u64, n: u64, now: u64) -> Result<Box<IoInner>> {
        // A recycled object already carries the block size and this channel.
        let mut io = match self.free_pop() {
            Some(io) => io,
            None => self.new_io()?,
        };
        self.in_use.set(self.in_use.get() + 1);
        io.io_type = t;
        io.offset_blocks = off;
        io.num_blocks = n;
        io.start_tsc = now;
        Ok(io)
    }

    /// A new I/O object of this channel, unless it has [`CHANNEL_IO_MAX`] already
    /// (all in use: the free list is empty when this is called).
    #[cold]
    fn new_io(&self) -> Result<Box<IoInner>> {
        let objects = self.objects.get();
        if objects >= CHANNEL_IO_MAX {
            return Err(Error::NoMem(self.info.name.clone()));
        }
        self.objects.set(objects + 1);
        let mut io = IoInner::empty();
        io.block_size = self.block_size;
        io.owner = Some(NonNull::from(self).cast());
        Ok(io)
    }

    /// Back to the free list (its callback already taken; it keeps its block size and
    /// channel); the last object in use lets a parked handle go.
    #[inline]
    fn recycle(&self, mut io: Box<IoInner>) {
        io.iovs.clear();
        io.cmp_iovs.clear();
        self.free_push(io);
        let left = self.in_use.get() - 1;
        self.in_use.set(left);
        if left == 0 {
            self.let_keep_go();
        }
    }

    /// The last object in use came back: a parked handle may go.
    #[cold]
    fn let_keep_go(&self) {
        let keep = self.st.borrow_mut().keep.take();
        // Putting it only counts down (a destruction runs later, from a message).
        drop(keep);
    }

    /// The length of the piece of a request that starts at `off` and ends before
    /// `end`: up to the next optimal boundary, at most the transfer limit.
    fn piece_len(&self, off: u64, end: u64) -> u64 {
        let boundary = u64::from(self.info.optimal_io_boundary);
        let max = u64::from(self.info.max_transfer_blocks);
        let mut n = end - off;
        if boundary > 0 {
            n = n.min(boundary - off % boundary);
        }
        if max > 0 {
            n = n.min(max);
        }
        n
    }

    /// How many pieces `r` goes to the module in (1 for a request that is not split).
    #[inline]
    fn piece_count(&self, r: &Request) -> u64 {
        if !self.splits || !r.io_type.has_data() || r.io_type == IoType::CompareAndWrite {
            return 1;
        }
        let end = r.offset_blocks + r.num_blocks;
        let first = self.piece_len(r.offset_blocks, end);
        if first == r.num_blocks {
            return 1;
        }
        let (mut off, mut count) = (r.offset_blocks, 0);
        while off < end {
            off += self.piece_len(off, end);
            count += 1;
        }
        count
    }
}

/// Submit a checked request on `ch` (on its thread).
///
/// Generic over the callback so that it is built in its final place, the I/O object
/// (moving it through the calls would copy it at each).
#[inline]
///
/// # Safety
/// `core` is the core of a channel that the caller's handle keeps alive.
pub(crate) unsafe fn submit<F: FnOnce(IoStatus) + Send + 'static>(
    core: NonNull<ChanCore>,
    r: Request,
    cb: F,
) -> Result<()> {
    // SAFETY: alive (the caller's contract).
    let Some((ctx, now)) = (unsafe { ChanCore::on_own_thread(core) }) else {
        return Err(off_thread());
    };
    let pieces = ctx.piece_count(&r);
    if pieces == 1 {
        let mut io = ctx.alloc(r.io_type, r.offset_blocks, r.num_blocks, now)?;
        // The recycled object keeps its vectors' capacity: no allocation here.
        io.iovs.extend_from_slice(r.iovs);
        if !r.cmp_iovs.is_empty() {
            io.cmp_iovs.extend_from_slice(r.cmp_iovs);
        }
        io.notify = Some(Notify::User(Callback::new(cb)));
        ctx.dispatch(io);
        return Ok(());
    }
    submit_split(ctx, r, pieces as usize, now, Callback::new(cb))
}

#[cold]
#[inline(never)]
fn off_thread() -> Error {
    framework::Error::NotOnThread {
        what: "submit I/O on a channel of another thread",
    }
    .into()
}

/// Submit `r` as `count` children of one parent.
#[inline(never)]
fn submit_split(ctx: &ChanCore, r: Request, count: usize, now: u64, cb: Callback) -> Result<()> {
    if count > CHANNEL_IO_MAX {
        // Children are all submitted at once; a request this fragmented could never
        // get its objects, so it is refused rather than failed with NoMem forever.
        return Err(Error::Invalid {
            what: "request",
            why: format!(
                "{} blocks split into {count} pieces at boundary {} / max transfer {}; at most {CHANNEL_IO_MAX}",
                r.num_blocks, ctx.info.optimal_io_boundary, ctx.info.max_transfer_blocks
            ),
        });
    }
    if ctx.in_use.get() + count > CHANNEL_IO_MAX {
        return Err(Error::NoMem(ctx.info.name.clone()));
    }
    let bs = u64::from(ctx.info.block_size);
    let parent = Arc::new(SplitParent {
        io_type: r.io_type,
        blocks: r.num_blocks,
        start_tsc: now,
        st: Mutex::new((count, IoStatus::Success, Some(cb))),
    });
    // Fill every piece first, then start them (a module completing inline cannot see
    // a half-built parent).
    let mut ios = std::mem::take(&mut ctx.st.borrow_mut().pieces);
    let (mut off, end) = (r.offset_blocks, r.offset_blocks + r.num_blocks);
    while off < end {
        let n = ctx.piece_len(off, end);
        // Cannot fail: the room for every piece was checked above, on this thread.
        let mut io = match ctx.alloc(r.io_type, off, n, now) {
            Ok(io) => io,
            Err(e) => {
                for mut io in ios.drain(..) {
                    io.notify = None;
                    ctx.recycle(io);
                }
                ctx.st.borrow_mut().pieces = ios;
                return Err(e);
            }
        };
        let start = ((off - r.offset_blocks) * bs) as usize;
        iovs_slice_into(&mut io.iovs, r.iovs, start, (n * bs) as usize);
        io.notify = Some(Notify::Child(parent.clone()));
        ios.push(io);
        off += n;
    }
    for io in ios.drain(..) {
        ctx.dispatch(io);
    }
    ctx.st.borrow_mut().pieces = ios;
    Ok(())
}

/// Drop a user's channel handle (on any thread): while I/O objects of the channel are
/// in use, the handle is parked in the channel, which keeps it alive for them.
pub(crate) fn release(ch: IoChannel<BdevChannel>) {
    if !ch.on_owner_thread() {
        let owner = ch.thread().clone();
        // If the thread is gone, the message (and the handle in it) drops here and
        // the framework forwards the put, which finds nothing to do.
        let _ = owner.send_msg(move || release(ch));
        return;
    }
    let core: *const ChanCore = &**ch.ctx();
    // SAFETY: `ch` keeps the core alive until it drops, after `st` (declared later);
    // parking it in the core's own state (on its thread, checked above) keeps it alive
    // further and does not move the core.
    let core = unsafe { &*core };
    let mut st = core.st.borrow_mut();
    if core.in_use.get() > 0 && st.keep.is_none() {
        st.keep = Some(ch);
    }
}

// The completion of an I/O handed to a module, here rather than with `BdevIo` in
// `crate::io` so that the I/O module does not name the channel it goes back to.
impl BdevIo {
    /// End the request. Must run on the submitting thread (a completion elsewhere is
    /// logged and sent back there: the channel's state is per thread).
    pub fn complete(mut self, status: IoStatus) {
        if let Some(inner) = self.0.take() {
            ChanCore::complete(inner, status);
        }
    }
}

impl Drop for BdevIo {
    fn drop(&mut self) {
        if let Some(inner) = self.0.take() {
            ChanCore::complete(inner, IoStatus::Failed);
        }
    }
}

/// A core pointer carried by the channel's own poller or message.
struct CorePtr(NonNull<ChanCore>);

// SAFETY: only dereferenced on the channel's thread, while the core lives (see uses).
unsafe impl Send for CorePtr {}

impl CorePtr {
    /// # Safety
    /// On the channel's thread, while the core lives.
    unsafe fn get(&self) -> &ChanCore {
        // SAFETY: the caller's contract.
        unsafe { self.0.as_ref() }
    }
}

/// Submit a reset to the module on `ch` (its thread) past the frozen queue: the layer
/// froze the channels and drained them for it.
pub(crate) fn submit_reset(ch: &IoChannel<BdevChannel>, cb: Callback) -> Result<()> {
    let ctx: &ChanCore = ch.ctx();
    let mut io = ctx.alloc(IoType::Reset, 0, 0, thread::last_tsc())?;
    io.notify = Some(Notify::User(cb));
    ctx.outstanding.set(ctx.outstanding.get() + 1);
    ctx.to_module(io);
    Ok(())
}
