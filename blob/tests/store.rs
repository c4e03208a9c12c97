//! The blobstore on a memory device: init, load (clean and recovered), blobs, xattrs,
//! I/O, thin provisioning, snapshots and clones.

mod common;

use blob::{BlobOpts, Blobstore, LoadKind, LoadOpts, MemDev};
use common::{check_accounting, mem_store, pattern};

fn reload(dev: &MemDev) -> (Blobstore, LoadKind) {
    Blobstore::load(Box::new(dev.clone()), &LoadOpts::default()).unwrap()
}

#[test]
fn init_unload_load_clean() {
    let (dev, bs) = mem_store(16, 64);
    let info = bs.info();
    assert_eq!(info.cluster_size, 64 * 1024);
    assert_eq!(info.io_unit_size, 512);
    assert_eq!(info.total_clusters, 256);
    // Right after init the super block says dirty (as SPDK's init leaves it).
    let (bs2, kind) = reload(&dev);
    assert_eq!(kind, LoadKind::Recovered);
    drop(bs2);
    let bs = bs;
    bs.unload().unwrap();
    let (bs, kind) = reload(&dev);
    assert_eq!(kind, LoadKind::Clean);
    assert_eq!(bs.info().free_clusters, info.free_clusters);
    assert_eq!(bs.blob_ids(), Vec::<u64>::new());
}

#[test]
fn blobs_xattrs_io_and_resize() {
    let (dev, mut bs) = mem_store(16, 64);
    let free0 = bs.info().free_clusters;
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: 4,
            xattrs: vec![("name".into(), b"first\0".to_vec())],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(id >> 32, 1, "blob ids carry the high bit");
    assert_eq!(bs.info().free_clusters, free0 - 4);
    let b = bs.open_blob(id).unwrap();
    let data = pattern(1, 3 * 512, 7);
    bs.write(&b, 126, &data).unwrap(); // crosses the first cluster boundary (128 units)
    let mut back = vec![0u8; 3 * 512];
    bs.read(&b, 126, &mut back).unwrap();
    assert_eq!(back, data);
    bs.set_xattr(&b, "color", b"blue").unwrap();
    bs.resize(&b, 10).unwrap();
    bs.sync_md(id).unwrap();
    assert_eq!(bs.info().free_clusters, free0 - 10);
    // Out of range and partial units are refused.
    assert!(bs.read(&b, 10 * 128, &mut [0u8; 512]).is_err());
    assert!(bs.write(&b, 0, &[0u8; 100]).is_err());
    bs.close_blob(b).unwrap();
    let id2 = bs
        .create_blob(&BlobOpts {
            num_clusters: 1,
            use_extent_table: false,
            ..Default::default()
        })
        .unwrap();
    bs.unload().unwrap();

    let (mut bs, kind) = reload(&dev);
    assert_eq!(kind, LoadKind::Clean);
    assert_eq!(bs.blob_ids(), vec![id, id2]);
    let info = bs.blob_info(id).unwrap();
    assert_eq!(info.num_clusters, 10);
    assert_eq!(
        info.xattr_names,
        vec!["name".to_string(), "color".to_string()]
    );
    assert_eq!(bs.get_xattr(id, "color").unwrap().unwrap(), b"blue");
    let b = bs.open_blob(id).unwrap();
    let mut back = vec![0u8; 3 * 512];
    bs.read(&b, 126, &mut back).unwrap();
    assert_eq!(back, data);
    bs.remove_xattr(&b, "color").unwrap();
    assert!(bs.remove_xattr(&b, "color").is_err());
    bs.resize(&b, 2).unwrap();
    bs.close_blob(b).unwrap();
    check_accounting(&bs);
    assert!(bs.delete_blob(id2).is_ok());
    assert_eq!(bs.info().free_clusters, free0 - 2);
    check_accounting(&bs);
    bs.unload().unwrap();
    let (bs, _) = reload(&dev);
    assert_eq!(bs.blob_ids(), vec![id]);
    assert_eq!(bs.get_xattr(id, "color").unwrap(), None);
    check_accounting(&bs);
}

