//! NVMe register and data-structure definitions, NVM Express Base Specification 1.4
//! (June 2019). Every structure the device reads or writes is `#[repr(C)]`, its size is
//! checked at compile time, and it implements [`Pod`] so it may be copied to and from
//! DMA memory with volatile accesses ([`read_volatile_pod`], [`write_volatile_pod`]).
//!
//! Nothing here touches a device; the driver ([`crate::ctrlr`], [`crate::qpair`]) does.

use std::mem::size_of;

/// Plain old data: any bit pattern is a valid value, there is no padding and no pointer,
/// so a value may be copied byte-for-byte from memory a device wrote.
///
/// # Safety
/// Implement only for `#[repr(C)]` (or transparent) types made of integers and arrays of
/// integers, with no padding bytes, for which every bit pattern is valid.
pub unsafe trait Pod: Copy + 'static {}

// SAFETY: integers: every bit pattern valid, no padding.
unsafe impl Pod for u8 {}
// SAFETY: as above.
unsafe impl Pod for u16 {}
// SAFETY: as above.
unsafe impl Pod for u32 {}
// SAFETY: as above.
unsafe impl Pod for u64 {}

/// Volatile copy of a `T` from memory a device may write.
///
/// # Safety
/// `p` must be valid for reads of `size_of::<T>()` bytes and aligned for `T`.
#[inline]
pub unsafe fn read_volatile_pod<T: Pod>(p: *const T) -> T {
    // SAFETY: forwarded caller contract; `T: Pod` makes any bytes the device left valid.
    unsafe { std::ptr::read_volatile(p) }
}

/// Volatile store of a `T` into memory a device may read.
///
/// # Safety
/// `p` must be valid for writes of `size_of::<T>()` bytes and aligned for `T`.
#[inline]
pub unsafe fn write_volatile_pod<T: Pod>(p: *mut T, v: T) {
    // SAFETY: forwarded caller contract.
    unsafe { std::ptr::write_volatile(p, v) }
}

/// Volatile byte-wise copy of a whole `T` out of device memory (for large structures
/// such as the 4 KiB identify data, where one volatile load of the whole value would be
/// a huge memcpy the compiler may not split).
///
/// # Safety
/// `p` must be valid for reads of `size_of::<T>()` bytes.
pub unsafe fn read_volatile_bytes<T: Pod>(p: *const u8) -> Box<T> {
    let mut out = Box::<T>::new_uninit();
    let dst = out.as_mut_ptr().cast::<u8>();
    for i in 0..size_of::<T>() {
        // SAFETY: `p + i` is in range per the caller; `dst + i` is in the fresh box.
        unsafe { dst.add(i).write(std::ptr::read_volatile(p.add(i))) };
    }
    // SAFETY: every byte was written and `T: Pod` accepts any bytes.
    unsafe { out.assume_init() }
}

// ---------------------------------------------------------------------------------------
// Controller registers (section 3.1)
// ---------------------------------------------------------------------------------------

/// Register offsets in BAR 0 (NVMe 1.4 section 3.1, figure 78).
pub mod reg {
    /// Controller Capabilities, 64 bit (3.1.1).
    pub const CAP: u64 = 0x00;
    /// Version (3.1.2).
    pub const VS: u64 = 0x08;
    /// Interrupt Mask Set (3.1.3).
    pub const INTMS: u64 = 0x0c;
    /// Interrupt Mask Clear (3.1.4).
    pub const INTMC: u64 = 0x10;
    /// Controller Configuration (3.1.5).
    pub const CC: u64 = 0x14;
    /// Controller Status (3.1.6).
    pub const CSTS: u64 = 0x1c;
    /// NVM Subsystem Reset (3.1.7).
    pub const NSSR: u64 = 0x20;
    /// Admin Queue Attributes (3.1.8).
    pub const AQA: u64 = 0x24;
    /// Admin Submission Queue base address, 64 bit (3.1.9).
    pub const ASQ: u64 = 0x28;
    /// Admin Completion Queue base address, 64 bit (3.1.10).
    pub const ACQ: u64 = 0x30;
    /// First doorbell (3.1.24): SQ 0 tail.
    pub const DOORBELL_BASE: u64 = 0x1000;
}

/// Controller Capabilities (CAP, NVMe 1.4 section 3.1.1), decoded from the 64-bit value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap(pub u64);

