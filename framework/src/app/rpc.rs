//! The framework's RPC methods, under SPDK's names: framework_get_reactors,
//! thread_get_stats, thread_get_pollers, framework_set_scheduler,
//! framework_get_scheduler, framework_wait_init, framework_start_init, save_config,
//! framework_get_subsystems, framework_get_config (what rpc.py's save_config calls),
//! ferroplane_get_version (and `spdk_get_version`, so rpc.py scripts work),
//! spdk_kill_instance. rpc_get_methods comes from the jsonrpc crate.

use std::sync::{Arc, Mutex};

use jsonrpc::{Request, RpcError, Server, StateMask};
use serde::Deserialize;
use serde_json::{json, Value};

use super::AppCtx;
use crate::error::{Error, Result};
use crate::poller::PollerInfo;
use crate::subsystem::RpcRegistrar;

pub(super) struct Registrar(pub(super) Arc<Server>);

impl RpcRegistrar for Registrar {
    fn register(
        &self,
        method: &str,
        startup: bool,
        handler: Box<dyn Fn(Request) + Send + Sync>,
    ) -> Result<()> {
        let mask = if startup {
            StateMask::ALL
        } else {
            StateMask::RUNTIME
        };
        self.0
            .register(method, mask, handler)
            .map_err(|e| Error::Rpc {
                what: "register an RPC method",
                why: e.to_string(),
            })
    }
}

/// Each thread's pollers: (thread id, pollers, thread name).
type ThreadPollers = Vec<(u64, Vec<PollerInfo>, String)>;

/// Ask every thread for its pollers (SPDK's for_each_thread), then call `done` with
/// them on the calling thread; a framework that cannot iterate answers the request with
/// an internal error.
fn with_pollers(
    resp: jsonrpc::Responder,
    done: impl FnOnce(jsonrpc::Responder, ThreadPollers) + Send + 'static,
) {
    let acc: Arc<Mutex<ThreadPollers>> = Arc::default();
    let a2 = acc.clone();
    let slot = Arc::new(Mutex::new(Some((resp, done))));
    let s2 = slot.clone();
    let r = crate::thread::for_each_thread(
        move || {
            if let Ok((t, infos)) = crate::poller::current_pollers() {
                a2.lock().unwrap_or_else(|e| e.into_inner()).push((
                    t.id(),
                    infos,
                    t.name().to_string(),
                ));
            }
        },
        move || {
            let list = std::mem::take(&mut *acc.lock().unwrap_or_else(|e| e.into_inner()));
            if let Some((resp, done)) = s2.lock().unwrap_or_else(|e| e.into_inner()).take() {
                done(resp, list);
            }
        },
    );
    if let Err(e) = r {
        if let Some((resp, _)) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
            resp.respond(Err(RpcError::internal(e)));
        }
    }
}

fn mask_hex(lcores: &[u32]) -> String {
    let m: u128 = lcores
        .iter()
        .filter(|&&l| l < 128)
        .fold(0, |m, &l| m | (1u128 << l));
    format!("0x{m:x}")
}

fn no_params(r: &Request) -> std::result::Result<(), RpcError> {
    match r.raw_params() {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(m)) if m.is_empty() => Ok(()),
        Some(_) => Err(RpcError::invalid_params(format!(
            "{} takes no parameters",
            r.method()
        ))),
    }
}

