//! The ratio table: every subcommand records its samples here (case, side, round,
//! value) and prints the same table and summary.
//!
//! A ratio is always oriented so that **above 1 means ours is ahead**: for a rate
//! (higher is better) it is ours / other, for a cost such as cycles or latency (lower is
//! better) it is other / ours. A case's ratio is the geometric mean of its per-run
//! ratios, run N of ours against run N of the other side (the two ran back to back in
//! the same round); the spread is the lowest and highest per-run ratio and "ahead"
//! counts the runs in which ours was ahead. The value columns are each side's median
//! over the runs. A case is *clearly behind* when its ratio is below [`BEHIND`] and ours
//! was behind in every run.

use std::fmt::Write as _;

/// A case whose ratio is below this, and behind in every run, counts as clearly behind.
pub const BEHIND: f64 = 0.95;

/// Which way a case's values improve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// Rates: packets, objects or I/Os per second.
    Higher,
    /// Costs: cycles per element, microseconds per I/O.
    Lower,
}

/// The sides of a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// DPDK, SPDK or the kernel: the program we compare against.
    Peer,
    /// Our apps built from the working tree.
    Ours,
    /// Our apps built at `--baseline REV`.
    Base,
}

impl Side {
    fn idx(self) -> usize {
        match self {
            Side::Peer => 0,
            Side::Ours => 1,
            Side::Base => 2,
        }
    }
}

/// One case: its samples per side, one slot per run.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub unit: &'static str,
    pub better: Better,
    vals: [Vec<Option<f64>>; 3],
}

/// A case's ratio over the runs against one other side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ratio {
    /// Geometric mean of the per-run ratios.
    pub geo: f64,
    pub min: f64,
    pub max: f64,
    /// Runs in which ours was ahead (per-run ratio above 1).
    pub ahead: usize,
    /// Runs in which both sides gave a value.
    pub runs: usize,
}

impl Ratio {
    /// Below [`BEHIND`] and behind in every run.
    pub fn clearly_behind(&self) -> bool {
        self.geo < BEHIND && self.ahead == 0
    }
}

/// A row of the table, computed from a [`Case`].
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub unit: &'static str,
    pub peer: Option<f64>,
    pub ours: Option<f64>,
    pub base: Option<f64>,
    pub vs_peer: Option<Ratio>,
    pub vs_base: Option<Ratio>,
}

/// The summary line's numbers, against the peer or against the baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Cases with a ratio.
    pub cases: usize,
    /// Geometric mean of the cases' ratios.
    pub geo: Option<f64>,
    /// Names of the cases clearly behind.
    pub behind: Vec<String>,
}

/// All the cases of one comparison, in first-recorded order.
#[derive(Clone, Debug)]
pub struct Table {
    pub title: String,
    pub peer: String,
    /// The baseline side's label (`ours@REV`), if there is one.
    pub base: Option<String>,
    pub cases: Vec<Case>,
    runs: usize,
}

/// Median of the values (the mean of the middle two for an even count).
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

/// Geometric mean of positive values; `None` for none or any non-positive one.
pub fn geomean(v: &[f64]) -> Option<f64> {
    if v.is_empty() || v.iter().any(|&x| x <= 0.0 || !x.is_finite()) {
        return None;
    }
    Some((v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
}

/// Ours against `other` for one run, above 1 when ours is ahead.
pub fn speedup(better: Better, ours: f64, other: f64) -> Option<f64> {
    if !(ours > 0.0 && other > 0.0) {
        return None;
    }
    Some(match better {
        Better::Higher => ours / other,
        Better::Lower => other / ours,
    })
}

/// The ratio over runs paired by index (runs where either side has no value are left out).
pub fn paired(better: Better, ours: &[Option<f64>], other: &[Option<f64>]) -> Option<Ratio> {
    let r: Vec<f64> = ours
        .iter()
        .zip(other)
        .filter_map(|(o, t)| speedup(better, (*o)?, (*t)?))
        .collect();
    let geo = geomean(&r)?;
    Some(Ratio {
        geo,
        min: r.iter().copied().fold(f64::INFINITY, f64::min),
        max: r.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        ahead: r.iter().filter(|&&x| x > 1.0).count(),
        runs: r.len(),
    })
}

/// Summary over the rows' ratios picked by `f`.
pub fn summarize<'a>(rows: impl Iterator<Item = (&'a str, Option<Ratio>)>) -> Summary {
    let mut gs = Vec::new();
    let mut behind = Vec::new();
    for (name, r) in rows {
        if let Some(r) = r {
            gs.push(r.geo);
            if r.clearly_behind() {
                behind.push(name.to_string());
            }
        }
    }
    Summary {
        cases: gs.len(),
        geo: geomean(&gs),
        behind,
    }
}

