//! Mempool benchmarks: a get and a put of 1, 4 and 32 objects, through the per-lcore
//! cache and without one, on one thread and on two (a second EAL lcore doing the same
//! loop on the same pool while the first is measured), beside `lockfree-object-pool`'s
//! `LinearObjectPool` doing the same shapes (pull n guards, drop them).
//!
//! Run with `cargo bench --bench mempool`; the EAL runs `--no-huge` on lcores 0 and 1,
//! lcore 0 being the bench thread. Objects are 2048 bytes, as in DPDK's
//! `mempool_perf_autotest`. Times are per iteration: one get of n objects and one put of
//! them. Compare rows of one run only: absolute times on a shared machine mean little.
//!
//! What each side does per object, so that both move handles and neither touches or
//! copies the 2 KiB object:
//! - ferroplane, cache: the get copies an object address (`VirtAddr`) out of the
//!   lcore's cache array and the put copies it back; no atomic operation while the cache
//!   neither runs dry nor overflows (then one bulk ring dequeue or enqueue refills or
//!   flushes it, shared among many objects).
//! - ferroplane, no cache: the get is a multi-consumer ring dequeue and the put a
//!   multi-producer ring enqueue of the address, one compare-and-swap on the ring's
//!   head each per bulk, not per object.
//! - lockfree-object-pool: `pull` takes a slot with a compare-and-swap on a 32-bit
//!   free mask of a 32-slot page (walking the page list from the first page while pages
//!   are full) and returns a guard (pool, page, slot); dropping the guard calls the reset
//!   closure (empty here) through a `dyn Fn` and sets the slot's bit with an atomic
//!   `fetch_or`. Two atomic read-modify-writes per object, on a word both threads share.
//!   Its slots hold `Box<[u8; 2048]>`, so an object is a pointer to a heap block, as
//!   ours is an address in the pool's memzone. `LinearObjectPool` is the crate's
//!   lock-free pool; its `SpinLockObjectPool` and `MutexObjectPool` move the object in
//!   and out of a `Vec` under a lock (a waiter spins or sleeps while a preempted holder
//!   runs elsewhere, which on a shared machine measures the scheduler).
//!
//! Why not `LinearObjectPool<[u8; 2048]>` (what this bench used first): the slots then
//! hold the arrays inline, 64 KiB per page, and the out-of-line `LinearPage::alloc`
//! reserves a stack frame for building a new page (about 130 KiB) that it probes page
//! by page on every call, growth or not: 32 stores to 32 distinct 4 KiB stack pages per
//! `pull`. That cost (about 2.7 times the instructions and, measured, some ten times the
//! time) is an artefact of the element type, not of the pool's algorithm.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use eal::{Eal, VirtAddr};
use lockfree_object_pool::LinearObjectPool;
use mempool::{Mempool, PoolConfig, PoolFlags};

/// Object size, as in DPDK's mempool_perf_autotest.
const ELT: usize = 2048;
/// The other pool's object: a pointer to a 2 KiB heap block (see the module doc).
type Theirs = LinearObjectPool<Box<[u8; ELT]>>;

/// Objects per pool: room for both threads' caches (512 + 1.5 x 256 each) and bulks.
const N_OBJS: u32 = 4095;
/// Per-lcore cache size of the cached pool.
const CACHE: u32 = 256;
/// Bulk sizes measured.
const BULKS: [usize; 3] = [1, 4, 32];

