//! QoS on real reactors: I/O per second and the write, read and combined bandwidth
//! limits each held over ~2 s of queue-depth-32 I/O, set and cleared at run time.
//!
//! The limit is checked against the number of I/Os (bytes) the bdev completed in the
//! measured interval; the interval is the only clock reading. The upper bound, what
//! the limiter enforces, is the limit plus 5% plus the largest burst and the queue
//! depth. The lower bound only shows the limiter does not starve the bdev: a reactor
//! descheduled for longer than the burst the bucket keeps (10 ms) loses that budget, so
//! on a shared, loaded machine the rate reached is below the limit by however long the
//! thread did not run (0.77-0.96 of it measured here at a load average of 17-20 on 2
//! CPUs); the bound is half the limit.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bdev::modules::null::{self, NullOpts};
use bdev::qos::{self, QosValues};
use bdev::{BdevIoChannel, Descriptor, IoStatus};
use common::{Latch, Next, Step};
use framework::thread;

const BS: usize = 4096;
const QD: usize = 32;
/// The lower bound, as a fraction of the limit (see the module docs).
const LOW: f64 = 0.5;

struct Drv {
    d: Descriptor,
    c: Mutex<BdevIoChannel>,
    write: bool,
    until: Instant,
    ops: AtomicU64,
    done: Arc<Latch>,
}

fn pump(drv: Arc<Drv>, blk: u64) {
    if Instant::now() >= drv.until {
        drv.done.hit();
        return;
    }
    let d2 = drv.clone();
    let cb = move |st: IoStatus, _buf: Vec<u8>| {
        assert_eq!(st, IoStatus::Success);
        d2.ops.fetch_add(1, Ordering::Relaxed);
        pump(d2, (blk + 1) % 1024);
    };
    let c = drv.c.lock().unwrap();
    if drv.write {
        drv.d.write_buf(&c, vec![0; BS], blk, 1, cb).unwrap();
    } else {
        drv.d.read_buf(&c, vec![0; BS], blk, 1, cb).unwrap();
    }
}

/// A run of `secs` seconds on a new thread; returns (ops, elapsed).
fn run_phase(
    fw: &framework::Framework,
    write: bool,
    secs: f64,
    out: Arc<Mutex<Vec<(u64, Duration)>>>,
    next: Next,
) {
    let t = fw.spawn_thread("qos_io", &[1]).unwrap();
    let app = thread::current().unwrap();
    t.send_msg(move || {
        let d = bdev::open("qos0", true, |_| {}).unwrap();
        let c = d.get_io_channel().unwrap();
        let start = Instant::now();
        let slot: Arc<Mutex<Option<Arc<Drv>>>> = Arc::new(Mutex::new(None));
        let s2 = slot.clone();
        let done = Latch::new(QD, move || {
            let drv = s2.lock().unwrap().take().unwrap();
            let el = start.elapsed();
            out.lock()
                .unwrap()
                .push((drv.ops.load(Ordering::Relaxed), el));
            // Drop the channel and descriptor here, then go on from the app thread.
            let me = thread::current().unwrap();
            me.send_msg(move || {
                drop(drv);
                app.send_msg(move || next.go()).unwrap();
                thread::exit().unwrap();
            })
            .unwrap();
        });
        let drv = Arc::new(Drv {
            d,
            c: Mutex::new(c),
            write,
            until: start + Duration::from_secs_f64(secs),
            ops: AtomicU64::new(0),
            done,
        });
        *slot.lock().unwrap() = Some(drv.clone());
        for i in 0..QD {
            pump(drv.clone(), i as u64);
        }
    })
    .unwrap();
}

