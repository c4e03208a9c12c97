//! The bdev layer's own cost: 4 KiB random reads at depth 32 on one core, through the
//! layer (descriptor, channel, checks, statistics: what bdevperf uses) against a loop
//! that calls the module's channel directly (`BdevIo::direct`), on the null and malloc
//! modules. Both loops are the same harness (a mutex-guarded state, a callback per I/O
//! stored in the I/O object as the layer stores it, resubmission from the callback); only the path between them and the module
//! differs. Rounds alternate the order; the table gives the median TSC cycles per I/O
//! of each and their ratio (layer / direct: 1.00 would be a free layer).
//!
//! `cargo bench -p ferroplane-bdev --bench layer_cost` (timing on a shared machine:
//! compare the ratio, not the cycles).
//!
//! `layer_cost --one MODULE KIND IOS` (MODULE `Null0` or `Malloc0`, KIND `direct` or
//! `layer`) runs one loop only, for instruction counts: under
//! `valgrind --tool=callgrind`, two runs with different IOS give the instructions per
//! I/O as the difference of their totals over the difference of their I/Os.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bdev::modules::malloc::{self, MallocOpts};
use bdev::modules::null::{self, NullOpts};
use bdev::{BdevIo, BdevIoChannel, Descriptor, IoStatus, IoType, IoVec, ModuleChannel};
use framework::{Framework, FrameworkOpts};

const DEPTH: usize = 32;
const BS: u32 = 4096;
const BLOCKS: u64 = 16384;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Direct,
    Layer,
}

enum Target {
    Direct(Box<dyn ModuleChannel>),
    Layer(Descriptor, BdevIoChannel),
}

struct Loop {
    target: Option<Target>,
    bufs: Vec<Vec<u8>>,
    rng: u64,
    to_submit: u64,
    outstanding: usize,
    start: u64,
    done: Option<Box<dyn FnOnce(u64) + Send>>,
    ios: u64,
}

type L = Arc<Mutex<Loop>>;

fn submit(l: &L, g: &mut Loop, slot: usize) {
    g.rng ^= g.rng << 13;
    g.rng ^= g.rng >> 7;
    g.rng ^= g.rng << 17;
    let off = g.rng % BLOCKS;
    let iov = IoVec::from_slice(&mut g.bufs[slot]);
    let l2 = l.clone();
    let cb = move |st: IoStatus| {
        assert_eq!(st, IoStatus::Success);
        complete(&l2, slot)
    };
    match g.target.as_ref().expect("running") {
        Target::Direct(mc) => {
            // SAFETY: the slot's buffer is only used by this I/O until its callback.
            let io = unsafe { BdevIo::direct(IoType::Read, off, 1, BS, &[iov], cb) };
            mc.submit(io);
        }
        Target::Layer(d, ch) => {
            // SAFETY: as above.
            unsafe { d.readv(ch, &[iov], off, 1, cb) }.expect("submit");
        }
    }
}

fn complete(l: &L, slot: usize) {
    let mut g = l.lock().unwrap();
    if g.to_submit > 0 {
        g.to_submit -= 1;
        submit(l, &mut g, slot);
        return;
    }
    g.outstanding -= 1;
    if g.outstanding == 0 {
        let per = (eal::timer::rdtsc() - g.start) / g.ios;
        g.target = None;
        let d = g.done.take().expect("once");
        drop(g);
        d(per);
    }
}

fn run_loop(target: Target, ios: u64, done: Box<dyn FnOnce(u64) + Send>) {
    let l: L = Arc::new(Mutex::new(Loop {
        target: Some(target),
        bufs: (0..DEPTH).map(|_| vec![0u8; BS as usize]).collect(),
        rng: 0x9E37_79B9_7F4A_7C15,
        to_submit: ios - DEPTH as u64,
        outstanding: DEPTH,
        start: eal::timer::rdtsc(),
        done: Some(done),
        ios,
    }));
    let mut g = l.lock().unwrap();
    for s in 0..DEPTH {
        submit(&l, &mut g, s);
    }
}

type Phase = (String, Kind, usize);
type Results = Arc<Mutex<Vec<(String, Kind, u64)>>>;

