//! The crate's error type.

use std::path::PathBuf;

/// Errors of the vhost target.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A controller of that name exists.
    #[error("failed to create controller '{0}': the name is in use")]
    Exists(String),
    /// No controller of that name.
    #[error("failed to find controller '{0}': no such controller")]
    NotFound(String),
    /// A parameter is out of range.
    #[error("failed to {what}: {why}")]
    Invalid {
        /// What was attempted.
        what: &'static str,
        /// Why not.
        why: String,
    },
    /// A system call failed.
    #[error("failed to {what}: {source}")]
    Sys {
        /// What was attempted.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The socket could not be set up.
    #[error("failed to listen on {path}: {source}")]
    Listen {
        /// Socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The bdev layer refused.
    #[error("failed to {what}: {source}")]
    Bdev {
        /// What was attempted.
        what: &'static str,
        /// The bdev error.
        #[source]
        source: Box<bdev::Error>,
    },
    /// The framework refused.
    #[error("failed to {what}: {source}")]
    Framework {
        /// What was attempted.
        what: &'static str,
        /// The framework error.
        #[source]
        source: Box<framework::Error>,
    },
    /// The guest's memory table or a ring address is unusable.
    #[error("failed to map guest memory: {0}")]
    Memory(String),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
