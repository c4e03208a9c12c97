//! Message passing between two cores, one side per run, for `ferroplane-compare framework`:
//!
//! ```text
//! msg_perf --side framework|crossbeam [--messages N] [--round-trips N] [--batches B]
//! ```
//!
//! * `framework`: two framework threads on reactors of lcores 0 and 1 (`-l 0-1
//!   --no-huge`); messages are boxed closures sent with `ThreadHandle::send_boxed`.
//! * `crossbeam`: two OS threads pinned to cpus 0 and 1, each polling a bounded
//!   crossbeam-channel of boxed closures with `try_recv` (polling, like a reactor).
//!
//! Both sides box the same closures, so what differs is the queue and the loop around it.
//! Cases, each the median over `B` batches:
//! * `one-way`: the thread on cpu 0 sends `N / B` closures to the one on cpu 1, which
//!   counts them; nanoseconds per message from the first send to the last count;
//! * `round-trip`: a closure goes to cpu 1, which sends one back, `N / B` times;
//!   nanoseconds per round trip.
//!
//! Output: one line per case, `msg_perf CASE NS`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use framework::{Framework, FrameworkOpts, ThreadHandle};
use testkit::signal::Signal;

type Job = Box<dyn FnOnce() + Send>;

static DONE: OnceLock<Signal> = OnceLock::new();
static COUNT: AtomicU64 = AtomicU64::new(0);

fn done() -> &'static Signal {
    DONE.get_or_init(Signal::default)
}

/// Runs on the receiving side only: a plain load/store counter.
fn count_to(target: u64) {
    let n = COUNT.load(Ordering::Relaxed) + 1;
    COUNT.store(n, Ordering::Relaxed);
    if n == target {
        done().set();
    }
}

