//! Every I/O type through a descriptor and channel on real reactors (malloc and null),
//! data read back, statistics, splitting block by block.

mod common;

use std::sync::{Arc, Mutex};

use bdev::modules::malloc::{self, MallocOpts};
use bdev::modules::null::{self, NullOpts};
use bdev::{BdevIoChannel, Descriptor, Error, IoStats, IoStatus, IoVec};
use common::{pattern, Latch, Next, Step};

type Slot = Arc<Mutex<Option<(Descriptor, BdevIoChannel)>>>;
type Log = Arc<Mutex<Vec<String>>>;

const BS: usize = 512;

fn with<R>(s: &Slot, f: impl FnOnce(&Descriptor, &BdevIoChannel) -> R) -> R {
    let g = s.lock().unwrap();
    let (d, c) = g.as_ref().expect("opened");
    f(d, c)
}

fn step(f: impl FnOnce(Next) + Send + 'static) -> Step {
    Box::new(f)
}

/// Submit a read of `n` blocks at `off`; record the data under `tag`.
fn read_step(s: &Slot, log: &Log, tag: &'static str, off: u64, n: u64) -> Step {
    let (s, log) = (s.clone(), log.clone());
    step(move |next| {
        with(&s, |d, c| {
            d.read_buf(c, vec![0xEEu8; n as usize * BS], off, n, move |st, buf| {
                assert_eq!(st, IoStatus::Success, "{tag}");
                log.lock()
                    .unwrap()
                    .push(format!("{tag}:{}", hex_blocks(&buf)));
                next.go();
            })
            .unwrap()
        })
    })
}

