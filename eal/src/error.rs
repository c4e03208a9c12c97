//! The EAL's one error type. Messages read "failed to <verb> <what>: <why>" and, where a
//! setup step is missing, name the command that fixes it.

use std::io;
use std::path::PathBuf;

/// Result alias for the EAL.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the EAL can refuse or fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- arguments (args.rs) ----
    /// An argument the EAL does not know.
    #[error("unknown EAL argument '{0}' (see -h)")]
    UnknownArg(String),
    /// A known argument with a value that does not parse or makes no sense.
    #[error("invalid value '{value}' for EAL argument '{arg}': {why}")]
    BadArg { arg: String, value: String, why: String },
    /// A known argument given without its value.
    #[error("EAL argument '{0}' needs a value")]
    MissingValue(String),
    /// `-h` / `--help` was given; the caller prints usage and exits 0.
    #[error("help requested")]
    HelpRequested,

    // ---- system calls (sys.rs) ----
    /// A system call or file operation failed.
    #[error("failed to {op} {what}: {source}")]
    Os {
        op: &'static str,
        what: String,
        #[source]
        source: io::Error,
    },

    // ---- memory (hugepage.rs, memory.rs) ----
    /// Hugepages were asked for but none are usable.
    #[error("failed to reserve hugepage memory: {why}; reserve and mount some with `ferroplane-hugepages --setup 256M` (as root), or run with --no-huge")]
    NoHugepages { why: String },
    /// More memory was asked for than can be reserved.
    #[error("failed to reserve {requested} bytes of {kind} memory: only {available} available")]
    NotEnoughMemory { kind: &'static str, requested: u64, available: u64 },
    /// A DMA-capable allocation was requested but the memory cannot be addressed by devices.
    #[error("failed to provide DMA memory: {why}")]
    NoDma { why: String },
    /// Another live process already holds this file prefix as primary.
    #[error("failed to become primary for file prefix '{prefix}': process {pid} holds {path}")]
    PrefixInUse { prefix: String, pid: i32, path: PathBuf },
    /// A feature that a later issue delivers (e.g. `--proc-type secondary`).
    #[error("failed to {what}: not supported yet")]
    Unsupported { what: String },
    /// An operation needs exclusive ownership but other handles are alive.
    #[error("failed to {what}: {count} other handle(s) still alive")]
    InUse { what: &'static str, count: usize },

    // ---- memzones and heap (memzone.rs, heap.rs) ----
    /// Name empty or longer than the limit.
    #[error("failed to use name '{name}': must be 1..={max} bytes")]
    BadName { name: String, max: usize },
    /// A memzone (or other named object) with this name exists.
    #[error("failed to reserve '{0}': name already exists")]
    Exists(String),
    /// No object of this name.
    #[error("failed to find '{0}': no such object")]
    NotFound(String),
    /// Size zero or otherwise unusable.
    #[error("failed to allocate {len} bytes: {why}")]
    BadSize { len: usize, why: &'static str },
    /// Alignment or boundary not a power of two, or boundary smaller than the length.
    #[error("failed to allocate with align {align} / bound {bound}: {why}")]
    BadAlign { align: usize, bound: usize, why: &'static str },
    /// No free block fits the request.
    #[error("failed to allocate {len} bytes on socket {socket:?}: out of memory")]
    OutOfMemory { len: usize, socket: Option<u32> },
    /// The memzone table is full.
    #[error("failed to reserve memzone '{0}': memzone table full")]
    TableFull(String),
    /// Pointer handed back that the heap never gave out.
    #[error("failed to free {addr:#x}: not a live heap allocation")]
    BadFree { addr: u64 },

    // ---- lcores (lcore.rs) ----
    /// Lcore id not enabled in this EAL.
    #[error("failed to use lcore {0}: not enabled")]
    BadLcore(u32),
    /// Launch on an lcore that is still running a job, or on the main lcore.
    #[error("failed to launch on lcore {0}: lcore busy or not a worker")]
    LcoreBusy(u32),
    /// The job on a worker panicked; the process goes on.
    #[error("lcore {lcore} job panicked: {msg}")]
    LcorePanicked { lcore: u32, msg: String },
    /// A worker thread could not be bound to its cpu (cpu offline, outside the allowed
    /// cpuset, or the affinity call failed).
    #[error("failed to pin lcore {lcore} to cpu {cpu}: {why}")]
    LcorePin { lcore: u32, cpu: u32, why: String },
    /// A file under /sys/devices/system/{cpu,node} did not parse.
    #[error("failed to parse CPU topology file {path}: {why}")]
    TopologyParse { path: PathBuf, why: String },

    // ---- PCI (pci.rs) ----
    /// A sysfs attribute of a PCI device did not parse.
    #[error("failed to parse PCI attribute {path}: {why}")]
    PciParse { path: PathBuf, why: String },
}

impl Error {
    /// Build an [`Error::Os`] from the last OS error.
    pub fn last_os(op: &'static str, what: impl Into<String>) -> Self {
        Error::Os { op, what: what.into(), source: io::Error::last_os_error() }
    }

    /// Build an [`Error::Os`] from an `io::Error`.
    pub fn io(op: &'static str, what: impl Into<String>, source: io::Error) -> Self {
        Error::Os { op, what: what.into(), source }
    }
}
