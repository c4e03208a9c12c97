//! The uring bdev module (SPDK's `bdev_uring`): a file or block device driven through
//! the kernel's io_uring, with the `io-uring` crate (the rings, the SQE layout and the
//! memory ordering of head and tail are that crate's, not ours).
//!
//! Each channel has its own ring of [`RING_ENTRIES`] entries. `submit` only writes an
//! SQE; the channel's poller hands all queued SQEs to the kernel with one
//! `io_uring_enter` per iteration, then reaps the completion ring and completes the
//! I/Os, as SPDK's uring group poller does. The poller is paused when no I/O is in the
//! kernel. The ring signals an eventfd when completions wait (`IORING_REGISTER_EVENTFD`),
//! watched as a framework interrupt: a reactor in interrupt mode may sleep with I/O in
//! the kernel and is woken for its completions, as fio sleeps in `io_uring_enter`.
//!
//! # System calls
//! A poll enters the kernel only when it has SQEs to hand over, once for all of them;
//! completions are posted by the kernel's task work and reaped from the shared ring
//! without a system call. The file is registered with the ring
//! (`IORING_REGISTER_FILES`), so no SQE looks the descriptor up. The ring is set up
//! without `SINGLE_ISSUER`/`DEFER_TASKRUN` (what fio asks for): both tie the ring to
//! one OS thread, and a framework thread, with its channels, may be moved to another
//! reactor by the scheduler. (`COOP_TASKRUN` is left out too: its task work does not
//! wake a reactor sleeping in epoll, so the eventfd would not fire.)
//!
//! A file or device that grew (or shrank, with no descriptor open) is taken up by
//! [`rescan`] (SPDK's `bdev_uring_rescan`).
//!
//! Types: read and write (vectored when the request has several buffers), flush
//! (`fdatasync`), write-zeroes (a write from a zeroed buffer), unmap on regular files
//! (`fallocate` punching a hole), and reset (completes when every I/O the channel had in
//! the kernel has completed).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use framework::subsystem::ConfigCall;
use io_uring::{opcode, squeue, types, IoUring};
use serde_json::json;

use crate::bdev::{self, Bdev, BdevInfo, BdevModule, ModuleChannel};
use crate::error::Result;
use crate::io::{BdevIo, IoStatus, IoType};
use crate::modules::file::{byte_range, open_backing};
use crate::modules::kernel_queue::{refuse, status, Channel, KernelState, Queue};
use crate::modules::Disks;
use crate::sys;
use crate::uuid::Uuid;

/// Entries of each channel's submission ring (and so I/Os one channel has in the
/// kernel; more wait in the layer's out-of-resources queue).
pub const RING_ENTRIES: u32 = 512;

/// The largest request handed to the kernel in one SQE (1 GiB).
pub use crate::modules::file::MAX_TRANSFER_BYTES;

/// What `bdev_uring_create` takes.
#[derive(Debug, Clone, Default)]
pub struct UringOpts {
    /// Bdev name.
    pub name: String,
    /// The file or block device.
    pub filename: String,
    /// Block size; 0 = the device's logical block size (required for a regular file).
    pub block_size: u32,
    /// UUID (random if `None`).
    pub uuid: Option<Uuid>,
}

struct UringDisk {
    fd: Arc<OwnedFd>,
    filename: String,
    direct: bool,
    regular: bool,
}

/// Where a channel's I/O is.
struct State {
    ring: IoUring,
    q: Queue,
    /// SQEs written since the last `io_uring_enter`.
    unsubmitted: usize,
    /// Flags every SQE carries (`FIXED_FILE` when the file is registered).
    sqe_flags: squeue::Flags,
}

// SAFETY: the ring's mappings and the slots' buffers are used only on the channel's
// thread (the mutex is there to share the state with the poller, never contended).
unsafe impl Send for State {}

struct UringChannel {
    k: Channel<State>,
    /// What SQEs name: the registered file's index, or the descriptor.
    fd: types::Fd,
}

