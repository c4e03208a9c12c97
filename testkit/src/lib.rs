//! Shared helpers for Ferroplane's tests.
//!
//! A test whose prerequisite is missing calls [`skip`] and returns. A skip is never
//! silent: it prints `SKIP <test>: <why>` on stderr, appends a line to the file named by
//! `FP_SKIP_LOG` (so `scripts/test.sh` can list every skip at the end), and, when
//! `FP_REQUIRE=1` (set by the test script under CI as root), a skip whose need is one
//! the CI machine must meet ([`Need::required`]) panics instead: the run fails.
//!
//! Environment:
//! - `FP_SKIP_LOG=FILE`: append `test<TAB>need<TAB>why` per skip.
//! - `FP_REQUIRE=1`: skips of required needs fail the test.
//!
//! [`netns::Netns`] is a private network namespace with veth pairs, deleted on drop;
//! [`rawsock::RawSock`] a raw packet socket on one of its interfaces.
#![deny(missing_docs)]

pub mod child;
pub mod eal_env;
pub mod netns;
pub mod rawsock;
pub mod signal;
pub mod spdk;
mod sys;
pub mod tempdir;

use std::fmt;
use std::io::Write;

/// What a test needs from the machine that it did not find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Root privileges (namespaces, hugepage reservation, device binding).
    Root,
    /// 2 MiB hugepages reserved and hugetlbfs mounted.
    Hugepages,
    /// A network namespace with veth/TAP interfaces.
    Netns,
    /// A QEMU guest (the testbed).
    Guest,
    /// An external program (tcpdump, tshark, fio, ...); the test script installs them.
    Tool,
    /// More CPUs than this machine has.
    Cpus,
    /// A build configuration (for example debug assertions) this build does not have.
    Build,
    /// A kernel feature the machine may lack (io_uring disabled, no XDP on a device).
    Kernel,
    /// SPDK itself, built by `scripts/spdk.sh` (a peer to check formats and compare
    /// against); see [`spdk_dir`].
    Spdk,
}

impl Need {
    /// Whether a CI run as root must meet this need: then a skip fails the test.
    pub fn required(self) -> bool {
        matches!(
            self,
            Need::Root | Need::Hugepages | Need::Netns | Need::Guest | Need::Tool | Need::Spdk
        )
    }

    fn name(self) -> &'static str {
        match self {
            Need::Root => "root",
            Need::Hugepages => "hugepages",
            Need::Netns => "netns",
            Need::Guest => "guest",
            Need::Tool => "tool",
            Need::Cpus => "cpus",
            Need::Build => "build",
            Need::Kernel => "kernel",
            Need::Spdk => "spdk",
        }
    }
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `FP_REQUIRE=1` is set: required needs must be met.
pub fn require_mode() -> bool {
    std::env::var("FP_REQUIRE").is_ok_and(|v| v == "1")
}

/// Reports that `test` cannot run because `need` is not met, for the reason `why`.
///
/// Prints on stderr and logs to `FP_SKIP_LOG`; under `FP_REQUIRE=1` a required need
/// panics (the caller's test fails). The caller returns after this call.
#[track_caller]
pub fn skip(test: &str, need: Need, why: impl fmt::Display) {
    let why = why.to_string().replace(['\n', '\t'], " ");
    if require_mode() && need.required() {
        panic!("{test} cannot run ({need}: {why}) and FP_REQUIRE=1 forbids skipping it");
    }
    eprintln!("SKIP {test}: {why}");
    if let Some(path) = std::env::var_os("FP_SKIP_LOG") {
        // One write of one line with O_APPEND: lines from parallel tests do not mix.
        let line = format!("{test}\t{need}\t{why}\n");
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = res {
            eprintln!("testkit: could not append to FP_SKIP_LOG {path:?}: {e}");
        }
    }
}

/// Where SPDK's build lives: `FP_SPDK_DIR`, else `<repo>/.testbed-cache/spdk` (where
/// `scripts/spdk.sh` builds it; `scripts/test.sh` runs that under CI).
pub fn spdk_root() -> std::path::PathBuf {
    match std::env::var_os("FP_SPDK_DIR") {
        Some(d) => d.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join(".testbed-cache/spdk"),
    }
}

/// SPDK's source and build directory (binaries in `build/bin` and `build/examples`,
/// libraries in `build/lib`), when it has been built; otherwise reports a
/// [`Need::Spdk`] skip for `test` and returns `None`.
pub fn spdk_dir(test: &str) -> Option<std::path::PathBuf> {
    let d = spdk_root();
    if d.join("build/bin/spdk_tgt").is_file() || d.join("build/examples/bdevperf").is_file() {
        return Some(d);
    }
    skip(
        test,
        Need::Spdk,
        format!(
            "SPDK is not built in {} (run scripts/spdk.sh, or set FP_SPDK_DIR)",
            d.display()
        ),
    );
    None
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    sys::geteuid() == 0
}

/// Whether `cmd` is an executable file on `PATH`.
pub fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

/// Returns `true` when the test may go on; otherwise reports a [`Need::Root`] skip.
pub fn need_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    skip(test, Need::Root, "needs root");
    false
}

/// Returns `true` when `cmd` is on `PATH`; otherwise reports a [`Need::Tool`] skip.
pub fn need_tool(test: &str, cmd: &str) -> bool {
    if on_path(cmd) {
        return true;
    }
    skip(
        test,
        Need::Tool,
        format!("`{cmd}` is not installed (scripts/test.sh installs it)"),
    );
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_needs_are_the_ci_machine_ones() {
        assert!(Need::Guest.required());
        assert!(Need::Hugepages.required());
        assert!(Need::Netns.required());
        assert!(!Need::Cpus.required());
        assert!(!Need::Build.required());
    }

    #[test]
    fn need_names_are_distinct() {
        let all = [
            Need::Root,
            Need::Hugepages,
            Need::Netns,
            Need::Guest,
            Need::Tool,
            Need::Cpus,
            Need::Build,
            Need::Kernel,
            Need::Spdk,
        ];
        let mut names: Vec<_> = all.iter().map(|n| n.to_string()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }

    #[test]
    fn skip_logs_one_line_per_call() {
        let dir = std::env::temp_dir().join(format!("fp-testkit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("skips");
        // Only this test touches these variables in this test binary.
        std::env::set_var("FP_SKIP_LOG", &log);
        std::env::remove_var("FP_REQUIRE");
        skip("a_test", Need::Cpus, "one\ncpu");
        skip("b_test", Need::Tool, "no tshark");
        std::env::remove_var("FP_SKIP_LOG");
        let text = std::fs::read_to_string(&log).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(text, "a_test\tcpus\tone cpu\nb_test\ttool\tno tshark\n");
    }
}
