//! `nvmf --kernel`: our NVMe/TCP target (`ferroplane-tgt`) against the Linux kernel's
//! (nvmet-tcp), both in one boot of the testbed guest (QEMU TCG), the kernel's
//! initiator (nvme-tcp, `nvme connect`) on both, fio 4 KiB random reads with O_DIRECT
//! (io_uring) at each queue depth.
//!
//! Same backing on both sides: one loop device over a file in the guest's tmpfs. The
//! kernel target exports it as a block-device namespace (configfs, `testbed::nvmet`);
//! ours opens the same device as an aio bdev (`bdev_aio_create`). Kernel target on
//! 127.0.0.1:4420, ours on :4421 (one reactor, `-m 0x1`, sleeping when idle); both
//! stay connected for the whole run, and the sides alternate order every round.
//!
//! CPU per I/O, from the guest's clock ticks (USER_HZ):
//! - guest CPU per I/O: busy ticks of all guest CPUs over the run (`/proc/stat`:
//!   user, nice, system, irq, softirq, steal), minus the busy share the same guest
//!   showed over an idle period measured first, over fio's I/O count: initiator, fio
//!   and target together, the same for both sides;
//! - our target's CPU per I/O: its process's utime + stime over the I/O count;
//! - the kernel target's CPU per I/O (an estimate): its run's guest CPU per I/O minus
//!   what the rest (initiator and fio) cost per I/O in our run of the same round and
//!   depth (that run's guest CPU per I/O minus our target's), as the initiator and
//!   fio are the same on both sides.

use std::collections::HashMap;
use std::path::PathBuf;

use testbed::{Guest, GuestOptions};

use crate::args::DepthOpts;
use crate::error::{Error, Result};
use crate::guest::sh;
use crate::harness;
use crate::parse;
use crate::table::{Better, Side, Table};
use crate::Ctx;

const KERNEL_NQN: &str = "nqn.2014-08.io.ferroplane:kernel-target";
const OUR_NQN: &str = "nqn.2016-06.io.ferroplane:cnode1";
const KERNEL_PORT: u16 = 4420;
const OUR_PORT: u16 = 4421;
/// The backing file's size (guest tmpfs).
const BACKING_MIB: u32 = 256;

/// One `/proc/stat` `cpu` line: (busy, all) ticks.
fn cpu_line(l: &str) -> Option<(u64, u64)> {
    let v: Vec<u64> = l
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let g = |i: usize| v.get(i).copied().unwrap_or(0);
    if v.len() < 4 {
        return None;
    }
    let busy = g(0) + g(1) + g(2) + g(5) + g(6) + g(7);
    Some((busy, busy + g(3) + g(4)))
}

/// What the guest's measuring wrapper printed around one command: the `cpu` lines of
/// `/proc/stat` before (`S0`) and after (`S1`), our target's utime + stime before
/// (`P0`) and after (`P1`) when asked.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Ticks {
    busy: u64,
    all: u64,
    proc_: Option<u64>,
}

fn ticks(out: &str) -> Option<Ticks> {
    let mut s = [None, None];
    let mut p = [None, None];
    for l in out.lines() {
        let l = l.trim();
        for (i, tag) in ["S0 ", "S1 "].iter().enumerate() {
            if let Some(r) = l.strip_prefix(tag) {
                s[i] = cpu_line(r.trim());
            }
        }
        for (i, tag) in ["P0 ", "P1 "].iter().enumerate() {
            if let Some(r) = l.strip_prefix(tag) {
                let v: Vec<u64> = r
                    .split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .collect();
                p[i] = (v.len() == 2).then(|| v[0] + v[1]);
            }
        }
    }
    let ((b0, a0), (b1, a1)) = (s[0]?, s[1]?);
    Some(Ticks {
        busy: b1.saturating_sub(b0),
        all: a1.saturating_sub(a0),
        proc_: match p {
            [Some(x), Some(y)] => Some(y.saturating_sub(x)),
            _ => None,
        },
    })
}

/// `cmd` in the guest between `/proc/stat` (and, with `pid_file`, our target's
/// `/proc/PID/stat` utime and stime) readings.
fn measured(cmd: &str, pid_file: Option<&str>) -> String {
    let p = pid_file.map_or(String::new(), |f| {
        format!("cut -d' ' -f14,15 /proc/$(cat {f})/stat")
    });
    format!(
        "a=$(head -1 /proc/stat); p=$({p}); {cmd}; b=$(head -1 /proc/stat); q=$({p}); \
         echo \"S0 $a\"; echo \"S1 $b\"; [ -n \"$p\" ] && echo \"P0 $p\" && echo \"P1 $q\"; true"
    )
}

