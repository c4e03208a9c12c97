//! Parsers of the two sides' outputs. Each returns the cases it found, named the same
//! way for DPDK and for ours so the table can pair them; an output with none is the
//! caller's error (naming the side), never a zero.

/// One measured value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub case: String,
    pub value: f64,
}

fn sample(case: impl Into<String>, value: f64) -> Sample {
    Sample {
        case: case.into(),
        value,
    }
}

/// `msg_perf` lines: `msg_perf CASE NS`.
pub fn msg_perf(text: &str) -> Vec<Sample> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (
                w.next(),
                w.next(),
                w.next().and_then(|v| v.parse::<f64>().ok()),
            ) {
                (Some("msg_perf"), Some(case), Some(v)) if v.is_finite() && v > 0.0 => {
                    Some(sample(case, v))
                }
                _ => None,
            }
        })
        .collect()
}

/// `ring_perf_autotest` (DPDK 22.11) or our `ring_perf`, in cycles per element (the
/// empty-dequeue case: per call). Case names: `ptr|16B <sync> <test>`, e.g.
/// `ptr SP/SC burst 32`, `16B MP/MC 2-core bulk 8`.
///
/// Units: DPDK 22.11's app/test/test_ring_perf.c prints the one-core burst and bulk
/// cases per (enqueue N + dequeue N) call pair, so with `dpdk` those are divided by N
/// here; the single case is per enqueue+dequeue pair, the empty dequeue per call and the
/// two-core cases per element (producer plus consumer side) on both sides. Our
/// `ring_perf` prints cycles per element already. DPDK's "all worker nodes" counts are
/// not compared.
pub fn ring(text: &str, dpdk: bool) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut section = "";
    for line in text.lines().map(str::trim) {
        if let Some(s) = line
            .strip_prefix("### Testing ")
            .and_then(|s| s.strip_suffix(" ###"))
        {
            section = match s {
                "single element enq/deq" => "single",
                "burst enq/deq" => "burst",
                "bulk enq/deq" => "bulk",
                "empty bulk deq" => "empty",
                s if s.starts_with("using two ") => "2-core",
                _ => "",
            };
            continue;
        }
        if section.is_empty() {
            continue;
        }
        // "<api>: <sync>: <kind>: <value>", api = "legacy APIs" or
        // "elem APIs: element size 16B" (which has a colon of its own).
        let Some((head, val)) = line.rsplit_once(": ") else {
            continue;
        };
        let Ok(v) = val.trim().parse::<f64>() else {
            continue;
        };
        let (api, rest) = if let Some(r) = head.strip_prefix("legacy APIs: ") {
            ("ptr".to_string(), r)
        } else if let Some(r) = head.strip_prefix("elem APIs: element size ") {
            let Some((size, r)) = r.split_once(": ") else {
                continue;
            };
            (size.to_string(), r)
        } else {
            continue;
        };
        let Some((sync, kind)) = rest.split_once(": ") else {
            continue;
        };
        let n: Option<f64> = kind
            .split_once("(size: ")
            .and_then(|(_, s)| s.strip_suffix(')'))
            .and_then(|s| s.parse().ok());
        let what = match (section, n) {
            ("single", None) if kind == "single" => "single".to_string(),
            ("burst" | "bulk", Some(n)) => format!("{section} {n}"),
            ("empty", Some(n)) => format!("empty deq {n}"),
            ("2-core", Some(n)) => format!("2-core {} {n}", kind.split(' ').next().unwrap_or("")),
            _ => continue,
        };
        let v = match (dpdk, section, n) {
            (true, "burst" | "bulk", Some(n)) if n > 0.0 => v / n,
            _ => v,
        };
        out.push(sample(format!("{api} {sync} {what}"), v));
    }
    out
}

