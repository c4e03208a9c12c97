//! The pool: shared header, creation/lookup/free, get/put through caches, statistics.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::io::Write;
use std::sync::Mutex;

use eal::lcore::MAX_LCORE;
use eal::{Eal, Iova, VirtAddr};

use crate::cache::{
    flush_threshold, BulkBackend, CacheShared, GetOutcome, PutOutcome, CACHE_MAX_SIZE,
};
use crate::layout::{self, calc_obj_size, ObjSize, DEBUG_LAYOUT};
use crate::ops::{self, Backend, OpsConfig, OPS_NAME_MAX};
use crate::stats::{MempoolStats, StatsShared, StatsSlot};
use crate::{Error, PoolFlags, Result};

/// Longest pool name. Memzone names hold 31 bytes; the longest we derive is the chunk
/// memzone `MP_<name>_<k>` (k < 100): 3 + 24 + 3 = 30.
pub const NAME_MAX: usize = 24;
/// Most memory chunks (memzones) the objects of one pool can be spread over.
pub const MAX_CHUNKS: usize = 32;
/// Bytes of private data a pool header can carry for its user (the mbuf layer keeps its
/// data room and private size there).
pub const PRIVATE_MAX: usize = 64;
/// Memory channels assumed for spreading when the EAL was not told (`-n`), as DPDK does.
pub const DEFAULT_CHANNELS: u32 = 4;

/// "FPMEMPL" + format byte.
const MAGIC: u64 = u64::from_le_bytes(*b"FPMEMPL\x01");
/// Bumped whenever the shared layout changes.
pub const LAYOUT_VERSION: u32 = 1;

/// Memzone name of a pool's header.
pub fn header_mz_name(pool: &str) -> String {
    format!("MP_{pool}")
}

fn chunk_mz_name(pool: &str, k: usize) -> String {
    format!("MP_{pool}_{k}")
}

// ------------------------------------------------------------------------------------
// EAL memzone glue (the only place that calls the EAL's memory API)
// ------------------------------------------------------------------------------------

pub(crate) fn mz_reserve(
    eal: &Eal,
    name: &str,
    len: usize,
    socket: Option<u32>,
    align: usize,
) -> eal::Result<eal::memzone::Memzone> {
    eal.memzones().reserve_aligned(
        name,
        len,
        socket,
        eal::memzone::MemzoneFlags::empty(),
        align,
    )
}

pub(crate) fn mz_free(eal: &Eal, name: &str) -> eal::Result<()> {
    match eal.memzones().lookup(name) {
        Some(mz) => eal.memzones().free(&mz),
        None => Err(eal::Error::NotFound(name.into())),
    }
}

// ------------------------------------------------------------------------------------
// Shared header
// ------------------------------------------------------------------------------------

/// One memory chunk holding objects, as recorded in the header.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkDesc {
    /// First byte of the chunk (first object slot).
    addr: VirtAddr,
    /// IOVA of `addr` if the chunk is IOVA-contiguous, else [`Iova::BAD`].
    iova: Iova,
    /// Bytes of the chunk.
    len: u64,
    /// Index of the chunk's first object over the whole pool.
    first: u32,
    /// Objects in the chunk.
    nb_objs: u32,
}

/// The pool header, at the start of memzone `MP_<name>`. No pointers: every address is an
/// EAL virtual address, the same in every process. Read-only after creation except the
/// statistics and the caches that follow it.
#[repr(C, align(128))]
pub(crate) struct PoolHeader {
    /// [`MAGIC`] once the pool is fully built (release store; lookups acquire it).
    magic: AtomicU64,
    version: u32,
    /// Bit 0: debug object layout (cookies).
    layout: u32,
    /// Distinguishes two pools created at the same address one after the other.
    serial: u64,
    name: [u8; 32],
    ops_name: [u8; 32],
    flags: u32,
    size: u32,
    elt_size: u32,
    header_size: u32,
    trailer_size: u32,
    total_size: u32,
    cache_size: u32,
    flush_threshold: u32,
    /// NUMA socket asked for, -1 for any.
    socket: i32,
    nb_chunks: u32,
    /// Backend state address and length (see [`MempoolOps::alloc`](crate::MempoolOps::alloc)).
    pool_data: VirtAddr,
    pool_data_len: u64,
    private_len: u32,
    channels: u32,
    /// `size_of::<PoolHeader>()` of the creator, a cheap layout check.
    header_len: u32,
    /// Offset of the cache array from the header start, 0 if no cache.
    caches_off: u32,
    chunks: [ChunkDesc; MAX_CHUNKS],
    private: [u8; PRIVATE_MAX],
    /// Per-lcore counters, plus one shared slot for non-EAL threads (see [`crate::stats`]).
    stats: [StatsShared; MAX_LCORE + 1],
}

const _: () = assert!(core::mem::size_of::<PoolHeader>().is_multiple_of(128));
const _: () = assert!(core::mem::offset_of!(PoolHeader, stats) % 128 == 0);
const _: () = assert!(core::mem::size_of::<ChunkDesc>() == 32);

fn name_bytes(s: &str) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..s.len()].copy_from_slice(s.as_bytes());
    b
}

fn name_str(b: &[u8; 32]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > NAME_MAX || !name.bytes().all(|c| c.is_ascii_graphic()) {
        return Err(Error::BadName {
            name: name.into(),
            max: NAME_MAX,
        });
    }
    Ok(())
}

fn new_serial() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let c = COUNTER.fetch_add(1, Ordering::Relaxed);
    eal::timer::rdtsc() ^ (u64::from(std::process::id()) << 40) ^ c.rotate_left(20)
}

// ------------------------------------------------------------------------------------
// Process-local registry: header address -> this process's Pool
// ------------------------------------------------------------------------------------

const REG_SLOTS: usize = 256;

struct RegSlot {
    addr: AtomicU64,
    pool: AtomicPtr<Pool>,
}

static REG: [RegSlot; REG_SLOTS] = [const {
    RegSlot {
        addr: AtomicU64::new(0),
        pool: AtomicPtr::new(core::ptr::null_mut()),
    }
}; REG_SLOTS];
/// Serialises inserts and removals (lookups are lock-free).
static REG_LOCK: Mutex<()> = Mutex::new(());

fn reg_start(addr: VirtAddr) -> usize {
    ((addr.0 >> 7) as usize).wrapping_mul(0x9E37_79B9) % REG_SLOTS
}

/// Lock-free lookup. Slots are never emptied once used (a freed pool leaves its address
/// with a null pointer), so a probe chain is never broken. The pool found may be
/// detached (see [`Pool::attached`]): its memory may be unmapped.
fn reg_find(addr: VirtAddr) -> Option<&'static Pool> {
    let start = reg_start(addr);
    for i in 0..REG_SLOTS {
        let s = &REG[(start + i) % REG_SLOTS];
        // R1 (acquire): pairs with R2; a slot's address is published after its pointer.
        let a = s.addr.load(Ordering::Acquire);
        if a == 0 {
            return None;
        }
        if a == addr.0 {
            // R3 (acquire): pairs with R4, so the Pool behind the pointer is initialised.
            let p = s.pool.load(Ordering::Acquire);
            // SAFETY: non-null pointers in the registry come from Box::leak and are
            // never deallocated.
            return (!p.is_null()).then(|| unsafe { &*p });
        }
    }
    None
}

fn reg_insert(pool: &'static Pool) -> Result<()> {
    let _g = REG_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let start = reg_start(pool.addr);
    for i in 0..REG_SLOTS {
        let s = &REG[(start + i) % REG_SLOTS];
        let a = s.addr.load(Ordering::Relaxed);
        if a == 0 || a == pool.addr.0 {
            // R4 (release): pairs with R3.
            s.pool
                .store(pool as *const Pool as *mut Pool, Ordering::Release);
            // R2 (release): pairs with R1.
            s.addr.store(pool.addr.0, Ordering::Release);
            return Ok(());
        }
    }
    Err(Error::InUse {
        name: pool.name.clone(),
        why: format!("more than {REG_SLOTS} pools attached in this process"),
    })
}

fn reg_remove(pool: &Pool) {
    let _g = REG_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let start = reg_start(pool.addr);
    for i in 0..REG_SLOTS {
        let s = &REG[(start + i) % REG_SLOTS];
        let a = s.addr.load(Ordering::Relaxed);
        if a == 0 {
            return;
        }
        if a == pool.addr.0 && core::ptr::eq(s.pool.load(Ordering::Relaxed), pool) {
            // Relaxed: a null pointer carries no data to publish.
            s.pool.store(core::ptr::null_mut(), Ordering::Relaxed);
            return;
        }
    }
}

