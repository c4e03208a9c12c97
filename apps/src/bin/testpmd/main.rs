//! `testpmd`: forward packets between ports with one of DPDK testpmd's forwarding
//! modes, from the command line or an interactive prompt, and show port and forwarding
//! statistics in testpmd's layout.
//!
//! ```text
//! testpmd [EAL options] -- [-i] [--auto-start] [--tx-first] [--forward-mode=MODE]
//!         [--nb-cores=N] [--rxq=N] [--txq=N] [--rxd=N] [--txd=N] [--burst=N]
//!         [--txpkts=L[,L..]] [--stats-period=S] [--eth-peer=N,MAC] [--total-num-mbufs=N]
//!         [--mbcache=N] [--flowgen-flows=N] [--run-time=S]
//! ```
//!
//! * Ports: one per `--vdev`, plus PCI ports a registered driver takes. With no port at
//!   all and no `--vdev`, two `net_null` ports are made (with a notice).
//! * Every port gets `--rxq` RX and `--txq` TX queues, is started and put in
//!   promiscuous mode. Forwarding runs on the first `--nb-cores` worker lcores; with no
//!   worker lcore (one cpu, or `-l N`), on the main lcore in batch mode and on a plain
//!   thread in interactive mode.
//! * Batch mode (no `-i`): forwarding starts at once and runs until Enter (or end of
//!   input), SIGINT/SIGTERM, or `--run-time` seconds (a ferroplane addition); with
//!   `--stats-period` it prints the port statistics every period until a signal. The
//!   forward statistics and a `Throughput: RX x Mpps, TX y Mpps ...` line close the run.
//! * Interactive mode (`-i`): the `testpmd> ` prompt, see [`cli`] (`help` lists the
//!   commands). `--auto-start` starts forwarding first.
//! * **No arguments at all**: the main job. Hugepages if usable, else `--no-huge` (one
//!   notice line); two `net_null` ports; io forwarding for 5 s; statistics; exit 0.
//!
//! At exit every port is stopped and closed and the pool is checked: a `Warning: ...
//! mbufs not returned` line means a leak. Exit status: 0 on a clean run, 2 for a bad
//! argument (one line naming it), 1 for other failures.

mod app;
mod args;
mod cli;
mod fwd;
mod pkt;
mod sig;
mod stats;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eal::{Eal, Error as EalError};
use mbuf::{pktmbuf_pool_create, MBUF_DEFAULT_BUF_SIZE};

use crate::app::{App, PState, PortEntry, POOL_NAME};
use crate::stats::Throughput;

/// How long the no-argument main job forwards.
const DEFAULT_RUN_TIME: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let no_args = argv.len() == 1;
    let app_args: Vec<String> = argv
        .iter()
        .position(|a| a == "--")
        .map(|i| argv[i + 1..].to_vec())
        .unwrap_or_default();
    let mut opts = match args::parse(&app_args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("testpmd: {e}");
            return ExitCode::from(2);
        }
    };
    if opts.help {
        print!("{}\n{}", args::usage(), eal::args::usage());
        return ExitCode::SUCCESS;
    }
    if no_args {
        opts.run_time = Some(DEFAULT_RUN_TIME);
        println!(
            "testpmd: no arguments: io forwarding between two net_null ports for {} s (testpmd -- --help for options)",
            DEFAULT_RUN_TIME.as_secs()
        );
    }
    let eal = match init_eal(&argv, no_args) {
        Ok(e) => e,
        Err(code) => return code,
    };
    let _term = sig::TermGuard::save();
    if let Err(e) = sig::install() {
        eprintln!("testpmd: failed to install the SIGINT/SIGTERM handler: {e}");
        return ExitCode::FAILURE;
    }
    match run(eal, opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("testpmd: {msg}");
            ExitCode::from(code)
        }
    }
}

