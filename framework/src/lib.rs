//! Ferroplane's storage application framework, in the class of SPDK's `lib/thread` and
//! `lib/event`: reactors, lightweight threads, pollers, messages, events, I/O channels,
//! interrupts, schedulers, subsystems and the application skeleton.
//!
//! # Layering
//!
//! * [`runtime::Framework`] puts one [`reactor`] on every lcore of the EAL (workers via
//!   `remote_launch`, the main lcore on the caller's thread).
//! * A reactor runs any number of [`thread`]s (lightweight, SPDK's `spdk_thread`): each
//!   has a message ring (an MP/SC ring of the ring crate carrying boxed closures,
//!   [`msg`]), pollers ([`poller`]), interrupt descriptors ([`interrupt`]) and I/O
//!   channels ([`io_channel`]), and is run by one reactor at a time.
//! * Events ([`reactor::event_call`]) are closures sent to a reactor; the framework uses
//!   them to place, move and stop threads.
//! * Idle reactors sleep in epoll; senders write a reactor's eventfd only when it is
//!   (about to be) asleep ([`wake`] has the handshake and its proof).
//! * A [`scheduler`] policy (static or dynamic) moves threads between reactors every
//!   period from their busy/idle counters.
//! * [`subsystem`]s initialise in dependency order and finish in reverse; [`app`] is
//!   SPDK's `spdk_app_start`: arguments, EAL, reactors, subsystems, RPC server, JSON
//!   config, signals.
//!
//! # Who may call what
//!
//! * [`thread::ThreadHandle`] (send messages, read counters) and [`runtime::Framework`]
//!   are `Send + Sync`: any OS thread may use them.
//! * Everything that acts on "the current thread" (registering pollers and interrupts,
//!   getting channels, [`thread::exit`], [`thread::for_each_thread`]) must run inside the
//!   framework: in a message, poller, interrupt handler or the start callback. Outside it
//!   these calls fail with [`Error::NotOnThread`].
//! * Poller and interrupt handles act only on their own thread ([`Error::WrongThread`]).
//! * Callbacks must not block: a reactor runs every thread it hosts in turn.
//!
//! Nothing here lives in shared memory; a framework is per process.

pub mod app;
pub mod error;
pub mod interrupt;
pub mod io_channel;
pub mod poller;
pub mod reactor;
pub mod runtime;
pub mod scheduler;
pub mod subsystem;
pub mod thread;

mod hub;
mod intr_set;
mod msg;
mod poller_set;
mod sys;
mod wake;

pub use error::{Error, Result};
pub use msg::Msg;
pub use poller::{PollStatus, Poller};
pub use runtime::{Framework, FrameworkOpts};
pub use thread::{SendError, SendFailure, ThreadHandle};
