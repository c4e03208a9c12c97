//! The `ferroplane-rpc` binary, run as a process against a test server in
//! this process: rpc.py-style arguments give the params rpc.py would send,
//! errors and exit codes, and save_config/load_config over real calls.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use common::TestServer;
use jsonrpc::{RpcError, State, StateMask};
use serde_json::{json, Value};

type Log = Arc<Mutex<Vec<(String, Value)>>>;

/// Registers `names` as methods that record their params and answer `answer`.
fn record(ts: &TestServer, log: &Log, names: &[&str], mask: StateMask, answer: Value) {
    for name in names {
        let (log, answer) = (log.clone(), answer.clone());
        ts.server
            .register(name, mask, move |r| {
                let p = r.raw_params().cloned().unwrap_or(Value::Null);
                log.lock().unwrap().push((r.method().to_string(), p));
                r.respond(Ok(answer.clone()))
            })
            .unwrap();
    }
}

fn rpc(ts: &TestServer, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferroplane-rpc"));
    cmd.arg("-s").arg(&ts.path).args(args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// `check` holds for the text of `bytes` (the text is in the failure message).
fn assert_text(bytes: &[u8], check: impl Fn(&str) -> bool) {
    let t = text(bytes);
    assert!(check(&t), "{t}");
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn rpc_py_arguments_give_rpc_py_params() {
    let ts = TestServer::start("cli-args");
    let log: Log = Arc::default();
    record(
        &ts,
        &log,
        &["bdev_malloc_create", "bdev_null_create"],
        StateMask::ALL,
        json!("Malloc0"),
    );
    record(
        &ts,
        &log,
        &["bdev_nvme_attach_controller"],
        StateMask::ALL,
        json!(["Nvme0n1", "Nvme0n2"]),
    );
    record(
        &ts,
        &log,
        &[
            "bdev_malloc_delete",
            "bdev_null_delete",
            "bdev_null_resize",
            "bdev_get_bdevs",
            "bdev_get_iostat",
            "bdev_split_create",
            "bdev_split_delete",
            "bdev_raid_create",
            "bdev_raid_delete",
            "bdev_raid_get_bdevs",
            "bdev_passthru_create",
            "bdev_passthru_delete",
            "nvmf_create_transport",
            "nvmf_create_subsystem",
            "nvmf_subsystem_add_ns",
            "nvmf_subsystem_add_listener",
            "nvmf_subsystem_add_host",
            "nvmf_subsystem_allow_any_host",
            "nvmf_get_subsystems",
            "nvmf_delete_subsystem",
            "nvmf_subsystem_remove_ns",
            "bdev_nvme_detach_controller",
            "vhost_create_blk_controller",
            "vhost_get_controllers",
            "vhost_delete_controller",
            "framework_set_scheduler",
            "framework_get_scheduler",
            "framework_start_init",
            "framework_wait_init",
            "bdev_wait_for_examine",
            "bdev_lvol_create_lvstore",
            "bdev_lvol_create",
            "bdev_lvol_rename",
            "bdev_lvol_rename_lvstore",
            "bdev_lvol_inflate",
            "bdev_lvol_decouple_parent",
            "bdev_lvol_get_lvstores",
            "raw_thing",
        ],
        StateMask::ALL,
        json!(true),
    );
    let nqn = "nqn.2016-06.io.spdk:cnode1";
    let cases: Vec<(Vec<&str>, Value)> = vec![
        (
            vec!["bdev_malloc_create", "-b", "Malloc0", "64", "512"],
            json!({"name": "Malloc0", "num_blocks": 131072, "block_size": 512}),
        ),
        (
            vec![
                "bdev_malloc_create",
                "0.5",
                "4096",
                "-u",
                "e0a1b2c3-0000-4000-8000-000000000001",
            ],
            json!({"num_blocks": 128, "block_size": 4096, "uuid": "e0a1b2c3-0000-4000-8000-000000000001"}),
        ),
        (
            vec!["bdev_malloc_delete", "Malloc0"],
            json!({"name": "Malloc0"}),
        ),
        (
            vec![
                "bdev_null_create",
                "Null0",
                "8",
                "4096",
                "-m",
                "8",
                "-t",
                "1",
            ],
            json!({"name": "Null0", "num_blocks": 2048, "block_size": 4096, "md_size": 8, "dif_type": 1}),
        ),
        (vec!["bdev_null_delete", "Null0"], json!({"name": "Null0"})),
        (
            vec!["bdev_null_resize", "Null0", "24"],
            json!({"name": "Null0", "new_size": 24}),
        ),
        (
            vec!["bdev_get_bdevs", "-b", "Malloc0"],
            json!({"name": "Malloc0"}),
        ),
        (vec!["bdev_get_bdevs"], Value::Null),
        (
            vec!["bdev_get_iostat", "-b", "Malloc0"],
            json!({"name": "Malloc0"}),
        ),
        (
            vec!["bdev_get_iostat", "--names", "a,b", "-c"],
            json!({"names": ["a", "b"], "per_channel": true}),
        ),
        (
            vec!["bdev_split_create", "Malloc0", "4", "-s", "2"],
            json!({"base_bdev": "Malloc0", "split_count": 4, "split_size_mb": 2}),
        ),
        (
            vec!["bdev_split_delete", "Malloc0"],
            json!({"base_bdev": "Malloc0"}),
        ),
        (
            vec![
                "bdev_raid_create",
                "-n",
                "Raid0",
                "-z",
                "64",
                "-r",
                "raid0",
                "-b",
                "Malloc1 Malloc2",
            ],
            json!({"name": "Raid0", "strip_size_kb": 64, "raid_level": "raid0", "base_bdevs": ["Malloc1", "Malloc2"]}),
        ),
        (vec!["bdev_raid_delete", "Raid0"], json!({"name": "Raid0"})),
        (
            vec!["bdev_raid_get_bdevs", "online"],
            json!({"category": "online"}),
        ),
        (
            vec!["bdev_passthru_create", "-b", "Malloc3", "-p", "PT0"],
            json!({"base_bdev_name": "Malloc3", "name": "PT0"}),
        ),
        (vec!["bdev_passthru_delete", "PT0"], json!({"name": "PT0"})),
        (
            vec![
                "nvmf_create_transport",
                "-t",
                "TCP",
                "-u",
                "16384",
                "-m",
                "8",
                "-c",
                "8192",
                "-o",
            ],
            json!({"trtype": "TCP", "io_unit_size": 16384, "max_io_qpairs_per_ctrlr": 8, "in_capsule_data_size": 8192, "c2h_success": false}),
        ),
        (
            vec![
                "nvmf_create_subsystem",
                nqn,
                "-a",
                "-s",
                "SPDK00000000000001",
                "-m",
                "32",
                "-d",
                "Ferroplane Ctrl",
            ],
            json!({"nqn": nqn, "allow_any_host": true, "serial_number": "SPDK00000000000001", "max_namespaces": 32, "model_number": "Ferroplane Ctrl"}),
        ),
        (
            vec!["nvmf_subsystem_add_ns", nqn, "Malloc0", "-n", "1"],
            json!({"nqn": nqn, "namespace": {"bdev_name": "Malloc0", "nsid": 1}}),
        ),
        (
            vec![
                "nvmf_subsystem_add_listener",
                nqn,
                "-t",
                "tcp",
                "-a",
                "127.0.0.1",
                "-s",
                "4420",
                "-f",
                "ipv4",
            ],
            json!({"nqn": nqn, "listen_address": {"trtype": "tcp", "traddr": "127.0.0.1", "trsvcid": "4420", "adrfam": "ipv4"}}),
        ),
        (
            vec![
                "nvmf_subsystem_add_listener",
                "discovery",
                "-t",
                "tcp",
                "-a",
                "127.0.0.1",
            ],
            json!({"nqn": "nqn.2014-08.org.nvmexpress.discovery", "listen_address": {"trtype": "tcp", "traddr": "127.0.0.1"}}),
        ),
        (
            vec![
                "nvmf_subsystem_add_host",
                nqn,
                "nqn.2014-08.org.nvmexpress:uuid:1",
            ],
            json!({"nqn": nqn, "host": "nqn.2014-08.org.nvmexpress:uuid:1"}),
        ),
        (
            vec!["nvmf_subsystem_allow_any_host", nqn, "-e"],
            json!({"nqn": nqn, "allow_any_host": true}),
        ),
        (
            vec!["nvmf_subsystem_allow_any_host", "-d", nqn],
            json!({"nqn": nqn, "allow_any_host": false}),
        ),
        (
            vec!["nvmf_subsystem_allow_any_host", nqn, "--no-allow-any-host"],
            json!({"nqn": nqn, "allow_any_host": false}),
        ),
        (vec!["nvmf_get_subsystems"], Value::Null),
        (vec!["nvmf_get_subsystems", nqn], json!({"nqn": nqn})),
        (vec!["nvmf_delete_subsystem", nqn], json!({"nqn": nqn})),
        (
            vec!["nvmf_subsystem_remove_ns", nqn, "2"],
            json!({"nqn": nqn, "nsid": 2}),
        ),
        (
            vec![
                "bdev_nvme_attach_controller",
                "-b",
                "Nvme0",
                "-t",
                "tcp",
                "-a",
                "127.0.0.1",
                "-f",
                "ipv4",
                "-s",
                "4420",
                "-n",
                nqn,
                "-q",
                "nqn.2014-08.org.nvmexpress:uuid:1",
                "--hdgst",
                "-d",
                "--num-io-queues",
                "2",
                "-l",
                "-1",
            ],
            json!({"name": "Nvme0", "trtype": "tcp", "traddr": "127.0.0.1", "adrfam": "ipv4",
                   "trsvcid": "4420", "subnqn": nqn,
                   "hostnqn": "nqn.2014-08.org.nvmexpress:uuid:1", "hdgst": true,
                   "ddgst": true, "num_io_queues": 2, "ctrlr_loss_timeout_sec": -1}),
        ),
        (
            vec![
                "bdev_nvme_detach_controller",
                "Nvme0",
                "-t",
                "tcp",
                "-n",
                nqn,
            ],
            json!({"name": "Nvme0", "trtype": "tcp", "subnqn": nqn}),
        ),
        (
            vec![
                "vhost_create_blk_controller",
                "vhost.0",
                "Malloc0",
                "--cpumask",
                "0x1",
                "-r",
            ],
            json!({"ctrlr": "vhost.0", "dev_name": "Malloc0", "cpumask": "0x1", "readonly": true}),
        ),
        (
            vec!["vhost_get_controllers", "-n", "vhost.0"],
            json!({"name": "vhost.0"}),
        ),
        (
            vec!["vhost_delete_controller", "vhost.0"],
            json!({"ctrlr": "vhost.0"}),
        ),
        (
            vec![
                "framework_set_scheduler",
                "dynamic",
                "-p",
                "500000",
                "--load-limit",
                "20",
                "--core-busy",
                "95",
            ],
            json!({"name": "dynamic", "period": 500000, "load_limit": 20, "core_busy": 95}),
        ),
        (vec!["framework_get_scheduler"], Value::Null),
        (vec!["framework_start_init"], Value::Null),
        (vec!["framework_wait_init"], Value::Null),
        (vec!["bdev_wait_for_examine"], Value::Null),
        (
            vec![
                "bdev_lvol_create_lvstore",
                "Aio0",
                "lvs0",
                "-c",
                "1048576",
                "--clear-method",
                "none",
            ],
            json!({"bdev_name": "Aio0", "lvs_name": "lvs0", "cluster_sz": 1048576, "clear_method": "none"}),
        ),
        (
            vec!["bdev_lvol_create", "-l", "lvs0", "-t", "vol", "4"],
            json!({"lvs_name": "lvs0", "thin_provision": true, "lvol_name": "vol", "size_in_mib": 4}),
        ),
        (
            vec!["bdev_lvol_rename", "lvs0/vol", "vol2"],
            json!({"old_name": "lvs0/vol", "new_name": "vol2"}),
        ),
        (
            vec!["bdev_lvol_rename_lvstore", "lvs0", "lvs1"],
            json!({"old_name": "lvs0", "new_name": "lvs1"}),
        ),
        (
            vec!["bdev_lvol_inflate", "lvs1/vol2"],
            json!({"name": "lvs1/vol2"}),
        ),
        (
            vec!["bdev_lvol_decouple_parent", "lvs1/vol2"],
            json!({"name": "lvs1/vol2"}),
        ),
        (
            vec!["bdev_lvol_get_lvstores", "-l", "lvs1"],
            json!({"lvs_name": "lvs1"}),
        ),
        (
            vec!["call", "raw_thing", r#"{"x": [1, {"y": null}]}"#],
            json!({"x": [1, {"y": null}]}),
        ),
    ];
    for (args, want) in &cases {
        let out = rpc(&ts, args, None);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let (method, got) = log
            .lock()
            .unwrap()
            .pop()
            .unwrap_or_else(|| panic!("{args:?} made no call"));
        let called = if args[0] == "call" { args[1] } else { args[0] };
        assert_eq!(method, called);
        assert_eq!(&got, want, "params of {args:?}");
    }
    // Output as rpc.py prints it: a bare string, nothing, or pretty JSON.
    let out = rpc(
        &ts,
        &["bdev_malloc_create", "-b", "Malloc0", "64", "512"],
        None,
    );
    assert_eq!(text(&out.stdout), "Malloc0\n");
    // rpc.py's print_array: the attached bdevs on one line.
    let attach: Vec<&str> = "bdev_nvme_attach_controller -b Nvme0 -t tcp -a 127.0.0.1"
        .split(' ')
        .collect();
    let out = rpc(&ts, &attach, None);
    assert_eq!(text(&out.stdout), "Nvme0n1 Nvme0n2\n");
    let out = rpc(&ts, &["framework_start_init"], None);
    assert_eq!(text(&out.stdout), "");
    let out = rpc(&ts, &["rpc_get_methods", "--current"], None);
    let listed: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        listed.contains(&"startup_only".to_string())
            && !listed.contains(&"runtime_only".to_string())
    );
    assert_text(&out.stdout, |t| t.starts_with("[\n  \""));
}

#[test]
fn errors_and_exit_codes() {
    let ts = TestServer::start("cli-errors");
    // An error answer: exit 1, the code and message printed.
    let out = rpc(&ts, &["call", "fail"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("-32602") && err.contains("\"message\": \"no\""),
        "{err}"
    );
    let out = rpc(&ts, &["call", "no_such_method", "{}"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("-32601"));
    // State errors carry SPDK's code.
    let out = rpc(&ts, &["call", "runtime_only"], None);
    assert!(text(&out.stderr).contains(&format!("\"code\": {}", RpcError::INVALID_STATE)));
    // Bad arguments: one line naming the argument, exit 2, no call made.
    for (args, names) in [
        (
            vec!["bdev_malloc_create", "-b", "M", "64", "abc"],
            "block_size",
        ),
        (vec!["bdev_malloc_create", "-b", "M"], "block_size"),
        (
            vec!["nvmf_subsystem_add_listener", "nqn.x", "-t", "tcp"],
            "-a/--traddr",
        ),
        (vec!["bdev_get_bdevs", "--bogus"], "--bogus"),
        (
            vec!["bdev_malloc_create", "64", "512", "-t", "7"],
            "-t/--dif-type",
        ),
        (vec!["no_such_command"], "no_such_command"),
        (vec!["call", "m", "[1"], "PARAMS"),
        (vec!["-t", "soon", "spdk_get_version"], "-t"),
    ] {
        let out = rpc(&ts, &args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(names), "{args:?}: {err}");
    }
    // No server: exit 1 and the socket named.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferroplane-rpc"));
    let missing = ts.path.with_extension("absent");
    let out = cmd
        .arg("-s")
        .arg(&missing)
        .arg("spdk_get_version")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&missing.display().to_string()));
}

#[test]
fn timeout_gives_up() {
    let ts = TestServer::start("cli-timeout");
    let held: Arc<Mutex<Vec<jsonrpc::Responder>>> = Arc::default();
    let h = held.clone();
    ts.server
        .register("never", StateMask::ALL, move |r| {
            h.lock().unwrap().push(r.into_responder())
        })
        .unwrap();
    let out = rpc(&ts, &["-t", "0.3", "call", "never"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_text(&out.stderr, |t| t.contains("no answer within"));
    assert_eq!(held.lock().unwrap().len(), 1);
}

#[test]
fn save_and_load_config_like_rpc_py() {
    let ts = TestServer::start("cli-config");
    let log: Log = Arc::default();
    ts.server
        .register("framework_get_subsystems", StateMask::ALL, |r| {
            r.respond(Ok(json!([
                {"subsystem": "scheduler", "depends_on": []},
                {"subsystem": "bdev", "depends_on": []},
                {"subsystem": "nvmf", "depends_on": ["bdev"]}
            ])))
        })
        .unwrap();
    ts.server
        .register("framework_get_config", StateMask::ALL, |r| {
            let name = r.raw_params().and_then(|p| p["name"].as_str()).unwrap_or("").to_string();
            r.respond(match name.as_str() {
                "scheduler" => Ok(json!([{"method": "framework_set_scheduler", "params": {"name": "static"}}])),
                "bdev" => Ok(json!([{"method": "bdev_malloc_create", "params": {"name": "M0", "num_blocks": 8, "block_size": 512}}])),
                "nvmf" => Ok(Value::Null),
                _ => Err(RpcError::invalid_params("no such subsystem")),
            })
        })
        .unwrap();
    let out = rpc(&ts, &["save_config"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let saved = text(&out.stdout);
    let cfg: Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(cfg["subsystems"].as_array().unwrap().len(), 3);
    assert_eq!(
        cfg["subsystems"][2],
        json!({"subsystem": "nvmf", "config": null})
    );
    assert!(saved.starts_with("{\n  \"subsystems\""));
    // -s keeps the named subsystems and their dependencies; -i -1 is compact.
    let out = rpc(&ts, &["save_config", "-s", "nvmf", "-i", "-1"], None);
    let part: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = part["subsystems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subsystem"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bdev", "nvmf"]);
    assert_eq!(text(&out.stdout).lines().count(), 1);

    // Load it back into a server at startup: startup methods first, then
    // framework_start_init, then runtime methods.
    record(
        &ts,
        &log,
        &["framework_set_scheduler"],
        StateMask::STARTUP,
        Value::Null,
    );
    record(
        &ts,
        &log,
        &["bdev_malloc_create"],
        StateMask::RUNTIME,
        json!("M0"),
    );
    let state = ts.server.state_handle();
    let l = log.clone();
    ts.server
        .register("framework_start_init", StateMask::STARTUP, move |r| {
            l.lock()
                .unwrap()
                .push(("framework_start_init".into(), Value::Null));
            state.set(State::Runtime);
            r.respond(Ok(Value::Bool(true)))
        })
        .unwrap();
    let out = rpc(&ts, &["load_config"], Some(&saved));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let calls: Vec<String> = log.lock().unwrap().iter().map(|c| c.0.clone()).collect();
    assert_eq!(
        calls,
        [
            "framework_set_scheduler",
            "framework_start_init",
            "bdev_malloc_create"
        ]
    );
    assert_eq!(
        log.lock().unwrap()[2].1,
        json!({"name": "M0", "num_blocks": 8, "block_size": 512})
    );
    assert_eq!(ts.server.state(), State::Runtime);
    // A config naming an unknown method is refused before any call.
    let bad = r#"{"subsystems": [{"subsystem": "x", "config": [{"method": "nope"}]}]}"#;
    let out = rpc(&ts, &["load_config"], Some(bad));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("nope"));
    // A config that is not JSON names where it failed.
    let out = rpc(&ts, &["load_config"], Some("{\"subsystems\": [}"));
    assert_eq!(out.status.code(), Some(1));
    assert_text(&out.stderr, |t| t.contains("<stdin> at line 1"));
}

#[test]
fn script_mode_runs_stdin_lines_over_one_connection() {
    let ts = TestServer::start("cli-script");
    let log: Log = Arc::default();
    record(
        &ts,
        &log,
        &["bdev_malloc_create", "bdev_malloc_delete"],
        StateMask::ALL,
        json!("M1"),
    );
    let script = "# make and remove\nbdev_malloc_create -b M1 1 512\n\nbdev_malloc_delete 'M1'\n";
    let out = rpc(&ts, &[], Some(script));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "M1\n");
    let calls = log.lock().unwrap().clone();
    assert_eq!(
        calls,
        [
            (
                "bdev_malloc_create".to_string(),
                json!({"name": "M1", "num_blocks": 2048, "block_size": 512})
            ),
            ("bdev_malloc_delete".to_string(), json!({"name": "M1"})),
        ]
    );
    // The first failing line stops the script with its line number.
    let out = rpc(&ts, &[], Some("call fail\nbdev_malloc_delete M1\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("stdin line 1"));
    assert_eq!(log.lock().unwrap().len(), 2);
}
