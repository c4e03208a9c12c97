//! The driver registry: the factory that picks a driver for a `--vdev` name (by
//! prefix) or a PCI device (by id table). It knows the built-in driver modules; they do
//! not know it (they export a [`VdevDriver`] or [`PciDriver`] entry and nothing else).

use std::sync::Mutex;

use eal::pci::PciDevice;

use crate::driver::{PciDriver, QueueAttach, VdevDriver};
use crate::drivers;
use crate::error::{Error, Result};

/// The built-in vdev drivers.
pub(crate) fn vdev_drivers() -> &'static [VdevDriver] {
    &[
        drivers::null::DRIVER,
        drivers::ring::DRIVER,
        drivers::af_packet::DRIVER,
        drivers::af_xdp::DRIVER,
        drivers::tap::DRIVER,
        drivers::pcap::DRIVER,
    ]
}

/// The driver whose name or alias prefixes `name`.
pub(crate) fn find_vdev_driver(name: &str) -> Result<&'static VdevDriver> {
    let ds = vdev_drivers();
    ds.iter()
        .find(|d| name.starts_with(d.name) || d.aliases.iter().any(|a| name.starts_with(a)))
        .ok_or_else(|| Error::UnknownDriver {
            name: name.into(),
            known: ds.iter().map(|d| d.name).collect::<Vec<_>>().join(", "),
        })
}

/// The secondary-process queue constructors of the driver named `driver` (the name
/// [`crate::DevInfo::driver_name`] gives), for the drivers that share queues between
/// processes.
pub(crate) fn queue_attach(driver: &str) -> Option<QueueAttach> {
    Some(match driver {
        "net_null" => drivers::null::ATTACH,
        "net_ring" => drivers::ring::ATTACH,
        "net_af_packet" => drivers::af_packet::ATTACH,
        "net_tap" => drivers::tap::ATTACH,
        drivers::e1000::NAME => drivers::e1000::ATTACH,
        _ => return None,
    })
}

/// The static name of the driver called `name` (a name read from shared memory), or
/// `"unknown"`.
pub(crate) fn queue_attach_name(name: &str) -> &'static str {
    vdev_drivers()
        .iter()
        .map(|d| d.name)
        .chain(builtin_pci_drivers().iter().map(|d| d.name))
        .find(|&n| n == name)
        .unwrap_or("unknown")
}

static PCI_DRIVERS: Mutex<Vec<PciDriver>> = Mutex::new(Vec::new());

/// Register a PCI driver (control path; drivers registered later are tried later).
/// Registering a second driver with the same name replaces the first.
pub fn register_pci_driver(d: PciDriver) {
    let mut v = PCI_DRIVERS.lock().unwrap_or_else(|e| e.into_inner());
    v.retain(|x| x.name != d.name);
    v.push(d);
}

/// Remove a PCI driver by name; true if it was registered.
pub fn unregister_pci_driver(name: &str) -> bool {
    let mut v = PCI_DRIVERS.lock().unwrap_or_else(|e| e.into_inner());
    let before = v.len();
    v.retain(|x| x.name != name);
    v.len() != before
}

/// The built-in PCI drivers, tried after the registered ones.
pub(crate) fn builtin_pci_drivers() -> &'static [PciDriver] {
    &[drivers::e1000::DRIVER, drivers::virtio::DRIVER]
}

/// The first registered driver whose id table matches `dev`, else the first built-in one.
pub fn match_pci_driver(dev: &PciDevice) -> Option<PciDriver> {
    let v = PCI_DRIVERS.lock().unwrap_or_else(|e| e.into_inner());
    v.iter()
        .chain(builtin_pci_drivers())
        .find(|d| d.id_table.iter().any(|id| id.matches(dev)))
        .copied()
}
