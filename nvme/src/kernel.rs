//! Kernel block I/O back ends with the same submit/flush/reap shape as a [`crate::QPair`],
//! so `nvme-perf` can drive the kernel's NVMe stack (`/dev/nvme0n1`) and ours with one
//! loop: io_uring (the `io-uring` crate), Linux AIO (`io_submit`), and synchronous
//! `pread`/`pwrite`. All files are opened `O_DIRECT`; buffers must be 512-byte aligned
//! (EAL memory is 4 KiB aligned).
//!
//! A [`KernelDev`] belongs to one thread (`Send`, not `Sync`), like a queue pair.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use io_uring::{opcode, squeue, types, IoUring};

use crate::error::{Error, Result};
use crate::sys::{self, IoEvent, Iocb};

/// Which kernel interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// io_uring.
    IoUring,
    /// Linux native AIO.
    Libaio,
    /// pread/pwrite (queue depth 1 by nature).
    Psync,
}

impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "io_uring" => Ok(Engine::IoUring),
            "libaio" => Ok(Engine::Libaio),
            "psync" => Ok(Engine::Psync),
            _ => Err(format!("unknown engine '{s}' (io_uring, libaio, psync)")),
        }
    }
}

/// io_uring through the `io-uring` crate (ring set-up, SQE layout and the head/tail
/// memory ordering are the crate's).
struct Uring {
    ring: IoUring,
    /// SQEs pushed since the last `io_uring_enter`.
    unsubmitted: u32,
}

impl Uring {
    fn new(entries: u32) -> Result<Uring> {
        let n = entries.next_power_of_two().max(2);
        let ring = IoUring::new(n).map_err(|source| Error::Os {
            op: "set up",
            what: format!("an io_uring of {n} entries"),
            source,
        })?;
        Ok(Uring {
            ring,
            unsubmitted: 0,
        })
    }

    /// # Safety
    /// The SQE's buffer must stay valid until its completion is reaped.
    unsafe fn push(&mut self, sqe: &squeue::Entry) -> bool {
        // SAFETY: forwarded caller contract.
        let ok = unsafe { self.ring.submission().push(sqe) }.is_ok();
        if ok {
            self.unsubmitted += 1;
        }
        ok
    }

    fn submit(&mut self, wait: u32) -> Result<()> {
        if self.unsubmitted == 0 && wait == 0 {
            return Ok(());
        }
        let n = loop {
            match self.ring.submit_and_wait(wait as usize) {
                Ok(n) => break n as u32,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(source) => {
                    return Err(Error::Os {
                        op: "enter",
                        what: "the io_uring".into(),
                        source,
                    })
                }
            }
        };
        self.unsubmitted -= n.min(self.unsubmitted);
        Ok(())
    }

    fn reap(&mut self, f: &mut dyn FnMut(u64, i32)) -> usize {
        let mut n = 0;
        for c in self.ring.completion() {
            f(c.user_data(), c.result());
            n += 1;
        }
        n
    }
}

struct Aio {
    ctx: u64,
    iocbs: Box<[Iocb]>,
    free: Vec<usize>,
    tags: Vec<u64>,
    pending: Vec<*mut Iocb>,
    events: Vec<IoEvent>,
}

impl Drop for Aio {
    fn drop(&mut self) {
        let _ = sys::io_destroy(self.ctx);
    }
}

enum Inner {
    // Boxed: the ring handle is several hundred bytes.
    Uring(Box<Uring>),
    Aio(Aio),
    Psync(Vec<(u64, i64)>),
}

/// A block device or file opened for direct I/O through one kernel engine.
pub struct KernelDev {
    file: OwnedFd,
    path: String,
    size: u64,
    depth: usize,
    inflight: usize,
    engine: Engine,
    inner: Inner,
}

// SAFETY: the raw pointers point into mappings / boxes owned by the value; it is used
// by one thread at a time (`&mut self`).
unsafe impl Send for KernelDev {}

