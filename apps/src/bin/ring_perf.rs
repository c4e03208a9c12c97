//! Ring performance in the shape of DPDK 22.11's `ring_perf_autotest`
//! (app/test/test_ring_perf.c): same ring (4096 slots, created with no flags, i.e. MP/MC,
//! and driven through the explicit SP/SC and MP/MC entry points), same case names and
//! sizes (single, burst and bulk of 8 and 32, empty bulk dequeue of 8, two lcores), for
//! pointer-sized ("legacy APIs") and 16-byte ("elem APIs: element size 16B") elements.
//!
//! Units: every number printed here is **cycles per element** (TSC cycles), except the
//! empty-dequeue case, which is cycles per call. DPDK 22.11 prints the one-core burst
//! and bulk cases per (enqueue N + dequeue N) call pair; `ferroplane-compare ring` divides
//! those by N before comparing. The single case is per enqueue+dequeue pair in both.
//! The two-lcore case is, as in DPDK, the sum of the producer's and the consumer's
//! cycles per element.
//!
//! Usage: `ring_perf [--full] [--no-huge]`. `--full` uses DPDK's iteration counts
//! (2^24 single, 2^23 burst/bulk, 2^26 empty, 2^15 two-core); the default divides the
//! one-core counts by 8 to finish in a few seconds. Needs 2 cpus (lcores 0 and 1).

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use eal::timer::rdtsc;
use ring::{Ring, RingFlags};

const RING_SIZE: u32 = 4096;
const MAX_BURST: usize = 32;
const BULK_SIZES: [usize; 2] = [8, 32];

#[derive(Clone, Copy)]
struct Iters {
    single: u64,
    burst: u64,
    empty: u64,
    two_core: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Sync2 {
    Spsc,
    Mpmc,
}

impl Sync2 {
    fn label(self) -> &'static str {
        match self {
            Sync2::Spsc => "SP/SC",
            Sync2::Mpmc => "MP/MC",
        }
    }
}

/// `fn $name(ring, sync, buf) -> n`: the single-thread call `$single` for SP/SC, the
/// multi-thread one `$multi` for MP/MC.
macro_rules! by_sync {
    ($name:ident, $single:ident, $multi:ident, $buf:ty) => {
        #[inline(always)]
        fn $name<T: Copy>(r: &Ring<T>, s: Sync2, buf: $buf) -> u32 {
            match s {
                // SAFETY: ring_perf drives each side from one thread at a time.
                Sync2::Spsc => unsafe { r.$single(buf).n },
                Sync2::Mpmc => r.$multi(buf).n,
            }
        }
    };
}

by_sync!(enq_bulk, sp_enqueue_bulk, mp_enqueue_bulk, &[T]);
by_sync!(deq_bulk, sc_dequeue_bulk, mc_dequeue_bulk, &mut [T]);
by_sync!(enq_burst, sp_enqueue_burst, mp_enqueue_burst, &[T]);
by_sync!(deq_burst, sc_dequeue_burst, mc_dequeue_burst, &mut [T]);

fn single<T: Copy + Default>(prefix: &str, r: &Ring<T>, s: Sync2, iters: u64) {
    let v = T::default();
    let start = rdtsc();
    for _ in 0..iters {
        // The ring is empty: each enqueue succeeds and the dequeue takes it back out.
        match s {
            Sync2::Spsc => {
                // SAFETY: one thread.
                let _ = black_box(unsafe { r.sp_enqueue(black_box(v)) });
                // SAFETY: one thread.
                black_box(unsafe { r.sc_dequeue() });
            }
            Sync2::Mpmc => {
                let _ = black_box(r.mp_enqueue(black_box(v)));
                black_box(r.mc_dequeue());
            }
        }
    }
    let end = rdtsc();
    println!(
        "{prefix}: {}: single: {:.2}",
        s.label(),
        (end - start) as f64 / iters as f64
    );
}

