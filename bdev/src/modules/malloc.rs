//! The malloc bdev module (SPDK's `bdev_malloc`): a RAM disk. Every I/O type is
//! supported; unmap and write-zeroes zero the blocks, compare-and-write holds the disk's
//! lock across both halves (so it is atomic against every other I/O of the disk).
//!
//! Memory: anonymous private pages from the kernel (zero-filled, page aligned). The
//! framework app does not hand subsystems its EAL yet, so the disk is not placed in EAL
//! heap memory with IOVAs; a device cannot DMA to it (see the crate docs).

use std::sync::{Arc, Mutex};

use framework::subsystem::ConfigCall;
use memmap2::MmapMut;
use serde_json::json;

use crate::bdev::{self, Bdev, BdevInfo, BdevModule, ModuleChannel};
use crate::error::{Error, Result};
use crate::io::{BdevIo, IoStatus, IoType};
use crate::modules::Deferred;
use crate::uuid::Uuid;

/// What `bdev_malloc_create` takes.
#[derive(Debug, Clone)]
pub struct MallocOpts {
    /// Bdev name.
    pub name: String,
    /// Size in blocks.
    pub num_blocks: u64,
    /// Block size (power of two, >= 512).
    pub block_size: u32,
    /// UUID (random if `None`).
    pub uuid: Option<Uuid>,
    /// Split boundary in blocks (0 = none).
    pub optimal_io_boundary: u32,
    /// Largest request in blocks (0 = none); not an SPDK parameter, for tests of
    /// splitting and for modules layered on top.
    pub max_transfer_blocks: u32,
}

struct MallocDisk {
    mem: Arc<Mutex<MmapMut>>,
}

struct MallocChannel {
    mem: Arc<Mutex<MmapMut>>,
    done: Deferred,
}

fn range(io: &BdevIo) -> (usize, usize) {
    let bs = io.block_size() as usize;
    (io.offset_blocks() as usize * bs, io.len_bytes())
}

impl ModuleChannel for MallocChannel {
    fn submit(&self, io: BdevIo) {
        let (off, len) = range(&io);
        let st = {
            let mut m = self.mem.lock().unwrap_or_else(|e| e.into_inner());
            // The layer checked the range against the disk's size.
            let blocks = &mut m[off..off + len];
            match io.io_type() {
                IoType::Read => {
                    io.copy_in(blocks);
                    IoStatus::Success
                }
                IoType::Write => {
                    io.copy_out(blocks);
                    IoStatus::Success
                }
                IoType::WriteZeroes | IoType::Unmap => {
                    blocks.fill(0);
                    IoStatus::Success
                }
                IoType::Flush | IoType::Reset => IoStatus::Success,
                IoType::Compare => {
                    let mut want = vec![0u8; len];
                    io.copy_out(&mut want);
                    if want == blocks {
                        IoStatus::Success
                    } else {
                        IoStatus::Miscompare
                    }
                }
                IoType::CompareAndWrite => {
                    let mut want = vec![0u8; len];
                    io.copy_out_compare(&mut want);
                    if want == blocks {
                        io.copy_out(blocks);
                        IoStatus::Success
                    } else {
                        IoStatus::Miscompare
                    }
                }
            }
        };
        self.done.push(io, st);
    }
}

impl BdevModule for MallocDisk {
    fn module_name(&self) -> &str {
        "malloc"
    }
    fn io_type_supported(&self, _t: IoType) -> bool {
        true
    }
    fn create_channel(&self) -> std::result::Result<Box<dyn ModuleChannel>, String> {
        Ok(Box::new(MallocChannel {
            mem: self.mem.clone(),
            done: Deferred::new("bdev_malloc")?,
        }))
    }
    fn write_config(&self, info: &BdevInfo) -> Option<ConfigCall> {
        Some(ConfigCall {
            method: "bdev_malloc_create".into(),
            params: Some(json!({
                "name": info.name,
                "num_blocks": info.num_blocks,
                "block_size": info.block_size,
                "uuid": info.uuid.to_string(),
                "optimal_io_boundary": info.optimal_io_boundary,
            })),
        })
    }
}

/// Create and register a malloc bdev.
pub fn create(opts: MallocOpts) -> Result<Bdev> {
    let info = BdevInfo {
        name: opts.name.clone(),
        aliases: Vec::new(),
        uuid: opts.uuid.unwrap_or_else(Uuid::random),
        product_name: "Malloc disk".into(),
        block_size: opts.block_size,
        num_blocks: opts.num_blocks,
        optimal_io_boundary: opts.optimal_io_boundary,
        write_cache: true,
        max_transfer_blocks: opts.max_transfer_blocks,
    };
    info.validate()?;
    if bdev::get(&info.name).is_some() {
        return Err(Error::Exists(info.name));
    }
    let bytes = info.num_blocks * u64::from(info.block_size);
    let len = usize::try_from(bytes).map_err(|_| Error::Invalid {
        what: "num_blocks",
        why: format!("{bytes} bytes do not fit in memory"),
    })?;
    let mem = MmapMut::map_anon(len).map_err(|e| Error::Create {
        name: info.name.clone(),
        why: format!("{len} bytes of memory: {e}"),
    })?;
    bdev::register(
        info,
        Arc::new(MallocDisk {
            mem: Arc::new(Mutex::new(mem)),
        }),
    )
}
