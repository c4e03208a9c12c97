//! The blobstore's device on the bdev layer (SPDK's `spdk_bdev_create_bs_dev`): a bdev
//! opened (and claimed) on a framework thread; each read and write is submitted there
//! through that thread's I/O channel and the caller waits for its completion.
//!
//! The caller must not be that framework thread (it would wait for itself): the calls
//! check and refuse.

use std::sync::{Arc, Mutex};

use bdev::{BdevIoChannel, Descriptor, IoStatus};
use crossbeam_channel::bounded;
use framework::{thread, ThreadHandle};

use crate::dev::BlockDevice;
use crate::error::{Error, Result};

/// The open descriptor (with its thread's channel), shared with data paths that get
/// channels of their own on other framework threads ([`BdevDev::shared`]).
pub(crate) type Open = Arc<Mutex<Option<(Descriptor, BdevIoChannel)>>>;

/// What runs when the opened bdev starts going away.
pub type OnRemove = Box<dyn Fn() + Send + Sync>;

/// A bdev as a blobstore device.
pub struct BdevDev {
    thread: ThreadHandle,
    open: Open,
    name: String,
    block_size: u32,
    num_blocks: u64,
}

impl std::fmt::Debug for BdevDev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BdevDev").field("bdev", &self.name).finish()
    }
}

fn on_thread<T: Send + 'static>(
    th: &ThreadHandle,
    what: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    if thread::current().is_some_and(|c| c.id() == th.id()) {
        return Err(Error::Invalid {
            what: "use a bdev blobstore device",
            why: format!(
                "called on its own framework thread '{}' (it would wait for itself)",
                th.name()
            ),
        });
    }
    let (tx, rx) = bounded(1);
    th.send_msg(move || {
        let _ = tx.send(f());
    })
    .map_err(|e| Error::Io {
        what: what.to_string(),
        why: format!("framework thread gone: {e:?}"),
    })?;
    rx.recv().map_err(|_| Error::Io {
        what: what.to_string(),
        why: "the framework thread dropped the request".into(),
    })?
}

impl BdevDev {
    /// Open bdev `name` on framework thread `th` for reading and writing, claimed for
    /// the blobstore (no other writer while it is open).
    pub fn open(th: &ThreadHandle, name: &str) -> Result<BdevDev> {
        BdevDev::open_with(th, name, true, Box::new(|| {}))
    }

    /// Open bdev `name` on `th` read-write but unclaimed: other writers may open it too
    /// (tests and tools that share a bdev between threads).
    pub fn open_unclaimed(th: &ThreadHandle, name: &str) -> Result<BdevDev> {
        BdevDev::open_inner(th, name, true, false, Box::new(|| {}))
    }

    /// Open bdev `name` on `th` read-only and unclaimed, to look at it (writes fail).
    pub fn open_read_only(th: &ThreadHandle, name: &str) -> Result<BdevDev> {
        BdevDev::open_with(th, name, false, Box::new(|| {}))
    }

    /// Open bdev `name` on `th`, read-write and claimed for the blobstore if `write`.
    /// `on_remove` runs on `th` when the bdev starts going away: its I/O is refused
    /// from then on, and the removal finishes once this device is dropped.
    pub fn open_with(
        th: &ThreadHandle,
        name: &str,
        write: bool,
        on_remove: OnRemove,
    ) -> Result<BdevDev> {
        BdevDev::open_inner(th, name, write, write, on_remove)
    }

    fn open_inner(
        th: &ThreadHandle,
        name: &str,
        write: bool,
        claim: bool,
        on_remove: OnRemove,
    ) -> Result<BdevDev> {
        let n = name.to_string();
        let open: Open = Arc::new(Mutex::new(None));
        let o2 = open.clone();
        let (bsz, nb) = on_thread(th, "open the bdev", move || {
            let d = bdev::open(&n, write, move |ev| {
                if ev == bdev::BdevEvent::Remove {
                    on_remove()
                }
            })?;
            if write && claim {
                d.claim("blobstore")?;
            }
            let ch = d.get_io_channel()?;
            let info = d.bdev().info().clone();
            *o2.lock().unwrap_or_else(|e| e.into_inner()) = Some((d, ch));
            Ok((info.block_size, info.num_blocks))
        })?;
        Ok(BdevDev {
            thread: th.clone(),
            open,
            name: name.to_string(),
            block_size: bsz,
            num_blocks: nb,
        })
    }