/// EAL init with the fallbacks: `--no-huge` when hugepages are unusable (unless the
/// user chose the memory), and for the no-argument run a private file prefix when the
/// default one is held by another live process.
fn init_eal(argv: &[String], no_args: bool) -> Result<Eal, ExitCode> {
    let eal_part = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    let mut args = argv[..eal_part].to_vec();
    let mut tried_prefix = false;
    loop {
        match Eal::init_or_no_huge(&args) {
            Ok((e, _, fallback)) => {
                if let Some(why) = fallback {
                    println!("testpmd: no usable hugepages ({why}); falling back to --no-huge");
                }
                return Ok(e);
            }
            Err(EalError::HelpRequested) => {
                print!("{}\n{}", args::usage(), eal::args::usage());
                return Err(ExitCode::SUCCESS);
            }
            Err(
                e @ (EalError::BadArg { .. } | EalError::UnknownArg(_) | EalError::MissingValue(_)),
            ) => {
                eprintln!("testpmd: {e}");
                return Err(ExitCode::from(2));
            }
            Err(EalError::PrefixInUse { prefix, pid, .. }) if no_args && !tried_prefix => {
                let p = format!("testpmd-{}", std::process::id());
                println!("testpmd: file prefix '{prefix}' is held by process {pid}; using '{p}'");
                args.extend(["--file-prefix".to_string(), p]);
                tried_prefix = true;
            }
            Err(e) => {
                eprintln!("testpmd: failed to initialise the EAL: {e}");
                return Err(ExitCode::FAILURE);
            }
        }
    }
}

type Fail = (u8, String);

fn fail1(e: impl std::fmt::Display) -> Fail {
    (1, e.to_string())
}

/// A secondary process (`--proc-type=secondary`): attach to the primary's ports and its
/// pool, claim this process's share of the queues (`--num-procs`/`--proc-id`) and
/// forward on them.
fn run_secondary(eal: Eal, opts: args::Opts) -> Result<(), Fail> {
    let ids = pmd::attach_secondary(&eal).map_err(fail1)?;
    if ids.is_empty() {
        return Err(fail1("the primary process has no port"));
    }
    let pool = mbuf::PktmbufPool::lookup(&eal, POOL_NAME).map_err(|e| {
        fail1(format!(
            "failed to find the pool '{POOL_NAME}' (is the primary a testpmd?): {e}"
        ))
    })?;
    let (rxr, txr) = opts.my_queues();
    for &p in &ids {
        for q in rxr.clone() {
            pmd::queue_claim(p, true, q).map_err(fail1)?;
        }
        for q in txr.clone() {
            pmd::queue_claim(p, false, q).map_err(fail1)?;
        }
        println!(
            "Port {p}: {} (attached), RX queues {rxr:?}, TX queues {txr:?} of this process",
            pmd::port_name(p).unwrap_or_default()
        );
    }
    let gone = Arc::new(AtomicBool::new(false));
    let g2 = gone.clone();
    eal.on_primary_exit(move || g2.store(true, Ordering::Relaxed));
    let mut app = App {
        eal: eal.clone(),
        pool,
        opts,
        ports: ids
            .iter()
            .map(|&id| PortEntry {
                id,
                state: PState::Started,
            })
            .collect(),
        workers: eal.lcores().worker_ids(),
        allow_main: false,
        session: None,
        last: None,
        tput: Throughput::default(),
        primary_gone: Some(gone.clone()),
    };
    app.allow_main = !app.opts.interactive;
    let r = if app.opts.interactive {
        interactive(&mut app)
    } else {
        batch(&mut app)
    };
    if gone.load(Ordering::Relaxed) {
        println!("testpmd: the primary process exited; stopping");
    }
    app.shutdown();
    println!("Bye...");
    r?;
    if gone.load(Ordering::Relaxed) {
        return Err((3, "the primary process exited".into()));
    }
    Ok(())
}

