//! TX of `net_af_packet`, two ways:
//!
//! * [`Tx`] (`tx_ring=1`), the TX ring (TPACKET_V2 or V3 frames, one header each): a
//!   burst copies its mbufs into free frames, marks them `TP_STATUS_SEND_REQUEST` and
//!   kicks the kernel with one nonblocking `sendto` for the whole burst. The kernel builds each skb
//!   around the ring frame's page (zero-copy fragments), which it must copy out again
//!   (`skb_copy_ubufs`, a fresh page per frame) before a packet socket on the receiving
//!   side may keep it.
//! * [`TxSend`] (the default): one nonblocking `sendmmsg` per burst with iovecs
//!   pointing into the mbufs' segments; the kernel copies each frame once into a linear
//!   skb. No ring, no copy in user space; on a veth pair it takes about 10% less CPU
//!   per frame than the ring (PERFORMANCE.md).
//!
//! A frame is ours while its status is `TP_STATUS_AVAILABLE` (not `SEND_REQUEST` or
//! `SENDING`): we load it with Acquire before writing the frame (pairs with the kernel's
//! release when it finishes sending) and publish a request with a Release store after
//! the last write of the frame (pairs with the kernel's read of the status).

use std::io::IoSlice;
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
            next: 0,
            s,
            kick_errors: 0,
            stats,
        }
    }
}

impl TxQueueOps for Tx {
    fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>, max: usize) -> usize {
        let v = self.s.version;
        let data = v.tx_data_off();
        let (st_off, len_off) = v.status_len_off();
        let room = self.s.frame_size as usize - data;
        // The next frame lives in the queue's shared word, so whichever process drives
        // the queue next continues where this burst stopped.
        self.next = (self.stats.drv[0].load(Ordering::Relaxed) as u32) % self.s.frame_nr;
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
            // Saved per frame: a process killed mid-burst leaves an exact position.
            self.stats.drv[0].store(u64::from(self.next), Ordering::Relaxed);
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

/// Most iovecs (segments) in one `sendmmsg` call.
const SEND_IOVS: usize = 4 * sys::SENDMMSG_MAX;

/// TX without a ring: `sendmmsg` straight from the mbufs.
pub(super) struct TxSend {
    s: Arc<PacketSock>,
    send_errors: u64,
    stats: QueueStats,
}

impl TxSend {
    pub(super) fn new(s: Arc<PacketSock>, stats: QueueStats) -> TxSend {
        TxSend {
            s,
            send_errors: 0,
            stats,
        }
    }
}

impl TxQueueOps for TxSend {
    fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>, max: usize) -> usize {
        let fd = self.s.fd.as_raw_fd();
        let mut t = Tally::default();
        'calls: while t.n < max {
            let mut iovs = [IoSlice::new(&[]); SEND_IOVS];
            let mut frames = [(0u16, 0u16); sys::SENDMMSG_MAX];
            let (mut ni, mut nf) = (0usize, 0usize);
            for m in &pkts[t.n..max] {
                let segs = usize::from(m.nb_segs());
                if nf == sys::SENDMMSG_MAX || ni + segs > SEND_IOVS {
                    break;
                }
                for seg in m.segments() {
                    iovs[ni] = IoSlice::new(seg);
                    ni += 1;
                }
                frames[nf] = ((ni - segs) as u16, ni as u16);
                nf += 1;
            }
            if nf == 0 {
                // One mbuf with more segments than a call takes: dropped.
                t.n += 1;
                t.errs += 1;
                continue;
            }
            match sys::sendmmsg_nb(fd, &iovs[..ni], &frames[..nf]) {
                Ok(sent) => {
                    for m in &pkts[t.n..t.n + sent] {
                        t.bytes += u64::from(m.pkt_len());
                    }
                    t.n += sent;
                    if sent < nf {
                        break 'calls; // the next one is refused: tried again next burst
                    }
                }
                Err(e) => match e.raw_os_error() {
                    // Full (socket send buffer, qdisc): keep the rest for the next burst.
                    Some(libc::EAGAIN | libc::ENOBUFS | libc::EINTR) => break 'calls,
                    // The first frame is refused for itself (too long for the MTU,
                    // malformed): dropped and counted, the rest go on.
                    Some(libc::EMSGSIZE | libc::EINVAL) => {
                        t.n += 1;
                        t.errs += 1;
                    }
                    // Link down, device gone: the burst stays with the caller.
                    _ => {
                        self.send_errors += 1;
                        break 'calls;
                    }
                },
            }
        }
        Mbuf::free_bulk(pkts.drain(..t.n));
        self.stats.add_tx(&t);
        t.n
    }
}
