//! `bdevperf`: our `bdevperf` against SPDK's own (`build/examples/bdevperf` of a built
//! SPDK tree, `--spdk DIR` or `FP_SPDK_DIR`), and our uring bdev against fio with
//! io_uring, one core, in alternating rounds:
//!
//! - SPDK: both bdevperfs load the same JSON configuration (a malloc bdev and a null
//!   bdev, 4 KiB blocks; SPDK's build here has no uring module, so the uring bdev has a
//!   configuration of its own) and run with the same flags (`-m 0x1 -q D -o 4096 -w W -t S
//!   -T BDEV`), SPDK's with `-u` (no PCI) and `LD_LIBRARY_PATH=DIR/build/lib` on
//!   hugepages, ours with `--no-huge` (its malloc disk is anonymous memory either way);
//! - fio: `fio --ioengine=io_uring --direct=1 --registerfiles=1` on a file in /var/tmp
//!   against our bdevperf on a uring bdev over the same file (`bdev_uring_create`),
//!   same depth, I/O size and pattern, both pinned to CPU 0. The rings are set up alike
//!   (fio 3.33 and ours: `SINGLE_ISSUER | DEFER_TASKRUN`, O_DIRECT, the file registered
//!   with the ring, no registered buffers, no SQ thread, no polled completions).
//!
//! Values: IOPS from the `Total` line (bdevperf) or fio's JSON; the ratio is ours over
//! the peer's, paired per round.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::harness::{self, HugePages, Job};
use crate::parse;
use crate::table::{Better, Side, Table};
use crate::Ctx;

/// SPDK's bdevperf inside a built SPDK tree.
const SPDK_BDEVPERF: &str = "build/examples/bdevperf";

pub struct Opts {
    seconds: u64,
    depths: Vec<u32>,
    workloads: Vec<String>,
    spdk: Option<PathBuf>,
    fio: bool,
    file_mb: u64,
}

impl Opts {
    pub fn parse(args: &[String]) -> Result<Opts> {
        let mut o = Opts {
            seconds: 2,
            depths: vec![1, 32],
            workloads: vec!["randread".into()],
            spdk: std::env::var_os("FP_SPDK_DIR").map(PathBuf::from),
            fio: true,
            file_mb: 256,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--seconds" => {
                    o.seconds = crate::args::number_arg(&mut it, "--seconds", 1, 600)?
                }
                "--depths" => {
                    o.depths = crate::args::number_list(&mut it, "--depths", 1u32, 1024)?
                }
                "--workloads" => {
                    o.workloads = crate::args::value(&mut it, a)?
                        .split(',')
                        .map(|w| match w {
                            "read" | "write" | "randread" | "randwrite" => Ok(w.to_string()),
                            _ => Err(Error::Usage(format!(
                                "invalid value '{w}' for --workloads: read, write, randread or randwrite"
                            ))),
                        })
                        .collect::<Result<_>>()?
                }
                "--spdk" => o.spdk = Some(PathBuf::from(crate::args::value(&mut it, a)?)),
                "--no-fio" => o.fio = false,
                "--file-mb" => {
                    o.file_mb = crate::args::number_arg(&mut it, "--file-mb", 16, 65536)?
                }
                _ => return Err(crate::args::unknown_arg(Some("bdevperf"), a)),
            }
        }
        if let Some(d) = &o.spdk {
            if !d.join(SPDK_BDEVPERF).is_file() {
                return Err(Error::Usage(format!(
                    "no {SPDK_BDEVPERF} under {} (--spdk or FP_SPDK_DIR: a built SPDK tree; \
                     scripts/spdk.sh builds one)",
                    d.display()
                )));
            }
        }
        if o.spdk.is_none() && !o.fio {
            return Err(Error::Usage(
                "bdevperf: nothing to compare (no SPDK tree: give --spdk DIR or FP_SPDK_DIR; and --no-fio)".into(),
            ));
        }
        Ok(o)
    }
}

/// SPDK's hugepage memory for its bdevperf (-s), in 2 MiB pages.
const SPDK_MEM_MB: u64 = 512;

/// The JSON configuration both bdevperfs load (malloc and null).
fn bdev_config() -> String {
    let calls = serde_json::json!([
        {"method": "bdev_malloc_create",
            "params": {"name": "Malloc0", "num_blocks": 32768, "block_size": 4096}},
        {"method": "bdev_null_create",
            "params": {"name": "Null0", "num_blocks": 262144, "block_size": 4096}},
    ]);
    serde_json::json!({"subsystems": [{"subsystem": "bdev", "config": calls}]}).to_string()
}

