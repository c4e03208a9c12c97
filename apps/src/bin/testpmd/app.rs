//! The application state: ports, the mbuf pool, the forwarding settings and the
//! forwarding session (start/stop), shared by the command line and the batch mode.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use eal::Eal;
use mbuf::PktmbufPool;

use crate::args::Opts;
use crate::fwd::{self, FwdSettings, LcoreJob, Mode, StreamDef, StreamStats};
use crate::stats::{self, PortFwd, Throughput};
use ferroplane_apps::mp_end;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PState {
    Started,
    Stopped,
    Closed,
}

impl PState {
    pub fn name(self) -> &'static str {
        match self {
            PState::Started => "started",
            PState::Stopped => "stopped",
            PState::Closed => "closed",
        }
    }
}

pub struct PortEntry {
    pub id: u16,
    pub state: PState,
}

/// Where a forwarding job runs.
enum Runner {
    /// An EAL worker lcore (`remote_launch`; collected with `wait_lcore`).
    Lcore(u32),
    /// A plain thread (interactive mode with no worker lcore).
    Thread(std::thread::JoinHandle<i32>),
    /// The main lcore: the caller takes the job with [`App::take_main_job`] and runs it itself.
    Main(Option<LcoreJob>),
}

/// A forwarding session between `start` and `stop`.
pub struct Session {
    stop: Arc<AtomicBool>,
    runners: Vec<Runner>,
    pub streams: Vec<StreamDef>,
    pub ports: Vec<u16>,
    base: Vec<(u16, pmd::EthStats)>,
    pub t0: Instant,
}

/// What a finished session leaves for "show fwd stats".
pub struct Finished {
    pub streams: Vec<StreamDef>,
    pub per_port: Vec<(u16, PortFwd)>,
    pub seconds: f64,
    pub mode: Mode,
}

pub struct App {
    pub eal: Eal,
    pub pool: PktmbufPool,
    pub opts: Opts,
    pub ports: Vec<PortEntry>,
    /// Worker lcores that may forward.
    pub workers: Vec<u32>,
    /// Batch mode with no worker lcore: forward on the main lcore itself.
    pub allow_main: bool,
    pub session: Option<Session>,
    pub last: Option<Finished>,
    pub tput: Throughput,
    /// In a secondary: set when the primary process exits (the EAL's watcher).
    pub primary_gone: Option<Arc<AtomicBool>>,
}

/// One planned lcore: its label (lcore id, or None for the fallback) and streams.
pub struct Plan {
    pub lcores: Vec<(Option<u32>, Vec<StreamDef>)>,
    pub ports: Vec<u16>,
}

impl App {
    /// Destination MAC for packets sent on `port`: its `--eth-peer`, else
    /// `02:00:00:00:00:<port>` (DPDK's default peer addresses).
    pub fn peer_mac(&self, port: u16) -> [u8; 6] {
        self.opts
            .eth_peers
            .iter()
            .rev()
            .find(|(p, _)| *p == port)
            .map(|(_, m)| *m)
            .unwrap_or([0x02, 0, 0, 0, 0, port as u8])
    }

    pub fn open_ports(&self) -> Vec<u16> {
        self.ports
            .iter()
            .filter(|p| p.state != PState::Closed)
            .map(|p| p.id)
            .collect()
    }

    pub fn entry(&mut self, id: u16) -> Option<&mut PortEntry> {
        self.ports.iter_mut().find(|p| p.id == id)
    }

    /// Forwarding lcores a session would use now.
    fn fwd_lcores(&self) -> Vec<Option<u32>> {
        if self.workers.is_empty() {
            return vec![None];
        }
        let n = usize::from(self.opts.nb_cores).min(self.workers.len());
        self.workers[..n].iter().map(|&l| Some(l)).collect()
    }

    /// The streams and their lcores, from the started ports and the settings.
    pub fn plan(&self) -> Result<Plan, String> {
        let ports: Vec<u16> = self
            .ports
            .iter()
            .filter(|p| p.state == PState::Started)
            .map(|p| p.id)
            .collect();
        if ports.is_empty() {
            return Err("no started port to forward on (port start all)".into());
        }
        let mut defs = Vec::new();
        for (i, &p) in ports.iter().enumerate() {
            let peer = ports[fwd::peer_index(i, ports.len())];
            let nrx = pmd::dev_info(p).map_err(|e| e.to_string())?.nb_rx_queues;
            let ntx = pmd::dev_info(peer)
                .map_err(|e| e.to_string())?
                .nb_tx_queues
                .max(1);
            // This process's share of the queues (all of them with one process).
            let (mut rxr, mut txr) = self.opts.my_queues();
            if self.opts.num_procs == 1 {
                (rxr, txr) = (0..nrx, 0..ntx);
            }
            let kt = txr.len().max(1) as u16;
            let tx_mac = pmd::mac_addr_get(peer).map_err(|e| e.to_string())?;
            for q in rxr {
                defs.push(StreamDef {
                    rx_port: p,
                    rx_queue: q,
                    tx_port: peer,
                    tx_queue: txr.start + (q % kt),
                    peer_mac: self.peer_mac(peer),
                    tx_mac,
                    stats: Arc::new(StreamStats::default()),
                });
            }
        }
        let lc = self.fwd_lcores();
        let groups = fwd::assign(defs, lc.len());
        Ok(Plan {
            lcores: lc
                .into_iter()
                .zip(groups)
                .filter(|(_, g)| !g.is_empty())
                .collect(),
            ports,
        })
    }

