//! Access to a device bound to `vfio-pci`, through the `vfio-ioctls` crate (legacy
//! container/group interface, type-1 IOMMU).
//!
//! Opening: `/dev/vfio/vfio` → a container; the device's `iommu_group` link names
//! `/dev/vfio/<group>`, which joins the container (the group must be viable: every
//! device in it bound to vfio-pci or to no driver); then the device fd. Every EAL memseg
//! is DMA-mapped at the IOVA the EAL recorded (VA mode: IOVA = VA; PA mode: the physical
//! address), after checking that the IOVAs fit the IOMMU's address width
//! ([`super::iommu`]). One container per device: two devices opened separately get two
//! IOMMU domains with the same mappings.
//!
//! BARs are mapped with `mmap` of the device fd at the region offset the kernel reports;
//! config space is read and written at the config region's offset. A release request
//! eventfd (`VFIO_PCI_REQ_IRQ_INDEX`) is registered when the kernel offers one, so
//! [`super::Device::check_alive`] sees an unbind coming and the process can let go.
//!
//! Known limit of the crate used: `vfio_ioctls::VfioDevice`'s own `Drop` panics if the
//! device's sysfs entry has vanished (hot removal); `VfioDev`'s `Drop` checks for that
//! and leaks the handle instead (the kernel closes it at exit).

use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use vfio_ioctls::{VfioContainer, VfioDevice};

use super::{iommu, ConfigSpace, IrqEvent, IrqKind};
use crate::addr::{Iova, VirtAddr};
use crate::error::{Error, Result};
use crate::hugepage::SysRoots;
use crate::init::Eal;
use crate::memory::Memseg;
use crate::pci::PciDevice;
use crate::sys::dev as sys;

/// `VFIO_PCI_CONFIG_REGION_INDEX` (linux/vfio.h).
const CONFIG_REGION: u32 = 7;
/// `VFIO_REGION_INFO_FLAG_MMAP`.
const REGION_FLAG_MMAP: u32 = 1 << 2;
/// `VFIO_PCI_INTX_IRQ_INDEX`, `_MSI_`, `_MSIX_`, `_REQ_` (linux/vfio.h).
const IRQ_INTX: u32 = 0;
const IRQ_MSI: u32 = 1;
const IRQ_MSIX: u32 = 2;
const IRQ_REQ: u32 = 4;

/// Path of the VFIO container device.
pub const VFIO_CONTAINER: &str = "/dev/vfio/vfio";

fn vfio_err<'a>(op: &'static str, addr: &'a str) -> impl Fn(vfio_ioctls::VfioError) -> Error + 'a {
    move |e| Error::Vfio {
        op,
        addr: addr.to_string(),
        source: Box::new(e),
    }
}

/// An IOVA-contiguous and VA-contiguous run of memsegs: one DMA mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaRun {
    /// Virtual address of the first byte.
    pub va: VirtAddr,
    /// IOVA of the first byte.
    pub iova: Iova,
    /// Length.
    pub len: u64,
}

/// Coalesce memsegs into the fewest runs contiguous in both VA and IOVA.
pub fn dma_runs(segs: &[Memseg]) -> Vec<DmaRun> {
    let mut out: Vec<DmaRun> = Vec::new();
    for m in segs {
        if let Some(r) = out.last_mut() {
            if r.va.0 + r.len == m.virt.0 && r.iova.0.wrapping_add(r.len) == m.iova.0 {
                r.len += m.len;
                continue;
            }
        }
        out.push(DmaRun {
            va: m.virt,
            iova: m.iova,
            len: m.len,
        });
    }
    out
}

/// A device opened through vfio-pci.
pub(crate) struct VfioDev {
    addr: String,
    sysfs_dir: PathBuf,
    width: Option<u32>,
    // Dropped by hand in Drop, in this order: the config fd (a dup of the device fd)
    // before the device, so the device's last fd closes before its group leaves the
    // container.
    config: ManuallyDrop<ConfigSpace>,
    device: ManuallyDrop<VfioDevice>,
    container: Arc<VfioContainer>,
    req: Option<IrqEvent>,
    dma: Mutex<Vec<(u64, u64)>>,
}

