//! Every syscall the framework makes: epoll, eventfd, signal masks and signalfd. One safe
//! function per call, each returning `Result` with the OS error kept.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};

fn last(op: &'static str) -> Error {
    Error::Sys {
        op,
        source: io::Error::last_os_error(),
    }
}

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub(crate) fn epoll_create() -> Result<OwnedFd> {
    // SAFETY: no pointers; the returned descriptor is checked and then owned.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(last("create an epoll instance"));
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn epoll_ctl(epfd: RawFd, op: i32, fd: RawFd, token: u64, what: &'static str) -> Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call; bad descriptors
    // are reported as errors by the kernel, not undefined behaviour.
    let rc = unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) };
    if rc < 0 {
        return Err(last(what));
    }
    Ok(())
}

/// Watch `fd` for readability (level-triggered) in `epfd`, reporting `token`.
pub(crate) fn epoll_add(epfd: RawFd, fd: RawFd, token: u64) -> Result<()> {
    epoll_ctl(
        epfd,
        libc::EPOLL_CTL_ADD,
        fd,
        token,
        "add a descriptor to epoll",
    )
}

/// Stop watching `fd` in `epfd`.
pub(crate) fn epoll_del(epfd: RawFd, fd: RawFd) -> Result<()> {
    epoll_ctl(
        epfd,
        libc::EPOLL_CTL_DEL,
        fd,
        0,
        "remove a descriptor from epoll",
    )
}

/// Wait up to `timeout_ms` (-1 = forever, 0 = poll) and append the ready tokens to `out`.
/// An interrupted wait (EINTR) returns no tokens.
pub(crate) fn epoll_wait(epfd: RawFd, timeout_ms: i32, out: &mut Vec<u64>) -> Result<()> {
    const MAX: usize = 32;
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; MAX];
    // SAFETY: `evs` has room for MAX events and outlives the call.
    let n = unsafe { libc::epoll_wait(epfd, evs.as_mut_ptr(), MAX as i32, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(());
        }
        return Err(Error::Sys {
            op: "wait on epoll",
            source: e,
        });
    }
    out.extend(evs[..n as usize].iter().map(|e| e.u64));
    Ok(())
}

/// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`.
pub(crate) fn eventfd() -> Result<OwnedFd> {
    // SAFETY: no pointers; the result is checked and then owned.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(last("create an eventfd"));
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Add one to an eventfd's counter. A full counter (EAGAIN) already means "readable",
/// which is all a wake-up needs, so it is not an error.
pub(crate) fn eventfd_write(fd: &OwnedFd) -> Result<()> {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64.
    let n = unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::WouldBlock {
            return Err(Error::Sys {
                op: "write an eventfd",
                source: e,
            });
        }
    }
    Ok(())
}

/// Reset an eventfd's counter (non-blocking read; an empty counter is fine).
pub(crate) fn eventfd_drain(fd: &OwnedFd) {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64. The result is ignored on purpose:
    // EAGAIN means already drained, and an eventfd read has no other failure mode.
    let _ = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
}

fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before any use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the signal numbers are valid constants.
    unsafe {
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
    }
    set
}

/// Block `signals` in the calling thread (threads it creates afterwards inherit the mask).
pub(crate) fn block_signals(signals: &[i32]) -> Result<()> {
    sigmask(libc::SIG_BLOCK, signals, "block signals")
}

/// Unblock `signals` in the calling thread.
pub(crate) fn unblock_signals(signals: &[i32]) -> Result<()> {
    sigmask(libc::SIG_UNBLOCK, signals, "unblock signals")
}

/// `pthread_sigmask(how, signals)` for the calling thread.
fn sigmask(how: libc::c_int, signals: &[i32], op: &'static str) -> Result<()> {
    let set = sigset(signals);
    // SAFETY: `set` is an initialised sigset_t that outlives the call; the old mask is
    // not wanted (null), which pthread_sigmask allows.
    let rc = unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(Error::Sys {
            op,
            source: io::Error::from_raw_os_error(rc),
        });
    }
    Ok(())
}

/// A non-blocking signalfd for `signals` (which the caller has blocked in every thread).
pub(crate) fn signalfd(signals: &[i32]) -> Result<OwnedFd> {
    let set = sigset(signals);
    // SAFETY: `set` is initialised; -1 asks for a new descriptor.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(last("create a signalfd"));
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Read one pending signal from a signalfd, `None` when none is pending.
pub(crate) fn signalfd_read(fd: &OwnedFd) -> Result<Option<i32>> {
    // SAFETY: signalfd_siginfo is plain data.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let len = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: reads at most `len` bytes into `info`, which is that large.
    let n = unsafe {
        libc::read(
            fd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            len,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            return Ok(None);
        }
        return Err(Error::Sys {
            op: "read a signalfd",
            source: e,
        });
    }
    if n as usize != len {
        return Ok(None);
    }
    Ok(Some(info.ssi_signo as i32))
}