/// One byte per block (blocks are uniform in these tests; a non-uniform block is "??").
fn hex_blocks(buf: &[u8]) -> String {
    buf.chunks(BS)
        .map(|b| {
            if b.iter().all(|&x| x == b[0]) {
                format!("{:02x}", b[0])
            } else {
                "??".into()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn expect_hex(seed: u8, first: u64, n: u64) -> String {
    hex_blocks(&pattern(seed, first, n, BS))
}

fn status_step(
    s: &Slot,
    log: &Log,
    tag: &'static str,
    f: impl FnOnce(&Descriptor, &BdevIoChannel, Box<dyn FnOnce(IoStatus) + Send>) + Send + 'static,
) -> Step {
    let (s, log) = (s.clone(), log.clone());
    step(move |next| {
        with(&s, |d, c| {
            f(
                d,
                c,
                Box::new(move |st| {
                    log.lock().unwrap().push(format!("{tag}:{st:?}"));
                    next.go();
                }),
            )
        })
    })
}

#[test]
fn malloc_every_io_type() {
    let Some(eal) = common::eal("malloc_every_io_type", "0-1") else {
        return;
    };
    let s: Slot = Arc::new(Mutex::new(None));
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let stats = Arc::new(Mutex::new(IoStats::default()));
    let mut steps: Vec<Step> = Vec::new();
    let s1 = s.clone();
    let l1 = log.clone();
    steps.push(step(move |next| {
        malloc::create(MallocOpts::new("io_m0", 64, BS as u32)).unwrap();
        let d = bdev::open("io_m0", true, |_| {}).unwrap();
        let c = d.get_io_channel().unwrap();
        // Bad requests are refused before submission.
        let e = d
            .read_buf(&c, vec![0; BS], 64, 1, |_, _| panic!("ran"))
            .unwrap_err();
        assert!(matches!(e, Error::OutOfRange { .. }), "{e}");
        let e = d
            .read_buf(&c, vec![0; BS], 0, 0, |_, _| panic!("ran"))
            .unwrap_err();
        assert!(matches!(e, Error::OutOfRange { .. }), "{e}");
        let e = d
            .read_buf(&c, vec![0; BS], 0, 2, |_, _| panic!("ran"))
            .unwrap_err();
        assert!(matches!(e, Error::ShortBuffer { .. }), "{e}");
        let ro = bdev::open("io_m0", false, |_| {}).unwrap();
        let rc = ro.get_io_channel().unwrap();
        let e = ro
            .write_buf(&rc, vec![0; BS], 0, 1, |_, _| panic!("ran"))
            .unwrap_err();
        assert!(matches!(e, Error::ReadOnly { .. }), "{e}");
        let e = ro.unmap(&rc, 0, 1, |_| panic!("ran")).unwrap_err();
        assert!(matches!(e, Error::ReadOnly { .. }), "{e}");
        drop(rc);
        ro.close();
        l1.lock().unwrap().push("refusals".into());
        *s1.lock().unwrap() = Some((d, c));
        next.go();
    }));
    // Write blocks 0..8 with pattern A from two iovecs (3 + 5 blocks).
    let s2 = s.clone();
    let l2 = log.clone();
    steps.push(step(move |next| {
        with(&s2, |d, c| {
            let data = Arc::new(Mutex::new(pattern(0xA0, 0, 8, BS)));
            let mut g = data.lock().unwrap();
            let (a, b) = g.split_at_mut(3 * BS);
            let iovs = [IoVec::from_slice(a), IoVec::from_slice(b)];
            drop(g);
            let keep = data.clone();
            // SAFETY: `data` stays alive in the callback and nothing touches it before.
            unsafe {
                d.writev(c, &iovs, 0, 8, move |st| {
                    drop(keep);
                    l2.lock().unwrap().push(format!("writev:{st:?}"));
                    next.go();
                })
            }
            .unwrap();
        })
    }));
    steps.push(read_step(&s, &log, "read0", 0, 8));
    steps.push(status_step(&s, &log, "compare_eq", |d, c, cb| {
        d.write_buf(c, Vec::new(), 0, 0, |_, _| {}).unwrap_err();
        let mut buf = pattern(0xA0, 0, 8, BS);
        let iov = [IoVec::from_slice(&mut buf)];
        // SAFETY: `buf` moves into the callback and is untouched until then.
        unsafe { d.comparev(c, &iov, 0, 8, move |st| cb_keep(cb, st, buf)) }.unwrap()
    }));
    steps.push(status_step(&s, &log, "compare_ne", |d, c, cb| {
        let mut buf = pattern(0xA0, 0, 8, BS);
        buf[7 * BS + 100] ^= 1;
        let iov = [IoVec::from_slice(&mut buf)];
        // SAFETY: as above.
        unsafe { d.comparev(c, &iov, 0, 8, move |st| cb_keep(cb, st, buf)) }.unwrap()
    }));
    // Compare-and-write of block 2: the compare matches (written), then it does not.
    for (name, fill) in [("caw_ok", 0xB0), ("caw_miscompare", 0xC0)] {
        steps.push(status_step(&s, &log, name, move |d, c, cb| {
            let mut cmp = pattern(0xA0, 2, 1, BS);
            let mut w = pattern(fill, 2, 1, BS);
            let (ci, wi) = ([IoVec::from_slice(&mut cmp)], [IoVec::from_slice(&mut w)]);
            // SAFETY: both buffers move into the callback.
            unsafe {
                d.compare_and_writev(c, &ci, &wi, 2, 1, move |st| {
                    drop((cmp, w));
                    cb(st)
                })
            }
            .unwrap()
        }));
    }
    steps.push(read_step(&s, &log, "read_after_caw", 0, 8));
    steps.push(status_step(&s, &log, "write_zeroes", |d, c, cb| {
        d.write_zeroes(c, 0, 2, cb).unwrap()
    }));
    steps.push(status_step(&s, &log, "unmap", |d, c, cb| {
        d.unmap(c, 6, 2, cb).unwrap()
    }));
    steps.push(status_step(&s, &log, "flush", |d, c, cb| {
        d.flush(c, 0, 64, cb).unwrap()
    }));
    steps.push(status_step(&s, &log, "reset", |d, c, cb| {
        d.reset(c, cb).unwrap()
    }));
    steps.push(read_step(&s, &log, "read_final", 0, 8));
    let (s3, st3) = (s.clone(), stats.clone());
    steps.push(step(move |next| {
        with(&s3, |d, _| {
            d.bdev()
                .get_iostat(move |t| {
                    *st3.lock().unwrap() = t;
                    next.go();
                })
                .unwrap()
        })
    }));
    let s4 = s.clone();
    steps.push(step(move |next| {
        drop(s4.lock().unwrap().take());
        bdev::bdev::unregister("io_m0", move |r| {
            r.unwrap();
            next.go();
        })
        .unwrap();
    }));
    assert_eq!(common::run_steps(&eal, steps), 0);
    let got = log.lock().unwrap().clone();
    let mut caw = pattern(0xA0, 0, 8, BS);
    caw[2 * BS..3 * BS].copy_from_slice(&pattern(0xB0, 2, 1, BS));
    let mut fin = caw.clone();
    fin[..2 * BS].fill(0);
    fin[6 * BS..].fill(0);
    let want = vec![
        "refusals".to_string(),
        "writev:Success".into(),
        format!("read0:{}", expect_hex(0xA0, 0, 8)),
        "compare_eq:Success".into(),
        "compare_ne:Miscompare".into(),
        "caw_ok:Success".into(),
        "caw_miscompare:Miscompare".into(),
        format!("read_after_caw:{}", hex_blocks(&caw)),
        "write_zeroes:Success".into(),
        "unmap:Success".into(),
        "flush:Success".into(),
        "reset:Success".into(),
        format!("read_final:{}", hex_blocks(&fin)),
    ];
    assert_eq!(got, want);
    let st = *stats.lock().unwrap();
    assert_eq!(st.num_read_ops, 3);
    assert_eq!(st.bytes_read, 3 * 8 * BS as u64);
    assert_eq!(st.num_write_ops, 1);
    assert_eq!(st.num_compare_ops, 1, "the miscompare counts as failed");
    assert_eq!(st.num_compare_and_write_ops, 1);
    assert_eq!(st.num_write_zeroes_ops, 1);
    assert_eq!(st.num_unmap_ops, 1);
    assert_eq!(st.bytes_unmapped, 2 * BS as u64);
    assert_eq!(st.num_flush_ops, 1);
    assert_eq!(st.num_reset_ops, 1);
    assert_eq!(st.num_failed_ops, 2);
    assert!(bdev::bdev::get("io_m0").is_none(), "unregistered");
}

fn cb_keep(cb: Box<dyn FnOnce(IoStatus) + Send>, st: IoStatus, buf: Vec<u8>) {
    drop(buf);
    cb(st)
}

#[test]
fn null_every_io_type() {
    let Some(eal) = common::eal("null_every_io_type", "0") else {
        return;
    };
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let l1 = log.clone();
    let steps: Vec<Step> = vec![step(move |next| {
        null::create(NullOpts {
            name: "io_n0".into(),
            num_blocks: 1 << 20,
            block_size: 4096,
            uuid: None,
        })
        .unwrap();
        let d = bdev::open("io_n0", true, |_| {}).unwrap();
        let c = d.get_io_channel().unwrap();
        let e = d
            .write_buf(&c, vec![0; 4096], 0, 1, |_, _| {})
            .map(|_| ())
            .and_then(|_| {
                let mut b = vec![0u8; 4096];
                let iov = [IoVec::from_slice(&mut b)];
                // SAFETY: refused before submission (null has no compare), so the
                // buffer is never used after this call.
                unsafe { d.comparev(&c, &iov, 0, 1, |_| {}) }
            })
            .unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
        let slot = Arc::new(Mutex::new(Some((d, c))));
        let (l2, slot2) = (l1.clone(), slot.clone());
        let latch = Latch::new(6, move || {
            drop(slot2.lock().unwrap().take());
            next.go();
        });
        let g = slot.lock().unwrap();
        let (d, c) = g.as_ref().unwrap();
        let rec = |tag: &'static str| {
            let (l, la) = (l2.clone(), latch.clone());
            move |st: IoStatus| {
                l.lock().unwrap().push(format!("{tag}:{st:?}"));
                la.hit();
            }
        };
        let r = rec("read");
        d.read_buf(c, vec![7u8; 8192], 100, 2, move |st, buf| {
            assert!(
                buf.iter().all(|&b| b == 7),
                "null leaves read buffers alone"
            );
            r(st)
        })
        .unwrap();
        d.write_zeroes(c, 0, 1 << 20, rec("write_zeroes")).unwrap();
        d.unmap(c, 5, 5, rec("unmap")).unwrap();
        d.flush(c, 0, 1, rec("flush")).unwrap();
        d.reset(c, rec("reset")).unwrap();
        let w = rec("write2");
        d.write_buf(c, vec![1u8; 4096], (1 << 20) - 1, 1, move |st, _| w(st))
            .unwrap();
    })];
    assert_eq!(common::run_steps(&eal, steps), 0);
    let mut got = log.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got,
        [
            "flush:Success",
            "read:Success",
            "reset:Success",
            "unmap:Success",
            "write2:Success",
            "write_zeroes:Success"
        ]
    );
}

/// Per-channel counters on two threads, their sum per bdev, and the sum kept after the
/// channels are gone.
#[test]
fn per_channel_statistics() {
    let Some(eal) = common::eal("per_channel_statistics", "0-1") else {
        return;
    };
    type Chans = Vec<(u64, IoStats)>;
    let chans: Arc<Mutex<Chans>> = Arc::new(Mutex::new(Vec::new()));
    let totals = Arc::new(Mutex::new(Vec::<IoStats>::new()));
    let tids = Arc::new(Mutex::new(Vec::<(u64, &'static str)>::new()));
    let held: Arc<Mutex<Vec<(Descriptor, BdevIoChannel)>>> = Arc::new(Mutex::new(Vec::new()));
    let (ch1, to1, ti1, h1) = (chans.clone(), totals.clone(), tids.clone(), held.clone());
    let steps: Vec<Step> = vec![
        step(move |next| {
            malloc::create(MallocOpts::new("pcs0", 64, BS as u32)).unwrap();
            let fw = next.fw().clone();
            let app = framework::thread::current().unwrap();
            let next = Arc::new(Mutex::new(Some(next)));
            let latch = Latch::new(8, move || {
                let n = next.lock().unwrap().take().unwrap();
                app.send_msg(move || n.go()).unwrap();
            });
            for (lcore, kind, count) in [(1u32, "writes", 3u64), (0, "reads", 5)] {
                let t = fw.spawn_thread(kind, &[lcore]).unwrap();
                let (la, ti, h) = (latch.clone(), ti1.clone(), h1.clone());
                t.send_msg(move || {
                    ti.lock()
                        .unwrap()
                        .push((framework::thread::current().unwrap().id(), kind));
                    let d = bdev::open("pcs0", true, |_| {}).unwrap();
                    let c = d.get_io_channel().unwrap();
                    for i in 0..count {
                        let la = la.clone();
                        let cb = move |st: IoStatus, _| {
                            assert_eq!(st, IoStatus::Success);
                            la.hit()
                        };
                        if kind == "writes" {
                            d.write_buf(&c, vec![1; 2 * BS], i * 2, 2, cb).unwrap();
                        } else {
                            d.read_buf(&c, vec![0; BS], i, 1, cb).unwrap();
                        }
                    }
                    h.lock().unwrap().push((d, c));
                })
                .unwrap();
            }
        }),
        step(move |next| {
            let b = bdev::bdev::get("pcs0").unwrap();
            let b2 = b.clone();
            b.get_channel_iostats(move |v| {
                *ch1.lock().unwrap() = v;
                b2.get_iostat(move |t| {
                    to1.lock().unwrap().push(t);
                    next.go()
                })
                .unwrap();
            })
            .unwrap();
        }),
        step(move |next| {
            // Drop every channel (each is put on its own thread), then read the total
            // again: the destroyed channels' counters moved to the bdev.
            let v = std::mem::take(&mut *held.lock().unwrap());
            drop(v);
            next.go()
        }),
        step(|next| {
            // Channel destruction runs from messages; give them a moment by reading
            // until no channel is left.
            fn wait(next: Next, n: u32) {
                let b = bdev::bdev::get("pcs0").unwrap();
                b.get_channel_iostats(move |v| {
                    if v.is_empty() {
                        next.go()
                    } else {
                        assert!(n > 0, "the channels were never destroyed");
                        wait(next, n - 1)
                    }
                })
                .unwrap();
            }
            wait(next, 1000)
        }),
        {
            let to2 = totals.clone();
            step(move |next| {
                let b = bdev::bdev::get("pcs0").unwrap();
                b.get_iostat(move |t| {
                    to2.lock().unwrap().push(t);
                    bdev::bdev::unregister("pcs0", move |r| {
                        r.unwrap();
                        next.go()
                    })
                    .unwrap();
                })
                .unwrap();
            })
        },
    ];
    assert_eq!(common::run_steps(&eal, steps), 0);
    let tids = tids.lock().unwrap().clone();
    let mut chans = chans.lock().unwrap().clone();
    chans.sort_by_key(|c| c.0);
    assert_eq!(chans.len(), 2, "one channel per thread");
    for (tid, st) in &chans {
        let kind = tids.iter().find(|t| t.0 == *tid).expect("a known thread").1;
        if kind == "writes" {
            assert_eq!((st.num_write_ops, st.bytes_written), (3, 3 * 2 * BS as u64));
            assert_eq!(st.num_read_ops, 0);
        } else {
            assert_eq!((st.num_read_ops, st.bytes_read), (5, 5 * BS as u64));
            assert_eq!(st.num_write_ops, 0);
        }
    }
    let totals = totals.lock().unwrap().clone();
    assert_eq!(totals.len(), 2);
    for t in &totals {
        assert_eq!((t.num_write_ops, t.num_read_ops), (3, 5));
        assert_eq!(t.bytes_written + t.bytes_read, (6 + 5) * BS as u64);
    }
}
