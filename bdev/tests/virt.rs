//! The virtual bdevs on real reactors, checked block by block against their bases: a
//! RAM disk module whose memory the test reads and writes directly stands under
//! split, passthru, RAID0 and RAID1. Also: claims, the base's removal reaching the
//! virtual bdev's descriptors (split, passthru; RAID0, which goes offline) or
//! degrading the array (RAID1) while writes are in flight, with nothing lost.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bdev::modules::raid::{self, RaidLevel, RaidOpts};
use bdev::modules::{passthru, split};
use bdev::{
    BdevEvent, BdevInfo, BdevIo, BdevIoChannel, BdevModule, Descriptor, Error, IoStatus, IoType,
    ModuleChannel, Uuid,
};
use common::{pat, pattern, step, Latch, Next, Step};
use framework::{poller, PollStatus, Poller};

const BS: usize = 512;

type Mem = Arc<Mutex<Vec<u8>>>;

/// A RAM disk whose bytes the test sees; completes from a per-channel poller. Reads
/// fail while its `fail_reads` flag is set.
struct RamDisk(Mem, Arc<AtomicBool>);

struct RamChannel {
    mem: Mem,
    fail_reads: Arc<AtomicBool>,
    done: Arc<Mutex<Vec<(BdevIo, IoStatus)>>>,
    poller: Option<Poller>,
}

impl Drop for RamChannel {
    fn drop(&mut self) {
        if let Some(p) = self.poller.take() {
            p.unregister().unwrap();
        }
        for (io, st) in std::mem::take(&mut *self.done.lock().unwrap()) {
            io.complete(st);
        }
    }
}

impl ModuleChannel for RamChannel {
    fn submit(&self, io: BdevIo) {
        let (off, len) = (io.offset_blocks() as usize * BS, io.len_bytes());
        if io.io_type() == IoType::Read && self.fail_reads.load(Ordering::Acquire) {
            self.done.lock().unwrap().push((io, IoStatus::Failed));
            return;
        }
        {
            let mut m = self.mem.lock().unwrap();
            match io.io_type() {
                IoType::Read => io.copy_in(&m[off..off + len]),
                IoType::Write => io.copy_out(&mut m[off..off + len]),
                IoType::Unmap | IoType::WriteZeroes => m[off..off + len].fill(0),
                _ => {}
            }
        }
        self.done.lock().unwrap().push((io, IoStatus::Success));
    }
}

impl BdevModule for RamDisk {
    fn module_name(&self) -> &str {
        "ramtest"
    }
    fn io_type_supported(&self, t: IoType) -> bool {
        !matches!(t, IoType::Compare | IoType::CompareAndWrite)
    }
    fn create_channel(&self) -> Result<Box<dyn ModuleChannel>, String> {
        let done: Arc<Mutex<Vec<(BdevIo, IoStatus)>>> = Arc::default();
        let d2 = done.clone();
        let p = poller::register("ramtest", 0, move || {
            let v = std::mem::take(&mut *d2.lock().unwrap());
            if v.is_empty() {
                return PollStatus::Idle;
            }
            for (io, st) in v {
                io.complete(st);
            }
            PollStatus::Busy
        })
        .map_err(|e| e.to_string())?;
        Ok(Box::new(RamChannel {
            mem: self.0.clone(),
            fail_reads: self.1.clone(),
            done,
            poller: Some(p),
        }))
    }
}

fn ram(name: &str, blocks: u64) -> Mem {
    ram_failing(name, blocks, Arc::default())
}

fn ram_failing(name: &str, blocks: u64, fail_reads: Arc<AtomicBool>) -> Mem {
    let mem: Mem = Arc::new(Mutex::new(vec![0; blocks as usize * BS]));
    let info = BdevInfo {
        name: name.into(),
        aliases: Vec::new(),
        uuid: Uuid::random(),
        product_name: "test RAM disk".into(),
        block_size: BS as u32,
        num_blocks: blocks,
        optimal_io_boundary: 0,
        write_cache: false,
        max_transfer_blocks: 0,
    };
    bdev::bdev::register(info, Arc::new(RamDisk(mem.clone(), fail_reads))).unwrap();
    mem
}

