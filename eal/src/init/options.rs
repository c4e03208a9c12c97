//! [`EalOptions`]: the knobs of initialisation that are not command-line options.

use std::path::PathBuf;
use std::time::Duration;

use crate::hugepage::SysRoots;

/// Knobs that are not EAL command-line options: where the system trees are (tests point
/// them at fakes) and the base-address hint.
#[derive(Clone, Debug)]
pub struct EalOptions {
    /// Base-address hint of the EAL area; `None` = [`crate::memory::DEFAULT_BASE_VIRTADDR`].
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
