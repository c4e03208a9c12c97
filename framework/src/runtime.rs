//! One framework instance: a reactor per EAL lcore, the thread registry, the app thread
//! and the scheduler (SPDK's `spdk_reactors_init/start` and `scheduler` glue).
//!
//! [`Framework::run`] launches a reactor on every worker lcore (EAL `remote_launch`),
//! creates the app thread pinned to the main lcore, runs the caller's start function on
//! it, and runs the main lcore's reactor on the calling thread until
//! [`Framework::shutdown`] has exited every thread; then it joins the workers.
//!
//! Several instances may run in one process one after another or side by side (each on
//! its own EAL); nothing here is global except the per-OS-thread "current" pointers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::poller::{self, PollStatus, Poller};
use crate::reactor::{self, Reactor};
use crate::scheduler::{self, CoreLoad, Scheduler, ThreadLoad};
use crate::thread::{Registry, ThreadHandle, ThreadStats};

/// Framework settings.
#[derive(Debug, Clone)]
pub struct FrameworkOpts {
    /// Reactors sleep in epoll when idle (default). `false`: pure polling.
    pub interrupt_mode: bool,
    /// Messages a thread's ring holds.
    pub msg_ring_size: u32,
    /// How long an exiting thread may take before its leftovers are dropped (ms).
    pub exit_timeout_ms: u64,
    /// Initial scheduler: `static` or `dynamic`.
    pub scheduler: String,
    /// Scheduler period in microseconds.
    pub scheduler_period_us: u64,
}

impl Default for FrameworkOpts {
    fn default() -> Self {
        FrameworkOpts {
            interrupt_mode: true,
            // SPDK's SPDK_MSG_MEMPOOL_CACHE_SIZE-era ring is 64 Ki; 16 Ki 16-byte slots
            // (256 KiB) per thread is plenty for our senders.
            msg_ring_size: 16 * 1024,
            exit_timeout_ms: 5000,
            scheduler: "static".into(),
            // SPDK's default scheduler period: 1 s.
            scheduler_period_us: 1_000_000,
        }
    }
}

struct SchedState {
    policy: Box<dyn Scheduler>,
    period_us: u64,
    poller: Option<Poller>,
    last_threads: HashMap<u64, (u64, u64)>,
    last_cores: Vec<(u64, u64)>,
}

struct Shared {
    hub: Arc<Hub>,
    registry: Arc<Registry>,
    main_lcore: u32,
    app_thread: OnceLock<ThreadHandle>,
    sched: Mutex<SchedState>,
    rc: AtomicI32,
}

/// A running framework. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Framework(Arc<Shared>);

/// One reactor's counters (framework_get_reactors).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReactorStats {
    /// Its lcore.
    pub lcore: u32,
    /// Busy ticks.
    pub busy: u64,
    /// Idle ticks (sleep included).
    pub idle: u64,
    /// Ticks asleep in epoll.
    pub sleep: u64,
    /// Times it went to sleep.
    pub sleeps: u64,
    /// Whether it may sleep when idle.
    pub in_interrupt: bool,
}

