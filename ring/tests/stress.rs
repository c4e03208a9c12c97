//! Stress harness (after the idea of DPDK's test_ring_stress_impl.h, no code taken):
//! N producers and M consumers on one ring, every element tagged (producer id, sequence)
//! and checked exactly once; each consumer must see each producer's sequence increasing
//! (true in every mode: producers reserve increasing positions, consumers claim
//! increasing positions). Run for every mode combination, for bulk, burst and (where the
//! consumer side allows it) zero-copy dequeue, with 8- and 16-byte elements, starting the
//! indices just below the u32 wrap.
//!
//! `cargo test -p ferroplane-ring --release --test stress` (a few seconds on 2 cores).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Barrier};

use ring::{Ring, RingFlags, SyncMode, RING_ALIGN};

trait Elem: Copy + Send + Sync + 'static {
    fn make(producer: u32, seq: u64) -> Self;
    /// (producer, seq); panics on a torn or corrupt element.
    fn decode(self) -> (u32, u64);
}

impl Elem for u64 {
    fn make(p: u32, seq: u64) -> Self {
        (u64::from(p) << 48) | seq
    }
    fn decode(self) -> (u32, u64) {
        ((self >> 48) as u32, self & ((1 << 48) - 1))
    }
}

#[derive(Clone, Copy)]
struct E16 {
    tag: u64,
    check: u64,
}

