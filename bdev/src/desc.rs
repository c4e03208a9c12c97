//! Descriptors (SPDK's `spdk_bdev_desc`): an open bdev, read-only or read-write, with
//! its remove-event callback, its claim, and the submission calls.
//!
//! # Threads
//!
//! [`open`] runs on a framework thread; that thread receives the descriptor's events.
//! I/O is submitted on any framework thread through that thread's
//! [`BdevIoChannel`] (from [`Descriptor::get_io_channel`] on it) and completes on the
//! same thread.
//!
//! # Buffer ownership
//!
//! The iovec calls ([`Descriptor::readv`] and friends) are `unsafe`, as io-uring's
//! `push` is: from the call until the callback runs, the memory the iovecs describe
//! belongs to the bdev layer and the module (which may write it from another agent, a
//! device's DMA). The caller must keep it allocated and must not read or write it until
//! its callback runs. If the call returns `Err`, nothing was submitted and the memory is
//! the caller's again at once. The `*_buf` calls are the safe form: they take a `Vec`
//! and give it back to the callback.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use framework::io_channel::IoChannel;
use framework::{thread, ThreadHandle};

use crate::bdev::{self, Bdev, BdevEvent, Claim, OpenDesc};
use crate::channel::{self, BdevChannel, ChanCore, Request};
use crate::error::{Error, Result};
use crate::io::{iovs_len, IoStatus, IoType, IoTypeSet, IoVec};

static NEXT_DESC: AtomicU64 = AtomicU64::new(1);

type EventCb = Box<dyn Fn(BdevEvent) + Send + Sync>;

pub(crate) struct DescShared {
    id: u64,
    bdev: Bdev,
    write: AtomicBool,
    /// The types this descriptor may submit now, as an [`IoTypeSet`]: those the module
    /// takes, minus the writing ones on a read-only descriptor, none once the bdev is
    /// being removed. Kept up to date (under the bdev's state lock) by [`open`],
    /// [`Descriptor::claim`] and the removal, so that a submit tests one bit; a
    /// request outside it goes through the full check for its error.
    allowed: AtomicU32,
    /// The bdev's block size (for the buffer check).
    block_size: u32,
    thread: ThreadHandle,
    event_cb: EventCb,
    closed: AtomicBool,
}

impl DescShared {
    /// What may be submitted with write permission `write` (the bdev not removing).
    fn allowed_for(bdev: &Bdev, write: bool) -> u32 {
        let supported = bdev.0.supported;
        IoTypeSet::from_fn(|t| supported.contains(t) && (write || !t.writes())).0
    }
}

impl OpenDesc for DescShared {
    fn id(&self) -> u64 {
        self.id
    }

    fn writable(&self) -> bool {
        self.write.load(Ordering::Acquire)
    }

    /// Nothing more may be submitted (called under the bdev's state lock, after its
    /// `removing` flag is set).
    fn forbid_io(&self) {
        self.allowed.store(0, Ordering::Release);
    }

    /// Deliver `ev` on the descriptor's thread (unless closed by then).
    fn notify(self: Arc<Self>, ev: BdevEvent) -> bool {
        let d = self.clone();
        self.thread
            .send_msg(move || {
                if !d.closed.load(Ordering::Acquire) {
                    (d.event_cb)(ev);
                }
            })
            .is_ok()
    }

    /// Deliver the remove event on the descriptor's thread (unless closed by then).
    fn notify_remove(self: Arc<Self>) {
        let d = self.clone();
        let r = self.thread.send_msg(move || {
            if !d.closed.load(Ordering::Acquire) {
                (d.event_cb)(BdevEvent::Remove);
            }
        });
        if r.is_err() {
            // The thread is gone: nobody will close this descriptor; close it here so
            // the removal can finish.
            close_shared(&self);
        }
    }
}

/// An open bdev. Closing (or dropping) it gives up its claim and, during a removal,
/// lets the removal finish once it was the last.
pub struct Descriptor(Arc<DescShared>);

impl std::fmt::Debug for Descriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Descriptor")
            .field("bdev", &self.0.bdev.name())
            .field("write", &self.0.write.load(Ordering::Relaxed))
            .finish()
    }
}

/// A thread's channel to a bdev (SPDK's `spdk_bdev_get_io_channel`). Use it on that
/// thread only; drop it (before closing the descriptor) to put it.
pub struct BdevIoChannel {
    /// Given up in `drop` (see [`channel::release`]).
    ch: ManuallyDrop<IoChannel<BdevChannel>>,
    /// The channel's core (fixed while `ch` holds the channel): a submit checks the
    /// thread against its owner and uses it without going through `ch`.
    core: NonNull<ChanCore>,
    bdev: Bdev,
}

// SAFETY: `core` is only dereferenced after the check that this is the channel's
// thread (`channel::submit`); the other fields are `Send`.
unsafe impl Send for BdevIoChannel {}

