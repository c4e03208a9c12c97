//! The inflight area (vhost-user `VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD`): shared memory
//! the back end allocates, the front end (QEMU) keeps across a back-end restart and
//! hands back, in which the back end records which requests it has taken from the
//! avail ring and not yet put on the used ring. After a restart the recorded requests
//! are submitted again, before anything new, so none is lost and none answered twice.
//!
//! Layout, per queue (the split-ring format of the vhost-user spec's "Inflight I/O
//! tracking", which libvhost-user also uses), little-endian:
//!
//! ```text
//! u64 features; u16 version; u16 desc_num; u16 last_batch_head; u16 used_idx;
//! { u8 inflight; u8 padding[5]; u16 next; u64 counter; } desc[desc_num];
//! ```
//!
//! Each queue's part is rounded up to 64 bytes. Only this process writes it while
//! connected; QEMU only stores the descriptor.
//!
//! Order of the writes for one completion: `last_batch_head = head`, then the used ring
//! entry and used index (virtio-queue's `add_used`, a release store of the index), then
//! `inflight = 0` and `used_idx`. A crash between the two ends leaves `used_idx`
//! behind the ring's: recovery then knows `last_batch_head` was completed.

use std::fs::File;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::sys::{self, SharedMap};

const HDR: usize = 16;
const DESC: usize = 16;
const ALIGN: usize = 64;
const VERSION: u16 = 1;

/// Bytes one queue of `qsize` takes.
pub fn queue_bytes(qsize: u16) -> usize {
    (HDR + DESC * usize::from(qsize)).div_ceil(ALIGN) * ALIGN
}

/// The whole area.
pub struct InflightArea {
    map: Arc<SharedMap>,
    num_queues: u16,
    queue_size: u16,
}

impl InflightArea {
    /// A fresh area (for `GET_INFLIGHT_FD`): the file and the mapping.
    pub fn create(num_queues: u16, queue_size: u16) -> Result<(InflightArea, File)> {
        if num_queues == 0 || queue_size == 0 {
            return Err(Error::Invalid {
                what: "create the inflight area",
                why: format!("{num_queues} queues of {queue_size}"),
            });
        }
        let len = queue_bytes(queue_size) * usize::from(num_queues);
        let f = sys::memfd("fp-vhost-inflight", len as u64)?;
        let map = SharedMap::new(&f, 0, len)?;
        let a = InflightArea {
            map: Arc::new(map),
            num_queues,
            queue_size,
        };
        for q in 0..num_queues {
            a.queue(q).init();
        }
        Ok((a, f))
    }

    /// An area the front end hands back (`SET_INFLIGHT_FD`).
    pub fn open(
        file: &File,
        offset: u64,
        size: u64,
        num_queues: u16,
        queue_size: u16,
    ) -> Result<InflightArea> {
        let need = queue_bytes(queue_size) as u64 * u64::from(num_queues);
        if num_queues == 0 || queue_size == 0 || size < need {
            return Err(Error::Invalid {
                what: "use the inflight area",
                why: format!("{size} bytes for {num_queues} queues of {queue_size} (need {need})"),
            });
        }
        let map = SharedMap::new(file, offset, need as usize)?;
        let a = InflightArea {
            map: Arc::new(map),
            num_queues,
            queue_size,
        };
        for q in 0..num_queues {
            let iq = a.queue(q);
            if iq.version() != VERSION || iq.desc_num() != queue_size {
                iq.init();
            }
        }
        Ok(a)
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.map.size()
    }

    /// Never true.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Number of queues it covers.
    pub fn num_queues(&self) -> u16 {
        self.num_queues
    }

    /// Queue size it was made for.
    pub fn queue_size(&self) -> u16 {
        self.queue_size
    }

    /// Queue `q`'s part (`q < num_queues`).
    pub fn queue(&self, q: u16) -> InflightQueue {
        let off = queue_bytes(self.queue_size) * usize::from(q.min(self.num_queues - 1));
        InflightQueue {
            _map: self.map.clone(),
            // In bounds: `off + queue_bytes` <= the mapping's length by construction.
            base: self.map.ptr().wrapping_add(off),
            qsize: self.queue_size,
        }
    }
}

