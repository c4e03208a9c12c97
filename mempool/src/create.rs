//! Creating, looking up and freeing pools: [`PoolConfig`], [`Mempool::create`],
//! [`Mempool::lookup`], [`Mempool::free`]. The object memory itself is laid out by
//! `populate`.

use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use eal::lcore::MAX_LCORE;
use eal::{Eal, VirtAddr};

use crate::cache::{flush_threshold, CacheShared, CACHE_MAX_SIZE};
use crate::header::{
    name_bytes, name_str, new_serial, PoolHeader, LAYOUT_VERSION, MAGIC, PRIVATE_MAX,
};
use crate::layout::{calc_obj_size, DEBUG_LAYOUT};
use crate::memzone::{check_name, chunk_mz_name, header_mz_name, mz_free, mz_reserve};
use crate::ops::{self, Backend, OpsConfig, OPS_NAME_MAX};
use crate::pool::REGISTRY;
use crate::populate::populate;
use crate::{Error, Mempool, Pool, PoolFlags, Result};

/// Memory channels assumed for spreading when the EAL was not told (`-n`), as DPDK does.
pub const DEFAULT_CHANNELS: u32 = 4;

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
        let populated = populate(
            eal, name, cfg.n, cfg.socket, &sz, hdr, addr, &backend, &mut init,
        );
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

        // SAFETY: the header is fully written and its memzone lives until Mempool::free.
        let pool = unsafe { Pool::new_view(NonNull::new_unchecked(hdr), eal, backend, name) };
        // P1 (release): publishes every header, cache, chunk and object write above;
        // pairs with P2 in `lookup`.
        // SAFETY: header memzone is live.
        unsafe { (*hdr).magic.store(MAGIC, Ordering::Release) };
        if let Err(e) = pool.register() {
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
        if let Some(p) = REGISTRY.find(mz.addr()).filter(|p| p.serial == h.serial) {
            // Same pool (serials are unique), so the same addresses: the view (header,
            // caches, backend handle) is valid again once this EAL maps the memory, which
            // it does (we just read the header through it).
            return Ok(p.reattach(eal));
        }
        // SAFETY: the header records the state this backend made for this pool; the pool
        // lives until Mempool::free, which refuses while handles exist in this process
        // (other processes: crate contract).
        let backend = unsafe { Backend::attach(ops, eal, name, h.pool_data, h.pool_data_len) }?;
        // SAFETY: a published header (magic checked) in a memzone that lives until
        // Mempool::free, which refuses while handles exist in this process (other
        // processes: crate contract).
        let pool = unsafe { Pool::new_view(NonNull::new_unchecked(hdr), eal, backend, name) };
        pool.register()?;
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
        REGISTRY.remove(p.addr, p);
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
}
