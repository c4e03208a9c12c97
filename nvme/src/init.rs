//! Controller bring-up as an explicit state machine (in the manner of SPDK's
//! `nvme_ctrlr_process_init`): each [`InitState`] does one step and names the next;
//! every transition is logged at debug level. Run in full at open and, up to Set
//! Features, at every reset.

use std::time::Duration;

use crate::admin::{identify, Admin};
use crate::dbbuf::DbBuf;
use crate::error::{Error, Result};
use crate::hw::{write64, Hw};
use crate::namespace::Namespace;
use crate::prp::PAGE_SIZE;
use crate::spec::{
    admin_opc, cc, cns, csts, feat, read_volatile_bytes, reg, IdentifyController,
    IdentifyNamespace, Sqe,
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

/// OACS bit 8: the controller supports Doorbell Buffer Config (NVMe 1.4 figure 247).
const OACS_DOORBELL_BUFFER_CONFIG: u16 = 1 << 8;

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
    /// Doorbell Buffer Config (shadow doorbells), if the controller offers it.
    ConfigureDoorbellBuffer,
    /// Identify Active Namespace ID list (CNS 02h).
    IdentifyActiveNamespaces,
    /// Identify Namespace (CNS 00h) for each active namespace.
    IdentifyNamespaces,
    /// Done.
    Ready,
}

/// What bring-up learnt.
pub(crate) struct BroughtUp {
    pub cdata: Box<IdentifyController>,
    pub granted: u16,
    pub namespaces: Vec<Namespace>,
    pub max_xfer: u64,
    /// Shadow doorbells are configured.
    pub dbbuf_on: bool,
}

/// The bring-up state machine. With `full` false (reset), stops after Set Features (plus
/// Identify Controller to check the identity).
pub(crate) fn bring_up(
    hw: &Hw,
    admin: &mut Admin,
    opts: &ControllerOptions,
    full: bool,
    dbbuf: Option<&DbBuf>,
) -> Result<BroughtUp> {
    let t = opts.admin_timeout;
    let buf = hw.dev.dma_alloc(4096)?;
    let mut st = InitState::Disable;
    let mut cdata: Option<Box<IdentifyController>> = None;
    let mut granted = 0u16;
    let mut nsids: Vec<u32> = Vec::new();
    let mut namespaces = Vec::new();
    let mut max_xfer = crate::prp::MAX_PRP_TRANSFER;
    let mut dbbuf_on = false;
    admin.q.set_shadow(None);
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
                InitState::ConfigureDoorbellBuffer
            }
            InitState::ConfigureDoorbellBuffer => {
                let offered = cdata
                    .as_ref()
                    .is_some_and(|c| c.oacs & OACS_DOORBELL_BUFFER_CONFIG != 0);
                if let (true, Some(db)) = (offered, dbbuf) {
                    db.clear();
                    let (shadow, eventidx) = db.iovas();
                    let mut s = Sqe::new(admin_opc::DOORBELL_BUFFER_CONFIG, 0, 0);
                    s.prp1 = shadow.0;
                    s.prp2 = eventidx.0;
                    match admin.exec(hw, s, None, t) {
                        Ok(_) => {
                            dbbuf_on = true;
                            admin.q.set_shadow(db.words(0));
                        }
                        Err(e) => eal::log_warn!(
                            "nvme {}: Doorbell Buffer Config failed ({e}); using MMIO doorbells",
                            hw.addr
                        ),
                    }
                }
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
                    namespaces.extend(Namespace::from_identify(id, d, max_xfer, &hw.addr));
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
        dbbuf_on,
    })
}
