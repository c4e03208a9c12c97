//! Lvols through the bdev layer: an lvol store on a malloc bdev, data written and read
//! through the lvol bdevs (thin, snapshot, clone), and the store's on-disk form: bstype
//! "LVOLSTORE", the super blob's "name"/"uuid" xattrs and each lvol's, as SPDK keeps
//! them.

mod common;

use std::sync::{Arc, Mutex};

use blob::bdev_dev::BdevDev;
use blob::lvol::{self, LvsOpts};
use blob::{Blobstore, BlockDevice, LoadOpts, MemDev};
use common::host::eal;
use common::pattern;

/// The set-up step: a malloc bdev of `blocks` 512-byte blocks.
fn malloc(name: &'static str, blocks: u64) -> impl FnOnce() -> blob::Result<()> + Send {
    move || {
        bdev::modules::malloc::create(bdev::modules::malloc::MallocOpts {
            name: name.into(),
            num_blocks: blocks,
            block_size: 512,
            ..Default::default()
        })?;
        Ok(())
    }
}

/// A store with 1 MiB clusters on `base`.
fn store(th: &framework::ThreadHandle, base: &str, name: &str) -> Arc<lvol::LvolStore> {
    lvol::create_lvstore(
        th,
        base,
        &LvsOpts {
            name: name.into(),
            cluster_size: 1 << 20,
            md_pages_per_cluster_ratio: 100,
        },
    )
    .unwrap()
}

/// `n` framework threads of their own, named `prefix0`, `prefix1`, ...
fn fw_threads(
    th: &framework::ThreadHandle,
    n: usize,
    prefix: &str,
) -> Vec<framework::ThreadHandle> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let prefix = prefix.to_string();
    th.send_msg(move || {
        let v: Vec<_> = (0..n)
            .map(|i| framework::thread::spawn(&format!("{prefix}{i}"), &[]).unwrap())
            .collect();
        tx.send(v).unwrap();
    })
    .unwrap();
    rx.recv().unwrap()
}

