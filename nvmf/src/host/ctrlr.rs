//! An attached remote controller: its admin queue, kept on a control thread (blocking
//! socket, timeouts) that brings the controller up (Connect, CC.EN, identify, number
//! of queues, namespaces), sends Keep Alive every half timeout, and on a dropped
//! connection reconnects every `reconnect_delay_sec` until `ctrlr_loss_timeout_sec`.
//! It keeps an Asynchronous Event Request outstanding: on a Namespace Attribute
//! Changed notice it reads the Changed Namespace List (which re-arms the notice),
//! identifies the active namespaces again and hands the list to the attach code,
//! which registers new bdevs and unregisters gone ones. I/O queues read the current
//! controller id and generation from here.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nvme::spec::{admin_opc, cns, IdentifyNamespace, Sqe};

use super::setup::{connect, Endpoint, Queue};
use crate::error::{Error, Result};
use crate::spec::bytes::read;
use crate::spec::fabrics::{prop, PropertyCmd};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A namespace as identified.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NsInfo {
    pub(crate) nsid: u32,
    pub(crate) block_size: u32,
    pub(crate) num_blocks: u64,
    pub(crate) nguid: [u8; 16],
}

/// What the controller said at bring-up.
#[derive(Debug, Clone)]
pub(crate) struct CtrlrInfo {
    pub(crate) io_queues: u16,
    pub(crate) sqsize: u16,
    pub(crate) icd: usize,
    pub(crate) max_xfer: usize,
    pub(crate) ns: Vec<NsInfo>,
}

/// A controller shared by its control thread, its bdevs and their I/O queues.
pub(crate) struct HostCtrlr {
    pub(crate) name: String,
    pub(crate) ep: Endpoint,
    pub(crate) info: CtrlrInfo,
    pub(crate) cntlid: AtomicU16,
    /// Bumped at every reconnect of the admin queue.
    pub(crate) gen: AtomicU64,
    pub(crate) connected: AtomicBool,
    pub(crate) stop: AtomicBool,
    qids: Mutex<Vec<u16>>,
    pub(crate) bdevs: Mutex<Vec<String>>,
    pub(crate) reconnect_delay: Duration,
    /// Reconnects done (tests look at it).
    pub(crate) reconnects: AtomicU64,
}

impl HostCtrlr {
    /// Take a free I/O queue id.
    pub(crate) fn take_qid(&self) -> Option<u16> {
        lock(&self.qids).pop()
    }

    /// Give a queue id back.
    pub(crate) fn put_qid(&self, q: u16) {
        lock(&self.qids).push(q);
    }
}

const KATO_MS: u32 = 10_000;
const TIMEOUT: Duration = Duration::from_secs(5);
/// CC: EN, IOSQES = 6 (64 B), IOCQES = 4 (16 B).
const CC_ENABLE: u64 = 1 | 6 << 16 | 4 << 20;

fn prop_get(q: &mut Queue, offset: u32, eight: bool) -> Result<u64> {
    let p = PropertyCmd {
        eight,
        offset,
        value: 0,
    };
    let (cqe, _) = q.command_ok("get a property", p.to_sqe(0, false), &[], 0)?;
    Ok(u64::from(cqe.dw0) | (u64::from(cqe.dw1) << 32))
}

fn prop_set(q: &mut Queue, offset: u32, value: u64) -> Result<()> {
    let p = PropertyCmd {
        eight: false,
        offset,
        value,
    };
    q.command_ok("set a property", p.to_sqe(0, true), &[], 0)?;
    Ok(())
}

