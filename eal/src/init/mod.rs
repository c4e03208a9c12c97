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
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::args::{EalArgs, ProcType};
use crate::config;
use crate::error::{Error, Result};
use crate::heap::Heap;
use crate::lcore::LcoreSet;
use crate::memory::Memory;
use crate::memzone::Memzones;
use crate::mp::Mp;
use crate::pci::PciBus;

mod boot;
mod options;
mod shared;
mod state;
mod watcher;

pub use boot::Stage;
pub use options::EalOptions;

use boot::Boot;
use state::Inner;

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

    /// Initialise, step by step as [`boot::Stage`] lists them (DPDK's `rte_eal_init`
    /// order; the secondary's attach sequence is in the module doc). Any failure unwinds
    /// every earlier step (RAII): no hugepage files, shm files or runtime directory are
    /// left behind, and a secondary leaves the primary's files alone.
    pub fn init_with_options(args: EalArgs, opts: EalOptions) -> Result<Eal> {
        let inner = Boot::start(args, opts)?.run()?;
        Ok(Eal {
            inner: Arc::new(inner),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eal_is_send_sync() {
        fn ok<T: Send + Sync + Clone>() {}
        ok::<Eal>();
    }
}
