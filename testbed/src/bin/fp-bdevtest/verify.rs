//! `verify`: write, read back and compare through every kind of buffer, compare and
//! miscompare, write-zeroes, and bdevperf's random `verify` at depth.

use std::sync::{Arc, Mutex};

use bdev::{IoStatus, IoType};
use eal::Eal;

use crate::io::{differs, new_job, open_io, pattern, submit, Buf, Kind, SharedIo, SharedJob};
use crate::steps::{eal_of, fail, the_fw, Next, Step};

pub fn verify_steps(name: &str, eal: &Eal) -> Vec<Step> {
    let name = name.to_string();
    let io: SharedIo = Arc::new(Mutex::new(None));
    let mut steps: Vec<Step> = Vec::new();
    let (n1, io1) = (name.clone(), io.clone());
    steps.push(Box::new(move |next| match open_io(&n1) {
        Ok(o) => {
            let v = o.lock().unwrap_or_else(|e| e.into_inner()).take();
            *io1.lock().unwrap_or_else(|e| e.into_inner()) = v;
            next.go()
        }
        Err(e) => next.fail(e),
    }));
    // The controller's transfer limit, from the module's bdev_get_bdevs data.
    let mx = bdev::bdev::get(&name)
        .and_then(|b| b.module().info_json())
        .and_then(|j| j["nvme"][0]["max_transfer_bytes"].as_u64())
        .unwrap_or(128 * 1024);
    // (first block, bytes, buffer): apart from each other where the namespace allows
    // (the last ones are moved back to fit a small one); the compare step below
    // checks the first case's blocks, which nothing else writes before it.
    let cases: [(u64, u64, Kind); 6] = [
        (0, 4096, Kind::Dma),
        (100, 8 * 4096, Kind::Heap),
        (300, 5 * 4096 + 4096, Kind::Split),
        (1000, 3 * mx + 4096, Kind::Dma),
        (5000, 4 << 20, Kind::Dma),
        (20000, 3 * mx, Kind::Split),
    ];
    for (i, (off_blocks, bytes, kind)) in cases.into_iter().enumerate() {
        let io2 = io.clone();
        let eal = eal.clone();
        steps.push(Box::new(move |next| {
            case(io2, off_blocks, bytes, kind, i as u64 + 1, eal, next)
        }));
    }
    let io3 = io.clone();
    let e3 = eal.clone();
    steps.push(Box::new(move |next| compares(io3, e3, next)));
    let io4 = io.clone();
    steps.push(Box::new(move |next| zeroes(io4, next)));
    let io5 = io.clone();
    steps.push(Box::new(move |next| {
        random_verify(io5, eal_of(), 16, 2000, next)
    }));
    steps.push(Box::new(move |next| {
        // Put the channel and close the descriptor before the detach.
        drop(io.lock().unwrap_or_else(|e| e.into_inner()).take());
        println!("VERIFY {name} ok");
        next.go()
    }));
    steps
}

/// Write `bytes` (rounded to blocks) at block `off` from a `kind` buffer, read them
/// back into another, compare.
fn case(io: SharedIo, off: u64, bytes: u64, kind: Kind, seed: u64, eal: Eal, next: Next) {
    let (bs, blocks, name) = {
        let g = io.lock().unwrap_or_else(|e| e.into_inner());
        let Some(o) = g.as_ref() else {
            return next.fail("closed");
        };
        (o.bs, o.blocks, o.name.clone())
    };
    let n = bytes.div_ceil(bs as u64);
    let off = off.min(blocks - n);
    let want = pattern(seed, off, n, bs);
    let wbuf = match Buf::new(kind, &want, &eal) {
        Ok(b) => b,
        Err(e) => return next.fail(e),
    };
    let io2 = io.clone();
    submit_or_stop(&io, IoType::Write, off, n, wbuf, move |st, _| {
        if st != IoStatus::Success {
            return next.fail(format!("{name}: write {off}+{n} ({kind:?}): {st:?}"));
        }
        let rbuf = match Buf::new(kind, &vec![0u8; want.len()], &eal) {
            Ok(b) => b,
            Err(e) => return next.fail(e),
        };
        submit_or_stop(&io2, IoType::Read, off, n, rbuf, move |st, b| {
            if st != IoStatus::Success {
                return next.fail(format!("{name}: read {off}+{n} ({kind:?}): {st:?}"));
            }
            if let Some(d) = differs(&name, off, bs, &want, &b.bytes()) {
                return next.fail(format!("{d} ({kind:?}, {n} blocks)"));
            }
            println!("CASE {name} {kind:?} {n} blocks at {off} ok");
            next.go()
        });
    });
}

/// Compare the data of the first case (success), then different data (miscompare).
fn compares(io: SharedIo, eal: Eal, next: Next) {
    let (bs, name, supported) = {
        let g = io.lock().unwrap_or_else(|e| e.into_inner());
        let Some(o) = g.as_ref() else {
            return next.fail("closed");
        };
        (
            o.bs,
            o.name.clone(),
            o.desc.bdev().io_type_supported(IoType::Compare),
        )
    };
    if !supported {
        println!("CASE {name} compare not supported by the controller");
        return next.go();
    }
    let n = 4096u64.div_ceil(bs as u64);
    let same = match Buf::new(Kind::Dma, &pattern(1, 0, n, bs), &eal) {
        Ok(b) => b,
        Err(e) => return next.fail(e),
    };
    let io2 = io.clone();
    submit_or_stop(&io, IoType::Compare, 0, n, same, move |st, _| {
        if st != IoStatus::Success {
            return next.fail(format!("{name}: compare of equal data: {st:?}"));
        }
        let other = match Buf::new(Kind::Heap, &pattern(99, 0, n, bs), &eal) {
            Ok(b) => b,
            Err(e) => return next.fail(e),
        };
        submit_or_stop(&io2, IoType::Compare, 0, n, other, move |st, _| {
            if st != IoStatus::Miscompare {
                return next.fail(format!("{name}: compare of other data: {st:?}"));
            }
            println!("CASE {name} compare and miscompare ok");
            next.go()
        });
    });
}