fn run(eal: Eal, opts: args::Opts) -> Result<(), Fail> {
    if !eal.is_primary() {
        return run_secondary(eal, opts);
    }
    // Ports: --vdev ones (a bad vdev string is a bad argument), PCI ones, else two nulls.
    let mut ids = pmd::probe_vdevs(&eal).map_err(|e| (2, e.to_string()))?;
    let (pci, failed) = pmd::probe_pci(&eal);
    ids.extend(pci);
    for e in failed {
        println!("testpmd: PCI probe skipped a device: {e}");
    }
    if ids.is_empty() {
        if !eal.args().vdevs.is_empty() {
            return Err(fail1("no port was created"));
        }
        println!(
            "testpmd: no port given: using two net_null ports (--vdev net_null0 --vdev net_null1)"
        );
        for n in ["net_null0", "net_null1"] {
            ids.push(pmd::vdev_create(&eal, n).map_err(fail1)?);
        }
    }
    let workers = eal.lcores().worker_ids();
    let nb_lcores = eal.lcores().count() as u32;
    let per_port: u32 = u32::from(opts.rxq) * u32::from(opts.rxd)
        + u32::from(opts.txq) * u32::from(opts.txd)
        + 2 * u32::from(opts.burst) * u32::from(opts.rxq.max(opts.txq));
    let want =
        ids.len() as u32 * per_port + nb_lcores * (opts.mbcache + u32::from(opts.burst)) + 1024;
    let n = opts.total_num_mbufs.unwrap_or_else(|| want.max(8191));
    let cache = opts.mbcache.min(n * 2 / 3).min(512);
    let pool = pktmbuf_pool_create(&eal, POOL_NAME, n, cache, 0, MBUF_DEFAULT_BUF_SIZE, None)
        .map_err(|e| fail1(format!("failed to create the mbuf pool of {n}: {e}")))?;
    println!("testpmd: mbuf pool '{POOL_NAME}': {n} mbufs of {MBUF_DEFAULT_BUF_SIZE} bytes, cache {cache}");

    let mut app = App {
        eal: eal.clone(),
        pool,
        opts,
        ports: Vec::new(),
        workers,
        allow_main: false,
        session: None,
        last: None,
        tput: Throughput::default(),
        primary_gone: None,
    };
    app.allow_main = !app.opts.interactive;
    if !app.workers.is_empty() && usize::from(app.opts.nb_cores) > app.workers.len() {
        println!(
            "testpmd: --nb-cores={} but only {} worker lcore(s): forwarding on {}",
            app.opts.nb_cores,
            app.workers.len(),
            app.workers.len()
        );
        app.opts.nb_cores = app.workers.len() as u16;
    }
    for &p in &ids {
        app.ports.push(PortEntry {
            id: p,
            state: PState::Stopped,
        });
    }
    let setup = (|| {
        for &p in &ids {
            setup_port(&app, p)?;
            if let Some(e) = app.entry(p) {
                e.state = PState::Started;
            }
            let mac = pmd::mac_addr_get(p).map_err(fail1)?;
            println!(
                "Port {p}: {} ({})",
                pmd::fmt_mac(&mac).to_uppercase(),
                pmd::port_name(p).unwrap_or_default()
            );
        }
        Ok::<(), Fail>(())
    })();
    let r = setup.and_then(|()| {
        if app.opts.interactive {
            interactive(&mut app)
        } else {
            batch(&mut app)
        }
    });
    app.shutdown();
    let leaked = app.check_mbufs();
    println!("Bye...");
    r?;
    if leaked > 0 {
        return Err(fail1(format!(
            "{leaked} mbufs were not returned to the pool"
        )));
    }
    Ok(())
}

