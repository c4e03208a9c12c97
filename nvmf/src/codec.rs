//! PDU framing shared by the target and the initiator: a receive buffer that cuts a
//! byte stream into checked PDUs (header length per type, total length bounded,
//! data offset in range, header and data digests when negotiated), and the encoder
//! that lays out header, header digest, data and data digest.
//!
//! Digests are CRC32C (NVMe/TCP 1.0 section 3.6.2.4; the `crc32c` crate, which uses
//! the SSE4.2 instruction where the CPU has it) stored little endian.

use crate::spec::bytes::{as_bytes, Pod};
use crate::spec::pdu::{self, flags, CommonHeader, PduType, DIGEST_LEN, MAX_HLEN};

/// CRC32C of `b` as NVMe/TCP digests use it.
pub fn digest(b: &[u8]) -> u32 {
    crc32c::crc32c(b)
}

/// What the connection negotiated (ICReq/ICResp) and bounds the receiver enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// Header digests on.
    pub hdgst: bool,
    /// Data digests on.
    pub ddgst: bool,
    /// Largest data part a received PDU may carry.
    pub max_data: usize,
}

impl Framing {
    /// Before ICReq/ICResp: no digests, small PDUs.
    pub fn initial() -> Framing {
        Framing {
            hdgst: false,
            ddgst: false,
            max_data: 0,
        }
    }
}

/// Why a received PDU is refused: the connection ends (with a TermReq carrying
/// [`RxError::fes`] and [`RxError::fei`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxError {
    /// Unknown PDU type.
    BadType(u8),
    /// `hlen` does not match the type.
    BadHlen(u8),
    /// `pdo` points outside the PDU or before the header's end.
    BadPdo(u8),
    /// `plen` is shorter than the header or larger than allowed.
    BadPlen(u32),
    /// The header digest flag disagrees with what was negotiated.
    DigestFlag,
    /// The header digest does not match.
    HeaderDigest,
    /// The data digest does not match.
    DataDigest,
}

impl RxError {
    /// The TermReq fatal error status.
    pub fn fes(self) -> u16 {
        match self {
            RxError::HeaderDigest => pdu::fes::HDGST_ERROR,
            RxError::BadPlen(_) => pdu::fes::DATA_LIMIT_EXCEEDED,
            RxError::DataDigest => pdu::fes::HDGST_ERROR,
            _ => pdu::fes::INVALID_HEADER_FIELD,
        }
    }

    /// The TermReq fatal error information (offset of the bad field in the header).
    pub fn fei(self) -> u32 {
        match self {
            RxError::BadType(_) => 0,
            RxError::DigestFlag => 1,
            RxError::BadHlen(_) => 2,
            RxError::BadPdo(_) => 3,
            RxError::BadPlen(_) => 4,
            RxError::HeaderDigest | RxError::DataDigest => 0,
        }
    }
}

impl std::fmt::Display for RxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RxError::BadType(t) => write!(f, "unknown PDU type {t:#x}"),
            RxError::BadHlen(h) => write!(f, "header length {h} does not fit the PDU type"),
            RxError::BadPdo(p) => write!(f, "data offset {p} outside the PDU"),
            RxError::BadPlen(p) => write!(f, "PDU length {p} out of bounds"),
            RxError::DigestFlag => write!(f, "header digest flag disagrees with negotiation"),
            RxError::HeaderDigest => write!(f, "header digest mismatch"),
            RxError::DataDigest => write!(f, "data digest mismatch"),
        }
    }
}

/// One received PDU.
pub struct RxPdu {
    /// Its type.
    pub ty: PduType,
    /// Header flags.
    pub flags: u8,
    hdr: [u8; MAX_HLEN],
    /// The data part (digest removed).
    pub data: Vec<u8>,
}

impl RxPdu {
    /// The header as `T` (the type's header structure).
    pub fn header<T: Pod>(&self) -> T {
        // `hdr` is MAX_HLEN bytes, at least any header structure's size.
        crate::spec::bytes::read::<T>(&self.hdr).expect("header buffer holds any PDU header")
    }

    /// The first `n` header bytes (for a TermReq's copy of the offending header).
    pub fn header_bytes(&self, n: usize) -> &[u8] {
        &self.hdr[..n.min(MAX_HLEN)]
    }
}

