//! One split virtqueue (virtio 2.7) in EAL DMA memory, with the driver's accesses to it.
//!
//! The descriptor table and the available ring are written by the driver and read by
//! the device; the used ring the other way round. None of it is ever behind `&`/`&mut`:
//! descriptors and ring entries are volatile stores and loads through raw pointers, and
//! the two indices the sides publish (`avail.idx`, `used.idx`) are atomic.
//!
//! Ordering (virtio 2.7.13):
//! * driver → device: descriptors and `avail.ring[]` entries are written before
//!   `avail.idx` moves past them; the index is a release store (R1).
//! * device → driver: `used.idx` is loaded with acquire (A1) before the used elements
//!   and the buffers they name are read; pairs with the device's write barrier before
//!   it moves `used.idx`.
//! * before deciding whether to notify, a full fence orders the `avail.idx` store before
//!   the load of `used.flags` (virtio 2.7.13.3.1: "a suitable memory barrier"); without
//!   it the load could pass the store and miss a device that just stopped polling.

use std::sync::atomic::{fence, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;

use eal::device::{Device, DmaBuf};

use super::spec::{SplitLayout, VirtqDesc, VirtqUsedElem, AVAIL_F_NO_INTERRUPT, USED_F_NO_NOTIFY};
use super::transport::{Regs, Window};

/// Where and how to notify one queue (virtio 4.1.4.4): a 16-bit write of the queue
/// index at `offset` in the notify window.
#[derive(Clone)]
pub(crate) struct Notifier {
    pub window: Window,
    pub offset: u64,
    pub index: u16,
    /// Notifications sent (one writer: the queue's owner).
    pub kicks: Arc<AtomicU64>,
}

/// A split virtqueue's memory. `size` is a power of two.
pub(crate) struct Vq {
    mem: Arc<DmaBuf>,
    pub size: u16,
    pub mask: u16,
    lay: SplitLayout,
    notify: Notifier,
}

impl Vq {
    /// Zeroed ring memory for `size` entries (a power of two), with interrupts suppressed
    /// for good (`avail.flags = NO_INTERRUPT`: this driver polls).
    pub(crate) fn new(dev: &Device, size: u16, notify: Notifier) -> Result<Vq, eal::Error> {
        debug_assert!(size.is_power_of_two());
        let lay = SplitLayout::new(size);
        let mem = Arc::new(dev.dma_alloc(lay.total)?);
        let vq = Vq {
            mem,
            size,
            mask: size - 1,
            lay,
            notify,
        };
        // SAFETY: offset `avail` is inside the block (layout), 2-byte aligned; nothing is
        // published yet.
        unsafe {
            std::ptr::write_volatile(
                vq.mem.as_ptr().add(vq.lay.avail).cast::<u16>(),
                AVAIL_F_NO_INTERRUPT,
            )
        };
        Ok(vq)
    }

    /// IOVAs of the descriptor table, the available (driver) ring and the used (device)
    /// ring, for `queue_desc`, `queue_driver`, `queue_device`.
    pub(crate) fn iovas(&self) -> (u64, u64, u64) {
        let b = self.mem.iova().0;
        (b, b + self.lay.avail as u64, b + self.lay.used as u64)
    }

    /// Overwrite descriptor `i` (one the device does not own).
    #[inline(always)]
    pub(crate) fn write_desc(&self, i: u16, d: VirtqDesc) {
        debug_assert!(i < self.size);
        // SAFETY: i < size: inside the table (layout), 16-byte aligned (the block is 4 KiB
        // aligned); volatile because the device reads it.
        unsafe {
            std::ptr::write_volatile(self.mem.as_ptr().cast::<VirtqDesc>().add(usize::from(i)), d)
        };
    }

    /// Put descriptor chain head `id` into available slot `idx` (mod size).
    #[inline(always)]
    pub(crate) fn write_avail(&self, idx: u16, id: u16) {
        let off = self.lay.avail + 4 + 2 * usize::from(idx & self.mask);
        // SAFETY: in the ring (slot < size), 2-byte aligned; volatile (device reads it).
        unsafe { std::ptr::write_volatile(self.mem.as_ptr().add(off).cast::<u16>(), id) };
    }

    fn avail_idx_ptr(&self) -> &AtomicU16 {
        avail_idx_of(&self.mem, &self.lay)
    }

    fn used_idx_ptr(&self) -> &AtomicU16 {
        used_idx_of(&self.mem, &self.lay)
    }

    /// A second handle on this queue's memory for watching it drain (see [`RingView`]).
    pub(crate) fn view(&self) -> RingView {
        RingView {
            mem: self.mem.clone(),
            lay: self.lay,
            notify: self.notify.clone(),
        }
    }

    /// Publish every entry before `idx` (R1: release; pairs with the device's read of
    /// `avail.idx` before it reads the entries).
    #[inline(always)]
    pub(crate) fn publish(&self, idx: u16) {
        self.avail_idx_ptr().store(idx, Ordering::Release);
    }

    /// The device's `used.idx` (A1: acquire; pairs with the device's barrier before it
    /// moves the index, so the elements and buffers below it are visible).
    #[inline(always)]
    pub(crate) fn used_idx(&self) -> u16 {
        self.used_idx_ptr().load(Ordering::Acquire)
    }

    /// Used element in slot `idx` (mod size); read after [`used_idx`](Self::used_idx)
    /// showed it.
    #[inline(always)]
    pub(crate) fn used_elem(&self, idx: u16) -> VirtqUsedElem {
        let off = self.lay.used + 4 + 8 * usize::from(idx & self.mask);
        // SAFETY: inside the used ring, 4-byte aligned; the device wrote it before moving
        // used.idx (A1).
        unsafe { std::ptr::read_volatile(self.mem.as_ptr().add(off).cast::<VirtqUsedElem>()) }
    }

    fn used_flags(&self) -> u16 {
        // SAFETY: `used.flags` inside the block, 2-byte aligned; written by the device.
        unsafe { std::ptr::read_volatile(self.mem.as_ptr().add(self.lay.used).cast::<u16>()) }
    }

    /// Notify the device unless it said it needs none (`used.flags` NO_NOTIFY: it is
    /// polling the queue already). Call after [`publish`](Self::publish).
    #[inline(always)]
    pub(crate) fn kick(&self) {
        // Full fence: the avail.idx store must be visible before used.flags is read (see
        // the module docs).
        fence(Ordering::SeqCst);
        if self.used_flags() & USED_F_NO_NOTIFY == 0 {
            self.notify_now();
        }
    }

    /// Notify unconditionally.
    pub(crate) fn notify_now(&self) {
        self.notify
            .window
            .w16(self.notify.offset, self.notify.index);
        // Relaxed: a statistic; only this queue's owner writes it.
        self.notify.kicks.fetch_add(1, Ordering::Relaxed);
    }
}

fn avail_idx_of<'a>(mem: &'a DmaBuf, lay: &SplitLayout) -> &'a AtomicU16 {
    // SAFETY: `avail.idx` is inside the block (layout), 2-byte aligned, lives as long as
    // `mem`; every access to it is atomic (here) or by the device.
    unsafe { AtomicU16::from_ptr(mem.as_ptr().add(lay.avail + 2).cast()) }
}

fn used_idx_of<'a>(mem: &'a DmaBuf, lay: &SplitLayout) -> &'a AtomicU16 {
    // SAFETY: as above for `used.idx`.
    unsafe { AtomicU16::from_ptr(mem.as_ptr().add(lay.used + 2).cast()) }
}

/// The control path's handle on a TX queue's ring: it keeps the memory alive and tells
/// whether the device has used everything the queue published, so a device reset (any
/// queue's release, close) can first let queued frames go out.
pub(crate) struct RingView {
    mem: Arc<DmaBuf>,
    lay: SplitLayout,
    notify: Notifier,
}

impl RingView {
    /// The device used every published buffer. Acquire on both: pairs with the queue's
    /// release store of `avail.idx` (R1) and the device's barrier before `used.idx`.
    pub(crate) fn drained(&self) -> bool {
        avail_idx_of(&self.mem, &self.lay).load(Ordering::Acquire)
            == used_idx_of(&self.mem, &self.lay).load(Ordering::Acquire)
    }

    /// Notify the device (it may have stopped looking at the queue).
    pub(crate) fn notify(&self) {
        self.notify
            .window
            .w16(self.notify.offset, self.notify.index);
    }
}
