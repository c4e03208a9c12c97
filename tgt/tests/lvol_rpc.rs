//! The lvol RPC methods through a real `ferroplane-tgt` process: an lvol store on a
//! malloc bdev, thin lvols, snapshot, clone, resize, delete (a snapshot with one clone
//! merges into it), delete of the store, and refused requests.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{call, ok, tmpdir, Tgt};
use serde_json::{json, Value};

fn start() -> Tgt {
    common::start(&tmpdir("lvol"), "lvol", &[])
}

/// The message of a call that must fail.
fn fails(sock: &Path, method: &str, params: Value) -> String {
    common::err(sock, method, params).1
}

fn bdev(sock: &Path, name: &str) -> Value {
    ok(sock, "bdev_get_bdevs", json!({"name": name}))[0].clone()
}

#[test]
fn lvol_store_lifecycle_over_rpc() {
    let t = start();
    let s = t.sock.as_path();
    ok(s, "framework_wait_init", json!({}));
    ok(
        s,
        "bdev_malloc_create",
        json!({"name": "Base0", "num_blocks": 65536, "block_size": 512}),
    );
    let lvs = ok(
        s,
        "bdev_lvol_create_lvstore",
        json!({"bdev_name": "Base0", "lvs_name": "lvs0", "cluster_sz": 1048576}),
    );
    let lvs = lvs.as_str().unwrap().to_string();
    assert_eq!(lvs.len(), 36);
    let m = fails(
        s,
        "bdev_lvol_create_lvstore",
        json!({"bdev_name": "Base0", "lvs_name": "lvs1"}),
    );
    assert!(m.contains("claim"), "{m}");
    let l = ok(s, "bdev_lvol_get_lvstores", json!({}));
    assert_eq!(l.as_array().unwrap().len(), 1);
    assert_eq!(l[0]["name"], "lvs0");
    assert_eq!(l[0]["uuid"], lvs.as_str());
    assert_eq!(l[0]["base_bdev"], "Base0");
    assert_eq!(l[0]["cluster_size"], 1048576);
    let free0 = l[0]["free_clusters"].as_u64().unwrap();
    assert!(free0 > 25 && free0 < 32, "{free0}");

    // A thin lvol takes no cluster; a thick one takes its size.
    let thin = ok(
        s,
        "bdev_lvol_create",
        json!({"lvol_name": "thin0", "size_in_mib": 8, "lvs_name": "lvs0", "thin_provision": true}),
    );
    let thick = ok(
        s,
        "bdev_lvol_create",
        json!({"lvol_name": "lv0", "size_in_mib": 4, "uuid": lvs}),
    );
    let free = ok(s, "bdev_lvol_get_lvstores", json!({"lvs_name": "lvs0"}))[0]["free_clusters"]
        .as_u64()
        .unwrap();
    assert_eq!(free, free0 - 4);
    let b = bdev(s, "lvs0/lv0");
    assert_eq!(b["name"], thick);
    assert_eq!(b["num_blocks"], 8192);
    assert_eq!(b["block_size"], 512);
    assert_eq!(b["product_name"], "Logical Volume");
    assert_eq!(bdev(s, "lvs0/thin0")["name"], thin);
    let m = fails(
        s,
        "bdev_lvol_create",
        json!({"lvol_name": "lv0", "size_in_mib": 1, "lvs_name": "lvs0"}),
    );
    assert!(m.contains("exists"), "{m}");
    let m = fails(
        s,
        "bdev_lvol_create",
        json!({"lvol_name": "x", "size_in_mib": 1, "lvs_name": "nope"}),
    );
    assert!(m.contains("no lvol store"), "{m}");
    let m = fails(
        s,
        "bdev_lvol_create",
        json!({"lvol_name": "big", "size_in_mib": 64, "lvs_name": "lvs0"}),
    );
    assert!(m.contains("no free clusters"), "{m}");

    // Snapshot and clone.
    let snap = ok(
        s,
        "bdev_lvol_snapshot",
        json!({"lvol_name": "lvs0/lv0", "snapshot_name": "snap0"}),
    );
    assert_eq!(bdev(s, "lvs0/snap0")["name"], snap);
    assert_eq!(
        bdev(s, "lvs0/snap0")["driver_specific"]["lvol"]["snapshot"],
        true
    );
    let clone = ok(
        s,
        "bdev_lvol_clone",
        json!({"snapshot_name": "lvs0/snap0", "clone_name": "clone0"}),
    );
    assert_eq!(bdev(s, "lvs0/clone0")["num_blocks"], 8192);
    let m = fails(
        s,
        "bdev_lvol_clone",
        json!({"snapshot_name": "lvs0/lv0", "clone_name": "c2"}),
    );
    assert!(m.contains("not read-only"), "{m}");

    // Resize the thin lvol.
    ok(
        s,
        "bdev_lvol_resize",
        json!({"name": "lvs0/thin0", "size_in_mib": 16}),
    );
    assert_eq!(bdev(s, "lvs0/thin0")["num_blocks"], 32768);

    // The snapshot has two clones (lv0, clone0): refused; after clone0 goes it merges.
    let m = fails(s, "bdev_lvol_delete", json!({"name": "lvs0/snap0"}));
    assert!(m.contains("2 clones"), "{m}");
    ok(s, "bdev_lvol_delete", json!({"name": clone}));
    ok(s, "bdev_lvol_delete", json!({"name": "lvs0/snap0"}));
    let free = ok(s, "bdev_lvol_get_lvstores", json!({}))[0]["free_clusters"]
        .as_u64()
        .unwrap();
    assert_eq!(free, free0 - 4, "lv0 owns its 4 clusters again");
    assert!(
        call(s, "bdev_get_bdevs", Some(json!({"name": "lvs0/snap0"})))
            .get("error")
            .is_some()
    );

    // Inflate and decouple: a snapshot "sT" of "thin0" with a second clone "cT".
    ok(
        s,
        "bdev_lvol_snapshot",
        json!({"lvol_name": "lvs0/thin0", "snapshot_name": "sT"}),
    );
    ok(
        s,
        "bdev_lvol_clone",
        json!({"snapshot_name": "lvs0/sT", "clone_name": "cT"}),
    );
    let lv = |n: &str| bdev(s, n)["driver_specific"]["lvol"].clone();
    assert_eq!(lv("lvs0/cT")["base_snapshot"], "sT");
    assert_eq!(lv("lvs0/sT")["clones"].as_array().unwrap().len(), 2);
    let free_before = ok(s, "bdev_lvol_get_lvstores", json!({}))[0]["free_clusters"]
        .as_u64()
        .unwrap();
    // Inflating the 16 MiB clone gives it all its clusters and no parent.
    ok(s, "bdev_lvol_inflate", json!({"name": "lvs0/cT"}));
    let c = lv("lvs0/cT");
    assert_eq!(c["clone"], false, "{c}");
    assert_eq!(c["thin_provision"], false, "{c}");
    assert_eq!(c["num_allocated_clusters"], 16, "{c}");
    let free_after = ok(s, "bdev_lvol_get_lvstores", json!({}))[0]["free_clusters"]
        .as_u64()
        .unwrap();
    assert_eq!(free_after, free_before - 16);
    assert_eq!(lv("lvs0/sT")["clones"], json!(["thin0"]));
    // Decoupling thin0 from sT (which has no parent) leaves sT without clones.
    ok(
        s,
        "bdev_lvol_decouple_parent",
        json!({"name": "lvs0/thin0"}),
    );
    assert_eq!(lv("lvs0/thin0")["clone"], false);
    assert_eq!(lv("lvs0/sT")["clones"], json!([]));
    let m = fails(
        s,
        "bdev_lvol_decouple_parent",
        json!({"name": "lvs0/thin0"}),
    );
    assert!(m.contains("no parent"), "{m}");
    let m = fails(s, "bdev_lvol_inflate", json!({"name": "lvs0/nope"}));
    assert!(m.contains("no lvol"), "{m}");
    // Renames: refused onto an existing name or with a bad one; the alias follows.
    let m = fails(
        s,
        "bdev_lvol_rename",
        json!({"old_name": "lvs0/cT", "new_name": "thin0"}),
    );
    assert!(m.contains("exists"), "{m}");
    let m = fails(
        s,
        "bdev_lvol_rename",
        json!({"old_name": "lvs0/cT", "new_name": "a/b"}),
    );
    assert!(m.contains("without '/'"), "{m}");
    let cu = bdev(s, "lvs0/cT")["name"].clone();
    ok(
        s,
        "bdev_lvol_rename",
        json!({"old_name": "lvs0/cT", "new_name": "cT2"}),
    );
    assert_eq!(bdev(s, "lvs0/cT2")["name"], cu);
    ok(
        s,
        "bdev_malloc_create",
        json!({"name": "Base1", "num_blocks": 16384, "block_size": 512}),
    );
    ok(
        s,
        "bdev_lvol_create_lvstore",
        json!({"bdev_name": "Base1", "lvs_name": "lvs1", "cluster_sz": 1048576}),
    );
    let m = fails(
        s,
        "bdev_lvol_rename_lvstore",
        json!({"old_name": "lvs1", "new_name": "lvs0"}),
    );
    assert!(m.contains("exists"), "{m}");
    ok(
        s,
        "bdev_lvol_rename_lvstore",
        json!({"old_name": "lvs1", "new_name": "lvsB"}),
    );
    assert_eq!(
        ok(s, "bdev_lvol_get_lvstores", json!({"lvs_name": "lvsB"}))[0]["base_bdev"],
        "Base1"
    );
    ok(s, "bdev_lvol_delete_lvstore", json!({"lvs_name": "lvsB"}));

    // Deleting the store removes its lvols and releases the base bdev.
    ok(s, "bdev_lvol_delete_lvstore", json!({"lvs_name": "lvs0"}));
    assert_eq!(ok(s, "bdev_lvol_get_lvstores", json!({})), json!([]));
    assert!(call(s, "bdev_get_bdevs", Some(json!({"name": "lvs0/lv0"})))
        .get("error")
        .is_some());
    let base = bdev(s, "Base0");
    assert!(
        base["claimed"] == false || base["claimed"].is_null(),
        "{base}"
    );
    // The base can carry a new store.
    ok(
        s,
        "bdev_lvol_create_lvstore",
        json!({"bdev_name": "Base0", "lvs_name": "lvs2"}),
    );
    ok(s, "spdk_kill_instance", json!({"sig_name": "SIGTERM"}));
    // The lvol subsystem unloads the store at exit and the target leaves cleanly.
    let mut t = t;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = t.child.try_wait().unwrap() {
            assert!(st.success(), "ferroplane-tgt exit: {st:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ferroplane-tgt did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
