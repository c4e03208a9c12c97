//! What the virtual bdev modules (passthru, split, raid) share: opening and claiming a
//! base bdev, and submitting a request to it on behalf of a request of the virtual
//! bdev ("a child").
//!
//! # Ownership of the parent's buffers
//!
//! A child is submitted with the parent's iovecs (shifted by nothing: only block
//! offsets change). The parent [`BdevIo`] is completed only from the child's callback,
//! or at once if the child could not be submitted, so the buffers the parent's
//! submitter lent stay lent until every child is done: that is what makes the
//! `unsafe` submissions here sound.
//!
//! # Threads
//!
//! Children are submitted on the parent's thread, through that thread's channel to the
//! base, and complete there; the parent completes on the same thread, as the layer
//! requires.

use std::sync::{Arc, Mutex};

use crate::bdev::BdevEvent;
use crate::desc::{self, BdevIoChannel, Descriptor};
use crate::error::{Error, Result};
use crate::io::{BdevIo, IoStatus, IoType, IoVec};

/// Open `base` (on a framework thread, which then receives its events) and claim it
/// for `module`. `on_remove` runs on this thread when the base goes away.
pub(crate) fn open_claimed<F>(base: &str, module: &str, on_remove: F) -> Result<Arc<Descriptor>>
where
    F: Fn() + Send + Sync + 'static,
{
    let d = desc::open(base, false, move |ev| match ev {
        BdevEvent::Remove => on_remove(),
        BdevEvent::Resize => {}
    })?;
    d.claim(module)?;
    Ok(Arc::new(d))
}

/// The status a parent takes when its child could not be submitted: out of I/O
/// objects on the base's channel is "try again" ([`IoStatus::NoMem`], which the layer
/// queues and resubmits), anything else fails.
pub(crate) fn submit_error_status(e: &Error) -> IoStatus {
    match e {
        Error::NoMem(_) => IoStatus::NoMem,
        _ => IoStatus::Failed,
    }
}

/// One request to a base bdev.
pub(crate) struct Child<'a> {
    /// The kind (the parent's).
    pub(crate) io_type: IoType,
    /// First block on the base.
    pub(crate) offset_blocks: u64,
    /// Blocks.
    pub(crate) num_blocks: u64,
    /// Data (read, write, compare; the write data of a compare-and-write).
    pub(crate) iovs: &'a [IoVec],
    /// Compare data of a compare-and-write.
    pub(crate) cmp_iovs: &'a [IoVec],
}

impl Child<'_> {
    /// Submit to the base through `d` on `ch` (the calling thread's channel); `cb`
    /// runs on this thread when the child completes. On `Err` nothing was submitted
    /// (and `cb` was dropped unrun).
    ///
    /// # Safety
    /// The iovecs must stay valid (and untouched by anyone else) until `cb` runs, as
    /// for [`Descriptor::readv`]. For a child made from a parent [`BdevIo`] this holds
    /// while the parent is not completed before `cb` runs (the parent's submitter lent
    /// the memory until then).
    pub(crate) unsafe fn submit<F>(&self, d: &Descriptor, ch: &BdevIoChannel, cb: F) -> Result<()>
    where
        F: FnOnce(IoStatus) + Send + 'static,
    {
        let (off, n) = (self.offset_blocks, self.num_blocks);
        match self.io_type {
            // SAFETY: forwarded from this function's contract.
            IoType::Read => unsafe { d.readv(ch, self.iovs, off, n, cb) },
            // SAFETY: forwarded from this function's contract.
            IoType::Write => unsafe { d.writev(ch, self.iovs, off, n, cb) },
            // SAFETY: forwarded from this function's contract.
            IoType::Compare => unsafe { d.comparev(ch, self.iovs, off, n, cb) },
            // SAFETY: forwarded from this function's contract.
            IoType::CompareAndWrite => unsafe {
                d.compare_and_writev(ch, self.cmp_iovs, self.iovs, off, n, cb)
            },
            IoType::WriteZeroes => d.write_zeroes(ch, off, n, cb),
            IoType::Unmap => d.unmap(ch, off, n, cb),
            IoType::Flush => d.flush(ch, off, n, cb),
            IoType::Reset => d.reset(ch, cb),
        }
    }
}

/// Forward `io` to the base whole, starting at the base's block `base_offset`
/// (passthru: the same block; split: moved to the partition; RAID0: mapped to its
/// base): the parent completes with the child's status.
pub(crate) fn forward(d: &Descriptor, ch: &BdevIoChannel, io: BdevIo, base_offset: u64) {
    // The parent waits in a slot the callback takes it from; if the submission fails
    // the slot gives it back here to complete with the error.
    let slot = Arc::new(Mutex::new(None::<BdevIo>));
    let s2 = slot.clone();
    let iovs: Vec<IoVec> = io.iovs().to_vec();
    let cmp_iovs: Vec<IoVec> = io.compare_iovs().to_vec();
    let c = Child {
        io_type: io.io_type(),
        offset_blocks: base_offset,
        num_blocks: io.num_blocks(),
        iovs: &iovs,
        cmp_iovs: &cmp_iovs,
    };
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(io);
    // SAFETY: the iovecs are the parent's, and the parent completes only in the
    // callback (or below, after the failed submission returned).
    let r = unsafe {
        c.submit(d, ch, move |st| {
            if let Some(p) = s2.lock().unwrap_or_else(|e| e.into_inner()).take() {
                p.complete(st);
            }
        })
    };
    if let Err(e) = r {
        if let Some(p) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
            p.complete(submit_error_status(&e));
        }
    }
}
