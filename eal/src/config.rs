//! The shared configuration: one `#[repr(C)]` file per file prefix, `<runtime dir>/config`,
//! mapped `MAP_SHARED` by the primary and by every secondary process of the group.
//!
//! # Layout (version [`VERSION`])
//!
//! ```text
//! offset 0        ConfigHeader   magic, version, primary pid, sizes, the lock, the
//!                                readiness state (one cache line)
//! offset 64       ConfigBody     IOVA mode, flags, VA area, memseg lists (with the file
//!                                paths behind them and each list's heap header), the
//!                                memzone table (RTE_MAX_MEMZONE = 2560 entries), the
//!                                process table (pid, role, lcores of every live process)
//! body end        [Memseg; n]    one entry per page (hugepages) or 2 MiB chunk (--no-huge)
//! ```
//!
//! Rules: no pointers anywhere except EAL-memory virtual addresses (identical in every
//! process that maps the EAL area at its recorded base); no `String`/`Vec`; names and
//! paths are NUL-padded byte arrays. `magic` (offset 0) and `version` (offset 8) keep
//! their offsets in every version, so a process always reads them and refuses a
//! mismatch with both versions named ([`Error::VersionMismatch`]).
//!
//! # Publication
//!
//! The primary writes the body, then `magic` (release), then, once the heaps are set up
//! and it has registered itself, `state = READY` (release, [`SharedConfig::publish`]). A
//! secondary reads the header with `pread` first ([`peek`]) and maps the file only when
//! it sees `READY` written by a live primary; it never sees a half-built config.
//!
//! # Concurrency policy: locks in shared memory, any process may write
//!
//! Every mutable field of [`ConfigBody`] and every heap block header in EAL memory is
//! guarded by one lock, [`ShmLock`], a spinlock on an `AtomicU32` in the header. It is
//! process-shared because it lives in the `MAP_SHARED` file: **any thread of any process
//! of the group (primary or secondary) may take it and change memzones, the heap or the
//! process table**; there is no "only the primary writes" rule. The body is only touched
//! through [`ConfigGuard`], so no `&`/`&mut` into the body exists without the lock held;
//! the lock word sits outside the body, in the header, so references to the body never
//! overlap it. Critical sections are short control-path work (a table scan, a free-list
//! walk); no user code and no blocking system call runs under the lock (the process
//! table's clean-up of dead entries does a `kill(pid, 0)` per entry).
//!
//! **Dying holders.** The lock word holds the holder's pid (0 = free). A waiter that has
//! spun for a while (about a millisecond of yields) checks the holder with `kill(pid, 0)`;
//! if the holder is gone (`ESRCH`) it takes the lock over with a compare-and-swap from the
//! dead pid to its own (only one waiter can win), counts the steal in the header
//! ([`ShmLock::steals`]) and logs a warning. Caveats, stated plainly:
//! - the dead holder may have been in the middle of an update: the memzone table or a
//!   heap free list can be half changed. The thief proceeds; run
//!   [`crate::heap::Heap::check`] to find out, and restart the group if it fails;
//! - pids are compared, so all processes of a group must share a pid namespace, and a
//!   holder whose pid was reused by an unrelated process in the meantime looks alive
//!   (the lock then stays held, as before; the pid is shown for diagnosis);
//! - a process that is merely stopped (SIGSTOP, a debugger) is alive: waiters spin.

use std::fs::File;
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use static_assertions::const_assert_eq;

use crate::addr::VirtAddr;
use crate::error::{Error, Result};
use crate::memory::Memseg;
pub use crate::memory::MAX_MEMSEG_LISTS;
use crate::sys::mem as sys;

/// "FPLNCFG1" little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"FPLNCFG1");
/// Layout version; bump on any change to the structs below.
pub const VERSION: u32 = 1;
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

/// Process-shared spinlock with holder pid and dead-holder takeover. See the module doc.
#[repr(C)]
pub struct ShmLock {
    /// Pid of the holder, 0 when free.
    owner: AtomicU32,
    /// Times the lock was taken over from a dead holder.
    steals: AtomicU32,
}

/// Waiting iterations (after the first spins) between two liveness checks of the holder.
const CHECK_EVERY: u32 = 1024;

impl ShmLock {
    /// A free lock (for tests and fresh files; a zero-filled file is the same).
    pub const fn new() -> ShmLock {
        ShmLock {
            owner: AtomicU32::new(0),
            steals: AtomicU32::new(0),
        }
    }

