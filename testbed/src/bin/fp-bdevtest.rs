//! fp-bdevtest: the guest half of `tests/nvme_bdev.rs`: the nvme bdev module over our
//! driver, through the bdev API, on a framework app thread.
//!
//! `fp-bdevtest EAL-ARGS -- verify ADDR NAME`: attach the controller at ADDR as NAME
//! (PCIe transport), then on every namespace bdev: write, read back and compare with
//! DMA buffers (passed to the device as is), heap buffers and split iovecs (bounced),
//! a request several times the controller's transfer limit and one of 4 MiB (more
//! commands than a queue pair holds when MDTS is small), compare and miscompare,
//! write-zeroes, and a depth-16 random write/read/compare run (bdevperf's `verify`);
//! then detach. Prints `VERIFY <bdev> ok ...` per bdev and `ALL-VERIFIED`.
//!
//! `... -- perf ADDR NAME NSID DEPTH SECS`: 4 KiB random reads at DEPTH for SECS on
//! `NAMEn<NSID>`; prints `BDEV-PERF iops=<n>`.
//!
//! `... -- hotremove ADDR NAME`: 4 KiB random reads at depth 8 on `NAMEn1` until the
//! device goes away; prints `RUNNING`, then `REMOVE-EVENT` when the descriptor is told,
//! and `UNREGISTERED ok=<n> failed=<n>` once every bdev of the controller is gone.
//!
//! Failures print `FAIL <why>` and exit 1.

use std::collections::VecDeque;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use bdev::modules::nvme_attach::NvmeTransport;
use bdev::modules::nvme_pcie::{self, PcieTransport};
use bdev::{BdevEvent, BdevIoChannel, Descriptor, IoStatus, IoType, IoVec};
use eal::timer::{rdtsc, tsc_hz};
use eal::Eal;
use framework::{poller, thread, Framework, FrameworkOpts, PollStatus};
use nvme::{ControllerOptions, IoBuf};

