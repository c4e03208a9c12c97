//! The mapped EAL area: memsegs, memseg lists and [`Memory`], which owns the mapping
//! and the files behind it and answers address queries (IOVA, memseg, contiguity).

use std::fs;
use std::path::PathBuf;

use crate::addr::{Iova, VirtAddr};
use crate::args::IovaMode;
use crate::error::{Error, Result};
use crate::sys::mem as sys;

/// Default base-address hint of the EAL virtual area (4 GiB, as DPDK's base-virtaddr
/// area). The kernel uses it if the range is free, otherwise picks another address; the
/// address actually used is recorded in the shared config.
pub const DEFAULT_BASE_VIRTADDR: u64 = 0x1_0000_0000;
/// Default amount of memory when neither `-m` nor `--socket-mem` is given.
pub const DEFAULT_MEM: u64 = 256 << 20;
/// Memseg granularity with `--no-huge`.
pub const NOHUGE_SEG: u64 = 2 << 20;
/// Page size reported for `--no-huge` memsegs.
pub const NOHUGE_PAGE: u64 = 4096;

/// One page (or `--no-huge` chunk) of EAL memory. Lives in the shared config too.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memseg {
    /// Virtual address (same in every process).
    pub virt: VirtAddr,
    /// IOVA of `virt`.
    pub iova: Iova,
    /// Length in bytes.
    pub len: u64,
    /// Page size backing it.
    pub page_size: u64,
    /// NUMA socket.
    pub socket: u32,
    /// Reserved, zero.
    pub _rsvd: u32,
}

/// How a memseg list is backed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// hugetlbfs files `<dir>/<stem><first>` .. `<stem><first+count-1>`, one page each.
    Hugetlbfs {
        /// Mount point.
        dir: PathBuf,
        /// `<prefix>map_`.
        stem: String,
        /// First file number.
        first: u32,
        /// Number of files.
        count: u32,
    },
    /// One shared-memory file; the list starts at `offset` in it.
    Shm {
        /// The file.
        path: PathBuf,
        /// Offset of the list's base in the file.
        offset: u64,
    },
}

/// A VA-contiguous run of memsegs with one socket and page size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemsegList {
    /// First byte.
    pub base: VirtAddr,
    /// Length.
    pub len: u64,
    /// Page size.
    pub page_size: u64,
    /// NUMA socket.
    pub socket: u32,
    /// Range of its memsegs in [`Memory::memsegs`].
    pub segs: std::ops::Range<usize>,
    /// Files behind it.
    pub backing: Backing,
}

/// The reserved EAL memory of this process. Dropping it unmaps and unlinks everything.
#[derive(Debug)]
pub struct Memory {
    pub(super) base: VirtAddr,
    pub(super) len: u64,
    pub(super) lists: Vec<MemsegList>,
    pub(super) memsegs: Vec<Memseg>,
    pub(super) iova_mode: IovaMode,
    pub(super) no_huge: bool,
    pub(super) files: Vec<PathBuf>,
    pub(super) mapped: bool,
    /// Unlink `files` on release (primary only).
    pub(super) owns_files: bool,
}

pub(super) struct VaReservation {
    pub base: VirtAddr,
    pub len: u64,
}

impl VaReservation {
    /// Reserve `len` bytes aligned to `align` near `hint`; trims the slack.
    pub fn new(hint: u64, len: u64, align: u64) -> Result<VaReservation> {
        let raw_len = len + align;
        let raw = sys::mmap_reserve(Some(VirtAddr(hint)), raw_len)?;
        let base = VirtAddr(raw.0.next_multiple_of(align));
        let head = base.0 - raw.0;
        let tail = raw_len - head - len;
        // SAFETY: the slack ranges are part of the PROT_NONE reservation we just made and
        // nothing references them.
        unsafe {
            if head > 0 {
                sys::munmap(raw, head)?;
            }
            if tail > 0 {
                sys::munmap(base.add(len), tail)?;
            }
        }
        Ok(VaReservation { base, len })
    }
}

impl Memory {
    /// Nothing mapped yet, no files: what reserve and attach fill in.
    pub(super) fn unmapped(no_huge: bool) -> Memory {
        Memory {
            base: VirtAddr(0),
            len: 0,
            lists: Vec::new(),
            memsegs: Vec::new(),
            iova_mode: IovaMode::Va,
            no_huge,
            files: Vec::new(),
            mapped: false,
            owns_files: true,
        }
    }

