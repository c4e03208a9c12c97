//! RAID I/O on one thread: the channel (this thread's channel to each operational
//! base), RAID0's one-base requests and per-base ranges, RAID1's reads from one mirror
//! (another one if it fails) and writes to every mirror.
//!
//! # Buffers
//!
//! Children carry the parent's iovecs; the parent completes only after its last child
//! did (or a child could not be submitted and none is in flight), so the buffers the
//! parent's submitter lent stay lent for as long as any child uses them.
//!
//! # Statuses of a fan-out
//!
//! A child failing on a base that has been removed meanwhile does not fail a RAID1
//! write: the other mirrors hold the data. Otherwise the first failure wins; a child
//! that could not be submitted for lack of I/O objects makes the parent
//! [`IoStatus::NoMem`], and the layer resubmits it whole (rewriting every mirror is
//! harmless). A fan-out with no child succeeding fails.

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use crate::bdev::ModuleChannel;
use crate::desc::{BdevIoChannel, Descriptor};
use crate::error::Error;
use crate::io::{BdevIo, IoStatus, IoType, IoVec};
use crate::modules::raid::layout::{raid0_map, raid0_ranges};
use crate::modules::raid::{RaidLevel, RaidShared};
use crate::modules::vbdev::{self, Child};

/// This thread's channel to one base.
pub(crate) struct BaseCh {
    pub(crate) desc: Arc<Descriptor>,
    pub(crate) ch: BdevIoChannel,
}

/// One thread's channels to the bases, by base index (`None` once removed). Shared
/// with the array, which empties a slot from a message on this thread when its base
/// goes away.
pub(crate) type ChanBases = Mutex<Vec<Option<BaseCh>>>;

pub(crate) struct RaidChannel {
    pub(crate) shared: Arc<RaidShared>,
    pub(crate) bases: Arc<ChanBases>,
    /// Where the next RAID1 read starts looking (round robin over the mirrors).
    pub(crate) next_read: Cell<usize>,
}

/// A base's channel handle, taken out of the lock (children are submitted without
/// holding it: a base may complete inline, and the completion may look again).
fn base_ch(bases: &ChanBases, i: usize) -> Option<(Arc<Descriptor>, BdevIoChannel)> {
    let g = bases.lock().unwrap_or_else(|e| e.into_inner());
    let b = g.get(i)?.as_ref()?;
    Some((b.desc.clone(), b.ch.try_clone()?))
}

impl ModuleChannel for RaidChannel {
    fn submit(&self, io: BdevIo) {
        match (self.shared.level, io.io_type()) {
            (RaidLevel::Raid0, IoType::Read | IoType::Write) => self.raid0_rw(io),
            (RaidLevel::Raid1, IoType::Read) => {
                let n = self.shared.bases.len();
                let start = self.next_read.get();
                self.next_read.set((start + 1) % n);
                raid1_read(self.shared.clone(), self.bases.clone(), io, start, 0);
            }
            _ => self.fan_out(io),
        }
    }
}

impl RaidChannel {
    /// A RAID0 read or write: the layer split it at strip boundaries, so it lives on
    /// one base.
    fn raid0_rw(&self, io: BdevIo) {
        let sb = self.shared.strip_blocks;
        let n = self.shared.bases.len();
        let (first, last) = (io.offset_blocks(), io.offset_blocks() + io.num_blocks() - 1);
        if first / sb != last / sb {
            // Not reachable: the bdev's optimal I/O boundary is the strip.
            eal::log_err!("raid0: request {first}..={last} crosses a strip of {sb} blocks");
            return io.complete(IoStatus::Failed);
        }
        let (b, blba) = raid0_map(first, sb, n);
        let Some((d, ch)) = base_ch(&self.bases, b) else {
            return io.complete(IoStatus::Failed);
        };
        vbdev::forward(&d, &ch, io, blba);
    }