type Res<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let (eal, rest) = match Eal::init(&argv) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("fp-bdevtest: {e}");
            return ExitCode::from(2);
        }
    };
    let ok = matches!(
        (rest.first().map(String::as_str), rest.len()),
        (Some("verify"), 3) | (Some("perf"), 6) | (Some("hotremove"), 3)
    );
    if !ok {
        eprintln!("fp-bdevtest: usage: verify ADDR NAME | perf ADDR NAME NSID DEPTH SECS | hotremove ADDR NAME");
        return ExitCode::from(2);
    }
    let opts = FrameworkOpts {
        interrupt_mode: false,
        ..Default::default()
    };
    let e2 = eal.clone();
    let rc = Framework::run(&eal, opts, move |fw| {
        if let Err(e) = start(&fw, &e2, &rest) {
            fail(&fw, e);
        }
    });
    match rc {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            println!("FAIL framework: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fail(fw: &Framework, why: impl std::fmt::Display) {
    println!("FAIL {why}");
    let _ = std::io::stdout().flush();
    fw.shutdown(1);
}

fn start(fw: &Framework, eal: &Eal, rest: &[String]) -> Res<()> {
    *FW.lock().unwrap_or_else(|e| e.into_inner()) = Some(fw.clone());
    let t = nvme_pcie::register();
    let addr = rest[1].parse().map_err(|e| format!("address: {e}"))?;
    let name = rest[2].clone();
    let bdevs = t
        .attach_pcie(
            &name,
            addr,
            ControllerOptions::default(),
            serde_json::json!({}),
        )
        .map_err(|e| format!("attach: {e}"))?;
    let first = bdevs.first().and_then(|b| bdev::bdev::get(b));
    let j = first
        .and_then(|b| b.module().info_json())
        .unwrap_or_default();
    println!(
        "ATTACHED {name} serial={} max_transfer={}: {}",
        j["nvme"][0]["ctrlr_data"]["serial_number"]
            .as_str()
            .unwrap_or("?")
            .trim(),
        j["nvme"][0]["max_transfer_bytes"],
        bdevs.join(" ")
    );
    match rest[0].as_str() {
        "verify" => {
            let mut steps: Vec<Step> = Vec::new();
            for b in &bdevs {
                steps.extend(verify_steps(b, eal));
            }
            let (t2, n2) = (t.clone(), name.clone());
            steps.push(Box::new(move |next| detach(&t2, &n2, next)));
            steps.push(Box::new(|next| {
                println!("ALL-VERIFIED");
                next.go()
            }));
            Next::start(fw.clone(), steps);
            Ok(())
        }
        "perf" => {
            let nsid: u32 = rest[3].parse().map_err(|_| "bad NSID")?;
            let depth: usize = rest[4].parse().map_err(|_| "bad DEPTH")?;
            let secs: u64 = rest[5].parse().map_err(|_| "bad SECS")?;
            let b = format!("{name}n{nsid}");
            let io = open_io(&b)?;
            let (t2, n2) = (t.clone(), name.clone());
            let steps: Vec<Step> = vec![
                Box::new(move |next| perf(io, eal_of(), depth, secs, next)),
                Box::new(move |next| detach(&t2, &n2, next)),
            ];
            Next::start(fw.clone(), steps);
            Ok(())
        }
        _ => hotremove(fw, &t, &name, &bdevs),
    }
}

fn eal_of() -> Eal {
    thread::current_eal().expect("on a framework thread")
}

// ---------------------------------------------------------------- sequencing

type Step = Box<dyn FnOnce(Next) + Send>;

/// Runs steps one after the other on the app thread; each calls `go` or `fail`.
struct Next {
    steps: Arc<Mutex<VecDeque<Step>>>,
    fw: Framework,
}

impl Next {
    fn start(fw: Framework, steps: Vec<Step>) {
        Next {
            steps: Arc::new(Mutex::new(steps.into())),
            fw,
        }
        .go()
    }

    /// The next step, from a message (no recursion); shutdown(0) after the last.
    fn go(self) {
        let me = thread::current().expect("steps run on a framework thread");
        let fw = self.fw.clone();
        let r = me.send_msg(move || {
            let s = self
                .steps
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            match s {
                Some(step) => step(self),
                None => self.fw.shutdown(0),
            }
        });
        if let Err(e) = r {
            fail(&fw, format!("send the next step: {e}"));
        }
    }

    fn fail(self, why: impl std::fmt::Display) {
        fail(&self.fw, why);
    }
}

// ---------------------------------------------------------------- bdev access

/// An open bdev: descriptor and this thread's channel.
struct Io {
    desc: Descriptor,
    ch: BdevIoChannel,
    bs: usize,
    blocks: u64,
    name: String,
}

type SharedIo = Arc<Mutex<Option<Io>>>;

fn open_io(name: &str) -> Res<SharedIo> {
    let desc = bdev::open(name, true, |_| {}).map_err(|e| format!("open {name}: {e}"))?;
    let ch = desc
        .get_io_channel()
        .map_err(|e| format!("channel {name}: {e}"))?;
    let (bs, blocks) = (
        desc.bdev().info().block_size as usize,
        desc.bdev().info().num_blocks,
    );
    Ok(Arc::new(Mutex::new(Some(Io {
        desc,
        ch,
        bs,
        blocks,
        name: name.to_string(),
    }))))
}

/// Data memory of one request, kept alive (moved into the callback) until it ends.
enum Buf {
    /// EAL memory with IOVAs: goes to the device as is.
    Dma(IoBuf),
    /// Plain heap memory: bounced by the module.
    Heap(Vec<u8>),
    /// Two iovecs of uneven length: bounced.
    Split(Vec<u8>, Vec<u8>),
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Dma,
    Heap,
    Split,
}

impl Buf {
    fn new(kind: Kind, data: &[u8], eal: &Eal) -> Res<Buf> {
        Ok(match kind {
            Kind::Dma => {
                let mut b = IoBuf::alloc(eal, data.len()).map_err(|e| e.to_string())?;
                b.as_mut_slice().copy_from_slice(data);
                Buf::Dma(b)
            }
            Kind::Heap => Buf::Heap(data.to_vec()),
            Kind::Split => {
                let cut = data.len() / 3 + 100;
                Buf::Split(data[..cut].to_vec(), data[cut..].to_vec())
            }
        })
    }

    fn iovs(&mut self) -> Vec<IoVec> {
        match self {
            Buf::Dma(b) => vec![IoVec::from_slice(b.as_mut_slice())],
            Buf::Heap(v) => vec![IoVec::from_slice(v)],
            Buf::Split(a, b) => vec![IoVec::from_slice(a), IoVec::from_slice(b)],
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Buf::Dma(b) => b.as_slice().to_vec(),
            Buf::Heap(v) => v.clone(),
            Buf::Split(a, b) => [a.as_slice(), b.as_slice()].concat(),
        }
    }
}

/// Submit `t` over `buf`; `cb` gets the status and the buffer back.
fn submit<F>(io: &SharedIo, t: IoType, off: u64, n: u64, mut buf: Buf, cb: F) -> Res<()>
where
    F: FnOnce(IoStatus, Buf) + Send + 'static,
{
    let g = io.lock().unwrap_or_else(|e| e.into_inner());
    let io = g.as_ref().ok_or("the bdev is closed")?;
    let iovs = buf.iovs();
    let done = move |s| cb(s, buf);
    // SAFETY: the iovecs point into `buf`'s heap blocks, which move (without moving
    // their memory) into the callback and are not touched until it runs.
    let r = unsafe {
        match t {
            IoType::Read => io.desc.readv(&io.ch, &iovs, off, n, done),
            IoType::Write => io.desc.writev(&io.ch, &iovs, off, n, done),
            _ => io.desc.comparev(&io.ch, &iovs, off, n, done),
        }
    };
    r.map_err(|e| format!("{} submit {t:?} {off}+{n}: {e}", io.name))
}

/// Block `b`'s bytes for seed `seed`: every 8-byte word says (seed, block, word).
fn pattern(seed: u64, first: u64, n: u64, bs: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n as usize * bs);
    for b in first..first + n {
        for w in 0..bs / 8 {
            let x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (b << 16) ^ w as u64;
            v.extend_from_slice(&x.to_le_bytes());
        }
    }
    v
}

