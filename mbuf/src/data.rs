//! Data access and the headroom/tailroom operations (prepend, append, adj, trim); every
//! one leaves the mbuf untouched on error.

use crate::header::hp;
use crate::{Error, Mbuf, Result};

/// `pkt_len` after growing the packet by `len` bytes, or the error that leaves it as it is.
#[inline]
fn grown_pkt_len(pkt_len: u32, len: u16) -> Result<u32> {
    pkt_len
        .checked_add(u32::from(len))
        .ok_or(Error::LenOverflow {
            what: "pkt_len",
            max: u32::MAX.into(),
        })
}

/// Whether `len` bytes can come off a segment holding `data_len`.
#[inline]
fn shrinkable(data_len: u16, len: u16) -> Result<()> {
    if len > data_len {
        return Err(Error::TooShort {
            need: len.into(),
            have: data_len.into(),
        });
    }
    Ok(())
}

impl Mbuf {
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
            let pkt = grown_pkt_len((*h).pkt_len, len)?;
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
            let pkt = grown_pkt_len((*h).pkt_len, len)?;
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
            shrinkable((*h).data_len, len)?;
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
            shrinkable((*l).data_len, len)?;
            (*l).data_len -= len;
            (*h).pkt_len -= u32::from(len);
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
