//! Every system call of the bdev crate outside the io-uring crate: opening the file or
//! block device behind a uring or aio bdev, its size and logical block size, punching
//! holes, and Linux native AIO (`io_setup`, `io_submit`, `io_getevents`, `io_destroy`;
//! layouts from include/uapi/linux/aio_abi.h). One safe function per call, returning
//! `std::io::Result` (the modules add the bdev's name to the error).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Open `path` read-write (or read-only) with `O_DIRECT` when the file system takes it;
/// returns the descriptor and whether it is direct. tmpfs and a few others refuse
/// `O_DIRECT` with `EINVAL`: such a file is opened buffered (as SPDK's aio module does).
pub fn open_file(path: &str, readonly: bool) -> io::Result<(OwnedFd, bool)> {
    let c = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let base = if readonly {
        libc::O_RDONLY
    } else {
        libc::O_RDWR
    } | libc::O_CLOEXEC;
    for (flags, direct) in [(base | libc::O_DIRECT, true), (base, false)] {
        // SAFETY: `c` is a NUL-terminated path; the flags take no third argument.
        let fd = unsafe { libc::open(c.as_ptr(), flags) };
        if fd >= 0 {
            // SAFETY: a new descriptor owned by nobody else.
            return Ok((unsafe { OwnedFd::from_raw_fd(fd) }, direct));
        }
        let e = io::Error::last_os_error();
        if !(direct && e.raw_os_error() == Some(libc::EINVAL)) {
            return Err(e);
        }
    }
    Err(io::Error::from_raw_os_error(libc::EINVAL))
}

/// What `fstat` and the block-device ioctls say about an open file.
#[derive(Debug, Clone, Copy)]
pub struct FileGeometry {
    /// Size in bytes.
    pub size: u64,
    /// Whether it is a block device.
    pub is_block_device: bool,
    /// The device's logical block size (`BLKSSZGET`); `None` for a regular file.
    pub logical_block_size: Option<u32>,
}

// From include/uapi/linux/fs.h: _IO(0x12, 104) and _IOR(0x12, 114, size_t).
const BLKSSZGET: libc::c_ulong = 0x1268;
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;

/// Size and block size of `fd` (a regular file or a block device).
pub fn geometry(fd: BorrowedFd<'_>) -> io::Result<FileGeometry> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a writable stat buffer and `fd` is open.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } as libc::c_long)?;
    if st.st_mode & libc::S_IFMT == libc::S_IFBLK {
        let mut size: u64 = 0;
        // SAFETY: BLKGETSIZE64 writes one u64 through the pointer.
        cvt(unsafe { libc::ioctl(fd.as_raw_fd(), BLKGETSIZE64, &mut size) } as libc::c_long)?;
        let mut bs: libc::c_int = 0;
        // SAFETY: BLKSSZGET writes one int through the pointer.
        cvt(unsafe { libc::ioctl(fd.as_raw_fd(), BLKSSZGET, &mut bs) } as libc::c_long)?;
        return Ok(FileGeometry {
            size,
            is_block_device: true,
            logical_block_size: u32::try_from(bs).ok().filter(|b| *b > 0),
        });
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "neither a regular file nor a block device",
        ));
    }
    Ok(FileGeometry {
        size: st.st_size as u64,
        is_block_device: false,
        logical_block_size: None,
    })
}

/// `FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE` (unmap).
pub const FALLOC_PUNCH: i32 = libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE;

/// `fallocate(2)` with `mode` over `[off, off + len)`.
pub fn fallocate(fd: BorrowedFd<'_>, mode: i32, off: u64, len: u64) -> io::Result<()> {
    // SAFETY: plain system call on an open descriptor; no memory is passed.
    cvt(unsafe { libc::fallocate(fd.as_raw_fd(), mode, off as i64, len as i64) } as libc::c_long)?;
    Ok(())
}

/// `fdatasync(2)`.
pub fn fdatasync(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain system call on an open descriptor.
    cvt(unsafe { libc::fdatasync(fd.as_raw_fd()) } as libc::c_long)?;
    Ok(())
}

/// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`: the descriptor a uring channel's ring
/// signals when completions wait.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain system call; on success the new descriptor is ours alone.
    let fd =
        cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) } as libc::c_long)?;
    // SAFETY: `fd` was just created and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Reset an eventfd's counter (a non-blocking read; an empty counter is fine).