impl VfioDev {
    pub(crate) fn open(
        eal: &Eal,
        info: &PciDevice,
        dir: &Path,
        roots: &SysRoots,
    ) -> Result<VfioDev> {
        let addr = info.addr.to_string();
        let cpath = Path::new(VFIO_CONTAINER);
        if !cpath.exists() {
            return Err(Error::VfioMissing {
                path: cpath.into(),
                why: "no such file".into(),
            });
        }
        let group = info
            .iommu_group
            .ok_or_else(|| Error::NoIommuGroup { addr: addr.clone() })?;
        let gpath = Path::new("/dev/vfio").join(group.to_string());
        if !gpath.exists() {
            return Err(Error::VfioMissing {
                path: gpath,
                why: format!("no such file although {addr} is bound to vfio-pci"),
            });
        }
        let width = iommu::address_width(&roots.sys)?;
        let runs = if eal.memory().dma_capable() {
            dma_runs(eal.memory().memsegs())
        } else {
            Vec::new()
        };
        for r in &runs {
            iommu::check_fits(&addr, width, r.iova.0, r.len)?;
        }
        let container =
            Arc::new(VfioContainer::new(None).map_err(vfio_err("open the VFIO container", &addr))?);
        let device = VfioDevice::new(dir, container.clone(), false).map_err(vfio_err(
            "open the device (every device in its IOMMU group must be bound to vfio-pci or unbound)",
            &addr,
        ))?;
        let cfg_len = device.get_region_size(CONFIG_REGION);
        let cfg_off = device.get_region_offset(CONFIG_REGION);
        // SAFETY: the fd is owned by `device`, which is alive for this call; we only dup it.
        let dup = unsafe { BorrowedFd::borrow_raw(device.as_raw_fd()) }
            .try_clone_to_owned()
            .map_err(|e| Error::io("duplicate", format!("VFIO device fd of {addr}"), e))?;
        let config = ConfigSpace {
            file: std::fs::File::from(dup),
            base: cfg_off,
            len: cfg_len,
            what: format!("config space of {addr}"),
        };
        let mut me = VfioDev {
            addr: addr.clone(),
            sysfs_dir: dir.to_path_buf(),
            width,
            config: ManuallyDrop::new(config),
            device: ManuallyDrop::new(device),
            container,
            req: None,
            dma: Mutex::new(Vec::new()),
        };
        for r in &runs {
            // SAFETY: EAL memory is pinned hugepage memory mapped for the EAL's whole
            // life, which outlives this device (the Device holds an Eal clone); the EAL
            // never hands out references to it (raw pointers only).
            unsafe { me.dma_map(r.va, r.iova, r.len)? };
        }
        if me
            .device
            .get_irq_info(IRQ_REQ)
            .is_some_and(|i| i.count >= 1)
        {
            let ev = IrqEvent::new()?;
            // A kernel without the request channel just blocks unbinds until we close:
            // not fatal.
            if me.device.enable_irq(IRQ_REQ, vec![ev.eventfd()]).is_ok() {
                me.req = Some(ev);
            }
        }
        Ok(me)
    }

    pub(crate) fn config(&self) -> &ConfigSpace {
        &self.config
    }

    /// Map BAR `i`: `(base, len, mapped len)`.
    pub(crate) fn map_bar(
        &self,
        i: u32,
        hint: &dyn Fn(u64) -> VirtAddr,
    ) -> Result<(VirtAddr, u64, u64)> {
        let err = |why: String| Error::BarMap {
            addr: self.addr.clone(),
            bar: i,
            why,
        };
        let size = self.device.get_region_size(i);
        if size == 0 {
            return Err(err("the device has no such BAR".into()));
        }
        let flags = self.device.get_region_flags(i);
        if flags & REGION_FLAG_MMAP == 0 {
            return Err(err(
                "VFIO does not allow mapping it (an I/O-port BAR, or the MSI-X table without interrupt remapping)".into(),
            ));
        }
        let off = self.device.get_region_offset(i);
        let map_len = size.next_multiple_of(4096);
        // SAFETY: fd owned by `self.device`, alive for the call.
        let fd = unsafe { BorrowedFd::borrow_raw(self.device.as_raw_fd()) };
        let base = sys::mmap_device(
            fd,
            hint(map_len),
            map_len,
            off,
            &format!("BAR {i} of {}", self.addr),
        )
        .map_err(|e| err(e.to_string()))?;
        Ok((base, size, map_len))
    }

    /// # Safety
    /// See [`super::Device::dma_map`].
    pub(crate) unsafe fn dma_map(&self, va: VirtAddr, iova: Iova, len: u64) -> Result<()> {
        iommu::check_fits(&self.addr, self.width, iova.0, len)?;
        let size = usize::try_from(len).map_err(|_| Error::BadSize {
            len: usize::MAX,
            why: "DMA mapping too large",
        })?;
        // SAFETY: forwarded caller contract (the range stays mapped, pinned and is only
        // accessed through raw pointers while mapped).
        unsafe { self.container.vfio_dma_map(iova.0, size, va.as_ptr()) }
            .map_err(vfio_err("DMA-map memory", &self.addr))?;
        self.dma
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((iova.0, len));
        Ok(())
    }

    pub(crate) fn dma_unmap(&self, iova: Iova, len: u64) -> Result<()> {
        let mut d = self.dma.lock().unwrap_or_else(|p| p.into_inner());
        let Some(pos) = d.iter().position(|&(i, l)| i == iova.0 && l == len) else {
            return Err(Error::NotFound(format!("DMA mapping {iova}+{len:#x}")));
        };
        self.container
            .vfio_dma_unmap(iova.0, len as usize)
            .map_err(vfio_err("DMA-unmap memory", &self.addr))?;
        d.remove(pos);
        Ok(())
    }

