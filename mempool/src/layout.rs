//! Object layout: per-object header, debug cookies, and the size arithmetic that places
//! objects in a chunk (cache-line rounding and spreading over memory channels).
//!
//! One object slot, `total_size` bytes, is laid out as
//!
//! ```text
//!  slot start (cache-line aligned unless NO_CACHE_ALIGN)
//!  | header_size bytes; the ObjHeader sits at its end, right before the object |
//!  | object: elt_size bytes (the address handed out by get)                    |
//!  | trailer: [debug: u64 cookie] + padding up to total_size                   |
//! ```
//!
//! The model is DPDK's `rte_mempool_objhdr` / `rte_mempool_objtlr` and
//! `rte_mempool_calc_obj_size()` (lib/mempool/rte_mempool.c, v22.11); the values of the
//! cookies are our own.

use eal::{Iova, VirtAddr};

use crate::PoolFlags;

/// Cache line size assumed for alignment (x86_64, most arm64).
pub const CACHE_LINE: usize = 64;

/// Cookie in the object header while the object is free (in a cache or the backend).
#[cfg(debug_assertions)]
pub(crate) const COOKIE_FREE: u64 = 0x4650_4d50_4652_4545; // "FPMPFREE"
/// Cookie in the object header while the object is handed out.
#[cfg(debug_assertions)]
pub(crate) const COOKIE_USED: u64 = 0x4650_4d50_5553_4544; // "FPMPUSED"
/// Cookie right after the object; never changes, so a change means an overrun.
#[cfg(debug_assertions)]
pub(crate) const COOKIE_TRAILER: u64 = 0x4650_4d50_5441_494c; // "FPMPTAIL"

/// The header right before every object, in shared memory.
///
/// `pool` is the address of the owning pool's header memzone (the same in every process
/// of the EAL group); `iova` is the IOVA of the object itself (not of the header), or
/// [`Iova::BAD`] when the EAL cannot tell. In debug builds a cookie follows that records
/// whether the object is free or handed out.
#[repr(C)]
#[derive(Debug)]
pub struct ObjHeader {
    /// The pool that owns the object.
    pub pool: VirtAddr,
    /// IOVA of the object's first byte.
    pub iova: Iova,
    /// `COOKIE_FREE` or `COOKIE_USED`.
    #[cfg(debug_assertions)]
    pub cookie: u64,
}

/// Bytes of [`ObjHeader`] (16 in release builds, 24 in debug builds).
pub const OBJ_HEADER_LEN: usize = core::mem::size_of::<ObjHeader>();

/// Bytes of trailer cookie (0 in release builds).
#[cfg(debug_assertions)]
pub const TRAILER_COOKIE_LEN: usize = 8;
/// Bytes of trailer cookie (0 in release builds).
#[cfg(not(debug_assertions))]
pub const TRAILER_COOKIE_LEN: usize = 0;

/// True when this build lays objects out with debug cookies. Recorded in the pool header:
/// a debug and a release process cannot share a pool.
pub const DEBUG_LAYOUT: bool = cfg!(debug_assertions);

/// The sizes of one object slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjSize {
    /// Bytes before the object (contains the [`ObjHeader`] at its end).
    pub header_size: u32,
    /// Bytes of the object as asked for.
    pub elt_size: u32,
    /// Bytes after the object (debug cookie plus padding).
    pub trailer_size: u32,
    /// `header_size + elt_size + trailer_size`: the stride between objects.
    pub total_size: u32,
}

const fn round_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

const fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// Grow `size` (a multiple of the cache line) to the smallest number of cache lines that is
/// coprime with `channels * ranks`.
///
/// Why (DPDK's reasoning, lib/mempool/rte_mempool.c `arch_mem_object_align`): the start of
/// an object is touched far more often than the rest (an mbuf's first cache line on every
/// RX and TX), and consecutive cache lines are interleaved over the memory channels and
/// ranks. If the stride between objects were a multiple of the interleave, every object
/// start would land on the same channel; with a stride coprime to it, the starts of
/// consecutive objects rotate over all channels.
pub fn spread_size(size: usize, channels: u32, ranks: u32) -> usize {
    let lines_mod = (channels.max(1) as usize) * (ranks.max(1) as usize);
    let mut lines = size.div_ceil(CACHE_LINE);
    while gcd(lines, lines_mod) != 1 {
        lines += 1;
    }
    lines * CACHE_LINE
}

