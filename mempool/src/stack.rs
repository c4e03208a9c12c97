//! The "stack" backend: a spinlock-protected LIFO of object addresses in shared memory.
//!
//! Layout (one memzone `MPB_<pool>`, cache-line aligned):
//!
//! ```text
//!  offset 0   StackShared { magic, version, capacity, lock, len }
//!  offset 64  objs[capacity]: VirtAddr
//! ```
//!
//! `lock` is a test-and-test-and-set spinlock (0 free, 1 held); `len` and `objs[..len]`
//! are only written while holding it. `count` reads `len` without the lock (a racy
//! snapshot, as DPDK's `rte_mempool_ops_get_count`). A LIFO hands back the most recently
//! freed objects, which are likely still in some CPU cache: DPDK's "stack" driver exists
//! for the same reason (drivers/mempool/stack).
//!
//! Preemption: a thread preempted while holding the lock makes every other user spin until
//! it runs again. Threads sharing a pool should not be time-sliced on one cpu.

use core::sync::atomic::{AtomicU32, Ordering};

use eal::VirtAddr;

/// "FPSTACK" + format byte.
pub(crate) const STACK_MAGIC: u64 = u64::from_le_bytes(*b"FPSTACK\x01");
pub(crate) const STACK_VERSION: u32 = 1;

/// The shared header of a stack; the object array follows at offset 64.
#[repr(C, align(64))]
pub struct StackShared {
    magic: u64,
    version: u32,
    capacity: u32,
    lock: AtomicU32,
    len: AtomicU32,
}

const _: () = assert!(core::mem::size_of::<StackShared>() == 64);

/// Bytes needed for a stack of `capacity` objects.
pub fn stack_memsize(capacity: u32) -> usize {
    core::mem::size_of::<StackShared>() + capacity as usize * core::mem::size_of::<VirtAddr>()
}

impl StackShared {
    /// Initialise an empty stack in place.
    ///
    /// # Safety
    /// `mem` must be 64-byte aligned, valid for writes of [`stack_memsize`]`(capacity)`
    /// bytes, and not used by anyone else until this returns.
    pub unsafe fn init_in(mem: *mut u8, capacity: u32) -> *const StackShared {
        let s = mem.cast::<StackShared>();
        // SAFETY: per the contract `s` is aligned and writable.
        unsafe {
            s.write(StackShared {
                magic: STACK_MAGIC,
                version: STACK_VERSION,
                capacity,
                lock: AtomicU32::new(0),
                len: AtomicU32::new(0),
            });
        }
        s
    }

    /// Check magic and version of a stack found in shared memory.
    pub fn validate(&self) -> Result<(), String> {
        if self.magic != STACK_MAGIC {
            return Err(format!("bad stack magic {:#x}", self.magic));
        }
        if self.version != STACK_VERSION {
            return Err(format!(
                "stack layout version {}, expected {STACK_VERSION}",
                self.version
            ));
        }
        Ok(())
    }

    /// Capacity in objects.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }
}

/// A handle to a stack in shared memory. It keeps the raw pointer it was made from, so
/// the object array behind the header is reached with that pointer's provenance (a
/// pointer derived from `&StackShared` would only cover the 64-byte header, and writing
/// through it would be undefined behaviour, which Miri caught).
#[derive(Clone, Copy, Debug)]
pub struct Stack(core::ptr::NonNull<StackShared>);

// SAFETY: the header is only touched through atomics and immutable fields; the array
// only under the lock (module docs).
unsafe impl Send for Stack {}
// SAFETY: as above.
unsafe impl Sync for Stack {}

impl Stack {
    /// Wrap a stack made by [`StackShared::init_in`].
    ///
    /// # Safety
    /// `p` points to an initialised stack whose memory (header and array) stays mapped
    /// and valid for as long as the handle or any copy of it is used.
    pub unsafe fn from_raw(p: *const StackShared) -> Option<Stack> {
        core::ptr::NonNull::new(p.cast_mut()).map(Stack)
    }

    #[inline(always)]
    fn hdr(&self) -> &StackShared {
        // SAFETY: valid for the handle's life (from_raw contract); a shared reference to
        // the header only, whose mutable fields are atomics.
        unsafe { self.0.as_ref() }
    }

    #[inline(always)]
    fn objs(&self) -> *mut VirtAddr {
        // The array follows the 64-byte header in the same allocation (init_in contract);
        // derived from the raw pointer, not from a reference to the header.
        self.0
            .as_ptr()
            .cast::<u8>()
            .wrapping_add(64)
            .cast::<VirtAddr>()
    }

    #[inline(always)]
    fn lock(&self) {
        loop {
            // L1 (acquire): pairs with U1 below, so the previous holder's writes to `len`
            // and the array are visible once we own the lock.
            if self
                .hdr()
                .lock
                .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
            // Spin on a plain load so the line stays shared while the holder works.
            while self.hdr().lock.load(Ordering::Relaxed) != 0 {
                core::hint::spin_loop();
            }
        }
    }

    #[inline(always)]
    fn unlock(&self) {
        // U1 (release): publishes this holder's array and `len` writes; pairs with L1.
        self.hdr().lock.store(0, Ordering::Release);
    }

    /// Push all of `objs` or none (false if they do not fit).
    #[inline]
    pub fn push_bulk(&self, objs: &[VirtAddr]) -> bool {
        self.lock();
        let len = self.hdr().len.load(Ordering::Relaxed) as usize;
        let ok = len + objs.len() <= self.hdr().capacity as usize;
        if ok {
            // SAFETY: len + objs.len() <= capacity slots follow the header (init_in
            // contract); we hold the lock, so nobody else touches the array; the source
            // is the caller's slice, disjoint from the array.
            unsafe {
                core::ptr::copy_nonoverlapping(objs.as_ptr(), self.objs().add(len), objs.len())
            };
            // Relaxed: ordered for other users by U1; lock-free readers (`count`) only
            // want a snapshot.
            self.hdr()
                .len
                .store((len + objs.len()) as u32, Ordering::Relaxed);
        }
        self.unlock();
        ok
    }

    /// Pop exactly `out.len()` objects or none (false if too few), most recent first.
    #[inline]
    pub fn pop_bulk(&self, out: &mut [VirtAddr]) -> bool {
        self.lock();
        let len = self.hdr().len.load(Ordering::Relaxed) as usize;
        let ok = out.len() <= len;
        if ok {
            let top = self.objs();
            for (i, o) in out.iter_mut().enumerate() {
                // SAFETY: len - 1 - i < len <= capacity; we hold the lock.
                *o = unsafe { *top.add(len - 1 - i) };
            }
            self.hdr()
                .len
                .store((len - out.len()) as u32, Ordering::Relaxed);
        }
        self.unlock();
        ok
    }

    /// Objects on the stack (snapshot).
    pub fn count(&self) -> u32 {
        // Relaxed: a statistic (module docs).
        self.hdr().len.load(Ordering::Relaxed)
    }

    /// Capacity in objects.
    pub fn capacity(&self) -> u32 {
        self.hdr().capacity
    }
}
