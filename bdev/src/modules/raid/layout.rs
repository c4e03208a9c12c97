//! Where RAID0 puts a block (SPDK's `raid0_submit_rw_request` arithmetic), apart from
//! any I/O so it can be checked on its own.
//!
//! The array is cut into strips of `strip_blocks`; strip `s` lives on base
//! `s % n`, as that base's strip `s / n`. A RAID0 bdev sets its optimal I/O boundary
//! to the strip size, so the layer hands the module read and write requests that stay
//! within one strip; ranges without data (unmap, write-zeroes, flush) may span many
//! strips and are cut into one contiguous range per base by [`raid0_ranges`].

/// The base and the block on it of array block `lba`.
pub fn raid0_map(lba: u64, strip_blocks: u64, n: usize) -> (usize, u64) {
    let strip = lba / strip_blocks;
    let n = n as u64;
    (
        (strip % n) as usize,
        (strip / n) * strip_blocks + lba % strip_blocks,
    )
}

/// The range `[offset, offset + blocks)` of the array as one `(base, first block,
/// blocks)` per base it touches. Each base's share of a contiguous array range is
/// contiguous on that base.
pub fn raid0_ranges(
    offset: u64,
    blocks: u64,
    strip_blocks: u64,
    n: usize,
) -> Vec<(usize, u64, u64)> {
    let mut out: Vec<(usize, u64, u64)> = Vec::new();
    let (mut lba, end) = (offset, offset + blocks);
    while lba < end {
        let take = (strip_blocks - lba % strip_blocks).min(end - lba);
        let (b, blba) = raid0_map(lba, strip_blocks, n);
        match out.iter_mut().find(|r| r.0 == b) {
            Some(r) => r.2 += take,
            None => out.push((b, blba, take)),
        }
        lba += take;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_rotate_over_bases() {
        // 3 bases, 4-block strips: array block 13 is strip 3 -> base 0, its strip 1.
        assert_eq!(raid0_map(0, 4, 3), (0, 0));
        assert_eq!(raid0_map(5, 4, 3), (1, 1));
        assert_eq!(raid0_map(11, 4, 3), (2, 3));
        assert_eq!(raid0_map(13, 4, 3), (0, 5));
    }

    #[test]
    fn ranges_cover_each_block_once() {
        for (off, n) in [(0u64, 1u64), (3, 30), (7, 5), (12, 12), (1, 47)] {
            let r = raid0_ranges(off, n, 4, 3);
            assert_eq!(r.iter().map(|x| x.2).sum::<u64>(), n, "{off}+{n}");
            // Block by block: every array block lands inside its base's range.
            for lba in off..off + n {
                let (b, blba) = raid0_map(lba, 4, 3);
                let (_, first, cnt) = r.iter().find(|x| x.0 == b).copied().unwrap();
                assert!(
                    blba >= first && blba < first + cnt,
                    "{lba} -> {b}:{blba} not in {r:?}"
                );
            }
        }
    }
}
