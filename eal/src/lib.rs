//! Ferroplane's environment abstraction layer (EAL): the process-level services every
//! other crate builds on: hugepage memory with known IOVAs, named memzones, a heap,
//! lcores (pinned worker threads), PCI discovery, and the files that let processes share
//! all of it.
//!
//! # Starting and stopping
//!
//! [`Eal::init`] (DPDK-style arguments) or [`Eal::init_with`] (parsed [`args::EalArgs`])
//! runs the steps of [`init::Stage`] in DPDK's `rte_eal_init` order: lcore map → process
//! role, runtime directory and primary lock → memory → shared config and heaps → lcore
//! threads → PCI scan → IPC → (secondary) primary watcher → pin the main lcore →
//! (primary) publish. Any failure unwinds every earlier step: no hugepage files, no shm
//! file, no runtime directory are left behind. [`Eal`] is a cheap `Clone` handle (`Arc`
//! inside) and is `Send + Sync`; when the last handle drops (or on [`Eal::cleanup`])
//! workers are joined, memory is unmapped, its files unlinked, and the runtime directory
//! removed. Several `Eal`s with different `--file-prefix` may live in one process (tests
//! do this); a second primary with the same prefix, in this process or another, is
//! refused with [`Error::PrefixInUse`]; a primary that exits while secondaries are still
//! attached leaves the shared files to them. The leftovers of a primary that died
//! (SIGKILL) are reclaimed by the next primary with the same prefix, and every primary
//! also sweeps the runtime directories and memory files of other prefixes whose primary
//! is dead (their `config` lock is free).
//!
//! # The modules, through the handle
//!
//! `Eal` owns the process's EAL state and hands out one object per module, as DPDK
//! splits its API: [`Eal::memory`] ([`Memory`]: the area, memsegs, `virt2iova`),
//! [`Eal::memzones`] ([`Memzones`]), [`Eal::heap`] ([`Heap`]: the `malloc` family),
//! [`Eal::lcores`] ([`LcoreSet`]: `remote_launch`, `wait_lcore`), [`Eal::mp`] ([`Mp`]:
//! IPC) and [`Eal::pci`] ([`PciBus`]). `Memzones` and `Heap` are `Copy` views that borrow
//! the `Eal`; the others are references into it. For example
//! `eal.memzones().reserve("rx", len, None, MemzoneFlags::DMA)` or
//! `eal.lcores().remote_launch(1, move || work())`.
//!
//! # Threads
//!
//! - Every `&self` method of [`Eal`] and of the module objects may be called from any
//!   thread: the main lcore, a worker job, or a thread the EAL does not know.
//! - Memzone and heap calls take a process-shared spinlock in the shared config (see
//!   [`config`]); they are **control path**: use them at set-up, not per packet. They
//!   never block on I/O, but may spin while another thread or process holds the lock.
//!   Without an explicit socket they prefer the calling lcore's socket.
//! - Lcore semantics (launch, wait, job panics) are in [`lcore`].
//! - [`Memzone`] handles are plain `Copy` snapshots. The memory behind a memzone or a
//!   heap allocation is raw shared memory: the EAL never hands out `&`/`&mut` to it, and
//!   synchronising access to its contents is the caller's job.
//! - Errors: every fallible call returns [`Error`], the crate's one error enum; bad input
//!   (arguments, names, sizes, a foreign pointer to `free`) is an error, never a panic.
//! - Every system call is in [`sys`].
//!
//! # What lives in shared memory
//!
//! - EAL memory itself (hugepage files, or one `/dev/shm` file with `--no-huge`), mapped
//!   `MAP_SHARED` at one contiguous virtual range whose base is recorded, so another
//!   process can map it at the same address. Heap block headers live inline in it and use
//!   offsets, not pointers ([`heap`]).
//! - The shared config `<runtime dir>/config` ([`config`]): `#[repr(C)]`, magic and
//!   version, memseg lists and the files behind them, the memzone table, heap headers,
//!   the lock. Its only addresses are EAL virtual addresses.
//!
//! Lcores, PCI scan results and everything else are per process.
//!
//! # Several processes
//!
//! DPDK's multi-process model: one primary (`--proc-type primary`, the default) owns
//! the memory; secondaries (`--proc-type secondary`, or `auto`) attach to the live
//! primary of the same `--file-prefix`, map its memory at the same addresses, and find
//! memzones, rings and mempools by name. Shared tables take the process-shared lock in
//! the config: any process may change them ([`config`]). Secondaries notice the
//! primary's death ([`Eal::primary_alive`], [`Eal::on_primary_exit`]); a new primary is
//! refused while secondaries of a dead one still run ([`runtime`]). Processes talk
//! through named IPC messages with file descriptors ([`mp`], `eal.mp().request_sync(..)`). The contracts are in
//! [`init`] (attach sequence, lcores of several processes), [`config`], [`runtime`],
//! [`memory`] and [`mp`].
//!
//! # Memory model
//!
//! See [`memory`] for how memory is reserved and mapped and how IOVAs are found (VA mode
//! by default; PA with `--iova-mode pa`), [`hugepage`] for discovery and the
//! `ferroplane-hugepages` tool, [`runtime`] for the directories and locks.

pub mod addr;
pub mod args;
pub mod config;
pub mod device;
pub mod error;
pub mod heap;
pub mod hugepage;
pub mod init;
pub mod lcore;
pub mod lcore_id;
pub mod log;
pub mod memory;
pub mod memzone;
pub mod mp;
pub mod pci;
pub mod runtime;
pub mod sys;
pub mod timer;

pub use addr::{Iova, VirtAddr};
pub use error::{Error, Result};
pub use heap::{Heap, HeapStats};
pub use init::{Eal, EalOptions, ProcInfo};
pub use lcore::LcoreSet;
pub use memory::Memory;
pub use memory::Memseg;
pub use memzone::{Memzone, MemzoneFlags, Memzones};
pub use mp::Mp;
pub use pci::PciBus;
