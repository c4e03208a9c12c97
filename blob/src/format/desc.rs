//! Metadata descriptors (SPDK's `struct spdk_blob_md_descriptor` and its kinds,
//! blobstore.h): each starts with a type byte and a `uint32_t` length of what follows
//! (packed: 5 header bytes). A padding descriptor of length 0 ends a page's list.

use super::page::DESC_AREA;
use super::{get_u16, get_u32, get_u64, put_u16, put_u64, FormatError};

/// SPDK_MD_DESCRIPTOR_TYPE_PADDING.
pub const TYPE_PADDING: u8 = 0;
/// SPDK_MD_DESCRIPTOR_TYPE_EXTENT_RLE.
pub const TYPE_EXTENT_RLE: u8 = 1;
/// SPDK_MD_DESCRIPTOR_TYPE_XATTR.
pub const TYPE_XATTR: u8 = 2;
/// SPDK_MD_DESCRIPTOR_TYPE_FLAGS.
pub const TYPE_FLAGS: u8 = 3;
/// SPDK_MD_DESCRIPTOR_TYPE_XATTR_INTERNAL.
pub const TYPE_XATTR_INTERNAL: u8 = 4;
/// SPDK_MD_DESCRIPTOR_TYPE_EXTENT_TABLE.
pub const TYPE_EXTENT_TABLE: u8 = 5;
/// SPDK_MD_DESCRIPTOR_TYPE_EXTENT_PAGE.
pub const TYPE_EXTENT_PAGE: u8 = 6;

/// `sizeof(struct spdk_blob_md_descriptor)`: type (1) + length (4).
pub const HEADER: usize = 5;
/// Payload of the flags descriptor: three `uint64_t`.
pub const FLAGS_LEN: u32 = 24;
/// Bytes of an xattr descriptor before the name: header, name_length, value_length.
pub const XATTR_FIXED: usize = HEADER + 4;
/// Bytes of one RLE extent (`cluster_idx`, `length`).
pub const EXTENT_LEN: usize = 8;
/// Bytes of one extent-table entry (`page_idx`, `num_pages`).
pub const ET_ENTRY_LEN: usize = 8;

/// SPDK_EXTENTS_PER_EP: clusters one extent page describes. SPDK derives it from the
/// page: (4072 - 9) / 4 = 1015 entries fit, rounded down to a power of two: 512.
pub const EXTENTS_PER_EP: u64 = 512;
const _: () = assert!((DESC_AREA - HEADER - 4) / 4 == 1015);

/// invalid_flags bit SPDK_BLOB_THIN_PROV.
pub const FLAG_THIN_PROV: u64 = 1 << 0;
/// invalid_flags bit SPDK_BLOB_INTERNAL_XATTR.
pub const FLAG_INTERNAL_XATTR: u64 = 1 << 1;
/// invalid_flags bit SPDK_BLOB_EXTENT_TABLE.
pub const FLAG_EXTENT_TABLE: u64 = 1 << 2;
/// invalid_flags bit SPDK_BLOB_EXTERNAL_SNAPSHOT.
pub const FLAG_EXTERNAL_SNAPSHOT: u64 = 1 << 3;
/// SPDK_BLOB_INVALID_FLAGS_MASK: the invalid flags SPDK knows.
pub const INVALID_FLAGS_MASK: u64 =
    FLAG_THIN_PROV | FLAG_INTERNAL_XATTR | FLAG_EXTENT_TABLE | FLAG_EXTERNAL_SNAPSHOT;
/// data_ro_flags bit SPDK_BLOB_READ_ONLY.
pub const FLAG_READ_ONLY: u64 = 1 << 0;
/// SPDK_BLOB_DATA_RO_FLAGS_MASK.
pub const DATA_RO_FLAGS_MASK: u64 = FLAG_READ_ONLY;
/// SPDK_BLOB_MD_RO_FLAGS_MASK (the clear method, two bits).
pub const MD_RO_FLAGS_MASK: u64 = 3;

/// The flags descriptor's three words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// A bit unknown here forbids opening the blob.
    pub invalid: u64,
    /// A bit unknown here opens the blob data- and metadata-read-only.
    pub data_ro: u64,
    /// A bit unknown here opens the blob metadata-read-only.
    pub md_ro: u64,
}

