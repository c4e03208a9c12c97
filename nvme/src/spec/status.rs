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

/// Defines the codes of one status code type as constants in a module, documented with
/// their spec names, and the table of those names [`Status::name`] reads.
macro_rules! status_codes {
    ($(#[$doc:meta])* $module:ident, $names:ident {
        $($code:ident = $value:literal, $name:literal;)*
    }) => {
        $(#[$doc])*
        pub mod $module {
            $(
                #[doc = $name]
                pub const $code: u8 = $value;
            )*
        }

        const $names: &[(u8, &str)] = &[$(($value, $name)),*];
    };
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

status_codes! {
    /// Generic Command Status codes (section 4.6.1.2.1, figures 128 and 129).
    generic, GENERIC_NAMES {
        SUCCESS = 0x00, "successful completion";
        INVALID_OPCODE = 0x01, "invalid command opcode";
        INVALID_FIELD = 0x02, "invalid field in command";
        CID_CONFLICT = 0x03, "command ID conflict";
        DATA_TRANSFER_ERROR = 0x04, "data transfer error";
        ABORTED_POWER_LOSS = 0x05, "aborted due to power loss notification";
        INTERNAL_ERROR = 0x06, "internal error";
        ABORT_REQUESTED = 0x07, "command abort requested";
        ABORTED_SQ_DELETION = 0x08, "aborted due to SQ deletion";
        ABORTED_FAILED_FUSED = 0x09, "aborted due to failed fused command";
        ABORTED_MISSING_FUSED = 0x0a, "aborted due to missing fused command";
        INVALID_NAMESPACE = 0x0b, "invalid namespace or format";
        COMMAND_SEQUENCE_ERROR = 0x0c, "command sequence error";
        INVALID_PRP_OFFSET = 0x13, "PRP offset invalid";
        LBA_OUT_OF_RANGE = 0x80, "LBA out of range";
        CAPACITY_EXCEEDED = 0x81, "capacity exceeded";
        NAMESPACE_NOT_READY = 0x82, "namespace not ready";
        RESERVATION_CONFLICT = 0x83, "reservation conflict";
        FORMAT_IN_PROGRESS = 0x84, "format in progress";
    }
}

status_codes! {
    /// Command Specific Status codes (section 4.6.1.2.2, figure 130, and NVM command set).
    specific, SPECIFIC_NAMES {
        INVALID_CQ = 0x00, "completion queue invalid";
        INVALID_QID = 0x01, "invalid queue identifier";
        INVALID_QUEUE_SIZE = 0x02, "invalid queue size";
        ABORT_LIMIT_EXCEEDED = 0x03, "abort command limit exceeded";
        AER_LIMIT_EXCEEDED = 0x05, "asynchronous event request limit exceeded";
        FEATURE_NOT_SAVEABLE = 0x0d, "feature identifier not saveable";
        FEATURE_NOT_CHANGEABLE = 0x0e, "feature not changeable";
        CONFLICTING_ATTRIBUTES = 0x80, "conflicting attributes";
        INVALID_PROTECTION_INFO = 0x81, "invalid protection information";
        WRITE_TO_READ_ONLY = 0x82, "attempted write to read only range";
    }
}

status_codes! {
    /// Media and Data Integrity Errors (section 4.6.1.2.3, figure 131).
    media, MEDIA_NAMES {
        WRITE_FAULT = 0x80, "write fault";
        UNRECOVERED_READ = 0x81, "unrecovered read error";
        GUARD_CHECK = 0x82, "end-to-end guard check error";
        APP_TAG_CHECK = 0x83, "end-to-end application tag check error";
        REF_TAG_CHECK = 0x84, "end-to-end reference tag check error";
        COMPARE_FAILURE = 0x85, "compare failure";
        ACCESS_DENIED = 0x86, "access denied";
        DEALLOCATED_OR_UNWRITTEN = 0x87, "deallocated or unwritten logical block";
    }
}

fn status_name(sct_: u8, sc: u8) -> &'static str {
    let table = match sct_ {
        sct::GENERIC => GENERIC_NAMES,
        sct::COMMAND_SPECIFIC => SPECIFIC_NAMES,
        sct::MEDIA => MEDIA_NAMES,
        sct::PATH => return "path related status",
        sct::VENDOR => return "vendor specific",
        _ => return "unknown status",
    };
    table
        .iter()
        .find(|&&(code, _)| code == sc)
        .map_or("unknown status", |&(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_decodes_to_its_name() {
        for (t, table) in [
            (sct::GENERIC, GENERIC_NAMES),
            (sct::COMMAND_SPECIFIC, SPECIFIC_NAMES),
            (sct::MEDIA, MEDIA_NAMES),
        ] {
            for &(code, name) in table {
                assert_eq!(Status::new(t, code).name(), name);
            }
        }
        assert_eq!(Status::new(sct::GENERIC, 0x7f).name(), "unknown status");
        assert_eq!(Status::new(sct::PATH, 0).name(), "path related status");
    }
}
