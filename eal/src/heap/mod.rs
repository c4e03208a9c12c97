//! The EAL heap (like DPDK's rte_malloc): [`Heap`], the `malloc` family over the arenas
//! of [`arena`], one per memseg list, and the lock-holding operations memzones share.
//!
//! # Concurrency
//!
//! Every operation takes the shared-config lock ([`crate::config`]), which also guards
//! the memzone table; it is process-shared, so the heap is safe from any thread of any
//! process of the group. Nothing here is for the data path: use mempools.

pub(crate) mod arena;
use std::fmt;
use std::ptr::NonNull;

use crate::addr::Iova;
use crate::addr::VirtAddr;
use crate::config::{ConfigGuard, SharedConfig};
use crate::error::{Error, Result};
use crate::lcore::LcoreSet;
use crate::memory::Memory;

pub(crate) use arena::{Arena, Request};
pub use arena::{BlockHdr, HeapStats, Kind, CACHE_LINE, HDR, MIN_BLOCK};

/// The heap of one EAL (DPDK's `rte_malloc` family), from [`crate::Eal::heap`].
///
/// A borrowed view: cheap to make, `Copy`, usable from any thread. Every call takes the
/// shared-config lock (control path; use mempools on the data path). Without a socket,
/// memory on the calling lcore's socket is tried first.
#[derive(Clone, Copy)]
pub struct Heap<'a> {
    core: &'a MemCore,
    lcores: &'a LcoreSet,
}

impl fmt::Debug for Heap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Heap")
            .field("sockets", &self.sockets())
            .finish()
    }
}

impl<'a> Heap<'a> {
    pub(crate) fn new(core: &'a MemCore, lcores: &'a LcoreSet) -> Self {
        Heap { core, lcores }
    }

    /// Allocate `size` bytes aligned to `align` (0 = 64), preferably on the calling
    /// lcore's socket.
    pub fn malloc(&self, size: usize, align: usize) -> Result<NonNull<u8>> {
        self.alloc(size, align, None, false)
    }

    /// [`malloc`](Self::malloc), zero-filled.
    pub fn zmalloc(&self, size: usize, align: usize) -> Result<NonNull<u8>> {
        self.alloc(size, align, None, true)
    }

    /// Allocate on `socket` (any socket if `None`).
    pub fn malloc_socket(
        &self,
        size: usize,
        align: usize,
        socket: Option<u32>,
    ) -> Result<NonNull<u8>> {
        self.alloc(size, align, socket, false)
    }

    /// Zero-filled [`malloc_socket`](Self::malloc_socket).
    pub fn zmalloc_socket(
        &self,
        size: usize,
        align: usize,
        socket: Option<u32>,
    ) -> Result<NonNull<u8>> {
        self.alloc(size, align, socket, true)
    }

    fn alloc(
        &self,
        size: usize,
        align: usize,
        socket: Option<u32>,
        zero: bool,
    ) -> Result<NonNull<u8>> {
        self.core
            .malloc(size, align, socket, self.lcores.caller_socket(), zero)
    }

    /// Zero-filled, IOVA-contiguous memory a device may DMA to; returns the pointer and
    /// its IOVA. [`Error::NoDma`] under `--no-huge`. Free with [`free`](Self::free).
    pub fn malloc_dma(
        &self,
        size: usize,
        align: usize,
        socket: Option<u32>,
    ) -> Result<(NonNull<u8>, Iova)> {
        let p = self
            .core
            .malloc_dma(size, align, socket, self.lcores.caller_socket())?;
        let iova = self
            .core
            .memory
            .virt2iova(VirtAddr::from_ptr(p.as_ptr()))
            .unwrap_or(Iova::BAD);
        Ok((p, iova))
    }

    /// Resize an allocation (allocate, copy, free). A null `ptr` is `malloc`.
    ///
    /// # Safety
    /// `ptr` must be null or a live pointer from this EAL's heap, and nothing may use it
    /// after a successful call.
    pub unsafe fn realloc(&self, ptr: *mut u8, size: usize, align: usize) -> Result<NonNull<u8>> {
        if ptr.is_null() {
            return self.malloc(size, align);
        }
        let old = self.core.alloc_len(ptr).ok_or(Error::BadFree {
            addr: ptr as usize as u64,
        })?;
        let new = self.malloc(size, align)?;
        // SAFETY: both are live, distinct heap blocks of at least `min(old, size)` bytes.
        unsafe { std::ptr::copy_nonoverlapping(ptr, new.as_ptr(), (old as usize).min(size)) };
        // SAFETY: forwarded caller contract: `ptr` is a live heap pointer, now unused.
        unsafe { self.free(ptr)? };
        Ok(new)
    }

