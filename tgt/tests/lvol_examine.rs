//! Lvol stores found on bdevs as they appear (the lvol module's examine), through real
//! `ferroplane-tgt` processes over an image file: a store with lvols, a snapshot and
//! data comes back after a restart (from the user's `--json` and from a saved config),
//! renames persist, the base bdev's removal closes the store and its lvol bdevs, and a
//! store SPDK's own `spdk_tgt` made is found at start. Data goes in and out through a
//! vhost-user-blk controller on the lvol bdev and our own front end.

mod vhost_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vhost_common::*;

const IMG: u64 = 32 << 20;

fn image(dir: &Path) -> PathBuf {
    let img = dir.join("img");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(IMG).unwrap();
    img
}

/// A `--json` file with one file bdev (`method`: bdev_uring_create or bdev_aio_create)
/// over `img`.
fn config(dir: &Path, method: &str, img: &Path) -> PathBuf {
    let cfg = json!({"subsystems": [{"subsystem": "bdev", "config": [
        {"method": method, "params": {"name": "F0", "filename": img, "block_size": 512}}]}]});
    let p = dir.join("cfg.json");
    std::fs::write(&p, cfg.to_string()).unwrap();
    p
}

/// SIGTERM through the RPC; the target must leave cleanly.
fn stop(mut t: Tgt) {
    ok(&t.rpc, "spdk_kill_instance", json!({"sig_name": "SIGTERM"}));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = t.child.try_wait().unwrap() {
            assert!(st.success(), "ferroplane-tgt exit: {st:?}");
            return;
        }
        assert!(Instant::now() < deadline, "ferroplane-tgt did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run `f` with a vhost-user-blk front end on `bdev`, controller removed after.
fn through_vhost<T>(t: &Tgt, bdev: &str, f: impl FnOnce(&mut Client) -> T) -> T {
    ok(
        &t.rpc,
        "vhost_create_blk_controller",
        json!({"ctrlr": "lv", "dev_name": bdev, "cpumask": "0x1"}),
    );
    let mut c = Client::connect(&t.dir.join("lv"));
    c.start_queue();
    let r = f(&mut c);
    drop(c);
    ok(&t.rpc, "vhost_delete_controller", json!({"ctrlr": "lv"}));
    r
}

/// The lvol bdevs as `bdev_get_bdevs` shows them (what identifies them), by name.
fn lvol_bdevs(rpc: &Path) -> Vec<Value> {
    let all = ok(rpc, "bdev_get_bdevs", json!({}));
    let mut v: Vec<Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["product_name"] == "Logical Volume")
        .map(|b| {
            json!({
                "name": b["name"], "aliases": b["aliases"], "uuid": b["uuid"],
                "num_blocks": b["num_blocks"], "block_size": b["block_size"],
                "snapshot": b["driver_specific"]["lvol"]["snapshot"],
                "lvs": b["driver_specific"]["lvol"]["lvol_store_uuid"],
            })
        })
        .collect();
    v.sort_by_key(|b| b["name"].as_str().unwrap_or_default().to_string());
    v
}

/// Threads of process `pid` whose name is `comm`.
fn threads_named(pid: u32, comm: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("comm"))
                        .is_ok_and(|c| c.trim_end() == comm)
                })
                .count()
        })
        .unwrap_or(0)
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn lvol_stores_come_back_after_a_restart() {
    let dir = tmpdir("lvexam-restart");
    let img = image(&dir);
    let cfg = config(&dir, "bdev_uring_create", &img);
    let cfg_s = cfg.to_str().unwrap();
    let t = start_with(&dir, "lvx1", &["--json", cfg_s]);
    let r = t.rpc.clone();
    ok(
        &r,
        "bdev_lvol_create_lvstore",
        json!({"bdev_name": "F0", "lvs_name": "lvs0", "cluster_sz": 1048576}),
    );
    ok(
        &r,
        "bdev_lvol_create",
        json!({"lvol_name": "vol", "size_in_mib": 4, "lvs_name": "lvs0"}),
    );
    ok(
        &r,
        "bdev_lvol_create",
        json!({"lvol_name": "thin", "size_in_mib": 8, "lvs_name": "lvs0", "thin_provision": true}),
    );
    let (a, b, c) = (pattern(1, 65536), pattern(2, 4096), pattern(3, 8192));
    through_vhost(&t, "lvs0/vol", |v| assert_eq!(v.write(100, &a), 0));
    ok(
        &r,
        "bdev_lvol_snapshot",
        json!({"lvol_name": "lvs0/vol", "snapshot_name": "snap"}),
    );
    through_vhost(&t, "lvs0/vol", |v| assert_eq!(v.write(100, &b), 0));
    through_vhost(&t, "lvs0/thin", |v| assert_eq!(v.write(2048, &c), 0));
    // Renames are kept on the device.
    ok(
        &r,
        "bdev_lvol_rename",
        json!({"old_name": "lvs0/thin", "new_name": "thin2"}),
    );
    ok(
        &r,
        "bdev_lvol_rename_lvstore",
        json!({"old_name": "lvs0", "new_name": "lvsA"}),
    );
    let stores = ok(&r, "bdev_lvol_get_lvstores", json!({}));
    let bdevs = lvol_bdevs(&r);
    assert_eq!(bdevs.len(), 3, "{bdevs:?}");
    let aliases: Vec<&str> = bdevs
        .iter()
        .map(|b| b["aliases"][0].as_str().unwrap())
        .collect();
    for want in ["lvsA/vol", "lvsA/snap", "lvsA/thin2"] {
        assert!(aliases.contains(&want), "{aliases:?}");
    }
    stop(t);

    // The same --json: the store and its lvols are back, with their data.
    let t = start_with(&dir, "lvx2", &["--json", cfg_s]);
    let r = t.rpc.clone();
    ok(&r, "bdev_wait_for_examine", json!({}));
    assert_eq!(ok(&r, "bdev_lvol_get_lvstores", json!({})), stores);
    assert_eq!(lvol_bdevs(&r), bdevs);
    let base = &ok(&r, "bdev_get_bdevs", json!({"name": "F0"}))[0];
    assert_eq!(base["claimed"], true, "{base}");
    through_vhost(&t, "lvsA/vol", |v| {
        let got = v.read_all(100, 65536);
        assert!(got[..4096] == b[..], "the write after the snapshot");
        assert!(
            got[4096..] == a[4096..],
            "the rest reads through the snapshot"
        );
    });
    through_vhost(&t, "lvsA/snap", |v| {
        assert!(
            v.read_all(100, 65536) == a,
            "the snapshot keeps the old data"
        );
        assert_ne!(v.write(0, &b), 0, "a snapshot is read-only");
    });
    through_vhost(&t, "lvsA/thin2", |v| assert!(v.read_all(2048, 8192) == c));
    // A saved configuration replays to the same state, waiting for the examine
    // before framework_wait_init answers.
    let saved = ok(&r, "save_config", json!({}));
    let subsystems = saved["subsystems"].as_array().unwrap();
    let bdev_sub = subsystems
        .iter()
        .find(|s| s["subsystem"] == "bdev")
        .unwrap();
    let last = bdev_sub["config"].as_array().unwrap().last().unwrap();
    assert_eq!(last["method"], "bdev_wait_for_examine", "{bdev_sub}");
    let cfg2 = dir.join("saved.json");
    std::fs::write(&cfg2, saved.to_string()).unwrap();
    stop(t);
    let t = start_with(&dir, "lvx3", &["--json", cfg2.to_str().unwrap()]);
    assert_eq!(ok(&t.rpc, "bdev_lvol_get_lvstores", json!({})), stores);
    assert_eq!(lvol_bdevs(&t.rpc), bdevs);
    stop(t);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn base_removal_closes_the_store_and_its_lvol_bdevs() {
    let dir = tmpdir("lvexam-remove");
    let img = image(&dir);
    let t = start_with(&dir, "lvrm", &[]);
    let r = t.rpc.clone();
    let pid = t.child.id();
    let create_base = || {
        ok(
            &r,
            "bdev_uring_create",
            json!({"name": "F0", "filename": img, "block_size": 512}),
        );
        ok(&r, "bdev_wait_for_examine", json!({}));
    };
    create_base();
    assert_eq!(ok(&r, "bdev_lvol_get_lvstores", json!({})), json!([]));
    ok(
        &r,
        "bdev_lvol_create_lvstore",
        json!({"bdev_name": "F0", "lvs_name": "lvs0", "cluster_sz": 1048576}),
    );
    for n in ["v0", "v1"] {
        ok(
            &r,
            "bdev_lvol_create",
            json!({"lvol_name": n, "size_in_mib": 2, "lvs_name": "lvs0"}),
        );
    }
    let bdevs = lvol_bdevs(&r);
    assert_eq!(threads_named(pid, "lvs-lvs0"), 1);
    // A vhost controller holds lvs0/v0 open: it gets the remove event and lets go.
    ok(
        &r,
        "vhost_create_blk_controller",
        json!({"ctrlr": "held", "dev_name": "lvs0/v0", "cpumask": "0x1"}),
    );
    let data = pattern(5, 8192);
    {
        let mut v = Client::connect(&t.dir.join("held"));
        v.start_queue();
        assert_eq!(v.write(8, &data), 0);
    }
    ok(&r, "bdev_uring_delete", json!({"name": "F0"}));
    wait_for("the store to close", || {
        ok(&r, "bdev_lvol_get_lvstores", json!({})) == json!([])
    });
    wait_for("the lvol bdevs to go", || lvol_bdevs(&r).is_empty());
    wait_for("the store's worker thread to end", || {
        threads_named(pid, "lvs-lvs0") == 0
    });
    let e = call(&r, "bdev_get_bdevs", json!({"name": "F0"}));
    assert!(e.get("error").is_some(), "{e}");
    // The store was closed without writing; the same file again: examined, the
    // store recovered with its lvols and data.
    create_base();
    assert_eq!(lvol_bdevs(&r), bdevs);
    ok(&r, "vhost_delete_controller", json!({"ctrlr": "held"}));
    through_vhost(&t, "lvs0/v0", |v| assert!(v.read_all(8, 8192) == data));
    // And it can be deleted for good.
    ok(&r, "bdev_lvol_delete_lvstore", json!({"lvs_name": "lvs0"}));
    ok(&r, "bdev_uring_delete", json!({"name": "F0"}));
    create_base();
    assert_eq!(ok(&r, "bdev_lvol_get_lvstores", json!({})), json!([]));
    stop(t);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_spdk_made_store_is_found_at_start() {
    let test = "an_spdk_made_store_is_found_at_start";
    let Some(spdk) = testkit::spdk_dir(test) else {
        return;
    };
    let dir = tmpdir("lvexam-spdk");
    let img = image(&dir);
    // SPDK's own config (small iobuf pools: the machine's hugepages are shared).
    let scfg = dir.join("spdk.json");
    let c = json!({"subsystems":[
        {"subsystem":"iobuf","config":[{"method":"iobuf_set_options",
            "params":{"small_pool_count":1024,"large_pool_count":128}}]},
        {"subsystem":"bdev","config":[{"method":"bdev_aio_create",
            "params":{"name":"F0","filename": img, "block_size":512}}]}]});
    std::fs::write(&scfg, c.to_string()).unwrap();
    let o = testkit::spdk::spdk_tgt(
        &spdk,
        &dir,
        &scfg,
        &[
            &["bdev_lvol_create_lvstore", "F0", "spdklvs", "-c", "1048576"],
            &["bdev_lvol_create", "-l", "spdklvs", "vol", "4"],
            &["bdev_lvol_create", "-l", "spdklvs", "-t", "thin", "8"],
        ],
    );
    let (lvs, vol, thin) = (o[0].clone(), o[1].clone(), o[2].clone());
    // SPDK writes data into the lvol with spdk_dd.
    let data = pattern(11, 1 << 20);
    std::fs::write(dir.join("d"), &data).unwrap();
    let dd = Command::new("timeout")
        .arg("180")
        .arg(spdk.join("build/bin/spdk_dd"))
        .args(["-m", "0x1", "--disable-cpumask-locks", "--json"])
        .arg(&scfg)
        .args(["--bs", "4096", "--if"])
        .arg(dir.join("d"))
        .args(["--ob", "spdklvs/vol", "--seek", "256"])
        .env("LD_LIBRARY_PATH", spdk.join("build/lib"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        dd.status.success(),
        "spdk_dd: {}",
        String::from_utf8_lossy(&dd.stderr)
    );

    // Ours, started on the same file, finds SPDK's store and lvols.
    let cfg = config(&dir, "bdev_aio_create", &img);
    let t = start_with(&dir, "lvspdk", &["--json", cfg.to_str().unwrap()]);
    ok(&t.rpc, "bdev_wait_for_examine", json!({}));
    let stores = ok(&t.rpc, "bdev_lvol_get_lvstores", json!({}));
    assert_eq!(stores.as_array().unwrap().len(), 1, "{stores}");
    assert_eq!(stores[0]["uuid"], lvs.as_str());
    assert_eq!(stores[0]["name"], "spdklvs");
    assert_eq!(stores[0]["base_bdev"], "F0");
    assert_eq!(stores[0]["cluster_size"], 1048576);
    let v = &ok(&t.rpc, "bdev_get_bdevs", json!({"name": "spdklvs/vol"}))[0];
    assert_eq!(v["name"], vol.as_str());
    assert_eq!(v["uuid"], vol.as_str());
    assert_eq!(v["aliases"], json!(["spdklvs/vol"]));
    assert_eq!(v["num_blocks"], 8192);
    let th = &ok(&t.rpc, "bdev_get_bdevs", json!({"name": "spdklvs/thin"}))[0];
    assert_eq!(th["name"], thin.as_str());
    through_vhost(&t, "spdklvs/vol", |c| {
        assert!(c.read_all(256 * 8, 1 << 20) == data, "spdk_dd's data");
    });
    stop(t);
    let _ = std::fs::remove_dir_all(&dir);
}