impl Drop for BdevIoChannel {
    fn drop(&mut self) {
        // SAFETY: taken once, here; the field is not used again.
        let ch = unsafe { ManuallyDrop::take(&mut self.ch) };
        channel::release(ch);
    }
}

impl BdevIoChannel {
    /// I/Os at the module and waiting for resources on this channel.
    pub fn depth(&self) -> (usize, usize) {
        self.ch.ctx().depth()
    }

    /// Whether a reset holds this channel's new I/O (see [`Descriptor::reset`]).
    pub fn frozen(&self) -> bool {
        self.ch.ctx().is_frozen()
    }

    /// Pieces waiting for QoS budget on this channel.
    pub fn qos_queued(&self) -> usize {
        self.ch.ctx().qos_queued()
    }

    /// The thread the channel belongs to.
    pub fn thread(&self) -> &ThreadHandle {
        self.ch.thread()
    }

    /// Another reference to this channel (on its thread; `None` elsewhere).
    pub fn try_clone(&self) -> Option<BdevIoChannel> {
        Some(BdevIoChannel {
            ch: ManuallyDrop::new(self.ch.try_clone()?),
            core: self.core,
            bdev: self.bdev.clone(),
        })
    }
}

/// Open `name` (on a framework thread). `write` asks for read-write; refused if a
/// module claims the bdev. `event_cb` runs on this thread when the bdev goes away.
pub fn open<F>(name: &str, write: bool, event_cb: F) -> Result<Descriptor>
where
    F: Fn(BdevEvent) + Send + Sync + 'static,
{
    let me = thread::current().ok_or(framework::Error::NotOnThread {
        what: "open a bdev",
    })?;
    let b = bdev::get(name).ok_or_else(|| Error::NotFound(name.to_string()))?;
    let mut st = b.0.lock();
    if st.removing {
        return Err(Error::Removed {
            what: "open",
            name: name.to_string(),
        });
    }
    if write {
        if let Some(c) = &st.claim {
            return Err(Error::Claimed {
                what: "open for writing",
                name: name.to_string(),
                module: c.module.clone(),
            });
        }
    }
    let d = Arc::new(DescShared {
        id: NEXT_DESC.fetch_add(1, Ordering::Relaxed),
        bdev: b.clone(),
        write: AtomicBool::new(write),
        allowed: AtomicU32::new(DescShared::allowed_for(&b, write)),
        block_size: b.info().block_size,
        thread: me,
        event_cb: Box::new(event_cb),
        closed: AtomicBool::new(false),
    });
    st.descs.push(d.clone());
    Ok(Descriptor(d))
}

fn close_shared(d: &Arc<DescShared>) {
    if d.closed.swap(true, Ordering::AcqRel) {
        return;
    }
    let b = &d.bdev;
    let finish = {
        let mut st = b.0.lock();
        // The same object (compared by address: the list holds it as `dyn OpenDesc`).
        st.descs
            .retain(|x| !std::ptr::addr_eq(Arc::as_ptr(x), Arc::as_ptr(d)));
        if st.claim.as_ref().is_some_and(|c| c.desc_id == d.id) {
            st.claim = None;
        }
        st.removing && st.descs.is_empty()
    };
    if finish {
        bdev::finish_unregister(b);
    }
}

impl Drop for Descriptor {
    fn drop(&mut self) {
        close_shared(&self.0);
    }
}

