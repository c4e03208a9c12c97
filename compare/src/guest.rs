//! Runs in the testbed guest (testbed/run.sh: QEMU TCG, one boot): a shell script whose
//! runs are marked `@@BENCH <words>` on the console and closed by `@@BENCH end`, and the
//! split of the console log back into those runs; and one command in an interactive
//! guest ([`sh`]).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testbed::Guest;

use crate::error::{Error, Result};
use crate::harness::{self, Job};

/// The start of `testbed/run.sh` for a benchmark guest: no build (the tool built the
/// binaries), console log in `log`, guest life limited to `timeout_s`.
pub fn run_sh(log: &Path, timeout_s: u64) -> Command {
    let mut cmd = Command::new(harness::repo_root().join("testbed/run.sh"));
    cmd.arg("--no-build")
        .args(["--timeout", &timeout_s.to_string(), "--log"])
        .arg(log);
    cmd
}

/// Boot the guest with `cmd` (from [`run_sh`], devices and files added) running
/// `script`, and return its console log. An error unless the log reaches `@@BENCH end`.
pub fn run(
    cmd: Command,
    script: String,
    log: &Path,
    timeout_s: u64,
    work: &Path,
) -> Result<String> {
    let mut cmd = cmd;
    cmd.arg("--").arg(script);
    let who = "the testbed guest (testbed/run.sh)";
    let res = harness::run(Job {
        side: who,
        cmd,
        feed: Vec::new(),
        interrupt: None,
        timeout: Duration::from_secs(timeout_s + 60),
        file: work.join("guest"),
    });
    let text = fs::read_to_string(log).unwrap_or_default();
    if !text.contains("@@BENCH end") {
        let out = res?;
        return Err(out.fail(
            who,
            "did not finish the runs (no '@@BENCH end' on its console)",
        ));
    }
    Ok(text)
}

/// Run `cmd` in the interactive guest `g` (at most `secs`): its output, or an error
/// with its tail unless it exits 0.
pub fn sh(g: &mut Guest, cmd: &str, secs: u64) -> Result<String> {
    let (rc, out) = g
        .run_timeout(cmd, Duration::from_secs(secs))
        .map_err(|e| Error::Setup(format!("guest '{cmd}': {e}")))?;
    if rc != 0 {
        return Err(Error::Side {
            side: "the guest".into(),
            why: format!("'{cmd}' exited with {rc}"),
            stderr: harness::tail(&out, 15),
        });
    }
    Ok(out)
}

/// Split a console log into `(words after "@@BENCH", the lines up to the next marker)`,
/// stopping at `@@BENCH end`; `accept` keeps a marker (and turns its words into a key)
/// or rejects it, and the lines of a rejected marker go to the run before it.
pub fn blocks<K>(log: &str, accept: impl Fn(&[&str]) -> Option<K>) -> Vec<(K, String)> {
    let mut out: Vec<(K, String)> = Vec::new();
    for l in log.replace('\r', "").lines() {
        if let Some(rest) = l.strip_prefix("@@BENCH ") {
            if rest.trim() == "end" {
                break;
            }
            let w: Vec<&str> = rest.split_whitespace().collect();
            if let Some(k) = accept(&w) {
                out.push((k, String::new()));
                continue;
            }
        }
        if let Some((_, buf)) = out.last_mut() {
            buf.push_str(l);
            buf.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_split_by_marker_and_stop_at_end() {
        let log =
            "boot\r\n@@BENCH 0 a\r\nx\n@@BENCH bogus\ny\n@@BENCH 1 b\nz\n@@BENCH end\nafter\n";
        let b = blocks(log, |w| match w {
            [r, p] => Some((r.parse::<usize>().ok()?, p.to_string())),
            _ => None,
        });
        assert_eq!(b.len(), 2);
        assert_eq!(
            b[0],
            ((0, "a".to_string()), "x\n@@BENCH bogus\ny\n".to_string())
        );
        assert_eq!(b[1], ((1, "b".to_string()), "z\n".to_string()));
    }
}