#[test]
fn lvol_bdevs_carry_data_and_the_store_is_spdk_shaped() {
    let t = "lvol_bdevs_carry_data_and_the_store_is_spdk_shaped";
    let Some(eal) = eal(t) else { return };
    let image: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
    let img2 = image.clone();
    let ids = blob::host::run(&eal, malloc("LvBase", 32768), move |th| {
        let s = store(&th, "LvBase", "store");
        let u = lvol::create_lvol(&s, "vol", 3 << 20, true).unwrap();
        // Write through the lvol bdev (by its alias), then snapshot and clone.
        let a = pattern(1, 64 * 1024, 1);
        {
            let mut d = BdevDev::open(&th, "store/vol").unwrap();
            assert_eq!(d.num_blocks(), 6144);
            d.write(100, &a).unwrap();
            let mut back = vec![0u8; a.len()];
            d.read(100, &mut back).unwrap();
            assert!(back == a);
        }
        let su = lvol::snapshot(&s, "vol", "snap").unwrap();
        let cu = lvol::clone(&s, "snap", "cl").unwrap();
        let w = pattern(2, 4096, 2);
        {
            let mut d = BdevDev::open(&th, &u.to_string()).unwrap();
            d.write(100, &w).unwrap();
            let mut c = BdevDev::open(&th, "store/cl").unwrap();
            let mut back = vec![0u8; a.len()];
            c.read(100, &mut back).unwrap();
            assert!(back == a, "the clone reads the snapshot");
            let mut sn = BdevDev::open(&th, "store/snap").unwrap();
            assert!(sn.write(0, &w).is_err(), "a snapshot lvol is read-only");
            sn.read(100, &mut back).unwrap();
            assert!(back == a);
            d.read(100, &mut back[..4096]).unwrap();
            assert!(back[..4096] == w[..]);
        }
        let ids = (s.uuid, u, su, cu);
        lvol::unload(&s).unwrap();
        // Read the base back for the format checks.
        let mut base = BdevDev::open(&th, "LvBase").unwrap();
        let mut v = vec![0u8; 32768 * 512];
        base.read(0, &mut v).unwrap();
        *img2.lock().unwrap() = v;
        ids
    })
    .unwrap();
    let (lvs_uuid, vol, snap, cl) = ids;
    let img = image.lock().unwrap().clone();
    // Only an LVOLSTORE load (or the wildcard) takes it.
    let wrong = Blobstore::load(
        Box::new(MemDev::from_bytes(512, img.clone())),
        &LoadOpts {
            bstype: "OTHER".into(),
            ..Default::default()
        },
    );
    assert!(wrong.unwrap_err().to_string().contains("bstype"));
    let (bs, _) = Blobstore::load(
        Box::new(MemDev::from_bytes(512, img)),
        &LoadOpts {
            bstype: "LVOLSTORE".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let sb = bs.info().super_blob.expect("the store's super blob");
    let mut u = lvs_uuid.to_string().into_bytes();
    u.push(0);
    assert_eq!(
        bs.get_xattr(sb, "uuid").unwrap().unwrap(),
        u,
        "36 characters and a zero"
    );
    assert_eq!(bs.get_xattr(sb, "name").unwrap().unwrap(), b"store\0");
    let mut seen = Vec::new();
    for id in bs.blob_ids().into_iter().filter(|&i| i != sb) {
        let n = bs.get_xattr(id, "name").unwrap().unwrap();
        assert_eq!(n.len(), 64, "SPDK's 64-byte name buffer");
        let name = String::from_utf8(n.into_iter().take_while(|&c| c != 0).collect()).unwrap();
        let uu = bs.get_xattr(id, "uuid").unwrap().unwrap();
        assert_eq!(uu.len(), 37);
        seen.push((name, String::from_utf8(uu[..36].to_vec()).unwrap()));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("cl".to_string(), cl.to_string()),
            ("snap".to_string(), snap.to_string()),
            ("vol".to_string(), vol.to_string()),
        ]
    );
}

/// Metadata changes from several OS threads at once (creates, writes that allocate
/// thin clusters, snapshots, clones, resizes, deletes: what the RPC methods do, one
/// OS thread each) while lvol I/O is submitted from several framework threads; the
/// store's lock serialises the metadata. Afterwards every lvol holds its data, and
/// the store unloads, loads back with every lvol, and its clean masks equal the ones
/// a full recovery rebuilds from the metadata chains.
#[test]
fn concurrent_metadata_changes_from_several_threads_stay_consistent() {
    let t = "concurrent_metadata_changes_from_several_threads_stay_consistent";
    let Some(eal) = eal(t) else { return };
    const WORKERS: u8 = 4;
    let image = blob::host::run(&eal, malloc("LvCc", 131072), move |th| {
        let s = store(&th, "LvCc", "cc");
        // One framework thread per worker submits that worker's lvol I/O.
        let fw_threads = fw_threads(&th, WORKERS as usize, "cc");
        let workers: Vec<_> = fw_threads
            .into_iter()
            .enumerate()
            .map(|(i, ft)| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let i = i as u8;
                    let (vol, snap, cl, tmp) = (
                        format!("v{i}"),
                        format!("s{i}"),
                        format!("c{i}"),
                        format!("t{i}"),
                    );
                    let mut expect = Vec::new();
                    for round in 0..3u64 {
                        if round == 0 {
                            lvol::create_lvol(&s, &vol, 4 << 20, true).unwrap();
                        }
                        let a = pattern(i, 8192, round);
                        let off = round * 2048 + u64::from(i) * 16;
                        let mut d = BdevDev::open(&ft, &format!("cc/{vol}")).unwrap();
                        d.write(off, &a).unwrap();
                        drop(d);
                        expect.push((off, a));
                        lvol::create_lvol(&s, &tmp, 1 << 20, false).unwrap();
                        lvol::resize(&s, &tmp, 2 << 20).unwrap();
                        lvol::delete(&s, &tmp).unwrap();
                    }
                    lvol::snapshot(&s, &vol, &snap).unwrap();
                    lvol::clone(&s, &snap, &cl).unwrap();
                    let b = pattern(i + 100, 4096, 9);
                    let mut c = BdevDev::open(&ft, &format!("cc/{cl}")).unwrap();
                    c.write(4000, &b).unwrap();
                    // The clone reads its own write and the snapshot's data.
                    let mut back = vec![0u8; 8192];
                    for (off, a) in &expect {
                        c.read(*off, &mut back).unwrap();
                        assert!(back == *a, "worker {i}: clone at {off}");
                    }
                    let mut one = vec![0u8; 4096];
                    c.read(4000, &mut one).unwrap();
                    assert!(one == b, "worker {i}: the clone's own write");
                    (vol, cl, expect, b)
                })
            })
            .collect();
        let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        let lvols: Vec<String> = s.lvol_names();
        assert_eq!(lvols.len(), WORKERS as usize * 3, "{lvols:?}");
        lvol::unload(&s).unwrap();
        // Loaded back: every lvol, every byte.
        let s = lvol::examine::load(&th, "LvCc")
            .unwrap()
            .expect("the store");
        assert_eq!(s.lvol_names(), lvols);
        for (i, (vol, cl, expect, b)) in results.iter().enumerate() {
            let mut v = BdevDev::open(&th, &format!("cc/{vol}")).unwrap();
            let mut back = vec![0u8; 8192];
            for (off, a) in expect {
                v.read(*off, &mut back).unwrap();
                assert!(back == *a, "worker {i}: {vol} at {off} after the reload");
            }
            let mut c = BdevDev::open(&th, &format!("cc/{cl}")).unwrap();
            c.read(4000, &mut back[..4096]).unwrap();
            assert!(back[..4096] == b[..], "worker {i}: {cl} after the reload");
        }
        lvol::unload(&s).unwrap();
        let mut base = BdevDev::open(&th, "LvCc").unwrap();
        let mut v = vec![0u8; 131072 * 512];
        base.read(0, &mut v).unwrap();
        v
    })
    .unwrap();
    let load = |force_recover| {
        Blobstore::load(
            Box::new(MemDev::from_bytes(512, image.clone())),
            &LoadOpts {
                bstype: "LVOLSTORE".into(),
                force_recover,
            },
        )
        .unwrap()
        .0
    };
    let (clean, rebuilt) = (load(false), load(true));
    assert_eq!(clean.used_clusters(), rebuilt.used_clusters());
    assert_eq!(clean.used_md_pages(), rebuilt.used_md_pages());
    assert_eq!(clean.blob_ids(), rebuilt.blob_ids());
    assert_eq!(clean.info().free_clusters, rebuilt.info().free_clusters);
}

