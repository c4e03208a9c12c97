//! What a submit hands a queue (the commands) and what it gets back (the completion,
//! delivered by tag or callback).

use eal::VirtAddr;

use crate::buf::IoBuf;
use crate::error::Result;
use crate::spec::{Sqe, Status};

/// A successful completion (of all commands of a request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Dword 0 of the (last) completion entry: command specific.
    pub cdw0: u32,
    /// The status (success, since errors are delivered as [`Error`](crate::Error)).
    pub status: Status,
    /// How many device commands the request took (more than 1 when split by MDTS).
    pub commands: u32,
}

/// What to do when a request completes.
pub enum Done {
    /// Hand `(tag, result)` to the closure of
    /// [`QPair::process_completions_with`](crate::QPair::process_completions_with); no
    /// allocation. With plain `process_completions` the result is dropped.
    Tag(u64),
    /// Call this (on the thread that processes completions).
    Callback(Box<dyn FnOnce(Result<Completion>) + Send>),
}

impl Done {
    /// A boxed callback.
    pub fn callback(f: impl FnOnce(Result<Completion>) + Send + 'static) -> Done {
        Done::Callback(Box::new(f))
    }
}

impl std::fmt::Debug for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Done::Tag(t) => write!(f, "Done::Tag({t})"),
            Done::Callback(_) => write!(f, "Done::Callback(..)"),
        }
    }
}

/// Callback taking the buffer back (safe submit APIs).
pub(crate) type BufCallback = Box<dyn FnOnce(Result<Completion>, IoBuf) + Send>;

pub(crate) enum DoneInner {
    User(Done),
    WithBuf(BufCallback),
}

/// The commands of one submit.
pub(crate) enum Cmds<'a> {
    /// One command; optional data buffer (PRPs) or a payload copied into the tracker's
    /// page (used as PRP1).
    Single {
        sqe: Sqe,
        data: Option<(VirtAddr, u64)>,
        payload: Option<&'a [u8]>,
    },
    /// A block range split into commands of at most `max_nlb` blocks each; `data` is the
    /// buffer of the whole range (none for Write Zeroes).
    Blocks {
        sqe: Sqe,
        slba: u64,
        nlb: u64,
        bs: u64,
        max_nlb: u64,
        data: Option<VirtAddr>,
    },
}
