//! The system calls of the vhost target: memfd for the inflight area, shared mappings
//! of it, eventfd reads and writes, and the raw socket calls of the back-end request
//! channel (peek, descriptors passed with a message, a reply).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use crate::error::{Error, Result};

fn os(what: impl Into<String>) -> Error {
    Error::Sys {
        what: what.into(),
        source: std::io::Error::last_os_error(),
    }
}

/// A zero-filled memfd of `len` bytes.
pub fn memfd(name: &str, len: u64) -> Result<File> {
    let cname = std::ffi::CString::new(name).map_err(|_| Error::Invalid {
        what: "create a memfd",
        why: format!("name '{name}' holds a NUL"),
    })?;
    // SAFETY: a valid C string; the flags are plain bits.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(os("create a memfd"));
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    let f = unsafe { File::from_raw_fd(fd) };
    f.set_len(len).map_err(|source| Error::Sys {
        what: format!("size a memfd to {len} bytes"),
        source,
    })?;
    Ok(f)
}

/// A shared read-write mapping of `len` bytes of `file` from `offset`.
pub struct SharedMap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; all access goes
// through raw pointers whose users document their own synchronisation.
unsafe impl Send for SharedMap {}
// SAFETY: as above; `&SharedMap` only hands out the base pointer.
unsafe impl Sync for SharedMap {}

impl SharedMap {
    /// Map `len` bytes of `file` at `offset` (MAP_SHARED).
    pub fn new(file: &File, offset: u64, len: usize) -> Result<SharedMap> {
        if len == 0 {
            return Err(Error::Invalid {
                what: "map shared memory",
                why: "zero length".into(),
            });
        }
        let off = libc::off_t::try_from(offset).map_err(|_| Error::Invalid {
            what: "map shared memory",
            why: format!("offset {offset} too large"),
        })?;
        // SAFETY: a fresh mapping chosen by the kernel; a valid descriptor.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(os(format!("map {len} bytes of shared memory")));
        }
        Ok(SharedMap {
            ptr: NonNull::new(p.cast()).ok_or_else(|| os("map shared memory"))?,
            len,
        })
    }

    /// Base address.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn size(&self) -> usize {
        self.len
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Consume an eventfd's counter (non-blocking descriptors return `false` when empty).
pub fn eventfd_drain(f: &File) -> bool {
    let mut b = [0u8; 8];
    let mut r: &File = f;
    r.read(&mut b).is_ok_and(|n| n == 8)
}

/// Add one to an eventfd's counter (a guest interrupt through QEMU's irqfd).
pub fn eventfd_signal(f: &File) -> Result<()> {
    let mut w: &File = f;
    w.write_all(&1u64.to_ne_bytes())
        .map_err(|source| Error::Sys {
            what: "signal the guest's call eventfd".into(),
            source,
        })
}

/// Make a descriptor non-blocking.
pub fn set_nonblocking(f: &impl AsRawFd) -> Result<()> {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor the caller holds open.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if fl < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) } < 0 {
        return Err(os("make a descriptor non-blocking"));
    }
    Ok(())
}

/// The first `n` bytes waiting on socket `fd`, left in place; `None` if fewer are
/// there now.
pub fn peek(fd: RawFd, n: usize) -> Result<Option<Vec<u8>>> {
    let mut b = vec![0u8; n];
    // SAFETY: `b` is a writable buffer of `n` bytes; `fd` is the caller's open socket.
    let r = unsafe {
        libc::recv(
            fd,
            b.as_mut_ptr().cast(),
            n,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::WouldBlock {
            return Ok(None);
        }
        return Err(Error::Sys {
            what: "peek at a front-end message".into(),
            source: e,
        });
    }
    Ok((r as usize == n).then_some(b))
}

/// Receive exactly `n` bytes from socket `fd` with the descriptors passed along them
/// (SCM_RIGHTS, at most `max_fds`, close-on-exec).
pub fn recv_with_fds(fd: RawFd, n: usize, max_fds: usize) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut b = vec![0u8; n];
    let fd_bytes = max_fds * std::mem::size_of::<RawFd>();
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    // u64 elements keep the control buffer aligned for `cmsghdr`.
    let mut ctl = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: b.as_mut_ptr().cast(),
        iov_len: n,
    };
    // SAFETY: an all-zero msghdr is valid; the fields we need are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: `msg` points at our live buffer and control area of the sizes given.
    let r = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if r < 0 {
        return Err(os("receive a front-end message"));
    }
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote into `ctl`, bounded by
    // `msg_controllen`; each SCM_RIGHTS entry holds descriptors now ours.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if r as usize != n || msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(Error::Invalid {
            what: "receive a front-end message",
            why: format!(
                "{r} of {n} bytes, control data {}",
                if msg.msg_flags & libc::MSG_CTRUNC != 0 {
                    "cut short"
                } else {
                    "whole"
                }
            ),
        });
    }
    Ok((b, fds))
}

/// Write all of `b` to socket `fd` (a reply on a connection another object reads).
pub fn send_all(fd: RawFd, b: &[u8]) -> Result<()> {
    let mut off = 0;
    while off < b.len() {
        // SAFETY: the rest of `b` is a readable buffer; `fd` is the caller's socket.
        let r = unsafe {
            libc::send(
                fd,
                b[off..].as_ptr().cast(),
                b.len() - off,
                libc::MSG_NOSIGNAL,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::Sys {
                what: "answer the front end".into(),
                source: e,
            });
        }
        off += r as usize;
    }
    Ok(())
}

/// Whether `fd` is a stream socket of the Unix domain.
pub fn is_unix_stream(fd: &OwnedFd) -> bool {
    let get = |opt| {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` are valid out-parameters for an int option.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (r == 0).then_some(v)
    };
    get(libc::SO_DOMAIN) == Some(libc::AF_UNIX) && get(libc::SO_TYPE) == Some(libc::SOCK_STREAM)
}
