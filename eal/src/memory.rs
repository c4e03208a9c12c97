//! EAL memory: reservation, mapping, memsegs and IOVA translation.
//!
//! # How memory is reserved
//!
//! **Hugepages** (default). Discovery ([`crate::hugepage`]) lists the hugetlbfs mounts;
//! `--huge-dir` picks one, otherwise the first mount (default page size first, then
//! ascending size) whose pool has enough free pages is used. One page size per EAL.
//! For every page a file `<mount>/<prefix>map_<n>` is created, sized, and `fallocate`d
//! (this takes the page from the pool now, so a later fault can never SIGBUS); with
//! `--socket-mem` the thread's memory policy is bound to the node while its pages are
//! allocated. The whole virtual area is first reserved `PROT_NONE` (at the base-address
//! hint, [`DEFAULT_BASE_VIRTADDR`], if free), aligned to the page size, then each file is
//! mapped over it with `MAP_FIXED | MAP_SHARED`, so the area is one contiguous range.
//! Pages are then locked (`mlock`, which faults them in; if that is refused every page
//! is touched instead) and sorted by NUMA node (pages are re-mapped if the kernel
//! spread them), so each node's pages form one run: a *memseg list*. One [`Memseg`] per
//! page records virtual address, IOVA, length, page size and socket.
//!
//! **Default amount** without `-m`/`--socket-mem`: [`DEFAULT_MEM`] (256 MiB) or what the
//! chosen page size has free, whichever is smaller, at least one page.
//!
//! **`--no-huge`**: one file `/dev/shm/ferroplane-<prefix>-<pid>.mem` (regular shared
//! memory, `fallocate`d so tmpfs space is committed), mapped `MAP_SHARED` at one
//! contiguous area (same base-address rule) so a future secondary can map the same file
//! at the same address. Memsegs are 2 MiB chunks with `page_size` 4 KiB (2 MiB keeps
//! the table small; the chunk is not physically contiguous). The memory is not locked
//! and not DMA-capable ([`Memory::dma_capable`] is false); the IOVA is the virtual address.
//!
//! # IOVA
//!
//! VA mode (default): IOVA = virtual address, for devices behind an IOMMU (VFIO maps the
//! EAL area 1:1). PA mode (`--iova-mode pa`): IOVA = physical address read from
//! `/proc/self/pagemap` (needs CAP_SYS_ADMIN; without it the kernel reports PFN 0 and
//! PA mode fails with [`Error::NoDma`]; it is never silently downgraded because the user
//! asked for it). Hugepages never move, so the IOVA is fixed for the EAL's life.
//!
//! # Files and clean-up
//!
//! [`Memory`] owns the mapping and the files; dropping it (or [`Memory::release`])
//! unmaps and unlinks them. A crash leaves them behind: the next primary with the same
//! prefix removes them in [`reclaim_stale`] after it has taken the primary lock.
//!
//! # Secondary processes
//!
//! [`Memory::attach`] maps the files a primary recorded in the shared config at the
//! **same** virtual addresses: the whole area is first claimed `PROT_NONE` with
//! `MAP_FIXED_NOREPLACE` (so nothing already mapped in this process is ever replaced; a
//! taken range fails with [`Error::AddressTaken`]), then each hugepage file (or the one
//! `--no-huge` file) is mapped over its slot with `MAP_FIXED | MAP_SHARED`. Hugepages are
//! `mlock`ed as in the primary. The files are opened, never created, resized or
//! unlinked: a secondary's `Memory` does not own them ([`Memory::owns_files`] is false)
//! and only unmaps on release. A primary that exits while secondaries are attached
//! disowns its files the same way ([`Memory::disown_files`]).

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::addr::{Iova, VirtAddr};
use crate::args::IovaMode;
use crate::error::{Error, Result};
use crate::hugepage::{HugeMount, HugepageInfo, SysRoots};
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

