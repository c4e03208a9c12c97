//! Cycle counter and busy-wait delays.
//!
//! [`rdtsc`] reads the CPU's time-stamp counter on x86_64 (one instruction, no syscall,
//! not serializing: it may be reordered with nearby loads, which is fine for measuring
//! intervals of a microsecond or more). On other architectures it falls back to
//! nanoseconds of a monotonic clock since the first call, and [`tsc_hz`] is then exactly
//! 1 GHz, so all conversions stay correct.
//!
//! [`tsc_hz`] is calibrated once per process (a `OnceLock`; the first caller pays up to
//! ~30 ms, later callers nothing), in this order:
//! 1. CPUID leaf 0x15 (TSC/crystal ratio × crystal frequency), when the CPU reports all
//!    three numbers (Intel SDM vol. 2A, CPUID leaf 15H); if it gives the ratio but no
//!    crystal frequency, the base frequency of leaf 0x16;
//! 2. the hypervisor timing leaf 0x40000010 (TSC kHz in EAX), when running under a
//!    hypervisor that offers it (the VMware-defined leaf, also offered by some KVM setups);
//! 3. measurement against `CLOCK_MONOTONIC` (via `std::time::Instant`): three 10 ms
//!    windows, the median kept.
//!
//! `/proc/cpuinfo`'s "cpu MHz" is *not* used: on hosts with frequency scaling it is the
//! current core clock, not the TSC rate, and it is rounded to kHz at best.
//!
//! All functions are safe to call from any thread. The counter is assumed invariant and
//! synchronized across cpus (the `constant_tsc`/`nonstop_tsc` flags; every x86_64 server
//! CPU of the last decade); [`tsc_invariant`] reports whether the CPU says so.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Read the cycle counter. On x86_64 this is `RDTSC`; elsewhere monotonic nanoseconds.
#[inline]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC exists on every x86_64 CPU, reads a counter and touches no memory.
        // (`allow(unused_unsafe)`: newer toolchains declare the intrinsic safe.)
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        fallback_ns()
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn fallback_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let e = EPOCH.get_or_init(Instant::now);
    u64::try_from(e.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Counter ticks per second, calibrated on first call (see the module docs).
pub fn tsc_hz() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(calibrate)
}

/// How [`tsc_hz`] was (or would be) obtained on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TscSource {
    /// CPUID leaf 0x15 (with leaf 0x16 when 0x15 lacks the crystal frequency).
    CpuidLeaf15,
    /// Hypervisor CPUID leaf 0x40000010.
    Hypervisor,
    /// Measured against the monotonic clock.
    Measured,
    /// Not x86_64: the counter is nanoseconds.
    Nanoseconds,
}

/// The source [`tsc_hz`] uses here (cheap: CPUID only, no measurement).
pub fn tsc_source() -> TscSource {
    #[cfg(target_arch = "x86_64")]
    {
        if cpuid::leaf15_hz().is_some() {
            TscSource::CpuidLeaf15
        } else if cpuid::hypervisor_tsc_hz().is_some() {
            TscSource::Hypervisor
        } else {
            TscSource::Measured
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        TscSource::Nanoseconds
    }
}

/// Whether the CPU reports an invariant TSC (CPUID 0x80000007 EDX bit 8). Always true for
/// the nanosecond fallback.
pub fn tsc_invariant() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        cpuid::invariant_tsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        true
    }
}

fn calibrate() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(hz) = cpuid::leaf15_hz().or_else(cpuid::hypervisor_tsc_hz) {
            return hz;
        }
        measure_hz()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        1_000_000_000
    }
}

/// Measure the counter rate against the monotonic clock: three windows of 10 ms, median.
/// Public so a benchmark or diagnostic can compare it with [`tsc_hz`]; takes ~30 ms.
pub fn measure_hz() -> u64 {
    let mut samples = [0u64; 3];
    for s in &mut samples {
        let (t0, c0) = (Instant::now(), rdtsc());
        std::thread::sleep(Duration::from_millis(10));
        let (c1, t1) = (rdtsc(), Instant::now());
        let ns = (t1 - t0).as_nanos().max(1);
        let cycles = u128::from(c1.wrapping_sub(c0));
        *s = u64::try_from(cycles * 1_000_000_000 / ns)
            .unwrap_or(u64::MAX)
            .max(1);
    }
    samples.sort_unstable();
    samples[1]
}

