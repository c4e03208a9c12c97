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

/// A 64-bit FNV-1a digest: `blobstress` records the one of a region's contents before
/// it writes there, so the test can tell "not written" from "torn".
pub fn digest(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The generator's start state for `seed`: a SplitMix64 step, so that neighbouring
/// seeds give unrelated streams (never 0, which xorshift cannot leave).
pub fn seed_state(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).max(1)
}
