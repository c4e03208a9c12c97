//! Small helpers over a PCI device's sysfs directory, shared by binding and the "in use"
//! checks.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::pci::PciAddr;

/// `<sys>/bus/pci/devices/<addr>`.
pub fn device_dir(sys: &Path, addr: PciAddr) -> PathBuf {
    sys.join("bus/pci/devices").join(addr.to_string())
}

pub(crate) fn link_name(p: &Path) -> Result<Option<String>> {
    match fs::read_link(p) {
        Ok(t) => Ok(t.file_name().map(|n| n.to_string_lossy().into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read link", p.display().to_string(), e)),
    }
}

pub(crate) fn require_device(sys: &Path, addr: PciAddr) -> Result<PathBuf> {
    let d = device_dir(sys, addr);
    if !d.exists() {
        return Err(Error::NoSuchDevice {
            addr: addr.to_string(),
            path: sys.join("bus/pci/devices"),
        });
    }
    Ok(d)
}

pub(crate) fn read_opt(p: &Path) -> Result<Option<String>> {
    match fs::read_to_string(p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", p.display().to_string(), e)),
    }
}

pub(crate) fn write_attr(p: &Path, value: &str) -> Result<()> {
    fs::write(p, value).map_err(|e| {
        Error::io(
            "write",
            format!("'{}' to {}", value.trim_end(), p.display()),
            e,
        )
    })
}
