//! The port table and the ethdev API: control path (probe, configure, queue setup,
//! start/stop/close, stats, link, modes, MAC, MTU) and data path (bursts, queue handles).

use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use eal::{Eal, Memzone, MemzoneFlags};
use mbuf::{Mbuf, PktmbufPool};

use crate::driver::{self, EthDriver, QueueStats, RxQueueOps, TxQueueOps, VdevArgs, VdevCtx};
use crate::shared::{self, PortShared};
use crate::{
    DevInfo, Error, EthConf, EthStats, Link, MqMode, Result, RxConf, TxConf, XStat, DEFAULT_MTU,
    ETHER_HDR_LEN, MAX_PORTS, MAX_QUEUES,
};

// ------------------------------------------------------------------------------------
// Queue slots
// ------------------------------------------------------------------------------------

/// `frame_max` value that turns the per-packet TX length check off.
const NO_TX_CHECK: u32 = u32::MAX;

/// The TX length limit for a port of this driver at this MTU.
fn frame_limit(i: &driver::DriverInfo, mtu: u32) -> u32 {
    if i.tx_mtu_check {
        mtu + ETHER_HDR_LEN
    } else {
        NO_TX_CHECK
    }
}

const FREE: u8 = 0;
const BURST: u8 = 1;
const HANDLE: u8 = 2;
const CTL: u8 = 3;

/// One queue of one port: the driver's queue object behind a claim word. Whoever moves
/// `claim` from FREE owns `q` until it stores FREE again.
struct QSlot<T: ?Sized> {
    claim: AtomicU8,
    q: UnsafeCell<Option<Box<T>>>,
    /// Counters of the queue (null until set up), for the ethdev layer's own drops.
    stats: UnsafeCell<Option<QueueStats>>,
}

// SAFETY: `q` and `stats` are only touched by the holder of `claim` (see the CAS sites:
// C1 acquire/C2 release pairs), and the objects are `Send`.
unsafe impl<T: ?Sized + Send> Sync for QSlot<T> {}

impl<T: ?Sized> QSlot<T> {
    const fn new() -> Self {
        QSlot {
            claim: AtomicU8::new(FREE),
            q: UnsafeCell::new(None),
            stats: UnsafeCell::new(None),
        }
    }

    /// C1: take the slot for `how`. Acquire pairs with C2 of the previous holder, so its
    /// writes to the queue object are visible.
    #[inline(always)]
    fn try_claim(&self, how: u8) -> bool {
        self.claim
            .compare_exchange(FREE, how, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// C2: give the slot back; Release publishes our writes to the queue object.
    #[inline(always)]
    fn release(&self) {
        self.claim.store(FREE, Ordering::Release);
    }

    /// Claim for the control path: spin past bursts in flight, fail if a handle holds it.
    fn claim_ctl(&self) -> std::result::Result<(), ()> {
        loop {
            match self
                .claim
                .compare_exchange(FREE, CTL, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(HANDLE) => return Err(()),
                Err(_) => std::hint::spin_loop(),
            }
        }
    }
}

/// A port id's slot: control state behind a mutex, data-path state in atomics and queue
/// slots. Slots are static: a port id's slot lives forever and is reused after close.
struct PortSlot {
    ctl: Mutex<Option<PortCtl>>,
    /// Data-path gate: true between start and stop. S1 (Release at start) pairs with S2.
    started: AtomicBool,
    /// Largest frame accepted on TX (MTU + Ethernet header), or [`NO_TX_CHECK`] for
    /// drivers that opt out (`DriverInfo::tx_mtu_check`).
    frame_max: AtomicU32,
    rx: [QSlot<dyn RxQueueOps>; MAX_QUEUES],
    tx: [QSlot<dyn TxQueueOps>; MAX_QUEUES],
}

impl PortSlot {
    const fn new() -> Self {
        PortSlot {
            ctl: Mutex::new(None),
            started: AtomicBool::new(false),
            frame_max: AtomicU32::new(DEFAULT_MTU + ETHER_HDR_LEN),
            rx: [const { QSlot::new() }; MAX_QUEUES],
            tx: [const { QSlot::new() }; MAX_QUEUES],
        }
    }
}

static PORTS: [PortSlot; MAX_PORTS] = [const { PortSlot::new() }; MAX_PORTS];
/// Serialises port creation (id and name allocation).
static ALLOC: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Attached,
    Configured,
    Started,
}

struct SharedPtr(NonNull<PortShared>);
// SAFETY: points into EAL memory kept alive by the `Eal` clone next to it; all mutable
// fields are atomics.
unsafe impl Send for SharedPtr {}

struct PortCtl {
    eal: Eal,
    mz: Memzone,
    shared: SharedPtr,
    name: String,
    driver: Box<dyn EthDriver>,
    state: State,
    nb_rxq: u16,
    nb_txq: u16,
    conf: EthConf,
    mtu: u32,
    mac: [u8; 6],
    promisc: bool,
    allmulti: bool,
    link_admin_up: bool,
}

impl PortCtl {
    fn shared(&self) -> &PortShared {
        // SAFETY: see `SharedPtr`.
        unsafe { self.shared.0.as_ref() }
    }
}

fn slot(port: u16) -> Option<&'static PortSlot> {
    PORTS.get(port as usize)
}

