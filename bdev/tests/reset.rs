//! Reset on real reactors with two channels (two threads): new I/O is held on every
//! channel while a reset runs, the module sees the reset only after the I/O it held
//! completed, and the held I/O reaches it after the reset.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bdev::{
    BdevInfo, BdevIo, BdevIoChannel, BdevModule, Descriptor, IoStatus, IoType, ModuleChannel, Uuid,
};
use common::{step, Latch, Next, Step};
use framework::{poller, thread, PollStatus, Poller, ThreadHandle};

const BS: usize = 512;

type Log = Arc<Mutex<Vec<String>>>;

/// Logs what reaches it; holds writes until `open` is set, completes resets at once.
struct GateDisk {
    log: Log,
    open: Arc<AtomicBool>,
}

struct GateChannel {
    log: Log,
    held: Arc<Mutex<Vec<BdevIo>>>,
    poller: Option<Poller>,
}

impl Drop for GateChannel {
    fn drop(&mut self) {
        if let Some(p) = self.poller.take() {
            p.unregister().unwrap();
        }
    }
}

impl ModuleChannel for GateChannel {
    fn submit(&self, io: BdevIo) {
        let tag = match io.io_type() {
            IoType::Reset => "reset".to_string(),
            _ => format!("w{}", io.offset_blocks()),
        };
        self.log.lock().unwrap().push(tag);
        self.held.lock().unwrap().push(io);
    }
}

impl BdevModule for GateDisk {
    fn module_name(&self) -> &str {
        "gate"
    }
    fn io_type_supported(&self, t: IoType) -> bool {
        matches!(t, IoType::Write | IoType::Reset)
    }
    fn create_channel(&self) -> Result<Box<dyn ModuleChannel>, String> {
        let held: Arc<Mutex<Vec<BdevIo>>> = Arc::default();
        let (h2, o2) = (held.clone(), self.open.clone());
        let p = poller::register("gate", 0, move || {
            let go: Vec<BdevIo> = {
                let mut h = h2.lock().unwrap();
                let open = o2.load(Ordering::Acquire);
                let (now, keep): (Vec<_>, Vec<_>) = h
                    .drain(..)
                    .partition(|io| open || io.io_type() == IoType::Reset);
                *h = keep;
                now
            };
            if go.is_empty() {
                return PollStatus::Idle;
            }
            for io in go {
                io.complete(IoStatus::Success);
            }
            PollStatus::Busy
        })
        .map_err(|e| e.to_string())?;
        Ok(Box::new(GateChannel {
            log: self.log.clone(),
            held,
            poller: Some(p),
        }))
    }
}

struct Open {
    d: Descriptor,
    c: BdevIoChannel,
}

type Slot = Arc<Mutex<Option<Open>>>;

fn write(o: &Slot, blk: u64, done: Arc<Latch>, log: Log) {
    let g = o.lock().unwrap();
    let x = g.as_ref().unwrap();
    x.d.write_buf(&x.c, vec![1; BS], blk, 1, move |st, _| {
        assert_eq!(st, IoStatus::Success, "write {blk}");
        log.lock().unwrap().push(format!("done{blk}"));
        done.hit()
    })
    .unwrap();
}

/// Run `f` on this thread once `o`'s channel is frozen (within 30 s).
fn when_frozen(o: Slot, f: Box<dyn FnOnce(Slot) + Send>, until: Instant) {
    let frozen = o.lock().unwrap().as_ref().unwrap().c.frozen();
    if frozen {
        return f(o);
    }
    assert!(Instant::now() < until, "the reset never froze this channel");
    thread::current()
        .unwrap()
        .send_msg(move || when_frozen(o, f, until))
        .unwrap();
}

