//! The initialisation sequence as an explicit state machine, in the order of DPDK's
//! `rte_eal_init`: cpu topology and lcore map → process role and runtime directory →
//! memory → shared config and heaps → lcore threads → PCI scan → IPC channel → (secondary)
//! primary watcher → pin the main lcore → publish (primary) → ready.
//!
//! [`Boot`] carries what every step needs and records the [`Stage`] reached; each step
//! moves it forward exactly once. A step that fails returns its error and every value the
//! earlier steps made is dropped on the way out (RAII), so nothing is left behind: no
//! hugepage or shm files, no runtime directory, no threads; a secondary leaves the
//! primary's files alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::args::{EalArgs, ProcType};
use crate::config::{self, SharedConfig};
use crate::error::{Error, Result};
use crate::heap::MemCore;
use crate::lcore::{CpuTopology, LcoreSet};
use crate::memory::{self, Memory, MemoryRequest};
use crate::mp::Mp;
use crate::pci::PciBus;
use crate::runtime::RuntimeDir;

use super::options::EalOptions;
use super::shared::{attach_request, fill_config, proc_entry};
use super::state::Inner;
use super::watcher::{ExitState, Watcher};

/// The steps of initialisation, in the order they run. A primary skips
/// [`Stage::Watcher`]; a secondary skips [`Stage::Publish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Read the cpu topology; map lcore ids to cpus (`-l`, `--lcores`, `-c`).
    Lcores,
    /// Decide primary or secondary; take the runtime directory and its lock.
    Role,
    /// Reserve (primary) or attach (secondary) EAL memory.
    Memory,
    /// Create (primary) or map (secondary) the shared config; set up the heaps and
    /// register in the process table.
    SharedConfig,
    /// Start the worker lcore threads.
    Threads,
    /// Scan the PCI bus.
    Pci,
    /// Open this process's IPC endpoint.
    Ipc,
    /// Secondary: start the thread that watches the primary.
    Watcher,
    /// Pin the calling thread to the main lcore's cpu (after the control threads
    /// started with the whole cpu set).
    PinMain,
    /// Primary: let secondaries in.
    Publish,
    /// Done.
    Ready,
}

/// Initialisation in progress.
pub(super) struct Boot {
    args: EalArgs,
    opts: EalOptions,
    topo: CpuTopology,
    /// `(lcore, cpu)` pairs.
    lcore_list: Vec<(u32, u32)>,
    main_lcore: u32,
    stage: Stage,
}

impl Boot {
    /// [`Stage::Lcores`]: the first step; everything later needs the lcore map.
    pub fn start(args: EalArgs, opts: EalOptions) -> Result<Boot> {
        crate::log::set_level(args.log_level);
        let topo = CpuTopology::read(&opts.roots.sys)?;
        let (lcore_list, main_lcore) = args.resolve_lcores(&topo)?;
        Ok(Boot {
            args,
            opts,
            topo,
            lcore_list,
            main_lcore,
            stage: Stage::Lcores,
        })
    }

    fn enter(&mut self, next: Stage) {
        debug_assert!(
            next > self.stage,
            "init went from {:?} to {next:?}",
            self.stage
        );
        crate::log_debug!("EAL init: {:?} done, {next:?} next", self.stage);
        self.stage = next;
    }

    /// Run every remaining step; the role decides which sequence.
    pub fn run(mut self) -> Result<Inner> {
        self.enter(Stage::Role);
        match self.role()? {
            Some(runtime) => self.primary(runtime),
            None => self.secondary(),
        }
    }

