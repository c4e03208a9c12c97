//! The guest's memory as the front end shares it (`VHOST_USER_SET_MEM_TABLE`): one
//! shared mapping per region (vm-memory's `GuestMemoryMmap`), plus the front end's own
//! virtual addresses of each region, in which it gives the ring addresses.
//!
//! Every address a guest hands us goes through [`GuestMem::translate`], which refuses
//! any range not wholly inside the regions: a descriptor pointing outside guest memory
//! is an error for that request, never a wild access.

use std::fs::File;

use bdev::IoVec;
use vhost::vhost_user::message::VhostUserMemoryRegion;
use vm_memory::{
    FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion,
    GuestRegionMmap, MmapRegion,
};

use crate::error::{Error, Result};

/// One region's addresses.
#[derive(Debug, Clone, Copy)]
struct Region {
    gpa: u64,
    size: u64,
    uva: u64,
}

/// The mapped guest memory.
pub struct GuestMem {
    mmap: GuestMemoryMmap,
    regions: Vec<Region>,
}

impl GuestMem {
    /// Map the regions of a memory table (one file per region, in order).
    pub fn map(table: &[VhostUserMemoryRegion], files: Vec<File>) -> Result<GuestMem> {
        if table.len() != files.len() {
            return Err(Error::Memory(format!(
                "{} regions but {} descriptors",
                table.len(),
                files.len()
            )));
        }
        let mut maps = Vec::with_capacity(table.len());
        let mut regions = Vec::with_capacity(table.len());
        for (r, f) in table.iter().zip(files) {
            // Copies: the message struct is packed.
            let (gpa, msize, moff, uva) =
                (r.guest_phys_addr, r.memory_size, r.mmap_offset, r.user_addr);
            let size = usize::try_from(r.memory_size)
                .map_err(|_| Error::Memory(format!("region size {msize} too large")))?;
            let m = MmapRegion::from_file(FileOffset::new(f, moff), size).map_err(|e| {
                Error::Memory(format!(
                    "region at {gpa:#x} ({size} bytes, offset {moff:#x}): {e}"
                ))
            })?;
            let g = GuestRegionMmap::new(m, GuestAddress(gpa))
                .ok_or_else(|| Error::Memory(format!("region at {gpa:#x} wraps")))?;
            maps.push(g);
            regions.push(Region {
                gpa,
                size: msize,
                uva,
            });
        }
        maps.sort_by_key(|g| g.start_addr());
        let mmap = GuestMemoryMmap::from_regions(maps)
            .map_err(|e| Error::Memory(format!("regions overlap or are empty: {e}")))?;
        Ok(GuestMem { mmap, regions })
    }

    /// vm-memory's view (for virtio-queue).
    pub fn mmap(&self) -> &GuestMemoryMmap {
        &self.mmap
    }

    /// The guest address of a front-end virtual address (ring addresses come so).
    pub fn uva_to_gpa(&self, uva: u64) -> Option<u64> {
        self.regions
            .iter()
            .find(|r| uva >= r.uva && uva - r.uva < r.size)
            .map(|r| r.gpa + (uva - r.uva))
    }

    /// Append the host iovecs covering `[gpa, gpa + len)` to `out` (several when the
    /// range crosses regions). Refused if any byte is outside guest memory.
    pub fn translate(&self, gpa: u64, len: u64, out: &mut Vec<IoVec>) -> Result<()> {
        let mut addr = gpa;
        let mut left = len;
        while left > 0 {
            let region = self.mmap.find_region(GuestAddress(addr)).ok_or_else(|| {
                Error::Memory(format!("address {addr:#x} is outside guest memory"))
            })?;
            let off = addr - region.start_addr().0;
            let take = (region.len() - off).min(left);
            let host = region
                .get_host_address(vm_memory::MemoryRegionAddress(off))
                .map_err(|e| Error::Memory(format!("address {addr:#x}: {e}")))?;
            out.push(IoVec {
                base: host,
                len: take as usize,
            });
            addr = addr
                .checked_add(take)
                .ok_or_else(|| Error::Memory(format!("range at {gpa:#x} wraps")))?;
            left -= take;
        }
        Ok(())
    }
}
