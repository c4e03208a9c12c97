//! The layer's mechanisms on real reactors: splitting (checked piece by piece and
//! block by block), out-of-resources queue and retry, remove events on every
//! descriptor's thread, claims.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bdev::modules::malloc::{self, MallocOpts};
use bdev::{BdevInfo, BdevIo, BdevModule, Error, IoStatus, IoType, ModuleChannel, Uuid};
use common::{pat, pattern, step, Latch, Step};
use framework::{poller, thread, PollStatus, Poller};

const BS: usize = 512;

/// A RAM disk that records every request it gets, takes at most `limit` at once
/// (answering NoMem beyond), and completes one request per poller run.
struct TestDisk {
    mem: Arc<Mutex<Vec<u8>>>,
    seen: Arc<Mutex<Vec<(u64, u64, usize)>>>,
    limit: usize,
    inflight: Arc<AtomicUsize>,
    max_inflight: Arc<AtomicUsize>,
    nomems: Arc<AtomicUsize>,
    destructed: Arc<AtomicBool>,
}

struct TestChannel {
    disk: Arc<TestDiskShared>,
    queue: Arc<Mutex<Vec<BdevIo>>>,
    poller: Option<Poller>,
}

type TestDiskShared = TestDisk;

impl Drop for TestChannel {
    fn drop(&mut self) {
        if let Some(p) = self.poller.take() {
            p.unregister().unwrap();
        }
    }
}

impl ModuleChannel for TestChannel {
    fn submit(&self, io: BdevIo) {
        let d = &self.disk;
        if d.inflight.load(Ordering::Relaxed) >= d.limit {
            d.nomems.fetch_add(1, Ordering::Relaxed);
            io.complete(IoStatus::NoMem);
            return;
        }
        let now = d.inflight.fetch_add(1, Ordering::Relaxed) + 1;
        d.max_inflight.fetch_max(now, Ordering::Relaxed);
        d.seen.lock().unwrap().push((
            io.offset_blocks(),
            io.num_blocks(),
            io.iovs().iter().map(|v| v.len).sum(),
        ));
        self.queue.lock().unwrap().push(io);
    }
}

fn serve(d: &TestDisk, io: BdevIo) {
    let bs = io.block_size() as usize;
    let (off, len) = (io.offset_blocks() as usize * bs, io.len_bytes());
    let mut m = d.mem.lock().unwrap();
    match io.io_type() {
        IoType::Read => io.copy_in(&m[off..off + len]),
        IoType::Write => io.copy_out(&mut m[off..off + len]),
        _ => {}
    }
    drop(m);
    d.inflight.fetch_sub(1, Ordering::Relaxed);
    io.complete(IoStatus::Success);
}

struct Module(Arc<TestDisk>);

impl BdevModule for Module {
    fn module_name(&self) -> &str {
        "test"
    }
    fn io_type_supported(&self, t: IoType) -> bool {
        matches!(t, IoType::Read | IoType::Write)
    }
    fn create_channel(&self) -> Result<Box<dyn ModuleChannel>, String> {
        let queue: Arc<Mutex<Vec<BdevIo>>> = Arc::new(Mutex::new(Vec::new()));
        let (q2, d2) = (queue.clone(), self.0.clone());
        let p = poller::register("testdisk", 0, move || {
            let io = {
                let mut q = q2.lock().unwrap();
                if q.is_empty() {
                    return PollStatus::Idle;
                }
                q.remove(0)
            };
            serve(&d2, io);
            PollStatus::Busy
        })
        .map_err(|e| e.to_string())?;
        Ok(Box::new(TestChannel {
            disk: self.0.clone(),
            queue,
            poller: Some(p),
        }))
    }
    fn destruct(&self) {
        self.0.destructed.store(true, Ordering::Release);
    }
}

