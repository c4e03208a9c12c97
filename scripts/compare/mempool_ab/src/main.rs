//! In-process A/B of Ferroplane's mempool against DPDK's rte_mempool, case by case.
//!
//! Why in one process: on a small VM the host moves the vCPUs between placements every
//! few seconds, and single-core rates also come in modes that last minutes; two programs
//! run one after the other (dpdk-test, then mempool_perf; or mempool_paired.sh's
//! per-case processes) can land in different modes. Here DPDK's EAL and ours are both
//! initialised in this process, each with its own pools, and every case runs DPDK's
//! mempool and ours in alternating slices of `--ms` milliseconds on the same pinned
//! threads, the order swapping every round.
//!
//! Workload: the cases of DPDK 22.11's mempool_perf_autotest (n_keep 32/128, get/put bulk
//! 1/4/32, constant and variable n, one and two cores, no cache and a 512-object cache;
//! pools of `2 * (512 + 512) - 1` objects of 2048 bytes on the ring_mp_mc backend). DPDK's
//! side runs the autotest's loop compiled in `shim.c`; ours runs `mempool_perf`'s own loop
//! (`apps/src/bin/mempool_perf/workload.rs`, included below). One difference from both
//! benchmarks, the same for both sides: the threads are not EAL lcores of either EAL, so a
//! cached case goes through a user-owned cache (`rte_mempool_cache_create`,
//! `Mempool::cache_create`) instead of the lcore's default one. The get/put code is the
//! same either way (DPDK's `rte_mempool_generic_get/put` with a cache pointer; our
//! `CacheRef` over a cache).
//!
//! At the end every user cache is flushed and both sides' pools must hold all their
//! objects again, or the program fails.
//!
//! Output per case: medians of the per-slice rates (objects/s, summed over the threads, each
//! over the time its own rounds took), the
//! geometric mean over rounds of ours / DPDK from the same round (above 1: ours faster),
//! in how many rounds ours was ahead, the 95% confidence interval of the ratio (a t
//! interval over the rounds) and a verdict: "ahead" or "behind" when the interval lies
//! wholly above or below 1, "level" otherwise; then summaries.

#[path = "../../../../apps/src/bin/mempool_perf/workload.rs"]
mod workload;

#[path = "../../ab_common.rs"]
mod ab_common;
use ab_common::{pin, round_trip_ns};

use std::ffi::{c_char, c_int, c_uint, c_void, CString};
use std::process::ExitCode;
use std::sync::{Arc, Barrier, Mutex};

use eal::Eal;
use mempool::{Mempool, MempoolCache, PoolConfig, CACHE_MAX_SIZE};
use workload::{run_round, Src, Table, MAX_KEEP, N};

extern "C" {
    fn ab_eal_init(argc: c_int, argv: *mut *mut c_char) -> c_int;
    fn ab_pool_new(name: *const c_char, n: c_uint, elt: c_uint, cache: c_uint) -> *mut c_void;
    fn ab_pool_avail(mp: *mut c_void) -> c_uint;
    fn ab_cache_new(mp: *mut c_void) -> *mut c_void;
    fn ab_cache_free(c: *mut c_void, mp: *mut c_void);
    fn ab_run(
        mp: *mut c_void,
        cache: *mut c_void,
        keep: c_uint,
        gb: c_uint,
        pb: c_uint,
        constant: c_int,
        cycles: u64,
        elapsed: *mut u64,
    ) -> i64;
}

const ELT_SIZE: u32 = 2048;
const THREADS: u32 = 2;
const POOL_SIZE: u32 = THREADS * (MAX_KEEP as u32 + CACHE_MAX_SIZE) - 1;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Dpdk,
    Ours,
}

#[derive(Clone, Copy)]
struct Case {
    cache: bool,
    cores: u32,
    keep: u32,
    gb: u32,
    pb: u32,
    constant: bool,
}

/// A DPDK pool pointer (used by one thread at a time per cache; the pool itself is MP/MC).
#[derive(Clone, Copy)]
struct DpdkPool(*mut c_void);
// SAFETY: an rte_mempool on the ring_mp_mc backend is safe to use from several threads;
// the caches that are not are per thread (`Thread`).
unsafe impl Send for DpdkPool {}
// SAFETY: as above.
unsafe impl Sync for DpdkPool {}

/// Both sides' pools: [no cache, cache 512].
#[derive(Clone)]
struct Pools {
    dpdk: [DpdkPool; 2],
    ours: [Mempool; 2],
}

/// One thread's caches for the cached pools, and its object table.
struct Thread {
    dpdk_cache: *mut c_void,
    ours_cache: MempoolCache,
    table: Table,
}

