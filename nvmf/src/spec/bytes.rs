//! Copies of plain-old-data structures to and from byte buffers (no alignment needed).

use std::mem::size_of;

pub use nvme::spec::Pod;

const _: () = assert!(
    cfg!(target_endian = "little"),
    "the NVMe/TCP structures are used as-is: little-endian hosts only"
);

/// Read a `T` from the first `size_of::<T>()` bytes of `b` (`None` if `b` is shorter).
pub fn read<T: Pod>(b: &[u8]) -> Option<T> {
    if b.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: `b` has at least size_of::<T>() bytes (checked above), the read is
    // unaligned, and `T: Pod` accepts any bytes.
    Some(unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<T>()) })
}

/// The bytes of `v`.
pub fn as_bytes<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: `T: Pod` has no padding, so every byte of `*v` is initialised, and the
    // slice borrows `v` for its lifetime.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

/// A zeroed `T` (every `Pod` accepts all-zero bytes).
pub fn zeroed<T: Pod>() -> Box<T> {
    let b = vec![0u8; size_of::<T>()];
    // `read` cannot fail: the buffer has exactly the size.
    Box::new(read::<T>(&b).expect("zeroed buffer of the type's size"))
}

/// Append the bytes of `v` to `out`.
pub fn put<T: Pod>(out: &mut Vec<u8>, v: &T) {
    out.extend_from_slice(as_bytes(v));
}

/// Copy `s` into the fixed field `dst`, padding with `pad` (NQNs pad with NUL, serial
/// and model numbers with spaces); a longer `s` is cut.
pub fn fill_str(dst: &mut [u8], s: &str, pad: u8) {
    dst.fill(pad);
    let n = s.len().min(dst.len());
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
}

/// The string in a NUL-padded fixed field.
pub fn nul_str(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}
