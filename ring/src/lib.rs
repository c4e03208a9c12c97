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
//! * Producers and consumers do not wait for each other: a full ring fails an enqueue, an
//!   empty one a dequeue (after waiting out an operation in flight on a multi other side,
//!   see below).
//!
//! Bulk means all or nothing, burst means as many as fit. Results carry the count and a
//! snapshot of free space ([`Enqueued`]) or remaining entries ([`Dequeued`]); the
//! snapshots are lower bounds (single sides answer from a cached copy of the other
//! side's tail and refresh it only when it says "not enough").
//!
//! # Preemption and more threads than cores
//!
//! Every multi-thread mode has a window between a thread's head move (its claim) and its
//! tail update (its publication) in which other threads of the same side may have to
//! wait for it: on a multi or optimistic side every later thread waits (tails move in
//! claim order), on an HTS side every other operation of that side, on an RTS side the
//! others once the head is `htd_max` ahead. A thread preempted inside that window
//! (threads sharing a CPU, `SCHED_OTHER` threads on non-isolated cores) stretches those
//! waits to the scheduler's time scale. DPDK's waits spin; with more threads than cores
//! that can stall a ring for minutes.
//!
//! Here every such wait spins for a bounded number of spin-loop hints (the same loads a
//! plain spin makes, so threads on cores of their own see no difference) and then gives
//! up the CPU: a multi side's tail wait sleeps briefly (it needs one particular thread,
//! which must get the CPU), HTS and RTS waits `sched_yield` (any waiter may go next). A
//! call that finds the ring full or empty while the other side is multi and has an
//! operation in flight waits for that operation the same way before it reports the
//! failure, so that callers retrying at once do not starve the thread they wait for. The
//! `backoff` module has the details and measurements. The waits remain unbounded (a
//! thread that never runs again, or dies, inside the window blocks its side for good:
//! the same as DPDK), and a preempted thread still costs its side a scheduler round
//! trip; RTS and HTS are still the modes to choose for threads that share CPUs. Peek and
//! zero-copy reservations hold their side until finished or dropped: on an HTS side
//! every other operation of that side waits for them, on a single side none may start.
//!
//! # Memory ordering
//!
//! C11 model as in DPDK's `rte_ring_c11_pvt.h`, no `SeqCst`, no fences: the tail is
//! stored (or CASed) with Release after the slot copies and loaded by the other side with
//! Acquire before its slot copies; head CASes are Release on success and their loads
//! Acquire, so a thread that starts from another's head never pairs it with an older
//! tail of the other side. The pairs are listed in the `claim` module (R1..R5, A1..A6)
//! and labelled at both ends in the mode modules. On a ring with optimistic consumers
//! the slots are read and written with 8-byte relaxed atomics: a consumer that loses its
//! CAS may have read a slot while a producer of the next lap wrote it, and only atomic
//! accesses make that race defined (its copy is thrown away).
//!
//! # Layout of the crate
//!
//! | module | what |
//! |--------|------|
//! | `layout` | the shared-memory header, head/tail words and their encodings |
//! | `flags` | [`RingFlags`], [`SyncMode`] |
//! | `handle` | [`Ring`]: construction, attachment, accessors, counts, dump |
//! | `memzone` | rings in EAL memzones |
//! | `claim` | what a head move hands out; the list of acquire/release pairs |
//! | `c11` | single and multi head moves and tail updates (DPDK `rte_ring_c11_pvt.h`) |
//! | `rts`, `hts` | relaxed and head/tail sync (DPDK `rte_ring_{rts,hts}_elem_pvt.h`) |
//! | `opt` | the optimistic consumer (`MC_OPT_DEQ`) |
//! | `backoff` | how waits give up the CPU |
//! | `copy` | the slot array and element copies (DPDK `rte_ring_elem_pvt.h`) |
//! | `ops` | the per-call funnel: mode dispatch, head, copy, tail |
//! | `entry` | the public `enqueue*`/`dequeue*`, `mp_*`/`mc_*`, `sp_*`/`sc_*` calls |
//! | `mpmc` | [`MpMcRing`], [`MpOptRing`] |
//! | `peek`, `zero_copy` | two-phase and in-place operations (DPDK `rte_ring_peek*.h`) |
//! | `primitive` | atomics, spin hint, yield, sleep and slot tracker, swapped under loom |
//!
//! # Checking it
//!
//! * unit tests (per mode and operation, index wrap, exact size, peek, zero-copy):
//!   `cargo test -p ferroplane-ring --lib`, also under Miri:
//!   `MIRIFLAGS=-Zmiri-disable-isolation cargo +nightly miri test -p ferroplane-ring --lib`;
//! * stress (2+2 threads in every mode and mix, and 8 per multi side in every mode,
//!   tagged elements checked exactly once and in per-producer order, each run failing
//!   after 120 s): `cargo test -p ferroplane-ring --release --test stress`;
//! * loom models of the head/tail protocols:
//!   `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p ferroplane-ring --test loom --release`;
//! * 8 producers and 8 consumers moving 16 M elements in every mode, timed:
//!   `cargo run --release -p ferroplane-ring --example oversubscribed`.

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
// Loom and Miri wait through their own primitives (`primitive`).
#[cfg(not(any(loom, miri)))]
mod sys;
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
