//! Finding the objects that are out of a pool, for a process that must take back what a
//! dead process held (the primary after a secondary was killed mid-burst): at quiescence
//! every object that is neither in the backend nor in an lcore cache is held by someone,
//! and if the caller knows no live thread holds any, those are the dead ones'.

use std::collections::HashSet;

use eal::VirtAddr;

use crate::cache::BulkBackend;
use crate::{Error, Pool, Result};

impl Pool {
    /// Every object that is out of the pool right now: in neither the backend nor any
    /// lcore cache (objects in user caches count as out). The backend is drained and
    /// refilled to list its contents.
    ///
    /// # Safety
    /// No thread of any process gets from or puts to the pool, or uses one of its caches,
    /// during the call.
    pub unsafe fn objects_out(&self) -> Result<Vec<VirtAddr>> {
        let n = self.backend.count() as usize;
        let mut free = vec![VirtAddr(0); n];
        if n > 0 && !self.backend.dequeue(&mut free) {
            return Err(Error::Backend {
                op: "list the free objects of",
                ops: self.ops_name(),
                name: self.name.clone(),
                why: format!("could not take the {n} objects it counts"),
            });
        }
        if n > 0 && !self.backend.enqueue(&free) {
            return Err(Error::Backend {
                op: "list the free objects of",
                ops: self.ops_name(),
                name: self.name.clone(),
                why: format!("could not put back the {n} objects it held"),
            });
        }
        let mut set: HashSet<VirtAddr> = free.into_iter().collect();
        for c in self.lcore_caches() {
            // SAFETY: the caller guarantees no thread uses the caches now.
            unsafe {
                c.for_each(|o| {
                    set.insert(o);
                })
            };
        }
        let mut out = Vec::new();
        self.obj_iter(|_, o| {
            if !set.contains(&o) {
                out.push(o);
            }
        });
        // Debug builds: an object whose holder died inside a put may already carry the
        // "free" cookie without being in the pool; it is out, so it is marked in use, and
        // the put that takes it back checks it like any other.
        #[cfg(debug_assertions)]
        for &o in &out {
            // SAFETY: one of our slots, nobody uses it (caller's contract). An object
            // already marked in use (or smashed, reported by the later put) is left as is.
            let _ = unsafe {
                crate::layout::check_and_flip(
                    o,
                    self.addr,
                    self.elt_size,
                    crate::layout::COOKIE_FREE,
                    crate::layout::COOKIE_USED,
                )
            };
        }
        Ok(out)
    }
}