impl Elem for E16 {
    fn make(p: u32, seq: u64) -> Self {
        let tag = (u64::from(p) << 48) | seq;
        E16 {
            tag,
            check: !tag.rotate_left(17),
        }
    }
    fn decode(self) -> (u32, u64) {
        assert_eq!(
            self.check,
            !self.tag.rotate_left(17),
            "torn 16-byte element"
        );
        ((self.tag >> 48) as u32, self.tag & ((1 << 48) - 1))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Api {
    Bulk,
    Burst,
    /// Producers burst, consumers zero-copy burst (consumer side Single or Hts only).
    ZeroCopy,
    /// Bulk through [`ring::MpMcRing`] handles (producer side Multi, consumer side Multi
    /// or Optimistic: `MpOptRing`).
    MpMc,
}

/// The ring's memory: zeroed 128-byte lines (the ring's alignment), freed with the Vec.
#[derive(Clone, Copy)]
#[repr(C, align(128))]
struct Line([u8; RING_ALIGN]);

/// An MP/MC handle with the consumer protocol of the ring compiled in.
enum MpHandle<T: Copy> {
    Multi(ring::MpMcRing<T>),
    Opt(ring::MpOptRing<T>),
}

impl<T: Copy> MpHandle<T> {
    fn new(r: &Ring<T>) -> Self {
        match r.clone().into_mp_mc() {
            Ok(m) => MpHandle::Multi(m),
            Err(r) => MpHandle::Opt(r.into_mp_opt().ok().expect("an MP/MC or MP/opt ring")),
        }
    }
    fn enqueue_bulk(&self, objs: &[T]) -> ring::Enqueued {
        match self {
            MpHandle::Multi(m) => m.enqueue_bulk(objs),
            MpHandle::Opt(m) => m.enqueue_bulk(objs),
        }
    }
    fn dequeue_bulk(&self, out: &mut [T]) -> ring::Dequeued {
        match self {
            MpHandle::Multi(m) => m.dequeue_bulk(out),
            MpHandle::Opt(m) => m.dequeue_bulk(out),
        }
    }
}

fn flags_for(p: SyncMode, c: SyncMode) -> RingFlags {
    let pf = match p {
        SyncMode::Single => RingFlags::SP_ENQ,
        SyncMode::Multi => RingFlags::empty(),
        SyncMode::Rts => RingFlags::MP_RTS_ENQ,
        SyncMode::Hts => RingFlags::MP_HTS_ENQ,
        SyncMode::Optimistic => panic!("no optimistic producers"),
    };
    let cf = match c {
        SyncMode::Single => RingFlags::SC_DEQ,
        SyncMode::Multi => RingFlags::empty(),
        SyncMode::Rts => RingFlags::MC_RTS_DEQ,
        SyncMode::Hts => RingFlags::MC_HTS_DEQ,
        SyncMode::Optimistic => RingFlags::MC_OPT_DEQ,
    };
    pf | cf
}

/// Threads on a side of mode `m`: one on a single side, `multi` otherwise.
fn threads(m: SyncMode, multi: u32) -> u32 {
    if m == SyncMode::Single {
        1
    } else {
        multi
    }
}

/// What a thread does after a call that moved nothing: yield (polite), or retry at once
/// as a program that expects the ring to cope would.
fn idle(retry_at_once: bool) {
    if retry_at_once {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// The longest a run may take before it fails, whatever its progress.
const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);
/// The longest a run may go without an element dequeued before it fails.
const STALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// `multi` threads on each multi side (single sides get one).
fn run<T: Elem>(
    pm: SyncMode,
    cm: SyncMode,
    api: Api,
    per_producer: u64,
    layout: RingFlags,
    multi: u32,
    retry_at_once: bool,
) {
    let flags = flags_for(pm, cm) | layout;
    let count = 256;
    let len = Ring::<T>::memsize(count, flags).unwrap();
    let mut mem = vec![Line([0; RING_ALIGN]); len.div_ceil(RING_ALIGN)];
    let base = mem.as_mut_ptr().cast::<u8>();
    // SAFETY: a fresh exclusive block that `mem` keeps alive until every thread is joined
    // (the ring handle is dropped before `mem`); single sides get exactly one thread.
    let r = Arc::new(unsafe { Ring::<T>::init_in(base, len, "stress", count, flags) }.unwrap());
    // SAFETY: empty, not shared yet. Start 1000 positions before the u32 wrap.
    unsafe { r.reset_at(u32::MAX - 1000) };

    let np = threads(pm, multi);
    let nc = threads(cm, multi);
    let total = per_producer * u64::from(np);
    let seen: Arc<Vec<AtomicU8>> = Arc::new((0..total).map(|_| AtomicU8::new(0)).collect());
    let consumed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new((np + nc) as usize));
    let mut hs = Vec::new();

    for p in 0..np {
        let (r, start, failed) = (r.clone(), start.clone(), failed.clone());
        let mpmc = (api == Api::MpMc).then(|| MpHandle::new(&r));
        hs.push(std::thread::spawn(move || {
            start.wait();
            let mut seq = 0u64;
            let mut batch = Vec::with_capacity(32);
            let mut k = p as usize;
            while seq < per_producer && !failed.load(Ordering::Relaxed) {
                k = k.wrapping_mul(1103515245).wrapping_add(12345);
                let want = (1 + (k >> 8) % 32).min((per_producer - seq) as usize);
                batch.clear();
                batch.extend((0..want as u64).map(|i| T::make(p, seq + i)));
                let n = match api {
                    Api::Bulk => r.enqueue_bulk(&batch).n,
                    Api::MpMc => mpmc.as_ref().unwrap().enqueue_bulk(&batch).n,
                    Api::Burst | Api::ZeroCopy => r.enqueue_burst(&batch).n,
                };
                if matches!(api, Api::Bulk | Api::MpMc) {
                    assert!(
                        n == 0 || n as usize == want,
                        "bulk enqueue returned {n} of {want}"
                    );
                }
                seq += u64::from(n);
                if n == 0 {
                    idle(retry_at_once);
                }
            }
        }));
    }
    for _ in 0..nc {
        let (r, start, failed, seen, consumed) = (
            r.clone(),
            start.clone(),
            failed.clone(),
            seen.clone(),
            consumed.clone(),
        );
        let mpmc = (api == Api::MpMc).then(|| MpHandle::new(&r));
        hs.push(std::thread::spawn(move || {
            start.wait();
            let mut last = vec![None::<u64>; np as usize];
            let mut out = [T::make(0, 0); 32];
            let mut k = 7usize;
            let mut check = |v: T| {
                let (p, s) = v.decode();
                assert!(p < np && s < per_producer, "garbage element p={p} s={s}");
                if let Some(prev) = last[p as usize] {
                    assert!(s > prev, "producer {p}: seq {s} after {prev}");
                }
                last[p as usize] = Some(s);
                let idx = (u64::from(p) * per_producer + s) as usize;
                let was = seen[idx].swap(1, Ordering::Relaxed);
                assert_eq!(was, 0, "element p={p} s={s} dequeued twice");
            };
            while consumed.load(Ordering::Relaxed) < total {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                k = k.wrapping_mul(1103515245).wrapping_add(12345);
                let want = 1 + (k >> 8) % 32;
                let n = match api {
                    Api::Bulk => {
                        let n = r.dequeue_bulk(&mut out[..want]).n;
                        assert!(n == 0 || n as usize == want);
                        out[..n as usize].iter().for_each(|&v| check(v));
                        n
                    }
                    Api::MpMc => {
                        let n = mpmc.as_ref().unwrap().dequeue_bulk(&mut out[..want]).n;
                        assert!(n == 0 || n as usize == want);
                        out[..n as usize].iter().for_each(|&v| check(v));
                        n
                    }
                    Api::Burst => {
                        let n = r.dequeue_burst(&mut out[..want]).n;
                        out[..n as usize].iter().for_each(|&v| check(v));
                        n
                    }
                    Api::ZeroCopy => {
                        let z = r.dequeue_zc_burst_start(want as u32).unwrap();
                        let (a, b) = z.slots();
                        a.iter().chain(b).for_each(|&v| check(v));
                        let n = z.len();
                        assert_eq!(z.finish(n), n);
                        n
                    }
                };
                if n == 0 {
                    idle(retry_at_once);
                } else {
                    consumed.fetch_add(u64::from(n), Ordering::Relaxed);
                }
            }
        }));
    }
    // Watchdog: a protocol bug usually shows as a stall (a tail that never reaches a
    // waiter, elements that never become visible), and a wait that does not back off
    // shows as a crawl when threads outnumber cores; fail on either instead of hanging.
    let started = std::time::Instant::now();
    let mut last = (0, started);
    while !hs.iter().all(|h| h.is_finished()) {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = consumed.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, std::time::Instant::now());
        }
        let stalled = last.1.elapsed() > STALL_LIMIT;
        if stalled || started.elapsed() > RUN_LIMIT {
            failed.store(true, Ordering::Relaxed);
            panic!(
                "{pm:?}/{cm:?} {api:?} ({np}+{nc} threads): {} at {now} of {total} elements",
                if stalled {
                    "no progress for 20 s"
                } else {
                    "not done in 120 s"
                }
            );
        }
    }
    let mut panicked = false;
    for h in hs {
        if h.join().is_err() {
            panicked = true;
            failed.store(true, Ordering::Relaxed);
        }
    }
    assert!(!panicked, "a thread failed: {pm:?}/{cm:?} {api:?}");
    assert_eq!(consumed.load(Ordering::Relaxed), total);
    let missing = seen
        .iter()
        .filter(|s| s.load(Ordering::Relaxed) == 0)
        .count();
    assert_eq!(missing, 0, "{pm:?}/{cm:?} {api:?}: elements never dequeued");
    assert!(r.empty());
    drop(r);
    drop(mem);
}

