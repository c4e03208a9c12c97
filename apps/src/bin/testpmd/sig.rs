//! SIGINT/SIGTERM as a flag (the handler only stores to an atomic, which is
//! async-signal-safe), and the few terminal calls the sample apps make. Shared by
//! testpmd and l2fwd (`#[path]`-included); every system call here is one safe function
//! returning `Result`.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static QUIT: AtomicBool = AtomicBool::new(false);
static SIGNO: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signo: libc::c_int) {
    // Relaxed: pollers only need to see the flag eventually; no data rides on it.
    SIGNO.store(signo, Ordering::Relaxed);
    QUIT.store(true, Ordering::Relaxed);
}

/// Install the handler for SIGINT and SIGTERM (no SA_RESTART: a blocked read returns
/// EINTR, which the callers treat as "look at the flag").
pub fn install() -> io::Result<()> {
    for s in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; we set the handler and an empty mask.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        // SAFETY: `sa.sa_mask` is a valid sigset_t we own.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        sa.sa_flags = 0;
        // SAFETY: valid signal number and sigaction; the handler is async-signal-safe.
        if unsafe { libc::sigaction(s, &sa, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// True once SIGINT or SIGTERM arrived.
pub fn quit_requested() -> bool {
    QUIT.load(Ordering::Relaxed)
}

/// Ask the pollers to stop as a signal would (e.g. on a run-time or packet limit).
#[allow(dead_code)] // used by l2fwd, which includes this file too
pub fn request_quit() {
    QUIT.store(true, Ordering::Relaxed);
}

/// The last signal received (0 if none).
pub fn last_signal() -> i32 {
    SIGNO.load(Ordering::Relaxed)
}

/// True if `fd` is a terminal.
pub fn isatty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// Terminal settings of stdin, to put back at exit (a line editor may leave raw mode
/// on if the process ends while it waits for a key).
#[allow(dead_code)]
pub struct TermGuard(Option<libc::termios>);

#[allow(dead_code)]
impl TermGuard {
    pub fn save() -> TermGuard {
        if !isatty(0) {
            return TermGuard(None);
        }
        // SAFETY: tcgetattr fills the zeroed struct we own.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 and a valid pointer.
        let ok = unsafe { libc::tcgetattr(0, &mut t) } == 0;
        TermGuard(ok.then_some(t))
    }
}

impl Drop for TermGuard {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            // SAFETY: restores settings read by tcgetattr on the same descriptor.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
}
