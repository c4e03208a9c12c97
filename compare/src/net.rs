//! `pmd` and `testpmd`: DPDK's `dpdk-testpmd` against our `pmd_perf` (`pmd`) or our
//! `testpmd` (`testpmd`), with the same `--vdev` ports, in Mpps.
//!
//! Both testpmds are driven the same way, interactively, fed on stdin:
//! `start` (or `start tx_first`); 1 s later `show port stats all`; S s later
//! `show port stats all`; `stop`; `quit`. The rate is the second show's "Throughput
//! (since last show)", i.e. over S seconds of steady forwarding, as each program
//! computes it; for forwarding the sum of the ports' Rx-pps. `pmd_perf` reports its own
//! average over `--seconds S`.
//!
//! Scenarios (`--only`):
//! - `null`: io forwarding between two net_null ports, one forwarding core.
//! - `ring`: io forwarding between net_ring0 and net_ring1, primed with one TX burst per
//!   port (`tx_first`), so packets circulate.
//! - `afpacket`: net_af_packet over a veth pair in a network namespace the tool makes
//!   and deletes. `pmd`: io forwarding between the two ends, primed with `tx_first`.
//!   `testpmd`: txonly on one end and rxonly on the other, two processes (forwarding
//!   lcores 1 and 0) fed the same schedule; cases: the txonly side's Tx-pps and the rxonly
//!   side's Rx-pps (delivered); then io forwarding between the two ends in one process,
//!   primed with `tx_first`.
//! - `afxdp`: the same with net_af_xdp on both ends (native XDP on veth; DPDK's driver
//!   from Debian's build, ours in pure Rust).
//!
//! Every process gets `-m 256` of hugepages (DPDK's defaults file paths) and, for the
//! testpmds, `--total-num-mbufs=16384`, so two fit in 512 hugepages. Free hugepages are
//! checked before each run, and DPDK's leftover hugepage files are removed after it.

use std::process::Command;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::harness::{self, HugePages, Job, Netns, Output};
use crate::parse;
use crate::table::{Better, Side, Table};
use crate::Ctx;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ours is `pmd_perf`.
    PmdPerf,
    /// Ours is `testpmd`.
    Testpmd,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    Null,
    Ring,
    AfPacket,
    AfXdp,
}

impl Scenario {
    /// The kernel-backed port kinds, on the tool's veth pair.
    fn on_veth(self) -> bool {
        matches!(self, Scenario::AfPacket | Scenario::AfXdp)
    }

    /// The vdev driver of a kernel-backed scenario.
    fn driver(self) -> &'static str {
        match self {
            Scenario::AfXdp => "net_af_xdp",
            _ => "net_af_packet",
        }
    }
}

pub struct Opts {
    kind: Kind,
    seconds: u64,
    only: Vec<Scenario>,
}

impl Opts {
    pub fn parse(args: &[String], kind: Kind) -> Result<Opts> {
        let mut o = Opts {
            kind,
            seconds: 5,
            only: vec![
                Scenario::Null,
                Scenario::Ring,
                Scenario::AfPacket,
                Scenario::AfXdp,
            ],
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--seconds" => o.seconds = crate::args::number_arg(&mut it, "--seconds", 1, 3600)?,
                "--only" => {
                    let v = crate::args::value(&mut it, "--only")?;
                    o.only = v
                        .split(',')
                        .map(|s| match s {
                            "null" => Ok(Scenario::Null),
                            "ring" => Ok(Scenario::Ring),
                            "afpacket" => Ok(Scenario::AfPacket),
                            "afxdp" => Ok(Scenario::AfXdp),
                            _ => Err(Error::Usage(format!(
                                "invalid value '{s}' for --only: null, ring, afpacket or afxdp"
                            ))),
                        })
                        .collect::<Result<_>>()?;
                }
                _ => return Err(crate::args::unknown_arg(None, a)),
            }
        }
        Ok(o)
    }
}

/// Each process's memory (-m 256) in 2 MiB pages.
const PAGES: u64 = 128;
const IF0: &str = "fpc0";
const IF1: &str = "fpc1";

/// The command schedule of an interactive testpmd.
fn feed(secs: u64, tx_first: bool) -> Vec<(Duration, String)> {
    let start = if tx_first { "start tx_first" } else { "start" };
    vec![
        (Duration::from_secs(2), start.into()),
        (Duration::from_secs(1), "show port stats all".into()),
        (Duration::from_secs(secs), "show port stats all".into()),
        (Duration::ZERO, "stop".into()),
        (Duration::from_millis(500), "quit".into()),
    ]
}

