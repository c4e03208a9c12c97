//! Opcodes, identify CNS values, feature ids, ONCS bits and the Dataset Management
//! range (NVMe 1.4 section 5, figure 139; NVM command set section 6).

use std::mem::size_of;

use super::pod::Pod;

/// Admin command opcodes (NVMe 1.4 section 5, figure 139).
pub mod admin_opc {
    /// Delete I/O Submission Queue (5.6).
    pub const DELETE_SQ: u8 = 0x00;
    /// Create I/O Submission Queue (5.4).
    pub const CREATE_SQ: u8 = 0x01;
    /// Get Log Page (5.14).
    pub const GET_LOG_PAGE: u8 = 0x02;
    /// Delete I/O Completion Queue (5.5).
    pub const DELETE_CQ: u8 = 0x04;
    /// Create I/O Completion Queue (5.3).
    pub const CREATE_CQ: u8 = 0x05;
    /// Identify (5.15).
    pub const IDENTIFY: u8 = 0x06;
    /// Abort (5.1).
    pub const ABORT: u8 = 0x08;
    /// Set Features (5.21).
    pub const SET_FEATURES: u8 = 0x09;
    /// Get Features (5.15).
    pub const GET_FEATURES: u8 = 0x0a;
    /// Doorbell Buffer Config (5.7).
    pub const DOORBELL_BUFFER_CONFIG: u8 = 0x7c;
}

/// NVM command set I/O opcodes (NVMe 1.4 section 6, figure 346).
pub mod io_opc {
    /// Flush (6.8).
    pub const FLUSH: u8 = 0x00;
    /// Write (6.15).
    pub const WRITE: u8 = 0x01;
    /// Read (6.9).
    pub const READ: u8 = 0x02;
    /// Compare (6.2).
    pub const COMPARE: u8 = 0x05;
    /// Write Zeroes (6.16).
    pub const WRITE_ZEROES: u8 = 0x08;
    /// Dataset Management (6.7).
    pub const DATASET_MANAGEMENT: u8 = 0x09;
}

/// Identify CNS values (section 5.15.1, figure 244).
pub mod cns {
    /// Identify Namespace data structure for NSID.
    pub const NAMESPACE: u32 = 0x00;
    /// Identify Controller data structure.
    pub const CONTROLLER: u32 = 0x01;
    /// Active Namespace ID list (IDs greater than NSID).
    pub const ACTIVE_NS_LIST: u32 = 0x02;
}

/// Feature identifiers (section 5.21.1, figure 271).
pub mod feat {
    /// Number of Queues (5.21.1.7).
    pub const NUMBER_OF_QUEUES: u32 = 0x07;
}

/// OACS bit 8: Doorbell Buffer Config supported (figure 247).
pub const OACS_DBBUF: u16 = 1 << 8;
/// ONCS bits (figure 247): Compare (0), Write Uncorrectable (1), Dataset Management (2),
/// Write Zeroes (3).
pub mod oncs {
    /// Compare command supported.
    pub const COMPARE: u16 = 1 << 0;
    /// Dataset Management supported.
    pub const DSM: u16 = 1 << 2;
    /// Write Zeroes supported.
    pub const WRITE_ZEROES: u16 = 1 << 3;
}

/// Dataset Management range (NVM command set section 6.7, figure 364): 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DsmRange {
    /// Context Attributes.
    pub cattr: u32,
    /// Length in logical blocks.
    pub nlb: u32,
    /// Starting LBA.
    pub slba: u64,
}
const _: () = assert!(size_of::<DsmRange>() == 16);
// SAFETY: repr(C), integers only, no padding (4 + 4 + 8).
unsafe impl Pod for DsmRange {}

/// Dataset Management CDW11 attribute: Deallocate (AD, bit 2).
pub const DSM_ATTR_DEALLOCATE: u32 = 1 << 2;
