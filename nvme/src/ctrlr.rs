//! The controller: bring-up state machine, admin queue, identify data, namespaces, I/O
//! queue ids, reset, hot-removal detection.
//!
//! # Control path
//! Everything here is control path: admin commands are synchronous (submit, then poll the
//! admin CQ with a timeout) and serialised by one mutex, so any thread may call any
//! method of [`Controller`] (it is `Send + Sync`, a cheap `Clone`).
//!
//! # Bring-up ([`InitState`](crate::InitState), in `init`)
//! Disable (CC.EN=0) → wait CSTS.RDY=0 → program AQA/ASQ/ACQ → enable → wait RDY=1 (both
//! waits bounded by CAP.TO) → Identify Controller → Set Features Number of Queues →
//! Doorbell Buffer Config (shadow doorbells, when offered: see `dbbuf`) →
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
use std::sync::{Arc, Mutex};

use eal::device::Device;
use eal::pci::PciAddr;
use eal::{Eal, VirtAddr};

use crate::admin::Admin;
use crate::dbbuf::DbBuf;
use crate::error::{Error, Result};
use crate::hw::Hw;
use crate::init::{bring_up, ControllerOptions};
use crate::namespace::Namespace;
use crate::prp::IovaMapper;
use crate::qpair::{QPair, QPairOptions};
use crate::queue::{alloc_queue_mem, Completion, QueueCore};
use crate::shared::{Shared, STATE_READY};
use crate::spec::{self, admin_opc, cc, csts, reg, Cap, IdentifyController, Sqe};

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
        let dbbuf = match DbBuf::alloc(&hw.dev, cap) {
            Ok(d) => Some(d),
            Err(e) => {
                eal::log_warn!("nvme {addr}: no memory for shadow doorbells ({e})");
                None
            }
        };
        let up = bring_up(&hw, &mut admin, &opts, true, dbbuf.as_ref())?;
        let (maj, min, ter) = spec::version(vs);
        eal::log_info!(
            "nvme {addr}: ready: '{}' serial '{}' fw '{}', NVMe {maj}.{min}.{ter}, {} namespace(s), {} I/O queue(s), max transfer {} KiB, {} doorbells",
            up.cdata.model(),
            up.cdata.serial(),
            up.cdata.firmware(),
            up.namespaces.len(),
            up.granted,
            up.max_xfer / 1024,
            if up.dbbuf_on { "shadow" } else { "MMIO" }
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
                dbbuf_on: AtomicBool::new(up.dbbuf_on),
                dbbuf,
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

    /// Whether the controller takes shadow doorbells (Doorbell Buffer Config), so queue
    /// pairs write the MMIO doorbells only when it asks for them.
    pub fn shadow_doorbells(&self) -> bool {
        self.sh.dbbuf_on.load(Ordering::Acquire)
    }

    /// How many resets happened.
    pub fn generation(&self) -> u64 {
        self.sh.generation.load(Ordering::Acquire)
    }

    /// True once the device was found gone.
    pub fn is_gone(&self) -> bool {
        self.sh.gone.load(Ordering::Acquire)
    }

    /// Ask the kernel whether the device is still ours (a few system calls: release
    /// requested by an unbind, driver changed, config space all-ones); a device that is
    /// not is marked gone, so every queue pair fails with [`Error::DeviceGone`] from its
    /// next call.
    pub fn check_alive(&self) -> Result<()> {
        if self.is_gone() {
            return Err(self.sh.gone_error());
        }
        if let Err(e) = self.sh.hw.dev.check_alive() {
            self.sh.mark_gone(&e.to_string());
            return Err(self.sh.gone_error());
        }
        Ok(())
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