    /// Write-type requests (and RAID0's unmap, write-zeroes, flush), resets: one child
    /// per operational base (RAID1: the same blocks; RAID0: that base's share).
    fn fan_out(&self, io: BdevIo) {
        let sh = &self.shared;
        let n = sh.bases.len();
        let t = io.io_type();
        let mut targets: Vec<(usize, u64, u64)> = match (sh.level, t) {
            (_, IoType::Reset) => (0..n).map(|i| (i, 0, 0)).collect(),
            (RaidLevel::Raid1, _) => (0..n)
                .map(|i| (i, io.offset_blocks(), io.num_blocks()))
                .collect(),
            (RaidLevel::Raid0, _) => {
                raid0_ranges(io.offset_blocks(), io.num_blocks(), sh.strip_blocks, n)
            }
        };
        targets.retain(|&(i, _, _)| !sh.is_removed(i));
        let chans: Vec<_> = targets
            .iter()
            .filter_map(|&(i, off, cnt)| base_ch(&self.bases, i).map(|c| (i, off, cnt, c)))
            .collect();
        if chans.is_empty() {
            return io.complete(IoStatus::Failed);
        }
        let iovs: Vec<IoVec> = io.iovs().to_vec();
        let cmp: Vec<IoVec> = io.compare_iovs().to_vec();
        // Counted in full before the first submission: a child may complete inline.
        let fan = Arc::new(Mutex::new(FanOut {
            left: chans.len(),
            status: IoStatus::Success,
            ok: 0,
            io: Some(io),
        }));
        for (i, off, cnt, (d, ch)) in chans {
            let c = Child {
                io_type: t,
                offset_blocks: off,
                num_blocks: cnt,
                iovs: &iovs,
                cmp_iovs: &cmp,
            };
            let (f2, sh2, d2) = (fan.clone(), self.shared.clone(), d.clone());
            // SAFETY: the parent completes only when the last child is accounted
            // (`child_done`), after this child's callback or its failed submission.
            let r = unsafe {
                c.submit(&d, &ch, move |st| {
                    let gone = sh2.is_removed(i) || d2.bdev().is_removing();
                    child_done(&f2, &sh2, gone, st)
                })
            };
            if let Err(e) = r {
                // A base being removed refuses new I/O before its remove event
                // reaches the array.
                let gone = matches!(e, Error::Removed { .. }) || self.shared.is_removed(i);
                child_done(&fan, &self.shared, gone, vbdev::submit_error_status(&e));
            }
        }
    }
}

struct FanOut {
    left: usize,
    status: IoStatus,
    ok: usize,
    io: Option<BdevIo>,
}

/// Account one child of a fan-out (`gone`: its base is being removed); the last one
/// completes the parent.
fn child_done(fan: &Mutex<FanOut>, sh: &RaidShared, gone: bool, st: IoStatus) {
    let done = {
        let mut f = fan.lock().unwrap_or_else(|e| e.into_inner());
        f.left -= 1;
        match st {
            IoStatus::Success => f.ok += 1,
            // A mirror that went away holds nothing we need.
            _ if sh.level == RaidLevel::Raid1 && gone => {}
            IoStatus::NoMem => {
                if f.status == IoStatus::Success {
                    f.status = IoStatus::NoMem;
                }
            }
            _ => {
                if matches!(f.status, IoStatus::Success | IoStatus::NoMem) {
                    f.status = st;
                }
            }
        }
        if f.left > 0 {
            None
        } else {
            let s = match f.status {
                IoStatus::Success if f.ok == 0 => IoStatus::Failed,
                s => s,
            };
            f.io.take().map(|io| (io, s))
        }
    };
    if let Some((io, s)) = done {
        io.complete(s);
    }
}

/// A RAID1 read from the first usable mirror at or after `start`; on failure the next
/// one is tried, until every mirror was (`tried` counts them).
fn raid1_read(sh: Arc<RaidShared>, bases: Arc<ChanBases>, io: BdevIo, start: usize, tried: usize) {
    let n = sh.bases.len();
    let mut k = tried;
    let pick = loop {
        if k >= n {
            break None;
        }
        let i = (start + k) % n;
        k += 1;
        if sh.is_removed(i) {
            continue;
        }
        if let Some(c) = base_ch(&bases, i) {
            break Some((i, c));
        }
    };
    let Some((_i, (d, ch))) = pick else {
        return io.complete(IoStatus::Failed);
    };
    let iovs: Vec<IoVec> = io.iovs().to_vec();
    let c = Child {
        io_type: IoType::Read,
        offset_blocks: io.offset_blocks(),
        num_blocks: io.num_blocks(),
        iovs: &iovs,
        cmp_iovs: &[],
    };
    let slot = Arc::new(Mutex::new(Some(io)));
    let s2 = slot.clone();
    let (sh2, b2) = (sh.clone(), bases.clone());
    // SAFETY: the parent completes only from this callback (or a retry's), or below
    // after the submission failed.
    let r = unsafe {
        c.submit(&d, &ch, move |st| {
            let Some(io) = s2.lock().unwrap_or_else(|e| e.into_inner()).take() else {
                return;
            };
            if st == IoStatus::Success || k >= n {
                io.complete(st);
            } else {
                raid1_read(sh2, b2, io, start, k);
            }
        })
    };
    if let Err(e) = r {
        if let Some(io) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
            match vbdev::submit_error_status(&e) {
                IoStatus::NoMem => io.complete(IoStatus::NoMem),
                _ => raid1_read(sh, bases, io, start, k),
            }
        }
    }
}
