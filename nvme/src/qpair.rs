//! I/O queue pairs: the data path.
//!
//! # Contract
//! * One [`QPair`] per thread. It is `Send` (it may be created on one thread and moved to
//!   the lcore that uses it) but not `Sync`: every method takes `&mut self`, nothing is
//!   shared with other queue pairs, and the data path takes no lock and makes no system
//!   call. (The admin mutex is taken only on rare paths: queue creation, re-creation
//!   after a reset, aborts of timed-out commands, deletion.)
//! * Submitting only writes the SQ entry; the tail doorbell is rung once per batch, by
//!   [`QPair::flush_submissions`] or at the start of [`QPair::process_completions`].
//!   Completions are found with the phase tag; the CQ head doorbell is written once per
//!   processed batch.
//! * Queue full is [`Error::QueueFull`]: every request slot (one per command id) is in
//!   use; nothing was queued, nothing blocks; the safe APIs hand the buffer back in
//!   [`Rejected`].
//! * An I/O bigger than the controller's maximum transfer (MDTS, capped at 2 MiB) is split
//!   into several commands; its callback runs once, after the last, with the first error.
//!   Any size works on any queue: commands that find no free command id wait in the queue
//!   pair and are submitted, in order, as completions free ids (as SPDK queues requests),
//!   so only [`process_completions`](QPair::process_completions) moves them on.
//! * [`process_completions`](QPair::process_completions) takes a [`Reap`]: `Reap::All` is
//!   SPDK's `max_completions = 0` ("no limit"), `Reap::AtMost(n)` its `n > 0`; there is no
//!   integer whose meaning differs between the two APIs.
//! * Callbacks run on the thread calling `process_completions*`, inside that call.
//!
//! # Buffer lifetime
//! * Safe APIs ([`QPair::read`], [`QPair::write`], [`QPair::compare`]) take an
//!   [`IoBuf`] **by value**; the queue pair owns it while the device may access it and the
//!   callback gets it back. No reference to the memory exists meanwhile.
//! * Raw APIs ([`QPair::read_raw`] ...) take a virtual address and are `unsafe`: the
//!   caller promises the memory is EAL memory that stays allocated and untouched until
//!   the request's completion is delivered (that is how `nvme-perf` avoids an allocation
//!   per I/O).
//!
//! # Failures
//! Every `process_completions` call checks, at most every 10 ms, CSTS (fatal status →
//! automatic controller reset; all-ones → device gone) and command timeouts (first an
//! admin Abort; if the command is still outstanding one timeout later, a controller
//! reset). About once a second it also asks the kernel whether the device is being
//! removed (a few system calls). After a reset, outstanding requests fail with
//! [`Error::Reset`] and the queue pair re-creates its queues itself; after removal every
//! call fails with [`Error::DeviceGone`].

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use eal::VirtAddr;

use crate::buf::IoBuf;
use crate::error::{Error, Result};
use crate::namespace::Namespace;
use crate::queue::{
    alloc_queue_mem, Cmds, Completion, Done, DoneInner, QueueCore, QueueStats, Reap,
};
use crate::shared::{Shared, STATE_READY};
use crate::spec::{admin_opc, csts, io_opc, reg, DsmRange, Sqe, DSM_ATTR_DEALLOCATE};

