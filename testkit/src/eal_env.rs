//! Test EAL environments, without depending on the EAL: the argument vector of a
//! `--no-huge` EAL with a file prefix of its own, and checks on the files an EAL leaves.

use std::path::{Path, PathBuf};

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
    fn existing_and_gone() {
        let d = std::env::temp_dir();
        assert_eq!(existing([d.as_path()]), vec![d.clone()]);
        assert_gone(&[d.join("fp-testkit-surely-absent")]);
    }
}