// ------------------------------------------------------------------------------------
// Pool (process-local view) and Mempool (handle)
// ------------------------------------------------------------------------------------

/// Parameters of a new pool. `Default` gives the default backend and no cache; set at
/// least `n` and `elt_size`.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig<'a> {
    /// Number of objects.
    pub n: u32,
    /// Bytes per object.
    pub elt_size: u32,
    /// Per-lcore cache size, 0 for none; at most [`CACHE_MAX_SIZE`] and `n / 1.5`.
    pub cache_size: u32,
    /// NUMA socket, `None` for any.
    pub socket: Option<u32>,
    /// Layout flags.
    pub flags: PoolFlags,
    /// Backend name (see [`crate::ops`]).
    pub ops: &'a str,
    /// Private data stored in the header (at most [`PRIVATE_MAX`] bytes).
    pub private: &'a [u8],
}

impl Default for PoolConfig<'_> {
    fn default() -> Self {
        PoolConfig {
            n: 0,
            elt_size: 0,
            cache_size: 0,
            socket: None,
            flags: PoolFlags::empty(),
            ops: "ring_mp_mc",
            private: &[],
        }
    }
}

/// This process's view of one pool. Reached through a [`Mempool`] handle (`Deref`), or
/// from an object's pool address with [`Pool::from_addr`]. All methods take `&self` and
/// may be called from any thread (see the crate docs for the cache rules).
pub struct Pool {
    hdr: NonNull<PoolHeader>,
    caches: *const CacheShared,
    /// This process's EAL handle while the pool is attached (see "Attachment" in the crate
    /// docs). Written only under `attach_lock`: set by create/lookup (no one else can see
    /// the pool yet, or `handles` is 0 and it is detached), taken by [`Pool::detach_if_idle`]
    /// (`handles` 0, no object out) and by `free_inner` (the only handle). Read by
    /// [`Pool::eal`] through a handle or an object, which rule out a concurrent take.
    eal: UnsafeCell<Option<Eal>>,
    /// True while `eal` is `Some` and the pool's memory is therefore mapped here.
    attached: AtomicBool,
    /// Serialises attach, detach and free of this process's view.
    attach_lock: Mutex<()>,
    backend: Backend,
    name: String,
    addr: VirtAddr,
    serial: u64,
    size: u32,
    elt_size: u32,
    header_size: u32,
    total_size: u32,
    /// [`PoolFlags::STATS`], read once from the header.
    stats_on: bool,
    /// Live [`Mempool`] handles in this process.
    handles: AtomicUsize,
}

// SAFETY: `hdr` and `caches` point into EAL shared memory that stays mapped while the
// pool is attached; everything mutable in it is atomic or owned by one lcore thread (the
// cache rules); the backend handle is Send + Sync; `eal` is written only under
// `attach_lock` when no handle or object can read it (see the field).
unsafe impl Send for Pool {}
// SAFETY: as above.
unsafe impl Sync for Pool {}

impl core::fmt::Debug for Pool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("size", &self.size)
            .finish()
    }
}

/// A handle to a pool in this process. Cheap to clone; derefs to [`Pool`] for gets, puts
/// and queries. Dropping handles never frees the pool ([`Mempool::free`] does); dropping
/// the process's last one detaches the pool from this process and releases its EAL
/// handle if no object is out (see "Attachment" in the crate docs).
pub struct Mempool {
    pool: &'static Pool,
}

impl Clone for Mempool {
    fn clone(&self) -> Self {
        // Relaxed: a count, as Arc's increment.
        self.pool.handles.fetch_add(1, Ordering::Relaxed);
        Mempool { pool: self.pool }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // H1 (release): pairs with H2 in `free` and `detach_if_idle`, so a handle's last
        // uses happen before the pool is torn down or detached.
        if self.pool.handles.fetch_sub(1, Ordering::Release) == 1 {
            self.pool.detach_if_idle();
        }
    }
}

impl core::ops::Deref for Mempool {
    type Target = Pool;
    fn deref(&self) -> &Pool {
        self.pool
    }
}

impl core::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.pool.fmt(f)
    }
}

impl Mempool {
    /// Create a pool named `name` (see [`PoolConfig`]); its objects are zeroed.
    pub fn create(eal: &Eal, name: &str, cfg: &PoolConfig<'_>) -> Result<Mempool> {
        Self::create_with_init(eal, name, cfg, |_, _| {})
    }

    /// As [`Mempool::create`], calling `init(index, obj)` once on every object (zeroed
    /// first) before the pool is published.
    pub fn create_with_init(
        eal: &Eal,
        name: &str,
        cfg: &PoolConfig<'_>,
        init: impl FnMut(u32, VirtAddr),
    ) -> Result<Mempool> {
        let ops = ops::ops_by_name(cfg.ops)?;
        if !ops.thread_safe() {
            return Err(Error::Backend {
                op: "create",
                ops: cfg.ops.into(),
                name: name.into(),
                why: "backend is single-thread; use the unsafe Mempool::create_unchecked".into(),
            });
        }
        // SAFETY: the backend is thread safe, so there is no single-thread contract.
        unsafe { Self::create_unchecked(eal, name, cfg, init) }
    }

