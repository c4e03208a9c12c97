//! The pool header: the `#[repr(C)]` structure at the start of memzone `MP_<name>`,
//! shared by every process of the EAL group.

use core::sync::atomic::{AtomicU64, Ordering};

use eal::lcore::MAX_LCORE;
use eal::{Iova, VirtAddr};

use crate::stats::StatsShared;

/// Most memory chunks (memzones) the objects of one pool can be spread over.
pub const MAX_CHUNKS: usize = 32;
/// Bytes of private data a pool header can carry for its user (the mbuf layer keeps its
/// data room and private size there).
pub const PRIVATE_MAX: usize = 64;

/// "FPMEMPL" + format byte.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"FPMEMPL\x01");
/// Bumped whenever the shared layout changes.
pub const LAYOUT_VERSION: u32 = 1;

/// One memory chunk holding objects, as recorded in the header.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkDesc {
    /// First byte of the chunk (first object slot).
    pub(crate) addr: VirtAddr,
    /// IOVA of `addr` if the chunk is IOVA-contiguous, else [`Iova::BAD`].
    pub(crate) iova: Iova,
    /// Bytes of the chunk.
    pub(crate) len: u64,
    /// Index of the chunk's first object over the whole pool.
    pub(crate) first: u32,
    /// Objects in the chunk.
    pub(crate) nb_objs: u32,
}

/// The pool header, at the start of memzone `MP_<name>`. No pointers: every address is an
/// EAL virtual address, the same in every process. Read-only after creation except the
/// statistics and the caches that follow it.
#[repr(C, align(128))]
pub(crate) struct PoolHeader {
    /// [`MAGIC`] once the pool is fully built (release store; lookups acquire it).
    pub(crate) magic: AtomicU64,
    pub(crate) version: u32,
    /// Bit 0: debug object layout (cookies).
    pub(crate) layout: u32,
    /// Distinguishes two pools created at the same address one after the other.
    pub(crate) serial: u64,
    pub(crate) name: [u8; 32],
    pub(crate) ops_name: [u8; 32],
    pub(crate) flags: u32,
    pub(crate) size: u32,
    pub(crate) elt_size: u32,
    pub(crate) header_size: u32,
    pub(crate) trailer_size: u32,
    pub(crate) total_size: u32,
    pub(crate) cache_size: u32,
    pub(crate) flush_threshold: u32,
    /// NUMA socket asked for, -1 for any.
    pub(crate) socket: i32,
    pub(crate) nb_chunks: u32,
    /// Backend state address and length (see [`MempoolOps::alloc`](crate::MempoolOps::alloc)).
    pub(crate) pool_data: VirtAddr,
    pub(crate) pool_data_len: u64,
    pub(crate) private_len: u32,
    pub(crate) channels: u32,
    /// `size_of::<PoolHeader>()` of the creator, a cheap layout check.
    pub(crate) header_len: u32,
    /// Offset of the cache array from the header start, 0 if no cache.
    pub(crate) caches_off: u32,
    pub(crate) chunks: [ChunkDesc; MAX_CHUNKS],
    pub(crate) private: [u8; PRIVATE_MAX],
    /// Per-lcore counters, plus one shared slot for non-EAL threads (see [`crate::stats`]).
    pub(crate) stats: [StatsShared; MAX_LCORE + 1],
}

const _: () = assert!(core::mem::size_of::<PoolHeader>().is_multiple_of(128));
const _: () = assert!(core::mem::offset_of!(PoolHeader, stats) % 128 == 0);
const _: () = assert!(core::mem::size_of::<ChunkDesc>() == 32);

pub(crate) fn name_bytes(s: &str) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..s.len()].copy_from_slice(s.as_bytes());
    b
}

pub(crate) fn name_str(b: &[u8; 32]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

pub(crate) fn new_serial() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let c = COUNTER.fetch_add(1, Ordering::Relaxed);
    eal::timer::rdtsc() ^ (u64::from(std::process::id()) << 40) ^ c.rotate_left(20)
}

impl PoolHeader {
    /// The chunks in use (bounded by [`MAX_CHUNKS`] whatever `nb_chunks` says).
    pub(crate) fn chunks(&self) -> &[ChunkDesc] {
        &self.chunks[..(self.nb_chunks as usize).min(MAX_CHUNKS)]
    }
}
