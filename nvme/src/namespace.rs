//! Namespaces as identified (Identify Namespace, CNS 00h).

use crate::spec::{DeallocRead, IdentifyNamespace, LbaFormat};

/// A namespace as identified.
#[derive(Clone, Debug)]
pub struct Namespace {
    /// Namespace id.
    pub id: u32,
    /// NSZE: size in logical blocks.
    pub size_blocks: u64,
    /// NCAP: capacity in logical blocks.
    pub capacity_blocks: u64,
    /// NUSE: utilisation in logical blocks.
    pub used_blocks: u64,
    /// Logical block size in bytes (of the format in use).
    pub block_size: u64,
    /// Metadata bytes per block (of the format in use).
    pub metadata_size: u16,
    /// Index of the LBA format in use.
    pub format_index: usize,
    /// The LBA formats the namespace supports (NLBAF + 1 of them).
    pub formats: Vec<LbaFormat>,
    /// What deallocated blocks read as (DLFEAT).
    pub dealloc_read: DeallocRead,
    /// DLFEAT raw.
    pub dlfeat: u8,
    /// Blocks one data command may move (MDTS and the PRP list limit).
    pub max_xfer_blocks: u64,
    /// The raw identify data.
    pub data: Box<IdentifyNamespace>,
}

impl Namespace {
    /// Size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_blocks * self.block_size
    }

    /// The namespace `id` described by `d`, with transfers capped at `max_xfer` bytes;
    /// `None` for an inactive namespace (NSZE 0) or an unusable LBA format (logged).
    pub(crate) fn from_identify(
        id: u32,
        d: Box<IdentifyNamespace>,
        max_xfer: u64,
        addr: &str,
    ) -> Option<Namespace> {
        if d.nsze == 0 {
            return None;
        }
        let f = d.lba_format();
        let bs = f.block_size();
        if bs == 0 {
            eal::log_warn!(
                "nvme {addr}: namespace {id} has an unusable LBA format {:#x}; skipped",
                f.0
            );
            return None;
        }
        let nlbaf = (d.nlbaf as usize + 1).min(16);
        Some(Namespace {
            id,
            size_blocks: d.nsze,
            capacity_blocks: d.ncap,
            used_blocks: d.nuse,
            block_size: bs,
            metadata_size: f.ms(),
            format_index: d.flbas_index(),
            formats: d.lbaf[..nlbaf].to_vec(),
            dealloc_read: d.dealloc_read_value(),
            dlfeat: d.dlfeat,
            max_xfer_blocks: (max_xfer / bs).clamp(1, 65536),
            data: d,
        })
    }
}
