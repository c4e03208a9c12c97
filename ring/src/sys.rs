//! The ring's system calls: the scheduler yield and the short sleep of the HTS/RTS
//! waits, and the futex sleep and wake of the multi tail waits (`backoff`). Linux only,
//! like the rest of Ferroplane.
//!
//! On x86-64 they are issued with the `syscall` instruction in inline assembly rather
//! than through libc. The waits sit inside the hot enqueue/dequeue bodies (on their cold
//! branches); a call there makes every value live across it either occupy one of the
//! six callee-saved registers or be spilled, on the path where nobody waits too
//! (measured under callgrind: 4-10 more instructions per enqueue/dequeue pair than with
//! no call at all). `syscall` clobbers only `rax`, `rcx` and `r11` besides its argument
//! registers; the futex sleep and wake go further and save everything they touch
//! ([`park_on_tail_asm`], [`wake_tail_waiters_asm`]). Other architectures call libc.

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

/// Sleep on the 32-bit word at `word` while it holds `expected`, for at most `timeout_ns`
/// nanoseconds, until a [`futex_wake`] whose bit set meets `bits`
/// (`FUTEX_WAIT_BITSET`, not the private op: a ring may be shared between processes).
/// Returns at once if the word differs, on a matching wake, a signal or the timeout; the
/// caller re-checks whatever it waits for in every case.
///
/// # Safety
/// `word` points to a live, 4-aligned 32-bit word (read by the kernel atomically).
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
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
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
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

/// Byte offsets inside a side's `HeadTail` (`crate::layout`, which asserts them) that
/// [`wake_tail_waiters_asm`] reads: the waiter count and the tail position (the high
/// half of the little-endian tail word).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(crate) const WAITERS_OFF: usize = 16;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(crate) const TAIL_POS_OFF: usize = 28;

/// Assembly shared by the out-of-line blocks below: step under the 128-byte red zone
/// and save every register they (or the kernel's `syscall`, which writes rax, rcx and
/// r11) may write; then the reverse, and the jump back to label `2` on the inline path,
/// leaving the cold section.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
macro_rules! save_below_red_zone {
    () => {
        "lea rsp, [rsp - 128]\npush rax\npush rcx\npush rdx\npush rsi\npush rdi\npush r8\npush r9\npush r10\npush r11"
    };
}
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
macro_rules! restore_and_return {
    () => {
        "pop r11\npop r10\npop r9\npop r8\npop rdi\npop rsi\npop rdx\npop rcx\npop rax\nlea rsp, [rsp + 128]\njmp 2b\n.popsection"
    };
}

/// If `side` has threads asleep on its tail (its waiter count is not 0), wake those
/// waiting for the tail position it now holds (`FUTEX_WAKE_BITSET` with the bit
/// `backoff::wake_bit` gives that position).
///
/// On the path where nobody sleeps this is two instructions, a compare of the count with
/// 0 and a branch not taken, and it takes no register but the one holding `side`: the
/// wake itself sits out of line (in `.text.unlikely`), saves every register it uses on
/// the stack (below the red zone) and restores them, so the compiler sees an asm
/// statement that clobbers only the flags. Written as a Rust call on a cold branch, the
/// same wake made the values live across it move to callee-saved registers or the
/// stack on the hot path too (10 more instructions per MP/MC enqueue+dequeue pair under
/// callgrind).
///
/// The position is read again after the caller's store: if another thread moved the
/// tail on since, the waiter for our position has already published (positions are
/// published in claim order), and the later publisher wakes its own successor.
///
/// # Safety
/// `side` points to a live `HeadTail` (`H`) in memory this process maps.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[inline(always)]
pub(crate) unsafe fn wake_tail_waiters_asm<H>(side: *const H) {
    // SAFETY: the caller vouches for `side`. The compare reads the waiter count; the
    // out-of-line block moves the stack pointer below the 128-byte red zone before it
    // pushes, restores every register it writes (the kernel's `syscall` writes only
    // rax, rcx and r11, which are saved too) and the stack pointer, then jumps back.
    // FUTEX_WAKE_BITSET only hashes the word's address and reads no user memory.
    unsafe {
        core::arch::asm!(
            "cmp dword ptr [{ht} + {woff}], 0",
            "jne 3f",
            "2:",
            ".pushsection .text.unlikely.ferroplane_ring_wake,\"ax\",@progbits",
            "3:",
            save_below_red_zone!(),
            "lea rdi, [{ht} + {toff}]",
            // bit = 1 << ((pos * 0x9E3779B1) >> 27), as backoff::wake_bit.
            "imul ecx, dword ptr [rdi], 0x9E3779B1",
            "shr ecx, 27",
            "mov r9d, 1",
            "shl r9d, cl",
            "mov esi, {wake_bitset}",
            "mov edx, 0x7fffffff",
            "xor r10d, r10d",
            "xor r8d, r8d",
            "mov eax, {sys_futex}",
            "syscall",
            restore_and_return!(),
            ht = in(reg) side,
            woff = const WAITERS_OFF,
            toff = const TAIL_POS_OFF,
            wake_bitset = const libc::FUTEX_WAKE_BITSET,
            sys_futex = const libc::SYS_futex,
            // It writes no memory the program can see (its pushes are below the red
            // zone, popped before it returns), so the compiler keeps the values it
            // holds from memory across it.
            options(readonly),
        );
    }
}