    /// Start forwarding (optionally one generated burst per stream first).
    pub fn start_fwd(&mut self, tx_first: bool) -> Result<(), String> {
        if self.session.is_some() {
            return Err("Packet forwarding already started".into());
        }
        let plan = self.plan()?;
        let set = FwdSettings {
            mode: self.opts.mode,
            burst: self.opts.burst,
            txpkts: self.opts.txpkts.clone(),
            flows: self.opts.flowgen_flows,
            tx_first,
            pool: self.pool.clone(),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let base: Vec<(u16, pmd::EthStats)> = plan
            .ports
            .iter()
            .filter_map(|&p| pmd::stats_get(p).ok().map(|s| (p, s)))
            .collect();
        // Take every handle first, so a failure launches nothing.
        let mut jobs = Vec::new();
        let mut streams = Vec::new();
        for (lc, defs) in plan.lcores {
            streams.extend(defs.iter().cloned());
            let job = LcoreJob::new(defs, set.clone(), stop.clone()).map_err(|e| e.to_string())?;
            jobs.push((lc, job));
        }
        let mut runners = Vec::new();
        for (lc, job) in jobs {
            match lc {
                Some(l) => match self.eal.lcores().remote_launch(l, move || job.run()) {
                    Ok(()) => runners.push(Runner::Lcore(l)),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        for r in runners {
                            if let Runner::Lcore(l) = r {
                                let _ = self.eal.lcores().wait_lcore(l);
                            }
                        }
                        return Err(format!("failed to launch forwarding on lcore {l}: {e}"));
                    }
                },
                None if self.allow_main => runners.push(Runner::Main(Some(job))),
                None => {
                    let h = std::thread::Builder::new()
                        .name("testpmd-fwd".into())
                        .spawn(move || job.run())
                        .map_err(|e| format!("failed to spawn the forwarding thread: {e}"))?;
                    runners.push(Runner::Thread(h));
                }
            }
        }
        let mode = self.opts.mode;
        let nb = runners.len();
        println!(
            "{} packet forwarding - ports={} - cores={} - streams={}{}",
            mode.name(),
            plan.ports.len(),
            nb,
            streams.len(),
            if self.workers.is_empty() {
                if self.allow_main {
                    " (no worker lcore: forwarding on the main lcore)"
                } else {
                    " (no worker lcore: forwarding on a non-EAL thread)"
                }
            } else {
                ""
            }
        );
        self.session = Some(Session {
            stop,
            runners,
            streams,
            ports: plan.ports,
            base,
            t0: Instant::now(),
        });
        Ok(())
    }

    /// The job to run on the main lcore, if the session has one (batch mode, no worker).
    pub fn take_main_job(&mut self) -> Option<LcoreJob> {
        let s = self.session.as_mut()?;
        s.runners.iter_mut().find_map(|r| match r {
            Runner::Main(j) => j.take(),
            _ => None,
        })
    }

    /// The session's stop flag (for a control thread).
    pub fn stop_flag(&self) -> Option<Arc<AtomicBool>> {
        self.session.as_ref().map(|s| s.stop.clone())
    }

    /// Live forward statistics of the running session, or the last one's.
    pub fn fwd_stats(&self) -> Option<String> {
        let csum = self.opts.mode == Mode::Csum;
        if let Some(s) = &self.session {
            let per = stats::port_fwd(&s.ports, &s.base, &s.streams);
            return Some(stats::fwd_stats_block(&per, &s.streams, csum));
        }
        self.last
            .as_ref()
            .map(|f| stats::fwd_stats_block(&f.per_port, &f.streams, f.mode == Mode::Csum))
    }

