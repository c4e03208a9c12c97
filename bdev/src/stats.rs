//! I/O statistics (SPDK's `spdk_bdev_io_stat`, the fields `bdev_get_iostat` reports).
//!
//! Each channel counts its own completions in plain per-type counters
//! ([`ChannelCounters`]: no atomics, no sharing on the data path); a bdev keeps the
//! totals of channels already destroyed, and `bdev_get_iostat` adds every live
//! channel's counters to them, visiting each channel on its thread (as SPDK sums its
//! per-channel `spdk_bdev_io_stat`).

use serde_json::{json, Value};

use crate::io::IoType;

/// Counters of successful I/O: bytes, operations and TSC ticks from submit to
/// completion, per type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Bytes read.
    pub bytes_read: u64,
    /// Reads completed.
    pub num_read_ops: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Writes completed.
    pub num_write_ops: u64,
    /// Bytes unmapped.
    pub bytes_unmapped: u64,
    /// Unmaps completed.
    pub num_unmap_ops: u64,
    /// Bytes compared (compare and the compare half of compare-and-write).
    pub bytes_copied: u64,
    /// Write-zeroes completed.
    pub num_write_zeroes_ops: u64,
    /// Compares completed.
    pub num_compare_ops: u64,
    /// Flushes completed.
    pub num_flush_ops: u64,
    /// Resets completed.
    pub num_reset_ops: u64,
    /// Compare-and-writes completed.
    pub num_compare_and_write_ops: u64,
    /// Ticks spent in reads.
    pub read_latency_ticks: u64,
    /// Ticks spent in writes.
    pub write_latency_ticks: u64,
    /// Ticks spent in unmaps.
    pub unmap_latency_ticks: u64,
    /// Ticks spent in the other types.
    pub other_latency_ticks: u64,
    /// Failed I/Os (any type).
    pub num_failed_ops: u64,
}

impl IoStats {
    /// Count one completed request of `bytes` that took `ticks`.
    pub fn account(&mut self, t: IoType, bytes: u64, ticks: u64, ok: bool) {
        if !ok {
            self.num_failed_ops += 1;
            return;
        }
        match t {
            IoType::Read => {
                self.bytes_read += bytes;
                self.num_read_ops += 1;
                self.read_latency_ticks += ticks;
            }
            IoType::Write => {
                self.bytes_written += bytes;
                self.num_write_ops += 1;
                self.write_latency_ticks += ticks;
            }
            IoType::Unmap => {
                self.bytes_unmapped += bytes;
                self.num_unmap_ops += 1;
                self.unmap_latency_ticks += ticks;
            }
            IoType::WriteZeroes => {
                self.num_write_zeroes_ops += 1;
                self.other_latency_ticks += ticks;
            }
            IoType::Flush => {
                self.num_flush_ops += 1;
                self.other_latency_ticks += ticks;
            }
            IoType::Reset => {
                self.num_reset_ops += 1;
                self.other_latency_ticks += ticks;
            }
            IoType::Compare => {
                self.bytes_copied += bytes;
                self.num_compare_ops += 1;
                self.other_latency_ticks += ticks;
            }
            IoType::CompareAndWrite => {
                self.bytes_written += bytes;
                self.num_compare_and_write_ops += 1;
                self.other_latency_ticks += ticks;
            }
        }
    }

    /// Add `o` into `self`.
    pub fn add(&mut self, o: &IoStats) {
        self.bytes_read += o.bytes_read;
        self.num_read_ops += o.num_read_ops;
        self.bytes_written += o.bytes_written;
        self.num_write_ops += o.num_write_ops;
        self.bytes_unmapped += o.bytes_unmapped;
        self.num_unmap_ops += o.num_unmap_ops;
        self.bytes_copied += o.bytes_copied;
        self.num_write_zeroes_ops += o.num_write_zeroes_ops;
        self.num_compare_ops += o.num_compare_ops;
        self.num_flush_ops += o.num_flush_ops;
        self.num_reset_ops += o.num_reset_ops;
        self.num_compare_and_write_ops += o.num_compare_and_write_ops;
        self.read_latency_ticks += o.read_latency_ticks;
        self.write_latency_ticks += o.write_latency_ticks;
        self.unmap_latency_ticks += o.unmap_latency_ticks;
        self.other_latency_ticks += o.other_latency_ticks;
        self.num_failed_ops += o.num_failed_ops;
    }