    /// Create a pool on any backend, including single-thread ones (`ring_sp_sc`).
    ///
    /// # Safety
    /// If the backend is not [`thread_safe`](crate::MempoolOps::thread_safe), at most one thread
    /// at a time (over all processes) uses the pool: gets, puts, cache flushes, frees.
    pub unsafe fn create_unchecked(
        eal: &Eal,
        name: &str,
        cfg: &PoolConfig<'_>,
        mut init: impl FnMut(u32, VirtAddr),
    ) -> Result<Mempool> {
        check_name(name)?;
        let zero = |what| {
            Err(Error::ZeroSize {
                name: name.into(),
                what,
            })
        };
        if cfg.n == 0 {
            return zero("number of objects");
        }
        if cfg.elt_size == 0 {
            return zero("element size");
        }
        if cfg.cache_size > CACHE_MAX_SIZE || flush_threshold(cfg.cache_size) > cfg.n {
            let max = CACHE_MAX_SIZE.min(cfg.n * 2 / 3);
            return Err(Error::CacheTooLarge {
                name: name.into(),
                cache_size: cfg.cache_size,
                n: cfg.n,
                max,
            });
        }
        if PoolFlags::from_bits(cfg.flags.bits()).is_none() {
            return Err(Error::BadFlags {
                name: name.into(),
                bits: cfg.flags.bits(),
            });
        }
        if cfg.private.len() > PRIVATE_MAX {
            return Err(Error::Incompatible {
                name: name.into(),
                why: format!(
                    "private data of {} bytes exceeds {PRIVATE_MAX}",
                    cfg.private.len()
                ),
            });
        }
        let ops = ops::ops_by_name(cfg.ops)?;
        if ops.name().len() > OPS_NAME_MAX {
            return Err(Error::UnknownOps(cfg.ops.into()));
        }
        let channels = eal
            .args()
            .mem_channels
            .filter(|&c| c > 0)
            .unwrap_or(DEFAULT_CHANNELS);
        let sz = calc_obj_size(cfg.elt_size, cfg.flags, channels, 1).ok_or_else(|| {
            Error::EltTooLarge {
                name: name.into(),
                elt_size: cfg.elt_size as usize,
            }
        })?;
        let total = u64::from(cfg.n) * u64::from(sz.total_size);
        if total > isize::MAX as u64 / 2 {
            return Err(Error::TooLarge {
                name: name.into(),
                n: cfg.n,
                total_size: sz.total_size,
            });
        }
        let hname = header_mz_name(name);
        if eal.memzones().lookup(&hname).is_some() {
            return Err(Error::Exists(name.into()));
        }

        // 1. Header (plus caches).
        let hdr_len = core::mem::size_of::<PoolHeader>();
        let caches_off = if cfg.cache_size > 0 { hdr_len } else { 0 };
        let mz_len = hdr_len
            + if cfg.cache_size > 0 {
                MAX_LCORE * core::mem::size_of::<CacheShared>()
            } else {
                0
            };
        let hmz = mz_reserve(eal, &hname, mz_len, cfg.socket, 128).map_err(|e| match e {
            eal::Error::Exists(_) => Error::Exists(name.into()),
            e => Error::Memory {
                op: "reserve",
                name: name.into(),
                source: e,
            },
        })?;
        let hdr = hmz.as_ptr::<PoolHeader>();
        let addr = hmz.addr();
        let serial = new_serial();
        // SAFETY: fresh memzone of at least size_of::<PoolHeader>() bytes, 128-aligned,
        // not published (magic still 0), so no one else reads it.
        unsafe {
            core::ptr::write_bytes(hdr.cast::<u8>(), 0, mz_len);
            let h = &mut *hdr;
            h.version = LAYOUT_VERSION;
            h.layout = u32::from(DEBUG_LAYOUT);
            h.serial = serial;
            h.name = name_bytes(name);
            h.ops_name = name_bytes(ops.name());
            h.flags = cfg.flags.bits();
            h.size = cfg.n;
            h.elt_size = sz.elt_size;
            h.header_size = sz.header_size;
            h.trailer_size = sz.trailer_size;
            h.total_size = sz.total_size;
            h.cache_size = cfg.cache_size;
            h.flush_threshold = flush_threshold(cfg.cache_size);
            h.socket = cfg.socket.map_or(-1, |s| s as i32);
            h.private[..cfg.private.len()].copy_from_slice(cfg.private);
            h.private_len = cfg.private.len() as u32;
            h.channels = channels;
            h.header_len = hdr_len as u32;
            h.caches_off = caches_off as u32;
            if cfg.cache_size > 0 {
                let caches = hdr.cast::<u8>().add(caches_off).cast::<CacheShared>();
                for l in 0..MAX_LCORE {
                    CacheShared::init(caches.add(l), cfg.cache_size, VirtAddr(0));
                }
            }
        }
        let cleanup_hdr = || {
            let _ = eal.memzones().free(&hmz);
        };

        // 2. Backend.
        let ocfg = OpsConfig {
            pool_name: name,
            n: cfg.n,
            socket: cfg.socket,
            flags: cfg.flags,
        };
        let (pool_data, pool_data_len) = match ops.alloc(eal, &ocfg) {
            Ok(x) => x,
            Err(e) => {
                cleanup_hdr();
                return Err(e);
            }
        };
        // SAFETY: unpublished header, exclusively ours.
        unsafe {
            (*hdr).pool_data = pool_data;
            (*hdr).pool_data_len = pool_data_len;
        }
        // SAFETY: state just made by this backend's alloc; freed only by Mempool::free.
        let backend = match unsafe { Backend::attach(ops, eal, name, pool_data, pool_data_len) } {
            Ok(b) => b,
            Err(e) => {
                // SAFETY: nobody else knows the state.
                let _ = unsafe { ops.free(eal, name, pool_data) };
                cleanup_hdr();
                return Err(e);
            }
        };

        // 3. Object memory and objects.
        let populated = populate(eal, name, cfg, &sz, hdr, addr, &backend, &mut init);
        if let Err(e) = populated {
            // SAFETY: unpublished header; chunk descriptors written by populate.
            let nb = unsafe { (*hdr).nb_chunks } as usize;
            for k in 0..nb {
                let _ = mz_free(eal, &chunk_mz_name(name, k));
            }
            drop(backend);
            // SAFETY: nobody else knows the state.
            let _ = unsafe { ops.free(eal, name, pool_data) };
            cleanup_hdr();
            return Err(e);
        }

        let pool = Box::leak(Box::new(Pool {
            // SAFETY: memzone addresses are non-null.
            hdr: unsafe { NonNull::new_unchecked(hdr) },
            caches: if caches_off > 0 {
                // SAFETY: inside the header memzone (sized for the caches above).
                unsafe { hdr.cast::<u8>().add(caches_off).cast::<CacheShared>() }
            } else {
                core::ptr::null()
            },
            eal: UnsafeCell::new(Some(eal.clone())),
            attached: AtomicBool::new(true),
            attach_lock: Mutex::new(()),
            backend,
            name: name.into(),
            addr,
            serial,
            size: cfg.n,
            elt_size: sz.elt_size,
            header_size: sz.header_size,
            total_size: sz.total_size,
            stats_on: cfg.flags.contains(PoolFlags::STATS),
            handles: AtomicUsize::new(1),
        }));
        // P1 (release): publishes every header, cache, chunk and object write above;
        // pairs with P2 in `lookup`.
        // SAFETY: header memzone is live.
        unsafe { (*hdr).magic.store(MAGIC, Ordering::Release) };
        if let Err(e) = reg_insert(pool) {
            // Leave the pool created but unusable from this process? No: undo it.
            let m = Mempool { pool };
            let _ = m.free_inner();
            return Err(e);
        }
        Ok(Mempool { pool })
    }

    /// Find a pool by name (created by this or another process of the EAL group).
    pub fn lookup(eal: &Eal, name: &str) -> Result<Mempool> {
        // SAFETY: `false` = refuse single-thread backends, so there is no contract.
        unsafe { Self::lookup_inner(eal, name, false) }
    }

    /// As [`Mempool::lookup`], also for pools on single-thread backends.
    ///
    /// # Safety
    /// As [`Mempool::create_unchecked`].
    pub unsafe fn lookup_unchecked(eal: &Eal, name: &str) -> Result<Mempool> {
        // SAFETY: forwarded.
        unsafe { Self::lookup_inner(eal, name, true) }
    }

    unsafe fn lookup_inner(eal: &Eal, name: &str, allow_single: bool) -> Result<Mempool> {
        check_name(name)?;
        let mz = eal
            .memzones()
            .lookup(&header_mz_name(name))
            .ok_or_else(|| Error::NotFound(name.into()))?;
        let bad = |why: String| Error::Incompatible {
            name: name.into(),
            why,
        };
        if (mz.len() as usize) < core::mem::size_of::<PoolHeader>() || mz.addr().0 % 128 != 0 {
            return Err(bad(format!(
                "memzone of {} bytes cannot hold a pool header",
                mz.len()
            )));
        }
        let hdr = mz.as_ptr::<PoolHeader>();
        // SAFETY: the memzone is mapped, aligned and large enough (checked).
        let h = unsafe { &*hdr };
        // P2 (acquire): pairs with P1 in create: the rest of the header is initialised.
        let magic = h.magic.load(Ordering::Acquire);
        if magic != MAGIC {
            return Err(bad(format!(
                "bad magic {magic:#x} (not a mempool, or still being created)"
            )));
        }
        if h.version != LAYOUT_VERSION {
            return Err(bad(format!(
                "layout version {}, expected {LAYOUT_VERSION}",
                h.version
            )));
        }
        if h.layout != u32::from(DEBUG_LAYOUT)
            || h.header_len as usize != core::mem::size_of::<PoolHeader>()
        {
            return Err(bad(
                "created by a build with another object layout (debug vs release)".into(),
            ));
        }
        let ops_name = name_str(&h.ops_name);
        let ops = ops::ops_by_name(&ops_name)?;
        if !ops.thread_safe() && !allow_single {
            return Err(Error::Backend {
                op: "attach",
                ops: ops_name,
                name: name.into(),
                why: "backend is single-thread; use the unsafe Mempool::lookup_unchecked".into(),
            });
        }
        if let Some(p) = reg_find(mz.addr()) {
            if p.serial == h.serial {
                // Same pool (serials are unique), so the same addresses: the view (header,
                // caches, backend handle) is valid again once this EAL maps the memory,
                // which it does (we just read the header through it).
                let _g = p.attach_lock.lock().unwrap_or_else(|e| e.into_inner());
                // Relaxed: under attach_lock, which orders it against detach.
                p.handles.fetch_add(1, Ordering::Relaxed);
                if !p.attached.load(Ordering::Relaxed) {
                    // SAFETY: under attach_lock with the pool detached: no handle or
                    // object existed, so nobody reads `eal`.
                    unsafe { *p.eal.get() = Some(eal.clone()) };
                    // A1 (release): pairs with A2 in `from_addr`.
                    p.attached.store(true, Ordering::Release);
                }
                return Ok(Mempool { pool: p });
            }
        }
        // SAFETY: the header records the state this backend made for this pool; the pool
        // lives until Mempool::free, which refuses while handles exist in this process
        // (other processes: crate contract).
        let backend = unsafe { Backend::attach(ops, eal, name, h.pool_data, h.pool_data_len) }?;
        let pool = Box::leak(Box::new(Pool {
            // SAFETY: memzone addresses are non-null.
            hdr: unsafe { NonNull::new_unchecked(hdr) },
            caches: if h.caches_off > 0 {
                // SAFETY: inside the header memzone.
                unsafe {
                    hdr.cast::<u8>()
                        .add(h.caches_off as usize)
                        .cast::<CacheShared>()
                }
            } else {
                core::ptr::null()
            },
            eal: UnsafeCell::new(Some(eal.clone())),
            attached: AtomicBool::new(true),
            attach_lock: Mutex::new(()),
            backend,
            name: name.into(),
            addr: mz.addr(),
            serial: h.serial,
            size: h.size,
            elt_size: h.elt_size,
            header_size: h.header_size,
            total_size: h.total_size,
            stats_on: PoolFlags::from_bits_retain(h.flags).contains(PoolFlags::STATS),
            handles: AtomicUsize::new(1),
        }));
        reg_insert(pool)?;
        Ok(Mempool { pool })
    }

