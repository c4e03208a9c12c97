//! The masks (SPDK's `struct spdk_bs_md_mask`, blobstore.h): a type byte, a length in
//! bits (`uint32_t`, packed right after the type), then the bits, bit `i` in byte
//! `i / 8` at position `i % 8` (SPDK stores its 64-bit bit-array words little-endian).

use super::{get_u32, need, put_u32, FormatError};

/// Byte offsets in a mask region.
pub mod off {
    /// `uint8_t type`.
    pub const TYPE: usize = 0;
    /// `uint32_t length`, in bits.
    pub const LENGTH: usize = 1;
    /// `uint8_t mask[]`.
    pub const BITS: usize = 5;
}

/// Size of the mask header (`sizeof(struct spdk_bs_md_mask)` with its empty array).
pub const HEADER: usize = off::BITS;

/// Which mask (SPDK_MD_MASK_TYPE_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskType {
    /// SPDK_MD_MASK_TYPE_USED_PAGES = 0: metadata pages in use (relative to md_start).
    UsedPages = 0,
    /// SPDK_MD_MASK_TYPE_USED_CLUSTERS = 1: clusters in use.
    UsedClusters = 1,
    /// SPDK_MD_MASK_TYPE_USED_BLOBIDS = 2: metadata pages that start a blob.
    UsedBlobids = 2,
}

/// A fixed-length bit set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bits {
    words: Vec<u64>,
    len: u32,
}

impl Bits {
    /// `len` clear bits.
    pub fn new(len: u32) -> Bits {
        Bits {
            words: vec![0; (len as usize).div_ceil(64)],
            len,
        }
    }

    /// Number of bits.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether there are no bits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bit `i` (false past the end).
    pub fn get(&self, i: u32) -> bool {
        i < self.len && self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Set bit `i` (ignored past the end).
    pub fn set(&mut self, i: u32) {
        if i < self.len {
            self.words[(i / 64) as usize] |= 1 << (i % 64);
        }
    }

    /// Clear bit `i`.
    pub fn clear(&mut self, i: u32) {
        if i < self.len {
            self.words[(i / 64) as usize] &= !(1 << (i % 64));
        }
    }

    /// Number of set bits.
    pub fn count(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    /// The first clear bit at or after `from`.
    pub fn first_clear(&self, from: u32) -> Option<u32> {
        let mut i = from;
        while i < self.len {
            let w = self.words[(i / 64) as usize] | ((1u64 << (i % 64)) - 1);
            if w != u64::MAX {
                let b = (i / 64) * 64 + (!w).trailing_zeros();
                return (b < self.len).then_some(b);
            }
            i = (i / 64 + 1) * 64;
        }
        None
    }

    /// Indices of the set bits.
    pub fn iter_set(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).filter(|&i| self.get(i))
    }
}

/// A decoded mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    /// Its type byte.
    pub kind: u8,
    /// Its bits.
    pub bits: Bits,
}

impl Mask {
    /// Bytes the mask takes: header plus the bits rounded up to a byte.
    pub fn encoded_len(bits: u32) -> usize {
        HEADER + (bits as usize).div_ceil(8)
    }

    /// Encode into `region` (zeroed first; it must hold [`Mask::encoded_len`]).
    pub fn encode_into(kind: MaskType, bits: &Bits, region: &mut [u8]) -> Result<(), FormatError> {
        need("mask region", region, Self::encoded_len(bits.len()))?;
        region.fill(0);
        region[off::TYPE] = kind as u8;
        put_u32(region, off::LENGTH, bits.len());
        for i in bits.iter_set() {
            region[off::BITS + (i / 8) as usize] |= 1 << (i % 8);
        }
        Ok(())
    }

    /// Decode a mask region, checking the type and that the bits fit the region.
    pub fn decode(want: MaskType, region: &[u8]) -> Result<Mask, FormatError> {
        need("mask header", region, HEADER)?;
        let kind = region[off::TYPE];
        if kind != want as u8 {
            return Err(FormatError::Bad {
                what: "mask type",
                why: format!("expected {} ({want:?}), found {kind}", want as u8),
            });
        }
        let len = get_u32(region, off::LENGTH);
        let bytes = (len as usize).div_ceil(8);
        if region.len() - HEADER < bytes {
            return Err(FormatError::Bad {
                what: "mask length",
                why: format!("{len} bits do not fit the {}-byte region", region.len()),
            });
        }
        let mut bits = Bits::new(len);
        for i in 0..len {
            if region[off::BITS + (i / 8) as usize] & (1 << (i % 8)) != 0 {
                bits.set(i);
            }
        }
        Ok(Mask { kind, bits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_first_clear() {
        let mut b = Bits::new(130);
        for i in 0..129 {
            b.set(i);
        }
        assert_eq!(b.first_clear(0), Some(129));
        b.set(129);
        assert_eq!(b.first_clear(0), None);
        b.clear(64);
        assert_eq!(b.first_clear(3), Some(64));
        assert_eq!(b.first_clear(65), None);
        assert_eq!(b.count(), 129);
    }
}
