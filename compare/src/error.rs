//! The tool's one error type.

/// What can stop a comparison.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad command line: one line naming the argument.
    #[error("{0}")]
    Usage(String),
    /// A side that failed to start, failed, or printed nothing parseable.
    #[error("{side} {why}\n--- {side}: last lines of its output ---\n{stderr}")]
    Side {
        side: String,
        why: String,
        stderr: String,
    },
    /// A setup step (install, hugepages, namespace, build) failed.
    #[error("{0}")]
    Setup(String),
    #[error("failed to {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
