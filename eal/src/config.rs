//! The shared configuration: one `#[repr(C)]` file per file prefix, `<runtime dir>/config`,
//! mapped `MAP_SHARED` by the primary (and, in the multi-process issue, by secondaries).
//!
//! # Layout (version [`VERSION`])
//!
//! ```text
//! offset 0        ConfigHeader   magic, version, primary pid, sizes, the lock (own line)
//! offset 64       ConfigBody     IOVA mode, flags, VA area, memseg lists (with the file
//!                                paths behind them and each list's heap header), the
//!                                memzone table (RTE_MAX_MEMZONE = 2560 entries)
//! body end        [Memseg; n]    one entry per page (hugepages) or 2 MiB chunk (--no-huge)
//! ```
//!
//! Rules: no pointers anywhere except EAL-memory virtual addresses (identical in every
//! process that maps the EAL area at its recorded base); no `String`/`Vec`; names and
//! paths are NUL-padded byte arrays. A process that maps the file checks [`MAGIC`],
//! [`VERSION`] and `body_size` and refuses a mismatch.
//!
//! # The lock
//!
//! [`ShmLock`] is a test-and-set spinlock on an `AtomicU32` in the header, process-shared
//! because it lives in the `MAP_SHARED` file. It guards every mutable field of
//! [`ConfigBody`] and every heap block header in EAL memory (memzone and heap changes).
//! Waiters spin briefly, then `yield`. It is not robust: a process that dies while holding
//! it (a few microseconds of control-path work, no user code runs under it) leaves it held,
//! and the holder's pid is recorded for diagnosis. The body is only ever touched through
//! [`ConfigGuard`], so no `&`/`&mut` into the body exists without the lock held; the lock
//! word itself sits outside the body, in the header, so references to the body never
//! overlap it.

use std::fs::File;
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use static_assertions::const_assert_eq;

use crate::addr::VirtAddr;
use crate::error::{Error, Result};
use crate::memory::Memseg;
use crate::sys::mem as sys;

/// "FPLNCFG1" little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"FPLNCFG1");
/// Layout version; bump on any change to the structs below.
pub const VERSION: u32 = 1;
/// Memseg lists (runs of pages with one socket and one page size).
pub const MAX_MEMSEG_LISTS: usize = 32;
/// Memzone table size (DPDK's RTE_MAX_MEMZONE default, 2560).
pub const MAX_MEMZONE: usize = 2560;
/// Memzone name buffer, including the terminating NUL (DPDK's RTE_MEMZONE_NAMESIZE).
pub const MEMZONE_NAMESIZE: usize = 32;
/// Directory path buffer of a memseg list's backing files.
pub const PATH_MAX: usize = 192;
/// File name stem buffer.
pub const STEM_MAX: usize = 96;

/// `ConfigBody::flags`: memory is not hugepage-backed.
pub const FLAG_NO_HUGE: u32 = 1;
/// `ConfigBody::flags`: memory is pinned and devices may DMA to it.
pub const FLAG_DMA_CAPABLE: u32 = 2;

/// `MemsegListDesc::backing`: one hugetlbfs file per page, `<dir>/<stem><n>`.
pub const BACKING_HUGETLBFS: u32 = 1;
/// `MemsegListDesc::backing`: one regular shared file `<dir>/<stem>` (offset `file_off`).
pub const BACKING_SHM: u32 = 2;

/// Process-shared spinlock. See the module doc.
#[repr(C)]
pub struct ShmLock {
    state: AtomicU32,
    holder: AtomicU32,
}

impl ShmLock {
    fn lock(&self) {
        let mut spins = 0u32;
        loop {
            // A1 acquire: pairs with R1 in `unlock`; makes the previous holder's writes to
            // the body and to heap headers visible before we read them.
            if self.state.compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                self.holder.store(std::process::id(), Ordering::Relaxed);
                return;
            }
            spins += 1;
            if spins < 128 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    fn unlock(&self) {
        self.holder.store(0, Ordering::Relaxed);
        // R1 release: pairs with A1; publishes everything written under the lock.
        self.state.store(0, Ordering::Release);
    }

    /// Pid of the current holder, 0 if free (diagnostics only).
    pub fn holder(&self) -> u32 {
        self.holder.load(Ordering::Relaxed)
    }
}

/// First cache line of the file.
#[repr(C, align(64))]
pub struct ConfigHeader {
    /// [`MAGIC`].
    pub magic: u64,
    /// [`VERSION`].
    pub version: u32,
    /// Pid of the primary process.
    pub primary_pid: i32,
    /// `size_of::<ConfigBody>()` of the writer.
    pub body_size: u64,
    /// Total file size.
    pub file_size: u64,
    /// Guards the body and the heap headers.
    pub lock: ShmLock,
}
const_assert_eq!(std::mem::size_of::<ConfigHeader>(), 64);

/// Byte offset of `primary_pid` in the file (read by a refused would-be primary).
pub const PRIMARY_PID_OFFSET: u64 = 12;

/// Heap bookkeeping of one memseg list. Offsets are relative to the list's base address;
/// [`NONE`] marks "no block".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HeapHeader {
    /// Offset of the first block on the address-ordered free list.
    pub free_head: u64,
    /// Usable bytes managed (the list's length).
    pub len: u64,
    /// Number of live allocations (heap and memzone blocks).
    pub alloc_count: u64,
    /// Reserved.
    pub _rsvd: u64,
}

