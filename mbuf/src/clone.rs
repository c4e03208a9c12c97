//! Zero-copy clones: indirect mbufs that share the buffers of the original and hold a
//! reference on each (released by the free path's `detach`).

use core::sync::atomic::Ordering;

use crate::header::hp;
use crate::header::MbufHeader;
use crate::pool::PktmbufPool;
use crate::{Mbuf, OlFlags};

impl Mbuf {
    // ------------------------------------------------------------------------------
    // Clones (indirect mbufs)
    // ------------------------------------------------------------------------------

    /// A zero-copy clone: one indirect mbuf from `pool` per segment, each attached to the
    /// buffer it mirrors (whose refcount goes up). `None` if `pool` runs out (nothing is
    /// left allocated). While clones live, no one may write the shared buffers: writes
    /// through either handle are refused with [`Error::Shared`](crate::Error::Shared).
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
}
