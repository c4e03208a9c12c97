//! Shared set-up: an EAL with `--no-huge` on lcores given by the test, under a file prefix
//! of its own, so tests run in parallel in one process.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

/// An EAL on `lcores` (an `-l` value), or `None` after a counted skip.
pub fn eal(test: &str, lcores: &str) -> Option<eal::Eal> {
    static N: AtomicU32 = AtomicU32::new(0);
    let prefix = format!(
        "fwt{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let argv: Vec<String> = [
        "fwtest",
        "-l",
        lcores,
        "--no-huge",
        "-m",
        "8",
        "--no-pci",
        "--file-prefix",
        &prefix,
        "--log-level",
        "4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match eal::Eal::init(&argv) {
        Ok((e, _)) => Some(e),
        Err(e) => {
            testkit::skip(test, testkit::Need::Kernel, format!("EAL init failed: {e}"));
            None
        }
    }
}

/// Options for tests: short exit timeout, interrupt mode on.
pub fn opts() -> framework::FrameworkOpts {
    framework::FrameworkOpts {
        exit_timeout_ms: 2000,
        ..Default::default()
    }
}