/// One fio run's values.
struct Run {
    r: parse::IoResult,
    ios: f64,
    t: Ticks,
}

/// fio's JSON: the result and its I/O count.
fn fio_ios(text: &str) -> Option<f64> {
    let start = text.find('{')?;
    let j: serde_json::Value = serde_json::from_str(text.get(start..=text.rfind('}')?)?).ok()?;
    j.get("jobs")?
        .get(0)?
        .get("read")?
        .get("total_ios")?
        .as_f64()
}

/// The block device (nvmeXnY) of namespace 1 of connected subsystem `nqn`.
fn block_dev(g: &mut Guest, nqn: &str) -> Result<String> {
    let out = sh(
        g,
        &format!(
            "(for i in $(seq 1 100); do for b in /sys/block/nvme*n1; do \
             [ -b /dev/${{b##*/}} ] && [ \"$(cat $b/device/subsysnqn 2>/dev/null)\" = {nqn} ] && basename $b && exit 0; \
             done; sleep 0.2; done; echo none)"
        ),
        60,
    )?;
    out.lines()
        .map(str::trim)
        .find(|l| l.starts_with("nvme"))
        .map(str::to_string)
        .ok_or_else(|| Error::Setup(format!("nvmf --kernel: no block device for {nqn}: {out}")))
}

/// Boot, set both targets up, connect the kernel initiator to both.
fn setup(ctx: &Ctx) -> Result<(Guest, String, String)> {
    let fio = PathBuf::from("/usr/bin/fio");
    let nvme = PathBuf::from("/usr/sbin/nvme");
    let work = ctx.work().to_path_buf();
    let mut files = vec![(fio, "/fp/bin/fio".into()), (nvme, "/fp/bin/nvme".into())];
    let strace = PathBuf::from("/usr/bin/strace");
    if strace.is_file() {
        files.push((strace, "/fp/bin/strace".into()));
    }
    harness::say("nvmf --kernel: booting the guest (QEMU TCG)");
    let mut g = Guest::boot(&GuestOptions {
        bins: vec![
            ctx.bin(Side::Ours, "ferroplane-tgt"),
            ctx.bin(Side::Ours, "ferroplane-rpc"),
        ],
        files,
        log: work.join("guest.log"),
        ..Default::default()
    })
    .map_err(|e| Error::Setup(format!("nvmf --kernel: guest boot: {e}")))?;
    sh(&mut g, "fp-modprobe nvme-tcp && ip link set lo up", 120)?;
    sh(
        &mut g,
        "mkdir -p /dev/shm && (grep -q ' /dev/shm ' /proc/mounts || mount -t tmpfs none /dev/shm)",
        30,
    )?;
    let out = sh(
        &mut g,
        &testbed::nvmet::setup_script(KERNEL_NQN, KERNEL_PORT, BACKING_MIB),
        120,
    )?;
    let lo = testbed::nvmet::loop_device(&out)
        .ok_or_else(|| Error::Setup(format!("nvmf --kernel: nvmet-tcp setup: {out}")))?
        .to_string();
    // Fill the backing so both sides read written blocks.
    sh(
        &mut g,
        &format!("dd if=/dev/urandom of={lo} bs=1M count={BACKING_MIB} oflag=direct 2>/dev/null"),
        300,
    )?;
    sh(
        &mut g,
        "(ferroplane-tgt -m 0x1 --no-huge -s 256 --no-pci --file-prefix nvmfk -r /tmp/t.sock \
         >/tmp/tgt.log 2>&1 & echo $! >/tmp/tgt.pid); \
         (for i in $(seq 1 300); do [ -S /tmp/t.sock ] && exit 0; sleep 0.1; done; cat /tmp/tgt.log; exit 1)",
        60,
    )?;
    let rpc =
        |g: &mut Guest, args: &str| sh(g, &format!("ferroplane-rpc -s /tmp/t.sock {args}"), 60);
    rpc(&mut g, &format!("bdev_aio_create {lo} Aio0 512"))?;
    rpc(&mut g, "nvmf_create_transport -t TCP")?;
    rpc(
        &mut g,
        &format!("nvmf_create_subsystem {OUR_NQN} -a -s FP0001"),
    )?;
    rpc(&mut g, &format!("nvmf_subsystem_add_ns {OUR_NQN} Aio0"))?;
    rpc(
        &mut g,
        &format!("nvmf_subsystem_add_listener {OUR_NQN} -t tcp -a 127.0.0.1 -s {OUR_PORT}"),
    )?;
    for (nqn, port) in [(KERNEL_NQN, KERNEL_PORT), (OUR_NQN, OUR_PORT)] {
        sh(
            &mut g,
            &format!("nvme connect -t tcp -a 127.0.0.1 -s {port} -n {nqn}"),
            120,
        )?;
    }
    let kdev = block_dev(&mut g, KERNEL_NQN)?;
    let odev = block_dev(&mut g, OUR_NQN)?;
    Ok((g, kdev, odev))
}

