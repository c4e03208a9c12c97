//! A device one process opened, driven by another process of the EAL group: what the
//! primary hands over ([`DeviceShare`]) and the secondary's side of a VFIO device
//! (`VfioShared`), in the model of DPDK's multi-process VFIO (the secondary gets the
//! container and group fds from the primary over IPC and maps every BAR at the address
//! the primary has it).
//!
//! # What moves
//!
//! * Bytes ([`DeviceShare::bytes`], at most [`SHARE_LEN_MAX`]): format version, backend,
//!   the config region's offset and length in the device fd (VFIO), and for every BAR
//!   the primary has mapped: its index, virtual address, length, mapped length and
//!   offset in the file it is mapped from.
//! * Descriptors ([`DeviceShare::fds`]): with VFIO the device fd, the container fd and
//!   the group fd (found among the process's open files), so the device, its IOMMU
//!   domain and the DMA mappings of every EAL memseg stay the same objects in both
//!   processes. With UIO none: the secondary reopens the sysfs `config` and `resourceN`
//!   files itself (nothing there is exclusive).
//!
//! # Contract
//!
//! * The secondary maps each BAR at the primary's virtual address with
//!   `MAP_FIXED_NOREPLACE`; if that range is taken in the secondary the BAR cannot be
//!   mapped and [`Error::BarMap`] says so (pointers into the BAR, kept in shared
//!   memory, must mean the same thing in both processes). EAL memory is already at the
//!   same addresses in every process, so DMA addresses (IOVAs) need no translation.
//! * The IOMMU and the device's reset and interrupts stay the primary's: on a shared
//!   device `dma_map`, `dma_unmap`, `reset` and `enable_irq` are refused with
//!   [`Error::Unsupported`].

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use super::{Backend, ConfigSpace};
use crate::addr::VirtAddr;
use crate::error::{Error, Result};

/// Bumped whenever the byte layout changes.
const SHARE_VERSION: u8 = 1;
/// Header: version u8 | backend u8 | config offset u64 | config length u64 | BAR count u8.
const HEAD_LEN: usize = 19;
/// One BAR: index u8 | address u64 | length u64 | mapped length u64 | file offset u64.
const BAR_LEN: usize = 33;
/// Longest [`DeviceShare::bytes`]: six BARs.
pub const SHARE_LEN_MAX: usize = HEAD_LEN + 6 * BAR_LEN;

/// One BAR as the primary has it mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SharedBar {
    pub(crate) index: u32,
    pub(crate) va: VirtAddr,
    pub(crate) len: u64,
    pub(crate) map_len: u64,
    pub(crate) offset: u64,
}

/// What another process needs to open the same device (module docs).
#[derive(Debug, Default)]
pub struct DeviceShare {
    /// The layout (module docs), at most [`SHARE_LEN_MAX`] bytes.
    pub bytes: Vec<u8>,
    /// VFIO: device, container, group. UIO: none.
    pub fds: Vec<OwnedFd>,
}

/// The decoded bytes of a [`DeviceShare`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) backend: Backend,
    pub(crate) cfg_off: u64,
    pub(crate) cfg_len: u64,
    pub(crate) bars: Vec<SharedBar>,
}

pub(crate) fn encode(l: &Layout) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEAD_LEN + l.bars.len() * BAR_LEN);
    b.push(SHARE_VERSION);
    b.push(match l.backend {
        Backend::Vfio => 1,
        Backend::Uio => 2,
    });
    b.extend(l.cfg_off.to_le_bytes());
    b.extend(l.cfg_len.to_le_bytes());
    b.push(l.bars.len() as u8);
    for r in &l.bars {
        b.push(r.index as u8);
        for v in [r.va.0, r.len, r.map_len, r.offset] {
            b.extend(v.to_le_bytes());
        }
    }
    b
}

pub(crate) fn decode(addr: &str, b: &[u8]) -> Result<Layout> {
    let bad = |why: String| Error::BarMap {
        addr: addr.to_string(),
        bar: 0,
        why: format!("the primary's description of the device is unusable: {why}"),
    };
    if b.len() < HEAD_LEN {
        return Err(bad(format!(
            "{} bytes, at least {HEAD_LEN} expected",
            b.len()
        )));
    }
    if b[0] != SHARE_VERSION {
        return Err(bad(format!(
            "format version {}, this build reads {SHARE_VERSION}",
            b[0]
        )));
    }
    let backend = match b[1] {
        1 => Backend::Vfio,
        2 => Backend::Uio,
        x => return Err(bad(format!("unknown backend {x}"))),
    };
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let n = usize::from(b[18]);
    if n > 6 || b.len() != HEAD_LEN + n * BAR_LEN {
        return Err(bad(format!("{n} BARs in {} bytes", b.len())));
    }
    let bars = (0..n)
        .map(|k| {
            let o = HEAD_LEN + k * BAR_LEN;
            SharedBar {
                index: u32::from(b[o]),
                va: VirtAddr(u64_at(o + 1)),
                len: u64_at(o + 9),
                map_len: u64_at(o + 17),
                offset: u64_at(o + 25),
            }
        })
        .collect::<Vec<_>>();
    if let Some(r) = bars
        .iter()
        .find(|r| r.index > 5 || r.len > r.map_len || r.map_len == 0)
    {
        return Err(bad(format!("BAR entry {r:?} out of range")));
    }
    Ok(Layout {
        backend,
        cfg_off: u64_at(2),
        cfg_len: u64_at(10),
        bars,
    })
}

