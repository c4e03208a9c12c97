//! Ferroplane mempool: named pools of fixed-size objects in EAL shared memory, with
//! per-lcore caches and pluggable backends, in the class of DPDK's `rte_mempool`.
//!
//! # What lives in shared memory
//!
//! * Memzone `MP_<name>`: the pool header ([`#[repr(C)]`], magic + layout version, no
//!   pointers: every address in it is an EAL virtual address, identical in every process
//!   of the EAL group). It records sizes, flags, the backend's name and the address of
//!   its state, the memory chunks, a private area for the pool's user (at most
//!   [`PRIVATE_MAX`] bytes), per-lcore statistics and, if the pool has a cache, one
//!   [`CacheShared`] per lcore id (`MAX_LCORE` of them).
//! * Memzones `MP_<name>_<k>`: the objects, one or more chunks. Each object slot is a
//!   header ([`ObjHeader`]: pool address, IOVA of the object; in debug builds a cookie
//!   that says "free" or "in use"), the object, and a trailer (debug builds: a cookie that
//!   catches overruns). Objects are cache-line aligned unless
//!   [`PoolFlags::NO_CACHE_ALIGN`], and the stride between them is padded so object
//!   starts rotate over the memory channels unless [`PoolFlags::NO_SPREAD`] (see
//!   [`layout::spread_size`] for the reasoning, after DPDK).
//! * Memzone `MPB_<name>`: the backend's state ([`ops`]: a ring by default, or a stack).
//!
//! A debug build and a release build lay objects out differently; each refuses the
//! other's pools on lookup.
//!
//! # Who may call what
//!
//! * Create, lookup and free from any thread. A process must create or look up a pool
//!   before it handles the pool's objects (the handle attaches the backend in this
//!   process; [`Pool::from_addr`] finds it from an object's header).
//! * [`Mempool`] is a cheap handle (`Clone`, `Send`, `Sync`) that derefs to [`Pool`];
//!   every get/put method takes `&self`.
//! * Gets and puts on an EAL lcore thread (`eal::lcore::lcore_id()` is `Some`) go through
//!   that lcore's cache in the pool header. **Contract**: one thread per lcore id across
//!   all processes using the pool (the EAL gives every process distinct lcores), and the
//!   lcore ids are those of the EAL the pool was created or looked up in — a thread that is
//!   an lcore of a *second* EAL instance in the same process must not use the pool with
//!   the same id as a thread of the first.
//! * Threads that are not EAL lcores go straight to the backend, or through a
//!   [`MempoolCache`] they own ([`Mempool::cache_create`], used through `&mut`).
//! * Put is `unsafe`: the pool cannot verify in release builds that an address is one of
//!   its objects and not already free. Debug builds check both (object inside the pool's
//!   chunks with the right stride, header naming this pool, cookie saying "in use",
//!   trailer cookie intact) and refuse the whole bulk with [`Error::ForeignObject`],
//!   [`Error::DoubleFree`] or [`Error::Corrupted`].
//! * Bulk operations are all or nothing.
//! * Pools on a single-thread backend (`ring_sp_sc`) are created and looked up with the
//!   `unsafe` `*_unchecked` constructors: the caller promises one thread at a time.
//! * [`Mempool::free`] refuses while objects are out or other handles exist in this
//!   process; other processes must have stopped using the pool (they cannot be counted).
//!
//! # Attachment (who keeps the EAL alive)
//!
//! A process's view of a pool ([`Pool`]) holds a clone of the process's [`eal::Eal`]
//! while it is *attached*, so the pool's memory stays mapped. It detaches, dropping that
//! clone, when the pool is freed, and when the process's last [`Mempool`] handle to it is
//! dropped while no object of the pool is out ([`Pool::in_use_count`] is 0). Once every
//! pool is detached and the user's own `Eal` handles are gone, the EAL tears down (files
//! removed; [`eal::Eal::cleanup`] succeeds). A later lookup re-attaches the same view.
//!
//! **Rule**: an object (and so an mbuf) of a pool must not outlive the process's last
//! handle to that pool. Put every object back before dropping the last handle. If objects
//! are still out then, the pool stays attached, so their memory stays mapped and they can
//! still be put back, but this process keeps its EAL alive until it exits (no teardown,
//! files left behind) and a notice is logged. [`Pool::from_addr`] returns `None` for a
//! detached pool and never reads its (possibly unmapped) memory; the detached view stays
//! allocated for that reason (a few hundred bytes per pool).
//!
//! In a multi-process group, "objects out" counts every process's objects: a process
//! whose last handle drops while another process holds objects stays attached.
//! Backends registered with [`register_ops`] must not keep an `Eal` clone in their
//! [`OpsHandle`]: a view keeps its backend handle for the life of the process.
//!
//! # Cache policy
//!
//! See [`cache`]: flush threshold 1.5 x size (DPDK's), refill to half, flush the coldest
//! objects down to half. Objects sitting in other lcores' caches are not reachable by a
//! get on this lcore: a get can fail while [`Pool::avail_count`] is non-zero, as in DPDK.
//!
//! # Preemption
//!
//! Nothing here blocks in the kernel, but the default backend is a multi-producer/
//! multi-consumer ring and the stack backend holds a spinlock: a thread preempted in the
//! middle of a backend operation makes others spin until it runs again. Run lcores on
//! dedicated cpus. The per-lcore cache is not reentrant: do not use a pool from a signal
//! handler that interrupted a get or put on the same lcore.
//!
//! # Statistics
//!
//! Per pool, chosen at creation with [`PoolFlags::STATS`]: two plain load+store updates
//! per cached get or put, into a line the lcore owns (see [`MempoolStats`] for what is
//! derived rather than stored); readable at any time from any process: [`Pool::stats`],
//! [`Pool::lcore_stats`], [`Pool::dump`]. Without the flag (the default) nothing is counted
//! and every statistic reads 0, as in DPDK builds without `RTE_LIBRTE_MEMPOOL_STATS`.
//!
//! # Hot path
//!
//! A get or put of a few objects that the calling lcore's cache can serve is inlined into
//! the caller: one thread-local read (the lcore id), the cache address, a length check, an
//! element copy (no `memcpy` call) and the counters above. Loops that get and put many
//! times resolve the cache once with [`Pool::lcore_cache`] (DPDK's
//! `rte_mempool_default_cache` + `rte_mempool_generic_get/put`) and skip the first two;
//! [`CacheRef::run`] also settles once whether there is a cache and whether the pool
//! counts statistics, so the loop body it runs holds only the path it takes.
//! A cached get or put's refills, flushes and failures are out of line (`#[cold]`), so
//! they cost the caller neither code size nor registers; a pool without cache inlines
//! its backend call (the ring's head move and copy; DPDK calls its backend through the ops
//! table's function pointer).

