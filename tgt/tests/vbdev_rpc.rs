//! The virtual bdev RPC methods (bdev_split_*, bdev_raid_*, bdev_passthru_*) through a
//! real `ferroplane-tgt`: create over malloc bases, describe, refuse bad parameters,
//! and a `save_config` → `--json` → `save_config` round trip that rebuilds the stack.

mod common;

use std::path::Path;

use common::{err, ok, start, wait_exit};
use serde_json::{json, Value};

fn names(sock: &Path) -> Vec<String> {
    let v = ok(sock, "bdev_get_bdevs", json!({}));
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect()
}

fn malloc(sock: &Path, name: &str, blocks: u64) {
    let r = ok(
        sock,
        "bdev_malloc_create",
        json!({"name": name, "num_blocks": blocks, "block_size": 512}),
    );
    assert_eq!(r, json!(name));
}

/// The bdev subsystem's calls in a saved configuration.
fn bdev_config(saved: &Value) -> Vec<Value> {
    saved["subsystems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["subsystem"] == "bdev")
        .unwrap()["config"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn virtual_bdevs_over_rpc_and_config_round_trip() {
    let dir = std::env::temp_dir().join(format!("fp-vbdev-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut t = start(&dir, "a", &["-m", "0x1"]);
    let s = t.sock.clone();
    assert_eq!(ok(&s, "framework_wait_init", json!(null)), json!(true));
    // 4 MiB bases (8192 blocks of 512).
    for n in ["M0", "M1", "M2", "M3", "M4", "M5"] {
        malloc(&s, n, 8192);
    }

    // split: 4 x 1 MiB of M0.
    let parts = ok(
        &s,
        "bdev_split_create",
        json!({"base_bdev": "M0", "split_count": 4, "split_size_mb": 1}),
    );
    assert_eq!(parts, json!(["M0p0", "M0p1", "M0p2", "M0p3"]));
    let p1 = &ok(&s, "bdev_get_bdevs", json!({"name": "M0p1"}))[0];
    assert_eq!(p1["num_blocks"], 2048);
    assert_eq!(p1["driver_specific"]["split"]["offset_blocks"], 2048);
    assert_eq!(
        ok(&s, "bdev_get_bdevs", json!({"name": "M0"}))[0]["claimed"],
        true
    );

    // raid0 over M1, M2 (64 KiB strips); raid1 over M3, M4.
    assert_eq!(
        ok(
            &s,
            "bdev_raid_create",
            json!({"name": "R0", "raid_level": "raid0", "strip_size_kb": 64,
                   "base_bdevs": ["M1", "M2"]})
        ),
        json!(true)
    );
    // The older space-separated base list and the level as a digit.
    assert_eq!(
        ok(
            &s,
            "bdev_raid_create",
            json!({"name": "R1", "raid_level": "1", "base_bdevs": "M3 M4"})
        ),
        json!(true)
    );
    let r0 = &ok(&s, "bdev_get_bdevs", json!({"name": "R0"}))[0];
    assert_eq!(r0["num_blocks"], 16384);
    assert_eq!(r0["optimal_io_boundary"], 128);
    assert_eq!(r0["product_name"], "Raid Volume");
    let raids = ok(&s, "bdev_raid_get_bdevs", json!({"category": "online"}));
    let raids = raids.as_array().unwrap();
    assert_eq!(raids.len(), 2);
    assert_eq!(raids[1]["name"], "R1");
    assert_eq!(raids[1]["raid_level"], "raid1");
    assert_eq!(raids[1]["num_base_bdevs_operational"], 2);
    assert_eq!(
        ok(&s, "bdev_raid_get_bdevs", json!({"category": "offline"})),
        json!([])
    );

    // passthru over a split partition.
    assert_eq!(
        ok(
            &s,
            "bdev_passthru_create",
            json!({"base_bdev_name": "M0p3", "name": "PT0"})
        ),
        json!("PT0")
    );

    // Bad parameters: clear errors, nothing made.
    let before = names(&s);
    for (method, params, code, what) in [
        (
            "bdev_split_create",
            json!({"base_bdev": "nope", "split_count": 2}),
            -19,
            "nope",
        ),
        (
            "bdev_split_create",
            json!({"base_bdev": "M5", "split_count": 0}),
            -32602,
            "split_count",
        ),
        (
            "bdev_split_create",
            json!({"base_bdev": "M5", "split_count": 2, "split_size_mb": 4}),
            -32602,
            "split_size_mb",
        ),
        (
            "bdev_split_create",
            json!({"base_bdev": "M1", "split_count": 2}),
            -1,
            "claimed",
        ),
        ("bdev_split_delete", json!({"base_bdev": "M5"}), -19, "M5"),
        (
            "bdev_raid_create",
            json!({"name": "RX", "raid_level": "raid5", "base_bdevs": ["M5"]}),
            -32602,
            "raid_level",
        ),
        (
            "bdev_raid_create",
            json!({"name": "RX", "raid_level": "raid0", "base_bdevs": ["M5"]}),
            -32602,
            "strip_size_kb",
        ),
        (
            "bdev_raid_create",
            json!({"name": "RX", "raid_level": "raid1", "base_bdevs": ["M5", "nope"]}),
            -19,
            "nope",
        ),
        (
            "bdev_raid_create",
            json!({"name": "RX", "raid_level": "raid1", "base_bdevs": ["M5", "M3"]}),
            -1,
            "claimed",
        ),
        (
            "bdev_raid_create",
            json!({"name": "R0", "raid_level": "raid1", "base_bdevs": ["M5", "M2"]}),
            -17,
            "R0",
        ),
        (
            "bdev_raid_create",
            json!({"name": "RX", "raid_level": "raid1", "base_bdevs": ["M5"], "superblock": true}),
            -32602,
            "superblock",
        ),
        (
            "bdev_raid_get_bdevs",
            json!({"category": "bogus"}),
            -32602,
            "category",
        ),
        ("bdev_raid_delete", json!({"name": "M5"}), -19, "not a raid"),
        (
            "bdev_passthru_create",
            json!({"base_bdev_name": "nope", "name": "PTX"}),
            -19,
            "nope",
        ),
        (
            "bdev_passthru_create",
            json!({"base_bdev_name": "M5", "name": "PT0"}),
            -17,
            "PT0",
        ),
        (
            "bdev_passthru_create",
            json!({"base_bdev_name": "M2", "name": "PTX"}),
            -1,
            "claimed",
        ),
        (
            "bdev_passthru_delete",
            json!({"name": "R0"}),
            -19,
            "not a passthru",
        ),
    ] {
        let (c, m) = err(&s, method, params.clone());
        assert_eq!(c, code, "{method} {params}: {m}");
        assert!(m.contains(what), "{method} {params}: {m}");
    }
    assert_eq!(names(&s), before, "a refused call left something behind");
    assert_eq!(
        ok(&s, "bdev_get_bdevs", json!({"name": "M5"}))[0]["claimed"],
        false
    );

    // Save, load into a new target, save again: the same stack and configuration.
    let saved = ok(&s, "save_config", json!(null));
    let bdev_cfg = bdev_config(&saved);
    let methods: Vec<&str> = bdev_cfg
        .iter()
        .map(|c| c["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods
            .iter()
            .filter(|m| **m == "bdev_split_create")
            .count(),
        1,
        "{methods:?}"
    );
    assert_eq!(
        methods.iter().filter(|m| **m == "bdev_raid_create").count(),
        2
    );
    assert_eq!(
        methods
            .iter()
            .filter(|m| **m == "bdev_passthru_create")
            .count(),
        1
    );
    let listed = names(&s);
    let r1_uuid = ok(&s, "bdev_get_bdevs", json!({"name": "R1"}))[0]["uuid"].clone();
    let cfg = dir.join("saved.json");
    std::fs::write(&cfg, saved.to_string()).unwrap();
    // SAFETY: signalling our own child by PID.
    unsafe { libc::kill(t.child.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut t), Some(0));

    let mut t2 = start(&dir, "b", &["-m", "0x1", "--json", cfg.to_str().unwrap()]);
    let s2 = t2.sock.clone();
    assert_eq!(ok(&s2, "framework_wait_init", json!(null)), json!(true));
    let mut a = listed.clone();
    let mut b = names(&s2);
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert_eq!(
        ok(&s2, "bdev_get_bdevs", json!({"name": "R1"}))[0]["uuid"],
        r1_uuid
    );
    assert_eq!(
        ok(&s2, "bdev_raid_get_bdevs", json!({"category": "all"}))
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let saved2 = ok(&s2, "save_config", json!(null));
    assert_eq!(saved, saved2, "save → load → save changed the config");

    // Deletes: the stack comes apart and the bases are free again.
    assert_eq!(
        ok(&s2, "bdev_passthru_delete", json!({"name": "PT0"})),
        json!(true)
    );
    assert_eq!(
        ok(&s2, "bdev_split_delete", json!({"base_bdev": "M0"})),
        json!(true)
    );
    // A RAID1 losing a mirror stays, degraded; a RAID0 losing a base goes.
    assert_eq!(
        ok(&s2, "bdev_malloc_delete", json!({"name": "M4"})),
        json!(true)
    );
    let r1 = ok(&s2, "bdev_raid_get_bdevs", json!({"category": "online"}));
    let r1 = r1
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "R1")
        .expect("R1 still online")
        .clone();
    assert_eq!(r1["degraded"], true);
    assert_eq!(r1["num_base_bdevs_operational"], 1);
    assert_eq!(r1["base_bdevs_list"][1]["is_configured"], false);
    // The degraded array's configuration replays to the same degraded array.
    let saved3 = ok(&s2, "save_config", json!(null));
    let raid_call = bdev_config(&saved3)
        .into_iter()
        .find(|c| c["method"] == "bdev_raid_create" && c["params"]["name"] == "R1")
        .unwrap();
    assert_eq!(
        raid_call["params"]["base_bdevs"],
        json!(["M3", "removed_base_bdev_1"]),
        "SPDK's name for the removed slot"
    );
    let cfg3 = dir.join("degraded.json");
    std::fs::write(&cfg3, saved3.to_string()).unwrap();
    let mut t3 = start(&dir, "c", &["--json", cfg3.to_str().unwrap()]);
    let s3 = t3.sock.clone();
    assert_eq!(ok(&s3, "framework_wait_init", json!(null)), json!(true));
    let raids = |s: &Path| ok(s, "bdev_raid_get_bdevs", json!({"category": "all"}));
    assert_eq!(raids(&s3), raids(&s2), "the same arrays, R1 degraded");
    assert_eq!(
        ok(&s3, "bdev_get_bdevs", json!({"name": "R1"}))[0]["num_blocks"],
        ok(&s2, "bdev_get_bdevs", json!({"name": "R1"}))[0]["num_blocks"]
    );
    assert_eq!(ok(&s3, "save_config", json!(null)), saved3);
    // SAFETY: signalling our own child by PID.
    unsafe { libc::kill(t3.child.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut t3), Some(0));
    assert_eq!(
        ok(&s2, "bdev_malloc_delete", json!({"name": "M2"})),
        json!(true)
    );
    assert!(
        !names(&s2).contains(&"R0".to_string()),
        "R0 outlived its base"
    );
    assert_eq!(
        ok(&s2, "bdev_raid_delete", json!({"name": "R1"})),
        json!(true)
    );
    let mut left = names(&s2);
    left.sort();
    assert_eq!(left, ["M0", "M1", "M3", "M5"]);
    for n in left {
        assert_eq!(
            ok(&s2, "bdev_get_bdevs", json!({"name": n}))[0]["claimed"],
            false,
            "{n}"
        );
    }
    // SAFETY: signalling our own child by PID.
    unsafe { libc::kill(t2.child.id() as i32, libc::SIGINT) };
    assert_eq!(wait_exit(&mut t2), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
