//! An lvol bdev's data path on the submitting framework thread (SPDK's
//! `bs_channel` I/O): each lvol channel has its own channel of the base bdev, opened
//! from the store's descriptor on that thread; a read or a write whose clusters are
//! all in place is split at cluster boundaries and submitted there, and completes
//! there. Only what needs the metadata goes to the store's worker (which takes the
//! store's lock, so it is serialised with every metadata change): a write touching a
//! cluster the lvol does not own yet (the thin allocation, or the copy from a parent),
//! and any I/O while the lvol is frozen.
//!
//! # The map and the gate
//!
//! [`LvolData`] holds the lvol's [`ClusterMap`], published by whoever changes the
//! metadata under the store's lock, and a gate: each fast-path I/O enters it (taking
//! the map) and leaves it when it completes. A metadata change that moves clusters
//! away from under the map (a snapshot takes the lvol's clusters) freezes the gate
//! first and waits for the I/O inside to drain; I/O arriving meanwhile goes to the
//! worker, where it waits for the store's lock.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use bdev::{BdevIo, BdevIoChannel, IoStatus, IoType};
use framework::ThreadHandle;

use crate::bdev_dev::Open;
use crate::io::{cluster_parts, ClusterMap};

#[derive(Default)]
struct Gate {
    frozen: u32,
    inflight: u64,
}

/// What `bdev_get_bdevs` says of an lvol besides its store: published with the map,
/// so a framework thread never waits for the store's lock (held across base I/O that
/// may need that very thread).
#[derive(Debug, Clone, Default)]
pub(crate) struct LvolFacts {
    pub(crate) thin: bool,
    pub(crate) allocated: u64,
    pub(crate) base_snapshot: Option<String>,
    pub(crate) clones: Vec<String>,
}

/// One lvol's published cluster map and facts, and its I/O gate (see the module docs).
#[derive(Default)]
pub(crate) struct LvolData {
    map: Mutex<Arc<ClusterMap>>,
    facts: Mutex<LvolFacts>,
    gate: Mutex<Gate>,
    drained: Condvar,
}

impl LvolData {
    /// Publish its facts (under the store's lock).
    pub(crate) fn publish_facts(&self, f: LvolFacts) {
        *self.facts.lock().unwrap_or_else(|e| e.into_inner()) = f;
    }

