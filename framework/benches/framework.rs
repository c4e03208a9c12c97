//! Framework message passing beside crossbeam-channel, in one run:
//!
//! * `round_trip`: a closure sent from a thread on lcore 0 to one on lcore 1, which
//!   sends one back (time per round trip). Ours: two framework threads on two
//!   reactors. crossbeam: two OS threads pinned to the same two cpus, each polling its
//!   bounded channel of boxed closures with `try_recv` (polling, like a reactor).
//! * `one_way`: lcore 0 sends a stream of closures to lcore 1 (time per message).
//! * `poller`: cost of one reactor iteration running one active poller.
//!
//! Both sides box the same closures, so the comparison is of the queues and the loops
//! around them. `cargo bench -p ferroplane-framework --bench framework`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use crossbeam_channel::{bounded, Receiver, Sender};
use framework::{poller, Framework, FrameworkOpts, PollStatus, Poller, ThreadHandle};
use testkit::signal::Signal;

struct Ours {
    fw: Framework,
    a: ThreadHandle,
    b: ThreadHandle,
}

static OURS: OnceLock<Ours> = OnceLock::new();
static DONE: OnceLock<Signal> = OnceLock::new();
static COUNT: AtomicU64 = AtomicU64::new(0);

fn done() -> &'static Signal {
    DONE.get_or_init(Signal::default)
}

fn send(t: &ThreadHandle, f: impl FnOnce() + Send + 'static) {
    let mut m: framework::Msg = Box::new(f);
    loop {
        match t.send_boxed(m) {
            Ok(()) => return,
            Err(e) => m = e.msg,
        }
    }
}

/// On A: one round trip per level.
fn ping(left: u64) {
    if left == 0 {
        done().set();
        return;
    }
    let o = OURS.get().unwrap();
    send(&o.b, move || send(&o.a, move || ping(left - 1)));
}

fn count_to(target: u64) {
    // Only B runs these: a plain load/store counter.
    let n = COUNT.load(Ordering::Relaxed) + 1;
    COUNT.store(n, Ordering::Relaxed);
    if n == target {
        done().set();
    }
}

fn start_framework() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let argv = testkit::eal_env::in_process_args("fwbench", "0-1");
        let (eal, _) = eal::Eal::init(&argv).expect("EAL init (--no-huge)");
        let opts = FrameworkOpts::default();
        Framework::run(&eal, opts, move |fw| {
            let a = fw.spawn_thread("bench-a", &[0]).unwrap();
            let b = fw.spawn_thread("bench-b", &[1]).unwrap();
            tx.send(Ours { fw, a, b }).ok();
        })
        .unwrap();
    });
    let o = rx.recv().unwrap();
    let _ = OURS.set(o);
    // Let both threads land on their reactors.
    std::thread::sleep(Duration::from_millis(50));
}

type Job = Box<dyn FnOnce() + Send>;

struct Cb {
    to_x: Sender<Job>,
    to_y: Sender<Job>,
}

static CB: OnceLock<Cb> = OnceLock::new();

fn cb_ping(left: u64) {
    if left == 0 {
        done().set();
        return;
    }
    let c = CB.get().unwrap();
    c.to_y
        .send(Box::new(move || {
            c.to_x.send(Box::new(move || cb_ping(left - 1))).unwrap();
        }))
        .unwrap();
}

/// Two OS threads pinned to cpus 0 and 1, polling their channels until `stop`.
fn start_crossbeam(stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    let (tx_x, rx_x) = bounded::<Job>(16 * 1024);
    let (tx_y, rx_y) = bounded::<Job>(16 * 1024);
    let _ = CB.set(Cb {
        to_x: tx_x,
        to_y: tx_y,
    });
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    [(rx_x, 0usize), (rx_y, 1usize)]
        .into_iter()
        .map(|(rx, i): (Receiver<Job>, usize)| {
            let stop = stop.clone();
            let core = cores.get(i).copied();
            std::thread::spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(c);
                }
                while !stop.load(Ordering::Relaxed) {
                    while let Ok(job) = rx.try_recv() {
                        job();
                    }
                }
            })
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    start_framework();
    let o = OURS.get().unwrap();

    let mut g = c.benchmark_group("round_trip");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("framework", |bch| {
        bch.iter_custom(|iters| {
            let t0 = Instant::now();
            send(&o.a, move || ping(iters));
            done().wait();
            t0.elapsed()
        })
    });
    let stop = Arc::new(AtomicBool::new(false));
    let handles = start_crossbeam(stop.clone());
    g.bench_function("crossbeam", |bch| {
        bch.iter_custom(|iters| {
            let t0 = Instant::now();
            CB.get()
                .unwrap()
                .to_x
                .send(Box::new(move || cb_ping(iters)))
                .unwrap();
            done().wait();
            t0.elapsed()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("one_way");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("crossbeam", |bch| {
        bch.iter_custom(|iters| {
            COUNT.store(0, Ordering::Relaxed);
            let t0 = Instant::now();
            let cb = CB.get().unwrap();
            cb.to_x
                .send(Box::new(move || {
                    let c = CB.get().unwrap();
                    for _ in 0..iters {
                        c.to_y.send(Box::new(move || count_to(iters))).unwrap();
                    }
                }))
                .unwrap();
            done().wait();
            t0.elapsed()
        })
    });
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    g.bench_function("framework", |bch| {
        bch.iter_custom(|iters| {
            COUNT.store(0, Ordering::Relaxed);
            let t0 = Instant::now();
            send(&o.a, move || {
                let o = OURS.get().unwrap();
                for _ in 0..iters {
                    send(&o.b, move || count_to(iters));
                }
            });
            done().wait();
            t0.elapsed()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("poller");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("one_active_poller_iteration", |bch| {
        bch.iter_custom(|iters| {
            let t0 = Instant::now();
            send(&o.b, move || {
                let slot = Arc::new(Mutex::new(None::<Poller>));
                let s2 = slot.clone();
                let mut n = 0u64;
                let p = poller::register("bench", 0, move || {
                    n += 1;
                    if n == iters {
                        s2.lock().unwrap().take().unwrap().unregister().unwrap();
                        done().set();
                    }
                    PollStatus::Busy
                })
                .unwrap();
                *slot.lock().unwrap() = Some(p);
            });
            done().wait();
            t0.elapsed()
        })
    });
    g.finish();
    o.fw.shutdown(0);
}

criterion_group!(framework_benches, benches);
criterion_main!(framework_benches);
