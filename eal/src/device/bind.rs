//! Binding PCI devices to kernel drivers through sysfs, and "is this device in use?".
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
//!
//! # In use
//!
//! A device is in use if one of its network interfaces (`<sys>/class/net/*` whose
//! `device` resolves to it) is up (`flags` & `IFF_UP`) and has a route in
//! `<proc>/net/route` or `<proc>/net/ipv6_route`, or if one of its block devices
//! (`<sys>/class/block/*` resolving under it, partitions included) is mounted
//! (`<proc>/mounts`) or used as swap (`<proc>/swaps`). Device-mapper/md holders are not
//! followed (a gap: such a device is reported as free).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::hugepage::SysRoots;
use crate::pci::PciAddr;

/// Drivers through which Ferroplane drives a device from user space.
pub const USERSPACE_DRIVERS: &[&str] = &["vfio-pci", "uio_pci_generic"];

/// How long [`bind`] waits for the kernel to show the new driver link.
pub const SETTLE: Duration = Duration::from_secs(3);

/// `IFF_UP` (linux/if.h).
const IFF_UP: u64 = 0x1;

/// `<sys>/bus/pci/devices/<addr>`.
pub fn device_dir(sys: &Path, addr: PciAddr) -> PathBuf {
    sys.join("bus/pci/devices").join(addr.to_string())
}

