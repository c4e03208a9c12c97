//! Blobstore benchmarks. Run with `cargo bench -p ferroplane-blob --bench blob`.
//!
//! * `io/*`: 64 KiB sequential and 4 KiB random writes and reads through a blob on a
//!   malloc bdev, beside the same requests on the bare bdev. Both sides go through the
//!   same device path ([`blob::bdev_dev::BdevDev`]: each request submitted on the
//!   framework's app thread, the caller waiting), so the ratio is the blobstore's cost.
//! * `lvol/*`: the same requests through an lvol bdev (its data path on the
//!   submitting framework thread, [`blob::lvol`]) beside the bare bdev, both opened
//!   through the bdev layer the same way.
//! * `thin/*`: a 4 KiB write to a thin blob's unallocated cluster (take a cluster,
//!   zero-fill it, sync the metadata) beside a write to an allocated one.
//! * `load/*`: loading a store of 10,000 blobs (in memory), clean (masks read) and
//!   dirty (every metadata page scanned and every chain walked).
//!
//! The machine is shared: compare rows of one run, not absolute times.

use std::hint::black_box;
use std::time::Duration;

use blob::bdev_dev::BdevDev;
use blob::{BlobOpts, Blobstore, BlockDevice, InitOpts, LoadOpts, MemDev};
use criterion::Criterion;

const DISK: u64 = 256 << 20;
const CLUSTER: u32 = 1 << 20;

fn eal() -> eal::Eal {
    let mut argv = testkit::eal_env::no_huge_args("blobbench", 8, "0");
    argv.extend(["--no-pci", "--log-level", "3"].map(String::from));
    eal::Eal::init(&argv).expect("EAL init").0
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn io_benches(c: &mut Criterion, th: &framework::ThreadHandle) {
    let mut g = c.benchmark_group("io");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    // The blob covers the first half of the data area; the bare side uses the same
    // block range of a second malloc bdev.
    let dev = BdevDev::open(th, "BenchBlob").unwrap();
    let mut bs = Blobstore::init(
        Box::new(dev),
        &InitOpts {
            cluster_size: CLUSTER,
            ..Default::default()
        },
    )
    .unwrap();
    let clusters = 128u64;
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: clusters,
            ..Default::default()
        })
        .unwrap();
    let blob = bs.open_blob(id).unwrap();
    let mut bare = BdevDev::open(th, "BenchBare").unwrap();
    let units = clusters * u64::from(CLUSTER) / 512;
    let seq = vec![0x5Au8; 64 * 1024];
    let rnd = vec![0xA5u8; 4096];
    let mut buf = vec![0u8; 64 * 1024];
    let (mut pos_b, mut pos_d) = (0u64, 0u64);
    g.bench_function("seq_write_64k/blob", |b| {
        b.iter(|| {
            bs.write(&blob, pos_b, &seq).unwrap();
            pos_b = (pos_b + 128) % units;
        })
    });
    g.bench_function("seq_write_64k/bdev", |b| {
        b.iter(|| {
            bare.write(pos_d, &seq).unwrap();
            pos_d = (pos_d + 128) % units;
        })
    });
    g.bench_function("seq_read_64k/blob", |b| {
        b.iter(|| {
            bs.read(&blob, pos_b, &mut buf).unwrap();
            pos_b = (pos_b + 128) % units;
        })
    });
    g.bench_function("seq_read_64k/bdev", |b| {
        b.iter(|| {
            bare.read(pos_d, &mut buf).unwrap();
            pos_d = (pos_d + 128) % units;
        })
    });
    let mut r = Lcg(7);
    g.bench_function("rand_write_4k/blob", |b| {
        b.iter(|| bs.write(&blob, r.next(units / 8) * 8, &rnd).unwrap())
    });
    g.bench_function("rand_write_4k/bdev", |b| {
        b.iter(|| bare.write(r.next(units / 8) * 8, &rnd).unwrap())
    });
    g.bench_function("rand_read_4k/blob", |b| {
        b.iter(|| {
            bs.read(&blob, r.next(units / 8) * 8, &mut buf[..4096])
                .unwrap()
        })
    });
    g.bench_function("rand_read_4k/bdev", |b| {
        b.iter(|| bare.read(r.next(units / 8) * 8, &mut buf[..4096]).unwrap())
    });
    g.finish();

    // Thin first writes: a new blob per batch, each iteration the first write to a
    // cluster; beside a write to a cluster already allocated.
    let mut g = c.benchmark_group("thin");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(300));
    g.bench_function("first_write_4k", |b| {
        b.iter_custom(|iters| {
            let tid = bs
                .create_blob(&BlobOpts {
                    num_clusters: iters,
                    thin_provision: true,
                    ..Default::default()
                })
                .unwrap();
            let t = bs.open_blob(tid).unwrap();
            let per = bs.io_units_per_cluster();
            let start = std::time::Instant::now();
            for i in 0..iters {
                bs.write(&t, i * per, &rnd).unwrap();
            }
            let el = start.elapsed();
            bs.close_blob(t).unwrap();
            bs.delete_blob(tid).unwrap();
            el
        })
    });
    g.bench_function("allocated_write_4k", |b| {
        b.iter(|| bs.write(&blob, r.next(units / 8) * 8, &rnd).unwrap())
    });
    g.finish();
    bs.close_blob(blob).unwrap();
    drop(bs.unload().unwrap());
    drop(bare);
}

