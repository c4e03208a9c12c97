//! The nvme bdev module (SPDK's `bdev_nvme`) over Ferroplane's user-space driver: one
//! bdev per active namespace of an attached controller (`<name>n<nsid>`), and on each
//! thread that opens a channel, one I/O queue pair of its own ([`nvme::QPair`]) polled
//! by a poller of that thread. The PCIe transport that attaches controllers for the
//! RPCs is [`super::nvme_pcie`].
//!
//! # Data buffers
//! A read, write or compare whose data is one iovec in EAL hugepage memory goes to the
//! device as is (PRPs over the caller's buffer, no copy). Anything else (several
//! iovecs, or memory without an IOVA) goes through a bounce buffer from the EAL heap,
//! copied before a write or compare and after a read, so every request a caller can
//! describe works. The driver splits at the controller's MDTS and queues commands that
//! do not fit in the queue pair.
//!
//! # Doorbells
//! A submission from outside the poller updates the SQ tail at once; submissions made
//! by completion callbacks inside the poller are written to the SQ and the tail is
//! updated once at the end of that poll, for the whole batch (the driver writes the
//! shadow doorbell, and the MMIO one only when the controller asks).
//!
//! # Failures
//! * The queue pair out of request slots: the I/O goes back to the layer as
//!   [`IoStatus::NoMem`] and is retried after a completion.
//! * A controller reset (a bdev reset, or one the driver ran after a fatal status or a
//!   timeout): I/O that was in flight is retried once the queue pair is re-created.
//! * Device gone (unbound, removed): I/O fails; the transport's monitor unregisters the
//!   controller's bdevs, so every open descriptor gets the remove event.

use std::sync::{Arc, Mutex, MutexGuard};

use eal::{Eal, VirtAddr};
use framework::subsystem::ConfigCall;
use framework::{poller, PollStatus, Poller};
use nvme::{Controller, Done, IoBuf, Namespace, QPair, QPairOptions, Reap};
use serde_json::json;

use crate::bdev::{BdevInfo, BdevModule, ModuleChannel};
use crate::io::{BdevIo, IoStatus, IoType};

/// ONCS (Identify Controller, NVMe 1.4 figure 247) bits the module looks at.
const ONCS_COMPARE: u16 = 1 << 0;
const ONCS_DSM: u16 = 1 << 2;
const ONCS_WRITE_ZEROES: u16 = 1 << 3;
/// Blocks one Dataset Management range covers at most (NLB is 32 bits).
const DSM_RANGE_MAX: u64 = u32::MAX as u64;
/// Ranges one Dataset Management command takes.
const DSM_RANGES_MAX: usize = 256;

/// What a controller's bdevs share: the controller, the attach call that recreates it.
pub(crate) struct CtrlrCtx {
    pub(crate) name: String,
    pub(crate) ctrlr: Controller,
    pub(crate) eal: Eal,
    /// `bdev_nvme_attach_controller` parameters (for `save_config`).
    pub(crate) attach: serde_json::Value,
    /// Queue pair entries per channel.
    pub(crate) io_queue_size: u16,
}

/// One namespace as a bdev.
pub(crate) struct NvmeNs {
    pub(crate) ctx: Arc<CtrlrCtx>,
    pub(crate) ns: Namespace,
    /// The first namespace's bdev writes the controller's attach call.
    pub(crate) writes_config: bool,
}

impl NvmeNs {
    /// The bdev's properties.
    pub(crate) fn info(&self) -> BdevInfo {
        let c = self.ctx.ctrlr.data();
        BdevInfo {
            name: format!("{}n{}", self.ctx.name, self.ns.id),
            aliases: Vec::new(),
            uuid: crate::uuid::Uuid::random(),
            product_name: "NVMe disk".into(),
            block_size: self.ns.block_size as u32,
            num_blocks: self.ns.size_blocks,
            optimal_io_boundary: 0,
            write_cache: c.vwc & 1 != 0,
            // The driver splits at MDTS and queues what does not fit: no limit here.
            max_transfer_blocks: 0,
        }
    }
}