/// The data-moving block commands, one opcode each: a safe method that takes an owned
/// [`IoBuf`] and gives it back in the callback, and an `unsafe` raw method that takes an
/// address (see the module docs on buffer lifetime).
macro_rules! data_commands {
    ($(
        $(#[$sdoc:meta])* safe $safe:ident,
        $(#[$rdoc:meta])* raw $raw:ident,
        opcode $opc:expr;
    )*) => {$(
        $(#[$sdoc])*
        pub fn $safe(
            &mut self,
            ns: &Namespace,
            lba: u64,
            buf: IoBuf,
            cb: impl FnOnce(Result<Completion>, IoBuf) + Send + 'static,
        ) -> std::result::Result<(), Rejected> {
            self.submit_buf($opc, ns, lba, buf, cb)
        }

        $(#[$rdoc])*
        pub unsafe fn $raw(
            &mut self,
            ns: &Namespace,
            lba: u64,
            nlb: u64,
            va: VirtAddr,
            done: Done,
        ) -> Result<()> {
            self.raw($opc, ns, lba, nlb, va, done)
        }
    )*};
}

/// Queue pair options.
#[derive(Clone, Debug)]
pub struct QPairOptions {
    /// Entries per ring (commands in flight: one less). Capped by CAP.MQES.
    pub size: u16,
    /// Command timeout (`None`: never time out).
    pub timeout: Option<Duration>,
}

impl Default for QPairOptions {
    fn default() -> Self {
        QPairOptions {
            size: 256,
            timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// A submit refused before anything reached the device; the buffer comes back.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Rejected {
    /// Why.
    #[source]
    pub error: Error,
    /// The caller's buffer (always `Some` from the safe submit APIs; an `Option` only so
    /// that no path has to invent one).
    pub buf: Option<IoBuf>,
}

/// Write Zeroes moves at most 65536 blocks per command (NLB is 16 bits, 0-based).
const MAX_WRITE_ZEROES_BLOCKS: u64 = 65536;

/// An I/O submission/completion queue pair. See the module docs.
pub struct QPair {
    core: QueueCore,
    sh: Arc<Shared>,
    gen: u64,
    dead: Option<String>,
    timeout_ticks: u64,
    check_ticks: u64,
    next_check: u64,
    alive_ticks: u64,
    next_alive: u64,
    pending: Vec<(u64, Result<Completion>)>,
    _not_sync: PhantomData<Cell<()>>,
}

impl std::fmt::Debug for QPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QPair")
            .field("qid", &self.core.qid)
            .field("entries", &self.core.entries())
            .finish_non_exhaustive()
    }
}

impl QPair {
    pub(crate) fn new(sh: Arc<Shared>, opts: QPairOptions) -> Result<QPair> {
        if sh.gone.load(Ordering::Acquire) {
            return Err(sh.gone_error());
        }
        let entries = opts
            .size
            .clamp(2, 4096)
            .min(sh.hw.cap.max_queue_entries().min(4096) as u16);
        let qid = {
            let mut q = sh.qids.lock().unwrap_or_else(|p| p.into_inner());
            let granted = sh.granted.load(Ordering::Acquire) as usize;
            if q.len() < granted {
                q.resize(granted, false);
            }
            match q.iter().take(granted).position(|b| !b) {
                Some(i) => {
                    q[i] = true;
                    i as u16 + 1
                }
                None => {
                    return Err(Error::NoQueues {
                        max: granted as u16,
                    })
                }
            }
        };
        let r = (|| {
            let mem = alloc_queue_mem(&sh.hw.dev, &sh.eal, entries)?;
            let cap = sh.hw.cap;
            let mut core = QueueCore::new(
                qid,
                mem,
                &sh.hw.bar,
                cap.sq_doorbell(qid),
                cap.cq_doorbell(qid),
                sh.mapper.clone(),
            )?;
            let hz = eal::timer::tsc_hz();
            core.defer_cq_doorbell = true;
            core.set_shadow(sh.shadow_words(qid));
            core.timeout_ms = opts.timeout.map(|d| d.as_millis() as u64).unwrap_or(0);
            let mut admin = sh.admin();
            if sh.state.load(Ordering::Acquire) != STATE_READY {
                return Err(Error::NotReady {
                    why: "the controller failed its last reset".into(),
                });
            }
            sh.create_io_queues(&mut admin, &core)
                .map_err(|e| sh.note(e))?;
            let gen = sh.generation.load(Ordering::Acquire);
            drop(admin);
            let now = eal::timer::rdtsc();
            Ok(QPair {
                core,
                gen,
                dead: None,
                timeout_ticks: opts
                    .timeout
                    .map(|d| (d.as_nanos() as u64).saturating_mul(hz) / 1_000_000_000)
                    .unwrap_or(0),
                check_ticks: hz / 100,
                next_check: now + hz / 100,
                alive_ticks: hz,
                next_alive: now + hz,
                pending: Vec::new(),
                sh: sh.clone(),
                _not_sync: PhantomData,
            })
        })();
        if r.is_err() {
            sh.release_qid(qid);
        }
        r
    }

    /// Queue id.
    pub fn qid(&self) -> u16 {
        self.core.qid
    }

    /// What this queue pair did so far: batches, MMIO doorbell writes, polls (see
    /// [`QueueStats`]).
    pub fn stats(&self) -> QueueStats {
        self.core.stats
    }

    /// Commands that can be in flight at once.
    pub fn capacity(&self) -> usize {
        self.core.capacity()
    }

    /// Requests in flight (a split I/O counts once).
    pub fn outstanding(&self) -> usize {
        self.core.outstanding_reqs()
    }

    /// Bring the queue in line with the controller: device gone, or a reset since we
    /// last looked (then reap, fail the rest with [`Error::Reset`], re-create).
    fn sync(&mut self) -> Result<()> {
        if self.sh.gone.load(Ordering::Acquire) {
            let e = self.sh.gone_error();
            let pending = &mut self.pending;
            self.core.fail_all(&e, &mut |t, r| pending.push((t, r)));
            return Err(e);
        }
        // A2: pairs with R2 in Shared::reset_from (the device queues were dropped).
        if self.sh.generation.load(Ordering::Acquire) == self.gen && self.dead.is_none() {
            return Ok(());
        }
        self.recover()
    }

    fn recover(&mut self) -> Result<()> {
        let pending = &mut self.pending;
        let mut f = |t, r| pending.push((t, r));
        if self.sh.generation.load(Ordering::Acquire) != self.gen {
            self.core.reap_stale(&mut f);
            self.core.fail_all(&Error::Reset, &mut f);
            self.core.reinit();
        }
        let mut admin = self.sh.admin(); // waits for a reset in progress
        let g = self.sh.generation.load(Ordering::Acquire);
        if self.sh.state.load(Ordering::Acquire) != STATE_READY {
            self.gen = g;
            let why = "the controller failed its last reset".to_string();
            self.dead = Some(why.clone());
            return Err(Error::NotReady { why });
        }
        // The reset may have turned shadow doorbells on or off; the words start at 0.
        self.core.set_shadow(self.sh.shadow_words(self.core.qid));
        match self.sh.create_io_queues(&mut admin, &self.core) {
            Ok(()) => {
                eal::log_info!(
                    "nvme {}: queue pair {} re-created after a reset",
                    self.sh.hw.addr,
                    self.core.qid
                );
                self.gen = g;
                self.dead = None;
                Ok(())
            }
            Err(e) => {
                let e = self.sh.note(e);
                self.gen = g;
                self.dead = Some(e.to_string());
                Err(e)
            }
        }
    }

    #[allow(clippy::result_large_err)]
    fn submit_inner(
        &mut self,
        cmds: &Cmds<'_>,
        done: DoneInner,
        buf: Option<IoBuf>,
    ) -> std::result::Result<(), (Error, DoneInner, Option<IoBuf>)> {
        if let Err(e) = self.sync() {
            return Err((e, done, buf));
        }
        let now = if self.timeout_ticks != 0 {
            eal::timer::rdtsc()
        } else {
            0
        };
        self.core.submit(cmds, done, buf, now)
    }

    /// Submit commands whose completion goes to `done` (no buffer to hand back).
    fn submit_user(&mut self, cmds: &Cmds<'_>, done: Done) -> Result<()> {
        self.submit_inner(cmds, DoneInner::User(done), None)
            .map_err(|e| e.0)
    }

    fn submit_buf(
        &mut self,
        opc: u8,
        ns: &Namespace,
        lba: u64,
        buf: IoBuf,
        cb: impl FnOnce(Result<Completion>, IoBuf) + Send + 'static,
    ) -> std::result::Result<(), Rejected> {
        if !(buf.len() as u64).is_multiple_of(ns.block_size) {
            let error = Error::BadBuffer {
                why: format!(
                    "{} bytes is not a multiple of namespace {}'s {}-byte blocks",
                    buf.len(),
                    ns.id,
                    ns.block_size
                ),
            };
            return Err(Rejected {
                error,
                buf: Some(buf),
            });
        }
        let cmds = Cmds::Blocks {
            sqe: Sqe::new(opc, 0, ns.id),
            slba: lba,
            nlb: buf.len() as u64 / ns.block_size,
            bs: ns.block_size,
            max_nlb: ns.max_xfer_blocks,
            data: Some(buf.va()),
        };
        self.submit_inner(&cmds, DoneInner::WithBuf(Box::new(cb)), Some(buf))
            .map_err(|(error, _, buf)| Rejected { error, buf })
    }

    fn raw(
        &mut self,
        opc: u8,
        ns: &Namespace,
        lba: u64,
        nlb: u64,
        va: VirtAddr,
        done: Done,
    ) -> Result<()> {
        let cmds = Cmds::Blocks {
            sqe: Sqe::new(opc, 0, ns.id),
            slba: lba,
            nlb,
            bs: ns.block_size,
            max_nlb: ns.max_xfer_blocks,
            data: Some(va),
        };
        self.submit_user(&cmds, done)
    }

    data_commands! {
        /// Read `buf.len()` bytes (a multiple of the block size) from block `lba` into
        /// `buf`; `cb` gets the result and the buffer back.
        safe read,
        /// Read `nlb` blocks at `lba` into the memory at `va`.
        ///
        /// # Safety
        /// `[va, va + nlb * block size)` must be EAL memory that stays allocated, and is
        /// neither read nor written through references, until this request's completion
        /// has been delivered (the device writes it at any time until then).
        raw read_raw,
        opcode io_opc::READ;

        /// Write `buf` to block `lba`.
        safe write,
        /// Write `nlb` blocks at `lba` from the memory at `va`.
        ///
        /// # Safety
        /// As [`read_raw`](Self::read_raw); the memory must not be written meanwhile.
        raw write_raw,
        opcode io_opc::WRITE;

        /// Compare `buf` with the blocks at `lba`: a mismatch completes with
        /// [`Error::CompareFailure`].
        safe compare,
        /// Compare `nlb` blocks at `lba` with the memory at `va`.
        ///
        /// # Safety
        /// As [`write_raw`](Self::write_raw).
        raw compare_raw,
        opcode io_opc::COMPARE;
    }

    /// Write Zeroes to `nlb` blocks at `lba` (split every 65536 blocks).
    pub fn write_zeroes(&mut self, ns: &Namespace, lba: u64, nlb: u64, done: Done) -> Result<()> {
        let cmds = Cmds::Blocks {
            sqe: Sqe::new(io_opc::WRITE_ZEROES, 0, ns.id),
            slba: lba,
            nlb,
            bs: ns.block_size,
            max_nlb: MAX_WRITE_ZEROES_BLOCKS,
            data: None,
        };
        self.submit_user(&cmds, done)
    }

    /// Dataset Management with the Deallocate attribute (trim) over up to 256 ranges of
    /// `(lba, blocks)`.
    pub fn deallocate(&mut self, ns: &Namespace, ranges: &[(u64, u32)], done: Done) -> Result<()> {
        if ranges.is_empty() || ranges.len() > 256 {
            return Err(Error::BadArgument {
                what: "deallocate".into(),
                why: format!("{} ranges (1..=256 allowed)", ranges.len()),
            });
        }
        let mut payload = Vec::with_capacity(ranges.len() * 16);
        for &(slba, nlb) in ranges {
            let r = DsmRange {
                cattr: 0,
                nlb,
                slba,
            };
            payload.extend_from_slice(&r.cattr.to_le_bytes());
            payload.extend_from_slice(&r.nlb.to_le_bytes());
            payload.extend_from_slice(&r.slba.to_le_bytes());
        }
        let mut sqe = Sqe::new(io_opc::DATASET_MANAGEMENT, 0, ns.id);
        sqe.cdw10 = ranges.len() as u32 - 1;
        sqe.cdw11 = DSM_ATTR_DEALLOCATE;
        let cmds = Cmds::Single {
            sqe,
            data: None,
            payload: Some(&payload),
        };
        self.submit_user(&cmds, done)
    }

    /// Flush the namespace's volatile write cache.
    pub fn flush(&mut self, ns: &Namespace, done: Done) -> Result<()> {
        let cmds = Cmds::Single {
            sqe: Sqe::new(io_opc::FLUSH, 0, ns.id),
            data: None,
            payload: None,
        };
        self.submit_user(&cmds, done)
    }

    /// Ring the SQ tail doorbell for everything queued since the last ring.
    #[inline]
    pub fn flush_submissions(&mut self) {
        self.core.flush();
    }

    /// Ring the SQ doorbell if needed, then reap the completions `max` allows
    /// ([`Reap::All`] is SPDK's `max_completions = 0`), running their callbacks (tagged
    /// results are dropped). Returns the completion entries reaped plus the requests
    /// failed without an entry (reset, removal).
    pub fn process_completions(&mut self, max: Reap) -> usize {
        self.process_completions_with(max, |_, _| {})
    }

    /// [`process_completions`](Self::process_completions), handing tagged results
    /// (including failures found since the last call) to `f`.
    pub fn process_completions_with(
        &mut self,
        max: Reap,
        mut f: impl FnMut(u64, Result<Completion>),
    ) -> usize {
        let mut n = 0;
        if !self.pending.is_empty() {
            for (t, r) in self.pending.drain(..) {
                f(t, r);
                n += 1;
            }
        }
        if self.sync().is_err() {
            for (t, r) in self.pending.drain(..) {
                f(t, r);
                n += 1;
            }
            return n;
        }
        self.core.flush();
        n += self.core.process(max.limit(), &mut f);
        let now = eal::timer::rdtsc();
        if now >= self.next_check {
            self.next_check = now + self.check_ticks;
            self.periodic(now);
            for (t, r) in self.pending.drain(..) {
                f(t, r);
                n += 1;
            }
        }
        n
    }

    /// Health checks: CSTS, timeouts, removal. Results of failed requests go to
    /// `self.pending`.
    fn periodic(&mut self, now: u64) {
        let sh = self.sh.clone();
        let v = match sh.hw.bar.read32(reg::CSTS) {
            Ok(v) => v,
            Err(_) => return,
        };
        let mut gone = None;
        if v == u32::MAX || v & csts::CFS != 0 {
            // All-ones, or a fatal status (what a device shows when it is unbound under
            // us and loses bus mastering): ask the kernel before resetting anything.
            match sh.hw.dev.check_alive() {
                Err(e) => gone = Some(e.to_string()),
                Ok(()) if v == u32::MAX => gone = Some("CSTS reads all-ones".to_string()),
                Ok(()) => {}
            }
        } else if now >= self.next_alive {
            self.next_alive = now + self.alive_ticks;
            if let Err(e) = sh.hw.dev.check_alive() {
                gone = Some(e.to_string());
            }
        }
        if let Some(why) = gone {
            sh.mark_gone(&why);
            stop_dma(&sh);
            let _ = self.sync();
            return;
        }
        if v & csts::CFS != 0 {
            eal::log_err!("nvme {}: controller fatal status (CSTS={v:#x})", sh.hw.addr);
            if sh.opts.auto_reset {
                let _ = sh.reset_from(Some(self.gen));
                let _ = self.sync();
            } else {
                let e = Error::ControllerFatal {
                    what: "process completions".into(),
                };
                self.dead = Some(e.to_string());
                let pending = &mut self.pending;
                self.core.fail_all(&e, &mut |t, r| pending.push((t, r)));
            }
            return;
        }
        if self.timeout_ticks == 0 || self.core.outstanding_cmds() == 0 {
            return;
        }
        let expired = self.core.expired(now, self.timeout_ticks);
        let mut need_reset = false;
        for (cid, abort_sent) in expired {
            if abort_sent {
                need_reset = true;
                continue;
            }
            eal::log_warn!(
                "nvme {}: command {cid} on queue {} timed out; aborting it",
                sh.hw.addr,
                self.core.qid
            );
            let mut s = Sqe::new(admin_opc::ABORT, 0, 0);
            s.cdw10 = self.core.qid as u32 | ((cid as u32) << 16);
            let r = sh.admin().exec(&sh.hw, s, None, sh.opts.admin_timeout);
            if let Err(e) = r {
                eal::log_warn!("nvme {}: abort of command {cid} failed: {e}", sh.hw.addr);
                need_reset = true;
            }
            self.core.mark_abort_sent(cid, now);
        }
        if need_reset && sh.opts.auto_reset {
            eal::log_warn!(
                "nvme {}: timed-out command not aborted; resetting the controller",
                sh.hw.addr
            );
            let _ = sh.reset_from(Some(self.gen));
            let _ = self.sync();
        }
    }
}

/// Best effort: clear bus mastering so a device that is being taken away stops DMA into
/// buffers we are about to hand back.
fn stop_dma(sh: &Shared) {
    if let Ok(cmd) = sh.hw.dev.config_read16(eal::device::PCI_COMMAND) {
        if cmd != u16::MAX {
            let _ = sh.hw.dev.config_write16(
                eal::device::PCI_COMMAND,
                cmd & !eal::device::PCI_COMMAND_MASTER,
            );
        }
    }
}

impl Drop for QPair {
    fn drop(&mut self) {
        let sh = self.sh.clone();
        let qid = self.core.qid;
        if QueueStats::wanted() {
            eprintln!("nvme {} qpair {qid}: {}", sh.hw.addr, self.core.stats);
        }
        let mut none = |_: u64, _: Result<Completion>| {};
        let live = !sh.gone.load(Ordering::Acquire)
            && self.dead.is_none()
            && sh.generation.load(Ordering::Acquire) == self.gen;
        if !live {
            if sh.gone.load(Ordering::Acquire) {
                self.core.fail_all(&sh.gone_error(), &mut none);
                self.core.leak_memory();
            } else {
                // A reset dropped the device queues already.
                self.core.fail_all(&Error::QpairDeleted, &mut none);
            }
            sh.release_qid(qid);
            return;
        }
        self.core.flush();
        let t = sh.opts.admin_timeout;
        let mut ok = {
            let mut admin = sh.admin();
            let mut d = Sqe::new(admin_opc::DELETE_SQ, 0, 0);
            d.cdw10 = qid as u32;
            sh.generation.load(Ordering::Acquire) != self.gen
                || admin.exec(&sh.hw, d, None, t).is_ok()
        };
        // Deleting the SQ aborts its commands; their completions are in the CQ now.
        self.core.process(usize::MAX, &mut none);
        if ok {
            let mut admin = sh.admin();
            let mut d = Sqe::new(admin_opc::DELETE_CQ, 0, 0);
            d.cdw10 = qid as u32;
            ok = sh.generation.load(Ordering::Acquire) != self.gen
                || admin.exec(&sh.hw, d, None, t).is_ok();
        }
        if !ok {
            eal::log_warn!(
                "nvme {}: could not delete queue pair {qid}; leaking its memory",
                sh.hw.addr
            );
            self.core.leak_buffers();
            self.core.fail_all(&Error::QpairDeleted, &mut none);
            self.core.leak_memory();
        } else {
            self.core.fail_all(&Error::QpairDeleted, &mut none);
        }
        sh.release_qid(qid);
    }
}