    /// Free the pool and its memory. Refused (the pool stays intact) while objects are
    /// handed out (counting objects held in user caches), or while other handles to it
    /// exist in this process. Other processes must have stopped using it (crate contract).
    pub fn free(self) -> Result<()> {
        let pool = self.pool;
        let g = pool.attach_lock.lock().unwrap_or_else(|e| e.into_inner());
        // H2 (acquire): pairs with H1 in other handles' Drop. Under attach_lock, so no
        // lookup in this process adds a handle until we are done.
        let h = self.pool.handles.load(Ordering::Acquire);
        if h != 1 {
            return Err(Error::InUse {
                name: self.name.clone(),
                why: format!("{} other handles exist in this process", h - 1),
            });
        }
        let in_use = self.in_use_count();
        if in_use != 0 {
            return Err(Error::InUse {
                name: self.name.clone(),
                why: format!("{in_use} objects are still in use"),
            });
        }
        let r = self.free_inner();
        drop(g);
        r
    }

    /// Tear the pool down. The caller holds `attach_lock` or is the only one who can see
    /// the pool (failed create); `self` is the only handle in this process.
    fn free_inner(self) -> Result<()> {
        let p = self.pool;
        let h = p.hdr();
        let eal = p.eal().clone();
        reg_remove(p);
        // Unpublish first so concurrent lookups fail cleanly.
        // Relaxed: nothing is published by a zero magic.
        h.magic.store(0, Ordering::Relaxed);
        let mut first_err = None;
        for k in 0..h.nb_chunks as usize {
            if let Err(e) = mz_free(&eal, &chunk_mz_name(&p.name, k)) {
                first_err.get_or_insert(Error::Memory {
                    op: "free",
                    name: p.name.clone(),
                    source: e,
                });
            }
        }
        match ops::ops_by_name(&name_str(&h.ops_name)) {
            Ok(ops) => {
                // SAFETY: the pool is unpublished and no object is out; nobody uses the state.
                if let Err(e) = unsafe { ops.free(&eal, &p.name, h.pool_data) } {
                    first_err.get_or_insert(e);
                }
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
        if let Err(e) = mz_free(&eal, &header_mz_name(&p.name)) {
            first_err.get_or_insert(Error::Memory {
                op: "free",
                name: p.name.clone(),
                source: e,
            });
        }
        // Detach: the leaked `Pool` stays allocated (a few hundred bytes) so stale raw
        // lookups can never dangle in this process, but it no longer owns an EAL handle.
        // Relaxed: `from_addr` callers hold no object or handle of a freed pool.
        p.attached.store(false, Ordering::Relaxed);
        // SAFETY: `self` is the only handle and no object is out (checked by `free`, or a
        // failed create that handed out nothing), so nobody reads `eal`.
        let own = unsafe { (*p.eal.get()).take() };
        // Retire our handle without its Drop (which would take `attach_lock`, possibly
        // held by our caller `free`). Relaxed: the pool is gone; nothing to order.
        core::mem::forget(self);
        p.handles.fetch_sub(1, Ordering::Relaxed);
        drop(own);
        drop(eal);
        first_err.map_or(Ok(()), Err)
    }

    /// A user-owned cache of `size` objects (1..=512) bound to this pool, for threads that
    /// are not EAL lcores (or to bypass the lcore cache). See [`MempoolCache`].
    pub fn cache_create(&self, size: u32) -> Result<MempoolCache> {
        if size == 0 || size > CACHE_MAX_SIZE {
            return Err(Error::BadCacheSize {
                size,
                max: CACHE_MAX_SIZE,
            });
        }
        Ok(MempoolCache {
            cache: CacheShared::new_boxed(size, self.addr),
            pool: self.clone(),
        })
    }
}

/// Lay out the object memory in chunks, write every object header, run `init`, and
/// enqueue all objects into the backend.
#[allow(clippy::too_many_arguments)]
fn populate(
    eal: &Eal,
    name: &str,
    cfg: &PoolConfig<'_>,
    sz: &ObjSize,
    hdr: *mut PoolHeader,
    pool_addr: VirtAddr,
    backend: &Backend,
    init: &mut impl FnMut(u32, VirtAddr),
) -> Result<()> {
    let total = sz.total_size as usize;
    let mut remaining = cfg.n as usize;
    let mut first = 0u32;
    let mut want = remaining;
    let mut k = 0usize;
    let mut batch: Vec<VirtAddr> = Vec::with_capacity(256);
    while remaining > 0 {
        if k == MAX_CHUNKS {
            return Err(Error::TooFragmented {
                name: name.into(),
                max: MAX_CHUNKS,
            });
        }
        // Smallest chunk that can still finish within MAX_CHUNKS.
        let min_objs = remaining.div_ceil(MAX_CHUNKS - k);
        let want_n = want.min(remaining);
        // In IOVA = PA mode with hugepages, a chunk must be IOVA-contiguous: objects are
        // laid out back to back, and one straddling two physically distant pages would give
        // a device a buffer that is not contiguous at its IOVA. If no contiguous run is
        // that large, the reservation fails and the chunk is halved below.
        let flags =
            if eal.memory().iova_mode() == eal::args::IovaMode::Pa && !eal.memory().no_huge() {
                eal::MemzoneFlags::IOVA_CONTIG
            } else {
                eal::MemzoneFlags::empty()
            };
        let mz = match eal.memzones().reserve_aligned(
            &chunk_mz_name(name, k),
            want_n * total,
            cfg.socket,
            flags,
            layout::CACHE_LINE,
        ) {
            Ok(mz) => mz,
            Err(eal::Error::OutOfMemory { .. } | eal::Error::NotEnoughMemory { .. })
                if want_n / 2 >= min_objs.max(1) =>
            {
                want = want_n / 2;
                continue;
            }
            Err(e) => {
                return Err(Error::Memory {
                    op: "reserve",
                    name: name.into(),
                    source: e,
                })
            }
        };
        let base = mz.addr();
        let contig_iova = if mz.is_iova_contig() && mz.iova().is_valid() {
            Some(mz.iova())
        } else {
            None
        };
        // SAFETY: unpublished header, exclusively ours; k < MAX_CHUNKS.
        unsafe {
            (*hdr).chunks[k] = ChunkDesc {
                addr: base,
                iova: contig_iova.unwrap_or(Iova::BAD),
                len: (want_n * total) as u64,
                first,
                nb_objs: want_n as u32,
            };
            (*hdr).nb_chunks = k as u32 + 1;
        }
        // SAFETY: fresh memzone of want_n * total bytes.
        unsafe { core::ptr::write_bytes(mz.as_ptr::<u8>(), 0, want_n * total) };
        for i in 0..want_n {
            let off = (i * total) as u64 + u64::from(sz.header_size);
            let obj = base.add(off);
            let iova = match contig_iova {
                Some(io) => io.add(off),
                None => eal.memory().virt2iova(obj).unwrap_or(Iova::BAD),
            };
            // SAFETY: the slot lies inside the fresh chunk, laid out by calc_obj_size.
            unsafe { layout::init_obj(obj, pool_addr, iova, sz.elt_size) };
            init(first + i as u32, obj);
            batch.push(obj);
            if batch.len() == batch.capacity() {
                if !backend.enqueue(&batch) {
                    return Err(Error::BackendFull {
                        name: name.into(),
                        n: batch.len(),
                    });
                }
                batch.clear();
            }
        }
        first += want_n as u32;
        remaining -= want_n;
        k += 1;
    }
    if !backend.enqueue(&batch) {
        return Err(Error::BackendFull {
            name: name.into(),
            n: batch.len(),
        });
    }
    Ok(())
}

impl Pool {
    #[inline(always)]
    fn hdr(&self) -> &PoolHeader {
        // SAFETY: the header memzone stays mapped while the pool exists; fields other
        // than magic/stats are read-only after publication; those are atomics.
        unsafe { self.hdr.as_ref() }
    }

    /// The pool that owns objects whose header names pool address `addr`, if this process
    /// holds a handle to it (created or looked up here).
    ///
    /// # Safety
    /// The pool must not be freed while the returned reference is used: hold an object
    /// of the pool (a pool with objects out cannot be freed) or a handle.
    pub unsafe fn from_addr<'a>(addr: VirtAddr) -> Option<&'a Pool> {
        let p = reg_find(addr)?;
        // A2 (acquire): pairs with A1 in lookup (a re-attach); create publishes through
        // the registry (R3/R4). A detached pool's memory may be unmapped: do not read it.
        if !p.attached.load(Ordering::Acquire) {
            return None;
        }
        // Serial is immutable after publication, ordered before us as above.
        (p.hdr().serial == p.serial).then_some(p)
    }

    /// True while this process's view of the pool holds an EAL handle (the pool's memory is
    /// mapped here). False once the pool is freed, or once the process's last handle was
    /// dropped with no object out, until the next lookup.
    pub fn attached(&self) -> bool {
        // Relaxed: a snapshot.
        self.attached.load(Ordering::Relaxed)
    }

    /// Called when the process's last handle is dropped: release the EAL handle if no
    /// object of the pool is out. With objects out the pool stays attached (their memory
    /// must stay mapped) and the EAL cannot tear down until a later lookup and drop.
    fn detach_if_idle(&self) {
        let g = self.attach_lock.lock().unwrap_or_else(|e| e.into_inner());
        // H2 (acquire): pairs with H1, so other handles' last uses happen before.
        if self.handles.load(Ordering::Acquire) != 0 || !self.attached.load(Ordering::Relaxed) {
            return;
        }
        // Still attached, so the header is mapped.
        let out = self.in_use_count();
        if out != 0 {
            eal::log_notice!(
                "mempool {}: last handle in this process dropped with {out} object(s) out; \
                 the pool stays attached and keeps the EAL alive (put objects back before \
                 dropping the last handle)",
                self.name
            );
            return;
        }
        // Relaxed: nobody in this process may use the pool now (no handle, no object).
        self.attached.store(false, Ordering::Relaxed);
        // SAFETY: under attach_lock with no handle and no object in this process, so no
        // reader of `eal` exists (`lookup` writes it only under the same lock).
        let own = unsafe { (*self.eal.get()).take() };
        drop(g);
        // Possibly the EAL's last handle: its teardown runs here, outside our lock.
        drop(own);
    }

    /// The pool address recorded in an object's header.
    ///
    /// # Safety
    /// `obj` is an object of a live pool.
    pub unsafe fn obj_pool_addr(obj: VirtAddr) -> VirtAddr {
        // SAFETY: forwarded: the header precedes the object.
        unsafe { (*layout::obj_header(obj)).pool }
    }

    /// The IOVA recorded in an object's header (`Iova::BAD` if the EAL had none).
    ///
    /// # Safety
    /// `obj` is an object of a live pool.
    pub unsafe fn obj_iova(obj: VirtAddr) -> Iova {
        // SAFETY: forwarded: the header precedes the object.
        unsafe { (*layout::obj_header(obj)).iova }
    }

    /// Name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Address of the shared header (what object headers record as their pool).
    pub fn addr(&self) -> VirtAddr {
        self.addr
    }

    /// Number of objects.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Bytes per object (as asked for).
    pub fn elt_size(&self) -> u32 {
        self.elt_size
    }

    /// Slot sizes (header, element, trailer, total stride).
    pub fn obj_size(&self) -> ObjSize {
        let h = self.hdr();
        ObjSize {
            header_size: h.header_size,
            elt_size: h.elt_size,
            trailer_size: h.trailer_size,
            total_size: h.total_size,
        }
    }

    /// Per-lcore cache size (0: no cache).
    pub fn cache_size(&self) -> u32 {
        self.hdr().cache_size
    }

    /// Flags given at creation.
    pub fn flags(&self) -> PoolFlags {
        PoolFlags::from_bits_retain(self.hdr().flags)
    }

    /// Backend name.
    pub fn ops_name(&self) -> String {
        name_str(&self.hdr().ops_name)
    }

    /// The private data given at creation.
    pub fn private(&self) -> &[u8] {
        let h = self.hdr();
        &h.private[..(h.private_len as usize).min(PRIVATE_MAX)]
    }

    /// The EAL the pool lives in.
    ///
    /// # Panics
    /// On a detached pool, which only a broken [`Pool::from_addr`] contract can reach
    /// (a handle or an object of the pool keeps it attached).
    pub fn eal(&self) -> &Eal {
        // SAFETY: `eal` is only written under `attach_lock` while no handle or object
        // exists in this process (field docs); our caller holds one of them.
        match unsafe { &*self.eal.get() } {
            Some(e) => e,
            None => panic!("mempool {}: used after it was detached or freed", self.name),
        }
    }

    /// The calling lcore's cache, if the pool has caches and the thread is an EAL lcore.
    #[inline(always)]
    fn lcore_slot(&self) -> (Option<&CacheShared>, StatsSlot<'_>) {
        match eal::lcore::lcore_id() {
            Some(l) if (l as usize) < MAX_LCORE => {
                let cache = if self.caches.is_null() {
                    None
                } else {
                    // SAFETY: the cache array has MAX_LCORE entries; l < MAX_LCORE.
                    Some(unsafe { &*self.caches.add(l as usize) })
                };
                (
                    cache,
                    StatsSlot::new(&self.hdr().stats[l as usize], self.stats_on, false),
                )
            }
            _ => (None, self.shared_slot()),
        }
    }

    /// The statistics slot of threads that are not EAL lcores (and of user caches).
    #[inline(always)]
    fn shared_slot(&self) -> StatsSlot<'_> {
        StatsSlot::new(&self.hdr().stats[MAX_LCORE], self.stats_on, true)
    }

    /// Get `objs.len()` objects, all or nothing, through the calling lcore's cache (or
    /// straight from the backend on a non-EAL thread or a pool without cache).
    #[inline]
    pub fn get_bulk(&self, objs: &mut [VirtAddr]) -> Result<()> {
        let (cache, st) = self.lcore_slot();
        self.get_impl(objs, cache, st)
    }

    /// Get one object.
    #[inline]
    pub fn get(&self) -> Result<VirtAddr> {
        let mut o = [VirtAddr(0)];
        self.get_bulk(&mut o)?;
        Ok(o[0])
    }

    /// Get through a user-owned cache (`None`: straight from the backend).
    #[inline]
    pub fn get_bulk_with(
        &self,
        objs: &mut [VirtAddr],
        cache: Option<&mut MempoolCache>,
    ) -> Result<()> {
        match cache {
            Some(c) => self.user_cache(c)?.get_bulk(objs),
            None => self.get_impl(objs, None, self.shared_slot()),
        }
    }

    /// Put objects back through the calling lcore's cache (or straight to the backend).
    ///
    /// Debug builds check every object first (it belongs to this pool, was handed out,
    /// its cookies are intact) and put none if one fails.
    ///
    /// # Safety
    /// Every object was handed out by a get on this pool and not put back since, and no
    /// reference into it is used afterwards.
    #[inline]
    pub unsafe fn put_bulk(&self, objs: &[VirtAddr]) -> Result<()> {
        let (cache, st) = self.lcore_slot();
        // SAFETY: forwarded.
        unsafe { self.put_impl(objs, cache, st) }
    }

    /// Put one object.
    ///
    /// # Safety
    /// As [`Pool::put_bulk`].
    #[inline]
    pub unsafe fn put(&self, obj: VirtAddr) -> Result<()> {
        // SAFETY: forwarded.
        unsafe { self.put_bulk(&[obj]) }
    }

    /// Put through a user-owned cache (`None`: straight to the backend).
    ///
    /// # Safety
    /// As [`Pool::put_bulk`].
    #[inline]
    pub unsafe fn put_bulk_with(
        &self,
        objs: &[VirtAddr],
        cache: Option<&mut MempoolCache>,
    ) -> Result<()> {
        match cache {
            // SAFETY: forwarded; `user_cache` borrows the cache `&mut`, so we are its
            // only user.
            Some(c) => unsafe { self.user_cache(c)?.put_bulk(objs) },
            // SAFETY: forwarded.
            None => unsafe { self.put_impl(objs, None, self.shared_slot()) },
        }
    }

    /// The calling thread's cache for this pool, resolved once: the lcore's cache on an
    /// EAL lcore of a pool with caches, otherwise none (the handle then goes straight to
    /// the backend). This is DPDK's `rte_mempool_default_cache` followed by
    /// `rte_mempool_generic_get/put` with that cache: a loop that gets and puts many
    /// times saves the thread-local lookup and the slot computation of every
    /// [`get_bulk`](Self::get_bulk) / [`put_bulk`](Self::put_bulk) call.
    ///
    /// The handle is neither `Send` nor `Sync`: it belongs to the thread (lcore) that
    /// made it. Several handles on one thread, and plain get/put calls between them, are
    /// fine (each call reads the cache's state afresh).
    #[inline]
    pub fn lcore_cache(&self) -> CacheRef<'_> {
        let (cache, st) = self.lcore_slot();
        CacheRef {
            pool: self,
            cache,
            st,
            _thread: core::marker::PhantomData,
        }
    }