/// The first differing byte, as a message.
fn differs(name: &str, off: u64, bs: usize, want: &[u8], got: &[u8]) -> Option<String> {
    let i = want.iter().zip(got).position(|(a, b)| a != b)?;
    Some(format!(
        "{name}: data differs at byte {i} (block {}): wrote {:#x}, read {:#x}",
        off + (i / bs) as u64,
        want[i],
        got[i]
    ))
}

// ---------------------------------------------------------------- verify

fn verify_steps(name: &str, eal: &Eal) -> Vec<Step> {
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
    let r = submit(&io, IoType::Write, off, n, wbuf, move |st, _| {
        if st != IoStatus::Success {
            return next.fail(format!("{name}: write {off}+{n} ({kind:?}): {st:?}"));
        }
        let rbuf = match Buf::new(kind, &vec![0u8; want.len()], &eal) {
            Ok(b) => b,
            Err(e) => return next.fail(e),
        };
        let r = submit(&io2, IoType::Read, off, n, rbuf, move |st, b| {
            if st != IoStatus::Success {
                return next.fail(format!("{name}: read {off}+{n} ({kind:?}): {st:?}"));
            }
            if let Some(d) = differs(&name, off, bs, &want, &b.bytes()) {
                return next.fail(format!("{d} ({kind:?}, {n} blocks)"));
            }
            println!("CASE {name} {kind:?} {n} blocks at {off} ok");
            next.go()
        });
        if let Err(e) = r {
            eprintln!("{e}");
        }
    });
    if let Err(e) = r {
        fail(&the_fw(), e);
    }
}

fn the_fw() -> Framework {
    // Only used to stop after a submit error, where no `Next` is left.
    FW.lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .expect("framework set")
}