fn burst_bulk<T: Copy + Default>(prefix: &str, r: &Ring<T>, s: Sync2, bulk: bool, iters: u64) {
    let mut buf = [T::default(); MAX_BURST];
    for sz in BULK_SIZES {
        let start = rdtsc();
        for _ in 0..iters {
            let b = black_box(&mut buf[..sz]);
            if bulk {
                enq_bulk(r, s, b);
                deq_bulk(r, s, b);
            } else {
                enq_burst(r, s, b);
                deq_burst(r, s, b);
            }
        }
        let end = rdtsc();
        let kind = if bulk { "bulk" } else { "burst" };
        println!(
            "{prefix}: {}: {kind} (size: {sz}): {:.2}",
            s.label(),
            (end - start) as f64 / (iters * sz as u64) as f64
        );
    }
}

fn empty_dequeue<T: Copy + Default>(prefix: &str, r: &Ring<T>, s: Sync2, iters: u64) {
    let mut buf = [T::default(); MAX_BURST];
    let sz = BULK_SIZES[0];
    let start = rdtsc();
    for _ in 0..iters {
        black_box(deq_bulk(r, s, black_box(&mut buf[..sz])));
    }
    let end = rdtsc();
    println!(
        "{prefix}: {}: bulk (size: {sz}): {:.2}",
        s.label(),
        (end - start) as f64 / iters as f64
    );
}

/// One side of the two-lcore case: SP/SC loop then MP/MC loop, each `iters` bulk calls
/// of `sz`, retrying while the ring is full/empty. Returns cycles per element for each.
fn two_core_side<T: Copy + Default>(
    r: &Ring<T>,
    producer: bool,
    sz: usize,
    iters: u64,
    ready: &AtomicU32,
) -> (f64, f64) {
    ready.fetch_add(1, Ordering::Relaxed);
    while ready.load(Ordering::Relaxed) != 2 {
        std::hint::spin_loop();
    }
    let mut buf = [T::default(); MAX_BURST];
    let mut out = [0f64; 2];
    for (k, s) in [Sync2::Spsc, Sync2::Mpmc].into_iter().enumerate() {
        let start = rdtsc();
        for _ in 0..iters {
            loop {
                let n = if producer {
                    enq_bulk(r, s, &buf[..sz])
                } else {
                    deq_bulk(r, s, &mut buf[..sz])
                };
                if n != 0 {
                    break;
                }
                std::hint::spin_loop();
            }
        }
        let end = rdtsc();
        out[k] = (end - start) as f64 / (iters * sz as u64) as f64;
    }
    black_box(&buf);
    out.into()
}

fn two_cores<T: Copy + Default + Send + 'static>(
    prefix: &str,
    eal: &eal::Eal,
    r: &Ring<T>,
    worker: u32,
    iters: u64,
) {
    for sz in BULK_SIZES {
        let ready = Arc::new(AtomicU32::new(0));
        let res = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        {
            let (r, ready, res) = (r.clone(), ready.clone(), res.clone());
            if let Err(e) = eal.lcores().remote_launch(worker, move || {
                let (s, m) = two_core_side(&r, false, sz, iters, &ready);
                res[0].store(s.to_bits(), Ordering::Relaxed);
                res[1].store(m.to_bits(), Ordering::Relaxed);
                0
            }) {
                eprintln!("ring_perf: failed to launch on lcore {worker}: {e}");
                return;
            }
        }
        let (ps, pm) = two_core_side(r, true, sz, iters, &ready);
        if let Err(e) = eal.lcores().wait_lcore(worker) {
            eprintln!("ring_perf: lcore {worker} failed: {e}");
            return;
        }
        let cs = f64::from_bits(res[0].load(Ordering::Relaxed));
        let cm = f64::from_bits(res[1].load(Ordering::Relaxed));
        println!("{prefix}: SP/SC: bulk (size: {sz}): {:.2}", ps + cs);
        println!("{prefix}: MP/MC: bulk (size: {sz}): {:.2}", pm + cm);
    }
}

fn siblings(a: u32, b: u32) -> bool {
    std::fs::read_to_string(format!(
        "/sys/devices/system/cpu/cpu{a}/topology/thread_siblings_list"
    ))
    .map(|s| {
        s.trim()
            .split(',')
            .any(|p| p.split('-').any(|x| x.trim() == b.to_string()))
    })
    .unwrap_or(false)
}

