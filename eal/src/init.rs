//! The [`Eal`] handle: initialisation (primary or secondary), accessors, memzones,
//! heap, lcores, multi-process state, clean-up.
//!
//! # Primary and secondary processes
//!
//! `--proc-type primary` (default) reserves memory and publishes the shared config;
//! `--proc-type secondary` attaches to the live primary of the same `--file-prefix`;
//! `--proc-type auto` is secondary if a live primary holds the prefix, else primary.
//!
//! A secondary, in order: finds the runtime directory and takes its shared attach lock
//! (refused with [`Error::NoPrimary`] if there is no config or the primary lock is
//! free) → waits (up to [`EalOptions::attach_timeout`]) for the primary to publish the
//! config, checking magic and version ([`Error::VersionMismatch`] names both) → maps the
//! config, then every memory file at the primary's addresses ([`Memory::attach`];
//! [`Error::AddressTaken`] if the range is used in this process) → registers in the
//! process table with its lcores → starts its lcores, IPC endpoint ([`crate::mp`]) and a
//! watcher thread that polls the primary lock every [`EalOptions::primary_poll`].
//! Memory options (`-m`, `--no-huge`, `--huge-dir`, `--socket-mem`, `--iova-mode`) are
//! the primary's; a secondary's are ignored. A secondary never reclaims, creates or
//! deletes shared files; on exit it unmaps, removes its socket and its process-table
//! entry, and releases its locks.
//!
//! # Lcores of several processes
//!
//! Every process runs the lcores its own `-l`/`--lcores` gives; ids may overlap another
//! process's. But mempool caches (and other per-lcore state in shared memory) are indexed
//! by lcore id, so **processes that use the same cached mempool must use distinct lcore
//! ids** (as DPDK requires): e.g. primary `-l 0-1`, secondary `--lcores 2@0,3@1`. The
//! process table records every process's lcores ([`Eal::processes`]); a secondary whose
//! lcores overlap a live process's gets a warning in the log.
//!
//! # When the primary dies
//!
//! [`Eal::primary_alive`] asks the kernel (the primary's `flock` is released when it
//! dies, even by SIGKILL). The watcher thread of a secondary notices within one poll
//! interval and runs the callbacks given to [`Eal::on_primary_exit`] (once, on the
//! watcher thread); applications use them to stop cleanly. Shared memory stays mapped
//! and usable in the secondary; the files stay until the next primary reclaims them,
//! which it only does once every secondary has exited (see [`crate::runtime`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::addr::VirtAddr;
use crate::args::{EalArgs, IovaMode, ProcType};
use crate::config::{self, put_str, SharedConfig};
use crate::error::{Error, Result};
use crate::heap::{Heap, MemCore};
use crate::hugepage::SysRoots;
use crate::lcore::{CpuTopology, LcoreSet};
use crate::memory::{self, AttachRequest, Backing, Memory, MemoryRequest, MemsegList};
use crate::memzone::Memzones;
use crate::mp::Mp;
use crate::pci::PciBus;
use crate::runtime::RuntimeDir;

/// Knobs that are not EAL command-line options: where the system trees are (tests point
/// them at fakes) and the base-address hint.
#[derive(Clone, Debug)]
pub struct EalOptions {
    /// Base-address hint of the EAL area; `None` = [`memory::DEFAULT_BASE_VIRTADDR`].
    pub base_virtaddr: Option<u64>,
    /// Root for runtime directories; `None` = the default search (see [`crate::runtime`]).
    pub runtime_root: Option<PathBuf>,
    /// `/proc` and `/sys` (hugepages, topology, PCI).
    pub roots: SysRoots,
    /// Where `--no-huge` memory files go (`/dev/shm`).
    pub shm_dir: PathBuf,
    /// Secondary: how long to wait for a live primary to publish its config.
    pub attach_timeout: Duration,
    /// Secondary: how often the watcher checks that the primary is alive.
    pub primary_poll: Duration,
    /// Pin the calling thread (the main lcore) to the main lcore's cpu at the end of
    /// init, as `rte_eal_init` does; its earlier affinity comes back when the EAL is torn
    /// down on the same thread. Default true; false leaves the caller's affinity alone
    /// (for a library embedded in a program that manages its own threads).
    pub pin_main: bool,
}

