//! `nvme`: our user-space NVMe driver against the kernel's NVMe stack, same guest, same
//! emulated device, one boot of the testbed guest (testbed/run.sh: QEMU TCG, emulated
//! NVMe 1b36:0010), 4 KiB random reads on namespace 1 at each queue depth:
//!
//! - peer: fio 3.33 `--ioengine=io_uring --direct=1` on /dev/nvme0n1 (kernel nvme driver);
//! - ours: `nvme-perf -r 'trtype:PCIe traddr:ADDR ns:1'` (our driver over vfio-pci);
//! - a tool check: `nvme-perf -r 'trtype:kernel path:/dev/nvme0n1 engine:io_uring'`
//!   against fio on the same kernel path (same numbers expected from both tools);
//! - with `--baseline`, nvme-perf of that revision as a third side.
//!
//! Each round binds the controller to the kernel driver for fio and the tool check, and
//! to vfio-pci for our driver, the two phases alternating in order between rounds.
//! Values: IOPS, mean latency (us) and CPU time per I/O (us): fio's usr_cpu + sys_cpu
//! over its I/O count, nvme-perf's getrusage of its worker over its I/O count (a polling
//! driver burns its core whatever the load, so its CPU per I/O is 1/IOPS of that core).
//! The emulator (TCG) bounds every number here; the ratio is the point, not the values.

use std::fmt::Write as _;
use std::fs;
use std::process::Command;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::harness::{self, Job};
use crate::parse::{self, IoResult};
use crate::table::{Better, Side, Table};
use crate::Ctx;

pub struct Opts {
    seconds: u64,
    depths: Vec<u32>,
}

impl Opts {
    pub fn parse(args: &[String]) -> Result<Opts> {
        let mut o = Opts {
            seconds: 5,
            depths: vec![1, 32],
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--seconds" => {
                    let v = it
                        .next()
                        .ok_or_else(|| Error::Usage("--seconds needs a value".into()))?;
                    o.seconds = crate::number("--seconds", v, 1, 600)?;
                }
                "--depths" => {
                    let v = it
                        .next()
                        .ok_or_else(|| Error::Usage("--depths needs a value".into()))?;
                    o.depths = v
                        .split(',')
                        .map(|d| crate::number("--depths", d, 1u32, 1024))
                        .collect::<Result<_>>()?;
                }
                _ => {
                    return Err(Error::Usage(format!(
                        "nvme: unknown argument '{a}' (see --help)"
                    )))
                }
            }
        }
        Ok(o)
    }
}

/// Which program a `@@BENCH` block holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Prog {
    Fio,
    Kernel,
    Ours,
    Base,
}

impl Prog {
    fn tag(self) -> &'static str {
        match self {
            Prog::Fio => "fio",
            Prog::Kernel => "kernel",
            Prog::Ours => "ours",
            Prog::Base => "base",
        }
    }
}

/// The guest's shell script: `@@BENCH <round> <prog> <depth>` before each run.
fn guest_script(o: &Opts, rounds: usize, base: bool) -> String {
    let s = o.seconds;
    let mut g = String::from(
        "n=0; until [ -e /dev/nvme0n1 ] || [ $n -ge 100 ]; do sleep 0.1; n=$((n+1)); done\n\
         A=$(ferroplane-devbind --status | grep 1b36:0010 | awk '{print $1}')\n\
         dd if=/dev/zero of=/dev/nvme0n1 bs=1M count=256 conv=fsync 2>/dev/null\n\
         kern() { ferroplane-devbind --bind=nvme $A >/dev/null; n=0; \
         until [ -e /dev/nvme0n1 ] || [ $n -ge 100 ]; do sleep 0.1; n=$((n+1)); done; }\n\
         vfio() { ferroplane-devbind --bind=vfio-pci $A >/dev/null; }\n",
    );
    for r in 0..rounds {
        let kernel_first = r % 2 == 0;
        let mut vf: Vec<Prog> = vec![Prog::Ours];
        if base {
            vf.push(Prog::Base);
        }
        let vf = harness::round_order(&vf, r);
        let kernel = |g: &mut String| {
            g.push_str("kern\n");
            for d in &o.depths {
                let _ = writeln!(g, "echo '@@BENCH {r} fio {d}'");
                let _ = writeln!(
                    g,
                    "fio --name=rr --filename=/dev/nvme0n1 --ioengine=io_uring --direct=1 --rw=randread --bs=4k \
                     --iodepth={d} --time_based --runtime={s} --ramp_time=1 --output-format=json | tr -d '\\n'; echo"
                );
                let _ = writeln!(g, "echo '@@BENCH {r} kernel {d}'");
                let _ = writeln!(
                    g,
                    "nvme-perf -q {d} -o 4096 -w randread -t {s} -a 1 -s 32 -r 'trtype:kernel path:/dev/nvme0n1 engine:io_uring'"
                );
            }
        };
        let user = |g: &mut String| {
            g.push_str("vfio\n");
            for d in &o.depths {
                for p in &vf {
                    let bin = if *p == Prog::Base {
                        "nvme-perf-base"
                    } else {
                        "nvme-perf"
                    };
                    let _ = writeln!(g, "echo '@@BENCH {r} {} {d}'", p.tag());
                    let _ = writeln!(
                        g,
                        "{bin} -q {d} -o 4096 -w randread -t {s} -a 1 -s 64 -r \"trtype:PCIe traddr:$A ns:1\""
                    );
                }
            }
        };
        if kernel_first {
            kernel(&mut g);
            user(&mut g);
        } else {
            user(&mut g);
            kernel(&mut g);
        }
    }
    g.push_str("echo '@@BENCH end'\n");
    g
}

