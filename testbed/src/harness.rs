//! What the guest tests share: the gate that decides whether a guest test runs, skips
//! or fails ([`boot_or_skip`]), building the release binaries a test copies into the
//! guest ([`build_release`]), and the shell steps every test repeats ([`Guest::run_ok`],
//! [`Guest::driver_of`], [`Guest::bind`], [`Guest::devices`]).
//!
//! `FP_TESTBED=1` forces the guest tests: a machine that cannot boot the guest is then a
//! failure. `FP_TESTBED=0` turns them off with a counted skip (`testkit::skip`, need
//! `guest`; under `FP_REQUIRE=1` that skip fails too). Unset: they run where a guest can
//! be booted and skip, counted, where not.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::{can_boot, repo_root, Guest, GuestOptions};

/// What `FP_TESTBED` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `FP_TESTBED=1`: run, and fail where the guest cannot boot.
    Force,
    /// `FP_TESTBED=0`: skip (counted).
    Off,
    /// Unset (or any other value): run where the guest can boot, skip where not.
    Auto,
}

impl Mode {
    /// The mode the environment selects.
    pub fn from_env() -> Mode {
        Mode::parse(std::env::var("FP_TESTBED").ok().as_deref())
    }

    fn parse(v: Option<&str>) -> Mode {
        match v {
            Some("1") => Mode::Force,
            Some("0") => Mode::Off,
            _ => Mode::Auto,
        }
    }
}

/// Why a guest cannot be booted in `mode` (`None`: boot it). `Force` with a machine that
/// cannot boot panics.
fn gate(mode: Mode, test: &str, machine: Result<(), String>) -> Option<String> {
    match (mode, machine) {
        (Mode::Off, _) => Some("FP_TESTBED=0 turns the guest tests off".into()),
        (_, Ok(())) => None,
        (Mode::Force, Err(why)) => {
            panic!("{test}: FP_TESTBED=1 forces the guest tests, but no guest can boot here: {why}")
        }
        (Mode::Auto, Err(why)) => Some(format!("cannot boot the QEMU testbed here: {why}")),
    }
}

/// Boot a guest for `test` with the options `opts` makes (called only when the guest
/// will boot: it may build binaries), or report a counted skip (need `guest`) and return
/// `None`. See the module docs for `FP_TESTBED`. A guest that starts to boot and fails
/// is a failure (panic), never a skip.
pub fn boot_or_skip(test: &str, opts: impl FnOnce() -> GuestOptions) -> Option<Guest> {
    if let Some(why) = gate(Mode::from_env(), test, can_boot()) {
        testkit::skip(test, testkit::Need::Guest, why);
        return None;
    }
    let g = Guest::boot(&opts()).unwrap_or_else(|e| panic!("{test}: boot the testbed guest: {e}"));
    eprintln!(
        "{test}: guest ready after {:?} (build included)",
        g.booted_in()
    );
    Some(g)
}

