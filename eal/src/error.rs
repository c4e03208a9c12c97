//! The EAL's one error type. Messages read "failed to `verb` `what`: `why`" and, where a
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
    BadArg {
        arg: String,
        value: String,
        why: String,
    },
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
    NotEnoughMemory {
        kind: &'static str,
        requested: u64,
        available: u64,
    },
    /// A DMA-capable allocation was requested but the memory cannot be addressed by devices.
    #[error("failed to provide DMA memory: {why}")]
    NoDma { why: String },
    /// Another live process already holds this file prefix as primary.
    #[error("failed to become primary for file prefix '{prefix}': process {pid} holds {path}")]
    PrefixInUse {
        prefix: String,
        pid: i32,
        path: PathBuf,
    },
    /// Text that is not a value of the kind named (`FromStr` of [`crate::pci::PciAddr`],
    /// [`crate::log::Level`]).
    #[error("'{input}' is not {what}: {why}")]
    Parse {
        what: &'static str,
        input: String,
        why: &'static str,
    },
    /// [`crate::heap::Heap::check`] found a broken invariant (a bug, or a process that
    /// died while it held the shared-config lock).
    #[error("failed to check the heap: {why}")]
    HeapCorrupt { why: String },
    /// An operation this device, driver or setup does not support.
    #[error("failed to {what}: not supported")]
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
    BadAlign {
        align: usize,
        bound: usize,
        why: &'static str,
    },
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

    // ---- device access (device/, sys/dev.rs) ----
    /// The device is not bound to a driver Ferroplane can drive it through.
    #[error("failed to open PCI device {addr}: it is bound to {}, not vfio-pci or uio_pci_generic; bind it with `ferroplane-devbind --bind=vfio-pci {addr}`", .driver.as_deref().unwrap_or("no driver"))]
    DeviceNotBound {
        addr: String,
        driver: Option<String>,
    },
    /// No device with this address in sysfs.
    #[error("failed to find PCI device {addr}: no such device in {path}")]
    NoSuchDevice { addr: String, path: PathBuf },
    /// A VFIO device without an IOMMU group.
    #[error("failed to open {addr} through VFIO: it has no IOMMU group; boot with the IOMMU on (intel_iommu=on / amd_iommu=on) or bind it to uio_pci_generic and run with --iova-mode pa")]
    NoIommuGroup { addr: String },
    /// `/dev/vfio/vfio` (or the group file) is absent.
    #[error("failed to open {path}: {why}; load VFIO with `modprobe vfio-pci`")]
    VfioMissing { path: PathBuf, why: String },
    /// A VFIO ioctl failed (through the vfio-ioctls crate).
    #[error("failed to {op} for {addr} through VFIO: {source}")]
    Vfio {
        op: &'static str,
        addr: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A BAR could not be mapped.
    #[error("failed to map BAR {bar} of {addr}: {why}")]
    BarMap { addr: String, bar: u32, why: String },
    /// The device went away while in use (unbound, removed, or reads all-ones).
    #[error("failed to access PCI device {addr}: device gone ({why})")]
    DeviceGone { addr: String, why: String },
    /// A register or config access outside the region or misaligned.
    #[error("failed to access {what} at offset {offset:#x} width {width}: region is {len:#x} bytes (offset must be in range and aligned)")]
    MmioOutOfBounds {
        what: String,
        offset: u64,
        width: u64,
        len: u64,
    },
    /// IOVA = VA does not fit the IOMMU's address width.
    #[error("failed to map DMA memory at IOVA {iova:#x} for {addr}: the IOMMU's address width is {width} bits; restart with --iova-mode pa")]
    IommuWidth { addr: String, iova: u64, width: u32 },
    /// A UIO-bound device needs physical addresses but the EAL has none.
    #[error("failed to open {addr} through uio_pci_generic: it needs IOVA = physical address but {why}; restart with --iova-mode pa (as root, with hugepages) or bind it to vfio-pci")]
    NeedPhysAddr { addr: String, why: String },
    /// A driver change refused because the device is in use.
    #[error("failed to change the driver of {addr}: device is in use ({why}); stop using it first or pass --force")]
    DeviceInUse { addr: String, why: String },
    /// The target driver is not loaded.
    #[error("failed to bind {addr} to {driver}: driver not loaded (no {path}); load it with `modprobe {driver}`")]
    DriverNotLoaded {
        addr: String,
        driver: String,
        path: PathBuf,
    },
    /// The kernel did not bind the device to the requested driver.
    #[error("failed to bind {addr} to {driver}: {why}")]
    BindFailed {
        addr: String,
        driver: String,
        why: String,
    },

    // ---- multi-process (init.rs, runtime.rs, config.rs, memory.rs, mp/) ----
    /// A secondary found no live primary for its file prefix.
    #[error("failed to attach as a secondary process: no primary process running for file prefix '{prefix}' (start one first){}", if .why.is_empty() { String::new() } else { format!("; {}", .why) })]
    NoPrimary { prefix: String, why: String },
    /// The shared config was written by another layout version.
    #[error("failed to attach to {path}: the primary's shared config has layout version {found}, this process understands version {expected}; build the primary and the secondary from the same Ferroplane version")]
    VersionMismatch {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    /// The shared config does not start with the magic (not a Ferroplane config, or
    /// corrupt).
    #[error(
        "failed to attach to {path}: bad magic {found:#018x} (not a Ferroplane shared config)"
    )]
    BadConfig { path: PathBuf, found: u64 },
    /// The shared config or a memory file is inconsistent with what the header says.
    #[error("failed to attach to the primary's {what}: {why}")]
    AttachFailed { what: String, why: String },
    /// The primary's virtual range is already used in this process.
    #[error("failed to map the primary's memory at {addr:#x}..{end:#x} in this process: the range is already in use; start secondaries before they map other memory there, or start the primary with another base address")]
    AddressTaken { addr: u64, end: u64 },
    /// A new primary was refused because secondaries of a dead primary still map its files.
    #[error("failed to become primary for file prefix '{prefix}': the previous primary is dead but its secondary process(es) {pids:?} are still attached; stop them first")]
    SecondariesAlive { prefix: String, pids: Vec<i32> },
    /// A live process table entry could not be added.
    #[error("failed to register process {pid} in the shared config: the process table ({max} entries) is full")]
    ProcTableFull { pid: i32, max: usize },
    /// An IPC message broke a limit (name, param or fd count).
    #[error("failed to build IPC message '{name}': {why}")]
    BadMessage { name: String, why: String },
    /// An IPC operation failed.
    #[error("failed to {op} IPC message '{name}': {why}")]
    Ipc {
        op: &'static str,
        name: String,
        why: String,
    },
}

impl Error {
    /// Build an [`Error::Os`] from the last OS error.
    pub fn last_os(op: &'static str, what: impl Into<String>) -> Self {
        Error::Os {
            op,
            what: what.into(),
            source: io::Error::last_os_error(),
        }
    }

    /// Build an [`Error::Os`] from an `io::Error`.
    pub fn io(op: &'static str, what: impl Into<String>, source: io::Error) -> Self {
        Error::Os {
            op,
            what: what.into(),
            source,
        }
    }
}
