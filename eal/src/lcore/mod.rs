//! Logical cores: the CPU topology and one pinned worker thread per lcore.
//!
//! # Model
//!
//! An *lcore* is an id in `0..MAX_LCORE` mapped to one cpu. One lcore is the *main* lcore:
//! it is the thread that called [`LcoreSet::start`] (it keeps running the application).
//! `start` does not pin it; [`LcoreSet::pin_main`] does, as `rte_eal_init` pins its
//! caller, and [`crate::Eal::init`] calls it last, once the EAL's own control threads
//! (IPC, primary watcher) have started with the process's whole cpu set. The thread's
//! earlier affinity is put back by [`LcoreSet::shutdown`] when that runs on the same
//! thread. Every
//! other lcore is a *worker*: an OS thread named `lcore-N`, pinned to its cpu before `start`
//! returns, that sleeps on a condition variable until a job is launched on it.
//!
//! Worker states follow DPDK's: `Wait` (idle, accepts a launch) → `Running` (a job runs)
//! → `Finished` (the job returned or panicked; its result waits to be collected) →
//! `Wait` again once [`LcoreSet::wait_lcore`] collects the result. A launch is refused
//! unless the lcore is in `Wait`, so every result is collected before the next job.
//!
//! # Thread safety and who may call what
//!
//! * [`LcoreSet`] is `Send + Sync`: every `&self` method may be called from any thread
//!   (the main lcore, a worker job, a non-EAL thread). Each worker's state is behind its
//!   own `Mutex` + `Condvar`; jobs run with no lock held.
//! * Only one waiter collects a job's result: if two threads call `wait_lcore` on the same
//!   lcore, one gets the result, the other sees the lcore in `Wait` and gets `Ok(0)` (as
//!   DPDK's `rte_eal_wait_lcore` does for an idle lcore).
//! * A job must not launch on or wait for its own lcore (it would be refused / would
//!   deadlock, as in DPDK).
//! * A job that panics is caught (`catch_unwind`) and reported by `wait_lcore` as
//!   [`Error::LcorePanicked`]; the worker thread survives and accepts the next launch.
//!   This needs the default `panic = "unwind"`; with `panic = "abort"` a panicking job
//!   aborts the process.
//! * [`LcoreSet::shutdown`] (also run on drop) tells every worker to exit and joins it.
//!   A running job cannot be cancelled: shutdown waits for it to return. If the last
//!   handle is dropped inside a worker's own job (an `Arc<LcoreSet>` moved into it), that
//!   worker is not joined (it cannot join itself): it exits when the job returns.
//! * [`lcore_id`] is thread-local: `Some(id)` in a worker thread and in the thread that
//!   called `start` (until `shutdown`), `None` elsewhere. Several `LcoreSet`s may exist in
//!   one process (tests do this); ids are then only meaningful within each set.
//!
//! Nothing here lives in shared memory: lcores are per process.

use std::any::Any;
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle, ThreadId};

use crate::error::{Error, Result};
use crate::lcore_id::{set_lcore_id, NO_LCORE};
use crate::sys;

mod topology;

pub use crate::lcore_id::lcore_id;
pub use topology::{parse_id_list, CpuInfo, CpuTopology};

/// Highest lcore id + 1.
pub const MAX_LCORE: usize = 128;

/// State of one lcore (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LcoreState {
    /// Idle; a job may be launched.
    Wait,
    /// A job is running (the main lcore always reports this: it runs the application).
    Running,
    /// A job ended; its result waits for [`LcoreSet::wait_lcore`].
    Finished,
}

/// A job for a worker lcore: its return value is the lcore's result.
pub type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

struct SlotState {
    state: LcoreState,
    job: Option<Job>,
    result: Option<std::result::Result<i32, String>>,
    quit: bool,
}

/// One worker's mailbox. Launcher and worker hand the job and the result over under
/// `state`; `cv` wakes the worker (job or quit) and the waiters (finished).
struct Slot {
    state: Mutex<SlotState>,
    cv: Condvar,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        // No code panics while holding this lock (jobs run unlocked), but recover anyway
        // rather than propagate a poison panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, SlotState>) -> MutexGuard<'a, SlotState> {
        self.cv.wait(g).unwrap_or_else(|e| e.into_inner())
    }
}

