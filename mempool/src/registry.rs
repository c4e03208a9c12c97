//! Process-local registry: a pool header's address to this process's view of the pool.
//!
//! An object's header records its pool as the header's EAL address; freeing an object
//! (an mbuf, say) finds the process's view through this table ([`Pool::from_addr`]).
//! Lookups are lock-free; inserts and removals take a lock.
//!
//! [`Pool::from_addr`]: crate::Pool::from_addr

use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::Mutex;

use eal::VirtAddr;

/// Entries of the table: the most pools one process can have attached.
pub(crate) const REG_SLOTS: usize = 256;

struct RegSlot<T> {
    addr: AtomicU64,
    entry: AtomicPtr<T>,
}

/// An open-addressing table from header address to a leaked, never-freed `T`.
pub(crate) struct Registry<T: 'static> {
    slots: [RegSlot<T>; REG_SLOTS],
    /// Serialises inserts and removals (lookups are lock-free).
    lock: Mutex<()>,
}

/// The table is full.
#[derive(Debug)]
pub(crate) struct RegistryFull;

impl<T: 'static> Registry<T> {
    pub(crate) const fn new() -> Registry<T> {
        Registry {
            slots: [const {
                RegSlot {
                    addr: AtomicU64::new(0),
                    entry: AtomicPtr::new(core::ptr::null_mut()),
                }
            }; REG_SLOTS],
            lock: Mutex::new(()),
        }
    }

    fn start(addr: VirtAddr) -> usize {
        ((addr.0 >> 7) as usize).wrapping_mul(0x9E37_79B9) % REG_SLOTS
    }

    fn probe(&self, addr: VirtAddr) -> impl Iterator<Item = &RegSlot<T>> {
        let start = Self::start(addr);
        (0..REG_SLOTS).map(move |i| &self.slots[(start + i) % REG_SLOTS])
    }

    /// Lock-free lookup. Slots are never emptied once used (a removed entry leaves its
    /// address with a null pointer), so a probe chain is never broken.
    pub(crate) fn find(&self, addr: VirtAddr) -> Option<&'static T> {
        for s in self.probe(addr) {
            // R1 (acquire): pairs with R2; a slot's address is published after its pointer.
            let a = s.addr.load(Ordering::Acquire);
            if a == 0 {
                return None;
            }
            if a == addr.0 {
                // R3 (acquire): pairs with R4, so the `T` behind the pointer is initialised.
                let p = s.entry.load(Ordering::Acquire);
                // SAFETY: non-null pointers in the registry come from `insert`, whose
                // caller passes a `&'static T` (leaked, never deallocated).
                return (!p.is_null()).then(|| unsafe { &*p });
            }
        }
        None
    }

    /// Record `entry` under `addr` (replacing an entry of the same address).
    pub(crate) fn insert(&self, addr: VirtAddr, entry: &'static T) -> Result<(), RegistryFull> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        for s in self.probe(addr) {
            let a = s.addr.load(Ordering::Relaxed);
            if a == 0 || a == addr.0 {
                // R4 (release): pairs with R3: publishes the `T` behind the pointer.
                s.entry
                    .store(entry as *const T as *mut T, Ordering::Release);
                // R2 (release): pairs with R1.
                s.addr.store(addr.0, Ordering::Release);
                return Ok(());
            }
        }
        Err(RegistryFull)
    }

    /// Clear the entry of `addr` if it is `entry`.
    pub(crate) fn remove(&self, addr: VirtAddr, entry: &T) {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        for s in self.probe(addr) {
            let a = s.addr.load(Ordering::Relaxed);
            if a == 0 {
                return;
            }
            if a == addr.0 && core::ptr::eq(s.entry.load(Ordering::Relaxed), entry) {
                // Relaxed: a null pointer carries no data to publish.
                s.entry.store(core::ptr::null_mut(), Ordering::Relaxed);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove_keeps_probe_chains() {
        static REG: Registry<u32> = Registry::new();
        static A: u32 = 1;
        static B: u32 = 2;
        // Two addresses in the same starting slot: the second probes past the first.
        let a = VirtAddr(0x1000);
        let b = (1..u64::MAX)
            .map(|k| VirtAddr(0x1000 + (k << 7)))
            .find(|&x| Registry::<u32>::start(x) == Registry::<u32>::start(a))
            .unwrap();
        assert!(REG.find(a).is_none());
        REG.insert(a, &A).unwrap();
        REG.insert(b, &B).unwrap();
        assert_eq!(REG.find(a), Some(&1));
        assert_eq!(REG.find(b), Some(&2));
        REG.remove(a, &A);
        assert!(REG.find(a).is_none());
        assert_eq!(
            REG.find(b),
            Some(&2),
            "removing a must not break b's probe chain"
        );
        REG.remove(b, &A); // not b's entry: ignored
        assert_eq!(REG.find(b), Some(&2));
    }
}
