//! "Is this device in use?": a device the host itself uses must not be unbound.
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
use std::path::Path;

use crate::error::{Error, Result};
use crate::hugepage::{unescape_mount, SysRoots};
use crate::pci::PciAddr;

use super::sysfs::{device_dir, read_opt};

/// `IFF_UP` (linux/if.h).
const IFF_UP: u64 = 0x1;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::fake_tree::{FakeTree, NIC0, NIC1};

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
    fn mount_unescape() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
        assert_eq!(unescape_mount("/a\\04"), "/a\\04");
        assert_eq!(unescape_mount("\\134x"), "\\x");
    }
}
