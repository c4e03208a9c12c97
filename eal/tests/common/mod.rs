//! Helpers shared by the EAL's integration tests: argument vectors, per-test file
//! prefixes, `--no-huge` EALs, the files an EAL leaves, and a private hugetlbfs mount
//! with enough free 2 MiB pages ([`HugePages`]).
//!
//! Each test binary uses only some of them.
#![allow(dead_code)]

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use eal::hugepage::{self, HugepageInfo, SysRoots};
use eal::Eal;
use testkit::Need;

/// The value of `var` in a child-process helper test `child`, which only its parent test
/// `parent` starts (with `var` set); `None`, said on stdout, when run on its own.
pub fn child_env(var: &str, child: &str, parent: &str) -> Option<String> {
    let v = std::env::var(var).ok();
    if v.is_none() {
        println!("{child}: not started by {parent}, nothing to do");
    }
    v
}

/// `test` followed by `v`: an `argv` for [`Eal::init`].
pub fn argv(v: &[&str]) -> Vec<String> {
    std::iter::once("test")
        .chain(v.iter().copied())
        .map(String::from)
        .collect()
}

/// A `--file-prefix` of this test process: `t-<tag>-<pid>`.
pub fn prefix(tag: &str) -> String {
    format!("t-{tag}-{}", std::process::id())
}

/// The arguments of a `--no-huge` primary with `mb` MiB, no PCI, every usable cpu as an
/// lcore, prefix `p`.
pub fn nohuge_argv(p: &str, mb: u32) -> Vec<String> {
    argv(&[
        "--no-huge",
        "-m",
        &mb.to_string(),
        "--no-pci",
        "--file-prefix",
        p,
    ])
}

/// [`nohuge_argv`] with only the main lcore (`-l 0`), so other processes of the group
/// can take other lcore ids.
pub fn main_only_argv(p: &str, mb: u32) -> Vec<String> {
    let mut v = nohuge_argv(p, mb);
    v.extend(["-l".to_string(), "0".to_string()]);
    v
}

/// The arguments of a secondary of prefix `p` as lcore 1 on cpu 0, so that it runs beside
/// a [`main_only_argv`] primary without sharing an lcore id.
pub fn secondary_argv(p: &str) -> Vec<String> {
    let mut v = argv(&["--proc-type", "secondary", "--lcores", "1@0"]);
    v.extend(["--no-pci", "--file-prefix", p].map(String::from));
    v
}

fn init(argv: Vec<String>) -> Eal {
    match Eal::init(&argv) {
        Ok((e, _)) => e,
        Err(e) => panic!("EAL init {argv:?}: {e}"),
    }
}

/// A primary from [`nohuge_argv`].
pub fn nohuge_eal(p: &str, mb: u32) -> Eal {
    init(nohuge_argv(p, mb))
}

/// A primary from [`main_only_argv`].
pub fn main_only_eal(p: &str, mb: u32) -> Eal {
    init(main_only_argv(p, mb))
}

/// The `--no-huge` memory files of prefix `p` in `/dev/shm`.
pub fn shm_files(p: &str) -> Vec<PathBuf> {
    files_starting(Path::new("/dev/shm"), &format!("ferroplane-{p}-"))
        .into_iter()
        .map(|n| Path::new("/dev/shm").join(n))
        .collect()
}

/// Names in `dir` that start with `start`, sorted.
pub fn files_starting(dir: &Path, start: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(start))
        .collect();
    v.sort();
    v
}

/// The runtime directories of prefix `p` that exist, under every default root.
pub fn runtime_dirs(p: &str) -> Vec<PathBuf> {
    eal::runtime::default_roots()
        .into_iter()
        .map(|r| r.join(p))
        .filter(|d| d.exists())
        .collect()
}

/// 2 MiB pages.
pub const PS: u64 = 2 << 20;

/// A private hugetlbfs mount (2 MiB pages) with at least the free pages a test asked for;
/// on drop it is unmounted and removed, and a pool this fixture grew is shrunk back.
///
/// Hugepage tests hold a lock file for their whole run, so two of them never count the
/// same free pages. With `FP_TEST_HUGEPAGES=1` (exported by `scripts/test.sh` after it
/// reserved the pool as root) the pool belongs to the harness and is never resized: too
/// few free pages is then a [`Need::Hugepages`] skip, which `FP_REQUIRE=1` turns into a
/// failure. Otherwise, as root, a pool short of free pages is grown for the test.
pub struct HugePages {
    /// The real `/proc` and `/sys`.
    pub roots: SysRoots,
    /// The private mount point.
    pub mnt: PathBuf,
    mounted: bool,
    restore_nr: Option<u64>,
    _lock: fs::File,
}

impl HugePages {
    /// `pages` free 2 MiB pages in a private mount, or `None` after reporting a skip
    /// (not root; the kernel has no 2 MiB pages or will not give enough).
    pub fn take(test: &str, pages: u64) -> Option<HugePages> {
        if !testkit::need_root(test) {
            return None;
        }
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/tmp/ferroplane-hugepage-tests.lock")
            .expect("open the hugepage test lock file");
        // SAFETY: flock on a file descriptor we own; it blocks until the other hugepage
        // test releases the lock (on exit at the latest).
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        let roots = SysRoots::default();
        let Some(pool) = HugepageInfo::discover(&roots)
            .ok()
            .and_then(|i| i.size(PS).cloned())
        else {
            testkit::skip(test, Need::Hugepages, "the kernel has no 2 MiB hugepages");
            return None;
        };
        let harness = std::env::var("FP_TEST_HUGEPAGES").is_ok_and(|v| v == "1");
        let mut restore_nr = None;
        if pool.free < pages {
            if harness {
                testkit::skip(
                    test,
                    Need::Hugepages,
                    format!(
                        "{} free 2 MiB pages in the pool scripts/test.sh reserved; {pages} needed",
                        pool.free
                    ),
                );
                return None;
            }
            let want = pool.nr + (pages - pool.free);
            if let Err(e) = hugepage::reserve_pages(&roots, PS, None, want) {
                let _ = hugepage::reserve_pages(&roots, PS, None, pool.nr);
                testkit::skip(
                    test,
                    Need::Hugepages,
                    format!("the kernel would not grow the 2 MiB pool to {want}: {e}"),
                );
                return None;
            }
            restore_nr = Some(pool.nr);
        }
        let mnt = std::env::temp_dir().join(format!("fp-huge-{test}-{}", std::process::id()));
        let mut hp = HugePages {
            roots,
            mnt,
            mounted: false,
            restore_nr,
            _lock: lock,
        };
        if let Err(e) = hugepage::mount(&hp.roots, &hp.mnt, Some(PS)) {
            panic!("mount hugetlbfs at {} as root: {e}", hp.mnt.display());
        }
        hp.mounted = true;
        Some(hp)
    }

    /// The mount point as a `--huge-dir` value.
    pub fn dir(&self) -> String {
        self.mnt.display().to_string()
    }
}

impl Drop for HugePages {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = eal::sys::mem::umount(&self.mnt) {
                eprintln!("unmount {}: {e}", self.mnt.display());
            }
        }
        let _ = fs::remove_dir(&self.mnt);
        if let Some(nr) = self.restore_nr {
            if let Err(e) = hugepage::reserve_pages(&self.roots, PS, None, nr) {
                eprintln!("restore the 2 MiB pool to {nr}: {e}");
            }
        }
    }
}
