//! The owned [`Mbuf`] handle: ownership, raw access, lengths and rooms, and `Drop`.
//! Its other operations are in `alloc`, `data`, `chain`, `clone` and `meta`.

use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use eal::{Iova, VirtAddr};

use crate::free::free_chain_now;
use crate::header::{hp, MbufHeader};
use crate::OlFlags;

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

impl Mbuf {
    // ------------------------------------------------------------------------------
    // Raw access
    // ------------------------------------------------------------------------------

    #[inline(always)]
    pub(crate) fn h(&self) -> *mut MbufHeader {
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
    pub(crate) fn seg_addrs(&self) -> impl Iterator<Item = VirtAddr> + '_ {
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

    pub(crate) fn last_seg(&self) -> *mut MbufHeader {
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
    pub(crate) unsafe fn seg_shared(s: *mut MbufHeader) -> bool {
        // SAFETY: forwarded.
        unsafe {
            // Acquire: pairs with the release decrement in `release_ref`, so once we see
            // 1 every former sharer's accesses to the buffer happened before ours.
            (*s).ol_flags & OlFlags::INDIRECT.bits() != 0 || (*s).refcnt.load(Ordering::Acquire) > 1
        }
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
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the chain.
        unsafe { free_chain_now(self.addr()) };
    }
}

#[cfg(test)]
mod tests {
    //! Header and pointer arithmetic on caller-owned memory (Miri-friendly: no EAL, no
    //! pool; mbufs are released with `into_raw` so no pool is ever looked up).
    use super::*;
    use crate::header::{MAX_NB_SEGS, MBUF_DEFAULT_BUF_SIZE, MBUF_HEADER_LEN};
    use crate::{Error, TxOffload};

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
