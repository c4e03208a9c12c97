//! Ferroplane's block device layer, in the class of SPDK's `lib/bdev`: bdevs, modules,
//! descriptors, per-thread channels, I/O with splitting and out-of-resources retry,
//! statistics, and the malloc, null, uring (io_uring) and aio (Linux AIO) modules.
//!
//! # How I/O flows
//!
//! A module registers a bdev ([`bdev::register`]) with a [`BdevModule`]. A user opens
//! it ([`desc::open`], on a framework thread, read-only or read-write, with a callback
//! for the remove event) and, on each thread that submits, gets a [`BdevIoChannel`]:
//! the framework's per-thread I/O channel of the bdev, whose context holds the
//! module's own per-thread [`ModuleChannel`], a free list of I/O objects, the
//! out-of-resources queue and the counters. A submit checks the request (range,
//! permission, supported type, buffer size), splits it at the optimal boundary and the
//! module's transfer limit, and hands each piece to the module as a [`BdevIo`]; the
//! module completes it on the same thread, and the caller's callback runs there.
//! See [`channel`] for the free list, the retry queue and splitting, and [`desc`] for
//! who owns the buffers until completion.
//!
//! # Threads
//!
//! Everything that acts on "the current thread" (open, get a channel, submit,
//! unregister) runs inside the framework. Bdev handles, descriptors and the registry
//! are `Send + Sync`; channel contexts are per thread and checked.

pub mod bdev;
pub mod channel;
pub mod desc;
pub mod error;
pub mod examine;
pub mod io;
pub mod modules;
pub mod qos;
mod reset;
pub mod resize;
mod resize_rpc;
pub mod rpc;
mod rpc_util;
pub mod stats;
pub mod subsystem;
mod sys;
pub mod types;
pub mod uuid;

pub use bdev::{Bdev, BdevEvent, BdevInfo, BdevModule, ModuleChannel};
pub use desc::{open, BdevIoChannel, Descriptor};
pub use error::{Error, Result};
pub use io::{BdevIo, IoStatus, IoType, IoVec};
pub use resize::notify_blockcnt_change;
pub use stats::IoStats;
pub use subsystem::BdevSubsystem;
pub use uuid::Uuid;
