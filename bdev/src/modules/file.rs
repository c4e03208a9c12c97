//! What the kernel-backed modules (uring, aio) share: opening the file or block device
//! and sizing the bdev from it, SPDK's block-size rules, per-channel slots for requests
//! in the kernel, and bounce buffers for data a direct-I/O file cannot take as it is.
//!
//! Block size (as SPDK's `bdev_uring_create` / `bdev_aio_create` decide it): given 0, the
//! device's logical block size (`BLKSSZGET`); a regular file has none, so it must be
//! given. Given a size, it must be a power of two of at least 512 and, on a block device
//! opened for direct I/O, at least the device's logical block size.
//!
//! Direct I/O (`O_DIRECT`, used whenever the file system takes it) wants buffers aligned
//! to the logical block size. The layer passes the caller's iovecs as they are, so a
//! request whose buffers are not aligned goes through an aligned bounce buffer here
//! (SPDK's layer does the same with its `required_alignment`).

use std::alloc::Layout;
use std::os::fd::{AsFd, OwnedFd};

use crate::bdev;
use crate::error::{Error, Result};
use crate::io::{BdevIo, IoType};
use crate::sys;

/// The largest request handed to the kernel in one SQE or iocb (1 GiB).
pub const MAX_TRANSFER_BYTES: u32 = 1 << 30;

/// An open file or block device sized for a bdev.
pub(crate) struct BackingFile {
    pub(crate) fd: OwnedFd,
    pub(crate) direct: bool,
    pub(crate) block_size: u32,
    pub(crate) num_blocks: u64,
}

impl BackingFile {
    /// Whether it is a regular file (not a block device): unmap punches holes there.
    pub(crate) fn regular(&self) -> bool {
        !sys::geometry(self.fd.as_fd())
            .map(|g| g.is_block_device)
            .unwrap_or(true)
    }

    /// The bdev over it: `name`, `uuid` (random if `None`), `product`, with requests
    /// split at [`MAX_TRANSFER_BYTES`] (one SQE or iocb moves at
    /// most `u32::MAX` bytes).
    pub(crate) fn info(
        &self,
        name: &str,
        uuid: Option<crate::Uuid>,
        product: &str,
    ) -> bdev::BdevInfo {
        bdev::BdevInfo {
            name: name.to_string(),
            aliases: Vec::new(),
            uuid: uuid.unwrap_or_else(crate::Uuid::random),
            product_name: product.into(),
            block_size: self.block_size,
            num_blocks: self.num_blocks,
            optimal_io_boundary: 0,
            write_cache: true,
            max_transfer_blocks: MAX_TRANSFER_BYTES / self.block_size,
        }
    }
}

/// Open `filename` for bdev `name`, apply the block-size rules and size the bdev.
pub(crate) fn open_backing(
    name: &str,
    filename: &str,
    block_size: u32,
    readonly: bool,
) -> Result<BackingFile> {
    if name.is_empty() {
        return Err(Error::Invalid {
            what: "name",
            why: "empty".into(),
        });
    }
    if bdev::get(name).is_some() {
        return Err(Error::Exists(name.to_string()));
    }
    if block_size != 0 && (block_size < 512 || !block_size.is_power_of_two()) {
        return Err(Error::Invalid {
            what: "block_size",
            why: format!("{block_size} is not a power of two >= 512"),
        });
    }
    let create = |why: String| Error::Create {
        name: name.to_string(),
        why,
    };
    if filename.is_empty() {
        return Err(Error::Invalid {
            what: "filename",
            why: "empty".into(),
        });
    }
    let (fd, direct) = sys::open_file(filename, readonly)
        .map_err(|e| create(format!("cannot open '{filename}': {e}")))?;
    let g =
        sys::geometry(fd.as_fd()).map_err(|e| create(format!("cannot size '{filename}': {e}")))?;
    let block_size = match (block_size, g.logical_block_size) {
        (0, Some(d)) => d,
        (0, None) => {
            return Err(Error::Invalid {
                what: "block_size",
                why: format!(
                    "cannot be detected for the regular file '{filename}': give block_size"
                ),
            })
        }
        (b, Some(d)) if direct && b < d => {
            return Err(Error::Invalid {
                what: "block_size",
                why: format!("{b} is smaller than the device's logical block size {d}"),
            })
        }
        (b, _) => b,
    };
    let num_blocks = g.size / u64::from(block_size);
    if num_blocks == 0 {
        return Err(create(format!(
            "'{filename}' ({} bytes) is smaller than one block of {block_size}",
            g.size
        )));
    }
    Ok(BackingFile {
        fd,
        direct,
        block_size,
        num_blocks,
    })
}

