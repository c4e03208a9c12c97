//! The controller state shared by every [`crate::Controller`] handle and every queue
//! pair: register access, the admin queue behind its mutex, the reset generation,
//! device-gone state, identify data, and I/O queue id allocation.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use eal::Eal;

use crate::admin::Admin;
use crate::dbbuf::DbBuf;
use crate::error::{Error, Result};
use crate::hw::Hw;
use crate::init::{bring_up, ControllerOptions};
use crate::namespace::Namespace;
use crate::prp::IovaMapper;
use crate::queue::QueueCore;
use crate::spec::{admin_opc, csts, reg, IdentifyController, Sqe};

/// Values of [`Shared::state`].
pub(crate) const STATE_READY: u16 = 0;
pub(crate) const STATE_RESETTING: u16 = 1;
pub(crate) const STATE_FAILED: u16 = 2;

pub(crate) struct Shared {
    pub hw: Hw,
    pub eal: Eal,
    pub admin: Mutex<Admin>,
    pub generation: AtomicU64,
    pub state: AtomicU16,
    pub gone: AtomicBool,
    pub gone_why: Mutex<Option<String>>,
    pub cdata: Box<IdentifyController>,
    pub namespaces: Vec<Namespace>,
    pub granted: AtomicU16,
    pub qids: Mutex<Vec<bool>>,
    pub max_xfer: u64,
    /// Shadow doorbell pages (allocated at open; used while `dbbuf_on`).
    pub dbbuf: Option<DbBuf>,
    pub dbbuf_on: AtomicBool,
    pub opts: ControllerOptions,
    pub mapper: Arc<dyn IovaMapper>,
    pub vs: u32,
}

impl Shared {
    pub fn admin(&self) -> MutexGuard<'_, Admin> {
        self.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn mark_gone(&self, why: &str) {
        let mut g = self.gone_why.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            eal::log_err!("nvme {}: device gone: {why}", self.hw.addr);
            *g = Some(why.to_string());
        }
        self.gone.store(true, Ordering::Release);
    }

    pub fn gone_error(&self) -> Error {
        let why = self
            .gone_why
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        Error::DeviceGone {
            addr: self.hw.addr.clone(),
            why,
        }
    }

    /// Record `e` if it says the device is gone; return it.
    pub fn note(&self, e: Error) -> Error {
        if let Error::DeviceGone { why, .. } = &e {
            self.mark_gone(why);
        }
        e
    }

    pub fn create_io_queues(&self, admin: &mut Admin, q: &QueueCore) -> Result<()> {
        let t = self.opts.admin_timeout;
        let size = (q.entries() as u32 - 1) << 16;
        let mut c = Sqe::new(admin_opc::CREATE_CQ, 0, 0);
        c.prp1 = q.cq_iova().0;
        c.cdw10 = size | q.qid as u32;
        c.cdw11 = 1; // PC: physically contiguous; IEN = 0 (polled)
        admin.exec(&self.hw, c, None, t)?;
        let mut s = Sqe::new(admin_opc::CREATE_SQ, 0, 0);
        s.prp1 = q.sq_iova().0;
        s.cdw10 = size | q.qid as u32;
        s.cdw11 = ((q.qid as u32) << 16) | 1; // CQID, PC, QPRIO urgent/RR (0)
        if let Err(e) = admin.exec(&self.hw, s, None, t) {
            let mut d = Sqe::new(admin_opc::DELETE_CQ, 0, 0);
            d.cdw10 = q.qid as u32;
            let _ = admin.exec(&self.hw, d, None, t);
            return Err(e);
        }
        Ok(())
    }

    /// Queue `qid`'s shadow doorbell words, if shadow doorbells are on.
    pub fn shadow_words(&self, qid: u16) -> Option<crate::dbbuf::Shadow> {
        if !self.dbbuf_on.load(Ordering::Acquire) {
            return None;
        }
        self.dbbuf.as_ref().and_then(|d| d.words(qid))
    }

    pub fn release_qid(&self, qid: u16) {
        let mut q = self.qids.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = q.get_mut(qid as usize - 1) {
            *s = false;
        }
    }

    /// Reset unless another reset already moved the generation past `seen`.
    pub fn reset_from(&self, seen: Option<u64>) -> Result<()> {
        let mut admin = self.admin();
        if let Some(g) = seen {
            if self.generation.load(Ordering::Acquire) != g {
                return Ok(()); // someone else reset already
            }
        }
        if self.gone.load(Ordering::Acquire) {
            return Err(self.gone_error());
        }
        if let Err(e) = self.hw.dev.check_alive() {
            self.mark_gone(&e.to_string());
            return Err(self.gone_error());
        }
        self.state.store(STATE_RESETTING, Ordering::Release);
        // R2: publishes "the device queues are gone"; pairs with A2 in QPair::sync.
        self.generation.fetch_add(1, Ordering::AcqRel);
        eal::log_notice!("nvme {}: resetting the controller", self.hw.addr);
        let r = bring_up(&self.hw, &mut admin, &self.opts, false, self.dbbuf.as_ref());
        match r {
            Ok(up) => {
                if up.cdata.serial() != self.cdata.serial() {
                    eal::log_warn!(
                        "nvme {}: serial changed across reset ({} -> {})",
                        self.hw.addr,
                        self.cdata.serial(),
                        up.cdata.serial()
                    );
                }
                self.granted.store(up.granted, Ordering::Release);
                self.dbbuf_on.store(up.dbbuf_on, Ordering::Release);
                self.state.store(STATE_READY, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                let e = self.note(e);
                self.state.store(STATE_FAILED, Ordering::Release);
                Err(e)
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.gone.load(Ordering::Acquire) {
            // The device may not be stopped: keep the admin queue memory and the shadow
            // doorbell pages (it writes EventIdx there).
            if let Ok(a) = self.admin.get_mut() {
                a.q.leak_memory();
            }
            std::mem::forget(self.dbbuf.take());
            return;
        }
        // Disable so the device stops using the admin queue memory we are about to free.
        let _ = self.hw.bar.write32(reg::CC, 0);
        let _ = self
            .hw
            .wait_csts("disable the controller", true, |v| v & csts::RDY == 0);
    }
}
