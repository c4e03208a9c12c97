//! More threads than cores through one ring, in every multi-thread mode: P producers and
//! C consumers (default 8 + 8) move N elements (default 16 M) through a 1024-slot ring
//! with bursts of up to 32, retrying at once when the ring is full or empty, as a first
//! program would. Prints the time per mode and run; every element is counted and summed,
//! and a run that takes longer than `--limit` seconds is reported as stalled (exit 1).
//!
//! ```text
//! cargo run --release -p ferroplane-ring --example oversubscribed -- \
//!     [--runs 5] [--total 16000000] [--threads 8,8] [--limit 120] [--modes mpmc,rts,...]
//! ```
//!
//! Modes: `mpmc` (default flags), `rts`, `hts`, `opt` (multi producers, optimistic
//! consumers), `mpmc_typed` ([`ring::MpMcRing`]), `opt_typed` ([`ring::MpOptRing`], the
//! mempool's layout: `ONE_LINE`).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ring::{Dequeued, Enqueued, MpMcRing, MpOptRing, Ring, RingFlags, RING_ALIGN};

const SLOTS: u32 = 1024;
const BURST: usize = 32;

/// Ring memory comes as a `Vec` of these (zeroed, aligned as a ring must be).
#[derive(Clone, Copy)]
#[repr(C, align(128))]
struct CacheLinePair([u8; RING_ALIGN]);

/// The calls a mode is driven through.
#[derive(Clone)]
enum Handle {
    Plain(Ring<u64>),
    MpMc(MpMcRing<u64>),
    MpOpt(MpOptRing<u64>),
}

impl Handle {
    fn put(&self, objs: &[u64]) -> Enqueued {
        match self {
            Handle::Plain(r) => r.enqueue_burst(objs),
            Handle::MpMc(r) => r.enqueue_burst(objs),
            Handle::MpOpt(r) => r.enqueue_burst(objs),
        }
    }
    fn get(&self, out: &mut [u64]) -> Dequeued {
        match self {
            Handle::Plain(r) => r.dequeue_burst(out),
            Handle::MpMc(r) => r.dequeue_burst(out),
            Handle::MpOpt(r) => r.dequeue_burst(out),
        }
    }
}

fn flags(mode: &str) -> Option<RingFlags> {
    Some(match mode {
        "mpmc" | "mpmc_typed" => RingFlags::empty(),
        "rts" => RingFlags::MP_RTS_ENQ | RingFlags::MC_RTS_DEQ,
        "hts" => RingFlags::MP_HTS_ENQ | RingFlags::MC_HTS_DEQ,
        "opt" => RingFlags::MC_OPT_DEQ,
        "opt_typed" => RingFlags::MC_OPT_DEQ | RingFlags::ONE_LINE,
        _ => return None,
    })
}

struct Opts {
    runs: u32,
    total: u64,
    producers: u64,
    consumers: u64,
    limit: Duration,
    modes: Vec<String>,
}