#[test]
fn thin_blob_allocates_on_first_write_and_reads_zeros() {
    let (dev, mut bs) = mem_store(16, 64);
    let free0 = bs.info().free_clusters;
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: 100,
            thin_provision: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(bs.info().free_clusters, free0);
    let b = bs.open_blob(id).unwrap();
    let mut z = vec![0xFFu8; 1024];
    bs.read(&b, 5000, &mut z).unwrap();
    assert!(z.iter().all(|&x| x == 0));
    let d = pattern(3, 512, 1);
    bs.write(&b, 99 * 128 + 5, &d).unwrap();
    assert_eq!(bs.info().free_clusters, free0 - 1);
    assert_eq!(bs.blob_info(id).unwrap().allocated_clusters, 1);
    // The rest of the new cluster reads as zeros.
    let mut around = vec![0xFFu8; 128 * 512];
    bs.read(&b, 99 * 128, &mut around).unwrap();
    assert!(around[..5 * 512].iter().all(|&x| x == 0));
    assert_eq!(&around[5 * 512..6 * 512], &d[..]);
    bs.close_blob(b).unwrap();
    // Allocation was synced with the write: a recovery load sees it.
    let (mut bs2, kind) = reload(&dev);
    assert_eq!(kind, LoadKind::Recovered);
    let b2 = bs2.open_blob(id).unwrap();
    let mut back = vec![0u8; 512];
    bs2.read(&b2, 99 * 128 + 5, &mut back).unwrap();
    assert_eq!(back, d);
    check_accounting(&bs2);
}

#[test]
fn many_xattrs_span_several_pages_and_big_blobs_use_several_extent_pages() {
    let (dev, mut bs) = mem_store(64, 16);
    let xattrs: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("key{i:03}"), vec![i as u8; 300]))
        .collect();
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: 1500,
            xattrs: xattrs.clone(),
            ..Default::default()
        })
        .unwrap();
    let rle = bs
        .create_blob(&BlobOpts {
            num_clusters: 700,
            thin_provision: true,
            use_extent_table: false,
            ..Default::default()
        })
        .unwrap();
    let b = bs.open_blob(rle).unwrap();
    for i in (0..700).step_by(2) {
        bs.write(&b, i * 32, &pattern(9, 512, i)).unwrap();
    }
    bs.close_blob(b).unwrap();
    assert!(bs.blob_info(id).unwrap().md_pages >= 3);
    assert!(
        bs.blob_info(rle).unwrap().md_pages >= 2,
        "350 RLE runs need two pages"
    );
    let before = (
        bs.blob_clusters(id).unwrap(),
        bs.blob_clusters(rle).unwrap(),
    );
    bs.unload().unwrap();
    for force in [false, true] {
        let (bs, _) = Blobstore::load(
            Box::new(dev.clone()),
            &LoadOpts {
                force_recover: force,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            (
                bs.blob_clusters(id).unwrap(),
                bs.blob_clusters(rle).unwrap()
            ),
            before
        );
        for (n, v) in &xattrs {
            assert_eq!(bs.get_xattr(id, n).unwrap().as_ref(), Some(v));
        }
        check_accounting(&bs);
    }
}

#[test]
fn snapshot_clone_inflate_decouple_delete() {
    let (dev, mut bs) = mem_store(16, 64);
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: 4,
            ..Default::default()
        })
        .unwrap();
    let b = bs.open_blob(id).unwrap();
    let a = pattern(1, 4 * 128 * 512, 1);
    bs.write(&b, 0, &a).unwrap();
    let snap = bs.create_snapshot(id, &[]).unwrap();
    let si = bs.blob_info(snap).unwrap();
    assert!(si.read_only);
    assert_eq!(si.allocated_clusters, 4);
    let bi = bs.blob_info(id).unwrap();
    assert!(bi.thin);
    assert_eq!(bi.allocated_clusters, 0);
    assert_eq!(bi.parent, Some(snap));
    // The blob reads through; its first write copies the cluster up.
    let mut back = vec![0u8; a.len()];
    bs.read(&b, 0, &mut back).unwrap();
    assert_eq!(back, a);
    let w = pattern(2, 512, 2);
    bs.write(&b, 130, &w).unwrap();
    assert_eq!(bs.blob_info(id).unwrap().allocated_clusters, 1);
    let mut expect = a.clone();
    expect[130 * 512..131 * 512].copy_from_slice(&w);
    bs.read(&b, 0, &mut back).unwrap();
    assert_eq!(back, expect);
    // Snapshots refuse writes; clones read the snapshot.
    let sh = bs.open_blob(snap).unwrap();
    assert!(bs.write(&sh, 0, &w).is_err());
    bs.close_blob(sh).unwrap();
    let clone = bs.create_clone(snap, &[]).unwrap();
    let c = bs.open_blob(clone).unwrap();
    let mut cb = vec![0u8; a.len()];
    bs.read(&c, 0, &mut cb).unwrap();
    assert_eq!(cb, a);
    // Two clones: the snapshot cannot be deleted.
    bs.close_blob(c).unwrap();
    assert!(bs.delete_blob(snap).is_err());
    // Inflate the clone: all its own clusters, no parent.
    bs.inflate(clone).unwrap();
    let ci = bs.blob_info(clone).unwrap();
    assert_eq!(
        (ci.allocated_clusters, ci.parent, ci.thin),
        (4, None, false)
    );
    // Decouple the blob: it copies what it read from the snapshot.
    bs.decouple_parent(id).unwrap();
    assert_eq!(bs.blob_info(id).unwrap().parent, None);
    bs.read(&b, 0, &mut back).unwrap();
    assert_eq!(back, expect);
    bs.close_blob(b).unwrap();
    assert!(bs.delete_blob(snap).is_ok());
    check_accounting(&bs);
    bs.unload().unwrap();
    let (bs, _) = reload(&dev);
    check_accounting(&bs);
}

