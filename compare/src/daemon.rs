//! Long-running sides (targets, daemons): started with their output in a log file,
//! waited for until their socket answers, killed (by pid, our own child) on drop; their
//! CPU time from /proc; RPCs to them through `ferroplane-rpc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::harness;

/// A running target, killed (by pid, our child) on drop.
pub struct Target {
    pub child: Child,
    pub sock: PathBuf,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU time of process `pid` in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Clock ticks per second.
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf with a valid name has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// One `ferroplane-rpc` call to the socket `sock`.
pub fn rpc(rpc_bin: &Path, sock: &Path, args: &[&str], who: &str) -> Result<()> {
    let mut cmd = Command::new(rpc_bin);
    cmd.arg("-s").arg(sock).args(args);
    harness::sh(&format!("{who}: rpc {}", args.join(" ")), &mut cmd).map(|_| ())
}

/// When a started side counts as up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ready {
    /// Its socket accepts a connection (an RPC socket).
    Connects,
    /// Its socket file exists (a vhost-user export, which must not see a probe
    /// connection).
    Exists,
}

/// Start `cmd` (output to `log`) and wait up to 60 s until `sock` accepts a connection.
pub fn start(cmd: &mut Command, sock: PathBuf, who: &str, log: &Path) -> Result<Target> {
    start_until(cmd, sock, who, log, Ready::Connects)
}

/// Start `cmd` (output to `log`) and wait up to 60 s until `sock` is `ready`.
pub fn start_until(
    cmd: &mut Command,
    sock: PathBuf,
    who: &str,
    log: &Path,
    ready: Ready,
) -> Result<Target> {
    let f = std::fs::File::create(log)
        .map_err(|e| Error::io(format!("create {}", log.display()), e))?;
    let f2 = f.try_clone().map_err(|e| Error::io("dup a log file", e))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(f)
        .stderr(f2)
        .spawn()
        .map_err(|e| Error::Side {
            side: who.into(),
            why: format!("failed to start ({e})"),
            stderr: String::new(),
        })?;
    let mut t = Target { child, sock };
    let end = Instant::now() + Duration::from_secs(60);
    let up = |p: &Path| match ready {
        Ready::Connects => std::os::unix::net::UnixStream::connect(p).is_ok(),
        Ready::Exists => p.exists(),
    };
    while !up(&t.sock) {
        let why = match t.child.try_wait() {
            Ok(Some(st)) => format!("exited with {st} before listening"),
            _ if Instant::now() > end => "socket not up within 60 s".into(),
            _ => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        return Err(Error::Side {
            side: who.into(),
            why,
            stderr: harness::tail(&std::fs::read_to_string(log).unwrap_or_default(), 15),
        });
    }
    Ok(t)
}
