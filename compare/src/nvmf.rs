//! `nvmf`: our NVMe/TCP target (`ferroplane-tgt`) against SPDK's `nvmf_tgt`, on
//! 127.0.0.1, the same initiators on both, 4 KiB random reads at each queue depth
//! from a 64 MiB malloc namespace (512-byte blocks): SPDK's `spdk_nvme_perf`, and
//! our initiator, our `bdevperf` over `bdev_nvme_attach_controller -t tcp` (JSON
//! config).
//!
//! Each side runs on lcore 0 (`-m 0x1`); the initiator on core 1 (`-c 0x2` / `-m
//! 0x2`, no hugepages). Both targets are configured through the same RPC calls
//! (SPDK's names; `ferroplane-rpc` speaks to either socket). Values: IOPS, mean
//! latency (us), the target's CPU time per I/O (us: utime + stime of the target
//! process from /proc over the run, divided by the I/Os; a polling target burns its
//! core whatever the load) and, for bdevperf, the initiator's (its rusage).
//! Sides alternate order every round.
//!
//! With `--kernel`, the peer is the Linux kernel's target instead ([`crate::nvmf_kernel`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::args::DepthOpts;
use crate::daemon::{clk_tck, cpu_ticks, rpc, start, Target};
use crate::error::{Error, Result};
use crate::harness::{self, HugePages, Job};
use crate::parse;
use crate::table::{Better, Side, Table};
use crate::Ctx;

pub struct Opts {
    depth: DepthOpts,
    /// `--kernel`: the Linux kernel's target is the peer, in the guest.
    kernel: bool,
}

impl Opts {
    /// `--spdk` defaults to `FP_SPDK_DIR`; the tree is checked when the target starts.
    pub fn parse(args: &[String]) -> Result<Opts> {
        let spdk = std::env::var_os("FP_SPDK_DIR").map(PathBuf::from);
        let kernel = args.iter().any(|a| a == "--kernel");
        let rest: Vec<String> = args.iter().filter(|a| *a != "--kernel").cloned().collect();
        let depth = DepthOpts::parse("nvmf", &rest, spdk)?;
        Ok(Opts { depth, kernel })
    }
}

impl std::ops::Deref for Opts {
    type Target = DepthOpts;
    fn deref(&self) -> &DepthOpts {
        &self.depth
    }
}

const NQN: &str = "nqn.2016-06.io.spdk:cnode1";
/// SPDK's nvmf_tgt memory (-s 512) in 2 MiB pages.
const SPDK_PAGES: u64 = 256;

/// CPU seconds (user + system) of the children waited for so far.
fn children_cpu_s() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid `who` and a valid pointer to `u`.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Our bdevperf's JSON config: attach the target at `port` as `Nvme0`.
fn attach_config(port: u16) -> String {
    let calls = serde_json::json!([
        {"method": "bdev_nvme_attach_controller",
            "params": {"name": "Nvme0", "trtype": "TCP", "adrfam": "IPv4",
                "traddr": "127.0.0.1", "trsvcid": port.to_string(), "subnqn": NQN}},
    ]);
    serde_json::json!({"subsystems": [{"subsystem": "bdev", "config": calls}]}).to_string()
}

/// One initiator run's values.
struct RunValues<'a> {
    case: &'a str,
    r: parse::IoResult,
    seconds: u64,
    /// Target CPU ticks before and after.
    tgt_ticks: (Option<u64>, Option<u64>),
    /// Initiator CPU seconds, when known.
    init_cpu_s: Option<f64>,
}

fn record(t: &mut Table, round: usize, side: Side, v: &RunValues<'_>) {
    let case = v.case;
    t.record(
        round,
        side,
        &format!("{case} IOPS"),
        "IOPS",
        Better::Higher,
        v.r.iops,
    );
    t.record(
        round,
        side,
        &format!("{case} mean latency"),
        "us",
        Better::Lower,
        v.r.lat_us,
    );
    let ios = v.r.iops * v.seconds as f64;
    if ios <= 0.0 {
        return;
    }
    if let (Some(a), Some(b)) = v.tgt_ticks {
        let cpu_s = (b.saturating_sub(a)) as f64 / clk_tck();
        let name = format!("{case} target CPU per I/O");
        t.record(round, side, &name, "us", Better::Lower, cpu_s * 1e6 / ios);
    }
    if let Some(c) = v.init_cpu_s {
        let name = format!("{case} initiator CPU per I/O");
        t.record(round, side, &name, "us", Better::Lower, c * 1e6 / ios);
    }
}

