//! Loom models of the head/tail protocols on tiny rings. Every slot read and write is
//! also reported to loom (via `primitive::SlotTracker`), so loom flags a producer writing
//! a slot that a consumer may still be reading, or a consumer reading a slot before its
//! publication happens-before the read.
//!
//! ```text
//! LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" \
//!     cargo test -p ferroplane-ring --test loom --release
//! ```
//! The models run in under a second with 2 preemptions and ~3 s with 3 (plus ~15 s to
//! compile). Mutation-checked: making the Multi or Single tail store Relaxed fails them
//! with a causality violation on a slot.
#![cfg(loom)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::sync::Arc;

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;

use ring::{Ring, RingFlags, RING_ALIGN};

struct Block(*mut u8, Layout);
// SAFETY: a raw heap block handed to the ring, freed after all threads are joined.
unsafe impl Send for Block {}
// SAFETY: as above.
unsafe impl Sync for Block {}

fn ring(count: u32, flags: RingFlags) -> (Block, Arc<Ring<u64>>) {
    let len = Ring::<u64>::memsize(count, flags).unwrap();
    let layout = Layout::from_size_align(len, RING_ALIGN).unwrap();
    // SAFETY: non-zero size.
    let p = unsafe { alloc_zeroed(layout) };
    assert!(!p.is_null());
    // SAFETY: fresh exclusive block, freed by `free` after the model's threads are
    // joined; single sides are used by one thread in every model below.
    let r = unsafe { Ring::<u64>::init_in(p, len, "loom", count, flags) }.unwrap();
    (Block(p, layout), Arc::new(r))
}

fn free(b: Block, r: Arc<Ring<u64>>) {
    drop(r);
    // SAFETY: allocated in `ring` with this layout; every handle is gone.
    unsafe { dealloc(b.0, b.1) }
}