fn test_disk(
    name: &str,
    blocks: u64,
    boundary: u32,
    max: u32,
    limit: usize,
) -> (bdev::Bdev, Arc<TestDisk>) {
    let disk = Arc::new(TestDisk {
        mem: Arc::new(Mutex::new(vec![0; blocks as usize * BS])),
        seen: Arc::new(Mutex::new(Vec::new())),
        limit,
        inflight: Arc::new(AtomicUsize::new(0)),
        max_inflight: Arc::new(AtomicUsize::new(0)),
        nomems: Arc::new(AtomicUsize::new(0)),
        destructed: Arc::new(AtomicBool::new(false)),
    });
    let info = BdevInfo {
        name: name.into(),
        aliases: vec![format!("{name}_alias")],
        uuid: Uuid::random(),
        product_name: "test disk".into(),
        block_size: BS as u32,
        num_blocks: blocks,
        optimal_io_boundary: boundary,
        write_cache: false,
        max_transfer_blocks: max,
    };
    let b = bdev::bdev::register(info, Arc::new(Module(disk.clone()))).unwrap();
    (b, disk)
}

/// The pieces a request should become (written independently of the layer).
fn expected_pieces(off: u64, n: u64, boundary: u64, max: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut cur = off;
    let mut piece_start = off;
    while cur < off + n {
        cur += 1;
        let at_boundary = boundary > 0 && cur.is_multiple_of(boundary);
        if cur == off + n || at_boundary || cur - piece_start == max {
            out.push((piece_start, cur - piece_start));
            piece_start = cur;
        }
    }
    out
}

#[test]
fn split_on_boundary_and_max_transfer() {
    let Some(eal) = common::eal("split_on_boundary_and_max_transfer", "0") else {
        return;
    };
    let seen_all = Arc::new(Mutex::new(Vec::new()));
    let reads = Arc::new(Mutex::new(Vec::<(u64, Vec<u8>)>::new()));
    let whole = Arc::new(Mutex::new(Vec::new()));
    let (sa, rd, wh) = (seen_all.clone(), reads.clone(), whole.clone());
    let steps: Vec<Step> = vec![step(move |next| {
        let (_b, disk) = test_disk("split0", 64, 8, 3, usize::MAX);
        let d = bdev::open("split0_alias", true, |_| {}).unwrap();
        let c = Arc::new(Mutex::new(d.get_io_channel().unwrap()));
        let d = Arc::new(d);
        let (d2, c2, disk2) = (d.clone(), c.clone(), disk.clone());
        d.write_buf(
            &c.lock().unwrap(),
            pattern(0x10, 5, 20, BS),
            5,
            20,
            move |st, _| {
                assert_eq!(st, IoStatus::Success);
                *sa.lock().unwrap() = std::mem::take(&mut *disk2.seen.lock().unwrap());
                // Block by block, then the whole range (split again) in one read.
                let (d3, c3) = (d2.clone(), c2.clone());
                let latch = Latch::new(21, move || {
                    drop((c3, d3));
                    next.go();
                });
                for blk in 5..25 {
                    let (rd, la) = (rd.clone(), latch.clone());
                    d2.read_buf(&c2.lock().unwrap(), vec![0; BS], blk, 1, move |st, buf| {
                        assert_eq!(st, IoStatus::Success);
                        rd.lock().unwrap().push((blk, buf));
                        la.hit();
                    })
                    .unwrap();
                }
                let la = latch.clone();
                let mut buf = vec![0u8; 20 * BS];
                // Two iovecs of uneven size, so children straddle iovec edges.
                let (a, b) = buf.split_at_mut(7 * BS + 100);
                let iovs = [bdev::IoVec::from_slice(a), bdev::IoVec::from_slice(b)];
                // SAFETY: `buf` moves into the callback and is untouched until then.
                unsafe {
                    d2.readv(&c2.lock().unwrap(), &iovs, 5, 20, move |st| {
                        assert_eq!(st, IoStatus::Success);
                        *wh.lock().unwrap() = buf;
                        la.hit();
                    })
                }
                .unwrap();
            },
        )
        .unwrap();
    })];
    assert_eq!(common::run_steps(&eal, steps), 0);
    let want: Vec<(u64, u64, usize)> = expected_pieces(5, 20, 8, 3)
        .into_iter()
        .map(|(o, n)| (o, n, n as usize * BS))
        .collect();
    assert_eq!(want.iter().map(|p| p.1).sum::<u64>(), 20);
    assert_eq!(*seen_all.lock().unwrap(), want, "write pieces");
    let mut r = reads.lock().unwrap().clone();
    r.sort_by_key(|x| x.0);
    assert_eq!(r.len(), 20);
    for (blk, buf) in r {
        assert!(
            buf.iter().all(|&x| x == pat(0x10, blk)),
            "block {blk} read back wrong"
        );
    }
    assert_eq!(*whole.lock().unwrap(), pattern(0x10, 5, 20, BS));
}

