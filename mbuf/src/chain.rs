//! Multi-segment packets: chaining two packets and linearising one.

use eal::VirtAddr;

use crate::free::free_chain_now;
use crate::header::hp;
use crate::header::MAX_NB_SEGS;
use crate::{ChainError, Error, Mbuf, Result};

impl Mbuf {
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
            free_chain_now(rest);
        }
        Ok(())
    }
}