/// Longest futex sleep of a tail waiter, in nanoseconds: the safety net for a wake-up
/// that is not sent (see `backoff::park_on_tail`), not the expected way out.
pub(crate) const PARK_TIMEOUT_NS: u32 = 1_000_000;

/// `backoff::park_on_tail` on x86-64: count this thread in `side`'s waiters (a locked
/// add, which is also the store-load fence F1), and if the tail position still reads
/// `seen`, sleep on it with `FUTEX_WAIT_BITSET` (bits `bits`, an absolute
/// CLOCK_MONOTONIC deadline [`PARK_TIMEOUT_NS`] from now), then uncount. Returns on a wake, a
/// moved tail, a signal or the deadline; the caller looks again in every case.
///
/// Written out of line in assembly for the reason [`wake_tail_waiters_asm`] is: the
/// statement clobbers only the flags, so the hot path around the wait keeps its
/// registers. It saves what it writes on the stack below the red zone and keeps its
/// inputs and the timespec there across the system calls.
///
/// # Safety
/// `side` points to a live `HeadTail` (`H`) in memory this process maps.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[inline(always)]
pub(crate) unsafe fn park_on_tail_asm<H>(side: *const H, seen: u32, bits: u32) {
    // SAFETY: the caller vouches for `side`. The block moves the stack pointer below
    // the red zone before it pushes, restores every register it writes and the stack
    // pointer before it jumps back; clock_gettime writes only the 16-byte timespec it
    // reserved on the stack, FUTEX_WAIT_BITSET reads the tail word and that timespec.
    unsafe {
        core::arch::asm!(
            "jmp 3f",
            "2:",
            ".pushsection .text.unlikely.ferroplane_ring_park,\"ax\",@progbits",
            "3:",
            save_below_red_zone!(),
            // [rsp+32] side, [rsp+24] seen, [rsp+16] bits and timeout, [rsp] timespec.
            "push {ht}",
            "push {seen:r}",
            "push {bits:r}",
            "sub rsp, 16",
            "mov rdi, qword ptr [rsp + 32]",
            // W1 + F1: the locked add is a full fence.
            "lock add dword ptr [rdi + {woff}], 1",
            // W2.
            "mov eax, dword ptr [rdi + {toff}]",
            "cmp eax, dword ptr [rsp + 24]",
            "jne 5f",
            "mov edi, {clock_monotonic}",
            "mov rsi, rsp",
            "mov eax, {sys_clock_gettime}",
            "syscall",
            "mov rax, qword ptr [rsp + 8]",
            "add rax, {timeout}",
            "cmp rax, 1000000000",
            "jb 4f",
            "sub rax, 1000000000",
            "add qword ptr [rsp], 1",
            "4:",
            "mov qword ptr [rsp + 8], rax",
            "mov rdi, qword ptr [rsp + 32]",
            "lea rdi, [rdi + {toff}]",
            "mov esi, {wait_bitset}",
            "mov edx, dword ptr [rsp + 24]",
            "mov r10, rsp",
            "xor r8d, r8d",
            "mov r9d, dword ptr [rsp + 16]",
            "mov eax, {sys_futex}",
            "syscall",
            "5:",
            "mov rdi, qword ptr [rsp + 32]",
            "lock sub dword ptr [rdi + {woff}], 1",
            "add rsp, 40",
            restore_and_return!(),
            ht = in(reg) side,
            seen = in(reg) u64::from(seen),
            bits = in(reg) u64::from(bits),
            timeout = const PARK_TIMEOUT_NS,
            woff = const WAITERS_OFF,
            toff = const TAIL_POS_OFF,
            clock_monotonic = const libc::CLOCK_MONOTONIC,
            sys_clock_gettime = const libc::SYS_clock_gettime,
            wait_bitset = const libc::FUTEX_WAIT_BITSET,
            sys_futex = const libc::SYS_futex,
        );
    }
}
