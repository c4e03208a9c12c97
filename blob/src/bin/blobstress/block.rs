//! The data `blobstress` writes, which the crash-consistency test checks: shared by
//! both, and by the blob tests' patterns (the tests include this file).

/// `n` bytes of xorshift64 from state `x`.
pub fn xorshift_bytes(mut x: u64, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The data of one write: 8 io units keyed by `gen`.
pub fn block(gen: u64, unit: usize) -> Vec<u8> {
    xorshift_bytes(gen | 1, 8 * unit)
}