/// One case of `mempool_perf_autotest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolCase {
    /// `nocache`, `default` (ring_mp_mc, no cache), `cache` or `user` (user-owned cache).
    pub section: &'static str,
    pub cores: u32,
    pub get: u32,
    pub put: u32,
    pub keep: u32,
    pub constant: bool,
}

impl MempoolCase {
    pub fn name(&self) -> String {
        format!(
            "{} {}c keep {} get {} put {}{}",
            self.section,
            self.cores,
            self.keep,
            self.get,
            self.put,
            if self.constant { " const" } else { "" }
        )
    }

    /// The cases the table shows without `--all`: no cache and cache, n_keep 32 and 128,
    /// get and put bulks of 1, 4 and 32.
    pub fn in_subset(&self) -> bool {
        let b = |x| matches!(x, 1 | 4 | 32);
        matches!(self.section, "nocache" | "cache")
            && matches!(self.keep, 32 | 128)
            && b(self.get)
            && b(self.put)
    }
}

/// `mempool_perf_autotest` (DPDK) or our `mempool_perf` (same layout): each case's
/// `rate_persec` divided by `time_scale` (DPDK run with its clock scaled, see
/// `mempool.rs`; 1 for ours), in objects per second.
pub fn mempool(text: &str, time_scale: f64) -> Vec<(MempoolCase, f64)> {
    let mut out = Vec::new();
    let mut section = "";
    for line in text.lines() {
        if line.contains("start performance test for ") {
            section = "default";
            continue;
        } else if line.contains("start performance test (without cache)") {
            section = "nocache";
            continue;
        } else if line.contains("start performance test (with cache)") {
            section = "cache";
            continue;
        } else if line.contains("start performance test (with user-owned cache)") {
            section = "user";
            continue;
        }
        let Some(at) = line.find("mempool_autotest ") else {
            continue;
        };
        if section.is_empty() {
            continue;
        }
        let mut f = std::collections::HashMap::new();
        for kv in line[at..].split_whitespace().skip(1) {
            if let Some((k, v)) = kv.split_once('=') {
                f.insert(k, v);
            }
        }
        let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
        let (Some(cores), Some(get), Some(put), Some(keep), Some(c), Some(rate)) = (
            num("cores"),
            num("n_get_bulk"),
            num("n_put_bulk"),
            num("n_keep"),
            num("constant_n"),
            num("rate_persec"),
        ) else {
            continue;
        };
        let case = MempoolCase {
            section,
            cores: cores as u32,
            get: get as u32,
            put: put as u32,
            keep: keep as u32,
            constant: c != 0,
        };
        out.push((case, rate as f64 / time_scale));
    }
    out
}

/// Interactive testpmd (DPDK's or ours) after `show port stats all` twice: the sum over
/// ports of each port's last `key` value ("Rx-pps" or "Tx-pps"), in packets per second,
/// i.e. the rate over the window between the two shows. `None` unless every port's
/// statistics were shown at least twice (a single show is the rate since start).
pub fn testpmd_rate(text: &str, key: &str) -> Option<f64> {
    let mut last: std::collections::BTreeMap<u32, (u32, f64)> = Default::default();
    let mut port = None;
    let key = format!("{key}:");
    for line in text.lines() {
        if let Some(r) = line.split("NIC statistics for port ").nth(1) {
            port = r
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u32>().ok());
            continue;
        }
        let Some(p) = port else { continue };
        let mut w = line.split_whitespace();
        while let Some(t) = w.next() {
            if t == key {
                if let Some(v) = w.next().and_then(|v| v.parse::<f64>().ok()) {
                    let e = last.entry(p).or_insert((0, 0.0));
                    *e = (e.0 + 1, v);
                }
            }
        }
    }
    if last.is_empty() || last.values().any(|&(n, _)| n < 2) {
        return None;
    }
    Some(last.values().map(|&(_, v)| v).sum())
}

