//! Device-access system calls used by [`crate::device`]: mapping BARs, positioned reads
//! and writes of config space and VFIO regions, the two VFIO device ioctls the
//! `vfio-ioctls` crate does not expose with an error result (`VFIO_DEVICE_GET_INFO`
//! flags, `VFIO_DEVICE_RESET`), and waiting on an eventfd. One safe function per call;
//! each returns [`Result`] with the OS error kept as the source.
//!
//! `munmap` of a BAR mapping is an `unsafe fn`: the caller must guarantee nothing uses
//! the range afterwards.

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::addr::VirtAddr;
use crate::error::{Error, Result};

/// `VFIO_TYPE` (`';'`) and `VFIO_BASE` (100) from `include/uapi/linux/vfio.h`.
const VFIO_TYPE: u64 = b';' as u64;
const VFIO_BASE: u64 = 100;
/// `_IO(VFIO_TYPE, VFIO_BASE + 7)`: `VFIO_DEVICE_GET_INFO` (linux/vfio.h).
const VFIO_DEVICE_GET_INFO: u64 = (VFIO_TYPE << 8) | (VFIO_BASE + 7);
/// `_IO(VFIO_TYPE, VFIO_BASE + 11)`: `VFIO_DEVICE_RESET` (linux/vfio.h).
const VFIO_DEVICE_RESET: u64 = (VFIO_TYPE << 8) | (VFIO_BASE + 11);
/// `VFIO_DEVICE_FLAGS_RESET`: the device supports `VFIO_DEVICE_RESET`.
pub const VFIO_DEVICE_FLAGS_RESET: u32 = 1 << 0;

/// `struct vfio_device_info` (linux/vfio.h).
#[repr(C)]
#[derive(Default)]
struct VfioDeviceInfo {
    argsz: u32,
    flags: u32,
    num_regions: u32,
    num_irqs: u32,
    cap_offset: u32,
    pad: u32,
}
const _: () = assert!(std::mem::size_of::<VfioDeviceInfo>() == 24);

/// Map `len` bytes of `fd` at `offset`, shared and read-write, at `hint` if that range
/// is free, else wherever the kernel likes (a BAR: a sysfs `resourceN` file at offset
/// 0, or a VFIO device fd at a region offset). `what` names the mapping in the error.
pub fn mmap_device(
    fd: BorrowedFd<'_>,
    hint: VirtAddr,
    len: u64,
    offset: u64,
    what: &str,
) -> Result<VirtAddr> {
    super::mem::mmap_shared_near(fd, Some(hint), len, offset, what)
}

/// Unmap a mapping made by [`mmap_device`].
///
/// # Safety
/// `[addr, addr+len)` must be a mapping the caller owns, and nothing may use it after.
pub unsafe fn munmap_device(addr: VirtAddr, len: u64) -> Result<()> {
    // SAFETY: the caller owns the range and guarantees no further use.
    let r = unsafe { libc::munmap(addr.as_ptr(), len as usize) };
    if r != 0 {
        return Err(Error::last_os(
            "unmap",
            format!("{len} bytes of device memory at {addr}"),
        ));
    }
    Ok(())
}

/// `pread` exactly `buf.len()` bytes at `offset`. A short read is an error
/// (`UnexpectedEof`): config space and VFIO regions never return short reads while the
/// device is present.
pub fn pread_exact(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64, what: &str) -> Result<()> {
    // SAFETY: `buf` is a valid writable buffer of `buf.len()` bytes for the whole call.
    let r = unsafe {
        libc::pread(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            offset as libc::off_t,
        )
    };
    whole_transfer(r, buf.len(), "read", what)
}

/// `pwrite` exactly `buf.len()` bytes at `offset`; a short write is an error.
pub fn pwrite_all(fd: BorrowedFd<'_>, buf: &[u8], offset: u64, what: &str) -> Result<()> {
    // SAFETY: `buf` is a valid readable buffer of `buf.len()` bytes for the whole call.
    let r = unsafe {
        libc::pwrite(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            offset as libc::off_t,
        )
    };
    whole_transfer(r, buf.len(), "write", what)
}

/// The result of a `pread`/`pwrite` (`op` = "read"/"write") of `len` bytes that returned
/// `r`: the errno for a failure, `UnexpectedEof`/`WriteZero` for a short transfer.
fn whole_transfer(r: isize, len: usize, op: &'static str, what: &str) -> Result<()> {
    if r < 0 {
        return Err(Error::last_os(op, what.to_string()));
    }
    if r as usize != len {
        let kind = if op == "read" {
            std::io::ErrorKind::UnexpectedEof
        } else {
            std::io::ErrorKind::WriteZero
        };
        return Err(Error::io(
            op,
            what.to_string(),
            std::io::Error::new(kind, format!("short {op}: {r} of {len} bytes")),
        ));
    }
    Ok(())
}

/// `VFIO_DEVICE_GET_INFO` on a VFIO device fd: the `flags` word
/// (`VFIO_DEVICE_FLAGS_*`).
pub fn vfio_device_flags(device: BorrowedFd<'_>) -> Result<u32> {
    let mut info = VfioDeviceInfo {
        argsz: std::mem::size_of::<VfioDeviceInfo>() as u32,
        ..Default::default()
    };
    // SAFETY: VFIO_DEVICE_GET_INFO writes at most `argsz` bytes into `info`, a valid
    // `struct vfio_device_info` that lives for the whole call.
    let r = unsafe {
        libc::ioctl(
            device.as_raw_fd(),
            VFIO_DEVICE_GET_INFO as _,
            &mut info as *mut VfioDeviceInfo,
        )
    };
    if r < 0 {
        return Err(Error::last_os(
            "query",
            "VFIO device info (VFIO_DEVICE_GET_INFO)",
        ));
    }
    Ok(info.flags)
}

/// `VFIO_DEVICE_RESET` on a VFIO device fd (function-level or bus reset, whichever the
/// kernel can do for the device).
pub fn vfio_device_reset(device: BorrowedFd<'_>) -> Result<()> {
    // SAFETY: VFIO_DEVICE_RESET takes no argument and touches no user memory.
    let r = unsafe { libc::ioctl(device.as_raw_fd(), VFIO_DEVICE_RESET as _) };
    if r < 0 {
        return Err(Error::last_os("reset", "VFIO device (VFIO_DEVICE_RESET)"));
    }
    Ok(())
}

/// Wait until `fd` is readable or `timeout_ms` passes (`poll(2)`; negative = forever).
/// Returns true if readable. `EINTR` counts as "not yet".
pub fn poll_readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd for the whole call.
    let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(Error::io("poll", "event fd", e));
    }
    Ok(r > 0 && p.revents & libc::POLLIN != 0)
}

/// Read an eventfd's 8-byte counter (resetting it). `Ok(None)` if it is zero and the fd
/// is non-blocking (`EAGAIN`).
pub fn eventfd_read(fd: BorrowedFd<'_>) -> Result<Option<u64>> {
    let mut v = [0u8; 8];
    // SAFETY: `v` is a valid writable 8-byte buffer for the whole call.
    let r = unsafe { libc::read(fd.as_raw_fd(), v.as_mut_ptr().cast(), 8) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::WouldBlock {
            return Ok(None);
        }
        return Err(Error::io("read", "event fd", e));
    }
    if r != 8 {
        return Err(Error::io(
            "read",
            "event fd",
            std::io::Error::other(format!("short read of {r} bytes")),
        ));
    }
    Ok(Some(u64::from_ne_bytes(v)))
}
