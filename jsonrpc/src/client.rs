//! A blocking JSON-RPC 2.0 client over a Unix socket, with a timeout per call.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{Error, RpcError};
use crate::protocol::Framer;

/// A connection to a server. One call at a time; answers are matched to
/// requests by id (answers to other ids, e.g. late ones, are skipped).
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    path: PathBuf,
    timeout: Duration,
    next_id: u64,
    buf: Vec<u8>,
    framer: Framer,
}

impl Client {
    /// Connects to the server at `path`; `timeout` bounds each later call.
    pub fn connect(path: impl AsRef<Path>, timeout: Duration) -> Result<Client, Error> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path).map_err(|source| Error::Connect {
            path: path.into(),
            source,
        })?;
        Ok(Client {
            stream,
            path: path.into(),
            timeout,
            next_id: 1,
            buf: Vec::new(),
            framer: Framer::default(),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Calls `method` and waits for its result; an error answer is
    /// `Error::Rpc` with the server's error object.
    pub fn call(&mut self, method: &str, params: Option<Value>) -> Result<Value, Error> {
        let id = self.next_id;
        self.next_id += 1;
        let mut req = json!({"jsonrpc": "2.0", "method": method, "id": id});
        if let Some(p) = params {
            req["params"] = p;
        }
        self.send_value(&req, method)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let resp = self.recv_value(method, deadline)?;
            let this = resp.get("id") == Some(&Value::from(id));
            // An error with a null id is the server failing to read our
            // request (parse error, oversized): it is the answer.
            let unreadable = resp.get("id") == Some(&Value::Null) && resp.get("error").is_some();
            if this || unreadable {
                return decode_response(method, resp);
            }
        }
    }

    /// Sends a JSON value as is (a request, a batch, anything) without
    /// waiting for an answer.
    pub fn send_raw(&mut self, v: &Value) -> Result<(), Error> {
        self.send_value(v, "raw request")
    }

    /// Waits for the next JSON value the server sends.
    pub fn recv_raw(&mut self) -> Result<Value, Error> {
        let deadline = Instant::now() + self.timeout;
        self.recv_value("raw request", deadline)
    }

    fn send_value(&mut self, v: &Value, method: &str) -> Result<(), Error> {
        let mut bytes = serde_json::to_vec(v).map_err(|e| Error::BadResponse {
            method: method.into(),
            why: e.to_string(),
        })?;
        bytes.push(b'\n');
        self.stream
            .set_write_timeout(Some(self.timeout))
            .map_err(|source| Error::Io {
                what: "set a timeout",
                source,
            })?;
        self.stream
            .write_all(&bytes)
            .map_err(|source| match source.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout {
                    method: method.into(),
                    secs: self.timeout.as_secs_f64(),
                },
                _ => Error::Io {
                    what: "send a request",
                    source,
                },
            })
    }

    fn recv_value(&mut self, method: &str, deadline: Instant) -> Result<Value, Error> {
        let timeout = || Error::Timeout {
            method: method.into(),
            secs: self.timeout.as_secs_f64(),
        };
        loop {
            if let Some((s, e)) = self.framer.next_frame(&self.buf) {
                let v = serde_json::from_slice::<Value>(&self.buf[s..e]);
                self.buf.drain(..e);
                self.framer.consumed(e);
                return v.map_err(|err| Error::BadResponse {
                    method: method.into(),
                    why: err.to_string(),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timeout());
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|source| Error::Io {
                    what: "set a timeout",
                    source,
                })?;
            let mut chunk = [0u8; 64 << 10];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(Error::Closed {
                        method: method.into(),
                    })
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(timeout())
                }
                Err(source) => {
                    return Err(Error::Io {
                        what: "read a response",
                        source,
                    })
                }
            }
        }
    }
}

/// A response object's result, or its error as `Error::Rpc`.
fn decode_response(method: &str, mut resp: Value) -> Result<Value, Error> {
    if let Some(err) = resp.get_mut("error") {
        let error: RpcError =
            serde_json::from_value(err.take()).map_err(|e| Error::BadResponse {
                method: method.into(),
                why: format!("bad error object: {e}"),
            })?;
        return Err(Error::Rpc {
            method: method.into(),
            error,
        });
    }
    match resp.get_mut("result") {
        Some(r) => Ok(r.take()),
        None => Err(Error::BadResponse {
            method: method.into(),
            why: "neither result nor error".into(),
        }),
    }
}
