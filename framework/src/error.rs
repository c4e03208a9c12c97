//! The framework's one error type.

use std::io;

/// Everything the framework can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A syscall failed.
    #[error("failed to {op}: {source}")]
    Sys {
        /// What was being done ("create an eventfd").
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A ring could not be made.
    #[error("failed to create a message ring: {0}")]
    Ring(#[from] ring::Error),
    /// The EAL refused.
    #[error("failed in the EAL: {0}")]
    Eal(#[from] eal::Error),
    /// The call must be made from a framework thread (inside a poller, message or
    /// start callback) and was not.
    #[error("failed to {what}: not called from a framework thread")]
    NotOnThread {
        /// The operation.
        what: &'static str,
    },
    /// The object belongs to another framework thread.
    #[error("failed to {what}: it belongs to thread {owner}, not the calling thread")]
    WrongThread {
        /// The operation.
        what: &'static str,
        /// The owning thread's id.
        owner: u64,
    },
    /// The target thread has exited.
    #[error("failed to send a message: thread {0} has exited")]
    ThreadExited(u64),
    /// The target's message ring is full.
    #[error("failed to send a message: the ring of {0} is full")]
    QueueFull(String),
    /// The framework is shutting down and refuses new work of this kind.
    #[error("failed to {0}: the framework is stopping")]
    Stopping(&'static str),
    /// No reactor runs on this lcore.
    #[error("failed to find a reactor on lcore {0}")]
    NoSuchLcore(u32),
    /// A thread cpumask selects no reactor.
    #[error("failed to place thread '{0}': its cpumask selects no reactor")]
    EmptyCpumask(String),
    /// The poller or interrupt was already unregistered.
    #[error("failed to {0}: the poller or interrupt no longer exists")]
    Gone(&'static str),
    /// The I/O device was unregistered.
    #[error("failed to get a channel: I/O device '{0}' is being unregistered")]
    DeviceUnregistered(String),
    /// Unknown scheduler name.
    #[error("failed to set the scheduler: unknown scheduler '{0}' (known: static, dynamic)")]
    UnknownScheduler(String),
    /// A bad value for a framework setting.
    #[error("failed to set {what}: {why}")]
    BadValue {
        /// The setting.
        what: &'static str,
        /// Why it was refused.
        why: String,
    },
    /// Subsystem registration or ordering.
    #[error("failed to order subsystems: {0}")]
    Subsystem(String),
    /// A subsystem's init failed.
    #[error("failed to initialise subsystem '{name}': {why}")]
    SubsystemInit {
        /// The subsystem.
        name: String,
        /// Its reason.
        why: String,
    },
    /// A command-line argument was refused.
    #[error("bad argument {arg} '{value}': {why}")]
    BadArg {
        /// The argument as written.
        arg: String,
        /// Its value.
        value: String,
        /// Why.
        why: String,
    },
    /// `-h` / `--help`.
    #[error("help requested")]
    HelpRequested,
    /// Loading the `--json` configuration failed.
    #[error("failed to load the JSON configuration {path}: {why}")]
    Config {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// The RPC server failed.
    #[error("failed to {what}: {why}")]
    Rpc {
        /// The operation.
        what: &'static str,
        /// Why.
        why: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