fn lock(
    port: u16,
    op: &'static str,
) -> Result<(&'static PortSlot, MutexGuard<'static, Option<PortCtl>>)> {
    let s = slot(port).ok_or(Error::NoSuchPort { op, port })?;
    let g = s.ctl.lock().unwrap_or_else(|e| e.into_inner());
    if g.is_none() {
        return Err(Error::NoSuchPort { op, port });
    }
    Ok((s, g))
}

macro_rules! with_port {
    ($port:expr, $op:expr, |$s:ident, $c:ident| $body:expr) => {{
        let (s, mut g) = lock($port, $op)?;
        let $s = s;
        let $c: &mut PortCtl = g.as_mut().expect("checked by lock");
        $body
    }};
}

// ------------------------------------------------------------------------------------
// Creation
// ------------------------------------------------------------------------------------

fn default_mac(port: u16) -> [u8; 6] {
    // Locally administered, unicast; distinct per process and port.
    let pid = std::process::id();
    [
        0x02,
        0xf0,
        (pid >> 8) as u8,
        pid as u8,
        (port >> 8) as u8,
        port as u8,
    ]
}

/// Attach a driver as a new port named `name`; returns its id. Control path.
pub fn attach_port(
    eal: &Eal,
    name: &str,
    make: impl FnOnce(u16) -> Result<Box<dyn EthDriver>>,
) -> Result<u16> {
    let _a = ALLOC.lock().unwrap_or_else(|e| e.into_inner());
    let mut free = None;
    for (i, s) in PORTS.iter().enumerate() {
        let g = s.ctl.lock().unwrap_or_else(|e| e.into_inner());
        match &*g {
            Some(c) if c.name == name => return Err(Error::NameInUse(name.into())),
            None if free.is_none() => free = Some(i as u16),
            _ => {}
        }
    }
    let port = free.ok_or_else(|| Error::NoFreePort(name.into()))?;
    let mut driver = make(port)?;
    let mzname = shared::memzone_name(port);
    let mz = eal
        .memzones()
        .reserve_aligned(
            &mzname,
            std::mem::size_of::<PortShared>(),
            None,
            MemzoneFlags::empty(),
            64,
        )
        .map_err(|source| Error::Eal {
            op: "reserve",
            what: format!("memzone {mzname}"),
            source: Box::new(source),
        })?;
    let p = mz.as_ptr::<PortShared>();
    let mac = driver.mac().unwrap_or_else(|| default_mac(port));
    // SAFETY: a fresh memzone of at least size_of::<PortShared>() bytes, 64-aligned,
    // nobody reads it until the port is published (after this write). All-zero is a
    // valid PortShared (atomics and byte arrays), then identity fields are set.
    unsafe {
        std::ptr::write_bytes(p.cast::<u8>(), 0, std::mem::size_of::<PortShared>());
        let s = &mut *p;
        s.port_id = port;
        shared::put_cstr(&mut s.name, name);
        shared::put_cstr(&mut s.driver, driver.name());
        s.set_mac(mac);
        s.mtu.store(DEFAULT_MTU, Ordering::Relaxed);
        s.version = shared::VERSION;
        s.magic = shared::MAGIC;
    }
    let s = &PORTS[port as usize];
    s.started.store(false, Ordering::Relaxed);
    s.frame_max
        .store(frame_limit(&driver.info(), DEFAULT_MTU), Ordering::Relaxed);
    let mut g = s.ctl.lock().unwrap_or_else(|e| e.into_inner());
    *g = Some(PortCtl {
        eal: eal.clone(),
        mz,
        shared: SharedPtr(NonNull::new(p).expect("memzone address")),
        name: name.into(),
        driver,
        state: State::Attached,
        nb_rxq: 0,
        nb_txq: 0,
        conf: EthConf::default(),
        mtu: DEFAULT_MTU,
        mac,
        promisc: false,
        allmulti: false,
        link_admin_up: true,
    });
    crate::log(format_args!("port {port}: '{name}' attached"));
    Ok(port)
}

/// Create a port from a `--vdev` string such as `net_null0,size=64`. Control path.
/// Unknown driver names and keys are refused with an error naming them.
pub fn vdev_create(eal: &Eal, spec: &str) -> Result<u16> {
    let args = VdevArgs::parse(spec)?;
    let d = driver::find_vdev_driver(&args.name)?;
    args.check_keys(d.keys)?;
    attach_port(eal, &args.name, |port| {
        (d.create)(&VdevCtx {
            eal,
            args: &args,
            port_id: port,
        })
    })
}

/// Create a port for every `--vdev` the EAL was given, in order; returns their ids.
/// All or nothing: at the first failure the ports made before it are closed again and
/// that error is returned.
pub fn probe_vdevs(eal: &Eal) -> Result<Vec<u16>> {
    let mut made = Vec::new();
    for v in &eal.args().vdevs {
        match vdev_create(eal, v) {
            Ok(p) => made.push(p),
            Err(e) => {
                for p in made {
                    let _ = close(p);
                }
                return Err(e);
            }
        }
    }
    Ok(made)
}

/// Probe every PCI device of `eal` that a registered driver's id table matches; returns
/// the ports made and the devices that failed (see [`probe_pci_devices`]). Devices no
/// driver matches are skipped.
pub fn probe_pci(eal: &Eal) -> (Vec<u16>, Vec<Error>) {
    probe_pci_devices(eal, eal.pci().devices())
}

