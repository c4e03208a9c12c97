//! User-owned caches ([`MempoolCache`], DPDK's `rte_mempool_cache_create`): for threads
//! that are not EAL lcores, or that want a cache of their own.

use crate::cache::{CacheShared, CACHE_MAX_SIZE};
use crate::{Error, Mempool, Pool, Result};

impl Mempool {
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

impl Pool {
    /// The cache of `cache`, checked to belong to this pool ([`Error::ForeignCache`]
    /// otherwise).
    #[inline]
    pub(crate) fn own_cache<'a>(&self, cache: &'a mut MempoolCache) -> Result<&'a CacheShared> {
        if cache.cache.owner != self.addr {
            return Err(Error::ForeignCache {
                name: self.name.clone(),
            });
        }
        Ok(&cache.cache)
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
