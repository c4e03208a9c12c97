//! One submission/completion queue pair as the host sees it: the rings in DMA memory,
//! the command tracker, PRP list pages, doorbells. Used for the admin queue (behind the
//! controller's mutex) and for I/O queue pairs ([`crate::QPair`], one owner thread).
//!
//! Invariants (written once, relied on everywhere):
//! * `entries` slots per ring; at most `entries - 1` commands are outstanding (one
//!   tracker per command id `0..entries-1`), so the SQ tail never catches the device's
//!   head and "queue full" is simply "no free command id".
//! * SQ entries between the last doorbelled tail (`db_tail`) and `sq_tail` are written
//!   but invisible to the device until `QueueCore::flush` rings the doorbell (once per
//!   batch). A failed multi-command submit therefore never advances `sq_tail`.
//! * A CQ slot belongs to the host when its phase tag equals `phase`; `phase` flips each
//!   time `cq_head` wraps. The CQ head doorbell is written once per processed batch.
//! * A request (one user I/O) owns 1..n commands (MDTS splitting); its callback runs
//!   once, when the last one completes, with the first error if any.
//!
//! Memory the device writes (CQ, data) is read with volatile loads only; memory it reads
//! (SQ, PRP lists) is written with volatile stores.

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use eal::device::MmioRegion;
use eal::{Iova, VirtAddr};

use crate::buf::IoBuf;
use crate::error::{Error, Result};
use crate::prp::{build_prps, IovaMapper, PAGE_SIZE};
use crate::spec::{read_volatile_pod, write_volatile_pod, Cqe, Sqe, Status};

/// A successful completion (of all commands of a request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Dword 0 of the (last) completion entry: command specific.
    pub cdw0: u32,
    /// The status (success, since errors are delivered as [`Error`]).
    pub status: Status,
    /// How many device commands the request took (more than 1 when split by MDTS).
    pub commands: u32,
}

/// What to do when a request completes.
pub enum Done {
    /// Hand `(tag, result)` to the closure of
    /// [`QPair::process_completions_with`](crate::QPair::process_completions_with); no
    /// allocation. With plain `process_completions` the result is dropped.
    Tag(u64),
    /// Call this (on the thread that processes completions).
    Callback(Box<dyn FnOnce(Result<Completion>) + Send>),
}

impl Done {
    /// A boxed callback.
    pub fn callback(f: impl FnOnce(Result<Completion>) + Send + 'static) -> Done {
        Done::Callback(Box::new(f))
    }
}

impl std::fmt::Debug for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Done::Tag(t) => write!(f, "Done::Tag({t})"),
            Done::Callback(_) => write!(f, "Done::Callback(..)"),
        }
    }
}

/// Callback taking the buffer back (safe submit APIs).
pub(crate) type BufCallback = Box<dyn FnOnce(Result<Completion>, IoBuf) + Send>;

pub(crate) enum DoneInner {
    User(Done),
    WithBuf(BufCallback),
}

/// Ring memory and per-tracker pages of one queue.
pub(crate) struct QueueMem {
    pub sq: *mut Sqe,
    pub sq_iova: Iova,
    pub cq: *mut Cqe,
    pub cq_iova: Iova,
    /// One 4 KiB page per tracker (PRP list or DSM ranges).
    pub pages: *mut u8,
    pub page_iovas: Vec<Iova>,
    pub entries: u16,
    /// Keeps the memory alive.
    pub owner: Box<dyn Send>,
}

/// The commands of one submit.
pub(crate) enum Cmds<'a> {
    /// One command; optional data buffer (PRPs) or a payload copied into the tracker's
    /// page (used as PRP1).
    Single {
        sqe: Sqe,
        data: Option<(VirtAddr, u64)>,
        payload: Option<&'a [u8]>,
    },
    /// A block range split into commands of at most `max_nlb` blocks each; `data` is the
    /// buffer of the whole range (none for Write Zeroes).
    Blocks {
        sqe: Sqe,
        slba: u64,
        nlb: u64,
        bs: u64,
        max_nlb: u64,
        data: Option<VirtAddr>,
    },
}

#[derive(Clone, Copy, Default)]
struct Tracker {
    req: u16,
    active: bool,
    abort_sent: bool,
    tsc: u64,
}

