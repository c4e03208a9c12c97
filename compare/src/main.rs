//! `ferroplane-compare`: Ferroplane's apps side by side with their peers on this machine,
//! in one invocation, printing one ratio table.
//!
//! ```text
//! cargo run --release -p ferroplane-compare -- <SUBCOMMAND> [OPTIONS]
//!
//!   ring      DPDK's dpdk-test ring_perf_autotest   vs our ring_perf
//!   mempool   DPDK's dpdk-test mempool_perf_autotest vs our mempool_perf
//!   pmd       DPDK's dpdk-testpmd (io forwarding)   vs our pmd_perf
//!   testpmd   DPDK's dpdk-testpmd                   vs our testpmd (same commands)
//!   nvme      fio (kernel NVMe, io_uring), SPDK     vs our nvme-perf, in the QEMU guest
//!   bdevperf  SPDK's bdevperf (malloc, null), fio   vs our bdevperf (malloc, null, uring)
//!   nvmf      SPDK's nvmf_tgt                       vs ferroplane-tgt, NVMe/TCP on 127.0.0.1
//!             (--kernel: Linux nvmet-tcp            vs ferroplane-tgt, kernel initiator
//!                                                      and fio in the QEMU guest)
//!   vhost     qemu-storage-daemon                   vs ferroplane-tgt, vhost-user-blk, fio in
//!                                                      the QEMU guest, one file for both
//!   framework crossbeam-channel between two cpus    vs framework messages (msg_perf)
//!   virtio    DPDK's dpdk-testpmd + net_virtio      vs our testpmd + net_virtio, in the QEMU guest
//! ```
//!
//! Our side runs the apps in `apps/src/bin` (release builds) through their command lines
//! only. In every round each side runs once, the order alternating between rounds, so
//! both see the same host conditions (a small VM's vCPU placement changes over minutes).
//! `--baseline REV` builds the same apps at a git revision (a temporary worktree under
//! /tmp with its own target directory, removed at the end) and runs them as a third side
//! in the same rounds. A side that fails or prints nothing parseable stops the run with
//! an error naming it and quoting its output; it is never shown as 0.
//!
//! The table, its legend and the summary are described in [`table`]. Needs root:
//! installs Debian's dpdk and dpdk-dev (and fio for nvme) if missing, reserves 2 MiB
//! hugepages and mounts hugetlbfs on /dev/hugepages if needed, and restores both.

mod args;
mod bdev;
mod daemon;
mod error;
mod framework;
mod guest;
mod harness;
mod mempool;
mod net;
mod nvme;
mod nvmf;
mod nvmf_kernel;
mod parse;
mod ring;
mod table;
mod vhost;
mod virtio;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use error::{Error, Result};
use harness::{Baseline, WorkDir};
use table::{Side, Table};

const USAGE: &str = "\
usage: ferroplane-compare <ring|mempool|pmd|testpmd|nvme|bdevperf|nvmf|vhost|framework|virtio> [options]

common options:
  --repeat N             rounds, each running every side once, order alternating (default 3)
  --baseline REV         also build our apps at git revision REV and run them as a third side
  --baseline-target DIR  cargo target dir for the baseline build (kept and reused; default:
                         inside the temporary worktree, removed at the end)
  --markdown             print the table as Markdown
  --keep-work            keep the sides' raw outputs (path printed at the end)
  --keep-hugepages       do not restore the hugepage reservation and mount at exit
ring:     --full         DPDK's iteration counts for ours too (DPDK always uses them)
mempool:  --time-s T     seconds per case and side (default 0.1; DPDK's test runs all 720
                         cases, its 5 s per case scaled to T through an LD_PRELOAD shim)
          --all          show every case (default: no cache and cache, n_keep 32/128,
                         bulks 1/4/32)
pmd, testpmd:
          --seconds S    measuring window per run (default 5)
          --only LIST    scenarios, comma-separated: null,ring,afpacket (default: all)
nvme:     --seconds S    per run (default 5, plus 1 s warm-up)
          --depths LIST  queue depths (default 1,32)
          --spdk DIR     also run SPDK's spdk_nvme_perf from this built SPDK tree (e.g. one
                         made by SPDK v25.09's configure and make against Debian's DPDK)