struct Tpmd<'a> {
    who: String,
    bin: std::path::PathBuf,
    netns: Option<&'a str>,
    main_lcore: u32,
    vdevs: Vec<String>,
    mode: &'static str,
    tx_first: bool,
    prefix: String,
    file: std::path::PathBuf,
}

/// One interactive testpmd run (DPDK's or ours, same arguments).
fn testpmd(t: Tpmd<'_>, secs: u64) -> Result<Output> {
    let mut cmd = in_netns(t.netns, &t.bin);
    cmd.args(["-l", "0-1", "--main-lcore", &t.main_lcore.to_string()])
        .args(["-m", "256", "--no-pci", "--file-prefix", &t.prefix]);
    for v in &t.vdevs {
        cmd.arg(format!("--vdev={v}"));
    }
    cmd.args(["--", "-i", &format!("--forward-mode={}", t.mode)])
        .args(["--nb-cores=1", "--total-num-mbufs=16384"]);
    harness::run(Job {
        side: &t.who,
        cmd,
        feed: feed(secs, t.tx_first),
        interrupt: None,
        timeout: Duration::from_secs(secs + 60),
        file: t.file,
    })
}

/// `bin`, run in network namespace `ns` if given.
fn in_netns(ns: Option<&str>, bin: &std::path::Path) -> Command {
    match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

fn rate(out: &Output, who: &str, key: &str) -> Result<f64> {
    let r = parse::testpmd_rate(&out.stdout, key).ok_or_else(|| {
        out.fail(
            who,
            format!("printed no {key} of two 'show port stats all'"),
        )
    })?;
    nonzero(r, out, who)
}

/// A side that moved no packet in the window failed (it is never a 0 in the table).
fn nonzero(pps: f64, out: &Output, who: &str) -> Result<f64> {
    if pps > 0.0 {
        Ok(pps)
    } else {
        Err(out.fail(who, "moved no packets in the measuring window (rate 0)"))
    }
}

fn vdevs(sc: Scenario) -> Vec<String> {
    match sc {
        Scenario::Null => vec!["net_null0".into(), "net_null1".into()],
        Scenario::Ring => vec!["net_ring0".into(), "net_ring1".into()],
        Scenario::AfPacket | Scenario::AfXdp => vec![
            format!("{}0,iface={IF0}", sc.driver()),
            format!("{}1,iface={IF1}", sc.driver()),
        ],
    }
}

fn scenario_name(sc: Scenario) -> &'static str {
    match sc {
        Scenario::Null => "null",
        Scenario::Ring => "ring",
        Scenario::AfPacket => "afpacket",
        Scenario::AfXdp => "afxdp",
    }
}

fn case_name(sc: Scenario) -> &'static str {
    match sc {
        Scenario::Null => "null io fwd",
        Scenario::Ring => "ring io fwd (tx_first)",
        Scenario::AfPacket => "af_packet io fwd (tx_first)",
        Scenario::AfXdp => "af_xdp io fwd (tx_first)",
    }
}

/// One side's run of one scenario: (case, packets per second) pairs.
/// Which run: scenario, side, round.
struct Step {
    sc: Scenario,
    side: Side,
    round: usize,
}

