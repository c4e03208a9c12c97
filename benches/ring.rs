//! Criterion comparison of Ferroplane's ring with crossbeam-queue's `ArrayQueue` (MP/MC)
//! and `rtrb` (SP/SC), same workloads, same run:
//! - `single`: one push + one pop per iteration on one thread;
//! - `burst32`: 32 pushes + 32 pops per iteration on one thread (our burst API; rtrb's
//!   chunk API; ArrayQueue has no batch API, so 32 single calls);
//! - `two_thread`: 1M u64s from a producer thread to a consumer thread (throughput); the
//!   consumer (the bench thread) is pinned to the first cpu and the producer to the
//!   second, as `ring_perf`'s two-core cases are, so the scheduler does not decide the
//!   result (skipped pinning on a one-cpu machine).
//!
//! `cargo bench --bench ring` (LTO, codegen-units 1 from [profile.bench]).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use ring::{Ring, RingFlags, RING_ALIGN};

const CAP: u32 = 4096;
const MOVE: u64 = 1_000_000;

/// A ring on the heap; the block is freed when the last clone of the owner drops.
struct HeapRing {
    ring: Ring<u64>,
    _mem: Arc<Vec<Block>>,
}

/// 128 zeroed bytes aligned as a ring must be; a ring's memory is a `Vec` of them.
#[derive(Clone, Copy)]
#[repr(C, align(128))]
struct Block([u8; RING_ALIGN]);

fn heap_ring(flags: RingFlags) -> HeapRing {
    let len = Ring::<u64>::memsize(CAP, flags).unwrap();
    let mut mem = vec![Block([0; RING_ALIGN]); len.div_ceil(RING_ALIGN)];
    // SAFETY: fresh exclusive block kept alive by `_mem` as long as the ring (a Vec's
    // buffer does not move with it); the benchmarks use single sides from one thread at
    // a time.
    let ring =
        unsafe { Ring::<u64>::init_in(mem.as_mut_ptr().cast(), len, "bench", CAP, flags) }.unwrap();
    HeapRing {
        ring,
        _mem: Arc::new(mem),
    }
}

fn spsc_flags() -> RingFlags {
    RingFlags::SP_ENQ | RingFlags::SC_DEQ
}

fn single(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring/single");
    g.throughput(Throughput::Elements(1));
    let r = heap_ring(spsc_flags());
    // The explicit single-thread entry points: rtrb is single-producer/single-consumer
    // by type, these are the same contract as a call.
    g.bench_function("ferroplane_spsc", |b| {
        b.iter(|| {
            // SAFETY: one thread is the only producer and consumer of this ring.
            unsafe {
                let _ = r.ring.sp_enqueue(black_box(1));
                black_box(r.ring.sc_dequeue())
            }
        })
    });
    let (mut p, mut q) = rtrb::RingBuffer::<u64>::new(CAP as usize);
    g.bench_function("rtrb", |b| {
        b.iter(|| {
            let _ = p.push(black_box(1));
            black_box(q.pop().ok())
        })
    });
    let r = heap_ring(RingFlags::empty());
    g.bench_function("ferroplane_mpmc", |b| {
        b.iter(|| {
            let _ = r.ring.enqueue(black_box(1));
            black_box(r.ring.dequeue())
        })
    });
    let o = heap_ring(RingFlags::MC_OPT_DEQ);
    g.bench_function("ferroplane_mp_opt", |b| {
        b.iter(|| {
            let _ = o.ring.enqueue(black_box(1));
            black_box(o.ring.dequeue())
        })
    });
    let aq = ArrayQueue::<u64>::new(CAP as usize);
    g.bench_function("crossbeam_arrayqueue", |b| {
        b.iter(|| {
            let _ = aq.push(black_box(1));
            black_box(aq.pop())
        })
    });
    g.finish();
}

fn burst32(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring/burst32");
    g.throughput(Throughput::Elements(32));
    let src: Vec<u64> = (0..32).collect();
    let mut dst = [0u64; 32];
    let r = heap_ring(spsc_flags());
    g.bench_function("ferroplane_spsc", |b| {
        b.iter(|| {
            // SAFETY: one thread is the only producer and consumer of this ring.
            unsafe {
                r.ring.sp_enqueue_burst(black_box(&src));
                black_box(r.ring.sc_dequeue_burst(&mut dst));
            }
        })
    });
    let (mut p, mut q) = rtrb::RingBuffer::<u64>::new(CAP as usize);
    g.bench_function("rtrb", |b| {
        b.iter(|| {
            if let Ok(ch) = p.write_chunk_uninit(32) {
                ch.fill_from_iter(black_box(&src).iter().copied());
            }
            if let Ok(ch) = q.read_chunk(32) {
                let (a, bb) = ch.as_slices();
                dst[..a.len()].copy_from_slice(a);
                dst[a.len()..a.len() + bb.len()].copy_from_slice(bb);
                ch.commit_all();
            }
            black_box(&dst);
        })
    });
    let r = heap_ring(RingFlags::empty());
    g.bench_function("ferroplane_mpmc", |b| {
        b.iter(|| {
            r.ring.enqueue_burst(black_box(&src));
            black_box(r.ring.dequeue_burst(&mut dst));
        })
    });
    let aq = ArrayQueue::<u64>::new(CAP as usize);
    g.bench_function("crossbeam_arrayqueue", |b| {
        b.iter(|| {
            for &v in black_box(&src) {
                let _ = aq.push(v);
            }
            for d in dst.iter_mut() {
                *d = aq.pop().unwrap_or(0);
            }
            black_box(&dst);
        })
    });
    g.finish();
}