    pub(crate) fn reset(&self) -> Result<bool> {
        // SAFETY: fd owned by `self.device`, alive for the call.
        let fd = unsafe { BorrowedFd::borrow_raw(self.device.as_raw_fd()) };
        if sys::vfio_device_flags(fd)? & sys::VFIO_DEVICE_FLAGS_RESET == 0 {
            return Ok(false);
        }
        sys::vfio_device_reset(fd)?;
        Ok(true)
    }

    fn irq_index(kind: IrqKind) -> u32 {
        match kind {
            IrqKind::Intx => IRQ_INTX,
            IrqKind::Msi => IRQ_MSI,
            IrqKind::Msix => IRQ_MSIX,
        }
    }

    pub(crate) fn enable_irq(&self, kind: IrqKind, count: u32) -> Result<Vec<IrqEvent>> {
        let idx = Self::irq_index(kind);
        let have = self.device.get_irq_info(idx).map(|i| i.count).unwrap_or(0);
        if count == 0 || count > have {
            return Err(Error::Unsupported {
                what: format!(
                    "enable {count} {kind:?} vector(s) on {} (it has {have})",
                    self.addr
                ),
            });
        }
        let evs = (0..count)
            .map(|_| IrqEvent::new())
            .collect::<Result<Vec<_>>>()?;
        self.device
            .enable_irq(idx, evs.iter().map(IrqEvent::eventfd).collect())
            .map_err(vfio_err(
                "enable interrupts (VFIO_DEVICE_SET_IRQS)",
                &self.addr,
            ))?;
        Ok(evs)
    }

    pub(crate) fn disable_irq(&self, kind: IrqKind) -> Result<()> {
        self.device
            .disable_irq(Self::irq_index(kind))
            .map_err(vfio_err("disable interrupts", &self.addr))
    }

    pub(crate) fn unmask_intx(&self) -> Result<()> {
        self.device
            .unmask_irq(IRQ_INTX)
            .map_err(vfio_err("unmask INTx", &self.addr))
    }

    /// Offset of region `i` in the device fd.
    pub(crate) fn region_offset(&self, i: u32) -> u64 {
        self.device.get_region_offset(i)
    }

    /// Duplicates of the device, container and group fds (the group's when it can be
    /// found among this process's files), for another process (see [`super::share`]).
    pub(crate) fn share_fds(&self, group: Option<u32>) -> Result<Vec<OwnedFd>> {
        let dup = |raw: i32, what: &str| {
            // SAFETY: `raw` is owned by `self.device` / `self.container`, alive for the call.
            unsafe { BorrowedFd::borrow_raw(raw) }
                .try_clone_to_owned()
                .map_err(|e| Error::io("duplicate", format!("VFIO {what} fd of {}", self.addr), e))
        };
        let mut v = vec![
            dup(self.device.as_raw_fd(), "device")?,
            dup(self.container.as_raw_fd(), "container")?,
        ];
        if let Some(g) = group.and_then(super::share::find_group_fd) {
            v.push(g);
        }
        Ok(v)
    }

    pub(crate) fn release_requested(&self) -> Result<bool> {
        match &self.req {
            Some(ev) => ev.wait(0),
            None => Ok(false),
        }
    }
}

impl Drop for VfioDev {
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, here; never used after.
        unsafe { ManuallyDrop::drop(&mut self.config) };
        if std::fs::read_link(self.sysfs_dir.join("iommu_group")).is_ok() {
            // SAFETY: dropped exactly once, here; never used after.
            unsafe { ManuallyDrop::drop(&mut self.device) };
        } else {
            // The crate's Drop would panic without the sysfs entry (device removed).
            crate::log_warn!(
                "VFIO device {} vanished from sysfs; leaving its handle to process exit",
                self.addr
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(v: u64, i: u64) -> Memseg {
        Memseg {
            virt: VirtAddr(v),
            iova: Iova(i),
            len: 0x20_0000,
            page_size: 0x20_0000,
            socket: 0,
            _rsvd: 0,
        }
    }

    #[test]
    fn runs_coalesce_only_when_both_contiguous() {
        // VA mode: one run.
        let va: Vec<Memseg> = (0..4)
            .map(|k| seg(0x1_0000_0000 + k * 0x20_0000, 0x1_0000_0000 + k * 0x20_0000))
            .collect();
        assert_eq!(
            dma_runs(&va),
            [DmaRun {
                va: VirtAddr(0x1_0000_0000),
                iova: Iova(0x1_0000_0000),
                len: 0x80_0000
            }]
        );
        // PA mode: physical pages 2,3 contiguous, then a jump, then descending.
        let pa = [
            seg(0x1000_0000, 0x4_0000),
            seg(0x1020_0000, 0x24_0000),
            seg(0x1040_0000, 0x90_0000),
            seg(0x1060_0000, 0x70_0000),
        ];
        let r = dma_runs(&pa);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].len, 0x40_0000);
        assert_eq!((r[1].iova, r[2].iova), (Iova(0x90_0000), Iova(0x70_0000)));
        assert!(dma_runs(&[]).is_empty());
    }
}