/// Run a model with a branch budget large enough for the protocols' own spin-waits
/// (which yield under loom); the models' threads themselves never wait unboundedly.
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut b = loom::model::Builder::new();
    b.max_branches = 20_000;
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let before = RUNS.load(std::sync::atomic::Ordering::Relaxed);
    b.check(move || {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    // Tests run in parallel, so the count may include other models' executions.
    eprintln!(
        "loom: ~{} executions",
        RUNS.load(std::sync::atomic::Ordering::Relaxed) - before
    );
}

/// Work around loom's tokio-rs/loom#392 (a spawned thread whose first atomic operation is a load
/// is never scheduled ahead of the main thread, so whole interleavings go unexplored):
/// every spawned thread first stores to `go`, and the main thread loads `go` right after
/// spawning, which makes the two dependent from the start.
fn kick(go: &AtomicU64) {
    go.store(1, Ordering::Relaxed);
}

fn kicked(go: &AtomicU64) {
    let _ = go.load(Ordering::Relaxed);
}

/// Try a few dequeues while the producers run (no unbounded waiting inside the model),
/// then the caller joins the producers and drains the rest.
fn try_pop(r: &Ring<u64>, out: &mut Vec<u64>, tries: usize) {
    for _ in 0..tries {
        if let Some(v) = r.dequeue() {
            out.push(v);
        }
    }
}

fn drain(r: &Ring<u64>, out: &mut Vec<u64>) {
    while let Some(v) = r.dequeue() {
        out.push(v);
    }
}

/// One producer thread, the main thread consumes concurrently: FIFO order across a ring
/// that wraps (capacity 1 slot of 2... 3 elements, the producer gives up on full).
fn one_to_one(flags: RingFlags) {
    model(move || {
        let (b, r) = ring(2, flags);
        let go = Arc::new(AtomicU64::new(0));
        let p = {
            let (r, go) = (r.clone(), go.clone());
            thread::spawn(move || {
                kick(&go);
                let mut sent = Vec::new();
                for v in 1..=3 {
                    if r.enqueue(v).is_ok() {
                        sent.push(v);
                    }
                }
                sent
            })
        };
        kicked(&go);
        let mut got = Vec::new();
        try_pop(&r, &mut got, 2);
        let sent = p.join().unwrap();
        drain(&r, &mut got);
        assert_eq!(got, sent);
        assert!(r.empty());
        free(b, r);
    });
}

/// Two producer threads (one element, and a bulk of two), the main thread consumes
/// concurrently: every element exactly once, per-producer order.
fn two_producers(flags: RingFlags) {
    model(move || {
        let (b, r) = ring(4, flags);
        let go = Arc::new(AtomicU64::new(0));
        let p1 = {
            let (r, go) = (r.clone(), go.clone());
            thread::spawn(move || {
                kick(&go);
                r.enqueue(10).unwrap();
            })
        };
        let p2 = {
            let (r, go) = (r.clone(), go.clone());
            thread::spawn(move || {
                kick(&go);
                assert_eq!(r.enqueue_bulk(&[20, 21]).n, 2);
            })
        };
        kicked(&go);
        let mut got = Vec::new();
        try_pop(&r, &mut got, 1);
        p1.join().unwrap();
        p2.join().unwrap();
        drain(&r, &mut got);
        let pos20 = got.iter().position(|&v| v == 20).unwrap();
        let pos21 = got.iter().position(|&v| v == 21).unwrap();
        assert!(pos20 < pos21, "{got:?}");
        got.sort_unstable();
        assert_eq!(got, [10, 20, 21]);
        free(b, r);
    });
}

/// Two consumer threads, the main thread produces concurrently: exactly once.
fn two_consumers(flags: RingFlags) {
    model(move || {
        let (b, r) = ring(4, flags);
        let go = Arc::new(AtomicU64::new(0));
        let spawn_c = |r: Arc<Ring<u64>>, go: Arc<AtomicU64>| {
            thread::spawn(move || {
                kick(&go);
                r.dequeue()
            })
        };
        let c1 = spawn_c(r.clone(), go.clone());
        let c2 = spawn_c(r.clone(), go.clone());
        kicked(&go);
        r.enqueue(1).unwrap();
        r.enqueue(2).unwrap();
        let mut got: Vec<u64> = [c1.join().unwrap(), c2.join().unwrap()]
            .into_iter()
            .flatten()
            .collect();
        drain(&r, &mut got);
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert!(r.empty());
        free(b, r);
    });
}

/// The no-cache mempool pattern: a full ring (3 tokens, capacity 3) and two threads (the
/// spawned one and the main one) that each take a token and put it back, twice, so the
/// ring wraps under both heads: every put must find room (the thread holds a token, so
/// there is), every slot access must be ordered (the slot tracker), and every token must
/// end up in the ring exactly once.
fn get_put_churn(flags: RingFlags) {
    model(move || {
        let (b, r) = ring(4, flags);
        assert_eq!(r.enqueue_bulk(&[1, 2, 3]).n, 3);
        let go = Arc::new(AtomicU64::new(0));
        let churn = |r: &Ring<u64>| {
            for _ in 0..2 {
                if let Some(v) = r.dequeue() {
                    assert_eq!(
                        r.enqueue(v),
                        Ok(()),
                        "no room for a token taken from the ring"
                    );
                }
            }
        };
        let t = {
            let (r, go) = (r.clone(), go.clone());
            thread::spawn(move || {
                kick(&go);
                churn(&r);
            })
        };
        kicked(&go);
        churn(&r);
        t.join().unwrap();
        let mut got = Vec::new();
        drain(&r, &mut got);
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3]);
        free(b, r);
    });
}

