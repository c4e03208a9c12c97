//! Debug-build object checks: every get marks its objects "in use", every put checks
//! that each object is one of the pool's, is in use, and has both cookies intact, then
//! marks it "free" (see [`crate::layout`] for where the cookies sit). A bulk with one bad
//! object is refused whole. Release builds compile none of this.

use eal::VirtAddr;

use crate::layout::{self, CookieFault, COOKIE_FREE, COOKIE_USED};
use crate::{Error, Pool, Result};

impl Pool {
    /// Check `obj`'s cookies and flip its header cookie from `from` to `to`.
    ///
    /// # Safety
    /// `obj` is one of this pool's object slots, not checked by another thread now.
    unsafe fn flip(
        &self,
        obj: VirtAddr,
        from: u64,
        to: u64,
    ) -> core::result::Result<(), CookieFault> {
        // SAFETY: forwarded: a slot of this pool, laid out for `elt_size`.
        unsafe { layout::check_and_flip(obj, self.addr, self.elt_size, from, to) }
    }

    /// Undo a successful mark of every object in `objs`: back from `to` to `from`.
    ///
    /// # Safety
    /// Every object was just flipped from `from` to `to` by this thread.
    unsafe fn unflip(&self, objs: &[VirtAddr], from: u64, to: u64) {
        for &o in objs {
            // SAFETY: forwarded; the flip back cannot fail (we just wrote `to`), so the
            // result carries nothing.
            let _ = unsafe { self.flip(o, to, from) };
        }
    }

    /// Mark objects just taken from the backend or a cache "in use". On a bad object,
    /// puts the others back and refuses the get (the bad object stays out of the pool).
    pub(crate) fn debug_mark_used(&self, objs: &[VirtAddr]) -> Result<()> {
        for (i, &o) in objs.iter().enumerate() {
            // SAFETY: the object came from our backend or cache, so it is one of our slots.
            if let Err(f) = unsafe { self.flip(o, COOKIE_FREE, COOKIE_USED) } {
                // SAFETY: `objs[..i]` were flipped just above.
                unsafe { self.unflip(&objs[..i], COOKIE_FREE, COOKIE_USED) };
                let good: Vec<VirtAddr> = objs.iter().copied().filter(|&p| p != o).collect();
                // Best effort: a failure here means the backend is corrupt as well; the
                // error below already reports the pool as broken.
                let _ = crate::cache::BulkBackend::enqueue(&self.backend, &good);
                return Err(self.fault_error("get", o, f));
            }
        }
        Ok(())
    }

    /// Check objects being put back and mark them "free"; none is marked if one fails.
    pub(crate) fn debug_mark_free(&self, objs: &[VirtAddr]) -> Result<()> {
        for (i, &o) in objs.iter().enumerate() {
            let r = if self.contains(o) {
                // SAFETY: `contains` proved it is one of our slots.
                unsafe { self.flip(o, COOKIE_USED, COOKIE_FREE) }
            } else {
                Err(CookieFault::Foreign)
            };
            if let Err(f) = r {
                // SAFETY: `objs[..i]` were flipped just above.
                unsafe { self.unflip(&objs[..i], COOKIE_USED, COOKIE_FREE) };
                return Err(self.fault_error("put", o, f));
            }
        }
        Ok(())
    }

    /// Undo [`Pool::debug_mark_free`] for a put the backend refused: the objects stay
    /// with the caller, in use.
    pub(crate) fn debug_unmark_free(&self, objs: &[VirtAddr]) {
        // SAFETY: `debug_mark_free` flipped every object of this put.
        unsafe { self.unflip(objs, COOKIE_USED, COOKIE_FREE) }
    }

    fn fault_error(&self, op: &'static str, addr: VirtAddr, f: CookieFault) -> Error {
        let name = self.name.clone();
        let corrupted = |which, found| Error::Corrupted {
            op,
            name: self.name.clone(),
            addr,
            which,
            found,
        };
        match f {
            CookieFault::Foreign => Error::ForeignObject { name, addr },
            CookieFault::DoubleFree => Error::DoubleFree { name, addr },
            CookieFault::NotFree => {
                corrupted("header (object in use while in the free list)", COOKIE_USED)
            }
            CookieFault::HeaderSmashed(v) => corrupted("header", v),
            CookieFault::TrailerSmashed(v) => corrupted("trailer", v),
        }
    }
}
