//! Single-thread enqueue/dequeue loops for instruction counting under callgrind
//! (`scripts/ring-insns.sh` builds and runs this against a ring crate of its choice).
//! usage: ringcg <case> <iters>
use std::alloc::{alloc_zeroed, Layout};
use std::hint::black_box;
use ring::{Ring, RingFlags, RING_ALIGN};

fn mk(flags: RingFlags) -> Ring<u64> {
    let len = Ring::<u64>::memsize(1024, flags).unwrap();
    let layout = Layout::from_size_align(len, RING_ALIGN).unwrap();
    // SAFETY: a non-zero size; the memory is never freed (the process ends).
    let p = unsafe { alloc_zeroed(layout) };
    // SAFETY: `len` bytes at `p`, zeroed, aligned as a ring needs, used by nothing else.
    unsafe { Ring::<u64>::init_in(p, len, "cg", 1024, flags) }.unwrap()
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let case = a[1].as_str();
    let iters: u64 = a[2].parse().unwrap();
    let src: Vec<u64> = (0..32).collect();
    let mut dst = [0u64; 32];
    let mut sum = 0u64;
    macro_rules! lp {
        ($body:expr) => {
            for _ in 0..iters { sum = sum.wrapping_add($body); }
        };
    }
    match case {
        "mpmc1" => { let r = mk(RingFlags::empty()); lp!({ let _ = r.enqueue(black_box(1)); r.dequeue().unwrap() }) }
        "mpmc8" => { let r = mk(RingFlags::empty()); lp!({ r.enqueue_bulk(black_box(&src[..8])); u64::from(r.dequeue_bulk(&mut dst[..8]).n) }) }
        "mpmc32" => { let r = mk(RingFlags::empty()); lp!({ r.enqueue_bulk(black_box(&src)); u64::from(r.dequeue_bulk(&mut dst).n) }) }
        "mpmc_h1" => { let r = mk(RingFlags::empty()).into_mp_mc().ok().unwrap(); lp!({ r.enqueue_bulk(black_box(&src[..1])); u64::from(r.dequeue_bulk(&mut dst[..1]).n) }) }
        "mpmc_h32" => { let r = mk(RingFlags::empty()).into_mp_mc().ok().unwrap(); lp!({ r.enqueue_bulk(black_box(&src)); u64::from(r.dequeue_bulk(&mut dst).n) }) }
        "opt1" => { let r = mk(RingFlags::MC_OPT_DEQ | RingFlags::ONE_LINE).into_mp_opt().ok().unwrap(); lp!({ r.enqueue_bulk(black_box(&src[..1])); u64::from(r.dequeue_bulk(&mut dst[..1]).n) }) }
        "opt4" => { let r = mk(RingFlags::MC_OPT_DEQ | RingFlags::ONE_LINE).into_mp_opt().ok().unwrap(); lp!({ r.enqueue_bulk(black_box(&src[..4])); u64::from(r.dequeue_bulk(&mut dst[..4]).n) }) }
        "opt32" => { let r = mk(RingFlags::MC_OPT_DEQ | RingFlags::ONE_LINE).into_mp_opt().ok().unwrap(); lp!({ r.enqueue_bulk(black_box(&src)); u64::from(r.dequeue_bulk(&mut dst).n) }) }
        "spsc1" => { let r = mk(RingFlags::SP_ENQ | RingFlags::SC_DEQ); lp!({
            // SAFETY: one thread is the only producer and consumer.
            unsafe { let _ = r.sp_enqueue(black_box(1)); r.sc_dequeue().unwrap() } }) }
        "spsc32" => { let r = mk(RingFlags::SP_ENQ | RingFlags::SC_DEQ); lp!({
            // SAFETY: one thread is the only producer and consumer.
            unsafe { r.sp_enqueue_bulk(black_box(&src)); u64::from(r.sc_dequeue_bulk(&mut dst).n) } }) }
        "rts8" => { let r = mk(RingFlags::MP_RTS_ENQ | RingFlags::MC_RTS_DEQ); lp!({ r.enqueue_bulk(black_box(&src[..8])); u64::from(r.dequeue_bulk(&mut dst[..8]).n) }) }
        "hts8" => { let r = mk(RingFlags::MP_HTS_ENQ | RingFlags::MC_HTS_DEQ); lp!({ r.enqueue_bulk(black_box(&src[..8])); u64::from(r.dequeue_bulk(&mut dst[..8]).n) }) }
        _ => panic!("case"),
    }
    black_box(sum);
    black_box(dst);
}
