//! A small reader and writer for the classic pcap format (not pcapng): a 24-byte global
//! header (magic, version 2.4, zone, sigfigs, snaplen, link type) and one 16-byte record
//! header (seconds, micro- or nanoseconds, captured length, original length) per packet.
//! The reader takes both byte orders and both the microsecond (`0xa1b2c3d4`) and
//! nanosecond (`0xa1b23c4d`) magics; the writer writes little-endian microsecond files,
//! link type Ethernet. Format as documented by tcpdump.org's pcap-savefile(5) and
//! draft-ietf-opsawg-pcap.

use std::io::{self, Write};

/// Microsecond-resolution magic.
pub const MAGIC_US: u32 = 0xa1b2_c3d4;
/// Nanosecond-resolution magic.
pub const MAGIC_NS: u32 = 0xa1b2_3c4d;
/// pcapng section header block type (refused with a hint).
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Largest record we accept (tcpdump's MAXIMUM_SNAPLEN is 262144).
pub const MAX_RECORD: u32 = 262_144;

/// One packet of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub ts_sec: u32,
    /// Sub-second part in nanoseconds (converted from microseconds if needed).
    pub ts_nsec: u32,
    /// Length on the wire (may exceed `data.len()` if the capture was cut by snaplen).
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// A whole capture file, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub nanosecond: bool,
    pub big_endian: bool,
    pub snaplen: u32,
    pub linktype: u32,
    pub records: Vec<Record>,
}

