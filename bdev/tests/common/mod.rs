//! Shared set-up: an EAL with `--no-huge` under a file prefix of its own (tests run in
//! parallel in one process), and a sequencer that runs test steps one after the other
//! on a framework thread, each step calling `next` when its I/O has completed.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use framework::{thread, Framework};

/// An EAL on `lcores`, or `None` after a counted skip.
pub fn eal(test: &str, lcores: &str) -> Option<eal::Eal> {
    let argv = testkit::eal_env::in_process_args("bdt", lcores);
    testkit::eal_env::init_or_skip(test, eal::Eal::init(&argv).map(|(e, _)| e))
}

/// Framework options for tests.
pub fn opts() -> framework::FrameworkOpts {
    framework::FrameworkOpts {
        exit_timeout_ms: 2000,
        ..Default::default()
    }
}

/// One step: do something, then call `next.go()` (from any callback on the thread).
pub type Step = Box<dyn FnOnce(Next) + Send>;

/// A step from a closure.
pub fn step(f: impl FnOnce(Next) + Send + 'static) -> Step {
    Box::new(f)
}

/// The continuation handed to a step.
pub struct Next {
    steps: Arc<Mutex<VecDeque<Step>>>,
    fw: Framework,
}

impl Next {
    /// Run the next step from a message on the current thread (no recursion), or shut
    /// the framework down with 0 after the last.
    pub fn go(self) {
        let me = thread::current().expect("steps run on a framework thread");
        me.send_msg(move || {
            let s = self.steps.lock().unwrap().pop_front();
            match s {
                Some(step) => step(self),
                None => self.fw.shutdown(0),
            }
        })
        .expect("send the next step");
    }

    /// The framework.
    pub fn fw(&self) -> &Framework {
        &self.fw
    }
}

impl Next {
    /// The running framework.
    pub fn framework(&self) -> &Framework {
        &self.fw
    }
}

/// Run `steps` in order on the app thread; returns the framework's exit code.
pub fn run_steps(eal: &eal::Eal, steps: Vec<Step>) -> i32 {
    Framework::run(eal, opts(), move |fw| {
        let n = Next {
            steps: Arc::new(Mutex::new(steps.into())),
            fw,
        };
        n.go();
    })
    .expect("framework run")
}

/// Counts down; runs `then` when it reaches zero.
pub struct Latch {
    left: AtomicUsize,
    then: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Latch {
    /// A latch of `n` hits.
    pub fn new(n: usize, then: impl FnOnce() + Send + 'static) -> Arc<Latch> {
        Arc::new(Latch {
            left: AtomicUsize::new(n),
            then: Mutex::new(Some(Box::new(then))),
        })
    }

    /// One hit.
    pub fn hit(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(f) = self.then.lock().unwrap().take() {
                f();
            }
        }
    }
}

/// Block `i`'s fill byte for a pattern seed.
pub fn pat(seed: u8, block: u64) -> u8 {
    seed.wrapping_add((block as u8).wrapping_mul(31)) | 1
}

/// `n` blocks of `bs` bytes starting at block `first`, filled per [`pat`].
pub fn pattern(seed: u8, first: u64, n: u64, bs: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n as usize * bs);
    for b in first..first + n {
        v.extend(std::iter::repeat_n(pat(seed, b), bs));
    }
    v
}
