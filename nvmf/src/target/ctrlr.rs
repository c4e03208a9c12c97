//! Controllers (SPDK's `spdk_nvmf_ctrlr`): made by a Connect on an admin queue
//! (dynamic controller model: the host asks for cntlid 0xffff), joined by the I/O
//! queues' Connects naming the same cntlid, host and subsystem. They hold the
//! properties the host sets (CC, so CSTS follows), the features, the number of I/O
//! queues granted and the keep-alive clock. A controller dies when its admin queue's
//! connection closes, its keep-alive timer expires or its subsystem is deleted; the
//! poll groups then close its I/O queues' connections.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::subsys::Subsys;
use super::{now_ms, tgt, TransportOpts};
use crate::spec::fabrics::prop;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// NVMe version the target reports (1.3: Identify descriptors, keep-alive).
pub const VERSION: u32 = 0x0001_0300;

/// CC fields (NVMe 1.4 figure 78).
const CC_EN: u32 = 1;
const CC_SHN_MASK: u32 = 0x3 << 14;
/// CSTS fields (figure 79).
const CSTS_RDY: u32 = 1;
const CSTS_SHST_COMPLETE: u32 = 0x2 << 2;

/// A controller.
pub struct Ctrlr {
    /// Controller id.
    pub cntlid: u16,
    /// Its subsystem.
    pub subsys: Arc<Subsys>,
    /// The host's NQN.
    pub hostnqn: String,
    /// The host's id.
    pub hostid: [u8; 16],
    /// The transport's limits.
    pub opts: TransportOpts,
    kato_ms: AtomicU32,
    last_ka_ms: AtomicU64,
    regs: Mutex<(u32, u32)>,
    io_queues: AtomicU32,
    io_qids: Mutex<HashSet<u16>>,
    features: Mutex<HashMap<u8, u32>>,
    dead: AtomicBool,
}

impl Ctrlr {
    pub(crate) fn new(
        cntlid: u16,
        subsys: Arc<Subsys>,
        hostnqn: String,
        hostid: [u8; 16],
        kato_ms: u32,
        opts: TransportOpts,
    ) -> Ctrlr {
        Ctrlr {
            cntlid,
            subsys,
            hostnqn,
            hostid,
            opts,
            kato_ms: AtomicU32::new(kato_ms),
            last_ka_ms: AtomicU64::new(now_ms()),
            regs: Mutex::new((0, 0)),
            io_queues: AtomicU32::new(u32::from(opts.max_io_qpairs_per_ctrlr)),
            io_qids: Mutex::new(HashSet::new()),
            features: Mutex::new(HashMap::new()),
            dead: AtomicBool::new(false),
        }
    }

    /// Whether it is gone (its queues' connections close).
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire) || self.subsys.is_deleted()
    }

    /// Tear it down: leave the target's table, and let every queue close.
    pub(crate) fn kill(&self, why: &str) {
        if !self.dead.swap(true, Ordering::AcqRel) {
            eal::log_info!(
                "nvmf: controller {} of {} (host {}) gone: {why}",
                self.cntlid,
                self.subsys.nqn,
                self.hostnqn
            );
        }
        lock(&tgt().ctrlrs).remove(&self.cntlid);
    }

    /// Keep-alive timeout in ms (0: none).
    pub fn kato_ms(&self) -> u32 {
        self.kato_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn set_kato_ms(&self, v: u32) {
        self.kato_ms.store(v, Ordering::Relaxed);
    }

    /// The host showed it is alive.
    pub(crate) fn keep_alive(&self) {
        self.last_ka_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Whether the keep-alive timer expired at `now` (ms).
    pub(crate) fn ka_expired(&self, now: u64) -> bool {
        let k = u64::from(self.kato_ms());
        // A grace of one timeout more than the spec's minimum: the host sends keep
        // alive at half the timeout, and our timer checks only every 100 ms.
        k != 0 && now.saturating_sub(self.last_ka_ms.load(Ordering::Relaxed)) > k + 500
    }

    /// I/O queues granted (Set Features Number of Queues).
    pub fn io_queues(&self) -> u32 {
        self.io_queues.load(Ordering::Relaxed)
    }

    pub(crate) fn grant_io_queues(&self, want: u32) -> u32 {
        let n = want.clamp(1, u32::from(self.opts.max_io_qpairs_per_ctrlr));
        self.io_queues.store(n, Ordering::Relaxed);
        n
    }

    /// Claim I/O queue `qid`; false if out of range or taken.
    pub(crate) fn add_io_queue(&self, qid: u16) -> bool {
        u32::from(qid) <= self.io_queues() && lock(&self.io_qids).insert(qid)
    }

    pub(crate) fn remove_io_queue(&self, qid: u16) {
        lock(&self.io_qids).remove(&qid);
    }

    /// A feature's current value.
    pub(crate) fn feature(&self, fid: u8) -> u32 {
        lock(&self.features).get(&fid).copied().unwrap_or(0)
    }

    pub(crate) fn set_feature(&self, fid: u8, v: u32) {
        lock(&self.features).insert(fid, v);
    }

    /// Property Get (NVMe over Fabrics 1.1 section 3.4): `None` for an unknown offset
    /// or size.
    pub fn get_property(&self, offset: u32, eight: bool) -> Option<u64> {
        let (cc, csts) = *lock(&self.regs);
        match (offset, eight) {
            (prop::CAP, true) => {
                let mqes = u64::from(self.opts.max_queue_depth - 1);
                // MQES, CQR (contiguous queues required), TO = 15 s in 500 ms units,
                // CSS bit 37 (NVM command set), MPSMIN = MPSMAX = 0 (4 KiB).
                Some(mqes | 1 << 16 | 30 << 24 | 1 << 37)
            }
            (prop::VS, false) => Some(u64::from(VERSION)),
            (prop::CC, false) => Some(u64::from(cc)),
            (prop::CSTS, false) => Some(u64::from(csts)),
            _ => None,
        }
    }

    /// Property Set: only CC is writable. Enabling sets CSTS.RDY, a shutdown request
    /// completes at once.
    pub fn set_property(&self, offset: u32, eight: bool, value: u64) -> bool {
        if offset != prop::CC || eight {
            return false;
        }
        let v = value as u32;
        let mut r = lock(&self.regs);
        let (old, mut csts) = *r;
        if v & CC_EN != 0 && old & CC_EN == 0 {
            csts |= CSTS_RDY;
        }
        if v & CC_EN == 0 && old & CC_EN != 0 {
            csts &= !CSTS_RDY;
        }
        if v & CC_SHN_MASK != 0 {
            csts |= CSTS_SHST_COMPLETE;
        } else {
            csts &= !(0x3 << 2);
        }
        *r = (v, csts);
        true
    }
}