fn link_name(p: &Path) -> Result<Option<String>> {
    match fs::read_link(p) {
        Ok(t) => Ok(t.file_name().map(|n| n.to_string_lossy().into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read link", p.display().to_string(), e)),
    }
}

fn require_device(sys: &Path, addr: PciAddr) -> Result<PathBuf> {
    let d = device_dir(sys, addr);
    if !d.exists() {
        return Err(Error::NoSuchDevice {
            addr: addr.to_string(),
            path: sys.join("bus/pci/devices"),
        });
    }
    Ok(d)
}

/// The driver a device is bound to now (basename of `<dev>/driver`).
pub fn current_driver(sys: &Path, addr: PciAddr) -> Result<Option<String>> {
    let d = require_device(sys, addr)?;
    link_name(&d.join("driver"))
}

/// True for the drivers in [`USERSPACE_DRIVERS`].
pub fn is_userspace_driver(name: &str) -> bool {
    USERSPACE_DRIVERS.contains(&name)
}

/// Names under `<sys>/class/<class>` whose link resolves inside the device directory.
fn class_members(sys: &Path, addr: PciAddr, class: &str) -> Result<Vec<String>> {
    let dev = match fs::canonicalize(device_dir(sys, addr)) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::io(
                "resolve",
                device_dir(sys, addr).display().to_string(),
                e,
            ))
        }
    };
    let dir = sys.join("class").join(class);
    let rd = match fs::read_dir(&dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir.display().to_string(), e)),
    };
    let mut out = Vec::new();
    for ent in rd.flatten() {
        // A member that vanished or does not resolve is not ours.
        if let Ok(p) = fs::canonicalize(ent.path()) {
            if p.starts_with(&dev) {
                out.push(ent.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The network interfaces of a PCI device.
pub fn net_interfaces(sys: &Path, addr: PciAddr) -> Result<Vec<String>> {
    class_members(sys, addr, "net")
}

/// The block devices (disks and partitions) of a PCI device.
pub fn block_devices(sys: &Path, addr: PciAddr) -> Result<Vec<String>> {
    class_members(sys, addr, "block")
}

fn read_opt(p: &Path) -> Result<Option<String>> {
    match fs::read_to_string(p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", p.display().to_string(), e)),
    }
}

/// Interfaces with at least one route in `/proc/net/route` (first column) or
/// `/proc/net/ipv6_route` (last column).
pub fn routed_interfaces(proc_root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if let Some(t) = read_opt(&proc_root.join("net/route"))? {
        for line in t.lines().skip(1) {
            if let Some(i) = line.split_whitespace().next() {
                out.push(i.to_string());
            }
        }
    }
    if let Some(t) = read_opt(&proc_root.join("net/ipv6_route"))? {
        for line in t.lines() {
            if let Some(i) = line.split_whitespace().last() {
                if line.split_whitespace().count() >= 10 {
                    out.push(i.to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Unescape the octal escapes (`\040` for space) the kernel uses in /proc/mounts.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why a device is in use; empty if it is free. See the module docs for the rules.
pub fn in_use(roots: &SysRoots, addr: PciAddr) -> Result<Vec<String>> {
    let mut why = Vec::new();
    let ifaces = net_interfaces(&roots.sys, addr)?;
    if !ifaces.is_empty() {
        let routed = routed_interfaces(&roots.proc)?;
        for i in &ifaces {
            let fp = roots.sys.join("class/net").join(i).join("flags");
            let up = match read_opt(&fp)? {
                Some(t) => {
                    let t = t.trim();
                    u64::from_str_radix(t.trim_start_matches("0x"), 16).map_err(|_| {
                        Error::PciParse {
                            path: fp.clone(),
                            why: format!("'{t}' is not hex interface flags"),
                        }
                    })? & IFF_UP
                        != 0
                }
                None => false,
            };
            if up && routed.iter().any(|r| r == i) {
                why.push(format!("network interface {i} is up and has routes"));
            }
        }
    }
    let blocks = block_devices(&roots.sys, addr)?;
    if !blocks.is_empty() {
        let mounts = read_opt(&roots.proc.join("mounts"))?.unwrap_or_default();
        for line in mounts.lines() {
            let mut f = line.split_whitespace();
            let (Some(src), Some(dst)) = (f.next(), f.next()) else {
                continue;
            };
            if let Some(name) = src.strip_prefix("/dev/") {
                if blocks.iter().any(|b| b == name) {
                    why.push(format!(
                        "block device {name} is mounted on {}",
                        unescape_mount(dst)
                    ));
                }
            }
        }
        let swaps = read_opt(&roots.proc.join("swaps"))?.unwrap_or_default();
        for line in swaps.lines().skip(1) {
            if let Some(name) = line
                .split_whitespace()
                .next()
                .and_then(|s| s.strip_prefix("/dev/"))
            {
                if blocks.iter().any(|b| b == name) {
                    why.push(format!("block device {name} is used as swap"));
                }
            }
        }
    }
    Ok(why)
}

fn write_attr(p: &Path, value: &str) -> Result<()> {
    fs::write(p, value).map_err(|e| {
        Error::io(
            "write",
            format!("'{}' to {}", value.trim_end(), p.display()),
            e,
        )
    })
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

/// Glob match with `*` and `?` (the patterns of `modules.alias`).
fn glob(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some(p);
            mark = i;
            p += 1;
        } else if let Some(sp) = star {
            p = sp + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    while p < pat.len() && pat[p] == b'*' {
        p += 1;
    }
    p == pat.len()
}

/// Kernel modules whose `modules.alias` patterns match `modalias`, sorted, deduplicated.
pub fn matching_modules(modules_alias: &str, modalias: &str) -> Vec<String> {
    let mut out: Vec<String> = modules_alias
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            match (f.next(), f.next(), f.next()) {
                (Some("alias"), Some(pat), Some(module))
                    if glob(pat.as_bytes(), modalias.as_bytes()) =>
                {
                    Some(module.to_string())
                }
                _ => None,
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Drivers that could take the device other than its current one (the `unused=` list of
/// `ferroplane-devbind --status`): the loaded user-space drivers, plus the kernel modules
/// whose alias matches the device's `modalias` (from `modules_alias`, the text of
/// `/lib/modules/$(uname -r)/modules.alias`, when available).
pub fn candidate_drivers(
    sys: &Path,
    addr: PciAddr,
    modules_alias: Option<&str>,
) -> Result<Vec<String>> {
    let dev = require_device(sys, addr)?;
    let cur = link_name(&dev.join("driver"))?;
    let mut out: Vec<String> = Vec::new();
    if let (Some(aliases), Some(ma)) = (modules_alias, read_opt(&dev.join("modalias"))?) {
        for m in matching_modules(aliases, ma.trim()) {
            // Module names use '_', driver names sometimes '-' (vfio_pci → vfio-pci).
            out.push(m);
        }
    }
    for d in USERSPACE_DRIVERS {
        if sys.join("bus/pci/drivers").join(d).is_dir() {
            out.push((*d).to_string());
        }
    }
    let norm = |s: &str| s.replace('-', "_");
    let mut seen: Vec<String> = Vec::new();
    out.retain(|d| {
        let n = norm(d);
        let keep = !seen.contains(&n) && cur.as_deref().map(norm) != Some(n.clone());
        seen.push(n);
        keep
    });
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::test_util::TempDir;
    use std::os::unix::fs::symlink;

    /// A fake kernel tree: `<root>/sys` and `<root>/proc` laid out like the kernel's, with
    /// an NVMe controller at 00:02.0 (disk nvme0n1, partition nvme0n1p1), an e1000 at
    /// 00:03.0 (interface eth0) and a second e1000 at 00:04.0 (eth1).
    pub(crate) struct FakeTree {
        /// Keeps the tree alive; removed on drop.
        pub _dir: TempDir,
        pub roots: SysRoots,
    }

    pub(crate) const NVME: &str = "0000:00:02.0";
    pub(crate) const NIC0: &str = "0000:00:03.0";
    pub(crate) const NIC1: &str = "0000:00:04.0";

    impl FakeTree {
        pub(crate) fn new() -> FakeTree {
            let dir = TempDir::new("bind");
            let roots = SysRoots::under(dir.path());
            let sys = &roots.sys.clone();
            for d in ["nvme", "e1000", "vfio-pci", "uio_pci_generic"] {
                let dd = sys.join("bus/pci/drivers").join(d);
                fs::create_dir_all(&dd).unwrap();
                fs::write(dd.join("bind"), "").unwrap();
                fs::write(dd.join("unbind"), "").unwrap();
                fs::write(dd.join("new_id"), "").unwrap();
            }
            fs::write(sys.join("bus/pci/drivers_probe"), "").unwrap();
            fs::create_dir_all(sys.join("bus/pci/devices")).unwrap();
            fs::create_dir_all(sys.join("class/net")).unwrap();
            fs::create_dir_all(sys.join("class/block")).unwrap();
            fs::create_dir_all(roots.proc.join("net")).unwrap();
            let t = FakeTree { _dir: dir, roots };
            t.add_dev(NVME, "0x1b36", "0x0010", "0x010802", Some("nvme"));
            t.add_dev(NIC0, "0x8086", "0x100e", "0x020000", Some("e1000"));
            t.add_dev(NIC1, "0x8086", "0x100e", "0x020000", Some("e1000"));
            let nv = format!("../../devices/pci0000:00/{NVME}/nvme/nvme0/nvme0n1");
            fs::create_dir_all(
                sys.join("devices/pci0000:00")
                    .join(NVME)
                    .join("nvme/nvme0/nvme0n1/nvme0n1p1"),
            )
            .unwrap();
            symlink(&nv, sys.join("class/block/nvme0n1")).unwrap();
            symlink(format!("{nv}/nvme0n1p1"), sys.join("class/block/nvme0n1p1")).unwrap();
            // A block device of another controller must not count.
            fs::create_dir_all(sys.join("devices/virtual/block/loop0")).unwrap();
            symlink(
                "../../devices/virtual/block/loop0",
                sys.join("class/block/loop0"),
            )
            .unwrap();
            for (a, i) in [(NIC0, "eth0"), (NIC1, "eth1")] {
                let nd = sys.join("devices/pci0000:00").join(a).join("net").join(i);
                fs::create_dir_all(&nd).unwrap();
                fs::write(nd.join("flags"), "0x1002\n").unwrap();
                symlink(
                    format!("../../devices/pci0000:00/{a}/net/{i}"),
                    sys.join("class/net").join(i),
                )
                .unwrap();
            }
            fs::write(
                t.roots.proc.join("mounts"),
                "proc /proc proc rw 0 0\n/dev/loop0 /mnt/x ext4 rw 0 0\n",
            )
            .unwrap();
            fs::write(
                t.roots.proc.join("swaps"),
                "Filename Type Size Used Priority\n",
            )
            .unwrap();
            fs::write(
                t.roots.proc.join("net/route"),
                "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n",
            )
            .unwrap();
            t
        }

        pub(crate) fn add_dev(
            &self,
            addr: &str,
            vendor: &str,
            device: &str,
            class: &str,
            driver: Option<&str>,
        ) {
            let sys = &self.roots.sys;
            let real = sys.join("devices/pci0000:00").join(addr);
            fs::create_dir_all(&real).unwrap();
            for (f, v) in [
                ("vendor", vendor),
                ("device", device),
                ("subsystem_vendor", "0x1af4"),
                ("subsystem_device", "0x1100"),
                ("class", class),
                ("driver_override", "(null)\n"),
            ] {
                fs::write(real.join(f), v).unwrap();
            }
            let ma = format!(
                "pci:v0000{}d0000{}sv00001AF4sd00001100bc{}sc{}i{}\n",
                vendor[2..].to_uppercase(),
                device[2..].to_uppercase(),
                &class[2..4],
                &class[4..6],
                &class[6..8]
            );
            fs::write(real.join("modalias"), ma).unwrap();
            symlink(
                format!("../../../devices/pci0000:00/{addr}"),
                sys.join("bus/pci/devices").join(addr),
            )
            .unwrap();
            if let Some(d) = driver {
                self.set_driver(addr, Some(d));
            }
        }

        /// What the kernel does when a driver takes or drops a device.
        pub(crate) fn set_driver(&self, addr: &str, driver: Option<&str>) {
            let link = self
                .roots
                .sys
                .join("devices/pci0000:00")
                .join(addr)
                .join("driver");
            let _ = fs::remove_file(&link);
            if let Some(d) = driver {
                symlink(format!("../../../bus/pci/drivers/{d}"), link).unwrap();
            }
        }

        pub(crate) fn read(&self, rel: &str) -> String {
            fs::read_to_string(self.roots.sys.join(rel)).unwrap()
        }

        pub(crate) fn addr(s: &str) -> PciAddr {
            s.parse().unwrap()
        }
    }

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

    #[test]
    fn routed_up_interface_is_in_use() {
        let t = FakeTree::new();
        let route =
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
                     eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        fs::write(t.roots.proc.join("net/route"), route).unwrap();
        // Routes but down: free.
        assert!(in_use(&t.roots, FakeTree::addr(NIC0)).unwrap().is_empty());
        fs::write(t.roots.sys.join("class/net/eth0/flags"), "0x1003\n").unwrap();
        assert_eq!(
            in_use(&t.roots, FakeTree::addr(NIC0)).unwrap(),
            ["network interface eth0 is up and has routes"]
        );
        // The other NIC is unaffected.
        assert!(in_use(&t.roots, FakeTree::addr(NIC1)).unwrap().is_empty());
        // Up with only an IPv6 route.
        fs::write(t.roots.sys.join("class/net/eth1/flags"), "0x1003\n").unwrap();
        fs::write(
            t.roots.proc.join("net/ipv6_route"),
            "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth1\n",
        )
        .unwrap();
        assert_eq!(in_use(&t.roots, FakeTree::addr(NIC1)).unwrap().len(), 1);
        // Malformed flags are an error naming the file, not a panic.
        fs::write(t.roots.sys.join("class/net/eth1/flags"), "zz\n").unwrap();
        let e = in_use(&t.roots, FakeTree::addr(NIC1)).unwrap_err();
        assert!(e.to_string().contains("eth1/flags"), "{e}");
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
    fn globs_and_candidates() {
        assert!(glob(
            b"pci:v00008086d0000100Esv*sd*bc*sc*i*",
            b"pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00"
        ));
        assert!(!glob(
            b"pci:v00008086d0000100Fsv*",
            b"pci:v00008086d0000100Esv00001AF4"
        ));
        assert!(glob(b"a?c*", b"abcdef"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"?", b""));
        let aliases = "alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000\n\
                       alias pci:v*d*sv*sd*bc01sc08i02* nvme\n\
                       alias pci:v*d*sv*sd*bc*sc*i* vfio_pci\n\
                       alias usb:v*d* usbcore\n";
        let t = FakeTree::new();
        let sys = &t.roots.sys;
        let c = candidate_drivers(sys, FakeTree::addr(NIC0), Some(aliases)).unwrap();
        assert_eq!(c, ["vfio_pci", "uio_pci_generic"]);
        let c = candidate_drivers(sys, FakeTree::addr(NVME), Some(aliases)).unwrap();
        assert_eq!(c, ["vfio_pci", "uio_pci_generic"]);
        t.set_driver(NVME, Some("vfio-pci"));
        let c = candidate_drivers(sys, FakeTree::addr(NVME), Some(aliases)).unwrap();
        assert_eq!(c, ["nvme", "uio_pci_generic"]);
        let c = candidate_drivers(sys, FakeTree::addr(NVME), None).unwrap();
        assert_eq!(c, ["uio_pci_generic"]);
        assert_eq!(
            matching_modules(
                aliases,
                "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02"
            ),
            ["nvme", "vfio_pci"]
        );
    }

    #[test]
    fn mount_unescape() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
        assert_eq!(unescape_mount("/a\\04"), "/a\\04");
        assert_eq!(unescape_mount("\\134x"), "\\x");
    }
}
