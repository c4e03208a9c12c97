//! Ferroplane mbuf: packet buffers in mempools, in the class of DPDK's `rte_mbuf`.
//!
//! # What lives in shared memory
//!
//! Every mbuf is one object of a [`mempool`] pool (created by [`pktmbuf_pool_create`]):
//!
//! ```text
//!  | MbufHeader (128 bytes, two cache lines) | private area (priv_size) | buffer (data_room) |
//!                                                                        ^ buf_addr
//!                                            headroom (128) | data (data_len) | tailroom
//! ```
//!
//! The header is `#[repr(C)]` with DPDK v22.11's field offsets ([`header`]); it holds no
//! pointers, only EAL virtual addresses and IOVAs (the same in every process): the
//! buffer, the next segment, the pool (its header address), and for a clone the direct
//! mbuf. The pool's private area records the data room and private size with a magic.
//!
//! # Ownership and threads
//!
//! * [`Mbuf`] is the owned handle of a packet (its first segment and the chain behind
//!   it): `Send` and `Sync`, not `Clone`. Dropping it frees every segment; moving it to
//!   another thread or, through [`Mbuf::into_raw`]/[`Mbuf::from_raw`] and a ring, to
//!   another process is how packets travel. A process must hold a handle to a pool
//!   (create or [`PktmbufPool::lookup`]) while it holds that pool's mbufs: an mbuf must
//!   not outlive the process's last [`PktmbufPool`] handle to its pool. Freeing an mbuf of
//!   a pool that is not attached in this process (never looked up, or detached after its
//!   last handle went with no mbuf out) panics with a message saying so. Dropping the last
//!   handle while mbufs are out keeps the pool attached and the EAL alive (no teardown at
//!   exit; see the mempool crate's "Attachment" section).
//! * Each buffer has a reference count (`refcnt`). [`Mbuf::clone_in`] makes indirect
//!   mbufs that share the buffers of the original (zero copy) and raise their counts; a
//!   buffer goes back to its pool when its last user drops it, and an indirect mbuf is
//!   detached (and returned to its own pool) when freed. The count is the only field
//!   touched by several threads; its decrements are release, the final one acquire, so a
//!   recycled buffer is never still in use.
//! * A shared buffer (count > 1, or borrowed by an indirect mbuf) is read-only: every
//!   write path refuses with [`Error::Shared`] and `DerefMut` panics (use
//!   [`Mbuf::try_data_mut`]). Headroom/tailroom moves that only change this handle's own
//!   window ([`Mbuf::adj`], [`Mbuf::trim`]) are allowed.
//! * Every operation that would overflow the headroom, tailroom, `data_len` (u16),
//!   `pkt_len` (u32) or the segment count (u16) returns an error and leaves the mbuf as it
//!   was.
//! * Allocation and free go through the pool's per-lcore cache on EAL lcores (see the
//!   mempool crate's contracts), so the same preemption caveats apply: do not share an
//!   lcore id between threads, do not run lcores on shared cpus. Nothing here blocks;
//!   a thread preempted inside a free or an allocation holds up only the pool's other
//!   users of the backend (see the mempool crate's "Preemption").
//!
//! # Where things are
//!
//! `header` (the shared `#[repr(C)]` header), `flags` (offload flags), `pool` (packet
//! pools), `free` (reference counts and the bulk free path, on raw headers), `mbuf`
//! ([`Mbuf`]: ownership, raw access, lengths, `Drop`), `alloc`, `data` (data access,
//! headroom and tailroom), `chain` (chains, linearize), `clone` (indirect mbufs), `meta`
//! (metadata, reset, dump).

// Modules in dependency order: each uses only those above it.
mod alloc;
mod chain;
mod clone;
mod data;
mod error;
pub mod flags;
mod free;
pub mod header;
mod mbuf;
mod meta;
mod pool;

pub use error::{ChainError, Error, Result};
pub use flags::{OlFlags, TxOffload};
pub use header::{
    MbufHeader, MAX_NB_SEGS, MBUF_DEFAULT_BUF_SIZE, MBUF_DEFAULT_DATAROOM, MBUF_HEADER_LEN,
    PKTMBUF_HEADROOM, PORT_INVALID, PRIV_ALIGN,
};
pub use mbuf::Mbuf;
pub use pool::{pktmbuf_pool_create, PktmbufPool};