const COMBOS: [(SyncMode, SyncMode); 10] = [
    (SyncMode::Single, SyncMode::Single),
    (SyncMode::Multi, SyncMode::Multi),
    (SyncMode::Rts, SyncMode::Rts),
    (SyncMode::Hts, SyncMode::Hts),
    (SyncMode::Single, SyncMode::Multi),
    (SyncMode::Multi, SyncMode::Single),
    (SyncMode::Rts, SyncMode::Hts),
    (SyncMode::Hts, SyncMode::Rts),
    (SyncMode::Multi, SyncMode::Rts),
    (SyncMode::Hts, SyncMode::Single),
];

fn per_producer() -> u64 {
    if let Some(n) = std::env::var("RING_STRESS_N")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    // Debug builds are ~20x slower; keep them short.
    if cfg!(debug_assertions) {
        20_000
    } else {
        1_000_000
    }
}

fn all<T: Elem>() {
    for (pm, cm) in COMBOS {
        for api in [Api::Bulk, Api::Burst, Api::ZeroCopy] {
            if api == Api::ZeroCopy && !matches!(cm, SyncMode::Single | SyncMode::Hts) {
                continue;
            }
            // Both header layouts: DPDK's (a block per side) and both sides on one line.
            for layout in [RingFlags::empty(), RingFlags::ONE_LINE] {
                let t = std::time::Instant::now();
                run::<T>(pm, cm, api, per_producer(), layout, 2, false);
                eprintln!(
                    "{pm:?}/{cm:?} {api:?} {}B {layout:?}: ok in {:?}",
                    std::mem::size_of::<T>(),
                    t.elapsed()
                );
            }
        }
    }
}