//!
//! # Where things are
//!
//! `layout` (object slots and cookies), `cache` (the per-lcore cache algorithm),
//! `stats` (counters), `stack` and `ops` (backends), `memzone` (names and EAL memory
//! calls), `header` (the shared pool header), `registry` (address to view, per process),
//! `pool` ([`Pool`] and [`Mempool`], attachment), `create` (create, lookup, free),
//! `populate` (object memory), `getput` (the get/put paths), `cache_ref` ([`CacheRef`]
//! and [`CacheRef::run`]), `user_cache` ([`MempoolCache`]), `debug` (debug-build object
//! checks), `dump` (statistics and the dump).

// Modules in dependency order: each uses only those above it (and the root's
// `PoolFlags`).
pub mod cache;
mod cache_ref;
mod create;
#[cfg(debug_assertions)]
mod debug;
mod dump;
mod error;
mod getput;
mod header;
pub mod layout;
mod memzone;
pub mod ops;
mod pool;
mod populate;
mod recover;
mod registry;
pub mod stack;
mod stats;
mod user_cache;

pub use cache::{CacheShared, CACHE_MAX_SIZE};
pub use cache_ref::{BulkGetPut, CacheRef, GetPutLoop};
pub use create::{PoolConfig, DEFAULT_CHANNELS};
pub use error::{Error, Result};
pub use header::{LAYOUT_VERSION, MAX_CHUNKS, PRIVATE_MAX};
pub use layout::{ObjHeader, ObjSize};
pub use memzone::{header_mz_name, NAME_MAX};
pub use ops::{register_ops, MempoolOps, OpsConfig, OpsHandle};
pub use pool::{Mempool, Pool};
pub use stats::MempoolStats;
pub use user_cache::MempoolCache;

bitflags::bitflags! {
    /// Flags given at creation, with DPDK's bit values (`RTE_MEMPOOL_F_*`,
    /// lib/mempool/rte_mempool.h v22.11).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct PoolFlags: u32 {
        /// Do not pad objects to spread their starts over memory channels.
        const NO_SPREAD = 0x0001;
        /// Do not align objects to cache lines (8 bytes only); implies `NO_SPREAD`.
        const NO_CACHE_ALIGN = 0x0002;
        /// Count gets, puts, cache hits and misses and backend calls in the per-lcore
        /// statistics ([`Pool::stats`]). Ferroplane's own bit (DPDK decides this at build
        /// time with `RTE_LIBRTE_MEMPOOL_STATS`). Costs two counter updates per get or put.
        const STATS = 0x1000_0000;
    }
}
