//! Ferroplane's NVMe driver: a user-space, polled NVMe driver in the class of SPDK's,
//! over `eal::device` (vfio-pci or uio_pci_generic), plus kernel I/O back ends
//! ([`kernel`]: io_uring, libaio, psync) so `nvme-perf` can compare the two stacks.
//!
//! # Layers
//! Modules depend one way, bottom up:
//! * [`spec`]: registers, queue entries, status codes, opcodes, identify structures
//!   (NVMe 1.4), one file per spec section; no device access.
//! * [`prp`]: PRP lists, built per 4 KiB page through an [`prp::IovaMapper`]; [`buf`]:
//!   owned DMA buffers ([`IoBuf`]).
//! * [`queue`]: one submission/completion queue pair as the host sees it (rings, command
//!   trackers, doorbells, phase tags), shared by the admin queue and I/O queue pairs.
//! * `hw` (register access, CSTS with device-gone detection) ← `admin` (synchronous
//!   admin commands) ← `init` (the bring-up state machine, [`InitState`], in the manner
//!   of SPDK's `nvme_ctrlr_process_init`) ← `shared` (controller state shared by every
//!   handle and queue pair: reset, generation, queue ids).
//! * [`QPair`] (data path, one thread): lock-free, no system calls, no allocation for the
//!   raw/tagged submit APIs; submissions doorbelled once per batch, completions found by
//!   phase tag.
//! * [`Controller`] (control path, any thread): the public face over `shared`: open,
//!   identify data, [`Namespace`]s, admin commands, reset, queue pair allocation.
//!   `Send + Sync`, `Clone`.
//! * [`kernel`] and [`sys`] stand apart: kernel back ends and their system calls.
//!
//! # Threads
//! Create one queue pair per thread with [`Controller::alloc_io_qpair`]; a `QPair` is
//! `Send` but not `Sync`. Admin operations (identify, reset, queue creation and deletion,
//! aborts) serialise on one mutex inside the controller and may run from any thread while
//! others do I/O.
//!
//! # Buffers
//! The device reads and writes data buffers asynchronously. The safe submit APIs take an
//! owned [`IoBuf`] and give it back in the callback; the `_raw` APIs are `unsafe` and make
//! the caller promise the memory outlives the request (see [`qpair`]). Memory the device
//! writes (completion queues, identify data) is read only with volatile loads; memory it
//! reads (submission queues, PRP lists) is written with volatile stores.
//!
//! # Errors
//! One enum, [`Error`]: completion statuses decode to typed variants
//! ([`Error::LbaOutOfRange`], [`Error::CompareFailure`], [`Error::MediaError`], ...),
//! plus [`Error::QueueFull`], [`Error::Reset`], [`Error::DeviceGone`],
//! [`Error::ControllerFatal`], [`Error::CommandTimeout`].
//!
//! # Not done
//! Interrupt-driven completion, SGLs, metadata/protection information and multiple
//! controllers per process sharing one IOMMU
//! container are not implemented.

mod admin;
pub mod buf;
pub mod ctrlr;
mod dbbuf;
pub mod error;
mod hw;
mod init;
pub mod kernel;
mod namespace;
pub mod prp;
pub mod qpair;
pub mod queue;
mod shared;
pub mod spec;
pub mod sys;

pub use buf::IoBuf;
pub use ctrlr::Controller;
pub use error::{Error, Result};
pub use init::{ControllerOptions, InitState};
pub use namespace::Namespace;
pub use qpair::{QPair, QPairOptions, Rejected};
pub use queue::{Completion, Done, QueueStats, Reap};
