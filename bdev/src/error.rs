//! The bdev layer's error type.

use thiserror::Error;

/// Everything that can go wrong in the bdev layer.
#[derive(Debug, Error)]
pub enum Error {
    /// No bdev has this name or alias.
    #[error("failed to find bdev '{0}': no such bdev")]
    NotFound(String),
    /// A bdev or alias with this name exists already.
    #[error("failed to register bdev '{0}': the name is in use")]
    Exists(String),
    /// A parameter is out of range.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// Which parameter.
        what: &'static str,
        /// Why it is refused.
        why: String,
    },
    /// The bdev is being removed (or is gone): no new descriptors, channels or I/O.
    #[error("failed to {what} on bdev '{name}': it is being removed")]
    Removed {
        /// What was attempted.
        what: &'static str,
        /// The bdev.
        name: String,
    },
    /// A write was attempted through a read-only descriptor.
    #[error("failed to submit {io} to bdev '{name}': the descriptor is read-only")]
    ReadOnly {
        /// The I/O type.
        io: &'static str,
        /// The bdev.
        name: String,
    },
    /// The bdev is claimed by a module; only its descriptor may write.
    #[error("failed to {what} bdev '{name}': claimed by module '{module}'")]
    Claimed {
        /// What was attempted.
        what: &'static str,
        /// The bdev.
        name: String,
        /// The claiming module.
        module: String,
    },
    /// The module does not support this I/O type.
    #[error("failed to submit {io} to bdev '{name}': not supported by module '{module}'")]
    Unsupported {
        /// The I/O type.
        io: &'static str,
        /// The bdev.
        name: String,
        /// Its module.
        module: String,
    },
    /// The request falls outside the bdev.
    #[error("failed to submit I/O to bdev '{name}': blocks {offset}+{count} beyond {num_blocks}")]
    OutOfRange {
        /// The bdev.
        name: String,
        /// First block.
        offset: u64,
        /// Block count.
        count: u64,
        /// Size of the bdev in blocks.
        num_blocks: u64,
    },
    /// The buffers given are smaller than the request.
    #[error("failed to submit I/O: buffers hold {have} bytes, the request needs {need}")]
    ShortBuffer {
        /// Bytes in the iovecs.
        have: usize,
        /// Bytes the request moves.
        need: u64,
    },
    /// No I/O object is free on this channel (SPDK's -ENOMEM from spdk_bdev_read etc.);
    /// retry after one of the channel's I/Os completes.
    #[error("failed to submit I/O to bdev '{0}': no free I/O object on this channel")]
    NoMem(String),
    /// The module could not make a channel for this thread.
    #[error("failed to get an I/O channel for bdev '{name}': {why}")]
    Channel {
        /// The bdev.
        name: String,
        /// The module's reason.
        why: String,
    },
    /// The module could not create its bdev (memory, ...).
    #[error("failed to create bdev '{name}': {why}")]
    Create {
        /// The bdev.
        name: String,
        /// Why.
        why: String,
    },
    /// A framework call failed (not on a framework thread, ...).
    #[error(transparent)]
    Framework(#[from] framework::Error),
}

/// The bdev layer's result type.
pub type Result<T> = std::result::Result<T, Error>;
