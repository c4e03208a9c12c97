//! `nvme-perf`: NVMe benchmark with SPDK `spdk_nvme_perf`'s flags, driving either our
//! user-space driver (`trtype:PCIe`) or the kernel's block stack (`trtype:kernel`, through
//! io_uring, libaio or psync), so the two can be compared with one tool.
//!
//! ```text
//! nvme-perf -q DEPTH -o IO_SIZE -w read|write|randread|randwrite|rw|randrw [-M READ_PCT]
//!           -t SECONDS [-a WARMUP_SECONDS] [-c CORE_MASK] [-L | -LL]
//!           -r 'trtype:PCIe traddr:0000:00:02.0 [ns:N]'
//!           -r 'trtype:kernel path:/dev/nvme0n1 engine:io_uring|libaio|psync'
//!           [--iova-mode pa|va] [-s MEM_MB] [--file-prefix P] [--no-huge]
//! ```
//!
//! One queue pair (or kernel ring) per core per namespace, as SPDK does; every lcore of
//! the mask (the main one included) runs a worker. The report gives IOPS, MiB/s and
//! average/min/max latency per namespace and core, then a Total line, then the CPU time
//! each I/O cost (getrusage of the worker threads, user + system). `-L` adds latency
//! percentiles, `-LL` a histogram. Bad arguments: one line on stderr, exit 2. A device
//! that disappears mid-run ends the run with its error and exit status 3.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eal::timer::{rdtsc, tsc_hz};
use eal::{Eal, VirtAddr};
use nvme::kernel::{Engine, KernelDev};
use nvme::{Controller, ControllerOptions, Done, Error, Namespace, QPair, QPairOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pattern {
    Seq,
    Rand,
}

#[derive(Clone, Debug)]
enum Trid {
    Pcie { addr: String, ns: Option<u32> },
    Kernel { path: String, engine: Engine },
}

#[derive(Clone, Debug)]
struct Args {
    depth: usize,
    io_size: usize,
    pattern: Pattern,
    read_pct: u32,
    secs: u64,
    warmup: u64,
    mask: String,
    trids: Vec<Trid>,
    latency: u8,
    iova_mode: Option<String>,
    mem_mb: Option<u64>,
    prefix: String,
    no_huge: bool,
}

fn usage() -> &'static str {
    "usage: nvme-perf -q DEPTH -o IO_SIZE -w read|write|randread|randwrite|rw|randrw [-M READ_PCT] -t SECS [-a WARMUP] [-c MASK] [-L|-LL] -r TRID... [--iova-mode pa|va] [-s MB] [--file-prefix P] [--no-huge]\n  TRID: 'trtype:PCIe traddr:DDDD:BB:DD.F [ns:N]' or 'trtype:kernel path:/dev/nvme0n1 engine:io_uring|libaio|psync'"
}

fn parse_trid(s: &str) -> Result<Trid, String> {
    let mut kv = std::collections::HashMap::new();
    for part in s.split_whitespace() {
        let (k, v) = part
            .split_once(':')
            .ok_or_else(|| format!("bad -r '{s}': '{part}' is not key:value"))?;
        kv.insert(k.to_ascii_lowercase(), v.to_string());
    }
    match kv.get("trtype").map(|t| t.to_ascii_lowercase()).as_deref() {
        Some("pcie") => {
            let addr = kv
                .get("traddr")
                .ok_or_else(|| format!("bad -r '{s}': trtype:PCIe needs traddr:"))?
                .clone();
            addr.parse::<eal::pci::PciAddr>()
                .map_err(|e| format!("bad -r '{s}': {e}"))?;
            let ns = match kv.get("ns") {
                Some(n) => Some(
                    n.parse()
                        .map_err(|_| format!("bad -r '{s}': ns:{n} is not a number"))?,
                ),
                None => None,
            };
            Ok(Trid::Pcie { addr, ns })
        }
        Some("kernel") => {
            let path = kv
                .get("path")
                .ok_or_else(|| format!("bad -r '{s}': trtype:kernel needs path:"))?
                .clone();
            let engine = kv
                .get("engine")
                .map(String::as_str)
                .unwrap_or("io_uring")
                .parse()
                .map_err(|e| format!("bad -r '{s}': {e}"))?;
            Ok(Trid::Kernel { path, engine })
        }
        _ => Err(format!("bad -r '{s}': trtype must be PCIe or kernel")),
    }
}

