//! Ferroplane's JSON-RPC control plane (the role of SPDK's lib/jsonrpc,
//! lib/rpc and scripts/rpc.py).
//!
//! * [`Server`]: JSON-RPC 2.0 over a Unix stream socket, non-blocking. One
//!   thread (the target's app reactor) calls [`Server::poll`]; it may sleep on
//!   [`Server::as_raw_fd`], an epoll fd readable whenever `poll` has work.
//!   Method handlers run on that thread (or on the thread calling
//!   [`Server::call_local`]) and answer through the [`Request`] at once or
//!   through its [`Responder`] later, from any thread; an answer given from
//!   another thread rings the epoll fd. A [`Responder`] dropped unanswered
//!   answers -32603 itself.
//! * Methods carry a [`StateMask`]; the server is in one [`State`]
//!   (`Startup` until the framework is initialised, then `Runtime`); a call in
//!   the wrong state gets SPDK's invalid-state error (code -1).
//! * Per connection: any number of requests per read and any split of one
//!   request over reads, batches, notifications, ids of any JSON type; a
//!   per-connection cap (64 MiB by default) on a request being received and
//!   on unread answers. Malformed JSON gets -32700 and closes that
//!   connection only; nothing a client sends stops the server.
//! * [`Client`]: blocking, with a timeout per call. [`config`]: SPDK's JSON
//!   config format. The `ferroplane-rpc` binary is this crate's rpc.py.

mod client;
mod conn;
mod error;
mod protocol;
mod registry;
mod request;
mod server;
mod sys;

pub mod config;

pub use client::Client;
pub use error::{ClientError, Error, RpcError};
pub use registry::{State, StateHandle, StateMask};
pub use request::{Request, Responder};
pub use server::{Server, DEFAULT_MAX_REQUEST};

/// The socket path the target listens on and `ferroplane-rpc` calls by
/// default (SPDK's is /var/tmp/spdk.sock).
pub const DEFAULT_SOCKET: &str = "/var/tmp/ferroplane.sock";
