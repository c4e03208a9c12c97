//! A BAR (or other MMIO window) mapped into this process: volatile, bounds-checked
//! register access, the mapping shared by clones and unmapped with the last one.

use std::sync::Arc;

use crate::addr::VirtAddr;
use crate::error::{Error, Result};
use crate::sys::dev as sys;

/// One mapped BAR; unmapped when the last [`MmioRegion`] clone goes.
#[derive(Debug)]
struct Mapping {
    base: VirtAddr,
    map_len: u64,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.map_len == 0 {
            return; // not ours (MmioRegion::from_raw)
        }
        // SAFETY: the mapping is owned by this struct alone (made by `map_bar`); the last
        // `MmioRegion` holding it is going away, so nothing can use the range any more.
        let _ = unsafe { sys::munmap_device(self.base, self.map_len) };
    }
}

/// A BAR (or other MMIO window) mapped into this process: volatile, bounds-checked
/// register access. Clones share the mapping.
#[derive(Clone, Debug)]
pub struct MmioRegion {
    map: Arc<Mapping>,
    len: u64,
    name: Arc<str>,
}

macro_rules! mmio_rw {
    ($read:ident, $write:ident, $t:ty) => {
        #[doc = concat!("Volatile read of a `", stringify!($t), "` at `offset` (in range and naturally aligned, else [`Error::MmioOutOfBounds`]).")]
        #[inline]
        pub fn $read(&self, offset: u64) -> Result<$t> {
            self.check(offset, std::mem::size_of::<$t>() as u64)?;
            // SAFETY: `check` proved `[offset, offset+size)` lies inside the live mapping
            // (kept alive by `self.map`) and is aligned.
            Ok(unsafe { std::ptr::read_volatile(self.map.base.add(offset).as_ptr::<$t>()) })
        }

        #[doc = concat!("Volatile write of a `", stringify!($t), "` at `offset` (in range and naturally aligned, else [`Error::MmioOutOfBounds`]).")]
        #[inline]
        pub fn $write(&self, offset: u64, v: $t) -> Result<()> {
            self.check(offset, std::mem::size_of::<$t>() as u64)?;
            // SAFETY: as in the read: in range, aligned, mapping alive. Device memory is
            // never referenced by `&`, so the store aliases nothing Rust knows about.
            unsafe { std::ptr::write_volatile(self.map.base.add(offset).as_ptr::<$t>(), v) };
            Ok(())
        }
    };
}

impl MmioRegion {
    /// Wrap a mapping this crate made. `len` ≤ `map_len`.
    pub(super) fn new(base: VirtAddr, len: u64, map_len: u64, name: String) -> MmioRegion {
        MmioRegion {
            map: Arc::new(Mapping { base, map_len }),
            len,
            name: name.into(),
        }
    }

    /// Size of the region in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty region.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Virtual address of the first byte (for drivers that keep raw register pointers;
    /// prefer the checked accessors).
    pub fn base(&self) -> VirtAddr {
        self.map.base
    }

    /// Length of the mapping behind the region (page-rounded; 0 for memory it does not
    /// own, see [`MmioRegion::from_raw`]).
    pub(super) fn map_len(&self) -> u64 {
        self.map.map_len
    }

    /// What the region is ("BAR 0 of 0000:00:02.0").
    pub fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn check(&self, offset: u64, width: u64) -> Result<()> {
        match offset.checked_add(width) {
            Some(end) if end <= self.len && offset.is_multiple_of(width) => Ok(()),
            _ => Err(Error::MmioOutOfBounds {
                what: self.name.to_string(),
                offset,
                width,
                len: self.len,
            }),
        }
    }

    mmio_rw!(read8, write8, u8);
    mmio_rw!(read16, write16, u16);
    mmio_rw!(read32, write32, u32);
    mmio_rw!(read64, write64, u64);

    /// A region over memory the caller owns (tests, and devices emulated in memory).
    ///
    /// # Safety
    /// `[base, base+len)` must be valid for volatile reads and writes for as long as any
    /// clone of the region lives, and must not be unmapped by anyone else. The region
    /// does not unmap it (it is not `map_len`-owned): pass memory that outlives it.
    pub unsafe fn from_raw(base: VirtAddr, len: u64, name: &str) -> MmioRegion {
        // map_len 0 marks a mapping the region does not own: never unmapped.
        MmioRegion {
            map: Arc::new(Mapping { base, map_len: 0 }),
            len,
            name: name.into(),
        }
    }
}
