//! What the `ferroplane-tgt` process tests share: a target started with its RPC
//! socket and log in a test directory (killed, by PID, when dropped), raw JSON-RPC
//! calls over the socket, and the `ferroplane-rpc` client binary.

#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A running `ferroplane-tgt`.
pub struct Tgt {
    pub child: Child,
    /// Its RPC socket.
    pub sock: PathBuf,
    /// Its stderr.
    pub log: PathBuf,
}

impl Drop for Tgt {
    fn drop(&mut self) {
        // Only our own child, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tgt {
    /// What it wrote on stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send it `sig` (our own child, by PID).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's PID; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

/// A fresh directory for test `tag` of this process.
pub fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fp-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Start a target on two cores (`-m 0x3`, 64 MiB without hugepages, no PCI) with
/// `dir/<tag>.sock` and `dir/<tag>.log`; `extra` arguments follow (a `-m` or `-s`
/// there replaces the default). Returns once the RPC socket answers connects.
pub fn start(dir: &Path, tag: &str, extra: &[&str]) -> Tgt {
    let sock = dir.join(format!("{tag}.sock"));
    let log = dir.join(format!("{tag}.log"));
    let _ = std::fs::remove_file(&sock);
    let prefix = format!("fp-{tag}-{}", std::process::id());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferroplane-tgt"));
    if !extra.contains(&"-m") {
        cmd.args(["-m", "0x3"]);
    }
    if !extra.contains(&"-s") {
        cmd.args(["-s", "64"]);
    }
    let child = cmd
        .args(["--no-huge", "--no-pci", "--file-prefix", &prefix, "-r"])
        .arg(&sock)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(File::create(&log).unwrap()))
        .spawn()
        .expect("spawn ferroplane-tgt");
    let t = Tgt { child, sock, log };
    let deadline = Instant::now() + Duration::from_secs(30);
    while UnixStream::connect(&t.sock).is_err() {
        assert!(
            Instant::now() < deadline,
            "ferroplane-tgt did not listen within 30 s: {}",
            t.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t
}

/// One raw JSON-RPC call (also for parameters the client would refuse itself); the
/// whole answer.
pub fn call(sock: &Path, method: &str, params: Option<Value>) -> Value {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
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

/// The result of a call that must succeed (`Value::Null`: no params).
pub fn ok(sock: &Path, method: &str, params: Value) -> Value {
    let v = call(sock, method, (!params.is_null()).then(|| params.clone()));
    assert!(v.get("error").is_none(), "{method} {params}: {v}");
    v["result"].clone()
}

/// The error of a call that must fail: (code, message).
pub fn err(sock: &Path, method: &str, params: Value) -> (i64, String) {
    let v = call(sock, method, Some(params.clone()));
    let e = v
        .get("error")
        .unwrap_or_else(|| panic!("{method} {params} accepted: {v}"));
    (
        e["code"].as_i64().unwrap(),
        e["message"].as_str().unwrap().to_string(),
    )
}

/// Its exit code, waiting at most 30 s.
pub fn wait_exit(t: &mut Tgt) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = t.child.try_wait().unwrap() {
            return st.code();
        }
        assert!(Instant::now() < deadline, "ferroplane-tgt did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `ferroplane-rpc` binary next to `ferroplane-tgt`, built if absent (it belongs to
/// another package, so cargo does not build it for these tests).
pub fn rpc_bin() -> PathBuf {
    let tgt = PathBuf::from(env!("CARGO_BIN_EXE_ferroplane-tgt"));
    let bin = tgt.with_file_name("ferroplane-rpc");
    if !bin.exists() {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let profile_release = tgt.parent().is_some_and(|p| p.ends_with("release"));
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "-q",
            "-p",
            "ferroplane-jsonrpc",
            "--bin",
            "ferroplane-rpc",
        ])
        .arg("--manifest-path")
        .arg(&manifest);
        if profile_release {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("run cargo to build ferroplane-rpc");
        assert!(st.success(), "building ferroplane-rpc failed");
    }
    assert!(bin.exists(), "no {}", bin.display());
    bin
}

/// Run the client against `sock`.
pub fn rpc(sock: &Path, args: &[&str]) -> Output {
    Command::new(rpc_bin())
        .arg("-s")
        .arg(sock)
        .args(args)
        .output()
        .expect("run ferroplane-rpc")
}

/// Run the client and parse its stdout as JSON, else take it as a string (exit 0
/// required).
pub fn rpc_json(sock: &Path, args: &[&str]) -> Value {
    let out = rpc(sock, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "ferroplane-rpc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|_| Value::String(text.trim().to_string()))
}

/// Run the client expecting a JSON-RPC error; its output text.
pub fn rpc_fails(sock: &Path, args: &[&str]) -> String {
    let out = rpc(sock, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "ferroplane-rpc {args:?} should fail: {text}"
    );
    text
}
