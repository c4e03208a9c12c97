//! A queue's memory: SQ and CQ rings (IOVA-contiguous DMA memory) and one PRP page per
//! tracker.

use eal::device::{Device, DmaBuf};
use eal::{Eal, Iova, VirtAddr};

use crate::error::{Error, Result};
use crate::prp::{IovaMapper, PAGE_SIZE};
use crate::spec::{Cqe, Sqe};

/// Ring memory and per-tracker pages of one queue.
pub(crate) struct QueueMem {
    pub sq: *mut Sqe,
    pub sq_iova: Iova,
    pub cq: *mut Cqe,
    pub cq_iova: Iova,
    /// One 4 KiB page per tracker (PRP list or DSM ranges).
    pub pages: *mut u8,
    pub page_iovas: Vec<Iova>,
    pub entries: u16,
    /// Keeps the memory alive.
    pub owner: Box<dyn Send>,
}

/// Heap memory freed on drop.
pub(crate) struct HeapBlock {
    pub ptr: *mut u8,
    pub eal: Eal,
}

// SAFETY: owned heap block; the EAL heap is thread-safe.
unsafe impl Send for HeapBlock {}

impl Drop for HeapBlock {
    fn drop(&mut self) {
        // SAFETY: allocated from this EAL's heap, owned by us alone; the owner (a queue)
        // guarantees the device no longer uses it (or leaks us instead).
        let _ = unsafe { self.eal.heap().free(self.ptr) };
    }
}

/// Rings (IOVA-contiguous) and one PRP page per tracker (looked up per page).
pub(crate) fn alloc_queue_mem(dev: &Device, eal: &Eal, entries: u16) -> Result<QueueMem> {
    let n = entries as usize;
    let sq: DmaBuf = dev.dma_alloc(n * 64)?;
    let cq: DmaBuf = dev.dma_alloc(n * 16)?;
    let pages = eal
        .heap()
        .zmalloc((n - 1) * PAGE_SIZE as usize, PAGE_SIZE as usize)?;
    let block = HeapBlock {
        ptr: pages.as_ptr(),
        eal: eal.clone(),
    };
    let mut page_iovas = Vec::with_capacity(n - 1);
    for i in 0..n - 1 {
        let va = VirtAddr::from_ptr(pages.as_ptr()).add(i as u64 * PAGE_SIZE);
        match eal.iova(va) {
            Some(io) => page_iovas.push(io),
            None => {
                return Err(Error::BadBuffer {
                    why: format!("PRP page {va} has no IOVA"),
                })
            }
        }
    }
    Ok(QueueMem {
        sq: sq.as_ptr().cast(),
        sq_iova: sq.iova(),
        cq: cq.as_ptr().cast(),
        cq_iova: cq.iova(),
        pages: pages.as_ptr(),
        page_iovas,
        entries,
        owner: Box::new((sq, cq, block)),
    })
}
