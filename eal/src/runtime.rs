//! The runtime directory and the primary lock.
//!
//! Each file prefix has one runtime directory, mode 0700, at the first usable of
//! 1. `/var/run/ferroplane/<prefix>` (root),
//! 2. `$XDG_RUNTIME_DIR/ferroplane/<prefix>`,
//! 3. `/tmp/ferroplane-<uid>/<prefix>`,
//!
//! or `<root>/<prefix>` when the caller passes a root explicitly (tests).
//!
//! The primary holds an exclusive `flock` on `<dir>/config` (the shared configuration
//! file, see [`crate::config`]) for its whole life. `flock` locks belong to the open file
//! description, so a second primary is refused both in another process and in the same
//! process ([`Error::PrefixInUse`]). Because the kernel drops the lock when the holder
//! dies (even by SIGKILL), a lock we can take means every file left under this prefix is
//! stale: the directory's other entries are removed here, and stale hugepage and shm files
//! by [`crate::memory::reclaim_stale`].
//!
//! After taking the lock we check that `<dir>/config` is still the inode we locked: a
//! primary exiting concurrently unlinks it, and locking an unlinked file would let two
//! primaries coexist.
//!
//! [`RuntimeDir::remove`] (also on drop) removes the files, the directory, and its parent
//! if that became empty, and only then releases the lock.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::config::PRIMARY_PID_OFFSET;
use crate::error::{Error, Result};
use crate::sys::mem as sys;

/// Longest accepted file prefix (it is embedded in file names and the shared config);
/// the same limit as the argument parser's.
pub const MAX_PREFIX_LEN: usize = crate::args::MAX_PREFIX_LEN;

/// Check a `--file-prefix` value.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && prefix != "."
        && prefix != ".."
        && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::BadArg {
            arg: "--file-prefix".into(),
            value: prefix.into(),
            why: format!("must be 1..={MAX_PREFIX_LEN} characters of [A-Za-z0-9._+-]"),
        })
    }
}

/// The candidate roots (without the `<prefix>` component), best first.
pub fn default_roots() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if sys::geteuid() == 0 {
        v.push(PathBuf::from("/var/run/ferroplane"));
    }
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        v.push(PathBuf::from(x).join("ferroplane"));
    }
    v.push(PathBuf::from(format!("/tmp/ferroplane-{}", sys::geteuid())));
    v
}

/// A runtime directory this process owns as primary.
#[derive(Debug)]
pub struct RuntimeDir {
    dir: PathBuf,
    prefix: String,
    lock: Option<File>,
}

impl RuntimeDir {
    /// Create (or reuse) the directory for `prefix` under `root` (or the default roots)
    /// and become primary. Leftovers of a dead primary in the directory are removed.
    pub fn acquire_primary(prefix: &str, root: Option<&Path>) -> Result<RuntimeDir> {
        validate_prefix(prefix)?;
        let roots = match root {
            Some(r) => vec![r.to_path_buf()],
            None => default_roots(),
        };
        let mut last_err = None;
        for r in &roots {
            let dir = r.join(prefix);
            match make_dir(&dir) {
                Ok(()) => return Self::lock_in(dir, prefix),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::io("create", "runtime directory", std::io::Error::other("no candidate"))))
    }

    fn lock_in(dir: PathBuf, prefix: &str) -> Result<RuntimeDir> {
        let path = dir.join("config");
        let mut last_pid = 0;
        for _ in 0..64 {
            // The directory may have been removed by an exiting primary between attempts.
            make_dir(&dir)?;
            let f = match OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("open", path.display().to_string(), e)),
            };
            if !sys::try_flock(f.as_fd(), true, &path)? {
                let mut b = [0u8; 4];
                let pid = match f.read_exact_at(&mut b, PRIMARY_PID_OFFSET) {
                    Ok(()) => i32::from_ne_bytes(b),
                    Err(_) => 0,
                };
                if pid == 0 || !sys::process_exists(pid) {
                    // No pid yet (a primary between lock and write_pid) or a dead one (the
                    // lock is then held briefly by a process sweeping its leftovers, see
                    // `reclaim_dead_prefixes`): look again shortly.
                    last_pid = pid;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                }
                return Err(Error::PrefixInUse { prefix: prefix.into(), pid, path });
            }
            // Still the file at `path`? (see module doc)
            let same = match (f.metadata(), fs::metadata(&path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if !same {
                continue;
            }
            let rd = RuntimeDir { dir, prefix: prefix.into(), lock: Some(f) };
            rd.remove_stale_entries()?;
            rd.write_pid()?;
            return Ok(rd);
        }
        Err(Error::PrefixInUse { prefix: prefix.into(), pid: last_pid, path })
    }

    fn write_pid(&self) -> Result<()> {
        let f = self.lock.as_ref().expect("held until remove");
        f.set_len(0).map_err(|e| Error::io("truncate", "shared config", e))?;
        f.write_all_at(&(std::process::id() as i32).to_ne_bytes(), PRIMARY_PID_OFFSET)
            .map_err(|e| Error::io("write", "primary pid", e))
    }