fn setup_port(app: &App, p: u16) -> Result<(), Fail> {
    let o = &app.opts;
    let info = pmd::dev_info(p).map_err(fail1)?;
    if o.rxq > info.max_rx_queues || o.txq > info.max_tx_queues {
        return Err((
            2,
            format!(
                "port {p} ({}) supports at most {} RX and {} TX queues (--rxq={} --txq={})",
                info.device_name, info.max_rx_queues, info.max_tx_queues, o.rxq, o.txq
            ),
        ));
    }
    let clamp = |n: u16, l: pmd::DescLim| n.clamp(l.min, l.max);
    pmd::configure(p, o.rxq, o.txq, &pmd::EthConf::default()).map_err(fail1)?;
    for q in 0..o.rxq {
        pmd::rx_queue_setup(
            p,
            q,
            clamp(o.rxd, info.rx_desc_lim),
            None,
            &pmd::RxConf::default(),
            &app.pool,
        )
        .map_err(fail1)?;
    }
    for q in 0..o.txq {
        pmd::tx_queue_setup(
            p,
            q,
            clamp(o.txd, info.tx_desc_lim),
            None,
            &pmd::TxConf::default(),
        )
        .map_err(fail1)?;
    }
    pmd::start(p).map_err(fail1)?;
    if let Err(e) = pmd::promiscuous_set(p, true) {
        println!("testpmd: port {p}: promiscuous mode not set: {e}");
    }
    Ok(())
}

fn interactive(app: &mut App) -> Result<(), Fail> {
    if app.opts.auto_start {
        if let Err(e) = app.start_fwd(app.opts.tx_first) {
            println!("{e}");
        }
    }
    cli::run(app);
    Ok(())
}

/// Batch mode: forward until Enter/EOF, a signal, or the run time; print statistics.
fn batch(app: &mut App) -> Result<(), Fail> {
    let deadline = app.opts.run_time.map(|d| Instant::now() + d);
    let period = app.opts.stats_period;
    let enter = Arc::new(AtomicBool::new(false));
    if deadline.is_none() && period == 0 {
        println!("Press enter to exit");
        let e = enter.clone();
        // The reader may stay blocked on stdin until exit; it only sets a flag.
        let _ = std::thread::Builder::new()
            .name("testpmd-enter".into())
            .spawn(move || {
                let mut l = String::new();
                let _ = std::io::stdin().read_line(&mut l);
                e.store(true, Ordering::Relaxed);
            });
    }
    app.start_fwd(app.opts.tx_first).map_err(fail1)?;
    let ports: Vec<u16> = app
        .session
        .as_ref()
        .map(|s| s.ports.clone())
        .unwrap_or_default();
    let gone = app.primary_gone.clone();
    let wait = move || wait_batch(deadline, period, &enter, &ports, gone.as_deref());
    if let Some(job) = app.take_main_job() {
        let stop = app.stop_flag().expect("session started above");
        let ctl = std::thread::Builder::new()
            .name("testpmd-ctl".into())
            .spawn(move || {
                wait();
                // Relaxed: as every stop store (fwd module doc).
                stop.store(true, Ordering::Relaxed);
            })
            .map_err(|e| fail1(format!("failed to spawn the control thread: {e}")))?;
        job.run();
        let _ = ctl.join();
    } else {
        wait();
    }
    app.stop_fwd().map_err(fail1)?;
    if let Some(l) = app.throughput_line() {
        println!("{l}");
    }
    Ok(())
}

fn wait_batch(
    deadline: Option<Instant>,
    period: u64,
    enter: &AtomicBool,
    ports: &[u16],
    primary_gone: Option<&AtomicBool>,
) {
    let mut tput = Throughput::default();
    let mut next_stats = (period > 0).then(|| Instant::now() + Duration::from_secs(period));
    loop {
        if primary_gone.is_some_and(|g| g.load(Ordering::Relaxed)) {
            return;
        }
        if sig::quit_requested() {
            println!(
                "\nSignal {} received, preparing to exit...",
                sig::last_signal()
            );
            return;
        }
        if enter.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return;
        }
        if let Some(t) = next_stats {
            if now >= t {
                let mut out =
                    String::from("\nPort statistics ====================================");
                for &p in ports {
                    match tput.port_stats_block(p) {
                        Ok(s) => out.push_str(&s),
                        Err(e) => out.push_str(&format!("\n{e}")),
                    }
                }
                println!("{out}");
                next_stats = Some(t + Duration::from_secs(period));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