impl Thread {
    fn new(p: &Pools) -> Result<Thread, String> {
        // SAFETY: a valid pool with a cache; NULL is checked.
        let dpdk_cache = unsafe { ab_cache_new(p.dpdk[1].0) };
        if dpdk_cache.is_null() {
            return Err("rte_mempool_cache_create failed".into());
        }
        let ours_cache = p.ours[1]
            .cache_create(CACHE_MAX_SIZE)
            .map_err(|e| e.to_string())?;
        Ok(Thread {
            dpdk_cache,
            ours_cache,
            table: Table::new(),
        })
    }

    /// Run `c` on one side in whole rounds until `cycles` TSC cycles have passed; this
    /// thread's rate in objects per second, over the time its rounds really took (the last
    /// round ends past the deadline: dividing by the nominal slice instead would count up
    /// to a round too many, ±2% at the two-core no-cache rates).
    fn run(&mut self, p: &Pools, side: Side, c: Case, cycles: u64) -> Result<f64, String> {
        let mut elapsed = 0u64;
        let k = usize::from(c.cache);
        match side {
            Side::Dpdk => {
                let cache = if c.cache {
                    self.dpdk_cache
                } else {
                    std::ptr::null_mut()
                };
                // SAFETY: a valid pool; the cache is this thread's (or none).
                let n = unsafe {
                    ab_run(
                        p.dpdk[k].0,
                        cache,
                        c.keep,
                        c.gb,
                        c.pb,
                        c_int::from(c.constant),
                        cycles,
                        &mut elapsed,
                    )
                };
                let n = u64::try_from(n).map_err(|_| "DPDK: a get failed".to_string())?;
                Ok(rate(n, elapsed))
            }
            Side::Ours => {
                let pool = &p.ours[k];
                let cref = if c.cache {
                    pool.user_cache(&mut self.ours_cache)
                        .map_err(|e| e.to_string())?
                } else {
                    pool.lcore_cache()
                };
                let src = Src::new(cref);
                let (keep, gb, pb) = (c.keep as usize, c.gb as usize, c.pb as usize);
                let t0 = eal::timer::rdtsc();
                let mut n = 0u64;
                while eal::timer::rdtsc() - t0 < cycles {
                    if !run_round(&src, &mut self.table, keep, gb, pb, c.constant) {
                        return Err("ours: a get failed".into());
                    }
                    n += u64::from(N);
                }
                elapsed = eal::timer::rdtsc() - t0;
                Ok(rate(n, elapsed))
            }
        }
    }

    /// Give every cached object back to its pool.
    fn flush(&mut self, p: &Pools) -> Result<(), String> {
        // SAFETY: this thread's cache of that pool, not used again.
        unsafe { ab_cache_free(self.dpdk_cache, p.dpdk[1].0) };
        self.dpdk_cache = std::ptr::null_mut();
        self.ours_cache.flush().map_err(|e| e.to_string())
    }
}

enum Msg {
    Run { side: Side, case: Case, cycles: u64 },
    Quit,
}

/// Main thread to helper thread: the job, and two barriers around it.
struct Ctl {
    msg: Mutex<Msg>,
    start: Barrier,
    done: Barrier,
    result: Mutex<Result<f64, String>>,
}

fn helper(p: Pools, ctl: Arc<Ctl>, cpu: usize) -> Result<(), String> {
    // A failed setup is reported through every job instead of returning at once: the main
    // thread waits on the barriers and would hang.
    let mut t = pin(cpu).and_then(|()| Thread::new(&p));
    loop {
        ctl.start.wait();
        let job = match &*ctl.msg.lock().unwrap() {
            Msg::Quit => None,
            Msg::Run { side, case, cycles } => Some((*side, *case, *cycles)),
        };
        let Some((side, case, cycles)) = job else {
            break;
        };
        let r = match &mut t {
            Err(e) => Err(format!("helper thread: {e}")),
            Ok(t) if case.cores >= 2 => t.run(&p, side, case, cycles),
            Ok(_) => Ok(0.0),
        };
        *ctl.result.lock().unwrap() = r;
        ctl.done.wait();
    }
    t?.flush(&p)
}

struct Opts {
    rounds: usize,
    ms: u64,
    cpus: (usize, usize),
    sections: Vec<bool>,
    cores: Vec<u32>,
    keep: Vec<u32>,
    bulk: Vec<u32>,
    verbose: bool,
}

