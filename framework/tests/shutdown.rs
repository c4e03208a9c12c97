//! SIGTERM while messages fly: every message runs or is dropped (destructor run), exactly
//! once, and the process exits 0 (`ferroplane-fw-load` as a real process).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigterm_under_load_accounts_for_every_message() {
    let dir = std::env::temp_dir().join(format!("fp-fwload-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let sock = dir.join("load.sock");
    let prefix = format!("fpload{}", std::process::id());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferroplane-fw-load"))
        .args([
            "-m",
            "0x3",
            "--no-huge",
            "-s",
            "32",
            "--no-pci",
            "--log-level",
            "4",
            "--file-prefix",
            &prefix,
            "-r",
        ])
        .arg(&sock)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY", "unexpected first line {line:?}");
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: signalling our own child by PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit within 60 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    line.clear();
    out.read_line(&mut line).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        status.code(),
        Some(0),
        "exit {status:?}, last line {line:?}"
    );
    let nums: Vec<u64> = line
        .trim()
        .split(' ')
        .map(|kv| kv.split_once('=').unwrap().1.parse().unwrap())
        .collect();
    let (created, ran, dropped) = (nums[0], nums[1], nums[2]);
    assert_eq!(created, ran + dropped, "{line}");
    assert!(ran > 1000, "the load hardly ran: {line}");
}
