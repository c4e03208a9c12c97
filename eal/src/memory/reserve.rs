//! The primary's reservation: hugepage files (or one `--no-huge` shm file) created,
//! mapped over one reserved virtual area, locked, sorted into per-socket memseg lists.

use std::fs::{self, File};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::addr::{Iova, VirtAddr};
use crate::args::IovaMode;
use crate::error::{Error, Result};
use crate::hugepage::{HugeMount, HugepageInfo, SysRoots};
use crate::sys::mem as sys;

use super::area::{
    Backing, Memory, Memseg, MemsegList, VaReservation, DEFAULT_BASE_VIRTADDR, DEFAULT_MEM,
    NOHUGE_PAGE, NOHUGE_SEG,
};
use super::files::{create_committed, huge_stem, shm_name};
use super::MAX_MEMSEG_LISTS;

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

/// Restores the default memory policy when dropped.
struct PolicyGuard(bool);
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
        let mut mem = Memory::unmapped(true);
        let f = create_committed(&path, len, &mut mem.files, || Error::NotEnoughMemory {
            kind: "shared (--no-huge)",
            requested: len,
            available: 0,
        })?;
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

        let mut mem = Memory::unmapped(false);
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
                    let f =
                        create_committed(&path, ps, &mut mem.files, || Error::NotEnoughMemory {
                            kind: "hugepage",
                            requested: len,
                            available: idx * ps,
                        })?;
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
        if mem.lists.len() > MAX_MEMSEG_LISTS {
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

impl Drop for PolicyGuard {
    fn drop(&mut self) {
        if self.0 {
            let _ = sys::set_mempolicy(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::tempdir::TempDir;

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
}
