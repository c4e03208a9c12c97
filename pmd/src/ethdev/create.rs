//! Port creation: from `--vdev` strings, PCI devices, or existing rings; and the port
//! table's lookups (ids, names).

use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use eal::{Eal, MemzoneFlags};
use ring::Ring;

use super::lifecycle::close;
use super::port::{frame_limit, with_port, PortCtl, SharedPtr, State, ALLOC, PORTS};
use crate::driver::{EthDriver, VdevCtx};
use crate::drivers;
use crate::error::{Error, Result};
use crate::registry;
use crate::shared::{self, PortShared};
use crate::types::{EthConf, DEFAULT_MTU, MAX_PORTS};
use crate::vdev::VdevArgs;

fn log(args: std::fmt::Arguments<'_>) {
    eal::log_info!("pmd: {}", args);
}

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
    let mac = driver
        .control()
        .and_then(|d| d.mac())
        .unwrap_or_else(|| default_mac(port));
    // SAFETY: a fresh memzone of at least size_of::<PortShared>() bytes, 64-aligned,
    // nobody reads it until the port is published (after this write). All-zero is a
    // valid PortShared (atomics and byte arrays), then identity fields are set.
    unsafe {
        std::ptr::write_bytes(p.cast::<u8>(), 0, std::mem::size_of::<PortShared>());
        let s = &mut *p;
        s.port_id = port;
        shared::put_cstr(&mut s.name, name);
        shared::put_cstr(&mut s.driver, driver.info().driver_name);
        s.set_mac(mac);
        s.mtu.store(DEFAULT_MTU, Ordering::Relaxed);
        s.version = shared::VERSION;
        s.magic = shared::MAGIC;
    }
    let s = &PORTS[port as usize];
    s.started.store(false, Ordering::Relaxed);
    s.frame_max.store(
        frame_limit(driver.tx_mtu_check(), DEFAULT_MTU),
        Ordering::Relaxed,
    );
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
        remote: None,
        claimed: Vec::new(),
    });
    drop(g);
    if eal.is_primary() {
        super::mp::serve(eal);
    }
    log(format_args!("port {port}: '{name}' attached"));
    Ok(port)
}

/// Create a port from a `--vdev` string such as `net_null0,size=64`. Control path.
/// Unknown driver names and keys are refused with an error naming them.
pub fn vdev_create(eal: &Eal, spec: &str) -> Result<u16> {
    let args = VdevArgs::parse(spec)?;
    let d = registry::find_vdev_driver(&args.name)?;
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
        if let Some(d) = registry::match_pci_driver(dev) {
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

/// Make a `net_ring` port named `name` whose RX queue i dequeues from `rx[i]` and TX
/// queue i enqueues to `tx[i]` (DPDK's `rte_eth_from_rings`). The same ring may appear
/// in both lists (loopback) or in another port's lists (a pair of ports wired together).
/// Closing the port leaves the rings and their contents alone.
///
/// # Safety
/// Every element anyone puts in these rings is the address of an mbuf header handed
/// over with [`mbuf::Mbuf::into_raw`] (the port takes ownership with `Mbuf::from_raw`
/// on RX), in a pool this process has a handle to; and while the port lives the rings'
/// single sides (if any) are used only through this port's queues.
pub unsafe fn eth_from_rings(
    eal: &Eal,
    name: &str,
    rx: &[Ring<usize>],
    tx: &[Ring<usize>],
) -> Result<u16> {
    // SAFETY: the caller's promise is `from_rings`' contract, forwarded.
    let driver = unsafe { drivers::ring::from_rings(name, rx, tx) }?;
    attach_port(eal, name, |port| Ok(driver(port)))
}