impl Cap {
    /// Maximum Queue Entries Supported, as a count (MQES is 0-based).
    pub fn max_queue_entries(self) -> u32 {
        (self.0 & 0xffff) as u32 + 1
    }
    /// Contiguous Queues Required.
    pub fn cqr(self) -> bool {
        self.0 & (1 << 16) != 0
    }
    /// Timeout (TO): worst-case time for CSTS.RDY to change after CC.EN changes, in
    /// milliseconds (the field counts 500 ms units).
    pub fn timeout_ms(self) -> u64 {
        ((self.0 >> 24) & 0xff) * 500
    }
    /// Doorbell Stride (DSTRD): doorbells are `4 << dstrd` bytes apart.
    pub fn dstrd(self) -> u32 {
        ((self.0 >> 32) & 0xf) as u32
    }
    /// NVM Subsystem Reset Supported.
    pub fn nssrs(self) -> bool {
        self.0 & (1 << 36) != 0
    }
    /// Command Sets Supported (bit 0: NVM command set).
    pub fn css(self) -> u8 {
        ((self.0 >> 37) & 0xff) as u8
    }
    /// Memory Page Size Minimum in bytes (`2^(12 + MPSMIN)`).
    pub fn mps_min(self) -> u64 {
        1 << (12 + ((self.0 >> 48) & 0xf))
    }
    /// Memory Page Size Maximum in bytes (`2^(12 + MPSMAX)`).
    pub fn mps_max(self) -> u64 {
        1 << (12 + ((self.0 >> 52) & 0xf))
    }
    /// Offset of SQ `qid`'s tail doorbell (section 3.1.24).
    pub fn sq_doorbell(self, qid: u16) -> u64 {
        reg::DOORBELL_BASE + (2 * qid as u64) * (4 << self.dstrd())
    }
    /// Offset of CQ `qid`'s head doorbell (section 3.1.25).
    pub fn cq_doorbell(self, qid: u16) -> u64 {
        reg::DOORBELL_BASE + (2 * qid as u64 + 1) * (4 << self.dstrd())
    }
}

/// Version (VS, section 3.1.2): `(major, minor, tertiary)`.
pub fn version(vs: u32) -> (u16, u8, u8) {
    ((vs >> 16) as u16, (vs >> 8) as u8, vs as u8)
}

/// Controller Configuration bits (CC, section 3.1.5).
pub mod cc {
    /// Enable.
    pub const EN: u32 = 1 << 0;
    /// I/O Command Set Selected: NVM command set (000b), bits 6:4.
    pub const CSS_NVM: u32 = 0 << 4;
    /// Memory Page Size shift (bits 10:7): page = 2^(12+MPS).
    pub const MPS_SHIFT: u32 = 7;
    /// Arbitration Mechanism: round robin (000b), bits 13:11.
    pub const AMS_RR: u32 = 0 << 11;
    /// Shutdown Notification (bits 15:14): normal shutdown.
    pub const SHN_NORMAL: u32 = 1 << 14;
    /// I/O Submission Queue Entry Size: 2^6 = 64 bytes, bits 19:16.
    pub const IOSQES_64: u32 = 6 << 16;
    /// I/O Completion Queue Entry Size: 2^4 = 16 bytes, bits 23:20.
    pub const IOCQES_16: u32 = 4 << 20;
}

/// Controller Status bits (CSTS, section 3.1.6).
pub mod csts {
    /// Ready.
    pub const RDY: u32 = 1 << 0;
    /// Controller Fatal Status.
    pub const CFS: u32 = 1 << 1;
    /// Shutdown Status (bits 3:2); 10b = shutdown complete.
    pub const SHST_MASK: u32 = 3 << 2;
    /// Shutdown processing complete.
    pub const SHST_COMPLETE: u32 = 2 << 2;
}

// ---------------------------------------------------------------------------------------
// Queue entries (section 4.2, 4.6)
// ---------------------------------------------------------------------------------------

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

/// Status Field of a completion (NVMe 1.4 section 4.6.1, figure 126), without the phase
/// tag: SC bits 7:0, SCT 10:8, CRD 12:11, More 13, DNR 14.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u16);

