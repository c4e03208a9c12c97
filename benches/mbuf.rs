//! Mbuf benchmarks: bulk alloc/free of 32, and chain operations (append a segment,
//! linearize, clone). Run with `cargo bench --bench mbuf`; the EAL runs `--no-huge` on
//! lcore 0 (the bench thread), so allocations go through the lcore-0 cache.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use eal::Eal;
use mbuf::{pktmbuf_pool_create, Mbuf, PktmbufPool, MBUF_DEFAULT_BUF_SIZE};

fn setup() -> (Eal, PktmbufPool) {
    let argv = testkit::eal_env::no_huge_args("bench-mbuf", 256, "0");
    let (eal, _) = Eal::init(&argv).expect("EAL init (--no-huge)");
    let pool = pktmbuf_pool_create(
        &eal,
        "bench_mbuf",
        8191,
        256,
        0,
        MBUF_DEFAULT_BUF_SIZE,
        None,
    )
    .expect("mbuf pool");
    (eal, pool)
}

fn benches(c: &mut Criterion) {
    let (_eal, pool) = setup();

    let mut g = c.benchmark_group("mbuf");
    g.bench_function("alloc_free_bulk_32", |b| {
        let mut slots: Vec<Option<Mbuf>> = (0..32).map(|_| None).collect();
        b.iter(|| {
            Mbuf::alloc_bulk(&pool, &mut slots).expect("alloc 32");
            Mbuf::free_bulk(slots.iter_mut().map(|s| s.take().expect("allocated")));
        })
    });
    g.bench_function("alloc_free_single", |b| {
        b.iter(|| {
            let m = Mbuf::alloc(&pool).expect("alloc");
            drop(black_box(m));
        })
    });
    g.bench_function("chain_append_segment", |b| {
        b.iter_batched(
            || {
                let mut h = Mbuf::alloc(&pool).expect("alloc");
                h.append(64).expect("room");
                let mut t = Mbuf::alloc(&pool).expect("alloc");
                t.append(64).expect("room");
                (h, t)
            },
            |(mut h, t)| {
                h.chain(t).expect("chain");
                h
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("linearize_4x256", |b| {
        b.iter_batched(
            || {
                let mut h = Mbuf::alloc(&pool).expect("alloc");
                h.append(256).expect("room").fill(1);
                for _ in 0..3 {
                    let mut t = Mbuf::alloc(&pool).expect("alloc");
                    t.append(256).expect("room").fill(2);
                    h.chain(t).expect("chain");
                }
                h
            },
            |mut h| {
                h.linearize().expect("fits");
                h
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("clone_3_segments", |b| {
        let mut h = Mbuf::alloc(&pool).expect("alloc");
        h.append(100).expect("room");
        for _ in 0..2 {
            let mut t = Mbuf::alloc(&pool).expect("alloc");
            t.append(100).expect("room");
            h.chain(t).expect("chain");
        }
        b.iter(|| {
            let c = h.clone_in(&pool).expect("clone");
            drop(black_box(c));
        })
    });
    g.finish();
}

criterion_group!(mbuf_benches, benches);
criterion_main!(mbuf_benches);