/// Numbers in three or four significant digits.
fn num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.abs() >= 1000.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 100.0 => format!("{v:.1}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.3}"),
    }
}

fn ratio_cells(r: Option<Ratio>) -> [String; 3] {
    match r {
        None => ["-".into(), "-".into(), "-".into()],
        Some(r) => [
            format!("{:.2}", r.geo),
            format!("{:.2}-{:.2}", r.min, r.max),
            format!("{}/{}", r.ahead, r.runs),
        ],
    }
}

impl Table {
    pub fn new(title: impl Into<String>, peer: impl Into<String>, base: Option<String>) -> Table {
        Table {
            title: title.into(),
            peer: peer.into(),
            base,
            cases: Vec::new(),
            runs: 0,
        }
    }

    /// Record one value of `name` from `side` in run `run` (0-based). A second value of the
    /// same case, side and run keeps the better of the two (DPDK's mempool test measures
    /// some cases twice per run: cores=2 and cores=max on a two-cpu machine).
    pub fn record(
        &mut self,
        run: usize,
        side: Side,
        name: &str,
        unit: &'static str,
        better: Better,
        value: f64,
    ) {
        self.runs = self.runs.max(run + 1);
        let i = match self.cases.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.cases.push(Case {
                    name: name.to_string(),
                    unit,
                    better,
                    vals: Default::default(),
                });
                self.cases.len() - 1
            }
        };
        let slot = &mut self.cases[i].vals[side.idx()];
        if slot.len() <= run {
            slot.resize(run + 1, None);
        }
        let v = &mut slot[run];
        *v = Some(match (*v, better) {
            (None, _) => value,
            (Some(old), Better::Higher) => old.max(value),
            (Some(old), Better::Lower) => old.min(value),
        });
    }

    /// Number of runs recorded.
    pub fn runs(&self) -> usize {
        self.runs
    }

    pub fn rows(&self) -> Vec<Row> {
        let med = |v: &[Option<f64>]| median(&v.iter().flatten().copied().collect::<Vec<_>>());
        self.cases
            .iter()
            .map(|c| {
                let [p, o, b] = &c.vals;
                Row {
                    name: c.name.clone(),
                    unit: c.unit,
                    peer: med(p),
                    ours: med(o),
                    base: med(b),
                    vs_peer: paired(c.better, o, p),
                    vs_base: paired(c.better, o, b),
                }
            })
            .collect()
    }

    /// Summary against the peer and, with a baseline, against it.
    pub fn summaries(&self) -> (Summary, Option<Summary>) {
        let rows = self.rows();
        let peer = summarize(rows.iter().map(|r| (r.name.as_str(), r.vs_peer)));
        let base = self
            .base
            .as_ref()
            .map(|_| summarize(rows.iter().map(|r| (r.name.as_str(), r.vs_base))));
        (peer, base)
    }

    fn header(&self) -> Vec<String> {
        let peer = self.peer.split_whitespace().next().unwrap_or("peer");
        let mut h: Vec<String> = ["case", "unit", peer, "ours", "ratio", "spread", "ahead"]
            .map(String::from)
            .to_vec();
        if self.base.is_some() {
            h.extend(["base", "ours/base", "spread", "ahead"].map(String::from));
        }
        h
    }

    fn cells(&self) -> Vec<Vec<String>> {
        self.rows()
            .into_iter()
            .map(|r| {
                let mut v = vec![r.name, r.unit.to_string(), num(r.peer), num(r.ours)];
                v.extend(ratio_cells(r.vs_peer));
                if self.base.is_some() {
                    v.push(num(r.base));
                    v.extend(ratio_cells(r.vs_base));
                }
                v
            })
            .collect()
    }

    fn summary_lines(&self) -> Vec<String> {
        let (p, b) = self.summaries();
        let line = |who: &str, s: &Summary| {
            let g = s.geo.map_or("-".to_string(), |g| format!("{g:.2}"));
            let mut l = format!(
                "ours vs {who}: {} cases, geometric mean ratio {g}, {} clearly behind",
                s.cases,
                s.behind.len()
            );
            // Name them, up to a dozen.
            if !s.behind.is_empty() {
                let more = s.behind.len().saturating_sub(12);
                let _ = write!(l, " ({}", s.behind[..s.behind.len() - more].join("; "));
                if more > 0 {
                    let _ = write!(l, "; {more} more");
                }
                l.push(')');
            }
            l
        };
        let mut v = vec![line(&self.peer, &p)];
        if let (Some(name), Some(b)) = (&self.base, b) {
            v.push(line(name, &b));
        }
        v
    }

    fn legend(&self) -> String {
        format!(
            "{} run(s), sides alternating in each round; values: median of the runs; ratio > 1: ours ahead \
             (rates: ours/other, costs: other/ours), geometric mean of the per-run ratios; spread: lowest-highest \
             per-run ratio; ahead: runs in which ours was ahead; clearly behind: ratio < {BEHIND} and behind in every run",
            self.runs
        )
    }

    /// The title, with the baseline named.
    fn title_line(&self) -> String {
        match &self.base {
            Some(b) => format!("{} (base = {b})", self.title),
            None => self.title.clone(),
        }
    }

    /// The plain-text table with its legend and summary.
    pub fn render_text(&self) -> String {
        let head = self.header();
        let body = self.cells();
        let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
        for row in &body {
            for (i, c) in row.iter().enumerate() {
                w[i] = w[i].max(c.len());
            }
        }
        let fmt_row = |row: &[String]| {
            let mut s = String::new();
            for (i, c) in row.iter().enumerate() {
                if i == 0 {
                    let _ = write!(s, "{c:<width$}", width = w[0]);
                } else if i == 1 {
                    let _ = write!(s, "  {c:<width$}", width = w[1]);
                } else {
                    let _ = write!(s, "  {c:>width$}", width = w[i]);
                }
            }
            s.trim_end().to_string()
        };
        let mut out = format!("{}\n", self.title_line());
        out += &fmt_row(&head);
        out.push('\n');
        out += &"-".repeat(w.iter().sum::<usize>() + 2 * (w.len() - 1));
        out.push('\n');
        for row in &body {
            out += &fmt_row(row);
            out.push('\n');
        }
        out.push('\n');
        for l in self.summary_lines() {
            out += &l;
            out.push('\n');
        }
        out += &self.legend();
        out.push('\n');
        out
    }

    /// The same table as Markdown, for the README.
    pub fn render_markdown(&self) -> String {
        let head = self.header();
        let mut out = format!("**{}**\n\n| {} |\n|", self.title_line(), head.join(" | "));
        for i in 0..head.len() {
            out += if i < 2 { ":---|" } else { "---:|" };
        }
        out.push('\n');
        for row in self.cells() {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out.push('\n');
        for l in self.summary_lines() {
            let _ = writeln!(out, "{l}  ");
        }
        out.push('\n');
        out += &self.legend();
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn geomean_values_and_rejects() {
        assert!(close(geomean(&[2.0, 8.0]).unwrap(), 4.0));
        assert!(close(geomean(&[0.5, 2.0]).unwrap(), 1.0));
        assert_eq!(geomean(&[]), None);
        assert_eq!(geomean(&[1.0, 0.0]), None);
        assert_eq!(geomean(&[1.0, -2.0]), None);
        assert_eq!(geomean(&[f64::NAN]), None);
    }

    #[test]
    fn speedup_orientation() {
        // Rates: ours/other.
        assert!(close(speedup(Better::Higher, 30.0, 20.0).unwrap(), 1.5));
        // Costs: other/ours (fewer cycles is ahead).
        assert!(close(speedup(Better::Lower, 10.0, 20.0).unwrap(), 2.0));
        assert_eq!(speedup(Better::Higher, 0.0, 20.0), None);
        assert_eq!(speedup(Better::Lower, 10.0, 0.0), None);
    }

    #[test]
    fn paired_runs_spread_and_ahead() {
        let ours = [Some(10.0), Some(12.0), None, Some(8.0)];
        let peer = [Some(10.0), Some(6.0), Some(5.0), Some(16.0)];
        let r = paired(Better::Higher, &ours, &peer).unwrap();
        assert_eq!(r.runs, 3);
        assert_eq!(r.ahead, 1);
        assert!(close(r.min, 0.5));
        assert!(close(r.max, 2.0));
        assert!(close(r.geo, 1.0)); // (1 * 2 * 0.5)^(1/3)
        assert!(paired(Better::Higher, &[None], &[Some(1.0)]).is_none());
    }

    #[test]
    fn record_keeps_better_duplicate_and_medians() {
        let mut t = Table::new("t", "DPDK", None);
        t.record(0, Side::Peer, "a", "M/s", Better::Higher, 5.0);
        t.record(0, Side::Peer, "a", "M/s", Better::Higher, 7.0);
        t.record(0, Side::Ours, "a", "M/s", Better::Higher, 7.0);
        t.record(0, Side::Peer, "c", "cyc", Better::Lower, 9.0);
        t.record(0, Side::Peer, "c", "cyc", Better::Lower, 4.0);
        t.record(0, Side::Ours, "c", "cyc", Better::Lower, 8.0);
        let rows = t.rows();
        assert_eq!(rows[0].peer, Some(7.0));
        assert!(close(rows[0].vs_peer.unwrap().geo, 1.0));
        assert_eq!(rows[1].peer, Some(4.0));
        assert!(close(rows[1].vs_peer.unwrap().geo, 0.5));
        assert_eq!(t.runs(), 1);
    }

    #[test]
    fn summary_counts_clearly_behind_only_when_behind_every_run() {
        let mut t = Table::new("t", "DPDK", Some("ours@v0".into()));
        // "slow": behind in both runs, ratio 0.5.
        for run in 0..2 {
            t.record(run, Side::Peer, "slow", "x", Better::Higher, 10.0);
            t.record(run, Side::Ours, "slow", "x", Better::Higher, 5.0);
            t.record(run, Side::Base, "slow", "x", Better::Higher, 5.0);
        }
        // "mixed": 0.5 then 1.2: geomean below 0.95 but ahead once, so not clearly behind.
        t.record(0, Side::Peer, "mixed", "x", Better::Higher, 10.0);
        t.record(0, Side::Ours, "mixed", "x", Better::Higher, 5.0);
        t.record(1, Side::Peer, "mixed", "x", Better::Higher, 10.0);
        t.record(1, Side::Ours, "mixed", "x", Better::Higher, 12.0);
        // "fast": 2.0 in both.
        for run in 0..2 {
            t.record(run, Side::Peer, "fast", "x", Better::Higher, 10.0);
            t.record(run, Side::Ours, "fast", "x", Better::Higher, 20.0);
        }
        let (p, b) = t.summaries();
        assert_eq!(p.cases, 3);
        assert_eq!(p.behind, vec!["slow".to_string()]);
        let g = (0.5f64 * (0.5f64 * 1.2).sqrt() * 2.0).powf(1.0 / 3.0);
        assert!(close(p.geo.unwrap(), g));
        let b = b.unwrap();
        assert_eq!(b.cases, 1);
        assert!(close(b.geo.unwrap(), 1.0));
        assert!(b.behind.is_empty());
    }

    #[test]
    fn renders_text_and_markdown() {
        let mut t = Table::new("ring", "DPDK", Some("ours@v0".into()));
        t.record(0, Side::Peer, "SP/SC single", "cycles", Better::Lower, 15.0);
        t.record(0, Side::Ours, "SP/SC single", "cycles", Better::Lower, 10.0);
        t.record(0, Side::Base, "SP/SC single", "cycles", Better::Lower, 10.0);
        let s = t.render_text();
        assert!(s.contains("SP/SC single  cycles"), "{s}");
        assert!(s.contains("1.50"), "{s}");
        assert!(s.contains("1.50-1.50"), "{s}");
        assert!(s.contains("1/1"), "{s}");
        assert!(s.contains("ours/base"), "{s}");
        assert!(s.contains("(base = ours@v0)"), "{s}");
        assert!(s.contains("ours vs DPDK: 1 cases, geometric mean ratio 1.50, 0 clearly behind"));
        assert!(s.contains("ours vs ours@v0: 1 cases, geometric mean ratio 1.00"));
        let m = t.render_markdown();
        assert!(m.contains("| case | unit | DPDK | ours | ratio |"), "{m}");
        assert!(
            m.contains("| SP/SC single | cycles | 15.00 | 10.00 | 1.50 |"),
            "{m}"
        );
    }
}
