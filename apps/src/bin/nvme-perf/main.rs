//! `nvme-perf`: NVMe benchmark with SPDK `spdk_nvme_perf`'s flags, driving either our
//! user-space driver (`trtype:PCIe`) or the kernel's block stack (`trtype:kernel`, through
//! io_uring, libaio or psync), so the two can be compared with one tool.
//!
//! ```text
//! nvme-perf -q DEPTH -o IO_SIZE -w read|write|randread|randwrite|rw|randrw [-M READ_PCT]
//!           -t SECONDS [-a WARMUP_SECONDS] [-c CORE_MASK] [-L | -LL]
//!           -r 'trtype:PCIe traddr:0000:00:02.0 [ns:N]'
//!           -r 'trtype:kernel path:/dev/nvme0n1 engine:io_uring|libaio|psync'
//!           [--iova-mode pa|va] [-s MEM_MB] [--file-prefix P] [--no-huge]
//! ```
//!
//! One queue pair (or kernel ring) per core per namespace, as SPDK does; every lcore of
//! the mask (the main one included) runs a worker. The report gives IOPS, MiB/s and
//! average/min/max latency per namespace and core, then a Total line, then the CPU time
//! each I/O cost (getrusage of the worker threads, user + system). `-L` adds latency
//! percentiles, `-LL` a histogram. Bad arguments: one line on stderr, exit 2. A device
//! that disappears mid-run ends the run with its error and exit status 3.

mod args;
mod report;
mod stats;
mod worker;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use eal::Eal;
use nvme::kernel::{Engine, KernelDev};
use nvme::{Controller, ControllerOptions, Namespace, QPairOptions};