    /// A handle that gets and puts through the user-owned `cache` (checked once, here,
    /// to belong to this pool: [`Error::ForeignCache`] otherwise). See [`Pool::lcore_cache`].
    pub fn user_cache<'a>(&'a self, cache: &'a mut MempoolCache) -> Result<CacheRef<'a>> {
        if cache.cache.owner != self.addr {
            return Err(Error::ForeignCache {
                name: self.name.clone(),
            });
        }
        Ok(CacheRef {
            pool: self,
            cache: Some(&cache.cache),
            st: self.shared_slot(),
            _thread: core::marker::PhantomData,
        })
    }

    /// The inlined part of a get: a cache hit (see "Hot path" in the crate docs).
    #[inline(always)]
    fn get_impl(
        &self,
        objs: &mut [VirtAddr],
        cache: Option<&CacheShared>,
        st: StatsSlot<'_>,
    ) -> Result<()> {
        let n = objs.len();
        if let Some(c) = cache {
            // SAFETY: a per-lcore cache is used only by the thread holding that lcore id
            // (crate contract); a user cache is borrowed `&mut` by the caller.
            if n != 0 && unsafe { c.try_get_hit(objs) } {
                // cache_hits is derived from these two (see `stats`).
                st.op(
                    &st.slot.get_success_bulk,
                    &st.slot.get_success_objs,
                    n as u64,
                );
                #[cfg(debug_assertions)]
                self.debug_mark_used(objs)?;
                return Ok(());
            }
            return self.get_miss(objs, c, st);
        }
        // No cache: straight to the backend, inlined as before.
        self.get_backend(objs, None, st)
    }