impl BdevModule for NvmeNs {
    fn module_name(&self) -> &str {
        "nvme"
    }

    fn io_type_supported(&self, t: IoType) -> bool {
        let oncs = self.ctx.ctrlr.data().oncs;
        match t {
            IoType::Read | IoType::Write | IoType::Flush | IoType::Reset => true,
            IoType::Compare => oncs & ONCS_COMPARE != 0,
            IoType::Unmap => oncs & ONCS_DSM != 0,
            IoType::WriteZeroes => oncs & ONCS_WRITE_ZEROES != 0,
            // Fused compare-and-write is not in the driver.
            IoType::CompareAndWrite => false,
        }
    }

    fn create_channel(&self) -> std::result::Result<Box<dyn ModuleChannel>, String> {
        let qp = self
            .ctx
            .ctrlr
            .alloc_io_qpair(QPairOptions {
                size: self.ctx.io_queue_size,
                ..Default::default()
            })
            .map_err(|e| format!("no I/O queue pair: {e}"))?;
        NvmeChannel::new(self.ctx.clone(), self.ns.clone(), qp)
            .map(|c| Box::new(c) as Box<dyn ModuleChannel>)
    }

    fn write_config(&self, _info: &BdevInfo) -> Option<ConfigCall> {
        self.writes_config.then(|| ConfigCall {
            method: "bdev_nvme_attach_controller".into(),
            params: Some(self.ctx.attach.clone()),
        })
    }

    fn info_json(&self) -> Option<serde_json::Value> {
        let c = self.ctx.ctrlr.data();
        let (maj, min, ter) = self.ctx.ctrlr.version();
        Some(json!({ "nvme": [{
            "pci_address": self.ctx.ctrlr.addr(),
            "trid": { "trtype": "PCIe", "traddr": self.ctx.ctrlr.addr() },
            "ctrlr_data": {
                "model_number": c.model(),
                "serial_number": c.serial(),
                "firmware_revision": c.firmware(),
                "oncs": c.oncs,
            },
            "vs": { "nvme_version": format!("{maj}.{min}.{ter}") },
            "ns_data": { "id": self.ns.id },
            "max_transfer_bytes": self.ctx.ctrlr.max_transfer(),
        }]}))
    }
}

/// An I/O at the device: the bdev I/O and, if its data went through one, the bounce
/// buffer.
struct Slot {
    io: BdevIo,
    bounce: Option<IoBuf>,
}

/// A channel's state: its queue pair and the I/Os in flight, indexed by tag.
struct ChanState {
    qp: QPair,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// Ended without reaching the device; completed by the poller (never inside the
    /// submit call, so a callback that submits again cannot recurse).
    ended: Vec<(BdevIo, IoStatus)>,
    /// Tags and results of one poll (kept to avoid an allocation per poll).
    reaped: Vec<(u64, nvme::Result<nvme::Completion>)>,
    /// The poller is completing I/O: submissions from its callbacks leave the SQ tail
    /// doorbell to the end of the poll, one for the whole batch.
    in_poll: bool,
}

/// A thread's channel of one nvme bdev.
pub(crate) struct NvmeChannel {
    ctx: Arc<CtrlrCtx>,
    ns: Namespace,
    st: Arc<Mutex<ChanState>>,
    poller: Option<Poller>,
}

fn lock(m: &Mutex<ChanState>) -> MutexGuard<'_, ChanState> {
    // Only the channel's own thread takes it (the poller and submit run there).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a driver result ends a bdev I/O.
fn status_of(r: &nvme::Result<nvme::Completion>) -> IoStatus {
    match r {
        Ok(_) => IoStatus::Success,
        Err(nvme::Error::CompareFailure { .. }) => IoStatus::Miscompare,
        // The controller was reset under the I/O and the queue pair re-created: the
        // layer submits it again.
        Err(nvme::Error::Reset) => IoStatus::NoMem,
        Err(_) => IoStatus::Failed,
    }
}

