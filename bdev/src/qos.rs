//! QoS limits of a bdev (SPDK's `bdev_set_qos_limit` names). Stored here; not yet
//! enforced on the I/O path (see the crate docs: what is left).

use std::sync::Mutex;

/// The four limits SPDK names; 0 = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QosValues {
    /// I/Os per second, reads and writes together.
    pub rw_ios_per_sec: u64,
    /// MB/s, reads and writes together.
    pub rw_mbytes_per_sec: u64,
    /// MB/s of reads.
    pub r_mbytes_per_sec: u64,
    /// MB/s of writes.
    pub w_mbytes_per_sec: u64,
}

/// A bdev's limits.
#[derive(Debug, Default)]
pub struct QosLimits(Mutex<QosValues>);

impl QosLimits {
    /// The current limits.
    pub fn get(&self) -> QosValues {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