    /// The facts last published.
    pub(crate) fn facts(&self) -> LvolFacts {
        self.facts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Publish the map the metadata says now (under the store's lock).
    pub(crate) fn publish(&self, m: ClusterMap) {
        *self.map.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(m);
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enter the gate for a fast-path I/O: the map, or `None` while frozen.
    fn enter(&self) -> Option<Arc<ClusterMap>> {
        let mut g = self.gate();
        if g.frozen > 0 {
            return None;
        }
        g.inflight += 1;
        Some(self.map.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn leave(&self) {
        let mut g = self.gate();
        g.inflight -= 1;
        if g.inflight == 0 {
            self.drained.notify_all();
        }
    }

    /// Freeze the gate and wait until no fast-path I/O is inside (from an OS thread,
    /// never a framework thread: the I/O completes on those). Undone by [`thaw`](Self::thaw).
    pub(crate) fn freeze(&self) {
        let mut g = self.gate();
        g.frozen += 1;
        while g.inflight > 0 {
            g = self.drained.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Undo one [`freeze`](Self::freeze).
    pub(crate) fn thaw(&self) {
        let mut g = self.gate();
        g.frozen = g.frozen.saturating_sub(1);
    }
}

/// One fast-path request's parts in flight.
struct Op {
    io: Mutex<Option<BdevIo>>,
    left: AtomicUsize,
    ok: AtomicBool,
    /// The whole read's data, filled part by part.
    buf: Mutex<Vec<u8>>,
    read: bool,
    data: Arc<LvolData>,
    th: ThreadHandle,
}

impl Op {
    fn part_done(&self, st: IoStatus, at: usize, v: Option<&[u8]>) {
        if st != IoStatus::Success {
            self.ok.store(false, Ordering::Relaxed);
        } else if let Some(v) = v {
            self.buf.lock().unwrap_or_else(|e| e.into_inner())[at..at + v.len()].copy_from_slice(v);
        }
        // AcqRel: the last part sees the other parts' data and status.
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish();
        }
    }

    fn finish(&self) {
        let Some(io) = self.io.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let ok = self.ok.load(Ordering::Relaxed);
        if ok && self.read {
            io.copy_in(&self.buf.lock().unwrap_or_else(|e| e.into_inner()));
        }
        self.data.leave();
        let st = if ok {
            IoStatus::Success
        } else {
            IoStatus::Failed
        };
        super::vbdev::complete_on(self.th.clone(), io, st);
    }
}

/// What [`try_fast`] did with a request.
pub(crate) enum Fast {
    /// Submitted (or failed) here; it completes on this thread.
    Done,
    /// It needs the metadata: hand it to the store's worker.
    Worker(BdevIo),
}

/// Start `io` on this thread through `base_ch` if its clusters are in place.
pub(crate) fn try_fast(
    data: &Arc<LvolData>,
    base: &Open,
    base_ch: &BdevIoChannel,
    th: &ThreadHandle,
    io: BdevIo,
) -> Fast {
    let t = io.io_type();
    let read = t == IoType::Read;
    if !read && t != IoType::Write && t != IoType::WriteZeroes {
        return Fast::Worker(io);
    }
    let Some(map) = data.enter() else {
        return Fast::Worker(io);
    };
    let (off, units) = (io.offset_blocks(), io.num_blocks());
    let size = map.clusters.len() as u64 * map.units_per_cluster;
    let in_place = off.checked_add(units).is_some_and(|e| e <= size)
        && (read
            || !map.read_only
                && cluster_parts(map.units_per_cluster, off, units)
                    .all(|p| matches!(map.clusters[p.ci], Some((_, true)))));
    if !in_place {
        data.leave();
        return Fast::Worker(io);
    }
    let len = io.len_bytes();
    let usz = len / units.max(1) as usize;
    let mut whole = vec![0u8; len];
    if t == IoType::Write {
        io.copy_out(&mut whole);
    }
    let parts: Vec<_> = cluster_parts(map.units_per_cluster, off, units)
        .filter_map(|p| {
            map.clusters[p.ci].map(|(lba, _)| {
                let at = p.done as usize * usz;
                let dev_lba = lba + p.within * map.blocks_per_unit;
                (at, p.n as usize * usz, dev_lba, p.n * map.blocks_per_unit)
            })
        })
        .collect();
    let op = Arc::new(Op {
        io: Mutex::new(Some(io)),
        // One more than the parts: the submit loop holds it, so no part completing
        // inline finishes the request before every part is out.
        left: AtomicUsize::new(parts.len() + 1),
        ok: AtomicBool::new(true),
        buf: Mutex::new(if read { whole.clone() } else { Vec::new() }),
        read,
        data: data.clone(),
        th: th.clone(),
    });
    {
        let g = base.lock().unwrap_or_else(|e| e.into_inner());
        for (at, n, lba, blocks) in parts {
            let o2 = op.clone();
            let r = match g.as_ref() {
                None => Err(bdev::Error::NotFound("the lvol store's base".into())),
                Some((d, _)) if read => {
                    d.read_buf(base_ch, vec![0u8; n], lba, blocks, move |st, v| {
                        o2.part_done(st, at, Some(&v))
                    })
                }
                Some((d, _)) => d.write_buf(
                    base_ch,
                    whole[at..at + n].to_vec(),
                    lba,
                    blocks,
                    move |st, _| o2.part_done(st, at, None),
                ),
            };
            if let Err(e) = r {
                eal::log_err!("lvol: submitting to the base failed: {e}");
                op.part_done(IoStatus::Failed, 0, None);
            }
        }
    }
    op.part_done(IoStatus::Success, 0, None);
    Fast::Done
}