/// [`probe_pci`] over an explicit device list (tests give fake devices). Every device
/// with a matching driver is probed, in order; one that fails does not stop the others
/// (as DPDK's bus probe). Returns the ports made and one error per device that failed
/// ([`Error::PciProbe`] naming it, or the port table's error).
pub fn probe_pci_devices(eal: &Eal, devs: &[eal::pci::PciDevice]) -> (Vec<u16>, Vec<Error>) {
    let mut ports = Vec::new();
    let mut errors = Vec::new();
    for dev in devs {
        if let Some(d) = driver::match_pci_driver(dev) {
            let name = dev.addr.to_string();
            let made = attach_port(eal, &name, |_| {
                (d.probe)(eal, dev).map_err(|e| Error::PciProbe {
                    addr: name.clone(),
                    driver: d.name.into(),
                    why: e.to_string(),
                })
            });
            match made {
                Ok(port) => ports.push(port),
                Err(e) => errors.push(e),
            }
        }
    }
    (ports, errors)
}

/// Port ids in use, ascending.
pub fn ports() -> Vec<u16> {
    (0..MAX_PORTS as u16)
        .filter(|&p| {
            PORTS[p as usize]
                .ctl
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some()
        })
        .collect()
}

/// The id of the port named `name`.
pub fn port_by_name(name: &str) -> Option<u16> {
    (0..MAX_PORTS as u16).find(|&p| {
        PORTS[p as usize]
            .ctl
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|c| c.name == name)
    })
}

/// The name of a port.
pub fn port_name(port: u16) -> Result<String> {
    with_port!(port, "name", |_s, c| Ok(c.name.clone()))
}

// ------------------------------------------------------------------------------------
// Control path
// ------------------------------------------------------------------------------------

/// What the port is and can do.
pub fn dev_info(port: u16) -> Result<DevInfo> {
    with_port!(port, "get info of", |_s, c| {
        let i = c.driver.info();
        Ok(DevInfo {
            driver_name: c.driver.name(),
            device_name: c.name.clone(),
            if_name: i.if_name,
            max_rx_queues: i.max_rx_queues.min(MAX_QUEUES as u16),
            max_tx_queues: i.max_tx_queues.min(MAX_QUEUES as u16),
            rx_desc_lim: i.rx_desc_lim,
            tx_desc_lim: i.tx_desc_lim,
            capa: i.capa,
            rx_offload_capa: i.rx_offload_capa,
            tx_offload_capa: i.tx_offload_capa,
            flow_type_rss_offloads: i.flow_type_rss_offloads,
            max_rx_pktlen: i.max_rx_pktlen,
            min_mtu: i.min_mtu,
            max_mtu: i.max_mtu,
            default_mtu: DEFAULT_MTU,
            nb_rx_queues: c.nb_rxq,
            nb_tx_queues: c.nb_txq,
        })
    })
}

/// Refuse with [`Error::QueueBusy`] if a queue handle of the port is alive. Handles are
/// only made under the port's control lock, which the caller holds.
fn check_no_handles(s: &PortSlot, op: &'static str, port: u16) -> Result<()> {
    for (q, qs) in s.rx.iter().enumerate() {
        if qs.claim.load(Ordering::Relaxed) == HANDLE {
            return Err(Error::QueueBusy {
                op,
                dir: "RX",
                port,
                queue: q as u16,
            });
        }
    }
    for (q, qs) in s.tx.iter().enumerate() {
        if qs.claim.load(Ordering::Relaxed) == HANDLE {
            return Err(Error::QueueBusy {
                op,
                dir: "TX",
                port,
                queue: q as u16,
            });
        }
    }
    Ok(())
}

/// Drop queue objects from index `from` on (control path, slots claimed one by one).
fn drop_queues(
    s: &PortSlot,
    op: &'static str,
    port: u16,
    rx_from: usize,
    tx_from: usize,
) -> Result<()> {
    for (q, qs) in s.rx.iter().enumerate().skip(rx_from) {
        qs.claim_ctl().map_err(|_| Error::QueueBusy {
            op,
            dir: "RX",
            port,
            queue: q as u16,
        })?;
        // SAFETY: claimed (C1 in claim_ctl).
        unsafe {
            *qs.q.get() = None;
            *qs.stats.get() = None;
        }
        qs.release();
    }
    for (q, qs) in s.tx.iter().enumerate().skip(tx_from) {
        qs.claim_ctl().map_err(|_| Error::QueueBusy {
            op,
            dir: "TX",
            port,
            queue: q as u16,
        })?;
        // SAFETY: claimed.
        unsafe {
            *qs.q.get() = None;
            *qs.stats.get() = None;
        }
        qs.release();
    }
    Ok(())
}

