//! Pollers of one thread: active ones (run every iteration, in registration order) and
//! timed ones (run when their deadline has passed, earliest first).
//!
//! The set is plain data owned by its thread; the thread module runs the callbacks with
//! no borrow of the set held, so a callback may register, pause, resume or unregister any
//! poller of its thread, itself included. A poller unregistered while it runs is dropped
//! when it returns. Handles are `(slot, generation)` pairs, so a stale handle never
//! reaches a poller that reused the slot.
//!
//! A timed poller's next deadline is the start of its last run plus its period, so two
//! runs never start closer together than the period (SPDK's `next_run_tick = now +
//! period`); a paused timed poller gets a fresh deadline (now + period) when resumed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What a poller reports: it did work, or found none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollStatus {
    /// Did work (SPDK_POLLER_BUSY).
    Busy,
    /// Found nothing to do (SPDK_POLLER_IDLE).
    Idle,
}

impl From<bool> for PollStatus {
    fn from(busy: bool) -> PollStatus {
        if busy {
            PollStatus::Busy
        } else {
            PollStatus::Idle
        }
    }
}

/// A poller callback.
pub(crate) type PollFn = Box<dyn FnMut() -> PollStatus + Send + 'static>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Running,
    Paused,
    /// Unregistered while its callback ran; dropped when it returns.
    Unregistered,
}

struct Entry {
    name: String,
    period_tsc: u64,
    period_us: u64,
    state: State,
    /// `None` while the callback runs.
    f: Option<PollFn>,
    /// Bumped whenever the deadline changes; heap items with another epoch are stale.
    epoch: u32,
    keep_awake: bool,
    runs: u64,
    busy: u64,
}

/// A poller's description for statistics (thread_get_pollers).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PollerInfo {
    /// Name given at registration.
    pub name: String,
    /// "running" or "paused".
    pub state: &'static str,
    /// Times run.
    pub run_count: u64,
    /// Times it reported busy.
    pub busy_count: u64,
    /// Period in microseconds (0 = active poller).
    pub period_us: u64,
}

/// The pollers of one thread.
#[derive(Default)]
pub(crate) struct PollerSet {
    slots: Vec<Option<Entry>>,
    gens: Vec<u32>,
    free: Vec<u32>,
    /// Active pollers in registration order; stale pairs are removed after each pass.
    active: Vec<(u32, u32)>,
    /// (deadline, sequence, slot, epoch), earliest first.
    timers: BinaryHeap<Reverse<(u64, u64, u32, u32)>>,
    seq: u64,
    live: usize,
    keep_awake: usize,
}

/// What a finished callback leaves for the caller to drop outside any borrow.
pub(crate) type Dropped = Option<PollFn>;

impl PollerSet {
    /// Number of registered pollers (paused included).
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Whether a running poller asks the reactor not to sleep.
    pub(crate) fn keeps_awake(&self) -> bool {
        self.keep_awake > 0
    }

