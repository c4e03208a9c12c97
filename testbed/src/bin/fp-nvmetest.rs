//! The guest half of `tests/nvme_driver.rs`: runs inside the QEMU testbed against the
//! emulated NVMe controller, through our driver, and prints one `CHECK <name> ok` line
//! per check (exit 1 with `FAIL <name>: <why>` at the first failure).
//!
//! ```text
//! fp-nvmetest [EAL args] -- check ADDR SERIAL NS1_BYTES NS2_BYTES
//! fp-nvmetest [EAL args] -- write-file ADDR NSID LBA FILE   # file -> device
//! fp-nvmetest [EAL args] -- read-file ADDR NSID LBA LEN FILE # device -> file
//! ```

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eal::{Eal, VirtAddr};
use nvme::spec::DeallocRead;
use nvme::{
    Completion, Controller, ControllerOptions, Done, Error, IoBuf, Namespace, QPair, QPairOptions,
    Reap,
};

type Res<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let (eal, rest) = match testbed::guest_bin::init_eal("fp-nvmetest") {
        Ok(x) => x,
        Err(code) => return code,
    };
    let r = match rest.first().map(String::as_str) {
        Some("check") if rest.len() == 5 => check(&eal, &rest[1], &rest[2], &rest[3], &rest[4]),
        Some("write-file") if rest.len() == 5 => {
            file_io(&eal, &rest[1], &rest[2], &rest[3], None, &rest[4])
        }
        Some("read-file") if rest.len() == 6 => {
            file_io(&eal, &rest[1], &rest[2], &rest[3], Some(&rest[4]), &rest[5])
        }
        _ => {
            eprintln!("fp-nvmetest: usage: check ADDR SERIAL NS1_BYTES NS2_BYTES | write-file ADDR NSID LBA FILE | read-file ADDR NSID LBA LEN FILE");
            return ExitCode::from(2);
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("FAIL {e}");
            ExitCode::FAILURE
        }
    }
}

fn open(eal: &Eal, addr: &str) -> Res<Controller> {
    let a = addr.parse().map_err(|e| format!("open: {e}"))?;
    Controller::open(eal, a, ControllerOptions::default()).map_err(|e| format!("open: {e}"))
}

type Slot = Arc<Mutex<Option<(nvme::Result<Completion>, IoBuf)>>>;

/// Poll `qp` until a completion callback has filled `slot` (30 s at most).
fn poll_slot<T>(qp: &mut QPair, what: &str, slot: &Mutex<Option<T>>) -> Res<T> {
    let start = Instant::now();
    loop {
        qp.process_completions(Reap::All);
        if let Some(x) = slot.lock().unwrap().take() {
            return Ok(x);
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!("{what}: no completion within 30 s"));
        }
    }
}

/// Submit one safe I/O and poll until its callback ran.
fn sync_io(
    qp: &mut QPair,
    what: &str,
    submit: impl FnOnce(
        &mut QPair,
        Box<dyn FnOnce(nvme::Result<Completion>, IoBuf) + Send>,
    ) -> Result<(), nvme::Rejected>,
) -> Res<(nvme::Result<Completion>, IoBuf)> {
    let slot: Slot = Arc::new(Mutex::new(None));
    let s = slot.clone();
    submit(qp, Box::new(move |r, b| *s.lock().unwrap() = Some((r, b))))
        .map_err(|e| format!("{what}: submit: {e}"))?;
    poll_slot(qp, what, &slot)
}

fn sync_done(
    qp: &mut QPair,
    what: &str,
    submit: impl FnOnce(&mut QPair, Done) -> nvme::Result<()>,
) -> Res<nvme::Result<Completion>> {
    let slot = Arc::new(Mutex::new(None));
    let s = slot.clone();
    submit(qp, Done::callback(move |r| *s.lock().unwrap() = Some(r)))
        .map_err(|e| format!("{what}: submit: {e}"))?;
    poll_slot(qp, what, &slot)
}

fn pattern(seed: u64, buf: &mut [u8]) {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for c in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        c.copy_from_slice(&b[..c.len()]);
    }
}

fn write_buf(qp: &mut QPair, ns: &Namespace, lba: u64, buf: IoBuf, what: &str) -> Res<IoBuf> {
    let (r, b) = sync_io(qp, what, |q, cb| q.write(ns, lba, buf, cb))?;
    r.map_err(|e| format!("{what}: write: {e}"))?;
    Ok(b)
}