fn block(mem: &Mem, b: u64) -> Vec<u8> {
    mem.lock().unwrap()[b as usize * BS..(b as usize + 1) * BS].to_vec()
}

/// An open bdev with the app thread's channel.
struct Open {
    d: Descriptor,
    c: BdevIoChannel,
}

type Shared = Arc<Mutex<Option<Open>>>;

fn open(name: &str, events: Arc<AtomicUsize>) -> Shared {
    let d = bdev::open(name, true, move |ev| {
        assert_eq!(ev, BdevEvent::Remove);
        events.fetch_add(1, Ordering::AcqRel);
    })
    .unwrap();
    let c = d.get_io_channel().unwrap();
    Arc::new(Mutex::new(Some(Open { d, c })))
}

fn write(o: &Shared, data: Vec<u8>, off: u64, n: u64, then: impl FnOnce() + Send + 'static) {
    let g = o.lock().unwrap();
    let x = g.as_ref().unwrap();
    x.d.write_buf(&x.c, data, off, n, move |st, _| {
        assert_eq!(st, IoStatus::Success);
        then()
    })
    .unwrap();
}

fn read(o: &Shared, off: u64, n: u64, then: impl FnOnce(Vec<u8>) + Send + 'static) {
    let g = o.lock().unwrap();
    let x = g.as_ref().unwrap();
    x.d.read_buf(&x.c, vec![0; n as usize * BS], off, n, move |st, buf| {
        assert_eq!(st, IoStatus::Success);
        then(buf)
    })
    .unwrap();
}

/// Unregister `name` and go on once it is gone.
fn unregister_step(name: &'static str) -> Step {
    step(move |next| {
        bdev::bdev::unregister(name, move |r| {
            r.unwrap();
            next.go()
        })
        .unwrap()
    })
}

