//! The controller: bring-up state machine, admin queue, identify data, namespaces, I/O
//! queue ids, reset, hot-removal detection.
//!
//! # Control path
//! Everything here is control path: admin commands are synchronous (submit, then poll the
//! admin CQ with a timeout) and serialised by one mutex, so any thread may call any
//! method of [`Controller`] (it is `Send + Sync`, a cheap `Clone`).
//!
//! # Bring-up ([`InitState`])
//! Disable (CC.EN=0) → wait CSTS.RDY=0 → program AQA/ASQ/ACQ → enable → wait RDY=1 (both
//! waits bounded by CAP.TO) → Identify Controller → Set Features Number of Queues →
//! Identify Active Namespace list (CNS 02h) → Identify Namespace (CNS 00h) for each →
//! Ready. Each transition is logged at debug level; CSTS.CFS and all-ones register reads
//! (device gone) are checked at every wait and every admin poll.
//!
//! # Reset
//! [`Controller::reset`] (also run automatically when a queue pair sees CSTS.CFS, or a
//! timed-out command whose abort did not help) holds the admin mutex throughout, bumps the
//! controller's *generation*, and re-runs the register part of the bring-up and Set
//! Features. Disabling the controller deletes every I/O queue on the device side. Each
//! [`QPair`] notices the new generation on its next call, reaps what the
//! device completed before the reset, fails the rest with [`Error::Reset`], and re-creates
//! its queues with the same id (the admin mutex orders that after the reset).

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use eal::device::{Device, DmaBuf, MmioRegion};
use eal::pci::PciAddr;
use eal::{Eal, VirtAddr};

use crate::error::{Error, Result};
use crate::prp::{IovaMapper, PAGE_SIZE};
use crate::qpair::{QPair, QPairOptions};
use crate::queue::{Cmds, Completion, Done, DoneInner, QueueCore, QueueMem};
use crate::spec::{
    self, admin_opc, cc, cns, csts, feat, read_volatile_bytes, reg, Cap, DeallocRead,
    IdentifyController, IdentifyNamespace, LbaFormat, Sqe,
};

/// Controller options.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// Admin queue entries (2..=4096; the controller's CAP.MQES caps it).
    pub admin_queue_size: u16,
    /// I/O queue pairs to ask for (Set Features Number of Queues).
    pub io_queues: u16,
    /// Time allowed for one admin command.
    pub admin_timeout: Duration,
    /// Reset the controller automatically on CSTS.CFS or an abort that did not help.
    pub auto_reset: bool,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            admin_queue_size: 32,
            io_queues: 16,
            admin_timeout: Duration::from_secs(10),
            auto_reset: true,
        }
    }
}

/// States of the bring-up state machine (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitState {
    /// Clear CC.EN.
    Disable,
    /// Wait for CSTS.RDY = 0.
    WaitNotReady,
    /// Program AQA, ASQ, ACQ.
    ConfigureAdminQueue,
    /// Set CC (EN, entry sizes, page size, command set).
    Enable,
    /// Wait for CSTS.RDY = 1.
    WaitReady,
    /// Identify Controller (CNS 01h).
    IdentifyController,
    /// Set Features: Number of Queues (FID 07h).
    SetNumberOfQueues,
    /// Identify Active Namespace ID list (CNS 02h).
    IdentifyActiveNamespaces,
    /// Identify Namespace (CNS 00h) for each active namespace.
    IdentifyNamespaces,
    /// Done.
    Ready,
}

/// A namespace as identified.
#[derive(Clone, Debug)]
pub struct Namespace {
    /// Namespace id.
    pub id: u32,
    /// NSZE: size in logical blocks.
    pub size_blocks: u64,
    /// NCAP: capacity in logical blocks.
    pub capacity_blocks: u64,
    /// NUSE: utilisation in logical blocks.
    pub used_blocks: u64,
    /// Logical block size in bytes (of the format in use).
    pub block_size: u64,
    /// Metadata bytes per block (of the format in use).
    pub metadata_size: u16,
    /// Index of the LBA format in use.
    pub format_index: usize,
    /// The LBA formats the namespace supports (NLBAF + 1 of them).
    pub formats: Vec<LbaFormat>,
    /// What deallocated blocks read as (DLFEAT).
    pub dealloc_read: DeallocRead,
    /// DLFEAT raw.
    pub dlfeat: u8,
    /// Blocks one data command may move (MDTS and the PRP list limit).
    pub max_xfer_blocks: u64,
    /// The raw identify data.
    pub data: Box<IdentifyNamespace>,
}

