//! Binding PCI devices to kernel drivers through sysfs.
//!
//! All paths are under a [`SysRoots`] (`/sys` and `/proc` in production, a fake tree in
//! a temporary directory in unit tests), so this logic is tested without touching a real
//! device.
//!
//! # Binding
//!
//! [`bind`] does what the kernel documents for `driver_override`
//! (Documentation/ABI/testing/sysfs-bus-pci):
//! 1. refuse if the device is in use ([`in_use`]) unless `force`;
//! 2. unbind from the current driver (`<dev>/driver/unbind` ← address);
//! 3. `<dev>/driver_override` ← target driver, then `bus/pci/drivers_probe` ← address;
//! 4. wait up to [`SETTLE`] for `<dev>/driver` to name the target; if the kernel has no
//!    `driver_override` (older than 3.16), fall back to `drivers/<drv>/new_id` ←
//!    `"vvvv dddd"` and `drivers/<drv>/bind` ← address;
//! 5. for a kernel (not user-space) driver, clear `driver_override` again so the device
//!    goes back to normal matching; for vfio-pci / uio_pci_generic it stays set, so a
//!    re-probe cannot hand the device back to its kernel driver behind our back.
//!
//! [`unbind`] only does steps 1–2. Both need root on a real system. **Never call them on
//! the host's own devices in tests**: Ferroplane's tests bind only inside the QEMU guest
//! of `testbed/`, and use fake trees elsewhere.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::hugepage::SysRoots;
use crate::pci::PciAddr;

use super::sysfs::{link_name, require_device, write_attr};

pub use super::drivers::{
    candidate_drivers, is_userspace_driver, matching_modules, USERSPACE_DRIVERS,
};
pub use super::in_use::{block_devices, in_use, net_interfaces, routed_interfaces};
pub use super::sysfs::device_dir;

/// How long [`bind`] waits for the kernel to show the new driver link.
pub const SETTLE: Duration = Duration::from_secs(3);

/// The driver a device is bound to now (basename of `<dev>/driver`).
pub fn current_driver(sys: &Path, addr: PciAddr) -> Result<Option<String>> {
    let d = require_device(sys, addr)?;
    link_name(&d.join("driver"))
}

/// What [`bind`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindOutcome {
    /// The device was already bound to the driver; nothing was written.
    AlreadyBound,
    /// Bound; `previous` is the driver it had before.
    Bound { previous: Option<String> },
}

/// Unbind `addr` from its driver. Returns the driver it had (`None`: it had none and
/// nothing was written). Refuses a device in use unless `force`.
pub fn unbind(roots: &SysRoots, addr: PciAddr, force: bool) -> Result<Option<String>> {
    let dev = require_device(&roots.sys, addr)?;
    let Some(drv) = link_name(&dev.join("driver"))? else {
        return Ok(None);
    };
    if !force {
        let why = in_use(roots, addr)?;
        if !why.is_empty() {
            return Err(Error::DeviceInUse {
                addr: addr.to_string(),
                why: why.join("; "),
            });
        }
    }
    write_attr(&dev.join("driver/unbind"), &addr.to_string())?;
    Ok(Some(drv))
}

