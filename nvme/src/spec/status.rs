//! Completion status fields and codes (NVMe 1.4 section 4.6.1).

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
