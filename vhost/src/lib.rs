//! Ferroplane's vhost-user-blk target (SPDK's `lib/vhost`, block part): any bdev served
//! to a QEMU guest as a virtio-blk disk, the guest's virtqueues in shared memory polled
//! by reactor pollers.
//!
//! # Layering
//!
//! * rust-vmm's `vhost` crate (its vhost-user back-end side) reads and answers the
//!   front end's messages; [`device::Device`] is its request handler. We do not use
//!   rust-vmm's daemon (`vhost-user-backend`) or its epoll worker threads.
//! * rust-vmm's `vm-memory` maps the guest memory the front end shares
//!   ([`memory::GuestMem`]); `virtio-queue` reads the avail ring, writes the used ring
//!   and handles notification suppression (EVENT_IDX).
//! * Above them: [`controller`] (socket, connection and bdev on one framework thread
//!   per controller), [`queue`] (a poller per virtqueue, idle/interrupt mode on the
//!   kick eventfd), [`chain`] and [`request`] (descriptor chains and virtio-blk requests
//!   checked and mapped onto bdev I/O without copying), [`inflight`] (the inflight area
//!   that lets a restarted target resume), [`backend_req`] (the channel on which a
//!   resize reaches the guest), [`rpc`] and [`subsystem`].
//!
//! # Threads
//!
//! Everything of one controller runs on its framework thread: message handling, queue
//! polling, bdev submission and completion. The RPC handlers run on the app thread and
//! talk to a controller's thread with messages. The per-controller and per-queue
//! mutexes are taken only on that thread, apart from `vhost_get_controllers` reading
//! counters.
//!
//! # Shared memory
//!
//! Guest memory and the inflight area are shared with the guest or QEMU: we read what
//! we need from them once (headers, descriptors) into our own copies and check it
//! before use; data buffers are handed to the bdev as they are (no copy), as a device's
//! DMA would use them.

pub mod backend_req;
pub mod chain;
pub mod controller;
pub mod device;
pub mod error;
pub mod inflight;
pub mod memory;
pub mod queue;
pub mod request;
pub mod rpc;
pub mod spec;
pub mod subsystem;

mod sys;

pub use controller::{set_socket_dir, socket_dir};
pub use error::{Error, Result};
pub use queue::{notify_window_us, set_notify_window_us};
pub use subsystem::VhostSubsystem;