/// Resize and rename while the lvol bdev is open with I/O going on (SPDK's
/// `bdev_lvol_resize` / `bdev_lvol_rename` / `bdev_lvol_rename_lvstore`): the bdev stays
/// registered, its open descriptor gets a resize event and keeps working, the new end
/// is writable through it, the aliases change in place; shrinking waits for the bdev
/// to be closed, as the bdev layer requires.
#[test]
fn resize_and_rename_with_the_bdev_open() {
    let t = "resize_and_rename_with_the_bdev_open";
    let Some(eal) = eal(t) else { return };
    blob::host::run(&eal, malloc("LvRs", 32768), move |th| {
        let s = store(&th, "LvRs", "rs");
        let u = lvol::create_lvol(&s, "vol", 2 << 20, true).unwrap();
        // A descriptor of our own that records its events.
        let events = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = crossbeam_channel::bounded(1);
        let ev2 = events.clone();
        let name = u.to_string();
        th.send_msg(move || {
            let d = bdev::open(&name, false, move |e| ev2.lock().unwrap().push(e)).unwrap();
            tx.send(d).unwrap();
        })
        .unwrap();
        let watcher = rx.recv().unwrap();
        let mut d = BdevDev::open(&th, "rs/vol").unwrap();
        let a = pattern(3, 8192, 1);
        d.write(1000, &a).unwrap();
        let bdev = bdev::bdev::get(&u.to_string()).unwrap();
        assert_eq!(bdev.num_blocks(), 4096);
        // The end of the old size is refused by the bdev layer.
        assert!(d.write(4096, &a).is_err());

        lvol::resize(&s, "vol", 4 << 20).unwrap();
        assert_eq!(bdev.num_blocks(), 8192, "the bdev layer has the new size");
        assert!(
            bdev::bdev::get(&u.to_string()).is_some_and(|b| std::ptr::eq(b.info(), bdev.info())),
            "the same bdev stays registered"
        );
        let b = pattern(4, 8192, 2);
        d.write(8000, &b).unwrap();
        let mut back = vec![0u8; 8192];
        d.read(8000, &mut back).unwrap();
        assert!(
            back == b,
            "written past the old end through the open descriptor"
        );
        d.read(1000, &mut back).unwrap();
        assert!(back == a);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !events.lock().unwrap().contains(&bdev::BdevEvent::Resize) {
            assert!(std::time::Instant::now() < deadline, "no resize event");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }

        lvol::rename(&s, "vol", "vol2").unwrap();
        assert!(bdev::bdev::get("rs/vol").is_none(), "the old alias is gone");
        let by_new = bdev::bdev::get("rs/vol2").expect("the new alias");
        assert_eq!(by_new.name(), u.to_string());
        assert_eq!(by_new.aliases(), vec!["rs/vol2".to_string()]);
        d.read(1000, &mut back).unwrap();
        assert!(
            back == a,
            "I/O through the open descriptor after the rename"
        );
        lvol::rename_lvstore(&s, "rs2").unwrap();
        assert_eq!(by_new.aliases(), vec!["rs2/vol2".to_string()]);
        assert!(bdev::bdev::get("rs2/vol2").is_some());
        // A name taken by another bdev is refused, and nothing changes.
        lvol::create_lvol(&s, "other", 1 << 20, true).unwrap();
        assert!(lvol::rename(&s, "vol2", "other").is_err());
        assert_eq!(by_new.aliases(), vec!["rs2/vol2".to_string()]);

        // Shrinking with descriptors open is refused, then allowed once closed.
        assert!(lvol::resize(&s, "vol2", 1 << 20).is_err());
        assert_eq!(bdev.num_blocks(), 8192);
        drop(d);
        th.send_msg(move || watcher.close()).unwrap();
        while bdev.open_descs() > 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        lvol::resize(&s, "vol2", 1 << 20).unwrap();
        assert_eq!(bdev.num_blocks(), 2048);
        let mut d = BdevDev::open(&th, "rs2/vol2").unwrap();
        d.read(1000, &mut back).unwrap();
        assert!(back == a, "the kept part after the shrink");
        drop(d);
        lvol::unload(&s).unwrap();
        // Loaded back: the new names and size.
        let s = lvol::examine::load(&th, "LvRs")
            .unwrap()
            .expect("the store");
        assert_eq!(s.name(), "rs2");
        assert_eq!(
            s.lvol_names(),
            vec!["other".to_string(), "vol2".to_string()]
        );
        assert_eq!(bdev::bdev::get("rs2/vol2").unwrap().num_blocks(), 2048);
        lvol::unload(&s).unwrap();
    })
    .unwrap();
}

