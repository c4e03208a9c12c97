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
//! that a lightweight thread may leave.
//!
//! # Out of resources
//!
//! A module that completes an I/O with [`IoStatus::NoMem`] gives it back; it waits in
//! the channel's queue (new submissions queue behind it, keeping order) and is
//! submitted again after the next completion on the channel, or from a message to the
//! channel's thread if nothing else is outstanding. Submitters never see `NoMem`.
//!
//! # Splitting
//!
//! Read, write and compare requests crossing a multiple of the bdev's
//! `optimal_io_boundary`, or longer than `max_transfer_blocks`, go to the module as
//! children over slices of the caller's iovecs; the caller's callback runs once, after
//! the last child, with the first failure (if any). Statistics count the parent.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use framework::io_channel::IoChannel;
use framework::{poller, thread, PollStatus, Poller};

use crate::bdev::{BdevInfo, ModuleChannel};
use crate::error::{Error, Result};
use crate::io::{iovs_slice, BdevIo, IoInner, IoStatus, IoType, IoVec, Notify};
use crate::qos::{QosLimits, TIMESLICE_US};
use crate::stats::IoStats;

/// Outstanding I/O objects one channel may have (SPDK's default `bdev_io_pool_size`
/// is 65535 for the whole process; this bounds one thread's share).
pub const CHANNEL_IO_MAX: usize = 8192;

#[derive(Default)]
struct ChState {
    /// I/Os at the module.
    outstanding: usize,
    /// I/O objects in use (at the module, queued, or being completed).
    in_use: usize,
    // Boxed on purpose: an I/O body travels to the module and back as one allocation.
    #[allow(clippy::vec_box)]
    free: Vec<Box<IoInner>>,
    nomem: VecDeque<Box<IoInner>>,
    /// Pieces waiting for QoS budget, in order.
    qos_queue: VecDeque<Box<IoInner>>,
    /// Drains `qos_queue` each slice while it is not empty.
    qos_poller: Option<Poller>,
    retrying: bool,
    nomem_in_retry: bool,
    retry_msg_pending: bool,
    stats: IoStats,
}

/// A thread's channel context for one bdev.
pub(crate) struct BdevChannel {
    info: Arc<BdevInfo>,
    qos: Arc<QosLimits>,
    module: std::result::Result<Box<dyn ModuleChannel>, String>,
    st: RefCell<ChState>,
}

type UserCb = Box<dyn FnOnce(IoStatus) + Send>;

/// The parent of split children.
pub(crate) struct SplitParent {
    io_type: IoType,
    bytes: u64,
    start_tsc: u64,
    /// (children left, first failure, the caller's callback)
    st: Mutex<(usize, IoStatus, Option<UserCb>)>,
}

/// One request as the descriptor checked it.
pub(crate) struct Request {
    pub(crate) io_type: IoType,
    pub(crate) offset_blocks: u64,
    pub(crate) num_blocks: u64,
    pub(crate) iovs: Vec<IoVec>,
    pub(crate) cmp_iovs: Vec<IoVec>,
}

impl BdevChannel {
    pub(crate) fn new(
        info: Arc<BdevInfo>,
        qos: Arc<QosLimits>,
        module: std::result::Result<Box<dyn ModuleChannel>, String>,
    ) -> BdevChannel {
        BdevChannel {
            info,
            qos,
            module,
            st: RefCell::new(ChState::default()),
        }
    }

    pub(crate) fn module_error(&self) -> Option<&str> {
        self.module.as_ref().err().map(|s| s.as_str())
    }

    /// This channel's counters.
    pub(crate) fn stats(&self) -> IoStats {
        self.st.borrow().stats
    }

    /// The channel is being destroyed: its counters go to the bdev.
    pub(crate) fn retire(self) -> IoStats {
        self.st.borrow().stats
    }

    /// I/Os at the module and waiting in the out-of-resources queue.
    pub(crate) fn depth(&self) -> (usize, usize) {
        let st = self.st.borrow();
        (st.outstanding, st.nomem.len())
    }

    /// Pieces waiting for QoS budget.
    pub(crate) fn qos_queued(&self) -> usize {
        self.st.borrow().qos_queue.len()
    }

    #[allow(clippy::vec_box)] // the boxes are the free-list entries handed out as is
    fn alloc(&self, n: usize) -> Result<Vec<Box<IoInner>>> {
        let mut st = self.st.borrow_mut();
        if st.in_use + n > CHANNEL_IO_MAX {
            return Err(Error::NoMem(self.info.name.clone()));
        }
        st.in_use += n;
        Ok((0..n)
            .map(|_| st.free.pop().unwrap_or_else(IoInner::empty))
            .collect())
    }

    fn recycle(&self, mut io: Box<IoInner>) {
        io.iovs.clear();
        io.cmp_iovs.clear();
        io.notify = None;
        io.ch = None;
        let mut st = self.st.borrow_mut();
        st.in_use -= 1;
        if st.free.len() < 1024 {
            st.free.push(io);
        }
    }