    /// A get through a cache that missed (or asked for nothing): out of line.
    #[cold]
    #[inline(never)]
    fn get_miss(
        &self,
        objs: &mut [VirtAddr],
        cache: &CacheShared,
        st: StatsSlot<'_>,
    ) -> Result<()> {
        self.get_backend(objs, Some(cache), st)
    }

    /// Every get that is not a cache hit: empty, miss, no cache, failure.
    #[inline(always)]
    fn get_backend(
        &self,
        objs: &mut [VirtAddr],
        cache: Option<&CacheShared>,
        st: StatsSlot<'_>,
    ) -> Result<()> {
        let n = objs.len();
        if n == 0 {
            return Ok(());
        }
        let s = st.slot;
        let ok = match cache {
            // SAFETY: as in `get_impl`.
            Some(c) => match unsafe { c.get(&self.backend, objs) } {
                // Possible only if the caller skipped `try_get_hit`; counted as in `get_impl`.
                GetOutcome::Hit => true,
                GetOutcome::Refill { refill: r } | GetOutcome::Direct { direct: r } => {
                    st.add(&s.cache_misses, 1);
                    st.op(
                        &s.backend_dequeue_bulk,
                        &s.backend_dequeue_objs,
                        u64::from(r),
                    );
                    true
                }
                GetOutcome::Fail => false,
            },
            None => {
                let ok = self.backend.dequeue(objs);
                if ok {
                    st.op(&s.backend_dequeue_bulk, &s.backend_dequeue_objs, n as u64);
                }
                ok
            }
        };
        if !ok {
            st.op(&s.get_fail_bulk, &s.get_fail_objs, n as u64);
            return Err(Error::Empty { n });
        }
        st.op(&s.get_success_bulk, &s.get_success_objs, n as u64);
        #[cfg(debug_assertions)]
        self.debug_mark_used(objs)?;
        Ok(())
    }

    /// The inlined part of a put: into the cache without a flush.
    ///
    /// # Safety
    /// As [`Pool::put_bulk`]; `cache` as in `get_impl`.
    #[inline(always)]
    unsafe fn put_impl(
        &self,
        objs: &[VirtAddr],
        cache: Option<&CacheShared>,
        st: StatsSlot<'_>,
    ) -> Result<()> {
        let n = objs.len();
        if n == 0 {
            return Ok(());
        }
        #[cfg(debug_assertions)]
        self.debug_mark_free(objs)?;
        if let Some(c) = cache {
            // SAFETY: cache ownership as in get_impl.
            if unsafe { c.try_put_cached(objs) } {
                st.op(&st.slot.put_bulk, &st.slot.put_objs, n as u64);
                return Ok(());
            }
            // SAFETY: forwarded.
            return unsafe { self.put_flush(objs, c, st) };
        }
        // No cache: straight to the backend, inlined as before.
        // SAFETY: forwarded.
        unsafe { self.put_backend(objs, None, st) }
    }

    /// A put through a cache that must flush first or be bypassed: out of line.
    ///
    /// # Safety
    /// As `put_impl`.
    #[cold]
    #[inline(never)]
    unsafe fn put_flush(
        &self,
        objs: &[VirtAddr],
        cache: &CacheShared,
        st: StatsSlot<'_>,
    ) -> Result<()> {
        // SAFETY: forwarded.
        unsafe { self.put_backend(objs, Some(cache), st) }
    }

    /// Every put that does not simply go into the cache: flush, bypass, no cache, failure.
    /// The objects have been checked (debug builds) by `put_impl`.
    ///
    /// # Safety
    /// As `put_impl`.
    #[inline(always)]
    unsafe fn put_backend(
        &self,
        objs: &[VirtAddr],
        cache: Option<&CacheShared>,
        st: StatsSlot<'_>,
    ) -> Result<()> {
        let n = objs.len();
        let s = st.slot;
        let outcome = match cache {
            // SAFETY: cache ownership as in get_impl.
            Some(c) => unsafe { c.put(&self.backend, objs) },
            None => {
                if self.backend.enqueue(objs) {
                    PutOutcome::Direct
                } else {
                    PutOutcome::Fail
                }
            }
        };
        match outcome {
            PutOutcome::Cached => {}
            PutOutcome::Flushed { flushed } => {
                st.op(
                    &s.backend_enqueue_bulk,
                    &s.backend_enqueue_objs,
                    u64::from(flushed),
                );
            }
            PutOutcome::Direct => {
                st.op(&s.backend_enqueue_bulk, &s.backend_enqueue_objs, n as u64);
            }
            PutOutcome::Fail => {
                #[cfg(debug_assertions)]
                for &o in objs {
                    // SAFETY: just checked and flipped by debug_mark_free; flip back.
                    let _ = unsafe {
                        layout::check_and_flip(
                            o,
                            self.addr,
                            self.elt_size,
                            layout::COOKIE_FREE,
                            layout::COOKIE_USED,
                        )
                    };
                }
                return Err(Error::BackendFull {
                    name: self.name.clone(),
                    n,
                });
            }
        }
        st.op(&s.put_bulk, &s.put_objs, n as u64);
        Ok(())
    }

    /// True if `obj` is the address of one of this pool's objects.
    pub fn contains(&self, obj: VirtAddr) -> bool {
        let h = self.hdr();
        h.chunks[..(h.nb_chunks as usize).min(MAX_CHUNKS)]
            .iter()
            .any(|c| {
                obj.0 >= c.addr.0 + u64::from(self.header_size)
                    && obj.0 < c.addr.0 + c.len
                    && (obj.0 - c.addr.0 - u64::from(self.header_size))
                        .is_multiple_of(u64::from(self.total_size))
            })
    }

    #[cfg(debug_assertions)]
    fn debug_mark_used(&self, objs: &[VirtAddr]) -> Result<()> {
        for (i, &o) in objs.iter().enumerate() {
            // SAFETY: the object came from our backend or cache, so it is one of our slots.
            let r = unsafe {
                layout::check_and_flip(
                    o,
                    self.addr,
                    self.elt_size,
                    layout::COOKIE_FREE,
                    layout::COOKIE_USED,
                )
            };
            if let Err(f) = r {
                // Undo and give back everything but the bad object (which stays out).
                for &p in &objs[..i] {
                    // SAFETY: flipped just above.
                    let _ = unsafe {
                        layout::check_and_flip(
                            p,
                            self.addr,
                            self.elt_size,
                            layout::COOKIE_USED,
                            layout::COOKIE_FREE,
                        )
                    };
                }
                let good: Vec<VirtAddr> = objs.iter().copied().filter(|&p| p != o).collect();
                let _ = self.backend.enqueue(&good);
                return Err(self.fault_error("get", o, f));
            }
        }
        Ok(())
    }

