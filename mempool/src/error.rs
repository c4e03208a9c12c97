//! The mempool's one error type. Messages read "failed to `verb` `what`: `why`".

use eal::VirtAddr;

/// Result alias for the mempool crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything creating, attaching to or using a mempool can refuse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Name empty, too long, or with a byte that cannot go into a memzone name.
    #[error("failed to name mempool '{name}': must be 1..={max} bytes of printable ASCII")]
    BadName { name: String, max: usize },
    /// A size or count of zero (objects, element size, cache size of a user cache).
    #[error("failed to create mempool '{name}': {what} must not be zero")]
    ZeroSize { name: String, what: &'static str },
    /// Element size whose padded object size does not fit the 32-bit size fields.
    #[error("failed to create mempool '{name}': element size {elt_size} is too large")]
    EltTooLarge { name: String, elt_size: usize },
    /// Cache larger than [`CACHE_MAX_SIZE`](crate::CACHE_MAX_SIZE), or whose flush threshold
    /// (1.5 x size) exceeds the number of objects.
    #[error("failed to create mempool '{name}': cache size {cache_size} too large (max {max} for {n} objects: min(512, n / 1.5))")]
    CacheTooLarge {
        name: String,
        cache_size: u32,
        n: u32,
        max: u32,
    },
    /// A user-owned cache size outside 1..=512.
    #[error("failed to create mempool cache: size {size} not in 1..={max}")]
    BadCacheSize { size: u32, max: u32 },
    /// Flags with unknown bits.
    #[error("failed to create mempool '{name}': unknown flag bits {bits:#x}")]
    BadFlags { name: String, bits: u32 },
    /// Total memory for the objects overflows or is absurd before even asking the EAL.
    #[error(
        "failed to create mempool '{name}': {n} objects of {total_size} bytes do not fit in memory"
    )]
    TooLarge {
        name: String,
        n: u32,
        total_size: u32,
    },
    /// The EAL could not provide memory (or a memzone operation failed).
    #[error("failed to {op} memory for mempool '{name}': {source}")]
    Memory {
        op: &'static str,
        name: String,
        #[source]
        source: eal::Error,
    },
    /// The objects would need more memory chunks than the header can describe.
    #[error("failed to populate mempool '{name}': memory too fragmented (more than {max} chunks needed)")]
    TooFragmented { name: String, max: usize },
    /// A pool of this name exists already.
    #[error("failed to create mempool '{0}': name already exists")]
    Exists(String),
    /// No pool of this name.
    #[error("failed to find mempool '{0}': no such mempool")]
    NotFound(String),
    /// The memzone does not hold a mempool this build understands.
    #[error("failed to attach mempool '{name}': {why}")]
    Incompatible { name: String, why: String },
    /// No backend (ops) registered under this name.
    #[error("failed to find mempool ops '{0}': not registered")]
    UnknownOps(String),
    /// The process-local ops table is full, or a name is registered twice.
    #[error("failed to register mempool ops '{name}': {why}")]
    OpsRegister { name: String, why: &'static str },
    /// The backend refused to create or attach its shared state.
    #[error("failed to {op} backend '{ops}' of mempool '{name}': {why}")]
    Backend {
        op: &'static str,
        ops: String,
        name: String,
        why: String,
    },
    /// The backend failed with an error from a lower layer (ring, EAL).
    #[error("failed to {op} backend '{ops}' of mempool '{name}'")]
    BackendSource {
        op: &'static str,
        ops: String,
        name: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Not enough free objects for an all-or-nothing get (nothing was taken).
    #[error("failed to get {n} objects from mempool: not enough free objects")]
    Empty { n: usize },
    /// The backend refused an enqueue of objects that belong to the pool (it can only
    /// happen if objects were put twice or the backend state is corrupt). Nothing was put.
    #[error("failed to put {n} objects into mempool '{name}': backend full (objects put twice?)")]
    BackendFull { name: String, n: usize },
    /// Debug builds: the object's header names another pool, or the address lies
    /// outside this pool's memory.
    #[error("failed to put object {addr:?} into mempool '{name}': not an object of this pool")]
    ForeignObject { name: String, addr: VirtAddr },
    /// Debug builds: the object's header cookie says it is already free.
    #[error("failed to put object {addr:?} into mempool '{name}': double free (object already in the pool)")]
    DoubleFree { name: String, addr: VirtAddr },
    /// Debug builds: a cookie was overwritten (buffer overrun or underrun).
    #[error("failed to {op} object {addr:?} of mempool '{name}': {which} cookie overwritten ({found:#x})")]
    Corrupted {
        op: &'static str,
        name: String,
        addr: VirtAddr,
        which: &'static str,
        found: u64,
    },
    /// A user cache made for one pool was used with another.
    #[error(
        "failed to use mempool cache with mempool '{name}': the cache belongs to another pool"
    )]
    ForeignCache { name: String },
    /// `free` while objects are still out, or while other handles exist in this process.
    #[error("failed to free mempool '{name}': {why}")]
    InUse { name: String, why: String },
    /// Writing a dump failed.
    #[error("failed to dump mempool '{name}'")]
    Dump {
        name: String,
        #[source]
        source: std::io::Error,
    },
}