/// Write-zeroes over the first case's blocks, then read zeroes.
fn zeroes(io: SharedIo, next: Next) {
    let g = io.lock().unwrap_or_else(|e| e.into_inner());
    let Some(o) = g.as_ref() else {
        return next.fail("closed");
    };
    let (bs, name) = (o.bs, o.name.clone());
    if !o.desc.bdev().io_type_supported(IoType::WriteZeroes) {
        println!("CASE {name} write-zeroes not supported by the controller");
        return next.go();
    }
    let n = 8192u64.div_ceil(bs as u64);
    let io2 = io.clone();
    let r = o.desc.write_zeroes(&o.ch, 0, n, move |st| {
        if st != IoStatus::Success {
            return next.fail(format!("{name}: write zeroes: {st:?}"));
        }
        submit_or_stop(
            &io2,
            IoType::Read,
            0,
            n,
            Buf::Heap(vec![0xa5; n as usize * bs]),
            move |st, b| {
                if st != IoStatus::Success || b.bytes().iter().any(|&x| x != 0) {
                    return next.fail(format!(
                        "{name}: blocks not zero after write zeroes ({st:?})"
                    ));
                }
                println!("CASE {name} write-zeroes ok");
                next.go()
            },
        );
    });
    if let Err(e) = r {
        drop(g);
        fail(&the_fw(), e);
    }
}

/// [`submit`], stopping the app with `FAIL <why>` if the request cannot be submitted
/// (its callback, which holds the step's `Next`, is then gone).
fn submit_or_stop<F>(io: &SharedIo, t: IoType, off: u64, n: u64, buf: Buf, cb: F)
where
    F: FnOnce(IoStatus, Buf) + Send + 'static,
{
    if let Err(e) = submit(io, t, off, n, buf, cb) {
        fail(&the_fw(), e);
    }
}

/// bdevperf's `verify`: `depth` slots, each writing a random 4 KiB (at least one
/// block) at a random offset in its own stripe, reading it back and comparing, until
/// `total` write/read pairs are done.
fn random_verify(io: SharedIo, eal: Eal, depth: usize, total: u64, next: Next) {
    let job = new_job(total, Some(next));
    job.lock().unwrap_or_else(|e| e.into_inner()).running = depth;
    for slot in 0..depth {
        verify_cycle(io.clone(), eal.clone(), job.clone(), slot, depth);
    }
}

fn slot_end(job: &SharedJob, err: Option<String>) {
    let mut j = job.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = err {
        j.first_err.get_or_insert(e);
    }
    j.running -= 1;
    if j.running == 0 {
        let next = j.next.take();
        let (ok, e) = (j.ok, j.first_err.take());
        drop(j);
        if let Some(n) = next {
            match e {
                Some(e) => n.fail(e),
                None => {
                    println!("CASE random-verify {ok} write/read/compare ok");
                    n.go()
                }
            }
        }
    }
}

fn verify_cycle(io: SharedIo, eal: Eal, job: SharedJob, slot: usize, depth: usize) {
    let (bs, blocks, name) = {
        let g = io.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_ref() {
            Some(o) => (o.bs, o.blocks, o.name.clone()),
            None => return slot_end(&job, Some("closed".into())),
        }
    };
    let (off, seed) = {
        let mut j = job.lock().unwrap_or_else(|e| e.into_inner());
        if j.left == 0 || j.first_err.is_some() {
            drop(j);
            return slot_end(&job, None);
        }
        j.left -= 1;
        let n = 4096u64.div_ceil(bs as u64);
        let stripes = blocks / n / depth as u64;
        let off = ((j.rand() % stripes) * depth as u64 + slot as u64) * n;
        (off, j.rand())
    };
    let n = 4096u64.div_ceil(bs as u64);
    let want = pattern(seed, off, n, bs);
    let wbuf = match Buf::new(Kind::Dma, &want, &eal) {
        Ok(b) => b,
        Err(e) => return slot_end(&job, Some(e)),
    };
    let (io2, j2) = (io.clone(), job.clone());
    let r = submit(&io, IoType::Write, off, n, wbuf, move |st, _| {
        if st != IoStatus::Success {
            return slot_end(&j2, Some(format!("{name}: verify write at {off}: {st:?}")));
        }
        let rbuf = match Buf::new(Kind::Dma, &vec![0u8; want.len()], &eal) {
            Ok(b) => b,
            Err(e) => return slot_end(&j2, Some(e)),
        };
        let (io3, j3) = (io2.clone(), j2.clone());
        let r = submit(&io2, IoType::Read, off, n, rbuf, move |st, b| {
            if st != IoStatus::Success {
                return slot_end(&j3, Some(format!("{name}: verify read at {off}: {st:?}")));
            }
            if let Some(d) = differs(&name, off, bs, &want, &b.bytes()) {
                return slot_end(&j3, Some(d));
            }
            j3.lock().unwrap_or_else(|e| e.into_inner()).ok += 1;
            verify_cycle(io3, eal, j3, slot, depth);
        });
        if let Err(e) = r {
            slot_end(&j2, Some(e));
        }
    });
    if let Err(e) = r {
        slot_end(&job, Some(e));
    }
}