/// One queue's part of the area.
pub struct InflightQueue {
    _map: Arc<SharedMap>,
    base: *mut u8,
    qsize: u16,
}

// SAFETY: the pointer is into the shared mapping kept alive by `_map`; only the queue's
// thread uses an InflightQueue (it lives inside the queue state).
unsafe impl Send for InflightQueue {}

impl InflightQueue {
    fn at<T>(&self, off: usize) -> *mut T {
        // In bounds: every caller passes an offset below queue_bytes(qsize), and the
        // fields are naturally aligned (the part starts 64-byte aligned).
        self.base.wrapping_add(off).cast()
    }

    fn rd<T: Copy>(&self, off: usize) -> T {
        // SAFETY: in-bounds, aligned (see `at`); volatile because the memory is shared
        // with the front end.
        unsafe { std::ptr::read_volatile(self.at::<T>(off)) }
    }

    fn wr<T: Copy>(&self, off: usize, v: T) {
        // SAFETY: as in `rd`.
        unsafe { std::ptr::write_volatile(self.at::<T>(off), v) }
    }

    fn version(&self) -> u16 {
        self.rd(8)
    }

    fn desc_num(&self) -> u16 {
        self.rd(10)
    }

    fn init(&self) {
        // SAFETY: the whole part is ours and in bounds.
        unsafe { std::ptr::write_bytes(self.base, 0, queue_bytes(self.qsize)) };
        self.wr(8, VERSION);
        self.wr(10, self.qsize);
    }

    fn desc(&self, head: u16) -> usize {
        HDR + DESC * usize::from(head)
    }

    /// `head` taken from the avail ring as the `counter`-th request.
    pub fn taken(&self, head: u16, counter: u64) {
        if head >= self.qsize {
            return;
        }
        let d = self.desc(head);
        self.wr(d + 8, counter);
        self.wr(d, 1u8);
    }

    /// About to put `head` on the used ring.
    pub fn pre_put(&self, head: u16) {
        self.wr(12, head);
    }

    /// `head` is on the used ring and the used index is now `used_idx`.
    pub fn post_put(&self, head: u16, used_idx: u16) {
        if head < self.qsize {
            self.wr(self.desc(head), 0u8);
        }
        self.wr(14, used_idx);
    }

    /// After a restart: settle the last completion against the ring's used index and
    /// return the heads still in flight, oldest first, and the next counter.
    pub fn recover(&self, ring_used_idx: u16) -> (Vec<u16>, u64) {
        if self.rd::<u16>(14) != ring_used_idx {
            let last: u16 = self.rd(12);
            if last < self.qsize {
                self.wr(self.desc(last), 0u8);
            }
            self.wr(14, ring_used_idx);
        }
        let mut v: Vec<(u64, u16)> = (0..self.qsize)
            .filter(|&h| self.rd::<u8>(self.desc(h)) == 1)
            .map(|h| (self.rd::<u64>(self.desc(h) + 8), h))
            .collect();
        v.sort_unstable();
        let next = v.last().map_or(0, |(c, _)| c + 1);
        (v.into_iter().map(|(_, h)| h).collect(), next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_returns_unfinished_heads_in_order() {
        let (a, f) = InflightArea::create(2, 8).unwrap();
        let q = a.queue(1);
        q.taken(5, 10);
        q.taken(2, 11);
        q.taken(7, 12);
        // 2 completes fully.
        q.pre_put(2);
        q.post_put(2, 1);
        // 7 reaches the used ring (index 2) but the process dies before post_put.
        q.pre_put(7);
        drop(q);
        drop(a);
        let b = InflightArea::open(&f, 0, (queue_bytes(8) * 2) as u64, 2, 8).unwrap();
        let (heads, next) = b.queue(1).recover(2);
        assert_eq!(heads, vec![5]);
        assert_eq!(next, 11);
        assert!(b.queue(0).recover(0).0.is_empty());
        // Wrong geometry is refused, not misread.
        assert!(InflightArea::open(&f, 0, 64, 2, 8).is_err());
    }
}