    /// Take the lock; spins, then yields; takes it over from a dead holder (module doc).
    pub fn lock(&self) {
        let me = std::process::id();
        let mut spins = 0u32;
        loop {
            // A1 acquire: pairs with R1 in `unlock`; makes the previous holder's writes to
            // the body and to heap headers visible before we read them.
            let cur =
                match self
                    .owner
                    .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
                {
                    Ok(_) => return,
                    Err(cur) => cur,
                };
            spins = spins.wrapping_add(1);
            if spins < 128 {
                std::hint::spin_loop();
                continue;
            }
            std::thread::yield_now();
            if spins.is_multiple_of(CHECK_EVERY)
                && cur != 0
                && cur != me
                && !crate::sys::mem::process_exists(cur as i32)
            {
                // A2 acquire: the dead holder's last release (if any) is what we build
                // on; there is no R1 to pair with, see the module doc's caveats.
                if self
                    .owner
                    .compare_exchange(cur, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    self.steals.fetch_add(1, Ordering::Relaxed);
                    crate::log_warn!(
                        "took over the shared-config lock from dead process {cur}; shared tables may be half updated (check with eal.heap().check())"
                    );
                    return;
                }
            }
        }
    }

    fn unlock(&self) {
        // R1 release: pairs with A1; publishes everything written under the lock.
        self.owner.store(0, Ordering::Release);
    }

    /// Pid of the current holder, 0 if free (diagnostics only).
    pub fn holder(&self) -> u32 {
        self.owner.load(Ordering::Relaxed)
    }

    /// How often the lock was taken over from a dead holder.
    pub fn steals(&self) -> u32 {
        self.steals.load(Ordering::Relaxed)
    }

    /// Test hook: mark the lock held by `pid` (as if that process had died holding it).
    #[doc(hidden)]
    pub fn force_holder(&self, pid: u32) {
        self.owner.store(pid, Ordering::Release);
    }
}

impl Default for ShmLock {
    fn default() -> Self {
        Self::new()
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
    /// [`STATE_READY`] once the primary has finished initialising (0 before).
    pub state: AtomicU32,
    /// Reserved, zero.
    pub _rsvd: [u32; 5],
}
const_assert_eq!(std::mem::size_of::<ConfigHeader>(), 64);

/// Byte offset of `version` in the file (the same in every layout version).
pub const VERSION_OFFSET: u64 = 8;
/// Byte offset of `primary_pid` in the file (read by a refused would-be primary).
pub const PRIMARY_PID_OFFSET: u64 = 12;
/// Byte offset of `state`.
pub const STATE_OFFSET: u64 = 40;
/// `ConfigHeader::state`: the primary has published the config.
pub const STATE_READY: u32 = 0x5EAD_1E55;

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

/// Most processes (primary and secondaries) registered at once.
pub const MAX_PROCS: usize = 64;
/// `ProcEntry::role`: slot free.
pub const ROLE_FREE: u32 = 0;
/// `ProcEntry::role`: the primary.
pub const ROLE_PRIMARY: u32 = 1;
/// `ProcEntry::role`: a secondary.
pub const ROLE_SECONDARY: u32 = 2;

/// One process of the group and the lcores it runs (a bitmap of lcore ids).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcEntry {
    /// Pid (0 for a free slot).
    pub pid: i32,
    /// `ROLE_*`.
    pub role: u32,
    /// Main lcore id.
    pub main_lcore: u32,
    /// Number of lcores.
    pub n_lcores: u32,
    /// Bit `i` of word `i / 64` set = lcore `i` is used (`MAX_LCORE` = 128 bits).
    pub lcores: [u64; 2],
    /// Registration order (a serial from `ConfigBody::next_serial`).
    pub serial: u64,
}
const_assert_eq!(std::mem::size_of::<ProcEntry>(), 40);
const_assert_eq!(crate::lcore::MAX_LCORE, 128);

impl ProcEntry {
    /// Lcore ids in the bitmap, ascending.
    pub fn lcore_ids(&self) -> Vec<u32> {
        (0..128u32)
            .filter(|&i| self.lcores[(i / 64) as usize] >> (i % 64) & 1 == 1)
            .collect()
    }
}

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
    /// Live entries of `procs` (free slots have `pid == 0`).
    pub n_procs: u32,
    /// Reserved, zero.
    pub _rsvd: u32,
    /// Process table: every process attached to the group.
    pub procs: [ProcEntry; MAX_PROCS],
}

impl ConfigBody {
    /// Live entries of the process table (entries of dead pids are skipped).
    pub fn live_procs(&self) -> Vec<ProcEntry> {
        self.procs
            .iter()
            .filter(|e| e.pid > 0 && crate::sys::mem::process_exists(e.pid))
            .copied()
            .collect()
    }

