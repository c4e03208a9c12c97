//! Shadow doorbells (Doorbell Buffer Config, admin opcode 7Ch, NVMe 1.4 section 5.8),
//! which emulated controllers (QEMU's, OACS bit 8) offer so that the host need not trap
//! into the emulator on every doorbell.
//!
//! Two 4 KiB pages of DMA memory: the *shadow doorbell* page, where the host writes
//! every new SQ tail and CQ head, and the *EventIdx* page, where the controller writes,
//! per queue, the value after which it wants to be told through the real (MMIO)
//! doorbell. Queue `y`'s SQ entry is at `(2y) * (4 << CAP.DSTRD)` bytes, its CQ entry at
//! `(2y + 1) * (4 << CAP.DSTRD)`, in both pages (the doorbell registers' layout).
//!
//! The host writes the shadow, then (full fence: the store must be visible before the
//! EventIdx load, a store-load order only a full barrier gives) reads the EventIdx and
//! rings the MMIO doorbell only when the update moves past it: `new - event_idx - 1 <
//! new - old` in 16-bit arithmetic (the rule Linux and SPDK use). The admin queue
//! writes its shadow and always rings (controllers differ on whether they read the
//! admin queue's shadow). The configuration is lost on a controller reset and set again
//! by the bring-up, with both pages zeroed.

use std::sync::atomic::{fence, Ordering};

use eal::device::{Device, DmaBuf};
use eal::Iova;

use crate::error::Result;
use crate::spec::Cap;

/// The two pages. Owned by the controller; never freed while the controller may use
/// them (see [`crate::shared`]'s drop).
pub(crate) struct DbBuf {
    shadow: DmaBuf,
    eventidx: DmaBuf,
    /// Bytes between consecutive doorbells (`4 << DSTRD`).
    stride: u64,
}

// SAFETY: the pages are plain DMA memory accessed only through volatile reads and
// writes of aligned u32 words, each queue's words by that queue's owner.
unsafe impl Send for DbBuf {}
// SAFETY: as above; distinct queues touch distinct words.
unsafe impl Sync for DbBuf {}

impl DbBuf {
    /// Allocate both pages for a controller with `cap`.
    pub fn alloc(dev: &Device, cap: Cap) -> Result<DbBuf> {
        Ok(DbBuf {
            shadow: dev.dma_alloc(4096)?,
            eventidx: dev.dma_alloc(4096)?,
            stride: 4 << cap.dstrd(),
        })
    }

    /// IOVAs for the command's PRP1 (shadow doorbells) and PRP2 (EventIdx).
    pub fn iovas(&self) -> (Iova, Iova) {
        (self.shadow.iova(), self.eventidx.iova())
    }

    /// Zero both pages (before the controller is told about them).
    pub fn clear(&self) {
        for p in [&self.shadow, &self.eventidx] {
            for i in 0..1024 {
                // SAFETY: word i < 1024 of a 4 KiB page we own.
                unsafe { std::ptr::write_volatile(p.as_ptr().cast::<u32>().add(i), 0) };
            }
        }
    }

    /// Queue `qid`'s words, if they fit in the pages.
    pub fn words(&self, qid: u16) -> Option<Shadow> {
        let sq = 2 * u64::from(qid) * self.stride;
        let cq = sq + self.stride;
        if cq + 4 > 4096 {
            return None;
        }
        let at = |b: &DmaBuf, off: u64| b.as_ptr().wrapping_add(off as usize).cast::<u32>();
        Some(Shadow {
            sq_db: at(&self.shadow, sq),
            cq_db: at(&self.shadow, cq),
            sq_ei: at(&self.eventidx, sq),
            cq_ei: at(&self.eventidx, cq),
            always_mmio: qid == 0,
        })
    }
}

/// One queue's shadow doorbell and EventIdx words.
#[derive(Clone, Copy)]
pub(crate) struct Shadow {
    sq_db: *mut u32,
    cq_db: *mut u32,
    sq_ei: *const u32,
    cq_ei: *const u32,
    /// Ring the MMIO doorbell on every update (admin queue).
    always_mmio: bool,
}

impl Shadow {
    /// Words in plain memory `[sq_db, cq_db, sq_ei, cq_ei]` (queue tests).
    #[cfg(test)]
    pub(crate) fn in_memory(w: &mut [u32; 4]) -> Shadow {
        let p = w.as_mut_ptr();
        Shadow {
            sq_db: p,
            cq_db: p.wrapping_add(1),
            sq_ei: p.wrapping_add(2),
            cq_ei: p.wrapping_add(3),
            always_mmio: false,
        }
    }
}

/// Whether moving a doorbell from `old` to `new` passes `event_idx`.
#[inline]
pub(crate) fn need_event(event_idx: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event_idx).wrapping_sub(1) < new.wrapping_sub(old)
}

impl Shadow {
    /// Zero this queue's words (a new or re-created queue starts at 0).
    pub fn reset(&self) {
        for p in [
            self.sq_db,
            self.cq_db,
            self.sq_ei.cast_mut(),
            self.cq_ei.cast_mut(),
        ] {
            // SAFETY: an aligned word of the controller's pages (checked in `words`).
            unsafe { std::ptr::write_volatile(p, 0) };
        }
    }

    /// An I/O queue's words (not the admin queue's, whose values the controller sets).
    pub fn is_io(&self) -> bool {
        !self.always_mmio
    }

    /// Record SQ tail `new`; whether the MMIO doorbell must be written too.
    #[inline]
    pub fn sq(&self, new: u16) -> bool {
        self.update(self.sq_db, self.sq_ei, new)
    }

    /// Record CQ head `new`; whether the MMIO doorbell must be written too.
    #[inline]
    pub fn cq(&self, new: u16) -> bool {
        self.update(self.cq_db, self.cq_ei, new)
    }

    #[inline]
    fn update(&self, db: *mut u32, ei: *const u32, new: u16) -> bool {
        // SAFETY: aligned words of the controller's pages (checked in `words`); the
        // controller reads the shadow and writes the EventIdx, so both are volatile.
        unsafe {
            let old = std::ptr::read_volatile(db) as u16;
            std::ptr::write_volatile(db, u32::from(new));
            // F1: the shadow store must be visible before the EventIdx load (pairs with
            // the controller's EventIdx write after its shadow read): store-load order
            // needs a full fence.
            fence(Ordering::SeqCst);
            let e = std::ptr::read_volatile(ei) as u16;
            self.always_mmio || need_event(e, new, old)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::need_event;

    #[test]
    fn need_event_matches_the_spec_rule() {
        // The controller asked to hear when the tail passes 5.
        assert!(need_event(5, 6, 5), "5 -> 6 passes 5");
        assert!(need_event(5, 9, 3), "3 -> 9 passes 5");
        assert!(
            !need_event(5, 5, 3),
            "3 -> 5 does not pass 5 (5 itself is not past)"
        );
        assert!(!need_event(9, 8, 7), "7 -> 8 is before 9");
        // Across the 16-bit wrap.
        assert!(need_event(65535, 1, 65534));
        assert!(!need_event(2, 1, 65534));
        // No movement never needs an event.
        assert!(!need_event(5, 5, 5));
    }
}