    #[cfg(debug_assertions)]
    fn debug_mark_free(&self, objs: &[VirtAddr]) -> Result<()> {
        for (i, &o) in objs.iter().enumerate() {
            let r = if self.contains(o) {
                // SAFETY: `contains` proved it is one of our slots.
                unsafe {
                    layout::check_and_flip(
                        o,
                        self.addr,
                        self.elt_size,
                        layout::COOKIE_USED,
                        layout::COOKIE_FREE,
                    )
                }
            } else {
                Err(layout::CookieFault::Foreign)
            };
            if let Err(f) = r {
                for &p in &objs[..i] {
                    // SAFETY: flipped just above.
                    let _ = unsafe {
                        layout::check_and_flip(
                            p,
                            self.addr,
                            self.elt_size,
                            layout::COOKIE_FREE,
                            layout::COOKIE_USED,
                        )
                    };
                }
                return Err(self.fault_error("put", o, f));
            }
        }
        Ok(())
    }

    #[cfg(debug_assertions)]
    fn fault_error(&self, op: &'static str, addr: VirtAddr, f: layout::CookieFault) -> Error {
        use layout::CookieFault::*;
        let name = self.name.clone();
        match f {
            Foreign => Error::ForeignObject { name, addr },
            DoubleFree => Error::DoubleFree { name, addr },
            NotFree => Error::Corrupted {
                op,
                name,
                addr,
                which: "header (object in use while in the free list)",
                found: layout::COOKIE_USED,
            },
            HeaderSmashed(v) => Error::Corrupted {
                op,
                name,
                addr,
                which: "header",
                found: v,
            },
            TrailerSmashed(v) => Error::Corrupted {
                op,
                name,
                addr,
                which: "trailer",
                found: v,
            },
        }
    }

    /// Objects available: in the backend plus in every lcore cache (a snapshot; objects in
    /// user caches count as in use until flushed).
    pub fn avail_count(&self) -> u32 {
        let mut n = self.backend.count();
        if !self.caches.is_null() {
            for l in 0..MAX_LCORE {
                // SAFETY: l < MAX_LCORE entries; `len` is atomic.
                n += unsafe { &*self.caches.add(l) }.len();
            }
        }
        n.min(self.size)
    }

    /// Objects handed out (a snapshot): `size - avail_count`.
    pub fn in_use_count(&self) -> u32 {
        self.size - self.avail_count()
    }

    /// True if every object is available.
    pub fn is_full(&self) -> bool {
        self.avail_count() == self.size
    }

    /// True if no object is available.
    pub fn is_empty(&self) -> bool {
        self.avail_count() == 0
    }

    /// Objects in lcore `lcore`'s cache (`None` without caches or for a bad id).
    pub fn lcore_cache_len(&self, lcore: u32) -> Option<u32> {
        if self.caches.is_null() || lcore as usize >= MAX_LCORE {
            return None;
        }
        // SAFETY: lcore < MAX_LCORE entries.
        Some(unsafe { &*self.caches.add(lcore as usize) }.len())
    }

    /// Flush the calling lcore's cache to the backend (no-op on a non-EAL thread).
    pub fn flush_lcore_cache(&self) -> Result<()> {
        let (cache, _) = self.lcore_slot();
        if let Some(c) = cache {
            // SAFETY: the calling thread holds this lcore id (crate contract).
            if !unsafe { c.drain(&self.backend) } {
                return Err(Error::BackendFull {
                    name: self.name.clone(),
                    n: c.len() as usize,
                });
            }
        }
        Ok(())
    }

    /// Statistics summed over all lcores (and non-EAL threads).
    pub fn stats(&self) -> MempoolStats {
        let mut t = MempoolStats::default();
        for s in &self.hdr().stats {
            t += s.snapshot();
        }
        t
    }

    /// Statistics of lcore `lcore`; `MAX_LCORE` gives the non-EAL-thread slot.
    pub fn lcore_stats(&self, lcore: u32) -> Option<MempoolStats> {
        self.hdr()
            .stats
            .get(lcore as usize)
            .map(StatsShared::snapshot)
    }

    /// Call `f(index, obj)` for every object (in use or not), in address order within each
    /// chunk; returns the number of objects.
    pub fn obj_iter(&self, mut f: impl FnMut(u32, VirtAddr)) -> u32 {
        let h = self.hdr();
        let mut n = 0;
        for c in &h.chunks[..(h.nb_chunks as usize).min(MAX_CHUNKS)] {
            for i in 0..c.nb_objs {
                let obj = c
                    .addr
                    .add(u64::from(i) * u64::from(self.total_size) + u64::from(self.header_size));
                f(c.first + i, obj);
                n += 1;
            }
        }
        n
    }

    /// Number of memory chunks holding the objects.
    pub fn nb_chunks(&self) -> u32 {
        self.hdr().nb_chunks
    }

    /// Write a human-readable description to `w`.
    pub fn dump(&self, w: &mut dyn Write) -> Result<()> {
        self.dump_inner(w).map_err(|e| Error::Dump {
            name: self.name.clone(),
            source: e,
        })
    }

    fn dump_inner(&self, w: &mut dyn Write) -> std::io::Result<()> {
        let h = self.hdr();
        writeln!(w, "mempool <{}>@{}", self.name, self.addr)?;
        writeln!(w, "  flags={:#x} ({:?})", h.flags, self.flags())?;
        writeln!(
            w,
            "  ops={} pool_data={} ({} bytes)",
            self.ops_name(),
            h.pool_data,
            h.pool_data_len
        )?;
        writeln!(w, "  socket={}", h.socket)?;
        writeln!(w, "  size={}", h.size)?;
        writeln!(
            w,
            "  header_size={} elt_size={} trailer_size={} total_obj_size={} (channels={})",
            h.header_size, h.elt_size, h.trailer_size, h.total_size, h.channels
        )?;
        writeln!(w, "  debug_cookies={}", h.layout & 1 != 0)?;
        writeln!(w, "  nb_mem_chunks={}", h.nb_chunks)?;
        for c in &h.chunks[..(h.nb_chunks as usize).min(MAX_CHUNKS)] {
            writeln!(
                w,
                "    chunk va={} iova={} len={} objs={}+{}",
                c.addr, c.iova, c.len, c.first, c.nb_objs
            )?;
        }
        writeln!(w, "  private_data_size={}", h.private_len)?;
        writeln!(
            w,
            "  cache_size={} flush_threshold={}",
            h.cache_size, h.flush_threshold
        )?;
        let mut cached = 0;
        if !self.caches.is_null() {
            for l in 0..MAX_LCORE as u32 {
                if let Some(len) = self.lcore_cache_len(l).filter(|&n| n > 0) {
                    writeln!(w, "    cache_count[{l}]={len}")?;
                    cached += len;
                }
            }
        }
        writeln!(w, "    total_cache_count={cached}")?;
        writeln!(w, "  common_pool_count={}", self.backend.count())?;
        writeln!(
            w,
            "  avail_count={} in_use_count={}",
            self.avail_count(),
            self.in_use_count()
        )?;
        if !self.stats_on {
            writeln!(w, "  stats: off (create with PoolFlags::STATS to count)")?;
            return Ok(());
        }
        let s = self.stats();
        writeln!(w, "  stats:")?;
        writeln!(
            w,
            "    get_success_bulk={} get_success_objs={}",
            s.get_success_bulk, s.get_success_objs
        )?;
        writeln!(
            w,
            "    get_fail_bulk={} get_fail_objs={}",
            s.get_fail_bulk, s.get_fail_objs
        )?;
        writeln!(w, "    put_bulk={} put_objs={}", s.put_bulk, s.put_objs)?;
        writeln!(
            w,
            "    cache_hits={} cache_misses={}",
            s.cache_hits, s.cache_misses
        )?;
        writeln!(
            w,
            "    backend_dequeue_bulk={} backend_dequeue_objs={}",
            s.backend_dequeue_bulk, s.backend_dequeue_objs
        )?;
        writeln!(
            w,
            "    backend_enqueue_bulk={} backend_enqueue_objs={}",
            s.backend_enqueue_bulk, s.backend_enqueue_objs
        )?;
        Ok(())
    }
}

/// A pool plus the cache its gets and puts go through, resolved once ([`Pool::lcore_cache`],
/// [`Pool::user_cache`]); the batch-loop form of [`Pool::get_bulk`] / [`Pool::put_bulk`],
/// with the same semantics (all or nothing; statistics; debug-build checks).
pub struct CacheRef<'a> {
    pool: &'a Pool,
    cache: Option<&'a CacheShared>,
    st: StatsSlot<'a>,
    /// Not `Send`/`Sync`: a per-lcore cache may only be used by its lcore's thread.
    _thread: core::marker::PhantomData<*const ()>,
}

