//! Submission and completion queue entries (NVMe 1.4 sections 4.2, 4.6).

use std::mem::size_of;

use super::pod::Pod;
use super::status::Status;

/// Submission Queue Entry: the common command format (NVMe 1.4 section 4.2, figure 105).
/// 64 bytes. `cdw0` holds the opcode (bits 7:0), fused operation (9:8), PRP/SGL select
/// (15:14, 00b = PRPs) and the command identifier (31:16).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sqe {
    /// Command Dword 0.
    pub cdw0: u32,
    /// Namespace Identifier.
    pub nsid: u32,
    /// Command Dword 2 (command specific).
    pub cdw2: u32,
    /// Command Dword 3 (command specific).
    pub cdw3: u32,
    /// Metadata Pointer.
    pub mptr: u64,
    /// Data Pointer: PRP Entry 1.
    pub prp1: u64,
    /// Data Pointer: PRP Entry 2 (second page or PRP list).
    pub prp2: u64,
    /// Command Dwords 10..=15.
    pub cdw10: u32,
    /// Command Dword 11.
    pub cdw11: u32,
    /// Command Dword 12.
    pub cdw12: u32,
    /// Command Dword 13.
    pub cdw13: u32,
    /// Command Dword 14.
    pub cdw14: u32,
    /// Command Dword 15.
    pub cdw15: u32,
}
const _: () = assert!(size_of::<Sqe>() == 64);
// SAFETY: repr(C), only integers, 64 bytes with no padding (checked above).
unsafe impl Pod for Sqe {}

impl Sqe {
    /// A command with `opcode`, command id `cid` and namespace `nsid`; other fields 0.
    pub fn new(opcode: u8, cid: u16, nsid: u32) -> Sqe {
        Sqe {
            cdw0: opcode as u32 | ((cid as u32) << 16),
            nsid,
            ..Default::default()
        }
    }
    /// The opcode.
    pub fn opcode(&self) -> u8 {
        self.cdw0 as u8
    }
    /// The command identifier.
    pub fn cid(&self) -> u16 {
        (self.cdw0 >> 16) as u16
    }
    /// Set the command identifier.
    pub fn set_cid(&mut self, cid: u16) {
        self.cdw0 = (self.cdw0 & 0xffff) | ((cid as u32) << 16);
    }
    /// For read/write/compare/write zeroes: starting LBA (CDW10/11) and 0-based block
    /// count (CDW12 bits 15:0), NVMe 1.4 NVM command set section 6.9.
    pub fn set_lba_range(&mut self, slba: u64, nlb: u32) {
        self.cdw10 = slba as u32;
        self.cdw11 = (slba >> 32) as u32;
        self.cdw12 = (self.cdw12 & !0xffff) | (nlb - 1);
    }
}

/// Completion Queue Entry (NVMe 1.4 section 4.6, figure 124). 16 bytes. `status` bit 0
/// is the Phase Tag, bits 15:1 the Status Field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cqe {
    /// Dword 0: command specific.
    pub dw0: u32,
    /// Dword 1: reserved.
    pub dw1: u32,
    /// SQ Head Pointer.
    pub sqhd: u16,
    /// SQ Identifier.
    pub sqid: u16,
    /// Command Identifier.
    pub cid: u16,
    /// Phase Tag (bit 0) and Status Field (bits 15:1).
    pub status: u16,
}
const _: () = assert!(size_of::<Cqe>() == 16);
// SAFETY: repr(C), only integers, 16 bytes with no padding (checked above).
unsafe impl Pod for Cqe {}

impl Cqe {
    /// Phase Tag.
    pub fn phase(&self) -> bool {
        self.status & 1 != 0
    }
    /// The Status Field without the phase bit.
    pub fn status(&self) -> Status {
        Status(self.status >> 1)
    }
}