impl Status {
    /// Success.
    pub const SUCCESS: Status = Status(0);
    /// Status Code.
    pub fn sc(self) -> u8 {
        self.0 as u8
    }
    /// Status Code Type.
    pub fn sct(self) -> u8 {
        ((self.0 >> 8) & 7) as u8
    }
    /// Do Not Retry.
    pub fn dnr(self) -> bool {
        self.0 & (1 << 14) != 0
    }
    /// More information in the Error Information log.
    pub fn more(self) -> bool {
        self.0 & (1 << 13) != 0
    }
    /// SCT 0, SC 0.
    pub fn is_success(self) -> bool {
        self.sct() == 0 && self.sc() == 0
    }
    /// Build from SCT and SC (tests, fakes).
    pub fn new(sct: u8, sc: u8) -> Status {
        Status(((sct as u16 & 7) << 8) | sc as u16)
    }
    /// Spec name of the status (figures 127–130 and the NVM command set's additions).
    pub fn name(self) -> &'static str {
        status_name(self.sct(), self.sc())
    }
}

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SCT {:#x} SC {:#04x} ({})",
            self.sct(),
            self.sc(),
            self.name()
        )
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Status Code Types (section 4.6.1.1, figure 127).
pub mod sct {
    /// Generic Command Status.
    pub const GENERIC: u8 = 0;
    /// Command Specific Status.
    pub const COMMAND_SPECIFIC: u8 = 1;
    /// Media and Data Integrity Errors.
    pub const MEDIA: u8 = 2;
    /// Path Related Status.
    pub const PATH: u8 = 3;
    /// Vendor Specific.
    pub const VENDOR: u8 = 7;
}

/// Generic Command Status codes (section 4.6.1.2.1, figures 128 and 129).
pub mod generic {
    /// Successful Completion.
    pub const SUCCESS: u8 = 0x00;
    /// Invalid Command Opcode.
    pub const INVALID_OPCODE: u8 = 0x01;
    /// Invalid Field in Command.
    pub const INVALID_FIELD: u8 = 0x02;
    /// Command ID Conflict.
    pub const CID_CONFLICT: u8 = 0x03;
    /// Data Transfer Error.
    pub const DATA_TRANSFER_ERROR: u8 = 0x04;
    /// Commands Aborted due to Power Loss Notification.
    pub const ABORTED_POWER_LOSS: u8 = 0x05;
    /// Internal Error.
    pub const INTERNAL_ERROR: u8 = 0x06;
    /// Command Abort Requested.
    pub const ABORT_REQUESTED: u8 = 0x07;
    /// Command Aborted due to SQ Deletion.
    pub const ABORTED_SQ_DELETION: u8 = 0x08;
    /// Command Aborted due to Failed Fused Command.
    pub const ABORTED_FAILED_FUSED: u8 = 0x09;
    /// Command Aborted due to Missing Fused Command.
    pub const ABORTED_MISSING_FUSED: u8 = 0x0a;
    /// Invalid Namespace or Format.
    pub const INVALID_NAMESPACE: u8 = 0x0b;
    /// Command Sequence Error.
    pub const COMMAND_SEQUENCE_ERROR: u8 = 0x0c;
    /// PRP Offset Invalid.
    pub const INVALID_PRP_OFFSET: u8 = 0x13;
    /// LBA Out of Range (NVM command set).
    pub const LBA_OUT_OF_RANGE: u8 = 0x80;
    /// Capacity Exceeded.
    pub const CAPACITY_EXCEEDED: u8 = 0x81;
    /// Namespace Not Ready.
    pub const NAMESPACE_NOT_READY: u8 = 0x82;
    /// Reservation Conflict.
    pub const RESERVATION_CONFLICT: u8 = 0x83;
    /// Format In Progress.
    pub const FORMAT_IN_PROGRESS: u8 = 0x84;
}

/// Command Specific Status codes (section 4.6.1.2.2, figure 130, and NVM command set).
pub mod specific {
    /// Completion Queue Invalid.
    pub const INVALID_CQ: u8 = 0x00;
    /// Invalid Queue Identifier.
    pub const INVALID_QID: u8 = 0x01;
    /// Invalid Queue Size.
    pub const INVALID_QUEUE_SIZE: u8 = 0x02;
    /// Abort Command Limit Exceeded.
    pub const ABORT_LIMIT_EXCEEDED: u8 = 0x03;
    /// Asynchronous Event Request Limit Exceeded.
    pub const AER_LIMIT_EXCEEDED: u8 = 0x05;
    /// Feature Identifier Not Saveable.
    pub const FEATURE_NOT_SAVEABLE: u8 = 0x0d;
    /// Feature Not Changeable.
    pub const FEATURE_NOT_CHANGEABLE: u8 = 0x0e;
    /// Conflicting Attributes (Dataset Management, read, write).
    pub const CONFLICTING_ATTRIBUTES: u8 = 0x80;
    /// Invalid Protection Information.
    pub const INVALID_PROTECTION_INFO: u8 = 0x81;
    /// Attempted Write to Read Only Range.
    pub const WRITE_TO_READ_ONLY: u8 = 0x82;
}

