//! `framework`: message passing between two cpus, the framework's messages (two
//! framework threads on reactors of lcores 0 and 1) against crossbeam-channel (two OS
//! threads pinned to cpus 0 and 1 polling bounded channels), both sending the same boxed
//! closures. One process per side and round (`msg_perf`, an example of the framework
//! crate); values are nanoseconds per message (one way) and per round trip.

use std::process::Command;
use std::time::Duration;

use crate::error::Result;
use crate::harness::{self, Job};
use crate::parse;
use crate::table::{Better, Side, Table};
use crate::Ctx;

pub struct Opts {
    messages: u64,
    round_trips: u64,
}

impl Opts {
    pub fn parse(args: &[String]) -> Result<Opts> {
        let mut o = Opts {
            messages: 2_000_000,
            round_trips: 200_000,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--messages" => o.messages = crate::args::number_arg(&mut it, a, 1000, 1 << 32)?,
                "--round-trips" => {
                    o.round_trips = crate::args::number_arg(&mut it, a, 100, 1 << 30)?
                }
                _ => return Err(crate::args::unknown_arg(Some("framework"), a)),
            }
        }
        Ok(o)
    }
}

const PEER: &str = "crossbeam-channel";

pub fn run(ctx: &mut Ctx, o: &Opts) -> Result<Table> {
    ctx.build(&["msg_perf"])?;
    let mut t = ctx.table(
        "framework: messages between lcores 0 and 1 vs crossbeam-channel between cpus 0 and 1, ns",
        PEER,
    );
    for round in 0..ctx.common.repeat {
        for side in harness::round_order(&ctx.sides(), round) {
            crate::ring::say_round(ctx, round, side, PEER);
            // The peer runs in our own msg_perf (its crossbeam side).
            let (bin_side, arg, who) = match side {
                Side::Peer => (Side::Ours, "crossbeam", format!("msg_perf ({PEER})")),
                s => (s, "framework", format!("{} msg_perf", ctx.label(s))),
            };
            let mut cmd = Command::new(ctx.bin(bin_side, "msg_perf"));
            cmd.args(["--side", arg])
                .args(["--messages", &o.messages.to_string()])
                .args(["--round-trips", &o.round_trips.to_string()]);
            let out = harness::run(Job::new(
                &who,
                cmd,
                Duration::from_secs(600),
                ctx.out("msg", side, round),
            ))?;
            let samples = parse::msg_perf(&out.stdout);
            if samples.len() != 2 {
                return Err(out.fail(&who, "printed no complete msg_perf result"));
            }
            for s in samples {
                t.record(round, side, &s.case, "ns", Better::Lower, s.value);
            }
        }
    }
    Ok(t)
}