/// How a refused submit ends a bdev I/O.
fn submit_status(e: &nvme::Error) -> IoStatus {
    match e {
        nvme::Error::QueueFull { .. } => IoStatus::NoMem,
        _ => IoStatus::Failed,
    }
}

impl NvmeChannel {
    fn new(
        ctx: Arc<CtrlrCtx>,
        ns: Namespace,
        qp: QPair,
    ) -> std::result::Result<NvmeChannel, String> {
        let cap = qp.capacity();
        let st = Arc::new(Mutex::new(ChanState {
            qp,
            slots: (0..cap).map(|_| None).collect(),
            free: (0..cap).rev().collect(),
            ended: Vec::new(),
            reaped: Vec::with_capacity(cap),
            in_poll: false,
        }));
        let s2 = st.clone();
        let mut out: Vec<(BdevIo, IoStatus)> = Vec::with_capacity(cap);
        let poller = poller::register("bdev_nvme_poll", 0, move || {
            {
                let mut g = lock(&s2);
                let st = &mut *g;
                std::mem::swap(&mut out, &mut st.ended);
                let reaped = &mut st.reaped;
                st.qp
                    .process_completions_with(Reap::All, |tag, r| reaped.push((tag, r)));
                for (tag, r) in st.reaped.drain(..) {
                    let i = tag as usize;
                    let Some(slot) = st.slots.get_mut(i).and_then(Option::take) else {
                        eal::log_err!("bdev nvme: completion for unknown tag {tag}");
                        continue;
                    };
                    st.free.push(i);
                    let status = status_of(&r);
                    if let Some(b) = &slot.bounce {
                        if status == IoStatus::Success && slot.io.io_type() == IoType::Read {
                            slot.io.copy_in(b.as_slice());
                        }
                    }
                    out.push((slot.io, status));
                }
            }
            if out.is_empty() {
                return PollStatus::Idle;
            }
            lock(&s2).in_poll = true;
            for (io, status) in out.drain(..) {
                io.complete(status);
            }
            // What the callbacks submitted goes to the device now, with one SQ tail
            // update (and the CQ head update owed since the reap).
            let mut g = lock(&s2);
            g.in_poll = false;
            g.qp.flush_submissions();
            PollStatus::Busy
        })
        .map_err(|e| e.to_string())?;
        Ok(NvmeChannel {
            ctx,
            ns,
            st,
            poller: Some(poller),
        })
    }

