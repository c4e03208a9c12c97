//! Device access: opening a PCI device from user space through VFIO or UIO, its BARs as
//! bounds-checked volatile register windows, its config space, bus mastering, reset,
//! interrupts (VFIO) and DMA memory from the EAL.
//!
//! # Contract
//!
//! * [`Device::open`] picks the path by the driver the device is bound to **now**:
//!   `vfio-pci` → [`vfio`] (IOMMU; every EAL memseg is DMA-mapped with the IOVA the EAL
//!   recorded, so VA and PA mode both work), `uio_pci_generic` → [`uio`] (no IOMMU
//!   translation: needs the EAL in PA mode). Anything else is refused with
//!   [`Error::DeviceNotBound`], whose message is the `ferroplane-devbind` command to run.
//!   Binding itself is in [`bind`] and the `ferroplane-devbind` tool.
//! * A [`Device`] is `Send + Sync`; all its methods take `&self` and may be called from
//!   any thread. Register access through an [`MmioRegion`] is a single volatile load or
//!   store: ordering between registers and DMA memory is the driver's business (use
//!   fences as the device's spec requires).
//! * [`MmioRegion`] is a cheap clone holding the mapping alive: it may outlive the
//!   [`Device`] (the mapping stays valid; with VFIO the kernel keeps the device open until
//!   the last mapping goes, so an unbind waits for it).
//! * DMA memory ([`Device::dma_alloc`]) comes from the EAL heap and is zeroed; the device
//!   may write it at any time, so it is only ever accessed through raw pointers and
//!   volatile operations, never `&`/`&mut`. Freeing it (drop of [`DmaBuf`]) while the
//!   device can still DMA into it is a bug in the driver: stop or reset the device first.
//! * A device that goes away (unbound, removed) is noticed by [`Device::check_alive`] and
//!   by [`Device::read32_checked`] on an all-ones read, both returning
//!   [`Error::DeviceGone`]. With VFIO the kernel's release request (an eventfd) is polled
//!   too, so a process that checks regularly lets an unbind finish instead of blocking it.
//!
//! All system calls are in [`crate::sys::dev`] (BAR mmap, config pread/pwrite, the VFIO
//! reset ioctl); the VFIO container, group, device, DMA map and IRQ ioctls go through the
//! `vfio-ioctls` crate.

pub mod bind;
mod drivers;
#[cfg(test)]
mod fake_tree;
mod in_use;
pub mod iommu;
pub mod mmio;
pub mod share;
mod sysfs;
pub mod uio;
pub mod vfio;

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::Mutex;

use crate::addr::{Iova, VirtAddr};
use crate::error::{Error, Result};
use crate::hugepage::SysRoots;
use crate::init::Eal;
use crate::pci::{PciAddr, PciDevice};
use crate::sys::dev as sys;

pub use mmio::MmioRegion;

/// Offset of the command register in config space (PCI Local Bus Specification 3.0,
/// section 6.2.2).
pub const PCI_COMMAND: u64 = 0x04;
/// Command register: memory space enable (bit 1).
pub const PCI_COMMAND_MEMORY: u16 = 1 << 1;
/// Command register: bus master enable (bit 2).
pub const PCI_COMMAND_MASTER: u16 = 1 << 2;
/// Command register: INTx disable (bit 10).
pub const PCI_COMMAND_INTX_DISABLE: u16 = 1 << 10;

/// Which kernel path a [`Device`] was opened through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// vfio-pci: IOMMU-translated DMA, interrupts through eventfds.
    Vfio,
    /// uio_pci_generic: DMA to physical addresses, no interrupts here.
    Uio,
}

/// Config space through a file: the sysfs `config` file (UIO) or the VFIO config region
/// of the device fd (`base` = region offset).
#[derive(Debug)]
pub(crate) struct ConfigSpace {
    file: File,
    base: u64,
    len: u64,
    what: String,
}

impl ConfigSpace {
    fn check(&self, offset: u64, n: usize) -> Result<()> {
        match offset.checked_add(n as u64) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::MmioOutOfBounds {
                what: self.what.clone(),
                offset,
                width: n as u64,
                len: self.len,
            }),
        }
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check(offset, buf.len())?;
        sys::pread_exact(self.file.as_fd(), buf, self.base + offset, &self.what)
    }

    fn write(&self, offset: u64, buf: &[u8]) -> Result<()> {
        self.check(offset, buf.len())?;
        sys::pwrite_all(self.file.as_fd(), buf, self.base + offset, &self.what)
    }
}

