//! EAL memory: reservation, mapping, memsegs and IOVA translation.
//!
//! # How memory is reserved
//!
//! **Hugepages** (default). Discovery ([`crate::hugepage`]) lists the hugetlbfs mounts;
//! `--huge-dir` picks one, otherwise the first mount (default page size first, then
//! ascending size) whose pool has enough free pages is used. One page size per EAL.
//! For every page a file `<mount>/<prefix>map_<n>` is created, sized, and `fallocate`d
//! (this takes the page from the pool now, so a later fault can never SIGBUS); with
//! `--socket-mem` the thread's memory policy is bound to the node while its pages are
//! allocated. The whole virtual area is first reserved `PROT_NONE` (at the base-address
//! hint, [`DEFAULT_BASE_VIRTADDR`], if free), aligned to the page size, then each file is
//! mapped over it with `MAP_FIXED | MAP_SHARED`, so the area is one contiguous range.
//! Pages are then locked (`mlock`, which faults them in; if that is refused every page
//! is touched instead) and sorted by NUMA node (pages are re-mapped if the kernel
//! spread them), so each node's pages form one run: a *memseg list*. One [`Memseg`] per
//! page records virtual address, IOVA, length, page size and socket.
//!
//! **Default amount** without `-m`/`--socket-mem`: [`DEFAULT_MEM`] (256 MiB) or what the
//! chosen page size has free, whichever is smaller, at least one page.
//!
//! **`--no-huge`**: one file `/dev/shm/ferroplane-<prefix>-<pid>.mem` (regular shared
//! memory, `fallocate`d so tmpfs space is committed), mapped `MAP_SHARED` at one
//! contiguous area (same base-address rule) so a future secondary can map the same file
//! at the same address. Memsegs are 2 MiB chunks with `page_size` 4 KiB (2 MiB keeps
//! the table small; the chunk is not physically contiguous). The memory is not locked
//! and not DMA-capable ([`Memory::dma_capable`] is false); the IOVA is the virtual address.
//!
//! # IOVA
//!
//! VA mode (default): IOVA = virtual address, for devices behind an IOMMU (VFIO maps the
//! EAL area 1:1). PA mode (`--iova-mode pa`): IOVA = physical address read from
//! `/proc/self/pagemap` (needs CAP_SYS_ADMIN; without it the kernel reports PFN 0 and
//! PA mode fails with [`Error::NoDma`]; it is never silently downgraded because the user
//! asked for it). Hugepages never move, so the IOVA is fixed for the EAL's life.
//!
//! # Files and clean-up
//!
//! [`Memory`] owns the mapping and the files; dropping it (or [`Memory::release`])
//! unmaps and unlinks them. A crash leaves them behind: the next primary with the same
//! prefix removes them in [`reclaim_stale`] after it has taken the primary lock.
//!
//! # Secondary processes
//!
//! [`Memory::attach`] maps the files a primary recorded in the shared config at the
//! **same** virtual addresses: the whole area is first claimed `PROT_NONE` with
//! `MAP_FIXED_NOREPLACE` (so nothing already mapped in this process is ever replaced; a
//! taken range fails with [`Error::AddressTaken`]), then each hugepage file (or the one
//! `--no-huge` file) is mapped over its slot with `MAP_FIXED | MAP_SHARED`. Hugepages are
//! `mlock`ed as in the primary. The files are opened, never created, resized or
//! unlinked: a secondary's `Memory` does not own them ([`Memory::owns_files`] is false)
//! and only unmaps on release. A primary that exits while secondaries are attached
//! disowns its files the same way ([`Memory::disown_files`]).

mod area;
mod attach;
mod files;
mod reserve;

pub use area::{
    Backing, Memory, Memseg, MemsegList, DEFAULT_BASE_VIRTADDR, DEFAULT_MEM, NOHUGE_PAGE,
    NOHUGE_SEG,
};
pub use attach::AttachRequest;
pub use files::{huge_stem, reclaim_stale, shm_name};
pub use reserve::MemoryRequest;

/// Most memseg lists (runs of pages with one socket and one page size) one EAL maps.
pub const MAX_MEMSEG_LISTS: usize = 32;