    /// Stop forwarding, wait for the lcores, print the forward statistics.
    pub fn stop_fwd(&mut self) -> Result<(), String> {
        let Some(s) = self.session.take() else {
            return Err("Packet forwarding not started".into());
        };
        println!("Telling cores to stop...");
        // Relaxed: see the fwd module doc; wait_lcore/join order the rest.
        s.stop.store(true, Ordering::Relaxed);
        println!("Waiting for lcores to finish...");
        let mut failed = Vec::new();
        for r in s.runners {
            match r {
                Runner::Lcore(l) => match self.eal.lcores().wait_lcore(l) {
                    Ok(0) => {}
                    Ok(rc) => failed.push(format!("lcore {l} returned {rc}")),
                    Err(e) => failed.push(format!("lcore {l}: {e}")),
                },
                Runner::Thread(h) => {
                    if h.join().is_err() {
                        failed.push("the forwarding thread panicked".into());
                    }
                }
                Runner::Main(_) => {}
            }
        }
        let seconds = s.t0.elapsed().as_secs_f64();
        let per_port = stats::port_fwd(&s.ports, &s.base, &s.streams);
        print!(
            "{}",
            stats::fwd_stats_block(&per_port, &s.streams, self.opts.mode == Mode::Csum)
        );
        let (rx, tx) = s.streams.iter().fold((0, 0), |(r, t), d| {
            (
                r + d.stats.rx.load(Ordering::Relaxed),
                t + d.stats.tx.load(Ordering::Relaxed),
            )
        });
        println!("Forwarded by this process: RX-packets: {rx} TX-packets: {tx}");
        println!("\nDone.");
        self.last = Some(Finished {
            streams: s.streams,
            per_port,
            seconds,
            mode: self.opts.mode,
        });
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }

    /// "Throughput: ..." of the last session.
    pub fn throughput_line(&self) -> Option<String> {
        let f = self.last.as_ref()?;
        let rx: u64 = f.per_port.iter().map(|(_, p)| p.rx).sum();
        let tx: u64 = f.per_port.iter().map(|(_, p)| p.tx).sum();
        let s = f.seconds.max(1e-9);
        Some(format!(
            "Throughput: RX {:.3} Mpps, TX {:.3} Mpps ({} forwarding, {} ports, {} packets received, {} sent in {:.3} s)",
            rx as f64 / s / 1e6,
            tx as f64 / s / 1e6,
            f.mode.name(),
            f.per_port.len(),
            rx,
            tx,
            f.seconds
        ))
    }

    /// Stop forwarding if running, then stop and close every open port.
    pub fn shutdown(&mut self) {
        if self.session.is_some() {
            if let Err(e) = self.stop_fwd() {
                eprintln!("testpmd: {e}");
            }
        }
        let primary = self.eal.is_primary();
        let ports = self.open_ports();
        for &p in &ports {
            if primary {
                println!("Stopping port {p}...");
            }
            println!("Closing port {p}...");
        }
        if primary {
            // Queues of secondaries that died are taken back; live ones get a few
            // seconds to give theirs back. Ports left open stay marked open, so no mbuf
            // is taken back from under them (check_mbufs).
            if let Err(e) = mp_end::close_ports("testpmd", &ports, SECONDARY_WAIT) {
                eprintln!("testpmd: {e}");
                return;
            }
        } else {
            // A secondary leaves the primary's ports running; closing gives its queues
            // back.
            for &p in &ports {
                if let Err(e) = pmd::close(p) {
                    eprintln!("testpmd: {e}");
                }
            }
        }
        for p in ports {
            if let Some(e) = self.entry(p) {
                e.state = PState::Closed;
            }
        }
    }

    /// Every mbuf back in its pool? Prints a warning line if not; returns the count out.
    pub fn check_mbufs(&self) -> u32 {
        if !self.eal.is_primary() {
            // The primary's queues and caches hold mbufs of the shared pool while it runs;
            // only the primary can tell at its exit.
            return 0;
        }
        if self.session.is_none() && self.open_ports().is_empty() {
            // Mbufs secondaries killed mid-burst held: back once none is attached.
            // SAFETY: forwarding has stopped and every port is closed (checked above),
            // so this process holds and uses no mbuf of the pool.
            let back = unsafe { mp_end::take_back_mbufs(&self.eal, &self.pool, SECONDARY_WAIT) };
            if let Err(e) = back {
                println!("Warning: {e}");
            }
        }
        let (size, avail) = (self.pool.size(), self.pool.avail_count());
        if avail != size {
            println!(
                "Warning: {} of {} mbufs not returned to pool '{}'",
                size - avail,
                size,
                POOL_NAME
            );
        }
        size - avail
    }
}

pub const POOL_NAME: &str = "mb_pool_0";
/// How long the primary waits at exit for secondaries to give their queues back and
/// detach.
const SECONDARY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