    /// Add `e` (its `serial` is assigned here), first freeing the entries of dead
    /// processes and any older entry of the same pid. [`Error::ProcTableFull`] if every
    /// slot belongs to a live process.
    pub fn proc_register(&mut self, mut e: ProcEntry) -> Result<()> {
        for slot in self.procs.iter_mut() {
            if slot.pid != 0 && (slot.pid == e.pid || !crate::sys::mem::process_exists(slot.pid)) {
                *slot = ProcEntry::default();
            }
        }
        let Some(i) = self.procs.iter().position(|p| p.pid == 0) else {
            return Err(Error::ProcTableFull {
                pid: e.pid,
                max: MAX_PROCS,
            });
        };
        e.serial = self.next_serial;
        self.next_serial += 1;
        self.procs[i] = e;
        self.n_procs = self.procs.iter().filter(|p| p.pid != 0).count() as u32;
        Ok(())
    }

    /// Remove the entry of `pid` (if any).
    pub fn proc_unregister(&mut self, pid: i32) {
        for slot in self.procs.iter_mut().filter(|p| p.pid == pid) {
            *slot = ProcEntry::default();
        }
        self.n_procs = self.procs.iter().filter(|p| p.pid != 0).count() as u32;
    }
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
        (BODY_OFFSET
            + std::mem::size_of::<ConfigBody>()
            + n_memsegs * std::mem::size_of::<Memseg>()) as u64
    }

    /// Primary: size `file` (the locked config file), map it, write header and body via
    /// `init`, and the memseg array. The file's previous contents are discarded.
    pub fn create(
        file: &File,
        memsegs: &[Memseg],
        init: impl FnOnce(&mut ConfigBody),
    ) -> Result<SharedConfig> {
        let size = Self::file_size(memsegs.len());
        file.set_len(0)
            .map_err(|e| Error::io("truncate", "shared config", e))?;
        file.set_len(size)
            .map_err(|e| Error::io("size", "shared config", e))?;
        let map = sys::mmap_shared(size, file.as_fd())?;
        let hdr = NonNull::new(map.as_ptr()).ok_or_else(|| {
            Error::io(
                "map",
                "shared config",
                std::io::Error::other("null mapping"),
            )
        })?;
        let cfg = SharedConfig {
            map,
            len: size,
            hdr,
            n_memsegs: memsegs.len(),
        };
        // SAFETY: the mapping is `size` bytes, page aligned, zero filled (fresh sparse
        // file) and private to us until this function returns: nobody else holds the
        // primary lock, and secondaries check the magic written last.
        unsafe {
            let body = map.add(BODY_OFFSET as u64).as_ptr::<ConfigBody>();
            init(&mut *body);
            (*body).n_memsegs = memsegs.len() as u64;
            let segs = map
                .add((BODY_OFFSET + std::mem::size_of::<ConfigBody>()) as u64)
                .as_ptr::<Memseg>();
            std::ptr::copy_nonoverlapping(memsegs.as_ptr(), segs, memsegs.len());
            let h = cfg.hdr.as_ptr();
            (*h).version = VERSION;
            (*h).primary_pid = std::process::id() as i32;
            (*h).body_size = std::mem::size_of::<ConfigBody>() as u64;
            (*h).file_size = size;
        }
        // Written last with release so a reader that sees MAGIC (acquire) sees the rest.
        // SAFETY: `magic` is a plain u64 at offset 0 of our mapping, aligned.
        let magic = unsafe {
            &*(std::ptr::addr_of_mut!((*cfg.hdr.as_ptr()).magic)
                as *const std::sync::atomic::AtomicU64)
        };
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
                self.map
                    .add((BODY_OFFSET + std::mem::size_of::<ConfigBody>()) as u64)
                    .as_ptr::<Memseg>(),
                n,
            )
        }
    }
}

/// The header fields a process reads (with `pread`) before it maps a config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderSnapshot {
    /// `magic` (0 while the primary is still writing the file).
    pub magic: u64,
    /// Layout version.
    pub version: u32,
    /// The primary's pid.
    pub primary_pid: i32,
    /// `size_of::<ConfigBody>()` of the writer.
    pub body_size: u64,
    /// Total file size as written.
    pub file_size: u64,
    /// `STATE_READY` once published.
    pub state: u32,
}

/// Read the header of the config file with `pread` (no mapping). A file shorter than a
/// header reads as all zero (a primary between `truncate` and its first write).
pub fn peek(file: &File) -> Result<HeaderSnapshot> {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; BODY_OFFSET];
    let mut got = 0;
    while got < b.len() {
        match file.read_at(&mut b[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", "shared config header", e)),
        }
    }
    if got < b.len() {
        b = [0u8; BODY_OFFSET];
    }
    let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    Ok(HeaderSnapshot {
        magic: u64_at(0),
        version: u32_at(VERSION_OFFSET as usize),
        primary_pid: u32_at(PRIMARY_PID_OFFSET as usize) as i32,
        body_size: u64_at(16),
        file_size: u64_at(24),
        state: u32_at(STATE_OFFSET as usize),
    })
}