fn next(fw: Framework, mut phases: VecDeque<Phase>, res: Results, ios: u64) {
    let Some((name, kind, _round)) = phases.pop_front() else {
        fw.shutdown(0);
        return;
    };
    let target = match kind {
        Kind::Direct => {
            let b = bdev::bdev::get(&name).expect("bdev");
            Target::Direct(b.module().create_channel().expect("module channel"))
        }
        Kind::Layer => {
            let d = bdev::open(&name, false, |_| {}).expect("open");
            let ch = d.get_io_channel().expect("channel");
            Target::Layer(d, ch)
        }
    };
    let me = framework::thread::current().expect("on a framework thread");
    run_loop(
        target,
        ios,
        Box::new(move |per| {
            res.lock().unwrap().push((name, kind, per));
            // Continue from a message: the finished loop's state is dropped first.
            me.send_msg(move || next(fw, phases, res, ios))
                .expect("send");
        }),
    );
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// `--one MODULE KIND IOS`: the single loop to run, if asked for.
fn one_loop() -> Option<(String, Kind, u64)> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == "--one")?;
    let module = args.get(i + 1).expect("--one MODULE KIND IOS").clone();
    let kind = match args.get(i + 2).map(String::as_str) {
        Some("direct") => Kind::Direct,
        Some("layer") => Kind::Layer,
        k => panic!("--one: KIND is direct or layer, not {k:?}"),
    };
    let ios = args
        .get(i + 3)
        .and_then(|n| n.parse().ok())
        .expect("--one: IOS is a number");
    assert!(
        ios > DEPTH as u64,
        "--one: IOS must exceed the depth {DEPTH}"
    );
    Some((module, kind, ios))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let one = one_loop();
    let (rounds, mut ios) = if quick { (3, 20_000) } else { (7, 300_000) };
    if let Some((_, _, n)) = &one {
        ios = *n;
    }
    let argv = testkit::eal_env::in_process_args_mb("fplc", "0", 128);
    let (eal, _) = eal::Eal::init(&argv).expect("EAL init");
    let res: Results = Arc::new(Mutex::new(Vec::new()));
    let r2 = res.clone();
    let opts = FrameworkOpts {
        interrupt_mode: false,
        ..FrameworkOpts::default()
    };
    Framework::run(&eal, opts, move |fw| {
        null::create(NullOpts {
            name: "Null0".into(),
            num_blocks: BLOCKS,
            block_size: BS,
            uuid: None,
        })
        .expect("null bdev");
        malloc::create(MallocOpts::new("Malloc0", BLOCKS, BS)).expect("malloc bdev");
        let mut phases = VecDeque::new();
        if let Some((name, kind, _)) = one {
            phases.push_back((name, kind, 0));
            return next(fw, phases, r2, ios);
        }
        for name in ["Null0", "Malloc0"] {
            for round in 0..rounds {
                let order = if round % 2 == 0 {
                    [Kind::Direct, Kind::Layer]
                } else {
                    [Kind::Layer, Kind::Direct]
                };
                for k in order {
                    phases.push_back((name.to_string(), k, round));
                }
            }
        }
        next(fw, phases, r2, ios);
    })
    .expect("framework");
    let res = res.lock().unwrap();
    if one_loop().is_some() {
        for (name, kind, per) in res.iter() {
            println!("{name} {kind:?}: {per} TSC cycles per I/O");
        }
        return;
    }
    println!("bdev layer cost: 4 KiB randread, depth {DEPTH}, one core, {rounds} alternating rounds of {ios} I/Os (TSC cycles per I/O, medians)");
    println!(
        "{:<10} {:>10} {:>10} {:>14}",
        "module", "direct", "layer", "layer/direct"
    );
    for name in ["Null0", "Malloc0"] {
        let pick = |k: Kind| {
            median(
                res.iter()
                    .filter(|(n, kk, _)| n == name && *kk == k)
                    .map(|r| r.2)
                    .collect(),
            )
        };
        let (d, l) = (pick(Kind::Direct), pick(Kind::Layer));
        println!(
            "{:<10} {:>10} {:>10} {:>14.2}",
            name,
            d,
            l,
            l as f64 / d as f64
        );
    }
}