/// Bring the controller up on a fresh admin queue; `want_queues` I/O queues asked.
pub(crate) fn bring_up(ep: &Endpoint, want_queues: u16) -> Result<(Queue, CtrlrInfo)> {
    let mut q = connect(ep, 0, 0xffff, 31, KATO_MS, 8192, TIMEOUT)?;
    let cap = prop_get(&mut q, prop::CAP, true)?;
    prop_set(&mut q, prop::CC, CC_ENABLE)?;
    let deadline = Instant::now() + TIMEOUT;
    while prop_get(&mut q, prop::CSTS, false)? & 1 == 0 {
        if Instant::now() > deadline {
            return Err(Error::Protocol {
                what: "enable the controller",
                why: "CSTS.RDY stayed 0".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut s = Sqe::new(admin_opc::IDENTIFY, 0, 0);
    s.cdw10 = cns::CONTROLLER;
    let (_, id) = q.command_ok("identify the controller", s, &[], 4096)?;
    let mdts = id[77];
    let max_xfer = if mdts == 0 {
        1 << 20
    } else {
        4096usize << mdts
    }
    .min(1 << 20);
    let ioccsz = u32::from_le_bytes([id[1792], id[1793], id[1794], id[1795]]) as usize;
    let icd = (ioccsz * 16).saturating_sub(64);
    let mut s = Sqe::new(admin_opc::SET_FEATURES, 0, 0);
    s.cdw10 = 0x07;
    let n = u32::from(want_queues.max(1) - 1);
    s.cdw11 = n | n << 16;
    let (cqe, _) = q.command_ok("set the number of queues", s, &[], 0)?;
    let granted = ((cqe.dw0 & 0xffff).min(cqe.dw0 >> 16) + 1) as u16;
    // Namespace Attribute Notices, if the controller sends them (OAES bit 8).
    let oaes = u32::from_le_bytes([id[92], id[93], id[94], id[95]]);
    if oaes & AEN_NS_ATTR != 0 {
        let mut s = Sqe::new(admin_opc::SET_FEATURES, 0, 0);
        s.cdw10 = u32::from(FEAT_ASYNC_EVENT_CONFIG);
        s.cdw11 = AEN_NS_ATTR;
        q.command_ok("enable namespace notices", s, &[], 0)?;
    }
    let ns = namespaces(&mut q)?;
    let mqes = (cap & 0xffff) as u16;
    let info = CtrlrInfo {
        io_queues: granted,
        sqsize: mqes.min(127),
        icd,
        max_xfer,
        ns,
    };
    Ok((q, info))
}

/// The active namespaces, identified (those with metadata or no blocks left out).
fn namespaces(q: &mut Queue) -> Result<Vec<NsInfo>> {
    let mut s = Sqe::new(admin_opc::IDENTIFY, 0, 0);
    s.cdw10 = cns::ACTIVE_NS_LIST;
    let (_, list) = q.command_ok("list the active namespaces", s, &[], 4096)?;
    let mut ns = Vec::new();
    for c in list.chunks(4) {
        let nsid = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        if nsid == 0 {
            break;
        }
        let mut s = Sqe::new(admin_opc::IDENTIFY, 0, nsid);
        s.cdw10 = cns::NAMESPACE;
        let (_, d) = q.command_ok("identify a namespace", s, &[], 4096)?;
        let Some(id) = read::<IdentifyNamespace>(&d) else {
            continue;
        };
        let lbaf = id.lba_format();
        if id.nsze == 0 || lbaf.ms() != 0 {
            continue;
        }
        ns.push(NsInfo {
            nsid,
            block_size: lbaf.block_size() as u32,
            num_blocks: id.nsze,
            nguid: id.nguid,
        });
    }
    Ok(ns)
}

/// Asynchronous Event Configuration feature, its Namespace Attribute Notices bit
/// (NVMe 1.4 figure 290; the same bit in Identify Controller OAES), the notice's
/// completion dword 0 type and information with the log page it names (figure 146).
const FEAT_ASYNC_EVENT_CONFIG: u8 = 0x0b;
const AEN_NS_ATTR: u32 = 1 << 8;
const AEN_TYPE_NOTICE: u32 = 0x2;
const AEN_INFO_NS_CHANGED: u32 = 0x00;
const LOG_CHANGED_NS: u32 = 0x04;

/// Answer an asynchronous event: on a Namespace Attribute Changed notice read the
/// Changed Namespace List (clearing it) and return the active namespaces now.
fn on_event(q: &mut Queue, dw0: u32) -> Result<Option<Vec<NsInfo>>> {
    let (ty, info, lid) = (dw0 & 0x7, (dw0 >> 8) & 0xff, (dw0 >> 16) & 0xff);
    if ty != AEN_TYPE_NOTICE || info != AEN_INFO_NS_CHANGED || lid != LOG_CHANGED_NS {
        return Ok(None);
    }
    let mut s = Sqe::new(admin_opc::GET_LOG_PAGE, 0, u32::MAX);
    // NUMDL: 1024 dwords, 0-based.
    s.cdw10 = LOG_CHANGED_NS | 1023 << 16;
    q.command_ok("read the changed namespace list", s, &[], 4096)?;
    Ok(Some(namespaces(q)?))
}

impl HostCtrlr {
    pub(crate) fn new(
        name: String,
        ep: Endpoint,
        q: &Queue,
        info: CtrlrInfo,
        reconnect_delay: Duration,
    ) -> HostCtrlr {
        let qids = (1..=info.io_queues).rev().collect();
        HostCtrlr {
            name,
            ep,
            cntlid: AtomicU16::new(q.cntlid),
            gen: AtomicU64::new(1),
            connected: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            qids: Mutex::new(qids),
            bdevs: Mutex::new(Vec::new()),
            reconnect_delay,
            reconnects: AtomicU64::new(0),
            info,
        }
    }
}

/// One tick of a live admin queue: keep-alive when due, the AER kept outstanding,
/// an answered one handled (`on_ns` gets the namespaces after a change).
fn tick(aq: &mut Queue, last_ka: &mut Instant, on_ns: &dyn Fn(Vec<NsInfo>)) -> Result<()> {
    aq.submit_aer()?;
    if let Some(dw0) = aq.poll_event()? {
        if let Some(ns) = on_event(aq, dw0)? {
            on_ns(ns);
        }
        aq.submit_aer()?;
    }
    if last_ka.elapsed() >= Duration::from_millis(u64::from(KATO_MS / 2)) {
        *last_ka = Instant::now();
        aq.command_ok("keep alive", Sqe::new(0x18, 0, 0), &[], 0)?;
    }
    Ok(())
}

/// The control thread's loop: keep-alive, namespace notices, and reconnect when the
/// admin queue drops, until [`HostCtrlr::stop`] (checked every 100 ms). `loss`
/// bounds the time spent reconnecting (`None`: forever). `on_ns` gets the active
/// namespaces after a Namespace Attribute Changed notice.
pub(crate) fn run(
    c: Arc<HostCtrlr>,
    mut q: Option<Queue>,
    loss: Option<Duration>,
    on_ns: &dyn Fn(Vec<NsInfo>),
) {
    let mut last_ka = Instant::now();
    let mut down_since: Option<Instant> = None;
    let mut next_try = Instant::now();
    while !c.stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
        match q.as_mut() {
            Some(aq) => {
                if let Err(e) = tick(aq, &mut last_ka, on_ns) {
                    eal::log_err!("nvme tcp {}: admin queue lost: {e}", c.name);
                    q = None;
                    c.connected.store(false, Ordering::Release);
                    down_since = Some(Instant::now());
                }
            }
            None => {
                if Instant::now() < next_try {
                    continue;
                }
                if let (Some(l), Some(d)) = (loss, down_since) {
                    if d.elapsed() > l {
                        eal::log_err!("nvme tcp {}: controller lost for good", c.name);
                        return;
                    }
                }
                next_try = Instant::now() + c.reconnect_delay;
                match bring_up(&c.ep, c.info.io_queues) {
                    Ok((aq, info)) => {
                        c.cntlid.store(aq.cntlid, Ordering::Release);
                        c.gen.fetch_add(1, Ordering::AcqRel);
                        c.reconnects.fetch_add(1, Ordering::Relaxed);
                        c.connected.store(true, Ordering::Release);
                        // Namespaces may have come or gone while it was away.
                        on_ns(info.ns);
                        eal::log_notice!(
                            "nvme tcp {}: reconnected (controller {})",
                            c.name,
                            aq.cntlid
                        );
                        q = Some(aq);
                        last_ka = Instant::now();
                        down_since = None;
                    }
                    Err(e) => eal::log_info!("nvme tcp {}: reconnect failed: {e}", c.name),
                }
            }
        }
    }
    if let Some(mut aq) = q {
        // Shutdown notification (CC.SHN = normal), best effort.
        let _ = prop_set(&mut aq, prop::CC, CC_ENABLE | 1 << 14);
    }
}
