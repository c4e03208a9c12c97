//! `mempool_perf`: the cases of DPDK 22.11's `mempool_perf_autotest`
//! (app/test/test_mempool_perf.c), measured on Ferroplane's mempool and printed in the
//! same layout, so `ferroplane-compare mempool` can put the two side by side.
//!
//! What one case measures (the DPDK test's structure): every participating lcore, after
//! a common start signal, repeats for `--time-s` seconds: take `n_keep` objects in bulks
//! of `n_get_bulk`, then put them back in bulks of `n_put_bulk`, counting 65536 objects per
//! round of 65536 / n_keep such cycles. `rate_persec` is the sum over lcores of
//! objects counted / `time-s` (objects got and put back per second). The "constant_n=1"
//! replay uses compile-time bulk sizes (monomorphised loops), as DPDK's does with
//! constants. Pools: 2048-byte objects, `lcores * (512 + 512) - 1` of them (DPDK's
//! `MEMPOOL_SIZE`), one without cache, one with a 512-object cache; with `--full` also a
//! pool on the default backend and runs through a user-owned 512-object cache.
//!
//! Usage: `mempool_perf [EAL options] -- [--time-s S] [--full] [--keep 32,128]
//! [--bulk 1,4,32] [--cores 1,2] [--sections nocache,cache,default,user]`.
//! Without `--full` the cases are n_keep {32, 128} x bulk {1, 4, 32} x cores {1, 2}, with
//! and without cache. Build with `--release`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use eal::{Eal, VirtAddr};
use mempool::{Mempool, PoolConfig, CACHE_MAX_SIZE};

mod workload;
use workload::{run_round, Src, Table, MAX_KEEP, N};

const ELT_SIZE: u32 = 2048;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Section {
    NoCache,
    Default,
    Cache,
    User,
}

impl Section {
    fn parse(s: &str) -> Option<Section> {
        Some(match s {
            "nocache" => Section::NoCache,
            "default" => Section::Default,
            "cache" => Section::Cache,
            "user" => Section::User,
            _ => return None,
        })
    }

    fn header(self) -> &'static str {
        match self {
            Section::NoCache => "start performance test (without cache)",
            Section::Default => "start performance test for ring_mp_mc (without cache)",
            Section::Cache => "start performance test (with cache)",
            Section::User => "start performance test (with user-owned cache)",
        }
    }
}

struct Opts {
    time_s: f64,
    keep: Vec<u32>,
    bulk: Vec<u32>,
    cores: Vec<u32>,
    sections: Vec<Section>,
}

fn parse_list(arg: &str, v: Option<&String>) -> Result<Vec<u32>, String> {
    let v = v.ok_or_else(|| format!("{arg} needs a value"))?;
    v.split(',')
        .map(|x| {
            x.trim()
                .parse::<u32>()
                .map_err(|_| format!("invalid value '{v}' for {arg}: not a list of numbers"))
        })
        .collect()
}

