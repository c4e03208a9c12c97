//! The data `blobstress` writes, which the crash-consistency test checks: shared by
//! both (the test includes this file).

/// The data of one write: 8 io units keyed by `gen`.
pub fn block(gen: u64, unit: usize) -> Vec<u8> {
    let mut x = gen | 1;
    (0..8 * unit)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
