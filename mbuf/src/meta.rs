//! Packet metadata (offload flags, port, packet type, hashes, VLAN, TX offload, private
//! area), reset, and the human-readable dump (DPDK's `rte_pktmbuf_dump`).

use core::sync::atomic::Ordering;
use std::io::Write;

use crate::free::free_chain_now;
use crate::header::hp;
use crate::header::MBUF_HEADER_LEN;
use crate::{Error, Mbuf, OlFlags, Result, TxOffload};

/// A getter and a setter for each plain header field of the first segment (DPDK reads
/// and writes these fields directly).
macro_rules! field_accessors {
    ($($(#[doc = $doc:literal])* $field:ident, $set:ident: $t:ty;)*) => {$(
        $(#[doc = $doc])*
        pub fn $field(&self) -> $t {
            self.header().$field
        }

        /// Set the field of the same name (see its getter).
        pub fn $set(&mut self, v: $t) {
            // SAFETY: a field of our own header, which no other thread writes (only
            // `refcnt` is shared, and this is not it).
            unsafe { (*self.h()).$field = v };
        }
    )*};
}

impl Mbuf {
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

    field_accessors! {
        /// Input port.
        port, set_port: u16;
        /// Packet type.
        packet_type, set_packet_type: u32;
        /// RSS hash.
        rss_hash, set_rss_hash: u32;
        /// VLAN TCI.
        vlan_tci, set_vlan_tci: u16;
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
                free_chain_now(rest);
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
