//! Which kernel drivers may drive a device: its `modalias` matched against the
//! `modules.alias` patterns, and the user-space drivers Ferroplane binds.

use std::path::Path;

use crate::error::Result;
use crate::pci::PciAddr;

use super::sysfs::{link_name, read_opt, require_device};

/// Drivers through which Ferroplane drives a device from user space.
pub const USERSPACE_DRIVERS: &[&str] = &["vfio-pci", "uio_pci_generic"];

/// True for the drivers in [`USERSPACE_DRIVERS`].
pub fn is_userspace_driver(name: &str) -> bool {
    USERSPACE_DRIVERS.contains(&name)
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
mod tests {
    use super::*;
    use crate::device::fake_tree::{FakeTree, NIC0, NVME};

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
}
