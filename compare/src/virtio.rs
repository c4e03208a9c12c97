//! `virtio`: our net_virtio against DPDK's, same guest, same devices, one boot of the
//! testbed guest (testbed/run.sh: QEMU TCG) with two `virtio-net-pci` NICs (modern,
//! `iommu_platform=on`, over vfio-pci) whose QEMU datagram back ends are wired to each
//! other, so a frame sent out of one arrives at the other:
//!
//! - peer: Debian's `dpdk-testpmd` 22.11 with DPDK's `net_virtio` (copied into the guest
//!   with the two plugins it loads);
//! - ours: our `testpmd` with our `net_virtio` (and with `--baseline`, that revision's);
//!
//! each `testpmd -l 0-1 -m 128 -- --forward-mode=io --nb-cores=1 --tx-first
//! --stats-period=1 --total-num-mbufs=4096` for `--seconds` plus 15 s to start, the
//! sides alternating in order between rounds. The rate is the median of the per-second forwarded rates (the
//! sum of both ports' Rx-pps in each statistics period, the first two periods left out
//! as warm-up).
//!
//! Exits into QEMU are the expensive events under TCG, so QEMU traces its
//! `virtio_queue_notify` events (a guest's doorbell write) and `virtio_set_status` into
//! a file; each run's notifications are those between its devices' DRIVER_OK and the
//! next reset, and the table shows them per 1000 forwarded packets (RX-packets of the
//! run's closing statistics), a count that does not depend on the host's load.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::error::{Error, Result};
use crate::guest;
use crate::harness;
use crate::table::{Better, Side, Table};
use crate::Ctx;

pub struct Opts {
    seconds: u64,
}

impl Opts {
    /// `[--seconds S]` (the only option).
    pub fn parse(args: &[String]) -> Result<Opts> {
        let seconds = match args {
            [] => 10,
            [k, v] if k == "--seconds" => crate::args::number("--seconds", v, 4, 600)?,
            [k] if k == "--seconds" => return Err(Error::Usage("--seconds needs a value".into())),
            [a, ..] => return Err(crate::args::unknown_arg(Some("virtio"), a)),
        };
        Ok(Opts { seconds })
    }
}

/// The two NICs' PCI addresses in the guest (`addr=` below).
const NIC_C: &str = "0000:00:12.0";
const NIC_D: &str = "0000:00:13.0";
/// DPDK's driver plugins the guest needs (`-d`); dpdk-testpmd links the PCI bus itself.
const DPDK_PMDS: &str = "/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0";
const DPDK_PLUGINS: &[&str] = &["librte_mempool_ring.so.23", "librte_net_virtio.so.23"];
/// Seconds each run gets on top of `--seconds` to start (EAL, pool, probe: several
/// seconds under TCG on a loaded host), so that about `--seconds` of statistics periods
/// follow it.
const STARTUP_S: u64 = 15;
/// virtio device status DRIVER_OK (virtio 1.2, 2.1).
const DRIVER_OK: u64 = 4;

/// The QEMU arguments of the two NICs, sockets in `dir`, each sending to the other's.
fn nic_args(dir: &Path) -> Vec<String> {
    let d = dir.display();
    let mut v = Vec::new();
    for (i, slot, peer) in [(4, 0x12, 5), (5, 0x13, 4)] {
        v.push("-netdev".into());
        v.push(format!(
            "dgram,id=v{i},local.type=unix,local.path={d}/guest{i}.sock,remote.type=unix,remote.path={d}/guest{peer}.sock"
        ));
        v.push("-device".into());
        v.push(format!(
            "virtio-net-pci,netdev=v{i},mac=52:54:00:fe:01:0{i},addr={slot:#x},disable-legacy=on,iommu_platform=on,mq=on,vectors=4"
        ));
    }
    v
}

