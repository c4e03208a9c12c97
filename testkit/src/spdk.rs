//! Running SPDK's own target for compatibility tests.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Start SPDK's `spdk_tgt` from build `spdk` with `--json cfg` (one core, no PCI, its
/// RPC socket in `work`), wait for its init and examine, make `calls` with SPDK's
/// rpc.py (argument lists), stop it with SIGTERM (a clean shutdown) and return the
/// calls' outputs. Panics with rpc.py's message if a call fails.
pub fn spdk_tgt(spdk: &Path, work: &Path, cfg: &Path, calls: &[&[&str]]) -> Vec<String> {
    let sock = work.join("spdk_tgt.sock");
    let _ = std::fs::remove_file(&sock);
    let mut tgt = Command::new(spdk.join("build/bin/spdk_tgt"))
        .args(["-m", "0x1", "-u", "--disable-cpumask-locks", "-r"])
        .arg(&sock)
        .arg("--json")
        .arg(cfg)
        .env("LD_LIBRARY_PATH", spdk.join("build/lib"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start spdk_tgt");
    let rpc = |args: &[&str]| -> String {
        let out = Command::new("python3")
            .arg(spdk.join("scripts/rpc.py"))
            .arg("-s")
            .arg(&sock)
            .args(args)
            .output()
            .expect("run rpc.py");
        assert!(
            out.status.success(),
            "rpc.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "spdk_tgt did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    rpc(&["framework_wait_init"]);
    rpc(&["bdev_wait_for_examine"]);
    let outs = calls.iter().map(|c| rpc(c)).collect();
    rpc(&["spdk_kill_instance", "SIGTERM"]);
    let st = tgt.wait().expect("wait for spdk_tgt");
    assert!(st.success(), "spdk_tgt exit {st:?}");
    outs
}
