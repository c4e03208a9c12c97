//! Allocation: one mbuf, a bulk of them, or a bulk set up as received packets; and
//! the bulk free that returns runs of segments to their pools together.

use core::mem::MaybeUninit;
use core::ptr::NonNull;

use eal::VirtAddr;

use crate::free::{free_chain_fast, Pending};
use crate::header::hp;
use crate::header::{MbufHeader, PKTMBUF_HEADROOM, PORT_INVALID};
use crate::pool::PktmbufPool;
use crate::{Error, Mbuf, OlFlags, Result};

impl Mbuf {
    // ------------------------------------------------------------------------------

    /// Reset a freshly taken mbuf (DPDK's `rte_pktmbuf_reset`).
    ///
    /// # Safety
    /// `h` is an mbuf we own exclusively.
    #[inline(always)]
    pub(crate) unsafe fn reset_raw(h: *mut MbufHeader) {
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
        // SAFETY: a non-null object address; the mbuf was just handed out to us alone.
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(h)) })
    }

    /// Take an object a driver got straight from the pool's mempool (`get_bulk`, no
    /// reset) and lent to a device, as a received single-segment packet of `data_len`
    /// bytes at `data_off` from `port` (the RX half of DPDK's mbuf-backed AF_XDP UMEM).
    ///
    /// # Safety
    /// `obj` is an object of a packet-mbuf pool, taken from its mempool by the caller
    /// and held by nobody else (free-state header: refcnt 1, one segment, no next), and
    /// `data_off + data_len` is within its buffer.
    #[inline(always)]
    pub unsafe fn from_raw_rx(obj: VirtAddr, data_off: u16, data_len: u16, port: u16) -> Mbuf {
        let h = hp(obj);
        // SAFETY: forwarded: an mbuf header we alone hold, lengths inside the buffer.
        unsafe {
            debug_assert!(data_off as usize + data_len as usize <= (*h).buf_len as usize);
            MbufHeader::rearm(h, data_off, data_len, port);
            Mbuf::from_raw(NonNull::new_unchecked(h))
        }
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
                // SAFETY: a non-null object address; the mbuf was just handed out to us.
                *slot = Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(hp(obj))) });
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
        // Every mbuf of a pool has the pool's data room as its buffer (an attached
        // external buffer is given back before the mbuf returns to the pool).
        let data_off = PKTMBUF_HEADROOM.min(pool.data_room_size());
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
                    debug_assert!(data_off == PKTMBUF_HEADROOM.min((*h).buf_len));
                    MbufHeader::rearm(h, data_off, data_len, port);
                }
                // SAFETY: `reserve(n)` left room for n >= done + k elements past
                // `start`; `len + i` is inside it. Non-null object address.
                unsafe {
                    dst.add(len + i)
                        .write(Mbuf::from_raw(NonNull::new_unchecked(h)))
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
            unsafe { free_chain_fast(VirtAddr::from_ptr(head.as_ptr()), &mut pending) };
        }
        pending.flush();
    }
}