/// Our `pmd_perf`'s final line `pmd_perf: ports=P forwarded=N seconds=S mpps=X`: the
/// forwarding rate in packets per second.
pub fn pmd_perf(text: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with("pmd_perf: ports="))
        .filter_map(|l| l.split("mpps=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .next_back()
        .map(|m| m * 1e6)
}

/// One storage run: IOPS, mean latency (us) and CPU time per I/O (us, if known).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IoResult {
    pub iops: f64,
    pub lat_us: f64,
    pub cpu_us: Option<f64>,
}

/// `nvme-perf` (ours) or SPDK's `spdk_nvme_perf`: the `Total` line
/// (`Total : IOPS MiB/s Average min max`, latencies in us) and, from nvme-perf, the
/// `CPU time per I/O: X us` line.
pub fn nvme_perf(text: &str) -> Option<IoResult> {
    let v = total_line(text)?;
    let (iops, lat_us) = (*v.first()?, *v.get(2)?);
    let cpu_us = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("CPU time per I/O:"))
        .filter_map(|r| r.split_whitespace().next()?.parse::<f64>().ok())
        .next_back();
    Some(IoResult {
        iops,
        lat_us,
        cpu_us,
    })
}

/// The numbers after the colon of the last `Total` line.
fn total_line(text: &str) -> Option<Vec<f64>> {
    let tot = text
        .lines()
        .map(str::trim)
        .rfind(|l| l.starts_with("Total"))?;
    Some(
        tot.split_once(':')?
            .1
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect(),
    )
}

/// bdevperf's (ours or SPDK's) `Total` line: `Total : IOPS MiB/s Fail/s TO/s Average
/// min max`, latencies in us.
pub fn bdevperf(text: &str) -> Option<IoResult> {
    let v = total_line(text)?;
    Some(IoResult {
        iops: *v.first()?,
        lat_us: *v.get(4)?,
        cpu_us: None,
    })
}

/// fio `--output-format=json` of one read job: IOPS, mean completion latency and CPU
/// time per I/O ((usr_cpu + sys_cpu) percent of the job's runtime, over its I/O count).
pub fn fio_json(text: &str) -> Option<IoResult> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    let j: serde_json::Value = serde_json::from_str(text.get(start..=end)?).ok()?;
    let job = j.get("jobs")?.get(0)?;
    let read = job.get("read")?;
    let iops = read.get("iops")?.as_f64()?;
    let lat_us = read.get("lat_ns")?.get("mean")?.as_f64()? / 1000.0;
    let ios = read.get("total_ios")?.as_f64()?;
    let rt_us = job.get("job_runtime")?.as_f64()? * 1000.0;
    let cpu = job.get("usr_cpu")?.as_f64()? + job.get("sys_cpu")?.as_f64()?;
    Some(IoResult {
        iops,
        lat_us,
        cpu_us: (ios > 0.0).then(|| cpu / 100.0 * rt_us / ios),
    })
}

/// One direction of an fio job: IOPS, mean total latency, and the completion
/// latency's median and 99th percentile (us).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FioDir {
    pub iops: f64,
    pub lat_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// fio `--output-format=json`: the first job's `dir` ("read" or "write") side.
pub fn fio_json_dir(text: &str, dir: &str) -> Option<FioDir> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    let j: serde_json::Value = serde_json::from_str(text.get(start..=end)?).ok()?;
    let d = j.get("jobs")?.get(0)?.get(dir)?;
    let pct = |p: &str| Some(d.get("clat_ns")?.get("percentile")?.get(p)?.as_f64()? / 1000.0);
    Some(FioDir {
        iops: d.get("iops")?.as_f64()?,
        lat_us: d.get("lat_ns")?.get("mean")?.as_f64()? / 1000.0,
        p50_us: pct("50.000000")?,
        p99_us: pct("99.000000")?,
    })
}

