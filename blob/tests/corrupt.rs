//! Damaged stores: each damage is a load error naming it, never a panic, never a write
//! to the device; and a deterministic mutation fuzz over metadata pages and the super
//! block.

mod common;

use blob::format::desc::{Descriptor, Extent};
use blob::format::page::MdPage;
use blob::format::super_block::SuperBlock;
use blob::format::{blobid_to_page, PAGE_SIZE};
use blob::{BlobOpts, Blobstore, LoadOpts, MemDev};
use common::{mem_store, pattern, Rng};

/// A clean store with: a thick extent-table blob, two RLE blobs, a thin blob, a blob
/// with a three-page chain, a snapshot and a clone.
fn sample() -> (MemDev, Vec<u64>) {
    let (dev, mut bs) = mem_store(4, 16);
    let mut ids = Vec::new();
    ids.push(
        bs.create_blob(&BlobOpts {
            num_clusters: 3,
            ..Default::default()
        })
        .unwrap(),
    );
    for _ in 0..2 {
        ids.push(
            bs.create_blob(&BlobOpts {
                num_clusters: 2,
                use_extent_table: false,
                ..Default::default()
            })
            .unwrap(),
        );
    }
    let thin = bs
        .create_blob(&BlobOpts {
            num_clusters: 50,
            thin_provision: true,
            ..Default::default()
        })
        .unwrap();
    let b = bs.open_blob(thin).unwrap();
    bs.write(&b, 300, &pattern(1, 1024, 1)).unwrap();
    bs.close_blob(b).unwrap();
    ids.push(thin);
    let xattrs: Vec<(String, Vec<u8>)> = (0..25).map(|i| (format!("k{i}"), vec![7; 300])).collect();
    ids.push(
        bs.create_blob(&BlobOpts {
            num_clusters: 1,
            xattrs,
            ..Default::default()
        })
        .unwrap(),
    );
    let snap = bs.create_snapshot(ids[0], &[]).unwrap();
    ids.push(snap);
    ids.push(bs.create_clone(snap, &[]).unwrap());
    bs.unload().unwrap();
    (dev, ids)
}

fn super_of(dev: &MemDev) -> SuperBlock {
    SuperBlock::decode(&dev.snapshot()[..PAGE_SIZE]).unwrap()
}

/// Byte offset of metadata page `idx`.
fn md_off(dev: &MemDev, idx: u32) -> usize {
    (super_of(dev).md.0 + idx) as usize * PAGE_SIZE
}

fn rewrite_page(dev: &MemDev, off: usize, f: impl FnOnce(&mut MdPage)) {
    dev.with_bytes(|b| {
        let mut p = MdPage::decode(&b[off..off + PAGE_SIZE]).unwrap();
        f(&mut p);
        b[off..off + PAGE_SIZE].copy_from_slice(&p.encode());
    });
}

/// Load must fail naming `needle` (for the clean and the recovery path when
/// `both`), and the device must be untouched.
fn expect_load_error(dev: &MemDev, needle: &str, both: bool) {
    let before = dev.snapshot();
    let modes: &[bool] = if both { &[false, true] } else { &[false] };
    for &force in modes {
        let r = Blobstore::try_load(
            Box::new(dev.clone()),
            &LoadOpts {
                force_recover: force,
                ..Default::default()
            },
        );
        match r {
            Ok(_) => panic!("load succeeded (force_recover {force}), expected '{needle}'"),
            Err(f) => {
                let m = f.0.to_string();
                assert!(
                    m.contains(needle),
                    "force_recover {force}: '{m}' does not name '{needle}'"
                );
            }
        }
        assert!(
            dev.snapshot() == before,
            "a failed load wrote to the device"
        );
    }
}

#[test]
fn bad_super_block_crc() {
    let (dev, _) = sample();
    dev.with_bytes(|b| b[200] ^= 0x40);
    expect_load_error(&dev, "super block crc", true);
}

#[test]
fn bad_md_page_crc() {
    let (dev, ids) = sample();
    let off = md_off(&dev, blobid_to_page(ids[1]));
    dev.with_bytes(|b| b[off + 100] ^= 1);
    // Clean load reads the blob and names the page; a recovery scan no longer sees
    // that blob's first page at all, so the blob is gone but the store loads.
    expect_load_error(&dev, "metadata page", false);
    let e = Blobstore::try_load(Box::new(dev.clone()), &LoadOpts::default())
        .unwrap_err()
        .0;
    assert!(e.to_string().contains("crc"), "{e}");
}

#[test]
fn broken_next_page_chain() {
    let (dev, ids) = sample();
    let big = ids[4];
    let root = md_off(&dev, blobid_to_page(big));
    // Point the root's next at a page that holds nothing (the end of the region).
    let md_len = super_of(&dev).md.1;
    rewrite_page(&dev, root, |p| p.next = md_len - 1);
    expect_load_error(&dev, "broken next-page chain", true);
    // And at a page outside the metadata region.
    rewrite_page(&dev, root, |p| p.next = md_len + 10);
    expect_load_error(&dev, "broken next-page chain", true);
}