/// Syscalls per I/O of our target (untimed, after the rounds): `strace -c` on all its
/// threads during one more fio run per depth; printed with the busiest calls.
fn syscalls(g: &mut Guest, odev: &str, o: &DepthOpts) -> Result<()> {
    if sh(g, "command -v strace", 10).is_err() {
        harness::say("nvmf --kernel: no strace in the guest, syscalls per I/O not counted");
        return Ok(());
    }
    for &d in &o.depths {
        let cmd = format!(
            "P=$(cat /tmp/tgt.pid); (strace -c -f -o /tmp/st.txt $(for t in /proc/$P/task/*; do \
             echo -p ${{t##*/}}; done) 2>/dev/null & echo $! >/tmp/st.pid); sleep 2; \
             fio --name=rr --filename=/dev/{odev} --direct=1 --ioengine=io_uring --rw=randread \
             --bs=4k --iodepth={d} --runtime=3 --time_based --randrepeat=0 --output-format=json \
             --output=/tmp/f.json >/dev/null; kill -INT $(cat /tmp/st.pid); sleep 2; \
             cat /tmp/st.txt; tr -d '\\n' < /tmp/f.json; echo"
        );
        let out = sh(g, &cmd, 180)?;
        let (Some(calls), Some(ios)) = (strace_total(&out), fio_ios(&out)) else {
            harness::say(format!(
                "nvmf --kernel: strace printed no summary:\n{}",
                harness::tail(&out, 10)
            ));
            continue;
        };
        let top: Vec<String> = out
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let name = *w.last()?;
                let n: f64 = w.get(3)?.parse().ok()?;
                (w.len() >= 5 && name != "total" && w[0].parse::<f64>().is_ok())
                    .then_some((n, name))
            })
            .filter(|(n, _)| n / ios >= 0.05)
            .map(|(n, name)| format!("{name} {:.2}", n / ios))
            .collect();
        harness::say(format!(
            "nvmf --kernel: our target, qd{d}: {:.2} syscalls per I/O ({calls} for {ios} I/Os under strace: {})",
            calls / ios,
            top.join(", ")
        ));
    }
    Ok(())
}

/// The call count of `strace -c`'s `total` line.
fn strace_total(out: &str) -> Option<f64> {
    let l = out.lines().find(|l| l.trim_end().ends_with(" total"))?;
    l.split_whitespace().nth(3)?.parse().ok()
}

