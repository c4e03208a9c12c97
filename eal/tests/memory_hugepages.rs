//! Real hugepages (needs root): a private hugetlbfs mount with free 2 MiB pages
//! ([`common::HugePages`]), the EAL on it in PA and VA mode, memsegs / IOVAs / files
//! checked, then the system restored. Skips (counted, see `testkit::skip`) when not root
//! or when the kernel cannot give the pages.

use std::fs;

use common::{argv, files_starting as files_with, HugePages, PS};
use eal::args::IovaMode;
use eal::hugepage::HugepageInfo;
use eal::{Eal, Error, MemzoneFlags};

mod common;

/// Free 2 MiB pages the test uses (8 for PA mode plus room).
const PAGES: u64 = 16;

#[test]
fn real_hugepages_pa_and_va() {
    let Some(hp) = HugePages::take("real_hugepages_pa_and_va", PAGES) else {
        return;
    };
    let (roots, mnt) = (&hp.roots, &hp.mnt);
    let info = HugepageInfo::discover(roots).unwrap();
    assert_eq!(
        info.mount_at(mnt).map(|m| m.page_size),
        Some(PS),
        "our mount is discovered"
    );
    let free_before = info.size(PS).unwrap().free;
    assert!(free_before >= PAGES);

    let p = format!("t-huge-{}", std::process::id());
    let mnt_s = &hp.dir();

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
    let files = files_with(mnt, &p);
    assert_eq!(files.len(), 8, "{files:?}");
    assert!(
        !files.contains(&format!("{p}map_99")),
        "stale file reclaimed"
    );
    assert!(files.iter().all(|f| f.starts_with(&format!("{p}map_"))));
    let free_during = HugepageInfo::discover(roots)
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
    assert!(files_with(mnt, &p).is_empty(), "page files removed on drop");
    assert_eq!(
        HugepageInfo::discover(roots)
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
    assert!(files_with(mnt, &p).is_empty());

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

    let (roots, mnt) = (roots.clone(), mnt.clone());
    drop(hp);
    let after = HugepageInfo::discover(&roots).unwrap();
    assert!(after.mount_at(&mnt).is_none(), "unmounted");
    assert!(!mnt.exists(), "mount point removed");
}