fn one(
    ctx: &Ctx,
    o: &Opts,
    hp: &mut HugePages,
    ns: Option<&str>,
    step: Step,
    peer: &str,
) -> Result<Vec<(String, f64)>> {
    let Step { sc, side, round } = step;
    let name = scenario_name(sc);
    let (prog, bin) = match (side, o.kind) {
        (Side::Peer, _) => ("dpdk-testpmd", "dpdk-testpmd".into()),
        (_, Kind::PmdPerf) => ("pmd_perf", ctx.bin(side, "pmd_perf")),
        (_, Kind::Testpmd) => ("testpmd", ctx.bin(side, "testpmd")),
    };
    let who = match side {
        Side::Peer => format!("{peer} {prog} ({name})"),
        s => format!("{} {prog} ({name})", ctx.label(s)),
    };
    let netns = if sc.on_veth() { ns } else { None };
    let file = ctx.out(name, side, round);
    let tx_first = sc != Scenario::Null;
    let res = if side != Side::Peer && o.kind == Kind::PmdPerf {
        hp.ensure_free(PAGES, &who)?;
        let prefix = hp.prefix("p");
        let mut cmd = in_netns(netns, &bin);
        cmd.args(["-m", "256", "-l", "1", "--file-prefix", &prefix]);
        for v in vdevs(sc) {
            cmd.args(["--vdev", &v]);
        }
        cmd.args(["--", "--seconds", &o.seconds.to_string()]);
        if tx_first {
            cmd.arg("--tx-first");
        }
        let out = harness::run(Job::new(
            &who,
            cmd,
            Duration::from_secs(o.seconds + 60),
            file,
        ));
        hp.clean_leftovers();
        let out = out?;
        let r = parse::pmd_perf(&out.stdout)
            .ok_or_else(|| out.fail(&who, "printed no 'pmd_perf: ... mpps=' line"))?;
        let r = nonzero(r, &out, &who)?;
        vec![(case_name(sc).to_string(), r)]
    } else if sc.on_veth() && o.kind == Kind::Testpmd {
        // txonly on IF0 -> rxonly on IF1, two processes at once.
        hp.ensure_free(2 * PAGES, &who)?;
        let mut mk = |main, iface: &str, mode, f: &str| Tpmd {
            who: format!("{who} {mode}"),
            bin: bin.clone(),
            netns,
            main_lcore: main,
            vdevs: vec![format!("{}0,iface={iface}", sc.driver())],
            mode,
            tx_first: false,
            prefix: hp.prefix("t"),
            file: ctx.out(f, side, round),
        };
        let rx = mk(1, IF1, "rxonly", &format!("{name}-rx"));
        let tx = mk(0, IF0, "txonly", &format!("{name}-tx"));
        let (rx_who, tx_who) = (rx.who.clone(), tx.who.clone());
        let secs = o.seconds;
        let (ro, to) = std::thread::scope(|s| {
            let h = s.spawn(move || testpmd(rx, secs));
            let to = testpmd(tx, secs);
            let ro = h
                .join()
                .unwrap_or_else(|_| Err(Error::Setup("the rxonly runner panicked".into())));
            (ro, to)
        });
        hp.clean_leftovers();
        let (ro, to) = (ro?, to?);
        let kind = &sc.driver()["net_".len()..];
        let mut cases = vec![
            (format!("{kind} txonly Tx"), rate(&to, &tx_who, "Tx-pps")?),
            (
                format!("{kind} rxonly Rx (delivered)"),
                rate(&ro, &rx_who, "Rx-pps")?,
            ),
        ];
        // Then io forwarding between the two ends in one process.
        hp.ensure_free(PAGES, &who)?;
        let out = testpmd(
            Tpmd {
                who: format!("{who} io"),
                bin,
                netns,
                main_lcore: 0,
                vdevs: vdevs(sc),
                mode: "io",
                tx_first: true,
                prefix: hp.prefix("t"),
                file,
            },
            o.seconds,
        );
        hp.clean_leftovers();
        let out = out?;
        cases.push((case_name(sc).to_string(), rate(&out, &who, "Rx-pps")?));
        cases
    } else {
        hp.ensure_free(PAGES, &who)?;
        let out = testpmd(
            Tpmd {
                who: who.clone(),
                bin,
                netns,
                main_lcore: 0,
                vdevs: vdevs(sc),
                mode: "io",
                tx_first,
                prefix: hp.prefix("t"),
                file,
            },
            o.seconds,
        );
        hp.clean_leftovers();
        let out = out?;
        vec![(case_name(sc).to_string(), rate(&out, &who, "Rx-pps")?)]
    };
    Ok(res)
}

pub fn run(ctx: &mut Ctx, o: &Opts) -> Result<Table> {
    let peer = harness::dpdk_need()?;
    let ours = match o.kind {
        Kind::PmdPerf => "pmd_perf",
        Kind::Testpmd => "testpmd",
    };
    ctx.build(&[ours])?;
    let ns = if o.only.iter().any(|s| s.on_veth()) {
        Some(Netns::new(&[(IF0, IF1)])?)
    } else {
        None
    };
    let mut hp = HugePages::reserve(2 * PAGES + 16, ctx.common.keep_hugepages)?;
    let mut t = ctx.table(
        format!(
            "{ours}: {peer} dpdk-testpmd vs {ours}, one forwarding core, {} s window, Mpps",
            o.seconds
        ),
        peer.clone(),
    );
    for round in 0..ctx.common.repeat {
        for &sc in &o.only {
            for side in harness::round_order(&ctx.sides(), round) {
                harness::say(format!(
                    "round {}/{}: {}: {}",
                    round + 1,
                    ctx.common.repeat,
                    scenario_name(sc),
                    crate::ring::side_name(ctx, side, &peer)
                ));
                let ns_name = ns.as_ref().map(|n| n.name.as_str());
                for (case, pps) in one(ctx, o, &mut hp, ns_name, Step { sc, side, round }, &peer)? {
                    t.record(round, side, &case, "Mpps", Better::Higher, pps / 1e6);
                }
            }
        }
    }
    Ok(t)
}