/// Lvol I/O from two framework threads while metadata changes run (creates, resizes,
/// snapshots, clones, deletes of other lvols, then a snapshot of the written lvol
/// itself): writes to allocated clusters run on the submitting threads (the store's
/// worker sees none of them), and every region holds its last write afterwards.
#[test]
fn io_on_two_threads_while_metadata_changes() {
    let t = "io_on_two_threads_while_metadata_changes";
    let Some(eal) = eal(t) else { return };
    blob::host::run(&eal, malloc("LvIo", 65536), move |th| {
        let s = store(&th, "LvIo", "io");
        lvol::create_lvol(&s, "a", 8 << 20, false).unwrap();
        lvol::create_lvol(&s, "side", 2 << 20, true).unwrap();
        let fts = fw_threads(&th, 2, "io");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let before = s.worker_ios();
        // Each thread writes and reads back its own 4 KiB regions (thread i: regions
        // i, i+2, ...) over the whole lvol, round after round.
        let io: Vec<_> = fts
            .iter()
            .enumerate()
            .map(|(i, ft)| {
                let mut d = BdevDev::open_unclaimed(ft, "io/a").unwrap();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let regions = (8u64 << 20) / 4096;
                    let mut last = std::collections::HashMap::new();
                    let mut round = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) || round < 2 {
                        for r in (i as u64..regions).step_by(2 * 7).take(64) {
                            let p = pattern(i as u8, 4096, round * 1000 + r);
                            d.write(r * 8, &p).unwrap();
                            let mut back = vec![0u8; 4096];
                            d.read(r * 8, &mut back).unwrap();
                            assert!(back == p, "thread {i} region {r} round {round}");
                            last.insert(r, p);
                        }
                        round += 1;
                    }
                    (d, last, round)
                })
            })
            .collect();
        // Metadata changes meanwhile, on this OS thread.
        for k in 0..6 {
            let n = format!("m{k}");
            lvol::create_lvol(&s, &n, 1 << 20, k % 2 == 0).unwrap();
            lvol::resize(&s, &n, 3 << 20).unwrap();
            lvol::snapshot(&s, "side", &format!("ss{k}")).unwrap();
            lvol::delete(&s, &n).unwrap();
        }
        let fast_only = s.worker_ios();
        // Then a snapshot of the lvol under I/O: its clusters go to the snapshot, the
        // next writes allocate again (through the worker).
        lvol::snapshot(&s, "a", "a_snap").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while s.worker_ios() == fast_only {
            assert!(
                std::time::Instant::now() < deadline,
                "no write allocated after the snapshot"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = std::collections::HashMap::new();
        let mut devs = Vec::new();
        for h in io {
            let (d, last, rounds) = h.join().unwrap();
            assert!(rounds >= 2);
            all.extend(last);
            devs.push(d);
        }
        assert_eq!(
            fast_only, before,
            "writes to allocated clusters ran on their own threads, not the worker"
        );
        // Every region holds its last write, read from either thread.
        for (r, p) in &all {
            let mut back = vec![0u8; 4096];
            devs[(*r % 2) as usize ^ 1].read(r * 8, &mut back).unwrap();
            assert!(back == *p, "region {r} after the run");
        }
        drop(devs);
        lvol::unload(&s).unwrap();
        let s = lvol::examine::load(&th, "LvIo")
            .unwrap()
            .expect("the store");
        let mut d = BdevDev::open(&th, "io/a").unwrap();
        for (r, p) in &all {
            let mut back = vec![0u8; 4096];
            d.read(r * 8, &mut back).unwrap();
            assert!(back == *p, "region {r} after the reload");
        }
        drop(d);
        lvol::unload(&s).unwrap();
    })
    .unwrap();
}