/// What to reserve.
#[derive(Clone, Debug)]
pub struct MemoryRequest {
    /// File prefix (names the files).
    pub prefix: String,
    /// Total bytes from any socket (`-m`); `None` with no `socket_mem` means the default.
    pub total: Option<u64>,
    /// Bytes per socket (`--socket-mem`), index = socket.
    pub socket_mem: Option<Vec<u64>>,
    /// `--huge-dir`.
    pub huge_dir: Option<PathBuf>,
    /// `--no-huge`.
    pub no_huge: bool,
    /// `--iova-mode`; `None` = VA.
    pub iova_mode: Option<IovaMode>,
    /// Base-address hint; `None` = [`DEFAULT_BASE_VIRTADDR`].
    pub base_hint: Option<u64>,
    /// /proc and /sys.
    pub roots: SysRoots,
    /// Directory for the `--no-huge` file (`/dev/shm`).
    pub shm_dir: PathBuf,
    /// Socket recorded for `--no-huge` memory.
    pub default_socket: u32,
}

impl MemoryRequest {
    /// A request with defaults (hugepages, default amount, VA mode).
    pub fn new(prefix: &str) -> Self {
        MemoryRequest {
            prefix: prefix.into(),
            total: None,
            socket_mem: None,
            huge_dir: None,
            no_huge: false,
            iova_mode: None,
            base_hint: None,
            roots: SysRoots::default(),
            shm_dir: PathBuf::from("/dev/shm"),
            default_socket: 0,
        }
    }
}

/// The reserved EAL memory of this process. Dropping it unmaps and unlinks everything.
#[derive(Debug)]
pub struct Memory {
    base: VirtAddr,
    len: u64,
    lists: Vec<MemsegList>,
    memsegs: Vec<Memseg>,
    iova_mode: IovaMode,
    no_huge: bool,
    files: Vec<PathBuf>,
    mapped: bool,
    /// Unlink `files` on release (primary only).
    owns_files: bool,
}

/// What a secondary maps: the primary's area as recorded in the shared config.
#[derive(Clone, Debug)]
pub struct AttachRequest {
    /// Base of the area.
    pub base: VirtAddr,
    /// Length of the area.
    pub len: u64,
    /// Memseg lists with their backing files (ascending address, inside the area).
    pub lists: Vec<MemsegList>,
    /// Every memseg.
    pub memsegs: Vec<Memseg>,
    /// IOVA mode of the primary.
    pub iova_mode: IovaMode,
    /// The primary runs with `--no-huge`.
    pub no_huge: bool,
}

/// Name stem of hugepage files: `<prefix>map_`.
pub fn huge_stem(prefix: &str) -> String {
    format!("{prefix}map_")
}

/// Name of the `--no-huge` file.
pub fn shm_name(prefix: &str, pid: u32) -> String {
    format!("ferroplane-{prefix}-{pid}.mem")
}

fn is_stale_huge(name: &str, prefix: &str) -> bool {
    name.strip_prefix(&huge_stem(prefix))
        .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
}

fn is_stale_shm(name: &str, prefix: &str) -> bool {
    name.strip_prefix(&format!("ferroplane-{prefix}-"))
        .and_then(|r| r.strip_suffix(".mem"))
        .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
}

/// Remove files a dead primary with `prefix` left in every hugetlbfs mount and in
/// `shm_dir`. Call only while holding the primary lock for `prefix` (then no live process
/// owns such files). Returns the removed paths.
pub fn reclaim_stale(prefix: &str, roots: &SysRoots, shm_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let mut dirs: Vec<(PathBuf, bool)> = vec![(shm_dir.to_path_buf(), false)];
    if let Ok(info) = HugepageInfo::discover(roots) {
        dirs.extend(info.mounts.into_iter().map(|m| (m.path, true)));
    }
    for (dir, huge) in dirs {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for ent in rd.flatten() {
            let name = ent.file_name();
            let name = name.to_string_lossy();
            let stale = if huge {
                is_stale_huge(&name, prefix)
            } else {
                is_stale_shm(&name, prefix)
            };
            if stale {
                let p = ent.path();
                fs::remove_file(&p)
                    .map_err(|e| Error::io("remove stale", p.display().to_string(), e))?;
                removed.push(p);
            }
        }
    }
    Ok(removed)
}

