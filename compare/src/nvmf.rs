//! `nvmf`: our NVMe/TCP target (`ferroplane-tgt`) against SPDK's `nvmf_tgt`, on
//! 127.0.0.1, the same initiator on both: SPDK's `spdk_nvme_perf`, 4 KiB random
//! reads at each queue depth from a 64 MiB malloc namespace (512-byte blocks).
//!
//! Each side runs on lcore 0 (`-m 0x1`); the initiator on core 1 (`-c 0x2`, no
//! hugepages). Both targets are configured through the same RPC calls (SPDK's
//! names; `ferroplane-rpc` speaks to either socket). Values: IOPS, mean latency
//! (us) and the target's CPU time per I/O (us: utime + stime of the target process
//! from /proc over the run, divided by the I/Os; a polling target burns its core
//! whatever the load). Sides alternate order every round.

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

pub struct Opts(DepthOpts);

impl Opts {
    /// `--spdk` defaults to `FP_SPDK_DIR`; the tree is checked when the target starts.
    pub fn parse(args: &[String]) -> Result<Opts> {
        let spdk = std::env::var_os("FP_SPDK_DIR").map(PathBuf::from);
        DepthOpts::parse("nvmf", args, spdk).map(Opts)
    }
}

impl std::ops::Deref for Opts {
    type Target = DepthOpts;
    fn deref(&self) -> &DepthOpts {
        &self.0
    }
}

const NQN: &str = "nqn.2016-06.io.spdk:cnode1";
/// SPDK's nvmf_tgt memory (-s 512) in 2 MiB pages.
const SPDK_PAGES: u64 = 256;

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
    ctx.build(&["ferroplane-tgt", "ferroplane-rpc"])?;
    let mut hp = HugePages::reserve(SPDK_PAGES + 16, ctx.common.keep_hugepages)?;
    let peer = "SPDK v25.09 nvmf_tgt".to_string();
    let mut t = ctx.table(
        format!(
            "nvmf: {peer} vs ferroplane-tgt, NVMe/TCP on 127.0.0.1, spdk_nvme_perf 4 KiB randread, malloc namespace, target on core 0, initiator on core 1"
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
                let case = format!("randread 4KiB qd{d}");
                t.record(
                    round,
                    side,
                    &format!("{case} IOPS"),
                    "IOPS",
                    Better::Higher,
                    r.iops,
                );
                t.record(
                    round,
                    side,
                    &format!("{case} mean latency"),
                    "us",
                    Better::Lower,
                    r.lat_us,
                );
                if let (Some(a), Some(b)) = (c0, c1) {
                    let cpu_s = (b.saturating_sub(a)) as f64 / clk_tck();
                    let ios = r.iops * o.seconds as f64;
                    if ios > 0.0 {
                        t.record(
                            round,
                            side,
                            &format!("{case} target CPU per I/O"),
                            "us",
                            Better::Lower,
                            cpu_s * 1e6 / ios,
                        );
                    }
                }
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
