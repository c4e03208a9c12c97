//! The bdev RPC methods through a real `ferroplane-tgt` process and the
//! `ferroplane-rpc` client: create, list, statistics, QoS, delete, bad parameters, and
//! a `save_config` → `--json` round trip.

mod common;

use common::{call, rpc_fails, rpc_json, start, tmpdir, wait_exit};
use serde_json::{json, Value};

const UUID: &str = "8a0c5e36-3d6e-4a53-9d4b-5f1f2b6a7c01";

#[test]
fn bdev_methods_and_config_round_trip() {
    let dir = tmpdir("rpc");
    let mut t = start(&dir, "a", &[]);
    let s = t.sock.clone();
    assert_eq!(call(&s, "framework_wait_init", None)["result"], json!(true));

    // Create: rpc.py's arguments (size in MiB), names back.
    assert_eq!(
        rpc_json(
            &s,
            &[
                "bdev_malloc_create",
                "-b",
                "Malloc0",
                "-u",
                UUID,
                "-o",
                "16",
                "8",
                "512"
            ]
        ),
        json!("Malloc0")
    );
    assert_eq!(
        rpc_json(&s, &["bdev_null_create", "Null0", "16", "4096"]),
        json!("Null0")
    );
    // An unnamed malloc bdev gets SPDK's MallocN name.
    let auto = rpc_json(&s, &["bdev_malloc_create", "1", "4096"]);
    let auto = auto.as_str().expect("a name").to_string();
    assert!(auto.starts_with("Malloc"), "{auto}");

    let b = rpc_json(&s, &["bdev_get_bdevs", "-b", "Malloc0"]);
    let m = &b[0];
    assert_eq!(m["name"], "Malloc0");
    assert_eq!(m["uuid"], UUID);
    assert_eq!(m["block_size"], 512);
    assert_eq!(m["num_blocks"], 8 * 2048);
    assert_eq!(m["optimal_io_boundary"], 16);
    assert_eq!(m["product_name"], "Malloc disk");
    assert_eq!(m["claimed"], false);
    assert_eq!(m["supported_io_types"]["compare_and_write"], true);
    let n = &rpc_json(&s, &["bdev_get_bdevs", "-b", "Null0"])[0];
    assert_eq!(n["num_blocks"], 16 * 256);
    assert_eq!(n["supported_io_types"]["compare"], false);
    assert_eq!(
        rpc_json(&s, &["bdev_get_bdevs"]).as_array().unwrap().len(),
        3
    );

    // Bad parameters: clear errors, nothing created.
    let e = rpc_fails(&s, &["bdev_malloc_create", "-b", "Malloc0", "8", "512"]);
    assert!(e.contains("-17") && e.contains("in use"), "{e}");
    let e = rpc_fails(&s, &["bdev_malloc_create", "-b", "Bad", "8", "1000"]);
    assert!(e.contains("-32602") && e.contains("block_size"), "{e}");
    let e = rpc_fails(&s, &["bdev_null_create", "Bad", "16", "256"]);
    assert!(e.contains("-32602") && e.contains("block_size"), "{e}");
    let e = rpc_fails(&s, &["bdev_get_bdevs", "-b", "nope"]);
    assert!(e.contains("-19") && e.contains("nope"), "{e}");
    let e = rpc_fails(&s, &["bdev_malloc_delete", "nope"]);
    assert!(e.contains("-19"), "{e}");
    let e = rpc_fails(&s, &["bdev_null_delete", "Malloc0"]);
    assert!(e.contains("not a null bdev"), "{e}");
    let e = rpc_fails(
        &s,
        &["bdev_set_qos_limit", "Malloc0", "--rw_ios_per_sec", "1500"],
    );
    assert!(e.contains("multiple of 1000"), "{e}");
    let e = rpc_fails(
        &s,
        &["bdev_set_qos_limit", "nope", "--rw_ios_per_sec", "1000"],
    );
    assert!(e.contains("-19"), "{e}");
    for (method, params, what) in [
        (
            "bdev_malloc_create",
            json!({"name": "Z", "num_blocks": 0, "block_size": 512}),
            "num_blocks",
        ),
        (
            "bdev_malloc_create",
            json!({"name": "Z", "num_blocks": 8, "block_size": 512, "uuid": "xyz"}),
            "uuid",
        ),
        (
            "bdev_malloc_create",
            json!({"name": "Z", "num_blocks": 8}),
            "block_size",
        ),
        (
            "bdev_malloc_create",
            json!({"name": "Z", "num_blocks": 8, "block_size": 512, "bogus": 1}),
            "bogus",
        ),
        (
            "bdev_null_create",
            json!({"name": "Z", "num_blocks": 0, "block_size": 512}),
            "num_blocks",
        ),
        (
            "bdev_set_qos_limit",
            json!({"name": "Malloc0"}),
            "at least one",
        ),
        ("bdev_get_iostat", json!({"name": "nope"}), "nope"),
    ] {
        let v = call(&s, method, Some(params.clone()));
        let err = v
            .get("error")
            .unwrap_or_else(|| panic!("{method} {params} accepted: {v}"));
        assert!(
            err["message"].as_str().unwrap().contains(what),
            "{method} {params}: {err}"
        );
    }
    assert_eq!(
        rpc_json(&s, &["bdev_get_bdevs"]).as_array().unwrap().len(),
        3
    );

    // QoS set at run time, shown by bdev_get_bdevs.
    assert_eq!(
        rpc_json(
            &s,
            &[
                "bdev_set_qos_limit",
                "Malloc0",
                "--rw_ios_per_sec",
                "20000",
                "--w_mbytes_per_sec",
                "100"
            ]
        ),
        Value::String(String::new())
    );
    let lim = &rpc_json(&s, &["bdev_get_bdevs", "-b", "Malloc0"])[0]["assigned_rate_limits"];
    assert_eq!(lim["rw_ios_per_sec"], 20000);
    assert_eq!(lim["w_mbytes_per_sec"], 100);
    assert_eq!(lim["r_mbytes_per_sec"], 0);

    // Statistics (no writes yet; the lvol module's examine has read each new bdev's
    // first page, as SPDK's does; every bdev listed).
    let st = rpc_json(&s, &["bdev_get_iostat"]);
    assert!(st["tick_rate"].as_u64().unwrap() > 0);
    let names: Vec<&str> = st["bdevs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Malloc0", "Null0", auto.as_str()]);
    assert_eq!(st["bdevs"][0]["num_write_ops"], 0);
    assert!(st["bdevs"][0]["num_read_ops"].as_u64().unwrap() <= 1);
    let one = rpc_json(&s, &["bdev_get_iostat", "-b", "Null0"]);
    assert_eq!(one["bdevs"].as_array().unwrap().len(), 1);

    // Delete the unnamed one; save; load into a new target; same bdevs come back.
    assert_eq!(
        rpc_json(&s, &["bdev_malloc_delete", &auto]),
        Value::String(String::new())
    );
    let saved = call(&s, "save_config", None)["result"].clone();
    // rpc.py's way (the client asks framework_get_subsystems, then framework_get_config
    // for each) gives the same configuration as the server's own save_config.
    assert_eq!(rpc_json(&s, &["save_config"]), saved);
    assert!(
        rpc_fails(&s, &["framework_get_config", "no_such_subsystem"])
            .contains("no subsystem named")
    );
    let bdev_cfg = saved["subsystems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["subsystem"] == "bdev")
        .expect("a bdev subsystem in save_config")["config"]
        .clone();
    let methods: Vec<&str> = bdev_cfg
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        [
            "bdev_malloc_create",
            "bdev_set_qos_limit",
            "bdev_null_create",
            "bdev_wait_for_examine"
        ]
    );
    let cfg = dir.join("saved.json");
    std::fs::write(&cfg, saved.to_string()).unwrap();
    // SAFETY: signalling our own child by PID.
    unsafe { libc::kill(t.child.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut t), Some(0));

    let mut t2 = start(&dir, "b", &["--json", cfg.to_str().unwrap()]);
    let s2 = t2.sock.clone();
    assert_eq!(
        call(&s2, "framework_wait_init", None)["result"],
        json!(true)
    );
    let again = rpc_json(&s2, &["bdev_get_bdevs"]);
    let again = again.as_array().unwrap();
    assert_eq!(again.len(), 2);
    assert_eq!(again[0]["name"], "Malloc0");
    assert_eq!(again[0]["uuid"], UUID);
    assert_eq!(again[0]["optimal_io_boundary"], 16);
    assert_eq!(again[0]["assigned_rate_limits"]["rw_ios_per_sec"], 20000);
    assert_eq!(again[1]["name"], "Null0");
    assert_eq!(again[1]["uuid"], n["uuid"]);
    let saved2 = call(&s2, "save_config", None)["result"].clone();
    assert_eq!(saved, saved2, "save → load → save changed the config");

    assert_eq!(
        rpc_json(&s2, &["bdev_malloc_delete", "Malloc0"]),
        Value::String(String::new())
    );
    assert_eq!(
        rpc_json(&s2, &["bdev_null_delete", "Null0"]),
        Value::String(String::new())
    );
    assert_eq!(rpc_json(&s2, &["bdev_get_bdevs"]), json!([]));
    // SAFETY: signalling our own child by PID.
    unsafe { libc::kill(t2.child.id() as i32, libc::SIGINT) };
    assert_eq!(wait_exit(&mut t2), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// bdev_uring_create/delete and bdev_aio_create/delete through the client: create on a
/// file, list, refuse bad parameters, save_config → --json → the same bdevs, delete.
#[test]
fn uring_and_aio_methods_and_config_round_trip() {
    let dir = tmpdir("kfile");
    // /var/tmp takes O_DIRECT (the temp dir may be tmpfs, which does not).
    let file = format!("/var/tmp/fp-bdev-kfile-{}", std::process::id());
    std::fs::write(&file, vec![7u8; 1 << 20]).unwrap();
    let mut t = start(&dir, "ka", &[]);
    let s = t.sock.clone();
    assert_eq!(call(&s, "framework_wait_init", None)["result"], json!(true));
    assert_eq!(
        rpc_json(&s, &["bdev_uring_create", &file, "Uring0", "512"]),
        json!("Uring0")
    );
    assert_eq!(
        rpc_json(&s, &["bdev_aio_create", &file, "Aio0", "4096", "-r"]),
        json!("Aio0")
    );
    let list = rpc_json(&s, &["bdev_get_bdevs"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["name"], "Uring0");
    assert_eq!(list[0]["num_blocks"], 2048);
    assert_eq!(list[0]["driver_specific"]["uring"]["filename"], file);
    assert_eq!(list[1]["name"], "Aio0");
    assert_eq!(list[1]["block_size"], 4096);
    assert_eq!(list[1]["num_blocks"], 256);
    assert_eq!(list[1]["supported_io_types"]["write"], false, "read-only");
    assert_eq!(list[1]["driver_specific"]["aio"]["readonly"], true);

    let e = rpc_fails(
        &s,
        &["bdev_uring_create", "/var/tmp/fp-no-such-file", "U1", "512"],
    );
    assert!(e.contains("No such file"), "{e}");
    let e = rpc_fails(&s, &["bdev_aio_create", &file, "A1", "1000"]);
    assert!(
        e.contains("block_size") && e.contains("power of two"),
        "{e}"
    );
    let e = rpc_fails(&s, &["bdev_aio_create", &file, "Uring0", "512"]);
    assert!(e.contains("in use"), "{e}");
    let e = rpc_fails(&s, &["bdev_uring_create", &file, "U2"]);
    assert!(e.contains("give block_size"), "{e}");
    let e = rpc_fails(&s, &["bdev_uring_delete", "Aio0"]);
    assert!(e.contains("not a uring bdev"), "{e}");

    let saved = call(&s, "save_config", None)["result"].clone();
    let cfg = dir.join("saved.json");
    std::fs::write(&cfg, saved.to_string()).unwrap();
    let bdev_cfg = saved["subsystems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["subsystem"] == "bdev")
        .unwrap()["config"]
        .clone();
    assert_eq!(bdev_cfg[0]["method"], "bdev_uring_create");
    assert_eq!(bdev_cfg[0]["params"]["filename"], file);
    assert_eq!(bdev_cfg[1]["method"], "bdev_aio_create");
    assert_eq!(bdev_cfg[1]["params"]["readonly"], true);
    // SAFETY: signalling our own child by PID.
    unsafe { libc::kill(t.child.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut t), Some(0));

    let mut t2 = start(&dir, "kb", &["--json", cfg.to_str().unwrap()]);
    let s2 = t2.sock.clone();
    assert_eq!(
        call(&s2, "framework_wait_init", None)["result"],
        json!(true)
    );
    let again = rpc_json(&s2, &["bdev_get_bdevs"]);
    assert_eq!(again.as_array().unwrap().len(), 2);
    assert_eq!(again[0]["uuid"], list[0]["uuid"]);
    assert_eq!(again[1]["uuid"], list[1]["uuid"]);
    assert_eq!(call(&s2, "save_config", None)["result"], saved);
    assert_eq!(
        rpc_json(&s2, &["bdev_uring_delete", "Uring0"]),
        Value::String(String::new())
    );
    assert_eq!(
        rpc_json(&s2, &["bdev_aio_delete", "Aio0"]),
        Value::String(String::new())
    );
    assert_eq!(rpc_json(&s2, &["bdev_get_bdevs"]), json!([]));
    // SAFETY: signalling our own child by PID.
    unsafe { libc::kill(t2.child.id() as i32, libc::SIGINT) };
    assert_eq!(wait_exit(&mut t2), Some(0));
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir_all(&dir);
}
