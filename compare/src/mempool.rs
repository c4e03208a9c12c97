//! `mempool`: DPDK's `mempool_perf_autotest` (dpdk-test) against our `mempool_perf
//! --full` (the same 720 cases in the same order), both on lcores 0-1, in millions of
//! objects per second.
//!
//! DPDK's test gives every case a fixed 5 s and cannot be told to run fewer cases (one
//! run is an hour). `--time-s T` shortens every case on both sides: DPDK runs under the
//! LD_PRELOAD shim `compare/shim/tsc_scale.c`, which reports the TSC frequency as
//! hz * T / 5, so its 5 "seconds" last T; its printed rates are divided by T / 5. Both
//! sides run every case, so each case is measured at the same point of each side's run.
//! DPDK measures the two-core cases twice per run (cores=2 and cores=max on two cpus),
//! ours likewise; each run keeps the better of the two on both sides.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::error::Result;
use crate::harness::{self, HugePages, Job};
use crate::parse;
use crate::table::{Better, Side, Table};
use crate::Ctx;

pub struct Opts {
    time_s: f64,
    all: bool,
}

impl Opts {
    pub fn parse(args: &[String]) -> Result<Opts> {
        let mut o = Opts {
            time_s: 0.1,
            all: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--time-s" => o.time_s = crate::args::number_arg(&mut it, "--time-s", 0.001, 5.0)?,
                "--all" => o.all = true,
                _ => return Err(crate::args::unknown_arg(Some("mempool"), a)),
            }
        }
        Ok(o)
    }
}

/// Cases DPDK's test runs (4 pools x cores 1, 2, max x 60 bulk/keep combinations).
const CASES: f64 = 720.0;
/// Memory of each side (-m 256) in 2 MiB pages.
const PAGES: u64 = 128;

fn build_shim(ctx: &Ctx) -> Result<PathBuf> {
    harness::apt_need(&["cc"], &["gcc", "libc6-dev"])?;
    let src = harness::repo_root().join("compare/shim/tsc_scale.c");
    let so = ctx.work().join("tsc_scale.so");
    harness::sh(
        "build the TSC-scaling shim (cc)",
        Command::new("cc")
            .args(["-O2", "-shared", "-fPIC", "-o"])
            .arg(&so)
            .arg(&src)
            .arg("-ldl"),
    )?;
    Ok(so)
}

pub fn run(ctx: &mut Ctx, o: &Opts) -> Result<Table> {
    let peer = harness::dpdk_need()?;
    ctx.build(&["mempool_perf"])?;
    let scale = o.time_s / 5.0;
    let shim = if scale < 1.0 {
        Some(build_shim(ctx)?)
    } else {
        None
    };
    let mut hp = HugePages::reserve(PAGES + 16, ctx.common.keep_hugepages)?;
    let timeout = Duration::from_secs_f64(CASES * o.time_s * 3.0 + 120.0);
    harness::say(format!(
        "{} cases x {} s per side and round: about {:.0} s per round for {} sides",
        CASES,
        o.time_s,
        CASES * o.time_s * ctx.sides().len() as f64,
        ctx.sides().len()
    ));
    let mut t = ctx.table(
        format!(
            "mempool: {peer} mempool_perf_autotest vs mempool_perf --full, lcores 0-1, {} s per case, M objects/s",
            o.time_s
        ),
        peer.clone(),
    );
    for round in 0..ctx.common.repeat {
        for side in harness::round_order(&ctx.sides(), round) {
            crate::ring::say_round(ctx, round, side, &peer);
            let (who, out, s) = match side {
                Side::Peer => {
                    let who = "DPDK dpdk-test mempool_perf_autotest".to_string();
                    hp.ensure_free(PAGES, &who)?;
                    let prefix = hp.prefix("d");
                    let mut cmd = crate::ring::dpdk_test(&prefix);
                    if let Some(so) = &shim {
                        cmd.env("LD_PRELOAD", so)
                            .env("FP_TSC_SCALE", format!("{scale}"));
                    }
                    let out = harness::run(Job {
                        side: &who,
                        cmd,
                        feed: vec![(Duration::ZERO, "mempool_perf_autotest".into())],
                        interrupt: None,
                        timeout,
                        file: ctx.out("mempool", side, round),
                    });
                    hp.clean_leftovers();
                    let out = out?;
                    if !out.stdout.contains("Test OK") {
                        return Err(
                            out.fail(&who, "did not finish mempool_perf_autotest (no 'Test OK')")
                        );
                    }
                    let s = parse::mempool(&out.stdout, scale);
                    (who, out, s)
                }
                Side::Ours | Side::Base => {
                    let who = format!("{} mempool_perf", ctx.label(side));
                    hp.ensure_free(PAGES, &who)?;
                    let prefix = hp.prefix(if side == Side::Ours { "o" } else { "b" });
                    let mut cmd = Command::new(ctx.bin(side, "mempool_perf"));
                    cmd.args([
                        "-l",
                        "0-1",
                        "-m",
                        "256",
                        "--file-prefix",
                        &prefix,
                        "--",
                        "--time-s",
                    ])
                    .arg(format!("{}", o.time_s))
                    .arg("--full");
                    let out = harness::run(Job::new(
                        &who,
                        cmd,
                        timeout,
                        ctx.out("mempool", side, round),
                    ));
                    hp.clean_leftovers();
                    let out = out?;
                    let s = parse::mempool(&out.stdout, 1.0);
                    (who, out, s)
                }
            };
            if s.is_empty() {
                return Err(out.fail(&who, "printed no mempool_autotest rate"));
            }
            for (c, rate) in s {
                if o.all || c.in_subset() {
                    t.record(round, side, &c.name(), "Mobj/s", Better::Higher, rate / 1e6);
                }
            }
        }
    }
    Ok(t)
}
