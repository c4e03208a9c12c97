//! The aio bdev module (SPDK's `bdev_aio`): a file or block device through Linux native
//! AIO (`io_setup`, `io_submit`, `io_getevents`; the calls are in [`crate::sys`]).
//!
//! Each channel has its own AIO context of [`AIO_DEPTH`] requests. `submit` fills an
//! `iocb` (always the vectored commands, so one path serves one buffer or many); the
//! channel's poller submits everything queued with one `io_submit`, then reaps with a
//! non-blocking `io_getevents` and completes the I/Os. Every request signals the
//! channel's eventfd on completion (`IOCB_FLAG_RESFD`), watched as a framework
//! interrupt, so the reactor may sleep with requests in the kernel; the poller is paused
//! when none is.
//!
//! Types: read, write, flush (`fdatasync`, run synchronously as AIO's fsync commands are
//! not offered by every file system), reset (completes once the channel's requests in
//! the kernel have completed), write-zeroes (a write from a zeroed buffer) and on
//! regular files unmap (`fallocate` punching a hole, synchronous). `readonly` opens the file read-only and refuses writes.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use framework::subsystem::ConfigCall;
use serde_json::json;

use crate::bdev::{self, Bdev, BdevInfo, BdevModule, ModuleChannel};
use crate::error::Result;
use crate::io::{BdevIo, IoStatus, IoType};
use crate::modules::file::{byte_range, open_backing};
use crate::modules::kernel_queue::{refuse, status, Channel, KernelState, Queue};
use crate::sys::{self, AioContext, IoEvent, Iocb};
use crate::uuid::Uuid;

/// Requests one channel has in the kernel (more wait in the layer's queue).
pub const AIO_DEPTH: usize = 128;

/// What `bdev_aio_create` takes.
#[derive(Debug, Clone, Default)]
pub struct AioOpts {
    /// Bdev name.
    pub name: String,
    /// The file or block device.
    pub filename: String,
    /// Block size; 0 = the device's logical block size (required for a regular file).
    pub block_size: u32,
    /// Open read-only (writes are refused).
    pub readonly: bool,
    /// UUID (random if `None`).
    pub uuid: Option<Uuid>,
}

struct AioDisk {
    fd: Arc<OwnedFd>,
    filename: String,
    direct: bool,
    regular: bool,
    readonly: bool,
}

struct State {
    ctx: AioContext,
    q: Queue,
    iocbs: Box<[Iocb]>,
    /// Filled iocbs not yet given to the kernel.
    pending: Vec<*mut Iocb>,
    events: Vec<IoEvent>,
    /// The eventfd every iocb signals on completion (`IOCB_FLAG_RESFD`), or -1.
    resfd: i32,
}

// SAFETY: the iocbs, the pending pointers into them and the slots' buffers are used only
// on the channel's thread (the mutex shares the state with the poller, never contended).
unsafe impl Send for State {}

impl KernelState for State {
    fn queue(&mut self) -> &mut Queue {
        &mut self.q
    }

    fn poll(&mut self, out: &mut Vec<(BdevIo, IoStatus)>) {
        out.append(&mut self.q.done);
        if !self.pending.is_empty() {
            // SAFETY: each pending pointer is an iocb of `self.iocbs` (boxed, never
            // moved) whose slot holds the I/O, its iovec array and the buffers until
            // the event is reaped below.
            match unsafe { self.ctx.submit(&self.pending) } {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
                Err(e) => {
                    // The first request is refused (bad buffer, ...): fail it, keep the
                    // rest for the next poll.
                    eal::log_err!("bdev aio: io_submit failed: {e}");
                    let p = self.pending.remove(0);
                    // SAFETY: points into `self.iocbs` (see above).
                    let i = unsafe { (*p).aio_data } as u32;
                    if let Some(io) = self.q.give_back(i) {
                        out.push((io, IoStatus::Failed));
                    }
                }
            }
        }
        let in_kernel = self.q.slots.in_use() - self.pending.len();
        if in_kernel > 0 {
            match self.ctx.reap(&mut self.events) {
                Ok(n) => {
                    for k in 0..n {
                        let e = self.events[k];
                        let i = e.data as u32;
                        let Some(slot) = self.q.slots.slots.get_mut(i as usize) else {
                            continue;
                        };
                        let want = slot.iov.iter().map(|v| v.iov_len).sum::<usize>();
                        let ok = e.res >= 0 && e.res as usize == want;
                        if let Some(io) = slot.finish(ok) {
                            out.push((io, status(ok)));
                        }
                        self.q.slots.release(i);
                    }
                }
                Err(e) => eal::log_err!("bdev aio: io_getevents failed: {e}"),
            }
        }
        self.q.end_poll(out);
    }

    fn idle(&self) -> bool {
        self.q.idle()
    }
}

struct AioChannel {
    k: Channel<State>,
    fd: Arc<OwnedFd>,
}