/// Configure `nb_rxq` RX and `nb_txq` TX queues and the port-wide settings. Only while
/// stopped. Queues above the new counts are released.
pub fn configure(port: u16, nb_rxq: u16, nb_txq: u16, conf: &EthConf) -> Result<()> {
    with_port!(port, "configure", |s, c| {
        if c.state == State::Started {
            return Err(Error::BadState {
                op: "configure",
                port,
                why: "port is started; stop it first".into(),
            });
        }
        let i = c.driver.info();
        let (mrx, mtx) = (
            i.max_rx_queues.min(MAX_QUEUES as u16),
            i.max_tx_queues.min(MAX_QUEUES as u16),
        );
        if nb_rxq > mrx || nb_txq > mtx || (nb_rxq == 0 && nb_txq == 0) {
            return Err(Error::Unsupported {
                port,
                why: format!("{nb_rxq} RX / {nb_txq} TX queues asked, driver {} takes 0..={mrx} / 0..={mtx} (not both 0)", c.driver.name()),
            });
        }
        let bad_rx = conf.rx_offloads - i.rx_offload_capa;
        if !bad_rx.is_empty() {
            return Err(Error::Unsupported {
                port,
                why: format!(
                    "RX offloads {bad_rx:?} not supported (capable of {:?})",
                    i.rx_offload_capa
                ),
            });
        }
        let bad_tx = conf.tx_offloads - i.tx_offload_capa;
        if !bad_tx.is_empty() {
            return Err(Error::Unsupported {
                port,
                why: format!(
                    "TX offloads {bad_tx:?} not supported (capable of {:?})",
                    i.tx_offload_capa
                ),
            });
        }
        if conf.mq_mode == MqMode::Rss {
            let bad = conf.rss.hf - i.flow_type_rss_offloads;
            if !bad.is_empty() || i.flow_type_rss_offloads.is_empty() {
                return Err(Error::Unsupported {
                    port,
                    why: format!(
                        "RSS hash {:?} not supported (capable of {:?})",
                        conf.rss.hf, i.flow_type_rss_offloads
                    ),
                });
            }
            if conf.rss.key.is_some() {
                return Err(Error::Unsupported {
                    port,
                    why: "driver takes no RSS key".into(),
                });
            }
        }
        if let Some(m) = conf.mtu {
            check_mtu(port, &i, m)?;
        }
        // Queues above the new counts are released below: refuse before changing
        // anything if a handle holds one of them.
        if let Some(q) = s.rx[nb_rxq as usize..]
            .iter()
            .position(|qs| qs.claim.load(Ordering::Relaxed) == HANDLE)
        {
            return Err(Error::QueueBusy {
                op: "configure",
                dir: "RX",
                port,
                queue: nb_rxq + q as u16,
            });
        }
        if let Some(q) = s.tx[nb_txq as usize..]
            .iter()
            .position(|qs| qs.claim.load(Ordering::Relaxed) == HANDLE)
        {
            return Err(Error::QueueBusy {
                op: "configure",
                dir: "TX",
                port,
                queue: nb_txq + q as u16,
            });
        }
        c.driver
            .configure(nb_rxq, nb_txq, conf)
            .map_err(|why| Error::Unsupported { port, why })?;
        drop_queues(s, "configure", port, nb_rxq as usize, nb_txq as usize)?;
        if let Some(m) = conf.mtu {
            apply_mtu(port, s, c, m)?;
        }
        c.nb_rxq = nb_rxq;
        c.nb_txq = nb_txq;
        c.conf = conf.clone();
        c.state = State::Configured;
        c.shared()
            .nb_rxq
            .store(u32::from(nb_rxq), Ordering::Relaxed);
        c.shared()
            .nb_txq
            .store(u32::from(nb_txq), Ordering::Relaxed);
        Ok(())
    })
}

fn check_desc(port: u16, dir: &'static str, q: u16, n: u16, l: crate::DescLim) -> Result<()> {
    if n < l.min || n > l.max || (l.align > 1 && !n.is_multiple_of(l.align)) {
        return Err(Error::BadQueue {
            op: "set up",
            dir,
            port,
            queue: q,
            why: format!(
                "{n} descriptors, driver takes {}..={} in multiples of {}",
                l.min, l.max, l.align
            ),
        });
    }
    Ok(())
}

/// Set up RX queue `q` with `nb_desc` descriptors, filling from `pool`. `socket` is a
/// placement hint (software drivers ignore it). Only while stopped and configured.
pub fn rx_queue_setup(
    port: u16,
    q: u16,
    nb_desc: u16,
    socket: Option<u32>,
    conf: &RxConf,
    pool: &PktmbufPool,
) -> Result<()> {
    let _ = socket;
    with_port!(port, "set up RX queue of", |s, c| {
        let i = c.driver.info();
        check_queue_setup(port, c, "RX", q, c.nb_rxq, nb_desc, i.rx_desc_lim)?;
        let bad = conf.offloads - i.rx_offload_capa;
        if !bad.is_empty() {
            return Err(Error::Unsupported {
                port,
                why: format!("RX queue offloads {bad:?} not supported"),
            });
        }
        let mut conf = conf.clone();
        conf.offloads |= c.conf.rx_offloads;
        let stats = QueueStats::new(&c.shared().rxq[q as usize]);
        install_queue(&s.rx[q as usize], port, "RX", q, stats, |st| {
            c.driver.rx_queue_setup(q, nb_desc, &conf, pool, st)
        })
    })
}