/// Our side of the fio cases: a uring bdev on the fio file (SPDK's build here has no
/// uring module, so this is a file of its own).
fn uring_config(file: &Path) -> String {
    let calls = serde_json::json!([
        {"method": "bdev_uring_create",
            "params": {"name": "Uring0", "filename": file, "block_size": 512}},
    ]);
    serde_json::json!({"subsystems": [{"subsystem": "bdev", "config": calls}]}).to_string()
}

/// IOPS of a bdevperf run (the `Total` line).
pub fn bdevperf_iops(text: &str) -> Option<f64> {
    parse::nvme_perf(text).map(|r| r.iops).filter(|v| *v > 0.0)
}

fn ours_cmd(ctx: &Ctx, side: Side, cfg: &Path, args: &[String], prefix: &str) -> Command {
    let mut c = Command::new(ctx.bin(side, "bdevperf"));
    c.args(harness::OURS_ONE_CORE_EAL)
        .arg(prefix)
        .arg("-r")
        .arg(ctx.work().join(format!("{prefix}.sock")))
        .arg("--json")
        .arg(cfg)
        .args(args);
    c
}

pub fn run(ctx: &mut Ctx, o: &Opts) -> Result<Table> {
    ctx.build(&["bdevperf"])?;
    if o.fio {
        harness::apt_need(&["fio"], &["fio"])?;
    }
    // The uring bdev and fio use a file in /var/tmp (the work dir may be tmpfs, where
    // O_DIRECT is refused).
    let data = PathBuf::from(format!("/var/tmp/fpcmp-uring-{}.img", std::process::id()));
    let _cleanup = RemoveOnDrop(data.clone());
    if o.fio {
        let f = fs::File::create(&data).map_err(|e| Error::io("create the fio/uring file", e))?;
        f.set_len(o.file_mb << 20)
            .map_err(|e| Error::io("size the fio/uring file", e))?;
        // Written once so reads hit allocated blocks on both sides.
        sh_fill(&data, o.file_mb)?;
    }
    let cfg = ctx.work().join("bdevs.json");
    fs::write(&cfg, bdev_config()).map_err(|e| Error::io("write the bdev configuration", e))?;
    let ucfg = ctx.work().join("uring.json");
    fs::write(&ucfg, uring_config(&data))
        .map_err(|e| Error::io("write the uring configuration", e))?;
    let mut hp = match &o.spdk {
        Some(_) => Some(HugePages::reserve(
            SPDK_MEM_MB / 2 + 8,
            ctx.common.keep_hugepages,
        )?),
        None => None,
    };
    let mut t = ctx.table(
        "bdevperf: SPDK bdevperf (malloc, null) and fio io_uring (file) vs our bdevperf, one core, 4 KiB, IOPS",
        "peer",
    );
    for round in 0..ctx.common.repeat {
        for side in harness::round_order(&ctx.sides(), round) {
            crate::ring::say_round(ctx, round, side, "peer");
            for w in &o.workloads {
                for &d in &o.depths {
                    let flags: Vec<String> = [
                        "-q",
                        &d.to_string(),
                        "-o",
                        "4096",
                        "-w",
                        w,
                        "-t",
                        &o.seconds.to_string(),
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                    if let Some(spdk) = &o.spdk {
                        for bdev in ["Malloc0", "Null0"] {
                            let case = format!(
                                "{} {w} q{d} vs SPDK bdevperf",
                                bdev.trim_end_matches('0').to_lowercase()
                            );
                            let mut args = flags.clone();
                            args.extend(["-T".to_string(), bdev.to_string()]);
                            let v = match side {
                                Side::Peer => {
                                    let hp = hp.as_mut().expect("reserved with --spdk");
                                    spdk_run(ctx, hp, spdk, &cfg, &args, &case, round)?
                                }
                                _ => ours_run(ctx, side, &cfg, &args, &case, round)?,
                            };
                            t.record(round, side, &case, "IOPS", Better::Higher, v);
                        }
                    }
                    if o.fio {
                        let case = format!("uring {w} q{d} vs fio io_uring");
                        let v = match side {
                            Side::Peer => fio_run(ctx, &data, w, d, o.seconds, round)?,
                            _ => {
                                let mut args = flags.clone();
                                args.extend(["-T".to_string(), "Uring0".to_string()]);
                                ours_run(ctx, side, &ucfg, &args, &case, round)?
                            }
                        };
                        t.record(round, side, &case, "IOPS", Better::Higher, v);
                    }
                }
            }
        }
    }
    Ok(t)
}

fn slug(case: &str) -> String {
    case.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn ours_run(
    ctx: &Ctx,
    side: Side,
    cfg: &Path,
    args: &[String],
    case: &str,
    round: usize,
) -> Result<f64> {
    let who = format!("{} bdevperf ({case})", ctx.label(side));
    let prefix = format!("fpcmpbp{}{}", std::process::id(), round);
    let out = harness::run(Job::new(
        &who,
        ours_cmd(ctx, side, cfg, args, &prefix),
        Duration::from_secs(300),
        ctx.out(&slug(case), side, round),
    ))?;
    bdevperf_iops(&out.stdout).ok_or_else(|| out.fail(&who, "printed no Total line"))
}

fn spdk_run(
    ctx: &Ctx,
    hp: &mut HugePages,
    spdk: &Path,
    cfg: &Path,
    args: &[String],
    case: &str,
    round: usize,
) -> Result<f64> {
    let who = format!("SPDK bdevperf ({case})");
    hp.ensure_free(SPDK_MEM_MB / 2, &who)?;
    // SPDK's apps take no --file-prefix: theirs is spdk_pid<PID>, and they unlink their
    // hugepage files (--huge-unlink), so nothing is left behind to clean.
    let mut cmd = Command::new(spdk.join(SPDK_BDEVPERF));
    cmd.env("LD_LIBRARY_PATH", spdk.join("build/lib"))
        .args(["-u", "-m", "0x1", "-s", &SPDK_MEM_MB.to_string()])
        .arg("-r")
        .arg(ctx.work().join(format!("spdk{round}.sock")))
        .arg("--json")
        .arg(cfg)
        .args(args);
    let out = harness::run(Job::new(
        &who,
        cmd,
        Duration::from_secs(300),
        ctx.out(&slug(case), Side::Peer, round),
    ));
    hp.clean_leftovers();
    let out = out?;
    bdevperf_iops(&out.stdout).ok_or_else(|| out.fail(&who, "printed no Total line"))
}

fn fio_run(ctx: &Ctx, file: &Path, w: &str, depth: u32, secs: u64, round: usize) -> Result<f64> {
    let who = "fio io_uring";
    let mut cmd = Command::new("fio");
    cmd.args([
        "--name=fp",
        "--ioengine=io_uring",
        "--direct=1",
        // Ours registers the file with its ring too.
        "--registerfiles=1",
        "--bs=4k",
        "--thread",
    ])
    .arg(format!("--filename={}", file.display()))
    .arg(format!("--rw={w}"))
    .arg(format!("--iodepth={depth}"))
    .arg(format!("--runtime={secs}"))
    .args(["--time_based", "--cpus_allowed=0", "--output-format=json"]);
    let case = format!("uring {w} q{depth} vs fio io_uring");
    let out = harness::run(Job::new(
        who,
        cmd,
        Duration::from_secs(secs + 120),
        ctx.out(&slug(&case), Side::Peer, round),
    ))?;
    parse::fio_json_iops(&out.stdout).ok_or_else(|| out.fail(who, "printed no fio JSON result"))
}

/// Fill `path` with non-zero data (`dd`), so neither side reads holes.
fn sh_fill(path: &Path, mb: u64) -> Result<()> {
    harness::sh(
        "fill the fio/uring file",
        Command::new("dd")
            .arg("if=/dev/urandom")
            .arg(format!("of={}", path.display()))
            .args([
                "bs=1M",
                &format!("count={mb}"),
                "conv=notrunc",
                "status=none",
            ]),
    )
    .map(|_| ())
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_bdevperfs() {
        let spdk = include_str!("../samples/bdevperf_spdk.txt");
        let ours = include_str!("../samples/bdevperf_ours.txt");
        assert_eq!(bdevperf_iops(spdk), Some(113545.57));
        assert_eq!(bdevperf_iops(ours), Some(99954.88));
        assert_eq!(bdevperf_iops("Running I/O for 1 seconds...\n"), None);
    }

    #[test]
    fn options() {
        let a = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let o = Opts::parse(&a(
            "--seconds 3 --depths 1,8 --workloads randread,write --no-fio --spdk /nonexistent",
        ));
        assert!(o.is_err(), "a tree without bdevperf is refused");
        let o = Opts::parse(&a("--workloads scan"));
        assert!(o.is_err());
        let o = Opts::parse(&a("--depths 0"));
        assert!(o.is_err());
    }
}
