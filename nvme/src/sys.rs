//! Every system call of the crate, one safe function each, returning `Result`: the
//! kernel I/O back ends ([`crate::kernel`]: io_uring, Linux AIO, pread/pwrite), block
//! device size, and per-thread CPU usage. The NVMe driver itself makes no system calls
//! on its data path (device access goes through `eal::device`).
//!
//! io_uring and Linux AIO are used through their raw system calls (no liburing/libaio
//! and no extra crate): the structures below follow `include/uapi/linux/io_uring.h` and
//! `include/uapi/linux/aio_abi.h`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::error::{Error, Result};

fn os(op: &'static str, what: impl Into<String>) -> Error {
    Error::Os {
        op,
        what: what.into(),
        source: std::io::Error::last_os_error(),
    }
}

/// A system call's return value: non-negative is the result, negative is the OS error
/// (`errno`) as "failed to `op` `what`".
fn cvt(r: i64, op: &'static str, what: impl FnOnce() -> String) -> Result<u64> {
    if r < 0 {
        return Err(os(op, what()));
    }
    Ok(r as u64)
}

/// [`cvt`] of `call`, made again while it fails with `EINTR`.
fn cvt_retry(mut call: impl FnMut() -> i64, op: &'static str, what: &'static str) -> Result<u64> {
    loop {
        let r = call();
        if r >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return cvt(r, op, || what.into());
        }
    }
}

/// Open a file or block device with `O_DIRECT` (read-write if `write`).
pub fn open_direct(path: &str, write: bool) -> Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| Error::BadArgument {
        what: format!("open {path:?}"),
        why: "NUL in path".into(),
    })?;
    let flags =
        if write { libc::O_RDWR } else { libc::O_RDONLY } | libc::O_DIRECT | libc::O_CLOEXEC;
    // SAFETY: `c` is a valid NUL-terminated string; open has no other preconditions.
    let fd = unsafe { libc::open(c.as_ptr(), flags) };
    if fd < 0 {
        return Err(os("open", format!("{path} (O_DIRECT)")));
    }
    // SAFETY: `fd` was just returned by open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Size in bytes of a block device (BLKGETSIZE64) or regular file.
pub fn device_size(fd: BorrowedFd<'_>, what: &str) -> Result<u64> {
    // SAFETY: fstat writes into a zeroed stat struct we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(os("stat", what.to_string()));
    }
    if st.st_mode & libc::S_IFMT == libc::S_IFBLK {
        let mut size: u64 = 0;
        // BLKGETSIZE64 = _IOR(0x12, 114, size_t)
        const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
        // SAFETY: the ioctl writes one u64 into `size`.
        if unsafe { libc::ioctl(fd.as_raw_fd(), BLKGETSIZE64, &mut size as *mut u64) } != 0 {
            return Err(os("get the size of", what.to_string()));
        }
        Ok(size)
    } else {
        Ok(st.st_size as u64)
    }
}

/// `pread` into `buf` at `off`; returns the bytes read.
pub fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], off: u64) -> Result<usize> {
    let (p, len) = (buf.as_mut_ptr().cast(), buf.len());
    // SAFETY: `buf` is valid for `len` bytes of writes.
    let n = unsafe { libc::pread(fd.as_raw_fd(), p, len, off as libc::off_t) };
    cvt(n as i64, "pread", || format!("{len} bytes at {off}")).map(|n| n as usize)
}

/// `pwrite` of `buf` at `off`; returns the bytes written.
pub fn pwrite(fd: BorrowedFd<'_>, buf: &[u8], off: u64) -> Result<usize> {
    let (p, len) = (buf.as_ptr().cast(), buf.len());
    // SAFETY: `buf` is valid for `len` bytes of reads.
    let n = unsafe { libc::pwrite(fd.as_raw_fd(), p, len, off as libc::off_t) };
    cvt(n as i64, "pwrite", || format!("{len} bytes at {off}")).map(|n| n as usize)
}

/// CPU time (user, system) of the calling thread (`getrusage(RUSAGE_THREAD)`).
pub fn thread_cpu_time() -> Result<(Duration, Duration)> {
    // SAFETY: getrusage writes into a zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
        return Err(os("getrusage", "this thread"));
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok((tv(ru.ru_utime), tv(ru.ru_stime)))
}

// ---- Linux AIO (include/uapi/linux/aio_abi.h) ----

/// `struct iocb` (little endian layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Iocb {
    pub aio_data: u64,
    pub aio_key: u32,
    pub aio_rw_flags: i32,
    pub aio_lio_opcode: u16,
    pub aio_reqprio: i16,
    pub aio_fildes: u32,
    pub aio_buf: u64,
    pub aio_nbytes: u64,
    pub aio_offset: i64,
    pub aio_reserved2: u64,
    pub aio_flags: u32,
    pub aio_resfd: u32,
}
const _: () = assert!(std::mem::size_of::<Iocb>() == 64);

/// `struct io_event`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IoEvent {
    pub data: u64,
    pub obj: u64,
    pub res: i64,
    pub res2: i64,
}

/// `IOCB_CMD_PREAD`, `IOCB_CMD_PWRITE`.
pub const IOCB_CMD_PREAD: u16 = 0;
pub const IOCB_CMD_PWRITE: u16 = 1;

/// `io_setup(2)`: a context for `nr` requests.
pub fn io_setup(nr: u32) -> Result<u64> {
    let mut ctx: u64 = 0;
    // SAFETY: `ctx` is a valid out pointer initialised to 0 as the call requires.
    if unsafe { libc::syscall(libc::SYS_io_setup, nr, &mut ctx as *mut u64) } != 0 {
        return Err(os("set up", format!("an AIO context of {nr} requests")));
    }
    Ok(ctx)
}

/// `io_destroy(2)`.
pub fn io_destroy(ctx: u64) -> Result<()> {
    // SAFETY: destroying a context we created; waits for its requests.
    if unsafe { libc::syscall(libc::SYS_io_destroy, ctx) } != 0 {
        return Err(os("destroy", "an AIO context"));
    }
    Ok(())
}

/// `io_submit(2)`; returns how many were queued.
///
/// # Safety
/// Each pointer must point to a live `Iocb` whose buffer stays valid until its event is
/// reaped.
pub unsafe fn io_submit(ctx: u64, iocbs: &[*mut Iocb]) -> Result<usize> {
    // SAFETY: forwarded caller contract.
    let r = unsafe {
        libc::syscall(
            libc::SYS_io_submit,
            ctx,
            iocbs.len() as libc::c_long,
            iocbs.as_ptr(),
        )
    };
    cvt(r, "submit", || format!("{} AIO requests", iocbs.len())).map(|n| n as usize)
}

/// `io_getevents(2)`: wait for at least `min` events, fill `out`.
pub fn io_getevents(ctx: u64, min: usize, out: &mut [IoEvent]) -> Result<usize> {
    let (len, p) = (out.len() as libc::c_long, out.as_mut_ptr());
    let r = cvt_retry(
        || {
            // SAFETY: `out` is writable for `len` events; no timeout.
            unsafe {
                libc::syscall(
                    libc::SYS_io_getevents,
                    ctx,
                    min as libc::c_long,
                    len,
                    p,
                    std::ptr::null::<u8>(),
                )
            }
        },
        "reap",
        "AIO events",
    )?;
    Ok(r as usize)
}