/// fio `--output-format=json`: the first job's read plus write IOPS (any pattern).
pub fn fio_json_iops(text: &str) -> Option<f64> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    let j: serde_json::Value = serde_json::from_str(text.get(start..=end)?).ok()?;
    let job = j.get("jobs")?.get(0)?;
    let iops = ["read", "write"]
        .iter()
        .filter_map(|k| job.get(*k)?.get("iops")?.as_f64())
        .sum::<f64>();
    (iops > 0.0).then_some(iops)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RING_DPDK: &str = include_str!("../samples/ring_perf_autotest.txt");
    const RING_OURS: &str = include_str!("../samples/ring_perf.txt");
    const MP_DPDK: &str = include_str!("../samples/mempool_perf_autotest.txt");
    const MP_OURS: &str = include_str!("../samples/mempool_perf.txt");
    const TPMD_DPDK: &str = include_str!("../samples/testpmd_dpdk_null.txt");
    const TPMD_OURS: &str = include_str!("../samples/testpmd_ours_null.txt");
    const PMD_PERF: &str = include_str!("../samples/pmd_perf_null.txt");
    const NVME_PERF: &str = include_str!("../samples/nvme_perf.txt");
    const FIO: &str = include_str!("../samples/fio.json");

    #[test]
    fn fio_direction_with_percentiles() {
        let r = fio_json_dir(FIO, "read").expect("read side");
        let j: serde_json::Value = serde_json::from_str(FIO).unwrap();
        let d = &j["jobs"][0]["read"];
        assert_eq!(r.iops, d["iops"].as_f64().unwrap());
        assert_eq!(
            r.p99_us,
            d["clat_ns"]["percentile"]["99.000000"].as_f64().unwrap() / 1000.0
        );
        assert!(r.p50_us > 0.0 && r.p50_us <= r.p99_us, "{r:?}");
        assert!(fio_json_dir(FIO, "nope").is_none());
        assert!(fio_json_dir("no json", "read").is_none());
    }

    fn get<'a>(v: &'a [Sample], case: &str) -> &'a Sample {
        v.iter()
            .find(|s| s.case == case)
            .unwrap_or_else(|| panic!("no case '{case}' in {v:?}"))
    }

    #[test]
    fn msg_perf_lines() {
        let v = msg_perf("EAL: noise\nmsg_perf one-way 91.5\nmsg_perf round-trip 2310.0\nmsg_perf bad x\nmsg_perf zero 0\n");
        assert_eq!(v.len(), 2);
        assert_eq!(get(&v, "one-way").value, 91.5);
        assert_eq!(get(&v, "round-trip").value, 2310.0);
    }

    #[test]
    fn ring_dpdk_units_normalised() {
        let v = ring(RING_DPDK, true);
        // 2 APIs x (2 single + 4 burst + 4 bulk + 2 empty + 4 two-core).
        assert_eq!(v.len(), 32, "{v:?}");
        assert_eq!(get(&v, "ptr SP/SC single").value, 15.65);
        // One-core burst/bulk: per (enq N + deq N) pair in 22.11, divided by N.
        assert!((get(&v, "ptr SP/SC burst 32").value - 61.84 / 32.0).abs() < 1e-9);
        assert!((get(&v, "16B MP/MC bulk 8").value - 33.76 / 8.0).abs() < 1e-9);
        // Empty dequeue: per call, two-core: per element, both as printed.
        assert_eq!(get(&v, "ptr MP/MC empty deq 8").value, 9.20);
        assert_eq!(get(&v, "16B SP/SC 2-core bulk 32").value, 46.59);
    }

    #[test]
    fn ring_ours_as_printed_and_same_names() {
        let v = ring(RING_OURS, false);
        let d = ring(RING_DPDK, true);
        assert_eq!(get(&v, "ptr SP/SC burst 32").value, 4.43);
        assert_eq!(get(&v, "ptr MP/MC 2-core bulk 8").value, 2008.65);
        let mut a: Vec<_> = v.iter().map(|s| s.case.clone()).collect();
        let mut b: Vec<_> = d.iter().map(|s| s.case.clone()).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }

    #[test]
    fn ring_nothing_in_garbage() {
        assert!(ring("EAL: error\nlegacy APIs: SP/SC: single: 3\n", true).is_empty());
        assert!(ring("", false).is_empty());
    }

    #[test]
    fn mempool_sections_and_scale() {
        let v = mempool(MP_DPDK, 0.004);
        assert_eq!(v.len(), 12 + 5 + 6 + 3, "{v:?}");
        let (c, r) = &v[0];
        assert_eq!(c.name(), "nocache 1c keep 32 get 1 put 1");
        assert!((r - 275251.0 / 0.004).abs() < 1e-3);
        assert!(v[1].0.constant);
        assert_eq!(v[12].0.section, "default");
        let cache = v.iter().find(|(c, _)| c.section == "cache").unwrap();
        assert_eq!(cache.0.name(), "cache 1c keep 32 get 1 put 1");
        assert_eq!(v.last().unwrap().0.section, "user");
        assert!(v[0].0.in_subset());
        assert!(!v[4].0.in_subset(), "keep 512 is outside the subset");
        assert!(
            !v[12].0.in_subset(),
            "the default section is outside the subset"
        );
    }

    #[test]
    fn mempool_ours_same_layout() {
        let v = mempool(MP_OURS, 1.0);
        assert_eq!(v.len(), 12 + 5 + 6 + 3);
        assert_eq!(v[0].1, 52428800.0);
        assert_eq!(v[13].0.name(), "default 1c keep 32 get 1 put 1 const");
        assert!(mempool("mempool_autotest cache=0 cores=1\n", 1.0).is_empty());
    }

    #[test]
    fn testpmd_window_rate() {
        let d = testpmd_rate(TPMD_DPDK, "Rx-pps").unwrap();
        assert_eq!(d, 28615132.0 + 28614891.0);
        let o = testpmd_rate(TPMD_OURS, "Rx-pps").unwrap();
        assert_eq!(o, 32176435.0 + 32175842.0);
        assert_eq!(
            testpmd_rate(TPMD_OURS, "Tx-pps").unwrap(),
            32176435.0 + 32175826.0
        );
        // Only one show: no window, no rate.
        let one = "NIC statistics for port 0\n  Rx-pps: 5 Rx-bps: 0\n";
        assert_eq!(testpmd_rate(one, "Rx-pps"), None);
        assert_eq!(testpmd_rate("EAL: cannot reserve memory\n", "Rx-pps"), None);
    }

    #[test]
    fn pmd_perf_final_line() {
        assert_eq!(pmd_perf(PMD_PERF), Some(76.150e6));
        assert_eq!(pmd_perf("rx-pps: 5\n"), None);
    }

    #[test]
    fn nvme_perf_and_fio() {
        let r = nvme_perf(NVME_PERF).unwrap();
        assert_eq!(r.iops, 247857.46);
        assert_eq!(r.lat_us, 4.01);
        assert_eq!(r.cpu_us, Some(1.33));
        assert_eq!(nvme_perf("no total here"), None);
        let f = fio_json(FIO).unwrap();
        assert!((f.iops - 316783.216783).abs() < 1e-6);
        assert!((f.lat_us - 2.832737805).abs() < 1e-9);
        // (13 + 41)% of 1000 ms over 317100 I/Os.
        assert!((f.cpu_us.unwrap() - 0.54 * 1e6 / 317100.0).abs() < 1e-9);
        assert_eq!(fio_json("fio: error"), None);
    }

    #[test]
    fn bdevperf_total_line() {
        let r = bdevperf(include_str!("../samples/bdevperf_ours.txt")).unwrap();
        assert_eq!((r.iops, r.lat_us), (99954.88, 639.33));
        let r = bdevperf(include_str!("../samples/bdevperf_spdk.txt")).unwrap();
        assert_eq!(r.iops, 113545.57);
        assert_eq!(bdevperf("Running I/O for 1 seconds...\n"), None);
    }
}