#[derive(Default)]
struct Req {
    done: Option<DoneInner>,
    buf: Option<IoBuf>,
    remaining: u32,
    commands: u32,
    err: Option<Error>,
    cdw0: u32,
    status: u16,
    in_use: bool,
}

/// A queue pair's host side. See the module docs.
pub(crate) struct QueueCore {
    pub qid: u16,
    mem: QueueMem,
    entries: u16,
    sq_tail: u16,
    db_tail: u16,
    sq_head: u16,
    cq_head: u16,
    phase: bool,
    _bar: MmioRegion,
    sq_db: *mut u32,
    cq_db: *mut u32,
    trk: Vec<Tracker>,
    free_cids: Vec<u16>,
    reqs: Vec<Req>,
    free_reqs: Vec<u16>,
    mapper: Arc<dyn IovaMapper>,
    /// Milliseconds after which a command counts as timed out (for the error).
    pub timeout_ms: u64,
}

// SAFETY: the raw pointers point into memory owned by `mem.owner` (moved along) and into
// the BAR mapping kept alive by `_bar`; a QueueCore is used by one thread at a time
// (`&mut self` everywhere), so moving it between threads is fine.
unsafe impl Send for QueueCore {}

impl QueueCore {
    /// A queue over `mem`, doorbells at `sq_db`/`cq_db` in `bar`.
    pub fn new(
        qid: u16,
        mem: QueueMem,
        bar: &MmioRegion,
        sq_db: u64,
        cq_db: u64,
        mapper: Arc<dyn IovaMapper>,
    ) -> Result<QueueCore> {
        let entries = mem.entries;
        if entries < 2 || mem.page_iovas.len() < entries as usize - 1 {
            return Err(Error::BadArgument {
                what: "set up a queue".into(),
                why: format!("{entries} entries"),
            });
        }
        for off in [sq_db, cq_db] {
            // Validates the doorbell offsets once; the hot path then stores directly.
            bar.read32(off).map_err(Error::Eal)?;
        }
        let n = entries as usize - 1;
        Ok(QueueCore {
            qid,
            entries,
            sq_tail: 0,
            db_tail: 0,
            sq_head: 0,
            cq_head: 0,
            phase: true,
            sq_db: bar.base().add(sq_db).as_ptr(),
            cq_db: bar.base().add(cq_db).as_ptr(),
            _bar: bar.clone(),
            trk: vec![Tracker::default(); n],
            free_cids: (0..n as u16).rev().collect(),
            reqs: (0..n).map(|_| Req::default()).collect(),
            free_reqs: (0..n as u16).rev().collect(),
            mapper,
            mem,
            timeout_ms: 0,
        })
    }

    /// Ring entries.
    pub fn entries(&self) -> u16 {
        self.entries
    }

    /// IOVA of the SQ ring.
    pub fn sq_iova(&self) -> Iova {
        self.mem.sq_iova
    }

    /// IOVA of the CQ ring.
    pub fn cq_iova(&self) -> Iova {
        self.mem.cq_iova
    }

    /// Commands in flight.
    pub fn outstanding_cmds(&self) -> usize {
        self.trk.len() - self.free_cids.len()
    }

    /// Requests in flight.
    pub fn outstanding_reqs(&self) -> usize {
        self.reqs.len() - self.free_reqs.len()
    }

    /// Maximum commands in flight.
    pub fn capacity(&self) -> usize {
        self.trk.len()
    }

    fn count(cmds: &Cmds<'_>) -> Result<u64> {
        match cmds {
            Cmds::Single { .. } => Ok(1),
            Cmds::Blocks { nlb, max_nlb, .. } => {
                if *nlb == 0 || *max_nlb == 0 {
                    return Err(Error::BadArgument {
                        what: "submit an I/O".into(),
                        why: "zero blocks".into(),
                    });
                }
                Ok(nlb.div_ceil(*max_nlb))
            }
        }
    }

