//! `ring`: DPDK's `ring_perf_autotest` (dpdk-test) against our `ring_perf`, both on
//! lcores 0-1, in cycles per element (see [`crate::parse::ring`] for the units).

use std::process::Command;
use std::time::Duration;

use crate::error::Result;
use crate::harness::{self, HugePages, Job};
use crate::parse;
use crate::table::{Better, Side, Table};
use crate::Ctx;

pub struct Opts {
    full: bool,
}

impl Opts {
    pub fn parse(args: &[String]) -> Result<Opts> {
        let mut o = Opts { full: false };
        for a in args {
            match a.as_str() {
                "--full" => o.full = true,
                _ => return Err(crate::args::unknown_arg(Some("ring"), a)),
            }
        }
        Ok(o)
    }
}

/// DPDK's `dpdk-test` on lcores 0-1 with 256 MiB under the file prefix `prefix` (the
/// autotest to run is typed on its stdin).
pub fn dpdk_test(prefix: &str) -> Command {
    let mut cmd = Command::new("dpdk-test");
    cmd.args([
        "--no-pci",
        "-l",
        "0-1",
        "-m",
        "256",
        "--file-prefix",
        prefix,
    ]);
    cmd
}

/// dpdk-test's memory (-m 256) in 2 MiB pages.
const DPDK_PAGES: u64 = 128;
/// ring_perf's (64 MiB).
const OURS_PAGES: u64 = 32;

pub fn run(ctx: &mut Ctx, o: &Opts) -> Result<Table> {
    let peer = harness::dpdk_need()?;
    ctx.build(&["ring_perf"])?;
    let mut hp = HugePages::reserve(DPDK_PAGES + 16, ctx.common.keep_hugepages)?;
    let mut t = ctx.table(
        format!("ring: {peer} ring_perf_autotest vs ring_perf, lcores 0-1, cycles per element (empty deq: per call)"),
        peer.clone(),
    );
    for round in 0..ctx.common.repeat {
        for side in harness::round_order(&ctx.sides(), round) {
            say_round(ctx, round, side, &peer);
            let samples = match side {
                Side::Peer => {
                    let who = "DPDK dpdk-test ring_perf_autotest";
                    hp.ensure_free(DPDK_PAGES, who)?;
                    let prefix = hp.prefix("d");
                    let cmd = dpdk_test(&prefix);
                    let out = harness::run(Job {
                        side: who,
                        cmd,
                        feed: vec![(Duration::ZERO, "ring_perf_autotest".into())],
                        interrupt: None,
                        timeout: Duration::from_secs(900),
                        file: ctx.out("ring", side, round),
                    });
                    hp.clean_leftovers();
                    let out = out?;
                    let s = parse::ring(&out.stdout, true);
                    if s.is_empty() || !out.stdout.contains("Test OK") {
                        return Err(out.fail(who, "printed no complete ring_perf_autotest result"));
                    }
                    s
                }
                Side::Ours | Side::Base => {
                    let who = format!("{} ring_perf", ctx.label(side));
                    hp.ensure_free(OURS_PAGES, &who)?;
                    let mut cmd = Command::new(ctx.bin(side, "ring_perf"));
                    if o.full {
                        cmd.arg("--full");
                    }
                    let out = harness::run(Job::new(
                        &who,
                        cmd,
                        Duration::from_secs(900),
                        ctx.out("ring", side, round),
                    ))?;
                    let s = parse::ring(&out.stdout, false);
                    if s.is_empty() {
                        return Err(out.fail(&who, "printed no ring_perf result"));
                    }
                    s
                }
            };
            for s in samples {
                t.record(round, side, &s.case, "cycles", Better::Lower, s.value);
            }
        }
    }
    Ok(t)
}

/// The progress line `round R/N: SIDE` before a side runs.
pub fn say_round(ctx: &Ctx, round: usize, side: Side, peer: &str) {
    harness::say(format!(
        "round {}/{}: {}",
        round + 1,
        ctx.common.repeat,
        side_name(ctx, side, peer)
    ));
}

/// "DPDK 22.11.x", "ours", "ours@REV" for progress lines.
pub fn side_name(ctx: &Ctx, side: Side, peer: &str) -> String {
    match side {
        Side::Peer => peer.to_string(),
        s => ctx.label(s),
    }
}