/// Media and Data Integrity Errors (section 4.6.1.2.3, figure 131).
pub mod media {
    /// Write Fault.
    pub const WRITE_FAULT: u8 = 0x80;
    /// Unrecovered Read Error.
    pub const UNRECOVERED_READ: u8 = 0x81;
    /// End-to-end Guard Check Error.
    pub const GUARD_CHECK: u8 = 0x82;
    /// End-to-end Application Tag Check Error.
    pub const APP_TAG_CHECK: u8 = 0x83;
    /// End-to-end Reference Tag Check Error.
    pub const REF_TAG_CHECK: u8 = 0x84;
    /// Compare Failure.
    pub const COMPARE_FAILURE: u8 = 0x85;
    /// Access Denied.
    pub const ACCESS_DENIED: u8 = 0x86;
    /// Deallocated or Unwritten Logical Block.
    pub const DEALLOCATED_OR_UNWRITTEN: u8 = 0x87;
}

fn status_name(sct_: u8, sc: u8) -> &'static str {
    match (sct_, sc) {
        (sct::GENERIC, generic::SUCCESS) => "successful completion",
        (sct::GENERIC, generic::INVALID_OPCODE) => "invalid command opcode",
        (sct::GENERIC, generic::INVALID_FIELD) => "invalid field in command",
        (sct::GENERIC, generic::CID_CONFLICT) => "command ID conflict",
        (sct::GENERIC, generic::DATA_TRANSFER_ERROR) => "data transfer error",
        (sct::GENERIC, generic::ABORTED_POWER_LOSS) => "aborted due to power loss notification",
        (sct::GENERIC, generic::INTERNAL_ERROR) => "internal error",
        (sct::GENERIC, generic::ABORT_REQUESTED) => "command abort requested",
        (sct::GENERIC, generic::ABORTED_SQ_DELETION) => "aborted due to SQ deletion",
        (sct::GENERIC, generic::ABORTED_FAILED_FUSED) => "aborted due to failed fused command",
        (sct::GENERIC, generic::ABORTED_MISSING_FUSED) => "aborted due to missing fused command",
        (sct::GENERIC, generic::INVALID_NAMESPACE) => "invalid namespace or format",
        (sct::GENERIC, generic::COMMAND_SEQUENCE_ERROR) => "command sequence error",
        (sct::GENERIC, generic::INVALID_PRP_OFFSET) => "PRP offset invalid",
        (sct::GENERIC, generic::LBA_OUT_OF_RANGE) => "LBA out of range",
        (sct::GENERIC, generic::CAPACITY_EXCEEDED) => "capacity exceeded",
        (sct::GENERIC, generic::NAMESPACE_NOT_READY) => "namespace not ready",
        (sct::GENERIC, generic::RESERVATION_CONFLICT) => "reservation conflict",
        (sct::GENERIC, generic::FORMAT_IN_PROGRESS) => "format in progress",
        (sct::COMMAND_SPECIFIC, specific::INVALID_CQ) => "completion queue invalid",
        (sct::COMMAND_SPECIFIC, specific::INVALID_QID) => "invalid queue identifier",
        (sct::COMMAND_SPECIFIC, specific::INVALID_QUEUE_SIZE) => "invalid queue size",
        (sct::COMMAND_SPECIFIC, specific::ABORT_LIMIT_EXCEEDED) => "abort command limit exceeded",
        (sct::COMMAND_SPECIFIC, specific::AER_LIMIT_EXCEEDED) => {
            "asynchronous event request limit exceeded"
        }
        (sct::COMMAND_SPECIFIC, specific::FEATURE_NOT_SAVEABLE) => {
            "feature identifier not saveable"
        }
        (sct::COMMAND_SPECIFIC, specific::FEATURE_NOT_CHANGEABLE) => "feature not changeable",
        (sct::COMMAND_SPECIFIC, specific::CONFLICTING_ATTRIBUTES) => "conflicting attributes",
        (sct::COMMAND_SPECIFIC, specific::INVALID_PROTECTION_INFO) => {
            "invalid protection information"
        }
        (sct::COMMAND_SPECIFIC, specific::WRITE_TO_READ_ONLY) => {
            "attempted write to read only range"
        }
        (sct::MEDIA, media::WRITE_FAULT) => "write fault",
        (sct::MEDIA, media::UNRECOVERED_READ) => "unrecovered read error",
        (sct::MEDIA, media::GUARD_CHECK) => "end-to-end guard check error",
        (sct::MEDIA, media::APP_TAG_CHECK) => "end-to-end application tag check error",
        (sct::MEDIA, media::REF_TAG_CHECK) => "end-to-end reference tag check error",
        (sct::MEDIA, media::COMPARE_FAILURE) => "compare failure",
        (sct::MEDIA, media::ACCESS_DENIED) => "access denied",
        (sct::MEDIA, media::DEALLOCATED_OR_UNWRITTEN) => "deallocated or unwritten logical block",
        (sct::PATH, _) => "path related status",
        (sct::VENDOR, _) => "vendor specific",
        _ => "unknown status",
    }
}

