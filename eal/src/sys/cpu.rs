//! CPU and scheduler system calls: which cpu a thread runs on, which cpus it may run on,
//! and binding it to one. One safe function per call; each returns [`Result`] with the OS
//! error kept as the source.
//!
//! Every function here acts on the *calling thread* only (pid 0 in the syscall), so they
//! are safe to call from any thread at any time.

use crate::error::{Error, Result};

/// Highest cpu number + 1 that a `cpu_set_t` can name (glibc's `CPU_SETSIZE`, 1024).
pub const CPU_SETSIZE: u32 = libc::CPU_SETSIZE as u32;

/// The cpu the calling thread is running on right now (`sched_getcpu(3)`). Meaningful as a
/// check only when the thread is pinned to one cpu; otherwise it may change at any moment.
pub fn sched_getcpu() -> Result<u32> {
    // SAFETY: sched_getcpu takes no arguments and only reads scheduler state.
    let r = unsafe { libc::sched_getcpu() };
    if r < 0 {
        return Err(Error::last_os("query", "current cpu (sched_getcpu)"));
    }
    Ok(r as u32)
}

/// The cpus the calling thread may run on (`sched_getaffinity(2)` with pid 0), ascending.
pub fn sched_getaffinity_current() -> Result<Vec<u32>> {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size we pass; pid 0 is the
    // calling thread.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Err(Error::last_os(
            "query",
            "thread cpu affinity (sched_getaffinity)",
        ));
    }
    let mut cpus = Vec::new();
    for cpu in 0..CPU_SETSIZE {
        // SAFETY: `cpu` < CPU_SETSIZE, so CPU_ISSET indexes inside the set.
        if unsafe { libc::CPU_ISSET(cpu as usize, &set) } {
            cpus.push(cpu);
        }
    }
    Ok(cpus)
}

/// Let the calling thread run on exactly `cpus` (`sched_setaffinity(2)` with pid 0): how
/// a thread's earlier affinity, read with [`sched_getaffinity_current`], is put back.
/// Fails without a syscall for an empty list or a cpu beyond [`CPU_SETSIZE`], and with the
/// OS error when the kernel refuses the set.
pub fn set_affinity_current(cpus: &[u32]) -> Result<()> {
    let what = || format!("current thread to cpus {cpus:?}");
    if cpus.is_empty() || cpus.iter().any(|&c| c >= CPU_SETSIZE) {
        return Err(Error::io(
            "pin",
            what(),
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("empty set or cpu number beyond CPU_SETSIZE ({CPU_SETSIZE})"),
            ),
        ));
    }
    // SAFETY: cpu_set_t is a plain bit array; all-zero is a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: `c` < CPU_SETSIZE (checked above), so CPU_SET indexes inside the set.
        unsafe { libc::CPU_SET(c as usize, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size we pass; pid 0 is the calling thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        return Err(Error::last_os("pin", what()));
    }
    Ok(())
}

/// Bind the calling thread to exactly `cpu` (through `core_affinity`, which calls
/// `sched_setaffinity(2)` with pid 0). Fails with the OS error when the cpu is offline or
/// outside the cpuset the process is allowed, and without a syscall when `cpu` is beyond
/// [`CPU_SETSIZE`].
pub fn pin_current_thread(cpu: u32) -> Result<()> {
    if cpu >= CPU_SETSIZE {
        return Err(Error::io(
            "pin",
            format!("current thread to cpu {cpu}"),
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("cpu number beyond CPU_SETSIZE ({CPU_SETSIZE})"),
            ),
        ));
    }
    if core_affinity::set_for_current(core_affinity::CoreId { id: cpu as usize }) {
        Ok(())
    } else {
        // core_affinity returns only a bool; errno is still the one sched_setaffinity left
        // in this thread, since nothing ran in between.
        Err(Error::last_os(
            "pin",
            format!("current thread to cpu {cpu}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `f` on a fresh thread, so the test harness thread keeps its affinity.
    fn on_fresh_thread(f: impl FnOnce() + Send + 'static) {
        std::thread::spawn(f).join().unwrap();
    }

    #[test]
    fn current_cpu_is_in_affinity_set() {
        let allowed = sched_getaffinity_current().unwrap();
        assert!(!allowed.is_empty());
        on_fresh_thread(move || {
            let cpu = allowed[0];
            pin_current_thread(cpu).unwrap();
            assert_eq!(sched_getaffinity_current().unwrap(), vec![cpu]);
            assert_eq!(sched_getcpu().unwrap(), cpu);
        });
    }

    #[test]
    fn affinity_is_put_back() {
        on_fresh_thread(|| {
            let before = sched_getaffinity_current().unwrap();
            pin_current_thread(before[before.len() - 1]).unwrap();
            assert_eq!(sched_getaffinity_current().unwrap().len(), 1);
            set_affinity_current(&before).unwrap();
            assert_eq!(sched_getaffinity_current().unwrap(), before);
            assert!(set_affinity_current(&[]).is_err());
            assert!(set_affinity_current(&[CPU_SETSIZE]).is_err());
            // The failed calls changed nothing.
            assert_eq!(sched_getaffinity_current().unwrap(), before);
        });
    }

    #[test]
    fn pin_out_of_range_is_error_not_panic() {
        on_fresh_thread(|| {
            let e = pin_current_thread(CPU_SETSIZE + 5).unwrap_err();
            assert!(e.to_string().contains("cpu 1029"), "{e}");
            // An in-range cpu that this thread may not use: the kernel refuses.
            let last = CPU_SETSIZE - 1;
            if !sched_getaffinity_current().unwrap().contains(&last) {
                let e = pin_current_thread(last).unwrap_err();
                assert!(matches!(e, Error::Os { .. }), "{e:?}");
            }
        });
    }
}
