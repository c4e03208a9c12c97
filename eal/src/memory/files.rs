//! The files behind EAL memory: their names, exclusive creation, and the reclaim of the
//! files a dead primary left behind.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::hugepage::{HugepageInfo, SysRoots};
use crate::sys::mem as sys;

/// Name stem of hugepage files: `<prefix>map_`.
pub fn huge_stem(prefix: &str) -> String {
    format!("{prefix}map_")
}

/// Name of the `--no-huge` file.
pub fn shm_name(prefix: &str, pid: u32) -> String {
    format!("ferroplane-{prefix}-{pid}.mem")
}

fn is_stale_huge(name: &str, prefix: &str) -> bool {
    name.strip_prefix(&huge_stem(prefix))
        .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
}

fn is_stale_shm(name: &str, prefix: &str) -> bool {
    name.strip_prefix(&format!("ferroplane-{prefix}-"))
        .and_then(|r| r.strip_suffix(".mem"))
        .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
}

/// Remove files a dead primary with `prefix` left in every hugetlbfs mount and in
/// `shm_dir`. Call only while holding the primary lock for `prefix` (then no live process
/// owns such files). Returns the removed paths.
pub fn reclaim_stale(prefix: &str, roots: &SysRoots, shm_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let mut dirs: Vec<(PathBuf, bool)> = vec![(shm_dir.to_path_buf(), false)];
    if let Ok(info) = HugepageInfo::discover(roots) {
        dirs.extend(info.mounts.into_iter().map(|m| (m.path, true)));
    }
    for (dir, huge) in dirs {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for ent in rd.flatten() {
            let name = ent.file_name();
            let name = name.to_string_lossy();
            let stale = if huge {
                is_stale_huge(&name, prefix)
            } else {
                is_stale_shm(&name, prefix)
            };
            if stale {
                let p = ent.path();
                fs::remove_file(&p)
                    .map_err(|e| Error::io("remove stale", p.display().to_string(), e))?;
                removed.push(p);
            }
        }
    }
    Ok(removed)
}

fn create_excl(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("create", path.display().to_string(), e))
}

/// Create `path` (exclusively) and commit `len` bytes to it with `fallocate`, so a later
/// fault can never SIGBUS. The path goes into `owned` as soon as the file exists, so the
/// caller's clean-up removes it whatever fails next. No space left is `short()`.
pub(super) fn create_committed(
    path: &Path,
    len: u64,
    owned: &mut Vec<PathBuf>,
    short: impl FnOnce() -> Error,
) -> Result<File> {
    let f = create_excl(path)?;
    owned.push(path.to_path_buf());
    f.set_len(len)
        .map_err(|e| Error::io("size", path.display().to_string(), e))?;
    match sys::fallocate(f.as_fd(), 0, len, path) {
        Ok(()) => Ok(f),
        Err(Error::Os { source, .. }) if source.raw_os_error() == Some(libc::ENOSPC) => {
            Err(short())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::tempdir::TempDir;

    #[test]
    fn stale_name_matching() {
        assert!(is_stale_huge("fpmap_0", "fp"));
        assert!(is_stale_huge("fpmap_123", "fp"));
        assert!(!is_stale_huge("fpmap_", "fp"));
        assert!(!is_stale_huge("fpxmap_1", "fp"));
        assert!(is_stale_huge("xmap_map_3", "xmap_"));
        assert!(!is_stale_huge("xmap_map_3", "x"));
        assert!(is_stale_shm("ferroplane-a-12.mem", "a"));
        assert!(!is_stale_shm("ferroplane-a-1-12.mem", "a"));
        assert!(is_stale_shm("ferroplane-a-1-12.mem", "a-1"));
    }

    #[test]
    fn reclaim_removes_only_matching_files() {
        let t = TempDir::new("mem-reclaim");
        let r = SysRoots::under(t.path());
        let huge = t.path().join("huge");
        let shm = t.path().join("shm");
        fs::create_dir_all(&r.proc).unwrap();
        fs::create_dir_all(&huge).unwrap();
        fs::create_dir_all(&shm).unwrap();
        fs::write(
            r.proc.join("mounts"),
            format!("nodev {} hugetlbfs rw,pagesize=2M 0 0\n", huge.display()),
        )
        .unwrap();
        for n in ["pmap_0", "pmap_7", "pmap_x", "qmap_0", "pmap_"] {
            fs::write(huge.join(n), b"").unwrap();
        }
        for n in [
            "ferroplane-p-99.mem",
            "ferroplane-q-99.mem",
            "ferroplane-p-99.memx",
        ] {
            fs::write(shm.join(n), b"").unwrap();
        }
        let mut got = reclaim_stale("p", &r, &shm).unwrap();
        got.sort();
        let mut exp = vec![
            huge.join("pmap_0"),
            huge.join("pmap_7"),
            shm.join("ferroplane-p-99.mem"),
        ];
        exp.sort();
        assert_eq!(got, exp);
        assert!(huge.join("pmap_x").exists() && huge.join("qmap_0").exists());
    }
}
