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

/// Median round trip of one cache line between `cpus.0` and `cpus.1`, in nanoseconds
/// (5 bursts of 20 000 ping-pongs on two threads of its own, each pinned). On a VM it
/// tells where the host has put the two vCPUs: the two-core results move with it, for
/// DPDK and ours alike, so each run prints it to say which placement it measured.
pub fn round_trip_ns(cpus: (usize, usize)) -> Result<f64, String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    const ITERS: u64 = 20_000;
    const BURSTS: usize = 5;
    const NO_ECHO: &str = "round trip: the echo thread could not pin";
    let flag = AtomicU64::new(0);
    std::thread::scope(|s| {
        let echo = s.spawn(|| -> Result<(), String> {
            if let Err(e) = pin(cpus.1) {
                // Release: tells the pinger to give up.
                flag.store(u64::MAX, Ordering::Release);
                return Err(e);
            }
            // Answer every odd value with the next even one until told to stop (MAX).
            loop {
                // Acquire: pairs with the pinger's Release store.
                let v = flag.load(Ordering::Acquire);
                if v == u64::MAX {
                    return Ok(());
                }
                if v & 1 == 1 {
                    // Release: pairs with the pinger's Acquire load.
                    flag.store(v + 1, Ordering::Release);
                }
            }
        });
        let ping = s.spawn(|| -> Result<f64, String> {
            let run = || -> Result<f64, String> {
                pin(cpus.0)?;
                let mut v = 0u64;
                let mut ns = Vec::with_capacity(BURSTS);
                for _ in 0..BURSTS {
                    let t0 = std::time::Instant::now();
                    for _ in 0..ITERS {
                        // Release/Acquire: pair with the echo thread's.
                        if flag.swap(v + 1, Ordering::AcqRel) == u64::MAX {
                            return Err(NO_ECHO.into());
                        }
                        loop {
                            let f = flag.load(Ordering::Acquire);
                            if f == v + 2 {
                                break;
                            }
                            if f == u64::MAX {
                                return Err(NO_ECHO.into());
                            }
                            std::hint::spin_loop();
                        }
                        v += 2;
                    }
                    ns.push(t0.elapsed().as_nanos() as f64 / ITERS as f64);
                }
                ns.sort_by(f64::total_cmp);
                Ok(ns[BURSTS / 2])
            };
            let r = run();
            // Release: the echo thread's stop signal.
            flag.store(u64::MAX, Ordering::Release);
            r
        });
        let r = ping
            .join()
            .map_err(|_| "round trip: pinger panicked".to_string())?;
        let e = echo
            .join()
            .map_err(|_| "round trip: echo panicked".to_string())?;
        e.and(r)
    })
}
