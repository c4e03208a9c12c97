//! The application skeleton (SPDK's `spdk_app_start` / `spdk_app_stop`).
//!
//! [`App::run`]:
//! 1. blocks SIGINT and SIGTERM in the calling thread before the EAL starts any thread
//!    (every thread inherits the mask) and opens a signalfd for them;
//! 2. initialises the EAL, falling back to `--no-huge` with a one-line notice when
//!    hugepages cannot be had (no root, none reserved);
//! 3. listens on the RPC socket (`-r`);
//! 4. starts the reactors ([`Framework::run`]); on the app thread it registers the
//!    framework's and every subsystem's RPC methods, polls the server (an active poller,
//!    plus its epoll fd as an interrupt so an idle app thread sleeps), watches the
//!    signalfd (an interrupt), replays `--json` (startup-state methods before subsystem
//!    init, the rest after, as SPDK's loader does), initialises the subsystems in
//!    dependency order (or waits for `framework_start_init` with `--wait-for-rpc`), and
//!    calls the start callback;
//! 5. on [`AppCtx::stop`] or a signal: stops the RPC server, finishes the subsystems in
//!    reverse, exits every thread and returns the exit code.

pub mod args;
mod config;
mod rpc;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use jsonrpc::{Responder, Server};

use crate::error::{Error, Result};
use crate::poller::{self, PollStatus, Poller};
use crate::runtime::{Framework, FrameworkOpts};
use crate::subsystem::{self, ConfigCall, Subsystem, Subsystems};
use crate::{interrupt, sys};

pub use args::AppOpts;

/// The version string `ferroplane_get_version` reports.
pub const VERSION: &str = concat!("ferroplane v", env!("CARGO_PKG_VERSION"));

const SIGNALS: [i32; 2] = [libc::SIGINT, libc::SIGTERM];

/// An application: options plus subsystems.
pub struct App {
    opts: AppOpts,
    subsystems: Subsystems,
    fw_slot: Arc<OnceLock<Framework>>,
}

/// The framework's own subsystem: the scheduler (saved as `framework_set_scheduler`).
struct SchedulerSubsystem(Arc<OnceLock<Framework>>);

impl Subsystem for SchedulerSubsystem {
    fn name(&self) -> &str {
        "scheduler"
    }
    fn write_config(&self) -> Vec<ConfigCall> {
        let Some(fw) = self.0.get() else {
            return Vec::new();
        };
        let (name, period) = fw.scheduler();
        vec![ConfigCall {
            method: "framework_set_scheduler".into(),
            params: Some(serde_json::json!({ "name": name, "period": period })),
        }]
    }
}

struct AppState {
    initialized: usize,
    init_started: bool,
    init_done: bool,
    stopping: bool,
    waiters: Vec<Responder>,
    pollers: Vec<Poller>,
    intrs: Vec<interrupt::Interrupt>,
    start: Option<Box<dyn FnOnce(AppCtx) + Send>>,
    /// A `--json` file is being replayed: the start callback waits for its end (as
    /// SPDK's app start function runs after the JSON configuration is loaded).
    config_loading: bool,
}

pub(crate) struct AppInner {
    fw: Framework,
    rpc: Mutex<Option<Arc<Server>>>,
    subsystems: Arc<[Arc<dyn Subsystem>]>,
    state: Mutex<AppState>,
    opts: AppOpts,
    sigfd: OwnedFd,
}

/// The running application, handed to the start callback. Cheap to clone.
#[derive(Clone)]
pub struct AppCtx(Arc<AppInner>);

impl App {
    /// An application with the framework's own subsystems.
    pub fn new(opts: AppOpts) -> App {
        let fw_slot = Arc::new(OnceLock::new());
        let mut subsystems = Subsystems::default();
        // Cannot fail: the list is empty.
        let _ = subsystems.add(Arc::new(SchedulerSubsystem(fw_slot.clone())));
        App {
            opts,
            subsystems,
            fw_slot,
        }
    }

