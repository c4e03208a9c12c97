//! The measured loop of `mempool_perf`, in its own file: the structure of DPDK 22.11's
//! `test_loop` in app/test/test_mempool_perf.c.

use eal::VirtAddr;
use mempool::{BulkGetPut, CacheRef, GetPutLoop};

/// Objects per round (DPDK's `N`).
pub const N: u32 = 65536;
/// Largest n_keep (DPDK's `MAX_KEEP`): the size of a lcore's object table.
pub const MAX_KEEP: usize = 512;

/// A lcore's object table, aligned to a cache line. DPDK's is a C array on the stack,
/// which the x86-64 ABI aligns to 16 bytes; a Rust array of `VirtAddr` only to 8, and
/// then every 16-byte move the copies compile to is misaligned and one in four splits a
/// cache line (measured: 5-10% on the bulk-32 cases with the table at 8 mod 16).
#[repr(C, align(64))]
pub struct Table(pub [VirtAddr; MAX_KEEP]);

impl Table {
    /// A zeroed table.
    pub fn new() -> Table {
        Table([VirtAddr(0); MAX_KEEP])
    }
}

/// Where one lcore takes objects from: the pool with its cache resolved once per lcore,
/// as DPDK's test does (`rte_mempool_default_cache` or a user cache, then
/// `rte_mempool_generic_get/put` with it). Each round runs through [`CacheRef::run`],
/// so the loops below are compiled for the one path they take (cache or not, statistics
/// or not).
pub struct Src<'a>(CacheRef<'a>);

impl<'a> Src<'a> {
    /// The source for `cache`.
    pub fn new(cache: CacheRef<'a>) -> Src<'a> {
        Src(cache)
    }
}

#[inline(always)]
fn get<S: BulkGetPut>(s: &S, objs: &mut [VirtAddr]) -> bool {
    s.get_bulk(objs).is_ok()
}

#[inline(always)]
fn put<S: BulkGetPut>(s: &S, objs: &[VirtAddr]) {
    // SAFETY: every object was got from this pool in the same cycle and is put once.
    let r = unsafe { s.put_bulk(objs) };
    debug_assert!(r.is_ok());
}

/// One round: N / keep cycles of (get keep in bulks of gb, put keep in bulks of pb).
#[inline(always)]
fn round<S: BulkGetPut>(src: &S, table: &mut Table, keep: usize, gb: usize, pb: usize) -> bool {
    // `keep` is a multiple of both bulk sizes (the case list skips the others). The loop
    // steps an index as DPDK's test does: `chunks_exact` divides keep by the bulk size on
    // every cycle, a `div` DPDK's loop does not have.
    let table = &mut table.0[..keep];
    for _ in 0..(N as usize / keep) {
        let mut idx = 0;
        while idx < keep {
            if !get(src, &mut table[idx..idx + gb]) {
                return false;
            }
            idx += gb;
        }
        let mut idx = 0;
        while idx < keep {
            put(src, &table[idx..idx + pb]);
            idx += pb;
        }
    }
    true
}

/// [`round`] with both bulk sizes the constant `B`. The table is walked in exact chunks
/// of `B`: with `B` a compile-time power of two the chunk count is a shift, and the chunks
/// need no bounds checks (the index-stepped loop of `round` checks each slice).
#[inline(never)]
fn round_const<S: BulkGetPut, const B: usize>(src: &S, table: &mut Table, keep: usize) -> bool {
    let table = &mut table.0[..keep];
    for _ in 0..(N as usize / keep) {
        for objs in table.chunks_exact_mut(B) {
            if !get(src, objs) {
                return false;
            }
        }
        for objs in table.chunks_exact(B) {
            put(src, objs);
        }
    }
    true
}

/// [`round`] with run-time bulk sizes, out of line (as `mempool_case.c` and the A/B shim
/// have DPDK's loop): it then compiles the same whatever code surrounds the call.
#[inline(never)]
fn round_var<S: BulkGetPut>(src: &S, table: &mut Table, keep: usize, gb: usize, pb: usize) -> bool {
    round(src, table, keep, gb, pb)
}

#[inline(always)]
fn run<S: BulkGetPut>(
    src: &S,
    table: &mut Table,
    keep: usize,
    gb: usize,
    pb: usize,
    constant: bool,
) -> bool {
    if !constant || gb != pb {
        return round_var(src, table, keep, gb, pb);
    }
    match gb {
        1 => round_const::<S, 1>(src, table, keep),
        4 => round_const::<S, 4>(src, table, keep),
        8 => round_const::<S, 8>(src, table, keep),
        32 => round_const::<S, 32>(src, table, keep),
        _ => round_var(src, table, keep, gb, pb),
    }
}

/// One round of a case, as a loop body for [`CacheRef::run`].
struct Round<'t> {
    table: &'t mut Table,
    keep: usize,
    gb: usize,
    pb: usize,
    constant: bool,
}

impl GetPutLoop for Round<'_> {
    type Output = bool;

    #[inline(always)]
    fn run<S: BulkGetPut>(self, src: &S) -> bool {
        run(src, self.table, self.keep, self.gb, self.pb, self.constant)
    }
}

/// One round of a case: `N / keep` cycles, with the bulk sizes as run-time values, or, if
/// `constant` and the sizes are equal and one of 1, 4, 8, 32, as compile-time constants
/// (DPDK's "constant_n" replay). False if a get failed.
#[inline(always)]
pub fn run_round(
    src: &Src<'_>,
    table: &mut Table,
    keep: usize,
    gb: usize,
    pb: usize,
    constant: bool,
) -> bool {
    src.0.run(Round {
        table,
        keep,
        gb,
        pb,
        constant,
    })
}
