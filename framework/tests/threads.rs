//! Threads, messages, pollers and scheduling on real reactors (EAL lcores, `--no-huge`).

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use framework::{poller, thread, Framework, PollStatus};

/// Retry a send until the ring has room.
fn send_retry(t: &framework::ThreadHandle, mut m: framework::Msg) {
    loop {
        match t.send_boxed(m) {
            Ok(()) => return,
            Err(e) => {
                assert!(!t.is_exited(), "receiver exited early");
                m = e.msg;
                std::thread::yield_now();
            }
        }
    }
}

#[test]
fn messages_in_order_exactly_once_many_senders() {
    let Some(eal) = common::eal("messages_in_order_exactly_once_many_senders", "0-1") else {
        return;
    };
    const OS_SENDERS: usize = 4;
    const FW_SENDERS: usize = 2;
    const SENDERS: usize = OS_SENDERS + FW_SENDERS;
    const PER: u64 = 20_000;
    let log: Arc<Vec<Mutex<Vec<u64>>>> =
        Arc::new((0..SENDERS).map(|_| Mutex::new(Vec::new())).collect());
    let joins = Arc::new(Mutex::new(Vec::new()));
    let (log2, joins2) = (log.clone(), joins.clone());
    let rc = Framework::run(&eal, common::opts(), move |fw| {
        let rx = fw.spawn_thread("rx", &[1]).unwrap();
        let fins = Arc::new(AtomicUsize::new(0));
        let fin_msg = move |fw: Framework, fins: Arc<AtomicUsize>| -> framework::Msg {
            Box::new(move || {
                if fins.fetch_add(1, Ordering::Relaxed) + 1 == SENDERS {
                    fw.shutdown(0);
                }
            })
        };
        for s in 0..OS_SENDERS {
            let (rx, log, fw, fins) = (rx.clone(), log2.clone(), fw.clone(), fins.clone());
            let h = std::thread::spawn(move || {
                for i in 0..PER {
                    let log = log.clone();
                    send_retry(&rx, Box::new(move || log[s].lock().unwrap().push(i)));
                }
                send_retry(&rx, fin_msg(fw, fins));
            });
            joins2.lock().unwrap().push(h);
        }
        for s in OS_SENDERS..SENDERS {
            let (rx, log, fw, fins) = (rx.clone(), log2.clone(), fw.clone(), fins.clone());
            let tx = fw.spawn_thread(&format!("tx{s}"), &[]).unwrap();
            tx.send_msg(move || {
                let mut next = 0u64;
                let mut pending: Option<framework::Msg> = None;
                let me = Arc::new(Mutex::new(None::<framework::Poller>));
                let me2 = me.clone();
                let p = poller::register("sender", 0, move || {
                    for _ in 0..256 {
                        let m = pending.take().unwrap_or_else(|| {
                            let (log, i) = (log.clone(), next);
                            next += 1;
                            if i == PER {
                                fin_msg(fw.clone(), fins.clone())
                            } else {
                                Box::new(move || log[s].lock().unwrap().push(i))
                            }
                        });
                        if let Err(e) = rx.send_boxed(m) {
                            pending = Some(e.msg);
                            return PollStatus::Busy;
                        }
                        if next > PER {
                            me2.lock().unwrap().take().unwrap().unregister().unwrap();
                            thread::exit().unwrap();
                            return PollStatus::Busy;
                        }
                    }
                    PollStatus::Busy
                })
                .unwrap();
                *me.lock().unwrap() = Some(p);
            })
            .unwrap();
        }
    })
    .unwrap();
    assert_eq!(rc, 0);
    for h in joins.lock().unwrap().drain(..) {
        h.join().unwrap();
    }
    for (s, l) in log.iter().enumerate() {
        let l = l.lock().unwrap();
        assert_eq!(l.len() as u64, PER, "sender {s}: wrong count");
        assert!(
            l.iter().copied().eq(0..PER),
            "sender {s}: messages out of order or duplicated"
        );
    }
}