impl State {
    /// Queue `sqe` for slot `i`; false if the ring is full.
    fn push(&mut self, sqe: squeue::Entry, i: u32) -> bool {
        let sqe = sqe.user_data(u64::from(i)).flags(self.sqe_flags);
        // SAFETY: the SQE points at the slot's iovec array and the buffers it lists (or
        // at none); both stay untouched until the slot's completion is reaped (the slot
        // is released only then, and the submit contract holds the buffers).
        let ok = unsafe { self.ring.submission().push(&sqe) }.is_ok();
        if ok {
            self.unsubmitted += 1;
        }
        ok
    }
}

impl KernelState for State {
    fn queue(&mut self) -> &mut Queue {
        &mut self.q
    }

    fn poll(&mut self, out: &mut Vec<(BdevIo, IoStatus)>) {
        out.append(&mut self.q.done);
        if self.unsubmitted > 0 {
            match self.ring.submit() {
                Ok(n) => self.unsubmitted -= n.min(self.unsubmitted),
                // Busy: the kernel has no room now; retried on the next poll.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::EINTR)
                    ) => {}
                Err(e) => {
                    eal::log_err!("bdev uring: io_uring_enter failed: {e}");
                }
            }
        }
        let mut cq = self.ring.completion();
        cq.sync();
        for c in cq {
            let i = c.user_data() as u32;
            let res = c.result();
            let Some(slot) = self.q.slots.slots.get_mut(i as usize) else {
                eal::log_err!("bdev uring: completion for unknown slot {i}");
                continue;
            };
            let want = slot.iov.iter().map(|v| v.iov_len).sum::<usize>();
            let Some(t) = slot.io.as_ref().map(|io| io.io_type()) else {
                continue;
            };
            let ok = match t {
                IoType::Read | IoType::Write | IoType::WriteZeroes => {
                    res >= 0 && res as usize == want
                }
                _ => res >= 0,
            };
            if let Some(io) = slot.finish(ok) {
                out.push((io, status(ok)));
            }
            self.q.slots.release(i);
        }
        self.q.end_poll(out);
    }

    fn idle(&self) -> bool {
        self.q.idle() && self.unsubmitted == 0
    }
}

impl UringChannel {
    fn new(fd: &Arc<OwnedFd>, align: usize) -> std::result::Result<UringChannel, String> {
        let ring = IoUring::builder()
            .setup_cqsize(RING_ENTRIES * 2)
            .build(RING_ENTRIES)
            .map_err(|e| format!("io_uring_setup of {RING_ENTRIES} entries failed: {e}"))?;
        // Registered, the file is SQE target 0; where registration is refused (a limit
        // on registered files), the descriptor itself.
        let (target, sqe_flags) = match ring.submitter().register_files(&[fd.as_raw_fd()]) {
            Ok(()) => (types::Fd(0), squeue::Flags::FIXED_FILE),
            Err(_) => (types::Fd(fd.as_raw_fd()), squeue::Flags::empty()),
        };
        // The ring signals this eventfd when completions wait, so the reactor may sleep
        // with I/O in the kernel; without one the poller keeps it awake.
        let wake = sys::eventfd()
            .ok()
            .filter(|e| ring.submitter().register_eventfd(e.as_raw_fd()).is_ok());
        let st = State {
            ring,
            q: Queue::new(RING_ENTRIES as usize),
            unsubmitted: 0,
            sqe_flags,
        };
        Ok(UringChannel {
            k: Channel::new("bdev_uring", st, align, wake)?,
            fd: target,
        })
    }
}