pub fn run(ctx: &mut Ctx, o: &DepthOpts) -> Result<Table> {
    if ctx.common.baseline.is_some() {
        return Err(Error::Usage(
            "nvmf --kernel: --baseline is not supported (one guest serves both targets)".into(),
        ));
    }
    harness::apt_need(&["fio", "nvme"], &["fio", "nvme-cli"])?;
    ctx.build(&["ferroplane-tgt", "ferroplane-rpc"])?;
    let (mut g, kdev, odev) = setup(ctx)?;
    let load = |when: &str| {
        let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        harness::say(format!(
            "nvmf --kernel: host load average {when}: {}",
            l.trim()
        ));
    };
    load("before");
    // The idle guest's busy share (timers, our sleeping reactor, keep-alives).
    let idle = ticks(&sh(
        &mut g,
        &measured(&format!("sleep {}", o.seconds), None),
        120,
    )?)
    .ok_or_else(|| Error::Setup("nvmf --kernel: no /proc/stat readings".into()))?;
    let idle_share = idle.busy as f64 / idle.all.max(1) as f64;
    harness::say(format!(
        "nvmf --kernel: idle guest busy share {:.1}% ({} of {} ticks)",
        idle_share * 100.0,
        idle.busy,
        idle.all
    ));
    let peer = "Linux nvmet-tcp (6.1)".to_string();
    let mut t = ctx.table(
        format!(
            "nvmf --kernel: {peer} vs ferroplane-tgt (aio bdev), the same loop device (file in tmpfs), \
             kernel nvme-tcp initiator and fio io_uring O_DIRECT 4 KiB randread on both, 127.0.0.1 in one QEMU TCG guest"
        ),
        peer.clone(),
    );
    let mut runs: HashMap<(usize, bool, u32), Run> = HashMap::new();
    for round in 0..ctx.common.repeat {
        for side in harness::round_order(&[Side::Peer, Side::Ours], round) {
            crate::ring::say_round(ctx, round, side, &peer);
            let (dev, pid_file) = match side {
                Side::Peer => (kdev.as_str(), None),
                _ => (odev.as_str(), Some("/tmp/tgt.pid")),
            };
            for &d in &o.depths {
                let fio = format!(
                    "fio --name=rr --filename=/dev/{dev} --direct=1 --ioengine=io_uring \
                     --rw=randread --bs=4k --iodepth={d} --runtime={} --time_based \
                     --randrepeat=0 --output-format=json --output=/tmp/f.json >/dev/null",
                    o.seconds
                );
                let cmd = format!(
                    "{}; tr -d '\\n' < /tmp/f.json; echo",
                    measured(&fio, pid_file)
                );
                let out = sh(&mut g, &cmd, o.seconds + 180)?;
                std::fs::write(ctx.out(&format!("nvmf-kernel-q{d}"), side, round), &out)
                    .map_err(|e| Error::io("keep fio's output", e))?;
                let fail = |why: &str| Error::Side {
                    side: format!("fio on /dev/{dev}"),
                    why: why.into(),
                    stderr: harness::tail(&out, 15),
                };
                let r = parse::fio_json(&out)
                    .filter(|r| r.iops > 0.0)
                    .ok_or_else(|| fail("printed no result"))?;
                let ios = fio_ios(&out)
                    .filter(|&n| n > 0.0)
                    .ok_or_else(|| fail("no I/O count"))?;
                let tk = ticks(&out).ok_or_else(|| fail("no /proc/stat readings"))?;
                runs.insert((round, side == Side::Ours, d), Run { r, ios, t: tk });
            }
        }
    }
    load("after");
    // Microseconds per tick: guest USER_HZ is 100.
    const US_PER_TICK: f64 = 10_000.0;
    let guest_cpu = |x: &Run| {
        let extra = x.t.busy as f64 - idle_share * x.t.all as f64;
        extra.max(0.0) * US_PER_TICK / x.ios
    };
    for round in 0..ctx.common.repeat {
        for &d in &o.depths {
            let (Some(k), Some(ours)) = (runs.get(&(round, false, d)), runs.get(&(round, true, d)))
            else {
                continue;
            };
            let our_tgt = ours.t.proc_.map(|p| p as f64 * US_PER_TICK / ours.ios);
            for (side, x) in [(Side::Peer, k), (Side::Ours, ours)] {
                let case = format!("randread 4KiB qd{d}");
                let mut rec = |what: &str, unit: &'static str, better: Better, v: f64| {
                    t.record(round, side, &format!("{case} {what}"), unit, better, v)
                };
                rec("IOPS", "IOPS", Better::Higher, x.r.iops);
                rec("mean latency", "us", Better::Lower, x.r.lat_us);
                rec("guest CPU per I/O", "us", Better::Lower, guest_cpu(x));
                let tgt_cpu = match (side, our_tgt) {
                    (Side::Peer, Some(ot)) => {
                        Some((guest_cpu(k) - (guest_cpu(ours) - ot)).max(0.0))
                    }
                    (Side::Ours, Some(ot)) => Some(ot),
                    _ => None,
                };
                if let Some(c) = tgt_cpu {
                    rec("target CPU per I/O", "us", Better::Lower, c);
                }
            }
        }
    }
    syscalls(&mut g, &odev, o)?;
    let tail = sh(
        &mut g,
        "nvme disconnect-all; grep -ciE 'error|fail' /tmp/tgt.log || true",
        60,
    )?;
    harness::say(format!(
        "nvmf --kernel: error lines in our target's log: {}",
        tail.trim()
    ));
    drop(g);
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_wrapper_lines() {
        let out = "S0 cpu  10 0 20 100 5 1 2 0 0 0\nS1 cpu  30 0 50 300 5 3 4 0 0 0\n\
                   P0 7 3\nP1 27 13\n{json}";
        let t = ticks(out).unwrap();
        // busy: (30+50+3+4) - (10+20+1+2) = 54; all adds idle 200.
        assert_eq!(
            t,
            Ticks {
                busy: 54,
                all: 254,
                proc_: Some(30)
            }
        );
        assert_eq!(ticks("S0 cpu 1 2 3 4\n").map(|t| t.busy), None);
        let m = measured("fio x", Some("/tmp/p"));
        assert!(m.contains("/proc/$(cat /tmp/p)/stat") && m.contains("fio x;"));
        assert!(!measured("sleep 1", None).contains("/proc/$("));
        let st = "% time     seconds  usecs/call     calls    errors syscall\n\
                  ------ ----------- ----------- --------- --------- ----------------\n\
                  60.00    0.060000           6     10000      2000 read\n\
                  100.00    0.100000           5     20000      2000 total\n";
        assert_eq!(strace_total(st), Some(20000.0));
    }
}