    /// Split points of a request: `(offset, blocks)` pieces.
    fn pieces(&self, r: &Request) -> Vec<(u64, u64)> {
        let boundary = u64::from(self.info.optimal_io_boundary);
        let max = u64::from(self.info.max_transfer_blocks);
        if !r.io_type.has_data() || r.io_type == IoType::CompareAndWrite {
            return vec![(r.offset_blocks, r.num_blocks)];
        }
        let mut out = Vec::new();
        let (mut off, end) = (r.offset_blocks, r.offset_blocks + r.num_blocks);
        while off < end {
            let mut n = end - off;
            if boundary > 0 {
                n = n.min(boundary - off % boundary);
            }
            if max > 0 {
                n = n.min(max);
            }
            out.push((off, n));
            off += n;
        }
        out
    }
}

/// Submit a checked request on `ch` (on its thread).
pub(crate) fn submit(
    ch: &IoChannel<BdevChannel>,
    r: Request,
    cb: Box<dyn FnOnce(IoStatus) + Send>,
) -> Result<()> {
    let ctx = ch.ctx();
    let bs = u64::from(ctx.info.block_size);
    let pieces = ctx.pieces(&r);
    if pieces.len() > CHANNEL_IO_MAX {
        // Children are all submitted at once; a request this fragmented could never
        // get its objects, so it is refused rather than failed with NoMem forever.
        return Err(Error::Invalid {
            what: "request",
            why: format!(
                "{} blocks split into {} pieces at boundary {} / max transfer {}; at most {CHANNEL_IO_MAX}",
                r.num_blocks,
                pieces.len(),
                ctx.info.optimal_io_boundary,
                ctx.info.max_transfer_blocks
            ),
        });
    }
    let mut ios = ctx.alloc(pieces.len())?;
    let now = eal::timer::rdtsc();
    let mut cb = Some(cb);
    let parent = if pieces.len() > 1 {
        Some(Arc::new(SplitParent {
            io_type: r.io_type,
            bytes: r.num_blocks * bs,
            start_tsc: now,
            st: Mutex::new((pieces.len(), IoStatus::Success, cb.take())),
        }))
    } else {
        None
    };
    // Fill every piece first, then start them (a module completing inline cannot see
    // a half-built parent).
    for (io, &(off, n)) in ios.iter_mut().zip(&pieces) {
        io.io_type = r.io_type;
        io.offset_blocks = off;
        io.num_blocks = n;
        io.block_size = ctx.info.block_size;
        io.start_tsc = now;
        if r.io_type.has_data() {
            let start = ((off - r.offset_blocks) * bs) as usize;
            io.iovs = iovs_slice(&r.iovs, start, (n * bs) as usize);
        }
        io.cmp_iovs.clone_from(&r.cmp_iovs);
        io.ch = ch.try_clone();
        io.notify = match &parent {
            Some(p) => Some(Notify::Child(p.clone())),
            None => cb.take().map(Notify::User),
        };
    }
    for io in ios {
        ctx.dispatch(io);
    }
    Ok(())
}

impl BdevChannel {
    fn dispatch(&self, io: Box<IoInner>) {
        let limited = matches!(
            io.io_type,
            IoType::Read | IoType::Write | IoType::Compare | IoType::CompareAndWrite
        );
        if limited && (self.qos.active() || !self.st.borrow().qos_queue.is_empty()) {
            let behind = !self.st.borrow().qos_queue.is_empty();
            let bytes = io.num_blocks * u64::from(io.block_size);
            if behind || !self.qos.try_admit(io.io_type, bytes) {
                self.qos_park(io);
                return;
            }
        }
        self.dispatch_admitted(io);
    }

    /// Queue a piece for QoS budget; make sure the drain poller runs.
    fn qos_park(&self, io: Box<IoInner>) {
        let ch = io.ch.as_ref().and_then(|c| c.try_clone());
        let mut st = self.st.borrow_mut();
        st.qos_queue.push_back(io);
        if st.qos_poller.is_some() {
            return;
        }
        let Some(ch) = ch else {
            return;
        };
        // The poller holds a channel reference while it exists, so the channel (and
        // this state) outlives it; it unregisters itself once the queue is empty.
        let r = poller::register("bdev_qos_drain", TIMESLICE_US, move || {
            let ctx = ch.ctx();
            ctx.qos_drain();
            let mut st = ctx.st.borrow_mut();
            if st.qos_queue.is_empty() {
                if let Some(p) = st.qos_poller.take() {
                    drop(st);
                    let _ = p.unregister();
                }
            }
            PollStatus::Busy
        });
        match r {
            Ok(p) => st.qos_poller = Some(p),
            Err(e) => eal::log_err!("bdev '{}': no QoS drain poller: {e}", self.info.name),
        }
    }

