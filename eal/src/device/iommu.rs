//! The IOMMU's address width, and whether IOVA = VA fits in it.
//!
//! Intel VT-d units are listed as `<sys>/class/iommu/dmarN`, each with its capability
//! register in `intel-iommu/cap` (hex, no `0x`). MGAW, the maximum guest address width,
//! is bits 21:16 of that register, encoded as width − 1 (Intel VT-d specification
//! rev. 3.x, section 11.4.2 "Capability Register"). A mapping whose IOVA does not fit
//! fails with `EINVAL` in `VFIO_IOMMU_MAP_DMA`; user virtual addresses need up to 47 bits
//! on x86-64, so an IOMMU with a 39-bit width (QEMU's default) cannot take IOVA = VA for
//! high addresses. The EAL places its memory at 4 GiB by default, so even 39 bits
//! usually fit; [`check_fits`] checks the real addresses, not a worst case.
//!
//! Units that do not expose `intel-iommu/cap` (AMD, ARM SMMU, no IOMMU) give no width:
//! then nothing is known and the check passes (the kernel still refuses a bad map).

use std::fs;
use std::path::Path;

use crate::args::IovaMode;
use crate::error::{Error, Result};

/// One IOMMU unit and its address width.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IommuUnit {
    /// Name in `/sys/class/iommu` (`dmar0`).
    pub name: String,
    /// Maximum guest address width in bits (MGAW + 1).
    pub width: u32,
}

/// MGAW of a VT-d capability register value, as a width in bits.
pub fn mgaw_bits(cap: u64) -> u32 {
    (((cap >> 16) & 0x3f) as u32) + 1
}

/// Parse the text of an `intel-iommu/cap` file (hex with or without `0x`) into the
/// address width in bits. `None` for text that is not hex.
pub fn parse_cap(text: &str) -> Option<u32> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    if t.is_empty() || t.len() > 16 {
        return None;
    }
    u64::from_str_radix(t, 16).ok().map(mgaw_bits)
}

/// Every IOMMU unit under `<sys_root>/class/iommu` with a readable width. Units whose
/// `cap` is missing are skipped; a `cap` that does not parse is an error naming the file.
pub fn units(sys_root: &Path) -> Result<Vec<IommuUnit>> {
    let dir = sys_root.join("class/iommu");
    let rd = match fs::read_dir(&dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir.display().to_string(), e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("list", dir.display().to_string(), e))?;
        let cap = ent.path().join("intel-iommu/cap");
        let text = match fs::read_to_string(&cap) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("read", cap.display().to_string(), e)),
        };
        let width = parse_cap(&text).ok_or_else(|| Error::PciParse {
            path: cap.clone(),
            why: format!("'{}' is not a hex capability register", text.trim()),
        })?;
        out.push(IommuUnit {
            name: ent.file_name().to_string_lossy().into_owned(),
            width,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The smallest address width of all units (a device may sit behind any of them), or
/// `None` if no unit reports one.
pub fn address_width(sys_root: &Path) -> Result<Option<u32>> {
    Ok(units(sys_root)?.iter().map(|u| u.width).min())
}

/// True if every address in `[iova, iova + len)` fits in `width` bits.
pub fn fits(width: u32, iova: u64, len: u64) -> bool {
    if width >= 64 {
        return true;
    }
    let Some(last) = iova.checked_add(len.saturating_sub(1)) else {
        return false;
    };
    last >> width == 0
}

/// Refuse with [`Error::IommuWidth`] (naming `--iova-mode pa` as the fix) if the range
/// does not fit `width`; `None` width passes.
pub fn check_fits(addr: &str, width: Option<u32>, iova: u64, len: u64) -> Result<()> {
    match width {
        Some(w) if !fits(w, iova, len) => Err(Error::IommuWidth {
            addr: addr.to_string(),
            iova: iova + len - 1,
            width: w,
        }),
        _ => Ok(()),
    }
}

/// The IOVA mode a program should ask the EAL for before `Eal::init`, given the highest
/// virtual address its memory can have (`max_va`): VA if it fits the narrowest IOMMU (or
/// no width is known), PA otherwise. This is the fall-back DPDK makes when the IOMMU
/// cannot address user virtual addresses.
pub fn recommended_iova_mode(sys_root: &Path, max_va: u64) -> Result<IovaMode> {
    Ok(match address_width(sys_root)? {
        Some(w) if !fits(w, 0, max_va.saturating_add(1)) => IovaMode::Pa,
        _ => IovaMode::Va,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::tempdir::TempDir;

    #[test]
    fn mgaw_from_cap() {
        // QEMU intel-iommu with aw-bits=48: MGAW field 47.
        assert_eq!(mgaw_bits(47 << 16), 48);
        assert_eq!(mgaw_bits(38 << 16), 39);
        // Other fields do not leak in.
        assert_eq!(mgaw_bits(0xffff_ffff_ffc0_ffff | (38 << 16)), 39);
        // A cap value as a server prints it: bits 21:16 of ...660462 are 0x26 → 39 bits.
        assert_eq!(parse_cap("d2008c40660462\n"), Some(39));
        assert_eq!(parse_cap("0x2f0000"), Some(48));
        assert_eq!(parse_cap(""), None);
        assert_eq!(parse_cap("xyz"), None);
        assert_eq!(parse_cap("11112222333344445"), None);
    }

    #[test]
    fn width_checks() {
        assert!(fits(48, 0x7fff_ffff_f000, 0x1000));
        assert!(!fits(39, 0x7fff_ffff_f000, 0x1000));
        assert!(fits(39, 0x1_0000_0000, 256 << 20));
        assert!(!fits(39, (1 << 39) - 0x1000, 0x2000));
        assert!(fits(39, (1 << 39) - 0x1000, 0x1000));
        assert!(!fits(48, u64::MAX - 10, 100));
        assert!(fits(64, u64::MAX - 10, 11));
        let e = check_fits("0000:00:02.0", Some(39), 0x7f00_0000_0000, 0x1000).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("39 bits") && msg.contains("--iova-mode pa"),
            "{msg}"
        );
        assert!(check_fits("x", None, u64::MAX - 1, 2).is_ok());
    }

    #[test]
    fn units_from_fake_sysfs() {
        let t = TempDir::new("iommu");
        let sys = t.path();
        assert_eq!(address_width(sys).unwrap(), None);
        for (n, cap) in [("dmar0", "2f0000"), ("dmar1", "260000\n")] {
            let d = sys.join("class/iommu").join(n).join("intel-iommu");
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("cap"), cap).unwrap();
        }
        // A unit without intel-iommu/cap (e.g. AMD) is skipped.
        fs::create_dir_all(sys.join("class/iommu/ivhd0")).unwrap();
        let u = units(sys).unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!(
            u[0],
            IommuUnit {
                name: "dmar0".into(),
                width: 48
            }
        );
        assert_eq!(address_width(sys).unwrap(), Some(39));
        assert_eq!(
            recommended_iova_mode(sys, 0x7fff_ffff_ffff).unwrap(),
            IovaMode::Pa
        );
        assert_eq!(
            recommended_iova_mode(sys, 0x2_0000_0000).unwrap(),
            IovaMode::Va
        );
        fs::write(sys.join("class/iommu/dmar1/intel-iommu/cap"), "garbage").unwrap();
        assert!(units(sys).is_err());
    }
}
