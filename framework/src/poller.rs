//! Pollers (SPDK's `spdk_poller`): functions a thread runs every iteration (active) or
//! every `period` microseconds (timed). Registered, paused, resumed and unregistered
//! from their own thread; a [`Poller`] handle used on another thread is refused with
//! [`Error::WrongThread`].

use crate::error::{Error, Result};
use crate::thread::{self, ThreadHandle};

pub use crate::poller_set::{PollStatus, PollerInfo};

/// A registered poller. `Copy`: dropping the handle does not unregister it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poller {
    thread: u64,
    slot: u32,
    gen: u32,
}

/// Options beyond the period.
#[derive(Debug, Clone, Copy, Default)]
pub struct PollerOpts {
    /// While registered and running, the reactor never sleeps (a poller that must watch
    /// something without a descriptor, such as a device queue with I/O outstanding).
    /// Pause it when there is nothing to watch.
    pub keep_awake: bool,
}

/// Register a poller on the current thread: `period_us == 0` runs it every iteration,
/// otherwise at most once per period (never two runs closer than the period).
pub fn register<F>(name: &str, period_us: u64, f: F) -> Result<Poller>
where
    F: FnMut() -> PollStatus + Send + 'static,
{
    register_with(name, period_us, PollerOpts::default(), f)
}

/// [`register`] with options.
pub fn register_with<F>(name: &str, period_us: u64, opts: PollerOpts, f: F) -> Result<Poller>
where
    F: FnMut() -> PollStatus + Send + 'static,
{
    thread::with_current(|t| {
        let now = eal::timer::rdtsc();
        let (slot, gen) = t.pollers.borrow_mut().register(
            name.to_string(),
            period_us,
            opts.keep_awake,
            Box::new(f),
            now,
        );
        Poller {
            thread: t.shared.id(),
            slot,
            gen,
        }
    })
    .ok_or(Error::NotOnThread {
        what: "register a poller",
    })
}

impl Poller {
    /// Id of the thread it belongs to.
    pub fn thread_id(&self) -> u64 {
        self.thread
    }

    fn on_own<R>(
        &self,
        what: &'static str,
        f: impl FnOnce(&thread::ThreadInner) -> std::result::Result<R, ()>,
    ) -> Result<R> {
        thread::with_current(|t| {
            if t.shared.id() != self.thread {
                return Err(Error::WrongThread {
                    what,
                    owner: self.thread,
                });
            }
            f(t).map_err(|()| Error::Gone(what))
        })
        .ok_or(Error::NotOnThread { what })?
    }

    /// Unregister (from its own thread; also from inside its own callback, then it is
    /// dropped when the callback returns).
    pub fn unregister(self) -> Result<()> {
        let dropped = self.on_own("unregister a poller", |t| {
            t.pollers.borrow_mut().unregister(self.slot, self.gen)
        })?;
        // Dropped here, with no borrow of the poller set held.
        drop(dropped);
        Ok(())
    }

    /// Pause: it is not run until resumed.
    pub fn pause(&self) -> Result<()> {
        self.on_own("pause a poller", |t| {
            t.pollers.borrow_mut().pause(self.slot, self.gen)
        })
    }

    /// Resume a paused poller (a timed one's next run is a full period from now).
    pub fn resume(&self) -> Result<()> {
        self.on_own("resume a poller", |t| {
            t.pollers
                .borrow_mut()
                .resume(self.slot, self.gen, eal::timer::rdtsc())
        })
    }
}

/// The pollers of the current thread (statistics).
pub fn current_pollers() -> Result<(ThreadHandle, Vec<PollerInfo>)> {
    thread::with_current(|t| (t.shared.clone(), t.pollers.borrow().infos())).ok_or(
        Error::NotOnThread {
            what: "list pollers",
        },
    )
}
