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

#[test]
fn lvol_bdevs_carry_data_and_the_store_is_spdk_shaped() {
    let t = "lvol_bdevs_carry_data_and_the_store_is_spdk_shaped";
    let Some(eal) = eal(t) else { return };
    let image: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
    let img2 = image.clone();
    let ids = blob::host::run(
        &eal,
        || {
            bdev::modules::malloc::create(bdev::modules::malloc::MallocOpts {
                name: "LvBase".into(),
                num_blocks: 32768,
                block_size: 512,
                ..Default::default()
            })?;
            Ok(())
        },
        move |th| {
            let s = lvol::create_lvstore(
                &th,
                "LvBase",
                &LvsOpts {
                    name: "store".into(),
                    cluster_size: 1 << 20,
                    md_pages_per_cluster_ratio: 100,
                },
            )
            .unwrap();
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
        },
    )
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
