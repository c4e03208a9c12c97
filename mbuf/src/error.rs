//! The mbuf crate's one error type. Messages read "failed to `verb` `what`: `why`".

/// Result alias for the mbuf crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the mbuf layer can refuse. Every refusal leaves the mbuf untouched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The underlying mempool refused (creation, lookup, free).
    #[error("failed to {op} mbuf pool: {source}")]
    Mempool {
        op: &'static str,
        #[source]
        source: Box<mempool::Error>,
    },
    /// Pool parameters that make no sense (private size alignment, sizes overflowing).
    #[error("failed to create mbuf pool '{name}': {why}")]
    BadConfig { name: String, why: String },
    /// A looked-up pool is not a packet-mbuf pool.
    #[error("failed to attach mbuf pool '{name}': {why}")]
    NotPktmbufPool { name: String, why: &'static str },
    /// Not enough free mbufs (nothing was allocated).
    #[error("failed to allocate {n} mbufs: pool empty")]
    NoMbufs { n: usize },
    /// Not enough headroom in the first segment.
    #[error("failed to prepend {need} bytes: only {have} bytes of headroom")]
    NoHeadroom { need: usize, have: usize },
    /// Not enough tailroom in the (last or first) segment.
    #[error("failed to add {need} bytes: only {have} bytes of tailroom")]
    NoTailroom { need: usize, have: usize },
    /// Removing more data than the segment holds.
    #[error("failed to remove {need} bytes: the segment holds {have}")]
    TooShort { need: usize, have: usize },
    /// A length would overflow its field (`data_len` u16, `pkt_len` u32).
    #[error("failed to grow packet: {what} would exceed {max}")]
    LenOverflow { what: &'static str, max: u64 },
    /// Chaining would exceed the segment limit.
    #[error("failed to chain segments: {have} + {add} exceeds {max}")]
    TooManySegs { have: u32, add: u32, max: u32 },
    /// Writing into a buffer shared with clones (refcnt > 1) or borrowed (indirect).
    #[error("failed to write mbuf data: the buffer is shared (clone or attached)")]
    Shared,
    /// An offset/length outside the packet.
    #[error("failed to access bytes {off}..{end} of a {pkt_len}-byte packet: out of range")]
    OutOfRange {
        off: usize,
        end: usize,
        pkt_len: u32,
    },
    /// A TX offload length too large for its bit field.
    #[error("failed to set tx offload: {field} = {value} exceeds {max}")]
    OffloadOverflow {
        field: &'static str,
        value: u16,
        max: u16,
    },
}

/// A failed [`Mbuf::chain`](crate::Mbuf::chain): the error and the tail handed back.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ChainError {
    /// Why.
    #[source]
    pub error: Error,
    /// The segment(s) that were not chained.
    pub tail: crate::Mbuf,
}