static FW: Mutex<Option<Framework>> = Mutex::new(None);
/// The hot-removal watch poller, unregistered (from a message) before the app stops.
static WATCH: Mutex<Option<framework::Poller>> = Mutex::new(None);

fn stop_watch(fw: &Framework, rc: i32) {
    let fw = fw.clone();
    let me = thread::current().expect("on a framework thread");
    let _ = me.send_msg(move || {
        if let Some(p) = WATCH.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = p.unregister();
        }
        fw.shutdown(rc);
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
    let r = submit(&io, IoType::Compare, 0, n, same, move |st, _| {
        if st != IoStatus::Success {
            return next.fail(format!("{name}: compare of equal data: {st:?}"));
        }
        let other = match Buf::new(Kind::Heap, &pattern(99, 0, n, bs), &eal) {
            Ok(b) => b,
            Err(e) => return next.fail(e),
        };
        let r = submit(&io2, IoType::Compare, 0, n, other, move |st, _| {
            if st != IoStatus::Miscompare {
                return next.fail(format!("{name}: compare of other data: {st:?}"));
            }
            println!("CASE {name} compare and miscompare ok");
            next.go()
        });
        if let Err(e) = r {
            eprintln!("{e}");
        }
    });
    if let Err(e) = r {
        fail(&the_fw(), e);
    }
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
        let r = submit(
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
        if let Err(e) = r {
            eprintln!("{e}");
        }
    });
    if let Err(e) = r {
        drop(g);
        fail(&the_fw(), e);
    }
}

/// State of a multi-slot job.
struct Job {
    rng: u64,
    left: u64,
    running: usize,
    ok: u64,
    failed: u64,
    first_err: Option<String>,
    next: Option<Next>,
    t0: u64,
}

