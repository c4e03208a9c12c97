//! Memzones: named, contiguous, never-moving regions of EAL memory (like rte_memzone).
//!
//! A memzone is reserved by name with a size, an optional socket, [`MemzoneFlags`], an
//! alignment (default and minimum 64, a cache line) and an optional boundary it must not
//! cross. Its length is rounded up to a cache line. The name table lives in the shared
//! config ([`crate::config::MAX_MEMZONE`] = 2560 slots, names of 1..=31 bytes as DPDK's
//! `RTE_MEMZONE_NAMESIZE` of 32 with the NUL), so every process of the group sees the
//! same zones; the memory comes from the heap arenas ([`crate::heap`]).
//!
//! Flags: `SIZE_2MB` / `SIZE_1GB` require memory of that page size (refused with
//! [`Error::OutOfMemory`] if there is none; no "hint only" mode). `IOVA_CONTIG` requires
//! the placement to be IOVA-contiguous; in PA mode this is checked against the memsegs
//! and the allocator moves past physical discontinuities. `DMA` requires DMA-capable
//! memory ([`Error::NoDma`] under `--no-huge`) and implies `IOVA_CONTIG`.
//!
//! All calls take the shared-config lock: thread safe and process safe, control path only.
//! A [`Memzone`] is a `Copy` handle holding a snapshot of the zone; after
//! [`Memzones::free`] the handle is stale and freeing it again is refused.

use std::fmt;
use std::io::Write;

use crate::addr::{Iova, VirtAddr};
use crate::config::{get_str, put_str, MemzoneEntry, MAX_MEMZONE, MEMZONE_NAMESIZE};
use crate::error::{Error, Result};
use crate::heap::{check_layout, Kind, MemCore, Request};
use crate::lcore::LcoreSet;

bitflags::bitflags! {
    /// Memzone placement flags.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct MemzoneFlags: u32 {
        /// Use 2 MiB pages.
        const SIZE_2MB = 1 << 0;
        /// Use 1 GiB pages.
        const SIZE_1GB = 1 << 1;
        /// The zone must be IOVA-contiguous.
        const IOVA_CONTIG = 1 << 2;
        /// Devices will DMA to the zone: DMA-capable memory, IOVA-contiguous.
        const DMA = 1 << 3;
    }
}

/// Longest memzone name in bytes.
pub const MEMZONE_NAME_MAX: usize = MEMZONE_NAMESIZE - 1;

/// A handle to a reserved memzone (a snapshot; cheap to copy).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Memzone {
    name: [u8; MEMZONE_NAMESIZE],
    idx: u32,
    serial: u64,
    addr: VirtAddr,
    iova: Iova,
    len: u64,
    page_size: u64,
    socket: u32,
    flags: MemzoneFlags,
    iova_contig: bool,
}

impl Memzone {
    fn from_entry(idx: usize, e: &MemzoneEntry) -> Memzone {
        Memzone {
            name: e.name,
            idx: idx as u32,
            serial: e.serial,
            addr: VirtAddr(e.addr),
            iova: Iova(e.iova),
            len: e.len,
            page_size: e.page_size,
            socket: e.socket,
            flags: MemzoneFlags::from_bits_truncate(e.flags),
            iova_contig: e.iova_contig != 0,
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        // Names are validated UTF-8 on reservation.
        std::str::from_utf8(get_str(&self.name)).unwrap_or("?")
    }

    /// Start address.
    pub fn addr(&self) -> VirtAddr {
        self.addr
    }

    /// Start address as a typed raw pointer. Dereferencing it is up to the caller: the
    /// memory is shared with other threads and processes (and devices, for DMA zones).
    pub fn as_ptr<T>(&self) -> *mut T {
        self.addr.as_ptr()
    }

    /// IOVA of the start.
    pub fn iova(&self) -> Iova {
        self.iova
    }

    /// Length in bytes (cache-line rounded).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false (zero-length zones are refused); for clippy's `len` convention.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// NUMA socket.
    pub fn socket(&self) -> u32 {
        self.socket
    }

    /// Page size of the memory behind it.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// True if `[iova, iova+len)` is contiguous.
    pub fn is_iova_contig(&self) -> bool {
        self.iova_contig
    }

    /// Flags it was reserved with.
    pub fn flags(&self) -> MemzoneFlags {
        self.flags
    }
}

impl fmt::Debug for Memzone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memzone")
            .field("name", &self.name())
            .field("addr", &self.addr)
            .field("iova", &self.iova)
            .field("len", &self.len)
            .field("socket", &self.socket)
            .field("page_size", &self.page_size)
            .field("flags", &self.flags)
            .finish()
    }
}

