//! Test EAL environments, without depending on the EAL: the argument vector of a
//! `--no-huge` EAL with a file prefix of its own, and checks on the files an EAL leaves.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Arguments for a `--no-huge` EAL of `mem_mb` MiB on lcores `lcores` (an `-l` list),
/// with the file prefix `<prefix>-<pid>` so parallel tests and processes do not meet.
pub fn no_huge_args(prefix: &str, mem_mb: u32, lcores: &str) -> Vec<String> {
    [
        "test".to_string(),
        "--no-huge".into(),
        "-m".into(),
        mem_mb.to_string(),
        "--file-prefix".into(),
        format!("{prefix}-{}", std::process::id()),
        "-l".into(),
        lcores.into(),
    ]
    .to_vec()
}

/// Arguments for a small EAL inside a test process: `--no-huge` with 8 MiB, no PCI, log
/// level 4, on lcores `lcores`, under the file prefix `<tag><pid>-<n>` with `n` counting
/// the calls, so the tests of one binary (run in parallel) each get their own.
pub fn in_process_args(tag: &str, lcores: &str) -> Vec<String> {
    in_process_args_mb(tag, lcores, 8)
}

/// [`in_process_args`] with `mem_mb` MiB of memory.
pub fn in_process_args_mb(tag: &str, lcores: &str, mem_mb: u32) -> Vec<String> {
    static N: AtomicU32 = AtomicU32::new(0);
    let prefix = format!(
        "{tag}{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    [
        "test",
        "-l",
        lcores,
        "--no-huge",
        "-m",
        &mem_mb.to_string(),
        "--no-pci",
        "--file-prefix",
        &prefix,
        "--log-level",
        "4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The EAL `init` gave, or `None` after a counted skip of `test` (need `kernel`: what an
/// in-process `--no-huge` EAL needs is the kernel's memfd and mmap) saying why it failed.
pub fn init_or_skip<T, E: std::fmt::Display>(test: &str, init: Result<T, E>) -> Option<T> {
    match init {
        Ok(e) => Some(e),
        Err(e) => {
            crate::skip(test, crate::Need::Kernel, format!("EAL init failed: {e}"));
            None
        }
    }
}

/// Arguments of a secondary EAL (no PCI) on lcores `lcores` (an `--lcores` map such as
/// `1@0`) attached to the primary with file prefix `prefix`.
pub fn secondary_args(prefix: &str, lcores: &str) -> Vec<String> {
    [
        "test",
        "--proc-type",
        "secondary",
        "--no-pci",
        "--lcores",
        lcores,
        "--file-prefix",
        prefix,
    ]
    .map(String::from)
    .to_vec()
}

/// The primary's file prefix a child-process test (run by its parent through
/// [`crate::child::rerun_test`]) finds in the environment variable `var`; `None`, with
/// a line saying so, when the test was run on its own (then it has nothing to do).
pub fn child_prefix(var: &str, child: &str, parent: &str) -> Option<String> {
    let p = std::env::var(var).ok();
    if p.is_none() {
        println!("{child}: not started by {parent}, nothing to do");
    }
    p
}

/// The paths given, each asserted to exist now (an EAL's runtime directory and memory
/// files while it lives).
pub fn existing<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Vec<PathBuf> {
    let f: Vec<PathBuf> = paths.into_iter().map(Path::to_path_buf).collect();
    assert!(!f.is_empty(), "no files to watch");
    for p in &f {
        assert!(
            p.exists(),
            "{} should exist while the EAL lives",
            p.display()
        );
    }
    f
}

/// An EAL's files: its memory files (at least one: a `--no-huge` EAL has its memory in a
/// `/dev/shm` file) and its runtime directory, each asserted to exist now.
pub fn eal_files(memory_files: &[PathBuf], runtime_dir: &Path) -> Vec<PathBuf> {
    assert!(
        !memory_files.is_empty(),
        "an EAL under --no-huge has a /dev/shm file"
    );
    existing(
        memory_files
            .iter()
            .map(PathBuf::as_path)
            .chain([runtime_dir]),
    )
}

/// Assert that an EAL's cleanup (`result`) succeeded and removed every one of `files`;
/// `when` says what the test did before, for the failure message.
pub fn assert_clean_exit<E: std::fmt::Debug>(result: Result<(), E>, files: &[PathBuf], when: &str) {
    if let Err(e) = result {
        panic!("cleanup {when} failed: {e:?}");
    }
    assert_gone(files);
}

/// Assert that none of `files` exists any more (after the EAL's cleanup).
pub fn assert_gone(files: &[PathBuf]) {
    for p in files {
        assert!(!p.exists(), "{} left behind after cleanup", p.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_carry_a_per_process_prefix() {
        let a = no_huge_args("x", 64, "0-1");
        assert_eq!(a[1], "--no-huge");
        assert_eq!(a[5], format!("x-{}", std::process::id()));
        assert_eq!(a[7], "0-1");
    }

    #[test]
    fn in_process_prefixes_differ_per_call() {
        let (a, b) = (in_process_args("t", "0"), in_process_args("t", "0"));
        assert_eq!(a[1..3], ["-l".to_string(), "0".to_string()]);
        assert!(
            a[8].starts_with(&format!("t{}-", std::process::id())),
            "{a:?}"
        );
        assert_ne!(a[8], b[8]);
    }

    #[test]
    fn init_success_passes_the_eal_through() {
        // (The failure path records a real skip, so it is not exercised here.)
        assert_eq!(init_or_skip::<u8, &str>("t", Ok(3)), Some(3));
    }

    #[test]
    fn existing_and_gone() {
        let d = std::env::temp_dir();
        assert_eq!(existing([d.as_path()]), vec![d.clone()]);
        assert_gone(&[d.join("fp-testkit-surely-absent")]);
    }
}
