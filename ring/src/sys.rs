//! The ring's system calls: the scheduler yield, the short sleep, and the futex wait and
//! wake of the tail waits (with the clock read for the wait's deadline) (`backoff`). Linux only, like the rest of Ferroplane.
//!
//! On x86-64 they are issued with an inline `syscall` instruction rather than through
//! libc. The waits that make them sit inside the hot enqueue/dequeue bodies (on their
//! cold branches); a call into libc there makes every value live across it either
//! occupy one of the six callee-saved registers or be spilled, on the path where nobody
//! waits too (measured under callgrind: 4-8 more instructions per enqueue/dequeue pair
//! than with no call at all). The `syscall` instruction clobbers only `rax`, `rcx` and
//! `r11` besides its argument registers, so the hot path keeps its registers. Other
//! architectures call libc.

#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
mod raw {
    use core::arch::asm;

    /// `syscall` with `$n` arguments in `rdi, rsi, rdx, r10` (only the registers a
    /// call uses are tied up); returns the kernel's result (`-errno` on failure).
    macro_rules! syscall_n {
        ($name:ident; $($a:ident: $reg:tt),*) => {
            /// # Safety
            /// The arguments are valid for system call `nr` (pointers to live memory of
            /// the kinds it reads or writes).
            #[inline(always)]
            pub(super) unsafe fn $name(nr: i64 $(, $a: usize)*) -> i64 {
                let ret: i64;
                // SAFETY: the caller vouches for the arguments; `syscall` clobbers rcx
                // and r11 (declared) and returns in rax; it does not touch the user
                // stack. Memory is not declared untouched: a futex reads its word,
                // nanosleep its timespec.
                unsafe {
                    asm!(
                        "syscall",
                        inlateout("rax") nr => ret,
                        $(in($reg) $a,)*
                        lateout("rcx") _,
                        lateout("r11") _,
                        options(nostack),
                    );
                }
                ret
            }
        };
    }
    syscall_n!(syscall0;);
    syscall_n!(syscall2; a: "rdi", b: "rsi");
    syscall_n!(syscall6; a: "rdi", b: "rsi", c: "rdx", d: "r10", e: "r8", f: "r9");
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
mod raw {
    /// `syscall(nr, a, b, c, d, e, f)` through libc; returns `-errno` on failure.
    ///
    /// # Safety
    /// As `libc::syscall` for `nr`.
    #[inline(always)]
    pub(super) unsafe fn syscall6(
        nr: i64,
        a: usize,
        b: usize,
        c: usize,
        d: usize,
        e: usize,
        f: usize,
    ) -> i64 {
        // SAFETY: forwarded.
        let r = unsafe { libc::syscall(nr as libc::c_long, a, b, c, d, e, f) } as i64;
        if r < 0 {
            -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL))
        } else {
            r
        }
    }

    /// # Safety
    /// As `libc::syscall` for `nr`.
    #[inline(always)]
    pub(super) unsafe fn syscall2(nr: i64, a: usize, b: usize) -> i64 {
        // SAFETY: forwarded.
        unsafe { syscall6(nr, a, b, 0, 0, 0, 0) }
    }

    /// # Safety
    /// As `libc::syscall` for `nr`.
    #[inline(always)]
    pub(super) unsafe fn syscall0(nr: i64) -> i64 {
        // SAFETY: forwarded.
        unsafe { syscall6(nr, 0, 0, 0, 0, 0, 0) }
    }
}

/// Give up the CPU (`sched_yield`).
#[inline(always)]
pub(crate) fn sched_yield() {
    // SAFETY: sched_yield takes no arguments and cannot fail.
    unsafe { raw::syscall0(libc::SYS_sched_yield) };
}

/// Sleep for the shortest time the kernel grants: a 1 µs request, which the default
/// timer slack stretches to about 50 µs.
#[inline(always)]
pub(crate) fn sleep_briefly() {
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 1_000,
    };
    // SAFETY: `ts` lives across the call; a null remainder is allowed. An early return
    // (a signal) only shortens the sleep, which the caller's loop tolerates.
    unsafe {
        raw::syscall2(libc::SYS_nanosleep, (&raw const ts) as usize, 0)
    };
}

/// Sleep on the 32-bit word at `word` while it holds `expected`, for at most `timeout_ns`
/// nanoseconds, until a [`futex_wake`] whose bit set meets `bits`
/// (`FUTEX_WAIT_BITSET`, not the private op: a ring may be shared between processes).
/// Returns at once if the word differs, on a matching wake, a signal or the timeout; the
/// caller re-checks whatever it waits for in every case.
///
/// # Safety
/// `word` points to a live, 4-aligned 32-bit word (read by the kernel atomically).
#[inline(always)]
pub(crate) unsafe fn futex_wait(word: *const u32, expected: u32, bits: u32, timeout_ns: u32) {
    // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline.
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is live and writable. CLOCK_MONOTONIC cannot fail.
    unsafe {
        raw::syscall2(
            libc::SYS_clock_gettime,
            libc::CLOCK_MONOTONIC as usize,
            (&raw mut ts) as usize,
        )
    };
    ts.tv_nsec += timeout_ns as libc::c_long;
    if ts.tv_nsec >= 1_000_000_000 {
        ts.tv_nsec -= 1_000_000_000;
        ts.tv_sec += 1;
    }
    // SAFETY: `word` by the caller; `ts` lives across the call; the fifth argument
    // (unused by this op) is not passed. EAGAIN (the word differs), EINTR and
    // ETIMEDOUT are all "go and look again" for the caller.
    unsafe {
        raw::syscall6(
            libc::SYS_futex,
            word as usize,
            libc::FUTEX_WAIT_BITSET as usize,
            expected as usize,
            (&raw const ts) as usize,
            0,
            bits as usize,
        )
    };
}

/// Wake every thread asleep in [`futex_wait`] on `word` whose bit set meets `bits`
/// (`FUTEX_WAKE_BITSET`).
///
/// # Safety
/// `word` points to a live, 4-aligned 32-bit word.
#[inline(always)]
pub(crate) unsafe fn futex_wake(word: *const u32, bits: u32) {
    // SAFETY: `word` by the caller; FUTEX_WAKE_BITSET only hashes the address.
    unsafe {
        raw::syscall6(
            libc::SYS_futex,
            word as usize,
            libc::FUTEX_WAKE_BITSET as usize,
            i32::MAX as usize,
            0,
            0,
            bits as usize,
        )
    };
}