fn eal_init() -> Eal {
    let prefix = format!("bench-mempool-{}", std::process::id());
    let argv: Vec<String> = [
        "bench",
        "--no-huge",
        "-m",
        "128",
        "--file-prefix",
        &prefix,
        "-l",
        "0,1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Eal::init(&argv).expect("EAL init (--no-huge)").0
}

fn pool(eal: &Eal, name: &str, cache_size: u32) -> Mempool {
    let cfg = PoolConfig {
        n: N_OBJS,
        elt_size: ELT as u32,
        cache_size,
        flags: PoolFlags::empty(),
        ..PoolConfig::default()
    };
    Mempool::create(eal, name, &cfg).expect("mempool")
}

/// One get of `objs.len()` objects and one put of them.
#[inline(always)]
fn ours_cycle(p: &Mempool, objs: &mut [VirtAddr]) {
    p.get_bulk(objs)
        .expect("pool sized for every bulk in flight");
    black_box(&mut *objs);
    // SAFETY: the objects were just got from this pool and are put back once.
    unsafe { p.put_bulk(objs) }.expect("put of objects just got");
}

/// A second thread running the measured loop on the same pool until stopped.
struct Contender {
    stop: Arc<AtomicBool>,
    join: Box<dyn FnOnce()>,
}

impl Contender {
    /// Start the same loop as the measured one on EAL lcore 1 (our pool).
    fn ours(eal: &Eal, p: &Mempool, n: usize) -> Contender {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, p) = (stop.clone(), p.clone());
        eal.lcores()
            .remote_launch(1, move || {
                let mut objs = vec![VirtAddr(0); n];
                // Relaxed: a stop request orders nothing.
                while !s.load(Ordering::Relaxed) {
                    ours_cycle(&p, &mut objs);
                }
                // Give the lcore's cached objects back so the pool is whole again.
                p.flush_lcore_cache().map_or(-1, |_| 0)
            })
            .expect("launch on lcore 1");
        let eal = eal.clone();
        Contender {
            stop,
            join: Box::new(move || {
                assert_eq!(eal.lcores().wait_lcore(1).expect("wait lcore 1"), 0);
            }),
        }
    }

    /// Start the same loop on a plain thread (the other pool has no lcores).
    fn theirs(p: &Arc<Theirs>, n: usize) -> Contender {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, p) = (stop.clone(), p.clone());
        let t = std::thread::spawn(move || {
            let mut held = Vec::with_capacity(n);
            // Relaxed: a stop request orders nothing.
            while !s.load(Ordering::Relaxed) {
                for _ in 0..n {
                    held.push(p.pull());
                }
                black_box(&mut held);
                held.clear();
            }
        });
        Contender {
            stop,
            join: Box::new(move || t.join().expect("contender thread")),
        }
    }

    fn stop(self) {
        // Relaxed: see the loops.
        self.stop.store(true, Ordering::Relaxed);
        (self.join)();
    }
}

fn time_ours(p: &Mempool, n: usize, iters: u64) -> Duration {
    let mut objs = vec![VirtAddr(0); n];
    let t = Instant::now();
    for _ in 0..iters {
        ours_cycle(p, &mut objs);
    }
    t.elapsed()
}

fn time_theirs(p: &Theirs, n: usize, iters: u64) -> Duration {
    let mut held = Vec::with_capacity(n);
    let t = Instant::now();
    for _ in 0..iters {
        for _ in 0..n {
            held.push(p.pull());
        }
        black_box(&mut held);
        held.clear();
    }
    t.elapsed()
}

fn benches(c: &mut Criterion) {
    let eal = eal_init();
    let cached = pool(&eal, "bench_mp_cache", CACHE);
    let direct = pool(&eal, "bench_mp_nocache", 0);
    // `LinearObjectPool` grows on demand; objects are created zeroed and not reset on
    // reuse (a mempool does not reset objects either).
    let theirs: Arc<Theirs> = Arc::new(LinearObjectPool::new(|| Box::new([0u8; ELT]), |_| {}));
    for threads in [1, 2] {
        for n in BULKS {
            let mut g = c.benchmark_group(format!("mempool/get_put_{n}/{threads}_thread"));
            for (label, p) in [
                ("ferroplane_cache", &cached),
                ("ferroplane_nocache", &direct),
            ] {
                g.bench_function(BenchmarkId::from_parameter(label), |b| {
                    let other = (threads == 2).then(|| Contender::ours(&eal, p, n));
                    b.iter_custom(|iters| time_ours(p, n, iters));
                    if let Some(o) = other {
                        o.stop();
                    }
                });
            }
            g.bench_function(BenchmarkId::from_parameter("lockfree_object_pool"), |b| {
                let other = (threads == 2).then(|| Contender::theirs(&theirs, n));
                b.iter_custom(|iters| time_theirs(&theirs, n, iters));
                if let Some(o) = other {
                    o.stop();
                }
            });
            g.finish();
        }
    }
    cached.flush_lcore_cache().expect("flush lcore 0 cache");
    assert_eq!(cached.avail_count(), N_OBJS, "every object back");
    assert_eq!(direct.avail_count(), N_OBJS, "every object back");
    cached.free().expect("free cached pool");
    direct.free().expect("free uncached pool");
}

criterion_group!(mempool_benches, benches);
criterion_main!(mempool_benches);
