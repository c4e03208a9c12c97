//! The owned [`Mbuf`] handle and its operations.

use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;
use std::io::Write;

use eal::{Iova, VirtAddr};
use mempool::Pool;

use crate::header::{MbufHeader, MAX_NB_SEGS, MBUF_HEADER_LEN, PKTMBUF_HEADROOM, PORT_INVALID};
use crate::pool::{data_room_of, PktmbufPool};
use crate::{ChainError, Error, OlFlags, Result, TxOffload};

/// An owned packet: the first segment of a chain of mbufs in a pool. `Send`, not `Clone`
/// (use [`Mbuf::clone_in`] for a zero-copy clone). Dropping it returns every segment to
/// its pool (refcount aware: a buffer shared with clones goes back when its last user
/// lets go).
///
/// It derefs to the first segment's data (`&[u8]`). `DerefMut` gives `&mut [u8]` and
/// **panics if that buffer is shared** (a clone exists, or this mbuf is itself a clone):
/// use [`Mbuf::try_data_mut`] to ask instead.
///
/// `#[repr(transparent)]`: an `Mbuf` has the layout of its header's address, so drivers
/// may move slices of them to and from rings of addresses without a per-packet step
/// (the [`Mbuf::into_raw`] / [`Mbuf::from_raw`] contract applies to every element).
#[repr(transparent)]
pub struct Mbuf {
    ptr: NonNull<MbufHeader>,
}

// Drivers rely on this (see the type docs).
const _: () = assert!(core::mem::size_of::<Mbuf>() == core::mem::size_of::<usize>());

// SAFETY: an Mbuf owns its chain; the only state other threads touch is `refcnt` of a
// shared buffer (atomic) and the immutable data of a shared buffer.
unsafe impl Send for Mbuf {}
// SAFETY: `&Mbuf` only reads (header fields owned by this handle, shared data read-only).
unsafe impl Sync for Mbuf {}

impl core::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mbuf")
            .field("addr", &self.ptr)
            .field("pkt_len", &self.pkt_len())
            .field("nb_segs", &self.nb_segs())
            .finish()
    }
}

/// Raw header pointer of a segment address.
#[inline(always)]
fn hp(a: VirtAddr) -> *mut MbufHeader {
    a.as_ptr()
}

impl Mbuf {
    // ------------------------------------------------------------------------------
    // Raw access
    // ------------------------------------------------------------------------------

    #[inline(always)]
    fn h(&self) -> *mut MbufHeader {
        self.ptr.as_ptr()
    }

    /// Address of the first segment's header (the mempool object).
    pub fn addr(&self) -> VirtAddr {
        VirtAddr::from_ptr(self.ptr.as_ptr())
    }

    /// Give up ownership; the chain stays allocated until [`Mbuf::from_raw`] takes it back.
    pub fn into_raw(self) -> NonNull<MbufHeader> {
        let p = self.ptr;
        core::mem::forget(self);
        p
    }

    /// Take ownership of a chain released by [`Mbuf::into_raw`] (or handed over by a
    /// driver that got it from one).
    ///
    /// # Safety
    /// `ptr` is the first segment of a valid mbuf chain that nobody else owns (exactly one
    /// `from_raw` per `into_raw`), in a pool this process holds a handle to.
    pub unsafe fn from_raw(ptr: NonNull<MbufHeader>) -> Mbuf {
        Mbuf { ptr }
    }

    /// Read-only view of the first segment's header. Concurrent clones may change
    /// `refcnt` only (an atomic).
    pub fn header(&self) -> &MbufHeader {
        // SAFETY: the handle owns the header; shared mutation is limited to the atomic
        // `refcnt`, which `&AtomicU16` permits.
        unsafe { &*self.h() }
    }

