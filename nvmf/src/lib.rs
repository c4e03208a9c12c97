//! NVMe over Fabrics on TCP for Ferroplane, in the class of SPDK's `lib/nvmf` (target)
//! and `lib/nvme`'s TCP transport (initiator).
//!
//! * [`spec`]: wire formats (NVMe/TCP PDUs, Fabrics commands, Connect data, the
//!   discovery log), sizes asserted; the NVMe commands and identify data are
//!   `nvme::spec`'s. [`codec`]: framing and CRC32C digests, shared by both sides.
//! * [`target`]: subsystems over bdevs, controllers, listeners and poll groups
//!   serving connections on the framework's reactors; [`rpc`]: SPDK's `nvmf_*`
//!   methods; [`NvmfSubsystem`]: plugs both into an app (`ferroplane-tgt`).
//! * [`host`]: the initiator, the `TCP` transport of `bdev_nvme_attach_controller`.
//!
//! # Threads
//! Everything runs on framework threads: listeners on the app thread, connections on
//! the poll group threads (one per reactor), initiator queues on the threads that
//! submit. Sockets are nonblocking and polled; an epoll set per poll group, registered
//! as a framework interrupt, wakes a sleeping reactor. See [`target`] for who owns
//! what.

pub mod codec;
pub mod error;
pub mod host;
pub mod rpc;
pub mod spec;
pub mod subsystem;
pub mod sys;
pub mod target;

pub use error::{Error, Result};
pub use subsystem::{NvmfHostSubsystem, NvmfSubsystem};