/// An xattr (`struct spdk_blob_md_descriptor_xattr`: name_length and value_length are
/// `uint16_t`, the name (no terminating zero) is followed by the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xattr {
    /// Internal (type 4) or user (type 2).
    pub internal: bool,
    /// The name.
    pub name: String,
    /// The value.
    pub value: Vec<u8>,
}

/// One RLE extent: `length` clusters from `cluster_idx` (0 = unallocated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// First cluster, or 0 for a run of unallocated clusters.
    pub cluster_idx: u32,
    /// Clusters in the run.
    pub length: u32,
}

/// One extent-table entry: `page_idx` (an md page holding an extent page) or 0 with
/// `num_pages` unallocated extent pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtentTableEntry {
    /// Metadata page index, or 0.
    pub page_idx: u32,
    /// 1 for an allocated page; the run length for 0.
    pub num_pages: u32,
}

/// A decoded descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Descriptor {
    /// Type 0 with a non-zero length: skipped.
    Padding,
    /// Type 3.
    Flags(Flags),
    /// Types 2 and 4.
    Xattr(Xattr),
    /// Type 1.
    ExtentRle(Vec<Extent>),
    /// Type 5.
    ExtentTable {
        /// Clusters in the blob.
        num_clusters: u64,
        /// The entries.
        entries: Vec<ExtentTableEntry>,
    },
    /// Type 6.
    ExtentPage {
        /// The first cluster index the page describes.
        start_cluster_idx: u32,
        /// One cluster index per blob cluster (0 = unallocated).
        clusters: Vec<u32>,
    },
    /// A type this version does not know (SPDK skips these too).
    Unknown(u8),
}

fn bad(what: &'static str, why: impl Into<String>) -> FormatError {
    FormatError::Bad {
        what,
        why: why.into(),
    }
}

fn header(out: &mut Vec<u8>, t: u8, len: usize) {
    out.push(t);
    out.extend_from_slice(&(len as u32).to_le_bytes());
}