/// "No block" offset.
pub const NONE: u64 = u64::MAX;

/// One memseg list: a VA-contiguous run of pages with one socket and page size.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MemsegListDesc {
    /// Base virtual address (EAL area, same in every process).
    pub base_va: u64,
    /// Length in bytes.
    pub len: u64,
    /// Page size (4 KiB for `--no-huge`).
    pub page_size: u64,
    /// NUMA socket.
    pub socket: u32,
    /// [`BACKING_HUGETLBFS`] or [`BACKING_SHM`].
    pub backing: u32,
    /// Index of the list's first memseg in the trailing memseg array.
    pub first_seg: u64,
    /// Number of memsegs.
    pub n_segs: u64,
    /// Directory of the backing files (NUL padded).
    pub file_dir: [u8; PATH_MAX],
    /// Backing file name or name stem (NUL padded).
    pub file_stem: [u8; STEM_MAX],
    /// Hugetlbfs: number of the first file (`<stem><first_file>`).
    pub first_file: u32,
    /// Hugetlbfs: number of files (one page each).
    pub n_files: u32,
    /// Shm: offset of `base_va` in the file.
    pub file_off: u64,
    /// The list's heap.
    pub heap: HeapHeader,
}

/// One memzone table slot.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MemzoneEntry {
    /// NUL-padded name; `name[0] == 0` means the slot is free.
    pub name: [u8; MEMZONE_NAMESIZE],
    /// Start (EAL virtual address).
    pub addr: u64,
    /// IOVA of `addr`.
    pub iova: u64,
    /// Length (cache-line rounded).
    pub len: u64,
    /// Page size of the list it lives in.
    pub page_size: u64,
    /// Serial number (unique per reservation, detects stale handles).
    pub serial: u64,
    /// NUMA socket.
    pub socket: u32,
    /// `MemzoneFlags` bits as requested.
    pub flags: u32,
    /// Index of the memseg list.
    pub list: u32,
    /// 1 if the placement is IOVA-contiguous.
    pub iova_contig: u32,
}
const_assert_eq!(std::mem::size_of::<MemzoneEntry>(), 88);

/// Everything the lock guards.
#[repr(C)]
pub struct ConfigBody {
    /// 0 = PA, 1 = VA.
    pub iova_mode: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Base of the whole EAL virtual area.
    pub base_va: u64,
    /// Length of the EAL virtual area.
    pub va_len: u64,
    /// Number of memsegs in the trailing array.
    pub n_memsegs: u64,
    /// Next memzone serial.
    pub next_serial: u64,
    /// Memzone slots in use.
    pub n_memzones: u32,
    /// Used entries of `lists`.
    pub n_lists: u32,
    /// File prefix (NUL padded).
    pub file_prefix: [u8; 72],
    /// Memseg lists.
    pub lists: [MemsegListDesc; MAX_MEMSEG_LISTS],
    /// Memzone table.
    pub memzones: [MemzoneEntry; MAX_MEMZONE],
}

/// Body offset in the file.
pub const BODY_OFFSET: usize = std::mem::size_of::<ConfigHeader>();

/// Copy `s` into a NUL-padded buffer; `false` if it does not fit with a NUL.
pub fn put_str(buf: &mut [u8], s: &[u8]) -> bool {
    if s.len() >= buf.len() || s.contains(&0) {
        return false;
    }
    buf.fill(0);
    buf[..s.len()].copy_from_slice(s);
    true
}

/// The bytes of a NUL-padded buffer up to the first NUL.
pub fn get_str(buf: &[u8]) -> &[u8] {
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    &buf[..n]
}

/// The mapped shared configuration of this process.
pub struct SharedConfig {
    map: VirtAddr,
    len: u64,
    hdr: NonNull<ConfigHeader>,
    n_memsegs: usize,
}

// SAFETY: the mapping is owned by this handle; the header's mutable part is atomics and
// the body is only reached through the lock (ConfigGuard), so sharing across threads is
// sound.
unsafe impl Send for SharedConfig {}
// SAFETY: as above.
unsafe impl Sync for SharedConfig {}

impl SharedConfig {
    /// Size of the file for `n_memsegs` memsegs.
    pub fn file_size(n_memsegs: usize) -> u64 {
        (BODY_OFFSET + std::mem::size_of::<ConfigBody>() + n_memsegs * std::mem::size_of::<Memseg>()) as u64
    }