fn configure(rpc_bin: &Path, t: &Target, port: u16, who: &str) -> Result<()> {
    let p = port.to_string();
    // Both targets answer RPCs before their subsystems are up: retry the first call.
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let args = ["bdev_malloc_create", "-b", "Malloc0", "64", "512"];
        match rpc(rpc_bin, &t.sock, &args, who) {
            Ok(()) => break,
            Err(e) if Instant::now() > end => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    rpc(
        rpc_bin,
        &t.sock,
        &["nvmf_create_transport", "-t", "TCP"],
        who,
    )?;
    rpc(
        rpc_bin,
        &t.sock,
        &["nvmf_create_subsystem", NQN, "-a", "-s", "FP0001"],
        who,
    )?;
    rpc(
        rpc_bin,
        &t.sock,
        &["nvmf_subsystem_add_ns", NQN, "Malloc0"],
        who,
    )?;
    rpc(
        rpc_bin,
        &t.sock,
        &[
            "nvmf_subsystem_add_listener",
            NQN,
            "-t",
            "tcp",
            "-a",
            "127.0.0.1",
            "-s",
            &p,
        ],
        who,
    )
}

pub fn run(ctx: &mut Ctx, o: &Opts) -> Result<Table> {
    if o.kernel {
        return crate::nvmf_kernel::run(ctx, &o.depth);
    }
    let spdk = o.spdk.clone().ok_or_else(|| {
        Error::Usage(
            "nvmf: needs a built SPDK tree: --spdk DIR or FP_SPDK_DIR (scripts/spdk.sh builds one)"
                .into(),
        )
    })?;
    let lib = spdk.join("build/lib");
    let perf = spdk.join("build/bin/spdk_nvme_perf");
    let spdk_tgt = spdk.join("build/bin/nvmf_tgt");
    for p in [&perf, &spdk_tgt] {
        if !p.exists() {
            return Err(Error::Usage(format!(
                "nvmf: {} missing (build SPDK first)",
                p.display()
            )));
        }
    }
    ctx.build(&["ferroplane-tgt", "ferroplane-rpc", "bdevperf"])?;
    let mut hp = HugePages::reserve(SPDK_PAGES + 16, ctx.common.keep_hugepages)?;
    let peer = "SPDK v25.09 nvmf_tgt".to_string();
    let mut t = ctx.table(
        format!(
            "nvmf: {peer} vs ferroplane-tgt, NVMe/TCP on 127.0.0.1, spdk_nvme_perf and our bdevperf (bdev_nvme_attach_controller -t tcp), 4 KiB randread, malloc namespace, target on core 0, initiator on core 1"
        ),
        peer.clone(),
    );
    let port0 = 30000 + (std::process::id() % 10000) as u16;
    for round in 0..ctx.common.repeat {
        for side in harness::round_order(&ctx.sides(), round) {
            crate::ring::say_round(ctx, round, side, &peer);
            let port = port0 + (round * 3 + side_no(side)) as u16;
            let sock = ctx
                .work()
                .join(format!("tgt-{round}-{}.sock", side_no(side)));
            let log = ctx.out("nvmf-tgt", side, round).with_extension("log");
            let rpc_bin = ctx.bin(Side::Ours, "ferroplane-rpc");
            let (who, tgt) = match side {
                Side::Peer => {
                    hp.ensure_free(SPDK_PAGES, "SPDK nvmf_tgt")?;
                    let mut cmd = Command::new(&spdk_tgt);
                    cmd.env("LD_LIBRARY_PATH", &lib)
                        .args(["-m", "0x1", "-s", "512", "-u", "-r"])
                        .arg(&sock);
                    (
                        "SPDK nvmf_tgt".to_string(),
                        start(&mut cmd, sock, "SPDK nvmf_tgt", &log)?,
                    )
                }
                Side::Ours | Side::Base => {
                    let who = format!("{} ferroplane-tgt", ctx.label(side));
                    let mut cmd = Command::new(ctx.bin(side, "ferroplane-tgt"));
                    cmd.args(harness::OURS_ONE_CORE_EAL)
                        .arg(format!("fpcmpnvmf{}", std::process::id()))
                        .arg("-r")
                        .arg(&sock);
                    let t = start(&mut cmd, sock, &who, &log)?;
                    (who, t)
                }
            };
            configure(&rpc_bin, &tgt, port, &who)?;
            let pid = tgt.child.id();
            for &d in &o.depths {
                let mut cmd = Command::new(&perf);
                cmd.env("LD_LIBRARY_PATH", &lib).args([
                    "--no-huge",
                    "-s",
                    "512",
                    "-c",
                    "0x2",
                    "-q",
                    &d.to_string(),
                    "-o",
                    "4096",
                    "-w",
                    "randread",
                    "-t",
                    &o.seconds.to_string(),
                    "-r",
                ]);
                cmd.arg(format!(
                    "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{NQN}"
                ));
                let c0 = cpu_ticks(pid);
                let out = harness::run(Job::new(
                    &format!("spdk_nvme_perf against {who}"),
                    cmd,
                    Duration::from_secs(o.seconds + 120),
                    ctx.out(&format!("nvmf-q{d}"), side, round),
                ))?;
                let c1 = cpu_ticks(pid);
                let r = parse::nvme_perf(&out.stdout)
                    .filter(|r| r.iops > 0.0)
                    .ok_or_else(|| out.fail(&who, "spdk_nvme_perf printed no Total line"))?;
                let v = RunValues {
                    case: &format!("spdk_nvme_perf randread 4KiB qd{d}"),
                    r,
                    seconds: o.seconds,
                    tgt_ticks: (c0, c1),
                    init_cpu_s: None,
                };
                record(&mut t, round, side, &v);
            }
            // Our initiator: bdevperf attaching over NVMe/TCP.
            let cfg = ctx
                .work()
                .join(format!("attach-{round}-{}.json", side_no(side)));
            std::fs::write(&cfg, attach_config(port))
                .map_err(|e| Error::io(format!("write {}", cfg.display()), e))?;
            for &d in &o.depths {
                let mut cmd = Command::new(ctx.bin(Side::Ours, "bdevperf"));
                cmd.args(["-m", "0x2", "--no-huge", "-s", "256", "--no-pci"])
                    .arg("--file-prefix")
                    .arg(format!("fpcmpbp{}", std::process::id()))
                    .arg("-r")
                    .arg(ctx.work().join("bdevperf.sock"))
                    .arg("--json")
                    .arg(&cfg)
                    .args(["-q", &d.to_string(), "-o", "4096", "-w", "randread"])
                    .args(["-t", &o.seconds.to_string(), "-T", "Nvme0n1"]);
                let (c0, i0) = (cpu_ticks(pid), children_cpu_s());
                let out = harness::run(Job {
                    side: &format!("our bdevperf against {who}"),
                    cmd,
                    feed: Vec::new(),
                    interrupt: None,
                    timeout: Duration::from_secs(o.seconds + 120),
                    file: ctx.out(&format!("nvmf-bdevperf-q{d}"), side, round),
                })?;
                let (c1, i1) = (cpu_ticks(pid), children_cpu_s());
                let r = parse::bdevperf(&out.stdout)
                    .filter(|r| r.iops > 0.0)
                    .ok_or_else(|| out.fail(&who, "our bdevperf printed no Total line"))?;
                let v = RunValues {
                    case: &format!("our bdevperf randread 4KiB qd{d}"),
                    r,
                    seconds: o.seconds,
                    tgt_ticks: (c0, c1),
                    init_cpu_s: Some(i1 - i0),
                };
                record(&mut t, round, side, &v);
            }
            drop(tgt);
            if side == Side::Peer {
                hp.clean_leftovers();
            }
        }
    }
    Ok(t)
}

fn side_no(s: Side) -> usize {
    match s {
        Side::Peer => 0,
        Side::Ours => 1,
        Side::Base => 2,
    }
}