    /// Queue a request's commands in the SQ (not yet visible: see [`flush`](Self::flush)).
    /// All or nothing: on error nothing was queued and `done`/`buf` come back.
    #[allow(clippy::result_large_err)]
    pub fn submit(
        &mut self,
        cmds: &Cmds<'_>,
        done: DoneInner,
        buf: Option<IoBuf>,
        now: u64,
    ) -> std::result::Result<(), (Error, DoneInner, Option<IoBuf>)> {
        let n = match Self::count(cmds) {
            Ok(n) => n,
            Err(e) => return Err((e, done, buf)),
        };
        if n > self.free_cids.len() as u64 || self.free_reqs.is_empty() {
            if n > self.trk.len() as u64 {
                let e = Error::BadArgument {
                    what: "submit an I/O".into(),
                    why: format!(
                        "it needs {n} commands, more than the queue's {} slots",
                        self.trk.len()
                    ),
                };
                return Err((e, done, buf));
            }
            return Err((
                Error::QueueFull {
                    depth: self.outstanding_cmds(),
                },
                done,
                buf,
            ));
        }
        let Some(&req) = self.free_reqs.last() else {
            return Err((
                Error::QueueFull {
                    depth: self.outstanding_cmds(),
                },
                done,
                buf,
            ));
        };
        // Write the SQEs beyond the doorbelled tail; commit only if all of them built.
        let start_tail = self.sq_tail;
        let used = self.free_cids.len();
        let mut tail = self.sq_tail;
        let mut k = 0usize;
        let r: Result<()> = (|| {
            let mut each = |mut sqe: Sqe,
                            data: Option<(VirtAddr, u64)>,
                            payload: Option<&[u8]>|
             -> Result<()> {
                let cid = self.free_cids[used - 1 - k];
                sqe.set_cid(cid);
                let page = self.page(cid);
                let page_iova = self.mem.page_iovas[cid as usize];
                if let Some(p) = payload {
                    if p.len() as u64 > PAGE_SIZE {
                        return Err(Error::BadArgument {
                            what: "submit a command".into(),
                            why: "payload over 4 KiB".into(),
                        });
                    }
                    for (i, b) in p.iter().enumerate() {
                        // SAFETY: `page` is this tracker's 4 KiB page, i < 4096; the
                        // device does not read it while the tracker is free.
                        unsafe { std::ptr::write_volatile(page.add(i), *b) };
                    }
                    sqe.prp1 = page_iova.0;
                    sqe.prp2 = 0;
                }
                if let Some((va, len)) = data {
                    let prps = build_prps(va, len, &*self.mapper, page_iova, |i, v| {
                        // SAFETY: i < 512 entries of this tracker's page (build_prps
                        // caps the list at one page).
                        unsafe { write_volatile_pod(page.cast::<u64>().add(i), v) };
                    })?;
                    sqe.prp1 = prps.prp1;
                    sqe.prp2 = prps.prp2;
                }
                // SAFETY: `tail < entries`; the slot is free (at most entries-1 commands
                // are outstanding) and invisible to the device until the doorbell.
                unsafe { write_volatile_pod(self.mem.sq.add(tail as usize), sqe) };
                tail = if tail + 1 == self.entries {
                    0
                } else {
                    tail + 1
                };
                k += 1;
                Ok(())
            };
            match cmds {
                Cmds::Single { sqe, data, payload } => each(*sqe, *data, *payload),
                Cmds::Blocks {
                    sqe,
                    slba,
                    nlb,
                    bs,
                    max_nlb,
                    data,
                } => {
                    let mut done_blocks = 0u64;
                    while done_blocks < *nlb {
                        let c = (*nlb - done_blocks).min(*max_nlb);
                        let mut s = *sqe;
                        s.set_lba_range(slba + done_blocks, c as u32);
                        let d = data.map(|va| (va.add(done_blocks * bs), c * bs));
                        each(s, d, None)?;
                        done_blocks += c;
                    }
                    Ok(())
                }
            }
        })();
        if let Err(e) = r {
            self.sq_tail = start_tail;
            return Err((e, done, buf));
        }
        // Commit: take the cids and the request slot.
        for _ in 0..k {
            let cid = self.free_cids.pop().unwrap_or_default();
            self.trk[cid as usize] = Tracker {
                req,
                active: true,
                abort_sent: false,
                tsc: now,
            };
        }
        self.free_reqs.pop();
        self.reqs[req as usize] = Req {
            done: Some(done),
            buf,
            remaining: k as u32,
            commands: k as u32,
            err: None,
            cdw0: 0,
            status: 0,
            in_use: true,
        };
        self.sq_tail = tail;
        Ok(())
    }