/// Bytes per socket to reserve: `(socket, bytes)`, `socket = None` for "any".
fn wanted(req: &MemoryRequest) -> Result<Vec<(Option<u32>, u64)>> {
    if let Some(sm) = &req.socket_mem {
        let v: Vec<_> = sm
            .iter()
            .enumerate()
            .filter(|(_, &b)| b > 0)
            .map(|(s, &b)| (Some(s as u32), b))
            .collect();
        if v.is_empty() {
            return Err(Error::BadArg {
                arg: "--socket-mem".into(),
                value: "0".into(),
                why: "asks for no memory".into(),
            });
        }
        return Ok(v);
    }
    match req.total {
        Some(0) => Err(Error::BadArg {
            arg: "-m".into(),
            value: "0".into(),
            why: "asks for no memory".into(),
        }),
        Some(b) => Ok(vec![(None, b)]),
        None => Ok(vec![(None, 0)]), // 0 = default, resolved once the page size is known
    }
}

struct VaReservation {
    base: VirtAddr,
    len: u64,
}

impl VaReservation {
    /// Reserve `len` bytes aligned to `align` near `hint`; trims the slack.
    fn new(hint: u64, len: u64, align: u64) -> Result<VaReservation> {
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

impl Drop for VaReservation {
    fn drop(&mut self) {
        // SAFETY: we own the range; callers forget() the reservation once Memory owns it.
        let _ = unsafe { sys::munmap(self.base, self.len) };
    }
}

/// Restores the default memory policy when dropped.
struct PolicyGuard(bool);
impl Drop for PolicyGuard {
    fn drop(&mut self) {
        if self.0 {
            let _ = sys::set_mempolicy(None);
        }
    }
}

impl Memory {
    /// Reserve and map memory as `req` says. On error nothing is left behind.
    pub fn reserve(req: &MemoryRequest) -> Result<Memory> {
        if req.no_huge {
            Self::reserve_nohuge(req)
        } else {
            Self::reserve_huge(req)
        }
    }

    fn reserve_nohuge(req: &MemoryRequest) -> Result<Memory> {
        if req.iova_mode == Some(IovaMode::Pa) {
            return Err(Error::BadArg {
                arg: "--iova-mode".into(),
                value: "pa".into(),
                why: "physical addresses need hugepages (drop --no-huge)".into(),
            });
        }
        let want: u64 = wanted(req)?
            .iter()
            .map(|&(_, b)| if b == 0 { DEFAULT_MEM } else { b })
            .sum();
        let len = want.next_multiple_of(NOHUGE_SEG);
        let path = req.shm_dir.join(shm_name(&req.prefix, std::process::id()));
        let mut mem = Memory {
            base: VirtAddr(0),
            len: 0,
            lists: Vec::new(),
            memsegs: Vec::new(),
            iova_mode: IovaMode::Va,
            no_huge: true,
            files: Vec::new(),
            mapped: false,
            owns_files: true,
        };
        let f = create_excl(&path)?;
        mem.files.push(path.clone());
        f.set_len(len)
            .map_err(|e| Error::io("size", path.display().to_string(), e))?;
        if let Err(e) = sys::fallocate(f.as_fd(), 0, len, &path) {
            if let Error::Os { source, .. } = &e {
                if source.raw_os_error() == Some(libc::ENOSPC) {
                    return Err(Error::NotEnoughMemory {
                        kind: "shared (--no-huge)",
                        requested: len,
                        available: 0,
                    });
                }
            }
            return Err(e);
        }
        let va = VaReservation::new(
            req.base_hint.unwrap_or(DEFAULT_BASE_VIRTADDR),
            len,
            NOHUGE_SEG,
        )?;
        // SAFETY: the target is our fresh PROT_NONE reservation, unreferenced.
        unsafe { sys::mmap_fixed_shared(va.base, len, f.as_fd(), 0)? };
        mem.base = va.base;
        mem.len = len;
        mem.mapped = true;
        std::mem::forget(va);
        let socket = req.default_socket;
        for i in 0..len / NOHUGE_SEG {
            let virt = mem.base.add(i * NOHUGE_SEG);
            mem.memsegs.push(Memseg {
                virt,
                iova: Iova(virt.0),
                len: NOHUGE_SEG,
                page_size: NOHUGE_PAGE,
                socket,
                _rsvd: 0,
            });
        }
        mem.lists.push(MemsegList {
            base: mem.base,
            len,
            page_size: NOHUGE_PAGE,
            socket,
            segs: 0..mem.memsegs.len(),
            backing: Backing::Shm { path, offset: 0 },
        });
        Ok(mem)
    }

    fn pick_mount(
        req: &MemoryRequest,
        info: &HugepageInfo,
        want: &[(Option<u32>, u64)],
    ) -> Result<(HugeMount, u64)> {
        let candidates: Vec<HugeMount> = match &req.huge_dir {
            Some(d) => match info.mount_at(d) {
                Some(m) => vec![m.clone()],
                None => {
                    return Err(Error::NoHugepages {
                        why: format!("--huge-dir {} is not a hugetlbfs mount point", d.display()),
                    })
                }
            },
            None => {
                let mut m = info.mounts.clone();
                m.sort_by_key(|m| (Some(m.page_size) != info.default_size, m.page_size));
                m.dedup_by_key(|m| m.page_size);
                m
            }
        };
        if candidates.is_empty() {
            return Err(Error::NoHugepages {
                why: "no hugetlbfs is mounted".into(),
            });
        }
        let mut best_avail = 0u64;
        for m in &candidates {
            let Some(ps) = info.size(m.page_size) else {
                continue;
            };
            let fits = want.iter().all(|&(s, b)| {
                let have = match s {
                    Some(node) => ps.free_on(node).min(ps.available()),
                    None => ps.available(),
                };
                best_avail = best_avail.max(have * m.page_size);
                if b == 0 {
                    have > 0
                } else {
                    have >= b.div_ceil(m.page_size)
                }
            });
            if fits {
                return Ok((m.clone(), ps.available()));
            }
        }
        if want.iter().all(|&(_, b)| b == 0) || best_avail == 0 {
            let pools: Vec<String> = info
                .sizes
                .iter()
                .map(|s| {
                    format!(
                        "{}: {} free of {}",
                        crate::hugepage::format_size(s.page_size),
                        s.available(),
                        s.nr
                    )
                })
                .collect();
            return Err(Error::NoHugepages {
                why: format!("no free hugepages ({})", pools.join(", ")),
            });
        }
        Err(Error::NotEnoughMemory {
            kind: "hugepage",
            requested: want.iter().map(|w| w.1).sum(),
            available: best_avail,
        })
    }

    fn reserve_huge(req: &MemoryRequest) -> Result<Memory> {
        let info = HugepageInfo::discover(&req.roots)?;
        let mut want = wanted(req)?;
        let (mount, avail) = Self::pick_mount(req, &info, &want)?;
        let ps = mount.page_size;
        for w in want.iter_mut() {
            if w.1 == 0 {
                w.1 = DEFAULT_MEM.min(avail * ps).max(ps);
            }
        }
        let npages: Vec<(Option<u32>, u64)> =
            want.iter().map(|&(s, b)| (s, b.div_ceil(ps))).collect();
        let total_pages: u64 = npages.iter().map(|p| p.1).sum();
        let len = total_pages * ps;
        let stem = huge_stem(&req.prefix);

        let mut mem = Memory {
            base: VirtAddr(0),
            len: 0,
            lists: Vec::new(),
            memsegs: Vec::new(),
            iova_mode: IovaMode::Va,
            no_huge: false,
            files: Vec::new(),
            mapped: false,
            owns_files: true,
        };
        let va = VaReservation::new(req.base_hint.unwrap_or(DEFAULT_BASE_VIRTADDR), len, ps)?;
        // Allocate and map every page.
        let mut files: Vec<File> = Vec::with_capacity(total_pages as usize);
        {
            let mut idx = 0u64;
            for &(node, n) in &npages {
                let _policy = match node {
                    Some(nd) if info.size(ps).is_some_and(|s| s.nodes.len() > 1) => {
                        sys::set_mempolicy(Some(nd))?;
                        PolicyGuard(true)
                    }
                    _ => PolicyGuard(false),
                };
                for _ in 0..n {
                    let path = mount.path.join(format!("{stem}{idx}"));
                    let f = create_excl(&path)?;
                    mem.files.push(path.clone());
                    f.set_len(ps)
                        .map_err(|e| Error::io("size", path.display().to_string(), e))?;
                    if let Err(e) = sys::fallocate(f.as_fd(), 0, ps, &path) {
                        if let Error::Os { source, .. } = &e {
                            if source.raw_os_error() == Some(libc::ENOSPC) {
                                return Err(Error::NotEnoughMemory {
                                    kind: "hugepage",
                                    requested: len,
                                    available: idx * ps,
                                });
                            }
                        }
                        return Err(e);
                    }
                    // SAFETY: slot `idx` of our own PROT_NONE reservation, unreferenced.
                    unsafe { sys::mmap_fixed_shared(va.base.add(idx * ps), ps, f.as_fd(), 0)? };
                    files.push(f);
                    idx += 1;
                }
            }
        }
        mem.base = va.base;
        mem.len = len;
        mem.mapped = true;
        std::mem::forget(va);

        // Fault in and pin.
        if sys::mlock(mem.base, len).is_err() {
            for i in 0..total_pages {
                // SAFETY: the page is mapped read-write above; a volatile read faults it in
                // without changing it.
                unsafe { std::ptr::read_volatile(mem.base.add(i * ps).as_ptr::<u8>()) };
            }
        }

        // Node of each page; sort pages by node so each node's pages are one run.
        let mut nodes: Vec<u32> = Vec::with_capacity(total_pages as usize);
        for i in 0..total_pages {
            nodes.push(sys::node_of_addr(mem.base.add(i * ps))?.unwrap_or(0));
        }
        let mut order: Vec<usize> = (0..total_pages as usize).collect();
        order.sort_by_key(|&i| nodes[i]);
        if order.iter().enumerate().any(|(slot, &i)| slot != i) {
            // Re-map file `i` at slot `slot`. The data stays in the files, so mapping a
            // file again elsewhere keeps its (pinned) page and contents.
            for (slot, &i) in order.iter().enumerate() {
                // SAFETY: inside our area; nothing references EAL memory yet.
                unsafe {
                    sys::mmap_fixed_shared(mem.base.add(slot as u64 * ps), ps, files[i].as_fd(), 0)?
                };
            }
            let _ = sys::mlock(mem.base, len);
            let paths = mem.files.clone();
            mem.files = order.iter().map(|&i| paths[i].clone()).collect();
            nodes = order.iter().map(|&i| nodes[i]).collect();
        }
        drop(files);

        // IOVA.
        let iova_mode = req.iova_mode.unwrap_or(IovaMode::Va);
        let iovas: Vec<Iova> = match iova_mode {
            IovaMode::Va => (0..total_pages)
                .map(|i| Iova(mem.base.0 + i * ps))
                .collect(),
            IovaMode::Pa => {
                let pm = req.roots.proc.join("self/pagemap");
                let f =
                    File::open(&pm).map_err(|e| Error::io("open", pm.display().to_string(), e))?;
                let mut v = Vec::with_capacity(total_pages as usize);
                for i in 0..total_pages {
                    match virt_to_phys(&f, mem.base.add(i * ps))? {
                        Some(pa) => v.push(pa),
                        None => {
                            return Err(Error::NoDma {
                                why: "--iova-mode pa needs physical addresses, but /proc/self/pagemap shows none (needs CAP_SYS_ADMIN; run as root or use --iova-mode va)".into(),
                            })
                        }
                    }
                }
                v
            }
        };
        mem.iova_mode = iova_mode;

        // Memsegs and lists (runs of equal node).
        for i in 0..total_pages as usize {
            let virt = mem.base.add(i as u64 * ps);
            mem.memsegs.push(Memseg {
                virt,
                iova: iovas[i],
                len: ps,
                page_size: ps,
                socket: nodes[i],
                _rsvd: 0,
            });
        }
        let mut start = 0usize;
        for i in 1..=mem.memsegs.len() {
            if i == mem.memsegs.len() || nodes[i] != nodes[start] {
                mem.lists.push(MemsegList {
                    base: mem.memsegs[start].virt,
                    len: (i - start) as u64 * ps,
                    page_size: ps,
                    socket: nodes[start],
                    segs: start..i,
                    backing: Backing::Hugetlbfs {
                        dir: mount.path.clone(),
                        stem: stem.clone(),
                        first: start as u32,
                        count: (i - start) as u32,
                    },
                });
                start = i;
            }
        }
        if mem.lists.len() > crate::config::MAX_MEMSEG_LISTS {
            return Err(Error::NoHugepages {
                why: "pages spread over too many NUMA nodes".into(),
            });
        }
        // Files were re-ordered above, rename so `<stem><n>` backs slot n (what the
        // shared config records for secondaries).
        if mem
            .files
            .iter()
            .enumerate()
            .any(|(n, p)| *p != mount.path.join(format!("{stem}{n}")))
        {
            let tmp: Vec<PathBuf> = mem.files.iter().map(|p| p.with_extension("tmp")).collect();
            for (a, b) in mem.files.iter().zip(&tmp) {
                fs::rename(a, b).map_err(|e| Error::io("rename", a.display().to_string(), e))?;
            }
            mem.files = tmp;
            let mut fin = Vec::new();
            for (n, a) in mem.files.iter().enumerate() {
                let b = mount.path.join(format!("{stem}{n}"));
                fs::rename(a, &b).map_err(|e| Error::io("rename", a.display().to_string(), e))?;
                fin.push(b);
            }
            mem.files = fin;
        }
        Ok(mem)
    }

    /// Secondary: map the primary's files at the primary's addresses (module doc). On
    /// error nothing stays mapped. Never creates, resizes or unlinks a file.
    pub fn attach(req: &AttachRequest) -> Result<Memory> {
        let bad = |why: String| Error::AttachFailed {
            what: "memory".into(),
            why,
        };
        if req.len == 0 || req.lists.is_empty() {
            return Err(bad("the primary recorded no memory".into()));
        }
        for l in &req.lists {
            if l.base.0 < req.base.0 || l.base.0 + l.len > req.base.0 + req.len || l.page_size == 0
            {
                return Err(bad(format!(
                    "memseg list at {} (+{:#x}) lies outside the area",
                    l.base, l.len
                )));
            }
        }
        sys::mmap_reserve_exact(req.base, req.len)?;
        let va = VaReservation {
            base: req.base,
            len: req.len,
        };
        let mut paths = Vec::new();
        for l in &req.lists {
            match &l.backing {
                Backing::Shm { path, offset } => {
                    let f = open_existing(path)?;
                    let size = f
                        .metadata()
                        .map_err(|e| Error::io("stat", path.display().to_string(), e))?
                        .len();
                    if size < offset + l.len {
                        return Err(bad(format!(
                            "{} is {size} bytes, the primary mapped {:#x}",
                            path.display(),
                            offset + l.len
                        )));
                    }
                    // SAFETY: inside our fresh PROT_NONE reservation, unreferenced.
                    unsafe { sys::mmap_fixed_shared(l.base, l.len, f.as_fd(), *offset)? };
                    paths.push(path.clone());
                }
                Backing::Hugetlbfs {
                    dir,
                    stem,
                    first,
                    count,
                } => {
                    if u64::from(*count) * l.page_size != l.len {
                        return Err(bad(format!(
                            "{count} pages of {} do not make {:#x} bytes",
                            l.page_size, l.len
                        )));
                    }
                    for k in 0..u64::from(*count) {
                        let path = dir.join(format!("{stem}{}", u64::from(*first) + k));
                        let f = open_existing(&path)?;
                        // SAFETY: slot `k` of the list, inside our reservation, unreferenced.
                        unsafe {
                            sys::mmap_fixed_shared(
                                l.base.add(k * l.page_size),
                                l.page_size,
                                f.as_fd(),
                                0,
                            )?
                        };
                        paths.push(path);
                    }
                }
            }
        }
        std::mem::forget(va);
        if !req.no_huge {
            // Pin as the primary does; a refusal only costs the pinning (pages of a
            // hugetlbfs file do not move anyway).
            let _ = sys::mlock(req.base, req.len);
        }
        Ok(Memory {
            base: req.base,
            len: req.len,
            lists: req.lists.clone(),
            memsegs: req.memsegs.clone(),
            iova_mode: req.iova_mode,
            no_huge: req.no_huge,
            files: paths,
            mapped: true,
            owns_files: false,
        })
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

fn open_existing(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::AttachFailed {
            what: format!("memory file {}", path.display()),
            why: e.to_string(),
        })
}

fn create_excl(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("create", path.display().to_string(), e))
}

/// Physical address of `va` from an open pagemap, `None` if not present or hidden
/// (PFN 0 without CAP_SYS_ADMIN).
fn virt_to_phys(pagemap: &File, va: VirtAddr) -> Result<Option<Iova>> {
    let bps = sys::base_page_size();
    let mut b = [0u8; 8];
    pagemap
        .read_exact_at(&mut b, (va.0 / bps) * 8)
        .map_err(|e| Error::io("read", format!("pagemap entry of {va}"), e))?;
    let ent = u64::from_ne_bytes(b);
    let present = ent >> 63 & 1 == 1;
    let pfn = ent & ((1u64 << 55) - 1);
    if !present || pfn == 0 {
        return Ok(None);
    }
    Ok(Some(Iova(pfn * bps + va.0 % bps)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempDir;

    #[test]
    fn stale_name_matching() {
        assert!(is_stale_huge("fpmap_0", "fp"));
        assert!(is_stale_huge("fpmap_123", "fp"));
        assert!(!is_stale_huge("fpmap_", "fp"));
        assert!(!is_stale_huge("fpxmap_1", "fp"));
        assert!(is_stale_huge("xmap_map_3", "xmap_"));
        assert!(!is_stale_huge("xmap_map_3", "x"));
        assert!(is_stale_shm("ferroplane-a-12.mem", "a"));
        assert!(!is_stale_shm("ferroplane-a-1-12.mem", "a"));
        assert!(is_stale_shm("ferroplane-a-1-12.mem", "a-1"));
    }

    #[test]
    fn nohuge_reserve_maps_contiguous_area_and_cleans_up() {
        let t = TempDir::new("mem-nohuge");
        let mut req = MemoryRequest::new("unit-nohuge");
        req.no_huge = true;
        req.total = Some(5 << 20);
        req.shm_dir = t.path().to_path_buf();
        let mem = Memory::reserve(&req).unwrap();
        assert_eq!(mem.len(), 6 << 20);
        assert_eq!(mem.base().0 % NOHUGE_SEG, 0);
        assert_eq!(mem.memsegs().len(), 3);
        assert!(!mem.dma_capable());
        let f = t.path().join(shm_name("unit-nohuge", std::process::id()));
        assert!(f.exists());
        // Writable, and the IOVA is the VA.
        let p = mem.base().add(3 << 20).as_ptr::<u64>();
        // SAFETY: inside the mapping we just made, nothing else uses it.
        unsafe { p.write_volatile(0xfeed) };
        assert_eq!(
            mem.virt2iova(mem.base().add(3 << 20)),
            Some(Iova(mem.base().0 + (3 << 20)))
        );
        assert_eq!(mem.virt2iova(VirtAddr(mem.base().0 + mem.len())), None);
        assert!(mem.iova_break(mem.base(), mem.len()).is_none());
        drop(mem);
        assert!(!f.exists());
        assert!(fs::read_dir(t.path()).unwrap().next().is_none());
    }

    #[test]
    fn nohuge_refuses_pa_and_leaves_nothing() {
        let t = TempDir::new("mem-pa");
        let mut req = MemoryRequest::new("unit-pa");
        req.no_huge = true;
        req.iova_mode = Some(IovaMode::Pa);
        req.shm_dir = t.path().to_path_buf();
        assert!(matches!(Memory::reserve(&req), Err(Error::BadArg { .. })));
        assert!(fs::read_dir(t.path()).unwrap().next().is_none());
    }

    #[test]
    fn no_mount_is_no_hugepages() {
        let t = TempDir::new("mem-nomount");
        let r = SysRoots::under(t.path());
        fs::create_dir_all(&r.proc).unwrap();
        fs::write(r.proc.join("mounts"), "proc /proc proc rw 0 0\n").unwrap();
        let mut req = MemoryRequest::new("unit-nm");
        req.roots = r.clone();
        let e = Memory::reserve(&req).unwrap_err();
        assert!(matches!(e, Error::NoHugepages { .. }));
        assert!(
            e.to_string().contains("ferroplane-hugepages --setup 256M"),
            "{e}"
        );
        req.huge_dir = Some(t.path().to_path_buf());
        assert!(matches!(
            Memory::reserve(&req),
            Err(Error::NoHugepages { .. })
        ));
    }

    #[test]
    fn reclaim_removes_only_matching_files() {
        let t = TempDir::new("mem-reclaim");
        let r = SysRoots::under(t.path());
        let huge = t.path().join("huge");
        let shm = t.path().join("shm");
        fs::create_dir_all(&r.proc).unwrap();
        fs::create_dir_all(&huge).unwrap();
        fs::create_dir_all(&shm).unwrap();
        fs::write(
            r.proc.join("mounts"),
            format!("nodev {} hugetlbfs rw,pagesize=2M 0 0\n", huge.display()),
        )
        .unwrap();
        for n in ["pmap_0", "pmap_7", "pmap_x", "qmap_0", "pmap_"] {
            fs::write(huge.join(n), b"").unwrap();
        }
        for n in [
            "ferroplane-p-99.mem",
            "ferroplane-q-99.mem",
            "ferroplane-p-99.memx",
        ] {
            fs::write(shm.join(n), b"").unwrap();
        }
        let mut got = reclaim_stale("p", &r, &shm).unwrap();
        got.sort();
        let mut exp = vec![
            huge.join("pmap_0"),
            huge.join("pmap_7"),
            shm.join("ferroplane-p-99.mem"),
        ];
        exp.sort();
        assert_eq!(got, exp);
        assert!(huge.join("pmap_x").exists() && huge.join("qmap_0").exists());
    }
}
