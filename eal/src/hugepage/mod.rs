//! Hugepages: discovery ([`discover`]: mounts, page sizes, pools per node) and the logic
//! behind the `ferroplane-hugepages` tool ([`setup`]).
//!
//! Discovery reads three places, each under a configurable root ([`SysRoots`]) so that
//! unit tests can run against a fake tree in a temporary directory:
//! - `<proc>/mounts`: hugetlbfs mounts; a mount's page size is its `pagesize=` option, or
//!   the default size (`Hugepagesize:` in `<proc>/meminfo`) when the option is absent;
//! - `<sys>/kernel/mm/hugepages/hugepages-<N>kB/{nr,free,resv,surplus}_hugepages`: the
//!   page sizes the kernel supports and the system-wide pool of each;
//! - `<sys>/devices/system/node/node<M>/hugepages/hugepages-<N>kB/{nr,free,surplus}_hugepages`:
//!   the same per NUMA node.
//!
//! The tool's actions ([`reserve`], [`clear`], [`mount`], [`unmount_all`], [`setup`],
//! [`show`]) write the same files and call `mount(2)`/`umount(2)` through
//! [`crate::sys::mem`]. They change system state and need root on a real system.
//!
//! Everything here is control path and may be called from any thread.

mod discover;
mod setup;

pub(crate) use discover::unescape_mount;

pub use discover::{
    format_size, parse_meminfo_default, parse_mounts, parse_size, HugeMount, HugepageInfo,
    NodeCount, PageSizeInfo, SysRoots,
};
pub use setup::{
    clear, mount, reserve, reserve_pages, setup, show, tool_usage, unmount_all, ToolArgs,
    DEFAULT_MOUNT,
};