/// Set up TX queue `q` with `nb_desc` descriptors. Only while stopped and configured.
pub fn tx_queue_setup(
    port: u16,
    q: u16,
    nb_desc: u16,
    socket: Option<u32>,
    conf: &TxConf,
) -> Result<()> {
    let _ = socket;
    with_port!(port, "set up TX queue of", |s, c| {
        let i = c.driver.info();
        check_queue_setup(port, c, "TX", q, c.nb_txq, nb_desc, i.tx_desc_lim)?;
        let bad = conf.offloads - i.tx_offload_capa;
        if !bad.is_empty() {
            return Err(Error::Unsupported {
                port,
                why: format!("TX queue offloads {bad:?} not supported"),
            });
        }
        let mut conf = conf.clone();
        conf.offloads |= c.conf.tx_offloads;
        let stats = QueueStats::new(&c.shared().txq[q as usize]);
        install_queue(&s.tx[q as usize], port, "TX", q, stats, |st| {
            c.driver.tx_queue_setup(q, nb_desc, &conf, st)
        })
    })
}

/// What both queue setups check first: the port is configured and stopped, the queue id
/// is below the configured count `nb_q`, the descriptor count is within the driver's `lim`.
fn check_queue_setup(
    port: u16,
    c: &PortCtl,
    dir: &'static str,
    q: u16,
    nb_q: u16,
    nb_desc: u16,
    lim: crate::DescLim,
) -> Result<()> {
    if c.state != State::Configured {
        return Err(Error::BadState {
            op: if dir == "RX" {
                "set up an RX queue of"
            } else {
                "set up a TX queue of"
            },
            port,
            why: "port must be configured and stopped".into(),
        });
    }
    if q >= nb_q {
        return Err(Error::BadQueue {
            op: "set up",
            dir,
            port,
            queue: q,
            why: format!("port has {nb_q} {dir} queues"),
        });
    }
    check_desc(port, dir, q, nb_desc, lim)
}

/// Put the queue `make` returns into slot `qs`, under the control claim: the old queue
/// is dropped first (its mbufs go back to their pools), and on error the slot stays
/// empty. Refused with [`Error::QueueBusy`] while a queue handle holds the slot.
fn install_queue<T: ?Sized>(
    qs: &QSlot<T>,
    port: u16,
    dir: &'static str,
    q: u16,
    stats: QueueStats,
    make: impl FnOnce(QueueStats) -> Result<Box<T>>,
) -> Result<()> {
    qs.claim_ctl().map_err(|_| Error::QueueBusy {
        op: if dir == "RX" {
            "set up RX queue of"
        } else {
            "set up TX queue of"
        },
        dir,
        port,
        queue: q,
    })?;
    // SAFETY: claimed above; nobody else touches the slot until `release`.
    unsafe { *qs.q.get() = None };
    let res = make(stats).map(|b| {
        // SAFETY: claimed.
        unsafe {
            *qs.q.get() = Some(b);
            *qs.stats.get() = Some(stats);
        }
    });
    qs.release();
    res
}

/// Start the port: bursts begin to move packets. Every configured queue must be set up.
pub fn start(port: u16) -> Result<()> {
    with_port!(port, "start", |s, c| {
        match c.state {
            State::Started => return Ok(()),
            State::Attached => {
                return Err(Error::BadState {
                    op: "start",
                    port,
                    why: "port is not configured".into(),
                })
            }
            State::Configured => {}
        }
        for q in 0..c.nb_rxq {
            // Relaxed peek under the control lock: only the control path sets queues.
            let qs = &s.rx[q as usize];
            // A queue held by a handle is set up (handles need it, setup is refused
            // while one lives).
            let ok = match qs.claim_ctl() {
                Err(()) => true,
                Ok(()) => {
                    // SAFETY: claimed.
                    let ok = unsafe { (*qs.q.get()).is_some() };
                    qs.release();
                    ok
                }
            };
            if !ok {
                return Err(Error::BadQueue {
                    op: "start with",
                    dir: "RX",
                    port,
                    queue: q,
                    why: "queue is not set up".into(),
                });
            }
        }
        for q in 0..c.nb_txq {
            let qs = &s.tx[q as usize];
            // A queue held by a handle is set up (handles need it, setup is refused
            // while one lives).
            let ok = match qs.claim_ctl() {
                Err(()) => true,
                Ok(()) => {
                    // SAFETY: claimed.
                    let ok = unsafe { (*qs.q.get()).is_some() };
                    qs.release();
                    ok
                }
            };
            if !ok {
                return Err(Error::BadQueue {
                    op: "start with",
                    dir: "TX",
                    port,
                    queue: q,
                    why: "queue is not set up".into(),
                });
            }
        }
        c.driver.start()?;
        c.state = State::Started;
        // S1: Release pairs with S2 in the bursts.
        s.started.store(true, Ordering::Release);
        update_link(c, true);
        Ok(())
    })
}

/// Stop the port: bursts return 0 from now on (a burst already running may finish).
/// Queues keep their setup; `start` again resumes.
pub fn stop(port: u16) -> Result<()> {
    with_port!(port, "stop", |s, c| {
        if c.state != State::Started {
            return Ok(());
        }
        s.started.store(false, Ordering::Release);
        c.state = State::Configured;
        let r = c.driver.stop();
        update_link(c, false);
        r
    })
}

