//! What one queue pair did, counted on its own thread (plain integers, no atomics):
//! how commands were batched into SQ tail updates, how many of those and of the CQ head
//! updates became MMIO doorbell writes (traps into an emulated controller), and how many
//! completions each poll found. Deterministic evidence of where a data path's cost goes,
//! independent of timing; `FP_NVME_QSTATS=1` prints them when a queue pair is deleted.

use std::fmt;

/// Counters of one queue pair (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Commands written to the SQ.
    pub sqes: u64,
    /// SQ tail updates (one per batch of commands).
    pub sq_batches: u64,
    /// SQ tail updates written to the MMIO doorbell (all of them without shadow
    /// doorbells; with them, only those the controller's EventIdx asked for).
    pub sq_mmio: u64,
    /// CQ head updates (one per poll that found completions).
    pub cq_batches: u64,
    /// CQ head updates written to the MMIO doorbell.
    pub cq_mmio: u64,
    /// Completion polls.
    pub polls: u64,
    /// Completion polls that found at least one entry.
    pub busy_polls: u64,
    /// Completion entries reaped.
    pub cqes: u64,
}

impl QueueStats {
    /// Whether `FP_NVME_QSTATS` asks for the counters on deletion (read once).
    pub(crate) fn wanted() -> bool {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ON.get_or_init(|| std::env::var_os("FP_NVME_QSTATS").is_some_and(|v| v != "0"))
    }
}

impl fmt::Display for QueueStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sqes={} sq_batches={} sq_mmio={} cq_batches={} cq_mmio={} polls={} busy_polls={} cqes={}",
            self.sqes,
            self.sq_batches,
            self.sq_mmio,
            self.cq_batches,
            self.cq_mmio,
            self.polls,
            self.busy_polls,
            self.cqes
        )
    }
}
