//! One AF_XDP socket (XSK) of a `net_af_xdp` port: its private UMEM and its four
//! single-producer/single-consumer rings shared with the kernel.
//!
//! Ring protocol (Documentation/networking/af_xdp.rst): each ring has a producer and a
//! consumer index in memory the kernel maps to us. On a ring we produce to (fill, TX) we
//! write descriptors, then publish them with a Release store of `producer` (pairs with
//! the kernel's acquire load of it), and we read the kernel's `consumer` with Acquire
//! before reusing slots (pairs with its release store after reading them). On a ring we
//! consume (RX, completion) we load `producer` with Acquire before reading descriptors
//! (pairs with the kernel's release store) and hand slots back with a Release store of
//! `consumer` after our last read.
//!
//! UMEM: the RX queue's mempool memory (see `umem`), or for the copy path anonymous
//! memory, a region of `FRAMES` chunks of `FRAME_SIZE` per queue; the first half of a
//! region only ever travels RX (fill ring → RX ring → back to the fill ring), the second
//! half only TX (free list → TX ring → completion ring → free list), so the RX and TX
//! halves of a queue never touch each other's frames and may run on different lcores.
//! With `shared_umem=1` the queues of a port share one anonymous UMEM, registered on the
//! first queue's socket, the others bound to it with `XDP_SHARED_UMEM` and fill and
//! completion rings of their own.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::sys::{self, Mapping, XdpRingOffset};

/// UMEM chunk size.
pub(super) const FRAME_SIZE: u32 = 2048;
/// UMEM chunks per queue: half RX, half TX.
pub(super) const FRAMES: u32 = 4096;
/// Entries of each ring (a power of two; = the frames of its half, so a ring never
/// overflows while frames are conserved).
pub(super) const RING: u32 = FRAMES / 2;
/// Bytes of one queue's UMEM region.
pub(super) const REGION: usize = FRAMES as usize * FRAME_SIZE as usize;

/// Anonymous memory for the UMEM regions of `queues` queues.
pub(super) fn umem_map(iface: &str, queues: u32) -> Result<Arc<Mapping>> {
    sys::mmap_anon(REGION * queues as usize)
        .map(Arc::new)
        .map_err(|e| Error::os("map", format!("the UMEM of {iface} ({queues} queues)"), e))
}

/// The UMEM a new socket uses: one it registers, or the one registered on another
/// socket (`XDP_SHARED_UMEM`).
#[derive(Clone, Copy)]
pub(super) enum UmemSrc<'a> {
    /// Register `len` bytes at `addr` (page aligned) in `chunk`-byte chunks with
    /// `headroom` bytes in front of each, `flags` as `XDP_UMEM_UNALIGNED_CHUNK_FLAG`.
    Own {
        addr: *mut u8,
        len: usize,
        chunk: u32,
        headroom: u32,
        flags: u32,
    },
    /// The UMEM registered on this socket.
    Shared(&'a OwnedFd),
}

/// A mapped ring: producer and consumer indices, flags and descriptors.
pub(super) struct Ring {
    map: Mapping,
    off: XdpRingOffset,
    mask: u32,
    /// Our index: producer for rings we produce to, consumer for rings we consume.
    pub local: u32,
}

// SAFETY: the mapping is plain memory; the index protocol (module docs) orders access,
// and each ring is used by one queue object (one thread at a time).
unsafe impl Send for Ring {}

impl Ring {
    fn word(&self, off: u64) -> &AtomicU32 {
        // SAFETY: the kernel's offsets of aligned u32 words inside the mapping, which
        // lives as long as `self`; the kernel writes them concurrently: atomics only.
        unsafe { AtomicU32::from_ptr(self.map.as_ptr().add(off as usize).cast()) }
    }

    /// Pointer to descriptor slot `i` (wrapped) of `size` bytes each.
    pub fn slot<T>(&self, i: u32) -> *mut T {
        let at = self.off.desc as usize + (i & self.mask) as usize * std::mem::size_of::<T>();
        // SAFETY: inside the descriptor array of `mask + 1` entries in the mapping.
        unsafe { self.map.as_ptr().add(at).cast() }
    }

    /// Consumer side: entries ready (Acquire: pairs with the kernel's release of
    /// `producer`; descriptors up to it are visible).
    pub fn ready(&self) -> u32 {
        self.word(self.off.producer)
            .load(Ordering::Acquire)
            .wrapping_sub(self.local)
    }

    /// Consumer side: hand `n` slots back (Release: our reads of them come first).
    pub fn release(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.word(self.off.consumer)
            .store(self.local, Ordering::Release);
    }

    /// Producer side: free slots (Acquire: pairs with the kernel's release of
    /// `consumer`; it has finished reading the slots it released).
    pub fn room(&self) -> u32 {
        let cons = self.word(self.off.consumer).load(Ordering::Acquire);
        (self.mask + 1) - self.local.wrapping_sub(cons)
    }

    /// Producer side: publish `n` written slots (Release: the descriptors first).
    pub fn submit(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.word(self.off.producer)
            .store(self.local, Ordering::Release);
    }