#[test]
fn timed_poller_never_early_and_pause_resume() {
    let Some(eal) = common::eal("timed_poller_never_early_and_pause_resume", "0-1") else {
        return;
    };
    const PERIOD_US: u64 = 3000;
    const RUNS: usize = 25;
    let stamps = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let pause_ok = Arc::new(Mutex::new(Vec::<String>::new()));
    let (stamps2, pause2) = (stamps.clone(), pause_ok.clone());
    let rc = Framework::run(&eal, common::opts(), move |fw| {
        let t = fw.spawn_thread("timed", &[1]).unwrap();
        t.send_msg(move || {
            // The timed poller under test.
            let slot = Arc::new(Mutex::new(None::<framework::Poller>));
            let slot2 = slot.clone();
            let done = Arc::new(AtomicUsize::new(0));
            let done2 = done.clone();
            let fw2 = fw.clone();
            let p = poller::register("period", PERIOD_US, move || {
                let mut s = stamps2.lock().unwrap();
                s.push(Instant::now());
                if s.len() == RUNS {
                    slot2.lock().unwrap().take().unwrap().unregister().unwrap();
                    if done2.fetch_add(1, Ordering::Relaxed) + 1 == 2 {
                        fw2.shutdown(0);
                    }
                }
                PollStatus::Busy
            })
            .unwrap();
            *slot.lock().unwrap() = Some(p);

            // Pause/resume: an active poller counts; a timed driver pauses, checks,
            // resumes, checks.
            let count = Arc::new(AtomicU64::new(0));
            let c2 = count.clone();
            let active = poller::register("counter", 0, move || {
                c2.fetch_add(1, Ordering::Relaxed);
                PollStatus::Busy
            })
            .unwrap();
            let mut step = 0;
            let mut at_pause = 0;
            let drv_slot = Arc::new(Mutex::new(None::<framework::Poller>));
            let drv2 = drv_slot.clone();
            let driver = poller::register("driver", 5000, move || {
                let c = count.load(Ordering::Relaxed);
                let mut log = pause2.lock().unwrap();
                match step {
                    0 => {
                        active.pause().unwrap();
                        at_pause = count.load(Ordering::Relaxed);
                    }
                    1 | 2 => {
                        if c != at_pause {
                            log.push(format!("paused poller ran: {at_pause} -> {c}"));
                        }
                        if step == 2 {
                            active.resume().unwrap();
                        }
                    }
                    _ => {
                        if c <= at_pause {
                            log.push(format!("resumed poller did not run ({c})"));
                        }
                        log.push("done".into());
                        active.unregister().unwrap();
                        drv2.lock().unwrap().take().unwrap().unregister().unwrap();
                        if done.fetch_add(1, Ordering::Relaxed) + 1 == 2 {
                            fw.shutdown(0);
                        }
                    }
                }
                step += 1;
                PollStatus::Busy
            })
            .unwrap();
            *drv_slot.lock().unwrap() = Some(driver);
            // Handles act only on their own thread.
            let other = framework::thread::spawn("other", &[]).unwrap();
            other
                .send_msg(move || {
                    assert!(matches!(
                        driver.pause(),
                        Err(framework::Error::WrongThread { .. })
                    ));
                    framework::thread::exit().unwrap();
                })
                .unwrap();
        })
        .unwrap();
    })
    .unwrap();
    assert_eq!(rc, 0);
    let s = stamps.lock().unwrap();
    assert_eq!(s.len(), RUNS);
    // The framework converts the period to TSC ticks; the TSC rate is calibrated, so
    // allow 2% against the monotonic clock. Lateness is never asserted (loaded machine).
    let min = Duration::from_micros(PERIOD_US * 98 / 100);
    for w in s.windows(2) {
        let gap = w[1] - w[0];
        assert!(gap >= min, "timed poller ran early: {gap:?} < {min:?}");
    }
    let log = pause_ok.lock().unwrap();
    assert_eq!(*log, vec!["done".to_string()], "pause/resume: {log:?}");
}

