//! The super block (SPDK's `struct spdk_bs_super_block`, blobstore.h): page 0 of the
//! device, 4 KiB, packed, little-endian; CRC32C over its first 4092 bytes.

use super::{get_u32, get_u64, need, page_crc, put_u32, put_u64, FormatError};
use super::{BSTYPE_LEN, INITIAL_VERSION, PAGE_SIZE, VERSION};

/// SPDK_BS_SUPER_BLOCK_SIG.
pub const SIGNATURE: [u8; 8] = *b"SPDKBLOB";

/// Byte offsets of the fields (the packed layout of `spdk_bs_super_block`).
pub mod off {
    /// `uint8_t signature[8]`.
    pub const SIGNATURE: usize = 0;
    /// `uint32_t version`.
    pub const VERSION: usize = 8;
    /// `uint32_t length`.
    pub const LENGTH: usize = 12;
    /// `uint32_t clean`: 1 after a clean shutdown.
    pub const CLEAN: usize = 16;
    /// `spdk_blob_id super_blob`.
    pub const SUPER_BLOB: usize = 20;
    /// `uint32_t cluster_size`, bytes.
    pub const CLUSTER_SIZE: usize = 28;
    /// `uint32_t used_page_mask_start`, pages from the start of the device.
    pub const USED_PAGE_MASK_START: usize = 32;
    /// `uint32_t used_page_mask_len`, pages.
    pub const USED_PAGE_MASK_LEN: usize = 36;
    /// `uint32_t used_cluster_mask_start`.
    pub const USED_CLUSTER_MASK_START: usize = 40;
    /// `uint32_t used_cluster_mask_len`.
    pub const USED_CLUSTER_MASK_LEN: usize = 44;
    /// `uint32_t md_start`.
    pub const MD_START: usize = 48;
    /// `uint32_t md_len`.
    pub const MD_LEN: usize = 52;
    /// `struct spdk_bs_type bstype` (16 bytes).
    pub const BSTYPE: usize = 56;
    /// `uint32_t used_blobid_mask_start`.
    pub const USED_BLOBID_MASK_START: usize = 72;
    /// `uint32_t used_blobid_mask_len`.
    pub const USED_BLOBID_MASK_LEN: usize = 76;
    /// `uint64_t size`, bytes.
    pub const SIZE: usize = 80;
    /// `uint32_t io_unit_size`, bytes.
    pub const IO_UNIT_SIZE: usize = 88;
    /// `uint32_t md_page_size`, bytes.
    pub const MD_PAGE_SIZE: usize = 92;
    /// `uint8_t reserved[3996]`.
    pub const RESERVED: usize = 96;
    /// `uint32_t crc`.
    pub const CRC: usize = 4092;
}

const _: () = assert!(off::RESERVED + 3996 == off::CRC);
const _: () = assert!(off::CRC + 4 == PAGE_SIZE);
const _: () = assert!(off::BSTYPE + super::BSTYPE_LEN == off::USED_BLOBID_MASK_START);

/// The decoded super block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperBlock {
    /// Format version (1..=3).
    pub version: u32,
    /// `sizeof(struct spdk_bs_super_block)`: 4096.
    pub length: u32,
    /// Clean shutdown flag.
    pub clean: bool,
    /// The super blob's id, or [`super::BLOBID_INVALID`].
    pub super_blob: u64,
    /// Cluster size in bytes.
    pub cluster_size: u32,
    /// Used-page mask region (start, length) in pages.
    pub used_page_mask: (u32, u32),
    /// Used-cluster mask region.
    pub used_cluster_mask: (u32, u32),
    /// Metadata region (start, length) in pages.
    pub md: (u32, u32),
    /// Blobstore type.
    pub bstype: [u8; BSTYPE_LEN],
    /// Used-blobid mask region (length 0 before version 3).
    pub used_blobid_mask: (u32, u32),
    /// Size of the store in bytes (0 in old versions: the device size).
    pub size: u64,
    /// I/O unit in bytes (0 in old versions: 4096).
    pub io_unit_size: u32,
    /// Metadata page size in bytes (0 in old versions: 4096).
    pub md_page_size: u32,
}