fn parse_size(s: &str) -> Option<usize> {
    let (n, m) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1024),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    n.parse::<usize>().ok().map(|v| v * m)
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut depth = None;
    let mut io_size = None;
    let mut workload = None;
    let mut read_pct = None;
    let mut secs = None;
    let mut warmup = 0;
    let mut mask = "0x1".to_string();
    let mut trids = Vec::new();
    let mut latency = 0;
    let mut iova_mode = None;
    let mut mem_mb = None;
    let mut prefix = format!("nvme-perf-{}", std::process::id());
    let mut no_huge = false;
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].as_str();
        let mut val = || -> Result<String, String> {
            i += 1;
            argv.get(i)
                .cloned()
                .ok_or_else(|| format!("option {a} needs a value"))
        };
        match a {
            "-q" => {
                depth = Some(
                    val()?
                        .parse::<usize>()
                        .map_err(|_| "-q: not a number".to_string())?,
                )
            }
            "-o" => {
                io_size = Some(parse_size(&val()?).ok_or("-o: not a size (bytes, or with k/m)")?)
            }
            "-w" => workload = Some(val()?),
            "-M" => {
                read_pct = Some(
                    val()?
                        .parse::<u32>()
                        .map_err(|_| "-M: not a number".to_string())?,
                )
            }
            "-t" => {
                secs = Some(
                    val()?
                        .parse::<u64>()
                        .map_err(|_| "-t: not a number of seconds".to_string())?,
                )
            }
            "-a" => {
                warmup = val()?
                    .parse::<u64>()
                    .map_err(|_| "-a: not a number of seconds".to_string())?
            }
            "-c" => mask = val()?,
            "-r" => trids.push(parse_trid(&val()?)?),
            "-L" => latency = 1,
            "-LL" => latency = 2,
            "--iova-mode" => iova_mode = Some(val()?),
            "-s" => {
                mem_mb = Some(
                    val()?
                        .parse::<u64>()
                        .map_err(|_| "-s: not a number of MiB".to_string())?,
                )
            }
            "--file-prefix" => prefix = val()?,
            "--no-huge" => no_huge = true,
            "-h" | "--help" => return Err("help".into()),
            other => return Err(format!("unknown option '{other}'")),
        }
        i += 1;
    }
    let depth = depth.ok_or("missing -q (queue depth)")?;
    let io_size = io_size.ok_or("missing -o (I/O size)")?;
    let w = workload.ok_or("missing -w (workload)")?;
    let secs = secs.ok_or("missing -t (seconds)")?;
    if depth == 0 || depth > 4095 {
        return Err(format!("-q {depth}: must be 1..=4095"));
    }
    if io_size == 0 || io_size % 512 != 0 {
        return Err(format!("-o {io_size}: must be a positive multiple of 512"));
    }
    if secs == 0 {
        return Err("-t 0: must be at least 1 second".into());
    }
    let (pattern, pct) = match w.as_str() {
        "read" => (Pattern::Seq, 100),
        "write" => (Pattern::Seq, 0),
        "randread" => (Pattern::Rand, 100),
        "randwrite" => (Pattern::Rand, 0),
        "rw" | "randrw" => {
            let p = read_pct.ok_or(format!("-w {w} needs -M (read percentage)"))?;
            if p > 100 {
                return Err(format!("-M {p}: must be 0..=100"));
            }
            (
                if w == "rw" {
                    Pattern::Seq
                } else {
                    Pattern::Rand
                },
                p,
            )
        }
        other => {
            return Err(format!(
                "-w '{other}': must be read, write, randread, randwrite, rw or randrw"
            ))
        }
    };
    if trids.is_empty() {
        return Err("missing -r (transport id)".into());
    }
    if let Some(m) = &iova_mode {
        if m != "pa" && m != "va" {
            return Err(format!("--iova-mode '{m}': must be pa or va"));
        }
    }
    Ok(Args {
        depth,
        io_size,
        pattern,
        read_pct: pct,
        secs,
        warmup,
        mask,
        trids,
        latency,
        iova_mode,
        mem_mb,
        prefix,
        no_huge,
    })
}