    /// Submit queued pieces while the budget allows (all of them once QoS is off).
    fn qos_drain(&self) {
        loop {
            let io = {
                let mut st = self.st.borrow_mut();
                let Some(front) = st.qos_queue.front() else {
                    return;
                };
                let bytes = front.num_blocks * u64::from(front.block_size);
                if !self.qos.try_admit(front.io_type, bytes) {
                    return;
                }
                st.qos_queue.pop_front()
            };
            if let Some(io) = io {
                self.dispatch_admitted(io);
            }
        }
    }

    fn dispatch_admitted(&self, io: Box<IoInner>) {
        {
            let mut st = self.st.borrow_mut();
            if !st.nomem.is_empty() && !st.retrying {
                st.nomem.push_back(io);
                return;
            }
            st.outstanding += 1;
        }
        self.to_module(io);
    }

    fn to_module(&self, io: Box<IoInner>) {
        match &self.module {
            Ok(m) => m.submit(BdevIo(Some(io))),
            // Not reachable: a channel whose module failed is never handed out.
            Err(_) => BdevIo(Some(io)).complete(IoStatus::Failed),
        }
    }

    /// A module completed `io` (static: the channel is found through the I/O).
    pub(crate) fn complete(mut io: Box<IoInner>, status: IoStatus) {
        let Some(ch) = io.ch.as_ref().and_then(|c| c.try_clone()) else {
            // A completion off the submitting thread: a module bug. The channel cannot
            // be touched here; the I/O is dropped (its channel reference is sent home).
            eal::log_err!("bdev I/O completed off its thread; dropped");
            io.ch = None;
            return;
        };
        let ctx = ch.ctx();
        if status == IoStatus::NoMem {
            let schedule = {
                let mut st = ctx.st.borrow_mut();
                st.outstanding -= 1;
                st.nomem.push_back(io);
                if st.retrying {
                    st.nomem_in_retry = true;
                }
                let s = st.outstanding == 0 && !st.retry_msg_pending;
                if s {
                    st.retry_msg_pending = true;
                }
                s
            };
            if schedule {
                schedule_retry(&ch);
            }
            return;
        }
        ctx.st.borrow_mut().outstanding -= 1;
        ctx.finish(io, status);
        ctx.retry_queued();
    }

    /// Account, recycle and notify.
    fn finish(&self, mut io: Box<IoInner>, status: IoStatus) {
        let notify = io.notify.take();
        let (t, bytes, start) = (
            io.io_type,
            io.num_blocks * u64::from(io.block_size),
            io.start_tsc,
        );
        self.recycle(io);
        match notify {
            Some(Notify::User(cb)) => {
                let ticks = eal::timer::rdtsc().wrapping_sub(start);
                self.st
                    .borrow_mut()
                    .stats
                    .account(t, bytes, ticks, status == IoStatus::Success);
                cb(status);
            }
            Some(Notify::Child(p)) => {
                let last = {
                    let mut g = p.st.lock().unwrap_or_else(|e| e.into_inner());
                    g.0 -= 1;
                    if status != IoStatus::Success && g.1 == IoStatus::Success {
                        g.1 = status;
                    }
                    if g.0 == 0 {
                        g.2.take().map(|cb| (cb, g.1))
                    } else {
                        None
                    }
                };
                if let Some((cb, st)) = last {
                    let ticks = eal::timer::rdtsc().wrapping_sub(p.start_tsc);
                    self.st.borrow_mut().stats.account(
                        p.io_type,
                        p.bytes,
                        ticks,
                        st == IoStatus::Success,
                    );
                    cb(st);
                }
            }
            None => {}
        }
    }

    /// Resubmit what waits in the out-of-resources queue (once per completion; a
    /// nested completion does not recurse into a second pass).
    fn retry_queued(&self) {
        {
            let mut st = self.st.borrow_mut();
            if st.retrying || st.nomem.is_empty() {
                return;
            }
            st.retrying = true;
            st.nomem_in_retry = false;
        }
        let n = self.st.borrow().nomem.len();
        for _ in 0..n {
            let io = {
                let mut st = self.st.borrow_mut();
                if st.nomem_in_retry {
                    break;
                }
                let Some(io) = st.nomem.pop_front() else {
                    break;
                };
                st.outstanding += 1;
                io
            };
            self.to_module(io);
        }
        self.st.borrow_mut().retrying = false;
    }

    /// Fail every queued I/O with `Aborted` (a reset).
    pub(crate) fn abort_queued(&self) {
        loop {
            let Some(io) = self.st.borrow_mut().nomem.pop_front() else {
                break;
            };
            self.finish(io, IoStatus::Aborted);
        }
    }
}

/// Nothing is outstanding to trigger a retry: retry from a message on the channel's
/// thread (the module may have freed resources by then).
fn schedule_retry(ch: &IoChannel<BdevChannel>) {
    let Some(c2) = ch.try_clone() else {
        return;
    };
    let Some(me) = thread::current() else {
        return;
    };
    let r = me.send_msg(move || {
        let ctx = c2.ctx();
        ctx.st.borrow_mut().retry_msg_pending = false;
        ctx.retry_queued();
    });
    if r.is_err() {
        eal::log_err!("bdev: could not schedule an out-of-resources retry");
    }
}
