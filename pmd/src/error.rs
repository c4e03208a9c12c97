//! The pmd crate's error type.

use std::io;

/// Everything that can go wrong in the ethdev layer and its drivers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--vdev` string names no known driver.
    #[error("failed to probe vdev '{name}': no driver matches (known prefixes: {known})")]
    UnknownDriver { name: String, known: String },
    /// A `--vdev` string has a key the driver does not take.
    #[error("failed to probe vdev '{dev}': unknown key '{key}' (valid keys: {valid})")]
    UnknownKey {
        dev: String,
        key: String,
        valid: String,
    },
    /// A `--vdev` key has a value the driver cannot use.
    #[error("failed to probe vdev '{dev}': bad value '{value}' for '{key}': {why}")]
    BadArg {
        dev: String,
        key: String,
        value: String,
        why: String,
    },
    /// A port name is already in use.
    #[error("failed to create port '{0}': a port with that name exists")]
    NameInUse(String),
    /// Every port id is taken.
    #[error("failed to create port '{0}': all {max} port ids are in use", max = crate::types::MAX_PORTS)]
    NoFreePort(String),
    /// The port id names no port.
    #[error("failed to {op} port {port}: no such port")]
    NoSuchPort { op: &'static str, port: u16 },
    /// The queue id is outside what the port was configured with.
    #[error("failed to {op} {dir} queue {queue} of port {port}: {why}")]
    BadQueue {
        op: &'static str,
        dir: &'static str,
        port: u16,
        queue: u16,
        why: String,
    },
    /// The call does not fit the port's state (e.g. configure while started).
    #[error("failed to {op} port {port}: {why}")]
    BadState {
        op: &'static str,
        port: u16,
        why: String,
    },
    /// The configuration asks for something the driver cannot do.
    #[error("failed to configure port {port}: {why}")]
    Unsupported { port: u16, why: String },
    /// A queue is held by a handle (or a burst) and cannot be changed now.
    #[error("failed to {op} port {port}: {dir} queue {queue} is in use by a queue handle or another process")]
    QueueBusy {
        op: &'static str,
        dir: &'static str,
        port: u16,
        queue: u16,
    },
    /// A network interface does not exist.
    #[error("failed to open interface '{iface}': no such interface in this network namespace")]
    NoSuchInterface { iface: String },
    /// A system call failed.
    #[error("failed to {op} {what}: {source}")]
    Os {
        op: &'static str,
        what: String,
        #[source]
        source: io::Error,
    },
    /// A pcap file is malformed or truncated.
    #[error("failed to read pcap '{path}': {why}")]
    BadPcap { path: String, why: String },
    /// An EAL call failed.
    #[error("failed to {op} {what}: {source}")]
    Eal {
        op: &'static str,
        what: String,
        #[source]
        source: Box<eal::Error>,
    },
    /// A ring call failed.
    #[error("failed to {op} ring '{what}': {source}")]
    Ring {
        op: &'static str,
        what: String,
        #[source]
        source: Box<ring::Error>,
    },
    /// Shared port data is missing or does not match this build.
    #[error("failed to read shared data of port {port}: {why}")]
    Shared { port: u16, why: String },
    /// A secondary process asked to change a port the primary owns.
    #[error("failed to {op} port {port}: the port belongs to the primary process (pid {primary}); a secondary may only drive the queues it claims (the port keeps running)")]
    NotOwner {
        op: &'static str,
        port: u16,
        primary: i32,
    },
    /// A queue another process drives was claimed.
    #[error("failed to claim {dir} queue {queue} of port {port}: it is driven by {holder}")]
    QueueOwned {
        dir: &'static str,
        port: u16,
        queue: u16,
        holder: String,
    },
    /// Attaching to the primary's ports or claiming a queue from it failed.
    #[error("failed to {op} port {port} from the primary process: {why}")]
    Mp {
        op: &'static str,
        port: u16,
        why: String,
    },
    /// A PCI driver's probe failed.
    #[error("failed to probe PCI device {addr} with driver '{driver}': {why}")]
    PciProbe {
        addr: String,
        driver: String,
        why: String,
    },
}

impl Error {
    pub(crate) fn os(op: &'static str, what: impl Into<String>, source: io::Error) -> Error {
        Error::Os {
            op,
            what: what.into(),
            source,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
