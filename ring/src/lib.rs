//! Ferroplane ring: a fixed-size, lock-free FIFO of `Copy` elements in shared memory, in
//! the class of DPDK's `rte_ring`.
//!
//! # What lives in shared memory
//!
//! A ring is one contiguous block (see [`Ring::memsize`]): a `#[repr(C)]` header with
//! magic, layout version ([`LAYOUT_VERSION`]), name, flags, size/mask/capacity and element
//! size; the producer head/tail and the consumer head/tail, by default each side on its
//! own 128-byte block (two cache lines, against the adjacent-line prefetcher; head and
//! tail on the first), or with [`RingFlags::ONE_LINE`] both sides on one line (for rings
//! whose every thread both enqueues and dequeues); then the slot array.
//! There are no pointers in it, so any process that maps the block can use it (EAL
//! memzones map at the same address in every process; nothing here depends on that).
//! The block is either caller-owned ([`Ring::init_in`], [`Ring::attach`]) or an EAL
//! memzone named `RG_<name>` (`Ring::create`, `Ring::lookup`, `Ring::free`).
//!
//! # Who may call what
//!
//! Each side (producers, consumers) has a [`SyncMode`] fixed at creation by
//! [`RingFlags`]:
//!
//! | mode | flags | callers on that side | peek / zero-copy |
//! |------|-------|----------------------|------------------|
//! | [`SyncMode::Single`] | `SP_ENQ` / `SC_DEQ` | one thread at a time, any process | yes |
//! | [`SyncMode::Multi`]  | none (default)      | any number of threads/processes   | no  |
//! | [`SyncMode::Rts`]    | `MP_RTS_ENQ` / `MC_RTS_DEQ` | any number          | no  |
//! | [`SyncMode::Hts`]    | `MP_HTS_ENQ` / `MC_HTS_DEQ` | any number, serialised | yes |
//! | [`SyncMode::Optimistic`] | `MC_OPT_DEQ` (consumers only, 8-byte elements) | any number | no |
//!
//! * Mode-following entry points ([`Ring::enqueue_bulk`], [`Ring::dequeue_burst`], ...)
//!   dispatch once per call on the mode stored at creation.
//! * [`MpMcRing`] (from [`Ring::into_mp_mc`], for a ring created with both sides multi)
//!   runs the MP/MC protocol with no per-call dispatch; [`MpOptRing`] (from
//!   [`Ring::into_mp_opt`]) the same with optimistic consumers.
//! * `mp_*` / `mc_*` are safe from any thread; on an RTS or HTS side they use that
//!   side's protocol. On a single side they use the multi protocol, which is only correct
//!   if no `sp_*`/single-mode call runs at the same time (the single contract below).
//! * `sp_*` / `sc_*` are `unsafe`: the caller promises no other thread uses that side
//!   during the call.
//! * The single-side contract ("at most one thread at a time enqueues, resp. dequeues,
//!   through any handle in any process") is accepted by whoever makes a handle to a ring
//!   with a single side: [`Ring::init_in`], [`Ring::attach`] and the memzone constructors
//!   are `unsafe` for that reason (and because the memory and `T` cannot be checked).
//! * Producers and consumers never wait for each other: a full ring fails an enqueue, an
//!   empty one a dequeue.
//!
//! Bulk means all or nothing, burst means as many as fit. Results carry the count and a
//! snapshot of free space ([`Enqueued`]) or remaining entries ([`Dequeued`]); the
//! snapshots are lower bounds (single sides answer from a cached copy of the other
//! side's tail and refresh it only when it says "not enough").
//!
//! # Preemption
//!
//! Multi (MP/MC) is **not preemption safe**: a thread that has moved the head but not yet
//! the tail blocks every later thread of its side, which spins until it is scheduled
//! again. Do not use MP/MC between threads that share a CPU, or with threads that can be
//! descheduled while holding a reservation (non-isolated cores, `SCHED_OTHER`). RTS and
//! HTS are the remedy: with RTS no thread waits for a particular other one (the tail
//! moves when the last thread in flight finishes, and the head may run at most
//! `htd_max` ahead), with HTS at most one operation per side is in flight, so a
//! preempted thread delays but the wait is bounded by one operation. Optimistic consumers
//! (`MC_OPT_DEQ`) copy small dequeues before claiming them, which shortens the window
//! between claim and publication but does not remove it: they are not preemption safe
//! either. Peek and
//! zero-copy reservations hold the side until finished or dropped; on an HTS side every
//! other operation of that side waits for them, on a single side none may start.
//!
//! # Memory ordering
//!
//! C11 model as in DPDK's `rte_ring_c11_pvt.h`, no `SeqCst`, no fences: the tail is
//! stored (or CASed) with Release after the slot copies and loaded by the other side with
//! Acquire before its slot copies; head CASes are Release on success and their loads
//! Acquire, so a thread that starts from another's head never pairs it with an older
//! tail of the other side. Every pair is labelled at both ends in `ring.rs` (R1..R5,
//! A1..A6). On a ring with optimistic consumers the slots are read and written with
//! 8-byte relaxed atomics: a consumer that loses its CAS may have read a slot while a
//! producer of the next lap wrote it, and only atomic accesses make that race defined
//! (its copy is thrown away).
//!
//! # Checking it
//!
//! * unit tests (per mode and operation, index wrap, exact size, peek, zero-copy):
//!   `cargo test -p ferroplane-ring --lib`, also under Miri:
//!   `cargo +nightly miri test -p ferroplane-ring --lib`;
//! * stress (2+2 threads, every mode and mix, tagged elements checked exactly once and
//!   in per-producer order): `cargo test -p ferroplane-ring --release --test stress`;
//! * loom models of the head/tail protocols:
//!   `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p ferroplane-ring --test loom --release`.

mod backoff;
mod c11;
mod claim;
mod copy;
mod entry;
pub mod error;
pub mod flags;
mod handle;
mod hts;
mod layout;
mod memzone;
mod mpmc;
mod ops;
mod opt;
mod peek;
mod primitive;
mod rts;
mod zero_copy;

pub use error::{Error, Result};
pub use flags::{RingFlags, SyncMode};
pub use handle::Ring;
pub use layout::{LAYOUT_VERSION, MAX_ELEM_SIZE, MZ_PREFIX, NAME_MAX, RING_ALIGN, RING_SZ_MASK};
pub use mpmc::{MpMcRing, MpOptRing};
pub use ops::{Dequeued, Enqueued};
pub use peek::{DequeuePeek, EnqueuePeek};
pub use zero_copy::{ZcDequeue, ZcEnqueue};

#[cfg(test)]
mod tests;
