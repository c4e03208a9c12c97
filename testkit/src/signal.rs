//! A one-shot completion a benchmark driver sleeps on (so it does not take a cpu while
//! framework threads do the work): one side calls [`Signal::set`], the other
//! [`Signal::wait`], which returns once it was set and re-arms it.

use std::sync::{Condvar, Mutex};

/// See the module docs.
#[derive(Default)]
pub struct Signal {
    done: Mutex<bool>,
    cv: Condvar,
}

impl Signal {
    /// Mark done and wake the waiter.
    pub fn set(&self) {
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_one();
    }

    /// Sleep until [`set`](Signal::set), then re-arm.
    pub fn wait(&self) {
        let mut d = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while !*d {
            d = self.cv.wait(d).unwrap_or_else(|e| e.into_inner());
        }
        *d = false;
    }
}
