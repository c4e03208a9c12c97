//! bdevperf as a process: verify on every module of the bdev crate (malloc, uring and
//! aio on a file, null), a real mismatch caught with its offset, every workload, the
//! `perform_tests` RPC of `-z`, and bad flags.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn tmp(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    // /var/tmp: the uring and aio bdevs open their files with O_DIRECT there.
    let d = PathBuf::from(format!(
        "/var/tmp/fp-bdevperf-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(dir: &Path, calls: Value) -> PathBuf {
    let p = dir.join("bdevs.json");
    let cfg = json!({"subsystems": [{"subsystem": "bdev", "config": calls}]});
    std::fs::write(&p, cfg.to_string()).unwrap();
    p
}

fn bdevperf(dir: &Path, args: &[&str]) -> Output {
    let prefix = format!("fpbp{}", dir.file_name().unwrap().to_string_lossy());
    Command::new(env!("CARGO_BIN_EXE_bdevperf"))
        .args(["-m", "0x1", "--no-huge", "-s", "64", "--no-pci"])
        .args(["--file-prefix", &prefix, "-r"])
        .arg(dir.join("rpc.sock"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run bdevperf")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The numbers of a `Job` line or the `Total` line after its colon.
fn numbers(line: &str) -> Vec<f64> {
    line.split_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect()
}

fn job_line<'a>(out: &'a str, bdev: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with("\t ") && l.trim_start().starts_with(bdev) && l.contains(':'))
        .unwrap_or_else(|| panic!("no result line for {bdev}:\n{out}"))
}

#[test]
fn verify_passes_on_malloc_uring_and_aio() {
    let dir = tmp("verify");
    let file = dir.join("disk");
    std::fs::write(&file, vec![0u8; 4 << 20]).unwrap();
    let f = file.to_str().unwrap();
    let cfg = config(
        &dir,
        json!([
            {"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 2048, "block_size": 4096}},
            {"method": "bdev_uring_create", "params": {"name": "Uring0", "filename": f, "block_size": 512}},
            {"method": "bdev_aio_create", "params": {"name": "Aio0", "filename": f, "block_size": 4096}},
        ]),
    );
    // uring and aio share the file, so -T runs one bdev at a time (two jobs writing the
    // same blocks would fail each other's verify).
    for bdev in ["Malloc0", "Uring0", "Aio0"] {
        let o = bdevperf(
            &dir,
            &[
                "-c",
                cfg.to_str().unwrap(),
                "-q",
                "8",
                "-o",
                "8k",
                "-w",
                "verify",
                "-t",
                "1",
                "-T",
                bdev,
            ],
        );
        let out = text(&o);
        assert_eq!(o.status.code(), Some(0), "{bdev}:\n{out}");
        assert!(!out.contains("Verify mismatch"), "{out}");
        assert!(
            out.contains(&format!(
                "Job: {bdev} (Core Mask 0x1, workload: verify, depth: 8, IO size: 8192)"
            )),
            "{out}"
        );
        let n = numbers(job_line(&out, bdev));
        // runtime, IOPS, MiB/s, Fail/s, TO/s, avg, min, max
        assert_eq!(n.len(), 8, "{out}");
        assert!(n[0] > 0.5, "{bdev} ran {} s", n[0]);
        assert!(n[1] > 0.0 && n[2] > 0.0, "{bdev} moved nothing:\n{out}");
        assert_eq!(n[3], 0.0, "failures:\n{out}");
        assert!(n[6] <= n[5] && n[5] <= n[7], "min <= avg <= max:\n{out}");
        let total = out
            .lines()
            .find(|l| l.trim_start().starts_with("Total"))
            .unwrap();
        assert_eq!(numbers(total)[0], n[1], "one job: Total IOPS is its IOPS");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The null bdev keeps nothing: verify must read back something other than what it
/// wrote and say where.
#[test]
fn verify_catches_a_real_mismatch() {
    let dir = tmp("mismatch");
    let cfg = config(
        &dir,
        json!([{"method": "bdev_null_create", "params": {"name": "Null0", "num_blocks": 1024, "block_size": 512}}]),
    );
    let o = bdevperf(
        &dir,
        &[
            "-c",
            cfg.to_str().unwrap(),
            "-q",
            "4",
            "-o",
            "4096",
            "-w",
            "verify",
            "-t",
            "1",
        ],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    // The four tasks start at blocks 0, 8, 16, 24 (sequential 4 KiB of 512-byte blocks).
    for (blk, byte) in [(0, "0x0"), (8, "0x1000"), (16, "0x2000"), (24, "0x3000")] {
        assert!(
            out.contains(&format!("Verify mismatch: block {blk} byte offset {byte}:")),
            "block {blk}:\n{out}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_workload_runs_on_malloc() {
    let dir = tmp("workloads");
    let cfg = config(
        &dir,
        json!([{"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 4096, "block_size": 512}}]),
    );
    let c = cfg.to_str().unwrap();
    for w in [
        &["-w", "read"][..],
        &["-w", "write"],
        &["-w", "randread"],
        &["-w", "randwrite"],
        &["-w", "rw", "-M", "50"],
        &["-w", "randrw", "-M", "70"],
        &["-w", "unmap"],
        &["-w", "flush"],
        &["-w", "write_zeroes"],
        &["-w", "reset"],
    ] {
        let mut a = vec!["-c", c, "-q", "4", "-o", "4096", "-t", "0.3"];
        a.extend_from_slice(w);
        let o = bdevperf(&dir, &a);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(0), "{w:?}:\n{out}");
        let n = numbers(job_line(&out, "Malloc0"));
        assert!(n[1] > 0.0, "{w:?} did no I/O:\n{out}");
        assert!(out.contains(&format!("workload: {},", w[1])), "{out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kills the child (ours, by PID) when the test ends, also on a failed assertion.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn call(sock: &Path, method: &str, params: Value) -> Value {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = json!({"jsonrpc": "2.0", "id": 1, "method": method});
    if !params.is_null() {
        req["params"] = params;
    }
    s.write_all(req.to_string().as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "no answer to {method}");
        buf.extend_from_slice(&chunk[..n]);
        if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
            return v;
        }
    }
}

#[test]
fn perform_tests_over_rpc() {
    let dir = tmp("rpc");
    let cfg = config(
        &dir,
        json!([{"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 2048, "block_size": 512}}]),
    );
    let sock = dir.join("rpc.sock");
    let prefix = format!("fpbpz{}", std::process::id());
    let child = Command::new(env!("CARGO_BIN_EXE_bdevperf"))
        .args([
            "-m",
            "0x1",
            "--no-huge",
            "-s",
            "64",
            "--no-pci",
            "--file-prefix",
            &prefix,
        ])
        .arg("-r")
        .arg(&sock)
        .args([
            "-z",
            "-c",
            cfg.to_str().unwrap(),
            "-q",
            "2",
            "-o",
            "4096",
            "-w",
            "randread",
            "-t",
            "0.5",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Reap(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "bdevperf -z did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        call(&sock, "framework_wait_init", Value::Null)["result"],
        json!(true)
    );
    let bad = call(&sock, "perform_tests", json!({"workload_type": "scan"}));
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("workload_type"),
        "{bad}"
    );
    let r = call(
        &sock,
        "perform_tests",
        json!({"time_in_sec": 1, "queue_depth": 4}),
    );
    let res = &r["result"]["results"][0];
    assert_eq!(res["job"], "Malloc0", "{r}");
    assert_eq!(res["workload"], "randread");
    assert_eq!(res["queue_depth"], 4);
    assert_eq!(res["status"], "finished");
    assert!(res["iops"].as_f64().unwrap() > 0.0, "{r}");
    assert!(res["runtime"].as_f64().unwrap() > 0.5, "{r}");
    // Still serving after a run: a second one.
    let r2 = call(&sock, "perform_tests", Value::Null);
    assert_eq!(r2["result"]["results"][0]["queue_depth"], 2, "{r2}");
    // Only our own child, by PID.
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_flags_and_configurations_are_clear_errors() {
    let dir = tmp("bad");
    let cfg = config(
        &dir,
        json!([{"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 64, "block_size": 4096}}]),
    );
    let c = cfg.to_str().unwrap();
    for (args, code, want) in [
        (
            &["-o", "4096", "-w", "read", "-t", "1"][..],
            2,
            "missing -q",
        ),
        (
            &["-q", "1", "-o", "4096", "-w", "nope", "-t", "1"],
            2,
            "-w (workload) value 'nope'",
        ),
        (
            &["-q", "1", "-o", "4096", "-w", "rw", "-t", "1"],
            2,
            "needs -M",
        ),
        (
            &["-q", "1", "-o", "4096", "-w", "read", "-t", "zero"],
            2,
            "-t (time)",
        ),
        (
            &["-c", c, "-q", "1", "-o", "1000", "-w", "read", "-t", "1"],
            1,
            "not a multiple of the block size 4096",
        ),
        (
            &[
                "-c", c, "-q", "1", "-o", "4096", "-w", "read", "-t", "1", "-T", "Nope0",
            ],
            1,
            "no bdev named 'Nope0'",
        ),
        (
            &[
                "-c", c, "-q", "128", "-o", "4096", "-w", "verify", "-t", "1",
            ],
            1,
            "verify needs",
        ),
        (
            &["-q", "1", "-o", "4096", "-w", "read", "-t", "1"],
            1,
            "no bdevs to test",
        ),
    ] {
        let o = bdevperf(&dir, args);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(code), "{args:?}:\n{out}");
        assert!(out.contains(want), "{args:?}: wanted '{want}' in:\n{out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