#[test]
fn split_and_passthru_layout_claims_and_removal() {
    let Some(eal) = common::eal("split_and_passthru_layout_claims_and_removal", "0") else {
        return;
    };
    let events = Arc::new(AtomicUsize::new(0));
    let base: Arc<Mutex<Option<Mem>>> = Arc::default();
    let parts: Arc<Mutex<Vec<Shared>>> = Arc::default();
    let (b1, b2, b3, b4) = (base.clone(), base.clone(), base.clone(), base.clone());
    let (p1, p2, p3, p4) = (parts.clone(), parts.clone(), parts.clone(), parts.clone());
    let ev = events.clone();
    let ev_close = events.clone();
    let steps: Vec<Step> = vec![
        step(move |next| {
            *b1.lock().unwrap() = Some(ram("sbase", 64));
            // Bad parameters first: nothing is made.
            assert!(matches!(
                split::create("nope", 2, 0),
                Err(Error::NotFound(_))
            ));
            assert!(matches!(
                split::create("sbase", 0, 0),
                Err(Error::Invalid { .. })
            ));
            // 3 x 1 MiB does not fit in 32 KiB.
            assert!(matches!(
                split::create("sbase", 3, 1),
                Err(Error::Invalid { .. })
            ));
            assert!(matches!(
                split::create("sbase", 65, 0),
                Err(Error::Invalid { .. })
            ));
            assert!(bdev::bdev::get("sbasep0").is_none());
            assert!(bdev::bdev::get("sbase").unwrap().claimed_by().is_none());

            let v = split::create("sbase", 4, 0).unwrap();
            let names: Vec<&str> = v.iter().map(|b| b.name()).collect();
            assert_eq!(names, ["sbasep0", "sbasep1", "sbasep2", "sbasep3"]);
            assert!(v.iter().all(|b| b.info().num_blocks == 16));
            assert_eq!(
                bdev::bdev::get("sbase").unwrap().claimed_by().as_deref(),
                Some("split")
            );
            // Claimed: no second split, no passthru, no writer.
            assert!(matches!(
                split::create("sbase", 2, 0),
                Err(Error::Exists(_) | Error::Claimed { .. })
            ));
            assert!(matches!(
                passthru::create("sbase", "pt_on_base", None),
                Err(Error::Claimed { .. })
            ));
            assert!(matches!(
                bdev::open("sbase", true, |_| {}),
                Err(Error::Claimed { .. })
            ));
            // A passthru over one partition (a stack of two virtual bdevs).
            passthru::create("sbasep3", "pt0", None).unwrap();
            assert!(matches!(
                passthru::create("sbasep2", "pt0", None),
                Err(Error::Exists(_))
            ));
            let mut p = p1.lock().unwrap();
            for n in ["sbasep0", "sbasep1", "sbasep2", "pt0"] {
                p.push(open(n, ev.clone()));
            }
            next.go();
        }),
        // Through each partition (p3 through the passthru) a pattern of its own.
        step(move |next| {
            let p = p2.lock().unwrap().clone();
            let latch = Latch::new(4, move || next.go());
            for (i, o) in p.iter().enumerate() {
                let la = latch.clone();
                write(o, pattern(i as u8 * 16, 0, 16, BS), 0, 16, move || la.hit());
            }
        }),
        // The base, read directly: partition i holds blocks 16 i .. 16 i + 15.
        step(move |next| {
            let m = b2.lock().unwrap().clone().unwrap();
            for i in 0..4u64 {
                for j in 0..16u64 {
                    assert_eq!(
                        block(&m, i * 16 + j),
                        vec![pat(i as u8 * 16, j); BS],
                        "base block {} after writing partition {i} block {j}",
                        i * 16 + j
                    );
                }
            }
            // The other way: the base written directly, each partition read block by
            // block.
            m.lock().unwrap().copy_from_slice(&pattern(0x55, 0, 64, BS));
            let p = p3.lock().unwrap().clone();
            let latch = Latch::new(64, move || next.go());
            for (i, o) in p.iter().enumerate() {
                for j in 0..16u64 {
                    let la = latch.clone();
                    let want = vec![pat(0x55, i as u64 * 16 + j); BS];
                    read(o, j, 1, move |buf| {
                        assert_eq!(buf, want, "partition {i} block {j}");
                        la.hit()
                    });
                }
            }
        }),
        // The base goes: every partition and the passthru on top see a remove event;
        // they close, then the base's removal finishes.
        step(move |next| {
            let ev = ev_close;
            let p = p4.clone();
            bdev::bdev::unregister("sbase", move |r| {
                r.unwrap();
                next.go()
            })
            .unwrap();
            // Close each descriptor once its remove event came.
            fn close_when_told(ev: Arc<AtomicUsize>, p: Arc<Mutex<Vec<Shared>>>) {
                if ev.load(Ordering::Acquire) < 4 {
                    let me = framework::thread::current().unwrap();
                    me.send_msg(move || close_when_told(ev, p)).unwrap();
                    return;
                }
                for o in p.lock().unwrap().iter() {
                    o.lock().unwrap().take();
                }
            }
            close_when_told(ev, p);
        }),
        step(move |next| {
            drop(b3);
            for n in ["sbase", "sbasep0", "sbasep1", "sbasep2", "sbasep3", "pt0"] {
                assert!(bdev::bdev::get(n).is_none(), "{n} still registered");
            }
            next.go()
        }),
    ];
    assert_eq!(common::run_steps(&eal, steps), 0);
    assert_eq!(events.load(Ordering::Acquire), 4, "remove events");
    drop(b4);
}

/// The arrays of `category` named `name`.
fn arrays_named(category: &str, name: &str) -> Vec<serde_json::Value> {
    let mut v = raid::get_bdevs(category).unwrap();
    v.retain(|a| a["name"] == name);
    v
}

/// Independent of the module's arithmetic: array block `lba` of a RAID0 of `n` bases
/// with strips of `sb` blocks.
fn raid0_where(lba: u64, sb: u64, n: u64) -> (usize, u64) {
    let strip = lba / sb;
    ((strip % n) as usize, strip / n * sb + lba % sb)
}

