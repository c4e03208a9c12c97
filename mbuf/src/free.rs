//! The free path: reference counts, detaching indirect mbufs, and returning segments
//! to their pools in bulk. Works on raw headers; [`Mbuf`](crate::Mbuf)'s `Drop` and the
//! bulk and chain operations call it.

use core::mem::MaybeUninit;
use core::sync::atomic::Ordering;

use eal::VirtAddr;
use mempool::Pool;

use crate::header::{hp, MbufHeader, MBUF_HEADER_LEN};
use crate::pool::data_room_of;
use crate::OlFlags;

/// Objects waiting to go back to one pool, put in bulk.
pub(crate) struct Pending {
    pool: VirtAddr,
    /// The first `n` are initialised. Left uninitialised otherwise: zeroing 256 bytes
    /// on every free cost more than freeing a small burst.
    objs: [MaybeUninit<VirtAddr>; 32],
    n: usize,
}

impl Pending {
    #[inline(always)]
    pub(crate) fn new() -> Pending {
        Pending {
            pool: VirtAddr(0),
            objs: [MaybeUninit::uninit(); 32],
            n: 0,
        }
    }

    #[inline(always)]
    fn push(&mut self, pool: VirtAddr, obj: VirtAddr) {
        // A run of one pool (the common case: one compare each, no store of the pool).
        if pool != self.pool || self.n == self.objs.len() {
            self.flush();
            self.pool = pool;
        }
        // SAFETY: `n` < 32 here: a full array was flushed (n = 0) just above.
        unsafe { self.objs.get_unchecked_mut(self.n) }.write(obj);
        self.n += 1;
    }

    #[inline]
    pub(crate) fn flush(&mut self) {
        if self.n == 0 {
            return;
        }
        let p = pool_ref(self.pool);
        // SAFETY: the first `n` entries were written by `push`.
        let objs =
            unsafe { core::slice::from_raw_parts(self.objs.as_ptr().cast::<VirtAddr>(), self.n) };
        // SAFETY: each object is an mbuf of that pool whose last reference we dropped.
        let r = unsafe { p.put_bulk(objs) };
        if let Err(e) = r {
            // Only reachable through a broken `from_raw` contract (double free) or
            // memory corruption, caught by the debug checks.
            panic!("mbuf free: {e}");
        }
        self.n = 0;
    }
}

/// This process's view of the pool at `addr`.
fn pool_ref<'a>(addr: VirtAddr) -> &'a Pool {
    // SAFETY: an mbuf of the pool is being freed right now, so the pool cannot have been
    // freed (Mempool::free refuses while objects are out).
    match unsafe { Pool::from_addr(addr) } {
        Some(p) => p,
        None => panic!(
            "mbuf pool at {addr} is not attached in this process: create or look it up \
             (PktmbufPool::lookup) before handling its mbufs"
        ),
    }
}

/// Drop one reference to segment `s`; true if it was the last (the caller frees it).
///
/// # Safety
/// We own one reference to `s`.
#[inline(always)]
unsafe fn release_ref(s: *mut MbufHeader) -> bool {
    // SAFETY: forwarded.
    let rc = unsafe { &(*s).refcnt };
    // Acquire: pairs with other holders' release decrements below, so their accesses to
    // the buffer happen before we recycle it. Seeing 1 means we are the only holder.
    if rc.load(Ordering::Acquire) == 1 {
        return true;
    }
    // AcqRel: release our accesses to the buffer; acquire everyone else's if we are last.
    if rc.fetch_sub(1, Ordering::AcqRel) == 1 {
        // Back to 1: free mbufs keep refcnt 1 (what alloc expects).
        rc.store(1, Ordering::Relaxed);
        return true;
    }
    false
}

/// [`free_chain`] with the case of almost every packet first: one segment, a direct
/// mbuf, held by us alone. Its header is already in the state free mbufs keep (refcnt 1,
/// nb_segs 1, next 0), so it is queued with no store to it; anything else takes
/// `free_chain`.
///
/// # Safety
/// We own the chain.
#[inline(always)]
pub(crate) unsafe fn free_chain_fast(first: VirtAddr, pending: &mut Pending) {
    let h = hp(first);
    // SAFETY: the head of our chain.
    unsafe {
        // Acquire on the count: as in `release_ref` (seeing 1: we are the only holder,
        // and other holders' accesses happened before their decrements).
        if (*h).next.0 == 0
            && (*h).refcnt.load(Ordering::Acquire) == 1
            && (*h).nb_segs == 1
            && (*h).ol_flags & OlFlags::INDIRECT.bits() == 0
        {
            pending.push((*h).pool, first);
        } else {
            free_chain(first, pending);
        }
    }
}

/// Release every segment of the chain starting at `first`, queueing freed objects.
///
/// # Safety
/// We own the chain.
#[inline(always)]
pub(crate) unsafe fn free_chain(first: VirtAddr, pending: &mut Pending) {
    let mut s = first;
    while s.0 != 0 {
        let h = hp(s);
        // SAFETY: a segment of our chain.
        unsafe {
            let next = (*h).next;
            if release_ref(h) {
                if (*h).ol_flags & OlFlags::INDIRECT.bits() != 0 {
                    detach(h, pending);
                }
                // Free mbufs keep next 0 and nb_segs 1 (what alloc expects); store only
                // what differs, as a single-segment packet already has both.
                if next.0 != 0 {
                    (*h).next = VirtAddr(0);
                }
                if (*h).nb_segs != 1 {
                    (*h).nb_segs = 1;
                }
                pending.push((*h).pool, s);
            }
            s = next;
        }
    }
}

/// Detach indirect mbuf `h` from its direct mbuf (freeing the direct one if this was its
/// last reference) and give `h` its own buffer back.
///
/// # Safety
/// `h` is an indirect mbuf whose last reference we hold.
unsafe fn detach(h: *mut MbufHeader, pending: &mut Pending) {
    // SAFETY: forwarded; the direct mbuf is alive while we hold a reference on it.
    unsafe {
        let d = (*h).direct;
        let dh = hp(d);
        if release_ref(dh) {
            (*dh).next = VirtAddr(0);
            (*dh).nb_segs = 1;
            pending.push((*dh).pool, d);
        }
        let pool = pool_ref((*h).pool);
        let priv_size = (*h).priv_size;
        let off = (MBUF_HEADER_LEN + priv_size as usize) as u64;
        let me = VirtAddr::from_ptr(h);
        (*h).buf_addr = me.add(off);
        let iova = Pool::obj_iova(me);
        (*h).buf_iova = if iova.is_valid() { iova.add(off) } else { iova };
        (*h).buf_len = data_room_of(pool, priv_size);
        (*h).direct = VirtAddr(0);
        (*h).ol_flags = 0;
    }
}

/// Release every segment of the chain starting at `first` and put the freed objects back
/// at once.
///
/// # Safety
/// We own the chain.
#[inline(always)]
pub(crate) unsafe fn free_chain_now(first: VirtAddr) {
    let mut pending = Pending::new();
    // SAFETY: forwarded.
    unsafe { free_chain(first, &mut pending) };
    pending.flush();
}