    /// The descriptor, for data paths on other framework threads: each gets its
    /// thread's channel from it and submits through that (never holding the lock across
    /// anything but the submit calls). `None` inside once the device is closed.
    pub(crate) fn shared(&self) -> Open {
        self.open.clone()
    }

    fn io(&self, write: bool, lba: u64, data: Vec<u8>) -> Result<Vec<u8>> {
        let open = self.open.clone();
        let bsz = u64::from(self.block_size);
        let what = format!(
            "{} {} bytes at block {lba} of bdev '{}'",
            if write { "write" } else { "read" },
            data.len(),
            self.name
        );
        let w2 = what.clone();
        let (tx, rx) = bounded(1);
        on_thread(&self.thread, &what, move || {
            let g = open.lock().unwrap_or_else(|e| e.into_inner());
            let Some((d, ch)) = g.as_ref() else {
                return Err(Error::Io {
                    what: w2,
                    why: "the bdev is closed".into(),
                });
            };
            let n = data.len() as u64 / bsz;
            let cb = move |st: IoStatus, v: Vec<u8>| {
                let _ = tx.send((st, v));
            };
            if write {
                d.write_buf(ch, data, lba, n, cb)?;
            } else {
                d.read_buf(ch, data, lba, n, cb)?;
            }
            Ok(())
        })?;
        let (st, v) = rx.recv().map_err(|_| Error::Io {
            what: what.clone(),
            why: "the completion was dropped".into(),
        })?;
        if st != IoStatus::Success {
            return Err(Error::Io {
                what,
                why: format!("{st:?}"),
            });
        }
        Ok(v)
    }
}

impl BlockDevice for BdevDev {
    fn block_size(&self) -> u32 {
        self.block_size
    }
    fn num_blocks(&self) -> u64 {
        self.num_blocks
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<()> {
        let v = self.io(false, lba, vec![0; buf.len()])?;
        buf.copy_from_slice(&v[..buf.len()]);
        Ok(())
    }
    fn write(&mut self, lba: u64, buf: &[u8]) -> Result<()> {
        self.io(true, lba, buf.to_vec()).map(|_| ())
    }
    fn flush(&mut self) -> Result<()> {
        let open = self.open.clone();
        let nb = self.num_blocks;
        let (tx, rx) = bounded(1);
        on_thread(&self.thread, "flush the bdev", move || {
            let g = open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((d, ch)) = g.as_ref() {
                if d.bdev().io_type_supported(bdev::IoType::Flush) {
                    d.flush(ch, 0, nb, move |st| {
                        let _ = tx.send(st);
                    })?;
                    return Ok(true);
                }
            }
            Ok(false)
        })
        .and_then(|sent| {
            if sent {
                match rx.recv() {
                    Ok(IoStatus::Success) => Ok(()),
                    r => Err(Error::Io {
                        what: "flush".into(),
                        why: format!("{r:?}"),
                    }),
                }
            } else {
                Ok(())
            }
        })
    }
}

impl Drop for BdevDev {
    fn drop(&mut self) {
        let open = self.open.clone();
        let r = on_thread(&self.thread, "close the bdev", move || {
            // Channel before descriptor, on the thread that got them.
            if let Some((d, ch)) = open.lock().unwrap_or_else(|e| e.into_inner()).take() {
                drop(ch);
                d.close();
            }
            Ok(())
        });
        if r.is_err() {
            // The framework is gone: the channel cannot be put on its thread any more,
            // so it is left alone rather than dropped here.
            if let Some(x) = self.open.lock().unwrap_or_else(|e| e.into_inner()).take() {
                std::mem::forget(x);
            }
        }
    }
}