impl Namespace {
    /// Size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_blocks * self.block_size
    }
}

pub(crate) const STATE_READY: u16 = 0;
pub(crate) const STATE_RESETTING: u16 = 1;
pub(crate) const STATE_FAILED: u16 = 2;

pub(crate) struct Hw {
    pub dev: Device,
    pub bar: MmioRegion,
    pub cap: Cap,
    pub addr: String,
}

impl Hw {
    /// CSTS, with all-ones confirmed as device gone.
    pub fn csts(&self) -> Result<u32> {
        let v = self.bar.read32(reg::CSTS)?;
        if v == u32::MAX {
            match self.dev.check_alive() {
                Err(e) => {
                    return Err(Error::DeviceGone {
                        addr: self.addr.clone(),
                        why: e.to_string(),
                    })
                }
                Ok(()) => {
                    return Err(Error::DeviceGone {
                        addr: self.addr.clone(),
                        why: "CSTS reads all-ones".into(),
                    });
                }
            }
        }
        Ok(v)
    }

    fn wait_csts(&self, what: &str, fatal_ok: bool, done: impl Fn(u32) -> bool) -> Result<()> {
        let ms = self.cap.timeout_ms().max(500);
        let start = Instant::now();
        loop {
            let v = self.csts()?;
            if done(v) {
                return Ok(());
            }
            if !fatal_ok && v & csts::CFS != 0 {
                return Err(Error::ControllerFatal { what: what.into() });
            }
            if start.elapsed() > Duration::from_millis(ms) {
                return Err(Error::Timeout {
                    what: format!("{what} on {} (CSTS={v:#x})", self.addr),
                    ms,
                });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

pub(crate) struct Admin {
    pub q: QueueCore,
}

impl Admin {
    /// Run one admin command synchronously.
    pub fn exec(
        &mut self,
        hw: &Hw,
        sqe: Sqe,
        data: Option<(VirtAddr, u64)>,
        timeout: Duration,
    ) -> Result<Completion> {
        let cmds = Cmds::Single {
            sqe,
            data,
            payload: None,
        };
        self.q
            .submit(
                &cmds,
                DoneInner::User(Done::Tag(0)),
                None,
                eal::timer::rdtsc(),
            )
            .map_err(|e| e.0)?;
        self.q.flush();
        let start = Instant::now();
        let mut next_check = Duration::from_millis(1);
        let mut result = None;
        loop {
            self.q.process(8, &mut |_, r| result = Some(r));
            if let Some(r) = result.take() {
                return r;
            }
            let el = start.elapsed();
            if el >= next_check {
                next_check = el + Duration::from_millis(1);
                if hw.csts()? & csts::CFS != 0 {
                    return Err(Error::ControllerFatal {
                        what: format!("run admin command {:#04x}", sqe.opcode()),
                    });
                }
                if el > timeout {
                    return Err(Error::Timeout {
                        what: format!(
                            "complete admin command {:#04x} on {}",
                            sqe.opcode(),
                            hw.addr
                        ),
                        ms: timeout.as_millis() as u64,
                    });
                }
                std::thread::sleep(Duration::from_micros(20));
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// Heap memory freed on drop.
pub(crate) struct HeapBlock {
    pub ptr: *mut u8,
    pub eal: Eal,
}

// SAFETY: owned heap block; the EAL heap is thread-safe.
unsafe impl Send for HeapBlock {}

impl Drop for HeapBlock {
    fn drop(&mut self) {
        // SAFETY: allocated from this EAL's heap, owned by us alone; the owner (a queue)
        // guarantees the device no longer uses it (or leaks us instead).
        let _ = unsafe { self.eal.heap().free(self.ptr) };
    }
}

/// Rings (IOVA-contiguous) and one PRP page per tracker (looked up per page).
pub(crate) fn alloc_queue_mem(dev: &Device, eal: &Eal, entries: u16) -> Result<QueueMem> {
    let n = entries as usize;
    let sq: DmaBuf = dev.dma_alloc(n * 64)?;
    let cq: DmaBuf = dev.dma_alloc(n * 16)?;
    let pages = eal
        .heap()
        .zmalloc((n - 1) * PAGE_SIZE as usize, PAGE_SIZE as usize)?;
    let block = HeapBlock {
        ptr: pages.as_ptr(),
        eal: eal.clone(),
    };
    let mut page_iovas = Vec::with_capacity(n - 1);
    for i in 0..n - 1 {
        let va = VirtAddr::from_ptr(pages.as_ptr()).add(i as u64 * PAGE_SIZE);
        match eal.iova(va) {
            Some(io) => page_iovas.push(io),
            None => {
                return Err(Error::BadBuffer {
                    why: format!("PRP page {va} has no IOVA"),
                })
            }
        }
    }
    Ok(QueueMem {
        sq: sq.as_ptr().cast(),
        sq_iova: sq.iova(),
        cq: cq.as_ptr().cast(),
        cq_iova: cq.iova(),
        pages: pages.as_ptr(),
        page_iovas,
        entries,
        owner: Box::new((sq, cq, block)),
    })
}

pub(crate) struct Shared {
    pub hw: Hw,
    pub eal: Eal,
    pub admin: Mutex<Admin>,
    pub generation: AtomicU64,
    pub state: AtomicU16,
    pub gone: AtomicBool,
    pub gone_why: Mutex<Option<String>>,
    pub cdata: Box<IdentifyController>,
    pub namespaces: Vec<Namespace>,
    pub granted: AtomicU16,
    pub qids: Mutex<Vec<bool>>,
    pub max_xfer: u64,
    pub opts: ControllerOptions,
    pub mapper: Arc<dyn IovaMapper>,
    pub vs: u32,
}

impl Shared {
    pub fn admin(&self) -> MutexGuard<'_, Admin> {
        self.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn mark_gone(&self, why: &str) {
        let mut g = self.gone_why.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            eal::log_err!("nvme {}: device gone: {why}", self.hw.addr);
            *g = Some(why.to_string());
        }
        self.gone.store(true, Ordering::Release);
    }

    pub fn gone_error(&self) -> Error {
        let why = self
            .gone_why
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        Error::DeviceGone {
            addr: self.hw.addr.clone(),
            why,
        }
    }

    /// Record `e` if it says the device is gone; return it.
    pub fn note(&self, e: Error) -> Error {
        if let Error::DeviceGone { why, .. } = &e {
            self.mark_gone(why);
        }
        e
    }

    pub fn create_io_queues(&self, admin: &mut Admin, q: &QueueCore) -> Result<()> {
        let t = self.opts.admin_timeout;
        let size = (q.entries() as u32 - 1) << 16;
        let mut c = Sqe::new(admin_opc::CREATE_CQ, 0, 0);
        c.prp1 = q.cq_iova().0;
        c.cdw10 = size | q.qid as u32;
        c.cdw11 = 1; // PC: physically contiguous; IEN = 0 (polled)
        admin.exec(&self.hw, c, None, t)?;
        let mut s = Sqe::new(admin_opc::CREATE_SQ, 0, 0);
        s.prp1 = q.sq_iova().0;
        s.cdw10 = size | q.qid as u32;
        s.cdw11 = ((q.qid as u32) << 16) | 1; // CQID, PC, QPRIO urgent/RR (0)
        if let Err(e) = admin.exec(&self.hw, s, None, t) {
            let mut d = Sqe::new(admin_opc::DELETE_CQ, 0, 0);
            d.cdw10 = q.qid as u32;
            let _ = admin.exec(&self.hw, d, None, t);
            return Err(e);
        }
        Ok(())
    }

    pub fn release_qid(&self, qid: u16) {
        let mut q = self.qids.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = q.get_mut(qid as usize - 1) {
            *s = false;
        }
    }

    /// Reset unless another reset already moved the generation past `seen`.
    pub fn reset_from(&self, seen: Option<u64>) -> Result<()> {
        let mut admin = self.admin();
        if let Some(g) = seen {
            if self.generation.load(Ordering::Acquire) != g {
                return Ok(()); // someone else reset already
            }
        }
        if self.gone.load(Ordering::Acquire) {
            return Err(self.gone_error());
        }
        if let Err(e) = self.hw.dev.check_alive() {
            self.mark_gone(&e.to_string());
            return Err(self.gone_error());
        }
        self.state.store(STATE_RESETTING, Ordering::Release);
        // R2: publishes "the device queues are gone"; pairs with A2 in QPair::sync.
        self.generation.fetch_add(1, Ordering::AcqRel);
        eal::log_notice!("nvme {}: resetting the controller", self.hw.addr);
        let r = bring_up(&self.hw, &mut admin, &self.opts, false);
        match r {
            Ok(up) => {
                if up.cdata.serial() != self.cdata.serial() {
                    eal::log_warn!(
                        "nvme {}: serial changed across reset ({} -> {})",
                        self.hw.addr,
                        self.cdata.serial(),
                        up.cdata.serial()
                    );
                }
                self.granted.store(up.granted, Ordering::Release);
                self.state.store(STATE_READY, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                let e = self.note(e);
                self.state.store(STATE_FAILED, Ordering::Release);
                Err(e)
            }
        }
    }
}

pub(crate) struct BroughtUp {
    pub cdata: Box<IdentifyController>,
    pub granted: u16,
    pub namespaces: Vec<Namespace>,
    pub max_xfer: u64,
}

fn identify(
    hw: &Hw,
    admin: &mut Admin,
    buf: &DmaBuf,
    cns_: u32,
    nsid: u32,
    t: Duration,
) -> Result<()> {
    // SAFETY: 4 KiB of our DMA buffer, no command in flight on it.
    unsafe { std::ptr::write_bytes(buf.as_ptr(), 0, 4096) };
    let mut s = Sqe::new(admin_opc::IDENTIFY, 0, nsid);
    s.cdw10 = cns_;
    admin.exec(hw, s, Some((VirtAddr::from_ptr(buf.as_ptr()), 4096)), t)?;
    Ok(())
}

/// The bring-up state machine. With `full` false (reset), stops after Set Features (plus
/// Identify Controller to check the identity).
pub(crate) fn bring_up(
    hw: &Hw,
    admin: &mut Admin,
    opts: &ControllerOptions,
    full: bool,
) -> Result<BroughtUp> {
    let t = opts.admin_timeout;
    let buf = hw.dev.dma_alloc(4096)?;
    let mut st = InitState::Disable;
    let mut cdata: Option<Box<IdentifyController>> = None;
    let mut granted = 0u16;
    let mut nsids: Vec<u32> = Vec::new();
    let mut namespaces = Vec::new();
    let mut max_xfer = crate::prp::MAX_PRP_TRANSFER;
    loop {
        let next = match st {
            InitState::Disable => {
                let c = hw.bar.read32(reg::CC)?;
                if c & cc::EN != 0 {
                    hw.bar.write32(reg::CC, c & !cc::EN)?;
                }
                InitState::WaitNotReady
            }
            InitState::WaitNotReady => {
                hw.wait_csts("disable the controller (wait for CSTS.RDY=0)", true, |v| {
                    v & csts::RDY == 0
                })?;
                InitState::ConfigureAdminQueue
            }
            InitState::ConfigureAdminQueue => {
                admin.q.fail_all(&Error::Reset, &mut |_, _| {});
                admin.q.reinit();
                let n = admin.q.entries() as u32 - 1;
                hw.bar.write32(reg::AQA, (n << 16) | n)?;
                write64(&hw.bar, reg::ASQ, admin.q.sq_iova().0)?;
                write64(&hw.bar, reg::ACQ, admin.q.cq_iova().0)?;
                InitState::Enable
            }
            InitState::Enable => {
                if hw.cap.css() & 1 == 0 {
                    return Err(Error::Unsupported {
                        what: "use the NVM command set (CAP.CSS bit 0 clear)".into(),
                    });
                }
                if hw.cap.mps_min() > PAGE_SIZE {
                    return Err(Error::Unsupported {
                        what: format!(
                            "use 4 KiB memory pages (CAP.MPSMIN is {} bytes)",
                            hw.cap.mps_min()
                        ),
                    });
                }
                let v = cc::EN | cc::CSS_NVM | cc::AMS_RR | cc::IOSQES_64 | cc::IOCQES_16;
                hw.bar.write32(reg::CC, v)?;
                InitState::WaitReady
            }
            InitState::WaitReady => {
                hw.wait_csts("enable the controller (wait for CSTS.RDY=1)", false, |v| {
                    v & csts::RDY != 0
                })?;
                InitState::IdentifyController
            }
            InitState::IdentifyController => {
                identify(hw, admin, &buf, cns::CONTROLLER, 0, t)?;
                // SAFETY: 4096 bytes of our DMA buffer; the command completed.
                let c = unsafe { read_volatile_bytes::<IdentifyController>(buf.as_ptr()) };
                if let Some(m) = c.max_transfer(PAGE_SIZE) {
                    max_xfer = max_xfer.min(m);
                }
                cdata = Some(c);
                InitState::SetNumberOfQueues
            }
            InitState::SetNumberOfQueues => {
                let want = opts.io_queues.clamp(1, 0xfffe) as u32 - 1;
                let mut s = Sqe::new(admin_opc::SET_FEATURES, 0, 0);
                s.cdw10 = feat::NUMBER_OF_QUEUES;
                s.cdw11 = want | (want << 16);
                let c = admin.exec(hw, s, None, t)?;
                let nsq = (c.cdw0 & 0xffff) as u16;
                let ncq = (c.cdw0 >> 16) as u16;
                granted = nsq.min(ncq).saturating_add(1).min(want as u16 + 1);
                if full {
                    InitState::IdentifyActiveNamespaces
                } else {
                    InitState::Ready
                }
            }
            InitState::IdentifyActiveNamespaces => {
                identify(hw, admin, &buf, cns::ACTIVE_NS_LIST, 0, t)?;
                for i in 0..1024 {
                    // SAFETY: entry i of the 4 KiB list in our DMA buffer.
                    let id = unsafe { std::ptr::read_volatile(buf.as_ptr().cast::<u32>().add(i)) };
                    if id == 0 {
                        break;
                    }
                    nsids.push(id);
                }
                InitState::IdentifyNamespaces
            }
            InitState::IdentifyNamespaces => {
                for &id in &nsids {
                    identify(hw, admin, &buf, cns::NAMESPACE, id, t)?;
                    // SAFETY: 4096 bytes of our DMA buffer; the command completed.
                    let d = unsafe { read_volatile_bytes::<IdentifyNamespace>(buf.as_ptr()) };
                    if d.nsze == 0 {
                        continue;
                    }
                    let f = d.lba_format();
                    let bs = f.block_size();
                    if bs == 0 {
                        eal::log_warn!(
                            "nvme {}: namespace {id} has an unusable LBA format {:#x}; skipped",
                            hw.addr,
                            f.0
                        );
                        continue;
                    }
                    let nlbaf = (d.nlbaf as usize + 1).min(16);
                    namespaces.push(Namespace {
                        id,
                        size_blocks: d.nsze,
                        capacity_blocks: d.ncap,
                        used_blocks: d.nuse,
                        block_size: bs,
                        metadata_size: f.ms(),
                        format_index: d.flbas_index(),
                        formats: d.lbaf[..nlbaf].to_vec(),
                        dealloc_read: d.dealloc_read_value(),
                        dlfeat: d.dlfeat,
                        max_xfer_blocks: (max_xfer / bs).clamp(1, 65536),
                        data: d,
                    });
                }
                InitState::Ready
            }
            InitState::Ready => break,
        };
        eal::log_debug!("nvme {}: {st:?} -> {next:?}", hw.addr);
        st = next;
    }
    let cdata = cdata.ok_or_else(|| Error::NotReady {
        why: "bring-up ended without identify data".into(),
    })?;
    Ok(BroughtUp {
        cdata,
        granted,
        namespaces,
        max_xfer,
    })
}

/// Write a 64-bit register as two 32-bit halves, low first (NVMe 1.4 section 3.1 allows
/// 32-bit accesses to 64-bit registers).
fn write64(bar: &MmioRegion, off: u64, v: u64) -> Result<()> {
    bar.write32(off, v as u32)?;
    bar.write32(off + 4, (v >> 32) as u32)?;
    Ok(())
}

/// An NVMe controller opened through `eal::device` (VFIO or UIO). `Send + Sync`, cheap
/// to clone; see the module docs.
#[derive(Clone)]
pub struct Controller {
    pub(crate) sh: Arc<Shared>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("addr", &self.sh.hw.addr)
            .field("cdata", &self.sh.cdata)
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// Open the controller at `addr` (bound to vfio-pci or uio_pci_generic) and bring it
    /// up.
    pub fn open(eal: &Eal, addr: PciAddr, opts: ControllerOptions) -> Result<Controller> {
        let dev = Device::open(eal, addr)?;
        Self::from_device(eal, dev, opts)
    }

    /// Bring up an already opened device.
    pub fn from_device(eal: &Eal, dev: Device, opts: ControllerOptions) -> Result<Controller> {
        let addr = dev.addr().to_string();
        if !eal.memory().dma_capable() {
            return Err(Error::NotReady {
                why: "the EAL runs with --no-huge: no DMA memory; run with hugepages".into(),
            });
        }
        dev.enable_bus_master()?;
        let bar = dev.bar(0)?;
        let cap_lo = bar.read32(reg::CAP)?;
        let cap_hi = bar.read32(reg::CAP + 4)?;
        if cap_lo == u32::MAX && cap_hi == u32::MAX {
            return Err(Error::DeviceGone {
                addr,
                why: "CAP reads all-ones".into(),
            });
        }
        let cap = Cap(cap_lo as u64 | ((cap_hi as u64) << 32));
        let vs = bar.read32(reg::VS)?;
        let hw = Hw {
            dev,
            bar,
            cap,
            addr: addr.clone(),
        };
        let aqs = opts
            .admin_queue_size
            .clamp(2, 4096)
            .min(cap.max_queue_entries().min(4096) as u16);
        let mapper: Arc<dyn IovaMapper> = Arc::new(eal.clone());
        let mem = alloc_queue_mem(&hw.dev, eal, aqs)?;
        let q = QueueCore::new(
            0,
            mem,
            &hw.bar,
            cap.sq_doorbell(0),
            cap.cq_doorbell(0),
            mapper.clone(),
        )?;
        let mut admin = Admin { q };
        let up = bring_up(&hw, &mut admin, &opts, true)?;
        let (maj, min, ter) = spec::version(vs);
        eal::log_info!(
            "nvme {addr}: ready: '{}' serial '{}' fw '{}', NVMe {maj}.{min}.{ter}, {} namespace(s), {} I/O queue(s), max transfer {} KiB",
            up.cdata.model(),
            up.cdata.serial(),
            up.cdata.firmware(),
            up.namespaces.len(),
            up.granted,
            up.max_xfer / 1024
        );
        let granted = up.granted;
        Ok(Controller {
            sh: Arc::new(Shared {
                hw,
                eal: eal.clone(),
                admin: Mutex::new(admin),
                generation: AtomicU64::new(0),
                state: AtomicU16::new(STATE_READY),
                gone: AtomicBool::new(false),
                gone_why: Mutex::new(None),
                cdata: up.cdata,
                namespaces: up.namespaces,
                granted: AtomicU16::new(granted),
                qids: Mutex::new(vec![false; granted as usize]),
                max_xfer: up.max_xfer,
                opts,
                mapper,
                vs,
            }),
        })
    }

    /// PCI address.
    pub fn addr(&self) -> &str {
        &self.sh.hw.addr
    }

    /// The device (backend, config space).
    pub fn device(&self) -> &Device {
        &self.sh.hw.dev
    }

    /// Identify Controller data (as read at open).
    pub fn data(&self) -> &IdentifyController {
        &self.sh.cdata
    }

    /// CAP.
    pub fn cap(&self) -> Cap {
        self.sh.hw.cap
    }

    /// VS as `(major, minor, tertiary)`.
    pub fn version(&self) -> (u16, u8, u8) {
        spec::version(self.sh.vs)
    }

    /// Active namespaces, ascending id.
    pub fn namespaces(&self) -> &[Namespace] {
        &self.sh.namespaces
    }

    /// Namespace `id`.
    pub fn namespace(&self, id: u32) -> Option<&Namespace> {
        self.sh.namespaces.iter().find(|n| n.id == id)
    }

    /// Largest transfer of one command in bytes (MDTS, capped at 2 MiB).
    pub fn max_transfer(&self) -> u64 {
        self.sh.max_xfer
    }

    /// I/O queue pairs the controller granted.
    pub fn io_queues_granted(&self) -> u16 {
        self.sh.granted.load(Ordering::Acquire)
    }

    /// How many resets happened.
    pub fn generation(&self) -> u64 {
        self.sh.generation.load(Ordering::Acquire)
    }

    /// True once the device was found gone.
    pub fn is_gone(&self) -> bool {
        self.sh.gone.load(Ordering::Acquire)
    }

    /// CSTS now (device-gone aware).
    pub fn csts(&self) -> Result<u32> {
        self.sh.hw.csts().map_err(|e| self.sh.note(e))
    }

    /// Run an admin command synchronously (control path). `data` must be EAL memory the
    /// caller owns for the duration of the call.
    ///
    /// # Safety
    /// If `data` is given, the device may read or write `[va, va+len)` until this returns:
    /// it must be EAL memory not accessed through references meanwhile.
    pub unsafe fn admin_raw(&self, sqe: Sqe, data: Option<(VirtAddr, u64)>) -> Result<Completion> {
        if self.is_gone() {
            return Err(self.sh.gone_error());
        }
        let mut a = self.sh.admin();
        a.exec(&self.sh.hw, sqe, data, self.sh.opts.admin_timeout)
            .map_err(|e| self.sh.note(e))
    }

    /// Get Features `fid` (dword 0 of the completion).
    pub fn get_features(&self, fid: u8) -> Result<u32> {
        let mut s = Sqe::new(admin_opc::GET_FEATURES, 0, 0);
        s.cdw10 = fid as u32;
        // SAFETY: no data buffer.
        Ok(unsafe { self.admin_raw(s, None) }?.cdw0)
    }

    /// Abort command `cid` of submission queue `sqid` (admin Abort, 08h). Ok means the
    /// controller accepted the request; dword 0 bit 0 set means it did not abort it.
    pub fn abort(&self, sqid: u16, cid: u16) -> Result<bool> {
        let mut s = Sqe::new(admin_opc::ABORT, 0, 0);
        s.cdw10 = sqid as u32 | ((cid as u32) << 16);
        // SAFETY: no data buffer.
        let c = unsafe { self.admin_raw(s, None) }?;
        Ok(c.cdw0 & 1 == 0)
    }

    /// Reset the controller: disable, re-create the admin queue, enable, Set Features.
    /// Every queue pair fails its outstanding commands with [`Error::Reset`] and
    /// re-creates its queues on its next call.
    pub fn reset(&self) -> Result<()> {
        self.sh.reset_from(None)
    }

    /// Allocate an I/O queue pair for the calling thread. See [`QPair`].
    pub fn alloc_io_qpair(&self, opts: QPairOptions) -> Result<QPair> {
        QPair::new(self.sh.clone(), opts)
    }

    /// Normal shutdown (CC.SHN) and wait for CSTS.SHST = complete. Queue pairs should be
    /// dropped first.
    pub fn shutdown(&self) -> Result<()> {
        let _a = self.sh.admin();
        let hw = &self.sh.hw;
        let c = hw.bar.read32(reg::CC)?;
        hw.bar.write32(reg::CC, (c & !(3 << 14)) | cc::SHN_NORMAL)?;
        hw.wait_csts("shut down the controller", true, |v| {
            v & csts::SHST_MASK == csts::SHST_COMPLETE
        })
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.gone.load(Ordering::Acquire) {
            // The device may not be stopped: keep the admin queue memory.
            if let Ok(a) = self.admin.get_mut() {
                a.q.leak_memory();
            }
            return;
        }
        // Disable so the device stops using the admin queue memory we are about to free.
        let _ = self.hw.bar.write32(reg::CC, 0);
        let _ = self
            .hw
            .wait_csts("disable the controller", true, |v| v & csts::RDY == 0);
    }
}
