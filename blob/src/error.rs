//! The blob crate's error type.

use crate::format::FormatError;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store on the device is damaged or inconsistent: the load stops and writes
    /// nothing.
    #[error("failed to load the blobstore: {what}")]
    Corrupt {
        /// What is wrong, naming the structure.
        what: String,
    },
    /// A structure did not decode.
    #[error("failed to load the blobstore: {0}")]
    Format(#[from] FormatError),
    /// The device failed an I/O.
    #[error("failed to {what}: {why}")]
    Io {
        /// The operation.
        what: String,
        /// Why.
        why: String,
    },
    /// No free cluster or metadata page left.
    #[error("failed to {what}: no free {resource} left")]
    NoSpace {
        /// The operation.
        what: &'static str,
        /// Clusters or metadata pages.
        resource: &'static str,
    },
    /// No blob with that id.
    #[error("no blob {0:#x}")]
    NoBlob(u64),
    /// A bad argument.
    #[error("failed to {what}: {why}")]
    Invalid {
        /// The operation.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// The blob is read-only (a snapshot, or flags this version does not know).
    #[error("failed to {what}: blob {id:#x} is read-only")]
    ReadOnly {
        /// The operation.
        what: &'static str,
        /// The blob.
        id: u64,
    },
    /// The blob is in use.
    #[error("failed to {what}: blob {id:#x} {why}")]
    Busy {
        /// The operation.
        what: &'static str,
        /// The blob.
        id: u64,
        /// Why.
        why: String,
    },
    /// The bdev layer refused (boxed: it is large).
    #[error(transparent)]
    Bdev(Box<bdev::Error>),
    /// The framework refused.
    #[error(transparent)]
    Framework(Box<framework::Error>),
}

impl From<bdev::Error> for Error {
    fn from(e: bdev::Error) -> Error {
        Error::Bdev(Box::new(e))
    }
}

impl From<framework::Error> for Error {
    fn from(e: framework::Error) -> Error {
        Error::Framework(Box::new(e))
    }
}

/// The blob crate's result.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn corrupt(what: impl Into<String>) -> Error {
    Error::Corrupt { what: what.into() }
}
