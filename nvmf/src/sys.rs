//! The crate's system calls: an epoll set the poll groups watch their sockets with
//! (registered as a framework interrupt so a sleeping reactor wakes for network
//! input), and socket set-up. Reads and writes go through `std::net`.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An epoll instance (level triggered).
pub struct Epoll(OwnedFd);

/// Readable.
pub const IN: u32 = libc::EPOLLIN as u32;
/// Writable.
pub const OUT: u32 = libc::EPOLLOUT as u32;

impl Epoll {
    /// A new set.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall with a flag argument.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Its descriptor (for a framework interrupt).
    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    fn ctl(&self, op: i32, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: valid epoll fd, `ev` lives across the call.
        let r = unsafe { libc::epoll_ctl(self.fd(), op, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watch `fd` for `events`, reporting `token`.
    pub fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    /// Change what `fd` is watched for.
    pub fn modify(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    /// Stop watching `fd`.
    pub fn remove(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Ready tokens without waiting, into `out` (cleared first).
    pub fn poll(&self, out: &mut Vec<(u64, u32)>) -> io::Result<()> {
        out.clear();
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 64];
        // SAFETY: `evs` has room for 64 events; timeout 0 never blocks.
        let n = unsafe { libc::epoll_wait(self.fd(), evs.as_mut_ptr(), 64, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        for e in &evs[..n as usize] {
            out.push((e.u64, e.events));
        }
        Ok(())
    }
}

/// A nonblocking listening socket on `addr`, with SO_REUSEADDR (std sets it on Unix).
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let l = TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Make an accepted or connected stream ready for the data path: nonblocking, no
/// Nagle delay.
pub fn prepare(s: &TcpStream) -> io::Result<()> {
    s.set_nonblocking(true)?;
    s.set_nodelay(true)
}
