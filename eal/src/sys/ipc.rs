//! Unix-socket system calls of the multi-process channel ([`crate::mp`]), one safe
//! function per call: `sendmsg` and `recvmsg` on a `SOCK_DGRAM` socket with file
//! descriptors passed as `SCM_RIGHTS` ancillary data (std's `UnixDatagram` creates, binds
//! and times out the socket; its ancillary-data API is not stable, hence these).
//!
//! Errors keep the OS error as `source`, so callers can tell `ECONNREFUSED` (no one
//! listens on that path any more) and `EAGAIN` (receive timeout) apart.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Most descriptors one datagram may carry (the IPC limit, see [`crate::mp`]).
pub const MAX_FDS: usize = 8;

/// Space for `MAX_FDS` descriptors of control data, u64-aligned as `cmsghdr` needs.
const CMSG_WORDS: usize = 8;
const _: () = assert!(
    CMSG_WORDS * 8 >= 16 + MAX_FDS * 4,
    "control buffer too small"
);

fn sockaddr(path: &Path) -> Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero is valid.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let b = path.as_os_str().as_bytes();
    if b.len() >= a.sun_path.len() || b.contains(&0) {
        return Err(Error::io(
            "address",
            path.display().to_string(),
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "socket path longer than {} bytes or contains NUL",
                    a.sun_path.len() - 1
                ),
            ),
        ));
    }
    for (d, s) in a.sun_path.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + b.len() + 1;
    Ok((a, len as libc::socklen_t))
}

/// Send `data` as one datagram to the socket bound at `to`, with `fds` as `SCM_RIGHTS`
/// (at most [`MAX_FDS`]). The descriptors stay open in this process.
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    to: &Path,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<()> {
    if fds.len() > MAX_FDS {
        return Err(Error::io(
            "send",
            format!("datagram to {}", to.display()),
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("more than {MAX_FDS} descriptors"),
            ),
        ));
    }
    let (mut addr, alen) = sockaddr(to)?;
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; CMSG_WORDS];
    // SAFETY: msghdr is plain old data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = &mut addr as *mut libc::sockaddr_un as *mut libc::c_void;
    msg.msg_namelen = alen;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let payload = (fds.len() * std::mem::size_of::<RawFd>()) as u32;
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(payload) } as usize;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `cbuf` (64 bytes, 8-aligned) and msg_controllen
        // (`space` ≤ 48 for 8 fds) fits it, so CMSG_FIRSTHDR returns a valid header
        // inside `cbuf` and CMSG_DATA a pointer with room for `payload` bytes.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(payload) as _;
            let d = libc::CMSG_DATA(c) as *mut RawFd;
            for (i, fd) in fds.iter().enumerate() {
                d.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    loop {
        // SAFETY: every pointer in `msg` refers to locals that outlive the call.
        let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::io(
                "send",
                format!("datagram to {}", to.display()),
                e,
            ));
        }
    }
}

/// One received datagram.
#[derive(Debug)]
pub struct Received {
    /// Bytes copied into the caller's buffer.
    pub len: usize,
    /// True if the datagram was longer than the buffer (the rest is lost).
    pub truncated: bool,
    /// Descriptors that came with it (now owned by this process, close-on-exec).
    pub fds: Vec<OwnedFd>,
    /// The sender's bound path (`None` for an unbound sender).
    pub from: Option<PathBuf>,
}

/// Receive one datagram into `buf`, with up to [`MAX_FDS`] descriptors. Blocks (subject
/// to the socket's receive timeout: then an `Os` error whose source is `EAGAIN`).
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Received> {
    // SAFETY: sockaddr_un / msghdr are plain old data; all-zero is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut cbuf = [0u64; CMSG_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = &mut addr as *mut libc::sockaddr_un as *mut libc::c_void;
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    let n = loop {
        // SAFETY: every pointer in `msg` refers to locals (and `buf`) that outlive the call.
        let r = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if r >= 0 {
            break r as usize;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::io("receive", "IPC datagram", e));
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control/msg_controllen; CMSG_FIRSTHDR/NXTHDR walk
    // only inside it, and each SCM_RIGHTS payload holds (cmsg_len - CMSG_LEN(0)) / 4 fds
    // that the kernel just installed in our table, so we own them.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let d = libc::CMSG_DATA(c) as *const RawFd;
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(d.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let path_off = std::mem::size_of::<libc::sa_family_t>();
    let from = (msg.msg_namelen as usize > path_off).then(|| {
        let raw: Vec<u8> = addr.sun_path[..msg.msg_namelen as usize - path_off]
            .iter()
            .map(|&c| c as u8)
            .take_while(|&c| c != 0)
            .collect();
        PathBuf::from(std::ffi::OsStr::from_bytes(&raw))
    });
    Ok(Received {
        len: n,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        fds,
        from,
    })
}
