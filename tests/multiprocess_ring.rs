//! A ring shared by two real processes: the primary (this test process) creates an
//! MP/MC ring, a secondary (this test binary re-executed, `child_ring`) enqueues tagged
//! elements from two producer threads (`mp_enqueue_burst`), the primary dequeues them
//! with two consumer threads (`mc_dequeue_burst`). Every element is checked exactly once
//! and, per consumer, in each producer's order. Under `--no-huge`.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eal::Eal;
use ring::{Ring, RingFlags};

const PER_PRODUCER: u64 = 500_000;
const PRODUCERS: u64 = 2;
const BURST: usize = 32;
const GUARD: Duration = Duration::from_secs(600);

fn tag(p: u64, seq: u64) -> u64 {
    (p << 48) | seq
}

/// The secondary (run only by `ring_across_two_processes`).
#[test]
#[ignore = "child process of ring_across_two_processes"]
fn child_ring() {
    let Some(p) =
        testkit::eal_env::child_prefix("FP_RING_PREFIX", "child_ring", "ring_across_two_processes")
    else {
        return;
    };
    let argv = testkit::eal_env::secondary_args(&p, "1@0");
    let (e, _) = Eal::init(&argv).unwrap();
    // SAFETY: created by the primary for u64, multi-producer and multi-consumer.
    let r = unsafe { Ring::<u64>::lookup(&e, "xproc") }.unwrap();
    let threads: Vec<_> = (0..PRODUCERS)
        .map(|pid| {
            let r = r.clone();
            std::thread::spawn(move || {
                let mut seq = 0u64;
                let mut buf = [0u64; BURST];
                let until = Instant::now() + GUARD;
                while seq < PER_PRODUCER {
                    let n = (PER_PRODUCER - seq).min(BURST as u64) as usize;
                    for (i, b) in buf[..n].iter_mut().enumerate() {
                        *b = tag(pid, seq + i as u64);
                    }
                    let done = r.mp_enqueue_burst(&buf[..n]).n as u64;
                    seq += done;
                    if done == 0 {
                        assert!(Instant::now() < until, "primary stopped consuming");
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    println!("PRODUCED {}", PRODUCERS * PER_PRODUCER);
    std::process::exit(0);
}

#[test]
fn ring_across_two_processes() {
    let p = format!("t-ring-xproc-{}", std::process::id());
    let mut argv = testkit::eal_env::no_huge_args("t-ring-xproc", 16, "0");
    argv.push("--no-pci".into());
    let (e, _) = Eal::init(&argv).unwrap();
    // SAFETY: multi on both sides; both processes use T = u64.
    let r = unsafe { Ring::<u64>::create(&e, "xproc", 1024, None, RingFlags::empty()) }.unwrap();
    let mut child = testkit::child::rerun_test("child_ring")
        .env("FP_RING_PREFIX", &p)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let total = PRODUCERS * PER_PRODUCER;
    let seen: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(vec![0u8; total as usize]));
    let got = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (r, seen, got, stop) = (r.clone(), seen.clone(), got.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last = [None::<u64>; PRODUCERS as usize];
                let mut buf = [0u64; BURST];
                let mut mine = Vec::new();
                let mut errors = Vec::new();
                while !stop.load(Ordering::Relaxed) && got.load(Ordering::Relaxed) < total {
                    let n = r.mc_dequeue_burst(&mut buf).n as usize;
                    if n == 0 {
                        std::thread::yield_now();
                        continue;
                    }
                    for &v in &buf[..n] {
                        let (pid, seq) = (v >> 48, v & ((1 << 48) - 1));
                        if pid >= PRODUCERS || seq >= PER_PRODUCER {
                            errors.push(format!("foreign element {v:#x}"));
                            continue;
                        }
                        if last[pid as usize].is_some_and(|l| seq <= l) {
                            errors.push(format!(
                                "producer {pid}: seq {seq} after {:?}",
                                last[pid as usize]
                            ));
                        }
                        last[pid as usize] = Some(seq);
                        mine.push(pid * PER_PRODUCER + seq);
                    }
                    got.fetch_add(n as u64, Ordering::Relaxed);
                }
                let mut s = seen.lock().unwrap();
                for i in mine {
                    s[i as usize] = s[i as usize].saturating_add(1);
                }
                errors
            })
        })
        .collect();
    // Hang guard.
    let until = Instant::now() + GUARD;
    while got.load(Ordering::Relaxed) < total && Instant::now() < until {
        if let Ok(Some(st)) = child.try_wait() {
            if !st.success() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let errors: Vec<String> = consumers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "child: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("PRODUCED {total}")));
    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(10)]);
    assert_eq!(got.load(Ordering::Relaxed), total);
    let seen = seen.lock().unwrap();
    let bad: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, &c)| c != 1)
        .map(|(i, _)| i)
        .take(10)
        .collect();
    assert!(bad.is_empty(), "elements not seen exactly once: {bad:?}");
    assert!(r.empty());
    // SAFETY: the child has exited, the consumers are joined.
    unsafe { r.free() }.unwrap();
}