    fn page(&self, cid: u16) -> *mut u8 {
        // SAFETY (of the arithmetic): cid < entries-1 pages were allocated.
        self.mem
            .pages
            .wrapping_add(cid as usize * PAGE_SIZE as usize)
    }

    /// Ring the SQ tail doorbell if anything was queued since the last ring.
    #[inline]
    pub fn flush(&mut self) {
        if self.sq_tail != self.db_tail {
            // R1: publishes the SQEs written above before the doorbell write that lets
            // the device fetch them (pairs with the device's read after the doorbell).
            fence(Ordering::Release);
            // SAFETY: the doorbell offset was checked against the live BAR in `new`.
            unsafe { std::ptr::write_volatile(self.sq_db, self.sq_tail as u32) };
            self.db_tail = self.sq_tail;
        }
    }

    /// Reap up to `max` completion entries; completed requests go to their callbacks or,
    /// for tags, to `f`. Writes the CQ head doorbell once. Returns the entries reaped.
    pub fn process(&mut self, max: usize, f: &mut dyn FnMut(u64, Result<Completion>)) -> usize {
        self.process_inner(max, f, true)
    }

    /// Reap what the device completed before it dropped the queue (reset), without
    /// writing the doorbell of a queue that no longer exists.
    pub fn reap_stale(&mut self, f: &mut dyn FnMut(u64, Result<Completion>)) -> usize {
        self.process_inner(self.entries as usize, f, false)
    }

    fn process_inner(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(u64, Result<Completion>),
        ring: bool,
    ) -> usize {
        let mut n = 0;
        while n < max {
            // SAFETY: cq_head < entries; CQ memory lives in `mem`. Read the status word
            // first, volatile, as the device writes it.
            let st = unsafe {
                read_volatile_pod(std::ptr::addr_of!(
                    (*self.mem.cq.add(self.cq_head as usize)).status
                ))
            };
            if (st & 1 != 0) != self.phase {
                break;
            }
            // A1: pairs with the device's write of the phase tag: the rest of the entry
            // and the data it transferred are read only after seeing the tag.
            fence(Ordering::Acquire);
            // SAFETY: as above.
            let cqe = unsafe { read_volatile_pod(self.mem.cq.add(self.cq_head as usize)) };
            self.cq_head += 1;
            if self.cq_head == self.entries {
                self.cq_head = 0;
                self.phase = !self.phase;
            }
            n += 1;
            self.complete_cqe(&cqe, f);
        }
        if n > 0 && ring {
            // SAFETY: doorbell offset checked in `new`.
            unsafe { std::ptr::write_volatile(self.cq_db, self.cq_head as u32) };
        }
        n
    }

    fn complete_cqe(&mut self, cqe: &Cqe, f: &mut dyn FnMut(u64, Result<Completion>)) {
        if cqe.sqhd < self.entries {
            self.sq_head = cqe.sqhd;
        }
        let cid = cqe.cid as usize;
        let Some(t) = self.trk.get(cid).copied().filter(|t| t.active) else {
            eal::log_warn!(
                "nvme: queue {}: completion for unknown command id {cid} ignored",
                self.qid
            );
            return;
        };
        self.trk[cid].active = false;
        self.free_cids.push(cid as u16);
        let status = cqe.status();
        let r = &mut self.reqs[t.req as usize];
        r.remaining = r.remaining.saturating_sub(1);
        if !status.is_success() && r.err.is_none() {
            r.err = Some(
                if t.abort_sent && matches!(Error::from_status(status), Error::Aborted { .. }) {
                    Error::CommandTimeout {
                        ms: self.timeout_ms,
                    }
                } else {
                    Error::from_status(status)
                },
            );
        }
        r.cdw0 = cqe.dw0;
        r.status = status.0;
        if r.remaining == 0 {
            self.finish_req(t.req, None, f);
        }
    }