bdevperf: --seconds S    per run (default 2)
          --depths LIST  queue depths (default 1,32)
          --workloads L  read,write,randread,randwrite (default randread)
          --spdk DIR     SPDK tree with build/examples/bdevperf (default: $FP_SPDK_DIR)
          --no-fio       skip the uring bdev vs fio io_uring cases
          --file-mb N    size of the uring/fio file in /var/tmp (default 256)

nvmf:     --seconds S    per run (default 5)
          --depths LIST  queue depths (default 1,32)
          --spdk DIR     the built SPDK tree (default $FP_SPDK_DIR): its nvmf_tgt is the
                         peer target, its spdk_nvme_perf the initiator on both sides
          --kernel       instead: the Linux kernel's nvmet-tcp is the peer, in one QEMU
                         guest, the kernel's nvme-tcp initiator and fio on both sides
vhost:    --seconds S    per fio run (default 5)
          --depths LIST  queue depths (default 1,32)
          --workloads L  read,write,randread,randwrite (default randread,randwrite)
          --file PATH    the file both servers export (default /dev/shm/fp-compare-vhost.img,
                         made and removed by the tool)
          --size-mib N   its size (default 256)
          --tgt-args A   our target's core arguments, replacing '-m 0x1' (e.g. '-m 0x1
                         --poll-mode')
framework: --messages N  one-way messages per run (default 2000000)
          --round-trips N round trips per run (default 200000)
virtio:   --seconds S    per run (default 10, plus 15 s to start; the first 2 s are warm-up)";

/// Options every subcommand takes.
pub struct Common {
    pub repeat: usize,
    pub baseline: Option<String>,
    pub baseline_target: Option<PathBuf>,
    pub markdown: bool,
    pub keep_work: bool,
    pub keep_hugepages: bool,
}

/// What a subcommand gets: the options, a work directory, our apps and the baseline's.
pub struct Ctx {
    pub common: Common,
    pub work: WorkDir,
    ours: PathBuf,
    base: Option<Baseline>,
}

impl Ctx {
    /// Build `bins` now and, with `--baseline`, at that revision.
    fn build(&mut self, bins: &[&str]) -> Result<()> {
        self.ours = harness::build_apps(&harness::repo_root(), None, bins, "ours")?;
        if let Some(rev) = &self.common.baseline {
            self.base = Some(Baseline::build(
                rev,
                self.common.baseline_target.as_deref(),
                bins,
            )?);
        }
        Ok(())
    }

    /// The sides in their round-0 order.
    pub fn sides(&self) -> Vec<Side> {
        let mut v = vec![Side::Peer, Side::Ours];
        if self.base.is_some() {
            v.push(Side::Base);
        }
        v
    }

    /// Path of our app `name` for `side` (Ours or Base).
    pub fn bin(&self, side: Side, name: &str) -> PathBuf {
        let dir = match (side, &self.base) {
            (Side::Base, Some(b)) => &b.bin_dir,
            _ => &self.ours,
        };
        if harness::EXAMPLES.iter().any(|(n, _)| *n == name) {
            dir.join("examples").join(name)
        } else {
            dir.join(name)
        }
    }

    /// "ours" or "ours@REV".
    pub fn label(&self, side: Side) -> String {
        match (side, &self.base) {
            (Side::Base, Some(b)) => b.label(),
            _ => "ours".into(),
        }
    }

    pub fn table(&self, title: impl Into<String>, peer: impl Into<String>) -> Table {
        Table::new(title, peer, self.base.as_ref().map(Baseline::label))
    }

    /// A file stem in the work directory for one run's output.
    pub fn out(&self, what: &str, side: Side, round: usize) -> PathBuf {
        let s = match side {
            Side::Peer => "peer",
            Side::Ours => "ours",
            Side::Base => "base",
        };
        self.work.path.join(format!("{what}-{s}-run{}", round + 1))
    }

    pub fn work(&self) -> &Path {
        &self.work.path
    }
}