/// Compute the slot sizes for `elt_size`-byte objects. `None` if they overflow `u32`.
///
/// Rules: the header is the [`ObjHeader`] rounded up to a cache line (to 8 bytes with
/// `NO_CACHE_ALIGN`); the trailer holds the debug cookie after the object (8-byte aligned);
/// the whole slot is rounded to a cache line (8 bytes with `NO_CACHE_ALIGN`) and, unless
/// `NO_SPREAD` (implied by `NO_CACHE_ALIGN`), padded by [`spread_size`].
pub fn calc_obj_size(
    elt_size: u32,
    flags: PoolFlags,
    channels: u32,
    ranks: u32,
) -> Option<ObjSize> {
    let align = if flags.contains(PoolFlags::NO_CACHE_ALIGN) {
        8
    } else {
        CACHE_LINE
    };
    let header = round_up(OBJ_HEADER_LEN, align);
    let elt = elt_size as usize;
    let body = if DEBUG_LAYOUT {
        round_up(elt, 8) + TRAILER_COOKIE_LEN
    } else {
        elt
    };
    let mut total = round_up(header.checked_add(body)?, align);
    if !flags.intersects(PoolFlags::NO_SPREAD | PoolFlags::NO_CACHE_ALIGN) {
        total = spread_size(total, channels, ranks);
    }
    let trailer = total - header - elt;
    Some(ObjSize {
        header_size: u32::try_from(header).ok()?,
        elt_size,
        trailer_size: u32::try_from(trailer).ok()?,
        total_size: u32::try_from(total).ok()?,
    })
}

/// The header of the object at `obj`.
///
/// # Safety
/// `obj` must be the address of an object of a pool laid out by this module (so the
/// [`ObjHeader`] precedes it in mapped memory).
#[inline]
pub unsafe fn obj_header(obj: VirtAddr) -> *mut ObjHeader {
    obj.as_ptr::<u8>()
        .wrapping_sub(OBJ_HEADER_LEN)
        .cast::<ObjHeader>()
}

/// Address of the trailer cookie of `obj` (`elt_size` bytes long).
#[cfg(debug_assertions)]
#[inline]
pub(crate) fn trailer_cookie(obj: VirtAddr, elt_size: u32) -> *mut u64 {
    obj.as_ptr::<u8>()
        .wrapping_add(round_up(elt_size as usize, 8))
        .cast::<u64>()
}

/// Which debug check failed for an object.
#[cfg(debug_assertions)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookieFault {
    /// Header names another pool.
    Foreign,
    /// Header cookie says free where used was expected (put twice).
    DoubleFree,
    /// Header cookie says used where free was expected (object in the free lists while
    /// handed out: a put raced a get of the same object, or memory corruption).
    NotFree,
    /// Header cookie is neither value.
    HeaderSmashed(u64),
    /// Trailer cookie changed.
    TrailerSmashed(u64),
}

/// Check the cookies of `obj` and flip its header cookie from `from` to `to`.
///
/// # Safety
/// `obj` must be an object slot laid out by [`calc_obj_size`] for `elt_size`, in mapped
/// memory, not concurrently checked by another thread.
#[cfg(debug_assertions)]
pub(crate) unsafe fn check_and_flip(
    obj: VirtAddr,
    pool: VirtAddr,
    elt_size: u32,
    from: u64,
    to: u64,
) -> Result<(), CookieFault> {
    // SAFETY: per the contract the header precedes `obj` in mapped memory.
    let hdr = unsafe { obj_header(obj) };
    // SAFETY: as above; plain reads/writes of our own header fields, no reference formed.
    let (owner, cookie) = unsafe { ((*hdr).pool, (*hdr).cookie) };
    if owner != pool {
        return Err(CookieFault::Foreign);
    }
    if cookie != from {
        return Err(match cookie {
            COOKIE_FREE => CookieFault::DoubleFree,
            COOKIE_USED => CookieFault::NotFree,
            other => CookieFault::HeaderSmashed(other),
        });
    }
    // SAFETY: the trailer cookie lies inside the slot (calc_obj_size reserved it).
    let tail = unsafe { trailer_cookie(obj, elt_size).read_unaligned() };
    if tail != COOKIE_TRAILER {
        return Err(CookieFault::TrailerSmashed(tail));
    }
    // SAFETY: as above.
    unsafe { (*hdr).cookie = to };
    Ok(())
}