    /// Deliver request `req`'s result (its own error, or `forced`) and free its slot.
    fn finish_req(
        &mut self,
        req: u16,
        forced: Option<&Error>,
        f: &mut dyn FnMut(u64, Result<Completion>),
    ) {
        let r = &mut self.reqs[req as usize];
        let res = match (forced, r.err.take()) {
            (_, Some(e)) => Err(e),
            (Some(e), None) => Err(e.duplicate()),
            (None, None) => Ok(Completion {
                cdw0: r.cdw0,
                status: Status(r.status),
                commands: r.commands,
            }),
        };
        let done = r.done.take();
        let buf = r.buf.take();
        r.in_use = false;
        self.free_reqs.push(req);
        match done {
            Some(DoneInner::User(Done::Tag(t))) => f(t, res),
            Some(DoneInner::User(Done::Callback(cb))) => cb(res),
            Some(DoneInner::WithBuf(cb)) => match buf {
                Some(b) => cb(res, b),
                None => eal::log_err!("nvme: request without its buffer (driver bug)"),
            },
            None => {}
        }
    }

    /// Complete every outstanding request with `err` (after the device has stopped
    /// using the queue: reset, deletion, removal).
    pub fn fail_all(&mut self, err: &Error, f: &mut dyn FnMut(u64, Result<Completion>)) -> usize {
        for (cid, t) in self.trk.iter_mut().enumerate() {
            if t.active {
                t.active = false;
                self.free_cids.push(cid as u16);
            }
        }
        let mut n = 0;
        for req in 0..self.reqs.len() {
            if self.reqs[req].in_use {
                self.finish_req(req as u16, Some(err), f);
                n += 1;
            }
        }
        n
    }

    /// Forget the ring state after the controller dropped the queue (reset): zero the CQ
    /// and start again at slot 0 with phase 1. Call after [`fail_all`](Self::fail_all).
    pub fn reinit(&mut self) {
        for i in 0..self.entries as usize {
            // SAFETY: in range of the CQ ring; the device no longer owns this queue.
            unsafe { write_volatile_pod(self.mem.cq.add(i), Cqe::default()) };
        }
        self.sq_tail = 0;
        self.db_tail = 0;
        self.sq_head = 0;
        self.cq_head = 0;
        self.phase = true;
    }

    /// Command ids in flight longer than `limit` ticks at `now`: `(cid, abort already
    /// sent)`.
    pub fn expired(&self, now: u64, limit: u64) -> Vec<(u16, bool)> {
        self.trk
            .iter()
            .enumerate()
            .filter(|(_, t)| t.active && now.saturating_sub(t.tsc) > limit)
            .map(|(c, t)| (c as u16, t.abort_sent))
            .collect()
    }

    /// Mark `cid` as aborted at `now` (its error becomes a timeout).
    pub fn mark_abort_sent(&mut self, cid: u16, now: u64) {
        if let Some(t) = self.trk.get_mut(cid as usize) {
            t.abort_sent = true;
            t.tsc = now;
        }
    }

    /// Hand the buffers of outstanding requests to `std::mem::forget`: used when the
    /// device may still DMA into them and cannot be stopped (failed queue deletion).
    pub fn leak_buffers(&mut self) {
        for r in &mut self.reqs {
            if let Some(b) = r.buf.take() {
                std::mem::forget(b);
            }
        }
    }