fn real_main(args: &[String]) -> Result<()> {
    let Some(sub) = args.first() else {
        return Err(Error::Usage(USAGE.into()));
    };
    if sub == "-h" || sub == "--help" {
        println!("{USAGE}");
        return Ok(());
    }
    if !matches!(
        sub.as_str(),
        "ring"
            | "mempool"
            | "pmd"
            | "testpmd"
            | "nvme"
            | "bdevperf"
            | "nvmf"
            | "framework"
            | "virtio"
    ) {
        return Err(Error::Usage(format!(
            "unknown subcommand '{sub}': ring, mempool, pmd, testpmd, nvme, bdevperf, nvmf, framework or virtio (see --help)"
        )));
    }
    let mut common = Common {
        repeat: 3,
        baseline: None,
        baseline_target: None,
        markdown: false,
        keep_work: false,
        keep_hugepages: false,
    };
    let mut rest = Vec::new();
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--repeat" => common.repeat = args::number_arg(&mut it, "--repeat", 1, 1000)?,
            "--baseline" => common.baseline = Some(args::value(&mut it, a)?.to_string()),
            "--baseline-target" => {
                common.baseline_target = Some(PathBuf::from(args::value(&mut it, a)?))
            }
            "--markdown" => common.markdown = true,
            "--keep-work" => common.keep_work = true,
            "--keep-hugepages" => common.keep_hugepages = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => rest.push(a.clone()),
        }
    }
    if common.baseline_target.is_some() && common.baseline.is_none() {
        return Err(Error::Usage("--baseline-target needs --baseline".into()));
    }
    // Check the subcommand's own options before any install or build.
    enum Sub {
        Ring(ring::Opts),
        Mempool(mempool::Opts),
        Net(net::Opts),
        Nvme(nvme::Opts),
        Bdev(bdev::Opts),
        Nvmf(nvmf::Opts),
        Vhost(vhost::Opts),
        Framework(framework::Opts),
        Virtio(virtio::Opts),
    }
    let sub = match sub.as_str() {
        "ring" => Sub::Ring(ring::Opts::parse(&rest)?),
        "mempool" => Sub::Mempool(mempool::Opts::parse(&rest)?),
        "pmd" => Sub::Net(net::Opts::parse(&rest, net::Kind::PmdPerf)?),
        "testpmd" => Sub::Net(net::Opts::parse(&rest, net::Kind::Testpmd)?),
        "bdevperf" => Sub::Bdev(bdev::Opts::parse(&rest)?),
        "nvmf" => Sub::Nvmf(nvmf::Opts::parse(&rest)?),
        "vhost" => Sub::Vhost(vhost::Opts::parse(&rest)?),
        "framework" => Sub::Framework(framework::Opts::parse(&rest)?),
        "virtio" => Sub::Virtio(virtio::Opts::parse(&rest)?),
        _ => Sub::Nvme(nvme::Opts::parse(&rest)?),
    };
    harness::need_root("ferroplane-compare")?;
    let work = WorkDir::new(common.keep_work)?;
    let mut ctx = Ctx {
        common,
        work,
        ours: PathBuf::new(),
        base: None,
    };
    let table = match sub {
        Sub::Ring(o) => ring::run(&mut ctx, &o)?,
        Sub::Mempool(o) => mempool::run(&mut ctx, &o)?,
        Sub::Net(o) => net::run(&mut ctx, &o)?,
        Sub::Nvme(o) => nvme::run(&mut ctx, &o)?,
        Sub::Bdev(o) => bdev::run(&mut ctx, &o)?,
        Sub::Nvmf(o) => nvmf::run(&mut ctx, &o)?,
        Sub::Vhost(o) => vhost::run(&mut ctx, &o)?,
        Sub::Framework(o) => framework::run(&mut ctx, &o)?,
        Sub::Virtio(o) => virtio::run(&mut ctx, &o)?,
    };
    println!();
    if ctx.common.markdown {
        print!("{}", table.render_markdown());
    } else {
        print!("{}", table.render_text());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match real_main(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Usage(m)) => {
            eprintln!("ferroplane-compare: {m}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("ferroplane-compare: {e}");
            ExitCode::FAILURE
        }
    }
}