#[test]
fn raid0_layout_block_by_block() {
    let Some(eal) = common::eal("raid0_layout_block_by_block", "0") else {
        return;
    };
    // 3 bases of 42 blocks, 2 KiB strips (4 blocks): each gives 40 blocks, 120 in all.
    const SB: u64 = 4;
    const N: u64 = 120;
    let mems: Arc<Mutex<Vec<Mem>>> = Arc::default();
    let arr: Arc<Mutex<Option<Shared>>> = Arc::default();
    let (m1, m2, m3) = (mems.clone(), mems.clone(), mems.clone());
    let (a1, a2, a3, a4) = (arr.clone(), arr.clone(), arr.clone(), arr.clone());
    let ev = Arc::new(AtomicUsize::new(0));
    let (ev2, ev3) = (ev.clone(), ev.clone());
    let opts = |name: &str, level, bases: &[&str], kb| RaidOpts {
        name: name.into(),
        level,
        base_bdevs: bases.iter().map(|s| s.to_string()).collect(),
        strip_size_kb: kb,
        uuid: None,
    };
    let steps: Vec<Step> = vec![
        step(move |next| {
            let mut m = m1.lock().unwrap();
            for n in ["r0a", "r0b", "r0c"] {
                m.push(ram(n, 42));
            }
            let b3 = ["r0a", "r0b", "r0c"];
            // Bad parameters: clear errors, no claim left behind.
            for (o, what) in [
                (opts("r0", RaidLevel::Raid0, &b3, 0), "strip_size_kb"),
                (opts("r0", RaidLevel::Raid0, &b3, 3), "strip_size_kb"),
                (opts("r0", RaidLevel::Raid0, &b3, 64), "strip_size_kb"),
                (
                    opts("r0", RaidLevel::Raid0, &["r0a", "r0a"], 2),
                    "base_bdevs",
                ),
                (opts("r0", RaidLevel::Raid1, &["r0a"], 0), "base_bdevs"),
                (
                    opts("r0", RaidLevel::Raid1, &["r0a", "r0b"], 4),
                    "strip_size_kb",
                ),
                (opts("", RaidLevel::Raid0, &b3, 2), "name"),
            ] {
                match raid::create(o) {
                    Err(Error::Invalid { what: w, .. }) => assert_eq!(w, what),
                    other => panic!("expected invalid {what}: {other:?}"),
                }
            }
            assert!(matches!(
                raid::create(opts("r0", RaidLevel::Raid0, &["r0a", "nope"], 2)),
                Err(Error::NotFound(_))
            ));
            assert!(matches!(
                raid::create(opts("r0a", RaidLevel::Raid0, &["r0b", "r0c"], 2)),
                Err(Error::Exists(_))
            ));
            for n in b3 {
                assert!(bdev::bdev::get(n).unwrap().claimed_by().is_none(), "{n}");
            }
            let b = raid::create(opts("r0", RaidLevel::Raid0, &b3, 2)).unwrap();
            assert_eq!(b.info().num_blocks, N);
            assert_eq!(b.info().optimal_io_boundary, SB as u32);
            // A base of an array cannot join another.
            match raid::create(opts("r0x", RaidLevel::Raid1, &["r0c", "r0b"], 0)) {
                Err(Error::Claimed { .. }) => {}
                other => panic!("expected a claim error: {other:?}"),
            }
            // (Tests run in parallel in one process: other arrays may exist.)
            let info = arrays_named("all", "r0");
            assert_eq!(info.len(), 1);
            assert_eq!(info[0]["raid_level"], "raid0");
            assert_eq!(info[0]["strip_size_kb"], 2);
            assert_eq!(info[0]["state"], "online");
            assert!(raid::get_bdevs("bogus").is_err());
            *a1.lock().unwrap() = Some(open("r0", ev.clone()));
            next.go()
        }),
        // One write over the whole array (the layer cuts it at every strip).
        step(move |next| {
            let o = a2.lock().unwrap().clone().unwrap();
            write(&o, pattern(0x21, 0, N, BS), 0, N, move || next.go());
        }),
        step(move |next| {
            let m = m2.lock().unwrap().clone();
            for lba in 0..N {
                let (b, blba) = raid0_where(lba, SB, 3);
                assert_eq!(
                    block(&m[b], blba),
                    vec![pat(0x21, lba); BS],
                    "array block {lba}"
                );
            }
            // The blocks past the array's share stay untouched.
            for mm in &m {
                assert_eq!(block(mm, 40), vec![0; BS]);
            }
            // The other way: each base written directly, the array read in one go.
            for lba in 0..N {
                let (b, blba) = raid0_where(lba, SB, 3);
                let at = blba as usize * BS;
                m[b].lock().unwrap()[at..at + BS].fill(pat(0x77, lba));
            }
            let o = a3.lock().unwrap().clone().unwrap();
            read(&o, 0, N, move |buf| {
                assert_eq!(buf, pattern(0x77, 0, N, BS));
                next.go()
            });
        }),
        // Unmap across strips and bases zeroes exactly the mapped blocks.
        step(move |next| {
            let o = a4.lock().unwrap().clone().unwrap();
            let g = o.lock().unwrap();
            let x = g.as_ref().unwrap();
            x.d.unmap(&x.c, 6, 23, move |st| {
                assert_eq!(st, IoStatus::Success);
                let m = m3.lock().unwrap().clone();
                for lba in 0..N {
                    let (b, blba) = raid0_where(lba, SB, 3);
                    let want = if (6..29).contains(&lba) {
                        0
                    } else {
                        pat(0x77, lba)
                    };
                    assert_eq!(block(&m[b], blba), vec![want; BS], "array block {lba}");
                }
                next.go()
            })
            .unwrap();
        }),
        step(move |next| {
            // A base goes: the array goes offline, its descriptor hears of it and
            // closes, then the base's removal finishes.
            bdev::bdev::unregister("r0b", move |r| {
                r.unwrap();
                next.go()
            })
            .unwrap();
            fn close_when_told(ev: Arc<AtomicUsize>, arr: Arc<Mutex<Option<Shared>>>) {
                if ev.load(Ordering::Acquire) == 0 {
                    let me = framework::thread::current().unwrap();
                    me.send_msg(move || close_when_told(ev, arr)).unwrap();
                    return;
                }
                arr.lock().unwrap().take().unwrap().lock().unwrap().take();
            }
            close_when_told(ev2, arr);
        }),
        step(move |next| {
            assert!(bdev::bdev::get("r0").is_none());
            assert!(arrays_named("all", "r0").is_empty());
            assert_eq!(ev3.load(Ordering::Acquire), 1, "remove events on the array");
            // The other bases are free again.
            for n in ["r0a", "r0c"] {
                assert!(bdev::bdev::get(n).unwrap().claimed_by().is_none(), "{n}");
            }
            next.go()
        }),
        unregister_step("r0a"),
        unregister_step("r0c"),
    ];
    assert_eq!(common::run_steps(&eal, steps), 0);
}