fn wait_for_driver(sys: &Path, addr: PciAddr, driver: &str, settle: Duration) -> Result<bool> {
    let link = device_dir(sys, addr).join("driver");
    let start = Instant::now();
    loop {
        if link_name(&link)?.as_deref() == Some(driver) {
            return Ok(true);
        }
        if start.elapsed() >= settle {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Bind `addr` to `driver` (see the module docs for the steps). Refuses a device in use
/// unless `force`; [`Error::DriverNotLoaded`] names the `modprobe` to run.
pub fn bind(roots: &SysRoots, addr: PciAddr, driver: &str, force: bool) -> Result<BindOutcome> {
    bind_with_settle(roots, addr, driver, force, SETTLE)
}

/// [`bind`] with an explicit settle time (tests on a fake tree, where no kernel answers,
/// use zero).
pub fn bind_with_settle(
    roots: &SysRoots,
    addr: PciAddr,
    driver: &str,
    force: bool,
    settle: Duration,
) -> Result<BindOutcome> {
    let sys = &roots.sys;
    let dev = require_device(sys, addr)?;
    if driver.is_empty() || driver.contains('/') || driver.contains(char::is_whitespace) {
        return Err(Error::BindFailed {
            addr: addr.to_string(),
            driver: driver.into(),
            why: "not a driver name".into(),
        });
    }
    let previous = link_name(&dev.join("driver"))?;
    if previous.as_deref() == Some(driver) {
        return Ok(BindOutcome::AlreadyBound);
    }
    let drv_dir = sys.join("bus/pci/drivers").join(driver);
    if !drv_dir.is_dir() {
        return Err(Error::DriverNotLoaded {
            addr: addr.to_string(),
            driver: driver.into(),
            path: drv_dir,
        });
    }
    if previous.is_some() {
        unbind(roots, addr, force)?;
    }
    let a = addr.to_string();
    let ovr = dev.join("driver_override");
    let have_override = ovr.exists();
    if have_override {
        write_attr(&ovr, driver)?;
        write_attr(&sys.join("bus/pci/drivers_probe"), &a)?;
    }
    let mut bound = wait_for_driver(
        sys,
        addr,
        driver,
        if have_override {
            settle
        } else {
            Duration::ZERO
        },
    )?;
    if !bound && !have_override {
        // Pre-3.16 kernels: teach the driver the id, then bind explicitly.
        let vendor = fs::read_to_string(dev.join("vendor")).unwrap_or_default();
        let device = fs::read_to_string(dev.join("device")).unwrap_or_default();
        let id = format!(
            "{} {}",
            vendor.trim().trim_start_matches("0x"),
            device.trim().trim_start_matches("0x")
        );
        // new_id may already know the id (EEXIST) and new_id itself may probe: both fine.
        let _ = write_attr(&drv_dir.join("new_id"), &id);
        if !wait_for_driver(sys, addr, driver, Duration::ZERO)? {
            write_attr(&drv_dir.join("bind"), &a)?;
        }
        bound = wait_for_driver(sys, addr, driver, settle)?;
    }
    if !bound {
        let now = link_name(&dev.join("driver"))?;
        return Err(Error::BindFailed {
            addr: a,
            driver: driver.into(),
            why: format!(
                "the kernel did not attach it (now bound to {}; see dmesg)",
                now.as_deref().unwrap_or("no driver")
            ),
        });
    }
    if have_override && !is_userspace_driver(driver) {
        write_attr(&ovr, "\n")?;
    }
    Ok(BindOutcome::Bound { previous })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::fake_tree::{FakeTree, NIC0, NIC1, NVME};
    use std::os::unix::fs::symlink;

    #[test]
    fn driver_and_members() {
        let t = FakeTree::new();
        let sys = &t.roots.sys;
        assert_eq!(
            current_driver(sys, FakeTree::addr(NVME))
                .unwrap()
                .as_deref(),
            Some("nvme")
        );
        assert_eq!(
            block_devices(sys, FakeTree::addr(NVME)).unwrap(),
            ["nvme0n1", "nvme0n1p1"]
        );
        assert!(block_devices(sys, FakeTree::addr(NIC0)).unwrap().is_empty());
        assert_eq!(net_interfaces(sys, FakeTree::addr(NIC0)).unwrap(), ["eth0"]);
        assert_eq!(net_interfaces(sys, FakeTree::addr(NIC1)).unwrap(), ["eth1"]);
        let missing = FakeTree::addr("0000:00:1f.0");
        assert!(matches!(
            current_driver(sys, missing),
            Err(Error::NoSuchDevice { .. })
        ));
        assert!(in_use(&t.roots, FakeTree::addr(NVME)).unwrap().is_empty());
        assert!(in_use(&t.roots, FakeTree::addr(NIC0)).unwrap().is_empty());
    }

    #[test]
    fn bind_writes_override_and_probe() {
        let t = FakeTree::new();
        let a = FakeTree::addr(NVME);
        // No kernel answers in a fake tree: the writes happen, then the bind is reported
        // as failed because the driver link never changes.
        let e = bind_with_settle(&t.roots, a, "vfio-pci", false, Duration::ZERO).unwrap_err();
        assert!(
            matches!(&e, Error::BindFailed { why, .. } if why.contains("now bound to nvme")),
            "{e}"
        );
        assert_eq!(t.read("bus/pci/drivers/nvme/unbind"), NVME);
        assert_eq!(
            t.read(&format!("bus/pci/devices/{NVME}/driver_override")),
            "vfio-pci"
        );
        assert_eq!(t.read("bus/pci/drivers_probe"), NVME);
        // Had the kernel bound it, a second bind is a no-op.
        t.set_driver(NVME, Some("vfio-pci"));
        assert_eq!(
            bind_with_settle(&t.roots, a, "vfio-pci", false, Duration::ZERO).unwrap(),
            BindOutcome::AlreadyBound
        );
        // Unknown driver: names the modprobe.
        let e = bind_with_settle(&t.roots, a, "ixgbe", false, Duration::ZERO).unwrap_err();
        assert!(e.to_string().contains("modprobe ixgbe"), "{e}");
        let e = bind_with_settle(&t.roots, a, "../x", false, Duration::ZERO).unwrap_err();
        assert!(matches!(e, Error::BindFailed { .. }));
    }

    #[test]
    fn bind_back_to_kernel_driver_clears_override() {
        let t = FakeTree::new();
        let a = FakeTree::addr(NVME);
        t.set_driver(NVME, Some("vfio-pci"));
        fs::write(
            t.roots
                .sys
                .join("devices/pci0000:00")
                .join(NVME)
                .join("driver_override"),
            "vfio-pci",
        )
        .unwrap();
        // Simulate the kernel: bind as soon as drivers_probe is written. A helper thread
        // plays the kernel's part.
        let sys = t.roots.sys.clone();
        let kernel = std::thread::spawn(move || {
            let probe = sys.join("bus/pci/drivers_probe");
            for _ in 0..300 {
                if fs::read_to_string(&probe).unwrap_or_default() == NVME {
                    let link = sys.join("devices/pci0000:00").join(NVME).join("driver");
                    let _ = fs::remove_file(&link);
                    symlink("../../../bus/pci/drivers/nvme", link).unwrap();
                    return true;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            false
        });
        let r = bind_with_settle(&t.roots, a, "nvme", false, Duration::from_secs(5)).unwrap();
        assert!(kernel.join().unwrap());
        assert_eq!(
            r,
            BindOutcome::Bound {
                previous: Some("vfio-pci".into())
            }
        );
        assert_eq!(t.read("bus/pci/drivers/vfio-pci/unbind"), NVME);
        assert_eq!(
            t.read(&format!("bus/pci/devices/{NVME}/driver_override")),
            "\n"
        );
        assert_eq!(
            current_driver(&t.roots.sys, a).unwrap().as_deref(),
            Some("nvme")
        );
    }

    #[test]
    fn new_id_fallback_without_override() {
        let t = FakeTree::new();
        let a = FakeTree::addr(NIC1);
        fs::remove_file(
            t.roots
                .sys
                .join("devices/pci0000:00")
                .join(NIC1)
                .join("driver_override"),
        )
        .unwrap();
        let e =
            bind_with_settle(&t.roots, a, "uio_pci_generic", false, Duration::ZERO).unwrap_err();
        assert!(matches!(e, Error::BindFailed { .. }));
        assert_eq!(t.read("bus/pci/drivers/e1000/unbind"), NIC1);
        assert_eq!(
            t.read("bus/pci/drivers/uio_pci_generic/new_id"),
            "8086 100e"
        );
        assert_eq!(t.read("bus/pci/drivers/uio_pci_generic/bind"), NIC1);
    }

    #[test]
    fn unbind_unbound_is_noop() {
        let t = FakeTree::new();
        t.set_driver(NIC0, None);
        assert_eq!(unbind(&t.roots, FakeTree::addr(NIC0), false).unwrap(), None);
        assert_eq!(t.read("bus/pci/drivers/e1000/unbind"), "");
    }

    #[test]
    fn mounted_partition_is_in_use() {
        let t = FakeTree::new();
        fs::write(
            t.roots.proc.join("mounts"),
            "/dev/nvme0n1p1 /mnt/my\\040data ext4 rw 0 0\n",
        )
        .unwrap();
        let why = in_use(&t.roots, FakeTree::addr(NVME)).unwrap();
        assert_eq!(why, ["block device nvme0n1p1 is mounted on /mnt/my data"]);
        // Refused without force, nothing written.
        fs::create_dir_all(t.roots.sys.join("devices/pci0000:00").join(NVME)).unwrap();
        let e = bind_with_settle(
            &t.roots,
            FakeTree::addr(NVME),
            "vfio-pci",
            false,
            Duration::ZERO,
        )
        .unwrap_err();
        assert!(matches!(e, Error::DeviceInUse { .. }), "{e}");
        assert!(e.to_string().contains("--force"));
        assert_eq!(t.read("bus/pci/drivers/nvme/unbind"), "");
        assert_eq!(
            t.read(&format!("bus/pci/devices/{NVME}/driver_override")),
            "(null)\n"
        );
        let e = unbind(&t.roots, FakeTree::addr(NVME), false).unwrap_err();
        assert!(matches!(e, Error::DeviceInUse { .. }));
        // Swap counts too.
        fs::write(t.roots.proc.join("mounts"), "").unwrap();
        fs::write(
            t.roots.proc.join("swaps"),
            "Filename Type Size Used Priority\n/dev/nvme0n1 partition 1 0 -2\n",
        )
        .unwrap();
        assert_eq!(
            in_use(&t.roots, FakeTree::addr(NVME)).unwrap(),
            ["block device nvme0n1 is used as swap"]
        );
        // Forced unbind writes the address to the driver's unbind file.
        assert_eq!(
            unbind(&t.roots, FakeTree::addr(NVME), true)
                .unwrap()
                .as_deref(),
            Some("nvme")
        );
        assert_eq!(t.read("bus/pci/drivers/nvme/unbind"), NVME);
    }
}
