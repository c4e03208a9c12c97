//! The pool as one process sees it: [`Pool`] (this process's view of a pool in shared
//! memory) and [`Mempool`] (the handle users hold), with attachment (which keeps the
//! process's EAL alive while the pool is used) and the queries that read the header.
//!
//! Creation, lookup and free are in `create`, gets and puts in `getput`, introspection
//! in `dump`.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use eal::lcore::MAX_LCORE;
use eal::{Eal, Iova, VirtAddr};

use crate::cache::CacheShared;
use crate::header::{name_str, PoolHeader, PRIVATE_MAX};
use crate::layout::{self, ObjSize};
use crate::ops::Backend;
use crate::registry::{Registry, REG_SLOTS};
use crate::{Error, PoolFlags, Result};

/// This process's pools by header address (see [`Pool::from_addr`]).
pub(crate) static REGISTRY: Registry<Pool> = Registry::new();

/// This process's view of one pool. Reached through a [`Mempool`] handle (`Deref`), or
/// from an object's pool address with [`Pool::from_addr`]. All methods take `&self` and
/// may be called from any thread (see the crate docs for the cache rules).
pub struct Pool {
    pub(crate) hdr: NonNull<PoolHeader>,
    pub(crate) caches: *const CacheShared,
    /// This process's EAL handle while the pool is attached (see "Attachment" in the crate
    /// docs). Written only under `attach_lock`: set by create/lookup (no one else can see
    /// the pool yet, or `handles` is 0 and it is detached), taken by [`Pool::detach_if_idle`]
    /// (`handles` 0, no object out) and by `free_inner` (the only handle). Read by
    /// [`Pool::eal`] through a handle or an object, which rule out a concurrent take.
    pub(crate) eal: UnsafeCell<Option<Eal>>,
    /// True while `eal` is `Some` and the pool's memory is therefore mapped here.
    pub(crate) attached: AtomicBool,
    /// Serialises attach, detach and free of this process's view.
    pub(crate) attach_lock: Mutex<()>,
    pub(crate) backend: Backend,
    pub(crate) name: String,
    pub(crate) addr: VirtAddr,
    pub(crate) serial: u64,
    pub(crate) size: u32,
    pub(crate) elt_size: u32,
    pub(crate) header_size: u32,
    pub(crate) total_size: u32,
    /// [`PoolFlags::STATS`], read once from the header.
    pub(crate) stats_on: bool,
    /// Live [`Mempool`] handles in this process.
    pub(crate) handles: AtomicUsize,
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
    pub(crate) pool: &'static Pool,
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

impl Pool {
    /// A new view, attached through `eal` and counting one handle, of the pool whose
    /// header is at `hdr`; leaked, as views are never deallocated (see
    /// [`Pool::from_addr`]). Not yet registered ([`Pool::register`]).
    ///
    /// # Safety
    /// `hdr` is a fully written pool header in a memzone of this EAL that stays mapped
    /// until the pool is freed; `backend` is this process's handle to its backend.
    pub(crate) unsafe fn new_view(
        hdr: NonNull<PoolHeader>,
        eal: &Eal,
        backend: Backend,
        name: &str,
    ) -> &'static Pool {
        // SAFETY: forwarded: a written header, read-only after creation but for atomics.
        let h = unsafe { hdr.as_ref() };
        let caches = if h.caches_off > 0 {
            // SAFETY: the creator sized the header memzone for the caches at `caches_off`.
            unsafe { hdr.as_ptr().cast::<u8>().add(h.caches_off as usize).cast() }
        } else {
            core::ptr::null()
        };
        Box::leak(Box::new(Pool {
            hdr,
            caches,
            eal: UnsafeCell::new(Some(eal.clone())),
            attached: AtomicBool::new(true),
            attach_lock: Mutex::new(()),
            backend,
            name: name.into(),
            addr: VirtAddr::from_ptr(hdr.as_ptr()),
            serial: h.serial,
            size: h.size,
            elt_size: h.elt_size,
            header_size: h.header_size,
            total_size: h.total_size,
            stats_on: PoolFlags::from_bits_retain(h.flags).contains(PoolFlags::STATS),
            handles: AtomicUsize::new(1),
        }))
    }

    /// Enter this view in the process's registry, so objects find it.
    pub(crate) fn register(&'static self) -> Result<()> {
        REGISTRY.insert(self.addr, self).map_err(|_| Error::InUse {
            name: self.name.clone(),
            why: format!("more than {REG_SLOTS} pools attached in this process"),
        })
    }

    /// A new handle to this view, attaching it again (with `eal`) if it was detached.
    pub(crate) fn reattach(&'static self, eal: &Eal) -> Mempool {
        let _g = self.attach_lock.lock().unwrap_or_else(|e| e.into_inner());
        // Relaxed: under attach_lock, which orders it against detach.
        self.handles.fetch_add(1, Ordering::Relaxed);
        if !self.attached.load(Ordering::Relaxed) {
            // SAFETY: under attach_lock with the pool detached: no handle or object
            // existed, so nobody reads `eal`.
            unsafe { *self.eal.get() = Some(eal.clone()) };
            // A1 (release): pairs with A2 in `from_addr`.
            self.attached.store(true, Ordering::Release);
        }
        Mempool { pool: self }
    }

    #[inline(always)]
    pub(crate) fn hdr(&self) -> &PoolHeader {
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
        let p = REGISTRY.find(addr)?;
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
    pub(crate) fn detach_if_idle(&self) {
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

    /// The memory areas holding the objects, `(first byte, length)` per chunk, in
    /// object order (drivers that register a pool's memory with a device or the kernel,
    /// e.g. an AF_XDP UMEM, need them).
    pub fn memory_chunks(&self) -> Vec<(VirtAddr, u64)> {
        self.hdr()
            .chunks()
            .iter()
            .map(|c| (c.addr, c.len))
            .collect()
    }

    /// True if `obj` is the address of one of this pool's objects.
    pub fn contains(&self, obj: VirtAddr) -> bool {
        self.hdr().chunks().iter().any(|c| {
            obj.0 >= c.addr.0 + u64::from(self.header_size)
                && obj.0 < c.addr.0 + c.len
                && (obj.0 - c.addr.0 - u64::from(self.header_size))
                    .is_multiple_of(u64::from(self.total_size))
        })
    }

    /// The per-lcore caches (`MAX_LCORE` of them; none if the pool has no cache).
    #[inline(always)]
    pub(crate) fn lcore_caches(&self) -> &[CacheShared] {
        if self.caches.is_null() {
            return &[];
        }
        // SAFETY: a non-null `caches` points at MAX_LCORE initialised entries in the
        // header memzone, mapped while the pool is attached; every field of an entry that
        // another thread may write is atomic or owned by its lcore (cache rules).
        unsafe { core::slice::from_raw_parts(self.caches, MAX_LCORE) }
    }

    /// Objects available: in the backend plus in every lcore cache (a snapshot; objects in
    /// user caches count as in use until flushed).
    pub fn avail_count(&self) -> u32 {
        let cached: u32 = self.lcore_caches().iter().map(CacheShared::len).sum();
        (self.backend.count() + cached).min(self.size)
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
        self.lcore_caches()
            .get(lcore as usize)
            .map(CacheShared::len)
    }
}