/// The two ends of one side: send a job to cpu 0 (`to_a`) or cpu 1 (`to_b`), retrying
/// while the queue is full.
trait Ends: Sync + 'static {
    fn to_a(&'static self, j: Job);
    fn to_b(&'static self, j: Job);
}

struct Fw {
    a: ThreadHandle,
    b: ThreadHandle,
}

fn fw_send(t: &ThreadHandle, mut m: Job) {
    loop {
        match t.send_boxed(m) {
            Ok(()) => return,
            Err(e) => m = e.msg,
        }
    }
}

impl Ends for Fw {
    fn to_a(&'static self, j: Job) {
        fw_send(&self.a, j)
    }
    fn to_b(&'static self, j: Job) {
        fw_send(&self.b, j)
    }
}

struct Cb {
    a: Sender<Job>,
    b: Sender<Job>,
}

fn cb_send(s: &Sender<Job>, j: Job) {
    // A bounded channel's send waits (spinning, then parking) while it is full.
    if s.send(j).is_err() {
        panic!("crossbeam receiver gone");
    }
}

impl Ends for Cb {
    fn to_a(&'static self, j: Job) {
        cb_send(&self.a, j)
    }
    fn to_b(&'static self, j: Job) {
        cb_send(&self.b, j)
    }
}

fn one_way<E: Ends>(e: &'static E, n: u64) -> f64 {
    COUNT.store(0, Ordering::Relaxed);
    let t0 = Instant::now();
    e.to_a(Box::new(move || {
        for _ in 0..n {
            e.to_b(Box::new(move || count_to(n)));
        }
    }));
    done().wait();
    t0.elapsed().as_nanos() as f64 / n as f64
}

fn ping<E: Ends>(e: &'static E, left: u64) {
    if left == 0 {
        done().set();
        return;
    }
    e.to_b(Box::new(move || {
        e.to_a(Box::new(move || ping(e, left - 1)))
    }));
}

fn round_trip<E: Ends>(e: &'static E, n: u64) -> f64 {
    let t0 = Instant::now();
    e.to_a(Box::new(move || ping(e, n)));
    done().wait();
    t0.elapsed().as_nanos() as f64 / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn measure<E: Ends>(e: &'static E, o: &Opts) {
    // One unmeasured batch warms the allocator, the caches and the queues.
    one_way(e, o.messages / o.batches);
    let ow = median(
        (0..o.batches)
            .map(|_| one_way(e, o.messages / o.batches))
            .collect(),
    );
    let rt = median(
        (0..o.batches)
            .map(|_| round_trip(e, o.round_trips / o.batches))
            .collect(),
    );
    println!("msg_perf one-way {ow:.1}");
    println!("msg_perf round-trip {rt:.1}");
}

fn run_framework(o: Opts) -> Result<(), String> {
    let argv = testkit::eal_env::in_process_args("msgperf", "0-1");
    let (eal, _) = eal::Eal::init(&argv).map_err(|e| format!("EAL init: {e}"))?;
    let rc = Framework::run(&eal, FrameworkOpts::default(), move |fw| {
        let started = (|| -> Result<(), String> {
            let a = fw.spawn_thread("msg-a", &[0]).map_err(|e| e.to_string())?;
            let b = fw.spawn_thread("msg-b", &[1]).map_err(|e| e.to_string())?;
            let ends: &'static Fw = Box::leak(Box::new(Fw { a, b }));
            let fw2 = fw.clone();
            // The driver waits on a condition variable, off the reactors' cpus' hot
            // loop; it stops the framework when done.
            std::thread::spawn(move || {
                // Let both threads land on their reactors.
                std::thread::sleep(Duration::from_millis(50));
                measure(ends, &o);
                fw2.shutdown(0);
            });
            Ok(())
        })();
        if let Err(e) = started {
            eprintln!("msg_perf: {e}");
            fw.shutdown(1);
        }
    })
    .map_err(|e| format!("framework: {e}"))?;
    if rc != 0 {
        return Err(format!("framework stopped with {rc}"));
    }
    Ok(())
}

fn run_crossbeam(o: Opts) -> Result<(), String> {
    let (tx_a, rx_a) = bounded::<Job>(16 * 1024);
    let (tx_b, rx_b) = bounded::<Job>(16 * 1024);
    let ends: &'static Cb = Box::leak(Box::new(Cb { a: tx_a, b: tx_b }));
    let stop = Arc::new(AtomicBool::new(false));
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if cores.len() < 2 {
        return Err("needs two cpus".into());
    }
    let handles: Vec<_> = [(rx_a, cores[0]), (rx_b, cores[1])]
        .into_iter()
        .map(|(rx, core): (Receiver<Job>, _)| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                core_affinity::set_for_current(core);
                while !stop.load(Ordering::Relaxed) {
                    while let Ok(job) = rx.try_recv() {
                        job();
                    }
                }
            })
        })
        .collect();
    measure(ends, &o);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join()
            .map_err(|_| "a crossbeam thread panicked".to_string())?;
    }
    Ok(())
}

struct Opts {
    side: String,
    messages: u64,
    round_trips: u64,
    batches: u64,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        side: String::new(),
        messages: 2_000_000,
        round_trips: 200_000,
        batches: 5,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&v| v > 0)
                .ok_or_else(|| format!("{name} needs a positive number"))
        };
        match a.as_str() {
            "--side" => {
                o.side = it
                    .next()
                    .cloned()
                    .ok_or_else(|| "--side needs framework or crossbeam".to_string())?
            }
            "--messages" => o.messages = num("--messages")?,
            "--round-trips" => o.round_trips = num("--round-trips")?,
            "--batches" => o.batches = num("--batches")?,
            _ => return Err(format!("unknown argument '{a}'")),
        }
    }
    if o.messages < o.batches || o.round_trips < o.batches {
        return Err("--messages and --round-trips must be at least --batches".into());
    }
    Ok(o)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = parse(&args).and_then(|o| match o.side.as_str() {
        "framework" => run_framework(o),
        "crossbeam" => run_crossbeam(o),
        s => Err(format!("--side must be framework or crossbeam, not '{s}'")),
    });
    if let Err(e) = r {
        eprintln!("msg_perf: {e}");
        std::process::exit(1);
    }
}