// ---------------------------------------------------------------------------------------
// Opcodes (section 5, figure 139; NVM command set section 6, figure 346)
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Identify data (section 5.15.2)
// ---------------------------------------------------------------------------------------

/// Identify Controller data structure (NVMe 1.4 section 5.15.2.1, figure 247). 4096
/// bytes. Fields the driver does not use are kept as reserved byte arrays.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IdentifyController {
    /// PCI Vendor ID.
    pub vid: u16,
    /// PCI Subsystem Vendor ID.
    pub ssvid: u16,
    /// Serial Number (ASCII, space padded).
    pub sn: [u8; 20],
    /// Model Number (ASCII, space padded).
    pub mn: [u8; 40],
    /// Firmware Revision.
    pub fr: [u8; 8],
    /// Recommended Arbitration Burst.
    pub rab: u8,
    /// IEEE OUI Identifier.
    pub ieee: [u8; 3],
    /// Controller Multi-Path I/O and Namespace Sharing Capabilities.
    pub cmic: u8,
    /// Maximum Data Transfer Size: `2^mdts` minimum pages (CAP.MPSMIN); 0 = no limit.
    pub mdts: u8,
    /// Controller ID.
    pub cntlid: u16,
    /// Version.
    pub ver: u32,
    /// RTD3 Resume Latency.
    pub rtd3r: u32,
    /// RTD3 Entry Latency.
    pub rtd3e: u32,
    /// Optional Asynchronous Events Supported.
    pub oaes: u32,
    /// Controller Attributes.
    pub ctratt: u32,
    /// Read Recovery Levels Supported.
    pub rrls: u16,
    _rsvd102: [u8; 9],
    /// Controller Type (1 = I/O controller).
    pub cntrltype: u8,
    /// FRU Globally Unique Identifier.
    pub fguid: [u8; 16],
    /// Command Retry Delay Times 1..3.
    pub crdt: [u16; 3],
    _rsvd134: [u8; 122],
    /// Optional Admin Command Support (bit 8: Doorbell Buffer Config).
    pub oacs: u16,
    /// Abort Command Limit (0-based).
    pub acl: u8,
    /// Asynchronous Event Request Limit (0-based).
    pub aerl: u8,
    /// Firmware Updates.
    pub frmw: u8,
    /// Log Page Attributes.
    pub lpa: u8,
    /// Error Log Page Entries (0-based).
    pub elpe: u8,
    /// Number of Power States Support (0-based).
    pub npss: u8,
    /// Admin Vendor Specific Command Configuration.
    pub avscc: u8,
    /// Autonomous Power State Transition Attributes.
    pub apsta: u8,
    /// Warning Composite Temperature Threshold (kelvin).
    pub wctemp: u16,
    /// Critical Composite Temperature Threshold (kelvin).
    pub cctemp: u16,
    _rsvd270: [u8; 10],
    /// Total NVM Capacity (bytes, 128-bit little endian).
    pub tnvmcap: [u8; 16],
    /// Unallocated NVM Capacity.
    pub unvmcap: [u8; 16],
    _rsvd312: [u8; 200],
    /// Submission Queue Entry Size (required 3:0, maximum 7:4, powers of two).
    pub sqes: u8,
    /// Completion Queue Entry Size.
    pub cqes: u8,
    /// Maximum Outstanding Commands.
    pub maxcmd: u16,
    /// Number of Namespaces (highest valid NSID).
    pub nn: u32,
    /// Optional NVM Command Support.
    pub oncs: u16,
    /// Fused Operation Support.
    pub fuses: u16,
    /// Format NVM Attributes.
    pub fna: u8,
    /// Volatile Write Cache.
    pub vwc: u8,
    /// Atomic Write Unit Normal.
    pub awun: u16,
    /// Atomic Write Unit Power Fail.
    pub awupf: u16,
    /// NVM Vendor Specific Command Configuration.
    pub nvscc: u8,
    /// Namespace Write Protection Capabilities.
    pub nwpc: u8,
    /// Atomic Compare & Write Unit.
    pub acwu: u16,
    _rsvd534: u16,
    /// SGL Support.
    pub sgls: u32,
    /// Maximum Number of Allowed Namespaces.
    pub mnan: u32,
    _rsvd544: [u8; 224],
    /// NVM Subsystem NVMe Qualified Name.
    pub subnqn: [u8; 256],
    _rsvd1024: [u8; 1024],
    /// Power State Descriptors (32 x 32 bytes).
    pub psd: [[u8; 32]; 32],
    /// Vendor Specific.
    pub vs: [u8; 1024],
}
const _: () = assert!(size_of::<IdentifyController>() == 4096);
const _: () = assert!(std::mem::offset_of!(IdentifyController, mdts) == 77);
const _: () = assert!(std::mem::offset_of!(IdentifyController, oacs) == 256);
const _: () = assert!(std::mem::offset_of!(IdentifyController, tnvmcap) == 280);
const _: () = assert!(std::mem::offset_of!(IdentifyController, sqes) == 512);
const _: () = assert!(std::mem::offset_of!(IdentifyController, nn) == 516);
const _: () = assert!(std::mem::offset_of!(IdentifyController, sgls) == 536);
const _: () = assert!(std::mem::offset_of!(IdentifyController, subnqn) == 768);
const _: () = assert!(std::mem::offset_of!(IdentifyController, psd) == 2048);
// SAFETY: repr(C), integers and integer arrays only; the offset asserts above and the
// total size show there is no padding.
unsafe impl Pod for IdentifyController {}