/// Parse a whole pcap file held in `b`. Every malformed or truncated input is an `Err`
/// whose text says what and where; nothing panics.
pub fn parse(b: &[u8]) -> Result<Capture, String> {
    if b.len() < 24 {
        return Err(format!(
            "file is {} bytes, shorter than the 24-byte pcap header",
            b.len()
        ));
    }
    let m_le = u32::from_le_bytes(b[0..4].try_into().expect("4"));
    let (big, ns) = match m_le {
        MAGIC_US => (false, false),
        MAGIC_NS => (false, true),
        x if x.swap_bytes() == MAGIC_US => (true, false),
        x if x.swap_bytes() == MAGIC_NS => (true, true),
        PCAPNG_SHB => return Err("this is a pcapng file; convert it with `editcap -F pcap IN OUT` (or capture with `tshark -F pcap`)".into()),
        x => return Err(format!("bad magic {x:#010x} (not a pcap file)")),
    };
    let u16_at = |o: usize| {
        let v = [b[o], b[o + 1]];
        if big {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        }
    };
    let u32_at = |o: usize| {
        let v: [u8; 4] = b[o..o + 4].try_into().expect("4");
        if big {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    };
    let (major, minor) = (u16_at(4), u16_at(6));
    if major != 2 {
        return Err(format!("unsupported version {major}.{minor} (need 2.x)"));
    }
    let snaplen = u32_at(16);
    let linktype = u32_at(20) & 0x0fff_ffff; // upper bits: FCS info
    let mut records = Vec::new();
    let mut off = 24usize;
    while off < b.len() {
        if b.len() - off < 16 {
            return Err(format!(
                "truncated record header at offset {off} ({} of 16 bytes)",
                b.len() - off
            ));
        }
        let (sec, sub, incl, orig) = (
            u32_at(off),
            u32_at(off + 4),
            u32_at(off + 8),
            u32_at(off + 12),
        );
        if incl > MAX_RECORD {
            return Err(format!(
                "record at offset {off} claims {incl} bytes (more than {MAX_RECORD})"
            ));
        }
        if ns && sub >= 1_000_000_000 || !ns && sub >= 1_000_000 {
            return Err(format!(
                "record at offset {off} has a sub-second timestamp of {sub} (out of range)"
            ));
        }
        let start = off + 16;
        let end = start + incl as usize;
        if end > b.len() {
            return Err(format!(
                "truncated record at offset {off}: {incl} bytes claimed, {} present",
                b.len() - start
            ));
        }
        records.push(Record {
            ts_sec: sec,
            ts_nsec: if ns { sub } else { sub * 1000 },
            orig_len: orig,
            data: b[start..end].to_vec(),
        });
        off = end;
    }
    Ok(Capture {
        nanosecond: ns,
        big_endian: big,
        snaplen,
        linktype,
        records,
    })
}

/// Writes a little-endian, microsecond pcap stream.
pub struct Writer<W: Write> {
    w: W,
}

impl<W: Write> Writer<W> {
    /// Write the global header (snaplen 65535, Ethernet).
    pub fn new(mut w: W) -> io::Result<Writer<W>> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&MAGIC_US.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&65535u32.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        w.write_all(&h)?;
        Ok(Writer { w })
    }

    /// Write one record whose data is the concatenation of `parts`.
    pub fn write_parts(&mut self, ts_sec: u64, ts_usec: u32, parts: &[&[u8]]) -> io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&(ts_sec as u32).to_le_bytes());
        h[4..8].copy_from_slice(&ts_usec.to_le_bytes());
        h[8..12].copy_from_slice(&(len as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        self.w.write_all(&h)?;
        for p in parts {
            self.w.write_all(p)?;
        }
        Ok(())
    }

    /// Flush the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(be: bool, ns: bool, recs: &[(&[u8], u32)]) -> Vec<u8> {
        let magic = if ns { MAGIC_NS } else { MAGIC_US };
        let p32 = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let p16 = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut b = Vec::new();
        b.extend(p32(magic));
        b.extend(p16(2));
        b.extend(p16(4));
        b.extend([0u8; 8]);
        b.extend(p32(65535));
        b.extend(p32(1));
        for (d, sub) in recs {
            b.extend(p32(7));
            b.extend(p32(*sub));
            b.extend(p32(d.len() as u32));
            b.extend(p32(d.len() as u32));
            b.extend(*d);
        }
        b
    }

    #[test]
    fn both_orders_and_resolutions() {
        for be in [false, true] {
            for ns in [false, true] {
                let c = parse(&file(be, ns, &[(b"abc", 5), (b"defgh", 999)])).unwrap();
                assert_eq!(
                    (c.big_endian, c.nanosecond, c.linktype, c.snaplen),
                    (be, ns, 1, 65535)
                );
                assert_eq!(c.records.len(), 2);
                assert_eq!(c.records[0].data, b"abc");
                assert_eq!(c.records[1].data, b"defgh");
                assert_eq!(c.records[1].ts_nsec, if ns { 999 } else { 999_000 });
            }
        }
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert!(parse(b"").unwrap_err().contains("shorter"));
        let mut b = file(false, false, &[(b"abcdef", 0)]);
        assert!(parse(&b[..b.len() - 2])
            .unwrap_err()
            .contains("truncated record at offset 24"));
        assert!(parse(&b[..24 + 7])
            .unwrap_err()
            .contains("truncated record header"));
        b[0] = 0;
        assert!(parse(&b).unwrap_err().contains("bad magic"));
        let mut ng = file(false, false, &[]);
        ng[..4].copy_from_slice(&PCAPNG_SHB.to_le_bytes());
        assert!(parse(&ng).unwrap_err().contains("pcapng"));
        let mut big = file(false, false, &[(b"x", 0)]);
        big[24 + 8..24 + 12].copy_from_slice(&(MAX_RECORD + 1).to_le_bytes());
        assert!(parse(&big).unwrap_err().contains("claims"));
        let mut v = file(false, false, &[]);
        v[4] = 3;
        assert!(parse(&v).unwrap_err().contains("version"));
    }

    #[test]
    fn writer_round_trip() {
        let mut w = Writer::new(Vec::new()).unwrap();
        w.write_parts(1, 2, &[b"ab", b"cd"]).unwrap();
        w.write_parts(3, 4, &[b"e"]).unwrap();
        let c = parse(&w.w).unwrap();
        assert_eq!(c.records.len(), 2);
        assert_eq!(c.records[0].data, b"abcd");
        assert_eq!((c.records[1].ts_sec, c.records[1].ts_nsec), (3, 4000));
    }
}