pub fn eventfd_drain(fd: BorrowedFd<'_>) {
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into `v`, which lives across the call.
    let _ = unsafe { libc::read(fd.as_raw_fd(), std::ptr::addr_of_mut!(v).cast(), 8) };
}

// ---- Linux native AIO ----

/// `struct iocb` (little-endian layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Iocb {
    /// Returned in the event's `data`.
    pub aio_data: u64,
    /// Kernel use.
    pub aio_key: u32,
    /// RWF_* flags.
    pub aio_rw_flags: i32,
    /// IOCB_CMD_*.
    pub aio_lio_opcode: u16,
    /// Priority.
    pub aio_reqprio: i16,
    /// File descriptor.
    pub aio_fildes: u32,
    /// Buffer, or for the vectored commands the `iovec` array.
    pub aio_buf: u64,
    /// Bytes, or for the vectored commands the number of iovecs.
    pub aio_nbytes: u64,
    /// File offset.
    pub aio_offset: i64,
    /// Reserved.
    pub aio_reserved2: u64,
    /// IOCB_FLAG_*.
    pub aio_flags: u32,
    /// Eventfd for IOCB_FLAG_RESFD.
    pub aio_resfd: u32,
}
const _: () = assert!(std::mem::size_of::<Iocb>() == 64);

/// `struct io_event`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IoEvent {
    /// The iocb's `aio_data`.
    pub data: u64,
    /// The iocb's address.
    pub obj: u64,
    /// Bytes moved, or a negative errno.
    pub res: i64,
    /// Secondary result.
    pub res2: i64,
}
const _: () = assert!(std::mem::size_of::<IoEvent>() == 32);

/// `IOCB_CMD_PREADV`: vectored read.
pub const IOCB_CMD_PREADV: u16 = 7;
/// `IOCB_CMD_PWRITEV`: vectored write.
pub const IOCB_CMD_PWRITEV: u16 = 8;
/// `IOCB_FLAG_RESFD`: signal the eventfd in `aio_resfd` when the request completes.
pub const IOCB_FLAG_RESFD: u32 = 1;

/// An AIO context (`aio_context_t`), destroyed on drop (which waits for its requests).
#[derive(Debug)]
pub struct AioContext(u64);

impl AioContext {
    /// `io_setup(2)`: a context for `nr` requests in flight.
    pub fn new(nr: u32) -> io::Result<AioContext> {
        let mut ctx: u64 = 0;
        // SAFETY: `ctx` is a valid out pointer, zero as the call requires.
        cvt(unsafe { libc::syscall(libc::SYS_io_setup, nr, &mut ctx as *mut u64) })?;
        Ok(AioContext(ctx))
    }

    /// `io_submit(2)`; returns how many of `iocbs` were queued (a prefix).
    ///
    /// # Safety
    /// Each pointer must point to an `Iocb` that stays alive and unmoved, with its buffers
    /// (and iovec array) valid, until its event is reaped.
    pub unsafe fn submit(&self, iocbs: &[*mut Iocb]) -> io::Result<usize> {
        // SAFETY: forwarded caller contract; the pointer array is read during the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_io_submit,
                self.0,
                iocbs.len() as libc::c_long,
                iocbs.as_ptr(),
            )
        };
        cvt(r).map(|n| n as usize)
    }

    /// `io_getevents(2)` without waiting: the events ready now, into `out`.
    pub fn reap(&self, out: &mut [IoEvent]) -> io::Result<usize> {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        loop {
            // SAFETY: `out` is writable for its length of events; `zero` is a valid
            // timespec read during the call.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_io_getevents,
                    self.0,
                    0 as libc::c_long,
                    out.len() as libc::c_long,
                    out.as_mut_ptr(),
                    &zero as *const libc::timespec,
                )
            };
            match cvt(r) {
                Ok(n) => return Ok(n as usize),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for AioContext {
    fn drop(&mut self) {
        // SAFETY: our own context, destroyed once; io_destroy waits for its requests, so
        // no buffer is written after this returns.
        unsafe { libc::syscall(libc::SYS_io_destroy, self.0) };
    }
}