#[test]
fn for_each_thread_completes_on_caller() {
    let Some(eal) = common::eal("for_each_thread_completes_on_caller", "0-1") else {
        return;
    };
    let visited = Arc::new(Mutex::new(Vec::<u64>::new()));
    let expected = Arc::new(Mutex::new(HashSet::<u64>::new()));
    let ok = Arc::new(AtomicBool::new(false));
    let (v2, e2, ok2) = (visited.clone(), expected.clone(), ok.clone());
    let rc = Framework::run(&eal, common::opts(), move |fw| {
        let ts: Vec<_> = (0..3)
            .map(|i| fw.spawn_thread(&format!("w{i}"), &[]).unwrap())
            .collect();
        let origin = ts[0].clone();
        let fw2 = fw.clone();
        origin
            .clone()
            .send_msg(move || {
                *e2.lock().unwrap() = fw2.threads().iter().map(|t| t.id()).collect();
                let v3 = v2.clone();
                thread::for_each_thread(
                    move || v3.lock().unwrap().push(thread::current().unwrap().id()),
                    move || {
                        ok2.store(thread::current().unwrap().same(&origin), Ordering::Relaxed);
                        fw2.shutdown(0);
                    },
                )
                .unwrap();
            })
            .unwrap();
    })
    .unwrap();
    assert_eq!(rc, 0);
    assert!(
        ok.load(Ordering::Relaxed),
        "completion not on the calling thread"
    );
    let v = visited.lock().unwrap();
    let set: HashSet<u64> = v.iter().copied().collect();
    assert_eq!(set.len(), v.len(), "a thread visited twice");
    assert_eq!(set, *expected.lock().unwrap());
    assert_eq!(set.len(), 4, "app thread + 3");
}

#[test]
fn dynamic_scheduler_packs_idle_threads_on_main() {
    let Some(eal) = common::eal("dynamic_scheduler_packs_idle_threads_on_main", "0-1") else {
        return;
    };
    let packed = Arc::new(AtomicBool::new(false));
    let p2 = packed.clone();
    let rc = Framework::run(&eal, common::opts(), move |fw| {
        let main = fw.main_lcore();
        let other = *fw.lcores().iter().find(|&&l| l != main).unwrap();
        for i in 0..3 {
            fw.spawn_thread(&format!("idle{i}"), &[other]).unwrap();
        }
        // Free to move: placed on `other` first, then packed.
        let free = fw.spawn_thread("free", &[]).unwrap();
        fw.move_thread(&free, other).unwrap();
        fw.set_scheduler("dynamic", Some(20_000)).unwrap();
        assert_eq!(fw.scheduler(), ("dynamic".to_string(), 20_000));
        assert!(fw.set_scheduler("nope", None).is_err());
        let start = Instant::now();
        let fw2 = fw.clone();
        let slot = Arc::new(Mutex::new(None::<framework::Poller>));
        let s2 = slot.clone();
        let p = poller::register("check", 10_000, move || {
            let f = fw2
                .threads()
                .into_iter()
                .find(|t| t.name() == "free")
                .unwrap();
            let pinned_stay = fw2
                .threads()
                .iter()
                .filter(|t| t.name().starts_with("idle"))
                .all(|t| t.lcore() == Some(other));
            if f.lcore() == Some(main) && pinned_stay {
                p2.store(true, Ordering::Relaxed);
            }
            if p2.load(Ordering::Relaxed) || start.elapsed() > Duration::from_secs(10) {
                s2.lock().unwrap().take().unwrap().unregister().unwrap();
                fw2.shutdown(0);
            }
            PollStatus::Idle
        })
        .unwrap();
        *slot.lock().unwrap() = Some(p);
    })
    .unwrap();
    assert_eq!(rc, 0);
    assert!(
        packed.load(Ordering::Relaxed),
        "idle free thread not packed onto the main lcore within 10 s (or a pinned thread moved)"
    );
}

