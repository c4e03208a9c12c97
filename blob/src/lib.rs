//! Ferroplane's blobstore, in the class of SPDK's `lib/blob`, in SPDK's on-disk format
//! (version 3): a flat namespace of blobs on a block device, thin provisioning,
//! snapshots and clones; and `blobcli`, SPDK's blobstore tool.
//!
//! # Layers
//!
//! * [`format`]: the on-disk structures (super block, masks, metadata pages,
//!   descriptors) as explicit little-endian encodings, sizes and offsets asserted.
//! * [`md`]: one blob's metadata in memory and its (de)serialisation into descriptors.
//! * [`store`] (init, unload, metadata sync), [`load`] (clean and recovery loads),
//!   [`ops`] (create, open, resize, delete, xattrs), [`io`] (reads and writes,
//!   thin allocation), [`snapshot`] (snapshots, clones, inflate, decouple).
//! * [`dev`]: the device interface; [`bdev_dev`] puts it on the bdev layer.
//!
//! # Who may call what
//!
//! A [`Blobstore`] is used through `&mut self`: all metadata changes are serialised by
//! its owner. Its calls wait for their I/O, so they run on an OS thread of their own,
//! never inside a framework callback; with a [`bdev_dev::BdevDev`] the I/O itself is
//! submitted and completed on a framework thread. [`host`] starts a framework and
//! such a worker thread for tools and tests. [`Blobstore::cluster_map`] hands a data
//! path outside the store (an lvol bdev's, on its submitting framework thread) where a
//! blob's clusters are; [`lvol`] says how it keeps that map current.

pub mod bdev_dev;
pub mod dev;
pub mod error;
pub mod format;
pub mod host;
pub mod io;
pub mod load;
pub mod lvol;
pub mod md;
pub mod ops;
pub mod snapshot;
pub mod store;

pub use dev::{BlockDevice, FileDev, MemDev};
pub use error::{Error, Result};
pub use load::{LoadKind, LoadOpts};
pub use ops::{Blob, BlobInfo, BlobOpts};
pub use store::{Blobstore, InitOpts, StoreInfo};