    /// Forget the memory (the device may still use it): it is never freed.
    pub fn leak_memory(&mut self) {
        std::mem::forget(std::mem::replace(&mut self.mem.owner, Box::new(())));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::spec::io_opc;
    use std::sync::Mutex;

    /// Identity mapper over plain memory.
    pub(crate) struct Identity;
    impl IovaMapper for Identity {
        fn iova(&self, va: VirtAddr) -> Option<Iova> {
            Some(Iova(va.0))
        }
    }

    /// A queue in plain memory with a fake BAR (doorbells are plain memory words).
    pub(crate) struct Fake {
        pub q: QueueCore,
        pub sq: *mut Sqe,
        pub cq: *mut Cqe,
        pub pages: *mut u8,
        pub bar: Box<[u32; 2048]>,
        pub dev_sq_head: u16,
        pub dev_cq_tail: u16,
        pub dev_phase: bool,
    }

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    pub(crate) fn fake(entries: u16) -> Fake {
        let n = entries as usize;
        let sq: Vec<Sqe> = vec![Sqe::default(); n];
        let cq: Vec<Cqe> = vec![Cqe::default(); n];
        let pages: Vec<Page> = (0..n - 1).map(|_| Page([0; 4096])).collect();
        let mut sq = sq.into_boxed_slice();
        let mut cq = cq.into_boxed_slice();
        let mut pages = pages.into_boxed_slice();
        let sqp = sq.as_mut_ptr();
        let cqp = cq.as_mut_ptr();
        let pp = pages.as_mut_ptr().cast::<u8>();
        let page_iovas = (0..n - 1)
            .map(|i| Iova(pp as u64 + i as u64 * 4096))
            .collect();
        let mem = QueueMem {
            sq: sqp,
            sq_iova: Iova(sqp as u64),
            cq: cqp,
            cq_iova: Iova(cqp as u64),
            pages: pp,
            page_iovas,
            entries,
            owner: Box::new((sq, cq, pages)),
        };
        let mut bar = Box::new([0u32; 2048]);
        // SAFETY: the boxed array outlives the region (both live in `Fake`, the queue is
        // dropped first as it is declared first).
        let region =
            unsafe { MmioRegion::from_raw(VirtAddr::from_ptr(bar.as_mut_ptr()), 8192, "fake BAR") };
        let q = QueueCore::new(1, mem, &region, 0x1008, 0x100c, Arc::new(Identity)).unwrap();
        Fake {
            q,
            sq: sqp,
            cq: cqp,
            pages: pp,
            bar,
            dev_sq_head: 0,
            dev_cq_tail: 0,
            dev_phase: true,
        }
    }

    impl Fake {
        pub fn sq_doorbell(&self) -> u32 {
            // SAFETY: plain memory written volatilely by the queue.
            unsafe { std::ptr::read_volatile(&self.bar[0x1008 / 4]) }
        }
        pub fn cq_doorbell(&self) -> u32 {
            // SAFETY: as above.
            unsafe { std::ptr::read_volatile(&self.bar[0x100c / 4]) }
        }
        /// The fake device: fetch every doorbelled SQE.
        pub fn fetch(&mut self) -> Vec<Sqe> {
            let tail = self.sq_doorbell() as u16;
            let mut out = Vec::new();
            while self.dev_sq_head != tail {
                // SAFETY: in range of the SQ ring.
                out.push(unsafe {
                    std::ptr::read_volatile(self.sq.add(self.dev_sq_head as usize))
                });
                self.dev_sq_head = (self.dev_sq_head + 1) % self.q.entries();
            }
            out
        }
        /// The fake device: post a completion.
        pub fn post(&mut self, cid: u16, status: Status, dw0: u32) {
            let cqe = Cqe {
                dw0,
                dw1: 0,
                sqhd: self.dev_sq_head,
                sqid: 1,
                cid,
                status: (status.0 << 1) | self.dev_phase as u16,
            };
            // SAFETY: in range of the CQ ring.
            unsafe { std::ptr::write_volatile(self.cq.add(self.dev_cq_tail as usize), cqe) };
            self.dev_cq_tail += 1;
            if self.dev_cq_tail == self.q.entries() {
                self.dev_cq_tail = 0;
                self.dev_phase = !self.dev_phase;
            }
        }
    }

    type Log = Arc<Mutex<Vec<(u64, std::result::Result<Completion, String>)>>>;

    fn cb(log: &Log, tag: u64) -> DoneInner {
        let l = log.clone();
        DoneInner::User(Done::callback(move |r| {
            l.lock().unwrap().push((tag, r.map_err(|e| e.to_string())))
        }))
    }

    fn read_cmd(slba: u64, nlb: u64, max: u64, va: u64) -> Cmds<'static> {
        Cmds::Blocks {
            sqe: Sqe::new(io_opc::READ, 0, 1),
            slba,
            nlb,
            bs: 512,
            max_nlb: max,
            data: Some(VirtAddr(va)),
        }
    }

