//! [`RawSock`]: a raw `AF_PACKET` socket on one interface, for tests that put frames on a
//! veth or TAP peer by hand and read what a port sent there.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::sys;

/// A raw AF_PACKET socket bound to an interface of the calling thread's namespace (make
/// it inside [`Netns::run`](crate::netns::Netns::run)).
pub struct RawSock(OwnedFd);

impl RawSock {
    /// Bind to `iface`, every protocol, with a large receive buffer so a burst of
    /// forwarded frames is not dropped before the test reads it (needs root).
    pub fn bind(iface: &str) -> RawSock {
        let fd = sys::packet_socket_on(iface, 8 << 20)
            .unwrap_or_else(|e| panic!("packet socket on {iface}: {e}"));
        RawSock(fd)
    }

    /// Send one frame; panics unless all of it went.
    pub fn send(&self, b: &[u8]) {
        let n = sys::send_nb(&self.0, b).expect("send").expect("sent");
        assert_eq!(n, b.len());
    }

    /// Frames `keep` accepts, until `want` of them or `limit` (a bound, not a timing
    /// assertion).
    pub fn recv_until(
        &self,
        want: usize,
        limit: Duration,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Vec<Vec<u8>> {
        let t0 = Instant::now();
        let mut buf = vec![0u8; 65536];
        let mut got = Vec::new();
        while got.len() < want && t0.elapsed() < limit {
            if !sys::poll_in(&self.0, 50).expect("poll") {
                continue;
            }
            while let Some(n) = sys::recv_nb(&self.0, &mut buf).expect("recv") {
                let n = n.min(buf.len());
                if keep(&buf[..n]) {
                    got.push(buf[..n].to_vec());
                }
            }
        }
        got
    }
}
