//! A secondary's watch on its primary: a thread that polls the primary's lock and runs
//! the `on_primary_exit` callbacks once it is free.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};

pub(super) type ExitCallback = Box<dyn FnOnce() + Send>;

/// What the watcher shares with the handle: the "primary alive" flag and callbacks.
#[derive(Default)]
pub(super) struct ExitState {
    pub dead: AtomicBool,
    pub callbacks: Mutex<Vec<ExitCallback>>,
}

impl ExitState {
    pub fn fire(&self) {
        self.dead.store(true, Ordering::Release);
        let cbs = std::mem::take(&mut *self.callbacks.lock().unwrap_or_else(|p| p.into_inner()));
        for cb in cbs {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(cb)).is_err() {
                crate::log_err!("an on_primary_exit callback panicked");
            }
        }
    }
}

/// The secondary's watcher thread: polls the primary lock.
pub(super) struct Watcher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    pub fn start(
        config: std::fs::File,
        path: PathBuf,
        every: Duration,
        state: Arc<ExitState>,
    ) -> Result<Watcher> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let s2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("fp-watch".into())
            .spawn(move || loop {
                {
                    let (m, cv) = &*s2;
                    let g = m.lock().unwrap_or_else(|p| p.into_inner());
                    let (g, _) = cv
                        .wait_timeout_while(g, every, |stop| !*stop)
                        .unwrap_or_else(|p| p.into_inner());
                    if *g {
                        return;
                    }
                }
                if !config_lock_free(&config, &path) {
                    continue;
                }
                crate::log_warn!(
                    "the primary process exited (its lock on {} is free)",
                    path.display()
                );
                state.fire();
                return;
            })
            .map_err(|e| Error::io("start", "primary watcher thread", e))?;
        Ok(Watcher {
            stop,
            thread: Some(thread),
        })
    }
}

/// True if a shared lock on the config can be taken, i.e. no primary holds it; the lock
/// is dropped again at once.
fn config_lock_free(f: &std::fs::File, path: &Path) -> bool {
    use std::os::fd::AsFd;
    match crate::sys::mem::try_flock(f.as_fd(), false, path) {
        Ok(true) => {
            let _ = crate::sys::mem::funlock(f.as_fd(), path);
            true
        }
        _ => false,
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let (m, cv) = &*self.stop;
        *m.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            // A callback that dropped the last handle runs on the watcher itself.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}
