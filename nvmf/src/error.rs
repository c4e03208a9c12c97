//! The crate's error type.

use thiserror::Error;

/// Everything that can go wrong in the NVMe-oF target and initiator.
#[derive(Debug, Error)]
pub enum Error {
    /// No such object.
    #[error("failed to find {0}: it does not exist")]
    NotFound(String),
    /// The object exists already.
    #[error("failed to create {0}: it exists already")]
    Exists(String),
    /// A parameter is out of range.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// Which parameter.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// A socket call failed.
    #[error("failed to {what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The framework refused.
    #[error("failed to {what}: {source}")]
    Framework {
        /// What was attempted.
        what: &'static str,
        /// Its error.
        #[source]
        source: Box<framework::Error>,
    },
    /// The bdev layer refused.
    #[error("failed to {what}: {source}")]
    Bdev {
        /// What was attempted.
        what: String,
        /// Its error.
        #[source]
        source: Box<bdev::Error>,
    },
    /// The remote side broke the protocol or refused.
    #[error("failed to {what}: {why}")]
    Protocol {
        /// What was attempted.
        what: &'static str,
        /// What went wrong.
        why: String,
    },
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, Error>;
