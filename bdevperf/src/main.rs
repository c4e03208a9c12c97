//! `bdevperf`: SPDK's bdev benchmark over Ferroplane's block device layer.
//!
//!     bdevperf -q 32 -o 4096 -w randread -t 5 -m 0x1 --json bdevs.json
//!     bdevperf -q 8 -o 4k -w verify -t 2 -c bdevs.json
//!     bdevperf -z -q 32 -o 4096 -w randread -t 5 -c bdevs.json &   # then perform_tests
//!
//! The framework app starts with the bdev subsystem (bdevs come from `--json`/`-c` or
//! from RPC), then runs one job per bdev per core of `-m` (each on a framework thread
//! pinned to its core), prints SPDK's table and exits with 0, or 1 if any job failed
//! (an I/O error or a verify mismatch). With `-z` it waits for the `perform_tests` RPC
//! (SPDK's bdevperf.py), answers it with the results and keeps running.

mod args;
mod job;
mod report;

use std::sync::{Arc, Mutex, OnceLock};

use framework::app::{App, AppCtx};
use framework::subsystem::{RpcRegistrar, Subsystem};
use jsonrpc::{Request, RpcError};
use serde_json::Value;

use args::{ArgError, PerfOpts, Workload};
use job::JobResult;

type Done = Box<dyn FnOnce(Result<Vec<JobResult>, String>) + Send>;

/// Start every job (on the app thread); `done` runs there with the results in job order.
fn run_tests(ctx: &AppCtx, opts: Arc<PerfOpts>, done: Done) {
    let mut bdevs: Vec<String> = bdev::bdev::list()
        .iter()
        .filter(|b| b.claimed_by().is_none())
        .map(|b| b.name().to_string())
        .collect();
    if let Some(only) = &opts.only_bdev {
        if !bdevs.iter().any(|n| n == only) {
            return done(Err(format!("-T: no bdev named '{only}'")));
        }
        bdevs.retain(|n| n == only);
    }
    if bdevs.is_empty() {
        return done(Err(
            "no bdevs to test: give a configuration with -c/--json (or create bdevs over RPC before perform_tests)".into(),
        ));
    }
    let cores = ctx.framework().lcores();
    let Some(app) = framework::thread::current() else {
        return done(Err("not on a framework thread".into()));
    };
    let total = cores.len() * bdevs.len();
    let results: Arc<Mutex<Vec<(usize, JobResult)>>> = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(Mutex::new(Some(done)));
    println!("Running I/O for {} seconds...", format_secs(opts.seconds));
    let mut k = 0;
    for &core in &cores {
        for name in &bdevs {
            let idx = k;
            k += 1;
            let (results, done2, app, opts2) =
                (results.clone(), done.clone(), app.clone(), opts.clone());
            let name2 = name.clone();
            let on_result: Box<dyn FnOnce(JobResult) + Send> = Box::new(move |r: JobResult| {
                // Collected on the app thread.
                let _ = app.send_msg(move || {
                    let mut all = results.lock().unwrap_or_else(|e| e.into_inner());
                    all.push((idx, r));
                    if all.len() == total {
                        let mut v = std::mem::take(&mut *all);
                        v.sort_by_key(|(i, _)| *i);
                        drop(all);
                        if let Some(d) = done2.lock().unwrap_or_else(|e| e.into_inner()).take() {
                            d(Ok(v.into_iter().map(|(_, r)| r).collect()));
                        }
                    }
                });
            });
            let spawned = ctx
                .framework()
                .spawn_thread(&format!("bdevperf_{name}_{core}"), &[core])
                .and_then(|t| {
                    t.send_msg(move || job::run(&name2, core, opts2, on_result))
                        .map_err(|e| framework::Error::Rpc {
                            what: "start a job",
                            why: e.to_string(),
                        })
                });
            if let Err(e) = spawned {
                if let Some(d) = done.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    d(Err(format!(
                        "cannot start the job of {name} on core {core}: {e}"
                    )));
                }
                return;
            }
        }
    }
}

