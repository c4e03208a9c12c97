//! The TX ring of `net_af_packet` (TPACKET_V2 or V3 frames, one header each): a burst
//! copies its mbufs into free frames, marks them `TP_STATUS_SEND_REQUEST` and kicks the
//! kernel with one nonblocking `sendto` for the whole burst.
//!
//! A frame is ours while its status is `TP_STATUS_AVAILABLE` (not `SEND_REQUEST` or
//! `SENDING`): we load it with Acquire before writing the frame (pairs with the kernel's
//! release when it finishes sending) and publish a request with a Release store after
//! the last write of the frame (pairs with the kernel's read of the status).

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use mbuf::Mbuf;

use super::super::netif::copy_out;
use super::ring::{status_word, PacketSock, Version};
use crate::driver::{QueueStats, Tally, TxQueueOps};
use crate::sys;

pub(super) struct Tx {
    s: Arc<PacketSock>,
    next: u32,
    kick_errors: u64,
    stats: QueueStats,
}

impl Tx {
    pub(super) fn new(s: Arc<PacketSock>, stats: QueueStats) -> Tx {
        Tx {
            next: s.tx_cursor.load(Ordering::Relaxed),
            s,
            kick_errors: 0,
            stats,
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        self.s.tx_cursor.store(self.next, Ordering::Relaxed);
    }
}

impl TxQueueOps for Tx {
    fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>, max: usize) -> usize {
        let v = self.s.version;
        let data = v.tx_data_off();
        let (st_off, len_off) = v.status_len_off();
        let room = self.s.frame_size as usize - data;
        let mut t = Tally::default();
        for m in &pkts[..max] {
            let f = self.s.frame(true, self.next);
            // Acquire: pairs with the kernel's release when it is done with the frame.
            let st = status_word(f, st_off).load(Ordering::Acquire);
            if st & (sys::TP_STATUS_SEND_REQUEST | sys::TP_STATUS_SENDING) != 0 {
                break; // ring full
            }
            t.n += 1;
            // SAFETY: the frame is ours (status AVAILABLE); `room` bytes after the data
            // offset lie inside it.
            let dst = unsafe { std::slice::from_raw_parts_mut(f.add(data), room) };
            let Some(len) = copy_out(m, dst) else {
                t.errs += 1; // larger than a ring frame: dropped
                continue;
            };
            // SAFETY: our frame; aligned u32 header fields.
            unsafe {
                f.add(len_off).cast::<u32>().write_volatile(len as u32);
                if v == Version::V3 {
                    // tp_next_offset: the kernel refuses V3 TX frames with one set.
                    f.cast::<u32>().write_volatile(0);
                }
            }
            // Release: the frame is written before the kernel sees the request.
            status_word(f, st_off).store(sys::TP_STATUS_SEND_REQUEST, Ordering::Release);
            t.bytes += len as u64;
            self.next = if self.next + 1 == self.s.frame_nr {
                0
            } else {
                self.next + 1
            };
        }
        // One kick for the burst. A failed kick (link down, device gone) leaves the
        // frames requested: they go with a later kick.
        if t.n > t.errs as usize && sys::kick_tx(self.s.fd.as_raw_fd()).is_err() {
            self.kick_errors += 1;
        }
        Mbuf::free_bulk(pkts.drain(..t.n));
        self.stats.add_tx(&t);
        t.n
    }
}
