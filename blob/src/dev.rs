//! What the blobstore stores on: a block device read and written in whole blocks,
//! synchronously from the caller's point of view. [`crate::bdev_dev::BdevDev`] is the
//! real one (the bdev layer, I/O submitted on a framework thread); [`MemDev`] and
//! [`FileDev`] serve tests and tools that have no framework running.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// A block device. `buf` lengths are whole blocks.
pub trait BlockDevice: Send {
    /// Bytes per block (a power of two, 512..=4096 for a blobstore).
    fn block_size(&self) -> u32;
    /// Blocks on the device.
    fn num_blocks(&self) -> u64;
    /// Read `buf.len()` bytes from block `lba`.
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<()>;
    /// Write `buf` at block `lba`.
    fn write(&mut self, lba: u64, buf: &[u8]) -> Result<()>;
    /// Make written blocks durable.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

fn check(dev: &dyn BlockDevice, what: &str, lba: u64, len: usize) -> Result<()> {
    let bs = u64::from(dev.block_size());
    let n = len as u64 / bs;
    if !(len as u64).is_multiple_of(bs) || lba.checked_add(n).is_none_or(|e| e > dev.num_blocks()) {
        return Err(Error::Io {
            what: format!("{what} {len} bytes at block {lba}"),
            why: format!(
                "outside the device of {} blocks of {bs} bytes or not whole blocks",
                dev.num_blocks()
            ),
        });
    }
    Ok(())
}

/// A device in memory; clones share the bytes (tests inspect and damage them).
#[derive(Clone)]
pub struct MemDev {
    bytes: Arc<Mutex<Vec<u8>>>,
    block_size: u32,
}

impl MemDev {
    /// `num_blocks` zeroed blocks of `block_size`.
    pub fn new(block_size: u32, num_blocks: u64) -> MemDev {
        MemDev {
            bytes: Arc::new(Mutex::new(vec![
                0;
                (num_blocks * u64::from(block_size))
                    as usize
            ])),
            block_size,
        }
    }

    /// A device over `bytes` (length a multiple of `block_size`).
    pub fn from_bytes(block_size: u32, bytes: Vec<u8>) -> MemDev {
        MemDev {
            bytes: Arc::new(Mutex::new(bytes)),
            block_size,
        }
    }

    /// A copy of the contents.
    pub fn snapshot(&self) -> Vec<u8> {
        self.lock().clone()
    }

    /// Change the contents in place.
    pub fn with_bytes<R>(&self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        f(&mut self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl BlockDevice for MemDev {
    fn block_size(&self) -> u32 {
        self.block_size
    }
    fn num_blocks(&self) -> u64 {
        self.lock().len() as u64 / u64::from(self.block_size)
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<()> {
        check(self, "read", lba, buf.len())?;
        let o = (lba * u64::from(self.block_size)) as usize;
        buf.copy_from_slice(&self.lock()[o..o + buf.len()]);
        Ok(())
    }
    fn write(&mut self, lba: u64, buf: &[u8]) -> Result<()> {
        check(self, "write", lba, buf.len())?;
        let o = (lba * u64::from(self.block_size)) as usize;
        self.lock()[o..o + buf.len()].copy_from_slice(buf);
        Ok(())
    }
}

/// A device over a regular file (positional reads and writes).
pub struct FileDev {
    file: File,
    block_size: u32,
    num_blocks: u64,
}

impl FileDev {
    /// Open `path` read-write with `block_size` blocks (its length rounded down).
    pub fn open(path: &std::path::Path, block_size: u32) -> Result<FileDev> {
        let io = |e: std::io::Error| Error::Io {
            what: format!("open {}", path.display()),
            why: e.to_string(),
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        Ok(FileDev {
            file,
            block_size,
            num_blocks: len / u64::from(block_size),
        })
    }
}

impl BlockDevice for FileDev {
    fn block_size(&self) -> u32 {
        self.block_size
    }
    fn num_blocks(&self) -> u64 {
        self.num_blocks
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<()> {
        check(self, "read", lba, buf.len())?;
        self.file
            .read_exact_at(buf, lba * u64::from(self.block_size))
            .map_err(|e| Error::Io {
                what: format!("read block {lba}"),
                why: e.to_string(),
            })
    }
    fn write(&mut self, lba: u64, buf: &[u8]) -> Result<()> {
        check(self, "write", lba, buf.len())?;
        self.file
            .write_all_at(buf, lba * u64::from(self.block_size))
            .map_err(|e| Error::Io {
                what: format!("write block {lba}"),
                why: e.to_string(),
            })
    }
    fn flush(&mut self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::Io {
            what: "flush".into(),
            why: e.to_string(),
        })
    }
}
