//! `--json FILE`: replay a saved configuration by calling its methods in-process, in file
//! order, as SPDK's JSON config loader does: while the framework is in the startup state,
//! methods allowed there run at once; the first method that needs the runtime state
//! first initialises the subsystems. A failed call stops the app with exit code 1. The
//! app's start callback runs after the last call (SPDK runs its start function once
//! the JSON configuration is loaded).

use std::path::Path;
use std::sync::Arc;

use jsonrpc::config::{JsonConfig, MethodCall};
use jsonrpc::State;

use super::AppCtx;

/// Load `path` and replay it (on the app thread).
pub(super) fn load(ctx: AppCtx, path: &Path) {
    let cfg = match JsonConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            eal::log_err!(
                "failed to load the JSON configuration {}: {e}",
                path.display()
            );
            ctx.stop(1);
            return;
        }
    };
    let calls: Arc<[MethodCall]> = cfg.calls().map(|(_, c)| c.clone()).collect();
    eal::log_notice!("Loading {} call(s) from {}", calls.len(), path.display());
    step(ctx, calls, 0);
}

fn step(ctx: AppCtx, calls: Arc<[MethodCall]>, i: usize) {
    let Some(server) = ctx.rpc() else { return };
    let Some(call) = calls.get(i).cloned() else {
        finish(ctx);
        return;
    };
    if server.state() == State::Startup
        && !server.methods(Some(State::Startup)).contains(&call.method)
    {
        let c2 = ctx.clone();
        ctx.init_then(Box::new(move |r| {
            if r.is_ok() {
                step(c2, calls, i);
            }
        }));
        return;
    }
    let c2 = ctx.clone();
    let method = call.method.clone();
    server.call_local(&method, call.params.clone(), move |r| {
        let c3 = c2.clone();
        // Continue from a message, not from inside the server's poll.
        c2.on_app(move || match r {
            Ok(_) => step(c3, calls, i + 1),
            Err(e) => {
                eal::log_err!(
                    "failed to load the JSON configuration: {} failed: {} ({})",
                    call.method,
                    e.message,
                    e.code
                );
                c3.stop(1);
            }
        });
    });
}

fn finish(ctx: AppCtx) {
    let Some(server) = ctx.rpc() else { return };
    if server.state() == State::Startup && !ctx.opts().wait_for_rpc {
        let c2 = ctx.clone();
        ctx.init_then(Box::new(move |_| c2.config_loaded()));
    } else {
        ctx.config_loaded();
    }
}
