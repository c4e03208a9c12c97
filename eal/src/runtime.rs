//! The runtime directory, the primary lock and the secondaries' attach lock.
//!
//! Each file prefix has one runtime directory, mode 0700, at the first usable of
//! 1. `/var/run/ferroplane/<prefix>` (root),
//! 2. `$XDG_RUNTIME_DIR/ferroplane/<prefix>`,
//! 3. `/tmp/ferroplane-<uid>/<prefix>`,
//!
//! or `<root>/<prefix>` when the caller passes a root explicitly (tests). It holds:
//!
//! | file | who | what |
//! |---|---|---|
//! | `config` | primary creates | the shared config ([`crate::config`]); the primary holds an exclusive `flock` on it for its life |
//! | `attach` | primary creates | every secondary holds a shared `flock` on it for its life |
//! | `mp_socket` | primary | its IPC socket ([`crate::mp`]) |
//! | `mp_socket_<pid>` | each secondary | its IPC socket |
//!
//! # The primary lock
//!
//! `flock` locks belong to the open file description, so a second primary is refused
//! both in another process and in the same process ([`Error::PrefixInUse`]). Because the
//! kernel drops the lock when the holder dies (even by SIGKILL), a lock we can take means
//! the previous primary is dead. After taking the lock we check that `<dir>/config` is
//! still the inode we locked: a primary exiting concurrently unlinks it, and locking an
//! unlinked file would let two primaries coexist.
//!
//! # Secondaries of a dead primary (our choice; DPDK does not handle this)
//!
//! A new primary reclaims a dead primary's files (this directory's entries, its hugepage
//! and shm files, see [`crate::memory::reclaim_stale`]) and rewrites `config` in place.
//! Secondaries of the dead primary may still be running and mapping all of that, so a
//! new primary first tries an exclusive lock on `attach`: if a secondary still holds its
//! shared lock, the new primary is **refused** with [`Error::SecondariesAlive`] (naming
//! their pids) and changes nothing; it can start once they have exited (they notice the
//! primary's death, see [`crate::Eal::primary_alive`]). The same check keeps the sweep of
//! other dead prefixes ([`reclaim_dead_prefixes`]) away from directories that secondaries
//! still use. Likewise a primary that exits while secondaries are attached (after
//! waiting [`EXIT_GRACE`] for them to detach) leaves its files (memory and directory)
//! for them, releasing only its lock; the next primary reclaims them after the
//! secondaries are gone.
//!
//! # Secondaries
//!
//! [`RuntimeDir::attach_secondary`] finds the directory, opens `config` (no lock: the
//! primary has it) and takes a shared lock on `attach`; "the primary is alive" is
//! checked by trying a shared lock on `config`: it fails exactly while the primary holds
//! its exclusive lock ([`RuntimeDir::primary_alive`], also what the secondary's watcher
//! polls). A secondary never removes anything here but its own socket.
//!
//! [`RuntimeDir::remove`] (also on drop) removes the primary's files, the directory and
//! its parent if that became empty, and only then releases the lock; for a secondary it
//! only releases its locks.

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
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b));
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

/// Name of the file secondaries hold a shared lock on.
pub const ATTACH_FILE: &str = "attach";

/// How long a would-be primary retries the attach lock before refusing (a secondary
/// attaching or giving up holds it briefly), and how long a secondary retries it while a
/// primary checks or exits.
const ATTACH_RETRY: std::time::Duration = std::time::Duration::from_millis(300);