impl HeaderSnapshot {
    /// Refuse a foreign or other-version file; `Ok(false)` if the primary has not
    /// published it yet (magic or state not written), `Ok(true)` if it is ready.
    pub fn check(&self, path: &std::path::Path) -> Result<bool> {
        if self.magic == 0 {
            return Ok(false);
        }
        if self.magic != MAGIC {
            return Err(Error::BadConfig {
                path: path.to_path_buf(),
                found: self.magic,
            });
        }
        if self.version != VERSION {
            return Err(Error::VersionMismatch {
                path: path.to_path_buf(),
                found: self.version,
                expected: VERSION,
            });
        }
        if self.body_size != std::mem::size_of::<ConfigBody>() as u64 {
            return Err(Error::AttachFailed {
                what: format!("shared config {}", path.display()),
                why: format!(
                    "body is {} bytes, this build expects {} (same version, different build options?)",
                    self.body_size,
                    std::mem::size_of::<ConfigBody>()
                ),
            });
        }
        Ok(self.state == STATE_READY)
    }
}

impl SharedConfig {
    /// Primary: mark the config ready for secondaries (after heaps and the process
    /// table are set up).
    pub fn publish(&self) {
        // R2 release: pairs with the secondary's acquire read of `state` in `attach`;
        // everything written before (body, heaps, process table) is visible to it.
        self.header().state.store(STATE_READY, Ordering::Release);
    }

    /// Secondary: map the config a live primary published (`snap.check()` said ready).
    /// Re-checks the header through the mapping and the file size against the memseg
    /// count; never writes anything.
    pub fn attach(
        file: &File,
        path: &std::path::Path,
        snap: &HeaderSnapshot,
    ) -> Result<SharedConfig> {
        let bad = |why: String| Error::AttachFailed {
            what: format!("shared config {}", path.display()),
            why,
        };
        let actual = file
            .metadata()
            .map_err(|e| Error::io("stat", path.display().to_string(), e))?
            .len();
        if actual != snap.file_size || actual < Self::file_size(0) {
            return Err(bad(format!(
                "file is {actual} bytes, header says {}",
                snap.file_size
            )));
        }
        let map = sys::mmap_shared(actual, file.as_fd())?;
        let hdr =
            NonNull::new(map.as_ptr::<ConfigHeader>()).ok_or_else(|| bad("null mapping".into()))?;
        let mut cfg = SharedConfig {
            map,
            len: actual,
            hdr,
            n_memsegs: 0,
        };
        // A2 acquire: pairs with R2 in `publish`.
        if cfg.header().state.load(Ordering::Acquire) != STATE_READY {
            return Err(bad(
                "the primary un-published it while we attached (primary restarting?)".into(),
            ));
        }
        let h = cfg.header();
        if h.magic != MAGIC || h.version != VERSION || h.primary_pid != snap.primary_pid {
            return Err(bad(
                "header changed while we attached (primary restarting?)".into(),
            ));
        }
        let n = cfg.lock().n_memsegs;
        if Self::file_size(n as usize) != actual {
            return Err(bad(format!(
                "{n} memsegs do not fit a file of {actual} bytes"
            )));
        }
        cfg.n_memsegs = n as usize;
        Ok(cfg)
    }

    /// Whole file length (for tests and diagnostics).
    pub fn mapped_len(&self) -> u64 {
        self.len
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
        assert_eq!(
            std::mem::offset_of!(ConfigHeader, primary_pid) as u64,
            PRIMARY_PID_OFFSET
        );
        assert_eq!(
            std::mem::offset_of!(ConfigHeader, version) as u64,
            VERSION_OFFSET
        );
        assert_eq!(
            std::mem::offset_of!(ConfigHeader, state) as u64,
            STATE_OFFSET
        );
        assert_eq!(std::mem::align_of::<ConfigBody>(), 8);
        assert_eq!(BODY_OFFSET, 64);
        assert_eq!(std::mem::size_of::<Memseg>(), 40);
    }

    #[test]
    fn lock_is_taken_over_from_a_dead_holder_only() {
        let l = ShmLock::new();
        l.lock();
        assert_eq!(l.holder(), std::process::id());
        l.unlock();
        // A pid that certainly is dead: a child we reaped.
        let mut c = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let dead = c.id();
        c.wait().expect("wait");
        l.force_holder(dead);
        l.lock();
        assert_eq!(l.holder(), std::process::id());
        assert_eq!(l.steals(), 1);
        l.unlock();
        // A live holder (our parent, pid 1 is as good: always alive) is never robbed:
        // a thread waits, then gets the lock once it is released.
        l.force_holder(1);
        let l = std::sync::Arc::new(l);
        let l2 = l.clone();
        let t = std::thread::spawn(move || {
            l2.lock();
            l2.unlock();
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(l.holder(), 1, "a live holder keeps the lock");
        assert_eq!(l.steals(), 1);
        l.unlock();
        t.join().unwrap();
        assert_eq!(l.holder(), 0);
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
