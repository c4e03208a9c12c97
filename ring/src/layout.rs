//! What lives in shared memory: the ring header and the per-side head/tail words.
//!
//! ```text
//!  offset 0    RingHeader metadata (magic, version, name, flags, geometry)  read-only after init
//!  offset 128  sync[0..8]: eight 32-byte HeadTail places, two of them used
//!               prod = sync[0] (offset 128): head, cached, htd_max, sync, tail
//!               cons = sync[4] (offset 256), or sync[1] (offset 160) with ONE_LINE
//!  offset 384  slots[size]      elements, size a power of two
//! ```
//!
//! **Default (DPDK's arrangement).** Each side is alone on its 128-byte block: written by
//! that side's threads, its tail read by the other side. 128 bytes, not 64: Intel's L2
//! "spatial prefetcher" fetches cache lines in 128-byte aligned pairs, so two 64-byte
//! lines written by different cores still bounce together (DPDK later added
//! `RTE_CACHE_GUARD` for the same reason). Within a side, head and tail share one line, as
//! in DPDK (layout version 2 had the tail on a line of its own; DESIGN.md has why it went
//! back).
//!
//! **[`RingFlags::ONE_LINE`](crate::RingFlags::ONE_LINE).** Both sides on one 64-byte
//! line. Every operation reads its own head and the other side's tail and writes its own
//! head and tail, so on the default layout it needs two lines, one of them exclusively;
//! on one line it needs one. That is the better layout when every thread both enqueues
//! and dequeues (a mempool's free list): two threads dequeuing and enqueuing 1/4/32 at a
//! time on an MP/MC ring moved 1.44 / 1.33 / 1.27 times DPDK's rate with it, against
//! 1.08 / 1.01 / 0.98 with the default (`scripts/compare/ring_ab.sh`).
//! For a producer/consumer pipeline it gives away what the default is built for: sides
//! that never write each other's line.
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
//! | Optimistic (consumer) | `pos << 32` | `pos << 32` (as Multi)      |
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
/// on the head line; 4: 32-byte sides in eight places, `ONE_LINE`).
pub const LAYOUT_VERSION: u32 = 4;
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

/// Where the producer side lives in [`RingHeader::sync`].
pub(crate) const PROD_AT: usize = 0;
/// Where the consumer side lives: its own 128-byte block by default, the producer's line
/// with `ONE_LINE` (module docs).
pub(crate) const fn cons_at(one_line: bool) -> usize {
    if one_line {
        1
    } else {
        4
    }
}

/// One side's synchronisation state, 32 bytes (module docs for where it sits).
#[repr(C, align(32))]
pub(crate) struct HeadTail {
    /// Reservation front (see the table in the module docs).
    pub head: AtomicU64,
    /// Single mode only: the other side's tail as last loaded (low 32 bits), or
    /// [`NO_CACHE`]. Written only by the single thread of this side, or set to
    /// [`NO_CACHE`] by a multi-thread path on this side.
    pub cached: AtomicU64,
    /// Rts: the most the head may run ahead of the tail. Any other mode: the number of
    /// threads asleep on this side's tail ([`HeadTail::tail_waiters`]).
    pub htd_max: AtomicU32,
    /// The side's [`SyncMode`](crate::SyncMode) as `u32`, fixed at creation.
    pub sync: u32,
    /// Publication front; high 32 bits = tail position in every mode.
    pub tail: AtomicU64,
}

impl HeadTail {
    /// On a side that is not RTS, the `htd_max` word counts the threads asleep on a
    /// futex on this side's tail (`backoff::park_on_tail`), so that a thread that moves
    /// the tail knows whether to wake anyone: a word on the line it has just written.
    /// (On x86-64 Linux the waits and wakes reach it in assembly, `sys`, by offset.)
    #[cfg(any(loom, miri, not(all(target_arch = "x86_64", target_os = "linux"))))]
    #[inline(always)]
    pub(crate) fn tail_waiters(&self) -> &AtomicU32 {
        &self.htd_max
    }
}

/// The ring header at the start of the ring's memory.
#[repr(C, align(128))]
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
    /// Zero; the metadata keeps its own 128-byte block.
    pub _gap: [u64; 7],
    /// The two sides' places ([`PROD_AT`], [`cons_at`]); unused places stay zero.
    pub sync: [HeadTail; 8],
}

#[cfg(not(loom))]
const _: () = {
    assert!(core::mem::size_of::<HeadTail>() == 32);
    assert!(core::mem::offset_of!(HeadTail, tail) == 24);
    #[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
    assert!(core::mem::offset_of!(HeadTail, htd_max) == crate::sys::WAITERS_OFF);
    #[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
    assert!(core::mem::offset_of!(HeadTail, tail) + 4 == crate::sys::TAIL_POS_OFF);
    assert!(core::mem::offset_of!(RingHeader, sync) == 128);
    // Default: each side at the start of its own 128-byte block. ONE_LINE: both sides in
    // the first 64 bytes of the producer's block.
    assert!(128 + PROD_AT * 32 == 128 && 128 + cons_at(false) * 32 == 256);
    assert!(128 + cons_at(true) * 32 + 32 <= 192);
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