#[test]
fn reset_freezes_channels_and_waits_for_in_flight_io() {
    let Some(eal) = common::eal("reset_freezes_channels_and_waits_for_in_flight_io", "0-1") else {
        return;
    };
    let log: Log = Arc::default();
    let gate = Arc::new(AtomicBool::new(false));
    let app: Slot = Arc::default();
    let other: Slot = Arc::default();
    let t2: Arc<Mutex<Option<ThreadHandle>>> = Arc::default();
    // Every write (6 before, 2 during the reset) and the reset itself.
    let all_done: Arc<Mutex<Option<Arc<Latch>>>> = Arc::default();
    let (l1, g1, a1, o1, t21, ad1) = (
        log.clone(),
        gate.clone(),
        app.clone(),
        other.clone(),
        t2.clone(),
        all_done.clone(),
    );
    let (l2, a2, o2, t22, ad2) = (
        log.clone(),
        app.clone(),
        other.clone(),
        t2.clone(),
        all_done.clone(),
    );
    let (l3, g3) = (log.clone(), gate.clone());
    let (a4, o4, t24) = (app.clone(), other.clone(), t2.clone());
    let steps: Vec<Step> = vec![
        // Four writes held at the module from the app thread, two from another.
        step(move |next| {
            bdev::bdev::register(
                BdevInfo {
                    name: "rst0".into(),
                    aliases: Vec::new(),
                    uuid: Uuid::random(),
                    product_name: "gate".into(),
                    block_size: BS as u32,
                    num_blocks: 64,
                    optimal_io_boundary: 0,
                    write_cache: false,
                    max_transfer_blocks: 0,
                },
                Arc::new(GateDisk {
                    log: l1.clone(),
                    open: g1,
                }),
            )
            .unwrap();
            let latch = Latch::new(9, || {});
            *ad1.lock().unwrap() = Some(latch.clone());
            let d = bdev::open("rst0", true, |_| {}).unwrap();
            let c = d.get_io_channel().unwrap();
            *a1.lock().unwrap() = Some(Open { d, c });
            for b in 0..4 {
                write(&a1, b, latch.clone(), l1.clone());
            }
            let t = next.fw().spawn_thread("rst_t2", &[1]).unwrap();
            *t21.lock().unwrap() = Some(t.clone());
            let app_t = thread::current().unwrap();
            t.send_msg(move || {
                let d = bdev::open("rst0", true, |_| {}).unwrap();
                let c = d.get_io_channel().unwrap();
                *o1.lock().unwrap() = Some(Open { d, c });
                for b in 10..12 {
                    write(&o1, b, latch.clone(), l1.clone());
                }
                app_t.send_msg(move || next.go()).unwrap();
            })
            .unwrap();
        }),
        // Reset; once each channel is frozen, a new write on it.
        step(move |next| {
            let latch = ad2.lock().unwrap().clone().unwrap();
            {
                let g = a2.lock().unwrap();
                let x = g.as_ref().unwrap();
                let (la, l) = (latch.clone(), l2.clone());
                x.d.reset(&x.c, move |st| {
                    assert_eq!(st, IoStatus::Success);
                    l.lock().unwrap().push("reset_done".into());
                    la.hit()
                })
                .unwrap();
            }
            let both = Latch::new(2, move || next.go());
            let until = Instant::now() + Duration::from_secs(30);
            let (la, l, b2) = (latch.clone(), l2.clone(), both.clone());
            when_frozen(
                a2.clone(),
                Box::new(move |o| {
                    write(&o, 4, la, l);
                    b2.hit()
                }),
                until,
            );
            let t = t22.lock().unwrap().clone().unwrap();
            let app_t = thread::current().unwrap();
            let (la, l) = (latch.clone(), l2.clone());
            t.send_msg(move || {
                when_frozen(
                    o2,
                    Box::new(move |o| {
                        write(&o, 12, la, l);
                        app_t.send_msg(move || both.hit()).unwrap();
                    }),
                    until,
                )
            })
            .unwrap();
        }),
        // Still held: the module has seen neither the reset nor the new writes.
        step(move |next| {
            let seen = l3.lock().unwrap().clone();
            let mut s = seen.clone();
            s.sort();
            assert_eq!(s, ["w0", "w1", "w10", "w11", "w2", "w3"], "{seen:?}");
            // Let the held writes go; the reset follows, then the new writes.
            g3.store(true, Ordering::Release);
            let me = thread::current().unwrap();
            fn wait(me: ThreadHandle, next: Next, log: Log) {
                if log
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|x| x.starts_with("done") || *x == "reset_done")
                    .count()
                    < 9
                {
                    let m2 = me.clone();
                    me.send_msg(move || wait(m2, next, log)).unwrap();
                    return;
                }
                next.go()
            }
            wait(me, next, l3.clone());
        }),
        step(move |next| {
            drop(a4.lock().unwrap().take());
            let t = t24.lock().unwrap().take().unwrap();
            let app_t = thread::current().unwrap();
            t.send_msg(move || {
                drop(o4.lock().unwrap().take());
                app_t.send_msg(move || next.go()).unwrap();
                thread::exit().unwrap();
            })
            .unwrap();
        }),
        step(|next| {
            bdev::bdev::unregister("rst0", move |r| {
                r.unwrap();
                next.go()
            })
            .unwrap()
        }),
    ];
    assert_eq!(common::run_steps(&eal, steps), 0);
    let log = log.lock().unwrap().clone();
    let at = |tag: &str| {
        log.iter()
            .position(|x| x == tag)
            .unwrap_or_else(|| panic!("{tag} not in {log:?}"))
    };
    let reset = at("reset");
    // The module saw the reset only after every write it held had completed ...
    for b in [0, 1, 2, 3, 10, 11] {
        assert!(at(&format!("done{b}")) < reset, "{log:?}");
    }
    // ... and the writes held by the frozen channels only after the reset.
    for b in [4, 12] {
        assert!(at(&format!("w{b}")) > reset, "{log:?}");
    }
    assert!(at("reset_done") > reset);
}