impl Framework {
    /// Start reactors on every lcore of `eal`, run `start` on the app thread, and return
    /// the exit code given to [`Framework::shutdown`] once every thread has exited.
    ///
    /// A callback that panics kills its reactor; the others then leave at once, and the
    /// run fails (a worker's panic as [`Error::Eal`] with `LcorePanicked`, the main
    /// reactor's by unwinding out of this call).
    pub fn run<F>(eal: &eal::Eal, opts: FrameworkOpts, start: F) -> Result<i32>
    where
        F: FnOnce(Framework) + Send + 'static,
    {
        let policy = scheduler::by_name(&opts.scheduler)
            .ok_or_else(|| Error::UnknownScheduler(opts.scheduler.clone()))?;
        let lcores = eal.lcores().lcore_ids();
        let main = eal.lcores().main_lcore();
        let hub = Arc::new(Hub::new(&lcores, opts.interrupt_mode)?);
        let exit_tsc = crate::poller_set::us_to_tsc(opts.exit_timeout_ms.saturating_mul(1000));
        let registry = Arc::new(Registry::new(
            hub.clone(),
            opts.msg_ring_size,
            exit_tsc,
            eal.clone(),
        ));
        let fw = Framework(Arc::new(Shared {
            hub: hub.clone(),
            registry: registry.clone(),
            main_lcore: main,
            app_thread: OnceLock::new(),
            sched: Mutex::new(SchedState {
                policy,
                period_us: opts.scheduler_period_us.max(1),
                poller: None,
                last_threads: HashMap::new(),
                last_cores: Vec::new(),
            }),
            rc: AtomicI32::new(0),
        }));
        let main_idx = hub.index_of(main)?;
        let mut launched = Vec::new();
        for (idx, &lcore) in lcores.iter().enumerate() {
            if lcore == main {
                continue;
            }
            let r = Reactor::new(hub.clone(), idx);
            eal::log_notice!("Reactor started on core {lcore}");
            if let Err(e) = eal.lcores().remote_launch(lcore, move || {
                r.run();
                0
            }) {
                hub.stop();
                for l in launched {
                    let _ = eal.lcores().wait_lcore(l);
                }
                return Err(e.into());
            }
            launched.push(lcore);
        }
        eal::log_notice!("Reactor started on core {main}");
        let app = registry.spawn("app_thread", &[main])?;
        let _ = fw.0.app_thread.set(app.clone());
        let fw2 = fw.clone();
        let _ = app.send_reliable(Box::new(move || {
            fw2.arm_scheduler();
            start(fw2);
        }));
        Reactor::new(hub.clone(), main_idx).run();
        let mut failed = None;
        for l in launched {
            if let Err(e) = eal.lcores().wait_lcore(l) {
                eal::log_err!("reactor on lcore {l} failed: {e}");
                failed.get_or_insert(e);
            }
        }
        // A reactor that died (a callback panicked) fails the run.
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(fw.0.rc.load(Ordering::Acquire)),
        }
    }

    /// The EAL it runs on (also [`crate::thread::current_eal`] from inside).
    pub fn eal(&self) -> &eal::Eal {
        &self.0.registry.eal
    }

    /// The app thread (pinned to the main lcore; runs the start function, the RPC server
    /// and the scheduler).
    pub fn app_thread(&self) -> ThreadHandle {
        self.0
            .app_thread
            .get()
            .cloned()
            .expect("the app thread is created before any Framework handle is shared")
    }

    /// The main lcore.
    pub fn main_lcore(&self) -> u32 {
        self.0.main_lcore
    }

    /// Lcores with a reactor, ascending.
    pub fn lcores(&self) -> Vec<u32> {
        self.0.hub.ports.iter().map(|p| p.lcore).collect()
    }

    /// Create a thread; `cpumask` lists the lcores it may run on (empty = any).
    pub fn spawn_thread(&self, name: &str, cpumask: &[u32]) -> Result<ThreadHandle> {
        self.0.registry.spawn(name, cpumask)
    }

    /// Every live thread.
    pub fn threads(&self) -> Vec<ThreadHandle> {
        self.0.registry.threads()
    }

    /// Counters of every live thread.
    pub fn thread_stats(&self) -> Vec<ThreadStats> {
        self.threads().iter().map(|t| t.stats()).collect()
    }

    /// Counters of every reactor.
    pub fn reactor_stats(&self) -> Vec<ReactorStats> {
        self.0
            .hub
            .ports
            .iter()
            .map(|p| ReactorStats {
                lcore: p.lcore,
                busy: p.busy_tsc.load(Ordering::Relaxed),
                idle: p.idle_tsc.load(Ordering::Relaxed),
                sleep: p.sleep_tsc.load(Ordering::Relaxed),
                sleeps: p.sleeps.load(Ordering::Relaxed),
                in_interrupt: p.interrupt_mode.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Let every reactor sleep when idle (`true`) or poll all the time.
    pub fn set_interrupt_mode(&self, on: bool) {
        for p in self.0.hub.ports.iter() {
            p.interrupt_mode.store(on, Ordering::Relaxed);
            p.wake.force();
        }
    }

    /// How long every reactor in interrupt mode keeps polling after its last work
    /// before it sleeps (default [`crate::reactor::IDLE_BEFORE_SLEEP_US`]; 0: at once).
    /// Polling on catches the next request without a wake-up; sleeping sooner gives
    /// the core to other processes (a guest's emulator threads on a small host).
    pub fn set_idle_before_sleep_us(&self, us: u64) {
        let tsc = crate::poller_set::us_to_tsc(us);
        for p in self.0.hub.ports.iter() {
            p.idle_sleep_tsc.store(tsc, Ordering::Relaxed);
        }
    }

    /// Move a thread to `lcore` (it keeps its pollers, interrupts and channels).
    pub fn move_thread(&self, t: &ThreadHandle, lcore: u32) -> Result<()> {
        let dst = self.0.hub.index_of(lcore)?;
        if !t.cpumask().is_empty() && !t.cpumask().contains(&lcore) {
            return Err(Error::BadValue {
                what: "thread placement",
                why: format!("lcore {lcore} is outside the cpumask of '{}'", t.name()),
            });
        }
        let src = t.host().ok_or(Error::BadValue {
            what: "thread placement",
            why: format!("thread '{}' is not placed (moving or exited)", t.name()),
        })?;
        reactor::request_move(&self.0.hub, src, t.id(), dst);
        Ok(())
    }

    /// Select the scheduler by name (`static`, `dynamic`) and, if given, its period.
    pub fn set_scheduler(&self, name: &str, period_us: Option<u64>) -> Result<()> {
        let policy =
            scheduler::by_name(name).ok_or_else(|| Error::UnknownScheduler(name.into()))?;
        if period_us == Some(0) {
            return Err(Error::BadValue {
                what: "scheduler period",
                why: "must be at least 1 microsecond".into(),
            });
        }
        {
            let mut s = self.lock_sched();
            s.policy = policy;
            if let Some(p) = period_us {
                s.period_us = p;
            }
        }
        let fw = self.clone();
        let _ = self
            .app_thread()
            .send_reliable(Box::new(move || fw.arm_scheduler()));
        Ok(())
    }

    /// The scheduler's name and period (microseconds).
    pub fn scheduler(&self) -> (String, u64) {
        let s = self.lock_sched();
        (s.policy.name().to_string(), s.period_us)
    }

    fn lock_sched(&self) -> std::sync::MutexGuard<'_, SchedState> {
        self.0.sched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (Re)register the scheduler poller on the app thread (runs there).
    fn arm_scheduler(&self) {
        let old = self.lock_sched().poller.take();
        if let Some(p) = old {
            let _ = p.unregister();
        }
        if self.0.registry.closed.load(Ordering::Acquire) {
            return;
        }
        let period = self.lock_sched().period_us;
        let weak: Weak<Shared> = Arc::downgrade(&self.0);
        match poller::register("scheduler", period, move || match weak.upgrade() {
            Some(s) => Framework(s).balance().into(),
            None => PollStatus::Idle,
        }) {
            Ok(p) => self.lock_sched().poller = Some(p),
            Err(e) => eal::log_err!("scheduler: {e}"),
        }
    }

    /// One scheduling round: loads since the last round, policy, moves. True if any move.
    fn balance(&self) -> bool {
        let hub = &self.0.hub;
        let threads = self.threads();
        let mut s = self.lock_sched();
        let cores_now: Vec<(u64, u64)> = hub
            .ports
            .iter()
            .map(|p| {
                (
                    p.busy_tsc.load(Ordering::Relaxed),
                    p.idle_tsc.load(Ordering::Relaxed),
                )
            })
            .collect();
        let cores: Vec<CoreLoad> = hub
            .ports
            .iter()
            .zip(&cores_now)
            .enumerate()
            .map(|(i, (p, &(b, idle)))| {
                let (pb, pi) = s.last_cores.get(i).copied().unwrap_or((0, 0));
                CoreLoad {
                    lcore: p.lcore,
                    busy: b.wrapping_sub(pb),
                    idle: idle.wrapping_sub(pi),
                }
            })
            .collect();
        s.last_cores = cores_now;
        let mut loads = Vec::new();
        let mut seen = HashMap::new();
        for t in &threads {
            let st = t.stats();
            let Some(lcore) = st.lcore else { continue };
            let (pb, pi) = s.last_threads.get(&st.id).copied().unwrap_or((0, 0));
            seen.insert(st.id, (st.busy, st.idle));
            loads.push(ThreadLoad {
                id: st.id,
                lcore,
                busy: st.busy.wrapping_sub(pb),
                idle: st.idle.wrapping_sub(pi),
                cpumask: st.cpumask,
            });
        }
        s.last_threads = seen;
        let moves = s.policy.balance(self.0.main_lcore, &cores, &loads);
        drop(s);
        let mut moved = false;
        for m in moves {
            if let Some(t) = threads.iter().find(|t| t.id() == m.thread) {
                moved |= self.move_thread(t, m.to).is_ok();
            }
        }
        moved
    }

    /// Stop: refuse new threads, ask every thread to exit, and let the reactors return
    /// once their threads are gone; [`Framework::run`] then returns `rc`. Callable from
    /// any thread. Pollers the threads keep are dropped after the exit timeout.
    pub fn shutdown(&self, rc: i32) {
        self.0.rc.store(rc, Ordering::Release);
        self.0.registry.closed.store(true, Ordering::Release);
        let fw = self.clone();
        let _ = self.app_thread().send_reliable(Box::new(move || {
            let p = fw.lock_sched().poller.take();
            if let Some(p) = p {
                let _ = p.unregister();
            }
        }));
        for t in self.threads() {
            t.request_exit();
        }
        self.0.hub.stop();
    }

    /// Whether [`Framework::shutdown`] was called.
    pub fn is_stopping(&self) -> bool {
        self.0.registry.closed.load(Ordering::Acquire)
    }
}