/// The fd of `/dev/vfio/<group>` among this process's open files (the vfio-ioctls crate
/// keeps its group handle private), duplicated.
pub(crate) fn find_group_fd(group: u32) -> Option<OwnedFd> {
    let want = Path::new("/dev/vfio").join(group.to_string());
    for e in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        if std::fs::read_link(e.path()).ok().as_deref() != Some(want.as_path()) {
            continue;
        }
        let raw: i32 = e.file_name().to_str()?.parse().ok()?;
        // SAFETY: `raw` is an fd of this process (listed in /proc/self/fd, pointing at
        // the group file the open VFIO device keeps); it is only duplicated here.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
        return fd.try_clone_to_owned().ok();
    }
    None
}

/// A VFIO device opened by another process: its descriptors (received over IPC), the
/// config region through the device fd.
#[derive(Debug)]
pub(crate) struct VfioShared {
    addr: String,
    device: OwnedFd,
    // Held so the container (and the IOMMU mappings in it) and the group outlive the
    // primary if it goes first.
    _rest: Vec<OwnedFd>,
    config: ConfigSpace,
}

impl VfioShared {
    pub(crate) fn new(addr: &str, l: &Layout, mut fds: Vec<OwnedFd>) -> Result<VfioShared> {
        if fds.is_empty() {
            return Err(Error::Unsupported {
                what: format!(
                    "drive {addr} through VFIO in this process: the primary sent no device fd"
                ),
            });
        }
        let device = fds.remove(0);
        let dup = device
            .try_clone()
            .map_err(|e| Error::io("duplicate", format!("VFIO device fd of {addr}"), e))?;
        Ok(VfioShared {
            addr: addr.to_string(),
            device,
            _rest: fds,
            config: ConfigSpace {
                file: std::fs::File::from(dup),
                base: l.cfg_off,
                len: l.cfg_len,
                what: format!("config space of {addr}"),
            },
        })
    }

    pub(crate) fn config(&self) -> &ConfigSpace {
        &self.config
    }

    /// Map BAR `r` where the primary has it.
    pub(crate) fn map_bar(&self, r: &SharedBar) -> Result<()> {
        map_at(self.device.as_fd(), &self.addr, r)
    }
}

/// Map `r` from `fd` at the primary's address.
pub(crate) fn map_at(fd: std::os::fd::BorrowedFd<'_>, addr: &str, r: &SharedBar) -> Result<()> {
    crate::sys::mem::mmap_shared_noreplace(
        fd,
        r.va,
        r.map_len,
        r.offset,
        &format!("BAR {} of {addr}", r.index),
    )
    .map_err(|e| Error::BarMap {
        addr: addr.to_string(),
        bar: r.index,
        why: format!(
            "cannot map it where the primary process has it ({}, {:#x} bytes): {e}; the range is taken in this process",
            r.va, r.map_len
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trip_and_rejects() {
        let l = Layout {
            backend: Backend::Vfio,
            cfg_off: 0x70000000000,
            cfg_len: 256,
            bars: vec![SharedBar {
                index: 0,
                va: VirtAddr(0x7f00_1234_0000),
                len: 0x20000,
                map_len: 0x20000,
                offset: 0,
            }],
        };
        let b = encode(&l);
        assert_eq!(b.len(), HEAD_LEN + BAR_LEN);
        assert_eq!(decode("x", &b).unwrap(), l);
        assert!(decode("x", &b[..10]).is_err());
        let mut v = b.clone();
        v[0] = 9;
        assert!(decode("x", &v).unwrap_err().to_string().contains("version"));
        let mut v = b.clone();
        v[1] = 7;
        assert!(decode("x", &v).is_err());
        let mut v = b.clone();
        v[18] = 2; // says two BARs, holds one
        assert!(decode("x", &v).is_err());
        let mut v = b.clone();
        v[HEAD_LEN] = 6; // BAR index 6
        assert!(decode("x", &v).is_err());
        let mut v = b;
        v[HEAD_LEN + 17..HEAD_LEN + 25].copy_from_slice(&0u64.to_le_bytes()); // map_len 0
        assert!(decode("x", &v).is_err());
        const { assert!(SHARE_LEN_MAX <= 256) };
    }

    #[test]
    fn fixed_mapping_refuses_a_taken_range() {
        let t = testkit::tempdir::TempDir::new("share");
        let p = t.path().join("bar");
        std::fs::write(&p, vec![0u8; 8192]).unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        // Where the "primary" mapped it: take a free range, then leave it mapped so the
        // fixed mapping at the same address must fail.
        let va = crate::sys::mem::mmap_shared_at(f.as_fd(), 8192, 0, "test").unwrap();
        let r = SharedBar {
            index: 0,
            va,
            len: 8192,
            map_len: 8192,
            offset: 0,
        };
        let e = map_at(f.as_fd(), "0000:00:03.0", &r).unwrap_err();
        assert!(e.to_string().contains("range is taken"), "{e}");
        // SAFETY: mapped above by this test, used by nothing else.
        unsafe { crate::sys::mem::munmap(va, 8192).unwrap() };
        // Now free: the mapping lands exactly there.
        map_at(f.as_fd(), "0000:00:03.0", &r).unwrap();
        // SAFETY: as above.
        unsafe { crate::sys::mem::munmap(va, 8192).unwrap() };
    }
}