fn parse_opts(rest: &[String], lcores: u32) -> Result<Opts, String> {
    let mut o = Opts {
        time_s: 5.0,
        keep: vec![32, 128],
        bulk: vec![1, 4, 32],
        cores: vec![1, 2],
        sections: vec![Section::NoCache, Section::Cache],
    };
    let mut i = 0;
    while i < rest.len() {
        let a = rest[i].as_str();
        match a {
            "--time-s" => {
                let v = rest.get(i + 1).ok_or("--time-s needs a value")?;
                o.time_s = v
                    .parse::<f64>()
                    .ok()
                    .filter(|t| t.is_finite() && *t > 0.0 && *t <= 3600.0)
                    .ok_or(format!(
                        "invalid value '{v}' for --time-s: seconds in (0, 3600]"
                    ))?;
                i += 1;
            }
            "--full" => {
                o.keep = vec![32, 128, 512];
                o.bulk = vec![1, 4, 8, 32];
                o.cores = vec![1, 2, lcores];
                o.sections = vec![
                    Section::NoCache,
                    Section::Default,
                    Section::Cache,
                    Section::User,
                ];
            }
            "--keep" => {
                o.keep = parse_list(a, rest.get(i + 1))?;
                i += 1;
            }
            "--bulk" => {
                o.bulk = parse_list(a, rest.get(i + 1))?;
                i += 1;
            }
            "--cores" => {
                o.cores = parse_list(a, rest.get(i + 1))?;
                i += 1;
            }
            "--sections" => {
                let v = rest.get(i + 1).ok_or("--sections needs a value")?;
                o.sections = v
                    .split(',')
                    .map(|s| {
                        Section::parse(s).ok_or(format!(
                            "invalid value '{s}' for --sections: nocache, default, cache or user"
                        ))
                    })
                    .collect::<Result<_, _>>()?;
                i += 1;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
        i += 1;
    }
    for &k in &o.keep {
        if k == 0 || k as usize > MAX_KEEP {
            return Err(format!("invalid value '{k}' for --keep: 1..={MAX_KEEP}"));
        }
    }
    for &b in &o.bulk {
        if b == 0 || b as usize > MAX_KEEP {
            return Err(format!("invalid value '{b}' for --bulk: 1..={MAX_KEEP}"));
        }
    }
    for &c in &o.cores {
        if c == 0 || c > lcores {
            return Err(format!(
                "invalid value '{c}' for --cores: this EAL has {lcores} lcores (-l)"
            ));
        }
    }
    Ok(o)
}

#[derive(Clone, Copy)]
struct Case {
    keep: u32,
    get_bulk: u32,
    put_bulk: u32,
    constant: bool,
    user_cache: bool,
}

/// The per-lcore body: wait for the start flag, run rounds for `time_s`, return objects counted.
fn per_lcore(p: &Mempool, c: Case, time_s: f64, start: &AtomicBool) -> Result<u64, String> {
    let mut user = if c.user_cache {
        Some(p.cache_create(CACHE_MAX_SIZE).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let count = {
        let src = Src::new(match user.as_mut() {
            Some(u) => p.user_cache(u).map_err(|e| e.to_string())?,
            None => p.lcore_cache(),
        });
        let mut table = Table::new();
        let (keep, gb, pb) = (c.keep as usize, c.get_bulk as usize, c.put_bulk as usize);
        // Acquire: pairs with the release store that starts every lcore at once.
        while !start.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
        let cycles = (eal::timer::tsc_hz() as f64 * time_s) as u64;
        let t0 = eal::timer::rdtsc();
        let mut count = 0u64;
        while eal::timer::rdtsc() - t0 < cycles {
            let ok = run_round(&src, &mut table, keep, gb, pb, c.constant);
            if !ok {
                let mut d = Vec::new();
                let _ = p.dump(&mut d);
                return Err(format!("get failed:\n{}", String::from_utf8_lossy(&d)));
            }
            count += u64::from(N);
        }
        count
    };
    if let Some(mut u) = user {
        u.flush().map_err(|e| e.to_string())?;
    }
    Ok(count)
}

fn launch(
    eal: &Eal,
    p: &Mempool,
    cores: u32,
    c: Case,
    time_s: f64,
    pool_size: u32,
) -> Result<u64, String> {
    print!(
        "mempool_autotest cache={} cores={} n_get_bulk={} n_put_bulk={} n_keep={} constant_n={} ",
        if c.user_cache {
            CACHE_MAX_SIZE
        } else {
            p.cache_size()
        },
        cores,
        c.get_bulk,
        c.put_bulk,
        c.keep,
        u32::from(c.constant)
    );
    if p.avail_count() != pool_size {
        println!("mempool is not full");
        return Err("mempool is not full".into());
    }
    let start = Arc::new(AtomicBool::new(false));
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..cores).map(|_| AtomicU64::new(0)).collect());
    let workers: Vec<u32> = eal
        .lcores()
        .worker_ids()
        .into_iter()
        .take(cores as usize - 1)
        .collect();
    for (k, &w) in workers.iter().enumerate() {
        let (p, start, counts) = (p.clone(), start.clone(), counts.clone());
        eal.lcores()
            .remote_launch(w, move || match per_lcore(&p, c, time_s, &start) {
                Ok(n) => {
                    counts[k + 1].store(n, Ordering::Relaxed);
                    0
                }
                Err(e) => {
                    eprintln!("lcore {w}: {e}");
                    -1
                }
            })
            .map_err(|e| e.to_string())?;
    }
    // Release: pairs with the acquire spin in per_lcore.
    start.store(true, Ordering::Release);
    let main = per_lcore(p, c, time_s, &start);
    let mut failed = false;
    for &w in &workers {
        match eal.lcores().wait_lcore(w) {
            Ok(0) => {}
            Ok(_) | Err(_) => failed = true,
        }
    }
    let main = main?;
    if failed {
        println!("per-lcore test returned -1");
        return Err("a worker failed".into());
    }
    counts[0].store(main, Ordering::Relaxed);
    let rate: u64 = counts
        .iter()
        .map(|c| (c.load(Ordering::Relaxed) as f64 / time_s) as u64)
        .sum();
    println!("rate_persec={rate}");
    Ok(rate)
}

fn run_section(eal: &Eal, p: &Mempool, o: &Opts, user: bool, pool_size: u32) -> Result<(), String> {
    for &cores in &o.cores {
        for &g in &o.bulk {
            for &pb in &o.bulk {
                for &k in &o.keep {
                    if k % g != 0 || k % pb != 0 {
                        continue; // DPDK's test requires divisors (all of its own cases are)
                    }
                    let c = Case {
                        keep: k,
                        get_bulk: g,
                        put_bulk: pb,
                        constant: false,
                        user_cache: user,
                    };
                    launch(eal, p, cores, c, o.time_s, pool_size)?;
                    if g == pb {
                        launch(
                            eal,
                            p,
                            cores,
                            Case {
                                constant: true,
                                ..c
                            },
                            o.time_s,
                            pool_size,
                        )?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let (eal, rest) = match Eal::init(&argv) {
        Ok(x) => x,
        Err(eal::Error::HelpRequested) => {
            println!("usage: mempool_perf [EAL options] -- [--time-s S] [--full] [--keep L] [--bulk L] [--cores L] [--sections L]\n\n{}", eal::args::usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mempool_perf: {e}");
            return ExitCode::FAILURE;
        }
    };
    let lcores = eal.lcores().count() as u32;
    let o = match parse_opts(&rest, lcores) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("usage: mempool_perf [EAL options] -- [--time-s S] [--full] [--keep 32,128] [--bulk 1,4,32] [--cores 1,2] [--sections nocache,cache,default,user]");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mempool_perf: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("mempool_perf: warning: debug build (cookie checks on every object); use --release for numbers");
    }
    let pool_size = lcores * (MAX_KEEP as u32 + CACHE_MAX_SIZE) - 1;
    let init = |i: u32, obj: VirtAddr| {
        // SAFETY: a fresh object of ELT_SIZE bytes (zeroed by the pool); DPDK's
        // my_obj_init writes the index into the first 4 bytes.
        unsafe { obj.as_ptr::<u32>().write(i) }
    };
    let make = |name: &str, cache: u32| {
        Mempool::create_with_init(
            &eal,
            name,
            &PoolConfig {
                n: pool_size,
                elt_size: ELT_SIZE,
                cache_size: cache,
                ..Default::default()
            },
            init,
        )
    };
    let pools = (|| -> mempool::Result<_> {
        Ok((
            make("perf_test_nocache", 0)?,
            make("perf_test_cache", CACHE_MAX_SIZE)?,
            make("default_pool", 0)?,
        ))
    })();
    let (nocache, cache, default) = match pools {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mempool_perf: {e} (try more memory: -m 512, or hugepages)");
            return ExitCode::FAILURE;
        }
    };
    for &s in &o.sections {
        println!("{}", s.header());
        let r = match s {
            Section::NoCache => run_section(&eal, &nocache, &o, false, pool_size),
            Section::Default => run_section(&eal, &default, &o, false, pool_size),
            Section::Cache => run_section(&eal, &cache, &o, false, pool_size),
            Section::User => run_section(&eal, &nocache, &o, true, pool_size),
        };
        if let Err(e) = r {
            eprintln!("mempool_perf: {e}");
            return ExitCode::FAILURE;
        }
    }
    for p in [&nocache, &cache, &default] {
        let _ = p.dump(&mut std::io::stdout());
    }
    let _ = nocache.free();
    let _ = cache.free();
    let _ = default.free();
    ExitCode::SUCCESS
}