impl Descriptor {
    /// The encoded bytes (header included).
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::new();
        match self {
            Descriptor::Padding | Descriptor::Unknown(_) => {}
            Descriptor::Flags(f) => {
                header(&mut o, TYPE_FLAGS, FLAGS_LEN as usize);
                let mut b = [0u8; 24];
                put_u64(&mut b, 0, f.invalid);
                put_u64(&mut b, 8, f.data_ro);
                put_u64(&mut b, 16, f.md_ro);
                o.extend_from_slice(&b);
            }
            Descriptor::Xattr(x) => {
                let t = if x.internal {
                    TYPE_XATTR_INTERNAL
                } else {
                    TYPE_XATTR
                };
                header(&mut o, t, 4 + x.name.len() + x.value.len());
                let mut b = [0u8; 4];
                put_u16(&mut b, 0, x.name.len() as u16);
                put_u16(&mut b, 2, x.value.len() as u16);
                o.extend_from_slice(&b);
                o.extend_from_slice(x.name.as_bytes());
                o.extend_from_slice(&x.value);
            }
            Descriptor::ExtentRle(ex) => {
                header(&mut o, TYPE_EXTENT_RLE, ex.len() * EXTENT_LEN);
                for e in ex {
                    o.extend_from_slice(&e.cluster_idx.to_le_bytes());
                    o.extend_from_slice(&e.length.to_le_bytes());
                }
            }
            Descriptor::ExtentTable {
                num_clusters,
                entries,
            } => {
                header(&mut o, TYPE_EXTENT_TABLE, 8 + entries.len() * ET_ENTRY_LEN);
                o.extend_from_slice(&num_clusters.to_le_bytes());
                for e in entries {
                    o.extend_from_slice(&e.page_idx.to_le_bytes());
                    o.extend_from_slice(&e.num_pages.to_le_bytes());
                }
            }
            Descriptor::ExtentPage {
                start_cluster_idx,
                clusters,
            } => {
                header(&mut o, TYPE_EXTENT_PAGE, 4 + clusters.len() * 4);
                o.extend_from_slice(&start_cluster_idx.to_le_bytes());
                for c in clusters {
                    o.extend_from_slice(&c.to_le_bytes());
                }
            }
        }
        o
    }

    /// Parse a page's descriptor area the way SPDK walks it (`blob_parse_page`): stop at
    /// a padding descriptor of length 0 or when no header fits; a descriptor whose
    /// length runs past the area, or whose payload is malformed, is an error.
    pub fn parse_area(area: &[u8]) -> Result<Vec<Descriptor>, FormatError> {
        let mut out = Vec::new();
        let mut cur = 0usize;
        while cur + HEADER <= area.len() {
            let t = area[cur];
            let len = get_u32(area, cur + 1) as usize;
            if t == TYPE_PADDING && len == 0 {
                break;
            }
            let end = cur
                .checked_add(HEADER)
                .and_then(|x| x.checked_add(len))
                .filter(|&e| e <= area.len())
                .ok_or_else(|| {
                    bad(
                        "descriptor length",
                        format!("type {t} at byte {cur} claims {len} bytes, past the page"),
                    )
                })?;
            let p = &area[cur + HEADER..end];
            out.push(Self::parse_one(t, p)?);
            cur = end;
        }
        Ok(out)
    }

    fn parse_one(t: u8, p: &[u8]) -> Result<Descriptor, FormatError> {
        Ok(match t {
            TYPE_PADDING => Descriptor::Padding,
            TYPE_FLAGS => {
                if p.len() != FLAGS_LEN as usize {
                    return Err(bad("flags descriptor", format!("length {} != 24", p.len())));
                }
                Descriptor::Flags(Flags {
                    invalid: get_u64(p, 0),
                    data_ro: get_u64(p, 8),
                    md_ro: get_u64(p, 16),
                })
            }
            TYPE_XATTR | TYPE_XATTR_INTERNAL => {
                if p.len() < 4 {
                    return Err(bad("xattr descriptor", format!("length {} < 4", p.len())));
                }
                let nl = get_u16(p, 0) as usize;
                let vl = get_u16(p, 2) as usize;
                if 4 + nl + vl != p.len() {
                    return Err(bad(
                        "xattr descriptor",
                        format!("length {} != 4 + name {nl} + value {vl}", p.len()),
                    ));
                }
                let name = std::str::from_utf8(&p[4..4 + nl])
                    .map_err(|_| bad("xattr name", "not UTF-8"))?
                    .to_string();
                Descriptor::Xattr(Xattr {
                    internal: t == TYPE_XATTR_INTERNAL,
                    name,
                    value: p[4 + nl..].to_vec(),
                })
            }
            TYPE_EXTENT_RLE => {
                if p.is_empty() || !p.len().is_multiple_of(EXTENT_LEN) {
                    return Err(bad(
                        "extent RLE descriptor",
                        format!("length {} is not a non-zero multiple of 8", p.len()),
                    ));
                }
                Descriptor::ExtentRle(
                    p.chunks_exact(EXTENT_LEN)
                        .map(|c| Extent {
                            cluster_idx: get_u32(c, 0),
                            length: get_u32(c, 4),
                        })
                        .collect(),
                )
            }
            TYPE_EXTENT_TABLE => {
                if p.len() < 8 || !(p.len() - 8).is_multiple_of(ET_ENTRY_LEN) {
                    return Err(bad(
                        "extent table descriptor",
                        format!("length {} is not 8 + a multiple of 8", p.len()),
                    ));
                }
                Descriptor::ExtentTable {
                    num_clusters: get_u64(p, 0),
                    entries: p[8..]
                        .chunks_exact(ET_ENTRY_LEN)
                        .map(|c| ExtentTableEntry {
                            page_idx: get_u32(c, 0),
                            num_pages: get_u32(c, 4),
                        })
                        .collect(),
                }
            }
            TYPE_EXTENT_PAGE => {
                if p.len() <= 4 || !(p.len() - 4).is_multiple_of(4) {
                    return Err(bad(
                        "extent page descriptor",
                        format!("length {} is not 4 + a non-zero multiple of 4", p.len()),
                    ));
                }
                Descriptor::ExtentPage {
                    start_cluster_idx: get_u32(p, 0),
                    clusters: p[4..].chunks_exact(4).map(|c| get_u32(c, 0)).collect(),
                }
            }
            other => Descriptor::Unknown(other),
        })
    }
}