/// The IOPS of an `nvme-perf` or SPDK `spdk_nvme_perf` run: the first number after the
/// colon on its `Total` line, or `None` when the output has no such line.
pub fn perf_total_iops(out: &str) -> Option<f64> {
    out.lines()
        .find(|l| l.starts_with("Total"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Build `bins` (`(package, binary)`) with `cargo build --release` and return their
/// paths, for [`GuestOptions::bins`]. Panics if the build fails.
pub fn build_release(bins: &[(&str, &str)]) -> Vec<PathBuf> {
    let root = repo_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "-q"]).current_dir(&root);
    let mut pkgs: Vec<&str> = bins.iter().map(|(p, _)| *p).collect();
    pkgs.dedup();
    for p in pkgs {
        cmd.args(["-p", p]);
    }
    for (_, b) in bins {
        cmd.args(["--bin", b]);
    }
    let st = cmd.status().expect("run cargo build");
    assert!(st.success(), "cargo build --release of {bins:?} failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    bins.iter()
        .map(|(_, b)| target.join("release").join(b))
        .collect()
}

impl Guest {
    /// Run `cmd` (timeout 300 s) and return its output; panics unless it exits 0.
    pub fn run_ok(&mut self, cmd: &str) -> String {
        let (st, out) = self
            .run_timeout(cmd, Duration::from_secs(300))
            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
        assert_eq!(st, 0, "'{cmd}' failed with {st}:\n{out}");
        out
    }

    /// The kernel driver PCI device `addr` is bound to, or `none`.
    pub fn driver_of(&mut self, addr: &str) -> String {
        let (_, out) = self
            .run(&format!(
                "basename $(readlink /sys/bus/pci/devices/{addr}/driver) 2>/dev/null || echo none"
            ))
            .unwrap_or_else(|e| panic!("read the driver of {addr}: {e}"));
        out.trim().to_string()
    }

    /// Bind `addr` to `drv` with `ferroplane-devbind --force` and check that it is.
    pub fn bind(&mut self, addr: &str, drv: &str) {
        self.run_ok(&format!("ferroplane-devbind --force --bind={drv} {addr}"));
        assert_eq!(self.driver_of(addr), drv, "{addr} not bound to {drv}");
    }

    /// Start `program` in the background, wait until its output has a line containing
    /// `ready`, unbind PCI device `addr` from its driver under it, and check what a
    /// device that goes away must do to a running program of ours: it prints
    /// "device gone" and exits 3, and the device is left without a driver. Returns the
    /// program's output.
    pub fn unbind_under(&mut self, program: &str, ready: &str, addr: &str) -> String {
        // A fresh log each time, created before the program starts: the background
        // child truncates its log only once it runs, so with a reused name the wait
        // could match a previous run's marker and unbind too early (seen under load).
        let cmd = format!(
            "L=$(mktemp /tmp/unbind.XXXXXX); {program} > $L 2>&1 & P=$!; k=0; \
             until grep -q '{ready}' $L || [ $k -ge 1500 ]; do sleep 0.1; k=$((k+1)); done; sleep 1; \
             echo {addr} > /sys/bus/pci/devices/{addr}/driver/unbind; wait $P; echo unbind-rc=$?; cat $L; rm -f $L"
        );
        let (_, out) = self
            .run_timeout(&cmd, Duration::from_secs(300))
            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
        assert!(out.contains(ready), "'{program}' never started:\n{out}");
        assert!(
            out.contains("unbind-rc=3"),
            "'{program}' did not stop with exit 3 (device gone) when {addr} was unbound:\n{out}"
        );
        assert!(out.contains("device gone"), "{out}");
        assert_eq!(self.driver_of(addr), "none");
        out
    }

    /// Poll the guest file `log` until it has a line containing `marker`; panics if it
    /// shows a line starting with "FAIL " first, or after `secs`. Returns the file.
    pub fn wait_log(&mut self, log: &str, marker: &str, secs: u64) -> String {
        let t0 = std::time::Instant::now();
        loop {
            let (_, out) = self
                .run(&format!("cat {log}"))
                .unwrap_or_else(|e| panic!("read {log}: {e}"));
            if out.lines().any(|l| l.contains(marker)) {
                return out;
            }
            assert!(
                !out.lines().any(|l| l.starts_with("FAIL ")),
                "guest program failed while waiting for '{marker}':\n{out}"
            );
            assert!(
                t0.elapsed() < Duration::from_secs(secs),
                "no '{marker}' in {log} after {secs} s:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Wait (up to `secs`) for the background program whose pid is in the guest file
    /// `pidfile`; its exit status (-1 if it cannot be told).
    pub fn wait_exit(&mut self, pidfile: &str, secs: u64) -> i32 {
        let (_, out) = self
            .run_timeout(
                &format!("wait $(cat {pidfile}); echo rc=$?"),
                Duration::from_secs(secs),
            )
            .unwrap_or_else(|e| panic!("wait for {pidfile}: {e}"));
        out.split("rc=")
            .nth(1)
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(-1)
    }

    /// `(address, line)` of each `ferroplane-devbind --status` line containing all of
    /// `pats` (for example `["8086:100e"]`).
    pub fn devices(&mut self, pats: &[&str]) -> Vec<(String, String)> {
        let status = self.run_ok("ferroplane-devbind --status");
        status
            .lines()
            .filter(|l| pats.iter().all(|p| l.contains(p)))
            .filter_map(|l| {
                l.split_whitespace()
                    .next()
                    .map(|a| (a.to_string(), l.to_string()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_total_line_gives_the_iops() {
        let out =
            "Device  IOPS  MiB/s\nPCIE (0000:00:04.0) NSID 1 from core 0:  51234.50  200.13\n\
                   Total                                  :  51234.50  200.13  155.9\n";
        assert_eq!(perf_total_iops(out), Some(51234.5));
        assert_eq!(perf_total_iops("Initializing NVMe Controllers\n"), None);
        assert_eq!(perf_total_iops("Total : n/a\n"), None);
    }

    #[test]
    fn fp_testbed_selects_the_mode() {
        assert_eq!(Mode::parse(Some("1")), Mode::Force);
        assert_eq!(Mode::parse(Some("0")), Mode::Off);
        assert_eq!(Mode::parse(None), Mode::Auto);
        assert_eq!(Mode::parse(Some("yes")), Mode::Auto);
    }

    #[test]
    fn off_skips_even_where_a_guest_could_boot() {
        let why = gate(Mode::Off, "t", Ok(())).expect("a skip");
        assert!(why.contains("FP_TESTBED=0"), "{why}");
    }

    #[test]
    fn auto_runs_or_skips_with_the_reason() {
        assert_eq!(gate(Mode::Auto, "t", Ok(())), None);
        let why = gate(Mode::Auto, "t", Err("no qemu".into())).expect("a skip");
        assert!(why.contains("no qemu"), "{why}");
        assert_eq!(gate(Mode::Force, "t", Ok(())), None);
    }

    #[test]
    #[should_panic(expected = "FP_TESTBED=1")]
    fn force_fails_where_no_guest_can_boot() {
        gate(Mode::Force, "t", Err("no qemu".into()));
    }
}