impl<'a> CacheRef<'a> {
    /// The pool.
    pub fn pool(&self) -> &'a Pool {
        self.pool
    }

    /// Objects in the cache now (0 without a cache).
    pub fn cache_len(&self) -> u32 {
        self.cache.map_or(0, |c| c.len())
    }

    /// Get `objs.len()` objects, all or nothing.
    #[inline(always)]
    pub fn get_bulk(&self, objs: &mut [VirtAddr]) -> Result<()> {
        // The cache is the calling thread's: a per-lcore cache of this thread's lcore
        // (the handle is not Send), or a user cache borrowed `&mut` for 'a.
        self.pool.get_impl(objs, self.cache, self.st)
    }

    /// Get one object.
    #[inline(always)]
    pub fn get(&self) -> Result<VirtAddr> {
        let mut o = [VirtAddr(0)];
        self.get_bulk(&mut o)?;
        Ok(o[0])
    }

    /// Put objects back.
    ///
    /// # Safety
    /// As [`Pool::put_bulk`].
    #[inline(always)]
    pub unsafe fn put_bulk(&self, objs: &[VirtAddr]) -> Result<()> {
        // SAFETY: forwarded; cache ownership as in `get_bulk`.
        unsafe { self.pool.put_impl(objs, self.cache, self.st) }
    }

    /// Put one object.
    ///
    /// # Safety
    /// As [`Pool::put_bulk`].
    #[inline(always)]
    pub unsafe fn put(&self, obj: VirtAddr) -> Result<()> {
        // SAFETY: forwarded.
        unsafe { self.put_bulk(&[obj]) }
    }
}

impl<'a> CacheRef<'a> {
    /// Decide once whether this handle has a cache, for a loop that gets and puts many
    /// times: each half of [`SplitRef`] compiles to its own path alone. A [`CacheRef`]
    /// tests for the cache on every call, so a loop over it carries both the cache path
    /// and the inlined backend path, and the two compete for registers (measured in
    /// `scripts/compare/mempool_ab`: the cached bulk cases moved by 10-20% with the code
    /// around the loop). Same semantics as the [`CacheRef`] it came from.
    ///
    /// The pool's statistics switch is decided here too: the uncounted halves
    /// ([`SplitRef::Cached`], [`SplitRef::Direct`]) have no counter code at all, where a
    /// [`CacheRef`] tests the switch on every call. Fixing it here took the cached cases
    /// of `mempool_ab.sh` from a geometric mean of 1.38-1.41 of DPDK's rate to 1.63-1.65
    /// (three alternating pairs of runs; DESIGN.md, "Mempool hot path").
    #[inline]
    pub fn split(self) -> SplitRef<'a> {
        let counted = self.st.counted();
        match (self.cache, counted) {
            (Some(cache), false) => SplitRef::Cached(CachedRef {
                pool: self.pool,
                cache,
                st: self.st,
                _thread: core::marker::PhantomData,
            }),
            (Some(cache), true) => SplitRef::CachedCounted(CachedRef {
                pool: self.pool,
                cache,
                st: self.st,
                _thread: core::marker::PhantomData,
            }),
            (None, false) => SplitRef::Direct(DirectRef {
                pool: self.pool,
                st: self.st,
                _thread: core::marker::PhantomData,
            }),
            (None, true) => SplitRef::DirectCounted(DirectRef {
                pool: self.pool,
                st: self.st,
                _thread: core::marker::PhantomData,
            }),
        }
    }
}

/// A [`CacheRef`] split by [`CacheRef::split`]: cache or not, statistics or not.
pub enum SplitRef<'a> {
    /// Gets and puts go through a cache (hits inline, refills and flushes out of line);
    /// the pool counts no statistics.
    Cached(CachedRef<'a, false>),
    /// As `Cached`, on a pool created with [`PoolFlags::STATS`](crate::PoolFlags::STATS).
    CachedCounted(CachedRef<'a, true>),
    /// No cache: every get and put goes straight to the backend; no statistics.
    Direct(DirectRef<'a, false>),
    /// As `Direct`, on a pool with statistics.
    DirectCounted(DirectRef<'a, true>),
}

/// Bulk get and put on a pool through a choice of cache made once: [`CacheRef`] (checked
/// per call), [`CachedRef`] and [`DirectRef`] (fixed by type). For loops generic over the
/// three, as `mempool_perf` has.
pub trait BulkGetPut {
    /// Get `objs.len()` objects, all or nothing.
    fn get_bulk(&self, objs: &mut [VirtAddr]) -> Result<()>;

    /// Put objects back.
    ///
    /// # Safety
    /// As [`Pool::put_bulk`].
    unsafe fn put_bulk(&self, objs: &[VirtAddr]) -> Result<()>;
}

impl BulkGetPut for CacheRef<'_> {
    #[inline(always)]
    fn get_bulk(&self, objs: &mut [VirtAddr]) -> Result<()> {
        CacheRef::get_bulk(self, objs)
    }

    #[inline(always)]
    unsafe fn put_bulk(&self, objs: &[VirtAddr]) -> Result<()> {
        // SAFETY: forwarded.
        unsafe { CacheRef::put_bulk(self, objs) }
    }
}

/// A [`CacheRef`] known to have a cache (from [`CacheRef::split`]); `COUNTED` says
/// whether the pool keeps statistics, fixed by type so the other case compiles away. Not
/// `Send`/`Sync`, as the handle it came from.
pub struct CachedRef<'a, const COUNTED: bool = false> {
    pool: &'a Pool,
    cache: &'a CacheShared,
    st: StatsSlot<'a>,
    _thread: core::marker::PhantomData<*const ()>,
}

impl<const COUNTED: bool> BulkGetPut for CachedRef<'_, COUNTED> {
    #[inline(always)]
    fn get_bulk(&self, objs: &mut [VirtAddr]) -> Result<()> {
        // The cache is the calling thread's, as for the CacheRef this came from.
        self.pool
            .get_impl(objs, Some(self.cache), self.st.fixed(COUNTED))
    }

    #[inline(always)]
    unsafe fn put_bulk(&self, objs: &[VirtAddr]) -> Result<()> {
        // SAFETY: forwarded; cache ownership as in `get_bulk`.
        unsafe {
            self.pool
                .put_impl(objs, Some(self.cache), self.st.fixed(COUNTED))
        }
    }
}

/// A [`CacheRef`] known to have no cache (from [`CacheRef::split`]): gets and puts go to
/// the backend, inlined; `COUNTED` as for [`CachedRef`]. Not `Send`/`Sync`: its
/// statistics slot may be the lcore's.
pub struct DirectRef<'a, const COUNTED: bool = false> {
    pool: &'a Pool,
    st: StatsSlot<'a>,
    _thread: core::marker::PhantomData<*const ()>,
}

impl<const COUNTED: bool> BulkGetPut for DirectRef<'_, COUNTED> {
    #[inline(always)]
    fn get_bulk(&self, objs: &mut [VirtAddr]) -> Result<()> {
        self.pool.get_impl(objs, None, self.st.fixed(COUNTED))
    }

    #[inline(always)]
    unsafe fn put_bulk(&self, objs: &[VirtAddr]) -> Result<()> {
        // SAFETY: forwarded.
        unsafe { self.pool.put_impl(objs, None, self.st.fixed(COUNTED)) }
    }
}

/// A cache owned by the user (DPDK's `rte_mempool_cache_create`), for threads that are not
/// EAL lcores or want their own. Bound to one pool (it holds a handle, so the pool cannot
/// be freed under it); used through `&mut`, so by one thread at a time. Dropping it flushes
/// its objects back to the pool.
pub struct MempoolCache {
    cache: Box<CacheShared>,
    pool: Mempool,
}

impl MempoolCache {
    /// Objects cached now.
    pub fn len(&self) -> u32 {
        self.cache.len()
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Nominal size.
    pub fn size(&self) -> u32 {
        self.cache.size()
    }

    /// Flush threshold (1.5 x size).
    pub fn flush_threshold(&self) -> u32 {
        self.cache.flush_threshold()
    }

    /// The pool this cache belongs to.
    pub fn pool(&self) -> &Mempool {
        &self.pool
    }

    /// Move every cached object back to the pool's backend.
    pub fn flush(&mut self) -> Result<()> {
        // SAFETY: `&mut self`: we are the only user.
        if unsafe { self.cache.drain(&self.pool.backend) } {
            Ok(())
        } else {
            Err(Error::BackendFull {
                name: self.pool.name.clone(),
                n: self.cache.len() as usize,
            })
        }
    }
}

impl Drop for MempoolCache {
    fn drop(&mut self) {
        // A failure means the backend is corrupt (it cannot be full of our own objects);
        // the objects then stay out of the pool, which `in_use_count` shows.
        let _ = self.flush();
    }
}

impl core::fmt::Debug for MempoolCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MempoolCache")
            .field("pool", &self.pool.name)
            .field("size", &self.size())
            .field("len", &self.len())
            .finish()
    }
}