    /// Hand `io` to the queue pair, or say how it ends at once.
    fn start(&self, st: &mut ChanState, io: BdevIo) -> std::result::Result<(), (BdevIo, IoStatus)> {
        let ns = &self.ns;
        let (lba, nlb) = (io.offset_blocks(), io.num_blocks());
        match io.io_type() {
            t @ (IoType::Read | IoType::Write | IoType::Compare) => {
                let Some(i) = st.free.pop() else {
                    return Err((io, IoStatus::NoMem));
                };
                let submit = |qp: &mut QPair, va: VirtAddr| {
                    // SAFETY: `va` is either the caller's iovec (the bdev submit
                    // contract keeps it valid and untouched until the I/O completes,
                    // which happens only after the queue pair hands back its tag) or
                    // the bounce buffer, which stays in the slot until then.
                    unsafe {
                        match t {
                            IoType::Read => qp.read_raw(ns, lba, nlb, va, Done::Tag(i as u64)),
                            IoType::Write => qp.write_raw(ns, lba, nlb, va, Done::Tag(i as u64)),
                            _ => qp.compare_raw(ns, lba, nlb, va, Done::Tag(i as u64)),
                        }
                    }
                };
                let iovs = io.iovs();
                let direct = iovs.len() == 1 && iovs[0].len >= io.len_bytes();
                if direct {
                    match submit(&mut st.qp, VirtAddr::from_ptr(iovs[0].base)) {
                        Ok(()) => {
                            st.slots[i] = Some(Slot { io, bounce: None });
                            return Ok(());
                        }
                        // Not DMA-able memory (or not aligned): bounce below.
                        Err(nvme::Error::BadBuffer { .. }) => {}
                        Err(e) => {
                            st.free.push(i);
                            return Err((io, submit_status(&e)));
                        }
                    }
                }
                let mut b = match IoBuf::alloc(&self.ctx.eal, io.len_bytes()) {
                    Ok(b) => b,
                    Err(e) => {
                        st.free.push(i);
                        eal::log_warn!("bdev nvme: no bounce buffer: {e}; retried later");
                        return Err((io, IoStatus::NoMem));
                    }
                };
                if t != IoType::Read {
                    io.copy_out(b.as_mut_slice());
                }
                match submit(&mut st.qp, b.va()) {
                    Ok(()) => {
                        st.slots[i] = Some(Slot {
                            io,
                            bounce: Some(b),
                        });
                        Ok(())
                    }
                    Err(e) => {
                        st.free.push(i);
                        Err((io, submit_status(&e)))
                    }
                }
            }
            t @ (IoType::WriteZeroes | IoType::Unmap | IoType::Flush) => {
                let Some(i) = st.free.pop() else {
                    return Err((io, IoStatus::NoMem));
                };
                let tag = Done::Tag(i as u64);
                let r = match t {
                    IoType::WriteZeroes => st.qp.write_zeroes(ns, lba, nlb, tag),
                    IoType::Flush => st.qp.flush(ns, tag),
                    _ => {
                        let mut ranges = Vec::new();
                        let (mut off, end) = (lba, lba + nlb);
                        while off < end {
                            let n = (end - off).min(DSM_RANGE_MAX);
                            ranges.push((off, n as u32));
                            off += n;
                        }
                        if ranges.len() > DSM_RANGES_MAX {
                            st.free.push(i);
                            eal::log_err!(
                                "bdev nvme: unmap of {nlb} blocks needs {} ranges (at most {DSM_RANGES_MAX})",
                                ranges.len()
                            );
                            return Err((io, IoStatus::Failed));
                        }
                        st.qp.deallocate(ns, &ranges, tag)
                    }
                };
                match r {
                    Ok(()) => {
                        st.slots[i] = Some(Slot { io, bounce: None });
                        Ok(())
                    }
                    Err(e) => {
                        st.free.push(i);
                        Err((io, submit_status(&e)))
                    }
                }
            }
            IoType::Reset => {
                // Synchronous (admin commands); every queue pair of the controller,
                // this one included, retries its in-flight I/O after re-creating its
                // queues.
                let status = match self.ctx.ctrlr.reset() {
                    Ok(()) => IoStatus::Success,
                    Err(e) => {
                        eal::log_err!("bdev nvme: reset of {} failed: {e}", self.ctx.name);
                        IoStatus::Failed
                    }
                };
                Err((io, status))
            }
            IoType::CompareAndWrite => Err((io, IoStatus::Failed)),
        }
    }
}

impl ModuleChannel for NvmeChannel {
    fn submit(&self, io: BdevIo) {
        let mut g = lock(&self.st);
        match self.start(&mut g, io) {
            // Outside the poller's completions, the device is told at once (SPDK's
            // PCIe qpair rings at submit unless it is completing).
            Ok(()) if !g.in_poll => g.qp.flush_submissions(),
            Ok(()) => {}
            Err(ended) => g.ended.push(ended),
        }
    }
}

impl Drop for NvmeChannel {
    fn drop(&mut self) {
        if let Some(p) = self.poller.take() {
            let _ = p.unregister();
        }
        // The layer destroys a channel only when nothing is outstanding on it; should
        // anything be left, it fails here, on the channel's thread. The queue pair is
        // deleted when the state drops.
        let left: Vec<(BdevIo, IoStatus)> = {
            let mut g = lock(&self.st);
            let st = &mut *g;
            let mut v: Vec<_> = st.ended.drain(..).collect();
            for s in st.slots.iter_mut().filter_map(Option::take) {
                v.push((s.io, IoStatus::Failed));
            }
            v
        };
        for (io, s) in left {
            io.complete(s);
        }
    }
}