    #[test]
    fn phase_wraps_and_doorbells_batch() {
        let mut f = fake(4); // 3 commands at most
        let log: Log = Default::default();
        let mut buf = vec![0u8; 4096 * 4];
        let va = (buf.as_mut_ptr() as u64 + 4095) & !4095;
        let mut none = |_: u64, _: Result<Completion>| {};
        // Several rounds so the CQ wraps (and the phase flips) more than once.
        let mut tag = 0;
        for round in 0..5 {
            for _ in 0..3 {
                f.q.submit(&read_cmd(tag, 1, 8, va), cb(&log, tag), None, 0)
                    .map_err(|e| e.0)
                    .unwrap();
                tag += 1;
            }
            // Not visible before the flush.
            let before = f.sq_doorbell();
            assert_eq!(f.fetch().len(), 0);
            f.q.flush();
            assert_ne!(f.sq_doorbell(), before, "round {round}");
            let cmds = f.fetch();
            assert_eq!(cmds.len(), 3);
            // Queue full: all 3 slots busy.
            let e =
                f.q.submit(&read_cmd(0, 1, 8, va), cb(&log, 99), None, 0)
                    .map_err(|e| e.0)
                    .unwrap_err();
            assert!(matches!(e, Error::QueueFull { depth: 3 }), "{e}");
            for c in &cmds {
                assert_eq!(c.opcode(), io_opc::READ);
                f.post(c.cid(), Status::SUCCESS, 7);
            }
            // Process only 2 first: the doorbell moves once, to the 2nd entry.
            assert_eq!(f.q.process(2, &mut none), 2);
            let h = f.cq_doorbell();
            assert_eq!(f.q.process(16, &mut none), 1);
            assert_eq!(f.cq_doorbell(), (h + 1) % 4);
            assert_eq!(f.q.process(16, &mut none), 0);
            assert_eq!(f.q.outstanding_cmds(), 0);
        }
        let l = log.lock().unwrap();
        assert_eq!(l.len(), 15);
        for (i, (t, r)) in l.iter().enumerate() {
            assert_eq!(*t, i as u64);
            assert_eq!(r.as_ref().unwrap().cdw0, 7);
        }
    }

    #[test]
    fn stale_phase_entries_are_not_consumed() {
        let mut f = fake(8);
        let mut none = |_: u64, _: Result<Completion>| {};
        // An entry with the wrong phase (as left by a previous lap) is not a completion.
        // SAFETY: slot 0 of the CQ.
        unsafe {
            std::ptr::write_volatile(
                f.cq,
                Cqe {
                    cid: 0,
                    status: 0,
                    ..Default::default()
                },
            )
        };
        assert_eq!(f.q.process(8, &mut none), 0);
        // A completion for a command id nobody submitted is ignored, not a crash.
        f.post(5, Status::SUCCESS, 0);
        assert_eq!(f.q.process(8, &mut none), 1);
        assert_eq!(f.q.outstanding_cmds(), 0);
    }

    #[test]
    fn mdts_split_fires_once_with_first_error() {
        let mut f = fake(16);
        let log: Log = Default::default();
        let mut buf = vec![0u8; 64 * 1024 + 8192];
        let va = (buf.as_mut_ptr() as u64 + 4095) & !4095;
        // 100 blocks of 512 B, at most 16 blocks (8 KiB) per command: 7 commands.
        f.q.submit(&read_cmd(1000, 100, 16, va), cb(&log, 1), None, 0)
            .map_err(|e| e.0)
            .unwrap();
        f.q.flush();
        let cmds = f.fetch();
        assert_eq!(cmds.len(), 7);
        let mut lba = 1000u64;
        for (i, c) in cmds.iter().enumerate() {
            let slba = c.cdw10 as u64 | ((c.cdw11 as u64) << 32);
            let nlb = (c.cdw12 & 0xffff) + 1;
            assert_eq!(slba, lba);
            assert_eq!(nlb, if i < 6 { 16 } else { 4 });
            assert_eq!(c.prp1, va + (lba - 1000) * 512);
            if nlb == 16 {
                assert_eq!(c.prp2, c.prp1 + 4096, "two pages, PRP2 = second page");
            } else {
                assert_eq!(c.prp2, 0);
            }
            lba += nlb as u64;
        }
        let mut none = |_: u64, _: Result<Completion>| {};
        // Complete out of order, one with LBA out of range.
        for (i, c) in cmds.iter().enumerate().rev() {
            let st = if i == 3 {
                Status::new(0, 0x80)
            } else {
                Status::SUCCESS
            };
            f.post(c.cid(), st, 0);
            f.q.process(1, &mut none);
            assert_eq!(
                log.lock().unwrap().len(),
                usize::from(i == 0),
                "callback only after the last"
            );
        }
        let l = log.lock().unwrap();
        assert!(
            l[0].1.as_ref().unwrap_err().contains("LBA out of range"),
            "{:?}",
            l[0]
        );
    }

