//! A request handed to a method handler, and the [`Responder`] that answers it
//! now or later, from any thread.
//!
//! Every answer goes through one completion queue owned by the server; the
//! server's `poll()` drains it on the polling thread. A push onto an empty
//! queue rings the server's eventfd, so a reactor asleep on the server's
//! epoll fd wakes up for an answer given by another thread.

use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::RpcError;
use crate::sys::EventFd;

/// Called with a local call's result (see `Server::call_local`).
pub type LocalDone = Box<dyn FnOnce(Result<Value, RpcError>) + Send>;

/// Where an answer goes.
pub(crate) enum Target {
    /// A request from connection `conn`; `slot` is `(batch, index)` for a
    /// member of a batch.
    Conn {
        conn: u64,
        id: Value,
        slot: Option<(u64, usize)>,
    },
    /// A notification: the answer is dropped, but the connection still
    /// counts it as pending until it comes.
    Notification {
        conn: u64,
        slot: Option<(u64, usize)>,
    },
    /// A call from inside the process.
    Local(LocalDone),
}

pub(crate) struct Completion {
    pub target: Target,
    pub result: Result<Value, RpcError>,
}

/// The completion queue shared by the server and every responder.
pub(crate) struct Completions {
    queue: Mutex<Vec<Completion>>,
    pub doorbell: EventFd,
}

impl Completions {
    pub fn new(doorbell: EventFd) -> Completions {
        Completions {
            queue: Mutex::new(Vec::new()),
            doorbell,
        }
    }

    pub fn push(&self, c: Completion) {
        let was_empty = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let was_empty = q.is_empty();
            q.push(c);
            was_empty
        };
        if was_empty {
            // Pairs with the clear-then-drain order in `drain`: the push that
            // finds the queue empty rings, so an answer is never left unseen.
            // A failing eventfd write (only EBADF/EINVAL) cannot happen on
            // our own open eventfd; the next poll drains the queue anyway.
            let _ = self.doorbell.signal();
        }
    }

    /// Clears the doorbell, then takes every queued completion.
    pub fn drain(&self, out: &mut Vec<Completion>) {
        let _ = self.doorbell.clear();
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        out.append(&mut q);
    }
}

/// Answers one request, once. `Send`: it may move to another thread and
/// answer from there. Dropped unanswered, it answers with -32603
/// (internal error) so the client is never left waiting.
pub struct Responder {
    inner: Option<(Arc<Completions>, Target)>,
}

impl Responder {
    pub(crate) fn new(queue: Arc<Completions>, target: Target) -> Responder {
        Responder {
            inner: Some((queue, target)),
        }
    }

    /// Sends the answer (a result, or an error object).
    pub fn respond(mut self, result: Result<Value, RpcError>) {
        if let Some((q, target)) = self.inner.take() {
            q.push(Completion { target, result });
        }
    }

    /// Whether the client asked for no answer (a notification): the answer
    /// is still required (it is dropped) but need not be computed with care.
    pub fn is_notification(&self) -> bool {
        matches!(self.inner, Some((_, Target::Notification { .. })))
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some((q, target)) = self.inner.take() {
            q.push(Completion {
                target,
                result: Err(RpcError::internal(
                    "Internal error: the method dropped the request without answering",
                )),
            });
        }
    }
}

/// A request as given to a handler.
pub struct Request {
    method: String,
    params: Option<Value>,
    responder: Responder,
}

impl Request {
    pub(crate) fn new(method: String, params: Option<Value>, responder: Responder) -> Request {
        Request {
            method,
            params,
            responder,
        }
    }

    /// The method name as called (an alias stays the alias).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The params decoded as `T`; -32602 (invalid params) on mismatch. Absent
    /// params decode as JSON `null` (fits `()` and `Option<_>`) or, failing
    /// that, as `{}` (fits a struct whose fields all have defaults).
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, RpcError> {
        match &self.params {
            Some(v) => T::deserialize(v)
                .map_err(|e| RpcError::invalid_params(format!("Invalid parameters: {e}"))),
            None => T::deserialize(&Value::Null)
                .or_else(|_| T::deserialize(&Value::Object(Default::default())))
                .map_err(|_| {
                    RpcError::invalid_params("Invalid parameters: this method requires params")
                }),
        }
    }

    /// The params as sent (an object or an array), if any.
    pub fn raw_params(&self) -> Option<&Value> {
        self.params.as_ref()
    }

    /// Answers now.
    pub fn respond(self, result: Result<Value, RpcError>) {
        self.responder.respond(result);
    }

    /// Keeps the answer for later (from any thread).
    pub fn into_responder(self) -> Responder {
        self.responder
    }

    /// Whether the client sent this as a notification (it gets no answer).
    pub fn is_notification(&self) -> bool {
        self.responder.is_notification()
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("params", &self.params)
            .finish()
    }
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("answered", &self.inner.is_none())
            .finish()
    }
}