/// Convert a cycle count to nanoseconds (saturating).
pub fn cycles_to_ns(cycles: u64) -> u64 {
    let ns = u128::from(cycles) * 1_000_000_000 / u128::from(tsc_hz());
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// Convert nanoseconds to a cycle count (saturating).
pub fn ns_to_cycles(ns: u64) -> u64 {
    let c = u128::from(ns) * u128::from(tsc_hz()) / 1_000_000_000;
    u64::try_from(c).unwrap_or(u64::MAX)
}

/// Busy-wait at least `us` microseconds, spinning on [`rdtsc`] (the thread keeps its cpu;
/// use [`delay_us_sleep`] to yield it). For data-plane loops that must not be descheduled.
pub fn delay_us(us: u64) {
    let start = rdtsc();
    let wait = ns_to_cycles(us.saturating_mul(1_000));
    while rdtsc().wrapping_sub(start) < wait {
        std::hint::spin_loop();
    }
}

/// Busy-wait at least `ms` milliseconds (see [`delay_us`]).
pub fn delay_ms(ms: u64) {
    delay_us(ms.saturating_mul(1_000));
}

/// Sleep (yield the cpu) at least `us` microseconds.
pub fn delay_us_sleep(us: u64) {
    std::thread::sleep(Duration::from_micros(us));
}

#[cfg(target_arch = "x86_64")]
mod cpuid {
    use core::arch::x86_64::{__cpuid, CpuidResult};

    fn leaf(l: u32) -> CpuidResult {
        // SAFETY: CPUID exists on every x86_64 CPU; asking for an unsupported leaf returns
        // data of the highest basic leaf, never faults, and callers check the max leaf first.
        #[allow(unused_unsafe)]
        unsafe {
            __cpuid(l)
        }
    }

    /// TSC Hz from leaf 0x15 when it gives ratio and crystal frequency.
    pub(super) fn leaf15_hz() -> Option<u64> {
        if leaf(0).eax < 0x15 {
            return None;
        }
        let r = leaf(0x15);
        let (den, num, crystal) = (u64::from(r.eax), u64::from(r.ebx), u64::from(r.ecx));
        if den == 0 || num == 0 {
            return None;
        }
        if crystal != 0 {
            return Some(crystal * num / den);
        }
        // Ratio known, crystal not: when leaf 0x16 gives the base frequency, the TSC runs
        // at it (what Linux's native_calibrate_tsc() does, arch/x86/kernel/tsc.c).
        if leaf(0).eax >= 0x16 {
            let base_mhz = u64::from(leaf(0x16).eax & 0xffff);
            if base_mhz != 0 {
                return Some(base_mhz * 1_000_000);
            }
        }
        None
    }

    /// TSC Hz from the hypervisor timing leaf 0x40000010 (EAX = TSC kHz).
    pub(super) fn hypervisor_tsc_hz() -> Option<u64> {
        let under_hv = leaf(1).ecx & (1 << 31) != 0;
        if !under_hv || leaf(0x4000_0000).eax < 0x4000_0010 {
            return None;
        }
        let khz = u64::from(leaf(0x4000_0010).eax);
        (khz != 0).then_some(khz * 1_000)
    }

    pub(super) fn invariant_tsc() -> bool {
        leaf(0x8000_0000).eax >= 0x8000_0007 && leaf(0x8000_0007).edx & (1 << 8) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hz_is_plausible_and_stable() {
        let hz = tsc_hz();
        assert!((1_000_000..=20_000_000_000).contains(&hz), "tsc_hz {hz}");
        assert_eq!(tsc_hz(), hz);
        eprintln!(
            "tsc_hz = {hz} ({:?}, invariant {})",
            tsc_source(),
            tsc_invariant()
        );
    }

    #[test]
    fn counter_moves_forward() {
        let a = rdtsc();
        std::thread::sleep(Duration::from_millis(1));
        let b = rdtsc();
        assert!(b > a);
    }

    #[test]
    fn conversions_round_trip() {
        let hz = tsc_hz();
        assert_eq!(cycles_to_ns(hz), 1_000_000_000);
        assert_eq!(ns_to_cycles(1_000_000_000), hz);
        assert_eq!(cycles_to_ns(0), 0);
        // Saturate instead of overflowing.
        assert!(ns_to_cycles(u64::MAX) >= u64::MAX / 20);
        let _ = cycles_to_ns(u64::MAX);
    }

    /// A correctness bound (the delay is not a no-op and not shorter than asked, with
    /// generous slack for calibration error), not a timing assertion: no upper bound.
    #[test]
    fn delay_waits_at_least_roughly_what_was_asked() {
        let waits: [fn(); 2] = [|| delay_us(2_000), || delay_ms(2)];
        for wait in waits {
            let t = Instant::now();
            wait();
            let took = t.elapsed();
            assert!(took >= Duration::from_micros(1_000), "{took:?}");
        }
        delay_us(0);
    }
}