/// Log-linear latency histogram in nanoseconds: 16 sub-buckets per power of two.
#[derive(Clone)]
struct Hist {
    b: Vec<u64>,
}

impl Hist {
    fn new() -> Hist {
        Hist {
            b: vec![0; 64 * 16],
        }
    }
    fn idx(v: u64) -> usize {
        if v < 16 {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros() as u64;
        ((msb - 3) * 16 + ((v >> (msb - 4)) & 15)) as usize
    }
    fn low(i: usize) -> u64 {
        if i < 16 {
            return i as u64;
        }
        let msb = (i / 16) as u64 + 3;
        (16 | (i as u64 % 16)) << (msb - 4)
    }
    fn add(&mut self, v: u64) {
        let i = Self::idx(v).min(self.b.len() - 1);
        self.b[i] += 1;
    }
    fn percentile(&self, p: f64) -> u64 {
        let total: u64 = self.b.iter().sum();
        let want = ((total as f64) * p / 100.0).ceil() as u64;
        let mut c = 0;
        for (i, n) in self.b.iter().enumerate() {
            c += n;
            if c >= want.max(1) {
                return Self::low(i + 1);
            }
        }
        0
    }
}

#[derive(Clone)]
struct Stats {
    name: String,
    core: u32,
    ios: u64,
    bytes: u64,
    lat_sum: u64,
    lat_min: u64,
    lat_max: u64,
    hist: Hist,
    elapsed_tsc: u64,
    cpu: Duration,
    cpu_user: Duration,
    error: Option<String>,
    gone: bool,
}

impl Stats {
    fn new(name: String, core: u32) -> Stats {
        Stats {
            name,
            core,
            ios: 0,
            bytes: 0,
            lat_sum: 0,
            lat_min: u64::MAX,
            lat_max: 0,
            hist: Hist::new(),
            elapsed_tsc: 0,
            cpu: Duration::ZERO,
            cpu_user: Duration::ZERO,
            error: None,
            gone: false,
        }
    }
    fn reset(&mut self) {
        let (n, c) = (std::mem::take(&mut self.name), self.core);
        *self = Stats::new(n, c);
    }
    fn record(&mut self, lat_tsc: u64, bytes: usize) {
        self.ios += 1;
        self.bytes += bytes as u64;
        self.lat_sum += lat_tsc;
        self.lat_min = self.lat_min.min(lat_tsc);
        self.lat_max = self.lat_max.max(lat_tsc);
        self.hist.add(eal::timer::cycles_to_ns(lat_tsc));
    }
}

/// One target a worker drives.
enum Target {
    Pcie {
        qp: Box<QPair>,
        ns: Namespace,
        addr: String,
    },
    Kernel(KernelDev),
}

impl Target {
    fn name(&self) -> String {
        match self {
            Target::Pcie { ns, addr, .. } => format!("PCIE ({addr}) NSID {}", ns.id),
            Target::Kernel(k) => format!("KERNEL ({} {:?})", k.path(), k.engine()),
        }
    }
    fn size(&self) -> u64 {
        match self {
            Target::Pcie { ns, .. } => ns.size_bytes(),
            Target::Kernel(k) => k.size(),
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct Worker {
    target: Target,
    stats: Stats,
    bufs: Vec<VirtAddr>,
    start: Vec<u64>,
    is_read: Vec<bool>,
    rng: Rng,
    next_off: u64,
    slots: u64,
}

fn submit_one(w: &mut Worker, slot: usize, a: &Args) -> Result<(), Error> {
    let off = match a.pattern {
        Pattern::Seq => {
            let o = w.next_off;
            w.next_off = (w.next_off + 1) % w.slots;
            o
        }
        Pattern::Rand => w.rng.next() % w.slots,
    } * a.io_size as u64;
    let read = a.read_pct == 100 || (a.read_pct > 0 && (w.rng.next() % 100) < a.read_pct as u64);
    w.is_read[slot] = read;
    w.start[slot] = rdtsc();
    let va = w.bufs[slot];
    match &mut w.target {
        Target::Pcie { qp, ns, .. } => {
            let lba = off / ns.block_size;
            let nlb = a.io_size as u64 / ns.block_size;
            // SAFETY: slot `slot`'s buffer is EAL memory owned by this worker for the whole
            // run and not touched until this request's tag comes back.
            unsafe {
                if read {
                    qp.read_raw(ns, lba, nlb, va, Done::Tag(slot as u64))
                } else {
                    qp.write_raw(ns, lba, nlb, va, Done::Tag(slot as u64))
                }
            }
        }
        // SAFETY: as above.
        Target::Kernel(k) => unsafe { k.submit(!read, off, va.as_ptr(), a.io_size, slot as u64) },
    }
}

/// Run one worker (one lcore) over its targets until the deadline.
fn run_worker(mut ws: Vec<Worker>, a: &Args) -> Vec<Stats> {
    let hz = tsc_hz();
    let t0 = rdtsc();
    let warm_end = t0 + a.warmup * hz;
    let end = warm_end + a.secs * hz;
    let mut measuring = a.warmup == 0;
    let mut cpu0 = nvme::sys::thread_cpu_time().unwrap_or_default();
    let mut m0 = t0;
    let mut done_slots: Vec<usize> = Vec::with_capacity(a.depth);
    for w in ws.iter_mut() {
        for s in 0..a.depth {
            if let Err(e) = submit_one(w, s, a) {
                w.stats.error = Some(e.to_string());
                break;
            }
        }
    }
    let mut active = ws.iter().filter(|w| w.stats.error.is_none()).count();
    while active > 0 {
        let now = rdtsc();
        if !measuring && now >= warm_end {
            measuring = true;
            m0 = now;
            cpu0 = nvme::sys::thread_cpu_time().unwrap_or_default();
            for w in ws.iter_mut() {
                w.stats.reset();
            }
        }
        let stop = now >= end;
        for w in ws.iter_mut() {
            if w.stats.error.is_some() {
                continue;
            }
            done_slots.clear();
            let mut err = None;
            let io = a.io_size;
            let stats = &mut w.stats;
            let start = &w.start;
            let mut on_done = |tag: u64, r: Result<usize, Error>| {
                let slot = tag as usize;
                match r {
                    Ok(_) => {
                        stats.record(rdtsc().wrapping_sub(start[slot]), io);
                        done_slots.push(slot);
                    }
                    Err(e) => {
                        if matches!(e, Error::DeviceGone { .. }) {
                            stats.gone = true;
                        }
                        err.get_or_insert(e.to_string());
                    }
                }
            };
            match &mut w.target {
                Target::Pcie { qp, .. } => {
                    qp.process_completions_with(a.depth, |t, r| on_done(t, r.map(|_| io)));
                }
                Target::Kernel(k) => {
                    if let Err(e) = k.flush().and_then(|_| k.reap(1, &mut on_done)) {
                        err.get_or_insert(e.to_string());
                    }
                }
            }
            if let Some(e) = err {
                w.stats.error = Some(e);
                active -= 1;
                continue;
            }
            if !stop {
                for &s in done_slots.iter() {
                    if let Err(e) = submit_one(w, s, a) {
                        if matches!(e, Error::DeviceGone { .. }) {
                            w.stats.gone = true;
                        }
                        w.stats.error = Some(e.to_string());
                        break;
                    }
                }
                if w.stats.error.is_some() {
                    active -= 1;
                }
            }
        }
        if stop {
            break;
        }
    }
    let m1 = rdtsc();
    let cpu1 = nvme::sys::thread_cpu_time().unwrap_or_default();
    // Drain what is still in flight so buffers are free before they are released.
    let drain_end = rdtsc() + 5 * hz;
    for w in ws.iter_mut() {
        loop {
            let outstanding = match &mut w.target {
                Target::Pcie { qp, .. } => {
                    qp.process_completions(a.depth);
                    qp.outstanding()
                }
                Target::Kernel(k) => {
                    let r = k.flush().and_then(|_| k.reap(1, |_, _| {}));
                    if r.is_err() {
                        break;
                    }
                    k.inflight()
                }
            };
            if outstanding == 0 || rdtsc() > drain_end || w.stats.gone {
                break;
            }
        }
    }
    let n = ws.len() as u32;
    ws.into_iter()
        .map(|w| {
            let mut s = w.stats;
            s.elapsed_tsc = m1 - m0;
            s.cpu = (cpu1.0 + cpu1.1).saturating_sub(cpu0.0 + cpu0.1) / n.max(1);
            s.cpu_user = cpu1.0.saturating_sub(cpu0.0) / n.max(1);
            s
        })
        .collect()
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("nvme-perf: {msg}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let a = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) if e == "help" => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("nvme-perf: {e} (see -h)");
            return ExitCode::from(2);
        }
    };
    let mut eal_argv = vec![
        "nvme-perf".to_string(),
        "-c".into(),
        a.mask.clone(),
        "--file-prefix".into(),
        a.prefix.clone(),
    ];
    if let Some(m) = &a.iova_mode {
        eal_argv.extend(["--iova-mode".into(), m.clone()]);
    }
    if let Some(m) = a.mem_mb {
        eal_argv.extend(["-m".into(), m.to_string()]);
    }
    if a.no_huge {
        eal_argv.push("--no-huge".into());
    }
    let eal = match Eal::init(&eal_argv) {
        Ok((e, _)) => e,
        Err(e) => {
            eprintln!("nvme-perf: {e}");
            return ExitCode::from(2);
        }
    };

    println!("Initializing NVMe Controllers");
    let mut ctrlrs: Vec<(String, Controller, Option<u32>)> = Vec::new();
    for t in &a.trids {
        if let Trid::Pcie { addr, ns } = t {
            let pa = match addr.parse() {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            match Controller::open(&eal, pa, ControllerOptions::default()) {
                Ok(c) => {
                    println!(
                        "Attached to NVMe Controller at {addr} [{:04x}:{:04x}] '{}' ({:?})",
                        c.device().info().vendor_id,
                        c.device().info().device_id,
                        c.data().model(),
                        c.device().backend()
                    );
                    ctrlrs.push((addr.clone(), c, *ns));
                }
                Err(e) => return fail(e),
            }
        }
    }
    let lcores = eal.lcores().lcore_ids();
    // Per lcore: the targets it will open (controller+ns, or kernel path).
    enum Plan {
        Pcie(String, Controller, Namespace),
        Kernel(String, Engine),
    }
    let mut plans: Vec<(u32, Vec<Plan>)> = lcores.iter().map(|&l| (l, Vec::new())).collect();
    for (_, per) in plans.iter_mut() {
        for (addr, c, want) in &ctrlrs {
            for ns in c.namespaces() {
                if want.is_none_or(|w| w == ns.id) {
                    if !(a.io_size as u64).is_multiple_of(ns.block_size) {
                        eprintln!(
                            "nvme-perf: -o {} is not a multiple of NSID {}'s {}-byte blocks",
                            a.io_size, ns.id, ns.block_size
                        );
                        return ExitCode::from(2);
                    }
                    per.push(Plan::Pcie(addr.clone(), c.clone(), ns.clone()));
                }
            }
        }
        for t in &a.trids {
            if let Trid::Kernel { path, engine } = t {
                per.push(Plan::Kernel(path.clone(), *engine));
            }
        }
    }
    if plans.iter().all(|(_, p)| p.is_empty()) {
        return fail("no namespaces to test");
    }
    for (l, per) in &plans {
        for p in per {
            match p {
                Plan::Pcie(addr, _, ns) => {
                    println!("Associating PCIE ({addr}) NSID {} with lcore {l}", ns.id)
                }
                Plan::Kernel(path, e) => {
                    println!("Associating KERNEL ({path} {e:?}) with lcore {l}")
                }
            }
        }
    }
    println!("Initialization complete. Launching workers.");

    let results: Arc<Mutex<Vec<Stats>>> = Arc::new(Mutex::new(Vec::new()));
    let main_l = eal.lcores().main_lcore();
    let mut main_job = None;
    for (l, per) in plans {
        let eal2 = eal.clone();
        let a2 = a.clone();
        let res = results.clone();
        let job = move || -> i32 {
            let mut ws = Vec::new();
            let mut bufs_keep: Vec<nvme::IoBuf> = Vec::new();
            for (k, p) in per.into_iter().enumerate() {
                let target = match p {
                    Plan::Pcie(addr, c, ns) => {
                        let cmds = (a2.io_size as u64).div_ceil(c.max_transfer()) as usize;
                        let size = (a2.depth * cmds + 1).min(4096) as u16;
                        match c.alloc_io_qpair(QPairOptions {
                            size,
                            ..Default::default()
                        }) {
                            Ok(qp) => Target::Pcie {
                                qp: Box::new(qp),
                                ns,
                                addr,
                            },
                            Err(e) => {
                                eprintln!("nvme-perf: lcore {l}: {e}");
                                return 1;
                            }
                        }
                    }
                    Plan::Kernel(path, engine) => match KernelDev::open(&path, engine, a2.depth) {
                        Ok(k) => Target::Kernel(k),
                        Err(e) => {
                            eprintln!("nvme-perf: lcore {l}: {e}");
                            return 1;
                        }
                    },
                };
                let mut bufs = Vec::new();
                for _ in 0..a2.depth {
                    match nvme::IoBuf::alloc(&eal2, a2.io_size) {
                        Ok(mut b) => {
                            for (i, x) in b.as_mut_slice().iter_mut().enumerate() {
                                *x = i as u8;
                            }
                            bufs.push(b.va());
                            bufs_keep.push(b);
                        }
                        Err(e) => {
                            eprintln!("nvme-perf: lcore {l}: {e}");
                            return 1;
                        }
                    }
                }
                let slots = (target.size() / a2.io_size as u64).max(1);
                let name = target.name();
                ws.push(Worker {
                    target,
                    stats: Stats::new(name, l),
                    bufs,
                    start: vec![0; a2.depth],
                    is_read: vec![true; a2.depth],
                    rng: Rng(0x9e37_79b9_7f4a_7c15 ^ ((l as u64 + 1) << 20) ^ k as u64),
                    next_off: 0,
                    slots,
                });
            }
            let stats = run_worker(ws, &a2);
            drop(bufs_keep);
            res.lock().unwrap_or_else(|p| p.into_inner()).extend(stats);
            0
        };
        if l == main_l {
            main_job = Some(job);
        } else if let Err(e) = eal.lcores().remote_launch(l, job) {
            return fail(e);
        }
    }
    let mut rc = 0;
    if let Some(j) = main_job {
        rc |= j();
    }
    for (l, r) in eal.lcores().mp_wait_lcore() {
        match r {
            Ok(0) => {}
            Ok(v) => rc |= v,
            Err(e) => {
                eprintln!("nvme-perf: lcore {l}: {e}");
                rc |= 1;
            }
        }
    }
    let mut all = results.lock().unwrap_or_else(|p| p.into_inner()).clone();
    all.sort_by(|x, y| x.name.cmp(&y.name).then(x.core.cmp(&y.core)));
    report(&all, &a);
    drop(ctrlrs);
    if all.iter().any(|s| s.gone) {
        return ExitCode::from(3);
    }
    if rc != 0 || all.iter().any(|s| s.error.is_some()) {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn us(tsc: u64) -> f64 {
    eal::timer::cycles_to_ns(tsc) as f64 / 1000.0
}

fn report(all: &[Stats], a: &Args) {
    let hz = tsc_hz() as f64;
    println!("========================================================");
    println!("{:>91}", "Latency(us)");
    println!(
        "{:<55}: {:>10} {:>10} {:>10} {:>10} {:>10}",
        "Device Information", "IOPS", "MiB/s", "Average", "min", "max"
    );
    let (mut t_iops, mut t_mib, mut t_ios, mut t_lat, mut t_min, mut t_max) =
        (0.0, 0.0, 0u64, 0u64, u64::MAX, 0u64);
    let mut cores = std::collections::BTreeSet::new();
    for s in all {
        let secs = (s.elapsed_tsc as f64 / hz).max(1e-9);
        let iops = s.ios as f64 / secs;
        let mib = s.bytes as f64 / secs / (1 << 20) as f64;
        let avg = s.lat_sum.checked_div(s.ios).map_or(0.0, us);
        let min = if s.ios > 0 { us(s.lat_min) } else { 0.0 };
        let label = format!("{} from core {:>2}", s.name, s.core);
        println!(
            "{label:<55}: {iops:>10.2} {mib:>10.2} {avg:>10.2} {min:>10.2} {:>10.2}",
            us(s.lat_max)
        );
        if let Some(e) = &s.error {
            println!("  error: {e}");
        }
        t_iops += iops;
        t_mib += mib;
        t_ios += s.ios;
        t_lat += s.lat_sum;
        if s.ios > 0 {
            t_min = t_min.min(s.lat_min);
        }
        t_max = t_max.max(s.lat_max);
        cores.insert(s.core);
    }
    println!("========================================================");
    let avg = t_lat.checked_div(t_ios).map_or(0.0, us);
    let min = if t_ios > 0 { us(t_min) } else { 0.0 };
    println!(
        "{:<55}: {t_iops:>10.2} {t_mib:>10.2} {avg:>10.2} {min:>10.2} {:>10.2}",
        "Total",
        us(t_max)
    );
    // Each worker's thread CPU time was split evenly over its targets; summing over the
    // distinct cores above gives the whole.
    let cpu_total: Duration = all.iter().map(|s| s.cpu).sum();
    let user_total: Duration = all.iter().map(|s| s.cpu_user).sum();
    if t_ios > 0 {
        let per = cpu_total.as_nanos() as f64 / t_ios as f64 / 1000.0;
        let per_u = user_total.as_nanos() as f64 / t_ios as f64 / 1000.0;
        println!(
            "CPU time per I/O: {per:.2} us (user {per_u:.2} us, system {:.2} us) over {} core(s), {t_ios} I/Os",
            per - per_u,
            cores.len()
        );
    }
    if a.latency >= 1 {
        for s in all {
            println!();
            println!("Summary latency data for {} from core {}:", s.name, s.core);
            println!(
                "================================================================================="
            );
            for p in [
                1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 98.0, 99.0, 99.5, 99.9, 99.99, 99.999,
            ] {
                println!(
                    "{:>10.5}% : {:>12.3}us",
                    p,
                    s.hist.percentile(p) as f64 / 1000.0
                );
            }
        }
    }
    if a.latency >= 2 {
        for s in all {
            println!();
            println!("Latency histogram for {} from core {}:", s.name, s.core);
            println!(
                "=============================================================================="
            );
            println!(
                "{:>12} - {:>12}: {:>11}  {:>12}",
                "Range in us", "", "Cumulative", "IO count"
            );
            let total: u64 = s.hist.b.iter().sum();
            let mut cum = 0;
            for (i, n) in s.hist.b.iter().enumerate() {
                if *n == 0 {
                    continue;
                }
                cum += n;
                println!(
                    "{:>12.3} - {:>12.3}: {:>10.4}%  ({:>10})",
                    Hist::low(i) as f64 / 1000.0,
                    Hist::low(i + 1) as f64 / 1000.0,
                    cum as f64 * 100.0 / total.max(1) as f64,
                    n
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        let v: Vec<String> = std::iter::once("nvme-perf")
            .chain(s.split(' '))
            .map(String::from)
            .collect();
        parse_args(&v)
    }

    #[test]
    fn parses_spdk_style_flags() {
        let a = args(
            "-q 32 -o 4096 -w randrw -M 70 -t 5 -a 1 -c 0x3 -LL -r trtype:PCIe_traddr:0000:00:02.0",
        )
        .err();
        assert!(a.is_some(), "underscore-joined trid must be refused");
        let v: Vec<String> = [
            "nvme-perf",
            "-q",
            "32",
            "-o",
            "4k",
            "-w",
            "randrw",
            "-M",
            "70",
            "-t",
            "5",
            "-c",
            "0x3",
            "-LL",
            "-r",
            "trtype:PCIe traddr:0000:00:02.0 ns:2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let a = parse_args(&v).unwrap();
        assert_eq!(
            (a.depth, a.io_size, a.read_pct, a.secs, a.latency),
            (32, 4096, 70, 5, 2)
        );
        assert!(matches!(&a.trids[0], Trid::Pcie { addr, ns: Some(2) } if addr == "0000:00:02.0"));
        let v: Vec<String> = [
            "nvme-perf",
            "-q",
            "1",
            "-o",
            "512",
            "-w",
            "read",
            "-t",
            "1",
            "-r",
            "trtype:kernel path:/dev/nvme0n1 engine:libaio",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert!(matches!(
            &parse_args(&v).unwrap().trids[0],
            Trid::Kernel {
                engine: Engine::Libaio,
                ..
            }
        ));
    }

    #[test]
    fn bad_args_name_the_problem() {
        for (s, word) in [
            ("-q 0 -o 4096 -w read -t 1 -r x", "-r"),
            ("-o 4096 -w read -t 1", "-q"),
            ("-q 1 -o 100 -w read -t 1", "-o"),
            ("-q 1 -o 4096 -w rw -t 1", "-M"),
            ("-q 1 -o 4096 -w bogus -t 1", "-w"),
            ("-q 1 -o 4096 -w read -t 1 --frob", "--frob"),
            ("-q 1 -o 4096 -w read", "-t"),
        ] {
            let e = args(s).unwrap_err();
            assert!(e.contains(word), "{s}: {e}");
        }
    }

    #[test]
    fn histogram_buckets_are_ordered() {
        let mut h = Hist::new();
        for v in [1u64, 15, 16, 17, 100, 1000, 10_000, 123_456, 10_000_000] {
            let i = Hist::idx(v);
            assert!(
                Hist::low(i) <= v && v < Hist::low(i + 1),
                "{v}: [{}, {})",
                Hist::low(i),
                Hist::low(i + 1)
            );
            h.add(v);
        }
        assert!(h.percentile(50.0) >= 100 && h.percentile(50.0) <= 1100);
        assert!(h.percentile(100.0) >= 10_000_000);
    }
}