impl ModuleChannel for UringChannel {
    fn submit(&self, io: BdevIo) {
        let mut g = self.k.begin();
        let t = io.io_type();
        if t == IoType::Reset {
            g.q.resets.push(io);
            return;
        }
        let Some(i) = g.q.slots.alloc() else {
            drop(g);
            return io.complete(IoStatus::NoMem);
        };
        let (off, len) = byte_range(&io);
        let sqe = match t {
            IoType::Read | IoType::Write => {
                let slot = &mut g.q.slots.slots[i as usize];
                if !slot.prepare(io, self.k.align) {
                    return refuse(g, i);
                }
                let iov = &slot.iov;
                match (t, iov.len()) {
                    (IoType::Read, 1) => {
                        opcode::Read::new(self.fd, iov[0].iov_base.cast(), len as u32)
                            .offset(off)
                            .build()
                    }
                    (IoType::Read, n) => opcode::Readv::new(self.fd, iov.as_ptr(), n as u32)
                        .offset(off)
                        .build(),
                    (_, 1) => opcode::Write::new(self.fd, iov[0].iov_base.cast(), len as u32)
                        .offset(off)
                        .build(),
                    (_, n) => opcode::Writev::new(self.fd, iov.as_ptr(), n as u32)
                        .offset(off)
                        .build(),
                }
            }
            IoType::Flush => {
                g.q.slots.slots[i as usize].io = Some(io);
                opcode::Fsync::new(self.fd)
                    .flags(types::FsyncFlags::DATASYNC)
                    .build()
            }
            IoType::WriteZeroes => {
                let slot = &mut g.q.slots.slots[i as usize];
                if !slot.prepare_zeroes(io) {
                    if let Some(io) = g.q.give_back(i) {
                        g.q.done.push((io, IoStatus::Failed));
                    }
                    return;
                }
                opcode::Write::new(self.fd, slot.iov[0].iov_base.cast(), len as u32)
                    .offset(off)
                    .build()
            }
            IoType::Unmap => {
                g.q.slots.slots[i as usize].io = Some(io);
                opcode::Fallocate::new(self.fd, len)
                    .offset(off)
                    .mode(sys::FALLOC_PUNCH)
                    .build()
            }
            // Refused by the layer (not supported).
            _ => {
                g.q.slots.release(i);
                g.q.done.push((io, IoStatus::Failed));
                return;
            }
        };
        if !g.push(sqe, i) {
            refuse(g, i);
        }
    }
}

impl BdevModule for UringDisk {
    fn module_name(&self) -> &str {
        "uring"
    }
    fn io_type_supported(&self, t: IoType) -> bool {
        match t {
            IoType::Read | IoType::Write | IoType::Flush | IoType::Reset => true,
            IoType::WriteZeroes => true,
            IoType::Unmap => self.regular,
            IoType::Compare | IoType::CompareAndWrite => false,
        }
    }
    fn create_channel(&self) -> std::result::Result<Box<dyn ModuleChannel>, String> {
        let align = if self.direct { 512 } else { 1 };
        Ok(Box::new(UringChannel::new(&self.fd, align)?))
    }
    fn info_json(&self) -> Option<serde_json::Value> {
        Some(json!({ "uring": { "filename": self.filename, "direct": self.direct } }))
    }
    fn write_config(&self, info: &BdevInfo) -> Option<ConfigCall> {
        Some(ConfigCall {
            method: "bdev_uring_create".into(),
            params: Some(json!({
                "name": info.name,
                "filename": self.filename,
                "block_size": info.block_size,
                "uuid": info.uuid.to_string(),
            })),
        })
    }
}

static DISKS: Disks<UringDisk> = Disks::new();

/// Create and register a uring bdev.
pub fn create(opts: UringOpts) -> Result<Bdev> {
    let f = open_backing(&opts.name, &opts.filename, opts.block_size, false)?;
    let regular = f.regular();
    let info = f.info(&opts.name, opts.uuid, "URING bdev");
    let disk = Arc::new(UringDisk {
        fd: Arc::new(f.fd),
        filename: opts.filename,
        direct: f.direct,
        regular,
    });
    let b = bdev::register(info, disk.clone())?;
    DISKS.add(&disk);
    Ok(b)
}

/// Take up the size the file or device of uring bdev `b` has now (SPDK's
/// `bdev_uring_rescan`): whole blocks of it; open descriptors get the resize event.
/// A shrink is refused while descriptors are open.
pub fn rescan(b: &Bdev) -> Result<()> {
    let disk = DISKS.of(b).ok_or_else(|| crate::error::Error::Invalid {
        what: "name",
        why: format!("bdev '{}' is not a uring bdev", b.name()),
    })?;
    let size = sys::geometry(std::os::fd::AsFd::as_fd(&*disk.fd))
        .map_err(|e| crate::error::Error::Invalid {
            what: "name",
            why: format!("size of '{}': {e}", disk.filename),
        })?
        .size;
    crate::resize::notify_blockcnt_change(b, size / u64::from(b.info().block_size))
}
