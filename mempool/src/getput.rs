//! Get and put: through the calling lcore's cache, a user cache, or straight to the
//! backend. The cache-hit part of each is inlined into the caller; refills, flushes and
//! failures are out of line (see "Hot path" in the crate docs).

use eal::lcore::MAX_LCORE;
use eal::VirtAddr;

use crate::cache::{BulkBackend, CacheShared, GetOutcome, PutOutcome};
use crate::stats::StatsSlot;
use crate::user_cache::MempoolCache;
use crate::{Error, Pool, Result};

impl Pool {
    /// The calling lcore's cache, if the pool has caches and the thread is an EAL lcore.
    #[inline(always)]
    pub(crate) fn lcore_slot(&self) -> (Option<&CacheShared>, StatsSlot<'_>) {
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
    pub(crate) fn shared_slot(&self) -> StatsSlot<'_> {
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
            Some(c) => self.get_impl(objs, Some(self.own_cache(c)?), self.shared_slot()),
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
            // SAFETY: forwarded; the cache is borrowed `&mut`, so we are its only user.
            Some(c) => unsafe { self.put_impl(objs, Some(self.own_cache(c)?), self.shared_slot()) },
            // SAFETY: forwarded.
            None => unsafe { self.put_impl(objs, None, self.shared_slot()) },
        }
    }

    /// The inlined part of a get: a cache hit (see "Hot path" in the crate docs).
    #[inline(always)]
    pub(crate) fn get_impl(
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
    pub(crate) unsafe fn put_impl(
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
                self.debug_unmark_free(objs);
                return Err(Error::BackendFull {
                    name: self.name.clone(),
                    n,
                });
            }
        }
        st.op(&s.put_bulk, &s.put_objs, n as u64);
        Ok(())
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
}
