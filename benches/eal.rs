//! EAL control-path benchmarks under `--no-huge`: memzone reserve+free, memzone lookup
//! (in a table of 1000 zones), heap malloc+free at 64 and 4096 bytes.
//!
//! Run: `cargo bench --bench eal`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use eal::{Eal, MemzoneFlags};

fn eal() -> Eal {
    let argv: Vec<String> = [
        "bench",
        "--no-huge",
        "--no-pci",
        "-m",
        "64",
        "-l",
        "0",
        "--file-prefix",
        &format!("bench-eal-{}", std::process::id()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Eal::init(&argv).expect("EAL init (--no-huge)").0
}

fn benches(c: &mut Criterion) {
    let e = eal();
    c.bench_function("memzone_reserve_free", |b| {
        b.iter(|| {
            let z = e
                .memzones()
                .reserve("bench-zone", 4096, None, MemzoneFlags::empty())
                .unwrap();
            e.memzones().free(black_box(&z)).unwrap();
        })
    });

    let zones: Vec<_> = (0..1000)
        .map(|i| {
            e.memzones()
                .reserve(&format!("lookup-{i}"), 64, None, MemzoneFlags::empty())
                .unwrap()
        })
        .collect();
    c.bench_function("memzone_lookup_1000", |b| {
        b.iter(|| black_box(e.memzones().lookup(black_box("lookup-999"))).unwrap())
    });
    for z in &zones {
        e.memzones().free(z).unwrap();
    }

    let mut g = c.benchmark_group("heap_malloc_free");
    for size in [64usize, 4096] {
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            b.iter(|| {
                let p = e.heap().malloc(black_box(size), 0).unwrap();
                // SAFETY: just allocated, freed once, never used.
                unsafe { e.heap().free(p.as_ptr()).unwrap() };
            })
        });
    }
    g.finish();
}

criterion_group!(eal_benches, benches);
criterion_main!(eal_benches);
