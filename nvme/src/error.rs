//! The crate's one error type. Device status codes are decoded into typed variants by
//! [`Error::from_status`]; messages read "failed to `verb` `what`: `why`".

use crate::spec::{generic, media, sct, specific, Status};

/// Result alias of the NVMe crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the NVMe driver and the kernel back ends can fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The EAL (device access, memory) failed.
    #[error("failed to access the device: {0}")]
    Eal(#[from] eal::Error),
    /// A system call of a kernel back end failed.
    #[error("failed to {op} {what}: {source}")]
    Os {
        /// The operation.
        op: &'static str,
        /// Its object.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The controller did not reach a state in time.
    #[error("failed to {what}: timed out after {ms} ms")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The limit.
        ms: u64,
    },
    /// CSTS.CFS is set: the controller hit a fatal error and must be reset.
    #[error("failed to {what}: controller fatal status (CSTS.CFS=1); reset the controller")]
    ControllerFatal {
        /// What was being done.
        what: String,
    },
    /// The device is gone (register reads all-ones, unbound, removed).
    #[error("failed to use NVMe controller {addr}: device gone ({why})")]
    DeviceGone {
        /// PCI address.
        addr: String,
        /// How it was noticed.
        why: String,
    },
    /// No free command slot: process completions and retry. Nothing was submitted.
    #[error("failed to submit a command: queue full ({depth} outstanding)")]
    QueueFull {
        /// Commands in flight.
        depth: usize,
    },
    /// The controller was reset while the command was outstanding.
    #[error("failed to complete the command: the controller was reset while it was outstanding")]
    Reset,
    /// The queue pair was deleted while the command was outstanding.
    #[error("failed to complete the command: its queue pair was deleted")]
    QpairDeleted,
    /// Generic SC 0x80.
    #[error("failed to execute the command: LBA out of range (device status {status})")]
    LbaOutOfRange {
        /// Raw status.
        status: Status,
    },
    /// Generic SC 0x02.
    #[error("failed to execute the command: invalid field in command (device status {status})")]
    InvalidField {
        /// Raw status.
        status: Status,
    },
    /// Generic SC 0x01.
    #[error("failed to execute the command: invalid opcode (device status {status})")]
    InvalidOpcode {
        /// Raw status.
        status: Status,
    },
    /// Generic SC 0x0b.
    #[error("failed to execute the command: invalid namespace or format (device status {status})")]
    InvalidNamespace {
        /// Raw status.
        status: Status,
    },
    /// Media SC 0x85: the data did not match (Compare).
    #[error("failed to compare: the data on the media differs (device status {status})")]
    CompareFailure {
        /// Raw status.
        status: Status,
    },
    /// Another media and data integrity error (SCT 2).
    #[error("failed to execute the command: media error: {} (device status {status})", status.name())]
    MediaError {
        /// Raw status.
        status: Status,
    },
    /// The command was aborted (Abort command, SQ deletion, power loss, fused failure).
    #[error("failed to execute the command: aborted ({})", status.name())]
    Aborted {
        /// Raw status.
        status: Status,
    },
    /// The command did not complete within the queue pair's timeout and was aborted.
    #[error("failed to complete the command within {ms} ms: timed out (aborted)")]
    CommandTimeout {
        /// The limit.
        ms: u64,
    },
    /// Any other non-success status.
    #[error("failed to execute the command: device status {status}")]
    Command {
        /// Raw status.
        status: Status,
    },
    /// A buffer the device cannot use (not EAL memory, misaligned, wrong length).
    #[error("failed to use the buffer: {why}")]
    BadBuffer {
        /// Why.
        why: String,
    },
    /// A bad argument (namespace id, block count, option).
    #[error("failed to {what}: {why}")]
    BadArgument {
        /// What was attempted.
        what: String,
        /// Why it is refused.
        why: String,
    },
    /// The controller or namespace does not support it.
    #[error("failed to {what}: not supported by this controller")]
    Unsupported {
        /// What.
        what: String,
    },
    /// No more I/O queue ids (the controller granted fewer).
    #[error(
        "failed to allocate an I/O queue pair: all {max} queues the controller granted are in use"
    )]
    NoQueues {
        /// How many were granted.
        max: u16,
    },
    /// The controller is not usable (failed reset, bring-up failure).
    #[error("failed to use the controller: {why}")]
    NotReady {
        /// Why.
        why: String,
    },
}