    /// [`Stage::Role`]: `Some(runtime dir with the primary lock)` to run as primary,
    /// `None` to attach as secondary (`--proc-type auto` with a live primary).
    fn role(&self) -> Result<Option<RuntimeDir>> {
        let (prefix, root) = (&self.args.file_prefix, self.opts.runtime_root.as_deref());
        match self.args.proc_type {
            ProcType::Secondary => Ok(None),
            ProcType::Primary => RuntimeDir::acquire_primary(prefix, root).map(Some),
            ProcType::Auto => match RuntimeDir::acquire_primary(prefix, root) {
                Ok(r) => Ok(Some(r)),
                Err(Error::PrefixInUse { .. }) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// Primary, holding the primary lock: remove what dead primaries left (of this
    /// prefix, then of every other prefix whose primary is gone).
    fn reclaim(&self, runtime: &RuntimeDir) -> Result<()> {
        let (prefix, roots, shm) = (&self.args.file_prefix, &self.opts.roots, &self.opts.shm_dir);
        let stale = memory::reclaim_stale(prefix, roots, shm)?;
        if !stale.is_empty() {
            crate::log_notice!(
                "reclaimed {} stale file(s) of a dead primary with prefix '{prefix}'",
                stale.len()
            );
        }
        if let Some(root) = runtime.path().parent() {
            let swept = crate::runtime::reclaim_dead_prefixes(root, prefix, |p| {
                memory::reclaim_stale(p, roots, shm)
            });
            if !swept.is_empty() {
                crate::log_notice!(
                    "reclaimed the leftovers of {} dead primaries: {}",
                    swept.len(),
                    swept.join(", ")
                );
            }
        }
        Ok(())
    }

    fn memory_request(&self) -> MemoryRequest {
        let a = &self.args;
        let main_cpu = self
            .lcore_list
            .iter()
            .find(|l| l.0 == self.main_lcore)
            .map_or(0, |l| l.1);
        MemoryRequest {
            prefix: a.file_prefix.clone(),
            total: a.mem_mb.map(|m| m << 20),
            socket_mem: a
                .socket_mem
                .as_ref()
                .map(|v| v.iter().map(|m| m << 20).collect()),
            huge_dir: a.huge_dir.clone(),
            no_huge: a.no_huge,
            iova_mode: a.iova_mode,
            base_hint: self.opts.base_virtaddr,
            roots: self.opts.roots.clone(),
            shm_dir: self.opts.shm_dir.clone(),
            default_socket: self.topo.get(main_cpu).map_or(0, |c| c.numa_node),
        }
    }

    /// [`Stage::Threads`] to [`Stage::Ipc`], shared by both roles.
    fn threads_pci_ipc(
        &mut self,
        runtime: &RuntimeDir,
        primary: bool,
    ) -> Result<(LcoreSet, PciBus, Mp)> {
        self.enter(Stage::Threads);
        let lcores = LcoreSet::start(&self.lcore_list, self.main_lcore, &self.topo)?;
        self.enter(Stage::Pci);
        let pci = PciBus::scan(&self.opts.roots.sys, &self.args.pci_filter())?;
        self.enter(Stage::Ipc);
        let mp = Mp::start(runtime.path(), primary)?;
        Ok((lcores, pci, mp))
    }

    fn pin_main(&mut self, lcores: &mut LcoreSet) -> Result<()> {
        self.enter(Stage::PinMain);
        if self.opts.pin_main {
            lcores.pin_main()?;
        }
        Ok(())
    }

    fn primary(mut self, runtime: RuntimeDir) -> Result<Inner> {
        self.reclaim(&runtime)?;

        self.enter(Stage::Memory);
        let memory = Memory::reserve(&self.memory_request())?;

        self.enter(Stage::SharedConfig);
        let file = runtime.config_file().ok_or_else(|| {
            Error::io(
                "use",
                "shared config",
                std::io::Error::other("lock not held"),
            )
        })?;
        let cfg = SharedConfig::create(file, memory.memsegs(), |b| {
            fill_config(b, &memory, &self.args.file_prefix)
        })?;
        let core = MemCore {
            memory,
            config: cfg,
        };
        core.init_heaps();
        let me = proc_entry(config::ROLE_PRIMARY, &self.lcore_list, self.main_lcore);
        core.config.lock().proc_register(me)?;

        let (mut lcores, pci, mp) = self.threads_pci_ipc(&runtime, true)?;
        self.pin_main(&mut lcores)?;

        self.enter(Stage::Publish);
        core.config.publish();

        self.enter(Stage::Ready);
        let m = &core.memory;
        crate::log_info!(
            "EAL: primary, prefix '{}', {} MiB at {} ({}), IOVA {:?}, {} lcores, {} PCI devices",
            self.args.file_prefix,
            m.len() >> 20,
            m.base(),
            if m.no_huge() { "no-huge" } else { "hugepages" },
            m.iova_mode(),
            lcores.count(),
            pci.devices().len()
        );
        Ok(Inner {
            lcores: Some(lcores),
            mp: Some(mp),
            watcher: None,
            core: Some(core),
            runtime,
            args: self.args,
            pci,
            secondary: false,
            primary_pid: std::process::id() as i32,
            exit: Arc::new(ExitState::default()),
        })
    }

    /// Secondary (module doc of [`crate::init`]): attach to the live primary.
    fn secondary(mut self) -> Result<Inner> {
        let prefix = self.args.file_prefix.clone();
        let runtime = RuntimeDir::attach_secondary(&prefix, self.opts.runtime_root.as_deref())?;
        let path = runtime.config_path();
        let file = runtime
            .config_file()
            .ok_or_else(|| Error::io("use", "shared config", std::io::Error::other("not open")))?;

        // Wait for the primary to publish (it may still be initialising).
        let deadline = Instant::now() + self.opts.attach_timeout;
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
                        snap.primary_pid, self.opts.attach_timeout
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let cfg = SharedConfig::attach(file, &path, &snap)?;

        self.enter(Stage::Memory);
        let memory = Memory::attach(&attach_request(&cfg)?)?;

        self.enter(Stage::SharedConfig);
        let core = MemCore {
            memory,
            config: cfg,
        };
        self.register_secondary(&core)?;

        let (mut lcores, pci, mp) = self.threads_pci_ipc(&runtime, false)?;

        self.enter(Stage::Watcher);
        let exit = Arc::new(ExitState::default());
        let watch_fd = file
            .try_clone()
            .map_err(|e| Error::io("duplicate", path.display().to_string(), e))?;
        let watcher = Watcher::start(watch_fd, path, self.opts.primary_poll, exit.clone())?;

        self.pin_main(&mut lcores)?;

        self.enter(Stage::Ready);
        let m = &core.memory;
        crate::log_info!(
            "EAL: secondary of pid {}, prefix '{prefix}', {} MiB at {} ({}), {} lcores",
            snap.primary_pid,
            m.len() >> 20,
            m.base(),
            if m.no_huge() { "no-huge" } else { "hugepages" },
            lcores.count()
        );
        Ok(Inner {
            lcores: Some(lcores),
            mp: Some(mp),
            watcher: Some(watcher),
            core: Some(core),
            runtime,
            args: self.args,
            pci,
            secondary: true,
            primary_pid: snap.primary_pid,
            exit,
        })
    }

    /// Enter this secondary in the process table, warning about lcore ids another live
    /// process uses too (per-lcore state in shared memory would be shared).
    fn register_secondary(&self, core: &MemCore) -> Result<()> {
        let mut g = core.config.lock();
        let me = proc_entry(config::ROLE_SECONDARY, &self.lcore_list, self.main_lcore);
        for other in g.live_procs().iter().filter(|p| p.pid != me.pid) {
            let shared: Vec<u32> = other
                .lcore_ids()
                .into_iter()
                .filter(|l| self.lcore_list.iter().any(|x| x.0 == *l))
                .collect();
            if !shared.is_empty() {
                crate::log_warn!(
                    "lcore id(s) {shared:?} are also used by process {} ({}); per-lcore state such as mempool caches must not be shared: give each process distinct lcore ids",
                    other.pid,
                    if other.role == config::ROLE_PRIMARY { "primary" } else { "secondary" }
                );
            }
        }
        g.proc_register(me)
    }
}
