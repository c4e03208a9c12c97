//! The types a bdev module and the layer share: what a module says about its bdev
//! ([`BdevInfo`]), what it implements ([`BdevModule`], [`ModuleChannel`]) and the
//! events a descriptor hears ([`BdevEvent`]). A leaf below [`crate::bdev`] (the
//! registry), [`crate::channel`] and [`crate::desc`], which all use them.

use framework::subsystem::ConfigCall;

use crate::error::{Error, Result};
use crate::io::{BdevIo, IoType};
use crate::uuid::Uuid;

/// What a module says about its bdev at registration (immutable afterwards; a size
/// change goes through [`crate::resize::notify_blockcnt_change`] and is read with
/// [`crate::bdev::Bdev::num_blocks`], an alias change through
/// [`crate::bdev::alias_add`] / [`crate::bdev::alias_del`] and is read with
/// [`crate::bdev::Bdev::aliases`]).
#[derive(Debug, Clone)]
pub struct BdevInfo {
    /// Unique name.
    pub name: String,
    /// Other names it can be opened by.
    pub aliases: Vec<String>,
    /// UUID (random if the creator gave none).
    pub uuid: Uuid,
    /// Product name (`bdev_get_bdevs` → `product_name`, "Malloc disk", ...).
    pub product_name: String,
    /// Logical block size in bytes: a power of two, at least 512.
    pub block_size: u32,
    /// Size in blocks at registration (> 0).
    pub num_blocks: u64,
    /// Requests crossing a multiple of this many blocks are split (0 = no boundary).
    pub optimal_io_boundary: u32,
    /// Whether the device has a volatile write cache (flush matters).
    pub write_cache: bool,
    /// The largest request the module takes, in blocks (0 = no limit); larger read,
    /// write and compare requests are split.
    pub max_transfer_blocks: u32,
}

impl BdevInfo {
    /// Check what every module must respect.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(Error::Invalid {
                what: "bdev name",
                why: "empty".into(),
            });
        }
        if self.block_size < 512 || !self.block_size.is_power_of_two() {
            return Err(Error::Invalid {
                what: "block_size",
                why: format!("{} is not a power of two >= 512", self.block_size),
            });
        }
        if self.num_blocks == 0 {
            return Err(Error::Invalid {
                what: "num_blocks",
                why: "must be > 0".into(),
            });
        }
        self.num_blocks
            .checked_mul(u64::from(self.block_size))
            .ok_or_else(|| Error::Invalid {
                what: "num_blocks",
                why: format!(
                    "{} blocks of {} bytes overflow",
                    self.num_blocks, self.block_size
                ),
            })?;
        Ok(())
    }
}

/// A module's per-thread context for one bdev (SPDK's module channel behind
/// `get_io_channel`). Created on the thread that will use it, dropped there.
pub trait ModuleChannel: Send {
    /// Start `io` (see [`BdevIo`] for the completion contract).
    fn submit(&self, io: BdevIo);
}

/// What a bdev module implements for each of its bdevs (SPDK's `spdk_bdev_fn_table`,
/// kept small).
pub trait BdevModule: Send + Sync + 'static {
    /// The module's name ("malloc", "null", ...): claims and `bdev_get_bdevs` use it.
    fn module_name(&self) -> &str;
    /// Whether this bdev takes `t` (the layer refuses the others before submission).
    /// Asked once per type, at registration: the answer must not change afterwards.
    fn io_type_supported(&self, t: IoType) -> bool;
    /// Make the calling thread's channel context (SPDK's `get_io_channel`: a module
    /// with a device of its own gets that device's framework channel here).
    fn create_channel(&self) -> std::result::Result<Box<dyn ModuleChannel>, String>;
    /// The bdev is unregistered, every descriptor closed and every channel gone:
    /// release its resources.
    fn destruct(&self) {}
    /// The call that recreates this bdev (`save_config`), if any.
    fn write_config(&self, _info: &BdevInfo) -> Option<ConfigCall> {
        None
    }
    /// Module-specific `driver_specific` content for `bdev_get_bdevs`.
    fn info_json(&self) -> Option<serde_json::Value> {
        None
    }
}

/// Why a descriptor's event callback is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BdevEvent {
    /// The bdev is being unregistered: close the descriptor (after putting its
    /// channels); the removal finishes once every descriptor is closed.
    Remove,
    /// The block count changed (see [`crate::resize`]): [`Bdev::num_blocks`] holds the
    /// new one.
    Resize,
}
