//! virtio-blk requests (VIRTIO 1.2, 5.2.6) parsed from a walked chain into what the
//! bdev layer takes: the operation, the block range, and the guest's own buffers as the
//! scatter-gather list (no copy). Anything malformed (a short header, no status byte, a
//! data length that is no whole number of blocks, a range past the end) is an
//! [`Parsed::Fail`] for that request only.

use bdev::IoVec;

use crate::chain::Chain;
use crate::spec::{req, DiscardSegment, ReqHeader, ID_BYTES, SECTOR_SIZE};

/// What the bdev must do.
#[derive(Debug)]
pub enum Op {
    /// Read into `data`.
    Read,
    /// Write from `data`.
    Write,
    /// Flush the whole disk.
    Flush,
    /// Write the id string into `data`.
    GetId,
    /// Deallocate these `(offset_blocks, num_blocks)` ranges.
    Discard(Vec<(u64, u64)>),
    /// Zero these ranges.
    WriteZeroes(Vec<(u64, u64)>),
}

/// A request ready to submit.
#[derive(Debug)]
pub struct BlkReq {
    /// The operation.
    pub op: Op,
    /// First block (read, write).
    pub offset_blocks: u64,
    /// Number of blocks (read, write).
    pub num_blocks: u64,
    /// The guest's data buffers.
    pub data: Vec<IoVec>,
    /// The status byte in guest memory.
    pub status: *mut u8,
    /// Bytes the device writes into the chain on success (used length).
    pub written: u32,
}

/// The result of parsing.
#[derive(Debug)]
pub enum Parsed {
    /// Submit it.
    Ok(BlkReq),
    /// Answer at once with this status (the status byte is known).
    Fail {
        /// Status byte location.
        status: *mut u8,
        /// `spec::status::*`.
        code: u8,
        /// Why (logged).
        why: String,
    },
    /// Not even a status byte: complete with used length 0.
    Broken(String),
}

/// The disk's geometry, for range checks.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// Block size in bytes.
    pub block_size: u64,
    /// Number of blocks.
    pub num_blocks: u64,
    /// Writes refused.
    pub readonly: bool,
}

/// Copy `dst.len()` bytes from the start of `iovs` (after skipping `skip`); false if
/// they hold fewer.
fn gather(iovs: &[IoVec], mut skip: usize, dst: &mut [u8]) -> bool {
    let mut done = 0;
    for v in iovs {
        if done == dst.len() {
            break;
        }
        if skip >= v.len {
            skip -= v.len;
            continue;
        }
        let n = (v.len - skip).min(dst.len() - done);
        // SAFETY: `v` was translated from guest memory that stays mapped while the
        // request lives; we copy out once and use only the copy (the guest may change
        // the source at any time).
        unsafe { std::ptr::copy_nonoverlapping(v.base.add(skip), dst.as_mut_ptr().add(done), n) };
        done += n;
        skip = 0;
    }
    done == dst.len()
}

/// The iovecs of `iovs` from byte `from` to byte `to`.
fn cut(iovs: &[IoVec], from: usize, to: usize) -> Vec<IoVec> {
    let mut out = Vec::new();
    let mut pos = 0;
    for v in iovs {
        let (s, e) = (pos, pos + v.len);
        pos = e;
        let (a, b) = (s.max(from), e.min(to));
        if a < b {
            out.push(IoVec {
                base: v.base.wrapping_add(a - s),
                len: b - a,
            });
        }
    }
    out
}

fn total(iovs: &[IoVec]) -> usize {
    iovs.iter().map(|v| v.len).sum()
}

