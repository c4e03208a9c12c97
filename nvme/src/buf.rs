//! [`IoBuf`]: an owned data buffer in EAL memory that can be handed to the device.
//!
//! Ownership is the safety argument: a safe submit ([`crate::QPair::read`] and friends)
//! takes the `IoBuf` by value, the queue pair keeps it while the device may DMA into it,
//! and the completion callback gets it back. While the caller holds it, nothing else
//! touches it, so it may be read and written as an ordinary `&[u8]` / `&mut [u8]`.
//!
//! The memory comes from the EAL heap (hugepages, 4 KiB aligned, zeroed). It need not be
//! IOVA-contiguous: PRPs are built per 4 KiB page ([`crate::prp`]).

use std::ptr::NonNull;

use eal::{Eal, VirtAddr};

use crate::error::{Error, Result};

/// An owned buffer in EAL memory. `Send`, not shared.
pub struct IoBuf {
    base: NonNull<u8>,
    ptr: NonNull<u8>,
    len: usize,
    eal: Eal,
}

// SAFETY: IoBuf owns its heap block outright (no aliases exist while it is held); the
// EAL heap is thread-safe, so freeing it from another thread is fine.
unsafe impl Send for IoBuf {}
// SAFETY: `&IoBuf` only gives `&[u8]` access; nothing else may write it while a shared
// reference exists (the device only gets the buffer by value).
unsafe impl Sync for IoBuf {}

impl std::fmt::Debug for IoBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoBuf")
            .field("va", &self.va())
            .field("len", &self.len)
            .finish()
    }
}

impl IoBuf {
    /// `len` zeroed bytes, 4 KiB aligned.
    pub fn alloc(eal: &Eal, len: usize) -> Result<IoBuf> {
        Self::alloc_aligned(eal, len, 4096)
    }

    /// `len` zeroed bytes aligned to `align` (a power of two, at least 4).
    pub fn alloc_aligned(eal: &Eal, len: usize, align: usize) -> Result<IoBuf> {
        if len == 0 {
            return Err(Error::BadBuffer {
                why: "zero-length buffer".into(),
            });
        }
        let p = eal.heap().zmalloc(len, align.max(4))?;
        Ok(IoBuf {
            base: p,
            ptr: p,
            len,
            eal: eal.clone(),
        })
    }

    /// `len` zeroed bytes placed so that a multiple of `boundary` (e.g. 2 MiB, the
    /// hugepage size) falls in the middle of the buffer, at a 4 KiB-aligned start. For
    /// testing that transfers across hugepage boundaries are described correctly.
    pub fn alloc_crossing(eal: &Eal, len: usize, boundary: usize) -> Result<IoBuf> {
        if len < 2 || !boundary.is_power_of_two() {
            return Err(Error::BadBuffer {
                why: format!("cannot straddle a {boundary}-byte boundary with {len} bytes"),
            });
        }
        let total = len + boundary;
        let base = eal.heap().zmalloc(total, 4096)?;
        let half = (len / 2) & !4095;
        let b = base.as_ptr() as usize;
        let cross = (b + half).next_multiple_of(boundary);
        let start = cross - half;
        // `start >= base` because `cross >= base + half`; `start + len <= base + total`
        // because `cross < base + half + boundary`.
        let ptr = NonNull::new(start as *mut u8).unwrap_or(base);
        Ok(IoBuf {
            base,
            ptr,
            len,
            eal: eal.clone(),
        })
    }

    /// Virtual address of the first byte.
    pub fn va(&self) -> VirtAddr {
        VirtAddr::from_ptr(self.ptr.as_ptr())
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false (zero-length buffers are refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is inside our live heap block; while `self` is held no
        // device access is in flight (the submit APIs take the buffer by value).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Raw pointer to the first byte (for the unsafe submit APIs).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for IoBuf {
    fn drop(&mut self) {
        // SAFETY: `base` came from this EAL's heap and is owned by us alone.
        let _ = unsafe { self.eal.heap().free(self.base.as_ptr()) };
    }
}
