//! Shared set-up for the blob tests.

#![allow(dead_code)]

pub mod host;

#[path = "../../src/bin/blobstress/block.rs"]
pub mod block;

use blob::{Blobstore, InitOpts, MemDev};

/// A fresh store on a memory device: `mib` MiB, 512-byte blocks, `cluster_kib` KiB
/// clusters.
pub fn mem_store(mib: u64, cluster_kib: u32) -> (MemDev, Blobstore) {
    let dev = MemDev::new(512, mib * 2048);
    let bs = Blobstore::init(
        Box::new(dev.clone()),
        &InitOpts {
            cluster_size: cluster_kib * 1024,
            ..Default::default()
        },
    )
    .unwrap();
    (dev, bs)
}

/// A deterministic pattern for unit `u` of blob `tag`.
pub fn pattern(tag: u8, len: usize, seed: u64) -> Vec<u8> {
    block::xorshift_bytes(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(tag),
        len,
    )
}

/// A small deterministic random generator (xorshift).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Every allocated cluster belongs to exactly one blob and is marked used; every used
/// cluster outside the metadata area belongs to some blob. Returns the clusters owned.
pub fn check_accounting(bs: &Blobstore) -> usize {
    let mut owner = std::collections::HashMap::new();
    for id in bs.blob_ids() {
        for c in bs
            .blob_clusters(id)
            .unwrap()
            .into_iter()
            .filter(|&c| c != 0)
        {
            assert!(owner.insert(c, id).is_none(), "cluster {c} owned twice");
            assert!(
                bs.used_clusters().get(c),
                "cluster {c} of {id:#x} not marked used"
            );
        }
    }
    for c in bs.used_clusters().iter_set() {
        assert!(
            c < bs.md_clusters() || owner.contains_key(&c),
            "cluster {c} leaked"
        );
    }
    owner.len()
}
