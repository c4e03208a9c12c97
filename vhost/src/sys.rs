//! The system calls of the vhost target: memfd for the inflight area, shared mappings
//! of it, eventfd reads and writes.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::ptr::NonNull;

use crate::error::{Error, Result};

fn os(what: impl Into<String>) -> Error {
    Error::Sys {
        what: what.into(),
        source: std::io::Error::last_os_error(),
    }
}

/// A zero-filled memfd of `len` bytes.
pub fn memfd(name: &str, len: u64) -> Result<File> {
    let cname = std::ffi::CString::new(name).map_err(|_| Error::Invalid {
        what: "create a memfd",
        why: format!("name '{name}' holds a NUL"),
    })?;
    // SAFETY: a valid C string; the flags are plain bits.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(os("create a memfd"));
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    let f = unsafe { File::from_raw_fd(fd) };
    f.set_len(len).map_err(|source| Error::Sys {
        what: format!("size a memfd to {len} bytes"),
        source,
    })?;
    Ok(f)
}

/// A shared read-write mapping of `len` bytes of `file` from `offset`.
pub struct SharedMap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; all access goes
// through raw pointers whose users document their own synchronisation.
unsafe impl Send for SharedMap {}
// SAFETY: as above; `&SharedMap` only hands out the base pointer.
unsafe impl Sync for SharedMap {}

impl SharedMap {
    /// Map `len` bytes of `file` at `offset` (MAP_SHARED).
    pub fn new(file: &File, offset: u64, len: usize) -> Result<SharedMap> {
        if len == 0 {
            return Err(Error::Invalid {
                what: "map shared memory",
                why: "zero length".into(),
            });
        }
        let off = libc::off_t::try_from(offset).map_err(|_| Error::Invalid {
            what: "map shared memory",
            why: format!("offset {offset} too large"),
        })?;
        // SAFETY: a fresh mapping chosen by the kernel; a valid descriptor.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(os(format!("map {len} bytes of shared memory")));
        }
        Ok(SharedMap {
            ptr: NonNull::new(p.cast()).ok_or_else(|| os("map shared memory"))?,
            len,
        })
    }

    /// Base address.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn size(&self) -> usize {
        self.len
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Consume an eventfd's counter (non-blocking descriptors return `false` when empty).
pub fn eventfd_drain(f: &File) -> bool {
    let mut b = [0u8; 8];
    let mut r: &File = f;
    r.read(&mut b).is_ok_and(|n| n == 8)
}

/// Add one to an eventfd's counter (a guest interrupt through QEMU's irqfd).
pub fn eventfd_signal(f: &File) -> Result<()> {
    let mut w: &File = f;
    w.write_all(&1u64.to_ne_bytes())
        .map_err(|source| Error::Sys {
            what: "signal the guest's call eventfd".into(),
            source,
        })
}

/// Make a descriptor non-blocking.
pub fn set_nonblocking(f: &impl AsRawFd) -> Result<()> {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor the caller holds open.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if fl < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) } < 0 {
        return Err(os("make a descriptor non-blocking"));
    }
    Ok(())
}
