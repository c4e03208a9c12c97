//! Interrupt descriptors of one thread (SPDK's `spdk_interrupt`): a descriptor, a
//! handler, and the epoll token that finds them again. Plain data owned by the thread;
//! the reactor hosting the thread has every descriptor in its epoll set.

use std::os::fd::RawFd;

use crate::poller_set::PollFn;

/// Bits of an epoll token that hold the slot; the thread id is above them.
pub(crate) const SLOT_BITS: u32 = 16;
/// Most interrupts one thread may hold.
pub(crate) const MAX_INTRS: usize = 1 << SLOT_BITS;

pub(crate) struct IntrEntry {
    /// For diagnostics.
    #[allow(dead_code)]
    pub(crate) name: String,
    pub(crate) fd: RawFd,
    /// `None` while the handler runs.
    pub(crate) f: Option<PollFn>,
    pub(crate) gen: u32,
    /// Unregistered while its handler ran: dropped on return.
    pub(crate) dead: bool,
}

#[derive(Default)]
pub(crate) struct IntrSet {
    pub(crate) slots: Vec<Option<IntrEntry>>,
    next_gen: u32,
    live: usize,
}

/// The epoll token of slot `slot` of thread `thread_id`.
pub(crate) fn token(thread_id: u64, slot: u32) -> u64 {
    (thread_id << SLOT_BITS) | u64::from(slot)
}

/// The (thread id, slot) a token names.
pub(crate) fn untoken(token: u64) -> (u64, u32) {
    (token >> SLOT_BITS, (token & ((1 << SLOT_BITS) - 1)) as u32)
}

impl IntrSet {
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Add an entry; `None` when the thread already holds [`MAX_INTRS`].
    pub(crate) fn insert(&mut self, name: String, fd: RawFd, f: PollFn) -> Option<(u32, u32)> {
        let slot = match self.slots.iter().position(|s| s.is_none()) {
            Some(i) => i,
            None if self.slots.len() < MAX_INTRS => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return None,
        };
        self.next_gen = self.next_gen.wrapping_add(1);
        let gen = self.next_gen;
        self.slots[slot] = Some(IntrEntry {
            name,
            fd,
            f: Some(f),
            gen,
            dead: false,
        });
        self.live += 1;
        Some((slot as u32, gen))
    }

    pub(crate) fn get_mut(&mut self, slot: u32, gen: u32) -> Option<&mut IntrEntry> {
        match self.slots.get_mut(slot as usize) {
            Some(Some(e)) if e.gen == gen && !e.dead => Some(e),
            _ => None,
        }
    }

    /// Remove slot `slot` (any generation), returning its entry.
    pub(crate) fn remove(&mut self, slot: u32) -> Option<IntrEntry> {
        let e = self.slots.get_mut(slot as usize)?.take()?;
        self.live -= 1;
        Some(e)
    }

    /// Descriptors with their tokens (to add to or remove from a reactor's epoll set).
    pub(crate) fn fds(&self, thread_id: u64) -> Vec<(RawFd, u64)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Some(e) if !e.dead => Some((e.fd, token(thread_id, i as u32))),
                _ => None,
            })
            .collect()
    }
}
