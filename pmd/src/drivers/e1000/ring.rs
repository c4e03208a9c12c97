//! Descriptor rings in DMA memory.

use std::sync::atomic::{AtomicU64, Ordering};

use eal::device::DmaBuf;

use super::hw::Hw;
use super::regs::{self, DmaPod};
use crate::error::{Error, Result};

/// `n` descriptors of type `T` in DMA memory. The device reads and writes them at any
/// time, so they are only ever accessed through raw pointers: whole-descriptor volatile
/// stores by the driver (only to descriptors the device does not own), and an atomic
/// acquire load of the write-back half (bytes 8..16).
pub(crate) struct Ring<T: DmaPod> {
    mem: DmaBuf,
    pub(super) n: u16,
    _t: std::marker::PhantomData<T>,
}

impl<T: DmaPod> Ring<T> {
    pub(super) fn new(hw: &Hw, n: u16, what: &str) -> Result<Ring<T>> {
        let bytes = usize::from(n) * std::mem::size_of::<T>();
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
            mem,
            n,
            _t: std::marker::PhantomData,
        })
    }

    #[inline(always)]
    pub(super) fn slot(&self, i: u16) -> *mut T {
        debug_assert!(i < self.n);
        // SAFETY: i < n and the buffer holds n descriptors (checked in `new`).
        unsafe { self.mem.as_ptr().cast::<T>().add(usize::from(i)) }
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
        self.mem.iova()
    }

    pub(super) fn bytes(&self) -> u32 {
        u32::from(self.n) * std::mem::size_of::<T>() as u32
    }
}