fn list(s: &str, what: &str, ok: impl Fn(u32) -> bool) -> Result<Vec<u32>, String> {
    s.split(',')
        .map(|x| match x.parse::<u32>() {
            Ok(v) if ok(v) => Ok(v),
            _ => Err(format!("invalid value '{x}' in {what}")),
        })
        .collect()
}

fn parse() -> Result<Option<Opts>, String> {
    let mut o = Opts {
        rounds: 5,
        ms: 200,
        cpus: (0, 1),
        sections: vec![false, true],
        cores: vec![1, 2],
        keep: vec![32, 128],
        bulk: vec![1, 4, 32],
        verbose: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "-h" || a == "--help" {
            return Ok(None);
        }
        if a == "--verbose" {
            o.verbose = true;
            i += 1;
            continue;
        }
        let v = args
            .get(i + 1)
            .ok_or_else(|| format!("{a} needs a value"))?
            .as_str();
        match a {
            "--rounds" => {
                o.rounds = match v.parse() {
                    Ok(r) if (1..=1000).contains(&r) => r,
                    _ => return Err(format!("invalid value '{v}' for --rounds: 1..=1000")),
                }
            }
            "--ms" => {
                o.ms = match v.parse() {
                    Ok(m) if (10..=10_000).contains(&m) => m,
                    _ => return Err(format!("invalid value '{v}' for --ms: 10..=10000")),
                }
            }
            "--cpus" => {
                let c = list(v, "--cpus", |c| c < 1024)?;
                if c.len() != 2 || c[0] == c[1] {
                    return Err(format!(
                        "invalid value '{v}' for --cpus: two different cpus"
                    ));
                }
                o.cpus = (c[0] as usize, c[1] as usize);
            }
            "--sections" => {
                o.sections = v
                    .split(',')
                    .map(|s| match s {
                        "nocache" => Ok(false),
                        "cache" => Ok(true),
                        _ => Err(format!("invalid section '{s}': nocache or cache")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--cores" => o.cores = list(v, "--cores", |c| c == 1 || c == 2)?,
            "--keep" => o.keep = list(v, "--keep", |k| k >= 1 && k as usize <= MAX_KEEP)?,
            "--bulk" => o.bulk = list(v, "--bulk", |b| b >= 1 && b as usize <= MAX_KEEP)?,
            _ => return Err(format!("unknown argument '{a}' (see --help)")),
        }
        i += 2;
    }
    Ok(Some(o))
}

fn cases(o: &Opts) -> Vec<Case> {
    let mut v = Vec::new();
    for &cache in &o.sections {
        for &cores in &o.cores {
            for &keep in &o.keep {
                for &gb in &o.bulk {
                    for &pb in &o.bulk {
                        // The autotest skips bulk sizes that do not divide n_keep.
                        if keep % gb != 0 || keep % pb != 0 {
                            continue;
                        }
                        for constant in [false, true] {
                            if constant && gb != pb {
                                continue;
                            }
                            v.push(Case {
                                cache,
                                cores,
                                keep,
                                gb,
                                pb,
                                constant,
                            });
                        }
                    }
                }
            }
        }
    }
    v
}

fn dpdk_init(cpus: (usize, usize)) -> Result<[DpdkPool; 2], String> {
    let args = [
        "mempool_ab".to_string(),
        "-l".into(),
        format!("{},{}", cpus.0, cpus.1),
        "--file-prefix".into(),
        format!("mpab_dpdk_{}", std::process::id()),
        "--no-pci".into(),
        "--log-level=1".into(),
    ];
    let c: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()).unwrap())
        .collect();
    let mut ptrs: Vec<*mut c_char> = c.iter().map(|a| a.as_ptr() as *mut c_char).collect();
    // SAFETY: argv of argc valid C strings, alive for the process (leaked below: DPDK may
    // keep pointers into argv).
    let r = unsafe { ab_eal_init(ptrs.len() as c_int, ptrs.as_mut_ptr()) };
    std::mem::forget(c);
    std::mem::forget(ptrs);
    if r < 0 {
        return Err("rte_eal_init failed (hugepages reserved and mounted?)".into());
    }
    let mut pools = [DpdkPool(std::ptr::null_mut()); 2];
    for (k, (name, cache)) in [("ab_nocache", 0), ("ab_cache", CACHE_MAX_SIZE)]
        .into_iter()
        .enumerate()
    {
        let n = CString::new(name).unwrap();
        // SAFETY: a valid C string; NULL is checked.
        let mp = unsafe { ab_pool_new(n.as_ptr(), POOL_SIZE, ELT_SIZE, cache) };
        if mp.is_null() {
            return Err(format!("rte_mempool_create {name} failed"));
        }
        pools[k] = DpdkPool(mp);
    }
    Ok(pools)
}

/// Objects per second for `n` objects in `cycles` TSC cycles.
fn rate(n: u64, cycles: u64) -> f64 {
    n as f64 * eal::timer::tsc_hz() as f64 / cycles.max(1) as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Two-sided 95% quantile of Student's t with `df` degrees of freedom (standard table;
/// the next lower tabulated df above 10, so the interval errs wide).
fn t95(df: usize) -> f64 {
    const T: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    match df {
        0 => f64::INFINITY,
        1..=10 => T[df - 1],
        11..=14 => 2.179,
        15..=19 => 2.131,
        20..=29 => 2.086,
        30..=59 => 2.042,
        _ => 2.0,
    }
}

/// 95% confidence interval of the geometric-mean ratio, from the per-round ratios (a t
/// interval on their logarithms: the rounds are independent paired measurements).
fn ci95(v: &[f64]) -> (f64, f64) {
    let k = v.len();
    if k < 2 {
        return (0.0, f64::INFINITY);
    }
    let logs: Vec<f64> = v.iter().map(|x| x.ln()).collect();
    let m = logs.iter().sum::<f64>() / k as f64;
    let var = logs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (k - 1) as f64;
    let h = t95(k - 1) * (var / k as f64).sqrt();
    ((m - h).exp(), (m + h).exp())
}

/// Where a case's 95% interval lies: wholly above 1, wholly below 1, or across it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ahead,
    Level,
    Behind,
}

impl Verdict {
    fn of((lo, hi): (f64, f64)) -> Verdict {
        if lo > 1.0 {
            Verdict::Ahead
        } else if hi < 1.0 {
            Verdict::Behind
        } else {
            Verdict::Level
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Verdict::Ahead => "ahead",
            Verdict::Level => "level",
            Verdict::Behind => "behind",
        }
    }
}

fn gmean(v: &[f64]) -> f64 {
    (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp()
}

fn real_main() -> Result<(), String> {
    let Some(o) = parse()? else {
        println!(
            "usage: mempool-ab [--rounds 5] [--ms 200] [--cpus 0,1] [--sections nocache,cache]\n\
             \x20                 [--cores 1,2] [--keep 32,128] [--bulk 1,4,32] [--verbose]"
        );
        return Ok(());
    };
    let rt_start = round_trip_ns(o.cpus)?;
    println!(
        "core-to-core round trip cpu {} <-> {}: {rt_start:.0} ns at the start",
        o.cpus.0, o.cpus.1
    );
    let dpdk = dpdk_init(o.cpus)?;
    let eal_args: Vec<String> = vec![
        "mempool_ab".into(),
        "-l".into(),
        format!("{},{}", o.cpus.0, o.cpus.1),
        "--file-prefix".into(),
        format!("mpab_ours_{}", std::process::id()),
    ];
    let (eal, _) = Eal::init(&eal_args).map_err(|e| format!("ferroplane EAL: {e}"))?;
    let make = |name: &str, cache: u32| {
        Mempool::create(
            &eal,
            name,
            &PoolConfig {
                n: POOL_SIZE,
                elt_size: ELT_SIZE,
                cache_size: cache,
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())
    };
    let pools = Pools {
        dpdk,
        ours: [make("ab_nocache", 0)?, make("ab_cache", CACHE_MAX_SIZE)?],
    };
    pin(o.cpus.0)?;
    let ctl = Arc::new(Ctl {
        msg: Mutex::new(Msg::Quit),
        start: Barrier::new(2),
        done: Barrier::new(2),
        result: Mutex::new(Ok(0.0)),
    });
    let h = {
        let (p, ctl, cpu) = (pools.clone(), ctl.clone(), o.cpus.1);
        std::thread::spawn(move || helper(p, ctl, cpu))
    };
    let mut me = Thread::new(&pools)?;
    let cycles = eal::timer::tsc_hz() / 1000 * o.ms;
    let mut slice = |side: Side, case: Case| -> Result<f64, String> {
        *ctl.msg.lock().unwrap() = Msg::Run { side, case, cycles };
        ctl.start.wait();
        let mine = me.run(&pools, side, case, cycles);
        ctl.done.wait();
        let other = std::mem::replace(&mut *ctl.result.lock().unwrap(), Ok(0.0));
        Ok(mine? + other?)
    };

    let all = cases(&o);
    println!(
        "mempool A/B in one process, {} cases, {} rounds of {} ms per side; pool {} x {} B on ring_mp_mc",
        all.len(),
        o.rounds,
        o.ms,
        POOL_SIZE,
        ELT_SIZE
    );
    println!(
        "section  cache cores  get  put  keep const   dpdk median   ours median   ratio  ahead     95% CI    verdict"
    );
    let mut ratios_all = Vec::new();
    // (label, ratios) per group: section x cores.
    let mut groups: Vec<(String, Vec<(f64, Verdict)>)> = Vec::new();
    let mut out = Ok(());
    for (ci, &c) in all.iter().enumerate() {
        let (mut d, mut u, mut r) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..o.rounds {
            let order = if (round + ci) % 2 == 0 {
                [Side::Dpdk, Side::Ours]
            } else {
                [Side::Ours, Side::Dpdk]
            };
            let mut rate = [0.0; 2];
            for side in order {
                let v = match slice(side, c) {
                    Ok(v) => v,
                    Err(e) => {
                        out = Err(e);
                        break;
                    }
                };
                rate[usize::from(side == Side::Ours)] = v;
            }
            if out.is_err() {
                break;
            }
            if o.verbose {
                println!(
                    "   round {round}: dpdk {:.0} ours {:.0} ratio {:.3}",
                    rate[0],
                    rate[1],
                    rate[1] / rate[0]
                );
            }
            d.push(rate[0]);
            u.push(rate[1]);
            r.push(rate[1] / rate[0]);
        }
        if out.is_err() {
            break;
        }
        let g = gmean(&r);
        let ahead = r.iter().filter(|&&x| x > 1.0).count();
        let ci = ci95(&r);
        let v = Verdict::of(ci);
        println!(
            "{:<8} {:>5} {:>5} {:>4} {:>4} {:>5} {:>5} {:>13.0} {:>13.0} {:>7.2}  {:>2}/{:<2}  {:.2}-{:<5.2} {}",
            if c.cache { "cache" } else { "nocache" },
            if c.cache { CACHE_MAX_SIZE } else { 0 },
            c.cores,
            c.gb,
            c.pb,
            c.keep,
            u8::from(c.constant),
            median(&mut d),
            median(&mut u),
            g,
            ahead,
            r.len(),
            ci.0,
            ci.1.min(99.0),
            v.as_str()
        );
        ratios_all.push((g, v));
        let label = format!(
            "{}, {} core{}",
            if c.cache { "cache 512" } else { "no cache" },
            c.cores,
            if c.cores == 1 { "" } else { "s" }
        );
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, list)) => list.push((g, v)),
            None => groups.push((label, vec![(g, v)])),
        }
    }
    *ctl.msg.lock().unwrap() = Msg::Quit;
    ctl.start.wait();
    let flushed = h.join().map_err(|_| "helper thread panicked".to_string())?;
    out?;
    flushed?;
    me.flush(&pools)?;
    for k in 0..2 {
        // SAFETY: a valid pool.
        let d = unsafe { ab_pool_avail(pools.dpdk[k].0) };
        let u = pools.ours[k].avail_count();
        if d != POOL_SIZE || u != POOL_SIZE {
            return Err(format!(
                "objects lost: pool {k} holds {d} (DPDK) and {u} (ours) of {POOL_SIZE}"
            ));
        }
    }
    println!();
    // Per group and overall: geometric mean, range, cases whose ratio is below 1, and
    // cases significantly behind (95% interval wholly below 1).
    let summary = |v: &[(f64, Verdict)]| {
        let g: Vec<f64> = v.iter().map(|x| x.0).collect();
        let below = g.iter().filter(|&&x| x < 1.0).count();
        let behind = v.iter().filter(|x| x.1 == Verdict::Behind).count();
        let ahead = v.iter().filter(|x| x.1 == Verdict::Ahead).count();
        let (lo, hi) = g
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), &x| (l.min(x), h.max(x)));
        format!(
            "gm {:.2}  range {lo:.2}-{hi:.2}  below 1.0: {below} of {}  significantly behind: {behind}, ahead: {ahead}",
            gmean(&g),
            g.len()
        )
    };
    for (label, v) in &groups {
        println!("{label:<20} {}", summary(v));
    }
    println!(
        "{} cases, all: {}; every object back in every pool",
        ratios_all.len(),
        summary(&ratios_all)
    );
    println!(
        "core-to-core round trip cpu {} <-> {}: {rt_start:.0} ns at the start, {:.0} ns at the end",
        o.cpus.0,
        o.cpus.1,
        round_trip_ns(o.cpus)?
    );
    Ok(())
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mempool-ab: {e}");
            ExitCode::FAILURE
        }
    }
}