    /// Primary: size `file` (the locked config file), map it, write header and body via
    /// `init`, and the memseg array. The file's previous contents are discarded.
    pub fn create(file: &File, memsegs: &[Memseg], init: impl FnOnce(&mut ConfigBody)) -> Result<SharedConfig> {
        let size = Self::file_size(memsegs.len());
        file.set_len(0).map_err(|e| Error::io("truncate", "shared config", e))?;
        file.set_len(size).map_err(|e| Error::io("size", "shared config", e))?;
        let map = sys::mmap_shared(size, file.as_fd())?;
        let hdr = NonNull::new(map.as_ptr()).ok_or_else(|| Error::io("map", "shared config", std::io::Error::other("null mapping")))?;
        let cfg = SharedConfig { map, len: size, hdr, n_memsegs: memsegs.len() };
        // SAFETY: the mapping is `size` bytes, page aligned, zero filled (fresh sparse
        // file) and private to us until this function returns: nobody else holds the
        // primary lock, and secondaries check the magic written last.
        unsafe {
            let body = map.add(BODY_OFFSET as u64).as_ptr::<ConfigBody>();
            init(&mut *body);
            (*body).n_memsegs = memsegs.len() as u64;
            let segs = map.add((BODY_OFFSET + std::mem::size_of::<ConfigBody>()) as u64).as_ptr::<Memseg>();
            std::ptr::copy_nonoverlapping(memsegs.as_ptr(), segs, memsegs.len());
            let h = cfg.hdr.as_ptr();
            (*h).version = VERSION;
            (*h).primary_pid = std::process::id() as i32;
            (*h).body_size = std::mem::size_of::<ConfigBody>() as u64;
            (*h).file_size = size;
        }
        // Written last with release so a reader that sees MAGIC (acquire) sees the rest.
        // SAFETY: `magic` is a plain u64 at offset 0 of our mapping, aligned.
        let magic = unsafe { &*(std::ptr::addr_of_mut!((*cfg.hdr.as_ptr()).magic) as *const std::sync::atomic::AtomicU64) };
        magic.store(MAGIC, Ordering::Release);
        Ok(cfg)
    }

    /// The header (its mutable parts are atomics).
    pub fn header(&self) -> &ConfigHeader {
        // SAFETY: the mapping lives as long as `self`; only atomics in the header change
        // after `create`.
        unsafe { self.hdr.as_ref() }
    }

    /// Take the lock and get the body.
    pub fn lock(&self) -> ConfigGuard<'_> {
        self.header().lock.lock();
        ConfigGuard { cfg: self }
    }

    /// The memseg array (read-only after creation).
    pub fn memsegs(&self) -> &[Memseg] {
        let n = self.n_memsegs;
        // SAFETY: the array was written once in `create` and is never modified; it lies
        // inside our mapping (file size checked at creation).
        unsafe {
            std::slice::from_raw_parts(
                self.map.add((BODY_OFFSET + std::mem::size_of::<ConfigBody>()) as u64).as_ptr::<Memseg>(),
                n,
            )
        }
    }
}

impl Drop for SharedConfig {
    fn drop(&mut self) {
        // SAFETY: we own the mapping and no ConfigGuard can outlive `self`.
        let _ = unsafe { sys::munmap(self.map, self.len) };
    }
}

/// Lock guard; derefs to the body. Unlocks on drop.
pub struct ConfigGuard<'a> {
    cfg: &'a SharedConfig,
}

impl std::ops::Deref for ConfigGuard<'_> {
    type Target = ConfigBody;
    fn deref(&self) -> &ConfigBody {
        // SAFETY: the lock is held, so no other thread or process touches the body; it
        // lies inside the mapping at BODY_OFFSET, suitably aligned (64).
        unsafe { &*self.cfg.map.add(BODY_OFFSET as u64).as_ptr::<ConfigBody>() }
    }
}

impl std::ops::DerefMut for ConfigGuard<'_> {
    fn deref_mut(&mut self) -> &mut ConfigBody {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { &mut *self.cfg.map.add(BODY_OFFSET as u64).as_ptr::<ConfigBody>() }
    }
}

impl Drop for ConfigGuard<'_> {
    fn drop(&mut self) {
        self.cfg.header().lock.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_stable() {
        assert_eq!(std::mem::offset_of!(ConfigHeader, primary_pid) as u64, PRIMARY_PID_OFFSET);
        assert_eq!(std::mem::align_of::<ConfigBody>(), 8);
        assert_eq!(BODY_OFFSET, 64);
        assert_eq!(std::mem::size_of::<Memseg>(), 40);
    }

    #[test]
    fn strings() {
        let mut b = [0u8; 8];
        assert!(put_str(&mut b, b"abc"));
        assert_eq!(get_str(&b), b"abc");
        assert!(!put_str(&mut b, b"12345678"));
        assert!(!put_str(&mut b, b"a\0b"));
        assert!(put_str(&mut b, b"1234567"));
        assert_eq!(get_str(&b), b"1234567");
    }
}