fn read_buf(qp: &mut QPair, ns: &Namespace, lba: u64, buf: IoBuf, what: &str) -> Res<IoBuf> {
    let (r, b) = sync_io(qp, what, |q, cb| q.read(ns, lba, buf, cb))?;
    r.map_err(|e| format!("{what}: read: {e}"))?;
    Ok(b)
}

fn ok(name: &str, detail: impl std::fmt::Display) {
    println!("CHECK {name} ok {detail}");
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Res<()> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

fn check(eal: &Eal, addr: &str, serial: &str, ns1_bytes: &str, ns2_bytes: &str) -> Res<()> {
    let ns1_bytes: u64 = ns1_bytes.parse().map_err(|_| "bad NS1_BYTES".to_string())?;
    let ns2_bytes: u64 = ns2_bytes.parse().map_err(|_| "bad NS2_BYTES".to_string())?;
    let c = open(eal, addr)?;
    let backend = format!("{:?}", c.device().backend());

    // --- identify ---
    let d = c.data();
    ensure(d.serial() == serial, || {
        format!("identify: serial '{}' != '{serial}'", d.serial())
    })?;
    ensure(d.model() == "QEMU NVMe Ctrl", || {
        format!("identify: model '{}'", d.model())
    })?;
    ensure(d.vid == 0x1b36, || format!("identify: vid {:#x}", d.vid))?;
    let nss = c.namespaces();
    ensure(nss.len() == 2, || {
        format!("identify: {} namespaces", nss.len())
    })?;
    let (n1, n2) = (nss[0].clone(), nss[1].clone());
    ensure(
        n1.id == 1 && n1.block_size == 512 && n1.size_blocks == ns1_bytes / 512,
        || format!("identify: ns1 {n1:?}"),
    )?;
    ensure(
        n2.id == 2 && n2.block_size == 4096 && n2.size_blocks == ns2_bytes / 4096,
        || format!("identify: ns2 {n2:?}"),
    )?;
    ensure(n1.formats.len() > n1.format_index, || {
        "identify: format index out of range".into()
    })?;
    ok(
        "identify",
        format!(
            "backend={backend} serial={} model='{}' mdts={} max_xfer={} ns1={}x{} ns2={}x{} dlfeat1={:#x} oncs={:#x}",
            d.serial(),
            d.model(),
            d.mdts,
            c.max_transfer(),
            n1.size_blocks,
            n1.block_size,
            n2.size_blocks,
            n2.block_size,
            n1.dlfeat,
            d.oncs
        ),
    );

    let mut qp = c
        .alloc_io_qpair(QPairOptions::default())
        .map_err(|e| format!("alloc qpair: {e}"))?;
    let mx = c.max_transfer() as usize;

    // --- write/read patterns, many sizes, both namespaces ---
    let mut seed = 1u64;
    for ns in [&n1, &n2] {
        let bs = ns.block_size as usize;
        let mut sizes = vec![
            bs,
            2 * bs,
            4096,
            4096 + bs,
            65536,
            131072 + bs,
            mx,
            mx + bs,
            1 << 20,
            (1 << 20) + 4096,
        ];
        sizes.retain(|s| s % bs == 0);
        sizes.sort();
        sizes.dedup();
        let mut lba = 8u64;
        for &len in &sizes {
            seed += 1;
            let mut w = IoBuf::alloc(eal, len).map_err(|e| e.to_string())?;
            pattern(seed, w.as_mut_slice());
            let w = write_buf(&mut qp, ns, lba, w, &format!("pattern ns{} {len}", ns.id))?;
            let r = read_buf(
                &mut qp,
                ns,
                lba,
                IoBuf::alloc(eal, len).map_err(|e| e.to_string())?,
                "pattern read",
            )?;
            ensure(r.as_slice() == w.as_slice(), || {
                format!("pattern ns{} len {len} lba {lba}: read back differs", ns.id)
            })?;
            lba += (len / bs) as u64 + 3;
        }
        ok(&format!("patterns-ns{}", ns.id), format!("sizes={sizes:?}"));
    }

    // --- buffers across a 2 MiB hugepage boundary ---
    let mut noncontig = 0;
    for (ns, len) in [
        (&n1, 1usize << 20),
        (&n2, 1 << 20),
        (&n1, 8192),
        (&n2, 8192),
    ] {
        seed += 1;
        let mut w = IoBuf::alloc_crossing(eal, len, 2 << 20).map_err(|e| e.to_string())?;
        let b = (w.va().0 + len as u64 / 2) & !((2 << 20) - 1);
        ensure(w.va().0 < b && b < w.va().0 + len as u64, || {
            "crossing buffer does not cross".into()
        })?;
        let (i1, i2) = (
            eal.memory().virt2iova(VirtAddr(b - 4096)),
            eal.memory().virt2iova(VirtAddr(b)),
        );
        if let (Some(a), Some(z)) = (i1, i2) {
            if z.0 != a.0 + 4096 {
                noncontig += 1;
            }
        }
        pattern(seed, w.as_mut_slice());
        let w = write_buf(&mut qp, ns, 64, w, "crossing write")?;
        let r = read_buf(
            &mut qp,
            ns,
            64,
            IoBuf::alloc(eal, len).map_err(|e| e.to_string())?,
            "crossing read",
        )?;
        ensure(r.as_slice() == w.as_slice(), || {
            format!("crossing ns{} len {len}: plain read differs", ns.id)
        })?;
        let r2 = read_buf(
            &mut qp,
            ns,
            64,
            IoBuf::alloc_crossing(eal, len, 2 << 20).map_err(|e| e.to_string())?,
            "crossing read 2",
        )?;
        ensure(r2.as_slice() == w.as_slice(), || {
            format!("crossing ns{} len {len}: crossing read differs", ns.id)
        })?;
    }
    ok(
        "hugepage-boundary",
        format!(
            "iova_discontiguous_boundaries={noncontig} iova_mode={:?}",
            eal.memory().iova_mode()
        ),
    );

    // --- write zeroes and deallocate read back as zeroes ---
    for ns in [&n1, &n2] {
        let bs = ns.block_size as usize;
        let u = (4096 / bs).max(1); // blocks per 4 KiB: keep trims page aligned
        let units = 16;
        let len = units * 4096;
        let lba = 20000 / (bs as u64 / 512);
        let mut w = IoBuf::alloc(eal, len).map_err(|e| e.to_string())?;
        pattern(77, w.as_mut_slice());
        let w = write_buf(&mut qp, ns, lba, w, "wz pattern")?;
        sync_done(&mut qp, "write zeroes", |q, d| {
            q.write_zeroes(ns, lba + 2, 8, d)
        })?
        .map_err(|e| format!("write zeroes: {e}"))?;
        let r = read_buf(
            &mut qp,
            ns,
            lba,
            IoBuf::alloc(eal, len).map_err(|e| e.to_string())?,
            "wz read",
        )?;
        ensure(r.as_slice()[..2 * bs] == w.as_slice()[..2 * bs], || {
            "write zeroes: blocks before changed".into()
        })?;
        ensure(
            r.as_slice()[2 * bs..10 * bs].iter().all(|&b| b == 0),
            || "write zeroes: blocks not zero".into(),
        )?;
        ensure(r.as_slice()[10 * bs..] == w.as_slice()[10 * bs..], || {
            "write zeroes: blocks after changed".into()
        })?;
        // Deallocate: what the blocks read as is what DLFEAT advertises.
        let w = write_buf(&mut qp, ns, lba, w, "trim pattern")?;
        let (u64_, lba_) = (u as u64, lba);
        sync_done(&mut qp, "deallocate", |q, d| {
            q.deallocate(
                ns,
                &[
                    (lba_ + 4 * u64_, 4 * u as u32),
                    (lba_ + 12 * u64_, 2 * u as u32),
                ],
                d,
            )
        })?
        .map_err(|e| format!("deallocate: {e}"))?;
        let r = read_buf(
            &mut qp,
            ns,
            lba,
            IoBuf::alloc(eal, len).map_err(|e| e.to_string())?,
            "trim read",
        )?;
        let trimmed: Vec<usize> = (4..8).chain(12..14).collect();
        let want = match ns.dealloc_read {
            DeallocRead::Zeroes => Some(0u8),
            DeallocRead::Ones => Some(0xff),
            DeallocRead::NotReported => None,
        };
        for unit in 0..units {
            let got = &r.as_slice()[unit * 4096..(unit + 1) * 4096];
            if trimmed.contains(&unit) {
                if let Some(v) = want {
                    ensure(got.iter().all(|&b| b == v), || {
                        format!(
                            "deallocate ns{}: 4 KiB unit {unit} not {v:#x} (DLFEAT {:#x})",
                            ns.id, ns.dlfeat
                        )
                    })?;
                }
            } else {
                ensure(got == &w.as_slice()[unit * 4096..(unit + 1) * 4096], || {
                    format!("deallocate ns{}: untouched unit {unit} changed", ns.id)
                })?;
            }
        }
        ok(
            &format!("zeroes-ns{}", ns.id),
            format!(
                "dealloc_reads={:?} dlfeat={:#x}",
                ns.dealloc_read, ns.dlfeat
            ),
        );
    }

    // --- flush ---
    sync_done(&mut qp, "flush", |q, d| q.flush(&n1, d))?.map_err(|e| format!("flush: {e}"))?;
    ok("flush", "");

    // --- out-of-range LBA: typed error ---
    for (ns, lba, blocks) in [
        (&n1, n1.size_blocks, 1u64),
        (&n1, n1.size_blocks - 1, 2),
        (&n2, n2.size_blocks + 100, 1),
    ] {
        let len = (blocks * ns.block_size) as usize;
        let (r, _) = sync_io(&mut qp, "oob", |q, cb| {
            q.read(ns, lba, IoBuf::alloc(eal, len).unwrap(), cb)
        })?;
        ensure(matches!(r, Err(Error::LbaOutOfRange { .. })), || {
            format!("out of range ns{} lba {lba}: got {r:?}", ns.id)
        })?;
    }
    ok("lba-out-of-range", "");

    // --- compare ---
    let mut w = IoBuf::alloc(eal, 8192).map_err(|e| e.to_string())?;
    pattern(99, w.as_mut_slice());
    let mut w = write_buf(&mut qp, &n1, 300, w, "compare pattern")?;
    let (r, mut w2) = sync_io(&mut qp, "compare", |q, cb| q.compare(&n1, 300, w, cb))?;
    ensure(r.is_ok(), || format!("compare of equal data: {r:?}"))?;
    w2.as_mut_slice()[5000] ^= 1;
    let (r, _) = sync_io(&mut qp, "miscompare", |q, cb| q.compare(&n1, 300, w2, cb))?;
    ensure(matches!(r, Err(Error::CompareFailure { .. })), || {
        format!("compare of different data: {r:?}")
    })?;
    w = IoBuf::alloc(eal, 1 << 20).map_err(|e| e.to_string())?;
    pattern(5, w.as_mut_slice());
    let w = write_buf(&mut qp, &n2, 64, w, "big compare pattern")?;
    let (r, _) = sync_io(&mut qp, "big compare", |q, cb| q.compare(&n2, 64, w, cb))?;
    ensure(
        r.as_ref().is_ok_and(|c| c.commands > 1 || mx >= 1 << 20),
        || format!("split compare: {r:?}"),
    )?;
    ok("compare", "");

    // --- queue full ---
    {
        let mut small = c
            .alloc_io_qpair(QPairOptions {
                size: 8,
                ..Default::default()
            })
            .map_err(|e| e.to_string())?;
        let cap = small.capacity();
        ensure(cap == 7, || {
            format!("queue of 8 entries has capacity {cap}")
        })?;
        let done = Arc::new(Mutex::new(0usize));
        for i in 0..cap {
            let d = done.clone();
            small
                .read(
                    &n1,
                    i as u64,
                    IoBuf::alloc(eal, 512).unwrap(),
                    move |r, _| {
                        assert!(r.is_ok());
                        *d.lock().unwrap() += 1
                    },
                )
                .map_err(|e| format!("queue full: submit {i}: {e}"))?;
        }
        match small.read(&n1, 0, IoBuf::alloc(eal, 512).unwrap(), |_, _| {}) {
            Err(nvme::Rejected {
                error: Error::QueueFull { depth },
                buf: Some(b),
            }) => ensure(depth == cap && b.len() == 512, || {
                format!("queue full: depth {depth}")
            })?,
            other => {
                return Err(format!(
                    "queue full: expected QueueFull, got {:?}",
                    other.err()
                ))
            }
        }
        let start = Instant::now();
        while *done.lock().unwrap() < cap && start.elapsed() < Duration::from_secs(30) {
            small.process_completions(Reap::All);
        }
        ensure(*done.lock().unwrap() == cap, || {
            "queue full: not all completed".into()
        })?;
        // A split I/O needing more commands than are free (here more than the whole
        // queue holds) is queued and submitted as ids free, and reads what was written.
        let big = (cap + 2) * mx; // cap + 2 commands
        for i in 0..5 {
            small
                .read(&n1, i, IoBuf::alloc(eal, 512).unwrap(), |_, _| {})
                .map_err(|e| e.to_string())?;
        }
        let mut w = IoBuf::alloc(eal, big).unwrap();
        pattern(77, w.as_mut_slice());
        let want = w.as_slice().to_vec();
        let got: Arc<Mutex<Option<Result<IoBuf, String>>>> = Arc::new(Mutex::new(None));
        let g2 = got.clone();
        small
            .write(&n1, 60000, w, move |r, b| {
                *g2.lock().unwrap() = Some(r.map(|_| b).map_err(|e| e.to_string()))
            })
            .map_err(|e| format!("split queued write: {e}"))?;
        let start = Instant::now();
        while got.lock().unwrap().is_none() && start.elapsed() < Duration::from_secs(30) {
            small.process_completions(Reap::All);
        }
        let r = got.lock().unwrap().take();
        ensure(matches!(r, Some(Ok(_))), || {
            format!("split queued write: {r:?}")
        })?;
        let back = read_buf(
            &mut small,
            &n1,
            60000,
            IoBuf::alloc(eal, big).unwrap(),
            "split queued read",
        )?;
        ensure(back.as_slice() == want.as_slice(), || {
            "split queued I/O: data differs".into()
        })?;
        let start = Instant::now();
        while small.outstanding() > 0 && start.elapsed() < Duration::from_secs(30) {
            small.process_completions(Reap::All);
        }
        ensure(small.outstanding() == 0, || "queue full: leftovers".into())?;
    }
    ok("queue-full", "");

    // --- two threads, a queue pair each ---
    let mut handles = Vec::new();
    for t in 0..2u64 {
        let c2 = c.clone();
        let eal2 = eal.clone();
        let ns = n1.clone();
        handles.push(std::thread::spawn(move || -> Res<u64> {
            let mut q = c2
                .alloc_io_qpair(QPairOptions::default())
                .map_err(|e| e.to_string())?;
            let mut n = 0;
            for i in 0..32u64 {
                let lba = 40000 + t * 1000 + i * 16;
                let mut w = IoBuf::alloc(&eal2, 8192).map_err(|e| e.to_string())?;
                pattern(t * 100 + i, w.as_mut_slice());
                let w = write_buf(&mut q, &ns, lba, w, "thread write")?;
                let r = read_buf(
                    &mut q,
                    &ns,
                    lba,
                    IoBuf::alloc(&eal2, 8192).map_err(|e| e.to_string())?,
                    "thread read",
                )?;
                ensure(r.as_slice() == w.as_slice(), || {
                    format!("thread {t}: block {lba} differs")
                })?;
                n += 1;
            }
            Ok(n)
        }));
    }
    for h in handles {
        let n = h.join().map_err(|_| "thread panicked".to_string())??;
        ensure(n == 32, || "thread did not finish".into())?;
    }
    ok("per-thread-qpairs", "");

    // --- controller reset with I/O outstanding ---
    let gen0 = c.generation();
    let fired = Arc::new(Mutex::new(Vec::new()));
    let mut held = Vec::new();
    for i in 0..24u64 {
        let f = fired.clone();
        let mut w = IoBuf::alloc(eal, 4096).map_err(|e| e.to_string())?;
        pattern(i, w.as_mut_slice());
        qp.write(&n1, 50000 + i * 8, w, move |r, _| {
            f.lock().unwrap().push((i, r.map_err(|e| e.to_string())))
        })
        .map_err(|e| format!("reset: submit: {e}"))?;
        if i == 15 {
            qp.flush_submissions(); // the device sees 0..=15; 16..=23 stay queued
        }
        held.push(i);
    }
    c.reset().map_err(|e| format!("reset: {e}"))?;
    ensure(c.generation() == gen0 + 1, || {
        "reset: generation did not move".into()
    })?;
    let start = Instant::now();
    while fired.lock().unwrap().len() < 24 && start.elapsed() < Duration::from_secs(30) {
        qp.process_completions(Reap::All);
    }
    let f = fired.lock().unwrap().clone();
    ensure(f.len() == 24, || {
        format!("reset: {} of 24 callbacks fired", f.len())
    })?;
    let mut ids: Vec<u64> = f.iter().map(|x| x.0).collect();
    ids.sort();
    ensure(ids == held, || {
        "reset: a callback fired twice or not at all".into()
    })?;
    let mut errs = 0;
    for (i, r) in &f {
        match r {
            Ok(_) => ensure(*i <= 15, || {
                format!("reset: never-doorbelled write {i} succeeded")
            })?,
            Err(e) => {
                ensure(e.contains("reset"), || {
                    format!("reset: write {i} failed with '{e}'")
                })?;
                errs += 1;
            }
        }
    }
    ensure(errs >= 8, || format!("reset: only {errs} errors"))?;
    // New I/O works after the reset, on the same queue pair.
    let mut w = IoBuf::alloc(eal, 65536).map_err(|e| e.to_string())?;
    pattern(4242, w.as_mut_slice());
    let w = write_buf(&mut qp, &n1, 60000, w, "after reset")?;
    let r = read_buf(
        &mut qp,
        &n1,
        60000,
        IoBuf::alloc(eal, 65536).map_err(|e| e.to_string())?,
        "after reset read",
    )?;
    ensure(r.as_slice() == w.as_slice(), || {
        "after reset: data differs".into()
    })?;
    ok("reset", format!("errors={errs} of 24 (8 never doorbelled)"));

    // --- tagged raw API, deep queue ---
    let depth = 64usize;
    let mut bufs: Vec<IoBuf> = (0..depth)
        .map(|_| IoBuf::alloc(eal, 4096).unwrap())
        .collect();
    let mut done = 0usize;
    let mut submitted = 0usize;
    let total = 2000usize;
    let start = Instant::now();
    while done < total && start.elapsed() < Duration::from_secs(60) {
        while submitted < total && submitted - done < depth {
            let slot = submitted % depth;
            let va = bufs[slot].va();
            // SAFETY: `bufs` outlives the loop, and slot `slot` is not reused until its
            // completion is seen (at most `depth` in flight, round robin).
            unsafe {
                qp.read_raw(
                    &n1,
                    (submitted as u64 * 8) % (n1.size_blocks - 8),
                    8,
                    va,
                    Done::Tag(slot as u64),
                )
            }
            .map_err(|e| format!("raw read: {e}"))?;
            submitted += 1;
        }
        let mut err = None;
        qp.process_completions_with(Reap::All, |_, r| {
            if let Err(e) = r {
                err = Some(e.to_string());
            }
            done += 1;
        });
        if let Some(e) = err {
            return Err(format!("raw read: {e}"));
        }
    }
    ensure(done == total, || format!("raw reads: {done} of {total}"))?;
    bufs.clear();
    ok("raw-tagged", format!("{total} reads at depth {depth}"));
    drop(qp);
    println!("ALL-CHECKS-PASSED backend={backend}");
    Ok(())
}

fn file_io(
    eal: &Eal,
    addr: &str,
    nsid: &str,
    lba: &str,
    len: Option<&String>,
    file: &str,
) -> Res<()> {
    let c = open(eal, addr)?;
    let nsid: u32 = nsid.parse().map_err(|_| "bad NSID".to_string())?;
    let lba: u64 = lba.parse().map_err(|_| "bad LBA".to_string())?;
    let ns = c
        .namespace(nsid)
        .ok_or_else(|| format!("no namespace {nsid}"))?
        .clone();
    let mut qp = c
        .alloc_io_qpair(QPairOptions::default())
        .map_err(|e| e.to_string())?;
    match len {
        None => {
            let data = std::fs::read(file).map_err(|e| format!("read {file}: {e}"))?;
            let padded = data.len().div_ceil(ns.block_size as usize) * ns.block_size as usize;
            let mut b = IoBuf::alloc(eal, padded.max(1)).map_err(|e| e.to_string())?;
            b.as_mut_slice()[..data.len()].copy_from_slice(&data);
            write_buf(&mut qp, &ns, lba, b, "write-file")?;
            println!("wrote {} bytes at ns{nsid} lba {lba}", data.len());
        }
        Some(len) => {
            let len: usize = len.parse().map_err(|_| "bad LEN".to_string())?;
            let b = read_buf(
                &mut qp,
                &ns,
                lba,
                IoBuf::alloc(eal, len).map_err(|e| e.to_string())?,
                "read-file",
            )?;
            std::fs::write(file, b.as_slice()).map_err(|e| format!("write {file}: {e}"))?;
            println!("read {len} bytes at ns{nsid} lba {lba}");
        }
    }
    Ok(())
}
