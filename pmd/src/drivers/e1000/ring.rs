//! Descriptor rings in DMA memory, with the software ring beside them.
//!
//! One EAL allocation holds `n` descriptors (what the device reads and writes) and then
//! `n` mbuf slots (`Option<Mbuf>`, pointer-sized, zero = empty): which mbuf each
//! descriptor holds. Both halves are EAL memory, at the same address in every process of
//! the group, so a secondary that takes the queue over ([`super::share`]) drives the
//! same ring and the same slots. The queue's cursors live in its shared counters
//! ([`crate::driver::QueueStats`]'s `drv` words).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use eal::device::DmaBuf;
use mbuf::Mbuf;

use super::hw::Hw;
use super::regs::{self, DmaPod};
use crate::error::{Error, Result};

/// Where a ring lives: allocated by this process (freed on drop), or another process's
/// (the primary's, which frees it).
enum Mem {
    Owned(DmaBuf),
    Borrowed { ptr: NonNull<u8>, iova: eal::Iova },
}

/// Where a ring is, as [`Ring::geometry`] gives it to another process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) va: eal::VirtAddr,
    pub(crate) iova: eal::Iova,
    pub(crate) n: u16,
}

/// `n` descriptors of type `T` in DMA memory, then `n` mbuf slots. The device reads and
/// writes the descriptors at any time, so they are only ever accessed through raw
/// pointers: whole-descriptor volatile stores by the driver (only to descriptors the
/// device does not own), and an atomic acquire load of the write-back half (bytes
/// 8..16). The slots are touched only by the process driving the queue.
pub(crate) struct Ring<T: DmaPod> {
    mem: Mem,
    pub(super) n: u16,
    _t: std::marker::PhantomData<T>,
}

// SAFETY: the memory is EAL memory mapped for the EAL's life in every process; a
// `Mem::Borrowed` ring is used by one queue object, driven by one thread at a time.
unsafe impl<T: DmaPod> Send for Ring<T> {}

impl<T: DmaPod> Ring<T> {
    /// Bytes of descriptors and slots for `n` entries.
    fn total(n: u16) -> usize {
        usize::from(n) * (std::mem::size_of::<T>() + std::mem::size_of::<Option<Mbuf>>())
    }

    pub(super) fn new(hw: &Hw, n: u16, what: &str) -> Result<Ring<T>> {
        let bytes = Self::total(n);
        let mem = hw
            .dev
            .dma_alloc(bytes)
            .map_err(hw.eal_err("allocate", what))?;
        if !(mem.as_ptr() as usize).is_multiple_of(regs::RING_ALIGN) || mem.len() < bytes {
            return Err(Error::Eal {
                op: "allocate",
                what: format!("{what} of e1000 {}", hw.addr),
                source: eal::Error::NoDma {
                    why: format!("ring memory is not {}-byte aligned", regs::RING_ALIGN),
                }
                .into(),
            });
        }
        Ok(Ring {
            mem: Mem::Owned(mem),
            n,
            _t: std::marker::PhantomData,
        })
    }

    /// The ring another process made, at `g` (checked: EAL memory of this group, with
    /// that IOVA, aligned).
    pub(super) fn attach(eal: &eal::Eal, g: Geometry) -> std::result::Result<Ring<T>, String> {
        if g.n == 0 || !(g.n as usize).is_multiple_of(8) {
            return Err(format!("{} descriptors", g.n));
        }
        let len = Self::total(g.n) as u64;
        let (first, last) = (
            eal.memory().virt2iova(g.va),
            eal.memory().virt2iova(g.va.add(len - 1)),
        );
        if first != Some(g.iova)
            || last != Some(g.iova.add(len - 1))
            || !(g.va.0 as usize).is_multiple_of(regs::RING_ALIGN)
        {
            return Err(format!(
                "ring at {} (IOVA {}) is not EAL memory of this group",
                g.va, g.iova
            ));
        }
        let ptr = NonNull::new(g.va.as_ptr::<u8>()).ok_or("null ring address")?;
        Ok(Ring {
            mem: Mem::Borrowed { ptr, iova: g.iova },
            n: g.n,
            _t: std::marker::PhantomData,
        })
    }