struct Worker {
    lcore: u32,
    slot: Arc<Slot>,
    handle: Option<JoinHandle<()>>,
}

#[derive(Debug, Clone, Copy)]
struct LcoreInfo {
    id: u32,
    cpu: u32,
    socket: u32,
}

/// The running lcores of one EAL instance (see the module docs for the contracts).
pub struct LcoreSet {
    main: u32,
    /// Sorted by id.
    lcores: Vec<LcoreInfo>,
    /// Sorted by lcore id.
    workers: Vec<Worker>,
    starter: ThreadId,
    /// The starter thread's affinity before [`LcoreSet::pin_main`], to put back.
    main_prev_affinity: Option<Vec<u32>>,
    shut_down: bool,
}

impl std::fmt::Debug for LcoreSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LcoreSet")
            .field("main", &self.main)
            .field("lcores", &self.lcores)
            .field("shut_down", &self.shut_down)
            .finish()
    }
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

fn worker_main(lcore: u32, slot: Arc<Slot>) {
    set_lcore_id(lcore);
    let mut g = slot.lock();
    loop {
        while g.job.is_none() && !g.quit {
            g = slot.wait(g);
        }
        let Some(job) = g.job.take() else {
            break; // quit with nothing left to run
        };
        drop(g);
        let r = catch_unwind(AssertUnwindSafe(job)).map_err(|p| panic_message(&*p));
        g = slot.lock();
        g.result = Some(r);
        g.state = LcoreState::Finished;
        slot.cv.notify_all();
    }
}

impl LcoreSet {
    /// Start one pinned worker thread per lcore in `lcores` (pairs of lcore id and cpu)
    /// except `main_lcore`, and make the calling thread the main lcore ([`lcore_id`]
    /// returns `main_lcore` in it). Returns once every worker is pinned and idle.
    ///
    /// Errors: [`Error::BadLcore`] for an empty list, an id `>= MAX_LCORE`, a repeated id or
    /// a `main_lcore` not in the list; [`Error::LcorePin`] when a cpu is not online in
    /// `topology` or the kernel refuses the affinity; [`Error::Os`] when a thread cannot
    /// be spawned. On error no worker is left running.
    pub fn start(
        lcores: &[(u32, u32)],
        main_lcore: u32,
        topology: &CpuTopology,
    ) -> Result<LcoreSet> {
        let mut infos = Vec::with_capacity(lcores.len());
        let mut seen = BTreeSet::new();
        for &(id, cpu) in lcores {
            if id as usize >= MAX_LCORE || !seen.insert(id) {
                return Err(Error::BadLcore(id));
            }
            let Some(ci) = topology.get(cpu) else {
                return Err(Error::LcorePin {
                    lcore: id,
                    cpu,
                    why: format!("cpu not online (online: {:?})", topology.online()),
                });
            };
            infos.push(LcoreInfo {
                id,
                cpu,
                socket: ci.numa_node,
            });
        }
        if !seen.contains(&main_lcore) {
            return Err(Error::BadLcore(main_lcore));
        }
        infos.sort_by_key(|l| l.id);

        let mut set = LcoreSet {
            main: main_lcore,
            lcores: infos.clone(),
            workers: Vec::new(),
            starter: thread::current().id(),
            main_prev_affinity: None,
            shut_down: false,
        };
        let (tx, rx) = mpsc::channel::<(u32, Result<()>)>();
        for l in infos.iter().filter(|l| l.id != main_lcore) {
            let slot = Arc::new(Slot {
                state: Mutex::new(SlotState {
                    state: LcoreState::Wait,
                    job: None,
                    result: None,
                    quit: false,
                }),
                cv: Condvar::new(),
            });
            let (id, cpu) = (l.id, l.cpu);
            let (tx, wslot) = (tx.clone(), Arc::clone(&slot));
            let spawned = thread::Builder::new()
                .name(format!("lcore-{id}"))
                .spawn(move || {
                    let pinned = sys::cpu::pin_current_thread(cpu).map_err(|e| Error::LcorePin {
                        lcore: id,
                        cpu,
                        why: e.to_string(),
                    });
                    let ok = pinned.is_ok();
                    // The receiver lives until every worker reported; a send error would only
                    // mean start() is gone, and then there is nobody to tell.
                    let _ = tx.send((id, pinned));
                    drop(tx);
                    if ok {
                        worker_main(id, wslot);
                    }
                });
            match spawned {
                Ok(h) => set.workers.push(Worker {
                    lcore: id,
                    slot,
                    handle: Some(h),
                }),
                Err(e) => {
                    set.shutdown();
                    return Err(Error::io("spawn", format!("thread for lcore {id}"), e));
                }
            }
        }
        drop(tx);
        let mut first_err = None;
        for _ in 0..set.workers.len() {
            match rx.recv() {
                Ok((_, Ok(()))) => {}
                Ok((_, Err(e))) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => break, // a worker died before reporting; caught below by join
            }
        }
        if let Some(e) = first_err {
            set.shutdown();
            return Err(e);
        }
        set_lcore_id(main_lcore);
        Ok(set)
    }