fn format_secs(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

fn failed(results: &[JobResult]) -> bool {
    results.iter().any(|r| r.error.is_some() || r.failed > 0)
}

/// The perform_tests method (registered by this app's own subsystem).
struct PerfSubsystem {
    ctx: Arc<OnceLock<AppCtx>>,
    opts: Arc<PerfOpts>,
    running: Arc<Mutex<bool>>,
}

fn override_opts(base: &PerfOpts, p: &Value) -> Result<PerfOpts, String> {
    let mut o = base.clone();
    let Some(m) = p.as_object() else {
        return if p.is_null() {
            Ok(o)
        } else {
            Err("params must be an object".into())
        };
    };
    for (k, v) in m {
        let num = || {
            v.as_u64()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("invalid {k}: expected a positive integer"))
        };
        match k.as_str() {
            "time_in_sec" => o.seconds = num()? as f64,
            "queue_depth" => o.depth = num()? as usize,
            "io_size" => o.io_size = num()?,
            "workload_type" => {
                o.workload = v
                    .as_str()
                    .and_then(Workload::parse)
                    .ok_or_else(|| format!("invalid workload_type: {v}"))?
            }
            "rw_percentage" => {
                o.rw_read_pct = v
                    .as_u64()
                    .filter(|n| *n <= 100)
                    .ok_or_else(|| format!("invalid rw_percentage: {v}"))?
                    as u32
            }
            _ => return Err(format!("unknown parameter '{k}'")),
        }
    }
    Ok(o)
}

impl Subsystem for PerfSubsystem {
    fn name(&self) -> &str {
        "bdevperf"
    }
    fn depends_on(&self) -> Vec<String> {
        vec!["bdev".into()]
    }
    fn register_rpcs(&self, rpc: &dyn RpcRegistrar) -> framework::Result<()> {
        let (ctx, base, running) = (self.ctx.clone(), self.opts.clone(), self.running.clone());
        rpc.register(
            "perform_tests",
            false,
            Box::new(move |r: Request| {
                let Some(ctx) = ctx.get().cloned() else {
                    return r.respond(Err(RpcError::new(-1, "bdevperf is not started yet")));
                };
                let p = r.raw_params().cloned().unwrap_or(Value::Null);
                let opts = match override_opts(&base, &p) {
                    Ok(o) => Arc::new(o),
                    Err(e) => return r.respond(Err(RpcError::invalid_params(e))),
                };
                {
                    let mut g = running.lock().unwrap_or_else(|e| e.into_inner());
                    if *g {
                        return r.respond(Err(RpcError::new(-16, "tests are already running")));
                    }
                    *g = true;
                }
                let resp = r.into_responder();
                let running = running.clone();
                let o2 = opts.clone();
                run_tests(
                    &ctx,
                    opts,
                    Box::new(move |res| {
                        *running.lock().unwrap_or_else(|e| e.into_inner()) = false;
                        match res {
                            Ok(results) => {
                                print!("{}", report::table(&o2, &results));
                                resp.respond(Ok(report::json(&o2, &results)));
                            }
                            Err(e) => resp.respond(Err(RpcError::new(-22, e))),
                        }
                    }),
                );
            }),
        )
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let program = argv.first().cloned().unwrap_or_else(|| "bdevperf".into());
    let cli = match args::parse(&argv) {
        Ok(c) => c,
        Err(ArgError::Help) => {
            print!("{}", args::usage(&program));
            return;
        }
        Err(ArgError::Bad(e)) => {
            eprintln!("{program}: {e}");
            eprintln!("Try '{program} -h' for the options.");
            std::process::exit(2);
        }
    };
    let opts = Arc::new(cli.perf.clone());
    let slot: Arc<OnceLock<AppCtx>> = Arc::new(OnceLock::new());
    let mut app = App::new(cli.app.clone());
    let added = app.add_subsystem(bdev::BdevSubsystem).and_then(|_| {
        // The NVMe/TCP initiator, for bdev_nvme_attach_controller -t tcp in --json.
        app.add_subsystem(nvmf::NvmfHostSubsystem)?;
        app.add_subsystem(PerfSubsystem {
            ctx: slot.clone(),
            opts: opts.clone(),
            running: Arc::new(Mutex::new(false)),
        })
    });
    if let Err(e) = added {
        eprintln!("{program}: {e}");
        std::process::exit(1);
    }
    let wait = cli.wait_rpc;
    let r = app.run(move |ctx| {
        let _ = slot.set(ctx.clone());
        if wait {
            println!("Waiting for the perform_tests RPC (-z)...");
            return;
        }
        let c2 = ctx.clone();
        let o2 = opts.clone();
        run_tests(
            &ctx,
            opts,
            Box::new(move |res| match res {
                Ok(results) => {
                    print!("{}", report::table(&o2, &results));
                    c2.stop(i32::from(failed(&results)));
                }
                Err(e) => {
                    eprintln!("bdevperf: {e}");
                    c2.stop(1);
                }
            }),
        );
    });
    match r {
        Ok(rc) => std::process::exit(rc),
        Err(e) => {
            eprintln!("{program}: {e}");
            std::process::exit(1);
        }
    }
}
