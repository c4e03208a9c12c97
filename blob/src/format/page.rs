//! Metadata pages (SPDK's `struct spdk_blob_md_page`, blobstore.h): 4 KiB, the blob
//! id, the page's sequence number in the blob's chain, 4072 bytes of descriptors, the
//! index of the next page in the chain (SPDK_INVALID_MD_PAGE at the end) and a CRC32C
//! over the first 4092 bytes.

use super::{get_u32, get_u64, need, page_crc, put_u32, put_u64, FormatError, PAGE_SIZE};

/// Byte offsets of the fields.
pub mod off {
    /// `spdk_blob_id id`.
    pub const ID: usize = 0;
    /// `uint32_t sequence_num`.
    pub const SEQUENCE_NUM: usize = 8;
    /// `uint32_t reserved0`.
    pub const RESERVED0: usize = 12;
    /// `uint8_t descriptors[4072]`.
    pub const DESCRIPTORS: usize = 16;
    /// `uint32_t next`.
    pub const NEXT: usize = 4088;
    /// `uint32_t crc`.
    pub const CRC: usize = 4092;
}

/// SPDK_BS_MAX_DESC_SIZE: bytes of descriptors a page holds.
pub const DESC_AREA: usize = 4072;

/// SPDK_INVALID_MD_PAGE: the end of a chain.
pub const INVALID_MD_PAGE: u32 = u32::MAX;

const _: () = assert!(off::DESCRIPTORS + DESC_AREA == off::NEXT);
const _: () = assert!(off::CRC + 4 == PAGE_SIZE);

/// A decoded metadata page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdPage {
    /// The blob it belongs to.
    pub id: u64,
    /// Its place in the chain (0 = the blob's first page).
    pub sequence_num: u32,
    /// The descriptor area (always [`DESC_AREA`] bytes).
    pub descriptors: Vec<u8>,
    /// Next page index or [`INVALID_MD_PAGE`].
    pub next: u32,
}

impl MdPage {
    /// A page with an empty (zeroed) descriptor area and no next page.
    pub fn new(id: u64, sequence_num: u32) -> MdPage {
        MdPage {
            id,
            sequence_num,
            descriptors: vec![0; DESC_AREA],
            next: INVALID_MD_PAGE,
        }
    }

    /// Encode with a fresh CRC.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; PAGE_SIZE];
        put_u64(&mut b, off::ID, self.id);
        put_u32(&mut b, off::SEQUENCE_NUM, self.sequence_num);
        let n = self.descriptors.len().min(DESC_AREA);
        b[off::DESCRIPTORS..off::DESCRIPTORS + n].copy_from_slice(&self.descriptors[..n]);
        put_u32(&mut b, off::NEXT, self.next);
        let crc = page_crc(&b);
        put_u32(&mut b, off::CRC, crc);
        b
    }

    /// Whether the stored CRC matches.
    pub fn crc_ok(b: &[u8]) -> bool {
        b.len() >= PAGE_SIZE && get_u32(b, off::CRC) == page_crc(b)
    }

    /// Decode, checking the CRC.
    pub fn decode(b: &[u8]) -> Result<MdPage, FormatError> {
        need("metadata page", b, PAGE_SIZE)?;
        let stored = get_u32(b, off::CRC);
        let crc = page_crc(b);
        if stored != crc {
            return Err(FormatError::Bad {
                what: "metadata page crc",
                why: format!("stored {stored:#010x}, computed {crc:#010x}"),
            });
        }
        Ok(MdPage {
            id: get_u64(b, off::ID),
            sequence_num: get_u32(b, off::SEQUENCE_NUM),
            descriptors: b[off::DESCRIPTORS..off::NEXT].to_vec(),
            next: get_u32(b, off::NEXT),
        })
    }
}