enum Inner {
    Vfio(Box<vfio::VfioDev>),
    Uio(uio::UioDev),
    /// A VFIO device another process opened ([`share`]).
    VfioShared(share::VfioShared),
}

/// Interrupt kinds VFIO can deliver to an eventfd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqKind {
    /// Legacy pin interrupt (one vector; the kernel masks it after each event).
    Intx,
    /// MSI.
    Msi,
    /// MSI-X.
    Msix,
}

/// An eventfd the kernel signals on an interrupt.
#[derive(Debug)]
pub struct IrqEvent {
    fd: vmm_sys_util::eventfd::EventFd,
}

impl IrqEvent {
    fn new() -> Result<IrqEvent> {
        let fd = vmm_sys_util::eventfd::EventFd::new(libc::EFD_NONBLOCK)
            .map_err(|e| Error::io("create", "eventfd", e))?;
        Ok(IrqEvent { fd })
    }

    /// Wait up to `timeout_ms` (negative = forever) for an interrupt; true if one came.
    /// Does not consume it: call [`take`](Self::take).
    pub fn wait(&self, timeout_ms: i32) -> Result<bool> {
        sys::poll_readable(self.as_fd(), timeout_ms)
    }

    /// Number of interrupts since the last call (0 if none), resetting the count.
    pub fn take(&self) -> Result<u64> {
        Ok(sys::eventfd_read(self.as_fd())?.unwrap_or(0))
    }

    fn eventfd(&self) -> &vmm_sys_util::eventfd::EventFd {
        &self.fd
    }

    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the fd is owned by `self.fd`, which outlives the returned borrow.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(std::os::fd::AsRawFd::as_raw_fd(&self.fd)) }
    }
}

/// Zeroed, IOVA-contiguous EAL memory for a device, freed on drop.
///
/// Accessed only through raw pointers ([`as_ptr`](Self::as_ptr)) with volatile
/// operations: the device may write it at any time. Dropping it while the device can
/// still DMA into it corrupts the EAL heap: quiesce the device first.
#[derive(Debug)]
pub struct DmaBuf {
    ptr: NonNull<u8>,
    iova: Iova,
    len: usize,
    eal: Eal,
}

// SAFETY: DmaBuf owns its heap block outright; the EAL heap is process-shared and
// thread-safe, and the pointer is only dereferenced through raw volatile accesses whose
// synchronisation is the caller's job (as for any DMA memory).
unsafe impl Send for DmaBuf {}
// SAFETY: `&DmaBuf` gives out only the raw pointer, the IOVA and the length.
unsafe impl Sync for DmaBuf {}

impl DmaBuf {
    /// First byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The IOVA the device uses for the first byte.
    pub fn iova(&self) -> Iova {
        self.iova
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length buffer (never made by [`Device::dma_alloc`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Volatile copy of `out.len()` bytes at `offset` into `out`; false if out of range.
    pub fn read_bytes(&self, offset: usize, out: &mut [u8]) -> bool {
        if offset.checked_add(out.len()).is_none_or(|e| e > self.len) {
            return false;
        }
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: in range of the live allocation (checked above).
            *b = unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(offset + i)) };
        }
        true
    }
}

impl Drop for DmaBuf {
    fn drop(&mut self) {
        // SAFETY: the pointer came from this EAL's heap (dma_alloc) and this is its only
        // owner; the caller contract (type docs) says the device no longer uses it.
        let _ = unsafe { self.eal.heap().free(self.ptr.as_ptr()) };
    }
}

/// A PCI device opened for user-space access. See the module docs.
pub struct Device {
    addr: PciAddr,
    info: PciDevice,
    eal: Eal,
    roots: SysRoots,
    bars: Mutex<[Option<MmioRegion>; 6]>,
    inner: Inner,
    /// A device opened by another process: where that process mapped its BARs (each is
    /// mapped at the same address here). Empty for a device this process opened.
    fixed: Vec<share::SharedBar>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("addr", &self.addr)
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Open `addr` through the driver it is bound to (real `/sys`, `/proc`).
    pub fn open(eal: &Eal, addr: PciAddr) -> Result<Device> {
        Self::open_with(eal, addr, &SysRoots::default())
    }

