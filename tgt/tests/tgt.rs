//! `ferroplane-tgt` as a real process: idle CPU, waking on an RPC, `--json` and
//! `save_config` round trip, SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Tgt {
    child: Child,
    sock: PathBuf,
    dir: PathBuf,
}

impl Drop for Tgt {
    fn drop(&mut self) {
        // Only our own child, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fp-tgt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn start(tag: &str, extra: &[&str]) -> Tgt {
    let dir = tmpdir(tag);
    let sock = dir.join("tgt.sock");
    let prefix = format!("fptgt-{tag}-{}", std::process::id());
    let child = Command::new(env!("CARGO_BIN_EXE_ferroplane-tgt"))
        .args([
            "-m",
            "0x3",
            "--no-huge",
            "-s",
            "32",
            "--no-pci",
            "--file-prefix",
            &prefix,
            "-r",
        ])
        .arg(&sock)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferroplane-tgt");
    let t = Tgt { child, sock, dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    while UnixStream::connect(&t.sock).is_err() {
        assert!(
            Instant::now() < deadline,
            "ferroplane-tgt did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t
}

/// One raw JSON-RPC call over the Unix socket (no client crate needed).
fn call(sock: &Path, method: &str, params: Option<Value>) -> Value {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = json!({"jsonrpc": "2.0", "id": 1, "method": method});
    if let Some(p) = params {
        req["params"] = p;
    }
    s.write_all(req.to_string().as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before an answer to {method}");
        buf.extend_from_slice(&chunk[..n]);
        if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
            return v;
        }
    }
}

fn result(sock: &Path, method: &str, params: Option<Value>) -> Value {
    let v = call(sock, method, params);
    v.get("result")
        .cloned()
        .unwrap_or_else(|| panic!("{method} failed: {v}"))
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

fn wait_exit(t: &mut Tgt, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = t.child.try_wait().unwrap() {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "ferroplane-tgt did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn idle_target_sleeps_and_wakes_on_rpc() {
    let mut t = start("idle", &[]);
    assert_eq!(result(&t.sock, "framework_wait_init", None), json!(true));
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
    let v = result(&t.sock, "framework_get_reactors", None);
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
        result(&t.sock, "spdk_get_version", None)["version"],
        result(&t.sock, "ferroplane_get_version", None)["version"]
    );
    // Per-thread poller counts (thread_get_stats) agree with the pollers listed
    // (thread_get_pollers), and the app thread has pollers (the RPC server's).
    let stats = result(&t.sock, "thread_get_stats", None);
    let pollers = result(&t.sock, "thread_get_pollers", None);
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
    // SAFETY: signalling our own child by PID.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let st = wait_exit(&mut t, Duration::from_secs(30));
    assert_eq!(st.code(), Some(0), "exit status {st:?}");
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
        assert_eq!(result(&t.sock, "framework_wait_init", None), json!(true));
        assert_eq!(
            result(&t.sock, "framework_get_scheduler", None),
            json!({"scheduler_name": "dynamic", "scheduler_period": 250000})
        );
        let saved = result(&t.sock, "save_config", None);
        let out = dir.join(format!("saved{round}.json"));
        std::fs::write(&out, saved.to_string()).unwrap();
        saves.push(saved);
        next = out;
        // SAFETY: signalling our own child by PID.
        unsafe { libc::kill(t.child.id() as i32, libc::SIGINT) };
        assert_eq!(wait_exit(&mut t, Duration::from_secs(30)).code(), Some(0));
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
        result(
            &t.sock,
            "framework_set_scheduler",
            Some(json!({"name": "dynamic"}))
        ),
        json!(true)
    );
    assert_eq!(result(&t.sock, "framework_start_init", None), json!(true));
    assert_eq!(result(&t.sock, "framework_wait_init", None), json!(true));
    assert!(result(&t.sock, "framework_get_reactors", None)["reactors"].is_array());
    let bad = call(
        &t.sock,
        "framework_set_scheduler",
        Some(json!({"name": "bogus"})),
    );
    assert!(bad.get("error").is_some(), "{bad}");
    // SAFETY: signalling our own child by PID.
    unsafe { libc::kill(t.child.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut t, Duration::from_secs(30)).code(), Some(0));
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
    // SAFETY: signalling our own child by PID.
    unsafe { libc::kill(t.child.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut t, Duration::from_secs(30)).code(), Some(0));
    let mut text = String::new();
    let stderr = t.child.stderr.take().unwrap();
    for l in BufReader::new(stderr).lines() {
        text.push_str(&l.unwrap());
        text.push('\n');
    }
    assert!(text.contains("Reactor started on core 0"), "{text}");
    assert!(text.contains("Reactor started on core 1"), "{text}");
    assert!(text.contains("Total cores available: 2"), "{text}");
}