/// Writes in flight on a RAID1 while one mirror is removed: each of `QD` writers owns
/// the blocks `i, i + QD, ...` (no two writes to one block in flight), records what
/// each successful write put there, and stops after `TOTAL` writes.
struct Writers {
    o: Shared,
    issued: AtomicUsize,
    done: Arc<AtomicUsize>,
    last: Mutex<Vec<u8>>,
    remove_at: usize,
    on_remove: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    finished: Arc<Latch>,
}

const QD: u64 = 8;
const TOTAL: usize = 3000;
const R1_BLOCKS: u64 = 256;

fn writer(w: Arc<Writers>, slot: u64, round: u64) {
    let k = w.issued.fetch_add(1, Ordering::AcqRel);
    if k >= TOTAL {
        w.finished.hit();
        return;
    }
    let blk = (slot + round * QD) % R1_BLOCKS;
    let fill = (k % 251) as u8 | 1;
    let w2 = w.clone();
    let g = w.o.lock().unwrap();
    let x = g.as_ref().unwrap();
    x.d.write_buf(&x.c, vec![fill; BS], blk, 1, move |st, _| {
        assert_eq!(st, IoStatus::Success, "write {k} to block {blk}");
        w2.last.lock().unwrap()[blk as usize] = fill;
        let n = w2.done.fetch_add(1, Ordering::AcqRel) + 1;
        if n == w2.remove_at {
            if let Some(f) = w2.on_remove.lock().unwrap().take() {
                f();
            }
        }
        writer(w2, slot, round + 1)
    })
    .unwrap();
}