impl SuperBlock {
    /// Encode with a fresh CRC.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; PAGE_SIZE];
        b[off::SIGNATURE..off::SIGNATURE + 8].copy_from_slice(&SIGNATURE);
        put_u32(&mut b, off::VERSION, self.version);
        put_u32(&mut b, off::LENGTH, self.length);
        put_u32(&mut b, off::CLEAN, u32::from(self.clean));
        put_u64(&mut b, off::SUPER_BLOB, self.super_blob);
        put_u32(&mut b, off::CLUSTER_SIZE, self.cluster_size);
        put_u32(&mut b, off::USED_PAGE_MASK_START, self.used_page_mask.0);
        put_u32(&mut b, off::USED_PAGE_MASK_LEN, self.used_page_mask.1);
        put_u32(
            &mut b,
            off::USED_CLUSTER_MASK_START,
            self.used_cluster_mask.0,
        );
        put_u32(&mut b, off::USED_CLUSTER_MASK_LEN, self.used_cluster_mask.1);
        put_u32(&mut b, off::MD_START, self.md.0);
        put_u32(&mut b, off::MD_LEN, self.md.1);
        b[off::BSTYPE..off::BSTYPE + BSTYPE_LEN].copy_from_slice(&self.bstype);
        put_u32(&mut b, off::USED_BLOBID_MASK_START, self.used_blobid_mask.0);
        put_u32(&mut b, off::USED_BLOBID_MASK_LEN, self.used_blobid_mask.1);
        put_u64(&mut b, off::SIZE, self.size);
        put_u32(&mut b, off::IO_UNIT_SIZE, self.io_unit_size);
        put_u32(&mut b, off::MD_PAGE_SIZE, self.md_page_size);
        let crc = page_crc(&b);
        put_u32(&mut b, off::CRC, crc);
        b
    }

    /// Decode and check what SPDK's `bs_super_validate` checks: version range,
    /// signature, CRC. The caller checks bstype and size against its device.
    pub fn decode(b: &[u8]) -> Result<SuperBlock, FormatError> {
        need("super block", b, PAGE_SIZE)?;
        if b[off::SIGNATURE..off::SIGNATURE + 8] != SIGNATURE {
            return Err(FormatError::Bad {
                what: "super block signature",
                why: format!(
                    "{:02x?} is not \"SPDKBLOB\" (no blobstore on this device?)",
                    &b[off::SIGNATURE..off::SIGNATURE + 8]
                ),
            });
        }
        let version = get_u32(b, off::VERSION);
        if !(INITIAL_VERSION..=VERSION).contains(&version) {
            return Err(FormatError::Bad {
                what: "super block version",
                why: format!("{version} is outside {INITIAL_VERSION}..={VERSION}"),
            });
        }
        let stored = get_u32(b, off::CRC);
        let crc = page_crc(b);
        if stored != crc {
            return Err(FormatError::Bad {
                what: "super block crc",
                why: format!("stored {stored:#010x}, computed {crc:#010x}"),
            });
        }
        let mut bstype = [0u8; BSTYPE_LEN];
        bstype.copy_from_slice(&b[off::BSTYPE..off::BSTYPE + BSTYPE_LEN]);
        Ok(SuperBlock {
            version,
            length: get_u32(b, off::LENGTH),
            clean: get_u32(b, off::CLEAN) == 1,
            super_blob: get_u64(b, off::SUPER_BLOB),
            cluster_size: get_u32(b, off::CLUSTER_SIZE),
            used_page_mask: (
                get_u32(b, off::USED_PAGE_MASK_START),
                get_u32(b, off::USED_PAGE_MASK_LEN),
            ),
            used_cluster_mask: (
                get_u32(b, off::USED_CLUSTER_MASK_START),
                get_u32(b, off::USED_CLUSTER_MASK_LEN),
            ),
            md: (get_u32(b, off::MD_START), get_u32(b, off::MD_LEN)),
            bstype,
            used_blobid_mask: (
                get_u32(b, off::USED_BLOBID_MASK_START),
                get_u32(b, off::USED_BLOBID_MASK_LEN),
            ),
            size: get_u64(b, off::SIZE),
            io_unit_size: get_u32(b, off::IO_UNIT_SIZE),
            md_page_size: get_u32(b, off::MD_PAGE_SIZE),
        })
    }
}

/// A bstype from a string (truncated to 16 bytes, zero padded; all zeros matches any
/// store on load, as SPDK's wildcard).
pub fn bstype(s: &str) -> [u8; BSTYPE_LEN] {
    let mut t = [0u8; BSTYPE_LEN];
    let n = s.len().min(BSTYPE_LEN);
    t[..n].copy_from_slice(&s.as_bytes()[..n]);
    t
}

/// The bstype as text (up to the first zero).
pub fn bstype_str(t: &[u8; BSTYPE_LEN]) -> String {
    let end = t.iter().position(|&c| c == 0).unwrap_or(BSTYPE_LEN);
    String::from_utf8_lossy(&t[..end]).into_owned()
}