impl Default for EalOptions {
    fn default() -> Self {
        EalOptions {
            base_virtaddr: None,
            runtime_root: None,
            roots: SysRoots::default(),
            shm_dir: PathBuf::from("/dev/shm"),
            attach_timeout: Duration::from_secs(30),
            primary_poll: Duration::from_millis(100),
            pin_main: true,
        }
    }
}

/// One process of the group, from the shared process table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    /// Pid.
    pub pid: i32,
    /// Primary or secondary.
    pub role: ProcType,
    /// Its main lcore id.
    pub main_lcore: u32,
    /// Its lcore ids, ascending.
    pub lcores: Vec<u32>,
}

type ExitCallback = Box<dyn FnOnce() + Send>;

/// What the watcher shares with the handle: the "primary alive" flag and callbacks.
#[derive(Default)]
struct ExitState {
    dead: AtomicBool,
    callbacks: Mutex<Vec<ExitCallback>>,
}

impl ExitState {
    fn fire(&self) {
        self.dead.store(true, Ordering::Release);
        let cbs = std::mem::take(&mut *self.callbacks.lock().unwrap_or_else(|p| p.into_inner()));
        for cb in cbs {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(cb)).is_err() {
                crate::log_err!("an on_primary_exit callback panicked");
            }
        }
    }
}