#[test]
fn deleting_a_snapshot_with_one_clone_merges_it() {
    let (dev, mut bs) = mem_store(16, 64);
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: 3,
            ..Default::default()
        })
        .unwrap();
    let b = bs.open_blob(id).unwrap();
    let a = pattern(5, 3 * 128 * 512, 5);
    bs.write(&b, 0, &a).unwrap();
    let s1 = bs.create_snapshot(id, &[]).unwrap();
    let w = pattern(6, 512, 6);
    bs.write(&b, 0, &w).unwrap();
    let s2 = bs.create_snapshot(id, &[]).unwrap();
    assert_eq!(bs.blob_info(s2).unwrap().parent, Some(s1));
    bs.close_blob(b).unwrap();
    let free = bs.info().free_clusters;
    // s2 has one clone (the blob): deleting it hands its cluster to the blob.
    bs.delete_blob(s2).unwrap();
    assert_eq!(bs.info().free_clusters, free);
    assert_eq!(bs.blob_info(id).unwrap().parent, Some(s1));
    bs.delete_blob(s1).unwrap();
    assert_eq!(bs.blob_info(id).unwrap().parent, None);
    let b = bs.open_blob(id).unwrap();
    let mut back = vec![0u8; a.len()];
    bs.read(&b, 0, &mut back).unwrap();
    let mut expect = a.clone();
    expect[..512].copy_from_slice(&w);
    assert_eq!(back, expect);
    bs.close_blob(b).unwrap();
    check_accounting(&bs);
    bs.unload().unwrap();
    let (bs, _) = reload(&dev);
    assert_eq!(bs.blob_ids(), vec![id]);
    check_accounting(&bs);
}

#[test]
fn read_only_blob_and_super_blob() {
    let (dev, mut bs) = mem_store(8, 64);
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: 1,
            ..Default::default()
        })
        .unwrap();
    let b = bs.open_blob(id).unwrap();
    bs.set_read_only(&b).unwrap();
    bs.sync_md(id).unwrap();
    assert!(bs.write(&b, 0, &[1u8; 512]).is_err());
    assert!(bs.set_xattr(&b, "x", b"y").is_err());
    bs.close_blob(b).unwrap();
    bs.set_super_blob(Some(id)).unwrap();
    assert!(bs.unload().is_ok());
    let (bs, _) = reload(&dev);
    assert_eq!(bs.info().super_blob, Some(id));
    assert!(bs.blob_info(id).unwrap().read_only);
}

#[test]
fn unload_refuses_open_blobs_and_full_store_says_so() {
    let (_dev, mut bs) = mem_store(4, 64);
    let free = bs.info().free_clusters;
    let e = bs
        .create_blob(&BlobOpts {
            num_clusters: u64::from(free) + 1,
            ..Default::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("no free clusters"), "{e}");
    assert_eq!(bs.info().free_clusters, free);
    let id = bs.create_blob(&BlobOpts::default()).unwrap();
    let b = bs.open_blob(id).unwrap();
    let Err(e) = bs.unload() else {
        panic!("unload with an open blob succeeded")
    };
    assert!(e.to_string().contains("is open"), "{e}");
    assert_eq!(b.id(), id);
}

/// A thick blob of `n` clusters with an extent table, its first 8 units written with
/// a pattern of `seed` (returned).
fn written_blob(bs: &mut Blobstore, n: u64, seed: u64) -> (u64, Vec<u8>) {
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: n,
            use_extent_table: true,
            ..Default::default()
        })
        .unwrap();
    let data = pattern(3, 8 * bs.io_unit_size() as usize, seed);
    let h = bs.open_blob(id).unwrap();
    bs.write(&h, 0, &data).unwrap();
    bs.close_blob(h).unwrap();
    (id, data)
}