    /// Add a subsystem (one call per subsystem; order does not matter, dependencies do).
    pub fn add_subsystem<S: Subsystem>(&mut self, s: S) -> Result<()> {
        self.subsystems.add(Arc::new(s))
    }

    /// Run until stopped; returns the exit code.
    pub fn run<F: FnOnce(AppCtx) + Send + 'static>(self, start: F) -> Result<i32> {
        let ordered: Arc<[Arc<dyn Subsystem>]> = self.subsystems.ordered()?.into();
        sys::block_signals(&SIGNALS)?;
        let r = self.run_blocked(ordered, Box::new(start));
        let _ = sys::unblock_signals(&SIGNALS);
        r
    }

    fn run_blocked(
        self,
        subsystems: Arc<[Arc<dyn Subsystem>]>,
        start: Box<dyn FnOnce(AppCtx) + Send>,
    ) -> Result<i32> {
        let sigfd = sys::signalfd(&SIGNALS)?;
        eal::log_notice!("Starting {VERSION} / EAL initialization...");
        let (eal, _rest, fell_back) = eal::Eal::init_or_no_huge(&self.opts.eal_argv)?;
        if let Some(why) = fell_back {
            eprintln!("NOTICE: hugepages unavailable ({why}); running with --no-huge");
        }
        eal::log_notice!("Total cores available: {}", eal.lcores().count());
        let server = Server::listen(&self.opts.rpc_addr).map_err(|e| Error::Rpc {
            what: "start the RPC server",
            why: e.to_string(),
        })?;
        let fw_opts = FrameworkOpts {
            interrupt_mode: self.opts.interrupt_mode,
            exit_timeout_ms: self.opts.exit_timeout_ms,
            ..FrameworkOpts::default()
        };
        let opts = self.opts.clone();
        let fw_slot = self.fw_slot.clone();
        // Keeps the app alive until the reactors return (RPC handlers and the signal
        // handler hold weak references, so nothing forms a cycle).
        let holder: Arc<Mutex<Option<AppCtx>>> = Arc::new(Mutex::new(None));
        let holder2 = holder.clone();
        let rc = Framework::run(&eal, fw_opts, move |fw| {
            let _ = fw_slot.set(fw.clone());
            let ctx = AppCtx(Arc::new(AppInner {
                fw,
                rpc: Mutex::new(Some(Arc::new(server))),
                subsystems,
                state: Mutex::new(AppState {
                    initialized: 0,
                    init_started: false,
                    init_done: false,
                    stopping: false,
                    waiters: Vec::new(),
                    pollers: Vec::new(),
                    intrs: Vec::new(),
                    start: Some(start),
                    config_loading: false,
                }),
                opts,
                sigfd,
            }));
            *holder2.lock().unwrap_or_else(|e| e.into_inner()) = Some(ctx.clone());
            ctx.boot();
        })?;
        drop(holder);
        drop(eal);
        Ok(rc)
    }
}

impl AppCtx {
    /// The framework.
    pub fn framework(&self) -> &Framework {
        &self.0.fw
    }

