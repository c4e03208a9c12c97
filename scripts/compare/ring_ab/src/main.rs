//! In-process A/B of Ferroplane's MP/MC ring against DPDK's rte_ring.
//!
//! Why in one process: on a small VM the host moves the two vCPUs between placements
//! (same core, same CCX, across CCXs) every few seconds, and a cross-core ring's speed
//! changes by 3-10x with them. Two programs run one after the other land in different
//! placements; here both rings run in alternating rounds of a few hundred milliseconds on
//! the same two pinned threads, so each ratio compares the two under one placement.
//!
//! Workload (two threads): the pattern of a mempool without cache, as in DPDK's
//! mempool_perf_autotest: a ring of 2048 slots holding 2047 tokens; each thread loops
//! "dequeue `bulk`, enqueue them back" (MP/MC bulk calls, retried when they fail). The
//! count is tokens moved per second, both threads summed. At the end every token must be
//! in its ring exactly once, or the program fails.
//!
//! `--single`: one thread, enqueue `bulk` + dequeue `bulk` on an empty ring, per round,
//! reported as speed ratio too.
//!
//! `--one-line`: our ring is created with `RingFlags::ONE_LINE` (both sides' head/tail on
//! one cache line, as the mempool's `ring_mp_mc` backend has it) instead of DPDK's layout.
//!
//! Output per bulk size: every round's DPDK and our rate and their ratio (ours / DPDK,
//! above 1 means ours is faster), then the geometric mean of the ratios.

#[path = "../../ab_common.rs"]
mod ab_common;
use ab_common::{pin, round_trip_ns};

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ring::{Ring, RingFlags};

extern "C" {
    fn ab_dpdk_ring_new(count: u32) -> *mut u8;
    fn ab_dpdk_enq(r: *mut u8, objs: *const usize, n: u32) -> u32;
    fn ab_dpdk_deq(r: *mut u8, objs: *mut usize, n: u32) -> u32;
}

const SLOTS: u32 = 2048;
const TOKENS: usize = SLOTS as usize - 1;

/// The two rings under test, shared by both threads.
struct Rings {
    dpdk: *mut u8,
    ours: Ring<usize>,
}

// SAFETY: the DPDK ring is an MP/MC rte_ring used only through its MP/MC calls; ours is
// Sync by itself.
unsafe impl Send for Rings {}
// SAFETY: as above.
unsafe impl Sync for Rings {}

impl Rings {
    fn new(flags: RingFlags) -> Result<Rings, String> {
        // SAFETY: plain constructor; NULL is checked.
        let dpdk = unsafe { ab_dpdk_ring_new(SLOTS) };
        if dpdk.is_null() {
            return Err("rte_ring_init failed".into());
        }
        let len = Ring::<usize>::memsize(SLOTS, flags).map_err(|e| e.to_string())?;
        let layout = std::alloc::Layout::from_size_align(len, 4096).map_err(|e| e.to_string())?;
        // SAFETY: non-zero size.
        let mem = unsafe { std::alloc::alloc_zeroed(layout) };
        if mem.is_null() {
            return Err("out of memory".into());
        }
        // SAFETY: fresh, 4096-aligned, `len` bytes, leaked for the life of the process.
        let ours = unsafe { Ring::init_in(mem, len, "ab", SLOTS, flags) }
            .map_err(|e| e.to_string())?;
        Ok(Rings { dpdk, ours })
    }

    #[inline(always)]
    fn enq(&self, dpdk: bool, objs: &[usize]) -> bool {
        if dpdk {
            // SAFETY: `objs` holds objs.len() values.
            unsafe { ab_dpdk_enq(self.dpdk, objs.as_ptr(), objs.len() as u32) != 0 }
        } else {
            self.ours.mp_enqueue_bulk(objs).n != 0
        }
    }

    #[inline(always)]
    fn deq(&self, dpdk: bool, objs: &mut [usize]) -> bool {
        if dpdk {
            // SAFETY: `objs` has room for objs.len() values.
            unsafe { ab_dpdk_deq(self.dpdk, objs.as_mut_ptr(), objs.len() as u32) != 0 }
        } else {
            self.ours.mc_dequeue_bulk(objs).n != 0
        }
    }
}