/// Close the port: stop it, release every queue (packets held by the driver go back to
/// their pools), the driver and the shared memzone, and free the id. Refused while a
/// queue handle is alive.
pub fn close(port: u16) -> Result<()> {
    let (s, mut g) = lock(port, "close")?;
    check_no_handles(s, "close", port)?;
    {
        let c = g.as_mut().expect("checked by lock");
        s.started.store(false, Ordering::Release);
        if c.state == State::Started {
            let _ = c.driver.stop();
            c.state = State::Configured;
        }
        drop_queues(s, "close", port, 0, 0)?;
        c.driver.close();
    }
    let c = g.take().expect("checked by lock");
    let PortCtl {
        eal,
        mz,
        shared: sp,
        driver,
        ..
    } = c;
    drop(driver);
    // SAFETY: the memzone is still mapped (eal alive); clearing the magic tells readers
    // in other processes that the port is gone.
    unsafe { (*sp.0.as_ptr()).magic = 0 };
    let r = eal.memzones().free(&mz).map_err(|source| Error::Eal {
        op: "free",
        what: format!("memzone {}", mz.name()),
        source: Box::new(source),
    });
    crate::log(format_args!("port {port}: closed"));
    r
}

fn software_link(c: &PortCtl, started: bool) -> Link {
    Link {
        speed_mbps: 10_000,
        full_duplex: true,
        autoneg: false,
        up: started && c.link_admin_up,
    }
}

fn update_link(c: &mut PortCtl, started: bool) -> Link {
    let l = c.driver.link().unwrap_or_else(|| software_link(c, started));
    c.shared()
        .link
        .store(PortShared::link_word(&l), Ordering::Relaxed);
    l
}

/// Current link state (also written to the shared memzone).
pub fn link_get(port: u16) -> Result<Link> {
    with_port!(port, "get link of", |_s, c| {
        let started = c.state == State::Started;
        Ok(update_link(c, started))
    })
}

