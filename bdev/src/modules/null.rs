//! The null bdev module (SPDK's `bdev_null`): no storage. Writes, write-zeroes, unmap,
//! flush and reset succeed; reads succeed and leave the buffers as they were (SPDK's
//! behaviour without metadata). Completions come from a per-channel poller.

use std::sync::Arc;

use framework::subsystem::ConfigCall;
use serde_json::json;

use crate::bdev::{self, Bdev, BdevInfo, BdevModule, ModuleChannel};
use crate::error::Result;
use crate::io::{BdevIo, IoStatus, IoType};
use crate::modules::Deferred;
use crate::uuid::Uuid;

/// What `bdev_null_create` takes.
#[derive(Debug, Clone)]
pub struct NullOpts {
    /// Bdev name.
    pub name: String,
    /// Size in blocks.
    pub num_blocks: u64,
    /// Block size (power of two, >= 512).
    pub block_size: u32,
    /// UUID (random if `None`).
    pub uuid: Option<Uuid>,
}

struct NullDisk;

struct NullChannel(Deferred);

impl ModuleChannel for NullChannel {
    fn submit(&self, io: BdevIo) {
        self.0.push(io, IoStatus::Success);
    }
}

impl BdevModule for NullDisk {
    fn module_name(&self) -> &str {
        "null"
    }
    fn io_type_supported(&self, t: IoType) -> bool {
        matches!(
            t,
            IoType::Read
                | IoType::Write
                | IoType::WriteZeroes
                | IoType::Unmap
                | IoType::Flush
                | IoType::Reset
        )
    }
    fn create_channel(&self) -> std::result::Result<Box<dyn ModuleChannel>, String> {
        Ok(Box::new(NullChannel(Deferred::new("bdev_null")?)))
    }
    fn write_config(&self, info: &BdevInfo) -> Option<ConfigCall> {
        let size = json!({ "num_blocks": info.num_blocks, "block_size": info.block_size });
        super::create_call("bdev_null_create", info, size)
    }
}

/// Create and register a null bdev.
pub fn create(opts: NullOpts) -> Result<Bdev> {
    let info = BdevInfo {
        name: opts.name.clone(),
        aliases: Vec::new(),
        uuid: opts.uuid.unwrap_or_else(Uuid::random),
        product_name: "Null disk".into(),
        block_size: opts.block_size,
        num_blocks: opts.num_blocks,
        optimal_io_boundary: 0,
        write_cache: false,
        max_transfer_blocks: 0,
    };
    bdev::register(info, Arc::new(NullDisk))
}

/// Grow null bdev `b` to `new_size_mib` MiB (SPDK's `bdev_null_resize`): the new size
/// must be whole blocks and not below the current one; open descriptors get the
/// resize event.
pub fn resize(b: &Bdev, new_size_mib: u64) -> Result<()> {
    let blocks = crate::resize::grown_blocks(b, new_size_mib)?;
    crate::resize::notify_blockcnt_change(b, blocks)
}
