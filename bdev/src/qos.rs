//! Per-bdev QoS (SPDK's `bdev_set_qos_limit`): limits on I/Os per second and on
//! bandwidth (total, read, write; MB = 2^20 bytes, as SPDK counts), enforced in time
//! slices of [`TIMESLICE_US`] as SPDK does.
//!
//! # How it is enforced
//!
//! Each limit has a budget per time slice (`limit / 1000` per millisecond) and a
//! shared remaining count. A timed poller on the *QoS thread* (the thread that set the
//! limits) adds one budget per elapsed slice to each remaining count: a token bucket,
//! debt paid first, unused budget carried over up to [`MAX_BURST_SLICES`] budgets.
//! SPDK instead resets the budget every slice; here the queues are drained by pollers
//! of other threads whose timers do not line up with the refill, and a reset would
//! drop budget that a drain had not reached yet. Over any interval T the admitted
//! amount is at most `limit x T`, plus the burst, plus the I/Os admitted on the last
//! unit of budget (one per channel, paid as debt in the next slice).
//!
//! A channel admits a read, write, compare or compare-and-write piece when every limit
//! that applies to it has budget left (> 0), and charges it (one I/O, its bytes);
//! otherwise the piece waits, in order, in the channel's QoS queue, drained by a timed
//! poller of the channel's own thread each slice (registered while the queue is not
//! empty). Charging is one atomic subtraction per limit; two channels racing on the
//! last unit both pass and the debt is paid in the next slice. Other I/O types are not
//! limited. A split request is charged per piece.
//!
//! Unlike SPDK, I/O is not moved to the QoS thread: only the budget is shared, so the
//! data path stays on the submitting thread.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use framework::{poller, thread, PollStatus, Poller, ThreadHandle};

use crate::error::{Error, Result};
use crate::io::IoType;

/// Length of a QoS time slice (SPDK's `SPDK_BDEV_QOS_TIMESLICE_IN_USEC`).
pub const TIMESLICE_US: u64 = 1000;

/// Budgets a limit may hold at once (the largest burst, in slices).
pub const MAX_BURST_SLICES: u64 = 10;

/// I/O-per-second limits must be multiples of this (SPDK's
/// `SPDK_BDEV_QOS_MIN_IOS_PER_SEC`).
pub const MIN_IOS_PER_SEC: u64 = 1000;

/// The four limits SPDK names; 0 = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QosValues {
    /// I/Os per second, reads and writes together.
    pub rw_ios_per_sec: u64,
    /// MB/s, reads and writes together.
    pub rw_mbytes_per_sec: u64,
    /// MB/s of reads.
    pub r_mbytes_per_sec: u64,
    /// MB/s of writes.
    pub w_mbytes_per_sec: u64,
}

const IOS: usize = 0;
const RW_BYTES: usize = 1;
const R_BYTES: usize = 2;
const W_BYTES: usize = 3;

struct PollerSlot {
    thread: ThreadHandle,
    poller: Poller,
}

/// A bdev's limits and their budgets.
#[derive(Default)]
pub struct QosLimits {
    values: Mutex<QosValues>,
    active: AtomicBool,
    /// Budget per slice of each limit (0 = unlimited).
    per_slice: [AtomicI64; 4],
    /// What is left of it in the current slice (may go negative: debt).
    remaining: [AtomicI64; 4],
    poller: Mutex<Option<PollerSlot>>,
}

impl std::fmt::Debug for QosLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QosLimits")
            .field("values", &self.get())
            .finish()
    }
}

