//! Plain-old-data marking and volatile copies to and from memory a device reads or
//! writes.

use std::mem::size_of;

/// Plain old data: any bit pattern is a valid value, there is no padding and no pointer,
/// so a value may be copied byte-for-byte from memory a device wrote.
///
/// # Safety
/// Implement only for `#[repr(C)]` (or transparent) types made of integers and arrays of
/// integers, with no padding bytes, for which every bit pattern is valid.
pub unsafe trait Pod: Copy + 'static {}

// SAFETY: integers: every bit pattern valid, no padding.
unsafe impl Pod for u8 {}
// SAFETY: as above.
unsafe impl Pod for u16 {}
// SAFETY: as above.
unsafe impl Pod for u32 {}
// SAFETY: as above.
unsafe impl Pod for u64 {}

/// Volatile copy of a `T` from memory a device may write.
///
/// # Safety
/// `p` must be valid for reads of `size_of::<T>()` bytes and aligned for `T`.
#[inline]
pub unsafe fn read_volatile_pod<T: Pod>(p: *const T) -> T {
    // SAFETY: forwarded caller contract; `T: Pod` makes any bytes the device left valid.
    unsafe { std::ptr::read_volatile(p) }
}

/// Volatile store of a `T` into memory a device may read.
///
/// # Safety
/// `p` must be valid for writes of `size_of::<T>()` bytes and aligned for `T`.
#[inline]
pub unsafe fn write_volatile_pod<T: Pod>(p: *mut T, v: T) {
    // SAFETY: forwarded caller contract.
    unsafe { std::ptr::write_volatile(p, v) }
}

/// Volatile byte-wise copy of a whole `T` out of device memory (for large structures
/// such as the 4 KiB identify data, where one volatile load of the whole value would be
/// a huge memcpy the compiler may not split).
///
/// # Safety
/// `p` must be valid for reads of `size_of::<T>()` bytes.
pub unsafe fn read_volatile_bytes<T: Pod>(p: *const u8) -> Box<T> {
    let mut out = Box::<T>::new_uninit();
    let dst = out.as_mut_ptr().cast::<u8>();
    for i in 0..size_of::<T>() {
        // SAFETY: `p + i` is in range per the caller; `dst + i` is in the fresh box.
        unsafe { dst.add(i).write(std::ptr::read_volatile(p.add(i))) };
    }
    // SAFETY: every byte was written and `T: Pod` accepts any bytes.
    unsafe { out.assume_init() }
}