/// The two-thread loop of one round on one ring; returns tokens moved.
#[inline(never)]
fn churn(r: &Rings, dpdk: bool, bulk: usize, stop: &AtomicBool) -> u64 {
    let mut t = [0usize; 512];
    let t = &mut t[..bulk];
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..256 {
            while !r.deq(dpdk, t) {}
            while !r.enq(dpdk, t) {}
        }
        n += 256 * bulk as u64;
    }
    n
}

struct Opts {
    bulks: Vec<usize>,
    rounds: usize,
    ms: u64,
    cpus: (usize, usize),
    single: bool,
    layout: RingFlags,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        bulks: vec![1, 4, 32],
        rounds: 20,
        ms: 200,
        cpus: (0, 1),
        single: false,
        layout: RingFlags::empty(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = |i: usize| {
            args.get(i + 1)
                .ok_or_else(|| format!("{} needs a value", args[i]))
        };
        match args[i].as_str() {
            "--bulk" => {
                o.bulks = val(i)?
                    .split(',')
                    .map(|x| x.parse::<usize>().ok().filter(|b| (1..=512).contains(b)))
                    .collect::<Option<_>>()
                    .ok_or("invalid --bulk: a list of numbers in 1..=512")?;
                i += 1;
            }
            "--rounds" => {
                o.rounds = val(i)?
                    .parse()
                    .ok()
                    .filter(|&r| r > 0)
                    .ok_or("invalid --rounds: a number >= 1")?;
                i += 1;
            }
            "--ms" => {
                o.ms = val(i)?
                    .parse()
                    .ok()
                    .filter(|&m| m > 0)
                    .ok_or("invalid --ms: milliseconds >= 1")?;
                i += 1;
            }
            "--cpus" => {
                let v: Vec<usize> = val(i)?
                    .split(',')
                    .map(|x| x.parse().ok())
                    .collect::<Option<_>>()
                    .ok_or("invalid --cpus: two cpu numbers, e.g. 0,1")?;
                if v.len() != 2 || v[0] == v[1] {
                    return Err("invalid --cpus: two different cpu numbers, e.g. 0,1".into());
                }
                o.cpus = (v[0], v[1]);
                i += 1;
            }
            "--single" => o.single = true,
            "--one-line" => o.layout = RingFlags::ONE_LINE,
            "-h" | "--help" => return Err(
                "usage: ring-ab [--bulk 1,4,32] [--rounds 20] [--ms 200] [--cpus 0,1] [--single] \
                 [--one-line]"
                    .into(),
            ),
            a => return Err(format!("unknown argument '{a}' (see --help)")),
        }
        i += 1;
    }
    Ok(o)
}

fn report(bulk: usize, what: &str, rates: &[(f64, f64)]) {
    println!("== {what}, bulk {bulk}: Mtokens/s per round (DPDK, ours, ours/DPDK)");
    let mut g = 0.0;
    for (d, o) in rates {
        println!("   {d:9.1} {o:9.1}  {:.2}", o / d);
        g += (o / d).ln();
    }
    println!(
        "   geomean ours/DPDK over {} rounds: {:.3}",
        rates.len(),
        (g / rates.len() as f64).exp()
    );
}

/// Two threads, alternating rings each round.
fn two_threads(o: &Opts, rings: &Arc<Rings>, bulk: usize) -> Result<Vec<(f64, f64)>, String> {
    let bar = Arc::new(Barrier::new(2));
    let stop = Arc::new(AtomicBool::new(false));
    let peer_count = Arc::new(AtomicU64::new(0));
    let rounds = o.rounds;
    let peer = {
        let (rings, bar, stop, peer_count) =
            (rings.clone(), bar.clone(), stop.clone(), peer_count.clone());
        let cpu = o.cpus.1;
        std::thread::spawn(move || -> Result<(), String> {
            pin(cpu)?;
            for round in 0..rounds {
                for k in 0..2 {
                    let dpdk = (round + k) % 2 == 0;
                    bar.wait();
                    let n = churn(&rings, dpdk, bulk, &stop);
                    peer_count.store(n, Ordering::Relaxed);
                    bar.wait();
                }
            }
            Ok(())
        })
    };
    let mut out = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let mut pair = (0.0, 0.0);
        for k in 0..2 {
            let dpdk = (round + k) % 2 == 0;
            stop.store(false, Ordering::Relaxed);
            bar.wait();
            let t0 = Instant::now();
            let timer = {
                let (stop, ms) = (stop.clone(), o.ms);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(ms));
                    stop.store(true, Ordering::Relaxed);
                })
            };
            let n = churn(rings, dpdk, bulk, &stop);
            let _ = timer.join();
            bar.wait();
            let secs = t0.elapsed().as_secs_f64();
            let rate = (n + peer_count.load(Ordering::Relaxed)) as f64 / secs / 1e6;
            if dpdk {
                pair.0 = rate;
            } else {
                pair.1 = rate;
            }
        }
        out.push(pair);
    }
    peer.join()
        .map_err(|_| "peer thread panicked".to_string())??;
    Ok(out)
}

