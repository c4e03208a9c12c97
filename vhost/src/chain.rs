//! Walking one descriptor chain of a split virtqueue (VIRTIO 1.2, 2.7.5), with every
//! way a guest can get it wrong reported as an error rather than followed: a loop (more
//! descriptors than the table holds), a `next` outside the table, an indirect table
//! inside an indirect table or of a length that is no whole number of descriptors, a
//! readable descriptor after a writable one, a buffer outside guest memory.
//!
//! virtio-queue's own `DescriptorChain` ends the iteration silently on these; we need
//! the reason (for the log) and a walk from any head (to resubmit inflight requests
//! after a reconnection), so this walker reads virtio-queue's `Descriptor` type itself.

use bdev::IoVec;
use virtio_queue::desc::split::Descriptor;
use vm_memory::{Bytes, GuestAddress};

use crate::memory::GuestMem;

/// Size of one split descriptor.
const DESC_SIZE: u64 = 16;

/// A walked chain: the readable then the writable buffers as host iovecs.
#[derive(Default, Debug)]
pub struct Chain {
    /// Device-readable bytes, in order.
    pub readable: Vec<IoVec>,
    /// Device-writable bytes, in order.
    pub writable: Vec<IoVec>,
    /// Descriptors visited.
    pub descs: u32,
}

/// Walk the chain starting at `head` of the table at `table` (`qsize` entries).
pub fn walk(mem: &GuestMem, table: u64, qsize: u16, head: u16) -> Result<Chain, String> {
    let mut out = Chain::default();
    let mut tbl = table;
    let mut size = qsize;
    let mut idx = head;
    let mut ttl = u32::from(qsize);
    let mut indirect = false;
    loop {
        if idx >= size {
            return Err(format!("descriptor index {idx} outside a table of {size}"));
        }
        if ttl == 0 {
            return Err(format!(
                "chain from head {head} loops (over {size} descriptors)"
            ));
        }
        ttl -= 1;
        let at = tbl + u64::from(idx) * DESC_SIZE;
        let d: Descriptor = mem
            .mmap()
            .read_obj(GuestAddress(at))
            .map_err(|e| format!("descriptor at {at:#x}: {e}"))?;
        out.descs += 1;
        if d.refers_to_indirect_table() {
            if indirect {
                return Err("indirect table inside an indirect table".into());
            }
            if out.descs != 1 || d.has_next() {
                // Spec 2.7.5.3.1: the indirect descriptor is the only one of its chain
                // in the ring (we accept it only at the head, without next).
                return Err("indirect descriptor not alone in its chain".into());
            }
            let len = d.len();
            if len == 0
                || !u64::from(len).is_multiple_of(DESC_SIZE)
                || u64::from(len) / DESC_SIZE > 65535
            {
                return Err(format!("indirect table of {len} bytes"));
            }
            indirect = true;
            tbl = d.addr().0;
            size = (u64::from(len) / DESC_SIZE) as u16;
            idx = 0;
            ttl = u32::from(size);
            continue;
        }
        if d.len() > 0 {
            let list = if d.is_write_only() {
                &mut out.writable
            } else {
                if !out.writable.is_empty() {
                    return Err("readable descriptor after a writable one".into());
                }
                &mut out.readable
            };
            mem.translate(d.addr().0, u64::from(d.len()), list)
                .map_err(|e| e.to_string())?;
        }
        if !d.has_next() {
            return Ok(out);
        }
        idx = d.next();
    }
}