    /// Segment addresses from first to last.
    fn seg_addrs(&self) -> impl Iterator<Item = VirtAddr> + '_ {
        let mut cur = self.addr();
        core::iter::from_fn(move || {
            if cur.0 == 0 {
                return None;
            }
            let me = cur;
            // SAFETY: every `next` in a chain we own is 0 or a valid segment.
            cur = unsafe { (*hp(me)).next };
            Some(me)
        })
    }

    fn last_seg(&self) -> *mut MbufHeader {
        let mut p = self.h();
        // SAFETY: chain owned by us; `next` is 0 or valid.
        unsafe {
            while (*p).next.0 != 0 {
                p = hp((*p).next);
            }
        }
        p
    }

    /// True if segment `s`'s buffer is shared (refcnt > 1) or borrowed (indirect).
    ///
    /// # Safety
    /// `s` is a segment of a chain we own.
    #[inline]
    unsafe fn seg_shared(s: *mut MbufHeader) -> bool {
        // SAFETY: forwarded.
        unsafe {
            // Acquire: pairs with the release decrement in `release_ref`, so once we see
            // 1 every former sharer's accesses to the buffer happened before ours.
            (*s).ol_flags & OlFlags::INDIRECT.bits() != 0 || (*s).refcnt.load(Ordering::Acquire) > 1
        }
    }

    // ------------------------------------------------------------------------------
    // Allocation and free
    // ------------------------------------------------------------------------------

    /// Reset a freshly taken mbuf (DPDK's `rte_pktmbuf_reset`).
    ///
    /// # Safety
    /// `h` is an mbuf we own exclusively.
    #[inline(always)]
    unsafe fn reset_raw(h: *mut MbufHeader) {
        // SAFETY: forwarded.
        unsafe {
            (*h).next = VirtAddr(0);
            (*h).pkt_len = 0;
            (*h).tx_offload = 0;
            (*h).vlan_tci = 0;
            (*h).vlan_tci_outer = 0;
            (*h).nb_segs = 1;
            (*h).port = PORT_INVALID;
            (*h).ol_flags &= OlFlags::INDIRECT.bits() | OlFlags::EXTERNAL.bits();
            (*h).packet_type = 0;
            (*h).data_off = PKTMBUF_HEADROOM.min((*h).buf_len);
            (*h).data_len = 0;
        }
    }

    /// Allocate one mbuf (empty, default headroom); `None` if the pool is empty.
    #[inline]
    pub fn alloc(pool: &PktmbufPool) -> Option<Mbuf> {
        let obj = pool.mempool().get().ok()?;
        let h = hp(obj);
        // SAFETY: the object was just handed out to us; free mbufs keep refcnt 1, nb_segs
        // 1 and next 0 (restored by the free path), the rest is reset here.
        unsafe { Self::reset_raw(h) };
        // SAFETY: non-null object address.
        let ptr = unsafe { NonNull::new_unchecked(h) };
        Some(Mbuf { ptr })
    }

    /// Fill every slot of `out` with a fresh mbuf, or none (all or nothing). Slots that
    /// held mbufs are overwritten (those mbufs are freed).
    pub fn alloc_bulk(pool: &PktmbufPool, out: &mut [Option<Mbuf>]) -> Result<()> {
        const CHUNK: usize = 64;
        let mut tmp = [VirtAddr(0); CHUNK];
        let mut done = 0;
        while done < out.len() {
            let k = (out.len() - done).min(CHUNK);
            if pool.mempool().get_bulk(&mut tmp[..k]).is_err() {
                for slot in &mut out[..done] {
                    *slot = None;
                }
                return Err(Error::NoMbufs { n: out.len() });
            }
            for (slot, &obj) in out[done..done + k].iter_mut().zip(&tmp[..k]) {
                // SAFETY: as in `alloc`.
                unsafe { Self::reset_raw(hp(obj)) };
                // SAFETY: non-null object address.
                let ptr = unsafe { NonNull::new_unchecked(hp(obj)) };
                *slot = Some(Mbuf { ptr });
            }
            done += k;
        }
        Ok(())
    }

    /// Append `n` fresh mbufs to `out`, all or nothing, each holding `data_len` bytes of
    /// data (whatever the buffer holds, as after [`Mbuf::append`]) and marked as received
    /// on `port`: what an RX path does to every packet (DPDK's `rte_pktmbuf_alloc_bulk`
    /// followed by setting `data_len`, `pkt_len` and `port`), in one pass over the
    /// headers and with no per-packet `Vec` push.
    ///
    /// Fails with [`Error::NoTailroom`] if `data_len` exceeds the pool's data room after
    /// the default headroom, and with [`Error::NoMbufs`] if the pool cannot supply `n`;
    /// `out` is unchanged then.
    pub fn alloc_bulk_into(
        pool: &PktmbufPool,
        out: &mut Vec<Mbuf>,
        n: usize,
        data_len: u16,
        port: u16,
    ) -> Result<()> {
        const CHUNK: usize = 64;
        let room = pool.data_room_size().saturating_sub(PKTMBUF_HEADROOM);
        if data_len > room {
            return Err(Error::NoTailroom {
                need: data_len.into(),
                have: room.into(),
            });
        }
        out.reserve(n);
        let start = out.len();
        let mut tmp = [MaybeUninit::<VirtAddr>::uninit(); CHUNK];
        let mut done = 0;
        while done < n {
            let k = (n - done).min(CHUNK);
            for t in &mut tmp[..k] {
                t.write(VirtAddr(0));
            }
            // SAFETY: the first `k` entries were just initialised.
            let objs =
                unsafe { core::slice::from_raw_parts_mut(tmp.as_mut_ptr().cast::<VirtAddr>(), k) };
            if pool.mempool().get_bulk(objs).is_err() {
                // Dropping what this call appended returns it to the pool.
                out.truncate(start);
                return Err(Error::NoMbufs { n });
            }
            let len = out.len();
            let dst = out.as_mut_ptr();
            for (i, &obj) in objs.iter().enumerate() {
                let h = hp(obj);
                // SAFETY: as in `alloc`; then the fields of a fresh single-segment mbuf
                // we own. data_len <= room <= buf_len - data_off (pool geometry, checked
                // above), so the data stays inside the buffer.
                unsafe {
                    Self::reset_raw(h);
                    debug_assert!(data_len <= (*h).buf_len - (*h).data_off);
                    (*h).data_len = data_len;
                    (*h).pkt_len = u32::from(data_len);
                    (*h).port = port;
                }
                // SAFETY: `reserve(n)` left room for n >= done + k elements past
                // `start`; `len + i` is inside it. Non-null object address.
                unsafe {
                    dst.add(len + i).write(Mbuf {
                        ptr: NonNull::new_unchecked(h),
                    })
                };
            }
            // SAFETY: the `k` elements after `len` were just written.
            unsafe { out.set_len(len + k) };
            done += k;
        }
        Ok(())
    }

    /// Free many packets, returning segments to their pools in bulk (one put per run of
    /// segments from the same pool, as DPDK's `rte_pktmbuf_free_bulk`).
    pub fn free_bulk(mbufs: impl IntoIterator<Item = Mbuf>) {
        let mut pending = Pending::new();
        for m in mbufs {
            let head = m.into_raw();
            // SAFETY: we own the chain (handle consumed).
            unsafe { free_chain(VirtAddr::from_ptr(head.as_ptr()), &mut pending) };
        }
        pending.flush();
    }

    // ------------------------------------------------------------------------------
    // Lengths and rooms
    // ------------------------------------------------------------------------------

    /// Bytes in the whole packet.
    pub fn pkt_len(&self) -> u32 {
        self.header().pkt_len
    }

    /// Bytes in the first segment.
    pub fn data_len(&self) -> u16 {
        self.header().data_len
    }

    /// Segments in the packet.
    pub fn nb_segs(&self) -> u16 {
        self.header().nb_segs
    }

    /// Free bytes before the data in the first segment.
    pub fn headroom(&self) -> u16 {
        self.header().data_off
    }

    /// Free bytes after the data in the last segment.
    pub fn tailroom(&self) -> u16 {
        let l = self.last_seg();
        // SAFETY: segment of our chain.
        unsafe { (*l).buf_len - (*l).data_off - (*l).data_len }
    }

    /// IOVA of the first byte of packet data (for descriptors).
    pub fn data_iova(&self) -> Iova {
        let h = self.header();
        if h.buf_iova.is_valid() {
            h.buf_iova.add(u64::from(h.data_off))
        } else {
            Iova::BAD
        }
    }

    /// True if this mbuf's buffer is borrowed from another mbuf (a clone).
    pub fn is_indirect(&self) -> bool {
        self.header().ol_flags & OlFlags::INDIRECT.bits() != 0
    }

    /// References to the first segment's buffer (handles plus attached clones).
    pub fn refcnt(&self) -> u16 {
        // Relaxed: a snapshot for inspection.
        self.header().refcnt.load(Ordering::Relaxed)
    }

    // ------------------------------------------------------------------------------
    // Data access
    // ------------------------------------------------------------------------------

    /// First segment's data.
    pub fn data(&self) -> &[u8] {
        let h = self.header();
        // SAFETY: data_off + data_len <= buf_len inside the buffer (maintained by every
        // operation); a shared buffer is only read.
        unsafe {
            core::slice::from_raw_parts(
                h.buf_addr.as_ptr::<u8>().add(h.data_off as usize),
                h.data_len as usize,
            )
        }
    }

    /// First segment's data, writable; `None` if the buffer is shared.
    pub fn try_data_mut(&mut self) -> Option<&mut [u8]> {
        let h = self.h();
        // SAFETY: our segment; exclusive buffer checked before forming `&mut`.
        unsafe {
            if Self::seg_shared(h) {
                return None;
            }
            Some(core::slice::from_raw_parts_mut(
                (*h).buf_addr.as_ptr::<u8>().add((*h).data_off as usize),
                (*h).data_len as usize,
            ))
        }
    }

    /// Data of every segment, first to last.
    pub fn segments(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.seg_addrs().map(|a| {
            // SAFETY: a segment of our chain; bounds as in `data`.
            unsafe {
                let h = &*hp(a);
                core::slice::from_raw_parts(
                    h.buf_addr.as_ptr::<u8>().add(h.data_off as usize),
                    h.data_len as usize,
                )
            }
        })
    }

    /// `len` bytes from packet offset `off`: a slice into the mbuf if they lie in one
    /// segment, else copied into `buf` (which must hold `len` bytes) and returned from
    /// there (DPDK's `rte_pktmbuf_read`).
    pub fn read<'a>(&'a self, off: usize, len: usize, buf: &'a mut [u8]) -> Result<&'a [u8]> {
        let pkt_len = self.pkt_len();
        let end = off.checked_add(len).filter(|&e| e <= pkt_len as usize);
        let Some(end) = end else {
            return Err(Error::OutOfRange {
                off,
                end: off.saturating_add(len),
                pkt_len,
            });
        };
        let mut skip = off;
        let mut segs = self.segments();
        let mut first = None;
        for s in segs.by_ref() {
            if skip < s.len() {
                first = Some(s);
                break;
            }
            skip -= s.len();
        }
        let Some(s) = first else {
            return Ok(&[]);
        };
        if skip + len <= s.len() {
            return Ok(&s[skip..skip + len]);
        }
        if buf.len() < len {
            return Err(Error::OutOfRange {
                off: 0,
                end: len,
                pkt_len: buf.len() as u32,
            });
        }
        let mut copied = s.len() - skip;
        buf[..copied].copy_from_slice(&s[skip..]);
        for s in segs {
            let k = (len - copied).min(s.len());
            buf[copied..copied + k].copy_from_slice(&s[..k]);
            copied += k;
            if copied == len {
                break;
            }
        }
        debug_assert_eq!(copied, len);
        let _ = end;
        Ok(&buf[..len])
    }

    /// Copy `data` into the packet at offset `off`, across segments. Refused (nothing
    /// written) if the range is outside the packet or touches a shared buffer.
    pub fn write(&mut self, off: usize, data: &[u8]) -> Result<()> {
        let pkt_len = self.pkt_len();
        let end = off
            .checked_add(data.len())
            .filter(|&e| e <= pkt_len as usize);
        if end.is_none() {
            return Err(Error::OutOfRange {
                off,
                end: off.saturating_add(data.len()),
                pkt_len,
            });
        }
        // Pass 1: check every touched segment is exclusive.
        let mut pos = 0usize;
        for a in self.seg_addrs() {
            // SAFETY: segment of our chain.
            let (len, shared) = unsafe { ((*hp(a)).data_len as usize, Self::seg_shared(hp(a))) };
            if pos + len > off && pos < off + data.len() && shared {
                return Err(Error::Shared);
            }
            pos += len;
        }
        // Pass 2: copy.
        let mut pos = 0usize;
        let mut src = 0usize;
        for a in self.seg_addrs() {
            if src == data.len() {
                break;
            }
            let h = hp(a);
            // SAFETY: segment of our chain, exclusive (pass 1); bounds within data_len.
            unsafe {
                let len = (*h).data_len as usize;
                if pos + len > off {
                    let from = off.max(pos) - pos;
                    let k = (len - from).min(data.len() - src);
                    let dst = (*h)
                        .buf_addr
                        .as_ptr::<u8>()
                        .add((*h).data_off as usize + from);
                    core::ptr::copy_nonoverlapping(data.as_ptr().add(src), dst, k);
                    src += k;
                }
                pos += len;
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------
    // Headroom / tailroom operations (all leave the mbuf untouched on error)
    // ------------------------------------------------------------------------------

    /// Grow the data `len` bytes to the front (into the headroom) and return the new
    /// bytes (DPDK's `rte_pktmbuf_prepend`).
    pub fn prepend(&mut self, len: u16) -> Result<&mut [u8]> {
        let h = self.h();
        // SAFETY: our first segment; exclusive buffer checked before writing.
        unsafe {
            if Self::seg_shared(h) {
                return Err(Error::Shared);
            }
            if len > (*h).data_off {
                return Err(Error::NoHeadroom {
                    need: len.into(),
                    have: (*h).data_off.into(),
                });
            }
            let pkt = (*h)
                .pkt_len
                .checked_add(u32::from(len))
                .ok_or(Error::LenOverflow {
                    what: "pkt_len",
                    max: u32::MAX.into(),
                })?;
            (*h).data_off -= len;
            (*h).data_len += len; // cannot overflow: data_off + data_len <= buf_len <= u16::MAX
            (*h).pkt_len = pkt;
            Ok(core::slice::from_raw_parts_mut(
                (*h).buf_addr.as_ptr::<u8>().add((*h).data_off as usize),
                len as usize,
            ))
        }
    }

    /// Grow the data `len` bytes at the end of the last segment (into its tailroom) and
    /// return the new bytes (DPDK's `rte_pktmbuf_append`).
    pub fn append(&mut self, len: u16) -> Result<&mut [u8]> {
        let l = self.last_seg();
        let h = self.h();
        // SAFETY: segments of our chain; exclusive buffer checked before writing.
        unsafe {
            if Self::seg_shared(l) {
                return Err(Error::Shared);
            }
            let tail = (*l).buf_len - (*l).data_off - (*l).data_len;
            if len > tail {
                return Err(Error::NoTailroom {
                    need: len.into(),
                    have: tail.into(),
                });
            }
            let pkt = (*h)
                .pkt_len
                .checked_add(u32::from(len))
                .ok_or(Error::LenOverflow {
                    what: "pkt_len",
                    max: u32::MAX.into(),
                })?;
            let at = (*l).data_off as usize + (*l).data_len as usize;
            (*l).data_len += len;
            (*h).pkt_len = pkt;
            Ok(core::slice::from_raw_parts_mut(
                (*l).buf_addr.as_ptr::<u8>().add(at),
                len as usize,
            ))
        }
    }

    /// Remove `len` bytes from the front of the first segment (DPDK's `rte_pktmbuf_adj`).
    pub fn adj(&mut self, len: u16) -> Result<()> {
        let h = self.h();
        // SAFETY: our first segment; only our own header fields change.
        unsafe {
            if len > (*h).data_len {
                return Err(Error::TooShort {
                    need: len.into(),
                    have: (*h).data_len.into(),
                });
            }
            (*h).data_off += len;
            (*h).data_len -= len;
            (*h).pkt_len -= u32::from(len);
        }
        Ok(())
    }

    /// Remove `len` bytes from the end of the last segment (DPDK's `rte_pktmbuf_trim`).
    pub fn trim(&mut self, len: u16) -> Result<()> {
        let l = self.last_seg();
        let h = self.h();
        // SAFETY: segments of our chain; only our own header fields change.
        unsafe {
            if len > (*l).data_len {
                return Err(Error::TooShort {
                    need: len.into(),
                    have: (*l).data_len.into(),
                });
            }
            (*l).data_len -= len;
            (*h).pkt_len -= u32::from(len);
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------
    // Chains
    // ------------------------------------------------------------------------------

    /// Append the packet `tail` (one or more segments) after this packet's last segment
    /// (DPDK's `rte_pktmbuf_chain`). On error `tail` is handed back and nothing changed.
    pub fn chain(&mut self, tail: Mbuf) -> core::result::Result<(), ChainError> {
        let h = self.h();
        // SAFETY: both chains are ours; `tail` is consumed on success.
        unsafe {
            let have = u32::from((*h).nb_segs);
            let add = u32::from((*tail.h()).nb_segs);
            if have + add > u32::from(MAX_NB_SEGS) {
                return Err(ChainError {
                    error: Error::TooManySegs {
                        have,
                        add,
                        max: MAX_NB_SEGS.into(),
                    },
                    tail,
                });
            }
            let Some(pkt) = (*h).pkt_len.checked_add((*tail.h()).pkt_len) else {
                return Err(ChainError {
                    error: Error::LenOverflow {
                        what: "pkt_len",
                        max: u32::MAX.into(),
                    },
                    tail,
                });
            };
            let l = self.last_seg();
            (*l).next = tail.addr();
            (*h).nb_segs = (have + add) as u16;
            (*h).pkt_len = pkt;
            // The tail's own packet fields are meaningless inside a chain (as in DPDK);
            // keep them consistent for a segment: one segment's worth each.
            let t = tail.into_raw().as_ptr();
            (*t).pkt_len = u32::from((*t).data_len);
        }
        Ok(())
    }

    /// Copy every segment's data into the first segment and free the others (DPDK's
    /// `rte_pktmbuf_linearize`). Refused (nothing changed) if the first segment lacks the
    /// tailroom or its buffer is shared.
    pub fn linearize(&mut self) -> Result<()> {
        let h = self.h();
        // SAFETY: our chain; the first buffer is exclusive (checked) and the others are
        // only read; detached segments are then owned by us and freed.
        unsafe {
            if (*h).nb_segs == 1 && (*h).next.0 == 0 {
                return Ok(());
            }
            if Self::seg_shared(h) {
                return Err(Error::Shared);
            }
            let need = (*h).pkt_len as usize - (*h).data_len as usize;
            let room = ((*h).buf_len - (*h).data_off - (*h).data_len) as usize;
            if need > room {
                return Err(Error::NoTailroom { need, have: room });
            }
            let mut dst = (*h)
                .buf_addr
                .as_ptr::<u8>()
                .add((*h).data_off as usize + (*h).data_len as usize);
            let rest = (*h).next;
            let mut s = rest;
            while s.0 != 0 {
                let sh = hp(s);
                let k = (*sh).data_len as usize;
                core::ptr::copy_nonoverlapping(
                    (*sh).buf_addr.as_ptr::<u8>().add((*sh).data_off as usize),
                    dst,
                    k,
                );
                dst = dst.add(k);
                s = (*sh).next;
            }
            (*h).data_len = (*h).pkt_len as u16;
            (*h).next = VirtAddr(0);
            (*h).nb_segs = 1;
            let mut pending = Pending::new();
            free_chain(rest, &mut pending);
            pending.flush();
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------
    // Clones (indirect mbufs)
    // ------------------------------------------------------------------------------

    /// A zero-copy clone: one indirect mbuf from `pool` per segment, each attached to the
    /// buffer it mirrors (whose refcount goes up). `None` if `pool` runs out (nothing is
    /// left allocated). While clones live, no one may write the shared buffers: writes
    /// through either handle are refused with [`Error::Shared`].
    pub fn clone_in(&self, pool: &PktmbufPool) -> Option<Mbuf> {
        let mut head: Option<Mbuf> = None;
        let mut last: *mut MbufHeader = core::ptr::null_mut();
        for a in self.seg_addrs() {
            let mi = Mbuf::alloc(pool)?; // on failure `head` drops: everything detaches
            let md = hp(a);
            let mi_h = mi.h();
            // SAFETY: `md` is a segment of our chain (read only; its direct buffer's refcnt
            // is atomic); `mi` is a fresh mbuf we own.
            unsafe {
                let direct = if (*md).ol_flags & OlFlags::INDIRECT.bits() != 0 {
                    (*md).direct
                } else {
                    a
                };
                // Relaxed: like Arc::clone, we already hold a reference, so the count
                // cannot reach 0 concurrently; no data is published by the increment.
                (*hp(direct)).refcnt.fetch_add(1, Ordering::Relaxed);
                (*mi_h).buf_addr = (*md).buf_addr;
                (*mi_h).buf_iova = (*md).buf_iova;
                (*mi_h).buf_len = (*md).buf_len;
                (*mi_h).data_off = (*md).data_off;
                (*mi_h).data_len = (*md).data_len;
                (*mi_h).direct = direct;
                (*mi_h).port = (*md).port;
                (*mi_h).vlan_tci = (*md).vlan_tci;
                (*mi_h).vlan_tci_outer = (*md).vlan_tci_outer;
                (*mi_h).tx_offload = (*md).tx_offload;
                (*mi_h).rss_hash = (*md).rss_hash;
                (*mi_h).hash_hi = (*md).hash_hi;
                (*mi_h).packet_type = (*md).packet_type;
                (*mi_h).ol_flags = (*md).ol_flags | OlFlags::INDIRECT.bits();
                (*mi_h).pkt_len = u32::from((*md).data_len);
            }
            match head {
                None => {
                    last = mi_h;
                    head = Some(mi);
                }
                Some(ref h) => {
                    // SAFETY: `last` is the tail of the chain we are building (owned).
                    unsafe {
                        (*last).next = mi.addr();
                        (*h.h()).nb_segs += 1;
                    }
                    last = mi.into_raw().as_ptr();
                }
            }
        }
        let head = head?;
        // SAFETY: head of our new chain.
        unsafe { (*head.h()).pkt_len = self.pkt_len() };
        Some(head)
    }

    // ------------------------------------------------------------------------------
    // Metadata
    // ------------------------------------------------------------------------------

    /// Offload flags.
    pub fn ol_flags(&self) -> OlFlags {
        OlFlags::from_bits_retain(self.header().ol_flags)
    }

    /// Set offload flags (the `INDIRECT`/`EXTERNAL` bits are kept as they are).
    pub fn set_ol_flags(&mut self, f: OlFlags) {
        let keep = OlFlags::INDIRECT | OlFlags::EXTERNAL;
        let h = self.h();
        // SAFETY: our own header field.
        unsafe { (*h).ol_flags = ((*h).ol_flags & keep.bits()) | (f - keep).bits() };
    }

    /// Input port.
    pub fn port(&self) -> u16 {
        self.header().port
    }

    /// Set the input port.
    pub fn set_port(&mut self, port: u16) {
        // SAFETY: our own header field.
        unsafe { (*self.h()).port = port };
    }

    /// Packet type.
    pub fn packet_type(&self) -> u32 {
        self.header().packet_type
    }

    /// Set the packet type.
    pub fn set_packet_type(&mut self, t: u32) {
        // SAFETY: our own header field.
        unsafe { (*self.h()).packet_type = t };
    }

    /// RSS hash.
    pub fn rss_hash(&self) -> u32 {
        self.header().rss_hash
    }

    /// Set the RSS hash.
    pub fn set_rss_hash(&mut self, v: u32) {
        // SAFETY: our own header field.
        unsafe { (*self.h()).rss_hash = v };
    }

    /// VLAN TCI.
    pub fn vlan_tci(&self) -> u16 {
        self.header().vlan_tci
    }

    /// Set the VLAN TCI.
    pub fn set_vlan_tci(&mut self, v: u16) {
        // SAFETY: our own header field.
        unsafe { (*self.h()).vlan_tci = v };
    }

    /// TX offload lengths.
    pub fn tx_offload(&self) -> TxOffload {
        TxOffload::unpack(self.header().tx_offload)
    }

    /// Set the TX offload lengths; refused if one does not fit its bit field.
    pub fn set_tx_offload(&mut self, t: TxOffload) -> Result<()> {
        let w = t
            .pack()
            .map_err(|(field, value, max)| Error::OffloadOverflow { field, value, max })?;
        // SAFETY: our own header field.
        unsafe { (*self.h()).tx_offload = w };
        Ok(())
    }

    /// The per-mbuf private area (`priv_size` bytes between header and buffer).
    pub fn priv_data(&self) -> &[u8] {
        let h = self.header();
        // SAFETY: the private area follows the header inside the object.
        unsafe {
            core::slice::from_raw_parts(
                self.h().cast::<u8>().add(MBUF_HEADER_LEN),
                h.priv_size as usize,
            )
        }
    }

    /// The private area, writable (it belongs to this mbuf, never shared).
    pub fn priv_data_mut(&mut self) -> &mut [u8] {
        let n = self.header().priv_size as usize;
        // SAFETY: as above; `&mut self` makes it exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.h().cast::<u8>().add(MBUF_HEADER_LEN), n) }
    }

    /// Drop every segment but the first and reset the first's header: empty, default
    /// headroom, no flags, port invalid.
    pub fn reset(&mut self) {
        let h = self.h();
        // SAFETY: our chain; the rest of it is detached and freed.
        unsafe {
            let rest = (*h).next;
            if rest.0 != 0 {
                let mut pending = Pending::new();
                free_chain(rest, &mut pending);
                pending.flush();
            }
            Self::reset_raw(h);
        }
    }

    /// Write a description of the packet (and the first `dump_len` data bytes) to `w`.
    pub fn dump(&self, w: &mut dyn Write, dump_len: usize) -> std::io::Result<()> {
        let h = self.header();
        writeln!(
            w,
            "dump mbuf at {}, iova={}, buf_len={}",
            self.addr(),
            h.buf_iova,
            h.buf_len
        )?;
        writeln!(
            w,
            "  pkt_len={}, ol_flags={:#x}, nb_segs={}, port={}, ptype={:#x}",
            h.pkt_len, h.ol_flags, h.nb_segs, h.port, h.packet_type
        )?;
        let mut left = dump_len;
        for (i, a) in self.seg_addrs().enumerate() {
            // SAFETY: segment of our chain.
            let s = unsafe { &*hp(a) };
            writeln!(
                w,
                "  segment {i} at {}, data={}+{}, data_len={}, refcnt={}{}",
                a,
                s.buf_addr,
                s.data_off,
                s.data_len,
                s.refcnt.load(Ordering::Relaxed),
                if s.ol_flags & OlFlags::INDIRECT.bits() != 0 {
                    ", indirect"
                } else {
                    ""
                }
            )?;
            if left > 0 {
                // SAFETY: bounds as in `data`.
                let d = unsafe {
                    core::slice::from_raw_parts(
                        s.buf_addr.as_ptr::<u8>().add(s.data_off as usize),
                        s.data_len as usize,
                    )
                };
                let k = left.min(d.len());
                for (j, line) in d[..k].chunks(16).enumerate() {
                    write!(w, "    {:04x}:", j * 16)?;
                    for b in line {
                        write!(w, " {b:02x}")?;
                    }
                    writeln!(w)?;
                }
                left -= k;
            }
        }
        Ok(())
    }
}

impl core::ops::Deref for Mbuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data()
    }
}

impl core::ops::DerefMut for Mbuf {
    /// # Panics
    /// If the first segment's buffer is shared (see the type docs).
    fn deref_mut(&mut self) -> &mut [u8] {
        match self.try_data_mut() {
            Some(d) => d,
            None => {
                panic!("Mbuf::deref_mut on a shared buffer (clone or attached); use try_data_mut")
            }
        }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        let mut pending = Pending::new();
        // SAFETY: we own the chain.
        unsafe { free_chain(self.addr(), &mut pending) };
        pending.flush();
    }
}

// ------------------------------------------------------------------------------------
// Free path
// ------------------------------------------------------------------------------------

/// Objects waiting to go back to one pool, put in bulk.
struct Pending {
    pool: VirtAddr,
    /// The first `n` are initialised. Left uninitialised otherwise: zeroing 256 bytes
    /// on every free cost more than freeing a small burst.
    objs: [MaybeUninit<VirtAddr>; 32],
    n: usize,
}

impl Pending {
    #[inline(always)]
    fn new() -> Pending {
        Pending {
            pool: VirtAddr(0),
            objs: [MaybeUninit::uninit(); 32],
            n: 0,
        }
    }

    #[inline(always)]
    fn push(&mut self, pool: VirtAddr, obj: VirtAddr) {
        if self.n == self.objs.len() || (self.n > 0 && pool != self.pool) {
            self.flush();
        }
        self.pool = pool;
        self.objs[self.n].write(obj);
        self.n += 1;
    }

    #[inline]
    fn flush(&mut self) {
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

/// Release every segment of the chain starting at `first`, queueing freed objects.
///
/// # Safety
/// We own the chain.
#[inline(always)]
unsafe fn free_chain(first: VirtAddr, pending: &mut Pending) {
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

#[cfg(test)]
mod tests {
    //! Header and pointer arithmetic on caller-owned memory (Miri-friendly: no EAL, no
    //! pool; mbufs are released with `into_raw` so no pool is ever looked up).
    use super::*;
    use crate::header::MBUF_DEFAULT_BUF_SIZE;

    /// Caller-owned memory for `n` mbufs of `buf_len`-byte buffers.
    struct Arena {
        mem: Vec<u64>,
        stride: usize,
    }

    impl Arena {
        fn new(n: usize, buf_len: u16) -> Arena {
            let stride = (MBUF_HEADER_LEN + buf_len as usize).next_multiple_of(64);
            let mut a = Arena {
                mem: vec![0u64; (n * stride + 64) / 8],
                stride,
            };
            for i in 0..n {
                let h = a.slot(i);
                // SAFETY: the slot lies inside `mem` (aligned start, n strides).
                unsafe {
                    let buf = VirtAddr::from_ptr(h.cast::<u8>().add(MBUF_HEADER_LEN));
                    MbufHeader::init(
                        h,
                        VirtAddr(0),
                        buf,
                        Iova(0x10_0000 + (i * stride) as u64),
                        buf_len,
                        0,
                    );
                }
            }
            a
        }

        fn slot(&mut self, i: usize) -> *mut MbufHeader {
            let base = self.mem.as_mut_ptr().cast::<u8>();
            let pad = base.align_offset(64);
            // SAFETY: within the allocation (one spare line for the alignment pad).
            unsafe { base.add(pad + i * self.stride).cast() }
        }

        fn mbuf(&mut self, i: usize) -> Mbuf {
            // SAFETY: a valid header in memory that outlives the test (released with
            // `into_raw` before the arena drops).
            unsafe { Mbuf::from_raw(NonNull::new(self.slot(i)).unwrap()) }
        }
    }

    #[test]
    fn fresh_mbuf_rooms() {
        let mut a = Arena::new(1, MBUF_DEFAULT_BUF_SIZE);
        let m = a.mbuf(0);
        assert_eq!(m.headroom(), 128);
        assert_eq!(m.tailroom(), 2048);
        assert_eq!(m.pkt_len(), 0);
        assert_eq!(m.nb_segs(), 1);
        assert_eq!(m.refcnt(), 1);
        assert_eq!(m.data_iova(), Iova(0x10_0000 + 128));
        assert!(m.is_empty());
        m.into_raw();
    }

    #[test]
    fn prepend_append_adj_trim_and_limits() {
        let mut a = Arena::new(1, 256);
        let mut m = a.mbuf(0);
        m.append(10).unwrap().copy_from_slice(b"0123456789");
        assert_eq!(&*m, b"0123456789");
        m.prepend(2).unwrap().copy_from_slice(b"ab");
        assert_eq!(&*m, b"ab0123456789");
        assert_eq!((m.headroom(), m.pkt_len(), m.data_len()), (126, 12, 12));
        // overflow: untouched
        assert!(matches!(
            m.prepend(127),
            Err(Error::NoHeadroom {
                need: 127,
                have: 126
            })
        ));
        assert!(matches!(
            m.append(256 - 128 - 10 + 1),
            Err(Error::NoTailroom { .. })
        ));
        assert!(matches!(m.adj(13), Err(Error::TooShort { .. })));
        assert!(matches!(m.trim(13), Err(Error::TooShort { .. })));
        assert_eq!(&*m, b"ab0123456789");
        assert_eq!((m.headroom(), m.tailroom()), (126, 118));
        m.adj(3).unwrap();
        m.trim(2).unwrap();
        assert_eq!(&*m, b"1234567");
        assert_eq!(m.pkt_len(), 7);
        m[0] = b'X';
        assert_eq!(&*m, b"X234567");
        // fill to the last byte exactly
        let t = m.tailroom();
        m.append(t).unwrap();
        assert_eq!(m.tailroom(), 0);
        let hr = m.headroom();
        m.prepend(hr).unwrap();
        assert_eq!(m.headroom(), 0);
        assert_eq!(m.data_len(), 256);
        m.reset();
        assert_eq!((m.headroom(), m.pkt_len()), (128, 0));
        m.into_raw();
    }

    #[test]
    fn chains_read_write_across_segments() {
        let mut a = Arena::new(3, 192); // 64 bytes of data room after headroom
        let mut m = a.mbuf(0);
        m.append(4).unwrap().copy_from_slice(b"abcd");
        let mut t1 = a.mbuf(1);
        t1.append(3).unwrap().copy_from_slice(b"efg");
        let mut t2 = a.mbuf(2);
        t2.append(5).unwrap().copy_from_slice(b"hijkl");
        t1.chain(t2).unwrap();
        assert_eq!((t1.nb_segs(), t1.pkt_len()), (2, 8));
        m.chain(t1).unwrap();
        assert_eq!((m.nb_segs(), m.pkt_len(), m.data_len()), (3, 12, 4));
        let segs: Vec<&[u8]> = m.segments().collect();
        assert_eq!(segs, [&b"abcd"[..], b"efg", b"hijkl"]);
        let mut buf = [0u8; 12];
        assert_eq!(m.read(0, 12, &mut buf).unwrap(), b"abcdefghijkl");
        assert_eq!(
            m.read(4, 3, &mut buf).unwrap(),
            b"efg",
            "within one segment"
        );
        assert_eq!(m.read(2, 7, &mut buf).unwrap(), b"cdefghi");
        assert!(matches!(
            m.read(10, 3, &mut buf),
            Err(Error::OutOfRange { .. })
        ));
        assert!(matches!(
            m.read(usize::MAX, 2, &mut buf),
            Err(Error::OutOfRange { .. })
        ));
        m.write(3, b"XYZW").unwrap();
        assert_eq!(m.read(0, 12, &mut buf).unwrap(), b"abcXYZWhijkl");
        assert!(matches!(m.write(10, b"123"), Err(Error::OutOfRange { .. })));
        // tailroom/append/trim act on the last segment
        assert_eq!(m.tailroom(), 64 - 5);
        m.append(1).unwrap()[0] = b'm';
        m.trim(2).unwrap();
        assert_eq!(m.read(0, 11, &mut buf).unwrap(), b"abcXYZWhijk");
        assert_eq!(m.pkt_len(), 11);
        // release the chain without a pool
        let head = m.into_raw();
        // SAFETY: test-only inspection of our own chain.
        unsafe {
            let n1 = (*head.as_ptr()).next;
            assert_ne!(n1.0, 0);
            assert_ne!((*hp(n1)).next.0, 0);
        }
    }

    #[test]
    fn chain_limit_hands_tail_back() {
        let mut a = Arena::new(2, 192);
        let mut m = a.mbuf(0);
        let t = a.mbuf(1);
        // SAFETY: test forges a near-full segment count on our own header.
        unsafe { (*m.h()).nb_segs = MAX_NB_SEGS };
        let e = m.chain(t).unwrap_err();
        assert!(matches!(e.error, Error::TooManySegs { .. }));
        assert_eq!(m.header().next, VirtAddr(0), "untouched");
        e.tail.into_raw();
        m.into_raw();
    }

    #[test]
    fn shared_buffer_refuses_writes() {
        let mut a = Arena::new(1, 192);
        let mut m = a.mbuf(0);
        m.append(4).unwrap();
        // Simulate a clone holding a reference.
        m.header().refcnt.store(2, Ordering::Relaxed);
        assert!(m.try_data_mut().is_none());
        assert!(matches!(m.prepend(1), Err(Error::Shared)));
        assert!(matches!(m.append(1), Err(Error::Shared)));
        assert!(matches!(m.write(0, b"x"), Err(Error::Shared)));
        assert_eq!(m.pkt_len(), 4);
        m.adj(1).unwrap(); // only moves our own window
        m.header().refcnt.store(1, Ordering::Relaxed);
        assert!(m.try_data_mut().is_some());
        m.into_raw();
    }

    #[test]
    fn metadata_and_dump() {
        let mut a = Arena::new(1, 192);
        let mut m = a.mbuf(0);
        m.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_IP_CKSUM | OlFlags::INDIRECT);
        assert!(!m.is_indirect(), "INDIRECT cannot be set by hand");
        assert_eq!(m.ol_flags(), OlFlags::TX_IPV4 | OlFlags::TX_IP_CKSUM);
        let t = TxOffload {
            l2_len: 14,
            l3_len: 20,
            ..Default::default()
        };
        m.set_tx_offload(t).unwrap();
        assert_eq!(m.tx_offload(), t);
        assert!(matches!(
            m.set_tx_offload(TxOffload { l2_len: 300, ..t }),
            Err(Error::OffloadOverflow { .. })
        ));
        assert_eq!(m.tx_offload(), t);
        m.set_port(3);
        m.set_vlan_tci(100);
        m.set_rss_hash(0xdead);
        m.set_packet_type(0x11);
        assert_eq!(
            (m.port(), m.vlan_tci(), m.rss_hash(), m.packet_type()),
            (3, 100, 0xdead, 0x11)
        );
        m.append(3).unwrap().copy_from_slice(&[1, 2, 3]);
        let mut out = Vec::new();
        m.dump(&mut out, 16).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.contains("pkt_len=3") && s.contains("port=3") && s.contains(" 01 02 03"),
            "{s}"
        );
        m.into_raw();
    }
}
