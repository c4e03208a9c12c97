//! `rtt CPU_A CPU_B`: prints the median cache-line round trip between the two cpus, in
//! nanoseconds ([`ab_common::round_trip_ns`], the probe the A/B harnesses print too).
//!
//! On a VM the host decides where the vCPUs run, and the two-core mempool and ring rates
//! move with this number (on the development VM mostly about 60 ns or about 330 ns, at
//! times 36 ns or several microseconds, changing within seconds or after minutes), for
//! DPDK and Ferroplane alike. `mempool.sh` prints it
//! before and after each side's run so a table says which placement each run had.
//! Exit status: 0, 1 if a thread cannot be pinned, 2 for bad arguments.

#[path = "../../ab_common.rs"]
mod ab_common;

use std::process::ExitCode;

fn cpu(a: &str) -> Result<usize, String> {
    a.parse()
        .map_err(|_| format!("rtt: invalid cpu '{a}': a cpu number"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 {
        eprintln!("usage: rtt CPU_A CPU_B");
        return ExitCode::from(2);
    }
    let cpus = match (cpu(&args[0]), cpu(&args[1])) {
        (Ok(a), Ok(b)) if a != b => (a, b),
        (Ok(_), Ok(_)) => {
            eprintln!("rtt: the two cpus must differ");
            return ExitCode::from(2);
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match ab_common::round_trip_ns(cpus) {
        Ok(ns) => {
            println!("{ns:.0}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rtt: {e}");
            ExitCode::FAILURE
        }
    }
}
