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
            testkit::skip(test, testkit::Need::Spdk, "build/examples/blobcli is missing");
            return None;
        }
        let work = std::env::temp_dir().join(format!("fp-blobcompat-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&work).unwrap();
        let img = work.join("img");
        std::fs::write(&img, b"").unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
        f.set_len(IMG).unwrap();
        let cfg = serde_json::json!({"subsystems":[{"subsystem":"bdev","config":[
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
            if !out.status.success() && se.contains("Cannot create lock on core") {
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
        panic!("SPDK blobcli {args:?}: core 0's lock stayed taken for two minutes");
    }
}

impl Drop for Spdk {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

fn new_blob_id(out: &str) -> u64 {
    let l = out.lines().find_map(|l| l.strip_prefix("New blob id 0x")).expect("a new blob id");
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
            .create_blob(&BlobOpts { num_clusters: 8, thin_provision: true, ..Default::default() })
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
    assert!(std::fs::read(&out).unwrap() == expect, "SPDK reads the clone through our snapshot");
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
            .create_blob(&BlobOpts { num_clusters: 1, use_extent_table: false, ..Default::default() })
            .unwrap();
        let thin = bs
            .create_blob(&BlobOpts { num_clusters: 4, thin_provision: true, ..Default::default() })
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
        assert!(std::fs::read(&out).unwrap() == thin_expect, "blob {id:#x} as SPDK reads it");
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
