//! Per-target I/O statistics and the latency histogram.

use std::time::Duration;

/// Log-linear latency histogram in nanoseconds: 16 sub-buckets per power of two.
#[derive(Clone)]
pub struct Hist {
    pub b: Vec<u64>,
}

impl Hist {
    pub fn new() -> Hist {
        Hist {
            b: vec![0; 64 * 16],
        }
    }
    pub fn idx(v: u64) -> usize {
        if v < 16 {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros() as u64;
        ((msb - 3) * 16 + ((v >> (msb - 4)) & 15)) as usize
    }
    pub fn low(i: usize) -> u64 {
        if i < 16 {
            return i as u64;
        }
        let msb = (i / 16) as u64 + 3;
        (16 | (i as u64 % 16)) << (msb - 4)
    }
    pub fn add(&mut self, v: u64) {
        let i = Self::idx(v).min(self.b.len() - 1);
        self.b[i] += 1;
    }
    pub fn percentile(&self, p: f64) -> u64 {
        let total: u64 = self.b.iter().sum();
        let want = ((total as f64) * p / 100.0).ceil() as u64;
        let mut c = 0;
        for (i, n) in self.b.iter().enumerate() {
            c += n;
            if c >= want.max(1) {
                return Self::low(i + 1);
            }
        }
        0
    }
}

#[derive(Clone)]
pub struct Stats {
    pub name: String,
    pub core: u32,
    pub ios: u64,
    pub bytes: u64,
    pub lat_sum: u64,
    pub lat_min: u64,
    pub lat_max: u64,
    pub hist: Hist,
    pub elapsed_tsc: u64,
    pub cpu: Duration,
    pub cpu_user: Duration,
    pub error: Option<String>,
    pub gone: bool,
    /// Fill the histogram (`-L`; as SPDK's perf, which tallies only when asked: the
    /// nanosecond conversion is a 128-bit division per I/O).
    pub hist_on: bool,
}

impl Stats {
    pub fn new(name: String, core: u32) -> Stats {
        Stats {
            name,
            core,
            ios: 0,
            bytes: 0,
            lat_sum: 0,
            lat_min: u64::MAX,
            lat_max: 0,
            hist: Hist::new(),
            elapsed_tsc: 0,
            cpu: Duration::ZERO,
            cpu_user: Duration::ZERO,
            error: None,
            gone: false,
            hist_on: true,
        }
    }
    pub fn reset(&mut self) {
        let (n, c, h) = (std::mem::take(&mut self.name), self.core, self.hist_on);
        *self = Stats::new(n, c);
        self.hist_on = h;
    }
    pub fn record(&mut self, lat_tsc: u64, bytes: usize) {
        self.ios += 1;
        self.bytes += bytes as u64;
        self.lat_sum += lat_tsc;
        self.lat_min = self.lat_min.min(lat_tsc);
        self.lat_max = self.lat_max.max(lat_tsc);
        if self.hist_on {
            self.hist.add(eal::timer::cycles_to_ns(lat_tsc));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_ordered() {
        let mut h = Hist::new();
        for v in [1u64, 15, 16, 17, 100, 1000, 10_000, 123_456, 10_000_000] {
            let i = Hist::idx(v);
            assert!(
                Hist::low(i) <= v && v < Hist::low(i + 1),
                "{v}: [{}, {})",
                Hist::low(i),
                Hist::low(i + 1)
            );
            h.add(v);
        }
        assert!(h.percentile(50.0) >= 100 && h.percentile(50.0) <= 1100);
        assert!(h.percentile(100.0) >= 10_000_000);
    }
}