impl KernelDev {
    /// Open `path` (O_DIRECT, read-write) for `depth` requests in flight.
    pub fn open(path: &str, engine: Engine, depth: usize) -> Result<KernelDev> {
        let file = sys::open_direct(path, true)?;
        let size = sys::device_size(file.as_fd(), path)?;
        let depth = depth.max(1);
        let inner = match engine {
            Engine::IoUring => Inner::Uring(Box::new(Uring::new(depth as u32)?)),
            Engine::Libaio => Inner::Aio(Aio {
                ctx: sys::io_setup(depth as u32)?,
                iocbs: vec![Iocb::default(); depth].into_boxed_slice(),
                free: (0..depth).rev().collect(),
                tags: vec![0; depth],
                pending: Vec::with_capacity(depth),
                events: vec![IoEvent::default(); depth],
            }),
            Engine::Psync => Inner::Psync(Vec::with_capacity(depth)),
        };
        Ok(KernelDev {
            file,
            path: path.into(),
            size,
            depth,
            inflight: 0,
            engine,
            inner,
        })
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Requests queued or in flight.
    pub fn inflight(&self) -> usize {
        self.inflight
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Queue one read or write of `len` bytes at byte offset `off`. Psync executes it now.
    /// [`Error::QueueFull`] when `depth` requests are in flight.
    ///
    /// # Safety
    /// `[buf, buf+len)` must stay valid (and, for reads, untouched) until the request is
    /// reaped.
    pub unsafe fn submit(
        &mut self,
        write: bool,
        off: u64,
        buf: *mut u8,
        len: usize,
        tag: u64,
    ) -> Result<()> {
        if self.inflight >= self.depth {
            return Err(Error::QueueFull {
                depth: self.inflight,
            });
        }
        let fd = self.file.as_raw_fd();
        match &mut self.inner {
            Inner::Uring(u) => {
                let fd = types::Fd(fd);
                let sqe = if write {
                    opcode::Write::new(fd, buf, len as u32).offset(off).build()
                } else {
                    opcode::Read::new(fd, buf, len as u32).offset(off).build()
                }
                .user_data(tag);
                // SAFETY: the caller keeps the buffer valid until the request is reaped.
                if !unsafe { u.push(&sqe) } {
                    return Err(Error::QueueFull {
                        depth: self.inflight,
                    });
                }
            }
            Inner::Aio(a) => {
                let Some(slot) = a.free.pop() else {
                    return Err(Error::QueueFull {
                        depth: self.inflight,
                    });
                };
                a.iocbs[slot] = Iocb {
                    aio_data: slot as u64,
                    aio_lio_opcode: if write {
                        sys::IOCB_CMD_PWRITE
                    } else {
                        sys::IOCB_CMD_PREAD
                    },
                    aio_fildes: fd as u32,
                    aio_buf: buf as u64,
                    aio_nbytes: len as u64,
                    aio_offset: off as i64,
                    ..Default::default()
                };
                a.tags[slot] = tag;
                let p: *mut Iocb = &mut a.iocbs[slot];
                a.pending.push(p);
            }
            Inner::Psync(done) => {
                let r = if write {
                    // SAFETY: caller contract: the buffer is valid for `len` bytes and not
                    // written by anyone while the request is outstanding.
                    let b = unsafe { std::slice::from_raw_parts(buf, len) };
                    sys::pwrite(self.file.as_fd(), b, off)
                } else {
                    // SAFETY: caller contract: valid for `len` bytes and untouched until
                    // reaped, so this is the only reference.
                    let b = unsafe { std::slice::from_raw_parts_mut(buf, len) };
                    sys::pread(self.file.as_fd(), b, off)
                };
                done.push((tag, r.map(|n| n as i64).unwrap_or(-1)));
            }
        }
        self.inflight += 1;
        Ok(())
    }

    /// Hand queued requests to the kernel (one system call).
    pub fn flush(&mut self) -> Result<()> {
        match &mut self.inner {
            Inner::Uring(u) => u.submit(0),
            Inner::Aio(a) => {
                if !a.pending.is_empty() {
                    // SAFETY: the iocbs live in `a.iocbs` until reaped; buffers per the
                    // `submit` contract.
                    let n = unsafe { sys::io_submit(a.ctx, &a.pending)? };
                    a.pending.drain(..n);
                }
                Ok(())
            }
            Inner::Psync(_) => Ok(()),
        }
    }

    /// Reap completions, waiting for at least `min` (bounded by what is in flight);
    /// `f(tag, Ok(bytes) | Err)`. Returns how many were reaped.
    pub fn reap(&mut self, min: usize, mut f: impl FnMut(u64, Result<usize>)) -> Result<usize> {
        let min = min.min(self.inflight);
        let mut n = 0;
        let path = &self.path;
        let res = |r: i64| -> Result<usize> {
            if r < 0 {
                Err(Error::Os {
                    op: "complete",
                    what: format!("I/O on {path}"),
                    source: std::io::Error::from_raw_os_error((-r) as i32),
                })
            } else {
                Ok(r as usize)
            }
        };
        match &mut self.inner {
            Inner::Uring(u) => {
                n += u.reap(&mut |t, r| f(t, res(r as i64)));
                if n < min {
                    u.submit((min - n) as u32)?;
                    n += u.reap(&mut |t, r| f(t, res(r as i64)));
                }
            }
            Inner::Aio(a) => {
                let got = sys::io_getevents(a.ctx, min, &mut a.events)?;
                for e in &a.events[..got] {
                    let slot = e.data as usize;
                    f(a.tags[slot], res(e.res));
                    a.free.push(slot);
                }
                n = got;
            }
            Inner::Psync(done) => {
                for (t, r) in done.drain(..) {
                    f(
                        t,
                        if r < 0 {
                            Err(Error::Os {
                                op: "complete",
                                what: format!("I/O on {path}"),
                                source: std::io::Error::other("pread/pwrite failed"),
                            })
                        } else {
                            Ok(r as usize)
                        },
                    );
                    n += 1;
                }
            }
        }
        self.inflight -= n.min(self.inflight);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::{alloc_zeroed, dealloc, Layout};

    /// Write then read back a file through each engine (O_DIRECT on a file in /var/tmp;
    /// tmpfs refuses O_DIRECT, so a filesystem that does not support it skips).
    #[test]
    fn engines_round_trip() {
        let dir = std::env::var("FP_TEST_DIRECT_DIR").unwrap_or_else(|_| "/var/tmp".into());
        let path = format!("{dir}/fp-nvme-kernel-{}", std::process::id());
        std::fs::write(&path, vec![0u8; 1 << 20]).unwrap();
        let layout = Layout::from_size_align(64 * 4096, 4096).unwrap();
        // SAFETY: non-zero size.
        let mem = unsafe { alloc_zeroed(layout) };
        // The file system must take O_DIRECT: without it no engine can run, which is a
        // failure of the setup, not a kernel without the feature.
        if let Err(e) = sys::open_direct(&path, true) {
            let _ = std::fs::remove_file(&path);
            panic!("{path} cannot be opened with O_DIRECT ({e}); set FP_TEST_DIRECT_DIR to a directory on a file system that supports it");
        }
        let mut ran = Vec::new();
        for engine in [Engine::IoUring, Engine::Libaio, Engine::Psync] {
            let mut d = match KernelDev::open(&path, engine, 8) {
                Ok(d) => d,
                // pread/pwrite on an fd that opened is always there.
                Err(e) if engine == Engine::Psync => panic!("psync engine failed to open: {e}"),
                Err(e) => {
                    testkit::skip(
                        &format!("engines_round_trip[{engine:?}]"),
                        testkit::Need::Kernel,
                        format!("the kernel refused the {engine:?} engine: {e}"),
                    );
                    continue;
                }
            };
            ran.push(engine);
            assert_eq!(d.size(), 1 << 20);
            // Write 8 blocks of 4 KiB with distinct bytes, then read them into other slots.
            for i in 0..8u64 {
                // SAFETY: slot i of our 64-page allocation.
                unsafe {
                    std::ptr::write_bytes(
                        mem.add(i as usize * 4096),
                        (i as u8) + 1 + engine as u8 * 16,
                        4096,
                    )
                };
                // SAFETY: the slot stays valid and untouched until reaped below.
                unsafe { d.submit(true, i * 4096, mem.add(i as usize * 4096), 4096, i) }.unwrap();
            }
            assert!(matches!(
                // SAFETY: refused before touching the buffer.
                unsafe { d.submit(true, 0, mem, 4096, 99) },
                Err(Error::QueueFull { .. })
            ));
            d.flush().unwrap();
            let mut seen = 0u64;
            while seen < 8 {
                seen += d
                    .reap(1, |t, r| assert_eq!((t < 8, r.unwrap()), (true, 4096)))
                    .unwrap() as u64;
            }
            for i in 0..8u64 {
                // SAFETY: slots 16.. are not used by anything else.
                unsafe {
                    d.submit(
                        false,
                        i * 4096,
                        mem.add((16 + i) as usize * 4096),
                        4096,
                        100 + i,
                    )
                }
                .unwrap();
            }
            d.flush().unwrap();
            let mut seen = 0;
            while seen < 8 {
                seen += d.reap(8, |_, r| assert_eq!(r.unwrap(), 4096)).unwrap();
            }
            for i in 0..8usize {
                // SAFETY: reading our own allocation after the I/O completed.
                let b = unsafe { *mem.add((16 + i) * 4096 + 100) };
                assert_eq!(b, i as u8 + 1 + engine as u8 * 16, "{engine:?} block {i}");
            }
        }
        // SAFETY: allocated above with this layout.
        unsafe { dealloc(mem, layout) };
        let _ = std::fs::remove_file(&path);
        assert!(ran.contains(&Engine::Psync), "engines that ran: {ran:?}");
    }
}