    /// Return memory to the heap. Null is accepted and ignored. Pointers the heap did not
    /// hand out (or already took back) are refused with [`Error::BadFree`] where the
    /// inline header shows it.
    ///
    /// # Safety
    /// Nothing may use the allocation after the call.
    pub unsafe fn free(&self, ptr: *mut u8) -> Result<()> {
        self.core.free(ptr)
    }

    /// Statistics of `socket`, `None` if it has no memory.
    pub fn stats(&self, socket: u32) -> Option<HeapStats> {
        self.core.stats(socket)
    }

    /// Sockets that have EAL memory, ascending.
    pub fn sockets(&self) -> Vec<u32> {
        self.core.sockets()
    }

    /// Print statistics per socket.
    pub fn dump(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.core.dump(w)
    }

    /// Verify every heap invariant (block tiling, boundary tags, free list);
    /// [`Error::HeapCorrupt`] describes the first violation. For tests and debugging;
    /// takes the lock.
    pub fn check(&self) -> Result<()> {
        self.core.check()
    }
}

/// The memory plus the shared config: what memzones and the heap work on.
pub(crate) struct MemCore {
    pub memory: Memory,
    pub config: SharedConfig,
}

impl fmt::Debug for MemCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemCore")
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

/// Check `size`, `align`, `bound`; returns the effective alignment.
pub(crate) fn check_layout(len: usize, align: usize, bound: usize) -> Result<u64> {
    if len == 0 {
        return Err(Error::BadSize {
            len,
            why: "size is zero",
        });
    }
    if len as u64 > (1u64 << 56) {
        return Err(Error::BadSize {
            len,
            why: "size too large",
        });
    }
    let align = if align == 0 {
        CACHE_LINE as usize
    } else {
        align
    };
    if !align.is_power_of_two() {
        return Err(Error::BadAlign {
            align,
            bound,
            why: "alignment is not a power of two",
        });
    }
    if align as u64 > (1u64 << 40) {
        return Err(Error::BadAlign {
            align,
            bound,
            why: "alignment too large",
        });
    }
    if bound != 0 {
        if !bound.is_power_of_two() {
            return Err(Error::BadAlign {
                align,
                bound,
                why: "boundary is not a power of two",
            });
        }
        if bound < len {
            return Err(Error::BadAlign {
                align,
                bound,
                why: "boundary is smaller than the length",
            });
        }
    }
    Ok(align as u64)
}

impl MemCore {
    /// Set up one arena per memseg list. Called once, by the primary, before sharing.
    pub fn init_heaps(&self) {
        let mut g = self.config.lock();
        let n = g.n_lists as usize;
        for i in 0..n {
            let (base, len) = (VirtAddr(g.lists[i].base_va), g.lists[i].len);
            // SAFETY: the list is mapped EAL memory used by nothing yet; lock held via `g`.
            let mut a = unsafe { Arena::new(&mut g.lists[i].heap, base) };
            a.init(len);
        }
    }

    /// Lists of `socket` (all lists, preferred socket first, if `socket` is None).
    pub fn list_order(&self, socket: Option<u32>, preferred: Option<u32>) -> Vec<usize> {
        let lists = self.memory.lists();
        match socket {
            Some(s) => (0..lists.len()).filter(|&i| lists[i].socket == s).collect(),
            None => {
                let mut v: Vec<usize> = (0..lists.len()).collect();
                v.sort_by_key(|&i| Some(lists[i].socket) != preferred);
                v
            }
        }
    }

    /// Allocate a block under the held lock `g`, trying `lists` in order.
    pub fn alloc_locked(
        &self,
        g: &mut ConfigGuard<'_>,
        lists: &[usize],
        r: &Request<'_>,
    ) -> Option<(usize, VirtAddr)> {
        for &i in lists {
            let base = VirtAddr(g.lists[i].base_va);
            // SAFETY: list `i` is EAL memory managed by this arena; the lock is held (g).
            let mut a = unsafe { Arena::new(&mut g.lists[i].heap, base) };
            if let Some(u) = a.alloc(r) {
                return Some((i, u));
            }
        }
        None
    }

    /// Index of the list holding `va`.
    pub fn list_of(&self, va: VirtAddr) -> Option<usize> {
        self.memory
            .lists()
            .iter()
            .position(|l| va.0 >= l.base.0 && va.0 < l.base.0 + l.len)
    }

    /// Free a block of `kind` under the held lock.
    pub fn free_locked(&self, g: &mut ConfigGuard<'_>, user: VirtAddr, kind: Kind) -> bool {
        let Some(i) = self.list_of(user) else {
            return false;
        };
        let base = VirtAddr(g.lists[i].base_va);
        // SAFETY: as in alloc_locked.
        let mut a = unsafe { Arena::new(&mut g.lists[i].heap, base) };
        a.free(user, kind)
    }