/// The secondary's watcher thread: polls the primary lock.
struct Watcher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    fn start(
        config: std::fs::File,
        path: PathBuf,
        every: Duration,
        state: Arc<ExitState>,
    ) -> Result<Watcher> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let s2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("fp-watch".into())
            .spawn(move || loop {
                {
                    let (m, cv) = &*s2;
                    let g = m.lock().unwrap_or_else(|p| p.into_inner());
                    let (g, _) = cv
                        .wait_timeout_while(g, every, |stop| !*stop)
                        .unwrap_or_else(|p| p.into_inner());
                    if *g {
                        return;
                    }
                }
                if !config_lock_free(&config, &path) {
                    continue;
                }
                crate::log_warn!(
                    "the primary process exited (its lock on {} is free)",
                    path.display()
                );
                state.fire();
                return;
            })
            .map_err(|e| Error::io("start", "primary watcher thread", e))?;
        Ok(Watcher {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let (m, cv) = &*self.stop;
        *m.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            // A callback that dropped the last handle runs on the watcher itself.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

/// True if a shared lock on the config can be taken, i.e. no primary holds it; the lock
/// is dropped again at once.
fn config_lock_free(f: &std::fs::File, path: &Path) -> bool {
    use std::os::fd::AsFd;
    match crate::sys::mem::try_flock(f.as_fd(), false, path) {
        Ok(true) => {
            let _ = crate::sys::mem::funlock(f.as_fd(), path);
            true
        }
        _ => false,
    }
}

struct Inner {
    // Field order is drop order: workers and the IPC and watcher threads stop before
    // memory goes away, memory goes away before the runtime directory and the locks.
    lcores: Option<LcoreSet>,
    mp: Option<Mp>,
    watcher: Option<Watcher>,
    core: Option<MemCore>,
    runtime: RuntimeDir,
    args: EalArgs,
    pci: PciBus,
    secondary: bool,
    primary_pid: i32,
    exit: Arc<ExitState>,
}

impl Inner {
    fn core(&self) -> &MemCore {
        self.core
            .as_ref()
            .expect("core lives until teardown, which needs the last handle")
    }

    fn lcores(&self) -> &LcoreSet {
        self.lcores
            .as_ref()
            .expect("lcores live until teardown, which needs the last handle")
    }

    fn mp(&self) -> &Mp {
        self.mp
            .as_ref()
            .expect("IPC lives until teardown, which needs the last handle")
    }

    fn teardown(&mut self) -> Result<()> {
        if let Some(mut l) = self.lcores.take() {
            l.shutdown();
        }
        if let Some(m) = self.mp.take() {
            m.shutdown();
        }
        drop(self.watcher.take());
        let mut first = None;
        // Primary with secondaries still attached: leave the files to them.
        let keep = !self.secondary && self.core.is_some() && !self.runtime.begin_exit();
        if let Some(mut c) = self.core.take() {
            c.config.lock().proc_unregister(std::process::id() as i32);
            if keep {
                c.memory.disown_files();
                crate::log_notice!(
                    "secondary process(es) {:?} still attached to prefix '{}': leaving the shared files to them",
                    self.runtime.secondary_pids(),
                    self.args.file_prefix
                );
            }
            if let Err(e) = c.memory.release() {
                first.get_or_insert(e);
            }
            drop(c);
        }
        if keep {
            self.runtime.release_keep_files();
        } else if let Err(e) = self.runtime.remove() {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// The environment abstraction layer of one process: memory, memzones, heap, lcores,
/// PCI devices. A cheap-to-clone handle (`Arc` inside), `Send + Sync`. Everything it
/// made is removed when the last handle drops or on [`Eal::cleanup`].
#[derive(Clone)]
pub struct Eal {
    inner: Arc<Inner>,
}

impl fmt::Debug for Eal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Eal")
            .field("file_prefix", &self.file_prefix())
            .field("runtime_dir", &self.runtime_dir())
            .field("base", &self.memory().base())
            .field("len", &self.memory().len())
            .finish_non_exhaustive()
    }
}

impl Eal {
    /// Parse DPDK-style `argv` (`argv[0]` is the program) and initialise. Returns the
    /// handle and the application arguments after `--`.
    pub fn init(argv: &[String]) -> Result<(Eal, Vec<String>)> {
        let (args, rest) = EalArgs::parse(argv)?;
        Ok((Eal::init_with(args)?, rest))
    }

    /// [`Eal::init`] for applications that must run anywhere (the sample apps' contract):
    /// when no hugepages are usable, or a non-root user may not use them, and `argv` did not
    /// choose the memory itself (`--no-huge`, `--huge-dir`), initialise again with
    /// `--no-huge`. Returns the reason when it fell back, for the caller's one-line notice.
    /// Argument errors, `-h`, a live primary on the prefix and every other error are
    /// returned as they are.
    pub fn init_or_no_huge(argv: &[String]) -> Result<(Eal, Vec<String>, Option<String>)> {
        let (args, rest) = EalArgs::parse(argv)?;
        let chose_memory = args.no_huge || args.huge_dir.is_some();
        match Eal::init_with(args.clone()) {
            Ok(eal) => Ok((eal, rest, None)),
            Err(e) if !chose_memory && Self::hugepages_unusable(&e) => {
                let why = match e {
                    Error::NoHugepages { why } => why,
                    e => format!("not root: {e}"),
                };
                let mut args = args;
                args.no_huge = true;
                args.socket_mem = None;
                Ok((Eal::init_with(args)?, rest, Some(why)))
            }
            Err(e) => Err(e),
        }
    }

    /// True when `e` means "hugepage memory cannot be had here" rather than a usage error
    /// or a conflict with another process.
    fn hugepages_unusable(e: &Error) -> bool {
        match e {
            Error::NoHugepages { .. } => true,
            Error::HelpRequested
            | Error::UnknownArg(_)
            | Error::BadArg { .. }
            | Error::MissingValue(_)
            | Error::PrefixInUse { .. } => false,
            _ => crate::sys::mem::geteuid() != 0,
        }
    }

    /// Initialise from parsed arguments with default [`EalOptions`].
    pub fn init_with(args: EalArgs) -> Result<Eal> {
        Eal::init_with_options(args, EalOptions::default())
    }

    /// Initialise. Primary order: runtime dir + primary lock → memory → shared config →
    /// lcores → PCI scan → IPC → publish. Secondary: module doc. Any failure unwinds
    /// every earlier step (RAII): no hugepage files, shm files or runtime directory are
    /// left behind, and a secondary leaves the primary's files alone.
    pub fn init_with_options(args: EalArgs, opts: EalOptions) -> Result<Eal> {
        crate::log::set_level(args.log_level);
        let topo = CpuTopology::read(&opts.roots.sys)?;
        let (lcore_list, main_lcore) = args.resolve_lcores(&topo)?;
        let main_cpu = lcore_list
            .iter()
            .find(|l| l.0 == main_lcore)
            .map(|l| l.1)
            .unwrap_or(0);
        let main_socket = topo.get(main_cpu).map(|c| c.numa_node).unwrap_or(0);

        // 1. Runtime directory and the primary lock (or attach as secondary).
        let runtime = match args.proc_type {
            ProcType::Secondary => None,
            ProcType::Primary => Some(RuntimeDir::acquire_primary(
                &args.file_prefix,
                opts.runtime_root.as_deref(),
            )?),
            ProcType::Auto => {
                match RuntimeDir::acquire_primary(&args.file_prefix, opts.runtime_root.as_deref()) {
                    Ok(r) => Some(r),
                    Err(Error::PrefixInUse { .. }) => None,
                    Err(e) => return Err(e),
                }
            }
        };
        let Some(runtime) = runtime else {
            return Self::init_secondary(args, opts, &topo, lcore_list, main_lcore);
        };
        let stale = memory::reclaim_stale(&args.file_prefix, &opts.roots, &opts.shm_dir)?;
        if !stale.is_empty() {
            crate::log_notice!(
                "reclaimed {} stale file(s) of a dead primary with prefix '{}'",
                stale.len(),
                args.file_prefix
            );
        }
        if let Some(root) = runtime.path().parent() {
            let swept = crate::runtime::reclaim_dead_prefixes(root, &args.file_prefix, |p| {
                memory::reclaim_stale(p, &opts.roots, &opts.shm_dir)
            });
            if !swept.is_empty() {
                crate::log_notice!(
                    "reclaimed the leftovers of {} dead primaries: {}",
                    swept.len(),
                    swept.join(", ")
                );
            }
        }

        // 2. Memory.
        let req = MemoryRequest {
            prefix: args.file_prefix.clone(),
            total: args.mem_mb.map(|m| m << 20),
            socket_mem: args
                .socket_mem
                .as_ref()
                .map(|v| v.iter().map(|m| m << 20).collect()),
            huge_dir: args.huge_dir.clone(),
            no_huge: args.no_huge,
            iova_mode: args.iova_mode,
            base_hint: opts.base_virtaddr,
            roots: opts.roots.clone(),
            shm_dir: opts.shm_dir.clone(),
            default_socket: main_socket,
        };
        let memory = Memory::reserve(&req)?;

        // 3. Shared config.
        let file = runtime.config_file().ok_or_else(|| {
            Error::io(
                "use",
                "shared config",
                std::io::Error::other("lock not held"),
            )
        })?;
        let cfg = SharedConfig::create(file, memory.memsegs(), |b| {
            fill_config(b, &memory, &args.file_prefix)
        })?;
        let core = MemCore {
            memory,
            config: cfg,
        };
        core.init_heaps();
        core.config.lock().proc_register(proc_entry(
            config::ROLE_PRIMARY,
            &lcore_list,
            main_lcore,
        ))?;

        // 4. Lcores.
        let mut lcores = LcoreSet::start(&lcore_list, main_lcore, &topo)?;

        // 5. PCI.
        let pci = PciBus::scan(&opts.roots.sys, &args.pci_filter())?;

        // 6. IPC, then let secondaries in.
        let mp = Mp::start(runtime.path(), true)?;
        // 7. Pin the main lcore, after the control threads above took the whole cpu set.
        if opts.pin_main {
            lcores.pin_main()?;
        }
        core.config.publish();

        crate::log_info!(
            "EAL: primary, prefix '{}', {} MiB at {} ({}), IOVA {:?}, {} lcores, {} PCI devices",
            args.file_prefix,
            core.memory.len() >> 20,
            core.memory.base(),
            if core.memory.no_huge() {
                "no-huge"
            } else {
                "hugepages"
            },
            core.memory.iova_mode(),
            lcores.count(),
            pci.devices().len()
        );
        Ok(Eal {
            inner: Arc::new(Inner {
                lcores: Some(lcores),
                mp: Some(mp),
                watcher: None,
                core: Some(core),
                runtime,
                args,
                pci,
                secondary: false,
                primary_pid: std::process::id() as i32,
                exit: Arc::new(ExitState::default()),
            }),
        })
    }

    fn init_secondary(
        args: EalArgs,
        opts: EalOptions,
        topo: &CpuTopology,
        lcore_list: Vec<(u32, u32)>,
        main_lcore: u32,
    ) -> Result<Eal> {
        let prefix = args.file_prefix.clone();
        let runtime = RuntimeDir::attach_secondary(&prefix, opts.runtime_root.as_deref())?;
        let path = runtime.config_path();
        let file = runtime
            .config_file()
            .ok_or_else(|| Error::io("use", "shared config", std::io::Error::other("not open")))?;

        // Wait for the primary to publish (it may still be initialising).
        let deadline = Instant::now() + opts.attach_timeout;
        let snap = loop {
            let snap = config::peek(file)?;
            if snap.check(&path)? && crate::sys::mem::process_exists(snap.primary_pid) {
                break snap;
            }
            if !runtime.primary_alive() {
                return Err(Error::NoPrimary {
                    prefix,
                    why: "the primary exited while we attached".into(),
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::AttachFailed {
                    what: format!("shared config {}", path.display()),
                    why: format!(
                        "the primary (pid {}) did not publish it within {:?}",
                        snap.primary_pid, opts.attach_timeout
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let cfg = SharedConfig::attach(file, &path, &snap)?;
        let req = attach_request(&cfg)?;
        let memory = Memory::attach(&req)?;
        let core = MemCore {
            memory,
            config: cfg,
        };
        {
            let mut g = core.config.lock();
            let me = proc_entry(config::ROLE_SECONDARY, &lcore_list, main_lcore);
            for other in g.live_procs().iter().filter(|p| p.pid != me.pid) {
                let shared: Vec<u32> = other
                    .lcore_ids()
                    .into_iter()
                    .filter(|l| lcore_list.iter().any(|x| x.0 == *l))
                    .collect();
                if !shared.is_empty() {
                    crate::log_warn!(
                        "lcore id(s) {shared:?} are also used by process {} ({}); per-lcore state such as mempool caches must not be shared: give each process distinct lcore ids",
                        other.pid,
                        if other.role == config::ROLE_PRIMARY { "primary" } else { "secondary" }
                    );
                }
            }
            g.proc_register(me)?;
        }
        let mut lcores = LcoreSet::start(&lcore_list, main_lcore, topo)?;
        let pci = PciBus::scan(&opts.roots.sys, &args.pci_filter())?;
        let mp = Mp::start(runtime.path(), false)?;
        let exit = Arc::new(ExitState::default());
        let watch_fd = file
            .try_clone()
            .map_err(|e| Error::io("duplicate", path.display().to_string(), e))?;
        let watcher = Watcher::start(watch_fd, path.clone(), opts.primary_poll, exit.clone())?;
        if opts.pin_main {
            lcores.pin_main()?;
        }
        crate::log_info!(
            "EAL: secondary of pid {}, prefix '{}', {} MiB at {} ({}), {} lcores",
            snap.primary_pid,
            prefix,
            core.memory.len() >> 20,
            core.memory.base(),
            if core.memory.no_huge() {
                "no-huge"
            } else {
                "hugepages"
            },
            lcores.count()
        );
        Ok(Eal {
            inner: Arc::new(Inner {
                lcores: Some(lcores),
                mp: Some(mp),
                watcher: Some(watcher),
                core: Some(core),
                runtime,
                args,
                pci,
                secondary: true,
                primary_pid: snap.primary_pid,
                exit,
            }),
        })
    }

    /// Tear everything down now and report the first clean-up error. Fails with
    /// [`Error::InUse`] (doing nothing) while other clones of this handle exist.
    pub fn cleanup(self) -> Result<()> {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => inner.teardown(),
            Err(arc) => Err(Error::InUse {
                what: "clean up the EAL",
                count: Arc::strong_count(&arc) - 1,
            }),
        }
    }

    // ---- configuration ----

    /// The arguments in force.
    pub fn args(&self) -> &EalArgs {
        &self.inner.args
    }

    /// `--file-prefix`.
    pub fn file_prefix(&self) -> &str {
        &self.inner.args.file_prefix
    }

    /// The runtime directory (holds the shared config).
    pub fn runtime_dir(&self) -> &Path {
        self.inner.runtime.path()
    }

    /// The shared config file.
    pub fn config_path(&self) -> PathBuf {
        self.inner.runtime.config_path()
    }

    // ---- multi-process ----

    /// [`ProcType::Primary`] or [`ProcType::Secondary`] (`auto` resolved).
    pub fn proc_type(&self) -> ProcType {
        if self.inner.secondary {
            ProcType::Secondary
        } else {
            ProcType::Primary
        }
    }

    /// True in the primary process.
    pub fn is_primary(&self) -> bool {
        !self.inner.secondary
    }

    /// Pid of the primary process (this process's own pid in the primary).
    pub fn primary_pid(&self) -> i32 {
        self.inner.primary_pid
    }

    /// Is the primary alive? Always true in the primary. In a secondary, asks the kernel
    /// now (the primary's lock is free once it died).
    pub fn primary_alive(&self) -> bool {
        !self.inner.exit.dead.load(Ordering::Acquire) && self.inner.runtime.primary_alive()
    }

    /// Run `f` once when the secondary's watcher sees the primary gone (on the watcher
    /// thread; within one poll interval of the death). If that happened already, `f` runs
    /// now, on this thread. In the primary `f` is kept and never run.
    pub fn on_primary_exit<F: FnOnce() + Send + 'static>(&self, f: F) {
        let st = &self.inner.exit;
        {
            let mut cbs = st.callbacks.lock().unwrap_or_else(|p| p.into_inner());
            if !st.dead.load(Ordering::Acquire) {
                cbs.push(Box::new(f));
                return;
            }
        }
        f();
    }

    /// Every live process of the group (primary first), from the shared process table.
    pub fn processes(&self) -> Vec<ProcInfo> {
        let mut v: Vec<ProcInfo> = self
            .inner
            .core()
            .config
            .lock()
            .live_procs()
            .iter()
            .map(|p| ProcInfo {
                pid: p.pid,
                role: if p.role == config::ROLE_PRIMARY {
                    ProcType::Primary
                } else {
                    ProcType::Secondary
                },
                main_lcore: p.main_lcore,
                lcores: p.lcore_ids(),
            })
            .collect();
        v.sort_by_key(|p| (p.role != ProcType::Primary, p.pid));
        v
    }

    /// Test hook: mark the shared-config lock as held by `pid` (as if that process had
    /// died holding it). Only for tests of the dead-holder takeover.
    #[doc(hidden)]
    pub fn debug_force_config_lock_holder(&self, pid: u32) {
        self.inner.core().config.header().lock.force_holder(pid);
    }

    /// Times the shared-config lock was taken over from a dead holder (see [`config`]).
    pub fn config_lock_steals(&self) -> u32 {
        self.inner.core().config.header().lock.steals()
    }

    // ---- the modules ----

    /// EAL memory: the virtual area, memsegs, IOVAs ([`crate::memory`]).
    pub fn memory(&self) -> &Memory {
        &self.inner.core().memory
    }

    /// The memzone table ([`crate::memzone`]).
    pub fn memzones(&self) -> Memzones<'_> {
        Memzones::new(self.inner.core(), self.inner.lcores())
    }

    /// The heap ([`crate::heap`]).
    pub fn heap(&self) -> Heap<'_> {
        Heap::new(self.inner.core(), self.inner.lcores())
    }

    /// This process's lcores: launch and wait for jobs ([`crate::lcore`]).
    pub fn lcores(&self) -> &LcoreSet {
        self.inner.lcores()
    }

    /// This process's IPC endpoint ([`crate::mp`]).
    pub fn mp(&self) -> &Mp {
        self.inner.mp()
    }

    /// The PCI devices found at init ([`crate::pci`]).
    pub fn pci(&self) -> &PciBus {
        &self.inner.pci
    }
}

fn proc_entry(role: u32, lcores: &[(u32, u32)], main: u32) -> config::ProcEntry {
    let mut e = config::ProcEntry {
        pid: std::process::id() as i32,
        role,
        main_lcore: main,
        ..Default::default()
    };
    for &(l, _) in lcores {
        if (l as usize) < crate::lcore::MAX_LCORE {
            e.lcores[(l / 64) as usize] |= 1 << (l % 64);
            e.n_lcores += 1;
        }
    }
    e
}

/// Secondary: what to map, from the primary's config (validated, never trusted blindly).
fn attach_request(cfg: &SharedConfig) -> Result<AttachRequest> {
    use std::os::unix::ffi::OsStrExt;
    let bad = |why: String| Error::AttachFailed {
        what: "memory layout in the shared config".into(),
        why,
    };
    let memsegs = cfg.memsegs().to_vec();
    let g = cfg.lock();
    let n = g.n_lists as usize;
    if n == 0 || n > config::MAX_MEMSEG_LISTS {
        return Err(bad(format!("{n} memseg lists")));
    }
    let mut lists = Vec::with_capacity(n);
    for (i, d) in g.lists[..n].iter().enumerate() {
        let segs = d.first_seg as usize..(d.first_seg + d.n_segs) as usize;
        if segs.end > memsegs.len() || segs.start > segs.end {
            return Err(bad(format!(
                "list {i}: memsegs {segs:?} outside the {} recorded",
                memsegs.len()
            )));
        }
        let dir = PathBuf::from(std::ffi::OsStr::from_bytes(config::get_str(&d.file_dir)));
        let stem = String::from_utf8_lossy(config::get_str(&d.file_stem)).into_owned();
        if dir.as_os_str().is_empty() || stem.is_empty() {
            return Err(bad(format!(
                "list {i}: the path of its files did not fit the config (primary's paths too long)"
            )));
        }
        let backing = match d.backing {
            config::BACKING_HUGETLBFS => Backing::Hugetlbfs {
                dir,
                stem,
                first: d.first_file,
                count: d.n_files,
            },
            config::BACKING_SHM => Backing::Shm {
                path: dir.join(stem),
                offset: d.file_off,
            },
            other => return Err(bad(format!("list {i}: unknown backing {other}"))),
        };
        lists.push(MemsegList {
            base: VirtAddr(d.base_va),
            len: d.len,
            page_size: d.page_size,
            socket: d.socket,
            segs,
            backing,
        });
    }
    Ok(AttachRequest {
        base: VirtAddr(g.base_va),
        len: g.va_len,
        lists,
        memsegs,
        iova_mode: if g.iova_mode == 0 {
            IovaMode::Pa
        } else {
            IovaMode::Va
        },
        no_huge: g.flags & config::FLAG_NO_HUGE != 0,
    })
}

fn fill_config(b: &mut config::ConfigBody, memory: &Memory, prefix: &str) {
    b.iova_mode = match memory.iova_mode() {
        IovaMode::Pa => 0,
        IovaMode::Va => 1,
    };
    b.flags = if memory.no_huge() {
        config::FLAG_NO_HUGE
    } else {
        config::FLAG_DMA_CAPABLE
    };
    b.base_va = memory.base().0;
    b.va_len = memory.len();
    b.next_serial = 1;
    put_str(&mut b.file_prefix, prefix.as_bytes());
    b.n_lists = memory.lists().len() as u32;
    for (d, l) in b.lists.iter_mut().zip(memory.lists()) {
        d.base_va = l.base.0;
        d.len = l.len;
        d.page_size = l.page_size;
        d.socket = l.socket;
        d.first_seg = l.segs.start as u64;
        d.n_segs = l.segs.len() as u64;
        let (dir, stem) = match &l.backing {
            Backing::Hugetlbfs {
                dir,
                stem,
                first,
                count,
            } => {
                d.backing = config::BACKING_HUGETLBFS;
                d.first_file = *first;
                d.n_files = *count;
                (dir.clone(), stem.clone())
            }
            Backing::Shm { path, offset } => {
                d.backing = config::BACKING_SHM;
                d.file_off = *offset;
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (dir, name)
            }
        };
        // Paths longer than the buffers are recorded empty; a secondary then refuses to
        // attach (multi-process issue) rather than opening a wrong file.
        use std::os::unix::ffi::OsStrExt;
        put_str(&mut d.file_dir, dir.as_os_str().as_bytes());
        put_str(&mut d.file_stem, stem.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eal_is_send_sync() {
        fn ok<T: Send + Sync + Clone>() {}
        ok::<Eal>();
    }
}