#[test]
fn overlapping_extents() {
    let (dev, ids) = sample();
    let (a, b) = (ids[1], ids[2]);
    let mut bs_clusters = Vec::new();
    {
        let (bs, _) = Blobstore::load(Box::new(dev.clone()), &LoadOpts::default()).unwrap();
        bs_clusters.push(bs.blob_clusters(a).unwrap());
        bs.unload().unwrap();
    }
    let target = bs_clusters[0][0];
    let off = md_off(&dev, blobid_to_page(b));
    rewrite_page(&dev, off, |p| {
        let descs = Descriptor::parse_area(&p.descriptors).unwrap();
        let mut area = Vec::new();
        for d in descs {
            let d = match d {
                Descriptor::ExtentRle(_) => Descriptor::ExtentRle(vec![Extent {
                    cluster_idx: target,
                    length: 2,
                }]),
                o => o,
            };
            area.extend(d.encode());
        }
        p.descriptors.fill(0);
        p.descriptors[..area.len()].copy_from_slice(&area);
    });
    expect_load_error(&dev, "overlapping extents", true);
}

#[test]
fn mask_shorter_than_the_device() {
    let (dev, _) = sample();
    let sb = super_of(&dev);
    let off = sb.used_cluster_mask.0 as usize * PAGE_SIZE;
    let total = (sb.size / u64::from(sb.cluster_size)) as u32;
    dev.with_bytes(|b| b[off + 1..off + 5].copy_from_slice(&(total - 8).to_le_bytes()));
    expect_load_error(&dev, "shorter than the device", false);
}

/// Mutate metadata pages and the super block at random (deterministic seeds), with and
/// without fixing the CRC so the damage reaches the descriptor parser; a load must
/// either fail cleanly without writing or give a store that reads and unloads.
#[test]
fn fuzz_metadata_pages() {
    let (dev, _) = sample();
    let image = dev.snapshot();
    let sb = super_of(&dev);
    let used: Vec<u32> = {
        let (bs, _) = Blobstore::load(Box::new(dev.clone()), &LoadOpts::default()).unwrap();
        let v = bs.used_md_pages().iter_set().collect();
        bs.unload().unwrap();
        v
    };
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut ok, mut failed) = (0, 0);
    for round in 0..400 {
        let d = MemDev::from_bytes(512, image.clone());
        let target = if round % 8 == 0 {
            0
        } else {
            (sb.md.0 + used[rng.below(used.len() as u64) as usize]) as usize * PAGE_SIZE
        };
        let fix_crc = rng.below(4) != 0;
        d.with_bytes(|b| {
            let page = &mut b[target..target + PAGE_SIZE];
            for _ in 0..1 + rng.below(6) {
                let at = if rng.below(2) == 0 {
                    rng.below(128) as usize
                } else {
                    rng.below(PAGE_SIZE as u64 - 4) as usize
                };
                match rng.below(3) {
                    0 => page[at] ^= 1 << rng.below(8),
                    1 => page[at] = rng.next() as u8,
                    _ => page[at] = [0, 0xFF, 1, 5, 6][rng.below(5) as usize],
                }
            }
            if fix_crc {
                let c = crc32c::crc32c(&page[..PAGE_SIZE - 4]);
                page[PAGE_SIZE - 4..].copy_from_slice(&c.to_le_bytes());
            }
        });
        let before = d.snapshot();
        let force = rng.below(2) == 0;
        match Blobstore::try_load(
            Box::new(d.clone()),
            &LoadOpts {
                force_recover: force,
                ..Default::default()
            },
        ) {
            Ok((mut bs, _)) => {
                ok += 1;
                for id in bs.blob_ids() {
                    let info = bs.blob_info(id).unwrap();
                    let units = (info.num_clusters * bs.io_units_per_cluster()).min(256);
                    let b = bs.open_blob(id).unwrap();
                    let mut buf = vec![0u8; units as usize * 512];
                    bs.read(&b, 0, &mut buf).unwrap();
                    bs.close_blob(b).unwrap();
                }
                bs.unload().unwrap();
            }
            Err(f) => {
                let e = &f.0;
                failed += 1;
                assert!(!e.to_string().is_empty());
                assert!(
                    d.snapshot() == before,
                    "round {round}: a failed load wrote ({e})"
                );
            }
        }
    }
    eprintln!("fuzz: {ok} loads succeeded, {failed} refused");
    assert!(
        failed > 50,
        "the mutations should break many loads ({failed})"
    );
    assert!(ok > 10, "some mutations are harmless ({ok})");
}