fn check_name(name: &str) -> Result<[u8; MEMZONE_NAMESIZE]> {
    let mut b = [0u8; MEMZONE_NAMESIZE];
    if name.is_empty() || !put_str(&mut b, name.as_bytes()) {
        return Err(Error::BadName {
            name: name.into(),
            max: MEMZONE_NAME_MAX,
        });
    }
    Ok(b)
}

/// Parameters of one reservation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ZoneReq<'a> {
    pub name: &'a str,
    pub len: usize,
    pub socket: Option<u32>,
    pub flags: MemzoneFlags,
    pub align: usize,
    pub bound: usize,
}

/// The memzone table of one EAL (DPDK's `rte_memzone_*`), from [`crate::Eal::memzones`].
///
/// A borrowed view: cheap to make, `Copy`, usable from any thread. Every call takes the
/// shared-config lock (control path). Without a socket, memory on the calling lcore's
/// socket is tried first.
#[derive(Clone, Copy)]
pub struct Memzones<'a> {
    core: &'a MemCore,
    lcores: &'a LcoreSet,
}

impl fmt::Debug for Memzones<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memzones")
            .field("count", &self.count())
            .finish()
    }
}

impl<'a> Memzones<'a> {
    pub(crate) fn new(core: &'a MemCore, lcores: &'a LcoreSet) -> Self {
        Memzones { core, lcores }
    }

    /// Reserve a memzone (cache-line aligned, no boundary).
    pub fn reserve(
        &self,
        name: &str,
        len: usize,
        socket: Option<u32>,
        flags: MemzoneFlags,
    ) -> Result<Memzone> {
        self.reserve_bounded(name, len, socket, flags, 0, 0)
    }

    /// Reserve a memzone aligned to `align` (a power of two; 0 = 64).
    pub fn reserve_aligned(
        &self,
        name: &str,
        len: usize,
        socket: Option<u32>,
        flags: MemzoneFlags,
        align: usize,
    ) -> Result<Memzone> {
        self.reserve_bounded(name, len, socket, flags, align, 0)
    }

    /// Reserve a memzone aligned to `align` that does not cross a multiple of `bound`
    /// (a power of two ≥ `len`; 0 = none).
    pub fn reserve_bounded(
        &self,
        name: &str,
        len: usize,
        socket: Option<u32>,
        flags: MemzoneFlags,
        align: usize,
        bound: usize,
    ) -> Result<Memzone> {
        self.core.reserve_zone(
            ZoneReq {
                name,
                len,
                socket,
                flags,
                align,
                bound,
            },
            self.lcores.caller_socket(),
        )
    }

    /// Find a memzone by name.
    pub fn lookup(&self, name: &str) -> Option<Memzone> {
        let mut b = [0u8; MEMZONE_NAMESIZE];
        if name.is_empty() || !put_str(&mut b, name.as_bytes()) {
            return None;
        }
        let g = self.core.config.lock();
        g.memzones
            .iter()
            .position(|e| e.name[0] != 0 && e.name == b)
            .map(|i| Memzone::from_entry(i, &g.memzones[i]))
    }

    /// Free a memzone. A stale handle (freed already) gets [`Error::NotFound`].
    pub fn free(&self, z: &Memzone) -> Result<()> {
        let core = self.core;
        let mut g = core.config.lock();
        let i = z.idx as usize;
        let live = i < MAX_MEMZONE && {
            let e = &g.memzones[i];
            e.name[0] != 0 && e.serial == z.serial && e.addr == z.addr.0
        };
        if !live {
            return Err(Error::NotFound(z.name().into()));
        }
        if !core.free_locked(&mut g, z.addr, Kind::Memzone) {
            // Table and heap disagree: a bug, not user input. Keep the entry.
            return Err(Error::NotFound(z.name().into()));
        }
        g.memzones[i] = MemzoneEntry {
            name: [0; MEMZONE_NAMESIZE],
            ..g.memzones[i]
        };
        g.n_memzones -= 1;
        Ok(())
    }