/// Parse a walked chain.
pub fn parse(c: &Chain, g: Geometry) -> Parsed {
    let wlen = total(&c.writable);
    let Some(last) = c.writable.last() else {
        return Parsed::Broken("no writable status byte".into());
    };
    // The last byte of the last writable buffer.
    let status = last.base.wrapping_add(last.len - 1);
    let fail = |code, why: String| Parsed::Fail { status, code, why };
    let mut hb = [0u8; 16];
    if !gather(&c.readable, 0, &mut hb) {
        return fail(
            crate::spec::status::IOERR,
            "header shorter than 16 bytes".into(),
        );
    }
    let h = ReqHeader {
        type_: u32::from_le_bytes([hb[0], hb[1], hb[2], hb[3]]),
        reserved: 0,
        sector: u64::from_le_bytes(hb[8..16].try_into().unwrap_or([0; 8])),
    };
    let rlen = total(&c.readable);
    let bs = g.block_size;
    let range = |sector: u64, bytes: u64| -> Result<(u64, u64), String> {
        let off = sector
            .checked_mul(SECTOR_SIZE)
            .ok_or_else(|| format!("sector {sector} overflows"))?;
        if !off.is_multiple_of(bs) || !bytes.is_multiple_of(bs) || bytes == 0 {
            return Err(format!(
                "sector {sector} / {bytes} bytes not aligned to the {bs}-byte block"
            ));
        }
        let (ob, nb) = (off / bs, bytes / bs);
        if ob.checked_add(nb).is_none_or(|end| end > g.num_blocks) {
            return Err(format!(
                "blocks {ob}+{nb} past the end ({} blocks)",
                g.num_blocks
            ));
        }
        Ok((ob, nb))
    };
    let ioerr = crate::spec::status::IOERR;
    match h.type_ {
        req::IN | req::OUT => {
            let write = h.type_ == req::OUT;
            if write && g.readonly {
                return fail(ioerr, "write to a read-only disk".into());
            }
            let data = if write {
                cut(&c.readable, 16, rlen)
            } else {
                cut(&c.writable, 0, wlen - 1)
            };
            let bytes = total(&data) as u64;
            match range(h.sector, bytes) {
                Ok((ob, nb)) => Parsed::Ok(BlkReq {
                    op: if write { Op::Write } else { Op::Read },
                    offset_blocks: ob,
                    num_blocks: nb,
                    data,
                    status,
                    written: if write { 1 } else { (bytes + 1) as u32 },
                }),
                Err(why) => fail(ioerr, why),
            }
        }
        req::FLUSH => Parsed::Ok(BlkReq {
            op: Op::Flush,
            offset_blocks: 0,
            num_blocks: g.num_blocks,
            data: Vec::new(),
            status,
            written: 1,
        }),
        req::GET_ID => {
            let data = cut(&c.writable, 0, (wlen - 1).min(ID_BYTES));
            let n = total(&data) as u32;
            Parsed::Ok(BlkReq {
                op: Op::GetId,
                offset_blocks: 0,
                num_blocks: 0,
                data,
                status,
                written: n + 1,
            })
        }
        req::DISCARD | req::WRITE_ZEROES => {
            if g.readonly {
                return fail(ioerr, "discard or write-zeroes on a read-only disk".into());
            }
            let n = (rlen - 16) / 16;
            if n == 0 || !(rlen - 16).is_multiple_of(16) {
                return fail(ioerr, format!("{} bytes of ranges", rlen - 16));
            }
            let mut ranges = Vec::with_capacity(n);
            for i in 0..n {
                let mut sb = [0u8; 16];
                gather(&c.readable, 16 + 16 * i, &mut sb);
                let s = DiscardSegment {
                    sector: u64::from_le_bytes(sb[0..8].try_into().unwrap_or([0; 8])),
                    num_sectors: u32::from_le_bytes(sb[8..12].try_into().unwrap_or([0; 4])),
                    flags: u32::from_le_bytes(sb[12..16].try_into().unwrap_or([0; 4])),
                };
                if s.flags & !1 != 0 {
                    return fail(
                        crate::spec::status::UNSUPP,
                        format!("range flags {:#x}", s.flags),
                    );
                }
                match range(s.sector, u64::from(s.num_sectors) * SECTOR_SIZE) {
                    Ok(r) => ranges.push(r),
                    Err(why) => return fail(ioerr, why),
                }
            }
            Parsed::Ok(BlkReq {
                op: if h.type_ == req::DISCARD {
                    Op::Discard(ranges)
                } else {
                    Op::WriteZeroes(ranges)
                },
                offset_blocks: 0,
                num_blocks: 0,
                data: Vec::new(),
                status,
                written: 1,
            })
        }
        t => fail(crate::spec::status::UNSUPP, format!("request type {t}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iov(b: &mut [u8]) -> IoVec {
        IoVec::from_slice(b)
    }

    const G: Geometry = Geometry {
        block_size: 4096,
        num_blocks: 16,
        readonly: false,
    };

    fn hdr(t: u32, sector: u64) -> [u8; 16] {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&t.to_le_bytes());
        h[8..16].copy_from_slice(&sector.to_le_bytes());
        h
    }

    #[test]
    fn read_write_and_bad_ranges() {
        let mut h = hdr(req::IN, 8);
        let mut d = vec![0u8; 8192];
        let mut s = [0xffu8; 1];
        let c = Chain {
            readable: vec![iov(&mut h)],
            writable: vec![iov(&mut d[..4096]), iov(&mut d[4096..]), iov(&mut s)],
            descs: 4,
        };
        match parse(&c, G) {
            Parsed::Ok(r) => {
                assert!(matches!(r.op, Op::Read));
                assert_eq!((r.offset_blocks, r.num_blocks, r.written), (1, 2, 8193));
                assert_eq!(r.data.len(), 2);
                assert_eq!(r.status, s.as_mut_ptr());
            }
            p => panic!("{p:?}"),
        }
        // Past the end: sector 8 * 15 = block 15, two blocks.
        let mut h = hdr(req::IN, 8 * 15);
        let c = Chain {
            readable: vec![iov(&mut h)],
            writable: vec![iov(&mut d), iov(&mut s)],
            descs: 3,
        };
        assert!(matches!(parse(&c, G), Parsed::Fail { code: 1, .. }));
        // Unaligned sector.
        let mut h = hdr(req::OUT, 1);
        let c = Chain {
            readable: vec![iov(&mut h), iov(&mut d[..4096])],
            writable: vec![iov(&mut s)],
            descs: 3,
        };
        assert!(matches!(parse(&c, G), Parsed::Fail { code: 1, .. }));
        // No status byte.
        let c = Chain {
            readable: vec![iov(&mut h)],
            writable: vec![],
            descs: 1,
        };
        assert!(matches!(parse(&c, G), Parsed::Broken(_)));
        // Read-only refuses writes; unknown type is UNSUPP.
        let ro = Geometry {
            readonly: true,
            ..G
        };
        let mut h = hdr(req::OUT, 0);
        let c = Chain {
            readable: vec![iov(&mut h), iov(&mut d[..4096])],
            writable: vec![iov(&mut s)],
            descs: 3,
        };
        assert!(matches!(parse(&c, ro), Parsed::Fail { code: 1, .. }));
        let mut h = hdr(99, 0);
        let c = Chain {
            readable: vec![iov(&mut h)],
            writable: vec![iov(&mut s)],
            descs: 2,
        };
        assert!(matches!(parse(&c, G), Parsed::Fail { code: 2, .. }));
    }

    #[test]
    fn discard_ranges() {
        let mut h = [0u8; 48];
        h[..16].copy_from_slice(&hdr(req::DISCARD, 0));
        h[16..24].copy_from_slice(&8u64.to_le_bytes());
        h[24..28].copy_from_slice(&16u32.to_le_bytes());
        h[32..40].copy_from_slice(&0u64.to_le_bytes());
        h[40..44].copy_from_slice(&8u32.to_le_bytes());
        let mut s = [0u8; 1];
        let c = Chain {
            readable: vec![iov(&mut h[..20]), iov(&mut h[20..])],
            writable: vec![iov(&mut s)],
            descs: 3,
        };
        match parse(&c, G) {
            Parsed::Ok(BlkReq {
                op: Op::Discard(r), ..
            }) => assert_eq!(r, vec![(1, 2), (0, 1)]),
            p => panic!("{p:?}"),
        }
    }
}