use args::{parse_args, usage, Trid};
use report::report;
use stats::Stats;
use worker::{run_worker, Rng, Target, Worker};

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("nvme-perf: {msg}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let a = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) if e == "help" => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("nvme-perf: {e} (see -h)");
            return ExitCode::from(2);
        }
    };
    let mut eal_argv = vec![
        "nvme-perf".to_string(),
        "-c".into(),
        a.mask.clone(),
        "--file-prefix".into(),
        a.prefix.clone(),
    ];
    if let Some(m) = &a.iova_mode {
        eal_argv.extend(["--iova-mode".into(), m.clone()]);
    }
    if let Some(m) = a.mem_mb {
        eal_argv.extend(["-m".into(), m.to_string()]);
    }
    if a.no_huge {
        eal_argv.push("--no-huge".into());
    }
    let eal = match Eal::init(&eal_argv) {
        Ok((e, _)) => e,
        Err(e) => {
            eprintln!("nvme-perf: {e}");
            return ExitCode::from(2);
        }
    };

    println!("Initializing NVMe Controllers");
    let mut ctrlrs: Vec<(String, Controller, Option<u32>)> = Vec::new();
    for t in &a.trids {
        if let Trid::Pcie { addr, ns } = t {
            let pa = match addr.parse() {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            match Controller::open(&eal, pa, ControllerOptions::default()) {
                Ok(c) => {
                    println!(
                        "Attached to NVMe Controller at {addr} [{:04x}:{:04x}] '{}' ({:?})",
                        c.device().info().vendor_id,
                        c.device().info().device_id,
                        c.data().model(),
                        c.device().backend()
                    );
                    ctrlrs.push((addr.clone(), c, *ns));
                }
                Err(e) => return fail(e),
            }
        }
    }
    let lcores = eal.lcores().lcore_ids();
    // Per lcore: the targets it will open (controller+ns, or kernel path).
    enum Plan {
        Pcie(String, Controller, Namespace),
        Kernel(String, Engine),
    }
    let mut plans: Vec<(u32, Vec<Plan>)> = lcores.iter().map(|&l| (l, Vec::new())).collect();
    for (_, per) in plans.iter_mut() {
        for (addr, c, want) in &ctrlrs {
            for ns in c.namespaces() {
                if want.is_none_or(|w| w == ns.id) {
                    if !(a.io_size as u64).is_multiple_of(ns.block_size) {
                        eprintln!(
                            "nvme-perf: -o {} is not a multiple of NSID {}'s {}-byte blocks",
                            a.io_size, ns.id, ns.block_size
                        );
                        return ExitCode::from(2);
                    }
                    per.push(Plan::Pcie(addr.clone(), c.clone(), ns.clone()));
                }
            }
        }
        for t in &a.trids {
            if let Trid::Kernel { path, engine } = t {
                per.push(Plan::Kernel(path.clone(), *engine));
            }
        }
    }
    if plans.iter().all(|(_, p)| p.is_empty()) {
        return fail("no namespaces to test");
    }
    for (l, per) in &plans {
        for p in per {
            match p {
                Plan::Pcie(addr, _, ns) => {
                    println!("Associating PCIE ({addr}) NSID {} with lcore {l}", ns.id)
                }
                Plan::Kernel(path, e) => {
                    println!("Associating KERNEL ({path} {e:?}) with lcore {l}")
                }
            }
        }
    }
    println!("Initialization complete. Launching workers.");

    let results: Arc<Mutex<Vec<Stats>>> = Arc::new(Mutex::new(Vec::new()));
    let main_l = eal.lcores().main_lcore();
    let mut main_job = None;
    for (l, per) in plans {
        let eal2 = eal.clone();
        let a2 = a.clone();
        let res = results.clone();
        let job = move || -> i32 {
            let mut ws = Vec::new();
            let mut bufs_keep: Vec<nvme::IoBuf> = Vec::new();
            for (k, p) in per.into_iter().enumerate() {
                let target = match p {
                    Plan::Pcie(addr, c, ns) => {
                        let cmds = (a2.io_size as u64).div_ceil(c.max_transfer()) as usize;
                        // At least 256 entries (SPDK's perf takes the largest queue
                        // the controller allows): completions posted but not yet
                        // acknowledged never fill a queue sized only for the depth.
                        let size = (a2.depth * cmds + 1).clamp(256, 4096) as u16;
                        match c.alloc_io_qpair(QPairOptions {
                            size,
                            ..Default::default()
                        }) {
                            Ok(qp) => Target::Pcie {
                                qp: Box::new(qp),
                                ns,
                                addr,
                            },
                            Err(e) => {
                                eprintln!("nvme-perf: lcore {l}: {e}");
                                return 1;
                            }
                        }
                    }
                    Plan::Kernel(path, engine) => match KernelDev::open(&path, engine, a2.depth) {
                        Ok(k) => Target::Kernel(k),
                        Err(e) => {
                            eprintln!("nvme-perf: lcore {l}: {e}");
                            return 1;
                        }
                    },
                };
                let mut bufs = Vec::new();
                for _ in 0..a2.depth {
                    match nvme::IoBuf::alloc(&eal2, a2.io_size) {
                        Ok(mut b) => {
                            for (i, x) in b.as_mut_slice().iter_mut().enumerate() {
                                *x = i as u8;
                            }
                            bufs.push(b.va());
                            bufs_keep.push(b);
                        }
                        Err(e) => {
                            eprintln!("nvme-perf: lcore {l}: {e}");
                            return 1;
                        }
                    }
                }
                let slots = (target.size() / a2.io_size as u64).max(1);
                let name = target.name();
                ws.push(Worker {
                    target,
                    stats: Stats {
                        hist_on: a2.latency >= 1,
                        ..Stats::new(name, l)
                    },
                    bufs,
                    start: vec![0; a2.depth],
                    is_read: vec![true; a2.depth],
                    rng: Rng(0x9e37_79b9_7f4a_7c15 ^ ((l as u64 + 1) << 20) ^ k as u64),
                    next_off: 0,
                    slots,
                });
            }
            let stats = run_worker(ws, &a2);
            drop(bufs_keep);
            res.lock().unwrap_or_else(|p| p.into_inner()).extend(stats);
            0
        };
        if l == main_l {
            main_job = Some(job);
        } else if let Err(e) = eal.lcores().remote_launch(l, job) {
            return fail(e);
        }
    }
    let mut rc = 0;
    if let Some(j) = main_job {
        rc |= j();
    }
    for (l, r) in eal.lcores().mp_wait_lcore() {
        match r {
            Ok(0) => {}
            Ok(v) => rc |= v,
            Err(e) => {
                eprintln!("nvme-perf: lcore {l}: {e}");
                rc |= 1;
            }
        }
    }
    let mut all = results.lock().unwrap_or_else(|p| p.into_inner()).clone();
    all.sort_by(|x, y| x.name.cmp(&y.name).then(x.core.cmp(&y.core)));
    report(&all, &a);
    drop(ctrlrs);
    if all.iter().any(|s| s.gone) {
        return ExitCode::from(3);
    }
    if rc != 0 || all.iter().any(|s| s.error.is_some()) {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