/// Trim the space/NUL padding of an ASCII identify field.
pub fn ascii_field(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_end_matches([' ', '\0'])
        .to_string()
}

impl IdentifyController {
    /// Serial number, trimmed.
    pub fn serial(&self) -> String {
        ascii_field(&self.sn)
    }
    /// Model number, trimmed.
    pub fn model(&self) -> String {
        ascii_field(&self.mn)
    }
    /// Firmware revision, trimmed.
    pub fn firmware(&self) -> String {
        ascii_field(&self.fr)
    }
    /// Subsystem NQN, trimmed.
    pub fn subnqn(&self) -> String {
        ascii_field(&self.subnqn)
    }
    /// Total NVM capacity in bytes (low 64 bits of the 128-bit field).
    pub fn tnvmcap(&self) -> u64 {
        u64::from_le_bytes(self.tnvmcap[..8].try_into().unwrap_or([0; 8]))
    }
    /// Maximum data transfer size in bytes given the minimum page size, `None` if
    /// unlimited (MDTS = 0).
    pub fn max_transfer(&self, mps_min: u64) -> Option<u64> {
        (self.mdts != 0).then(|| mps_min << self.mdts.min(20))
    }
}

impl std::fmt::Debug for IdentifyController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentifyController")
            .field("vid", &format_args!("{:#06x}", self.vid))
            .field("serial", &self.serial())
            .field("model", &self.model())
            .field("firmware", &self.firmware())
            .field("mdts", &self.mdts)
            .field("nn", &self.nn)
            .finish_non_exhaustive()
    }
}