    /// Pin the calling thread, which must be the one that called [`start`](Self::start),
    /// to the main lcore's cpu, remembering its affinity so that
    /// [`shutdown`](Self::shutdown) on this thread puts it back. Calling it again is a
    /// no-op.
    ///
    /// Errors: [`Error::LcorePin`] if called from another thread, or if the affinity
    /// cannot be read or the kernel refuses the cpu (the thread's affinity is then
    /// unchanged).
    pub fn pin_main(&mut self) -> Result<()> {
        let cpu = self.info(self.main)?.cpu;
        let err = |why: String| Error::LcorePin {
            lcore: self.main,
            cpu,
            why,
        };
        if thread::current().id() != self.starter {
            return Err(err(
                "pin_main called from a thread other than the main lcore's".into(),
            ));
        }
        if self.main_prev_affinity.is_some() {
            return Ok(());
        }
        let prev = sys::cpu::sched_getaffinity_current().map_err(|e| err(e.to_string()))?;
        sys::cpu::pin_current_thread(cpu).map_err(|e| err(e.to_string()))?;
        self.main_prev_affinity = Some(prev);
        Ok(())
    }

    fn worker(&self, lcore: u32) -> Result<&Worker> {
        if lcore == self.main {
            return Err(Error::LcoreBusy(lcore));
        }
        self.workers
            .binary_search_by_key(&lcore, |w| w.lcore)
            .map(|i| &self.workers[i])
            .map_err(|_| Error::BadLcore(lcore))
    }

    fn info(&self, lcore: u32) -> Result<&LcoreInfo> {
        self.lcores
            .binary_search_by_key(&lcore, |l| l.id)
            .map(|i| &self.lcores[i])
            .map_err(|_| Error::BadLcore(lcore))
    }

