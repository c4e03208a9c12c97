//! The framework's RPC methods, under SPDK's names: framework_get_reactors,
//! thread_get_stats, thread_get_pollers, framework_set_scheduler,
//! framework_get_scheduler, framework_wait_init, framework_start_init, save_config,
//! framework_get_subsystems, framework_get_config (what rpc.py's save_config calls),
//! ferroplane_get_version (and `spdk_get_version`, so rpc.py scripts work),
//! spdk_kill_instance. rpc_get_methods comes from the jsonrpc crate.

use std::sync::Arc;

use jsonrpc::{Request, RpcError, Server, StateMask};
use serde::Deserialize;
use serde_json::{json, Value};

use super::AppCtx;
use crate::error::{Error, Result};
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
    let version: fn(&AppCtx, Request) = |_, r| {
        if let Err(e) = no_params(&r) {
            return r.respond(Err(e));
        }
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
    reg("ferroplane_get_version", StateMask::ALL, Box::new(version))?;
    reg("spdk_get_version", StateMask::ALL, Box::new(version))?;

    reg(
        "framework_get_reactors",
        StateMask::RUNTIME,
        Box::new(|ctx, r| {
            if let Err(e) = no_params(&r) {
                return r.respond(Err(e));
            }
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

    reg(
        "thread_get_stats",
        StateMask::RUNTIME,
        Box::new(|ctx, r| {
            if let Err(e) = no_params(&r) {
                return r.respond(Err(e));
            }
            let all = ctx.framework().lcores();
            let threads: Vec<Value> = ctx
                .framework()
                .thread_stats()
                .into_iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "id": t.id,
                        "cpumask": mask_hex(if t.cpumask.is_empty() { &all } else { &t.cpumask }),
                        "lcore": t.lcore,
                        "busy": t.busy,
                        "idle": t.idle,
                    })
                })
                .collect();
            r.respond(Ok(
                json!({ "tick_rate": eal::timer::tsc_hz(), "threads": threads }),
            ));
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

    reg(
        "framework_get_scheduler",
        StateMask::ALL,
        Box::new(|ctx, r| {
            if let Err(e) = no_params(&r) {
                return r.respond(Err(e));
            }
            let (name, period) = ctx.framework().scheduler();
            r.respond(Ok(
                json!({ "scheduler_name": name, "scheduler_period": period }),
            ));
        }),
    )?;

    reg(
        "framework_wait_init",
        StateMask::ALL,
        Box::new(|ctx, r| {
            if let Err(e) = no_params(&r) {
                return r.respond(Err(e));
            }
            ctx.when_initialised(r.into_responder());
        }),
    )?;

    reg(
        "framework_start_init",
        StateMask::STARTUP,
        Box::new(|ctx, r| {
            if let Err(e) = no_params(&r) {
                return r.respond(Err(e));
            }
            let resp = r.into_responder();
            ctx.init_then(Box::new(move |res| match res {
                Ok(()) => resp.respond(Ok(Value::Bool(true))),
                Err(why) => resp.respond(Err(RpcError::internal(why))),
            }));
        }),
    )?;

    reg(
        "save_config",
        StateMask::ALL,
        Box::new(|ctx, r| {
            if let Err(e) = no_params(&r) {
                return r.respond(Err(e));
            }
            let cfg = ctx.save_config();
            match serde_json::to_value(&cfg) {
                Ok(v) => r.respond(Ok(v)),
                Err(e) => r.respond(Err(RpcError::internal(e))),
            }
        }),
    )?;

    // rpc.py's save_config asks for the subsystems, then each one's calls.
    reg(
        "framework_get_subsystems",
        StateMask::ALL,
        Box::new(|ctx, r| {
            if let Err(e) = no_params(&r) {
                return r.respond(Err(e));
            }
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
                Some(calls) => match serde_json::to_value(&calls) {
                    Ok(v) => r.respond(Ok(v)),
                    Err(e) => r.respond(Err(RpcError::internal(e))),
                },
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
