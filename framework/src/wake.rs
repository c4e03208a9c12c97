//! The idle/wake handshake of one reactor: an epoll set, an eventfd in it, and the flags
//! that let senders skip the eventfd while the reactor is awake.
//!
//! # The handshake (no lost wake-ups)
//!
//! A sender publishes its message or event into a ring, then calls [`Wake::kick`]:
//!
//! ```text
//! sender                                  reactor going to sleep
//! push msg: ring tail store, SeqCst -W1-  sleeping.store(true)
//! (thread messages: host.load(SeqCst))    fence(SeqCst)            -- W2 --
//! if sleeping.load(SeqCst): write eventfd if any ring non-empty: cancel, else epoll_wait
//! ```
//!
//! W1 and W2 are the two halves of a store-buffer (Dekker) pattern: both sides store one
//! location and then load the other, which needs a store-load order that acquire/release
//! cannot give. W1 is the ring's publication itself (`Ring::enqueue_seqcst`: the tail
//! store, or the RTS tail CAS, is `SeqCst`), and the sender's later loads are `SeqCst`,
//! so no fence is needed on the sending side. In the total order S of `SeqCst`
//! operations and fences (C++20 [atomics.order] p4, which Rust follows):
//!
//! * If the sender's `sleeping` load does not see the reactor's `true` (it reads a value
//!   coherence-ordered before that store), then, the store happening before W2, the load
//!   precedes W2 in S (p4.2), and so does W1, which is sequenced before the load. The
//!   reactor's tail load after W2 then cannot read a tail older than W1's (that would
//!   put W2 before W1 in S, p4.3): its emptiness check sees the message.
//! * Otherwise the load sees `sleeping == true` and writes the eventfd, which ends (or
//!   prevents) the epoll wait.
//!
//! A path that publishes with a plain `Release` store (the overflow list of
//! `ThreadHandle::send_reliable`) must issue `fence(SeqCst)` before [`Wake::kick`]; the
//! same argument then runs with that fence as W1 (p4.2, p4.4).
//!
//! `kicked` keeps many senders from all writing the eventfd for one sleep: the first
//! sender that sees `sleeping` sets it (K1, AcqRel swap) and writes; the reactor drains
//! the eventfd and then clears `kicked` after waking (K2, Acquire swap, which reads the
//! last sender's K1: an RMW always reads the latest value), so every message pushed
//! before a sender's K1 is visible to the reactor's next poll. Drain before clear, never
//! the other way round (see [`Wake::reset`]): the invariant is "`kicked` set ⇒ a write
//! is done or coming and not yet drained". A sender may read `sleeping` late (a sleep
//! attempt that was already called off): that costs one spurious wake-up, never a lost
//! one.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};

use crate::error::Result;
use crate::sys;

/// The epoll token of the reactor's own eventfd.
pub(crate) const EVENTFD_TOKEN: u64 = u64::MAX;

/// One reactor's epoll set, eventfd and sleep flags.
pub(crate) struct Wake {
    epoll: OwnedFd,
    efd: OwnedFd,
    sleeping: AtomicBool,
    kicked: AtomicBool,
}

impl Wake {
    pub(crate) fn new() -> Result<Wake> {
        let epoll = sys::epoll_create()?;
        let efd = sys::eventfd()?;
        sys::epoll_add(epoll.as_raw_fd(), efd.as_raw_fd(), EVENTFD_TOKEN)?;
        Ok(Wake {
            epoll,
            efd,
            sleeping: AtomicBool::new(false),
            kicked: AtomicBool::new(false),
        })
    }

    /// The epoll descriptor (interrupt descriptors of hosted threads are added to it).
    pub(crate) fn epoll_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    /// Called by a sender after publishing into one of this reactor's rings with W1: a
    /// `SeqCst` publication (`MsgRing::push`) or a `fence(SeqCst)` after it.
    #[inline]
    pub(crate) fn kick(&self) {
        // SeqCst: after W1 in S, so that it pairs with W2 in `prepare_sleep` (module
        // docs). On x86 and AArch64 a SeqCst load costs what an Acquire one does.
        if self.sleeping.load(Ordering::SeqCst) && !self.kicked.swap(true, Ordering::AcqRel) {
            // K1 above pairs with K2 in `finish_sleep`. A failed eventfd write cannot be
            // reported to the sender in a useful way and does not happen with a valid
            // eventfd (a full counter is already readable); the reactor's timed wake-ups
            // bound the damage if it ever did.
            let _ = sys::eventfd_write(&self.efd);
        }
    }

    /// Wake the reactor unconditionally (stop, tests).
    pub(crate) fn force(&self) {
        self.kicked.store(true, Ordering::Release);
        let _ = sys::eventfd_write(&self.efd);
    }

    /// Announce the intent to sleep. The caller must then check every ring it consumes
    /// and call [`Wake::wait`] only if all are empty, and [`Wake::finish_sleep`] in
    /// either case.
    pub(crate) fn prepare_sleep(&self) {
        self.sleeping.store(true, Ordering::Relaxed);
        // W2: pairs with W1, the senders' SeqCst publication (module docs).
        fence(Ordering::SeqCst);
    }

    /// Sleep in epoll for at most `timeout_ms` (-1 = until woken), collecting the ready
    /// interrupt tokens (the eventfd's own token is filtered out). Returns whether the
    /// eventfd was readable.
    pub(crate) fn wait(&self, timeout_ms: i32, ready: &mut Vec<u64>) -> Result<bool> {
        sys::epoll_wait(self.epoll.as_raw_fd(), timeout_ms, ready)?;
        let kicked = ready.contains(&EVENTFD_TOKEN);
        ready.retain(|&t| t != EVENTFD_TOKEN);
        Ok(kicked)
    }

    /// Leave the sleeping state; `eventfd_ready` is what [`Wake::wait`] returned.
    pub(crate) fn finish_sleep(&self, eventfd_ready: bool) {
        self.sleeping.store(false, Ordering::Relaxed);
        self.reset(eventfd_ready);
    }

    /// Drain the eventfd, then clear `kicked` (K2). The order matters: a sender writes
    /// the eventfd only after winning `kicked` (false → true), so a write that this drain
    /// removes came from a win before the clear below, which the clear then undoes.
    /// Clearing first would let a sender win `kicked`, write, and have its write drained:
    /// `kicked` would stay true over an empty eventfd, and every later sender would skip
    /// the write while the reactor sleeps (a lost wake-up). A write that lands after the
    /// clear only causes one spurious wake-up.
    fn reset(&self, eventfd_ready: bool) {
        if eventfd_ready || self.kicked.load(Ordering::Relaxed) {
            sys::eventfd_drain(&self.efd);
        }
        // K2: pairs with K1 in `kick`: messages of senders that found `kicked` set and
        // skipped the write are visible after this.
        self.kicked.swap(false, Ordering::Acquire);
    }

    /// Poll the epoll set without sleeping (busy reactors check interrupt descriptors
    /// this way now and then).
    pub(crate) fn poll_ready(&self, ready: &mut Vec<u64>) -> Result<()> {
        sys::epoll_wait(self.epoll.as_raw_fd(), 0, ready)?;
        if ready.contains(&EVENTFD_TOKEN) {
            ready.retain(|&t| t != EVENTFD_TOKEN);
            // A write from a sender that saw an earlier sleep late: clear it, so the
            // next sleep does not return at once.
            self.reset(true);
        }
        Ok(())
    }
}
