//! Real hugepages (needs root): reserve 2 MiB pages, mount a private hugetlbfs, run the
//! EAL on it in PA and VA mode, check memsegs / IOVAs / files, then restore the system.
//! Serialised against other hugepage tests by a lock file; skips (printing why) when not
//! root or when the kernel cannot give the pages.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use eal::args::IovaMode;
use eal::hugepage::{self, HugepageInfo, SysRoots};
use eal::{Eal, Error, MemzoneFlags};

const PS: u64 = 2 << 20;
const EXTRA: u64 = 16;

struct Restore {
    roots: SysRoots,
    orig_nr: u64,
    mnt: PathBuf,
    mounted: bool,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = eal::sys::mem::umount(&self.mnt) {
                eprintln!("restore: {e}");
            }
        }
        let _ = fs::remove_dir(&self.mnt);
        if let Err(e) = hugepage::reserve_pages(&self.roots, PS, None, self.orig_nr) {
            eprintln!("restore nr_hugepages: {e}");
        }
    }
}

fn argv(v: &[&str]) -> Vec<String> {
    std::iter::once("test")
        .chain(v.iter().copied())
        .map(String::from)
        .collect()
}

fn files_with(dir: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

#[test]
fn real_hugepages_pa_and_va() {
    if eal::sys::mem::geteuid() != 0 {
        println!("SKIP real_hugepages_pa_and_va: needs root to reserve and mount hugepages");
        return;
    }
    let roots = SysRoots::default();
    let info = HugepageInfo::discover(&roots).unwrap();
    let Some(s2) = info.size(PS) else {
        println!("SKIP real_hugepages_pa_and_va: kernel has no 2 MiB hugepages");
        return;
    };
    // Serialise with every other test that changes the hugepage pool.
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/ferroplane-hugepage-tests.lock")
        .unwrap();
    // SAFETY: flock on a valid fd; blocking until the other test is done.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);

    let orig_nr = HugepageInfo::discover(&roots).unwrap().size(PS).unwrap().nr;
    let _ = s2;
    let mnt = std::env::temp_dir().join(format!("fp-huge-{}", std::process::id()));
    let mut restore = Restore {
        roots: roots.clone(),
        orig_nr,
        mnt: mnt.clone(),
        mounted: false,
    };
    if let Err(e) = hugepage::reserve_pages(&roots, PS, None, orig_nr + EXTRA) {
        println!("SKIP real_hugepages_pa_and_va: kernel would not grow the 2 MiB pool: {e}");
        return;
    }
    hugepage::mount(&roots, &mnt, Some(PS)).unwrap();
    restore.mounted = true;
    let info = HugepageInfo::discover(&roots).unwrap();
    assert_eq!(
        info.mount_at(&mnt).map(|m| m.page_size),
        Some(PS),
        "our mount is discovered"
    );
    let free_before = info.size(PS).unwrap().free;
    assert!(free_before >= EXTRA);

    let p = format!("t-huge-{}", std::process::id());
    let mnt_s = mnt.to_str().unwrap();

    // A dead primary's leftover page file is reclaimed at start.
    fs::write(mnt.join(format!("{p}map_99")), b"").unwrap();

    // ---- PA mode ----
    let (e, _) = Eal::init(&argv(&[
        "--huge-dir",
        mnt_s,
        "-m",
        "16",
        "--iova-mode",
        "pa",
        "--no-pci",
        "--file-prefix",
        &p,
    ]))
    .unwrap();
    assert!(!e.memory().no_huge());
    assert!(e.memory().dma_capable());
    assert_eq!(e.memory().iova_mode(), IovaMode::Pa);
    assert_eq!(e.memory().len(), 16 << 20);
    assert_eq!(e.memory().base().0 % PS, 0);
    let segs = e.memory().memsegs().to_vec();
    assert_eq!(segs.len(), 8);
    let mut iovas = std::collections::HashSet::new();
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(s.page_size, PS);
        assert_eq!(s.len, PS);
        assert_eq!(
            s.virt,
            e.memory().base().add(i as u64 * PS),
            "one contiguous VA area"
        );
        assert!(s.iova.is_valid() && s.iova.0 != 0, "PA of page {i} known");
        assert_eq!(s.iova.0 % PS, 0, "hugepage PA is page aligned");
        assert!(iovas.insert(s.iova.0), "distinct physical pages");
        assert_eq!(
            e.memory().virt2iova(s.virt.add(4097)),
            Some(s.iova.add(4097))
        );
    }
    let files = files_with(&mnt, &p);
    assert_eq!(files.len(), 8, "{files:?}");
    assert!(
        !files.contains(&format!("{p}map_99")),
        "stale file reclaimed"
    );
    assert!(files.iter().all(|f| f.starts_with(&format!("{p}map_"))));
    let free_during = HugepageInfo::discover(&roots)
        .unwrap()
        .size(PS)
        .unwrap()
        .free;
    assert_eq!(free_during, free_before - 8, "8 pages taken from the pool");

    // DMA memzone: IOVA-contiguous by construction; check against the memsegs.
    let z = e
        .memzones()
        .reserve("dma", 64 << 10, None, MemzoneFlags::DMA)
        .unwrap();
    assert!(z.is_iova_contig());
    assert_eq!(z.iova(), e.memory().virt2iova(z.addr()).unwrap());
    assert_eq!(
        e.memory().virt2iova(z.addr().add(z.len() - 1)),
        Some(z.iova().add(z.len() - 1))
    );
    // A 3 MiB contiguous zone spans two pages: possible only if two adjacent pages are
    // physically adjacent.
    let adjacent = segs.windows(2).any(|w| w[1].iova.0 == w[0].iova.0 + PS);
    match e
        .memzones()
        .reserve("big-contig", 3 << 20, None, MemzoneFlags::IOVA_CONTIG)
    {
        Ok(b) => {
            assert!(adjacent);
            assert!(b.is_iova_contig());
            let first = e.memory().virt2iova(b.addr()).unwrap();
            let last = e.memory().virt2iova(b.addr().add(b.len() - 1)).unwrap();
            assert_eq!(last.0 - first.0, b.len() - 1, "physically contiguous");
        }
        Err(Error::OutOfMemory { .. }) => {
            assert!(!adjacent, "an adjacent pair exists but was not used")
        }
        Err(other) => panic!("unexpected {other}"),
    }
    let (ptr, iova) = e.heap().malloc_dma(10_000, 4096, None).unwrap();
    assert_eq!(ptr.as_ptr() as u64 % 4096, 0);
    assert_eq!(
        Some(iova),
        e.memory().virt2iova(eal::VirtAddr::from_ptr(ptr.as_ptr()))
    );
    // SAFETY: ours, freed once.
    unsafe { e.heap().free(ptr.as_ptr()).unwrap() };
    e.heap().check().unwrap();
    drop(e);
    assert!(
        files_with(&mnt, &p).is_empty(),
        "page files removed on drop"
    );
    assert_eq!(
        HugepageInfo::discover(&roots)
            .unwrap()
            .size(PS)
            .unwrap()
            .free,
        free_before,
        "pages returned"
    );

    // ---- VA mode (default) ----
    let (e, _) = Eal::init(&argv(&[
        "--huge-dir",
        mnt_s,
        "-m",
        "8",
        "--no-pci",
        "--file-prefix",
        &p,
    ]))
    .unwrap();
    assert_eq!(e.memory().iova_mode(), IovaMode::Va);
    for s in e.memory().memsegs() {
        assert_eq!(s.iova.0, s.virt.0);
    }
    drop(e);

    // ---- more than the pool has: refused, nothing left ----
    let err = Eal::init(&argv(&[
        "--huge-dir",
        mnt_s,
        "-m",
        "100000",
        "--no-pci",
        "--file-prefix",
        &p,
    ]))
    .unwrap_err();
    assert!(matches!(err, Error::NotEnoughMemory { .. }), "{err}");
    assert!(files_with(&mnt, &p).is_empty());

    // ---- a directory that is not hugetlbfs ----
    let err = Eal::init(&argv(&[
        "--huge-dir",
        "/tmp",
        "-m",
        "8",
        "--no-pci",
        "--file-prefix",
        &p,
    ]))
    .unwrap_err();
    assert!(matches!(err, Error::NoHugepages { .. }), "{err}");

    drop(restore);
    let after = HugepageInfo::discover(&roots).unwrap();
    assert_eq!(after.size(PS).unwrap().nr, orig_nr, "pool restored");
    assert!(after.mount_at(&mnt).is_none(), "unmounted");
    drop(lock);
}
