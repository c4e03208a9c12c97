//! SPDK's blobstore on-disk format, version 3 (the layout facts of SPDK's
//! `lib/blob/blobstore.h`, "On-Disk Data Structures"): the super block, the three
//! masks, metadata pages and their descriptors, and the CRC32C they carry.
//!
//! Everything is explicit little-endian byte encoding: each structure names its size
//! and the byte offset of every field as constants, asserted at compile time against
//! the sizes SPDK's packed structs have. Decoding never panics on any input: a short or
//! malformed buffer is a [`FormatError`].

pub mod desc;
pub mod mask;
pub mod page;
pub mod super_block;

pub use desc::{Descriptor, Extent, ExtentTableEntry, Flags, Xattr};
pub use mask::{Mask, MaskType};
pub use page::MdPage;
pub use super_block::SuperBlock;

/// SPDK_BS_PAGE_SIZE: a metadata page and the super block are 4 KiB.
pub const PAGE_SIZE: usize = 0x1000;

/// SPDK_BS_VERSION: the version this implementation writes and reads.
pub const VERSION: u32 = 3;
/// SPDK_BS_INITIAL_VERSION: the oldest version SPDK accepts.
pub const INITIAL_VERSION: u32 = 1;

/// SPDK_BLOBSTORE_TYPE_LENGTH: bytes of the bstype field.
pub const BSTYPE_LEN: usize = 16;

/// SPDK_BLOBID_INVALID (`(uint64_t)-1`): no blob (an unset super blob).
pub const BLOBID_INVALID: u64 = u64::MAX;

/// SPDK_BLOB_BLOBID_HIGH_BIT: blob ids are `1 << 32 | md page index`.
pub const BLOBID_HIGH_BIT: u64 = 1 << 32;

/// The blob id of the blob whose first metadata page is `page` (bs_page_to_blobid).
pub fn page_to_blobid(page: u32) -> u64 {
    BLOBID_HIGH_BIT | u64::from(page)
}

/// The metadata page index of a blob id (bs_blobid_to_page).
pub fn blobid_to_page(id: u64) -> u32 {
    (id & 0xFFFF_FFFF) as u32
}

/// What went wrong decoding a structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The buffer is shorter than the structure.
    #[error("{what} needs {need} bytes, got {have}")]
    Short {
        /// The structure.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// A field holds a value the format does not allow.
    #[error("{what}: {why}")]
    Bad {
        /// The structure and field.
        what: &'static str,
        /// Why.
        why: String,
    },
}

/// CRC32C as SPDK's `blob_md_page_calc_crc` computes it: seed `~0` over the page's
/// first 4092 bytes (everything before the trailing `crc` field), result xored with `~0`
/// (that is the standard CRC-32C).
pub fn page_crc(page: &[u8]) -> u32 {
    crc32c::crc32c(&page[..PAGE_SIZE - 4])
}

pub(crate) fn get_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

pub(crate) fn get_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

pub(crate) fn get_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

pub(crate) fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn need(what: &'static str, b: &[u8], n: usize) -> Result<(), FormatError> {
    if b.len() < n {
        return Err(FormatError::Short {
            what,
            need: n,
            have: b.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_standard_crc32c() {
        // RFC 3720 B.4: 32 bytes of zeros give 0x8a9136aa.
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
        let mut p = vec![0u8; PAGE_SIZE];
        p[100] = 7;
        let c = page_crc(&p);
        p[PAGE_SIZE - 1] = 0xff; // the crc field itself is not covered
        assert_eq!(page_crc(&p), c);
        p[4091] = 1;
        assert_ne!(page_crc(&p), c);
    }

    #[test]
    fn blob_ids() {
        assert_eq!(page_to_blobid(5), 0x1_0000_0005);
        assert_eq!(blobid_to_page(0x1_0000_0005), 5);
    }
}
