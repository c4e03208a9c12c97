//! Controllers (SPDK's `spdk_nvmf_ctrlr`): made by a Connect on an admin queue
//! (dynamic controller model: the host asks for cntlid 0xffff), joined by the I/O
//! queues' Connects naming the same cntlid, host and subsystem. They hold the
//! properties the host sets (CC, so CSTS follows), the features, the number of I/O
//! queues granted and the keep-alive clock. A controller dies when its admin queue's
//! connection closes, its keep-alive timer expires or its subsystem is deleted; the
//! poll groups then close its I/O queues' connections.
//!
//! Asynchronous events (NVMe 1.4 section 5.2): when its subsystem's namespaces
//! change and the host enabled Namespace Attribute Notices (Set Features 0Bh bit 8),
//! the controller owes one notice, answered on a held Asynchronous Event Request by
//! its admin queue's connection. The notice type is then masked until the host reads
//! the Changed Namespace List (log page 04h) without Retain Asynchronous Event.

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

/// Asynchronous Event Configuration feature id and its Namespace Attribute Notices
/// bit (figure 290); also the bit in Identify Controller OAES (figure 247).
pub(crate) const FEAT_ASYNC_EVENT_CONFIG: u8 = 0x0b;
pub(crate) const AEN_NS_ATTR: u32 = 1 << 8;
/// Completion dword 0 of the Namespace Attribute Changed notice (figure 146): type
/// Notice (2h), information 00h (bits 15:8 zero), log page 04h.
pub const AEN_NS_CHANGED_DW0: u32 = 0x02 | 0x04 << 16;

/// Where the host stands with namespace notices.
struct AenState {
    /// The subsystem's namespace generation the host last read the log up to.
    log_gen: u64,
    /// A notice went out and the host has not read the log since.
    masked: bool,
}

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
    aen: Mutex<AenState>,
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
        let log_gen = subsys.ns_gen();
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
            aen: Mutex::new(AenState {
                log_gen,
                masked: false,
            }),
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

    /// The Namespace Attribute Changed notice, if one is owed now: namespaces changed
    /// since the host last read the log, notices enabled and not masked. Taking it
    /// masks further notices until the log is read.
    pub(crate) fn take_ns_notice(&self) -> Option<u32> {
        if self.feature(FEAT_ASYNC_EVENT_CONFIG) & AEN_NS_ATTR == 0 {
            return None;
        }
        let mut a = lock(&self.aen);
        if a.masked || self.subsys.ns_gen() <= a.log_gen {
            return None;
        }
        a.masked = true;
        Some(AEN_NS_CHANGED_DW0)
    }

    /// The Changed Namespace List log page (figure 205: up to 1024 NSIDs, zero
    /// filled; 0xffffffff first when more changed). Unless `retain` (RAE), reading it
    /// clears the list and unmasks the notice.
    pub(crate) fn changed_ns_log(&self, retain: bool) -> Vec<u8> {
        let mut a = lock(&self.aen);
        let ch = self.subsys.changed_since(a.log_gen);
        let mut page = vec![0u8; 4096];
        if ch.overflow {
            page[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        } else {
            for (slot, n) in page.chunks_exact_mut(4).zip(&ch.nsids) {
                slot.copy_from_slice(&n.to_le_bytes());
            }
        }
        if !retain {
            a.log_gen = ch.gen;
            a.masked = false;
        }
        page
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