/// LBA Format Data Structure (NVM command set, NVMe 1.4 section 5.15.2.2, figure 249):
/// MS bits 15:0, LBADS 23:16 (block size `2^LBADS`), RP 25:24.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LbaFormat(pub u32);
const _: () = assert!(size_of::<LbaFormat>() == 4);
// SAFETY: transparent-like repr(C) over a u32.
unsafe impl Pod for LbaFormat {}

impl LbaFormat {
    /// Metadata bytes per block.
    pub fn ms(self) -> u16 {
        self.0 as u16
    }
    /// LBA data size as a power of two (0 = format not available).
    pub fn lbads(self) -> u8 {
        (self.0 >> 16) as u8
    }
    /// Block size in bytes (0 if the format is not available or the size is absurd).
    pub fn block_size(self) -> u64 {
        match self.lbads() {
            9..=31 => 1 << self.lbads(),
            _ => 0,
        }
    }
    /// Relative Performance (0 best .. 3 degraded).
    pub fn rp(self) -> u8 {
        ((self.0 >> 24) & 3) as u8
    }
}

/// Identify Namespace data structure (NVM command set, NVMe 1.4 section 5.15.2.2,
/// figure 245). 4096 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IdentifyNamespace {
    /// Namespace Size in logical blocks.
    pub nsze: u64,
    /// Namespace Capacity.
    pub ncap: u64,
    /// Namespace Utilization.
    pub nuse: u64,
    /// Namespace Features (bit 0: thin provisioning; bit 2: DAE; bit 3: UIDREUSE).
    pub nsfeat: u8,
    /// Number of LBA Formats (0-based).
    pub nlbaf: u8,
    /// Formatted LBA Size: bits 3:0 index of the format in use, bit 4 metadata at end
    /// of LBA.
    pub flbas: u8,
    /// Metadata Capabilities.
    pub mc: u8,
    /// End-to-end Data Protection Capabilities.
    pub dpc: u8,
    /// End-to-end Data Protection Type Settings.
    pub dps: u8,
    /// Namespace Multi-path I/O and Sharing Capabilities.
    pub nmic: u8,
    /// Reservation Capabilities.
    pub rescap: u8,
    /// Format Progress Indicator.
    pub fpi: u8,
    /// Deallocate Logical Block Features: bits 2:0 what a deallocated block reads as
    /// (000b not reported, 001b all zeroes, 010b all ones), bit 3 Write Zeroes may
    /// deallocate, bit 4 guard field.
    pub dlfeat: u8,
    /// Namespace Atomic Write Unit Normal.
    pub nawun: u16,
    /// Namespace Atomic Write Unit Power Fail.
    pub nawupf: u16,
    /// Namespace Atomic Compare & Write Unit.
    pub nacwu: u16,
    /// Namespace Atomic Boundary Size Normal.
    pub nabsn: u16,
    /// Namespace Atomic Boundary Offset.
    pub nabo: u16,
    /// Namespace Atomic Boundary Size Power Fail.
    pub nabspf: u16,
    /// Namespace Optimal I/O Boundary.
    pub noiob: u16,
    /// NVM Capacity (bytes, 128-bit).
    pub nvmcap: [u8; 16],
    /// Namespace Preferred Write Granularity.
    pub npwg: u16,
    /// Namespace Preferred Write Alignment.
    pub npwa: u16,
    /// Namespace Preferred Deallocate Granularity.
    pub npdg: u16,
    /// Namespace Preferred Deallocate Alignment.
    pub npda: u16,
    /// Namespace Optimal Write Size.
    pub nows: u16,
    _rsvd74: [u8; 18],
    /// ANA Group Identifier.
    pub anagrpid: u32,
    _rsvd96: [u8; 3],
    /// Namespace Attributes.
    pub nsattr: u8,
    /// NVM Set Identifier.
    pub nvmsetid: u16,
    /// Endurance Group Identifier.
    pub endgid: u16,
    /// Namespace Globally Unique Identifier.
    pub nguid: [u8; 16],
    /// IEEE Extended Unique Identifier.
    pub eui64: [u8; 8],
    /// LBA Format Support 0..=15.
    pub lbaf: [LbaFormat; 16],
    _rsvd192: [u8; 192],
    /// Vendor Specific.
    pub vs: [u8; 3712],
}
const _: () = assert!(size_of::<IdentifyNamespace>() == 4096);
const _: () = assert!(std::mem::offset_of!(IdentifyNamespace, dlfeat) == 33);
const _: () = assert!(std::mem::offset_of!(IdentifyNamespace, nvmcap) == 48);
const _: () = assert!(std::mem::offset_of!(IdentifyNamespace, anagrpid) == 92);
const _: () = assert!(std::mem::offset_of!(IdentifyNamespace, nguid) == 104);
const _: () = assert!(std::mem::offset_of!(IdentifyNamespace, lbaf) == 128);
// SAFETY: repr(C), integers and integer arrays only; offsets and total size checked.
unsafe impl Pod for IdentifyNamespace {}

