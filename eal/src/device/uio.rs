//! Access to a device bound to `uio_pci_generic`.
//!
//! * BARs: the sysfs `resourceN` files, mapped whole at offset 0 (memory BARs only; the
//!   kernel refuses to map I/O-port BARs).
//! * Config space: the sysfs `config` file, read and written with `pread`/`pwrite`.
//! * DMA: there is no IOMMU translation for this path (with `iommu=pt` or no IOMMU), so
//!   the device must be given physical addresses: the EAL must run in PA mode
//!   (`--iova-mode pa`, root, hugepages). In VA mode, or with `--no-huge`, opening is
//!   refused with [`Error::NeedPhysAddr`].
//! * Interrupts are not offered here (uio_pci_generic only has INTx through
//!   `/dev/uioN`); use vfio-pci for interrupt wake-up.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::ConfigSpace;
use crate::addr::VirtAddr;
use crate::args::IovaMode;
use crate::error::{Error, Result};
use crate::init::Eal;
use crate::pci::PciDevice;
use crate::sys::dev as sys;

/// A device opened through uio_pci_generic.
#[derive(Debug)]
pub(crate) struct UioDev {
    dir: PathBuf,
    config: ConfigSpace,
}

impl UioDev {
    pub(crate) fn open(eal: &Eal, info: &PciDevice, dir: &Path) -> Result<UioDev> {
        let addr = info.addr.to_string();
        if eal.memory().no_huge() {
            return Err(Error::NeedPhysAddr {
                addr,
                why: "the EAL runs with --no-huge (no physical addresses)".into(),
            });
        }
        if eal.memory().iova_mode() != IovaMode::Pa {
            return Err(Error::NeedPhysAddr {
                addr,
                why: "the EAL runs with IOVA = VA".into(),
            });
        }
        let cfg_path = dir.join("config");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&cfg_path)
            .map_err(|e| Error::io("open", cfg_path.display().to_string(), e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", cfg_path.display().to_string(), e))?
            .len();
        let len = if len == 0 { 256 } else { len };
        Ok(UioDev {
            dir: dir.to_path_buf(),
            config: ConfigSpace {
                file,
                base: 0,
                len,
                what: format!("config space of {addr}"),
            },
        })
    }

    pub(crate) fn config(&self) -> &ConfigSpace {
        &self.config
    }

    /// Map BAR `i`: `(base, len, mapped len)`.
    pub(crate) fn map_bar(
        &self,
        info: &PciDevice,
        i: u32,
        hint: &dyn Fn(u64) -> VirtAddr,
    ) -> Result<(VirtAddr, u64, u64)> {
        let (f, len, path) = self.bar_file(info, i)?;
        let map_len = len.next_multiple_of(4096);
        let base = sys::mmap_device(
            f.as_fd(),
            hint(map_len),
            map_len,
            0,
            &format!("{}", path.display()),
        )
        .map_err(|e| Error::BarMap {
            addr: info.addr.to_string(),
            bar: i,
            why: e.to_string(),
        })?;
        Ok((base, len, map_len))
    }

    /// Map a BAR where another process has it (see [`super::share`]).
    pub(crate) fn map_bar_at(&self, info: &PciDevice, r: &super::share::SharedBar) -> Result<()> {
        let (f, _, _) = self.bar_file(info, r.index)?;
        super::share::map_at(f.as_fd(), &info.addr.to_string(), r)
    }

    /// The open sysfs `resourceN` file of memory BAR `i`, its length and path.
    fn bar_file(&self, info: &PciDevice, i: u32) -> Result<(File, u64, PathBuf)> {
        let addr = info.addr.to_string();
        let err = |why: String| Error::BarMap {
            addr: addr.clone(),
            bar: i,
            why,
        };
        let res = info
            .bar(i)
            .ok_or_else(|| err("the device has no such BAR".into()))?;
        if !res.is_mem() {
            return Err(err(
                "it is an I/O-port BAR; only memory BARs can be mapped".into()
            ));
        }
        let path = self.dir.join(format!("resource{i}"));
        let f: File = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_SYNC)
            .open(&path)
            .map_err(|e| err(format!("cannot open {}: {e}", path.display())))?;
        Ok((f, res.len(), path))
    }
}

/// Reset through the sysfs `reset` file: false if the device has none.
pub(crate) fn reset(dir: &Path) -> Result<bool> {
    let p = dir.join("reset");
    if !p.exists() {
        return Ok(false);
    }
    std::fs::write(&p, "1")
        .map_err(|e| Error::io("write", format!("'1' to {}", p.display()), e))?;
    Ok(true)
}