#[test]
fn nomem_queued_and_retried() {
    let Some(eal) = common::eal("nomem_queued_and_retried", "0") else {
        return;
    };
    const N: u64 = 64;
    let disk_slot = Arc::new(Mutex::new(None));
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let back = Arc::new(Mutex::new(Vec::new()));
    let depth_after = Arc::new(Mutex::new((9, 9)));
    let (ds, sts, bk, da) = (
        disk_slot.clone(),
        statuses.clone(),
        back.clone(),
        depth_after.clone(),
    );
    let steps: Vec<Step> = vec![step(move |next| {
        let (_b, disk) = test_disk("nomem0", N, 0, 0, 4);
        *ds.lock().unwrap() = Some(disk);
        let d = Arc::new(bdev::open("nomem0", true, |_| {}).unwrap());
        let c = Arc::new(Mutex::new(d.get_io_channel().unwrap()));
        let (d2, c2) = (d.clone(), c.clone());
        let latch = Latch::new(N as usize, move || {
            *da.lock().unwrap() = c2.lock().unwrap().depth();
            // Read everything back in one request.
            let (d3, c3) = (d2.clone(), c2.clone());
            d2.read_buf(
                &c2.lock().unwrap(),
                vec![0; N as usize * BS],
                0,
                N,
                move |st, buf| {
                    assert_eq!(st, IoStatus::Success);
                    *bk.lock().unwrap() = buf;
                    drop((c3, d3));
                    next.go();
                },
            )
            .unwrap();
        });
        for blk in 0..N {
            let (sts, la) = (sts.clone(), latch.clone());
            d.write_buf(
                &c.lock().unwrap(),
                pattern(0x55, blk, 1, BS),
                blk,
                1,
                move |st, _| {
                    sts.lock().unwrap().push(st);
                    la.hit();
                },
            )
            .unwrap();
        }
        let (at_module, queued) = c.lock().unwrap().depth();
        assert_eq!(at_module, 4, "the module holds its limit");
        assert_eq!(queued, N as usize - 4, "the rest waits on the channel");
    })];
    assert_eq!(common::run_steps(&eal, steps), 0);
    let disk = disk_slot.lock().unwrap().take().unwrap();
    let st = statuses.lock().unwrap();
    assert_eq!(st.len(), N as usize);
    assert!(st.iter().all(|&s| s == IoStatus::Success), "{st:?}");
    assert!(disk.nomems.load(Ordering::Relaxed) >= N as usize - 4);
    assert!(disk.max_inflight.load(Ordering::Relaxed) <= 4);
    assert_eq!(*depth_after.lock().unwrap(), (0, 0));
    assert_eq!(*back.lock().unwrap(), pattern(0x55, 0, N, BS));
}