/// The program each side runs in the guest.
fn program(side: Side) -> String {
    match side {
        Side::Peer => {
            let plugins: String = DPDK_PLUGINS
                .iter()
                .map(|p| format!(" -d /dpdk/{p}"))
                .collect();
            format!("dpdk-testpmd -l 0-1 -m 128 --file-prefix fpd -a {NIC_C} -a {NIC_D}{plugins}")
        }
        Side::Ours => format!("testpmd -l 0-1 -m 128 --file-prefix fpo -a {NIC_C} -a {NIC_D}"),
        Side::Base => format!("testpmd-base -l 0-1 -m 128 --file-prefix fpb -a {NIC_C} -a {NIC_D}"),
    }
}

fn tag(side: Side) -> &'static str {
    match side {
        Side::Peer => "peer",
        Side::Ours => "ours",
        Side::Base => "base",
    }
}

/// The guest's script: `@@BENCH <round> <side>` before each run, in `order(round)`.
fn guest_script(seconds: u64, rounds: usize, sides: &[Side]) -> String {
    let mut g = format!(
        "ferroplane-devbind --bind=vfio-pci {NIC_C} {NIC_D} >/dev/null || exit 1\n\
         mkdir -p /var/tmp /var/run\n"
    );
    for r in 0..rounds {
        for s in harness::round_order(sides, r) {
            let _ = writeln!(g, "echo '@@BENCH {r} {}'", tag(s));
            let _ = writeln!(
                g,
                "timeout -s INT {} {} -- --forward-mode=io --nb-cores=1 --tx-first \
                 --stats-period=1 --total-num-mbufs=4096 2>&1 < /dev/null",
                seconds + STARTUP_S,
                program(s)
            );
            // DPDK leaves its hugepage files behind; they would starve the next run.
            g.push_str("rm -rf /dev/hugepages/* /var/run/dpdk\n");
        }
    }
    g.push_str("echo '@@BENCH end'\n");
    g
}

/// Forwarded packets per second in each statistics period of a testpmd log
/// (`--stats-period`): the sum of the ports' `Rx-pps` in each "Port statistics" block.
pub(crate) fn period_rates(out: &str) -> Vec<f64> {
    let mut v: Vec<f64> = Vec::new();
    let mut open = false;
    for l in out.lines() {
        if l.contains("Port statistics ====") {
            v.push(0.0);
            open = true;
            continue;
        }
        let mut w = l.split_whitespace();
        while let Some(t) = w.next() {
            if t == "Rx-pps:" && open {
                if let (Some(last), Some(x)) =
                    (v.last_mut(), w.next().and_then(|x| x.parse::<f64>().ok()))
                {
                    *last += x;
                }
            }
        }
    }
    v
}

/// The median forwarding rate of a run, the first two periods left out.
fn median_rate(out: &str) -> Option<f64> {
    let v: Vec<f64> = period_rates(out).into_iter().skip(2).collect();
    if v.len() < 3 {
        return None;
    }
    crate::table::median(&v)
}

/// RX-packets of the closing "Accumulated forward statistics" (both testpmds).
fn forwarded(out: &str) -> Option<f64> {
    let rest = out.split("Accumulated forward statistics").nth(1)?;
    let l = rest.lines().find(|l| l.contains("RX-packets:"))?;
    l.split_whitespace()
        .skip_while(|t| *t != "RX-packets:")
        .nth(1)?
        .parse()
        .ok()
}

/// Notifications (doorbell writes) per run from QEMU's trace: the `virtio_queue_notify`
/// events between a DRIVER_OK and the next reset of the same device, summed over the
/// devices, one entry per run in the order the runs happened.
pub(crate) fn notifies_per_run(trace: &str) -> Vec<u64> {
    let mut runs: Vec<u64> = Vec::new();
    let mut live: Vec<String> = Vec::new();
    let mut in_run = false;
    for l in trace.lines() {
        let Some((ev, rest)) = l
            .split_once(':')
            .map(|(_, r)| r)
            .unwrap_or(l)
            .split_once(' ')
        else {
            continue;
        };
        let field = |k: &str| {
            let mut w = rest.split_whitespace();
            w.by_ref().find(|t| *t == k)?;
            w.next().map(str::to_string)
        };
        match ev {
            "virtio_set_status" => {
                let (Some(dev), Some(val)) = (field("vdev"), field("val")) else {
                    continue;
                };
                let val: u64 = val.parse().unwrap_or(0);
                if val & DRIVER_OK != 0 {
                    if !live.contains(&dev) {
                        if live.is_empty() && !in_run {
                            runs.push(0);
                            in_run = true;
                        }
                        live.push(dev);
                    }
                } else if val == 0 {
                    live.retain(|d| *d != dev);
                    if live.is_empty() {
                        in_run = false;
                    }
                }
            }
            "virtio_queue_notify" if in_run => {
                if let (Some(n), Some(dev)) = (runs.last_mut(), field("vdev")) {
                    if live.contains(&dev) {
                        *n += 1;
                    }
                }
            }
            _ => {}
        }
    }
    runs
}