    /// `malloc` on `socket` (any socket, `preferred` first, if None).
    pub fn malloc(
        &self,
        len: usize,
        align: usize,
        socket: Option<u32>,
        preferred: Option<u32>,
        zero: bool,
    ) -> Result<NonNull<u8>> {
        self.alloc_heap(len, align, socket, preferred, zero, &|_, _| None)
    }

    /// A DMA-able allocation: IOVA-contiguous, on hugepages, zero-filled.
    pub fn malloc_dma(
        &self,
        len: usize,
        align: usize,
        socket: Option<u32>,
        preferred: Option<u32>,
    ) -> Result<NonNull<u8>> {
        if !self.memory.dma_capable() {
            return Err(Error::NoDma {
                why: "EAL memory is not DMA-capable (--no-huge)".into(),
            });
        }
        let mem = &self.memory;
        self.alloc_heap(len, align, socket, preferred, true, &|u, l| {
            mem.iova_break(u, l)
        })
    }

    /// One heap block placed where `accept` allows (see [`Request::accept`]).
    fn alloc_heap(
        &self,
        len: usize,
        align: usize,
        socket: Option<u32>,
        preferred: Option<u32>,
        zero: bool,
        accept: &dyn Fn(VirtAddr, u64) -> Option<VirtAddr>,
    ) -> Result<NonNull<u8>> {
        let align = check_layout(len, align, 0)?;
        let lists = self.list_order(socket, preferred);
        let r = Request {
            len: len as u64,
            align,
            bound: 0,
            kind: Kind::Heap,
            accept,
        };
        let got = {
            let mut g = self.config.lock();
            self.alloc_locked(&mut g, &lists, &r)
        };
        let (_, u) = got.ok_or(Error::OutOfMemory { len, socket })?;
        if zero {
            // SAFETY: [u, u+len) is the payload of the block just allocated: mapped,
            // writable, owned by nobody else.
            unsafe { std::ptr::write_bytes(u.as_ptr::<u8>(), 0, len) };
        }
        NonNull::new(u.as_ptr()).ok_or(Error::OutOfMemory { len, socket })
    }

    /// Free a heap pointer.
    pub fn free(&self, ptr: *mut u8) -> Result<()> {
        let va = VirtAddr::from_ptr(ptr);
        if ptr.is_null() {
            return Ok(());
        }
        if !self.memory.contains(va, 1) {
            return Err(Error::BadFree { addr: va.0 });
        }
        let mut g = self.config.lock();
        if self.free_locked(&mut g, va, Kind::Heap) {
            Ok(())
        } else {
            Err(Error::BadFree { addr: va.0 })
        }
    }

    /// Requested size of a live heap allocation.
    pub fn alloc_len(&self, ptr: *mut u8) -> Option<u64> {
        let va = VirtAddr::from_ptr(ptr);
        let i = self.list_of(va)?;
        let mut g = self.config.lock();
        let base = VirtAddr(g.lists[i].base_va);
        // SAFETY: as in alloc_locked.
        let a = unsafe { Arena::new(&mut g.lists[i].heap, base) };
        a.block_len(va, Kind::Heap)
    }

    /// Statistics of `socket`, `None` if it has no memory.
    pub fn stats(&self, socket: u32) -> Option<HeapStats> {
        let lists = self.list_order(Some(socket), None);
        if lists.is_empty() {
            return None;
        }
        let mut s = HeapStats::default();
        let mut g = self.config.lock();
        for i in lists {
            let base = VirtAddr(g.lists[i].base_va);
            // SAFETY: as in alloc_locked.
            let a = unsafe { Arena::new(&mut g.lists[i].heap, base) };
            a.add_stats(&mut s);
        }
        Some(s)
    }

    /// Sockets that have memory, ascending.
    pub fn sockets(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.memory.lists().iter().map(|l| l.socket).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Check every arena's invariants.
    pub fn check(&self) -> Result<()> {
        let mut g = self.config.lock();
        for i in 0..g.n_lists as usize {
            let base = VirtAddr(g.lists[i].base_va);
            // SAFETY: as in alloc_locked.
            let a = unsafe { Arena::new(&mut g.lists[i].heap, base) };
            a.check().map_err(|e| Error::HeapCorrupt {
                why: format!("memseg list {i}: {e}"),
            })?;
        }
        Ok(())
    }

    /// Human-readable heap report.
    pub fn dump(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        for s in self.sockets() {
            if let Some(st) = self.stats(s) {
                writeln!(
                    w,
                    "heap socket {s}: size {} free {} ({} blocks, largest {}) allocated {} ({} allocations)",
                    st.heap_size, st.free_bytes, st.free_count, st.largest_free, st.alloc_bytes, st.alloc_count
                )?;
            }
        }
        Ok(())
    }
}