/// Write the header (and in debug builds both cookies, header one "free") of a new object.
///
/// # Safety
/// `obj` must be an object slot laid out by [`calc_obj_size`] for `elt_size`, in mapped
/// writable memory not yet shared with other threads.
pub(crate) unsafe fn init_obj(obj: VirtAddr, pool: VirtAddr, iova: Iova, elt_size: u32) {
    let _ = elt_size;
    // SAFETY: per the contract the header precedes `obj` in writable memory.
    unsafe {
        let hdr = obj_header(obj);
        (*hdr).pool = pool;
        (*hdr).iova = iova;
        #[cfg(debug_assertions)]
        {
            (*hdr).cookie = COOKIE_FREE;
            trailer_cookie(obj, elt_size).write_unaligned(COOKIE_TRAILER);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fits_one_line() {
        let s = calc_obj_size(64, PoolFlags::NO_SPREAD, 4, 1).unwrap();
        assert_eq!(s.header_size, 64);
        assert_eq!(s.total_size % 64, 0);
        assert_eq!(s.header_size + s.elt_size + s.trailer_size, s.total_size);
        assert!(s.trailer_size as usize >= TRAILER_COOKIE_LEN);
    }

    #[test]
    fn spread_makes_stride_coprime() {
        // 2176-byte mbuf buffer + 128-byte mbuf header: DPDK's case of 36 lines -> 37.
        let s = calc_obj_size(2304, PoolFlags::empty(), 4, 1).unwrap();
        let lines = s.total_size as usize / 64;
        assert_eq!(gcd(lines, 4), 1);
        if !DEBUG_LAYOUT {
            assert_eq!(s.total_size, 37 * 64);
        }
        // Every stride is coprime with 4 channels x 2 ranks too.
        for elt in [1u32, 63, 64, 100, 1000, 2048, 4096] {
            let s = calc_obj_size(elt, PoolFlags::empty(), 4, 2).unwrap();
            assert_eq!(gcd(s.total_size as usize / 64, 8), 1, "elt {elt}");
            assert!(s.total_size >= s.header_size + elt);
        }
    }

    #[test]
    fn no_spread_and_no_cache_align() {
        let s = calc_obj_size(2304, PoolFlags::NO_SPREAD, 4, 1).unwrap();
        assert_eq!(s.total_size % 64, 0);
        let lines = s.total_size / 64;
        let expect = (64 + 2304 + TRAILER_COOKIE_LEN as u32).div_ceil(64);
        assert_eq!(lines, expect);
        let s = calc_obj_size(10, PoolFlags::NO_CACHE_ALIGN, 4, 1).unwrap();
        assert_eq!(s.total_size % 8, 0);
        assert_eq!(s.header_size as usize, round_up(OBJ_HEADER_LEN, 8));
        assert!(s.total_size < 64 + 64);
    }

    #[test]
    fn overflow_is_none() {
        assert!(calc_obj_size(u32::MAX, PoolFlags::empty(), 4, 1).is_none());
        assert!(calc_obj_size(u32::MAX - 100, PoolFlags::NO_SPREAD, 4, 1).is_none());
    }

    #[cfg(debug_assertions)]
    #[test]
    fn cookies_catch_double_free_and_overrun() {
        const ELT: u32 = 36; // cookie at offset 40, bytes 36..40 are padding
        let s = calc_obj_size(ELT, PoolFlags::empty(), 4, 1).unwrap();
        // Caller-owned memory for one slot, 64-aligned.
        let mut buf = vec![0u64; s.total_size as usize / 8 + 8];
        let base = buf.as_mut_ptr().cast::<u8>();
        let pad = base.align_offset(64);
        // SAFETY: pad + total_size <= buf's length in bytes (one spare cache line).
        let obj_ptr = unsafe { base.add(pad + s.header_size as usize) };
        let obj = VirtAddr::from_ptr(obj_ptr);
        let pool = VirtAddr(0x1000);
        // SAFETY: the slot lies inside `buf`, which outlives this block.
        unsafe {
            init_obj(obj, pool, Iova::BAD, ELT);
            // get: free -> used
            check_and_flip(obj, pool, ELT, COOKIE_FREE, COOKIE_USED).unwrap();
            // put: used -> free
            check_and_flip(obj, pool, ELT, COOKIE_USED, COOKIE_FREE).unwrap();
            // put again: double free
            assert_eq!(
                check_and_flip(obj, pool, ELT, COOKIE_USED, COOKIE_FREE),
                Err(CookieFault::DoubleFree)
            );
            // get of an object whose cookie says used
            check_and_flip(obj, pool, ELT, COOKIE_FREE, COOKIE_USED).unwrap();
            assert_eq!(
                check_and_flip(obj, pool, ELT, COOKIE_FREE, COOKIE_USED),
                Err(CookieFault::NotFree)
            );
            // foreign pool
            assert_eq!(
                check_and_flip(obj, VirtAddr(0x2000), ELT, COOKIE_USED, COOKIE_FREE),
                Err(CookieFault::Foreign)
            );
            // a write into the padding is not an overrun the cookie can see
            obj_ptr.add(ELT as usize).write(0xff);
            check_and_flip(obj, pool, ELT, COOKIE_USED, COOKIE_FREE).unwrap();
            check_and_flip(obj, pool, ELT, COOKIE_FREE, COOKIE_USED).unwrap();
            // a write into the cookie is
            obj_ptr.add(40).write(0xff);
            assert!(matches!(
                check_and_flip(obj, pool, ELT, COOKIE_USED, COOKIE_FREE),
                Err(CookieFault::TrailerSmashed(_))
            ));
            // a smashed header cookie
            (*obj_header(obj)).cookie = 7;
            assert_eq!(
                check_and_flip(obj, pool, ELT, COOKIE_USED, COOKIE_FREE),
                Err(CookieFault::HeaderSmashed(7))
            );
        }
        drop(buf);
    }
}