    #[test]
    fn prp_list_goes_to_the_tracker_page() {
        let mut f = fake(4);
        let log: Log = Default::default();
        let mut buf = vec![0u8; 5 * 4096];
        let va = (buf.as_mut_ptr() as u64 + 4095) & !4095;
        // 16 KiB read: PRP1 + list of 3.
        f.q.submit(&read_cmd(0, 32, 1024, va), cb(&log, 1), None, 0)
            .map_err(|e| e.0)
            .unwrap();
        f.q.flush();
        let c = f.fetch()[0];
        assert_eq!(c.prp1, va);
        let page = f.pages as u64 + c.cid() as u64 * 4096;
        assert_eq!(c.prp2, page);
        for i in 0..3u64 {
            // SAFETY: the tracker page is plain memory.
            let e = unsafe { std::ptr::read_volatile((page as *const u64).add(i as usize)) };
            assert_eq!(e, va + (i + 1) * 4096);
        }
    }

    #[test]
    fn failed_submit_queues_nothing_and_fail_all_completes_everything() {
        let mut f = fake(8);
        let log: Log = Default::default();
        let mut buf = vec![0u8; 8192];
        let va = (buf.as_mut_ptr() as u64 + 4095) & !4095;
        // Misaligned buffer: refused, nothing queued.
        let e =
            f.q.submit(&read_cmd(0, 1, 8, va + 2), cb(&log, 1), None, 0)
                .map_err(|e| e.0)
                .unwrap_err();
        assert!(matches!(e, Error::BadBuffer { .. }));
        // More commands than the queue holds: refused as a bad argument, not "full".
        let e =
            f.q.submit(&read_cmd(0, 100, 1, va), cb(&log, 1), None, 0)
                .map_err(|e| e.0)
                .unwrap_err();
        assert!(matches!(e, Error::BadArgument { .. }), "{e}");
        f.q.flush();
        assert_eq!(f.fetch().len(), 0);
        assert_eq!(f.q.outstanding_cmds(), 0);
        for t in 0..3 {
            f.q.submit(&read_cmd(t, 1, 8, va), cb(&log, t), None, 0)
                .map_err(|e| e.0)
                .unwrap();
        }
        let mut none = |_: u64, _: Result<Completion>| {};
        assert_eq!(f.q.fail_all(&Error::Reset, &mut none), 3);
        f.q.reinit();
        assert_eq!(f.q.outstanding_cmds(), 0);
        let l = log.lock().unwrap();
        assert_eq!(l.len(), 3);
        assert!(l
            .iter()
            .all(|(_, r)| r.as_ref().unwrap_err().contains("reset")));
    }

    #[test]
    fn timeouts_are_found_and_reported() {
        let mut f = fake(8);
        let log: Log = Default::default();
        let mut buf = vec![0u8; 8192];
        let va = (buf.as_mut_ptr() as u64 + 4095) & !4095;
        f.q.timeout_ms = 5;
        f.q.submit(&read_cmd(0, 1, 8, va), cb(&log, 1), None, 100)
            .map_err(|e| e.0)
            .unwrap();
        f.q.submit(&read_cmd(1, 1, 8, va), cb(&log, 2), None, 500)
            .map_err(|e| e.0)
            .unwrap();
        assert!(f.q.expired(150, 100).is_empty());
        let ex = f.q.expired(250, 100);
        assert_eq!(ex.len(), 1);
        assert!(!ex[0].1);
        f.q.mark_abort_sent(ex[0].0, 250);
        assert!(f.q.expired(300, 100).is_empty());
        assert_eq!(f.q.expired(700, 100).len(), 2);
        f.q.flush();
        f.fetch();
        // The aborted command completes with "abort requested": reported as a timeout.
        f.post(ex[0].0, Status::new(0, 0x07), 0);
        let mut none = |_: u64, _: Result<Completion>| {};
        f.q.process(8, &mut none);
        let l = log.lock().unwrap();
        assert!(
            l[0].1.as_ref().unwrap_err().contains("within 5 ms"),
            "{:?}",
            l[0]
        );
    }
}