/// Time moving MOVE elements producer -> consumer thread with `push`/`pop` closures.
fn two_thread_run<P, Q>(iters: u64, mut make: impl FnMut() -> (P, Q)) -> Duration
where
    P: FnMut(u64) -> bool + Send + 'static,
    Q: FnMut() -> Option<u64> + Send + 'static,
{
    // Read once, before any pinning: afterwards the process's own mask (which
    // `get_core_ids` reports) would hold only the consumer's cpu, and a thread spawned
    // from a pinned thread inherits its mask.
    static CPUS: std::sync::OnceLock<Vec<core_affinity::CoreId>> = std::sync::OnceLock::new();
    let cpus = CPUS.get_or_init(|| core_affinity::get_core_ids().unwrap_or_default());
    let (cons_cpu, prod_cpu) = match cpus.as_slice() {
        [a, b, ..] => (Some(*a), Some(*b)),
        _ => (None, None),
    };
    if let Some(c) = cons_cpu {
        core_affinity::set_for_current(c);
    }
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let (mut push, mut pop) = make();
        let t = Instant::now();
        let prod = std::thread::spawn(move || {
            if let Some(c) = prod_cpu {
                core_affinity::set_for_current(c);
            }
            for i in 0..MOVE {
                while !push(i) {
                    std::hint::spin_loop();
                }
            }
        });
        let mut sum = 0u64;
        let mut got = 0;
        while got < MOVE {
            if let Some(v) = pop() {
                sum = sum.wrapping_add(v);
                got += 1;
            }
        }
        prod.join().unwrap();
        total += t.elapsed();
        assert_eq!(sum, MOVE * (MOVE - 1) / 2);
    }
    total
}

/// Producer and consumer closures over one SP/SC ring created with `flags`.
fn spsc_pair(flags: RingFlags) -> (impl FnMut(u64) -> bool, impl FnMut() -> Option<u64>) {
    let r = Arc::new(heap_ring(spsc_flags() | flags));
    let r2 = r.clone();
    (
        // SAFETY: two_thread_run calls the producer closure on one thread only and the
        // consumer closure on one other thread only.
        move |v| unsafe { r.ring.sp_enqueue(v) }.is_ok(),
        // SAFETY: as above.
        move || unsafe { r2.ring.sc_dequeue() },
    )
}

/// Producer and consumer closures over one MP/MC ring created with `flags`.
fn mpmc_pair(flags: RingFlags) -> (impl FnMut(u64) -> bool, impl FnMut() -> Option<u64>) {
    let r = Arc::new(heap_ring(flags));
    let r2 = r.clone();
    (
        move |v| r.ring.enqueue(v).is_ok(),
        move || r2.ring.dequeue(),
    )
}

fn two_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring/two_thread");
    g.throughput(Throughput::Elements(MOVE));
    g.sample_size(10);
    g.bench_function("ferroplane_spsc", |b| {
        b.iter_custom(|n| two_thread_run(n, || spsc_pair(RingFlags::empty())))
    });
    g.bench_function("rtrb", |b| {
        b.iter_custom(|n| {
            two_thread_run(n, || {
                let (mut p, mut q) = rtrb::RingBuffer::<u64>::new(CAP as usize);
                (move |v| p.push(v).is_ok(), move || q.pop().ok())
            })
        })
    });
    g.bench_function("ferroplane_mpmc", |b| {
        b.iter_custom(|n| two_thread_run(n, || mpmc_pair(RingFlags::empty())))
    });
    g.bench_function("crossbeam_arrayqueue", |b| {
        b.iter_custom(|n| {
            two_thread_run(n, || {
                let q = Arc::new(ArrayQueue::<u64>::new(CAP as usize));
                let q2 = q.clone();
                (move |v| q.push(v).is_ok(), move || q2.pop())
            })
        })
    });
    // The same two rings with both sides' head/tail on one line (`RingFlags::ONE_LINE`,
    // the mempool's MP/MC layout): the price of that layout in a pipeline (DESIGN.md).
    g.bench_function("ferroplane_spsc_one_line", |b| {
        b.iter_custom(|n| two_thread_run(n, || spsc_pair(RingFlags::ONE_LINE)))
    });
    g.bench_function("ferroplane_mpmc_one_line", |b| {
        b.iter_custom(|n| two_thread_run(n, || mpmc_pair(RingFlags::ONE_LINE)))
    });
    // MP/MC with optimistic consumers (`RingFlags::MC_OPT_DEQ`, DESIGN.md), on the default
    // layout and on the mempool's (`ONE_LINE` too).
    g.bench_function("ferroplane_mp_opt", |b| {
        b.iter_custom(|n| two_thread_run(n, || mpmc_pair(RingFlags::MC_OPT_DEQ)))
    });
    g.bench_function("ferroplane_mp_opt_one_line", |b| {
        b.iter_custom(|n| {
            two_thread_run(n, || mpmc_pair(RingFlags::MC_OPT_DEQ | RingFlags::ONE_LINE))
        })
    });
    g.finish();
}

criterion_group!(benches, single, burst32, two_thread);
criterion_main!(benches);
