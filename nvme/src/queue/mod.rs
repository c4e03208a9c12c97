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
//! * Request slots and command ids are separate: a request needs one slot (none free is
//!   `QueueFull`), its commands need command ids. Commands that do not fit wait with
//!   their request in `waiting` (FIFO; new requests queue behind) and are written as
//!   completions free ids, doorbelled by the `process` that freed them.
//! * Completion entries are copied out before any of their callbacks runs. The CQ head
//!   doorbell is written once per processed batch: at once (admin queue), or, with
//!   `defer_cq_doorbell` (I/O queue pairs), by the next `flush`, right after the SQ
//!   tail doorbell of what the callbacks' owner submitted meanwhile. That is SPDK's
//!   order (its callbacks resubmit and ring the SQ doorbell before the CQ head is
//!   written): at depth 1 the device sees the next command one doorbell earlier. The
//!   lagging head never lets the CQ overflow: a controller that finds the CQ full waits
//!   for the head doorbell (NVMe 1.4 section 4.6).
//!
//! Memory the device writes (CQ, data) is read with volatile loads only; memory it reads
//! (SQ, PRP lists) is written with volatile stores.

mod mem;
mod request;
mod stats;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::VecDeque;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use eal::device::MmioRegion;
use eal::{Iova, VirtAddr};

use crate::buf::IoBuf;
use crate::dbbuf::Shadow;
use crate::error::{Error, Result};
use crate::prp::{build_prps, IovaMapper, PAGE_SIZE};
use crate::spec::{read_volatile_pod, write_volatile_pod, Cqe, Sqe, Status};

