//! NVMe/TCP PDUs (NVMe/TCP Transport Specification 1.0, section 3.6, figures 19-29).
//!
//! Every PDU starts with the 8-byte common header ([`CommonHeader`]); `hlen` is the
//! header length (fixed per type, checked against [`PduType::hlen`]), `pdo` the offset
//! of the data from the PDU start (0 without data), `plen` the whole PDU length
//! including digests and padding. A header digest (CRC32C, 4 bytes) follows the header
//! when `flags` has [`flags::HDGSTF`]; a data digest follows the data with
//! [`flags::DDGSTF`].

use std::mem::size_of;

use nvme::spec::{Cqe, Sqe};

use super::bytes::Pod;

/// PDU types (figure 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PduType {
    /// Initialize Connection Request (host to controller).
    IcReq = 0x00,
    /// Initialize Connection Response.
    IcResp = 0x01,
    /// Host to controller terminate request.
    H2cTermReq = 0x02,
    /// Controller to host terminate request.
    C2hTermReq = 0x03,
    /// Command capsule.
    CapsuleCmd = 0x04,
    /// Response capsule.
    CapsuleResp = 0x05,
    /// Host to controller data.
    H2cData = 0x06,
    /// Controller to host data.
    C2hData = 0x07,
    /// Ready to transfer.
    R2t = 0x09,
}

impl PduType {
    /// The type for a wire value.
    pub fn from_u8(v: u8) -> Option<PduType> {
        Some(match v {
            0x00 => PduType::IcReq,
            0x01 => PduType::IcResp,
            0x02 => PduType::H2cTermReq,
            0x03 => PduType::C2hTermReq,
            0x04 => PduType::CapsuleCmd,
            0x05 => PduType::CapsuleResp,
            0x06 => PduType::H2cData,
            0x07 => PduType::C2hData,
            0x09 => PduType::R2t,
            _ => return None,
        })
    }

    /// The fixed header length of this type (figures 21-29).
    pub fn hlen(self) -> usize {
        match self {
            PduType::IcReq => size_of::<IcReq>(),
            PduType::IcResp => size_of::<IcResp>(),
            PduType::H2cTermReq | PduType::C2hTermReq => size_of::<TermReq>(),
            PduType::CapsuleCmd => size_of::<CapsuleCmd>(),
            PduType::CapsuleResp => size_of::<CapsuleResp>(),
            PduType::H2cData => size_of::<H2cData>(),
            PduType::C2hData => size_of::<C2hData>(),
            PduType::R2t => size_of::<R2t>(),
        }
    }

    /// Whether the header digest applies to this type once negotiated (every type but
    /// the connection set-up and terminate PDUs, section 3.6.2).
    pub fn digested(self) -> bool {
        !matches!(
            self,
            PduType::IcReq | PduType::IcResp | PduType::H2cTermReq | PduType::C2hTermReq
        )
    }
}

/// PDU header flags (figure 21 and the per-type figures).
pub mod flags {
    /// A header digest follows the header.
    pub const HDGSTF: u8 = 0x01;
    /// A data digest follows the data.
    pub const DDGSTF: u8 = 0x02;
    /// H2CData/C2HData: last data PDU of the transfer.
    pub const LAST_PDU: u8 = 0x04;
    /// C2HData: the command completed successfully, no response capsule follows.
    pub const SUCCESS: u8 = 0x08;
}

/// ICReq/ICResp `dgst` bits (figures 26, 27).
pub mod dgst {
    /// Header digest enable.
    pub const HDGST: u8 = 0x01;
    /// Data digest enable.
    pub const DDGST: u8 = 0x02;
}

/// Fatal error status of a TermReq (figure 28).
pub mod fes {
    /// Invalid PDU header field (FEI: byte offset of the field).
    pub const INVALID_HEADER_FIELD: u16 = 0x01;
    /// PDU sequence error.
    pub const PDU_SEQUENCE_ERROR: u16 = 0x02;
    /// Header digest error.
    pub const HDGST_ERROR: u16 = 0x03;
    /// Data transfer out of range.
    pub const DATA_OUT_OF_RANGE: u16 = 0x04;
    /// Data transfer limit exceeded.
    pub const DATA_LIMIT_EXCEEDED: u16 = 0x05;
    /// Unsupported parameter.
    pub const UNSUPPORTED_PARAMETER: u16 = 0x06;
}

/// Most bytes of the offending PDU a TermReq carries (section 3.6.2.9).
pub const TERM_REQ_MAX_DATA: usize = 128;

/// Common header (figure 21): 8 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommonHeader {
    /// [`PduType`] value.
    pub pdu_type: u8,
    /// [`flags`].
    pub flags: u8,
    /// Header length.
    pub hlen: u8,
    /// PDU data offset (0: no data).
    pub pdo: u8,
    /// PDU length, everything included.
    pub plen: u32,
}
const _: () = assert!(size_of::<CommonHeader>() == 8);
// SAFETY: repr(C), integers only, no padding (1+1+1+1+4).
unsafe impl Pod for CommonHeader {}