    /// True if release unlinks the files (a primary that has not disowned them).
    pub fn owns_files(&self) -> bool {
        self.owns_files
    }

    /// Keep the files on release (secondaries still map them; the next primary
    /// reclaims them).
    pub fn disown_files(&mut self) {
        self.owns_files = false;
    }

    /// Base of the EAL virtual area.
    pub fn base(&self) -> VirtAddr {
        self.base
    }

    /// Length of the EAL virtual area.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// All memsegs, ascending address.
    pub fn memsegs(&self) -> &[Memseg] {
        &self.memsegs
    }

    /// Memseg lists, ascending address.
    pub fn lists(&self) -> &[MemsegList] {
        &self.lists
    }

    /// The IOVA mode in force.
    pub fn iova_mode(&self) -> IovaMode {
        self.iova_mode
    }

    /// True for `--no-huge` memory.
    pub fn no_huge(&self) -> bool {
        self.no_huge
    }

    /// True if devices may DMA to this memory (hugepage-backed, pinned).
    pub fn dma_capable(&self) -> bool {
        !self.no_huge
    }

    /// Files backing the memory (to be removed at clean-up).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// True if `[va, va+len)` lies inside EAL memory.
    pub fn contains(&self, va: VirtAddr, len: u64) -> bool {
        va.0 >= self.base.0
            && va
                .0
                .checked_add(len)
                .is_some_and(|e| e <= self.base.0 + self.len)
    }

    fn seg_index(&self, va: VirtAddr) -> Option<usize> {
        let i = self
            .memsegs
            .partition_point(|m| m.virt.0 <= va.0)
            .checked_sub(1)?;
        let m = &self.memsegs[i];
        (va.0 < m.virt.0 + m.len).then_some(i)
    }

    /// IOVA of `va`, `None` outside EAL memory.
    pub fn virt2iova(&self, va: VirtAddr) -> Option<Iova> {
        let m = &self.memsegs[self.seg_index(va)?];
        m.iova.is_valid().then(|| m.iova.add(va.0 - m.virt.0))
    }

    /// The memseg holding `va`.
    pub fn memseg_of(&self, va: VirtAddr) -> Option<&Memseg> {
        self.seg_index(va).map(|i| &self.memsegs[i])
    }

    /// If `[va, va+len)` is not IOVA-contiguous, the address of the first memseg after
    /// the first discontinuity (a candidate to retry at); `None` if contiguous.
    pub fn iova_break(&self, va: VirtAddr, len: u64) -> Option<VirtAddr> {
        let Some(mut i) = self.seg_index(va) else {
            return Some(VirtAddr(u64::MAX));
        };
        let end = va.0 + len;
        loop {
            let m = self.memsegs[i];
            if m.virt.0 + m.len >= end {
                return None;
            }
            let Some(n) = self.memsegs.get(i + 1) else {
                return Some(VirtAddr(u64::MAX));
            };
            if n.virt.0 != m.virt.0 + m.len || n.iova.0 != m.iova.0.wrapping_add(m.len) {
                return Some(n.virt);
            }
            i += 1;
        }
    }

    /// Unmap and unlink everything. Idempotent; returns the first error but always tries
    /// every step.
    pub fn release(&mut self) -> Result<()> {
        let mut first = None;
        if self.mapped {
            // SAFETY: we own the area; the owner (Eal) guarantees no user of EAL memory is
            // left (workers joined, handles dropped).
            if let Err(e) = unsafe { sys::munmap(self.base, self.len) } {
                first.get_or_insert(e);
            }
            self.mapped = false;
        }
        let files: Vec<PathBuf> = self.files.drain(..).collect();
        for p in files.into_iter().filter(|_| self.owns_files) {
            if let Err(e) = fs::remove_file(&p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    first.get_or_insert(Error::io("remove", p.display().to_string(), e));
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

impl Drop for VaReservation {
    fn drop(&mut self) {
        // SAFETY: we own the range; callers forget() the reservation once Memory owns it.
        let _ = unsafe { sys::munmap(self.base, self.len) };
    }
}