    /// The fields of one `bdev_get_iostat` entry (SPDK's names).
    pub fn to_json(&self, name: &str) -> Value {
        json!({
            "name": name,
            "bytes_read": self.bytes_read,
            "num_read_ops": self.num_read_ops,
            "bytes_written": self.bytes_written,
            "num_write_ops": self.num_write_ops,
            "bytes_unmapped": self.bytes_unmapped,
            "num_unmap_ops": self.num_unmap_ops,
            "bytes_copied": self.bytes_copied,
            "num_copy_ops": self.num_compare_ops,
            "read_latency_ticks": self.read_latency_ticks,
            "write_latency_ticks": self.write_latency_ticks,
            "unmap_latency_ticks": self.unmap_latency_ticks,
            "copy_latency_ticks": self.other_latency_ticks,
            "num_write_zeroes_ops": self.num_write_zeroes_ops,
            "num_flush_ops": self.num_flush_ops,
            "num_reset_ops": self.num_reset_ops,
            "num_compare_ops": self.num_compare_ops,
            "num_compare_and_write_ops": self.num_compare_and_write_ops,
            "num_failed_ops": self.num_failed_ops,
        })
    }
}

/// Blocks, completions and ticks of one I/O type.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TypeCounters {
    blocks: u64,
    ops: u64,
    ticks: u64,
}

/// A channel's counters, indexed by [`IoType`] so that counting a completion is three
/// additions (folded into [`IoStats`]'s fields when read, blocks into bytes by the
/// channel's block size: [`ChannelCounters::stats`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChannelCounters {
    per_type: [TypeCounters; IoType::ALL.len()],
    failed: u64,
}

impl ChannelCounters {
    /// Count one completed request of `blocks` that took `ticks`.
    #[inline]
    pub(crate) fn account(&mut self, t: IoType, blocks: u64, ticks: u64, ok: bool) {
        if !ok {
            self.failed += 1;
            return;
        }
        let c = &mut self.per_type[t.index()];
        c.blocks += blocks;
        c.ops += 1;
        c.ticks += ticks;
    }

    /// The counters as `bdev_get_iostat` reports them, for blocks of `block_size`.
    pub(crate) fn stats(&self, block_size: u32) -> IoStats {
        let bs = u64::from(block_size);
        let [read, write, zeroes, unmap, flush, reset, compare, caw] = self.per_type;
        IoStats {
            bytes_read: read.blocks * bs,
            num_read_ops: read.ops,
            read_latency_ticks: read.ticks,
            bytes_written: (write.blocks + caw.blocks) * bs,
            num_write_ops: write.ops,
            write_latency_ticks: write.ticks,
            bytes_unmapped: unmap.blocks * bs,
            num_unmap_ops: unmap.ops,
            unmap_latency_ticks: unmap.ticks,
            bytes_copied: compare.blocks * bs,
            num_write_zeroes_ops: zeroes.ops,
            num_flush_ops: flush.ops,
            num_reset_ops: reset.ops,
            num_compare_ops: compare.ops,
            num_compare_and_write_ops: caw.ops,
            other_latency_ticks: zeroes.ticks
                + flush.ticks
                + reset.ticks
                + compare.ticks
                + caw.ticks,
            num_failed_ops: self.failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_counters_read_as_the_per_field_accounting() {
        let mut want = IoStats::default();
        let mut c = ChannelCounters::default();
        for (i, t) in IoType::ALL.into_iter().enumerate() {
            let i = i as u64;
            for (blocks, ticks, ok) in [(i + 1, 10 + i, true), (8, 7 * i, false)] {
                want.account(t, blocks * 512, ticks, ok);
                c.account(t, blocks, ticks, ok);
            }
            want.account(t, (16 + i) * 512, 3, true);
            c.account(t, 16 + i, 3, true);
        }
        assert_eq!(c.stats(512), want);
        assert_eq!(want.num_failed_ops, IoType::ALL.len() as u64);
        assert_ne!(want.bytes_read, want.bytes_written);
    }
}