#[test]
fn raid1_mirrors_and_survives_a_removed_base() {
    let Some(eal) = common::eal("raid1_mirrors_and_survives_a_removed_base", "0") else {
        return;
    };
    let mems: Arc<Mutex<Vec<Mem>>> = Arc::default();
    let arr: Arc<Mutex<Option<Shared>>> = Arc::default();
    let ev = Arc::new(AtomicUsize::new(0));
    let removed_done = Arc::new(AtomicUsize::new(0));
    let fail_a: Arc<AtomicBool> = Arc::default();
    let (fa1, fa2, fa3, a6) = (fail_a.clone(), fail_a.clone(), fail_a, arr.clone());
    // Writes completed when the mirror's removal had finished.
    let done_at_removal = Arc::new(AtomicUsize::new(usize::MAX));
    let (dar1, dar2) = (done_at_removal.clone(), done_at_removal.clone());
    let last: Arc<Mutex<Vec<u8>>> = Arc::default();
    let (m1, m2, m3) = (mems.clone(), mems.clone(), mems.clone());
    let (a1, a2, a3, a4, a5) = (
        arr.clone(),
        arr.clone(),
        arr.clone(),
        arr.clone(),
        arr.clone(),
    );
    let (ev1, rd1, rd2, l1, l2) = (
        ev.clone(),
        removed_done.clone(),
        removed_done.clone(),
        last.clone(),
        last.clone(),
    );
    let steps: Vec<Step> = vec![
        step(move |next| {
            let mut m = m1.lock().unwrap();
            m.push(ram_failing("r1a", R1_BLOCKS, fa1));
            m.push(ram("r1b", R1_BLOCKS + 8));
            let b = raid::create(RaidOpts {
                name: "r1".into(),
                level: RaidLevel::Raid1,
                base_bdevs: vec!["r1a".into(), "r1b".into()],
                strip_size_kb: 0,
                uuid: None,
            })
            .unwrap();
            assert_eq!(b.info().num_blocks, R1_BLOCKS, "the smaller mirror decides");
            *a1.lock().unwrap() = Some(open("r1", ev1));
            next.go()
        }),
        // A write lands on both mirrors.
        step(move |next| {
            let o = a2.lock().unwrap().clone().unwrap();
            write(
                &o,
                pattern(0x31, 0, R1_BLOCKS, BS),
                0,
                R1_BLOCKS,
                move || next.go(),
            );
        }),
        // Reads come from one mirror at a time: with the mirrors made different
        // behind the array's back, reads alternate between them.
        step(move |next| {
            let m = m2.lock().unwrap().clone();
            for (i, mm) in m.iter().enumerate() {
                let got = mm.lock().unwrap()[..R1_BLOCKS as usize * BS].to_vec();
                assert_eq!(got, pattern(0x31, 0, R1_BLOCKS, BS), "mirror {i}");
            }
            m[0].lock().unwrap()[..BS].fill(0xa0);
            m[1].lock().unwrap()[..BS].fill(0xb0);
            let seen: Arc<Mutex<Vec<u8>>> = Arc::default();
            let s2 = seen.clone();
            let o = a3.lock().unwrap().clone().unwrap();
            let latch = Latch::new(8, move || {
                let mut s = s2.lock().unwrap().clone();
                s.sort();
                s.dedup();
                assert_eq!(s, [0xa0, 0xb0], "reads use both mirrors");
                next.go()
            });
            for _ in 0..8 {
                let (la, s3) = (latch.clone(), seen.clone());
                read(&o, 0, 1, move |buf| {
                    assert!(buf.iter().all(|&x| x == buf[0]));
                    s3.lock().unwrap().push(buf[0]);
                    la.hit()
                });
            }
        }),
        // A mirror failing reads: every read is served by the other.
        step(move |next| {
            fa2.store(true, Ordering::Release);
            let o = a6.lock().unwrap().clone().unwrap();
            let latch = Latch::new(8, move || {
                fa3.store(false, Ordering::Release);
                next.go()
            });
            for _ in 0..8 {
                let la = latch.clone();
                read(&o, 0, 1, move |buf| {
                    assert_eq!(buf, vec![0xb0; BS], "read not served by r1b");
                    la.hit()
                });
            }
        }),
        // Writes in flight; mirror r1a is removed a third of the way through.
        step(move |next| {
            let o = a4.lock().unwrap().clone().unwrap();
            let finished = Latch::new(QD as usize, move || next.go());
            let done_count = Arc::new(AtomicUsize::new(0));
            let w = Arc::new(Writers {
                o,
                issued: AtomicUsize::new(0),
                done: done_count.clone(),
                last: Mutex::new(vec![0; R1_BLOCKS as usize]),
                remove_at: TOTAL / 3,
                on_remove: Mutex::new(Some(Box::new(move || {
                    bdev::bdev::unregister("r1a", move |r| {
                        r.unwrap();
                        dar1.store(done_count.load(Ordering::Acquire), Ordering::Release);
                        rd1.fetch_add(1, Ordering::AcqRel);
                    })
                    .unwrap();
                }))),
                finished,
            });
            let w2 = w.clone();
            // Keep the record for the checks after the run.
            *l1.lock().unwrap() = Vec::new();
            let keep = l1.clone();
            let me = framework::thread::current().unwrap();
            for s in 0..QD {
                writer(w.clone(), s, 0);
            }
            // Copy the final record when the writers are done (the latch fires on the
            // last writer's thread, this one).
            me.send_msg(move || {
                fn wait(w: Arc<Writers>, keep: Arc<Mutex<Vec<u8>>>) {
                    if w.issued.load(Ordering::Acquire) < TOTAL + QD as usize {
                        let me = framework::thread::current().unwrap();
                        me.send_msg(move || wait(w, keep)).unwrap();
                        return;
                    }
                    *keep.lock().unwrap() = w.last.lock().unwrap().clone();
                }
                wait(w2, keep)
            })
            .unwrap();
        }),
        // The removal finished (its descriptor closed after every channel let go),
        // the array says degraded and still serves: every block reads back as last
        // written, through the array and on the remaining mirror.
        step(move |next| {
            fn until_removed(rd: Arc<AtomicUsize>, last: Arc<Mutex<Vec<u8>>>, next: Next) {
                if rd.load(Ordering::Acquire) == 0 || last.lock().unwrap().is_empty() {
                    let me = framework::thread::current().unwrap();
                    me.send_msg(move || until_removed(rd, last, next)).unwrap();
                    return;
                }
                next.go()
            }
            until_removed(rd2, l2, next)
        }),
        step(move |next| {
            assert!(bdev::bdev::get("r1a").is_none());
            let info = arrays_named("online", "r1");
            assert_eq!(info.len(), 1);
            assert_eq!(info[0]["degraded"], true);
            assert_eq!(info[0]["num_base_bdevs"], 2);
            assert_eq!(info[0]["num_base_bdevs_operational"], 1);
            assert_eq!(info[0]["base_bdevs_list"][0]["is_configured"], false);
            assert_eq!(info[0]["base_bdevs_list"][1]["name"], "r1b");
            let want = last.lock().unwrap().clone();
            let mb = m3.lock().unwrap()[1].clone();
            for (b, &fill) in want.iter().enumerate() {
                let expect = if fill == 0 { pat(0x31, b as u64) } else { fill };
                let expect = if b == 0 && fill == 0 { 0xb0 } else { expect };
                assert_eq!(block(&mb, b as u64), vec![expect; BS], "r1b block {b}");
            }
            let o = a5.lock().unwrap().clone().unwrap();
            read(&o, 0, R1_BLOCKS, move |buf| {
                for (b, &fill) in want.iter().enumerate() {
                    let expect = if fill == 0 { pat(0x31, b as u64) } else { fill };
                    let expect = if b == 0 && fill == 0 { 0xb0 } else { expect };
                    assert!(
                        buf[b * BS..(b + 1) * BS].iter().all(|&x| x == expect),
                        "array block {b}"
                    );
                }
                next.go()
            });
        }),
        step(move |next| {
            // The array's own descriptor never heard of a removal.
            assert_eq!(ev.load(Ordering::Acquire), 0);
            arr.lock().unwrap().take().unwrap().lock().unwrap().take();
            next.go()
        }),
        // The last mirror going takes the array offline (unregistered).
        unregister_step("r1b"),
        step(move |next| {
            assert!(bdev::bdev::get("r1").is_none());
            assert!(arrays_named("all", "r1").is_empty());
            assert_eq!(removed_done.load(Ordering::Acquire), 1);
            // The removal finished while writes were still going.
            let at = dar2.load(Ordering::Acquire);
            assert!(
                at < TOTAL,
                "the mirror's removal finished after the writes ({at})"
            );
            next.go()
        }),
    ];
    assert_eq!(common::run_steps(&eal, steps), 0);
}