    /// Hand `f` to worker `lcore` and return at once. The worker runs it and keeps the
    /// result until [`wait_lcore`](Self::wait_lcore).
    ///
    /// Errors: [`Error::BadLcore`] if `lcore` is not in this set (or the set is shut
    /// down), [`Error::LcoreBusy`] if it is the main lcore or not in `Wait` (running, or
    /// finished with an uncollected result). On error `f` is dropped unrun.
    pub fn remote_launch<F>(&self, lcore: u32, f: F) -> Result<()>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        let w = self.worker(lcore)?;
        let mut g = w.slot.lock();
        if g.quit {
            return Err(Error::BadLcore(lcore));
        }
        if g.state != LcoreState::Wait {
            return Err(Error::LcoreBusy(lcore));
        }
        g.job = Some(Box::new(f));
        g.state = LcoreState::Running;
        w.slot.cv.notify_all();
        Ok(())
    }

    /// Launch a clone of `f` on every worker, all or nothing: if any worker is not in
    /// `Wait`, nothing is launched and that lcore's [`Error::LcoreBusy`] is returned. Each
    /// call of `f` gets the lcore id it runs on.
    pub fn mp_remote_launch(
        &self,
        f: Arc<dyn Fn(u32) -> i32 + Send + Sync + 'static>,
    ) -> Result<()> {
        // Lock every slot in lcore order (the only place two are held; remote_launch and
        // the workers hold one at a time, so this order cannot deadlock).
        let mut guards = Vec::with_capacity(self.workers.len());
        for w in &self.workers {
            let g = w.slot.lock();
            if g.quit {
                return Err(Error::BadLcore(w.lcore));
            }
            if g.state != LcoreState::Wait {
                return Err(Error::LcoreBusy(w.lcore));
            }
            guards.push(g);
        }
        for (w, mut g) in self.workers.iter().zip(guards) {
            let (f, id) = (Arc::clone(&f), w.lcore);
            g.job = Some(Box::new(move || f(id)));
            g.state = LcoreState::Running;
            w.slot.cv.notify_all();
        }
        Ok(())
    }

    /// Block (sleeping) until the job on `lcore` ends, collect its result and put the lcore
    /// back to `Wait`. An lcore already in `Wait` returns `Ok(0)` at once.
    ///
    /// Errors: [`Error::LcorePanicked`] if the job panicked (the lcore is back in `Wait`
    /// and usable), [`Error::BadLcore`] for an unknown lcore, [`Error::LcoreBusy`] for the
    /// main lcore (it is not a worker; waiting on it would wait on oneself).
    pub fn wait_lcore(&self, lcore: u32) -> Result<i32> {
        let w = self.worker(lcore)?;
        let mut g = w.slot.lock();
        loop {
            match g.state {
                LcoreState::Wait => return Ok(0),
                LcoreState::Finished => break,
                LcoreState::Running => g = w.slot.wait(g),
            }
        }
        let r = g.result.take();
        g.state = LcoreState::Wait;
        w.slot.cv.notify_all();
        match r {
            Some(Ok(code)) => Ok(code),
            Some(Err(msg)) => Err(Error::LcorePanicked { lcore, msg }),
            None => Ok(0),
        }
    }

    /// [`wait_lcore`](Self::wait_lcore) on every worker in id order.
    pub fn mp_wait_lcore(&self) -> Vec<(u32, Result<i32>)> {
        self.workers
            .iter()
            .map(|w| (w.lcore, self.wait_lcore(w.lcore)))
            .collect()
    }

    /// Current state of `lcore` ([`LcoreState::Running`] for the main lcore).
    pub fn lcore_state(&self, lcore: u32) -> Result<LcoreState> {
        if lcore == self.main {
            return Ok(LcoreState::Running);
        }
        Ok(self.worker(lcore)?.slot.lock().state)
    }

    /// The main lcore id.
    pub fn main_lcore(&self) -> u32 {
        self.main
    }

    /// Every lcore id (main and workers), ascending.
    pub fn lcore_ids(&self) -> Vec<u32> {
        self.lcores.iter().map(|l| l.id).collect()
    }

    /// Worker lcore ids, ascending.
    pub fn worker_ids(&self) -> Vec<u32> {
        self.workers.iter().map(|w| w.lcore).collect()
    }

    /// Number of lcores, main included.
    pub fn count(&self) -> usize {
        self.lcores.len()
    }

    /// The cpu `lcore` is bound to.
    pub fn cpu_of(&self, lcore: u32) -> Result<u32> {
        Ok(self.info(lcore)?.cpu)
    }

    /// The NUMA node ("socket" in DPDK's sense) of `lcore`'s cpu.
    pub fn socket_of(&self, lcore: u32) -> Result<u32> {
        Ok(self.info(lcore)?.socket)
    }

    /// NUMA socket of the calling thread's lcore; `None` outside an lcore of this set.
    /// Allocations without a socket try this one first.
    pub fn caller_socket(&self) -> Option<u32> {
        lcore_id().and_then(|l| self.socket_of(l).ok())
    }

    /// Stop every worker and join it; waits for running jobs to return. Uncollected
    /// results are dropped. Afterwards launches fail with [`Error::BadLcore`]. Idempotent;
    /// also run on drop. If called on the thread that started the set, that thread's
    /// [`lcore_id`] is cleared.
    pub fn shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        for w in &self.workers {
            w.slot.lock().quit = true;
            w.slot.cv.notify_all();
        }
        let me = thread::current().id();
        for w in &mut self.workers {
            if let Some(h) = w.handle.take() {
                if h.thread().id() == me {
                    // Dropped from inside this worker's own job (last `Arc` released
                    // there): joining itself would fail. It exits once the job returns,
                    // since `quit` is set; leave it detached.
                    continue;
                }
                // A worker's own code never panics (jobs are caught), so join cannot
                // return Err short of a bug; nothing useful to do with it here.
                let _ = h.join();
            }
        }
        if me == self.starter {
            if lcore_id() == Some(self.main) {
                set_lcore_id(NO_LCORE);
            }
            if let Some(prev) = self.main_prev_affinity.take() {
                // Best effort: the set was the thread's own a moment ago, so the kernel
                // refuses it only if the process's cpuset shrank meanwhile; the thread
                // then stays on the main lcore's cpu, which is still a valid state.
                if let Err(e) = sys::cpu::set_affinity_current(&prev) {
                    crate::log_warn!("main lcore affinity not restored: {e}");
                }
            }
        }
    }
}

