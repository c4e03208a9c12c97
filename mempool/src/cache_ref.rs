//! Batch-loop handles: a pool with the cache its gets and puts go through resolved once
//! ([`Pool::lcore_cache`], [`Pool::user_cache`]), and [`CacheRef::run`], which also fixes
//! once whether there is a cache and whether the pool counts statistics, so a loop body
//! compiles to the one path it takes.

use core::marker::PhantomData;

use eal::VirtAddr;

use crate::cache::CacheShared;
use crate::stats::StatsSlot;
use crate::user_cache::MempoolCache;
use crate::{Pool, Result};

impl Pool {
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
            _thread: PhantomData,
        }
    }

    /// A handle that gets and puts through the user-owned `cache` (checked once, here,
    /// to belong to this pool: [`Error::ForeignCache`](crate::Error::ForeignCache)
    /// otherwise). See [`Pool::lcore_cache`].
    pub fn user_cache<'a>(&'a self, cache: &'a mut MempoolCache) -> Result<CacheRef<'a>> {
        let cache = self.own_cache(cache)?;
        Ok(CacheRef {
            pool: self,
            cache: Some(cache),
            st: self.shared_slot(),
            _thread: PhantomData,
        })
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
    _thread: PhantomData<*const ()>,
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

    /// Run `body` on a handle specialised for this one: whether there is a cache and
    /// whether the pool counts statistics are settled here, once, and `body` is
    /// monomorphised for the path it takes (cache or backend, counters or none), with
    /// the same semantics as this handle.
    ///
    /// For loops that get and put many times, as `mempool_perf` (DPDK's
    /// `mempool_perf_autotest`) does. A loop over the [`CacheRef`] itself tests for the
    /// cache and the statistics switch on every call, so it carries both the cache path
    /// and the inlined backend path, which compete for registers: in
    /// `scripts/compare/mempool_ab.sh` the cached cases went from a geometric mean of
    /// 1.38-1.41 of DPDK's rate (looping over a [`CacheRef`]) to 1.63-1.65 (through this
    /// method; three alternating pairs of runs, DESIGN.md "Mempool hot path").
    #[inline]
    pub fn run<L: GetPutLoop>(&self, body: L) -> L::Output {
        let (pool, st) = (self.pool, self.st);
        match (self.cache, st.counted()) {
            (Some(cache), false) => body.run(&Cached::<false> {
                pool,
                cache,
                st,
                _thread: PhantomData,
            }),
            (Some(cache), true) => body.run(&Cached::<true> {
                pool,
                cache,
                st,
                _thread: PhantomData,
            }),
            (None, false) => body.run(&Direct::<false> {
                pool,
                st,
                _thread: PhantomData,
            }),
            (None, true) => body.run(&Direct::<true> {
                pool,
                st,
                _thread: PhantomData,
            }),
        }
    }
}

/// Bulk get and put on a pool through a cache (or none) chosen once: what a loop body
/// given to [`CacheRef::run`] sees. [`CacheRef`] implements it too, so the same body
/// can run unspecialised.
pub trait BulkGetPut {
    /// Get `objs.len()` objects, all or nothing.
    fn get_bulk(&self, objs: &mut [VirtAddr]) -> Result<()>;

    /// Put objects back.
    ///
    /// # Safety
    /// As [`Pool::put_bulk`].
    unsafe fn put_bulk(&self, objs: &[VirtAddr]) -> Result<()>;
}

/// A loop body for [`CacheRef::run`]: generic over the specialised handle it is given.
pub trait GetPutLoop {
    /// What the body returns.
    type Output;

    /// Run the body on `pool`.
    fn run<P: BulkGetPut>(self, pool: &P) -> Self::Output;
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

/// A [`CacheRef`] known to have a cache; `COUNTED` says whether the pool keeps
/// statistics, fixed by type so the other case compiles away. Lives only inside
/// [`CacheRef::run`], on the thread of the handle it came from.
struct Cached<'a, const COUNTED: bool> {
    pool: &'a Pool,
    cache: &'a CacheShared,
    st: StatsSlot<'a>,
    /// Neither `Send` nor `Sync`, as the handle it came from.
    _thread: PhantomData<*const ()>,
}

impl<const COUNTED: bool> BulkGetPut for Cached<'_, COUNTED> {
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

/// A [`CacheRef`] known to have no cache: gets and puts go to the backend, inlined;
/// `COUNTED` as for [`Cached`].
struct Direct<'a, const COUNTED: bool> {
    pool: &'a Pool,
    st: StatsSlot<'a>,
    /// Neither `Send` nor `Sync`: its statistics slot may be the lcore's.
    _thread: PhantomData<*const ()>,
}

impl<const COUNTED: bool> BulkGetPut for Direct<'_, COUNTED> {
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