/// Split the console log into `(round, prog, depth) -> lines`.
fn blocks(log: &str) -> Vec<((usize, Prog, u32), String)> {
    let mut out: Vec<((usize, Prog, u32), String)> = Vec::new();
    for l in log.replace('\r', "").lines() {
        if let Some(rest) = l.strip_prefix("@@BENCH ") {
            let w: Vec<&str> = rest.split_whitespace().collect();
            let prog = match w.get(1).copied() {
                Some("fio") => Some(Prog::Fio),
                Some("kernel") => Some(Prog::Kernel),
                Some("ours") => Some(Prog::Ours),
                Some("base") => Some(Prog::Base),
                _ => None,
            };
            if let (Some(r), Some(p), Some(d)) = (
                w.first().and_then(|r| r.parse().ok()),
                prog,
                w.get(2).and_then(|d| d.parse().ok()),
            ) {
                out.push(((r, p, d), String::new()));
                continue;
            }
            if rest.trim() == "end" {
                break;
            }
        }
        if let Some((_, buf)) = out.last_mut() {
            buf.push_str(l);
            buf.push('\n');
        }
    }
    out
}

fn record(t: &mut Table, round: usize, side: Side, d: u32, r: IoResult, tool_check: bool) {
    if tool_check {
        t.record(
            round,
            side,
            &format!("qd{d} IOPS, nvme-perf on the kernel path (tool check)"),
            "IOPS",
            Better::Higher,
            r.iops,
        );
        return;
    }
    t.record(
        round,
        side,
        &format!("qd{d} IOPS"),
        "IOPS",
        Better::Higher,
        r.iops,
    );
    t.record(
        round,
        side,
        &format!("qd{d} mean latency"),
        "us",
        Better::Lower,
        r.lat_us,
    );
    if let Some(c) = r.cpu_us {
        t.record(
            round,
            side,
            &format!("qd{d} CPU per I/O"),
            "us",
            Better::Lower,
            c,
        );
    }
}

