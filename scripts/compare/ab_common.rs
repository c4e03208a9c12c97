//! Shared by the in-process A/B harnesses (`ring_ab`, `mempool_ab`), included with
//! `#[path]`: neither is a workspace member, so neither can be a dependency of the other.

/// Pin the calling thread to `cpu`.
pub fn pin(cpu: usize) -> Result<(), String> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the call reads it only.
    unsafe {
        let mut s: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut s);
        if libc::sched_setaffinity(0, std::mem::size_of_val(&s), &s) != 0 {
            return Err(format!(
                "cannot pin to cpu {cpu}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}
