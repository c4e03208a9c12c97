//! NVMe over Fabrics structures (NVMe over Fabrics 1.1): the Fabrics command opcode
//! and types (section 3.3), Connect (3.3), Property Get/Set (3.4, 3.5), the Connect
//! data (figure 20), the discovery log page (section 5.3, figures 31, 32), SGL
//! descriptors as NVMe/TCP uses them (NVMe/TCP 1.0 section 3.3.1; NVMe 1.4 4.4), and
//! the status codes of Connect (figure 21).

use std::mem::size_of;

use nvme::spec::Sqe;

use super::bytes::Pod;

/// The Fabrics command opcode (figure 9).
pub const FABRICS_OPC: u8 = 0x7f;

/// Fabrics command types (`fctype`, figure 10).
pub mod fctype {
    /// Property Set.
    pub const PROPERTY_SET: u8 = 0x00;
    /// Connect.
    pub const CONNECT: u8 = 0x01;
    /// Property Get.
    pub const PROPERTY_GET: u8 = 0x04;
    /// Authentication Send.
    pub const AUTH_SEND: u8 = 0x05;
    /// Authentication Receive.
    pub const AUTH_RECV: u8 = 0x06;
    /// Disconnect.
    pub const DISCONNECT: u8 = 0x08;
}

/// The well-known discovery subsystem NQN (section 7.3.1).
pub const DISCOVERY_NQN: &str = "nqn.2014-08.org.nvmexpress.discovery";

/// Controller properties' offsets (NVMe 1.4 section 3.1, as Fabrics properties).
pub mod prop {
    /// Controller Capabilities (8 bytes).
    pub const CAP: u32 = 0x00;
    /// Version.
    pub const VS: u32 = 0x08;
    /// Controller Configuration.
    pub const CC: u32 = 0x14;
    /// Controller Status.
    pub const CSTS: u32 = 0x1c;
    /// NVM Subsystem Reset.
    pub const NSSR: u32 = 0x20;
}

/// Status codes of the command specific type (SCT 1) for Fabrics commands (figure 21).
pub mod sc {
    /// Connect: incompatible format.
    pub const CONNECT_INCOMPATIBLE_FORMAT: u8 = 0x80;
    /// Connect: controller busy.
    pub const CONNECT_CTRLR_BUSY: u8 = 0x81;
    /// Connect: invalid parameters (IATTR/IPO in DW0).
    pub const CONNECT_INVALID_PARAM: u8 = 0x82;
    /// Connect: restart discovery.
    pub const CONNECT_RESTART_DISCOVERY: u8 = 0x83;
    /// Connect: invalid host.
    pub const CONNECT_INVALID_HOST: u8 = 0x84;
}

/// Connect attribute bit: disable SQ flow control (figure 19).
pub const CATTR_DISABLE_SQFLOW: u8 = 0x04;

/// The Fabrics command type of an SQE with opcode [`FABRICS_OPC`] (byte 4).
pub fn sqe_fctype(sqe: &Sqe) -> u8 {
    sqe.nsid as u8
}

/// Connect command fields (figure 19) read from an SQE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectCmd {
    /// Record format (0).
    pub recfmt: u16,
    /// Queue id (0: admin).
    pub qid: u16,
    /// Submission queue size (0-based).
    pub sqsize: u16,
    /// Connect attributes.
    pub cattr: u8,
    /// Keep alive timeout (ms), admin queue only.
    pub kato: u32,
}

impl ConnectCmd {
    /// Decode from the SQE.
    pub fn from_sqe(s: &Sqe) -> ConnectCmd {
        ConnectCmd {
            recfmt: s.cdw10 as u16,
            qid: (s.cdw10 >> 16) as u16,
            sqsize: s.cdw11 as u16,
            cattr: (s.cdw11 >> 16) as u8,
            kato: s.cdw12,
        }
    }

    /// Encode into an SQE (`cid`, SGL not set).
    pub fn to_sqe(&self, cid: u16) -> Sqe {
        let mut s = Sqe::new(FABRICS_OPC, cid, u32::from(fctype::CONNECT));
        s.cdw10 = u32::from(self.recfmt) | (u32::from(self.qid) << 16);
        s.cdw11 = u32::from(self.sqsize) | (u32::from(self.cattr) << 16);
        s.cdw12 = self.kato;
        s
    }
}

/// Property Get/Set fields (figures 22, 24): size (attrib bits 2:0, 0 = 4 bytes,
/// 1 = 8 bytes), offset and (Set) value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropertyCmd {
    /// 8-byte property.
    pub eight: bool,
    /// Property offset.
    pub offset: u32,
    /// Value to set.
    pub value: u64,
}

impl PropertyCmd {
    /// Decode from the SQE.
    pub fn from_sqe(s: &Sqe) -> PropertyCmd {
        PropertyCmd {
            eight: s.cdw10 & 0x7 == 1,
            offset: s.cdw11,
            value: u64::from(s.cdw12) | (u64::from(s.cdw13) << 32),
        }
    }

    /// Encode a Property Get (`set == false`) or Set.
    pub fn to_sqe(&self, cid: u16, set: bool) -> Sqe {
        let t = if set {
            fctype::PROPERTY_SET
        } else {
            fctype::PROPERTY_GET
        };
        let mut s = Sqe::new(FABRICS_OPC, cid, u32::from(t));
        s.cdw10 = u32::from(self.eight);
        s.cdw11 = self.offset;
        if set {
            s.cdw12 = self.value as u32;
            s.cdw13 = (self.value >> 32) as u32;
        }
        s
    }
}

