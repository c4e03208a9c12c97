//! The ring's one error type. Messages read "failed to `verb` `what`: `why`".

/// Result alias for the ring crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything creating, attaching to or using a ring can refuse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A ring of zero slots was asked for.
    #[error("failed to size ring: count is zero")]
    ZeroSize,
    /// The count is not a power of two and [`RingFlags::EXACT_SZ`](crate::RingFlags::EXACT_SZ)
    /// was not given.
    #[error("failed to size ring: count {0} is not a power of two (pass RingFlags::EXACT_SZ for any size)")]
    NotPowerOfTwo(u32),
    /// The count (or the power of two it rounds up to) exceeds [`RING_SZ_MASK`](crate::RING_SZ_MASK).
    #[error("failed to size ring: count {count} needs {size} slots, more than the maximum {max}")]
    TooLarge { count: u32, size: u64, max: u32 },
    /// Flags that contradict each other (two sync modes for one side) or unknown bits.
    #[error("failed to create ring: invalid flags {flags:#x}: {why}")]
    BadFlags { flags: u32, why: &'static str },
    /// Name empty or longer than [`NAME_MAX`](crate::NAME_MAX) bytes.
    #[error("failed to name ring '{name}': must be 1..={max} bytes")]
    BadName { name: String, max: usize },
    /// A ring (memzone `RG_<name>`) with this name exists already.
    #[error("failed to create ring '{0}': name already exists")]
    Exists(String),
    /// No ring of this name.
    #[error("failed to find ring '{0}': no such ring")]
    NotFound(String),
    /// The memory handed to [`Ring::init_in`](crate::Ring::init_in) is too small or
    /// misaligned, or a looked-up memzone is smaller than the ring it claims to hold.
    #[error("failed to place ring in memory at {addr:#x} of {len} bytes: {why}")]
    BadMemory {
        addr: usize,
        len: usize,
        why: &'static str,
    },
    /// The memory does not hold a ring (magic mismatch).
    #[error("failed to attach ring '{name}': bad magic {found:#x}")]
    BadMagic { name: String, found: u64 },
    /// The ring was laid out by an incompatible version of this crate.
    #[error("failed to attach ring '{name}': layout version {found}, expected {expected}")]
    BadVersion {
        name: String,
        found: u32,
        expected: u32,
    },
    /// The ring holds elements of another size than the `T` asked for.
    #[error("failed to attach ring '{name}': element size {found}, expected {expected}")]
    ElemSizeMismatch {
        name: String,
        found: u32,
        expected: u32,
    },
    /// Peek (start/finish) or zero-copy asked on a side whose sync mode cannot support it
    /// (only single and HTS sides can).
    #[error("failed to {op} on ring '{name}': the {side} side is {mode:?}, needs Single or Hts")]
    ModeUnsupported {
        op: &'static str,
        name: String,
        side: &'static str,
        mode: crate::SyncMode,
    },
    /// The EAL refused a memzone operation.
    #[error("failed to {op} memzone for ring '{name}'")]
    Eal {
        op: &'static str,
        name: String,
        #[source]
        source: eal::Error,
    },
}