impl AioChannel {
    fn new(fd: &Arc<OwnedFd>, align: usize) -> std::result::Result<AioChannel, String> {
        let ctx = AioContext::new(AIO_DEPTH as u32)
            .map_err(|e| format!("io_setup of {AIO_DEPTH} requests failed: {e}"))?;
        let st = State {
            ctx,
            q: Queue::new(AIO_DEPTH),
            iocbs: vec![Iocb::default(); AIO_DEPTH].into_boxed_slice(),
            pending: Vec::with_capacity(AIO_DEPTH),
            events: vec![IoEvent::default(); AIO_DEPTH],
            resfd: -1,
        };
        // Each iocb signals this eventfd when it completes (`IOCB_FLAG_RESFD`), so the
        // reactor may sleep with I/O in the kernel; without one the poller keeps it awake.
        let wake = sys::eventfd().ok();
        let st = State {
            resfd: wake.as_ref().map_or(-1, |e| e.as_raw_fd()),
            ..st
        };
        Ok(AioChannel {
            k: Channel::new("bdev_aio", st, align, wake)?,
            fd: fd.clone(),
        })
    }
}

impl ModuleChannel for AioChannel {
    fn submit(&self, io: BdevIo) {
        let mut g = self.k.begin();
        let t = io.io_type();
        let (off, len) = byte_range(&io);
        let sync = |r: std::io::Result<()>| status(r.is_ok());
        match t {
            IoType::Read | IoType::Write => {}
            IoType::Reset => return g.q.resets.push(io),
            IoType::Flush => {
                let st = sync(sys::fdatasync(self.fd.as_fd()));
                return g.q.done.push((io, st));
            }
            IoType::Unmap => {
                let st = sync(sys::fallocate(self.fd.as_fd(), sys::FALLOC_PUNCH, off, len));
                return g.q.done.push((io, st));
            }
            IoType::WriteZeroes => {}
            IoType::Compare | IoType::CompareAndWrite => {
                return g.q.done.push((io, IoStatus::Failed))
            }
        }
        let Some(i) = g.q.slots.alloc() else {
            drop(g);
            return io.complete(IoStatus::NoMem);
        };
        let slot = &mut g.q.slots.slots[i as usize];
        let ready = if t == IoType::WriteZeroes {
            slot.prepare_zeroes(io)
        } else {
            slot.prepare(io, self.k.align)
        };
        if !ready {
            return refuse(g, i);
        }
        let (iov, n) = (slot.iov.as_ptr() as u64, slot.iov.len() as u64);
        let resfd = g.resfd;
        let cb = &mut g.iocbs[i as usize];
        *cb = Iocb {
            aio_data: u64::from(i),
            aio_lio_opcode: if t == IoType::Read {
                sys::IOCB_CMD_PREADV
            } else {
                sys::IOCB_CMD_PWRITEV
            },
            aio_fildes: self.fd.as_raw_fd() as u32,
            aio_buf: iov,
            aio_nbytes: n,
            aio_offset: off as i64,
            aio_flags: if resfd >= 0 { sys::IOCB_FLAG_RESFD } else { 0 },
            aio_resfd: resfd.max(0) as u32,
            ..Default::default()
        };
        let p: *mut Iocb = cb;
        g.pending.push(p);
    }
}

impl BdevModule for AioDisk {
    fn module_name(&self) -> &str {
        "aio"
    }
    fn io_type_supported(&self, t: IoType) -> bool {
        match t {
            IoType::Read | IoType::Flush | IoType::Reset => true,
            IoType::Write => !self.readonly,
            IoType::WriteZeroes => !self.readonly,
            IoType::Unmap => self.regular && !self.readonly,
            IoType::Compare | IoType::CompareAndWrite => false,
        }
    }
    fn create_channel(&self) -> std::result::Result<Box<dyn ModuleChannel>, String> {
        let align = if self.direct { 512 } else { 1 };
        Ok(Box::new(AioChannel::new(&self.fd, align)?))
    }
    fn info_json(&self) -> Option<serde_json::Value> {
        Some(json!({ "aio": {
            "filename": self.filename,
            "block_size_override": true,
            "readonly": self.readonly,
            "direct": self.direct,
        } }))
    }
    fn write_config(&self, info: &BdevInfo) -> Option<ConfigCall> {
        let params = json!({
            "filename": self.filename,
            "block_size": info.block_size,
            "readonly": self.readonly,
        });
        super::create_call("bdev_aio_create", info, params)
    }
}

/// Create and register an aio bdev.
pub fn create(opts: AioOpts) -> Result<Bdev> {
    let f = open_backing(&opts.name, &opts.filename, opts.block_size, opts.readonly)?;
    let regular = f.regular();
    let info = f.info(&opts.name, opts.uuid, "AIO disk");
    bdev::register(
        info,
        Arc::new(AioDisk {
            fd: Arc::new(f.fd),
            filename: opts.filename,
            direct: f.direct,
            regular,
            readonly: opts.readonly,
        }),
    )
}