/// Connect command data (figure 20): 1024 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ConnectData {
    /// Host identifier.
    pub hostid: [u8; 16],
    /// Controller id (0xffff: dynamic, any; I/O queues: the admin queue's).
    pub cntlid: u16,
    /// Reserved.
    pub rsvd: [u8; 238],
    /// Subsystem NQN (NUL padded).
    pub subnqn: [u8; 256],
    /// Host NQN (NUL padded).
    pub hostnqn: [u8; 256],
    /// Reserved.
    pub rsvd2: [u8; 256],
}
const _: () = assert!(size_of::<ConnectData>() == 1024);
// SAFETY: repr(C), integers and byte arrays only; 16 + 2 + 238 + 3*256 = 1024, no
// padding (u16 at offset 16).
unsafe impl Pod for ConnectData {}

/// Discovery log page header (figure 31): 1024 bytes; entries follow.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DiscoveryLogHeader {
    /// Generation counter (changes when the log changes).
    pub genctr: u64,
    /// Number of records.
    pub numrec: u64,
    /// Record format (0).
    pub recfmt: u16,
    /// Reserved.
    pub rsvd: [u8; 1006],
}
const _: () = assert!(size_of::<DiscoveryLogHeader>() == 1024);
// SAFETY: repr(C), integers and byte arrays; 8 + 8 + 2 + 1006 = 1024, no padding.
unsafe impl Pod for DiscoveryLogHeader {}

/// Transport types (`trtype`, figure 32).
pub const TRTYPE_TCP: u8 = 3;
/// Address families (`adrfam`).
pub const ADRFAM_IPV4: u8 = 1;
/// Address family IPv6.
pub const ADRFAM_IPV6: u8 = 2;
/// Subsystem types: a referral to another discovery subsystem.
pub const SUBTYPE_DISCOVERY: u8 = 1;
/// Subsystem types: an NVM subsystem.
pub const SUBTYPE_NVM: u8 = 2;
/// Transport requirements: secure channel not required.
pub const TREQ_SECURE_CHANNEL_NOT_REQUIRED: u8 = 0x02;

/// Discovery log page entry (figure 32): 1024 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DiscoveryLogEntry {
    /// Transport type.
    pub trtype: u8,
    /// Address family.
    pub adrfam: u8,
    /// Subsystem type.
    pub subtype: u8,
    /// Transport requirements.
    pub treq: u8,
    /// Port id.
    pub portid: u16,
    /// Controller id (0xffff: dynamic).
    pub cntlid: u16,
    /// Admin max SQ size.
    pub asqsz: u16,
    /// Entry flags.
    pub eflags: u16,
    /// Reserved.
    pub rsvd: [u8; 20],
    /// Transport service id (port), space padded.
    pub trsvcid: [u8; 32],
    /// Reserved.
    pub rsvd2: [u8; 192],
    /// Subsystem NQN.
    pub subnqn: [u8; 256],
    /// Transport address, space padded.
    pub traddr: [u8; 256],
    /// Transport specific address subtype (TCP: byte 0 = security type, 0 none).
    pub tsas: [u8; 256],
}
const _: () = assert!(size_of::<DiscoveryLogEntry>() == 1024);
// SAFETY: repr(C), integers and byte arrays; u16s at even offsets 4..12, no padding.
unsafe impl Pod for DiscoveryLogEntry {}

/// SGL descriptor types as NVMe/TCP uses them (NVMe 1.4 figure 114, type << 4 |
/// subtype): data block with an offset into the in-capsule data.
pub const SGL_INCAPSULE: u8 = 0x01;
/// Transport SGL data block: the data moves in R2T/H2CData or C2HData PDUs.
pub const SGL_TRANSPORT: u8 = 0x5a;
/// CDW0 PSDT bits for "SGLs for data" (bits 15:14 = 01b).
pub const PSDT_SGL: u32 = 0x1 << 14;

/// The SGL1 descriptor of an SQE: (type byte, address or offset, length).
pub fn sqe_sgl(s: &Sqe) -> (u8, u64, u32) {
    ((s.prp2 >> 56) as u8, s.prp1, s.prp2 as u32)
}

/// Set an SQE's SGL1 to `ty` with `addr` and `len`, and select SGLs in CDW0.
pub fn set_sqe_sgl(s: &mut Sqe, ty: u8, addr: u64, len: u32) {
    s.cdw0 = (s.cdw0 & !(0x3 << 14)) | PSDT_SGL;
    s.prp1 = addr;
    s.prp2 = u64::from(len) | (u64::from(ty) << 56);
}

/// Data direction of a command: (host to controller, controller to host), from the
/// opcode's bits 1:0 (NVMe 1.4 figure 139) or, for a Fabrics command, its fctype's.
pub fn data_dir(s: &Sqe) -> (bool, bool) {
    let bits = if s.opcode() == FABRICS_OPC {
        sqe_fctype(s)
    } else {
        s.opcode()
    } & 0x3;
    (bits == 0x1 || bits == 0x3, bits == 0x2 || bits == 0x3)
}