pub(crate) use mem::alloc_queue_mem;
pub(crate) use mem::QueueMem;
pub(crate) use request::{Cmds, DoneInner, Pending};
pub use request::{Completion, Done, Reap};
use request::{Req, Tracker};
pub use stats::QueueStats;

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
    /// Requests with commands still to write, oldest first.
    waiting: VecDeque<u16>,
    /// Requests that ended while being queued (no command outstanding), delivered by
    /// the next `process`.
    early_done: Vec<u16>,
    /// Completion entries of one `process` call (kept to avoid an allocation per call).
    cqe_batch: Vec<Cqe>,
    mapper: Arc<dyn IovaMapper>,
    /// Milliseconds after which a command counts as timed out (for the error).
    pub timeout_ms: u64,
    /// Write the CQ head doorbell in the next `flush` instead of in `process`.
    pub defer_cq_doorbell: bool,
    /// A CQ head doorbell write is owed (deferred mode).
    cq_db_pending: bool,
    /// Shadow doorbell words, when the controller takes them (see `crate::dbbuf`).
    shadow: Option<Shadow>,
    pub stats: QueueStats,
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
            waiting: VecDeque::new(),
            early_done: Vec::new(),
            cqe_batch: Vec::with_capacity(entries as usize),
            mapper,
            mem,
            timeout_ms: 0,
            defer_cq_doorbell: false,
            cq_db_pending: false,
            shadow: None,
            stats: QueueStats::default(),
        })
    }

    /// Use (or stop using) shadow doorbells; a queue's words start at zero, so set
    /// them before the controller creates the queue.
    pub fn set_shadow(&mut self, s: Option<Shadow>) {
        if let Some(s) = &s {
            if s.is_io() {
                s.reset();
            }
        }
        self.shadow = s;
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
    ///
    /// A request needs a request slot (one per command id): without one it is refused
    /// with [`Error::QueueFull`] and nothing was queued (SPDK's `-ENOMEM` when its
    /// request pool is empty). Commands are another matter: a request needing more
    /// commands than are free (an I/O split at MDTS, possibly more than the whole
    /// queue holds) is accepted, its first commands go in now and the rest as
    /// completions free slots, in submission order (SPDK queues such requests too).
    /// Requests submitted while others wait queue behind them. On error nothing was
    /// queued and `done`/`buf` come back.
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
        if self.free_reqs.is_empty() {
            return Err((
                Error::QueueFull {
                    depth: self.outstanding_cmds(),
                },
                done,
                buf,
            ));
        }
        if self.waiting.is_empty() && n <= self.free_cids.len() as u64 {
            return self.submit_now(cmds, done, buf, now);
        }
        // Queued: check the whole request first, so no later part of it can fail.
        if let Err(e) = self.validate(cmds, n) {
            return Err((e, done, buf));
        }
        let Some(req) = self.free_reqs.pop() else {
            return Err((Error::QueueFull { depth: 0 }, done, buf));
        };
        self.reqs[req as usize] = Req {
            done: Some(done),
            buf,
            remaining: n as u32,
            commands: n as u32,
            err: None,
            cdw0: 0,
            status: 0,
            in_use: true,
            pending: Some(Pending::of(cmds)),
        };
        self.waiting.push_back(req);
        self.pump(now);
        Ok(())
    }

    /// Everything a queued request will need, checked up front: a command count that
    /// fits the completion bookkeeping, payload size, and PRPs for every command.
    fn validate(&self, cmds: &Cmds<'_>, n: u64) -> Result<()> {
        if n > u64::from(u32::MAX) {
            return Err(Error::BadArgument {
                what: "submit an I/O".into(),
                why: format!("it needs {n} commands"),
            });
        }
        let prps = |va: VirtAddr, len: u64| {
            build_prps(va, len, &*self.mapper, Iova(0), |_, _| {}).map(|_| ())
        };
        match cmds {
            Cmds::Single { data, payload, .. } => {
                if payload.is_some_and(|p| p.len() as u64 > PAGE_SIZE) {
                    return Err(Error::BadArgument {
                        what: "submit a command".into(),
                        why: "payload over 4 KiB".into(),
                    });
                }
                if let Some((va, len)) = data {
                    prps(*va, *len)?;
                }
            }
            Cmds::Blocks {
                nlb,
                bs,
                max_nlb,
                data: Some(va),
                ..
            } => {
                let mut done = 0;
                while done < *nlb {
                    let c = (*nlb - done).min(*max_nlb);
                    prps(va.add(done * bs), c * bs)?;
                    done += c;
                }
            }
            Cmds::Blocks { data: None, .. } => {}
        }
        Ok(())
    }

    /// Write waiting requests' commands while command ids are free; returns how many
    /// were written (the caller rings the doorbell).
    fn pump(&mut self, now: u64) -> usize {
        let mut put = 0;
        while let Some(&req) = self.waiting.front() {
            while !self.free_cids.is_empty() {
                let r = &mut self.reqs[req as usize];
                let (sqe, data, payload, last) = match r.pending.as_mut() {
                    None => break,
                    Some(Pending::Blocks {
                        sqe,
                        slba,
                        done,
                        nlb,
                        bs,
                        max_nlb,
                        data,
                    }) => {
                        let c = (*nlb - *done).min(*max_nlb);
                        let mut s = *sqe;
                        s.set_lba_range(*slba + *done, c as u32);
                        let d = data.map(|va| (va.add(*done * *bs), c * *bs));
                        *done += c;
                        (s, d, None, *done == *nlb)
                    }
                    Some(Pending::Single { .. }) => match r.pending.take() {
                        Some(Pending::Single { sqe, data, payload }) => (sqe, data, payload, true),
                        _ => break,
                    },
                };
                if let Err(e) = self.put_one(req, sqe, data, payload.as_deref(), now) {
                    // Not expected after `validate`; the request ends with this error
                    // once its submitted commands complete.
                    let r = &mut self.reqs[req as usize];
                    let left = 1 + r.pending.take().map_or(0, |p| p.commands_left()) as u32;
                    r.remaining = r.remaining.saturating_sub(left);
                    r.err.get_or_insert(e);
                    if r.remaining == 0 {
                        self.early_done.push(req);
                    }
                    break;
                }
                put += 1;
                if last {
                    self.reqs[req as usize].pending = None;
                    break;
                }
            }
            if self.reqs[req as usize].pending.is_some() {
                return put; // out of command ids
            }
            self.waiting.pop_front();
        }
        put
    }

    /// Write one command of request `req` at the tail and commit it.
    fn put_one(
        &mut self,
        req: u16,
        sqe: Sqe,
        data: Option<(VirtAddr, u64)>,
        payload: Option<&[u8]>,
        now: u64,
    ) -> Result<()> {
        let Some(&cid) = self.free_cids.last() else {
            return Err(Error::QueueFull {
                depth: self.outstanding_cmds(),
            });
        };
        self.write_sqe(cid, self.sq_tail, sqe, data, payload)?;
        self.free_cids.pop();
        self.trk[cid as usize] = Tracker {
            req,
            active: true,
            abort_sent: false,
            tsc: now,
        };
        self.sq_tail = self.next(self.sq_tail);
        Ok(())
    }

    #[inline]
    fn next(&self, i: u16) -> u16 {
        if i + 1 == self.entries {
            0
        } else {
            i + 1
        }
    }

    /// Build command `sqe` (id `cid`: PRPs or payload in its tracker page) into SQ slot
    /// `tail`, beyond the doorbelled tail.
    fn write_sqe(
        &self,
        cid: u16,
        tail: u16,
        mut sqe: Sqe,
        data: Option<(VirtAddr, u64)>,
        payload: Option<&[u8]>,
    ) -> Result<()> {
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
                // SAFETY: `page` is this tracker's 4 KiB page, i < 4096; the device
                // does not read it while the tracker is free.
                unsafe { std::ptr::write_volatile(page.add(i), *b) };
            }
            sqe.prp1 = page_iova.0;
            sqe.prp2 = 0;
        }
        if let Some((va, len)) = data {
            let prps = build_prps(va, len, &*self.mapper, page_iova, |i, v| {
                // SAFETY: i < 512 entries of this tracker's page (build_prps caps the
                // list at one page).
                unsafe { write_volatile_pod(page.cast::<u64>().add(i), v) };
            })?;
            sqe.prp1 = prps.prp1;
            sqe.prp2 = prps.prp2;
        }
        // SAFETY: `tail < entries`; the slot is free (at most entries-1 commands are
        // outstanding) and invisible to the device until the doorbell.
        unsafe { write_volatile_pod(self.mem.sq.add(tail as usize), sqe) };
        Ok(())
    }

    /// All of a request's commands fit now: write them beyond the doorbelled tail and
    /// commit only if every one built (all or nothing).
    #[allow(clippy::result_large_err)]
    fn submit_now(
        &mut self,
        cmds: &Cmds<'_>,
        done: DoneInner,
        buf: Option<IoBuf>,
        now: u64,
    ) -> std::result::Result<(), (Error, DoneInner, Option<IoBuf>)> {
        let Some(&req) = self.free_reqs.last() else {
            return Err((
                Error::QueueFull {
                    depth: self.outstanding_cmds(),
                },
                done,
                buf,
            ));
        };
        let used = self.free_cids.len();
        let mut tail = self.sq_tail;
        let mut k = 0usize;
        let r: Result<()> = match cmds {
            Cmds::Single { sqe, data, payload } => {
                let cid = self.free_cids[used - 1];
                self.write_sqe(cid, tail, *sqe, *data, *payload).map(|()| {
                    tail = self.next(tail);
                    k = 1;
                })
            }
            Cmds::Blocks {
                sqe,
                slba,
                nlb,
                bs,
                max_nlb,
                data,
            } => (|| {
                let mut done_blocks = 0u64;
                while done_blocks < *nlb {
                    let c = (*nlb - done_blocks).min(*max_nlb);
                    let mut s = *sqe;
                    s.set_lba_range(slba + done_blocks, c as u32);
                    let d = data.map(|va| (va.add(done_blocks * bs), c * bs));
                    let cid = self.free_cids[used - 1 - k];
                    self.write_sqe(cid, tail, s, d, None)?;
                    tail = self.next(tail);
                    k += 1;
                    done_blocks += c;
                }
                Ok(())
            })(),
        };
        if let Err(e) = r {
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
            pending: None,
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

    /// Ring the SQ tail doorbell if anything was queued since the last ring, and the
    /// CQ head doorbell if one is owed (deferred mode): with MMIO doorbells the SQ tail
    /// first (the device starts on the new commands one trap earlier); with shadow
    /// doorbells the CQ head first, as its MMIO write is rare (the controller reads the
    /// shadow when it posts), so the controller never sees more completions owed than
    /// the CQ holds and never waits for a head doorbell that is not coming.
    #[inline]
    pub fn flush(&mut self) {
        if self.cq_db_pending && self.shadow.is_some() {
            self.cq_db_pending = false;
            self.ring_cq();
        }
        if self.sq_tail != self.db_tail {
            // R1: publishes the SQEs written above before the doorbell write that lets
            // the device fetch them (pairs with the device's read after the doorbell).
            fence(Ordering::Release);
            let st = &mut self.stats;
            st.sq_batches += 1;
            st.sqes += u64::from(self.sq_tail.wrapping_sub(self.db_tail) % self.entries);
            if self.shadow.is_none_or(|s| s.sq(self.sq_tail)) {
                st.sq_mmio += 1;
                // SAFETY: the doorbell offset was checked against the live BAR in `new`.
                unsafe { std::ptr::write_volatile(self.sq_db, self.sq_tail as u32) };
            }
            self.db_tail = self.sq_tail;
        }
        if self.cq_db_pending {
            self.cq_db_pending = false;
            self.ring_cq();
        }
    }

    /// Tell the controller the CQ head (shadow first, MMIO if it asks).
    #[inline]
    fn ring_cq(&mut self) {
        self.stats.cq_batches += 1;
        if self.shadow.is_none_or(|s| s.cq(self.cq_head)) {
            self.stats.cq_mmio += 1;
            // SAFETY: doorbell offset checked in `new`.
            unsafe { std::ptr::write_volatile(self.cq_db, self.cq_head as u32) };
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
        for req in std::mem::take(&mut self.early_done) {
            self.finish_req(req, None, f);
        }
        // Copy the new entries out before any callback runs (a callback may submit).
        let mut batch = std::mem::take(&mut self.cqe_batch);
        batch.clear();
        while batch.len() < max {
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
            batch.push(unsafe { read_volatile_pod(self.mem.cq.add(self.cq_head as usize)) });
            self.cq_head += 1;
            if self.cq_head == self.entries {
                self.cq_head = 0;
                self.phase = !self.phase;
            }
        }
        let n = batch.len();
        self.stats.polls += 1;
        self.stats.cqes += n as u64;
        self.stats.busy_polls += u64::from(n > 0);
        if n > 0 && ring {
            if self.defer_cq_doorbell {
                self.cq_db_pending = true;
            } else {
                self.ring_cq();
            }
        }
        for cqe in &batch {
            self.complete_cqe(cqe, f);
        }
        self.cqe_batch = batch;
        if ring && n > 0 && !self.waiting.is_empty() {
            let now = if self.timeout_ms != 0 {
                eal::timer::rdtsc()
            } else {
                0
            };
            if self.pump(now) > 0 {
                self.flush();
            }
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
        r.pending = None;
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
        self.waiting.clear();
        self.early_done.clear();
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
        self.cq_db_pending = false;
        if let Some(s) = &self.shadow {
            if s.is_io() {
                s.reset();
            }
        }
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
