//! `ferroplane-tgt` as a real process: idle CPU, waking on an RPC, `--json` and
//! `save_config` round trip, SIGTERM.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{call, ok, tmpdir, wait_exit, Tgt};
use serde_json::{json, Value};

/// A target in a directory of its own.
fn start(tag: &str, extra: &[&str]) -> Tgt {
    common::start(&tmpdir(tag), tag, extra)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn idle_target_sleeps_and_wakes_on_rpc() {
    let mut t = start("idle", &[]);
    assert_eq!(ok(&t.sock, "framework_wait_init", Value::Null), json!(true));
    std::thread::sleep(Duration::from_millis(500));
    let pid = t.child.id();
    // SAFETY: sysconf takes no pointers.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let before = cpu_ticks(pid);
    let window = Duration::from_secs(3);
    std::thread::sleep(window);
    let used = cpu_ticks(pid) - before;
    // Two polling reactors would burn ~2 x 3 s = 600 ticks at 100 Hz; allow 2% of one
    // cpu (a few wake-ups of the 1 s scheduler poller and timer slack).
    let limit = hz * window.as_secs() / 50;
    assert!(
        used <= limit,
        "idle ferroplane-tgt used {used} ticks in {window:?} (limit {limit})"
    );
    // It wakes on an RPC, and its reactors report having slept.
    let v = ok(&t.sock, "framework_get_reactors", Value::Null);
    let reactors = v["reactors"].as_array().unwrap();
    assert_eq!(reactors.len(), 2);
    for r in reactors {
        assert!(
            r["sleeps"].as_u64().unwrap() > 0,
            "reactor never slept: {r}"
        );
        assert_eq!(r["in_interrupt"], json!(true));
    }
    assert_eq!(
        ok(&t.sock, "spdk_get_version", Value::Null)["version"],
        ok(&t.sock, "ferroplane_get_version", Value::Null)["version"]
    );
    // Per-thread poller counts (thread_get_stats) agree with the pollers listed
    // (thread_get_pollers), and the app thread has pollers (the RPC server's).
    let stats = ok(&t.sock, "thread_get_stats", Value::Null);
    let pollers = ok(&t.sock, "thread_get_pollers", Value::Null);
    let threads = stats["threads"].as_array().unwrap();
    assert!(!threads.is_empty(), "{stats}");
    let mut total = 0;
    for th in threads {
        let listed = pollers["threads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == th["id"])
            .unwrap_or_else(|| panic!("thread {} not in thread_get_pollers: {pollers}", th["id"]));
        for (count, list) in [
            ("active_pollers_count", "active_pollers"),
            ("timed_pollers_count", "timed_pollers"),
            ("paused_pollers_count", "paused_pollers"),
        ] {
            let n = listed[list].as_array().unwrap().len() as u64;
            assert_eq!(th[count].as_u64(), Some(n), "{count} of {th} vs {listed}");
            total += n;
        }
        for p in listed["active_pollers"].as_array().unwrap() {
            assert!(!p["name"].as_str().unwrap().is_empty(), "{p}");
        }
    }
    assert!(total > 0, "no pollers anywhere: {pollers}");
    t.signal(libc::SIGTERM);
    assert_eq!(wait_exit(&mut t), Some(0), "exit status");
    assert!(!t.sock.exists(), "RPC socket file left behind");
}

#[test]
fn json_config_save_config_round_trip() {
    let dir = tmpdir("cfgsrc");
    let cfg = dir.join("in.json");
    let input = json!({"subsystems": [{"subsystem": "scheduler", "config": [
        {"method": "framework_set_scheduler", "params": {"name": "dynamic", "period": 250000}}
    ]}]});
    std::fs::write(&cfg, input.to_string()).unwrap();
    let mut saves = Vec::new();
    let mut next = cfg.clone();
    for round in 0..2 {
        let mut t = start(&format!("cfg{round}"), &["--json", next.to_str().unwrap()]);
        assert_eq!(ok(&t.sock, "framework_wait_init", Value::Null), json!(true));
        assert_eq!(
            ok(&t.sock, "framework_get_scheduler", Value::Null),
            json!({"scheduler_name": "dynamic", "scheduler_period": 250000})
        );
        let saved = ok(&t.sock, "save_config", Value::Null);
        let out = dir.join(format!("saved{round}.json"));
        std::fs::write(&out, saved.to_string()).unwrap();
        saves.push(saved);
        next = out;
        t.signal(libc::SIGINT);
        assert_eq!(wait_exit(&mut t), Some(0));
    }
    assert_eq!(saves[0], saves[1], "save → load → save changed the config");
    let calls = &saves[0]["subsystems"][0];
    assert_eq!(calls["subsystem"], "scheduler");
    assert_eq!(calls["config"][0]["method"], "framework_set_scheduler");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wait_for_rpc_then_start_init() {
    let mut t = start("wait", &["--wait-for-rpc"]);
    // Runtime-only methods are refused before init; startup ones work.
    let v = call(&t.sock, "framework_get_reactors", None);
    assert!(
        v.get("error").is_some(),
        "runtime method answered before init: {v}"
    );
    assert_eq!(
        ok(
            &t.sock,
            "framework_set_scheduler",
            json!({"name": "dynamic"})
        ),
        json!(true)
    );
    assert_eq!(
        ok(&t.sock, "framework_start_init", Value::Null),
        json!(true)
    );
    assert_eq!(ok(&t.sock, "framework_wait_init", Value::Null), json!(true));
    assert!(ok(&t.sock, "framework_get_reactors", Value::Null)["reactors"].is_array());
    let bad = call(
        &t.sock,
        "framework_set_scheduler",
        Some(json!({"name": "bogus"})),
    );
    assert!(bad.get("error").is_some(), "{bad}");
    t.signal(libc::SIGTERM);
    assert_eq!(wait_exit(&mut t), Some(0));
}

#[test]
fn bad_arguments_fail_cleanly() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferroplane-tgt"))
        .args(["-m", "xyz"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("-m"), "{err}");
    // Startup output names the reactors, as spdk_tgt's does.
    let mut t = start("lines", &[]);
    t.signal(libc::SIGTERM);
    assert_eq!(wait_exit(&mut t), Some(0));
    let text = t.log_text();
    assert!(text.contains("Reactor started on core 0"), "{text}");
    assert!(text.contains("Reactor started on core 1"), "{text}");
    assert!(text.contains("Total cores available: 2"), "{text}");
}