/// A channel handle dropped while its I/O is out (some at the module, some waiting
/// for resources): every I/O still runs and calls back, and the channel goes only
/// after the last (the bdev's removal, which waits for every channel, finishes).
#[test]
fn channel_dropped_with_io_out_lives_until_it_completes() {
    const N: u64 = 16;
    let removed = Arc::new(AtomicBool::new(false));
    let (disk_slot, statuses) = (Arc::new(Mutex::new(None)), Arc::new(Mutex::new(Vec::new())));
    let Some(eal) = common::eal("channel_dropped_with_io_out", "0") else {
        return;
    };
    let (ds, sts, rm) = (disk_slot.clone(), statuses.clone(), removed.clone());
    let steps: Vec<Step> = vec![step(move |next| {
        let (_b, disk) = test_disk("dropch0", N, 0, 0, 4);
        *ds.lock().unwrap() = Some(disk.clone());
        let d = Arc::new(bdev::open("dropch0", true, |_| {}).unwrap());
        let ch = d.get_io_channel().unwrap();
        let d2 = Mutex::new(Some(d.clone()));
        let latch = Latch::new(N as usize, move || {
            // The module channel is still there: nothing was destroyed under the I/O.
            assert!(!disk.destructed.load(Ordering::Acquire));
            d2.lock().unwrap().take();
            bdev::bdev::unregister("dropch0", move |r| {
                r.unwrap();
                rm.store(true, Ordering::Release);
                next.go();
            })
            .unwrap();
        });
        for blk in 0..N {
            let (sts, la) = (sts.clone(), latch.clone());
            d.write_buf(&ch, pattern(0x33, blk, 1, BS), blk, 1, move |st, _| {
                sts.lock().unwrap().push(st);
                la.hit();
            })
            .unwrap();
        }
        assert_eq!(ch.depth(), (4, N as usize - 4));
        drop(ch);
    })];
    assert_eq!(common::run_steps(&eal, steps), 0);
    let disk = disk_slot.lock().unwrap().take().unwrap();
    let st = statuses.lock().unwrap();
    assert_eq!(st.len(), N as usize);
    assert!(st.iter().all(|&s| s == IoStatus::Success), "{st:?}");
    assert!(removed.load(Ordering::Acquire), "the removal finished");
    assert!(disk.destructed.load(Ordering::Acquire));
    assert_eq!(*disk.mem.lock().unwrap(), pattern(0x33, 0, N, BS));
}

#[test]
fn remove_event_reaches_every_descriptor_on_its_thread() {
    let Some(eal) = common::eal("remove_event_reaches_every_descriptor", "0-1") else {
        return;
    };
    let events = Arc::new(Mutex::new(Vec::<String>::new()));
    let disk_slot = Arc::new(Mutex::new(None));
    let (ev, ds) = (events.clone(), disk_slot.clone());
    let steps: Vec<Step> = vec![step(move |next| {
        let (_b, disk) = test_disk("rm0", 16, 0, 0, usize::MAX);
        *ds.lock().unwrap() = Some(disk);
        let fw = next.fw().clone();
        let threads = [
            fw.spawn_thread("rm_a", &[1]).unwrap(),
            fw.spawn_thread("rm_b", &[0]).unwrap(),
            fw.spawn_thread("rm_c", &[1]).unwrap(),
        ];
        let app = thread::current().unwrap();
        let next = Arc::new(Mutex::new(Some(next)));
        let opened = Latch::new(3, {
            let (ev, next) = (ev.clone(), next.clone());
            move || {
                let ev2 = ev.clone();
                app.send_msg(move || {
                    bdev::bdev::unregister("rm0", move |r| {
                        r.unwrap();
                        ev2.lock().unwrap().push("unregistered".into());
                        next.lock().unwrap().take().unwrap().go();
                    })
                    .unwrap();
                    // Refused while removing.
                    assert!(matches!(
                        bdev::open("rm0", false, |_| {}),
                        Err(Error::Removed { .. })
                    ));
                })
                .unwrap();
            }
        });
        for t in threads {
            let (ev, opened) = (ev.clone(), opened.clone());
            let tid = t.id();
            t.send_msg(move || {
                let slot = Arc::new(Mutex::new(None));
                let s2 = slot.clone();
                let ev2 = ev.clone();
                let d = bdev::open("rm0", true, move |e| {
                    let on = thread::current().unwrap().id();
                    let (d, c) = s2.lock().unwrap().take().expect("one event");
                    let d: bdev::Descriptor = d;
                    let c: bdev::BdevIoChannel = c;
                    let r = d.write_buf(&c, vec![0; BS], 0, 1, |_, _| panic!("ran"));
                    let refused = matches!(r, Err(Error::Removed { .. }));
                    ev2.lock().unwrap().push(format!(
                        "{e:?} on own thread {} refused {refused}",
                        on == tid
                    ));
                    drop(c);
                    d.close();
                })
                .unwrap();
                let c = d.get_io_channel().unwrap();
                *slot.lock().unwrap() = Some((d, c));
                opened.hit();
            })
            .unwrap();
        }
    })];
    assert_eq!(common::run_steps(&eal, steps), 0);
    let ev = events.lock().unwrap().clone();
    assert_eq!(
        ev,
        vec![
            "Remove on own thread true refused true".to_string(),
            "Remove on own thread true refused true".into(),
            "Remove on own thread true refused true".into(),
            "unregistered".into(),
        ]
    );
    let disk = disk_slot.lock().unwrap().take().unwrap();
    assert!(disk.destructed.load(Ordering::Acquire), "module destructed");
    assert!(bdev::bdev::get("rm0").is_none());
    assert!(bdev::bdev::get("rm0_alias").is_none());
}