/// A stream's receive side: bytes read from the socket, cut into PDUs.
pub struct RxBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for RxBuf {
    fn default() -> Self {
        RxBuf::new()
    }
}

impl RxBuf {
    /// An empty buffer.
    pub fn new() -> RxBuf {
        RxBuf {
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
        }
    }

    /// Room to read into (grows or compacts as needed).
    pub fn space(&mut self, want: usize) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end < want {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() - self.end < want {
                self.buf.resize(self.end + want, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into [`RxBuf::space`].
    pub fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// Bytes waiting.
    pub fn pending(&self) -> usize {
        self.end - self.start
    }

    /// The next complete PDU, `None` if more bytes are needed.
    pub fn next_pdu(&mut self, f: &Framing) -> Result<Option<RxPdu>, RxError> {
        let avail = &self.buf[self.start..self.end];
        let Some(ch) = crate::spec::bytes::read::<CommonHeader>(avail) else {
            return Ok(None);
        };
        let ty = PduType::from_u8(ch.pdu_type).ok_or(RxError::BadType(ch.pdu_type))?;
        let hlen = ty.hlen();
        if usize::from(ch.hlen) != hlen {
            return Err(RxError::BadHlen(ch.hlen));
        }
        let hd = f.hdgst && ty.digested();
        if (ch.flags & flags::HDGSTF != 0) != hd {
            return Err(RxError::DigestFlag);
        }
        let dd = f.ddgst && ch.flags & flags::DDGSTF != 0;
        if !f.ddgst && ch.flags & flags::DDGSTF != 0 {
            return Err(RxError::DigestFlag);
        }
        let plen = ch.plen as usize;
        let hend = hlen + if hd { DIGEST_LEN } else { 0 };
        let max = hend + 256 + f.max_data.max(pdu::TERM_REQ_MAX_DATA) + DIGEST_LEN;
        if plen < hend || plen > max {
            return Err(RxError::BadPlen(ch.plen));
        }
        let pdo = usize::from(ch.pdo);
        let has_data = plen > hend;
        if has_data && (pdo < hend || pdo > plen) {
            return Err(RxError::BadPdo(ch.pdo));
        }
        if !has_data && dd {
            return Err(RxError::DigestFlag);
        }
        if avail.len() < plen {
            return Ok(None);
        }
        let p = &avail[..plen];
        if hd {
            let want = u32::from_le_bytes([p[hlen], p[hlen + 1], p[hlen + 2], p[hlen + 3]]);
            if digest(&p[..hlen]) != want {
                return Err(RxError::HeaderDigest);
            }
        }
        let mut data = Vec::new();
        if has_data {
            let dend = if dd { plen - DIGEST_LEN } else { plen };
            if pdo > dend {
                return Err(RxError::BadPdo(ch.pdo));
            }
            let d = &p[pdo..dend];
            if dd {
                let q = &p[dend..];
                let want = u32::from_le_bytes([q[0], q[1], q[2], q[3]]);
                if digest(d) != want {
                    return Err(RxError::DataDigest);
                }
            }
            data.extend_from_slice(d);
        }
        let mut hdr = [0u8; MAX_HLEN];
        hdr[..hlen].copy_from_slice(&p[..hlen]);
        self.start += plen;
        Ok(Some(RxPdu {
            ty,
            flags: ch.flags,
            hdr,
            data,
        }))
    }
}

/// Append a PDU to `out`: `hdr` (a header structure whose common header has type and
/// `hlen` set; flags other than the digest flags kept), its header digest if `hdgst`
/// (and the type takes one), padding to `dalign` bytes, `data`, and its digest if
/// `ddgst` and there is data. The common header's flags, `pdo` and `plen` are filled in.
pub fn encode<T: Pod>(out: &mut Vec<u8>, hdr: &T, data: &[u8], hdgst: bool, ddgst: bool) {
    let start = out.len();
    out.extend_from_slice(as_bytes(hdr));
    let hlen = out.len() - start;
    let ty = PduType::from_u8(out[start]);
    let hd = hdgst && ty.is_some_and(|t| t.digested());
    let dd = ddgst && !data.is_empty() && ty.is_some_and(|t| t.digested());
    let hend = hlen + if hd { DIGEST_LEN } else { 0 };
    let pdo = if data.is_empty() { 0 } else { hend };
    let plen = hend + data.len() + if dd { DIGEST_LEN } else { 0 };
    {
        let h = &mut out[start..start + hlen];
        let mut fl = h[1] & !(flags::HDGSTF | flags::DDGSTF);
        if hd {
            fl |= flags::HDGSTF;
        }
        if dd {
            fl |= flags::DDGSTF;
        }
        h[1] = fl;
        h[3] = pdo as u8;
        h[4..8].copy_from_slice(&(plen as u32).to_le_bytes());
    }
    if hd {
        let d = digest(&out[start..start + hlen]);
        out.extend_from_slice(&d.to_le_bytes());
    }
    out.extend_from_slice(data);
    if dd {
        out.extend_from_slice(&digest(data).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::pdu::{C2hData, H2cData, IcReq};

    fn framing(d: bool) -> Framing {
        Framing {
            hdgst: d,
            ddgst: d,
            max_data: 8192,
        }
    }

    #[test]
    fn encode_then_parse_with_and_without_digests() {
        for d in [false, true] {
            let mut out = Vec::new();
            let mut h = C2hData {
                ch: CommonHeader::new(PduType::C2hData),
                cccid: 5,
                datao: 0,
                datal: 3000,
                ..Default::default()
            };
            h.ch.flags = flags::LAST_PDU;
            let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
            encode(&mut out, &h, &data, d, d);
            assert_eq!(out.len(), 24 + 3000 + if d { 8 } else { 0 });
            let mut rx = RxBuf::new();
            // Byte by byte: never a PDU before the last byte.
            for (i, b) in out.iter().enumerate() {
                rx.space(1)[0] = *b;
                rx.filled(1);
                let r = rx.next_pdu(&framing(d)).unwrap();
                if i + 1 < out.len() {
                    assert!(r.is_none());
                } else {
                    let p = r.unwrap();
                    assert_eq!(p.ty, PduType::C2hData);
                    assert_eq!(p.data, data);
                    assert!(p.flags & flags::LAST_PDU != 0);
                    assert_eq!(p.header::<C2hData>().cccid, 5);
                }
            }
            assert_eq!(rx.pending(), 0);
        }
    }

    #[test]
    fn corrupted_digests_and_headers_are_refused() {
        let mut out = Vec::new();
        let h = H2cData {
            ch: CommonHeader::new(PduType::H2cData),
            datal: 16,
            ..Default::default()
        };
        encode(&mut out, &h, &[7u8; 16], true, true);
        let f = framing(true);
        let check = |bytes: &[u8]| {
            let mut rx = RxBuf::new();
            rx.space(bytes.len())[..bytes.len()].copy_from_slice(bytes);
            rx.filled(bytes.len());
            rx.next_pdu(&f)
        };
        assert!(check(&out).unwrap().is_some());
        let mut bad = out.clone();
        bad[10] ^= 1;
        assert_eq!(check(&bad).err(), Some(RxError::HeaderDigest));
        let mut bad = out.clone();
        bad[30] ^= 1;
        assert_eq!(check(&bad).err(), Some(RxError::DataDigest));
        let mut bad = out.clone();
        bad[0] = 0x08;
        assert_eq!(check(&bad).err(), Some(RxError::BadType(8)));
        let mut bad = out.clone();
        bad[2] = 72;
        assert_eq!(check(&bad).err(), Some(RxError::BadHlen(72)));
        let mut bad = out.clone();
        bad[4..8].copy_from_slice(&(1u32 << 30).to_le_bytes());
        assert!(matches!(check(&bad).err(), Some(RxError::BadPlen(_))));
        // Without digests negotiated, a digest flag is an error.
        let mut rx = RxBuf::new();
        rx.space(out.len())[..out.len()].copy_from_slice(&out);
        rx.filled(out.len());
        assert_eq!(
            rx.next_pdu(&framing(false)).err(),
            Some(RxError::DigestFlag)
        );
        // ICReq never carries a header digest.
        let ic = IcReq {
            ch: CommonHeader::new(PduType::IcReq),
            pfv: 0,
            hpda: 0,
            dgst: 3,
            maxr2t: 0,
            rsvd: [0; 112],
        };
        let mut o = Vec::new();
        encode(&mut o, &ic, &[], true, true);
        assert_eq!(o.len(), 128);
        assert!(check(&o).unwrap().is_some());
    }
}
