//! The RX ring walks of `net_af_packet`: TPACKET_V3 (blocks of packed frames, one status
//! word per block) and TPACKET_V2 (fixed frames, one status word each, the fallback).
//!
//! Ownership (Documentation/networking/packet_mmap.rst): a frame (V2) or block (V3) is
//! ours while its status has `TP_STATUS_USER` and the kernel's otherwise. We load the
//! status with Acquire before reading the frame or block (pairs with the kernel's
//! `smp_wmb` before it stores the status) and hand it back with a Release store of
//! `TP_STATUS_KERNEL` after our last read (pairs with the kernel's read of the status
//! before it writes the memory again).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use mbuf::{Mbuf, PktmbufPool};

use super::super::netif::{mbuf_from, RxDrop};
use super::ring::{status_word, PacketSock};
use crate::driver::{QueueStats, RxQueueOps, Tally};
use crate::sys::{self, Tpacket2Hdr, Tpacket3Hdr};

/// `sll_pkttype` of a frame this host sent itself.
const PACKET_OUTGOING: u8 = 4;
/// Offset of `sll_pkttype` in the `sockaddr_ll` after the aligned frame header.
const SLL_PKTTYPE: usize = 10;

/// What both walks share: where mbufs come from and how a frame becomes one.
pub(super) struct RxCommon {
    pub pool: PktmbufPool,
    pub port: u16,
    pub vlan_strip: bool,
    pub stats: QueueStats,
}

/// What to do with a frame after [`RxCommon::take`].
enum Taken {
    /// Consumed (delivered, skipped or dropped and counted): move on.
    Next,
    /// No mbuf: leave the frame where it is for the next poll.
    Stay,
}

impl RxCommon {
    /// Turn the frame at `f` (header fields already read: MAC offset `mac`, `snap`
    /// bytes captured of `len`, `vlan` = (TCI, TPID) if the kernel took a tag off) into an
    /// mbuf on `out`. `hdr_room` is the bytes of ring memory from `f` that belong to the
    /// frame; `sll` the offset of its `sockaddr_ll`.
    #[allow(clippy::too_many_arguments)]
    fn take(
        &self,
        f: *const u8,
        hdr_room: usize,
        sll: usize,
        (mac, snap, len): (usize, usize, usize),
        vlan: Option<(u16, u16)>,
        t: &mut Tally,
        out: &mut Vec<Mbuf>,
    ) -> Taken {
        // SAFETY: `sll + SLL_PKTTYPE < hdr_room`: inside the frame, which is ours.
        let pkttype = unsafe { f.add(sll + SLL_PKTTYPE).read_volatile() };
        if pkttype == PACKET_OUTGOING {
            return Taken::Next; // a frame this host sent on the interface: skip
        }
        if mac + snap > hdr_room || len > snap || snap < 14 {
            t.errs += 1; // truncated to the frame size, or nonsense offsets
            return Taken::Next;
        }
        // SAFETY: bounds checked against the frame's room; the kernel does not write a
        // frame or block it handed to us until we give it back.
        let d = unsafe { std::slice::from_raw_parts(f.add(mac), snap) };
        let r = match vlan {
            Some((tci, tpid)) if !self.vlan_strip => {
                let mut tag = [0u8; 4];
                tag[..2].copy_from_slice(&tpid.to_be_bytes());
                tag[2..].copy_from_slice(&tci.to_be_bytes());
                mbuf_from(&self.pool, self.port, &[&d[..12], &tag, &d[12..]])
            }
            _ => mbuf_from(&self.pool, self.port, &[d]),
        };
        match r {
            Ok(mut m) => {
                if let (Some((tci, _)), true) = (vlan, self.vlan_strip) {
                    m.set_vlan_tci(tci);
                    m.set_ol_flags(
                        m.ol_flags() | mbuf::OlFlags::RX_VLAN | mbuf::OlFlags::RX_VLAN_STRIPPED,
                    );
                }
                t.bytes += u64::from(m.pkt_len());
                out.push(m);
                t.n += 1;
                Taken::Next
            }
            Err(RxDrop::NoMbuf) => {
                self.stats.add_nombuf(1);
                Taken::Stay
            }
            Err(RxDrop::TooBig) => {
                t.errs += 1;
                Taken::Next
            }
        }
    }
}

/// The tag the kernel took off, from a frame's status bits, TCI and TPID.
fn vlan_of(status: u32, tci: u16, tpid: u16) -> Option<(u16, u16)> {
    if status & sys::TP_STATUS_VLAN_VALID == 0 || tci == 0 {
        return None;
    }
    let tpid = if status & sys::TP_STATUS_VLAN_TPID_VALID != 0 && tpid != 0 {
        tpid
    } else {
        0x8100
    };
    Some((tci, tpid))
}

/// TPACKET_V3 RX: the kernel fills a block with frames back to back and hands the whole
/// block over with one status store; we walk its frames by `tp_next_offset` and retire
/// the block when the last one is consumed.
pub(super) struct RxV3 {
    s: Arc<PacketSock>,
    c: RxCommon,
    /// The block we are in (or will look at next).
    block: u32,
    /// Frames of the open block not consumed yet (0: no block open).
    left: u32,
    /// Offset in the open block of its next frame.
    at: usize,
}

