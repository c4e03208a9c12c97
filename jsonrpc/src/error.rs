//! The crate's error enum ([`Error`]) and the JSON-RPC error object
//! ([`RpcError`]) that travels on the wire.

use std::fmt;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything that can fail in this crate, on the server, the client or the
/// config side.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to listen on {path}: a live server already answers there")]
    AddrInUse { path: PathBuf },
    #[error("failed to listen on {path}: {source}")]
    Listen {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to set up the server's {what}: {source}")]
    Setup {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("failed to register method {method}: {why}")]
    Register { method: String, why: &'static str },
    #[error("failed to connect to {path}: {source} (is the target running?)")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to {what} on the RPC socket: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("failed to get a response to {method}: no answer within {secs:.1} s")]
    Timeout { method: String, secs: f64 },
    #[error("failed to read the response to {method}: the server closed the connection")]
    Closed { method: String },
    #[error("failed to read the response to {method}: {why}")]
    BadResponse { method: String, why: String },
    /// The server answered with a JSON-RPC error object.
    #[error("{method} failed: {error}")]
    Rpc { method: String, error: RpcError },
    #[error("failed to read config {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to parse config {path} at line {line} column {column}: {source}")]
    ConfigParse {
        path: PathBuf,
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to write config {path}: {source}")]
    ConfigWrite {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What [`crate::Client::call`] returns on failure (the crate's one error enum).
pub type ClientError = Error;

impl Error {
    /// The JSON-RPC error object if the server answered with one.
    pub fn rpc_error(&self) -> Option<&RpcError> {
        match self {
            Error::Rpc { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A JSON-RPC 2.0 error object (`{"code": .., "message": ..}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcError {
    pub code: i32,
    pub message: String,
}

impl RpcError {
    /// JSON-RPC 2.0: invalid JSON was received.
    pub const PARSE_ERROR: i32 = -32700;
    /// JSON-RPC 2.0: the JSON sent is not a valid request object.
    pub const INVALID_REQUEST: i32 = -32600;
    /// JSON-RPC 2.0: the method does not exist.
    pub const METHOD_NOT_FOUND: i32 = -32601;
    /// JSON-RPC 2.0: invalid method parameters.
    pub const INVALID_PARAMS: i32 = -32602;
    /// JSON-RPC 2.0: internal error.
    pub const INTERNAL_ERROR: i32 = -32603;
    /// SPDK's `SPDK_JSONRPC_ERROR_INVALID_STATE` (include/spdk/jsonrpc.h): the
    /// method is not allowed in the current state. SPDK keeps it outside the
    /// range -32768..-32000 that JSON-RPC 2.0 reserves, hence -1.
    pub const INVALID_STATE: i32 = -1;

    pub fn new(code: i32, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }

    pub fn parse_error(msg: impl fmt::Display) -> RpcError {
        RpcError::new(Self::PARSE_ERROR, format!("Parse error: {msg}"))
    }

    pub fn invalid_request(msg: impl fmt::Display) -> RpcError {
        RpcError::new(Self::INVALID_REQUEST, format!("Invalid request: {msg}"))
    }

    pub fn method_not_found(name: &str) -> RpcError {
        RpcError::new(Self::METHOD_NOT_FOUND, format!("Method not found: {name}"))
    }

    /// -32602 with `msg` as the message, verbatim (SPDK handlers send either
    /// "Invalid parameters" or a specific reason such as an errno string).
    pub fn invalid_params(msg: impl fmt::Display) -> RpcError {
        RpcError::new(Self::INVALID_PARAMS, msg.to_string())
    }

    /// -32603 with `msg` as the message, verbatim.
    pub fn internal(msg: impl fmt::Display) -> RpcError {
        RpcError::new(Self::INTERNAL_ERROR, msg.to_string())
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}