/// One thread: enqueue + dequeue `bulk` on an empty ring.
fn single_thread(o: &Opts, bulk: usize) -> Result<Vec<(f64, f64)>, String> {
    let r = Rings::new(o.layout)?;
    let mut t: Vec<usize> = (0..bulk).collect();
    let iters = 4_000_000 / bulk;
    let mut out = Vec::new();
    for _ in 0..o.rounds {
        let mut pair = (0.0, 0.0);
        for dpdk in [true, false] {
            let t0 = Instant::now();
            for _ in 0..iters {
                if !r.enq(dpdk, std::hint::black_box(&t)) || !r.deq(dpdk, &mut t) {
                    return Err("single-thread enqueue/dequeue failed on an empty ring".into());
                }
            }
            let rate = (iters * bulk) as f64 / t0.elapsed().as_secs_f64() / 1e6;
            if dpdk {
                pair.0 = rate;
            } else {
                pair.1 = rate;
            }
        }
        out.push(pair);
    }
    Ok(out)
}

/// Every token 1..=TOKENS is in each ring exactly once.
fn check_tokens(r: &Rings) -> Result<(), String> {
    for dpdk in [true, false] {
        let mut seen = vec![false; TOKENS + 1];
        let mut one = [0usize; 1];
        let mut got = 0;
        while r.deq(dpdk, &mut one) {
            let v = one[0];
            if v == 0 || v > TOKENS || seen[v] {
                return Err(format!("token {v} out of range or seen twice"));
            }
            seen[v] = true;
            got += 1;
        }
        if got != TOKENS {
            return Err(format!(
                "{} ring holds {got} tokens, expected {TOKENS}",
                if dpdk { "DPDK" } else { "our" }
            ));
        }
        let all: Vec<usize> = (1..=TOKENS).collect();
        if !r.enq(dpdk, &all) {
            return Err("refill failed".into());
        }
    }
    Ok(())
}

fn run() -> Result<(), String> {
    let o = parse()?;
    let rt = round_trip_ns(o.cpus)?;
    println!(
        "core-to-core round trip cpu {} <-> {}: {rt:.0} ns at the start",
        o.cpus.0, o.cpus.1
    );
    println!(
        "our ring's header layout: {}",
        if o.layout.contains(RingFlags::ONE_LINE) {
            "ONE_LINE (both sides on one line)"
        } else {
            "default (DPDK's: a 128-byte block per side)"
        }
    );
    pin(o.cpus.0)?;
    let rings = Arc::new(Rings::new(o.layout)?);
    let all: Vec<usize> = (1..=TOKENS).collect();
    if !rings.enq(true, &all) || !rings.enq(false, &all) {
        return Err("initial fill failed".into());
    }
    for &b in &o.bulks {
        let rates = two_threads(&o, &rings, b)?;
        check_tokens(&rings)?;
        report(b, "two threads, MP/MC dequeue+enqueue", &rates);
        if o.single {
            report(
                b,
                "one thread, MP/MC enqueue+dequeue",
                &single_thread(&o, b)?,
            );
        }
    }
    println!(
        "core-to-core round trip cpu {} <-> {}: {:.0} ns at the end",
        o.cpus.0,
        o.cpus.1,
        round_trip_ns(o.cpus)?
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ring-ab: {e}");
            ExitCode::FAILURE
        }
    }
}