impl RxV3 {
    pub(super) fn new(s: Arc<PacketSock>, c: RxCommon) -> RxV3 {
        RxV3 {
            block: s.rx_cursor.load(Ordering::Relaxed),
            s,
            c,
            left: 0,
            at: 0,
        }
    }

    /// Give the open block back to the kernel and move to the next one.
    fn retire(&mut self, b: *mut u8) {
        // Release: every read of the block's frames happens before the kernel refills it.
        status_word(b, sys::V3_BLOCK_STATUS_OFF).store(sys::TP_STATUS_KERNEL, Ordering::Release);
        self.left = 0;
        self.block = if self.block + 1 == self.s.block_nr {
            0
        } else {
            self.block + 1
        };
    }
}

impl Drop for RxV3 {
    fn drop(&mut self) {
        if self.left > 0 {
            // Frames left in an open block are dropped with it; the ring goes on.
            self.retire(self.s.block(self.block));
        }
        self.s.rx_cursor.store(self.block, Ordering::Relaxed);
    }
}

impl RxQueueOps for RxV3 {
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let mut t = Tally::default();
        let bsz = self.s.block_size as usize;
        let hdr = std::mem::size_of::<Tpacket3Hdr>();
        'blocks: while t.n < max {
            let b = self.s.block(self.block);
            if self.left == 0 {
                // Acquire: pairs with the kernel's barrier before it marks the block ours.
                let st = status_word(b, sys::V3_BLOCK_STATUS_OFF).load(Ordering::Acquire);
                if st & sys::TP_STATUS_USER == 0 {
                    break;
                }
                // SAFETY: the block is ours; its header fields are aligned u32s in it.
                let (n, first) = unsafe {
                    (
                        b.add(sys::V3_BLOCK_NUM_PKTS_OFF)
                            .cast::<u32>()
                            .read_volatile(),
                        b.add(sys::V3_BLOCK_FIRST_PKT_OFF)
                            .cast::<u32>()
                            .read_volatile(),
                    )
                };
                if n == 0 {
                    self.retire(b); // an empty block retired by the timer
                    continue;
                }
                self.left = n;
                self.at = first as usize;
            }
            while self.left > 0 && t.n < max {
                if self.at + hdr + SLL_PKTTYPE + 1 > bsz {
                    t.errs += u64::from(self.left); // nonsense chain: drop the rest
                    self.retire(b);
                    continue 'blocks;
                }
                // SAFETY: in bounds (checked above) of a block that is ours.
                let f = unsafe { b.add(self.at) };
                // SAFETY: as above; plain integer fields.
                let h = unsafe { f.cast::<Tpacket3Hdr>().read_volatile() };
                let vlan = vlan_of(h.tp_status, h.tp_vlan_tci as u16, h.tp_vlan_tpid);
                let geo = (h.tp_mac as usize, h.tp_snaplen as usize, h.tp_len as usize);
                if let Taken::Stay = self.c.take(f, bsz - self.at, hdr, geo, vlan, &mut t, out) {
                    break 'blocks;
                }
                self.left -= 1;
                self.at += h.tp_next_offset as usize;
            }
            if self.left == 0 {
                self.retire(b);
            }
        }
        self.c.stats.add_rx(&t);
        t.n
    }
}

/// TPACKET_V2 RX: one status word per fixed frame.
pub(super) struct RxV2 {
    s: Arc<PacketSock>,
    c: RxCommon,
    next: u32,
}

impl RxV2 {
    pub(super) fn new(s: Arc<PacketSock>, c: RxCommon) -> RxV2 {
        RxV2 {
            next: s.rx_cursor.load(Ordering::Relaxed),
            s,
            c,
        }
    }
}

impl Drop for RxV2 {
    fn drop(&mut self) {
        self.s.rx_cursor.store(self.next, Ordering::Relaxed);
    }
}

impl RxQueueOps for RxV2 {
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let mut t = Tally::default();
        let room = self.s.frame_size as usize;
        while t.n < max {
            let f = self.s.frame(false, self.next);
            // Acquire: pairs with the kernel's barrier before it marks the frame ours.
            let st = status_word(f, 0).load(Ordering::Acquire);
            if st & sys::TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the frame is ours until we store TP_STATUS_KERNEL; plain integers.
            let h = unsafe { f.cast::<Tpacket2Hdr>().read_volatile() };
            let vlan = vlan_of(st, h.tp_vlan_tci, h.tp_vlan_tpid);
            let geo = (h.tp_mac as usize, h.tp_snaplen as usize, h.tp_len as usize);
            let sll = std::mem::size_of::<Tpacket2Hdr>();
            if let Taken::Stay = self.c.take(f, room, sll, geo, vlan, &mut t, out) {
                break;
            }
            // Release: our reads of the frame happen before the kernel reuses it.
            status_word(f, 0).store(sys::TP_STATUS_KERNEL, Ordering::Release);
            self.next = if self.next + 1 == self.s.frame_nr {
                0
            } else {
                self.next + 1
            };
        }
        self.c.stats.add_rx(&t);
        t.n
    }
}