#[test]
fn stress_8_byte() {
    all::<u64>();
}

#[test]
fn stress_16_byte() {
    all::<E16>();
}

/// Optimistic consumers against every producer mode, and both typed MP/MC handles.
const OPT_CASES: [(SyncMode, SyncMode, Api); 7] = [
    (SyncMode::Multi, SyncMode::Optimistic, Api::Bulk),
    (SyncMode::Multi, SyncMode::Optimistic, Api::Burst),
    (SyncMode::Single, SyncMode::Optimistic, Api::Bulk),
    (SyncMode::Rts, SyncMode::Optimistic, Api::Burst),
    (SyncMode::Hts, SyncMode::Optimistic, Api::Bulk),
    (SyncMode::Multi, SyncMode::Optimistic, Api::MpMc),
    (SyncMode::Multi, SyncMode::Multi, Api::MpMc),
];

/// Optimistic consumers (`MC_OPT_DEQ`, 8-byte elements only) against every producer mode,
/// and both MP/MC protocols through `MpMcRing`. The 256-entry ring wraps every few
/// hundred elements, so consumers that lose their CAS have often copied slots that a
/// producer of the next lap was writing; the exactly-once and order checks catch a copy
/// that was kept anyway.
#[test]
fn stress_optimistic_consumers() {
    for (pm, cm, api) in OPT_CASES {
        for layout in [RingFlags::empty(), RingFlags::ONE_LINE] {
            let t = std::time::Instant::now();
            run::<u64>(pm, cm, api, per_producer(), layout, 2, false);
            eprintln!(
                "{pm:?}/{cm:?} {api:?} 8B {layout:?}: ok in {:?}",
                t.elapsed()
            );
        }
    }
}

/// More threads than cores: 8 on every multi side (one on a single side), for every
/// mode, retrying failed calls without yielding, so that threads are preempted between their head move and their tail update
/// and the others must wait for them (the waits back off to the scheduler). Every
/// element tagged and checked exactly once, as above; each run fails if it passes the
/// watchdog's limits rather than hang.
#[test]
fn stress_oversubscribed() {
    // Every mode pair with bursts (and zero-copy where the consumer side allows it),
    // then the optimistic consumers and the typed handles.
    let zc = |&(_, cm): &(SyncMode, SyncMode)| matches!(cm, SyncMode::Single | SyncMode::Hts);
    let cases = COMBOS
        .iter()
        .map(|&(pm, cm)| (pm, cm, Api::Burst))
        .chain(
            COMBOS
                .iter()
                .filter(|c| zc(c))
                .map(|&(pm, cm)| (pm, cm, Api::ZeroCopy)),
        )
        .chain(OPT_CASES);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Enough elements for many laps of the 256-slot ring and many preemptions, few
    // enough for a second or two per case on two busy cores.
    let per_producer = if cfg!(debug_assertions) {
        2_500
    } else {
        10_000
    };
    for (pm, cm, api) in cases {
        let t = std::time::Instant::now();
        // Threads retry a full or empty ring at once, without yielding.
        run::<u64>(pm, cm, api, per_producer, RingFlags::empty(), 8, true);
        eprintln!(
            "{pm:?}/{cm:?} {api:?} 8B, 8 threads per multi side on {cores} cores: ok in {:?}",
            t.elapsed()
        );
    }
}
