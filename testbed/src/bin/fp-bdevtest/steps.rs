//! Sequencing: steps run one after the other on the app thread, each ending with
//! `Next::go` or `Next::fail`; and the framework handle for errors with no `Next` left.

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use eal::Eal;
use framework::{thread, Framework};

pub type Res<T> = std::result::Result<T, String>;

pub fn fail(fw: &Framework, why: impl std::fmt::Display) {
    println!("FAIL {why}");
    let _ = std::io::stdout().flush();
    fw.shutdown(1);
}

pub fn eal_of() -> Eal {
    thread::current_eal().expect("on a framework thread")
}

pub type Step = Box<dyn FnOnce(Next) + Send>;

/// Runs steps one after the other on the app thread; each calls `go` or `fail`.
pub struct Next {
    steps: Arc<Mutex<VecDeque<Step>>>,
    fw: Framework,
}

impl Next {
    pub fn start(fw: Framework, steps: Vec<Step>) {
        Next {
            steps: Arc::new(Mutex::new(steps.into())),
            fw,
        }
        .go()
    }

    /// The next step, from a message (no recursion); shutdown(0) after the last.
    pub fn go(self) {
        let me = thread::current().expect("steps run on a framework thread");
        let fw = self.fw.clone();
        let r = me.send_msg(move || {
            let s = self
                .steps
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            match s {
                Some(step) => step(self),
                None => self.fw.shutdown(0),
            }
        });
        if let Err(e) = r {
            fail(&fw, format!("send the next step: {e}"));
        }
    }

    pub fn fail(self, why: impl std::fmt::Display) {
        fail(&self.fw, why);
    }
}

pub fn the_fw() -> Framework {
    // Only used to stop after a submit error, where no `Next` is left.
    FW.lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .expect("framework set")
}

/// The running app, set once at start.
pub static FW: Mutex<Option<Framework>> = Mutex::new(None);
