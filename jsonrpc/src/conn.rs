//! One client connection: its input buffer and framer, its output buffer
//! (so a client that does not read its answers never blocks the server) and
//! the batches whose answers are still being gathered.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use serde_json::Value;

use crate::error::RpcError;
use crate::protocol::{self, Framer};
use crate::sys;

/// Bytes read from one connection per poll before moving on to others.
const READ_BUDGET: usize = 4 << 20;
/// Read chunk size.
const CHUNK: usize = 64 << 10;
/// Input a malformed or oversized connection may still send after its error (read and
/// dropped) before it is closed regardless.
const DISCARD_LIMIT: usize = 64 << 20;

struct Batch {
    responses: Vec<Option<Value>>,
    remaining: usize,
}

/// What a read found.
pub(crate) enum Frame {
    Value(Value),
    /// Malformed JSON: the stream cannot be resynchronised.
    Malformed(serde_json::Error),
    /// More buffered than the per-connection cap without a complete value.
    TooLarge,
}

pub(crate) struct Conn {
    pub stream: UnixStream,
    inbuf: Vec<u8>,
    framer: Framer,
    out: Vec<u8>,
    out_pos: usize,
    /// Requests handed to methods and not yet answered.
    pub pending: usize,
    batches: HashMap<u64, Batch>,
    next_batch: u64,
    /// No more reading: EOF, or too much input discarded.
    pub read_closed: bool,
    /// The stream was malformed or oversized: what still arrives is read and dropped
    /// until the peer's EOF, so that closing never finds unread input (which would reset
    /// the connection and could lose the error answer queued for the peer).
    pub discarding: bool,
    discarded: usize,
    /// Our write side is shut (after the last answer of a discarding connection).
    pub write_shut: bool,
    /// The socket failed: drop the connection now.
    pub broken: bool,
    /// The peer hung up both ways: out of epoll, kept only until its
    /// pending answers come (they are then discarded).
    pub detached: bool,
    /// Current epoll interest.
    pub interest: u32,
}

impl Conn {
    pub fn new(stream: UnixStream) -> Conn {
        Conn {
            stream,
            inbuf: Vec::new(),
            framer: Framer::default(),
            out: Vec::new(),
            out_pos: 0,
            pending: 0,
            batches: HashMap::new(),
            next_batch: 0,
            read_closed: false,
            discarding: false,
            discarded: 0,
            write_shut: false,
            broken: false,
            detached: false,
            interest: sys::EPOLLIN | sys::EPOLLRDHUP,
        }
    }

    /// Reads what is available (up to a budget) and returns the complete
    /// values found. Sets `read_closed` on EOF, `broken` on a socket error.
    pub fn read_frames(&mut self, cap: usize, frames: &mut Vec<Frame>) -> usize {
        let mut total = 0;
        while !self.read_closed && total < READ_BUDGET {
            let len = self.inbuf.len();
            self.inbuf.resize(len + CHUNK, 0);
            let r = self.stream.read(&mut self.inbuf[len..]);
            match r {
                Ok(0) => {
                    self.inbuf.truncate(len);
                    self.read_closed = true;
                }
                Ok(n) if self.discarding => {
                    self.inbuf.truncate(len);
                    total += n;
                    self.discarded += n;
                    if self.discarded > DISCARD_LIMIT {
                        self.read_closed = true;
                    }
                    continue;
                }
                Ok(n) => {
                    self.inbuf.truncate(len + n);
                    total += n;
                }
                Err(e) => {
                    self.inbuf.truncate(len);
                    match e.kind() {
                        io::ErrorKind::WouldBlock => break,
                        io::ErrorKind::Interrupted => continue,
                        _ => {
                            self.broken = true;
                            return total;
                        }
                    }
                }
            }
            if !self.extract(cap, frames) {
                break;
            }
        }
        total
    }

    /// Moves complete values from the input buffer to `frames`. Returns false
    /// once the stream is unusable.
    fn extract(&mut self, cap: usize, frames: &mut Vec<Frame>) -> bool {
        while let Some((s, e)) = self.framer.next_frame(&self.inbuf) {
            match serde_json::from_slice::<Value>(&self.inbuf[s..e]) {
                Ok(v) => frames.push(Frame::Value(v)),
                Err(err) => {
                    frames.push(Frame::Malformed(err));
                    self.stop_reading();
                    return false;
                }
            }
        }
        let d = self.framer.droppable();
        if d > 0 {
            self.inbuf.drain(..d);
            self.framer.consumed(d);
        }
        if self.inbuf.len() > cap {
            frames.push(Frame::TooLarge);
            self.stop_reading();
            return false;
        }
        // Give memory back after a huge request.
        if self.inbuf.is_empty() && self.inbuf.capacity() > 4 * CHUNK {
            self.inbuf = Vec::new();
        }
        true
    }

    fn stop_reading(&mut self) {
        self.discarding = true;
        self.inbuf = Vec::new();
        self.framer = Framer::default();
    }

    /// Starts a batch of `n` members; returns its key.
    pub fn begin_batch(&mut self, n: usize) -> u64 {
        let key = self.next_batch;
        self.next_batch += 1;
        self.batches.insert(
            key,
            Batch {
                responses: vec![None; n],
                remaining: n,
            },
        );
        key
    }

    /// Records one answer: queued at once, or into its batch. `id` is `None`
    /// for a notification.
    pub fn answer(
        &mut self,
        id: Option<&Value>,
        slot: Option<(u64, usize)>,
        result: &Result<Value, RpcError>,
    ) {
        match slot {
            None => {
                if let Some(id) = id {
                    protocol::encode_response(&mut self.out, id, result);
                }
            }
            Some((key, index)) => {
                let Some(b) = self.batches.get_mut(&key) else {
                    return;
                };
                if let Some(id) = id {
                    b.responses[index] = Some(protocol::response_value(id, result));
                }
                b.remaining -= 1;
                if b.remaining == 0 {
                    let b = self
                        .batches
                        .remove(&key)
                        .map(|b| b.responses)
                        .unwrap_or_default();
                    let answers: Vec<Value> = b.into_iter().flatten().collect();
                    // A batch of notifications only gets no answer at all.
                    if !answers.is_empty() {
                        protocol::encode_batch(&mut self.out, &answers);
                    }
                }
            }
        }
    }

    /// Bytes waiting to be written.
    pub fn out_len(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Writes what the socket takes. Returns the bytes written.
    pub fn flush(&mut self) -> usize {
        let mut total = 0;
        if self.detached {
            return 0;
        }
        while self.out_pos < self.out.len() {
            match sys::send_nosignal(self.stream.as_raw_fd(), &self.out[self.out_pos..]) {
                Ok(n) => {
                    self.out_pos += n;
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.broken = true;
                    break;
                }
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > 4 * CHUNK {
                self.out = Vec::new();
            }
        } else if self.out_pos > CHUNK && self.out_pos * 2 > self.out.len() {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        total
    }

    /// A discarding connection whose answers are all written: shut our write side so
    /// the peer reads them and then EOF.
    pub fn shut_write_if_done(&mut self) {
        if self.discarding && !self.write_shut && self.pending == 0 && self.out_len() == 0 {
            self.write_shut = true;
            let _ = self.stream.shutdown(std::net::Shutdown::Write);
        }
    }

    /// Done with this connection: nothing more to read, answer or write.
    pub fn finished(&self) -> bool {
        self.broken
            || (self.read_closed && self.pending == 0 && (self.out_len() == 0 || self.detached))
    }
}