fn run<T: Copy + Default + Send + 'static>(
    prefix: &str,
    name: &str,
    eal: &eal::Eal,
    it: Iters,
) -> Result<(), String> {
    // SAFETY: MP/MC ring (no flags); the explicit SP/SC calls below are each made by one
    // thread at a time.
    let r = unsafe { Ring::<T>::create(eal, name, RING_SIZE, None, RingFlags::empty()) }
        .map_err(|e| format!("ring_perf: {e}"))?;

    println!("\n### Testing single element enq/deq ###");
    single(prefix, &r, Sync2::Spsc, it.single);
    single(prefix, &r, Sync2::Mpmc, it.single);

    println!("\n### Testing burst enq/deq ###");
    burst_bulk(prefix, &r, Sync2::Spsc, false, it.burst);
    burst_bulk(prefix, &r, Sync2::Mpmc, false, it.burst);

    println!("\n### Testing bulk enq/deq ###");
    burst_bulk(prefix, &r, Sync2::Spsc, true, it.burst);
    burst_bulk(prefix, &r, Sync2::Mpmc, true, it.burst);

    println!("\n### Testing empty bulk deq ###");
    empty_dequeue(prefix, &r, Sync2::Spsc, it.empty);
    empty_dequeue(prefix, &r, Sync2::Mpmc, it.empty);

    let main = eal.lcores().main_lcore();
    match eal.lcores().worker_ids().first() {
        Some(&w) => {
            if siblings(main, w) {
                println!("\n### Testing using two hyperthreads ###");
            } else {
                println!("\n### Testing using two physical cores ###");
            }
            two_cores(prefix, eal, &r, w, it.two_core);
        }
        None => println!("\n(no worker lcore: two-core cases skipped; run with 2 cpus)"),
    }
    // SAFETY: the worker is done (wait_lcore) and no other handle is left.
    unsafe { r.free() }.map_err(|e| format!("ring_perf: {e}"))
}

fn main() {
    let mut full = false;
    let mut no_huge = false;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--full" => full = true,
            "--no-huge" => no_huge = true,
            "-h" | "--help" => {
                println!("usage: ring_perf [--full] [--no-huge]");
                return;
            }
            other => {
                eprintln!(
                    "ring_perf: unknown argument '{other}' (usage: ring_perf [--full] [--no-huge])"
                );
                std::process::exit(2);
            }
        }
    }
    let div = if full { 1 } else { 8 };
    let it = Iters {
        single: (1 << 24) / div,
        burst: (1 << 23) / div,
        empty: (1 << 26) / div,
        two_core: 1 << 15,
    };

    let prefix = format!("ring_perf{}", std::process::id());
    let mk = |huge: bool| {
        let mut argv = vec![
            "ring_perf",
            "-l",
            "0-1",
            "--file-prefix",
            &prefix,
            "-m",
            "64",
        ];
        if !huge {
            argv.push("--no-huge");
        }
        eal::Eal::init(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    };
    let eal = match if no_huge { mk(false) } else { mk(true) } {
        Ok((e, _)) => e,
        Err(e) if !no_huge => {
            eprintln!("ring_perf: hugepages unavailable ({e}); falling back to --no-huge");
            match mk(false) {
                Ok((e, _)) => e,
                Err(e) => {
                    eprintln!("ring_perf: failed to initialise the EAL: {e}");
                    std::process::exit(1);
                }
            }
        }
        Err(e) => {
            eprintln!("ring_perf: failed to initialise the EAL: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "ring_perf: TSC {} MHz; numbers in cycles per element (empty deq: per call)",
        eal::timer::tsc_hz() / 1_000_000
    );
    let res = run::<usize>("legacy APIs", "RING_PERF", &eal, it)
        .and_then(|()| run::<[u64; 2]>("elem APIs: element size 16B", "RING_PERF", &eal, it));
    if let Err(e) = res {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