/// The largest write-zeroes request (it is written from a zeroed buffer of its size).
pub(crate) const MAX_ZEROES_BYTES: usize = 64 << 20;

/// An aligned heap buffer (freed on drop).
pub(crate) struct Bounce {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: a plain heap block owned by this value.
unsafe impl Send for Bounce {}

impl Bounce {
    fn new(len: usize) -> Option<Bounce> {
        let layout = Layout::from_size_align(len.max(1), 4096).ok()?;
        // SAFETY: non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        (!ptr.is_null()).then_some(Bounce { ptr, layout })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: our live, initialised (zeroed at allocation) block.
        unsafe { std::slice::from_raw_parts(self.ptr, self.layout.size()) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for Bounce {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the kernel is done with it (a slot
        // is freed only after its completion).
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

/// One request in the kernel: the I/O, the iovec array the kernel reads, and the
/// bounce buffer if one was needed.
#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) io: Option<BdevIo>,
    pub(crate) iov: Vec<libc::iovec>,
    bounce: Option<Bounce>,
}

// SAFETY: the iovec pointers are the submitter's buffers, which the submit contract
// keeps valid until the I/O completes, on the channel's thread.
unsafe impl Send for Slot {}

impl Slot {
    /// Fill the slot for `io` (read or write): its iovecs, clipped to the request, or a
    /// bounce buffer (holding the data for a write) when `align` is not met. `false` if
    /// a bounce buffer could not be had.
    pub(crate) fn prepare(&mut self, io: BdevIo, align: usize) -> bool {
        let len = io.len_bytes();
        // The iovecs clipped to the request, straight into the slot's kept array.
        self.iov.clear();
        let (mut left, mut aligned) = (len, true);
        for v in io.iovs() {
            if left == 0 {
                break;
            }
            let take = v.len.min(left);
            aligned &= align <= 1
                || ((v.base as usize).is_multiple_of(align) && take.is_multiple_of(align));
            self.iov.push(libc::iovec {
                iov_base: v.base.cast(),
                iov_len: take,
            });
            left -= take;
        }
        if aligned {
            self.bounce = None;
        } else {
            self.iov.clear();
            let Some(mut b) = Bounce::new(len) else {
                self.io = Some(io);
                return false;
            };
            if io.io_type() == IoType::Write {
                io.copy_out(b.bytes_mut());
            }
            self.iov.push(libc::iovec {
                iov_base: b.ptr.cast(),
                iov_len: len,
            });
            self.bounce = Some(b);
        }
        self.io = Some(io);
        true
    }

    /// Fill the slot for a write-zeroes `io`: a zeroed buffer of its length to write
    /// (fallocate's zero-range is not offered by every file system). `false` if the
    /// buffer could not be had or the request is over [`MAX_ZEROES_BYTES`].
    pub(crate) fn prepare_zeroes(&mut self, io: BdevIo) -> bool {
        let len = io.len_bytes();
        self.iov.clear();
        self.io = Some(io);
        if len > MAX_ZEROES_BYTES {
            return false;
        }
        let Some(b) = Bounce::new(len) else {
            return false;
        };
        self.iov.push(libc::iovec {
            iov_base: b.ptr.cast(),
            iov_len: len,
        });
        self.bounce = Some(b);
        true
    }

    /// Take the I/O back after its completion (copying a bounced read into the caller's
    /// buffers when `ok`).
    pub(crate) fn finish(&mut self, ok: bool) -> Option<BdevIo> {
        let io = self.io.take()?;
        if let Some(b) = self.bounce.take() {
            if ok && io.io_type() == IoType::Read {
                io.copy_in(&b.bytes()[..io.len_bytes()]);
            }
        }
        self.iov.clear();
        Some(io)
    }
}

/// Slots of one channel with their free list.
pub(crate) struct Slots {
    pub(crate) slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Slots {
    pub(crate) fn new(n: usize) -> Slots {
        Slots {
            slots: (0..n).map(|_| Slot::default()).collect(),
            free: (0..n as u32).rev().collect(),
        }
    }

    pub(crate) fn alloc(&mut self) -> Option<u32> {
        self.free.pop()
    }

    pub(crate) fn release(&mut self, i: u32) {
        self.free.push(i);
    }

    pub(crate) fn in_use(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

/// The byte range of a request.
pub(crate) fn byte_range(io: &BdevIo) -> (u64, u64) {
    let bs = u64::from(io.block_size());
    (io.offset_blocks() * bs, io.num_blocks() * bs)
}