/// Two framework threads write the same unallocated cluster of a thin lvol at once,
/// cluster after cluster: each cluster is allocated once, and both writes are in it.
#[test]
fn thin_first_write_race_allocates_once() {
    let t = "thin_first_write_race_allocates_once";
    let Some(eal) = eal(t) else { return };
    blob::host::run(&eal, malloc("LvRace", 65536), move |th| {
        let s = store(&th, "LvRace", "race");
        lvol::create_lvol(&s, "t", 16 << 20, true).unwrap();
        let fts = fw_threads(&th, 2, "race");
        let free0 = s.info().unwrap().free_clusters;
        const CLUSTERS: u64 = 12;
        let per = (1u64 << 20) / 512;
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let hs: Vec<_> = fts
            .iter()
            .enumerate()
            .map(|(i, ft)| {
                let mut d = BdevDev::open_unclaimed(ft, "race/t").unwrap();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    for c in 0..CLUSTERS {
                        barrier.wait();
                        let p = pattern(i as u8, 4096, c);
                        d.write(c * per + i as u64 * 8, &p).unwrap();
                    }
                    d
                })
            })
            .collect();
        let mut devs: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(
            free0 - s.info().unwrap().free_clusters,
            CLUSTERS as u32,
            "one cluster allocated per raced cluster"
        );
        for c in 0..CLUSTERS {
            let mut back = vec![0u8; 8192];
            devs[0].read(c * per, &mut back).unwrap();
            assert!(
                back[..4096] == pattern(0, 4096, c)[..],
                "cluster {c}: thread 0's write"
            );
            assert!(
                back[4096..] == pattern(1, 4096, c)[..],
                "cluster {c}: thread 1's write"
            );
        }
        devs.clear();
        lvol::unload(&s).unwrap();
    })
    .unwrap();
}