    fn base(&self) -> *mut u8 {
        match &self.mem {
            Mem::Owned(m) => m.as_ptr(),
            Mem::Borrowed { ptr, .. } => ptr.as_ptr(),
        }
    }

    /// Where the ring is, for another process.
    pub(super) fn geometry(&self) -> Geometry {
        Geometry {
            va: eal::VirtAddr::from_ptr(self.base()),
            iova: self.iova(),
            n: self.n,
        }
    }

    #[inline(always)]
    pub(super) fn slot(&self, i: u16) -> *mut T {
        debug_assert!(i < self.n);
        // SAFETY: i < n and the buffer holds n descriptors (checked in `new`/`attach`).
        unsafe { self.base().cast::<T>().add(usize::from(i)) }
    }

    /// Put `m` in mbuf slot `i`, returning what was there.
    #[inline(always)]
    pub(super) fn sw_replace(&mut self, i: u16, m: Option<Mbuf>) -> Option<Mbuf> {
        debug_assert!(i < self.n);
        // SAFETY: slot i of n lies after the n descriptors, inside the allocation,
        // 8-byte aligned (descriptors are 16 bytes, the ring 128-aligned). Zeroed memory
        // is `None` (Mbuf is a non-null pointer). Only the process driving the queue
        // touches the slots (`&mut self`), and only through this raw pointer.
        unsafe {
            let p = self
                .base()
                .add(usize::from(self.n) * std::mem::size_of::<T>())
                .cast::<Option<Mbuf>>()
                .add(usize::from(i));
            std::ptr::replace(p, m)
        }
    }

    /// Overwrite descriptor `i` (one the device does not own).
    #[inline(always)]
    pub(super) fn write(&self, i: u16, d: T) {
        // SAFETY: in bounds (`slot`), aligned (ring aligned, 16-byte descriptors), memory
        // alive while `self` is; volatile because the device reads it.
        unsafe { std::ptr::write_volatile(self.slot(i), d) };
    }

    /// The write-back half (bytes 8..16) of descriptor `i`, as one atomic load.
    ///
    /// Acquire: the device writes the status byte (DD) after the rest of the descriptor
    /// and the packet data (SDM 3.2.3 / 3.3.3); loading DD with acquire keeps the
    /// compiler and CPU from moving later reads of the buffer before it. Pairs with the
    /// device's DMA write, which x86 makes visible in order.
    #[inline(always)]
    pub(super) fn load_hi(&self, i: u16) -> u64 {
        // SAFETY: bytes 8..16 of an in-bounds 16-byte descriptor in a ring aligned to
        // 128: 8-byte aligned, alive while `self` is. Every access to it is atomic or
        // volatile (never `&`), and our own volatile writes happen on this same thread.
        unsafe {
            AtomicU64::from_ptr(self.slot(i).cast::<u8>().add(8).cast::<u64>())
                .load(Ordering::Acquire)
        }
    }

    pub(super) fn iova(&self) -> eal::Iova {
        match &self.mem {
            Mem::Owned(m) => m.iova(),
            Mem::Borrowed { iova, .. } => *iova,
        }
    }

    pub(super) fn bytes(&self) -> u32 {
        u32::from(self.n) * std::mem::size_of::<T>() as u32
    }

    /// True if this process allocated the ring (and frees it and its mbufs).
    pub(super) fn owned(&self) -> bool {
        matches!(self.mem, Mem::Owned(_))
    }

    /// Free every mbuf in the slots (the owner, once the device no longer uses them).
    pub(super) fn free_all(&mut self) {
        let v: Vec<Mbuf> = (0..self.n)
            .filter_map(|i| self.sw_replace(i, None))
            .collect();
        Mbuf::free_bulk(v);
    }
}
