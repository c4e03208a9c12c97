//! Helpers for the testpmd and l2fwd end-to-end tests: a child process whose output is
//! collected on a thread (stdin piped for the interactive tests), a private network
//! namespace (`testkit::netns`), a raw AF_PACKET socket (`testkit::rawsock`), an Internet
//! checksum.
//! Every wait is a hang guard with a generous bound, never a timing assertion.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const GUARD: Duration = Duration::from_secs(60);

pub fn testpmd() -> &'static str {
    env!("CARGO_BIN_EXE_testpmd")
}

pub fn l2fwd() -> &'static str {
    env!("CARGO_BIN_EXE_l2fwd")
}

pub fn prefix(tag: &str) -> String {
    format!("t-{tag}-{}", std::process::id())
}

/// The command line of an app run under `--no-huge` with the file prefix of `tag`: the
/// EAL arguments `eal`, `--`, then the app's `app`.
pub fn no_huge_run(tag: &str, eal: &[&str], app: &[&str]) -> Vec<String> {
    let mut v = vec!["--no-huge".to_string(), "--file-prefix".into(), prefix(tag)];
    v.extend(eal.iter().map(|s| s.to_string()));
    v.push("--".into());
    v.extend(app.iter().map(|s| s.to_string()));
    v
}

/// A running child with its stdout (and stderr) gathered into one string.
pub struct Proc {
    pub child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<String>>,
    sync: u32,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let out = Arc::new(Mutex::new(String::new()));
        let so = child.stdout.take().unwrap();
        let o2 = out.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(so).lines().map_while(Result::ok) {
                let mut g = o2.lock().unwrap();
                g.push_str(&l);
                g.push('\n');
            }
        });
        let se = child.stderr.take().unwrap();
        let o3 = out.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(se).lines().map_while(Result::ok) {
                let mut g = o3.lock().unwrap();
                g.push_str("[stderr] ");
                g.push_str(&l);
                g.push('\n');
            }
        });
        let stdin = child.stdin.take();
        Proc {
            child,
            stdin,
            out,
            sync: 0,
        }
    }

    pub fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Wait until the output contains `pat`; panics with the output after `limit`.
    pub fn wait_for(&self, pat: &str, limit: Duration) -> String {
        let t0 = Instant::now();
        loop {
            let o = self.output();
            if o.contains(pat) {
                return o;
            }
            if t0.elapsed() > limit {
                panic!("no '{pat}' within {limit:?}; output so far:\n{o}");
            }
            if let Ok(Some(st)) = self.child_status() {
                // exited: one last look
                let o = self.output();
                if o.contains(pat) {
                    return o;
                }
                panic!("process exited ({st}) without printing '{pat}':\n{o}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn child_status(&self) -> std::io::Result<Option<ExitStatus>> {
        // `try_wait` needs `&mut self`; an exited, unreaped child is a zombie ('Z' in
        // /proc/PID/stat), which is all this needs to know.
        let p = format!("/proc/{}/stat", self.child.id());
        match std::fs::read_to_string(p) {
            Ok(s) if s.split_whitespace().nth(2) == Some("Z") => Ok(Some(ExitStatus::default())),
            Ok(_) => Ok(None),
            Err(_) => Ok(Some(ExitStatus::default())),
        }
    }

    /// Send one command line and wait until it has been processed; returns the output
    /// it produced (testpmd echoes each piped line after its prompt; a comment line
    /// after the command marks its end).
    pub fn cmd(&mut self, line: &str) -> String {
        self.sync += 1;
        let marker = format!("# sync {}", self.sync);
        let before = self.output().len();
        let w = self.stdin.as_mut().expect("stdin open");
        writeln!(w, "{line}\n{marker}").expect("write to testpmd");
        w.flush().unwrap();
        let o = self.wait_for(&format!("testpmd> {marker}\n"), GUARD);
        let start = o[before..]
            .find(&format!("testpmd> {line}\n"))
            .map(|i| before + i)
            .unwrap_or(before);
        let end = o.rfind(&format!("testpmd> {marker}")).unwrap();
        o[start..end].to_string()
    }

    /// Send `quit` (no end marker: the process exits).
    pub fn quit(&mut self) {
        let w = self.stdin.as_mut().expect("stdin open");
        writeln!(w, "quit").expect("write to testpmd");
        w.flush().unwrap();
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: a pid of our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Wait for exit (killing it after `limit`); returns the status and all output.
    pub fn finish(mut self, limit: Duration) -> (ExitStatus, String) {
        self.stdin = None;
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                // let the reader threads drain the pipes
                std::thread::sleep(Duration::from_millis(100));
                return (st, self.output());
            }
            if t0.elapsed() > limit {
                let _ = self.child.kill();
                let st = self.child.wait().expect("wait");
                panic!(
                    "process did not exit within {limit:?} ({st}); output:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The numbers after `key` in `text`, in order (`key: N` or `key N`).
pub fn numbers_after(text: &str, key: &str) -> Vec<u64> {
    let mut v = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(key) {
        rest = &rest[i + key.len()..];
        let t = rest.trim_start_matches([':', ' ']);
        let n: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(x) = n.parse() {
            v.push(x);
        }
    }
    v
}

pub use testkit::netns::Netns;
pub use testkit::rawsock::RawSock;

/// Internet checksum (RFC 1071), written independently of testpmd's.
pub fn inet_sum(chunks: &[&[u8]]) -> u16 {
    let mut s: u32 = 0;
    let mut bytes = chunks.iter().flat_map(|c| c.iter().copied());
    loop {
        match (bytes.next(), bytes.next()) {
            (Some(a), Some(b)) => s += u32::from(u16::from_be_bytes([a, b])),
            (Some(a), None) => {
                s += u32::from(a) << 8;
                break;
            }
            _ => break,
        }
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}
