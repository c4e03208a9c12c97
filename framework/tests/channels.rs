//! I/O channel lifecycle and thread moves on real reactors.

mod common;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use framework::io_channel::{self, IoChannel};
use framework::{poller, thread, Framework, PollStatus};

/// Per-thread context: the thread it was created on, and a counter.
struct Ctx {
    thread: u64,
    hits: Cell<u64>,
}

#[test]
fn channel_lifecycle() {
    let Some(eal) = common::eal("channel_lifecycle", "0-1") else {
        return;
    };
    let creates = Arc::new(Mutex::new(Vec::<u64>::new()));
    let destroys = Arc::new(Mutex::new(Vec::<(u64, u64)>::new()));
    let events = Arc::new(Mutex::new(Vec::<String>::new()));
    let (c2, d2, e2) = (creates.clone(), destroys.clone(), events.clone());
    let rc = Framework::run(&eal, common::opts(), move |fw| {
        let dev = io_channel::register(
            "dev",
            move || {
                let t = thread::current().unwrap().id();
                c2.lock().unwrap().push(t);
                Ctx {
                    thread: t,
                    hits: Cell::new(0),
                }
            },
            move |ctx: Ctx| {
                // (thread the context belongs to, thread the destroy runs on)
                d2.lock()
                    .unwrap()
                    .push((ctx.thread, thread::current().unwrap().id()));
            },
        );
        let t1 = fw.spawn_thread("t1", &[1]).unwrap();
        let t2 = fw.spawn_thread("t2", &[0]).unwrap();
        let held: Arc<Mutex<Vec<IoChannel<Ctx>>>> = Arc::new(Mutex::new(Vec::new()));
        let (h1, dev1, e3) = (held.clone(), dev.clone(), e2.clone());
        let t2b = t2.clone();
        t1.send_msg(move || {
            let a = dev1.get_channel().unwrap();
            let b = dev1.get_channel().unwrap();
            a.ctx().hits.set(1);
            assert_eq!(
                b.ctx().hits.get(),
                1,
                "two gets on one thread share the channel"
            );
            drop(b);
            h1.lock().unwrap().push(a);
            e3.lock().unwrap().push("t1 has a channel".into());
            let (h2, dev2, e4, t1h) = (
                h1.clone(),
                dev1.clone(),
                e3.clone(),
                thread::current().unwrap(),
            );
            t2b.send_msg(move || {
                let c = dev2.get_channel().unwrap();
                h2.lock().unwrap().push(c);
                let seen = Arc::new(Mutex::new(Vec::new()));
                let s2 = seen.clone();
                let me = thread::current().unwrap();
                let (dev3, h3, e5) = (dev2.clone(), h2.clone(), e4.clone());
                dev2.for_each_channel(
                    move |ctx: &Ctx| {
                        s2.lock()
                            .unwrap()
                            .push((ctx.thread, thread::current().unwrap().id()))
                    },
                    move || {
                        assert!(
                            thread::current().unwrap().same(&me),
                            "completion off the caller"
                        );
                        let mut v = seen.lock().unwrap().clone();
                        v.sort();
                        e5.lock().unwrap().push(format!(
                            "visited {}",
                            v.iter().filter(|(a, b)| a == b).count()
                        ));
                        // Put both: t1's is dropped off its thread (forwarded), t2's here.
                        let all: Vec<_> = h3.lock().unwrap().drain(..).collect();
                        assert_eq!(all.len(), 2);
                        assert_eq!(dev3.channel_count(), 2);
                        let e6 = e5.clone();
                        dev3.unregister(move || {
                            assert!(thread::current().unwrap().same(&me));
                            e6.lock().unwrap().push("unregistered".into());
                            thread::current().unwrap();
                        })
                        .unwrap();
                        assert!(dev3.get_channel().is_err(), "new channel after unregister");
                        drop(all);
                        let _ = t1h;
                    },
                )
                .unwrap();
            })
            .unwrap();
        })
        .unwrap();
        // Stop once the unregister completion ran.
        let e7 = e2.clone();
        let fw2 = fw.clone();
        let slot = Arc::new(Mutex::new(None::<framework::Poller>));
        let s3 = slot.clone();
        let p = poller::register("waiter", 5000, move || {
            if e7.lock().unwrap().iter().any(|e| e == "unregistered") {
                s3.lock().unwrap().take().unwrap().unregister().unwrap();
                fw2.shutdown(0);
            }
            PollStatus::Idle
        })
        .unwrap();
        *slot.lock().unwrap() = Some(p);
    })
    .unwrap();
    assert_eq!(rc, 0);
    let ev = events.lock().unwrap();
    assert_eq!(*ev, ["t1 has a channel", "visited 2", "unregistered"]);
    let c = creates.lock().unwrap();
    assert_eq!(c.len(), 2, "one lazy create per thread: {c:?}");
    let d = destroys.lock().unwrap();
    assert_eq!(d.len(), 2);
    for (owner, ran_on) in d.iter() {
        assert_eq!(owner, ran_on, "destroy ran off the channel's thread");
    }
}