#[test]
fn claims_are_exclusive_writes() {
    let Some(eal) = common::eal("claims_are_exclusive_writes", "0") else {
        return;
    };
    let done = Arc::new(AtomicBool::new(false));
    let d0 = done.clone();
    let steps: Vec<Step> = vec![step(move |next| {
        malloc::create(MallocOpts::new("claim0", 8, 4096)).unwrap();
        let d1 = bdev::open("claim0", false, |_| {}).unwrap();
        assert!(!d1.writable());
        d1.claim("raid").unwrap();
        assert!(d1.writable(), "a claim makes the descriptor read-write");
        assert_eq!(d1.bdev().claimed_by().as_deref(), Some("raid"));
        let e = bdev::open("claim0", true, |_| {}).unwrap_err();
        assert!(
            matches!(e, Error::Claimed { ref module, .. } if module == "raid"),
            "{e}"
        );
        let d2 = bdev::open("claim0", false, |_| {}).unwrap();
        assert!(matches!(d2.claim("lvol"), Err(Error::Claimed { .. })));
        d1.release_claim();
        assert_eq!(d1.bdev().claimed_by(), None);
        let d3 = bdev::open("claim0", true, |_| {}).unwrap();
        assert!(
            matches!(d2.claim("lvol"), Err(Error::Invalid { .. })),
            "another descriptor writes"
        );
        d3.close();
        assert!(
            matches!(d2.claim("lvol"), Err(Error::Invalid { .. })),
            "d1 stays read-write after releasing its claim (as in SPDK)"
        );
        d1.close();
        d2.claim("lvol").unwrap();
        d2.close();
        // Closing the claiming descriptor released the claim.
        let d4 = bdev::open("claim0", true, |_| {}).unwrap();
        drop(d4);
        // Bad names and duplicates are refused.
        assert!(matches!(
            bdev::open("nope", false, |_| {}),
            Err(Error::NotFound(_))
        ));
        let dup = malloc::create(MallocOpts::new("claim0", 8, 4096));
        assert!(matches!(dup, Err(Error::Exists(_))));
        for bs in [0, 100, 256, 513, 1000] {
            let r = malloc::create(MallocOpts::new(format!("claim_bad{bs}"), 8, bs));
            assert!(matches!(r, Err(Error::Invalid { .. })), "block size {bs}");
        }
        d0.store(true, Ordering::Release);
        bdev::bdev::unregister("claim0", move |r| {
            r.unwrap();
            next.go()
        })
        .unwrap();
    })];
    assert_eq!(common::run_steps(&eal, steps), 0);
    assert!(done.load(Ordering::Acquire));
}