/// Answers `r` with `v` as JSON, or an internal error if it does not serialise.
fn respond_json(r: Request, v: &impl serde::Serialize) {
    match serde_json::to_value(v) {
        Ok(v) => r.respond(Ok(v)),
        Err(e) => r.respond(Err(RpcError::internal(e))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetScheduler {
    name: String,
    #[serde(default)]
    period: Option<u64>,
}

type Handler = Box<dyn Fn(&AppCtx, Request) + Send + Sync>;

/// Register the framework's methods on `server`.
pub(super) fn register(ctx: &AppCtx, server: &Arc<Server>) -> Result<()> {
    let reg = |name: &str, mask: StateMask, f: Handler| {
        let w = ctx.weak();
        server
            .register(name, mask, move |r| match AppCtx::from_weak(&w) {
                Some(ctx) => f(&ctx, r),
                None => r.respond(Err(RpcError::internal("the application is stopping"))),
            })
            .map_err(|e| Error::Rpc {
                what: "register an RPC method",
                why: e.to_string(),
            })
    };
    // Methods that take no parameters: refused with invalid-params if given any.
    let reg_bare = |name: &str, mask: StateMask, f: Handler| {
        reg(
            name,
            mask,
            Box::new(move |ctx, r| match no_params(&r) {
                Ok(()) => f(ctx, r),
                Err(e) => r.respond(Err(e)),
            }),
        )
    };
    let version: fn(&AppCtx, Request) = |_, r| {
        let mut it = env!("CARGO_PKG_VERSION")
            .split('.')
            .map(|p| p.parse::<u64>().unwrap_or(0));
        r.respond(Ok(json!({
            "version": super::VERSION,
            "fields": {
                "major": it.next().unwrap_or(0),
                "minor": it.next().unwrap_or(0),
                "patch": it.next().unwrap_or(0),
                "suffix": "",
            }
        })));
    };
    reg_bare("ferroplane_get_version", StateMask::ALL, Box::new(version))?;
    reg_bare("spdk_get_version", StateMask::ALL, Box::new(version))?;

    reg_bare(
        "framework_get_reactors",
        StateMask::RUNTIME,
        Box::new(|ctx, r| {
            let fw = ctx.framework();
            let all = fw.lcores();
            let threads = fw.thread_stats();
            let reactors: Vec<Value> = fw
                .reactor_stats()
                .into_iter()
                .map(|s| {
                    let lw: Vec<Value> = threads
                        .iter()
                        .filter(|t| t.lcore == Some(s.lcore))
                        .map(|t| {
                            json!({
                                "name": t.name,
                                "id": t.id,
                                "cpumask": mask_hex(if t.cpumask.is_empty() { &all } else { &t.cpumask }),
                                "elapsed": t.busy + t.idle,
                            })
                        })
                        .collect();
                    json!({
                        "lcore": s.lcore,
                        "busy": s.busy,
                        "idle": s.idle,
                        "sleep": s.sleep,
                        "sleeps": s.sleeps,
                        "in_interrupt": s.in_interrupt,
                        "lw_threads": lw,
                    })
                })
                .collect();
            r.respond(Ok(json!({
                "tick_rate": eal::timer::tsc_hz(),
                "pid": std::process::id(),
                "reactors": reactors,
            })));
        }),
    )?;

    reg_bare(
        "thread_get_stats",
        StateMask::RUNTIME,
        Box::new(|ctx, r| {
            let all = ctx.framework().lcores();
            let stats = ctx.framework().thread_stats();
            let resp = r.into_responder();
            with_pollers(resp, move |resp, pollers| {
                let threads: Vec<Value> = stats
                    .into_iter()
                    .map(|t| {
                        let p = pollers.iter().find(|p| p.0 == t.id).map(|p| &p.1[..]);
                        let count = |want: fn(&PollerInfo) -> bool| {
                            p.map_or(0, |p| p.iter().filter(|i| want(i)).count())
                        };
                        json!({
                            "name": t.name,
                            "id": t.id,
                            "cpumask": mask_hex(if t.cpumask.is_empty() { &all } else { &t.cpumask }),
                            "lcore": t.lcore,
                            "busy": t.busy,
                            "idle": t.idle,
                            "active_pollers_count": count(|i| i.state == "running" && i.period_us == 0),
                            "timed_pollers_count": count(|i| i.state == "running" && i.period_us != 0),
                            "paused_pollers_count": count(|i| i.state != "running"),
                        })
                    })
                    .collect();
                resp.respond(Ok(
                    json!({ "tick_rate": eal::timer::tsc_hz(), "threads": threads }),
                ));
            });
        }),
    )?;

    reg_bare(
        "thread_get_pollers",
        StateMask::RUNTIME,
        Box::new(|_ctx, r| {
            let resp = r.into_responder();
            with_pollers(resp, |resp, pollers| {
                let hz = eal::timer::tsc_hz();
                let list = |infos: &[PollerInfo], want: fn(&PollerInfo) -> bool| -> Vec<Value> {
                    infos
                        .iter()
                        .filter(|i| want(i))
                        .map(|i| {
                            json!({
                                "name": i.name,
                                "state": i.state,
                                "run_count": i.run_count,
                                "busy_count": i.busy_count,
                                "period_ticks": i.period_us * hz / 1_000_000,
                            })
                        })
                        .collect()
                };
                let threads: Vec<Value> = pollers
                    .iter()
                    .map(|(id, infos, name)| {
                        json!({
                            "name": name,
                            "id": id,
                            "active_pollers": list(infos, |i| i.state == "running" && i.period_us == 0),
                            "timed_pollers": list(infos, |i| i.state == "running" && i.period_us != 0),
                            "paused_pollers": list(infos, |i| i.state != "running"),
                        })
                    })
                    .collect();
                resp.respond(Ok(json!({ "tick_rate": hz, "threads": threads })));
            });
        }),
    )?;

    reg(
        "framework_set_scheduler",
        StateMask::ALL,
        Box::new(|ctx, r| {
            let p: SetScheduler = match r.params() {
                Ok(p) => p,
                Err(e) => return r.respond(Err(e)),
            };
            match ctx.framework().set_scheduler(&p.name, p.period) {
                Ok(()) => r.respond(Ok(Value::Bool(true))),
                Err(e) => r.respond(Err(RpcError::invalid_params(e))),
            }
        }),
    )?;

    reg_bare(
        "framework_get_scheduler",
        StateMask::ALL,
        Box::new(|ctx, r| {
            let (name, period) = ctx.framework().scheduler();
            r.respond(Ok(
                json!({ "scheduler_name": name, "scheduler_period": period }),
            ));
        }),
    )?;

    reg_bare(
        "framework_wait_init",
        StateMask::ALL,
        Box::new(|ctx, r| {
            ctx.when_initialised(r.into_responder());
        }),
    )?;

    reg_bare(
        "framework_start_init",
        StateMask::STARTUP,
        Box::new(|ctx, r| {
            let resp = r.into_responder();
            ctx.init_then(Box::new(move |res| match res {
                Ok(()) => resp.respond(Ok(Value::Bool(true))),
                Err(why) => resp.respond(Err(RpcError::internal(why))),
            }));
        }),
    )?;

    reg_bare(
        "save_config",
        StateMask::ALL,
        Box::new(|ctx, r| {
            let cfg = ctx.save_config();
            respond_json(r, &cfg)
        }),
    )?;

    // rpc.py's save_config asks for the subsystems, then each one's calls.
    reg_bare(
        "framework_get_subsystems",
        StateMask::ALL,
        Box::new(|ctx, r| {
            let list: Vec<Value> = ctx
                .subsystem_list()
                .into_iter()
                .map(|(name, deps)| json!({ "subsystem": name, "depends_on": deps }))
                .collect();
            r.respond(Ok(Value::Array(list)));
        }),
    )?;

    reg(
        "framework_get_config",
        StateMask::ALL,
        Box::new(|ctx, r| {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Name {
                name: String,
            }
            let p: Name = match r.params() {
                Ok(p) => p,
                Err(e) => return r.respond(Err(e)),
            };
            match ctx.subsystem_config(&p.name) {
                Some(calls) => respond_json(r, &calls),
                None => r.respond(Err(RpcError::invalid_params(format!(
                    "no subsystem named '{}'",
                    p.name
                )))),
            }
        }),
    )?;

    reg(
        "spdk_kill_instance",
        StateMask::ALL,
        Box::new(|ctx, r| {
            #[derive(Deserialize)]
            struct Kill {
                sig_name: String,
            }
            let p: Kill = match r.params() {
                Ok(p) => p,
                Err(e) => return r.respond(Err(e)),
            };
            match p.sig_name.as_str() {
                "SIGINT" | "SIGTERM" | "SIGKILL" => {
                    r.respond(Ok(Value::Bool(true)));
                    ctx.stop(0);
                }
                other => r.respond(Err(RpcError::invalid_params(format!(
                    "unsupported signal '{other}'"
                )))),
            }
        }),
    )?;
    Ok(())
}