/// One run: `Ok(elapsed)`, or `Err(moved)` if it passed the limit.
fn run(mode: &str, o: &Opts) -> Result<Duration, u64> {
    let f = flags(mode).expect("checked");
    let len = Ring::<u64>::memsize(SLOTS, f).expect("valid size");
    let mut mem = vec![CacheLinePair([0; RING_ALIGN]); len.div_ceil(RING_ALIGN)];
    // SAFETY: a fresh exclusive block that `mem` keeps alive until every thread is
    // joined (below, before `mem` goes); no side is single.
    let r = unsafe { Ring::<u64>::init_in(mem.as_mut_ptr().cast(), len, "oversub", SLOTS, f) }
        .expect("ring");
    let h = match mode {
        "mpmc_typed" => Handle::MpMc(r.into_mp_mc().ok().expect("MP/MC ring")),
        "opt_typed" => Handle::MpOpt(r.into_mp_opt().ok().expect("MP/opt ring")),
        _ => Handle::Plain(r),
    };
    let per = o.total / o.producers;
    let total = per * o.producers;
    let moved = Arc::new(AtomicU64::new(0));
    let sum = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new((o.producers + o.consumers + 1) as usize));
    let mut threads = Vec::new();
    for p in 0..o.producers {
        let (h, start, stop) = (h.clone(), start.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u64; BURST];
            let mut next = p * per;
            let end = next + per;
            start.wait();
            while next < end && !stop.load(Ordering::Relaxed) {
                let n = (end - next).min(BURST as u64) as usize;
                for (i, v) in buf[..n].iter_mut().enumerate() {
                    *v = next + i as u64;
                }
                next += u64::from(h.put(&buf[..n]).n);
            }
        }));
    }
    for _ in 0..o.consumers {
        let (h, start, stop, moved, sum) = (
            h.clone(),
            start.clone(),
            stop.clone(),
            moved.clone(),
            sum.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u64; BURST];
            let mut local = 0u64;
            start.wait();
            while moved.load(Ordering::Relaxed) < total && !stop.load(Ordering::Relaxed) {
                let n = h.get(&mut buf).n as usize;
                if n > 0 {
                    local = buf[..n].iter().fold(local, |a, &v| a.wrapping_add(v));
                    moved.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            sum.fetch_add(local, Ordering::Relaxed);
        }));
    }
    start.wait();
    let t0 = Instant::now();
    while moved.load(Ordering::Relaxed) < total {
        if t0.elapsed() > o.limit {
            stop.store(true, Ordering::Relaxed);
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = t0.elapsed();
    for t in threads {
        t.join().expect("worker panicked");
    }
    drop(h);
    drop(mem);
    let got = moved.load(Ordering::Relaxed);
    if got < total {
        return Err(got);
    }
    assert_eq!(got, total, "{mode}: element count");
    let want = (0..total).fold(0u64, |a, v| a.wrapping_add(v));
    assert_eq!(sum.load(Ordering::Relaxed), want, "{mode}: element sum");
    Ok(elapsed)
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        runs: 5,
        total: 16_000_000,
        producers: 8,
        consumers: 8,
        limit: Duration::from_secs(120),
        modes: ["mpmc", "rts", "hts", "opt", "mpmc_typed", "opt_typed"]
            .map(String::from)
            .to_vec(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().ok_or(format!("{a} needs a value"))?;
        let bad = |_| format!("bad value for {a}: {v}");
        match a.as_str() {
            "--runs" => o.runs = v.parse().map_err(bad)?,
            "--total" => o.total = v.parse().map_err(bad)?,
            "--limit" => o.limit = Duration::from_secs(v.parse().map_err(bad)?),
            "--threads" => {
                let (p, c) = v
                    .split_once(',')
                    .ok_or(format!("--threads wants P,C: {v}"))?;
                o.producers = p.parse().map_err(bad)?;
                o.consumers = c.parse().map_err(bad)?;
            }
            "--modes" => o.modes = v.split(',').map(String::from).collect(),
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    if let Some(m) = o.modes.iter().find(|m| flags(m).is_none()) {
        return Err(format!("unknown mode {m}"));
    }
    if o.producers == 0 || o.consumers == 0 || o.total < o.producers {
        return Err("need at least one producer, one consumer and one element each".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("oversubscribed: {e}");
            return ExitCode::from(2);
        }
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "{} producers + {} consumers on {cores} cores, {} elements, {SLOTS}-slot ring, bursts of {BURST}",
        o.producers, o.consumers, o.total
    );
    let mut stalled = false;
    for m in &o.modes {
        let mut times = Vec::new();
        for _ in 0..o.runs {
            match run(m, &o) {
                Ok(t) => times.push(format!("{:.2}", t.as_secs_f64())),
                Err(moved) => {
                    stalled = true;
                    times.push(format!("STALLED({moved} moved in {} s)", o.limit.as_secs()));
                }
            }
        }
        println!("{m:<11} seconds per run: {}", times.join(" "));
    }
    if stalled {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
