//! The results as SPDK's bdevperf prints them (a `Latency(us)` table with one line per
//! job under a `Job:` header, then `Total`), and as `perform_tests` answers them.

use serde_json::{json, Value};

use crate::args::PerfOpts;
use crate::job::JobResult;

fn mibps(r: &JobResult) -> f64 {
    if r.runtime_s > 0.0 {
        r.bytes as f64 / r.runtime_s / (1024.0 * 1024.0)
    } else {
        0.0
    }
}

fn fail_s(r: &JobResult) -> f64 {
    if r.runtime_s > 0.0 {
        r.failed as f64 / r.runtime_s
    } else {
        0.0
    }
}

/// The table (per job, then `Total`).
pub fn table(opts: &PerfOpts, results: &[JobResult]) -> String {
    let mut s = String::new();
    s.push_str(&format!("{:>100}\n", "Latency(us)"));
    s.push_str(&format!(
        " {:<28}: {:>10} {:>10} {:>10} {:>10} {:>8} {:>10} {:>10} {:>10}\n",
        "Device Information",
        "runtime(s)",
        "IOPS",
        "MiB/s",
        "Fail/s",
        "TO/s",
        "Average",
        "min",
        "max"
    ));
    let (mut iops, mut mib, mut fails, mut ios, mut lat_sum) = (0.0, 0.0, 0.0, 0u64, 0.0);
    let (mut min, mut max) = (f64::INFINITY, 0.0f64);
    for r in results {
        s.push_str(&format!(
            "Job: {} (Core Mask {:#x}, workload: {}, depth: {}, IO size: {})\n",
            r.bdev,
            1u64 << r.core.min(63),
            opts.workload.name(),
            opts.depth,
            opts.io_size
        ));
        for m in &r.mismatches {
            s.push_str(&format!(
                "\t Verify mismatch: block {} byte offset {:#x}: wrote {:#04x}, read {:#04x}\n",
                m.offset_blocks, m.byte, m.expected, m.got
            ));
        }
        if let Some(e) = &r.error {
            s.push_str(&format!("\t Error: {e}\n"));
        }
        s.push_str(&format!(
            "\t {:<20}: {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>8.2} {:>10.2} {:>10.2} {:>10.2}\n",
            r.bdev,
            r.runtime_s,
            r.iops(),
            mibps(r),
            fail_s(r),
            0.0,
            r.avg_us(),
            r.lat_min_us,
            r.lat_max_us
        ));
        iops += r.iops();
        mib += mibps(r);
        fails += fail_s(r);
        ios += r.ios;
        lat_sum += r.lat_sum_us;
        if r.ios > 0 {
            min = min.min(r.lat_min_us);
            max = max.max(r.lat_max_us);
        }
    }
    let avg = if ios > 0 { lat_sum / ios as f64 } else { 0.0 };
    if !min.is_finite() {
        min = 0.0;
    }
    s.push_str(&format!(" {}\n", "=".repeat(115)));
    s.push_str(&format!(
        " {:<28}: {:>10} {:>10.2} {:>10.2} {:>10.2} {:>8.2} {:>10.2} {:>10.2} {:>10.2}\n",
        "Total", "", iops, mib, fails, 0.0, avg, min, max
    ));
    s
}

/// `perform_tests`' answer (SPDK's field names).
pub fn json(opts: &PerfOpts, results: &[JobResult]) -> Value {
    let jobs: Vec<Value> = results
        .iter()
        .map(|r| {
            json!({
                "job": r.bdev,
                "core_mask": format!("{:#x}", 1u64 << r.core.min(63)),
                "workload": opts.workload.name(),
                "status": if r.error.is_some() { "failed" } else { "finished" },
                "queue_depth": opts.depth,
                "io_size": opts.io_size,
                "runtime": r.runtime_s,
                "iops": r.iops(),
                "mibps": mibps(r),
                "io_failed": r.failed,
                "io_timeout": 0,
                "avg_latency_us": r.avg_us(),
                "min_latency_us": r.lat_min_us,
                "max_latency_us": r.lat_max_us,
                "mismatches": r.mismatches.iter().map(|m| json!({
                    "offset_blocks": m.offset_blocks,
                    "byte_offset": m.byte,
                    "expected": m.expected,
                    "read": m.got,
                })).collect::<Vec<_>>(),
                "error": r.error,
            })
        })
        .collect();
    json!({ "results": jobs, "core_count": results.iter().map(|r| r.core).collect::<std::collections::BTreeSet<_>>().len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Workload;
    use crate::job::Mismatch;

    #[test]
    fn total_sums_jobs() {
        let opts = PerfOpts {
            depth: 4,
            io_size: 4096,
            workload: Workload::Verify,
            rw_read_pct: 0,
            seconds: 1.0,
            only_bdev: None,
            continue_on_failure: false,
        };
        let a = JobResult {
            bdev: "Malloc0".into(),
            core: 0,
            runtime_s: 2.0,
            ios: 200,
            bytes: 200 * 4096,
            lat_sum_us: 400.0,
            lat_min_us: 1.0,
            lat_max_us: 5.0,
            ..Default::default()
        };
        let b = JobResult {
            bdev: "Null0".into(),
            core: 1,
            runtime_s: 1.0,
            ios: 100,
            failed: 1,
            lat_sum_us: 100.0,
            lat_min_us: 0.5,
            lat_max_us: 9.0,
            mismatches: vec![Mismatch {
                offset_blocks: 8,
                byte: 0x8000,
                expected: 1,
                got: 2,
            }],
            ..Default::default()
        };
        let t = table(&opts, &[a, b]);
        let total = t.lines().last().unwrap();
        let nums: Vec<f64> = total
            .split(':')
            .nth(1)
            .unwrap()
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        assert_eq!(nums, [200.0, 0.39, 1.0, 0.0, 1.67, 0.5, 9.0]);
        assert!(t.contains("Job: Null0 (Core Mask 0x2, workload: verify, depth: 4, IO size: 4096)"));
        assert!(t.contains("Verify mismatch: block 8 byte offset 0x8000"));
    }
}
