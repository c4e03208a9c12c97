//! A primary killed with SIGKILL leaves its files behind; the next primary with the same
//! prefix reclaims them. Alone in its own test binary so that no concurrent EAL init in
//! the same run sweeps the dead child's leftovers before the test has looked at them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{child_env, main_only_argv, nohuge_argv, shm_files};
use eal::{Eal, Error};
use testkit::child::rerun_test;

mod common;

/// Helper process for `stale_primary_is_reclaimed` (run only by that test).
#[test]
#[ignore = "helper process for stale_primary_is_reclaimed"]
fn child_hold_prefix() {
    let Some(p) = child_env(
        "FP_CHILD_PREFIX",
        "child_hold_prefix",
        "stale_primary_is_reclaimed",
    ) else {
        return;
    };
    let (e, _) = Eal::init(&main_only_argv(&p, 4)).unwrap();
    println!("READY {}", e.runtime_dir().display());
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[test]
fn stale_primary_is_reclaimed() {
    let p = format!("t-stale-{}", std::process::id());
    let mut child = rerun_test("child_hold_prefix")
        .env("FP_CHILD_PREFIX", &p)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Read the child's stdout on a thread so a hung child cannot hang the test forever.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints "test child_hold_prefix ... " on the same line first.
            if let Some(i) = line.find("READY ") {
                let _ = tx.send(PathBuf::from(line[i + 6..].trim()));
                return;
            }
        }
    });
    let dir = match rx.recv_timeout(std::time::Duration::from_secs(120)) {
        Ok(d) => d,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child never became ready: {e}");
        }
    };
    let child_pid = child.id();

    // A live primary in another process: refused, naming its pid.
    match Eal::init(&nohuge_argv(&p, 4)) {
        Err(Error::PrefixInUse { pid, .. }) => assert_eq!(pid as u32, child_pid),
        other => {
            let _ = child.kill();
            panic!("expected PrefixInUse, got {other:?}");
        }
    }

    // SIGKILL: no clean-up runs in the child.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        dir.join("config").exists(),
        "the dead child's config is left behind"
    );
    let stale_shm = Path::new("/dev/shm").join(format!("ferroplane-{p}-{child_pid}.mem"));
    assert!(
        stale_shm.exists(),
        "the dead child's memory file is left behind"
    );

    let (e, _) = Eal::init(&nohuge_argv(&p, 4)).unwrap();
    assert!(!stale_shm.exists(), "stale memory file reclaimed");
    assert_eq!(shm_files(&p).len(), 1, "only our own file remains");
    assert_eq!(e.runtime_dir(), dir);
    drop(e);
    assert!(!dir.exists());
    assert!(shm_files(&p).is_empty());
}
