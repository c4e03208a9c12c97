//! What lives in shared memory: the ring header and the per-side head/tail lines.
//!
//! ```text
//!  offset 0    RingHeader metadata (magic, version, name, flags, geometry)  read-only after init
//!  offset 128  prod: HeadTail   written by producers, tail read by consumers
//!               +0   head, cached, htd_max, sync, tail   (one line, as DPDK's)
//!  offset 256  cons: HeadTail   written by consumers, tail read by producers
//!  offset 384  slots[size]      elements, size a power of two
//! ```
//!
//! Every side gets 128 bytes, not 64: Intel's L2 "spatial prefetcher" fetches cache lines
//! in 128-byte aligned pairs, so two 64-byte lines written by different cores still bounce
//! together (DPDK later added `RTE_CACHE_GUARD` for the same reason).
//!
//! Within a side, head and tail share one 64-byte line, as in DPDK. Layout version 2 put
//! the tail on the side's second line so that a multi thread spinning on the tail would
//! not take the head line from the next thread to reserve; on this VM that was the
//! better layout in one session's measurements (1.17 against 1.04 of DPDK's rate, two
//! cores, no mempool cache) and the worse one in the next session's (1.02-1.07 against
//! 1.10-1.18 over five alternating pairs of runs, `scripts/compare/mempool_ab.sh`), with
//! the same code: which one wins depends on how the host places the two vCPUs. The one
//! line is kept (version 3) because its worst case over both sessions is the better one
//! (1.04 against 0.97-1.02). DESIGN.md has the numbers.
//!
//! ## Index encoding
//!
//! Positions are free-running `u32`s; a slot index is `pos & mask`, distances are
//! `wrapping_sub`. Each side's `tail` word is a `u64` whose **high 32 bits are the tail
//! position** in every mode, so the other side reads one atomic word with one meaning:
//!
//! | mode   | `head` (u64)           | `tail` (u64)                          |
//! |--------|------------------------|---------------------------------------|
//! | Single | `pos << 32`            | `pos << 32`                           |
//! | Multi  | `pos << 32`            | `pos << 32`                           |
//! | Rts    | `pos << 32 \| count`   | `pos << 32 \| count`                  |
//! | Hts    | unused (0)             | `tail_pos << 32 \| head_pos` (one word)|
//!
//! A single side stores head and tail together when its operation ends (head == tail
//! between operations; the claim in between lives in the calling thread only).
//!
//! Invariant (all modes, at any instant): `cons.tail <= cons.head <= prod.tail <=
//! prod.head <= cons.tail + capacity`, in wrapping arithmetic.

use crate::primitive::{AtomicU32, AtomicU64};

/// "FPRING" + two bytes of zero + format marker, little-endian.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"FPRING\x00\x01");
/// Bumped whenever the shared layout changes (2: the tail moved to its own line; 3: back
/// on the head line).
pub const LAYOUT_VERSION: u32 = 3;
/// Longest ring name in bytes: a memzone name holds 31 bytes, of which "RG_" takes 3
/// (DPDK's `RTE_RING_NAMESIZE` - 1).
pub const NAME_MAX: usize = 28;
/// Memzone name prefix of a ring.
pub const MZ_PREFIX: &str = "RG_";
/// Largest slot array, as DPDK's `RTE_RING_SZ_MASK`.
pub const RING_SZ_MASK: u32 = 0x7fff_ffff;
/// Largest element size in bytes.
pub const MAX_ELEM_SIZE: usize = 128;
/// Alignment of the ring in memory and the stride between its hot lines.
pub const RING_ALIGN: usize = 128;
/// `cached` value meaning "no cached copy of the other side's tail".
pub(crate) const NO_CACHE: u64 = u64::MAX;

/// One side's synchronisation state, alone on its 128-byte block, all of it on the
/// block's first line (module docs).
#[repr(C, align(128))]
pub(crate) struct HeadTail {
    /// Reservation front (see the table in the module docs).
    pub head: AtomicU64,
    /// Single mode only: the other side's tail as last loaded (low 32 bits), or
    /// [`NO_CACHE`]. Written only by the single thread of this side, or set to
    /// [`NO_CACHE`] by a multi-thread path on this side.
    pub cached: AtomicU64,
    /// Rts only: the most the head may run ahead of the tail.
    pub htd_max: AtomicU32,
    /// The side's [`SyncMode`](crate::SyncMode) as `u32`, fixed at creation.
    pub sync: u32,
    /// Publication front; high 32 bits = tail position in every mode.
    pub tail: AtomicU64,
    /// Zero; fills the block.
    pub _pad: [u64; 12],
}

/// The ring header at the start of the ring's memory.
#[repr(C)]
pub(crate) struct RingHeader {
    pub magic: u64,
    pub version: u32,
    /// [`RingFlags`](crate::RingFlags) bits given at creation.
    pub flags: u32,
    /// NUL-padded name, at most [`NAME_MAX`] bytes used.
    pub name: [u8; 32],
    /// Slot count, a power of two.
    pub size: u32,
    /// `size - 1`.
    pub mask: u32,
    /// Usable slots: `size - 1`, or the exact count with `EXACT_SZ`.
    pub capacity: u32,
    /// `size_of::<T>()`.
    pub elem_size: u32,
    /// Bytes the ring occupies from its start (header plus slots).
    pub memsize: u64,
    pub prod: HeadTail,
    pub cons: HeadTail,
}

#[cfg(not(loom))]
const _: () = {
    assert!(core::mem::size_of::<HeadTail>() == 128);
    assert!(core::mem::offset_of!(HeadTail, tail) == 24);
    assert!(core::mem::offset_of!(RingHeader, prod) == 128);
    assert!(core::mem::offset_of!(RingHeader, cons) == 256);
    assert!(core::mem::size_of::<RingHeader>() == 384);
    assert!(core::mem::align_of::<RingHeader>() == RING_ALIGN);
};

/// High 32 bits: the position.
#[inline(always)]
pub(crate) const fn pos(w: u64) -> u32 {
    (w >> 32) as u32
}

/// Low 32 bits: RTS count or HTS head.
#[inline(always)]
pub(crate) const fn lo(w: u64) -> u32 {
    w as u32
}

#[inline(always)]
pub(crate) const fn pack(pos: u32, lo: u32) -> u64 {
    ((pos as u64) << 32) | lo as u64
}

/// Slot array geometry for a requested count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub size: u32,
    pub mask: u32,
    pub capacity: u32,
}

pub(crate) fn geometry(count: u32, exact: bool) -> crate::Result<Geometry> {
    use crate::Error;
    if count == 0 {
        return Err(Error::ZeroSize);
    }
    let size: u64 = if exact {
        (u64::from(count) + 1).next_power_of_two()
    } else {
        if !count.is_power_of_two() {
            return Err(Error::NotPowerOfTwo(count));
        }
        u64::from(count)
    };
    if size > u64::from(RING_SZ_MASK) {
        return Err(Error::TooLarge {
            count,
            size,
            max: RING_SZ_MASK,
        });
    }
    let size = size as u32;
    let capacity = if exact { count } else { size - 1 };
    Ok(Geometry {
        size,
        mask: size - 1,
        capacity,
    })
}

/// Bytes for header plus `size` slots of `elem` bytes, rounded up to [`RING_ALIGN`].
pub(crate) fn memsize_for(size: u32, elem: usize) -> Option<usize> {
    let slots = (size as usize).checked_mul(elem)?;
    let total = core::mem::size_of::<RingHeader>().checked_add(slots)?;
    total
        .checked_add(RING_ALIGN - 1)
        .map(|t| t & !(RING_ALIGN - 1))
}
