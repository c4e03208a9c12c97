//! Compatibility with SPDK's own blobstore, both directions, on an image file:
//! SPDK's blobcli (build/examples/blobcli, over bdev_aio on the file) and ours (the
//! image loaded into a malloc bdev through our bdev layer, written back after).
//! Needs the SPDK build (`FP_SPDK_DIR`); skips, counted, without it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use blob::{BlobOpts, Blobstore, InitOpts, LoadKind, LoadOpts};
use common::host::{eal, with_malloc};
use common::pattern;

const IMG: u64 = 64 << 20;

struct Spdk {
    dir: PathBuf,
    work: PathBuf,
}

impl Spdk {
    fn new(test: &str) -> Option<Spdk> {
        let dir = testkit::spdk_dir(test)?;
        if !dir.join("build/examples/blobcli").exists() {
            testkit::skip(
                test,
                testkit::Need::Spdk,
                "build/examples/blobcli is missing",
            );
            return None;
        }
        let work =
            std::env::temp_dir().join(format!("fp-blobcompat-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&work).unwrap();
        let img = work.join("img");
        std::fs::write(&img, b"").unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
        f.set_len(IMG).unwrap();
        // Small iobuf pools: SPDK's defaults take some 200 MB of hugepages, which the
        // machine's shared 512 pages may not have free.
        let cfg = serde_json::json!({"subsystems":[
            {"subsystem":"iobuf","config":[{"method":"iobuf_set_options",
                "params":{"small_pool_count":1024,"large_pool_count":128}}]},
            {"subsystem":"bdev","config":[
            {"method":"bdev_aio_create","params":{"name":"Aio0","filename": img, "block_size":512}}]}]});
        std::fs::write(work.join("cfg.json"), cfg.to_string()).unwrap();
        Some(Spdk { dir, work })
    }

    fn img(&self) -> PathBuf {
        self.work.join("img")
    }

    /// Run SPDK's blobcli with `args`; its stdout on success. SPDK apps take a lock
    /// file per core (/var/tmp/spdk_cpu_lock_000), so runs are serialised here and
    /// retried while another process on the machine holds it.
    fn blobcli(&self, args: &[&str], stdin: &str) -> String {
        static ONE: Mutex<()> = Mutex::new(());
        let _g = ONE.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..120 {
            let mut c = Command::new("timeout");
            c.arg("180")
                .arg(self.dir.join("build/examples/blobcli"))
                .arg("-j")
                .arg(self.work.join("cfg.json"))
                .args(["-b", "Aio0"])
                .args(args)
                .env("LD_LIBRARY_PATH", self.dir.join("build/lib"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut ch = c.spawn().expect("start SPDK's blobcli");
            use std::io::Write;
            let _ = ch.stdin.take().unwrap().write_all(stdin.as_bytes());
            let out = ch.wait_with_output().unwrap();
            let so = String::from_utf8_lossy(&out.stdout).to_string();
            let se = String::from_utf8_lossy(&out.stderr).to_string();
            let busy = se.contains("Cannot create lock on core")
                || se.contains("Unable to allocate")
                || se.contains("Cannot allocate memory");
            if !out.status.success() && busy {
                std::thread::sleep(std::time::Duration::from_secs(1));
                continue;
            }
            assert!(
                out.status.success(),
                "SPDK blobcli {args:?} failed: {:?}\n{so}\n{se}",
                out.status
            );
            return so;
        }
        panic!(
            "SPDK blobcli {args:?}: core 0's lock or hugepage memory stayed taken for two minutes"
        );
    }
}

impl Drop for Spdk {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

fn new_blob_id(out: &str) -> u64 {
    let l = out
        .lines()
        .find_map(|l| l.strip_prefix("New blob id 0x"))
        .expect("a new blob id");
    u64::from_str_radix(l.trim(), 16).unwrap()
}

fn listed(out: &str) -> Vec<u64> {
    let mut v: Vec<u64> = out
        .lines()
        .filter_map(|l| l.strip_prefix("Found blob with ID# 0x"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .collect();
    v.sort();
    v
}

fn file(p: &Path, data: &[u8]) {
    std::fs::write(p, data).unwrap();
}

#[test]
fn spdk_made_store_loads_in_ours() {
    let t = "spdk_made_store_loads_in_ours";
    let Some(s) = Spdk::new(t) else { return };
    let Some(eal) = eal(t) else { return };
    s.blobcli(&["-i"], "y\n");
    let a = new_blob_id(&s.blobcli(&["-n", "3"], ""));
    let b = new_blob_id(&s.blobcli(&["-n", "2"], ""));
    let data = pattern(1, 3 << 20, 11);
    let src = s.work.join("a.bin");
    file(&src, &data);
    s.blobcli(&["-m", &format!("{a:#x}"), src.to_str().unwrap()], "");
    s.blobcli(&["-x", &format!("{a:#x}"), "color", "blue"], "");
    s.blobcli(&["-x", &format!("{b:#x}"), "name", "second"], "");
    s.blobcli(&["-p", &format!("{b:#x}")], "");
    let image = std::fs::read(s.img()).unwrap();
    let d2 = data.clone();
    let (ids, after) = with_malloc(&eal, "Img0", IMG, image, move |dev| {
        let (mut bs, kind) = Blobstore::load(dev, &LoadOpts::default()).unwrap();
        assert_eq!(kind, LoadKind::Clean, "SPDK unloads cleanly");
        assert_eq!(bs.blob_ids(), vec![a, b]);
        assert_eq!(bs.info().cluster_size, 1 << 20);
        assert_eq!(bs.info().super_blob, Some(b));
        assert_eq!(bs.get_xattr(a, "color").unwrap().unwrap(), b"blue\0");
        assert_eq!(bs.get_xattr(b, "name").unwrap().unwrap(), b"second\0");
        let h = bs.open_blob(a).unwrap();
        let mut back = vec![0u8; d2.len()];
        bs.read(&h, 0, &mut back).unwrap();
        assert!(back == d2, "blob data as SPDK imported it");
        bs.close_blob(h).unwrap();
        // Change the store in ours: a thin blob and a snapshot, for SPDK to read.
        let thin = bs
            .create_blob(&BlobOpts {
                num_clusters: 8,
                thin_provision: true,
                ..Default::default()
            })
            .unwrap();
        let h = bs.open_blob(thin).unwrap();
        bs.write(&h, 2048 * 5 + 3, &pattern(2, 4096, 2)).unwrap();
        bs.close_blob(h).unwrap();
        let snap = bs.create_snapshot(a, &[]).unwrap();
        let h = bs.open_blob(a).unwrap();
        bs.write(&h, 10, &pattern(3, 512, 3)).unwrap();
        bs.close_blob(h).unwrap();
        let mut names = vec![a, b, thin, snap];
        names.sort();
        (names, bs.unload().unwrap())
    });
    // Ours back to SPDK.
    std::fs::write(s.img(), &after).unwrap();
    assert_eq!(listed(&s.blobcli(&["-l", "blobs"], "")), ids);
    let out = s.work.join("a.out");
    s.blobcli(&["-d", &format!("{a:#x}"), out.to_str().unwrap()], "");
    let mut expect = data.clone();
    expect[10 * 512..11 * 512].copy_from_slice(&pattern(3, 512, 3));
    assert!(
        std::fs::read(&out).unwrap() == expect,
        "SPDK reads the clone through our snapshot"
    );
}

#[test]
fn our_store_loads_in_spdk() {
    let t = "our_store_loads_in_spdk";
    let Some(s) = Spdk::new(t) else { return };
    let Some(eal) = eal(t) else { return };
    let thick = pattern(4, 2 << 20, 4);
    let th2 = thick.clone();
    let (ids, image) = with_malloc(&eal, "Ours0", IMG, Vec::new(), move |dev| {
        let mut bs = Blobstore::init(dev, &InitOpts::default()).unwrap();
        let a = bs
            .create_blob(&BlobOpts {
                num_clusters: 2,
                xattrs: vec![("name".into(), b"thick\0".to_vec())],
                ..Default::default()
            })
            .unwrap();
        let h = bs.open_blob(a).unwrap();
        bs.write(&h, 0, &th2).unwrap();
        bs.close_blob(h).unwrap();
        let rle = bs
            .create_blob(&BlobOpts {
                num_clusters: 1,
                use_extent_table: false,
                ..Default::default()
            })
            .unwrap();
        let thin = bs
            .create_blob(&BlobOpts {
                num_clusters: 4,
                thin_provision: true,
                ..Default::default()
            })
            .unwrap();
        let h = bs.open_blob(thin).unwrap();
        bs.write(&h, 2048 + 7, &pattern(5, 1024, 5)).unwrap();
        bs.close_blob(h).unwrap();
        let snap = bs.create_snapshot(thin, &[]).unwrap();
        let clone = bs.create_clone(snap, &[]).unwrap();
        ((a, rle, thin, snap, clone), bs.unload().unwrap())
    });
    std::fs::write(s.img(), &image).unwrap();
    let (a, rle, thin, snap, clone) = ids;
    let mut want = vec![a, rle, thin, snap, clone];
    want.sort();
    assert_eq!(listed(&s.blobcli(&["-l", "blobs"], "")), want);
    let show = s.blobcli(&["-s", &format!("{a:#x}")], "");
    assert!(show.contains("# of clusters: 2"), "{show}");
    assert!(show.contains("Name:name"), "{show}");
    let sbs = s.blobcli(&["-s", "bs"], "");
    assert!(sbs.contains("cluster size: 1048576"), "{sbs}");
    let out = s.work.join("o.bin");
    s.blobcli(&["-d", &format!("{a:#x}"), out.to_str().unwrap()], "");
    assert!(std::fs::read(&out).unwrap() == thick);
    let mut thin_expect = vec![0u8; 4 << 20];
    thin_expect[(2048 + 7) * 512..(2048 + 9) * 512].copy_from_slice(&pattern(5, 1024, 5));
    for id in [thin, snap, clone] {
        s.blobcli(&["-d", &format!("{id:#x}"), out.to_str().unwrap()], "");
        assert!(
            std::fs::read(&out).unwrap() == thin_expect,
            "blob {id:#x} as SPDK reads it"
        );
    }
    // SPDK changes it (a new blob, an xattr) and unloads; ours loads it clean again.
    let n = new_blob_id(&s.blobcli(&["-n", "1"], ""));
    s.blobcli(&["-x", &format!("{rle:#x}"), "k", "v"], "");
    let image = std::fs::read(s.img()).unwrap();
    let ((), _) = with_malloc(&eal, "Ours1", IMG, image, move |dev| {
        let (bs, kind) = Blobstore::load(dev, &LoadOpts::default()).unwrap();
        assert_eq!(kind, LoadKind::Clean);
        assert!(bs.blob_ids().contains(&n));
        assert_eq!(bs.get_xattr(rle, "k").unwrap().unwrap(), b"v\0");
        ((), bs.unload().unwrap())
    });
}

/// Run an SPDK program with `args`; panics with its output on failure.
fn spdk_run(dir: &Path, prog: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("180")
        .arg(dir.join(prog))
        .args(args)
        .env("LD_LIBRARY_PATH", dir.join("build/lib"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let so = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{prog} {args:?}: {:?}\n{so}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    so
}

/// spdk_tgt on the image; `calls` are rpc.py argument lists.
fn spdk_tgt(s: &Spdk, calls: &[&[&str]]) -> Vec<String> {
    testkit::spdk::spdk_tgt(&s.dir, &s.work, &s.work.join("cfg.json"), calls)
}

fn dd_common(s: &Spdk) -> Vec<String> {
    vec![
        "-m".into(),
        "0x1".into(),
        "--disable-cpumask-locks".into(),
        "--json".into(),
        s.work.join("cfg.json").to_string_lossy().into(),
        "--bs".into(),
        "4096".into(),
    ]
}

fn lvol_name(v: &[u8]) -> String {
    String::from_utf8(v.iter().copied().take_while(|&c| c != 0).collect()).unwrap()
}

#[test]
fn spdk_lvols_both_ways() {
    let t = "spdk_lvols_both_ways";
    let Some(s) = Spdk::new(t) else { return };
    let Some(eal) = eal(t) else { return };
    // SPDK makes a store, a thin lvol, data, a snapshot, more data.
    let o = spdk_tgt(
        &s,
        &[
            &["bdev_lvol_create_lvstore", "Aio0", "lvs0", "-c", "1048576"],
            &["bdev_lvol_create", "-l", "lvs0", "-t", "vol", "4"],
        ],
    );
    let (lvs_uuid, vol_uuid) = (o[0].clone(), o[1].clone());
    let d1 = pattern(7, 1 << 20, 7);
    let d2 = pattern(8, 64 << 10, 8);
    file(&s.work.join("d1"), &d1);
    file(&s.work.join("d2"), &d2);
    let mut a = dd_common(&s);
    a.extend([
        "--if".into(),
        s.work.join("d1").to_string_lossy().into(),
        "--ob".into(),
        "lvs0/vol".into(),
        "--seek".into(),
        "256".into(),
    ]);
    spdk_run(
        &s.dir,
        "build/bin/spdk_dd",
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let o = spdk_tgt(&s, &[&["bdev_lvol_snapshot", "lvs0/vol", "snap0"]]);
    let snap_uuid = o[0].clone();
    let mut a = dd_common(&s);
    a.extend([
        "--if".into(),
        s.work.join("d2").to_string_lossy().into(),
        "--ob".into(),
        "lvs0/vol".into(),
        "--seek".into(),
        "512".into(),
    ]);
    spdk_run(
        &s.dir,
        "build/bin/spdk_dd",
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    );

    // Ours reads it.
    let image = std::fs::read(s.img()).unwrap();
    let (d1c, d2c) = (d1.clone(), d2.clone());
    with_malloc(&eal, "LvImg", IMG, image, move |dev| {
        let (mut bs, _) = Blobstore::load(
            dev,
            &LoadOpts {
                bstype: "LVOLSTORE".into(),
                ..Default::default()
            },
        )
        .unwrap();
        let sb = bs.info().super_blob.unwrap();
        assert_eq!(
            lvol_name(&bs.get_xattr(sb, "name").unwrap().unwrap()),
            "lvs0"
        );
        assert_eq!(
            lvol_name(&bs.get_xattr(sb, "uuid").unwrap().unwrap()),
            lvs_uuid
        );
        let by_name = |bs: &Blobstore, n: &str| {
            bs.blob_ids()
                .into_iter()
                .find(|&i| {
                    bs.get_xattr(i, "name")
                        .unwrap()
                        .is_some_and(|v| lvol_name(&v) == n)
                })
                .unwrap_or_else(|| panic!("no lvol '{n}'"))
        };
        let vol = by_name(&bs, "vol");
        let snap = by_name(&bs, "snap0");
        assert_eq!(
            lvol_name(&bs.get_xattr(vol, "uuid").unwrap().unwrap()),
            vol_uuid
        );
        assert_eq!(
            lvol_name(&bs.get_xattr(snap, "uuid").unwrap().unwrap()),
            snap_uuid
        );
        let vi = bs.blob_info(vol).unwrap();
        assert!(vi.thin);
        assert_eq!(vi.parent, Some(snap));
        assert_eq!(vi.num_clusters, 4);
        assert!(bs.blob_info(snap).unwrap().read_only);
        let h = bs.open_blob(vol).unwrap();
        let mut back = vec![0u8; 4 << 20];
        bs.read(&h, 0, &mut back).unwrap();
        bs.close_blob(h).unwrap();
        assert!(back[..1 << 20].iter().all(|&b| b == 0));
        assert!(
            back[1 << 20..2 << 20] == d1c[..],
            "read through SPDK's snapshot"
        );
        assert!(back[2 << 20..(2 << 20) + (64 << 10)] == d2c[..]);
        // A recovery load of SPDK's store finds the same blobs and clusters.
        let ids = bs.blob_ids();
        let clusters: Vec<Vec<u32>> = ids.iter().map(|&i| bs.blob_clusters(i).unwrap()).collect();
        let used = bs.used_clusters().clone();
        let dev = bs.unload().unwrap();
        let (bs, kind) = Blobstore::load(
            dev,
            &LoadOpts {
                force_recover: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(kind, LoadKind::Recovered);
        assert_eq!(bs.blob_ids(), ids);
        let again: Vec<Vec<u32>> = ids.iter().map(|&i| bs.blob_clusters(i).unwrap()).collect();
        assert_eq!(again, clusters);
        assert_eq!(bs.used_clusters(), &used, "the rebuilt mask equals SPDK's");
        ((), bs.unload().unwrap())
    });

    // Ours makes a store; SPDK reads it.
    let std::result::Result::Ok(((store_uuid, v1_uuid), image)) = blob::host::run(
        &eal,
        || {
            bdev::modules::malloc::create(bdev::modules::malloc::MallocOpts {
                name: "OursBase".into(),
                num_blocks: IMG / 512,
                block_size: 512,
                ..Default::default()
            })?;
            Ok(())
        },
        move |th| {
            use blob::BlockDevice;
            let st = blob::lvol::create_lvstore(
                &th,
                "OursBase",
                &blob::lvol::LvsOpts {
                    name: "ours".into(),
                    cluster_size: 1 << 20,
                    md_pages_per_cluster_ratio: 100,
                },
            )
            .unwrap();
            let u = blob::lvol::create_lvol(&st, "v1", 4 << 20, true).unwrap();
            {
                let mut d = blob::bdev_dev::BdevDev::open(&th, "ours/v1").unwrap();
                d.write(2048, &pattern(7, 1 << 20, 7)).unwrap();
            }
            blob::lvol::snapshot(&st, "v1", "s1").unwrap();
            {
                let mut d = blob::bdev_dev::BdevDev::open(&th, "ours/v1").unwrap();
                d.write(4096, &pattern(8, 64 << 10, 8)).unwrap();
            }
            let ids = (st.uuid.to_string(), u.to_string());
            blob::lvol::unload(&st).unwrap();
            let mut base = blob::bdev_dev::BdevDev::open(&th, "OursBase").unwrap();
            let mut v = vec![0u8; IMG as usize];
            base.read(0, &mut v).unwrap();
            (ids, v)
        },
    ) else {
        panic!("framework run failed")
    };
    std::fs::write(s.img(), &image).unwrap();
    let out = s.work.join("v1.out");
    let mut a = dd_common(&s);
    a.extend([
        "--ib".into(),
        "ours/v1".into(),
        "--of".into(),
        out.to_string_lossy().into(),
        "--count".into(),
        "1024".into(),
    ]);
    std::fs::write(&out, b"").unwrap();
    spdk_run(
        &s.dir,
        "build/bin/spdk_dd",
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got.len(), 4 << 20);
    assert!(got[..1 << 20].iter().all(|&b| b == 0));
    assert!(
        got[1 << 20..2 << 20] == d1[..],
        "SPDK reads through our snapshot"
    );
    assert!(got[2 << 20..(2 << 20) + (64 << 10)] == d2[..]);
    let o = spdk_tgt(
        &s,
        &[
            &["bdev_lvol_get_lvstores"],
            &["bdev_get_bdevs", "-b", "ours/v1"],
        ],
    );
    let lvs: serde_json::Value = serde_json::from_str(&o[0]).unwrap();
    assert_eq!(lvs[0]["name"], "ours");
    assert_eq!(lvs[0]["uuid"], store_uuid.as_str());
    let b: serde_json::Value = serde_json::from_str(&o[1]).unwrap();
    assert_eq!(b[0]["uuid"], v1_uuid.as_str());
}