    /// The RPC server (until the app stops).
    pub fn rpc(&self) -> Option<Arc<Server>> {
        self.0.rpc.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The options the app runs with.
    pub fn opts(&self) -> &AppOpts {
        &self.0.opts
    }

    pub(crate) fn weak(&self) -> Weak<AppInner> {
        Arc::downgrade(&self.0)
    }

    pub(crate) fn from_weak(w: &Weak<AppInner>) -> Option<AppCtx> {
        w.upgrade().map(AppCtx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AppState> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on the app thread.
    pub(crate) fn on_app<F: FnOnce() + Send + 'static>(&self, f: F) {
        let _ = self.0.fw.app_thread().send_reliable(Box::new(f));
    }

    /// On the app thread: RPC, signals, config, init, start.
    fn boot(&self) {
        let Some(server) = self.rpc() else { return };
        if let Err(e) = self.register_rpcs(&server) {
            eal::log_err!("{e}");
            self.stop(1);
            return;
        }
        let mut st = self.lock();
        let s2 = server.clone();
        // Its descriptor is also an interrupt (below), checked in poll mode too: in poll
        // mode the poller is a 4 ms safety net, as SPDK's RPC poller, not a system call
        // per reactor iteration; in interrupt mode it is active (it never wakes a
        // sleeping reactor).
        let period = if self.0.opts.interrupt_mode { 0 } else { 4000 };
        match poller::register("rpc", period, move || (s2.poll() > 0).into()) {
            Ok(p) => st.pollers.push(p),
            Err(e) => eal::log_err!("rpc poller: {e}"),
        }
        let s3 = server.clone();
        match interrupt::register("rpc", server.as_raw_fd(), move || (s3.poll() > 0).into()) {
            Ok(i) => st.intrs.push(i),
            Err(e) => eal::log_err!("rpc interrupt: {e}"),
        }
        let w = self.weak();
        let fd = self.0.sigfd.as_raw_fd();
        match interrupt::register("signals", fd, move || {
            let Some(ctx) = AppCtx::from_weak(&w) else {
                return PollStatus::Idle;
            };
            let mut any = false;
            while let Ok(Some(sig)) = sys::signalfd_read(&ctx.0.sigfd) {
                eal::log_notice!("Received signal {sig}: shutting down");
                any = true;
            }
            if any {
                ctx.stop(0);
            }
            any.into()
        }) {
            Ok(i) => st.intrs.push(i),
            Err(e) => eal::log_err!("signal interrupt: {e}"),
        }
        drop(st);
        server.set_state(jsonrpc::State::Startup);
        eal::log_notice!("RPC server listening on {}", server.path().display());
        match self.0.opts.json_config.clone() {
            Some(path) => {
                self.lock().config_loading = true;
                config::load(self.clone(), &path)
            }
            None if self.0.opts.wait_for_rpc => {
                eal::log_notice!("Waiting for framework_start_init (--wait-for-rpc)");
            }
            None => self.init_then(Box::new(|_| {})),
        }
    }

    fn register_rpcs(&self, server: &Arc<Server>) -> Result<()> {
        rpc::register(self, server)?;
        let reg = rpc::Registrar(server.clone());
        for s in self.0.subsystems.iter() {
            s.register_rpcs(&reg)?;
        }
        Ok(())
    }

    /// Initialise the subsystems (once), then go to runtime and run the start callback,
    /// then `then` with the outcome. On the app thread.
    pub(crate) fn init_then(&self, then: Box<dyn FnOnce(std::result::Result<(), String>) + Send>) {
        {
            let mut st = self.lock();
            if st.init_started || st.stopping {
                drop(st);
                then(Err(
                    "subsystems are already initialised or initialising".into()
                ));
                return;
            }
            st.init_started = true;
        }
        let ctx = self.clone();
        subsystem::init_all(
            self.0.fw.app_thread(),
            self.0.subsystems.clone(),
            Box::new(move |n, err| {
                ctx.lock().initialized = n;
                if let Some(e) = err {
                    eal::log_err!("{e}");
                    then(Err(e.to_string()));
                    ctx.stop(1);
                    return;
                }
                if let Some(s) = ctx.rpc() {
                    s.set_state(jsonrpc::State::Runtime);
                }
                let (waiters, start) = {
                    let mut st = ctx.lock();
                    st.init_done = true;
                    // With a `--json` file still being replayed, the start callback and
                    // framework_wait_init wait for its end (`config_loaded`).
                    if st.config_loading {
                        (Vec::new(), None)
                    } else {
                        (std::mem::take(&mut st.waiters), st.start.take())
                    }
                };
                for w in waiters {
                    w.respond(Ok(serde_json::Value::Bool(true)));
                }
                eal::log_notice!("Subsystems initialised; application started");
                if let Some(f) = start {
                    f(ctx.clone());
                }
                then(Ok(()));
            }),
        );
    }

    /// The `--json` file is replayed: run the start callback if the subsystems are up
    /// (otherwise initialisation runs it when it finishes).
    pub(crate) fn config_loaded(&self) {
        let (waiters, start) = {
            let mut st = self.lock();
            st.config_loading = false;
            if st.init_done {
                (std::mem::take(&mut st.waiters), st.start.take())
            } else {
                (Vec::new(), None)
            }
        };
        for w in waiters {
            w.respond(Ok(serde_json::Value::Bool(true)));
        }
        if let Some(f) = start {
            f(self.clone());
        }
    }

    /// Answer `r` once the subsystems are initialised and a `--json` file, if any, is
    /// replayed (framework_wait_init, as SPDK's answers after the configuration loaded).
    pub(crate) fn when_initialised(&self, r: Responder) {
        let mut st = self.lock();
        if st.init_done && !st.config_loading {
            drop(st);
            r.respond(Ok(serde_json::Value::Bool(true)));
        } else {
            st.waiters.push(r);
        }
    }

    /// The calls that recreate the current state (save_config).
    pub(crate) fn save_config(&self) -> jsonrpc::config::JsonConfig {
        jsonrpc::config::JsonConfig {
            subsystems: self
                .0
                .subsystems
                .iter()
                .map(|s| jsonrpc::config::SubsystemConfig {
                    subsystem: s.name().to_string(),
                    config: Some(config_calls(s.as_ref())),
                })
                .collect(),
        }
    }

    /// The subsystems in initialisation order with their dependencies
    /// (`framework_get_subsystems`).
    pub(crate) fn subsystem_list(&self) -> Vec<(String, Vec<String>)> {
        self.0
            .subsystems
            .iter()
            .map(|s| (s.name().to_string(), s.depends_on()))
            .collect()
    }

    /// The configuration calls of one subsystem, or `None` if there is no subsystem of
    /// that name (`framework_get_config`).
    pub(crate) fn subsystem_config(&self, name: &str) -> Option<Vec<jsonrpc::config::MethodCall>> {
        let s = self.0.subsystems.iter().find(|s| s.name() == name)?;
        Some(config_calls(s.as_ref()))
    }

    /// Stop the application with exit code `rc` (from any thread; later calls are
    /// ignored): RPC server off, subsystems finished in reverse, threads exited.
    pub fn stop(&self, rc: i32) {
        let ctx = self.clone();
        self.on_app(move || ctx.stop_on_app(rc));
    }

    fn stop_on_app(&self, rc: i32) {
        let (pollers, intrs, waiters, n) = {
            let mut st = self.lock();
            if st.stopping {
                return;
            }
            st.stopping = true;
            st.start = None;
            (
                std::mem::take(&mut st.pollers),
                std::mem::take(&mut st.intrs),
                std::mem::take(&mut st.waiters),
                st.initialized,
            )
        };
        for p in pollers {
            let _ = p.unregister();
        }
        for i in intrs {
            let _ = i.unregister();
        }
        drop(waiters);
        // Dropping the last server handle closes the socket and removes its file.
        let server = self.0.rpc.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(server);
        let fw = self.0.fw.clone();
        subsystem::fini_all(
            self.0.fw.app_thread(),
            self.0.subsystems.clone(),
            n,
            Box::new(move || {
                eal::log_notice!("Subsystems finished; stopping reactors");
                fw.shutdown(rc);
            }),
        );
    }
}

/// Subsystem `s`'s configuration calls in the JSON config file's form.
fn config_calls(s: &dyn Subsystem) -> Vec<jsonrpc::config::MethodCall> {
    s.write_config()
        .into_iter()
        .map(|c| jsonrpc::config::MethodCall {
            method: c.method,
            params: c.params,
        })
        .collect()
}