    fn entry(&mut self, slot: u32, gen: u32) -> Option<&mut Entry> {
        if self.gens.get(slot as usize) != Some(&gen) {
            return None;
        }
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    fn arm(&mut self, slot: u32, deadline: u64) {
        let seq = self.seq;
        self.seq += 1;
        let e = self.slots[slot as usize]
            .as_mut()
            .expect("armed slot exists");
        e.epoch = e.epoch.wrapping_add(1);
        self.timers.push(Reverse((deadline, seq, slot, e.epoch)));
    }

    /// Register a poller; `period_us == 0` makes it active.
    pub(crate) fn register(
        &mut self,
        name: String,
        period_us: u64,
        keep_awake: bool,
        f: PollFn,
        now: u64,
    ) -> (u32, u32) {
        let period_tsc = us_to_tsc(period_us);
        let entry = Entry {
            name,
            period_tsc,
            period_us,
            state: State::Running,
            f: Some(f),
            epoch: 0,
            keep_awake,
            runs: 0,
            busy: 0,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(entry);
                s
            }
            None => {
                self.slots.push(Some(entry));
                self.gens.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        let gen = self.gens[slot as usize];
        self.live += 1;
        if keep_awake {
            self.keep_awake += 1;
        }
        if period_us == 0 {
            self.active.push((slot, gen));
        } else {
            self.arm(slot, now.saturating_add(period_tsc));
        }
        (slot, gen)
    }

    fn free_slot(&mut self, slot: u32) -> Dropped {
        let e = self.slots[slot as usize].take()?;
        self.gens[slot as usize] = self.gens[slot as usize].wrapping_add(1);
        self.free.push(slot);
        self.live -= 1;
        if e.keep_awake && e.state == State::Running {
            self.keep_awake -= 1;
        }
        e.f
    }

    /// Unregister. `Err(())` for a stale handle. The callback is returned for the caller
    /// to drop outside its borrow (`None` when it is running: dropped on return).
    pub(crate) fn unregister(&mut self, slot: u32, gen: u32) -> Result<Dropped, ()> {
        let e = self.entry(slot, gen).ok_or(())?;
        if e.state == State::Unregistered {
            return Err(());
        }
        if e.f.is_none() {
            let awake = e.keep_awake && e.state == State::Running;
            e.state = State::Unregistered;
            e.keep_awake = false;
            if awake {
                self.keep_awake -= 1;
            }
            return Ok(None);
        }
        Ok(self.free_slot(slot))
    }

    /// Pause (a paused poller is not run; pausing twice is fine).
    pub(crate) fn pause(&mut self, slot: u32, gen: u32) -> Result<(), ()> {
        let e = self.entry(slot, gen).ok_or(())?;
        match e.state {
            State::Unregistered => Err(()),
            State::Paused => Ok(()),
            State::Running => {
                e.state = State::Paused;
                // Stale heap items are skipped by epoch.
                e.epoch = e.epoch.wrapping_add(1);
                let awake = e.keep_awake;
                if awake {
                    self.keep_awake -= 1;
                }
                Ok(())
            }
        }
    }

    /// Resume a paused poller (resuming a running one is fine).
    pub(crate) fn resume(&mut self, slot: u32, gen: u32, now: u64) -> Result<(), ()> {
        let e = self.entry(slot, gen).ok_or(())?;
        match e.state {
            State::Unregistered => Err(()),
            State::Running => Ok(()),
            State::Paused => {
                e.state = State::Running;
                let (period, timed, awake) = (e.period_tsc, e.period_us > 0, e.keep_awake);
                if awake {
                    self.keep_awake += 1;
                }
                if timed {
                    self.arm(slot, now.saturating_add(period));
                }
                Ok(())
            }
        }
    }

    /// Number of entries in the active list (stale ones included); with
    /// [`PollerSet::take_active`] this lets the caller walk it while callbacks append.
    pub(crate) fn active_len(&self) -> usize {
        self.active.len()
    }

    /// Take the callback of the `i`th active poller if it is running.
    pub(crate) fn take_active(&mut self, i: usize) -> Option<(u32, u32, PollFn)> {
        let (slot, gen) = *self.active.get(i)?;
        let e = self.entry(slot, gen)?;
        if e.state != State::Running {
            return None;
        }
        let f = e.f.take()?;
        Some((slot, gen, f))
    }

    /// Take the callback of the earliest timed poller whose deadline is at or before
    /// `now`, skipping stale heap items.
    pub(crate) fn take_due(&mut self, now: u64) -> Option<(u32, u32, PollFn)> {
        while let Some(&Reverse((deadline, _, slot, epoch))) = self.timers.peek() {
            if deadline > now {
                return None;
            }
            self.timers.pop();
            let Some(gen) = self.gens.get(slot as usize).copied() else {
                continue;
            };
            let Some(e) = self.entry(slot, gen) else {
                continue;
            };
            if e.epoch != epoch || e.state != State::Running {
                continue;
            }
            if let Some(f) = e.f.take() {
                return Some((slot, gen, f));
            }
        }
        None
    }

    /// Return a callback after its run (started at `started`).
    pub(crate) fn put_back(
        &mut self,
        slot: u32,
        gen: u32,
        f: PollFn,
        status: PollStatus,
        started: u64,
    ) -> Dropped {
        let Some(e) = self.entry(slot, gen) else {
            return Some(f);
        };
        e.runs += 1;
        if status == PollStatus::Busy {
            e.busy += 1;
        }
        match e.state {
            State::Unregistered => {
                e.f = Some(f);
                self.free_slot(slot)
            }
            State::Paused => {
                e.f = Some(f);
                None
            }
            State::Running => {
                e.f = Some(f);
                if e.period_us > 0 {
                    let next = started.saturating_add(e.period_tsc);
                    self.arm(slot, next);
                }
                None
            }
        }
    }

    /// Drop stale pairs from the active list (after a pass).
    pub(crate) fn compact(&mut self) {
        let (slots, gens) = (&self.slots, &self.gens);
        self.active.retain(|&(s, g)| {
            gens.get(s as usize) == Some(&g) && slots.get(s as usize).is_some_and(|e| e.is_some())
        });
    }

    /// Whether any running active poller exists.
    pub(crate) fn has_running_active(&self) -> bool {
        self.active.iter().any(|&(s, g)| {
            self.gens.get(s as usize) == Some(&g)
                && matches!(self.slots.get(s as usize), Some(Some(e)) if e.state == State::Running)
        })
    }

    /// Whether any timed poller may be due (stale heap items count: a false positive
    /// only costs a TSC read).
    pub(crate) fn has_timers(&self) -> bool {
        !self.timers.is_empty()
    }

    /// The earliest live timed deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<u64> {
        while let Some(&Reverse((deadline, _, slot, epoch))) = self.timers.peek() {
            let live = matches!(
                self.slots.get(slot as usize),
                Some(Some(e)) if e.epoch == epoch && e.state == State::Running
            );
            if live {
                return Some(deadline);
            }
            self.timers.pop();
        }
        None
    }

    /// Remove every poller, returning the callbacks to drop (forced thread exit).
    pub(crate) fn drain(&mut self) -> Vec<PollFn> {
        let out = self
            .slots
            .iter_mut()
            .filter_map(|s| s.take().and_then(|e| e.f))
            .collect();
        *self = PollerSet::default();
        out
    }

    /// Descriptions for statistics.
    pub(crate) fn infos(&self) -> Vec<PollerInfo> {
        self.slots
            .iter()
            .flatten()
            .filter(|e| e.state != State::Unregistered)
            .map(|e| PollerInfo {
                name: e.name.clone(),
                state: if e.state == State::Paused {
                    "paused"
                } else {
                    "running"
                },
                run_count: e.runs,
                busy_count: e.busy,
                period_us: e.period_us,
            })
            .collect()
    }
}

/// Microseconds to TSC ticks, rounded up (so a period is never shortened).
pub(crate) fn us_to_tsc(us: u64) -> u64 {
    let hz = u128::from(eal::timer::tsc_hz());
    let t = (u128::from(us) * hz).div_ceil(1_000_000);
    u64::try_from(t).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle() -> PollFn {
        Box::new(|| PollStatus::Idle)
    }

    #[test]
    fn timed_order_and_stale_handles() {
        let mut s = PollerSet::default();
        let a = s.register("a".into(), 20, false, idle(), 0);
        let b = s.register("b".into(), 10, false, idle(), 0);
        assert_eq!(s.take_due(0).map(|x| x.0), None);
        let far = us_to_tsc(1000);
        let (slot, gen, f) = s.take_due(far).unwrap();
        assert_eq!((slot, gen), b, "earliest deadline first");
        assert!(s.put_back(slot, gen, f, PollStatus::Busy, far).is_none());
        let (slot, gen, f) = s.take_due(far).unwrap();
        assert_eq!((slot, gen), a);
        assert!(
            s.unregister(a.0, a.1).unwrap().is_none(),
            "running: dropped on return"
        );
        assert!(s.put_back(slot, gen, f, PollStatus::Idle, far).is_some());
        assert!(s.unregister(a.0, a.1).is_err(), "stale handle refused");
        assert_eq!(s.len(), 1);
        // b's next deadline is its start plus its period.
        assert_eq!(s.next_deadline(), Some(far + us_to_tsc(10)));
        s.pause(b.0, b.1).unwrap();
        assert_eq!(s.next_deadline(), None);
        s.resume(b.0, b.1, far).unwrap();
        assert_eq!(s.next_deadline(), Some(far + us_to_tsc(10)));
        // A new registration reusing b's slot after b goes does not answer to b's handle.
        assert!(s.unregister(b.0, b.1).unwrap().is_some());
        let c = s.register("c".into(), 0, true, idle(), 0);
        assert!(s.keeps_awake());
        assert!(s.pause(b.0, b.1).is_err());
        s.pause(c.0, c.1).unwrap();
        assert!(!s.keeps_awake());
        assert!(
            s.take_active(0).is_none(),
            "paused active poller is not taken"
        );
    }
}