#[test]
fn idle_reactors_sleep_and_wake_on_message() {
    let Some(eal) = common::eal("idle_reactors_sleep_and_wake_on_message", "0-1") else {
        return;
    };
    let out = Arc::new(Mutex::new(None));
    let o2 = out.clone();
    let rc = Framework::run(&eal, common::opts(), move |fw| {
        let t = fw.spawn_thread("sleeper", &[1]).unwrap();
        let fw2 = fw.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let before = fw2.reactor_stats();
            let woke = Arc::new(AtomicBool::new(false));
            let w2 = woke.clone();
            let sent = Instant::now();
            t.send_msg(move || w2.store(true, Ordering::Release))
                .unwrap();
            while !woke.load(Ordering::Acquire) && sent.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(1));
            }
            *o2.lock().unwrap() = Some((before, woke.load(Ordering::Acquire)));
            fw2.shutdown(0);
        });
    })
    .unwrap();
    assert_eq!(rc, 0);
    let (before, woke) = out.lock().unwrap().take().unwrap();
    assert!(
        woke,
        "a message to a sleeping reactor's thread was not run within 10 s"
    );
    for r in &before {
        assert!(
            r.sleeps > 0,
            "reactor {} never slept while idle: {r:?}",
            r.lcore
        );
    }
}

#[test]
fn full_ring_flood_from_inside_a_message() {
    // A 64-slot ring: the sender keeps finding it full and retrying.
    let Some(eal) = common::eal("full_ring_flood_from_inside_a_message", "0-1") else {
        return;
    };
    const N: u64 = 200_000;
    let got = Arc::new(AtomicU64::new(0));
    let g2 = got.clone();
    let opts = framework::FrameworkOpts {
        msg_ring_size: 64,
        ..common::opts()
    };
    let rc = Framework::run(&eal, opts, move |fw| {
        let a = fw.spawn_thread("a", &[0]).unwrap();
        let b = fw.spawn_thread("b", &[1]).unwrap();
        let fw2 = fw.clone();
        a.send_msg(move || {
            for i in 0..N {
                let (g, fw3) = (g2.clone(), fw2.clone());
                send_retry(
                    &b,
                    Box::new(move || {
                        // Per-sender order holds through a full ring too.
                        let n = g.fetch_add(1, Ordering::Relaxed);
                        assert_eq!(n, i, "message {i} ran as number {n}");
                        if n + 1 == N {
                            fw3.shutdown(0);
                        }
                    }),
                );
            }
        })
        .unwrap();
    })
    .unwrap();
    assert_eq!(rc, 0);
    assert_eq!(got.load(Ordering::Relaxed), N);
}

/// Bursts from one reactor's thread to another's, the receiver idling (and so going to
/// sleep) between them: a lost wake-up shows as a round that never completes.
#[test]
fn bursts_between_sleeps_always_wake_the_receiver() {
    let Some(eal) = common::eal("bursts_between_sleeps_always_wake_the_receiver", "0-1") else {
        return;
    };
    const ROUNDS: u64 = 300;
    let result = Arc::new(Mutex::new(None::<std::result::Result<(), String>>));
    let r2 = result.clone();
    let rc = Framework::run(&eal, common::opts(), move |fw| {
        let a = fw.spawn_thread("a", &[0]).unwrap();
        let b = fw.spawn_thread("b", &[1]).unwrap();
        let fw2 = fw.clone();
        std::thread::spawn(move || {
            let got = Arc::new(AtomicU64::new(0));
            let mut outcome = Ok(());
            for round in 0..ROUNDS {
                let burst = 1 + (round * 7919) % 3000;
                let target = got.load(Ordering::Relaxed) + burst;
                let (b2, g2) = (b.clone(), got.clone());
                a.send_msg(move || {
                    for _ in 0..burst {
                        let g = g2.clone();
                        send_retry(
                            &b2,
                            Box::new(move || {
                                g.fetch_add(1, Ordering::Relaxed);
                            }),
                        );
                    }
                })
                .unwrap();
                let t0 = Instant::now();
                while got.load(Ordering::Relaxed) < target {
                    if t0.elapsed() > Duration::from_secs(20) {
                        outcome = Err(format!(
                            "round {round}: {} of {target} ran after 20 s (lost wake-up)",
                            got.load(Ordering::Relaxed)
                        ));
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                if outcome.is_err() {
                    break;
                }
                // Let both reactors go to sleep now and then.
                if round % 3 == 0 {
                    std::thread::sleep(Duration::from_micros(300 + (round % 5) * 200));
                }
            }
            *r2.lock().unwrap() = Some(outcome);
            fw2.shutdown(0);
        });
    })
    .unwrap();
    assert_eq!(rc, 0);
    result.lock().unwrap().take().unwrap().unwrap();
}
