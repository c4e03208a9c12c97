//! Interrupts (SPDK's `spdk_interrupt_register`): a descriptor watched for readability on
//! behalf of a thread. The reactor hosting the thread has the descriptor in its epoll set
//! and runs the handler on the thread when it is readable: at once when the reactor
//! sleeps, and at least every [`crate::reactor::INTR_CHECK_US`] microseconds while it
//! is busy. Epoll is level-triggered: the handler must consume what made the descriptor
//! readable, or it runs again.
//!
//! The descriptor stays owned by the caller and must stay open until unregistered.

use std::os::fd::RawFd;

use crate::error::{Error, Result};
use crate::intr_set::token;
use crate::poller_set::PollStatus;
use crate::thread;

/// A registered interrupt. `Copy`: dropping it does not unregister it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupt {
    thread: u64,
    slot: u32,
    gen: u32,
}

/// Watch `fd` for the current thread, running `handler` on it when readable.
pub fn register<F>(name: &str, fd: RawFd, handler: F) -> Result<Interrupt>
where
    F: FnMut() -> PollStatus + Send + 'static,
{
    thread::with_current(|t| {
        let id = t.shared.id();
        let (slot, gen) = t
            .intrs
            .borrow_mut()
            .insert(name.to_string(), fd, Box::new(handler))
            .ok_or(Error::BadValue {
                what: "interrupt",
                why: "too many interrupts on one thread".into(),
            })?;
        let epoll = t.host_epoll.get();
        if epoll >= 0 {
            if let Err(e) = crate::sys::epoll_add(epoll, fd, token(id, slot)) {
                let dropped = t.intrs.borrow_mut().remove(slot);
                drop(dropped);
                return Err(e);
            }
        }
        Ok(Interrupt {
            thread: id,
            slot,
            gen,
        })
    })
    .ok_or(Error::NotOnThread {
        what: "register an interrupt",
    })?
}

impl Interrupt {
    /// Stop watching (from its own thread, also from inside its handler).
    pub fn unregister(self) -> Result<()> {
        let what = "unregister an interrupt";
        let dropped = thread::with_current(|t| {
            if t.shared.id() != self.thread {
                return Err(Error::WrongThread {
                    what,
                    owner: self.thread,
                });
            }
            let mut intrs = t.intrs.borrow_mut();
            let e = intrs
                .get_mut(self.slot, self.gen)
                .ok_or(Error::Gone(what))?;
            let epoll = t.host_epoll.get();
            if epoll >= 0 {
                let _ = crate::sys::epoll_del(epoll, e.fd);
            }
            if e.f.is_none() {
                // Running: `run_interrupt` drops it on return.
                e.dead = true;
                return Ok(None);
            }
            Ok(intrs.remove(self.slot))
        })
        .ok_or(Error::NotOnThread { what })??;
        drop(dropped);
        Ok(())
    }
}
