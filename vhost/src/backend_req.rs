//! The back end's request channel (vhost-user `BACKEND_REQ`): a second socket the
//! front end hands over with `SET_BACKEND_REQ_FD`, on which the back end sends its own
//! requests. We send one, `BACKEND_CONFIG_CHANGE_MSG`, when the disk's size changes:
//! the front end then reads the config space again (`GET_CONFIG`) and interrupts the
//! guest with a config change.
//!
//! rust-vmm's `vhost` 0.18 reads our main connection, but its back-end request proxy
//! (`Backend`) has no call for CONFIG_CHANGE_MSG and does not give its socket out, so
//! [`take_set_fd`] takes `SET_BACKEND_REQ_FD` off the connection before the crate's
//! handler sees it (a peek at the header), and [`Channel`] writes the message. It is a
//! header alone, sent without NEED_REPLY: the front end handles it by sending us
//! `GET_CONFIG` on the main connection, which our thread must be free to answer.

use std::io::Write;
use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;

use crate::error::{Error, Result};
use crate::sys;

/// Front-end request code of `SET_BACKEND_REQ_FD`.
pub const SET_BACKEND_REQ_FD: u32 = 21;
/// Back-end request code of `BACKEND_CONFIG_CHANGE_MSG`.
pub const CONFIG_CHANGE_MSG: u32 = 2;
/// Header flags: protocol version 1, a reply, a reply wanted.
const VERSION: u32 = 0x1;
const REPLY: u32 = 0x4;
const NEED_REPLY: u32 = 0x8;
/// Header bytes: request, flags, payload size (little endian u32 each).
const HDR: usize = 12;

fn header(code: u32, flags: u32, size: u32) -> [u8; HDR] {
    let mut h = [0u8; HDR];
    h[0..4].copy_from_slice(&code.to_le_bytes());
    h[4..8].copy_from_slice(&flags.to_le_bytes());
    h[8..12].copy_from_slice(&size.to_le_bytes());
    h
}

fn field(h: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([h[4 * i], h[4 * i + 1], h[4 * i + 2], h[4 * i + 3]])
}

/// The open back-end request channel.
#[derive(Debug)]
pub struct Channel(UnixStream);

impl Channel {
    /// Tell the front end the config space changed.
    pub fn config_change(&self) -> Result<()> {
        (&self.0)
            .write_all(&header(CONFIG_CHANGE_MSG, VERSION, 0))
            .map_err(|source| Error::Sys {
                what: "send BACKEND_CONFIG_CHANGE_MSG".into(),
                source,
            })
    }
}

/// If the next message on the connection `fd` is `SET_BACKEND_REQ_FD`, receive it:
/// the channel, and whether the front end asked for a reply. `None` (nothing
/// consumed) for any other message or an incomplete header.
pub fn take_set_fd(fd: RawFd) -> Result<Option<(Channel, bool)>> {
    let Some(h) = sys::peek(fd, HDR)? else {
        return Ok(None);
    };
    if field(&h, 0) != SET_BACKEND_REQ_FD {
        return Ok(None);
    }
    let bad = |why: String| Error::Invalid {
        what: "take SET_BACKEND_REQ_FD",
        why,
    };
    let (h, mut fds) = sys::recv_with_fds(fd, HDR, 4)?;
    let (flags, size) = (field(&h, 1), field(&h, 2));
    if size != 0 {
        return Err(bad(format!("{size} payload bytes, none expected")));
    }
    if fds.len() != 1 {
        return Err(bad(format!("{} descriptors, one expected", fds.len())));
    }
    let f = fds.remove(0);
    if !sys::is_unix_stream(&f) {
        return Err(bad("the descriptor is not a Unix stream socket".into()));
    }
    let s = UnixStream::from(f);
    // Never block the reactor on a front end that stopped reading.
    s.set_nonblocking(true).map_err(|source| Error::Sys {
        what: "make the back-end request channel non-blocking".into(),
        source,
    })?;
    Ok(Some((Channel(s), flags & NEED_REPLY != 0)))
}

/// Answer a `SET_BACKEND_REQ_FD` that asked for a reply: success (REPLY_ACK's u64 0).
pub fn ack(fd: RawFd) -> Result<()> {
    let mut m = [0u8; HDR + 8];
    m[..HDR].copy_from_slice(&header(SET_BACKEND_REQ_FD, VERSION | REPLY, 8));
    sys::send_all(fd, &m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn config_change_is_a_bare_version_1_header() {
        let (a, mut b) = UnixStream::pair().unwrap();
        Channel(a).config_change().unwrap();
        let mut got = [0u8; HDR];
        b.read_exact(&mut got).unwrap();
        assert_eq!(got, [2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    }
}