/// Poll the link every 10 ms until it is up or `timeout` passes; returns the last state.
pub fn link_wait_up(port: u16, timeout: Duration) -> Result<Link> {
    let t0 = Instant::now();
    loop {
        let l = link_get(port)?;
        if l.up || t0.elapsed() >= timeout {
            return Ok(l);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Set the link up or down (devices: the interface flag; software ports: a flag).
pub fn set_link_up(port: u16, up: bool) -> Result<()> {
    with_port!(port, "set link of", |_s, c| {
        c.driver.set_link(up)?;
        c.link_admin_up = up;
        let started = c.state == State::Started;
        update_link(c, started);
        Ok(())
    })
}

/// Promiscuous mode on/off.
pub fn promiscuous_set(port: u16, on: bool) -> Result<()> {
    with_port!(port, "set promiscuous mode of", |_s, c| {
        c.driver.set_promiscuous(on)?;
        c.promisc = on;
        Ok(())
    })
}

/// Promiscuous mode state.
pub fn promiscuous_get(port: u16) -> Result<bool> {
    with_port!(port, "get promiscuous mode of", |_s, c| Ok(c.promisc))
}

/// All-multicast mode on/off.
pub fn allmulticast_set(port: u16, on: bool) -> Result<()> {
    with_port!(port, "set all-multicast mode of", |_s, c| {
        c.driver.set_allmulticast(on)?;
        c.allmulti = on;
        Ok(())
    })
}

/// All-multicast mode state.
pub fn allmulticast_get(port: u16) -> Result<bool> {
    with_port!(port, "get all-multicast mode of", |_s, c| Ok(c.allmulti))
}

/// The port's MAC address.
pub fn mac_addr_get(port: u16) -> Result<[u8; 6]> {
    with_port!(port, "get MAC of", |_s, c| Ok(c.mac))
}

/// Set the port's MAC address (unicast only).
pub fn mac_addr_set(port: u16, mac: [u8; 6]) -> Result<()> {
    with_port!(port, "set MAC of", |_s, c| {
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(Error::BadState {
                op: "set MAC of",
                port,
                why: format!("{} is not a unicast address", fmt_mac(&mac)),
            });
        }
        c.driver.set_mac(mac)?;
        c.mac = mac;
        c.shared().set_mac(mac);
        Ok(())
    })
}

/// Format a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn check_mtu(port: u16, i: &driver::DriverInfo, mtu: u32) -> Result<()> {
    if mtu < i.min_mtu || mtu > i.max_mtu {
        return Err(Error::Unsupported {
            port,
            why: format!("MTU {mtu} outside {}..={}", i.min_mtu, i.max_mtu),
        });
    }
    Ok(())
}

fn apply_mtu(_port: u16, s: &PortSlot, c: &mut PortCtl, mtu: u32) -> Result<()> {
    c.driver.set_mtu(mtu)?;
    c.mtu = mtu;
    c.shared().mtu.store(mtu, Ordering::Relaxed);
    s.frame_max
        .store(frame_limit(&c.driver.info(), mtu), Ordering::Relaxed);
    Ok(())
}

/// The port's MTU.
pub fn mtu_get(port: u16) -> Result<u32> {
    with_port!(port, "get MTU of", |_s, c| Ok(c.mtu))
}

/// Set the MTU. TX frames longer than MTU + 14 (Ethernet header; VLAN-tagged frames need
/// an MTU 4 higher) are dropped by `tx_burst`: freed, counted in `oerrors`, and counted
/// as consumed in its return value. Drivers without a wire may opt out of that check
/// (`DriverInfo::tx_mtu_check`; only `net_ring` does, like DPDK's).
pub fn mtu_set(port: u16, mtu: u32) -> Result<()> {
    with_port!(port, "set MTU of", |s, c| {
        let i = c.driver.info();
        check_mtu(port, &i, mtu)?;
        apply_mtu(port, s, c, mtu)
    })
}

/// Basic statistics (control path; reads the shared counters).
pub fn stats_get(port: u16) -> Result<EthStats> {
    with_port!(port, "get stats of", |_s, c| {
        let m = c.driver.take_missed();
        let sh = c.shared();
        sh.imissed
            .store(sh.imissed.load(Ordering::Relaxed) + m, Ordering::Relaxed);
        Ok(sh.stats())
    })
}

/// Reset the basic statistics (and the per-queue ones).
pub fn stats_reset(port: u16) -> Result<()> {
    with_port!(port, "reset stats of", |_s, c| {
        let m = c.driver.take_missed();
        let sh = c.shared();
        sh.imissed
            .store(sh.imissed.load(Ordering::Relaxed) + m, Ordering::Relaxed);
        sh.reset();
        Ok(())
    })
}

fn xstats_all(port: u16) -> Result<Vec<(String, u64)>> {
    let st = stats_get(port)?;
    let mut v = vec![
        ("rx_good_packets".to_string(), st.ipackets),
        ("tx_good_packets".to_string(), st.opackets),
        ("rx_good_bytes".to_string(), st.ibytes),
        ("tx_good_bytes".to_string(), st.obytes),
        ("rx_missed_errors".to_string(), st.imissed),
        ("rx_errors".to_string(), st.ierrors),
        ("tx_errors".to_string(), st.oerrors),
        ("rx_mbuf_allocation_errors".to_string(), st.rx_nombuf),
    ];
    for (q, ((p, b), e)) in st
        .q_ipackets
        .iter()
        .zip(&st.q_ibytes)
        .zip(&st.q_errors)
        .enumerate()
    {
        v.push((format!("rx_q{q}_packets"), *p));
        v.push((format!("rx_q{q}_bytes"), *b));
        v.push((format!("rx_q{q}_errors"), *e));
    }
    for (q, (p, b)) in st.q_opackets.iter().zip(&st.q_obytes).enumerate() {
        v.push((format!("tx_q{q}_packets"), *p));
        v.push((format!("tx_q{q}_bytes"), *b));
    }
    let extra = with_port!(port, "get xstats of", |_s, c| c.driver.xstats());
    v.extend(extra);
    Ok(v)
}

/// Names of the extended statistics; index i names `xstats()[i]`.
pub fn xstats_names(port: u16) -> Result<Vec<String>> {
    Ok(xstats_all(port)?.into_iter().map(|(n, _)| n).collect())
}

/// Extended statistics: the basic ones by name, per queue, and driver-specific ones.
pub fn xstats(port: u16) -> Result<Vec<XStat>> {
    Ok(xstats_all(port)?
        .into_iter()
        .enumerate()
        .map(|(i, (_, v))| XStat {
            id: i as u64,
            value: v,
        })
        .collect())
}

/// Extended statistics as (name, value) pairs.
pub fn xstats_by_name(port: u16) -> Result<Vec<(String, u64)>> {
    xstats_all(port)
}

// ------------------------------------------------------------------------------------
// Data path
// ------------------------------------------------------------------------------------

#[inline(always)]
fn rx_on(s: &PortSlot, qs: &QSlot<dyn RxQueueOps>, out: &mut Vec<Mbuf>, nb: u16) -> u16 {
    // S2: Acquire pairs with S1 (start).
    if !s.started.load(Ordering::Acquire) {
        return 0;
    }
    // SAFETY: the caller holds the slot's claim.
    match unsafe { &mut *qs.q.get() } {
        Some(q) => q.rx_burst(out, nb as usize) as u16,
        None => 0,
    }
}

#[inline(always)]
fn tx_on(s: &PortSlot, qs: &QSlot<dyn TxQueueOps>, pkts: &mut Vec<Mbuf>) -> u16 {
    if !s.started.load(Ordering::Acquire) {
        return 0;
    }
    // SAFETY: the caller holds the slot's claim.
    let Some(q) = (unsafe { &mut *qs.q.get() }) else {
        return 0;
    };
    let max = pkts.len().min(u16::MAX as usize);
    let lim = s.frame_max.load(Ordering::Relaxed);
    let mut dropped = 0usize;
    if lim != NO_TX_CHECK && pkts[..max].iter().any(|m| m.pkt_len() > lim) {
        dropped = drop_oversize(pkts, max, lim);
        // SAFETY: claimed; set with the queue.
        if let Some(st) = unsafe { &*qs.stats.get() } {
            st.add_errors(dropped as u64);
        }
    }
    let sent = q.tx_burst(pkts, max - dropped);
    (sent + dropped) as u16
}

/// Free the packets over `lim` among the first `max`, keeping the order of the rest.
#[cold]
fn drop_oversize(pkts: &mut Vec<Mbuf>, max: usize, lim: u32) -> usize {
    let tail = pkts.split_off(max);
    let before = pkts.len();
    pkts.retain(|m| m.pkt_len() <= lim);
    let d = before - pkts.len();
    pkts.extend(tail);
    d
}

/// Receive up to `nb_pkts` packets from queue `queue` of `port`, appending them to
/// `out`; returns how many. Returns 0 (and leaves `out` alone) if the port is not
/// started, the ids are out of range, the queue is not set up, or a [`RxQueue`] handle
/// holds the queue. Data path: one atomic claim of the queue per call, no lock.
#[inline]
pub fn rx_burst(port: u16, queue: u16, out: &mut Vec<Mbuf>, nb_pkts: u16) -> u16 {
    let Some(s) = slot(port) else { return 0 };
    let Some(qs) = s.rx.get(queue as usize) else {
        return 0;
    };
    if !qs.try_claim(BURST) {
        return 0;
    }
    let n = rx_on(s, qs, out, nb_pkts);
    qs.release();
    n
}

/// Send packets from the front of `pkts` on queue `queue` of `port`. Returns how many
/// were consumed (sent, or dropped as over the MTU and counted in `oerrors`, see
/// [`mtu_set`]); those are
/// removed from `pkts`, and the rest stay there in order, still owned by the caller.
/// Returns 0 with `pkts` untouched if the port is stopped, the ids are out of range, the
/// queue is not set up, or a [`TxQueue`] handle holds it.
#[inline]
pub fn tx_burst(port: u16, queue: u16, pkts: &mut Vec<Mbuf>) -> u16 {
    let Some(s) = slot(port) else { return 0 };
    let Some(qs) = s.tx.get(queue as usize) else {
        return 0;
    };
    if !qs.try_claim(BURST) {
        return 0;
    }
    let n = tx_on(s, qs, pkts);
    qs.release();
    n
}

/// Exclusive handle to one RX queue, for the lcore that polls it: no claim per burst.
/// `Send`, not `Clone`; while it lives, [`rx_burst`] on the same queue returns 0 and the
/// control calls that change queues (setup, configure, close) fail with
/// [`Error::QueueBusy`]. `start`/`stop` still work: a stopped port's handle receives 0.
pub struct RxQueue {
    port: u16,
    queue: u16,
    s: &'static PortSlot,
    qs: &'static QSlot<dyn RxQueueOps>,
}

/// Exclusive handle to one TX queue (see [`RxQueue`]).
pub struct TxQueue {
    port: u16,
    queue: u16,
    s: &'static PortSlot,
    qs: &'static QSlot<dyn TxQueueOps>,
}

fn handle_check(
    port: u16,
    queue: u16,
    dir: &'static str,
) -> Result<(&'static PortSlot, MutexGuard<'static, Option<PortCtl>>)> {
    let (s, g) = lock(port, "get a queue handle of")?;
    let c = g.as_ref().expect("checked by lock");
    let n = if dir == "RX" { c.nb_rxq } else { c.nb_txq };
    if queue >= n {
        return Err(Error::BadQueue {
            op: "get a handle to",
            dir,
            port,
            queue,
            why: format!("port has {n} {dir} queues"),
        });
    }
    Ok((s, g))
}

/// Take the handle of RX queue `queue` of `port` (control path, once per lcore).
pub fn rx_queue(port: u16, queue: u16) -> Result<RxQueue> {
    // The claim is taken under the control lock, so close/configure see it.
    let (s, _g) = handle_check(port, queue, "RX")?;
    let qs = &s.rx[queue as usize];
    if !qs.try_claim(HANDLE) {
        return Err(Error::QueueBusy {
            op: "get a queue handle of",
            dir: "RX",
            port,
            queue,
        });
    }
    // SAFETY: claimed.
    if unsafe { (*qs.q.get()).is_none() } {
        qs.release();
        return Err(Error::BadQueue {
            op: "get a handle to",
            dir: "RX",
            port,
            queue,
            why: "queue is not set up".into(),
        });
    }
    Ok(RxQueue { port, queue, s, qs })
}

/// Take the handle of TX queue `queue` of `port`.
pub fn tx_queue(port: u16, queue: u16) -> Result<TxQueue> {
    let (s, _g) = handle_check(port, queue, "TX")?;
    let qs = &s.tx[queue as usize];
    if !qs.try_claim(HANDLE) {
        return Err(Error::QueueBusy {
            op: "get a queue handle of",
            dir: "TX",
            port,
            queue,
        });
    }
    // SAFETY: claimed.
    if unsafe { (*qs.q.get()).is_none() } {
        qs.release();
        return Err(Error::BadQueue {
            op: "get a handle to",
            dir: "TX",
            port,
            queue,
            why: "queue is not set up".into(),
        });
    }
    Ok(TxQueue { port, queue, s, qs })
}

impl RxQueue {
    /// As [`rx_burst`] without the per-call claim.
    #[inline]
    pub fn rx_burst(&mut self, out: &mut Vec<Mbuf>, nb_pkts: u16) -> u16 {
        rx_on(self.s, self.qs, out, nb_pkts)
    }
    /// (port, queue).
    pub fn id(&self) -> (u16, u16) {
        (self.port, self.queue)
    }
}

impl TxQueue {
    /// As [`tx_burst`] without the per-call claim.
    #[inline]
    pub fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) -> u16 {
        tx_on(self.s, self.qs, pkts)
    }
    /// (port, queue).
    pub fn id(&self) -> (u16, u16) {
        (self.port, self.queue)
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        self.qs.release();
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        self.qs.release();
    }
}