impl Job {
    fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

type SharedJob = Arc<Mutex<Job>>;

fn new_job(left: u64, next: Option<Next>) -> SharedJob {
    Arc::new(Mutex::new(Job {
        rng: 0x2545_f491_4f6c_dd1d,
        left,
        running: 0,
        ok: 0,
        failed: 0,
        first_err: None,
        next,
        t0: rdtsc(),
    }))
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

fn detach(t: &PcieTransport, name: &str, next: Next) {
    let n = name.to_string();
    t.detach(
        name,
        Box::new(move |r| match r {
            Ok(()) => {
                println!("DETACHED {n}");
                next.go()
            }
            Err(e) => next.fail(format!("detach {n}: {e:?}")),
        }),
    );
}

// ---------------------------------------------------------------- perf

/// 4 KiB random reads at `depth` for `secs` seconds.
fn perf(io: SharedIo, eal: Eal, depth: usize, secs: u64, next: Next) {
    let job = new_job(u64::MAX, Some(next));
    let end = rdtsc() + secs * tsc_hz();
    job.lock().unwrap_or_else(|e| e.into_inner()).running = depth;
    for _ in 0..depth {
        let b = match IoBuf::alloc(&eal, 4096) {
            Ok(b) => b,
            Err(e) => return fail(&the_fw(), e),
        };
        read_cycle(io.clone(), job.clone(), Buf::Dma(b), Some(end));
    }
}

/// One slot of random 4 KiB reads: until `end`, or forever (hot removal).
fn read_cycle(io: SharedIo, job: SharedJob, buf: Buf, end: Option<u64>) {
    let (bs, blocks) = {
        let g = io.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_ref() {
            Some(o) => (o.bs, o.blocks),
            None => return perf_slot_end(&job),
        }
    };
    if end.is_some_and(|e| rdtsc() >= e) {
        return perf_slot_end(&job);
    }
    let n = 4096u64.div_ceil(bs as u64);
    let off = (job.lock().unwrap_or_else(|e| e.into_inner()).rand() % (blocks / n)) * n;
    let (io2, j2) = (io.clone(), job.clone());
    let r = submit(&io, IoType::Read, off, n, buf, move |st, b| {
        {
            let mut j = j2.lock().unwrap_or_else(|e| e.into_inner());
            if st == IoStatus::Success {
                j.ok += 1;
            } else {
                j.failed += 1;
                j.first_err.get_or_insert(format!("read at {off}: {st:?}"));
            }
        }
        if st == IoStatus::Success {
            read_cycle(io2, j2, b, end);
        } else {
            perf_slot_end(&j2);
        }
    });
    if r.is_err() {
        perf_slot_end(&job);
    }
}

fn perf_slot_end(job: &SharedJob) {
    let mut j = job.lock().unwrap_or_else(|e| e.into_inner());
    j.running -= 1;
    if j.running > 0 {
        return;
    }
    let secs = (rdtsc() - j.t0) as f64 / tsc_hz() as f64;
    let (ok, failed, e) = (j.ok, j.failed, j.first_err.take());
    let next = j.next.take();
    drop(j);
    if let Some(n) = next {
        match e {
            Some(e) => n.fail(format!("perf: {failed} failed, first: {e}")),
            None => {
                println!(
                    "BDEV-PERF iops={:.0} ios={ok} secs={secs:.2}",
                    ok as f64 / secs
                );
                n.go()
            }
        }
    }
}

// ---------------------------------------------------------------- hot removal

fn hotremove(fw: &Framework, _t: &PcieTransport, name: &str, bdevs: &[String]) -> Res<()> {
    let b = format!("{name}n1");
    let io: SharedIo = Arc::new(Mutex::new(None));
    let removed = Arc::new(Mutex::new(false));
    let (io2, r2) = (io.clone(), removed.clone());
    let me = thread::current().ok_or("not on a thread")?;
    let desc = bdev::open(&b, false, move |ev| {
        if ev == BdevEvent::Remove {
            println!("REMOVE-EVENT");
            let _ = std::io::stdout().flush();
            *r2.lock().unwrap_or_else(|e| e.into_inner()) = true;
            // Close from a message: put the channel, then the descriptor.
            let io3 = io2.clone();
            let _ = me.send_msg(move || drop(io3.lock().unwrap_or_else(|e| e.into_inner()).take()));
        }
    })
    .map_err(|e| format!("open {b}: {e}"))?;
    let ch = desc.get_io_channel().map_err(|e| e.to_string())?;
    let info = desc.bdev().info().clone();
    *io.lock().unwrap_or_else(|e| e.into_inner()) = Some(Io {
        desc,
        ch,
        bs: info.block_size as usize,
        blocks: info.num_blocks,
        name: b.clone(),
    });
    let job = new_job(u64::MAX, None);
    job.lock().unwrap_or_else(|e| e.into_inner()).running = 8;
    let eal = eal_of();
    for _ in 0..8 {
        let buf = IoBuf::alloc(&eal, 4096).map_err(|e| e.to_string())?;
        read_cycle(io.clone(), job.clone(), Buf::Dma(buf), None);
    }
    let bdevs = bdevs.to_vec();
    let fw2 = fw.clone();
    let t0 = rdtsc();
    let mut said_running = false;
    let mut finished = false;
    let p = poller::register("hotremove_watch", 50_000, move || {
        if finished {
            return PollStatus::Idle;
        }
        let (ok, failed) = {
            let j = job.lock().unwrap_or_else(|e| e.into_inner());
            (j.ok, j.failed)
        };
        if !said_running && ok > 100 {
            said_running = true;
            println!("RUNNING ok={ok}");
            let _ = std::io::stdout().flush();
        }
        let gone = bdevs.iter().all(|n| bdev::bdev::get(n).is_none());
        if gone && *removed.lock().unwrap_or_else(|e| e.into_inner()) {
            finished = true;
            println!("UNREGISTERED ok={ok} failed={failed}");
            let _ = std::io::stdout().flush();
            stop_watch(&fw2, 0);
        } else if rdtsc() - t0 > 150 * tsc_hz() {
            finished = true;
            println!("FAIL no removal seen (ok={ok} failed={failed})");
            stop_watch(&fw2, 1);
        }
        PollStatus::Busy
    })
    .map_err(|e| e.to_string())?;
    // Lives until the app exits.
    *WATCH.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
    Ok(())
}