/// One `#[test]` per (name, model, flags): each runs that model on a ring with those flags.
macro_rules! models {
    ($($(#[doc = $doc:literal])* $name:ident: $model:ident($flags:expr);)*) => {
        $(
            $(#[doc = $doc])*
            #[test]
            fn $name() {
                $model($flags);
            }
        )*
    };
}

models! {
    mpmc_get_put_churn: get_put_churn(RingFlags::empty());
    spsc: one_to_one(RingFlags::SP_ENQ | RingFlags::SC_DEQ);
    mpmc_one_to_one: one_to_one(RingFlags::empty());
    mp_two_producers: two_producers(RingFlags::SC_DEQ);
    mc_two_consumers: two_consumers(RingFlags::SP_ENQ);
    rts_two_producers: two_producers(RingFlags::MP_RTS_ENQ | RingFlags::SC_DEQ);
    rts_two_consumers: two_consumers(RingFlags::SP_ENQ | RingFlags::MC_RTS_DEQ);
    hts_two_producers: two_producers(RingFlags::MP_HTS_ENQ | RingFlags::MC_HTS_DEQ);
    hts_two_consumers: two_consumers(RingFlags::MC_HTS_DEQ);
    /// Optimistic consumers (`MC_OPT_DEQ`): two of them race for the same entries while
    /// the main thread produces; a consumer whose CAS loses must throw its copy away.
    opt_two_consumers: two_consumers(RingFlags::SP_ENQ | RingFlags::MC_OPT_DEQ);
    /// Optimistic consumer behind two multi producers.
    opt_two_producers: two_producers(RingFlags::MC_OPT_DEQ);
    /// The no-cache mempool pattern on the ring the `ring_mp_mc` backend makes (one
    /// line, optimistic consumers): the ring wraps under both threads, so a consumer that
    /// loses its CAS has copied slots that the other thread may be refilling.
    opt_get_put_churn: get_put_churn(RingFlags::MC_OPT_DEQ | RingFlags::ONE_LINE);
}

/// Optimistic consumers of both sizes on one ring: a dequeue of five (the multi
/// protocol: claim, copy, publish) and one of one (copy, then claim) at the same time.
/// When the small one claims behind the large claim in flight it must publish behind it;
/// every entry must come out once, and afterwards the consumer tail must have reached the
/// head (a full-capacity enqueue fits).
#[test]
fn opt_mixed_sizes() {
    model(|| {
        let (b, r) = ring(8, RingFlags::MC_OPT_DEQ | RingFlags::ONE_LINE);
        assert_eq!(r.enqueue_bulk(&[1, 2, 3, 4, 5, 6]).n, 6);
        let go = Arc::new(AtomicU64::new(0));
        let big = {
            let (r, go) = (r.clone(), go.clone());
            thread::spawn(move || {
                kick(&go);
                let mut out = [0u64; 5];
                let n = r.dequeue_bulk(&mut out).n as usize;
                out[..n].to_vec()
            })
        };
        kicked(&go);
        let mut got: Vec<u64> = r.dequeue().into_iter().collect();
        got.extend(big.join().unwrap());
        drain(&r, &mut got);
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3, 4, 5, 6]);
        assert!(r.empty());
        assert_eq!(
            r.enqueue_bulk(&[7; 7]).n,
            7,
            "consumer tail behind its head"
        );
        free(b, r);
    });
}

/// HTS zero-copy dequeue against a concurrent producer.
#[test]
fn hts_zero_copy() {
    model(|| {
        let (b, r) = ring(4, RingFlags::MP_HTS_ENQ | RingFlags::MC_HTS_DEQ);
        let go = Arc::new(AtomicU64::new(0));
        let p = {
            let (r, go) = (r.clone(), go.clone());
            thread::spawn(move || {
                kick(&go);
                r.enqueue(1).unwrap();
                r.enqueue(2).unwrap();
            })
        };
        kicked(&go);
        let mut got = Vec::new();
        {
            let z = r.dequeue_zc_burst_start(2).unwrap();
            let (a, w) = z.slots();
            got.extend(a.iter().chain(w).copied());
            let n = z.len();
            assert_eq!(z.finish(n), n);
        }
        p.join().unwrap();
        drain(&r, &mut got);
        assert_eq!(got, [1, 2]);
        free(b, r);
    });
}