#[test]
fn qos_limits_hold() {
    let Some(eal) = common::eal("qos_limits_hold", "0-1") else {
        return;
    };
    const IOPS: u64 = 5000;
    const WMB: u64 = 4;
    const RMB: u64 = 3;
    const RWMB: u64 = 6;
    let results = Arc::new(Mutex::new(Vec::new()));
    let r1 = results.clone();
    let r2 = results.clone();
    let r3 = results.clone();
    let r4 = results.clone();
    let r5 = results.clone();
    let steps: Vec<Step> = vec![
        Box::new(|next: Next| {
            null::create(NullOpts {
                name: "qos0".into(),
                num_blocks: 1024,
                block_size: BS as u32,
                uuid: None,
            })
            .unwrap();
            let b = bdev::bdev::get("qos0").unwrap();
            // Refused values leave the limits alone.
            let bad = QosValues {
                rw_ios_per_sec: 1500,
                ..Default::default()
            };
            assert!(b.set_qos_limits(bad).is_err());
            assert_eq!(b.qos().get(), QosValues::default());
            b.set_qos_limits(QosValues {
                rw_ios_per_sec: IOPS,
                ..Default::default()
            })
            .unwrap();
            next.go();
        }),
        Box::new(move |next: Next| {
            let fw = next.fw().clone();
            run_phase(&fw, false, 2.0, r1, next)
        }),
        Box::new(|next: Next| {
            let b = bdev::bdev::get("qos0").unwrap();
            b.set_qos_limits(QosValues {
                w_mbytes_per_sec: WMB,
                ..Default::default()
            })
            .unwrap();
            next.go();
        }),
        Box::new(move |next: Next| {
            let fw = next.fw().clone();
            run_phase(&fw, true, 2.0, r2, next)
        }),
        // Read bandwidth, then the combined bandwidth (written), each alone.
        Box::new(|next: Next| {
            let b = bdev::bdev::get("qos0").unwrap();
            b.set_qos_limits(QosValues {
                r_mbytes_per_sec: RMB,
                ..Default::default()
            })
            .unwrap();
            next.go();
        }),
        Box::new(move |next: Next| {
            let fw = next.fw().clone();
            run_phase(&fw, false, 2.0, r4, next)
        }),
        Box::new(|next: Next| {
            let b = bdev::bdev::get("qos0").unwrap();
            b.set_qos_limits(QosValues {
                rw_mbytes_per_sec: RWMB,
                ..Default::default()
            })
            .unwrap();
            next.go();
        }),
        Box::new(move |next: Next| {
            let fw = next.fw().clone();
            run_phase(&fw, true, 2.0, r5, next)
        }),
        Box::new(|next: Next| {
            let b = bdev::bdev::get("qos0").unwrap();
            b.set_qos_limits(QosValues::default()).unwrap();
            assert!(!b.qos().active());
            next.go();
        }),
        Box::new(move |next: Next| {
            let fw = next.fw().clone();
            run_phase(&fw, false, 0.5, r3, next)
        }),
        Box::new(|next: Next| {
            bdev::bdev::unregister("qos0", move |r| {
                r.unwrap();
                next.go()
            })
            .unwrap();
        }),
    ];
    assert_eq!(common::run_steps(&eal, steps), 0);
    let res = results.lock().unwrap().clone();
    assert_eq!(res.len(), 5);
    // The burst the token bucket may hold, plus the queue depth.
    let slack = |per_sec: f64| per_sec / 1000.0 * qos::MAX_BURST_SLICES as f64;

    let (ops, el) = res[0];
    let allowed = IOPS as f64 * el.as_secs_f64();
    eprintln!(
        "qos iops: {ops} reads in {el:?}, limit allows {allowed:.0} ({:.3} of it)",
        ops as f64 / allowed
    );
    assert!(
        ops as f64 <= allowed * 1.05 + slack(IOPS as f64) + QD as f64,
        "{ops} reads exceed the {IOPS}/s limit over {el:?}"
    );
    assert!(
        ops as f64 >= allowed * LOW,
        "{ops} reads: far below the limit"
    );

    // Bandwidth limits: (phase, what, MB/s).
    for (i, what, mb) in [
        (1, "w_mbytes", WMB),
        (2, "r_mbytes", RMB),
        (3, "rw_mbytes", RWMB),
    ] {
        let (ops, el) = res[i];
        let bytes = ops * BS as u64;
        let allowed = (mb << 20) as f64 * el.as_secs_f64();
        eprintln!(
            "qos {what}: {bytes} bytes in {el:?}, limit allows {allowed:.0} ({:.3} of it)",
            bytes as f64 / allowed
        );
        assert!(
            bytes as f64 <= allowed * 1.05 + slack((mb << 20) as f64) + (QD * BS) as f64,
            "{what}: {bytes} bytes exceed {mb} MB/s over {el:?}"
        );
        assert!(
            bytes as f64 >= allowed * LOW,
            "{what}: {bytes} bytes: far below the limit"
        );
    }

    let (ops, el) = res[4];
    let rate = ops as f64 / el.as_secs_f64();
    eprintln!("qos cleared: {ops} reads in {el:?} ({rate:.0}/s)");
    assert!(
        rate > IOPS as f64 * 1.2,
        "with QoS cleared the rate ({rate:.0}/s) should exceed the old limit"
    );
}