/// Submission methods over the caller's iovecs, one request type each (`# Safety` in
/// each one's docs).
macro_rules! iov_requests {
    ($($(#[$doc:meta])* $name:ident => $t:ident;)*) => {$(
        $(#[$doc])*
        pub unsafe fn $name<F: FnOnce(IoStatus) + Send + 'static>(
            &self,
            ch: &BdevIoChannel,
            iovs: &[IoVec],
            offset_blocks: u64,
            num_blocks: u64,
            cb: F,
        ) -> Result<()> {
            self.submit(ch, IoType::$t, offset_blocks, num_blocks, iovs, &[], cb)
        }
    )*};
}

/// Submission methods of request types without data, one each.
macro_rules! dataless_requests {
    ($($(#[$doc:meta])* $name:ident => $t:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name<F: FnOnce(IoStatus) + Send + 'static>(
            &self,
            ch: &BdevIoChannel,
            offset_blocks: u64,
            num_blocks: u64,
            cb: F,
        ) -> Result<()> {
            self.submit(ch, IoType::$t, offset_blocks, num_blocks, &[], &[], cb)
        }
    )*};
}

/// Safe submission methods over an owned buffer that comes back to the callback.
macro_rules! buf_requests {
    ($($(#[$doc:meta])* $name:ident => $t:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name<F>(
            &self,
            ch: &BdevIoChannel,
            buf: Vec<u8>,
            offset_blocks: u64,
            num_blocks: u64,
            cb: F,
        ) -> Result<()>
        where
            F: FnOnce(IoStatus, Vec<u8>) + Send + 'static,
        {
            let mut buf = buf;
            let iov = [IoVec::from_slice(&mut buf)];
            // The submit contract holds: the Vec's heap block does not move when the
            // Vec moves into the callback, and only the callback gets it back, after
            // completion.
            self.submit(ch, IoType::$t, offset_blocks, num_blocks, &iov, &[], move |s| {
                cb(s, buf)
            })
        }
    )*};
}

impl Descriptor {
    /// The bdev.
    pub fn bdev(&self) -> &Bdev {
        &self.0.bdev
    }

    /// Whether writes are allowed.
    pub fn writable(&self) -> bool {
        self.0.write.load(Ordering::Acquire)
    }

    /// Close (same as dropping).
    pub fn close(self) {}

    /// Claim the bdev for `module` (SPDK's exclusive-write claim, for a module that
    /// builds on a base bdev): no other descriptor may open it for writing afterwards.
    /// Refused if another module claims it or another descriptor has it open for
    /// writing. A read-only descriptor becomes read-write. Released on close.
    pub fn claim(&self, module: &str) -> Result<()> {
        let b = &self.0.bdev;
        let mut st = b.0.lock();
        if let Some(c) = &st.claim {
            return Err(Error::Claimed {
                what: "claim",
                name: b.name().to_string(),
                module: c.module.clone(),
            });
        }
        let other_writer = st.descs.iter().any(|d| d.id() != self.0.id && d.writable());
        if other_writer {
            return Err(Error::Invalid {
                what: "claim",
                why: format!("bdev '{}' is open for writing elsewhere", b.name()),
            });
        }
        st.claim = Some(Claim {
            module: module.to_string(),
            desc_id: self.0.id,
        });
        self.0.write.store(true, Ordering::Release);
        self.0
            .allowed
            .store(DescShared::allowed_for(b, true), Ordering::Release);
        Ok(())
    }

    /// Give up this descriptor's claim (no-op if it holds none).
    pub fn release_claim(&self) {
        let mut st = self.0.bdev.0.lock();
        if st.claim.as_ref().is_some_and(|c| c.desc_id == self.0.id) {
            st.claim = None;
        }
    }

    /// The calling thread's channel (on a framework thread).
    pub fn get_io_channel(&self) -> Result<BdevIoChannel> {
        let b = &self.0.bdev;
        if b.is_removing() {
            return Err(Error::Removed {
                what: "get an I/O channel",
                name: b.name().to_string(),
            });
        }
        let ch = b.0.io_device.get_channel()?;
        // A channel made while the limits changed may have missed the message to
        // every channel: it reads the switch again, now that it is listed.
        ch.ctx().sync_qos();
        if let Some(why) = ch.ctx().module_error() {
            return Err(Error::Channel {
                name: b.name().to_string(),
                why: why.to_string(),
            });
        }
        Ok(BdevIoChannel {
            core: ch.ctx().core_ptr(),
            ch: ManuallyDrop::new(ch),
            bdev: b.clone(),
        })
    }

    fn check(&self, ch: &BdevIoChannel, t: IoType, off: u64, n: u64) -> Result<()> {
        let b = &self.0.bdev;
        let name = || b.name().to_string();
        if !Arc::ptr_eq(&ch.bdev.0, &b.0) {
            return Err(Error::Invalid {
                what: "channel",
                why: format!(
                    "it belongs to bdev '{}', not '{}'",
                    ch.bdev.name(),
                    b.name()
                ),
            });
        }
        if b.is_removing() {
            return Err(Error::Removed {
                what: "submit I/O",
                name: name(),
            });
        }
        if t.writes() && !self.writable() {
            return Err(Error::ReadOnly {
                io: t.name(),
                name: name(),
            });
        }
        if !b.io_type_supported(t) {
            return Err(Error::Unsupported {
                io: t.name(),
                name: name(),
                module: b.module().module_name().to_string(),
            });
        }
        let nb = b.num_blocks();
        let whole_device = t == IoType::Reset;
        if !whole_device && (n == 0 || off.checked_add(n).is_none_or(|end| end > nb)) {
            return Err(Error::OutOfRange {
                name: name(),
                offset: off,
                count: n,
                num_blocks: nb,
            });
        }
        Ok(())
    }

    fn need(&self, n: u64, iovs: &[IoVec]) -> Result<()> {
        let need = n * u64::from(self.0.bdev.info().block_size);
        let have = iovs_len(iovs);
        if (have as u64) < need {
            return Err(Error::ShortBuffer { have, need });
        }
        Ok(())
    }

    /// Every check of a request, each with its own error (the path of a request the
    /// fast test in [`submit`](Self::submit) did not pass).
    #[cold]
    #[inline(never)]
    fn check_all(
        &self,
        ch: &BdevIoChannel,
        t: IoType,
        off: u64,
        n: u64,
        iovs: &[IoVec],
        cmp: &[IoVec],
    ) -> Result<()> {
        self.check(ch, t, off, n)?;
        if t.has_data() {
            self.need(n, iovs)?;
        }
        if t == IoType::CompareAndWrite {
            self.need(n, cmp)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn submit<F: FnOnce(IoStatus) + Send + 'static>(
        &self,
        ch: &BdevIoChannel,
        t: IoType,
        off: u64,
        n: u64,
        iovs: &[IoVec],
        cmp: &[IoVec],
        cb: F,
    ) -> Result<()> {
        let d = &*self.0;
        let b = &*d.bdev.0;
        let enough = |v: &[IoVec]| iovs_len(v) as u64 >= n * u64::from(d.block_size);
        // The channel's bdev, then permission, the module's types and a removal in
        // one bit (`allowed`), then the range and the buffers. What fails here is
        // checked again in full for its error (and goes on if a claim made it
        // writable meanwhile).
        let fast = Arc::ptr_eq(&ch.bdev.0, &d.bdev.0)
            && IoTypeSet(d.allowed.load(Ordering::Acquire)).contains(t)
            && n != 0
            && off
                .checked_add(n)
                // Pairs with the Release store in `resize::notify_blockcnt_change`.
                .is_some_and(|end| end <= b.blockcnt.load(Ordering::Acquire))
            && (!t.has_data() || enough(iovs))
            && (t != IoType::CompareAndWrite || enough(cmp));
        if !fast {
            self.check_all(ch, t, off, n, iovs, cmp)?;
        }
        let r = Request {
            io_type: t,
            offset_blocks: off,
            num_blocks: n,
            iovs,
            cmp_iovs: cmp,
        };
        // SAFETY: `ch` holds the channel, whose core this is, until after the call.
        unsafe { channel::submit(ch.core, r, cb) }
    }

    iov_requests! {
        /// Read `num_blocks` from `offset_blocks` into `iovs`.
        ///
        /// # Safety
        /// The iovecs' memory must stay valid for writes and untouched by the caller
        /// until `cb` runs (see the module docs); on `Err` nothing was submitted.
        readv => Read;
        /// Write `num_blocks` at `offset_blocks` from `iovs`.
        ///
        /// # Safety
        /// As [`readv`](Self::readv) (valid for reads, not modified until `cb`).
        writev => Write;
        /// Compare `num_blocks` at `offset_blocks` with `iovs`
        /// ([`IoStatus::Miscompare`] if they differ).
        ///
        /// # Safety
        /// As [`writev`](Self::writev).
        comparev => Compare;
    }

    /// If the blocks equal `cmp_iovs`, write `write_iovs` over them, atomically.
    ///
    /// # Safety
    /// As [`writev`](Self::writev), for both lists.
    pub unsafe fn compare_and_writev<F: FnOnce(IoStatus) + Send + 'static>(
        &self,
        ch: &BdevIoChannel,
        cmp_iovs: &[IoVec],
        write_iovs: &[IoVec],
        offset_blocks: u64,
        num_blocks: u64,
        cb: F,
    ) -> Result<()> {
        self.submit(
            ch,
            IoType::CompareAndWrite,
            offset_blocks,
            num_blocks,
            write_iovs,
            cmp_iovs,
            cb,
        )
    }

    dataless_requests! {
        /// Zero `num_blocks` at `offset_blocks`.
        write_zeroes => WriteZeroes;
        /// Deallocate `num_blocks` at `offset_blocks`.
        unmap => Unmap;
        /// Make `num_blocks` at `offset_blocks` durable.
        flush => Flush;
    }

    /// Reset the bdev (see [`crate::channel`]): every channel is frozen (new I/O is
    /// held, I/O waiting for resources or QoS budget is aborted), the module resets
    /// once no I/O is at it, then the held I/O goes; `cb` runs on this thread.
    pub fn reset<F: FnOnce(IoStatus) + Send + 'static>(
        &self,
        ch: &BdevIoChannel,
        cb: F,
    ) -> Result<()> {
        self.check(ch, IoType::Reset, 0, 0)?;
        let my = ch.ch.try_clone().ok_or(framework::Error::NotOnThread {
            what: "reset a bdev",
        })?;
        crate::reset::start(&self.0.bdev, my, Box::new(cb))
    }

    buf_requests! {
        /// Safe read: `buf` (at least `num_blocks` blocks) comes back to `cb`.
        read_buf => Read;
        /// Safe write: `buf` comes back to `cb`.
        write_buf => Write;
    }
}