    /// Every memzone, in table order.
    pub fn walk(&self) -> Vec<Memzone> {
        let g = self.core.config.lock();
        g.memzones
            .iter()
            .enumerate()
            .filter(|(_, e)| e.name[0] != 0)
            .map(|(i, e)| Memzone::from_entry(i, e))
            .collect()
    }

    /// Number of memzones.
    pub fn count(&self) -> usize {
        self.core.config.lock().n_memzones as usize
    }

    /// Print one line per memzone.
    pub fn dump(&self, w: &mut dyn Write) -> std::io::Result<()> {
        let zones = self.walk();
        writeln!(w, "{} memzones", zones.len())?;
        for (n, z) in zones.iter().enumerate() {
            writeln!(
                w,
                "zone {n}: name:<{}>, addr:{}, iova:{}, len:{:#x}, socket_id:{}, page_size:{}, flags:{:?}",
                z.name(),
                z.addr(),
                z.iova(),
                z.len(),
                z.socket(),
                crate::hugepage::format_size(z.page_size()),
                z.flags()
            )?;
        }
        Ok(())
    }
}

impl MemCore {
    /// Reserve a memzone; `preferred` is the socket tried first when `z.socket` is None.
    fn reserve_zone(&self, z: ZoneReq<'_>, preferred: Option<u32>) -> Result<Memzone> {
        let name = check_name(z.name)?;
        let align = check_layout(z.len, z.align, z.bound)?;
        let mem = &self.memory;
        let dma = z.flags.contains(MemzoneFlags::DMA);
        if dma && !mem.dma_capable() {
            return Err(Error::NoDma {
                why: format!(
                    "memzone '{}' asks for DMA memory but EAL runs with --no-huge",
                    z.name
                ),
            });
        }
        let contig = dma || z.flags.contains(MemzoneFlags::IOVA_CONTIG);
        let want_ps = if z.flags.contains(MemzoneFlags::SIZE_1GB) {
            Some(1u64 << 30)
        } else if z.flags.contains(MemzoneFlags::SIZE_2MB) {
            Some(2u64 << 20)
        } else {
            None
        };
        let lists: Vec<usize> = self
            .list_order(z.socket, preferred)
            .into_iter()
            .filter(|&i| want_ps.is_none_or(|p| mem.lists()[i].page_size == p))
            .collect();
        let accept_contig = |u: VirtAddr, l: u64| mem.iova_break(u, l);
        let accept_any = |_: VirtAddr, _: u64| None;
        let accept: &dyn Fn(VirtAddr, u64) -> Option<VirtAddr> =
            if contig { &accept_contig } else { &accept_any };
        let r = Request {
            len: z.len as u64,
            align,
            bound: z.bound as u64,
            kind: Kind::Memzone,
            accept,
        };

        let mut g = self.config.lock();
        let mut free_slot = None;
        for (i, e) in g.memzones.iter().enumerate() {
            if e.name[0] == 0 {
                free_slot.get_or_insert(i);
            } else if e.name == name {
                return Err(Error::Exists(z.name.into()));
            }
        }
        let Some(slot) = free_slot else {
            return Err(Error::TableFull(z.name.into()));
        };
        let Some((li, u)) = self.alloc_locked(&mut g, &lists, &r) else {
            return Err(Error::OutOfMemory {
                len: z.len,
                socket: z.socket,
            });
        };
        let len = (z.len as u64).next_multiple_of(crate::heap::CACHE_LINE);
        let l = &mem.lists()[li];
        let serial = g.next_serial;
        g.next_serial += 1;
        let e = MemzoneEntry {
            name,
            addr: u.0,
            iova: mem.virt2iova(u).unwrap_or(Iova::BAD).0,
            len,
            page_size: l.page_size,
            serial,
            socket: l.socket,
            flags: z.flags.bits(),
            list: li as u32,
            iova_contig: mem.iova_break(u, len).is_none() as u32,
        };
        g.memzones[slot] = e;
        g.n_memzones += 1;
        Ok(Memzone::from_entry(slot, &e))
    }
}