impl Error {
    /// Decode a non-success completion status into a typed error.
    pub fn from_status(status: Status) -> Error {
        match (status.sct(), status.sc()) {
            (sct::GENERIC, generic::LBA_OUT_OF_RANGE) => Error::LbaOutOfRange { status },
            (sct::GENERIC, generic::INVALID_FIELD) => Error::InvalidField { status },
            (sct::GENERIC, generic::INVALID_OPCODE) => Error::InvalidOpcode { status },
            (sct::GENERIC, generic::INVALID_NAMESPACE) => Error::InvalidNamespace { status },
            (
                sct::GENERIC,
                generic::ABORT_REQUESTED
                | generic::ABORTED_SQ_DELETION
                | generic::ABORTED_POWER_LOSS
                | generic::ABORTED_FAILED_FUSED
                | generic::ABORTED_MISSING_FUSED,
            ) => Error::Aborted { status },
            (sct::MEDIA, media::COMPARE_FAILURE) => Error::CompareFailure { status },
            (sct::MEDIA, _) => Error::MediaError { status },
            (sct::COMMAND_SPECIFIC, specific::CONFLICTING_ATTRIBUTES) => {
                Error::InvalidField { status }
            }
            _ => Error::Command { status },
        }
    }

    /// The device status, if the error came from a completion.
    pub fn status(&self) -> Option<Status> {
        match self {
            Error::LbaOutOfRange { status }
            | Error::InvalidField { status }
            | Error::InvalidOpcode { status }
            | Error::InvalidNamespace { status }
            | Error::CompareFailure { status }
            | Error::MediaError { status }
            | Error::Aborted { status }
            | Error::Command { status } => Some(*status),
            _ => None,
        }
    }

    /// A copy for delivering one failure to several callbacks (the OS and EAL sources
    /// are flattened into their message).
    pub fn duplicate(&self) -> Error {
        match self {
            Error::Timeout { what, ms } => Error::Timeout {
                what: what.clone(),
                ms: *ms,
            },
            Error::ControllerFatal { what } => Error::ControllerFatal { what: what.clone() },
            Error::DeviceGone { addr, why } => Error::DeviceGone {
                addr: addr.clone(),
                why: why.clone(),
            },
            Error::QueueFull { depth } => Error::QueueFull { depth: *depth },
            Error::Reset => Error::Reset,
            Error::QpairDeleted => Error::QpairDeleted,
            Error::CommandTimeout { ms } => Error::CommandTimeout { ms: *ms },
            Error::BadBuffer { why } => Error::BadBuffer { why: why.clone() },
            Error::BadArgument { what, why } => Error::BadArgument {
                what: what.clone(),
                why: why.clone(),
            },
            Error::Unsupported { what } => Error::Unsupported { what: what.clone() },
            Error::NoQueues { max } => Error::NoQueues { max: *max },
            Error::NotReady { why } => Error::NotReady { why: why.clone() },
            e => match e.status() {
                Some(s) => Error::from_status(s),
                None => Error::NotReady { why: e.to_string() },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_decoding() {
        type Case = (u8, u8, fn(&Error) -> bool);
        let cases: [Case; 9] = [
            (0, 0x80, |e| matches!(e, Error::LbaOutOfRange { .. })),
            (0, 0x02, |e| matches!(e, Error::InvalidField { .. })),
            (0, 0x01, |e| matches!(e, Error::InvalidOpcode { .. })),
            (0, 0x0b, |e| matches!(e, Error::InvalidNamespace { .. })),
            (0, 0x07, |e| matches!(e, Error::Aborted { .. })),
            (0, 0x08, |e| matches!(e, Error::Aborted { .. })),
            (2, 0x85, |e| matches!(e, Error::CompareFailure { .. })),
            (2, 0x81, |e| matches!(e, Error::MediaError { .. })),
            (1, 0x01, |e| matches!(e, Error::Command { .. })),
        ];
        for (t, c, ok) in cases {
            let st = Status::new(t, c);
            let e = Error::from_status(st);
            assert!(ok(&e), "SCT {t} SC {c:#x} decoded as {e:?}");
            assert_eq!(e.status(), Some(st));
            assert!(e.to_string().starts_with("failed to "), "{e}");
            assert!(matches!(e.duplicate().status(), Some(s) if s == st));
        }
        let e = Error::from_status(Status::new(2, 0x81));
        assert!(e.to_string().contains("unrecovered read error"), "{e}");
    }
}