    /// The kernel asks for a wakeup syscall (`XDP_RING_NEED_WAKEUP`).
    pub fn needs_wakeup(&self) -> bool {
        self.word(self.off.flags).load(Ordering::Relaxed) & sys::XDP_RING_NEED_WAKEUP != 0
    }
}

/// The parts of an XSK: the socket (shared by the RX and TX halves) and the rings,
/// which the queue halves take.
pub(super) struct Xsk {
    pub fd: OwnedFd,
    pub rx: Ring,
    pub fill: Ring,
    pub tx: Ring,
    pub comp: Ring,
    pub zero_copy: bool,
}

/// How to bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CopyMode {
    /// Whatever the driver allows (zero-copy if it can, else copy).
    Auto,
    /// Copy mode (`force_copy=1`).
    Copy,
    /// Zero-copy or fail (`zero_copy=1`).
    ZeroCopy,
}

impl Xsk {
    /// Make an XSK bound to `queue` of `ifindex`: UMEM registration (or sharing), rings,
    /// bind. The fill ring is empty: the caller primes it.
    pub(super) fn open(
        iface: &str,
        ifindex: i32,
        queue: u32,
        mode: CopyMode,
        busy_budget: u32,
        umem: UmemSrc<'_>,
    ) -> Result<Xsk> {
        let what = |s: &str| format!("{s} (queue {queue} of {iface})");
        let fd = sys::xsk_socket().map_err(|e| {
            let hint = if e.raw_os_error() == Some(libc::EAFNOSUPPORT) {
                ": this kernel has no AF_XDP"
            } else {
                ""
            };
            Error::os("open", what(&format!("an AF_XDP socket{hint}")), e)
        })?;
        let owner = match umem {
            UmemSrc::Own {
                addr,
                len,
                chunk,
                headroom,
                flags,
            } => {
                sys::umem_reg(&fd, addr, len, chunk, headroom, flags)
                    .map_err(|e| Error::os("register", what("the UMEM"), e))?;
                None
            }
            UmemSrc::Shared(o) => Some(o),
        };
        for (ring, name) in [
            (sys::XDP_UMEM_FILL_RING, "the fill ring"),
            (sys::XDP_UMEM_COMPLETION_RING, "the completion ring"),
            (sys::XDP_RX_RING, "the RX ring"),
            (sys::XDP_TX_RING, "the TX ring"),
        ] {
            sys::ring_size(&fd, ring, RING).map_err(|e| Error::os("size", what(name), e))?;
        }
        let off =
            sys::mmap_offsets(&fd).map_err(|e| Error::os("query", what("ring offsets"), e))?;
        let map = |o: XdpRingOffset, desc: usize, pg: i64, name: &str| -> Result<Ring> {
            let len = o.desc as usize + RING as usize * desc;
            let m = sys::mmap_ring(&fd, len, pg).map_err(|e| Error::os("map", what(name), e))?;
            Ok(Ring {
                map: m,
                off: o,
                mask: RING - 1,
                local: 0,
            })
        };
        let desc = std::mem::size_of::<sys::XdpDesc>();
        let rx = map(off.rx, desc, sys::XDP_PGOFF_RX_RING, "the RX ring")?;
        let tx = map(off.tx, desc, sys::XDP_PGOFF_TX_RING, "the TX ring")?;
        let fill = map(off.fr, 8, sys::XDP_UMEM_PGOFF_FILL_RING, "the fill ring")?;
        let comp = map(
            off.cr,
            8,
            sys::XDP_UMEM_PGOFF_COMPLETION_RING,
            "the completion ring",
        )?;
        if busy_budget > 0 {
            sys::busy_poll(&fd, busy_budget)
                .map_err(|e| Error::os("enable", what("busy polling (busy_budget)"), e))?;
        }
        let flags = sys::XDP_USE_NEED_WAKEUP
            | match mode {
                CopyMode::Auto => 0,
                CopyMode::Copy => sys::XDP_COPY,
                CopyMode::ZeroCopy => sys::XDP_ZEROCOPY,
            };
        sys::xsk_bind(&fd, ifindex, queue, flags, owner).map_err(|e| {
            let hint = match (e.raw_os_error(), mode) {
                (Some(libc::EINVAL), _) if owner.is_some() => {
                    ": the kernel refused to share the UMEM (XDP_SHARED_UMEM across queues \
                     needs Linux 5.10 or later)"
                }
                (Some(libc::EOPNOTSUPP), CopyMode::ZeroCopy) => {
                    ": zero-copy was asked for (zero_copy=1) and the driver cannot do it"
                }
                (Some(libc::EBUSY), _) => ": another XSK is bound to that queue",
                (Some(libc::EINVAL), _) => ": no such queue, or the interface cannot do AF_XDP",
                _ => "",
            };
            Error::os("bind", what(&format!("the AF_XDP socket{hint}")), e)
        })?;
        let zero_copy =
            sys::is_zero_copy(&fd).map_err(|e| Error::os("query", what("XDP_OPTIONS"), e))?;
        Ok(Xsk {
            fd,
            rx,
            fill,
            tx,
            comp,
            zero_copy,
        })
    }
}