#[test]
fn moved_thread_keeps_pollers_and_channels() {
    let Some(eal) = common::eal("moved_thread_keeps_pollers_and_channels", "0-1") else {
        return;
    };
    let lcores_seen = Arc::new(Mutex::new(Vec::<(u32, u64)>::new()));
    let creates = Arc::new(AtomicUsize::new(0));
    let (l2, c2) = (lcores_seen.clone(), creates.clone());
    let rc = Framework::run(&eal, common::opts(), move |fw| {
        let dev = io_channel::register(
            "counter",
            move || {
                c2.fetch_add(1, Ordering::Relaxed);
                Cell::new(0u64)
            },
            |_c: Cell<u64>| {},
        );
        let t = fw.spawn_thread("mover", &[]).unwrap();
        fw.move_thread(&t, 1).unwrap_or(());
        let fw2 = fw.clone();
        let moved = Arc::new(AtomicU64::new(0));
        t.send_msg(move || {
            let ch = dev.get_channel().unwrap();
            let me = thread::current().unwrap();
            let slot = Arc::new(Mutex::new(None::<framework::Poller>));
            let s2 = slot.clone();
            let p = poller::register("probe", 1000, move || {
                let n = ch.ctx().get() + 1;
                ch.ctx().set(n);
                let lcore = eal::lcore::lcore_id().unwrap();
                let mut seen = l2.lock().unwrap();
                seen.push((lcore, n));
                let first = seen[0].0;
                if seen.len() == 10 {
                    let other = fw2.lcores().into_iter().find(|&l| l != first).unwrap();
                    fw2.move_thread(&me, other).unwrap();
                    moved.store(1, Ordering::Relaxed);
                }
                if seen.iter().filter(|s| s.0 != first).count() >= 10 {
                    s2.lock().unwrap().take().unwrap().unregister().unwrap();
                    thread::exit().unwrap();
                    fw2.shutdown(0);
                }
                PollStatus::Busy
            })
            .unwrap();
            *slot.lock().unwrap() = Some(p);
        })
        .unwrap();
    })
    .unwrap();
    assert_eq!(rc, 0);
    let seen = lcores_seen.lock().unwrap();
    assert!(seen.len() >= 20);
    let first = seen[0].0;
    let switch = seen.iter().position(|s| s.0 != first).expect("never moved");
    assert!(
        seen[switch..].iter().all(|s| s.0 != first),
        "ran on the old reactor after the move"
    );
    assert!(
        seen.iter().map(|s| s.1).eq(1..=seen.len() as u64),
        "channel context lost or reset: {seen:?}"
    );
    assert_eq!(
        creates.load(Ordering::Relaxed),
        1,
        "the channel was re-created by the move"
    );
}