impl QosLimits {
    /// The current limits.
    pub fn get(&self) -> QosValues {
        *self.values.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether any limit is set.
    pub fn active(&self) -> bool {
        // Relaxed: a flag read per I/O; the budgets themselves are atomics, and an I/O
        // that reads a stale flag is admitted or queued one slice late at worst.
        self.active.load(Ordering::Relaxed)
    }

    /// Try to admit one I/O of `bytes` of type `t`: charge every applicable limit, or
    /// return false (nothing charged) if one of them has no budget left.
    pub(crate) fn try_admit(&self, t: IoType, bytes: u64) -> bool {
        if !self.active() {
            return true;
        }
        let applies = |i: usize| match i {
            IOS | RW_BYTES => true,
            R_BYTES => matches!(t, IoType::Read | IoType::Compare),
            W_BYTES => matches!(t, IoType::Write | IoType::CompareAndWrite),
            _ => false,
        };
        let limited = |i: usize| applies(i) && self.per_slice[i].load(Ordering::Relaxed) > 0;
        if (0..4).any(|i| limited(i) && self.remaining[i].load(Ordering::Relaxed) <= 0) {
            return false;
        }
        for i in 0..4 {
            if limited(i) {
                let cost = if i == IOS { 1 } else { bytes as i64 };
                self.remaining[i].fetch_sub(cost, Ordering::Relaxed);
            }
        }
        true
    }

    /// Start a new slice (or `n` of them).
    fn refill(&self, n: u64) {
        for i in 0..4 {
            let max = self.per_slice[i].load(Ordering::Relaxed);
            if max == 0 {
                continue;
            }
            let r = self.remaining[i].load(Ordering::Relaxed);
            let add = max.saturating_mul(n.min(MAX_BURST_SLICES) as i64);
            let new = r.saturating_add(add).min(max * MAX_BURST_SLICES as i64);
            self.remaining[i].store(new, Ordering::Relaxed);
        }
    }
}

/// Per-slice budgets of `v`.
fn budgets(v: &QosValues) -> [i64; 4] {
    let per_slice_bytes = |mb: u64| (mb << 20) * TIMESLICE_US / 1_000_000;
    [
        (v.rw_ios_per_sec * TIMESLICE_US / 1_000_000) as i64,
        per_slice_bytes(v.rw_mbytes_per_sec) as i64,
        per_slice_bytes(v.r_mbytes_per_sec) as i64,
        per_slice_bytes(v.w_mbytes_per_sec) as i64,
    ]
}

/// Set the limits `q` of bdev `name` (0 clears one; all 0 turns QoS off), on a
/// framework thread; that thread becomes the QoS thread if QoS was off. The bdev's
/// channels follow the switch on their threads
/// ([`crate::bdev::Bdev::set_qos_limits`] tells them).
pub(crate) fn set_limits(q: &Arc<QosLimits>, name: &str, v: QosValues) -> Result<()> {
    if !v.rw_ios_per_sec.is_multiple_of(MIN_IOS_PER_SEC) {
        return Err(Error::Invalid {
            what: "rw_ios_per_sec",
            why: format!(
                "{} is not a multiple of {MIN_IOS_PER_SEC}",
                v.rw_ios_per_sec
            ),
        });
    }
    for (what, mb) in [
        ("rw_mbytes_per_sec", v.rw_mbytes_per_sec),
        ("r_mbytes_per_sec", v.r_mbytes_per_sec),
        ("w_mbytes_per_sec", v.w_mbytes_per_sec),
    ] {
        if mb > (1 << 40) {
            return Err(Error::Invalid {
                what,
                why: format!("{mb} is too large"),
            });
        }
    }
    let me = thread::current().ok_or(framework::Error::NotOnThread {
        what: "set QoS limits",
    })?;
    let q = q.clone();
    let mut slot = q.poller.lock().unwrap_or_else(|e| e.into_inner());
    *q.values.lock().unwrap_or_else(|e| e.into_inner()) = v;
    let bud = budgets(&v);
    for (i, &x) in bud.iter().enumerate() {
        q.per_slice[i].store(x, Ordering::Relaxed);
        q.remaining[i].store(x, Ordering::Relaxed);
    }
    let on = bud.iter().any(|&x| x > 0);
    q.active.store(on, Ordering::Relaxed);
    if on && slot.is_none() {
        let q2 = q.clone();
        let slice_ticks = (eal::timer::tsc_hz() * TIMESLICE_US / 1_000_000).max(1);
        let mut last = eal::timer::rdtsc();
        let p = poller::register("bdev_qos", TIMESLICE_US, move || {
            let now = eal::timer::rdtsc();
            let n = now.wrapping_sub(last) / slice_ticks;
            if n == 0 {
                return PollStatus::Idle;
            }
            last = last.wrapping_add(n * slice_ticks);
            q2.refill(n);
            PollStatus::Busy
        })?;
        *slot = Some(PollerSlot {
            thread: me,
            poller: p,
        });
    } else if !on {
        if let Some(s) = slot.take() {
            let PollerSlot { thread, poller } = s;
            let r = thread.send_msg(move || {
                let _ = poller.unregister();
            });
            if r.is_err() {
                eal::log_err!("bdev '{name}': QoS thread gone");
            }
        }
    }
    Ok(())
}

/// Stop the QoS poller of a bdev being destroyed.
pub(crate) fn stop(q: &Arc<QosLimits>) {
    q.active.store(false, Ordering::Relaxed);
    if let Some(PollerSlot { thread, poller }) =
        q.poller.lock().unwrap_or_else(|e| e.into_inner()).take()
    {
        let _ = thread.send_msg(move || {
            let _ = poller.unregister();
        });
    }
}