/// Metadata page 0 is the first blob's first page; once that blob is deleted it is the
/// first free page, but an extent table entry of 0 means "no extent page". A blob
/// synced then must not put an extent page there: its clusters (and their data) would
/// be lost at the next load, clean or recovered.
#[test]
fn an_extent_page_never_lands_on_metadata_page_0() {
    let (dev, mut bs) = mem_store(16, 64);
    let first = bs.create_blob(&BlobOpts::default()).unwrap();
    assert_eq!(first, 1 << 32, "the first blob takes metadata page 0");
    let (id, data) = written_blob(&mut bs, 1, 1);
    let unit = bs.io_unit_size() as usize;
    let h = bs.open_blob(id).unwrap();
    bs.delete_blob(first).unwrap();
    // Growing a thick blob and syncing writes a fresh extent page.
    bs.resize(&h, 2).unwrap();
    bs.sync_md(id).unwrap();
    bs.close_blob(h).unwrap();
    let before = bs.blob_clusters(id).unwrap();
    assert!(before.iter().all(|&c| c != 0));
    // Killed here (no unload): the recovered store has what the sync wrote.
    let (mut bs, kind) = reload(&dev);
    assert_eq!(kind, LoadKind::Recovered);
    assert_eq!(bs.blob_clusters(id).unwrap(), before);
    let h = bs.open_blob(id).unwrap();
    let mut got = vec![0u8; 8 * unit];
    bs.read(&h, 0, &mut got).unwrap();
    assert_eq!(got, data);
    bs.close_blob(h).unwrap();
    check_accounting(&bs);
    bs.unload().unwrap();
    let (bs, kind) = reload(&dev);
    assert_eq!(kind, LoadKind::Clean);
    assert_eq!(bs.blob_clusters(id).unwrap(), before);
}

/// A device whose writes stop after a budget: what a kill leaves on the device.
struct KillDev {
    inner: MemDev,
    writes_left: usize,
}

impl blob::BlockDevice for KillDev {
    fn block_size(&self) -> u32 {
        self.inner.block_size()
    }
    fn num_blocks(&self) -> u64 {
        self.inner.num_blocks()
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> blob::Result<()> {
        self.inner.read(lba, buf)
    }
    fn write(&mut self, lba: u64, buf: &[u8]) -> blob::Result<()> {
        if self.writes_left == 0 {
            return Err(blob::Error::Io {
                what: "write".into(),
                why: "killed".into(),
            });
        }
        self.writes_left -= 1;
        self.inner.write(lba, buf)
    }
}

/// Kill `op` (on blob `a`, snapshot `s` of it) after each number of device writes in
/// turn; after the recovery, delete the clone `a` and recover again: a snapshot the
/// first recovery kept must survive (a leftover "being taken" or "being deleted" mark
/// made the second recovery drop it, with its data).
fn kill_then_delete_clone(op: fn(&mut Blobstore, u64, u64)) {
    for budget in 0..16 {
        let (dev, mut bs) = mem_store(16, 64);
        let (a, data) = written_blob(&mut bs, 2, budget);
        let unit = bs.io_unit_size() as usize;
        let s = bs.create_snapshot(a, &[]).unwrap();
        bs.unload().unwrap();
        let kill = KillDev {
            inner: dev.clone(),
            writes_left: budget as usize,
        };
        let (mut bs, _) = Blobstore::load(Box::new(kill), &LoadOpts::default()).unwrap();
        op(&mut bs, a, s);
        drop(bs);
        let (mut bs, _) = reload(&dev);
        check_accounting(&bs);
        let snaps: Vec<u64> = bs.blob_ids().into_iter().filter(|&i| i != a).collect();
        if bs.blob_info(a).is_ok_and(|i| i.parent.is_some()) {
            bs.delete_blob(a).unwrap();
        }
        drop(bs);
        let (mut bs, _) = reload(&dev);
        check_accounting(&bs);
        for id in snaps {
            assert!(
                bs.blob_ids().contains(&id),
                "budget {budget}: snapshot {id:#x} kept by the first recovery is gone"
            );
            let h = bs.open_blob(id).unwrap();
            let mut got = vec![0u8; 8 * unit];
            bs.read(&h, 0, &mut got).unwrap();
            assert_eq!(got, data, "budget {budget}: data of {id:#x}");
            bs.close_blob(h).unwrap();
        }
    }
}

#[test]
fn a_snapshot_kept_by_recovery_survives_its_clone_being_deleted() {
    // Killed while deleting the first snapshot (merged into its clone).
    kill_then_delete_clone(|bs, _, s| {
        let _ = bs.delete_blob(s);
    });
    // Killed while taking a second snapshot.
    kill_then_delete_clone(|bs, a, _| {
        let _ = bs.create_snapshot(a, &[]);
    });
}