pub fn run(ctx: &mut Ctx, o: &Opts) -> Result<Table> {
    harness::apt_need(&["fio"], &["fio"])?;
    ctx.build(&["nvme-perf", "ferroplane-devbind", "fp-devtest"])?;
    let work = ctx.work().to_path_buf();
    let img = work.join("ns1.img");
    let f =
        fs::File::create(&img).map_err(|e| Error::io(format!("create {}", img.display()), e))?;
    f.set_len(256 << 20)
        .map_err(|e| Error::io(format!("size {}", img.display()), e))?;
    let base = ctx.sides().contains(&Side::Base);
    let rounds = ctx.common.repeat;
    let log = work.join("console.log");
    let fio = which("fio")
        .ok_or_else(|| Error::Setup("fio is not on PATH after installing it".into()))?;
    let mut cmd = Command::new(harness::repo_root().join("testbed/run.sh"));
    cmd.arg("--no-build")
        .arg("--nvme-img")
        .arg(&img)
        .arg("--bin")
        .arg(&fio)
        .arg("--bin")
        .arg(ctx.bin(Side::Ours, "nvme-perf"));
    if base {
        let b = work.join("nvme-perf-base");
        fs::copy(ctx.bin(Side::Base, "nvme-perf"), &b)
            .map_err(|e| Error::io("copy the baseline's nvme-perf", e))?;
        cmd.arg("--bin").arg(&b);
    }
    let per_run = o.seconds + 15;
    let runs = rounds as u64 * o.depths.len() as u64 * if base { 4 } else { 3 };
    let timeout = 300 + runs * per_run * 2;
    cmd.args(["--timeout", &timeout.to_string(), "--log"])
        .arg(&log)
        .arg("--")
        .arg(guest_script(o, rounds, base));
    harness::say(format!(
        "booting the testbed guest: {runs} runs of {} s (+1 s warm-up), timeout {timeout} s",
        o.seconds
    ));
    let who = "the testbed guest (testbed/run.sh)";
    let res = harness::run(Job {
        side: who,
        cmd,
        feed: Vec::new(),
        interrupt: None,
        timeout: Duration::from_secs(timeout + 60),
        file: work.join("guest"),
    });
    let text = fs::read_to_string(&log).unwrap_or_default();
    if !text.contains("@@BENCH end") {
        let out = res?;
        return Err(out.fail(
            who,
            "did not finish the runs (no '@@BENCH end' on its console)",
        ));
    }
    let mut t = ctx.table(
        "nvme: 4 KiB random read, namespace 1, one core, QEMU TCG guest, emulated NVMe (peer: fio io_uring on the kernel nvme driver)",
        "fio",
    );
    for ((r, p, d), buf) in blocks(&text) {
        let (side, parsed, name) = match p {
            Prog::Fio => (Side::Peer, parse::fio_json(&buf), "fio io_uring"),
            Prog::Kernel => (
                Side::Ours,
                parse::nvme_perf(&buf),
                "nvme-perf (kernel path)",
            ),
            Prog::Ours => (Side::Ours, parse::nvme_perf(&buf), "ours nvme-perf (PCIe)"),
            Prog::Base => (
                Side::Base,
                parse::nvme_perf(&buf),
                "baseline nvme-perf (PCIe)",
            ),
        };
        let r_ = parsed.ok_or_else(|| Error::Side {
            side: format!("{name}, round {}, depth {d}", r + 1),
            why: "printed nothing parseable".into(),
            stderr: harness::tail(&buf, 15),
        })?;
        record(&mut t, r, side, d, r_, p == Prog::Kernel);
    }
    // The tool check's peer is fio at the same depth and round.
    let fio_iops: Vec<(usize, u32, f64)> = blocks(&text)
        .into_iter()
        .filter(|((_, p, _), _)| *p == Prog::Fio)
        .filter_map(|((r, _, d), b)| Some((r, d, parse::fio_json(&b)?.iops)))
        .collect();
    for (r, d, v) in fio_iops {
        t.record(
            r,
            Side::Peer,
            &format!("qd{d} IOPS, nvme-perf on the kernel path (tool check)"),
            "IOPS",
            Better::Higher,
            v,
        );
    }
    Ok(t)
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_alternates_phases_and_marks_runs() {
        let o = Opts {
            seconds: 2,
            depths: vec![1, 32],
        };
        let g = guest_script(&o, 2, true);
        let marks: Vec<&str> = g.lines().filter(|l| l.contains("@@BENCH")).collect();
        assert_eq!(marks.len(), 2 * 2 * 4 + 1);
        // Round 0: kernel phase first; round 1: the vfio phase first, base before ours.
        let first0 = marks.iter().position(|l| l.contains("@@BENCH 0 ")).unwrap();
        assert!(marks[first0].contains(" fio 1"));
        let first1 = marks.iter().position(|l| l.contains("@@BENCH 1 ")).unwrap();
        assert!(marks[first1].contains(" base 1"), "{}", marks[first1]);
        assert!(g.contains("nvme-perf-base -q 32"));
    }

    #[test]
    fn blocks_split_by_marker() {
        let log = "boot\r\n@@BENCH 0 fio 1\r\n{json}\n@@BENCH 0 ours 1\nTotal : 1 2 3\n@@BENCH end\nafter\n";
        let b = blocks(log);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].0, (0, Prog::Fio, 1));
        assert_eq!(b[0].1, "{json}\n");
        assert_eq!(b[1].0, (0, Prog::Ours, 1));
        assert_eq!(b[1].1, "Total : 1 2 3\n");
    }
}