impl Drop for LcoreSet {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_refuses_bad_sets() {
        let t = CpuTopology::flat(&[0]);
        // (lcore -> cpu map, main lcore, the lcore the refusal names)
        type Row = (&'static [(u32, u32)], u32, u32);
        let bad: [Row; 4] = [
            (&[], 0, 0),
            (&[(0, 0)], 1, 1),
            (&[(0, 0), (0, 0)], 0, 0),
            (&[(128, 0)], 128, 128),
        ];
        for (map, main, named) in bad {
            let r = LcoreSet::start(map, main, &t);
            assert!(
                matches!(r, Err(Error::BadLcore(l)) if l == named),
                "{map:?}"
            );
        }
        assert!(matches!(
            LcoreSet::start(&[(0, 0), (1, 5)], 0, &t),
            Err(Error::LcorePin {
                lcore: 1,
                cpu: 5,
                ..
            })
        ));
        assert_eq!(lcore_id(), None);
    }

    #[test]
    fn pin_main_pins_and_shutdown_restores() {
        std::thread::spawn(|| {
            let before = sys::cpu::sched_getaffinity_current().unwrap();
            let cpu = before[before.len() - 1];
            let t = CpuTopology::flat(&before);
            let mut s = LcoreSet::start(&[(0, cpu)], 0, &t).unwrap();
            // start alone leaves the caller as it was.
            assert_eq!(sys::cpu::sched_getaffinity_current().unwrap(), before);
            s.pin_main().unwrap();
            assert_eq!(sys::cpu::sched_getaffinity_current().unwrap(), vec![cpu]);
            assert_eq!(sys::cpu::sched_getcpu().unwrap(), cpu);
            // Again: a no-op, the first affinity is still the one kept.
            s.pin_main().unwrap();
            // From another thread: refused, and that thread is left alone.
            let s = std::thread::scope(|sc| {
                sc.spawn(|| {
                    let mut s = s;
                    let other = sys::cpu::sched_getaffinity_current().unwrap();
                    let e = s.pin_main().unwrap_err();
                    assert!(matches!(e, Error::LcorePin { lcore: 0, .. }), "{e:?}");
                    assert_eq!(sys::cpu::sched_getaffinity_current().unwrap(), other);
                    s
                })
                .join()
                .unwrap()
            });
            let mut s = s;
            s.shutdown();
            assert_eq!(sys::cpu::sched_getaffinity_current().unwrap(), before);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn main_only_set() {
        let cpu = sys::cpu::sched_getaffinity_current().unwrap()[0];
        let t = CpuTopology::flat(&[cpu]);
        let mut s = LcoreSet::start(&[(4, cpu)], 4, &t).unwrap();
        assert_eq!(lcore_id(), Some(4));
        assert!(s.worker_ids().is_empty());
        assert!(matches!(
            s.remote_launch(4, Box::new(|| 0)),
            Err(Error::LcoreBusy(4))
        ));
        assert!(matches!(s.wait_lcore(4), Err(Error::LcoreBusy(4))));
        assert_eq!(s.lcore_state(4).unwrap(), LcoreState::Running);
        assert!(s.mp_wait_lcore().is_empty());
        s.shutdown();
        assert_eq!(lcore_id(), None);
    }
}