impl CommonHeader {
    /// A header of type `t` with its fixed `hlen`.
    pub fn new(t: PduType) -> CommonHeader {
        CommonHeader {
            pdu_type: t as u8,
            flags: 0,
            hlen: t.hlen() as u8,
            pdo: 0,
            plen: t.hlen() as u32,
        }
    }
}

/// Initialize Connection Request (figure 26): 128 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcReq {
    /// Common header.
    pub ch: CommonHeader,
    /// PDU format version (0).
    pub pfv: u16,
    /// Host PDU data alignment (dwords, 0-based).
    pub hpda: u8,
    /// [`dgst`] bits the host asks for.
    pub dgst: u8,
    /// Maximum outstanding R2Ts per command (0-based).
    pub maxr2t: u32,
    /// Reserved.
    pub rsvd: [u8; 112],
}
const _: () = assert!(size_of::<IcReq>() == 128);
// SAFETY: repr(C), integers and byte arrays only, no padding (8+2+1+1+4+112).
unsafe impl Pod for IcReq {}

/// Initialize Connection Response (figure 27): 128 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcResp {
    /// Common header.
    pub ch: CommonHeader,
    /// PDU format version (0).
    pub pfv: u16,
    /// Controller PDU data alignment (dwords, 0-based).
    pub cpda: u8,
    /// [`dgst`] bits enabled.
    pub dgst: u8,
    /// Largest H2CData payload the controller takes (bytes).
    pub maxh2cdata: u32,
    /// Reserved.
    pub rsvd: [u8; 112],
}
const _: () = assert!(size_of::<IcResp>() == 128);
// SAFETY: repr(C), integers and byte arrays only, no padding.
unsafe impl Pod for IcResp {}

/// H2C/C2H Terminate Request header (figure 28, 29): 24 bytes; up to
/// [`TERM_REQ_MAX_DATA`] bytes of the offending PDU follow as data.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TermReq {
    /// Common header.
    pub ch: CommonHeader,
    /// Fatal error status ([`fes`]).
    pub fes: u16,
    /// Fatal error information (little endian, unaligned on the wire).
    pub fei: [u8; 4],
    /// Reserved.
    pub rsvd: [u8; 10],
}
const _: () = assert!(size_of::<TermReq>() == 24);
// SAFETY: repr(C), integers and byte arrays only, no padding (8+2+4+10).
unsafe impl Pod for TermReq {}

/// Command capsule (figure 23): the common header and the 64-byte SQE (72 bytes);
/// in-capsule data follows at `pdo`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapsuleCmd {
    /// Common header.
    pub ch: CommonHeader,
    /// The command.
    pub sqe: Sqe,
}
const _: () = assert!(size_of::<CapsuleCmd>() == 72);
// SAFETY: repr(C) of two Pod types; 8 + 64 with no padding (Sqe's u64s land at 8-byte
// offsets 24, 32, 40 of the PDU).
unsafe impl Pod for CapsuleCmd {}

/// Response capsule (figure 24): the common header and the 16-byte CQE (24 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapsuleResp {
    /// Common header.
    pub ch: CommonHeader,
    /// The completion.
    pub cqe: Cqe,
}
const _: () = assert!(size_of::<CapsuleResp>() == 24);
// SAFETY: repr(C) of two Pod types, 8 + 16, no padding.
unsafe impl Pod for CapsuleResp {}

/// Host to controller data (figure 25): 24 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct H2cData {
    /// Common header.
    pub ch: CommonHeader,
    /// Command capsule CID.
    pub cccid: u16,
    /// Transfer tag from the R2T.
    pub ttag: u16,
    /// Data offset within the command's data.
    pub datao: u32,
    /// Data length of this PDU.
    pub datal: u32,
    /// Reserved.
    pub rsvd: u32,
}
const _: () = assert!(size_of::<H2cData>() == 24);
// SAFETY: repr(C), integers only, no padding.
unsafe impl Pod for H2cData {}

/// Controller to host data (figure 22): 24 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct C2hData {
    /// Common header.
    pub ch: CommonHeader,
    /// Command capsule CID.
    pub cccid: u16,
    /// Reserved.
    pub rsvd1: u16,
    /// Data offset within the command's data.
    pub datao: u32,
    /// Data length of this PDU.
    pub datal: u32,
    /// Reserved.
    pub rsvd2: u32,
}
const _: () = assert!(size_of::<C2hData>() == 24);
// SAFETY: repr(C), integers only, no padding.
unsafe impl Pod for C2hData {}

/// Ready to transfer (figure 29): 24 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct R2t {
    /// Common header.
    pub ch: CommonHeader,
    /// Command capsule CID.
    pub cccid: u16,
    /// Transfer tag the H2CData PDUs echo.
    pub ttag: u16,
    /// Offset of the requested data.
    pub r2to: u32,
    /// Length of the requested data.
    pub r2tl: u32,
    /// Reserved.
    pub rsvd: u32,
}
const _: () = assert!(size_of::<R2t>() == 24);
// SAFETY: repr(C), integers only, no padding.
unsafe impl Pod for R2t {}

/// The largest header of any PDU type (ICReq/ICResp).
pub const MAX_HLEN: usize = 128;
/// Length of a digest.
pub const DIGEST_LEN: usize = 4;