    fn remove_stale_entries(&self) -> Result<()> {
        let rd = fs::read_dir(&self.dir).map_err(|e| Error::io("read", self.dir.display().to_string(), e))?;
        for ent in rd.flatten() {
            if ent.file_name() == "config" {
                continue;
            }
            let p = ent.path();
            let r = if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.map_err(|e| Error::io("remove stale", p.display().to_string(), e))?;
        }
        Ok(())
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The file prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<dir>/config`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// The locked config file.
    pub fn config_file(&self) -> Option<&File> {
        self.lock.as_ref()
    }

    /// Remove every file, the directory, the parent if empty; then drop the lock.
    /// Idempotent.
    pub fn remove(&mut self) -> Result<()> {
        if self.lock.is_none() {
            return Ok(());
        }
        let mut first_err = None;
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                first_err = Some(Error::io("remove", self.dir.display().to_string(), e));
            }
        }
        if let Some(parent) = self.dir.parent() {
            // Fails harmlessly while other prefixes live there.
            let _ = fs::remove_dir(parent);
        }
        self.lock = None;
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// Remove the runtime directories (and, through `reclaim`, the memory files) of every
/// *other* prefix under `root` whose primary is dead, i.e. whose `config` lock can be
/// taken. Directories without a `config` file are skipped (a primary may be between
/// `mkdir` and `open`). Returns the prefixes swept. Errors on one prefix are skipped.
pub fn reclaim_dead_prefixes(
    root: &Path,
    own: &str,
    mut reclaim: impl FnMut(&str) -> Result<Vec<PathBuf>>,
) -> Vec<String> {
    let mut swept = Vec::new();
    let Ok(rd) = fs::read_dir(root) else { return swept };
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        if name == own || validate_prefix(&name).is_err() || !ent.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = ent.path();
        let cfg = dir.join("config");
        let Ok(f) = OpenOptions::new().read(true).write(true).open(&cfg) else { continue };
        if !matches!(sys::try_flock(f.as_fd(), true, &cfg), Ok(true)) {
            continue;
        }
        // Still the directory's config (not unlinked by an exiting primary)?
        let same = match (f.metadata(), fs::metadata(&cfg)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if !same {
            continue;
        }
        if reclaim(&name).is_ok() && fs::remove_dir_all(&dir).is_ok() {
            swept.push(name);
        }
        drop(f);
    }
    swept
}

fn make_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("create", format!("runtime directory {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempDir;

    #[test]
    fn prefixes() {
        assert!(validate_prefix("ferroplane").is_ok());
        assert!(validate_prefix("t-1.a_b+c").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(MAX_PREFIX_LEN + 1)] {
            assert!(matches!(validate_prefix(bad), Err(Error::BadArg { .. })), "{bad:?}");
        }
    }

    #[test]
    fn second_primary_refused_then_dir_removed() {
        let t = TempDir::new("rt");
        let root = t.path().join("run");
        let mut a = RuntimeDir::acquire_primary("p1", Some(&root)).unwrap();
        fs::write(a.path().join("extra"), b"x").unwrap();
        let err = RuntimeDir::acquire_primary("p1", Some(&root)).unwrap_err();
        match err {
            Error::PrefixInUse { pid, .. } => assert_eq!(pid, std::process::id() as i32),
            e => panic!("unexpected {e}"),
        }
        // Other prefix is fine.
        let b = RuntimeDir::acquire_primary("p2", Some(&root)).unwrap();
        let mode = fs::metadata(a.path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        a.remove().unwrap();
        assert!(!root.join("p1").exists());
        assert!(root.exists(), "parent kept while p2 lives");
        drop(b);
        assert!(!root.exists(), "parent removed when empty");
        // Reacquire after release; stale entries are cleaned.
        let c = RuntimeDir::acquire_primary("p1", Some(&root)).unwrap();
        fs::write(c.path().join("stale"), b"x").unwrap();
        // Simulate a dead holder: forget the lock without removing files.
        let dir = c.path().to_path_buf();
        let mut c = c;
        c.lock = None;
        drop(c);
        assert!(dir.join("stale").exists());
        let d = RuntimeDir::acquire_primary("p1", Some(&root)).unwrap();
        assert!(!dir.join("stale").exists());
        drop(d);
    }

    #[test]
    fn sweeps_only_dead_prefixes() {
        let t = TempDir::new("rt-sweep");
        let root = t.path().join("run");
        let own = RuntimeDir::acquire_primary("own", Some(&root)).unwrap();
        let live = RuntimeDir::acquire_primary("live", Some(&root)).unwrap();
        // A dead primary: config exists, nobody holds its lock.
        fs::create_dir_all(root.join("dead")).unwrap();
        fs::write(root.join("dead/config"), b"").unwrap();
        fs::write(root.join("dead/other"), b"").unwrap();
        // Being created: no config yet.
        fs::create_dir_all(root.join("young")).unwrap();
        let mut asked = Vec::new();
        let swept = reclaim_dead_prefixes(&root, "own", |p| {
            asked.push(p.to_string());
            Ok(Vec::new())
        });
        assert_eq!(swept, vec!["dead".to_string()]);
        assert_eq!(asked, vec!["dead".to_string()]);
        assert!(!root.join("dead").exists());
        assert!(root.join("young").exists() && live.path().exists() && own.path().exists());
        assert!(live.config_path().exists());
    }
}
