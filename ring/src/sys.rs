//! The ring's system calls: the scheduler yield and the short sleep of its waits
//! (`backoff`). Linux only, like the rest of Ferroplane.
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
                // stack. Memory is not declared untouched: nanosleep reads its
                // timespec.
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
            -i64::from(
                std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EINVAL),
            )
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
    unsafe { raw::syscall2(libc::SYS_nanosleep, (&raw const ts) as usize, 0) };
}