pub fn run(ctx: &mut Ctx, o: &Opts) -> Result<Table> {
    harness::dpdk_need()?;
    ctx.build(&["testpmd", "ferroplane-devbind", "fp-devtest"])?;
    let work = ctx.work().to_path_buf();
    let net = work.join("net");
    fs::create_dir_all(&net).map_err(|e| Error::io(format!("create {}", net.display()), e))?;
    let sides = ctx.sides();
    let rounds = ctx.common.repeat;
    let log = work.join("console.log");
    let trace = work.join("qemu-trace.log");
    let events = work.join("qemu-trace-events");
    fs::write(&events, "virtio_queue_notify\nvirtio_set_status\n")
        .map_err(|e| Error::io(format!("write {}", events.display()), e))?;
    let runs = rounds as u64 * sides.len() as u64;
    let timeout = 300 + runs * (o.seconds + STARTUP_S + 20) * 2;
    let mut cmd = guest::run_sh(&log, timeout);
    cmd.args(["--hugepages", "192", "--net-sock"])
        .arg(&net)
        .arg("--bin")
        .arg(ctx.bin(Side::Ours, "testpmd"))
        .arg("--file")
        .arg("/usr/bin/dpdk-testpmd:/fp/bin/dpdk-testpmd");
    for p in DPDK_PLUGINS {
        cmd.arg("--file").arg(format!("{DPDK_PMDS}/{p}:/dpdk/{p}"));
    }
    if sides.contains(&Side::Base) {
        let b = work.join("testpmd-base");
        fs::copy(ctx.bin(Side::Base, "testpmd"), &b)
            .map_err(|e| Error::io("copy the baseline's testpmd", e))?;
        cmd.arg("--bin").arg(&b);
    }
    for a in nic_args(&net) {
        cmd.arg("--qemu-arg").arg(a);
    }
    cmd.arg("--qemu-arg")
        .arg("-trace")
        .arg("--qemu-arg")
        .arg(format!(
            "events={},file={}",
            events.display(),
            trace.display()
        ));
    harness::say(format!(
        "booting the testbed guest: {runs} testpmd runs of {} s, timeout {timeout} s",
        o.seconds
    ));
    let text = guest::run(
        cmd,
        guest_script(o.seconds, rounds, &sides),
        &log,
        timeout,
        &work,
    )?;
    let notes = notifies_per_run(&fs::read_to_string(&trace).unwrap_or_default());
    let mut t = ctx.table(
        "virtio: testpmd io forwarding over two virtio-net-pci ports wired to each other \
         (QEMU TCG guest, datagram back ends, vfio-pci, --tx-first, one forwarding core); \
         peer: Debian's dpdk-testpmd with DPDK's net_virtio",
        "DPDK",
    );
    let blocks = guest::blocks(&text, |w| {
        let side = match *w.get(1)? {
            "peer" => Side::Peer,
            "ours" => Side::Ours,
            "base" => Side::Base,
            _ => return None,
        };
        Some((w.first()?.parse::<usize>().ok()?, side))
    });
    if notes.len() != blocks.len() {
        harness::say(format!(
            "QEMU's trace shows {} runs, the console {}: notifications left out of the table",
            notes.len(),
            blocks.len()
        ));
    }
    for (k, ((r, side), buf)) in blocks.iter().enumerate() {
        let name = format!("{} testpmd, round {}", tag(*side), r + 1);
        let rate = median_rate(buf).ok_or_else(|| Error::Side {
            side: name.clone(),
            why: "printed fewer than five statistics periods".into(),
            stderr: harness::tail(buf, 15),
        })?;
        t.record(
            *r,
            *side,
            "forwarded packets/s",
            "pps",
            Better::Higher,
            rate,
        );
        if let (Some(n), Some(fwd), true) =
            (notes.get(k), forwarded(buf), notes.len() == blocks.len())
        {
            if fwd > 0.0 {
                t.record(
                    *r,
                    *side,
                    "doorbell writes per 1000 packets",
                    "/1000",
                    Better::Lower,
                    *n as f64 * 1000.0 / fwd,
                );
            }
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_alternates_sides_and_cleans_hugepages() {
        let g = guest_script(5, 2, &[Side::Peer, Side::Ours]);
        let marks: Vec<&str> = g.lines().filter(|l| l.contains("@@BENCH")).collect();
        assert_eq!(
            marks,
            [
                "echo '@@BENCH 0 peer'",
                "echo '@@BENCH 0 ours'",
                "echo '@@BENCH 1 ours'",
                "echo '@@BENCH 1 peer'",
                "echo '@@BENCH end'"
            ]
        );
        assert_eq!(g.matches("rm -rf /dev/hugepages/*").count(), 4);
        assert!(g.contains("timeout -s INT 20 dpdk-testpmd -l 0-1 -m 128 --file-prefix fpd"));
        assert!(g.contains("-d /dpdk/librte_net_virtio.so.23"));
    }

    #[test]
    fn options() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Opts::parse(&[]).unwrap().seconds, 10);
        assert_eq!(Opts::parse(&a(&["--seconds", "20"])).unwrap().seconds, 20);
        assert!(Opts::parse(&a(&["--seconds", "2"])).is_err(), "below 4");
        assert!(Opts::parse(&a(&["--seconds"])).is_err());
        assert!(Opts::parse(&a(&["--depths", "1"])).is_err());
    }

    #[test]
    fn rates_per_period_and_forwarded_total() {
        let out = "\n  Port statistics ====\n  Rx-pps:  100  Rx-bps: 1\n  Rx-pps: 50 Rx-bps: 2\n\
                   \n  Port statistics ====\n  Rx-pps: 10\n  Rx-pps: 20\n\
                   +++ Accumulated forward statistics for all ports+++\n  RX-packets: 777  RX-dropped: 0\n";
        assert_eq!(period_rates(out), vec![150.0, 30.0]);
        assert_eq!(forwarded(out), Some(777.0));
        assert_eq!(median_rate(out), None, "too few periods");
    }

    #[test]
    fn notifications_are_split_by_driver_ok_and_reset() {
        let t = "1@1.0:virtio_set_status vdev 0xa val 0\n\
                 1@1.0:virtio_set_status vdev 0xa val 15\n\
                 1@1.0:virtio_set_status vdev 0xb val 15\n\
                 1@1.1:virtio_queue_notify vdev 0xa n 1 vq 0x1\n\
                 1@1.1:virtio_queue_notify vdev 0xb n 1 vq 0x2\n\
                 1@1.2:virtio_set_status vdev 0xa val 0\n\
                 1@1.2:virtio_set_status vdev 0xb val 0\n\
                 1@1.3:virtio_queue_notify vdev 0xa n 1 vq 0x1\n\
                 1@1.4:virtio_set_status vdev 0xa val 15\n\
                 1@1.4:virtio_set_status vdev 0xb val 15\n\
                 1@1.5:virtio_queue_notify vdev 0xb n 0 vq 0x3\n\
                 1@1.6:virtio_set_status vdev 0xb val 0\n\
                 1@1.6:virtio_set_status vdev 0xa val 0\n";
        assert_eq!(notifies_per_run(t), vec![2, 1]);
        // Without the "pid@time:" prefix (no -msg timestamp=on) as well.
        let t2 = t
            .lines()
            .map(|l| l.split_once(':').unwrap().1)
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(notifies_per_run(&t2), vec![2, 1]);
    }
}
