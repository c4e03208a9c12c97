//! What a submit hands a queue (the commands) and what it gets back (the completion,
//! delivered by tag or callback).

use eal::VirtAddr;

use crate::buf::IoBuf;
use crate::error::{Error, Result};
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

/// How many completion entries one `process_completions` call may reap.
///
/// SPDK's `spdk_nvme_qpair_process_completions(qpair, max_completions)` takes a plain
/// integer in which 0 means "no limit" (the driver then reaps at most the queue size
/// minus one per call). A bare integer invites the opposite reading (0 = reap nothing),
/// so here the two cases are different variants: there is no magic zero to pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reap {
    /// Everything the device has completed (SPDK's `max_completions = 0`).
    All,
    /// At most this many entries (SPDK's `max_completions = n`, n > 0).
    AtMost(std::num::NonZeroUsize),
}

impl Reap {
    /// The limit as an entry count (`All`: unbounded).
    pub fn limit(self) -> usize {
        match self {
            Reap::All => usize::MAX,
            Reap::AtMost(n) => n.get(),
        }
    }
}

/// Commands of a request still to be written to the SQ: it needed more commands than
/// were free when it was submitted (or others were waiting before it), so they go in as
/// slots free, in submission order (SPDK's queued requests).
pub(crate) enum Pending {
    /// The remaining block range of a split request: commands of at most `max_nlb`
    /// blocks from `slba + done` on.
    Blocks {
        sqe: Sqe,
        slba: u64,
        done: u64,
        nlb: u64,
        bs: u64,
        max_nlb: u64,
        data: Option<VirtAddr>,
    },
    /// One command, with its payload copied.
    Single {
        sqe: Sqe,
        data: Option<(VirtAddr, u64)>,
        payload: Option<Vec<u8>>,
    },
}

impl Pending {
    /// The pending form of `cmds` (nothing submitted yet).
    pub(crate) fn of(cmds: &Cmds<'_>) -> Pending {
        match *cmds {
            Cmds::Single { sqe, data, payload } => Pending::Single {
                sqe,
                data,
                payload: payload.map(<[u8]>::to_vec),
            },
            Cmds::Blocks {
                sqe,
                slba,
                nlb,
                bs,
                max_nlb,
                data,
            } => Pending::Blocks {
                sqe,
                slba,
                done: 0,
                nlb,
                bs,
                max_nlb,
                data,
            },
        }
    }

    /// Commands still to submit.
    pub(crate) fn commands_left(&self) -> u64 {
        match self {
            Pending::Single { .. } => 1,
            Pending::Blocks {
                done, nlb, max_nlb, ..
            } => (nlb - done).div_ceil(*max_nlb),
        }
    }
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

/// A command id's tracker.
#[derive(Clone, Copy, Default)]
pub(super) struct Tracker {
    pub(super) req: u16,
    pub(super) active: bool,
    pub(super) abort_sent: bool,
    pub(super) tsc: u64,
}

/// One user request's state (a request slot).
#[derive(Default)]
pub(super) struct Req {
    pub(super) done: Option<DoneInner>,
    pub(super) buf: Option<IoBuf>,
    pub(super) remaining: u32,
    pub(super) commands: u32,
    pub(super) err: Option<Error>,
    pub(super) cdw0: u32,
    pub(super) status: u16,
    pub(super) in_use: bool,
    /// Commands not yet in the SQ (the request waits in `waiting`).
    pub(super) pending: Option<Pending>,
}
