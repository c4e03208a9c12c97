//! Running blobstore work next to a framework: [`run`] starts the reactors, runs a
//! set-up step on the app thread (create or configure bdevs), then the work on an OS
//! thread of its own (blobstore calls wait for their I/O, which runs on the app
//! thread), and shuts the framework down when the work returns.

use std::sync::{Arc, Mutex};

use framework::{Framework, FrameworkOpts, ThreadHandle};

use crate::error::{Error, Result};

/// Run `setup` on the app thread, then `work` (given the app thread) on a new OS
/// thread; returns what `work` returned. `work` must drop every
/// [`crate::bdev_dev::BdevDev`] before it returns. A panic in `work` stops the
/// framework and is resumed on the caller's thread.
pub fn run<T, S, W>(eal: &eal::Eal, setup: S, work: W) -> Result<T>
where
    T: Send + 'static,
    S: FnOnce() -> Result<()> + Send + 'static,
    W: FnOnce(ThreadHandle) -> T + Send + 'static,
{
    type Out<T> = Option<std::thread::Result<Result<T>>>;
    let out: Arc<Mutex<Out<T>>> = Arc::new(Mutex::new(None));
    let o2 = out.clone();
    let opts = FrameworkOpts {
        exit_timeout_ms: 2000,
        ..FrameworkOpts::default()
    };
    Framework::run(eal, opts, move |fw: Framework| {
        if let Err(e) = setup() {
            *o2.lock().unwrap_or_else(|e| e.into_inner()) = Some(Ok(Err(e)));
            fw.shutdown(1);
            return;
        }
        let app = fw.app_thread();
        let spawned = std::thread::Builder::new()
            .name("blob-worker".into())
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(app)));
                let rc = i32::from(r.is_err());
                *o2.lock().unwrap_or_else(|e| e.into_inner()) = Some(r.map(Ok));
                fw.shutdown(rc);
            });
        if let Err(e) = spawned {
            eal::log_err!("blob host: cannot start the worker thread: {e}");
        }
    })?;
    let r = out.lock().unwrap_or_else(|e| e.into_inner()).take();
    let r = r.map(|x| x.unwrap_or_else(|p| std::panic::resume_unwind(p)));
    r.unwrap_or_else(|| {
        Err(Error::Invalid {
            what: "run blobstore work",
            why: "the framework stopped before the work finished".into(),
        })
    })
}