    /// [`open`](Self::open) with explicit system roots (VFIO itself always uses
    /// `/dev/vfio`).
    pub fn open_with(eal: &Eal, addr: PciAddr, roots: &SysRoots) -> Result<Device> {
        let dir = sysfs::device_dir(&roots.sys, addr);
        if !dir.exists() {
            return Err(Error::NoSuchDevice {
                addr: addr.to_string(),
                path: roots.sys.join("bus/pci/devices"),
            });
        }
        let info = crate::pci::read_device(&dir, addr)?;
        let inner = match info.driver.as_deref() {
            Some("vfio-pci") => {
                Inner::Vfio(Box::new(vfio::VfioDev::open(eal, &info, &dir, roots)?))
            }
            Some("uio_pci_generic") => Inner::Uio(uio::UioDev::open(eal, &info, &dir)?),
            other => {
                return Err(Error::DeviceNotBound {
                    addr: addr.to_string(),
                    driver: other.map(str::to_string),
                })
            }
        };
        Ok(Device {
            addr,
            info,
            eal: eal.clone(),
            roots: roots.clone(),
            bars: Mutex::new(Default::default()),
            inner,
            fixed: Vec::new(),
        })
    }

    /// What another process of the EAL group needs to drive this device ([`share`]):
    /// every BAR mapped so far, the config region, and with VFIO the device, container
    /// and group fds. Map the BARs the other process will use before calling it.
    pub fn share(&self) -> Result<share::DeviceShare> {
        let fds = match &self.inner {
            Inner::Vfio(v) => v.share_fds(self.info.iommu_group)?,
            Inner::Uio(_) => Vec::new(),
            Inner::VfioShared(_) => return Err(self.primary_only("share")),
        };
        let bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        let mut l = share::Layout {
            backend: self.backend(),
            cfg_off: self.config().base,
            cfg_len: self.config().len,
            bars: Vec::new(),
        };
        for (i, r) in bars.iter().enumerate() {
            let Some(r) = r else { continue };
            l.bars.push(share::SharedBar {
                index: i as u32,
                va: r.base(),
                len: r.len(),
                map_len: r.map_len(),
                offset: match &self.inner {
                    Inner::Vfio(v) => v.region_offset(i as u32),
                    _ => 0,
                },
            });
        }
        Ok(share::DeviceShare {
            bytes: share::encode(&l),
            fds,
        })
    }

    /// Open `addr` as another process of the EAL group opened it, from what that
    /// process's [`share`](Self::share) gave (bytes, and the descriptors received over
    /// the EAL's IPC). [`bar`](Self::bar) then maps each BAR at that process's address,
    /// failing with [`Error::BarMap`] if the range is taken here.
    pub fn attach(eal: &Eal, addr: PciAddr, sh: share::DeviceShare) -> Result<Device> {
        let roots = SysRoots::default();
        let dir = sysfs::require_device(&roots.sys, addr)?;
        let info = crate::pci::read_device(&dir, addr)?;
        let l = share::decode(&addr.to_string(), &sh.bytes)?;
        let (want, inner) = match l.backend {
            Backend::Vfio => (
                "vfio-pci",
                Inner::VfioShared(share::VfioShared::new(&addr.to_string(), &l, sh.fds)?),
            ),
            Backend::Uio => (
                "uio_pci_generic",
                Inner::Uio(uio::UioDev::open(eal, &info, &dir)?),
            ),
        };
        if info.driver.as_deref() != Some(want) {
            return Err(Error::DeviceGone {
                addr: addr.to_string(),
                why: format!(
                    "the primary opened it through {want}; it is bound to {} now",
                    info.driver.as_deref().unwrap_or("no driver")
                ),
            });
        }
        Ok(Device {
            addr,
            info,
            eal: eal.clone(),
            roots,
            bars: Mutex::new(Default::default()),
            inner,
            fixed: l.bars,
        })
    }

    /// Where to ask for the next BAR mapping of `len` bytes: past the end of the EAL's
    /// memory area (1 GiB aligned), each BAR after the previous one, as DPDK places
    /// them: secondaries map that area at the same address, so the range after it is
    /// likely free in them too when they map the BAR there ([`share`]).
    fn bar_hint(&self, len: u64) -> VirtAddr {
        static NEXT: Mutex<u64> = Mutex::new(0);
        let mut n = NEXT.lock().unwrap_or_else(|p| p.into_inner());
        if *n == 0 {
            let m = self.eal.memory();
            *n = (m.base().0 + m.len()).next_multiple_of(1 << 30);
        }
        let at = *n;
        *n += len.next_multiple_of(2 << 20);
        VirtAddr(at)
    }