/// How long an exiting primary waits for attached secondaries to detach before it
/// leaves its files to them.
pub const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// A runtime directory this process uses, as primary or as secondary.
#[derive(Debug)]
pub struct RuntimeDir {
    dir: PathBuf,
    prefix: String,
    /// The config file: locked exclusively (primary) or just open (secondary).
    lock: Option<File>,
    /// The attach file: open, unlocked (primary) or locked shared (secondary).
    attach: Option<File>,
    secondary: bool,
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
        Err(last_err.unwrap_or_else(|| {
            Error::io(
                "create",
                "runtime directory",
                std::io::Error::other("no candidate"),
            )
        }))
    }

    fn lock_in(dir: PathBuf, prefix: &str) -> Result<RuntimeDir> {
        let path = dir.join("config");
        let mut last_pid = 0;
        for _ in 0..64 {
            // The directory may have been removed by an exiting primary between attempts.
            make_dir(&dir)?;
            let f = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
            {
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
                return Err(Error::PrefixInUse {
                    prefix: prefix.into(),
                    pid,
                    path,
                });
            }
            // Still the file at `path`? (see module doc)
            let same = match (f.metadata(), fs::metadata(&path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if !same {
                continue;
            }
            // Secondaries of a dead primary still attached? (module doc) Dropping `f`
            // on the error path releases the lock and removes nothing.
            let attach = open_attach(&dir, true)?;
            if !lock_retry(&attach, true, &dir.join(ATTACH_FILE))? {
                return Err(Error::SecondariesAlive {
                    prefix: prefix.into(),
                    pids: live_secondaries(&dir),
                });
            }
            let rd = RuntimeDir {
                dir,
                prefix: prefix.into(),
                lock: Some(f),
                attach: Some(attach),
                secondary: false,
            };
            rd.remove_stale_entries()?;
            rd.write_pid()?;
            // Secondaries may attach from now on; they wait for the config to be published.
            if let Some(a) = &rd.attach {
                sys::funlock(a.as_fd(), &rd.dir.join(ATTACH_FILE))?;
            }
            return Ok(rd);
        }
        Err(Error::PrefixInUse {
            prefix: prefix.into(),
            pid: last_pid,
            path,
        })
    }

    fn write_pid(&self) -> Result<()> {
        let f = self.lock.as_ref().expect("held until remove");
        f.set_len(0)
            .map_err(|e| Error::io("truncate", "shared config", e))?;
        f.write_all_at(
            &(std::process::id() as i32).to_ne_bytes(),
            PRIMARY_PID_OFFSET,
        )
        .map_err(|e| Error::io("write", "primary pid", e))
    }

    fn remove_stale_entries(&self) -> Result<()> {
        let rd = fs::read_dir(&self.dir)
            .map_err(|e| Error::io("read", self.dir.display().to_string(), e))?;
        for ent in rd.flatten() {
            if ent.file_name() == "config" || ent.file_name() == ATTACH_FILE {
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

    /// True for a secondary's handle.
    pub fn is_secondary(&self) -> bool {
        self.secondary
    }

    /// Secondary: is the primary still holding its lock? (A failed shared lock on
    /// `config` means yes; a taken one is released at once.) Always true for a primary.
    pub fn primary_alive(&self) -> bool {
        let (Some(f), true) = (&self.lock, self.secondary) else {
            return true;
        };
        let p = self.config_path();
        match sys::try_flock(f.as_fd(), false, &p) {
            Ok(false) => true,
            Ok(true) => {
                let _ = sys::funlock(f.as_fd(), &p);
                false
            }
            // Cannot tell: say alive rather than stop an application by mistake.
            Err(_) => true,
        }
    }

    /// Primary, at exit: take the attach lock exclusively if no secondary holds it (and
    /// keep it, so none attaches while we remove files), giving secondaries that are
    /// just exiting [`EXIT_GRACE`] to detach. `false` = secondaries are still attached:
    /// leave the files for them (module doc).
    pub fn begin_exit(&self) -> bool {
        let (Some(a), false) = (&self.attach, self.secondary) else {
            return false;
        };
        let p = self.dir.join(ATTACH_FILE);
        let until = std::time::Instant::now() + EXIT_GRACE;
        loop {
            match sys::try_flock(a.as_fd(), true, &p) {
                Ok(true) => return true,
                Ok(false) if std::time::Instant::now() < until => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                _ => return false,
            }
        }
    }

    /// Primary: release the lock but leave every file in place (secondaries still use
    /// them; the next primary reclaims them). Secondary: same as [`RuntimeDir::remove`].
    pub fn release_keep_files(&mut self) {
        self.attach = None;
        self.lock = None;
    }

    /// Pids of live secondaries with a socket in this directory.
    pub fn secondary_pids(&self) -> Vec<i32> {
        live_secondaries(&self.dir)
    }

    /// Primary: remove every file, the directory, the parent if empty; then drop the
    /// lock. Secondary: drop the locks only. Idempotent.
    pub fn remove(&mut self) -> Result<()> {
        if self.secondary {
            self.release_keep_files();
            return Ok(());
        }
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
        self.attach = None;
        first_err.map_or(Ok(()), Err)
    }

    /// Find the runtime directory of `prefix` (under `root`, or the default roots) and
    /// attach to its live primary as a secondary. Errors: [`Error::NoPrimary`] if there
    /// is no directory, no config, or the primary lock is free.
    pub fn attach_secondary(prefix: &str, root: Option<&Path>) -> Result<RuntimeDir> {
        validate_prefix(prefix)?;
        let roots = match root {
            Some(r) => vec![r.to_path_buf()],
            None => default_roots(),
        };
        let no = |why: String| Error::NoPrimary {
            prefix: prefix.into(),
            why,
        };
        let Some(dir) = roots
            .iter()
            .map(|r| r.join(prefix))
            .find(|d| d.join("config").exists())
        else {
            let looked: Vec<String> = roots
                .iter()
                .map(|r| r.join(prefix).join("config").display().to_string())
                .collect();
            return Err(no(format!("no shared config at {}", looked.join(" or "))));
        };
        let path = dir.join("config");
        let f = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(no(format!("{} vanished", path.display())))
            }
            Err(e) => return Err(Error::io("open", path.display().to_string(), e)),
        };
        let attach = match open_attach(&dir, false) {
            Ok(a) => a,
            Err(_) => {
                return Err(no(format!(
                    "no {} (the primary is exiting or crashed)",
                    dir.join(ATTACH_FILE).display()
                )))
            }
        };
        if !lock_retry(&attach, false, &dir.join(ATTACH_FILE))? {
            return Err(no("the primary is exiting".into()));
        }
        let rd = RuntimeDir {
            dir,
            prefix: prefix.into(),
            lock: Some(f),
            attach: Some(attach),
            secondary: true,
        };
        if !rd.primary_alive() {
            return Err(no(format!(
                "the primary lock on {} is free (its primary exited or crashed)",
                path.display()
            )));
        }
        let same = match (rd.lock.as_ref().map(File::metadata), fs::metadata(&path)) {
            (Some(Ok(a)), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if !same {
            return Err(no(
                "the primary is exiting (its config was just removed)".into()
            ));
        }
        Ok(rd)
    }
}

fn open_attach(dir: &Path, create: bool) -> Result<File> {
    let p = dir.join(ATTACH_FILE);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .open(&p)
        .map_err(|e| Error::io("open", p.display().to_string(), e))
}

/// Try a non-blocking `flock` for up to [`ATTACH_RETRY`].
fn lock_retry(f: &File, exclusive: bool, what: &Path) -> Result<bool> {
    let until = std::time::Instant::now() + ATTACH_RETRY;
    loop {
        if sys::try_flock(f.as_fd(), exclusive, what)? {
            return Ok(true);
        }
        if std::time::Instant::now() >= until {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Pids of `mp_socket_<pid>` entries in `dir` whose process exists.
fn live_secondaries(dir: &Path) -> Vec<i32> {
    let mut v: Vec<i32> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("mp_socket_")?
                .parse::<i32>()
                .ok()
        })
        .filter(|&pid| sys::process_exists(pid))
        .collect();
    v.sort_unstable();
    v
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
    let Ok(rd) = fs::read_dir(root) else {
        return swept;
    };
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        if name == own
            || validate_prefix(&name).is_err()
            || !ent.file_type().is_ok_and(|t| t.is_dir())
        {
            continue;
        }
        let dir = ent.path();
        let cfg = dir.join("config");
        let Ok(f) = OpenOptions::new().read(true).write(true).open(&cfg) else {
            continue;
        };
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
        // Secondaries of that dead primary still attached: leave everything to them.
        match open_attach(&dir, false) {
            Ok(a)
                if !matches!(
                    sys::try_flock(a.as_fd(), true, &dir.join(ATTACH_FILE)),
                    Ok(true)
                ) =>
            {
                continue
            }
            _ => {}
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
    use testkit::tempdir::TempDir;

    #[test]
    fn prefixes() {
        assert!(validate_prefix("ferroplane").is_ok());
        assert!(validate_prefix("t-1.a_b+c").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(MAX_PREFIX_LEN + 1)] {
            assert!(
                matches!(validate_prefix(bad), Err(Error::BadArg { .. })),
                "{bad:?}"
            );
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
        c.release_keep_files();
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