fn lvol_benches(c: &mut Criterion, th: &framework::ThreadHandle) {
    let mut g = c.benchmark_group("lvol");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    let s = blob::lvol::create_lvstore(
        th,
        "BenchLvBase",
        &blob::lvol::LvsOpts {
            name: "blv".into(),
            cluster_size: CLUSTER,
            md_pages_per_cluster_ratio: 100,
        },
    )
    .unwrap();
    blob::lvol::create_lvol(&s, "vol", 128 << 20, false).unwrap();
    let mut lv = BdevDev::open(th, "blv/vol").unwrap();
    let mut bare = BdevDev::open(th, "BenchLvBare").unwrap();
    let units = (128u64 << 20) / 512;
    let seq = vec![0x5Au8; 64 * 1024];
    let mut buf = vec![0u8; 64 * 1024];
    let mut r = Lcg(11);
    for (name, dev) in [("lvol", &mut lv), ("bdev", &mut bare)] {
        let mut pos = 0u64;
        g.bench_function(format!("seq_write_64k/{name}"), |b| {
            b.iter(|| {
                dev.write(pos, &seq).unwrap();
                pos = (pos + 128) % units;
            })
        });
    }
    for (name, dev) in [("lvol", &mut lv), ("bdev", &mut bare)] {
        g.bench_function(format!("rand_read_4k/{name}"), |b| {
            b.iter(|| dev.read(r.next(units / 8) * 8, &mut buf[..4096]).unwrap())
        });
    }
    g.finish();
    drop(lv);
    drop(bare);
    blob::lvol::unload(&s).unwrap();
}

fn load_benches(c: &mut Criterion) {
    let dev = MemDev::new(512, (128u64 << 20) / 512);
    let mut bs = Blobstore::init(
        Box::new(dev.clone()),
        &InitOpts {
            cluster_size: CLUSTER,
            num_md_pages: Some(12_000),
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..10_000u32 {
        bs.create_blob(&BlobOpts {
            num_clusters: 0,
            xattrs: vec![("i".into(), i.to_le_bytes().to_vec())],
            ..Default::default()
        })
        .unwrap();
    }
    bs.unload().unwrap();
    let mut g = c.benchmark_group("load");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for (name, force) in [("10000_blobs_clean", false), ("10000_blobs_dirty", true)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let (bs, _) = Blobstore::load(
                    Box::new(dev.clone()),
                    &LoadOpts {
                        force_recover: force,
                        ..Default::default()
                    },
                )
                .unwrap();
                assert_eq!(bs.blob_ids().len(), 10_000);
                black_box(bs);
            })
        });
    }
    g.finish();
}

fn main() {
    let eal = eal();
    blob::host::run(
        &eal,
        || {
            for n in ["BenchBlob", "BenchBare", "BenchLvBase", "BenchLvBare"] {
                bdev::modules::malloc::create(bdev::modules::malloc::MallocOpts {
                    name: n.into(),
                    num_blocks: DISK / 512,
                    block_size: 512,
                    ..Default::default()
                })?;
            }
            Ok(())
        },
        |th| {
            let mut c = Criterion::default().configure_from_args();
            io_benches(&mut c, &th);
            lvol_benches(&mut c, &th);
            load_benches(&mut c);
            c.final_summary();
        },
    )
    .expect("framework run");
}