    /// The refusal of an operation that belongs to the process that opened the device.
    fn primary_only(&self, op: &str) -> Error {
        Error::Unsupported {
            what: format!(
                "{op} {} here: the process that opened it (the primary) owns that",
                self.addr
            ),
        }
    }

    /// The device's address.
    pub fn addr(&self) -> PciAddr {
        self.addr
    }

    /// What sysfs said about the device when it was opened.
    pub fn info(&self) -> &PciDevice {
        &self.info
    }

    /// VFIO or UIO.
    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Vfio(_) | Inner::VfioShared(_) => Backend::Vfio,
            Inner::Uio(_) => Backend::Uio,
        }
    }

    /// `<sys>/bus/pci/devices/<addr>`.
    pub fn sysfs_dir(&self) -> PathBuf {
        sysfs::device_dir(&self.roots.sys, self.addr)
    }

    /// Memory BAR `i` (0..=5), mapped on first use; clones share the mapping.
    pub fn bar(&self, i: u32) -> Result<MmioRegion> {
        if i > 5 {
            return Err(Error::BarMap {
                addr: self.addr.to_string(),
                bar: i,
                why: "BAR index must be 0..=5".into(),
            });
        }
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = &bars[i as usize] {
            return Ok(r.clone());
        }
        let name = format!("BAR {i} of {}", self.addr);
        let (base, len, map_len) = match (&self.inner, self.fixed.is_empty()) {
            (Inner::Vfio(v), _) => v.map_bar(i, &|len| self.bar_hint(len))?,
            (Inner::Uio(u), true) => u.map_bar(&self.info, i, &|len| self.bar_hint(len))?,
            (inner, _) => {
                let r = self
                    .fixed
                    .iter()
                    .find(|r| r.index == i)
                    .ok_or_else(|| Error::BarMap {
                        addr: self.addr.to_string(),
                        bar: i,
                        why: "the primary process had not mapped it, so it was not shared".into(),
                    })?;
                match inner {
                    Inner::VfioShared(v) => v.map_bar(r)?,
                    Inner::Uio(u) => u.map_bar_at(&self.info, r)?,
                    Inner::Vfio(_) => unreachable!("matched above"),
                }
                (r.va, r.len, r.map_len)
            }
        };
        let r = MmioRegion::new(base, len, map_len, name);
        bars[i as usize] = Some(r.clone());
        Ok(r)
    }

    fn config(&self) -> &ConfigSpace {
        match &self.inner {
            Inner::Vfio(v) => v.config(),
            Inner::Uio(u) => u.config(),
            Inner::VfioShared(v) => v.config(),
        }
    }

    /// Read config space at `offset` into `buf`.
    pub fn config_read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.config().read(offset, buf)
    }

    /// Write `buf` to config space at `offset`.
    pub fn config_write(&self, offset: u64, buf: &[u8]) -> Result<()> {
        self.config().write(offset, buf)
    }

    /// 16-bit config read (little endian, as PCI is).
    pub fn config_read16(&self, offset: u64) -> Result<u16> {
        let mut b = [0u8; 2];
        self.config_read(offset, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// 32-bit config read.
    pub fn config_read32(&self, offset: u64) -> Result<u32> {
        let mut b = [0u8; 4];
        self.config_read(offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// 16-bit config write.
    pub fn config_write16(&self, offset: u64, v: u16) -> Result<()> {
        self.config_write(offset, &v.to_le_bytes())
    }

    /// 32-bit config write.
    pub fn config_write32(&self, offset: u64, v: u32) -> Result<()> {
        self.config_write(offset, &v.to_le_bytes())
    }

    /// Set bus mastering (and memory decoding) in the command register, so the device
    /// may DMA. Idempotent.
    pub fn enable_bus_master(&self) -> Result<()> {
        let cmd = self.config_read16(PCI_COMMAND)?;
        let want = cmd | PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY;
        if want != cmd {
            self.config_write16(PCI_COMMAND, want)?;
        }
        Ok(())
    }

    /// True if bus mastering is on.
    pub fn bus_master_enabled(&self) -> Result<bool> {
        Ok(self.config_read16(PCI_COMMAND)? & PCI_COMMAND_MASTER != 0)
    }

    /// `len` zeroed bytes of DMA memory aligned to 4 KiB (IOVA-contiguous), from the EAL.
    pub fn dma_alloc(&self, len: usize) -> Result<DmaBuf> {
        if len == 0 {
            return Err(Error::BadSize {
                len,
                why: "DMA buffer of zero bytes",
            });
        }
        let (ptr, iova) = self.eal.heap().malloc_dma(len, 4096, self.info.numa_node)?;
        if !iova.is_valid() {
            // SAFETY: just allocated from this heap, not shared with anyone.
            let _ = unsafe { self.eal.heap().free(ptr.as_ptr()) };
            return Err(Error::NoDma {
                why: "the EAL has no IOVA for its memory".into(),
            });
        }
        Ok(DmaBuf {
            ptr,
            iova,
            len,
            eal: self.eal.clone(),
        })
    }

    /// Make `[va, va+len)` reachable by the device at `iova`: the hook for memory added
    /// after the device was opened (EAL memory present at open is mapped already). VFIO
    /// programs the IOMMU; UIO needs nothing (IOVA is the physical address) and only
    /// checks that `iova` is `va`'s physical address as the EAL knows it.
    ///
    /// # Safety
    /// The range must stay mapped and pinned, and must only be accessed through raw
    /// pointers/volatile operations, until [`dma_unmap`](Self::dma_unmap) (or the device
    /// closes): the device may read and write it at any time.
    pub unsafe fn dma_map(&self, va: VirtAddr, iova: Iova, len: u64) -> Result<()> {
        match &self.inner {
            // SAFETY: forwarded caller contract.
            Inner::Vfio(v) => unsafe { v.dma_map(va, iova, len) },
            Inner::Uio(_) => match self.eal.memory().virt2iova(va) {
                Some(i) if i == iova => Ok(()),
                _ => Err(Error::NoDma {
                    why: format!("{va} is not EAL memory with IOVA {iova}; UIO cannot translate"),
                }),
            },
            Inner::VfioShared(_) => Err(self.primary_only("change the DMA mappings of")),
        }
    }

    /// Undo [`dma_map`](Self::dma_map).
    pub fn dma_unmap(&self, iova: Iova, len: u64) -> Result<()> {
        match &self.inner {
            Inner::Vfio(v) => v.dma_unmap(iova, len),
            Inner::Uio(_) => Ok(()),
            Inner::VfioShared(_) => Err(self.primary_only("change the DMA mappings of")),
        }
    }

    /// Reset the device (VFIO_DEVICE_RESET, or the sysfs `reset` file for UIO). Returns
    /// false if the device cannot be reset that way. Registers and DMA state are lost.
    pub fn reset(&self) -> Result<bool> {
        match &self.inner {
            Inner::Vfio(v) => v.reset(),
            Inner::Uio(_) => uio::reset(&self.sysfs_dir()),
            Inner::VfioShared(_) => Err(self.primary_only("reset")),
        }
    }

    /// Route `count` vectors of `kind` to eventfds (VFIO only; VFIO_DEVICE_SET_IRQS).
    /// With UIO this is [`Error::Unsupported`].
    pub fn enable_irq(&self, kind: IrqKind, count: u32) -> Result<Vec<IrqEvent>> {
        match &self.inner {
            Inner::Vfio(v) => v.enable_irq(kind, count),
            Inner::Uio(_) => Err(Error::Unsupported {
                what: "route interrupts to eventfds with uio_pci_generic (use vfio-pci)".into(),
            }),
            Inner::VfioShared(_) => Err(self.primary_only("route the interrupts of")),
        }
    }

    /// Stop delivering `kind` interrupts.
    pub fn disable_irq(&self, kind: IrqKind) -> Result<()> {
        match &self.inner {
            Inner::Vfio(v) => v.disable_irq(kind),
            Inner::Uio(_) => Ok(()),
            Inner::VfioShared(_) => Err(self.primary_only("route the interrupts of")),
        }
    }

    /// Unmask INTx after handling one (VFIO masks it on delivery).
    pub fn unmask_intx(&self) -> Result<()> {
        match &self.inner {
            Inner::Vfio(v) => v.unmask_intx(),
            Inner::Uio(_) => Ok(()),
            Inner::VfioShared(_) => Err(self.primary_only("route the interrupts of")),
        }
    }

    /// [`Error::DeviceGone`] if the device is no longer usable: the kernel asked for it
    /// back (VFIO release request), it is no longer bound to the driver it was opened
    /// through, its config space cannot be read, or it reads all-ones.
    pub fn check_alive(&self) -> Result<()> {
        let gone = |why: String| Error::DeviceGone {
            addr: self.addr.to_string(),
            why,
        };
        if let Inner::Vfio(v) = &self.inner {
            if v.release_requested()? {
                return Err(gone(
                    "the kernel asked to release it (driver unbind or removal)".into(),
                ));
            }
        }
        let want = match self.backend() {
            Backend::Vfio => "vfio-pci",
            Backend::Uio => "uio_pci_generic",
        };
        match bind::current_driver(&self.roots.sys, self.addr) {
            Ok(Some(d)) if d == want => {}
            Ok(d) => {
                return Err(gone(format!(
                    "no longer bound to {want} (now {})",
                    d.as_deref().unwrap_or("no driver")
                )))
            }
            Err(e) => return Err(gone(format!("sysfs entry unreadable: {e}"))),
        }
        let mut b = [0u8; 2];
        match self.config_read(0, &mut b) {
            Ok(()) if u16::from_le_bytes(b) == 0xffff => {
                Err(gone("config space reads all-ones".into()))
            }
            Ok(()) => Ok(()),
            Err(e) => Err(gone(format!("config space unreadable: {e}"))),
        }
    }

    /// Read a 32-bit register; if it reads all-ones (what a vanished device returns),
    /// confirm with [`check_alive`](Self::check_alive) and return
    /// [`Error::DeviceGone`] if the device is gone (all-ones is returned as a value
    /// otherwise: some registers legitimately read so).
    pub fn read32_checked(&self, bar: &MmioRegion, offset: u64) -> Result<u32> {
        let v = bar.read32(offset)?;
        if v == u32::MAX {
            self.check_alive()?;
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmio_bounds_and_alignment() {
        let mut mem = vec![0u64; 16]; // 128 bytes, 8-aligned
        let base = VirtAddr::from_ptr(mem.as_mut_ptr());
        // SAFETY: `mem` outlives `r` (dropped at the end of the test) and is only
        // accessed through `r` meanwhile.
        let r = unsafe { MmioRegion::from_raw(base, 128, "test window") };
        r.write32(0, 0xdead_beef).unwrap();
        r.write32(4, 0x1234_5678).unwrap();
        assert_eq!(r.read64(0).unwrap(), 0x1234_5678_dead_beef);
        assert_eq!(r.read16(2).unwrap(), 0xdead);
        assert_eq!(r.read8(0).unwrap(), 0xef);
        r.write64(120, u64::MAX).unwrap();
        assert_eq!(r.read32(124).unwrap(), u32::MAX);
        // Past the end, straddling the end, misaligned, overflowing offsets.
        for (off, w) in [
            (128u64, 4u64),
            (126, 4),
            (125, 4),
            (121, 8),
            (2, 4),
            (u64::MAX - 1, 4),
            (128, 1),
        ] {
            let e = match w {
                1 => r.read8(off).map(|_| ()),
                4 => r.read32(off).map(|_| ()),
                _ => r.read64(off).map(|_| ()),
            }
            .unwrap_err();
            assert!(
                matches!(e, Error::MmioOutOfBounds { offset, width, len: 128, .. } if offset == off && width == w)
            );
            assert!(e.to_string().contains("test window"));
        }
        assert!(r.write32(128, 1).is_err());
        assert!(r.write16(127, 1).is_err());
        assert_eq!(mem[15], u64::MAX);
        assert_eq!(r.len(), 128);
        let r2 = r.clone();
        drop(r);
        assert_eq!(r2.read32(0).unwrap(), 0xdead_beef);
        drop(r2);
        assert_eq!(mem[0], 0x1234_5678_dead_beef);
    }

    #[test]
    fn config_space_bounds() {
        let t = testkit::tempdir::TempDir::new("cfg");
        let p = t.path().join("config");
        let mut img = vec![0u8; 256];
        img[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
        std::fs::write(&p, &img).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        let c = ConfigSpace {
            file,
            base: 0,
            len: 256,
            what: "config of test".into(),
        };
        let mut b = [0u8; 2];
        c.read(0, &mut b).unwrap();
        assert_eq!(u16::from_le_bytes(b), 0x1b36);
        c.write(4, &[0x06, 0x00]).unwrap();
        assert_eq!(std::fs::read(&p).unwrap()[4], 6);
        assert!(matches!(
            c.read(255, &mut b),
            Err(Error::MmioOutOfBounds { .. })
        ));
        assert!(c.write(u64::MAX, &[1]).is_err());
    }
}
