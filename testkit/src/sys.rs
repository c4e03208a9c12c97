//! The system calls this crate makes.

use std::fs::File;
use std::os::fd::AsRawFd;

/// The effective user id of this process.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Move the calling thread into the network namespace `ns` (an open
/// `/var/run/netns/NAME`).
pub fn enter_netns(ns: &File) -> std::io::Result<()> {
    // SAFETY: `ns` is an open file for the whole call; setns changes only this thread's
    // network namespace.
    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