impl IdentifyNamespace {
    /// Index of the LBA format in use (FLBAS bits 3:0).
    pub fn flbas_index(&self) -> usize {
        (self.flbas & 0xf) as usize
    }
    /// The LBA format in use.
    pub fn lba_format(&self) -> LbaFormat {
        self.lbaf[self.flbas_index()]
    }
    /// What deallocated blocks read as (DLFEAT bits 2:0).
    pub fn dealloc_read_value(&self) -> DeallocRead {
        match self.dlfeat & 7 {
            1 => DeallocRead::Zeroes,
            2 => DeallocRead::Ones,
            _ => DeallocRead::NotReported,
        }
    }
}

impl std::fmt::Debug for IdentifyNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentifyNamespace")
            .field("nsze", &self.nsze)
            .field("ncap", &self.ncap)
            .field("flbas", &self.flbas)
            .field("dlfeat", &self.dlfeat)
            .finish_non_exhaustive()
    }
}

/// What a deallocated logical block reads as (DLFEAT bits 2:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeallocRead {
    /// 000b: not reported.
    NotReported,
    /// 001b: all bytes 0x00.
    Zeroes,
    /// 010b: all bytes 0xff.
    Ones,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_fields() {
        // QEMU-like: MQES 0x7ff, CQR, TO 0xf, DSTRD 0, CSS NVM, MPSMAX 4 (64 KiB).
        let cap = Cap(0x7ff | (1 << 16) | (0xf << 24) | (1 << 37) | (4 << 52));
        assert_eq!(cap.max_queue_entries(), 2048);
        assert!(cap.cqr());
        assert_eq!(cap.timeout_ms(), 7500);
        assert_eq!(cap.dstrd(), 0);
        assert_eq!(cap.css(), 1);
        assert_eq!(cap.mps_min(), 4096);
        assert_eq!(cap.mps_max(), 65536);
        assert_eq!(cap.sq_doorbell(0), 0x1000);
        assert_eq!(cap.cq_doorbell(0), 0x1004);
        assert_eq!(cap.sq_doorbell(3), 0x1018);
        // A stride of 2 (16-byte doorbells).
        let cap = Cap(2 << 32);
        assert_eq!(cap.sq_doorbell(1), 0x1000 + 2 * 16);
        assert_eq!(cap.cq_doorbell(1), 0x1000 + 3 * 16);
    }

    #[test]
    fn sqe_fields() {
        let mut s = Sqe::new(io_opc::READ, 0x1234, 7);
        assert_eq!(s.opcode(), 0x02);
        assert_eq!(s.cid(), 0x1234);
        s.set_cid(9);
        assert_eq!((s.cid(), s.opcode()), (9, 0x02));
        s.set_lba_range(0x1_2345_6789, 8);
        assert_eq!((s.cdw10, s.cdw11, s.cdw12), (0x2345_6789, 1, 7));
    }

    #[test]
    fn status_fields() {
        let cqe = Cqe {
            status: (0x0285 << 1) | 1 | (1 << 15),
            ..Default::default()
        };
        assert!(cqe.phase());
        let st = cqe.status();
        assert_eq!((st.sct(), st.sc()), (2, 0x85));
        assert!(st.dnr());
        assert_eq!(st.name(), "compare failure");
        assert!(Status::new(0, 0).is_success());
        assert_eq!(Status::new(0, 0x80).name(), "LBA out of range");
        assert_eq!(Status::new(5, 1).name(), "unknown status");
    }

    #[test]
    fn lba_format() {
        let f = LbaFormat(12 << 16);
        assert_eq!((f.block_size(), f.ms(), f.rp()), (4096, 0, 0));
        assert_eq!(LbaFormat(0).block_size(), 0);
        assert_eq!(LbaFormat(63 << 16).block_size(), 0);
    }
}
