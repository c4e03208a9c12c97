//! The optimistic consumer side (`MC_OPT_DEQ`) with every producer mode: the shared
//! bulk/burst rounds and copy runs, its entry points and handles, and the shapes and
//! modes it refuses.

use super::{bulk_burst_rounds, dump_has, make, pointer_sized_runs, Mem, STARTS};
use crate::{Error, Ring, RingFlags, SyncMode};

/// Producer modes an optimistic consumer side is tested with, and what they are.
const OPT_PRODUCERS: [(RingFlags, SyncMode); 4] = [
    (RingFlags::empty(), SyncMode::Multi),
    (RingFlags::SP_ENQ, SyncMode::Single),
    (RingFlags::MP_RTS_ENQ, SyncMode::Rts),
    (RingFlags::MP_HTS_ENQ, SyncMode::Hts),
];

#[test]
fn optimistic_consumer_bulk_burst_across_wrap() {
    for (pf, pm) in OPT_PRODUCERS {
        for layout in [RingFlags::empty(), RingFlags::ONE_LINE] {
            for start in STARTS {
                let (_mem, r) = make::<u64>(16, pf | layout | RingFlags::MC_OPT_DEQ);
                assert_eq!(r.prod_sync(), pm);
                assert_eq!(r.cons_sync(), SyncMode::Optimistic);
                // SAFETY: empty and not shared.
                unsafe { r.reset_at(start) };
                bulk_burst_rounds(&r, start);
            }
        }
    }
}

#[test]
fn optimistic_consumer_runs_of_every_length_at_every_offset() {
    pointer_sized_runs(RingFlags::MC_OPT_DEQ);
    pointer_sized_runs(RingFlags::MC_OPT_DEQ | RingFlags::ONE_LINE);
}

#[test]
fn optimistic_consumer_entry_points_and_handles() {
    let (_m, r) = make::<u64>(8, RingFlags::MC_OPT_DEQ | RingFlags::ONE_LINE);
    assert_eq!(r.enqueue_burst(&[1, 2, 3, 4, 5]).n, 5);
    assert_eq!(r.dequeue(), Some(1));
    assert_eq!(r.mc_dequeue(), Some(2));
    // SAFETY: this test is the only thread using the ring.
    assert_eq!(unsafe { r.sc_dequeue() }, Some(3));
    // The MP/MC handles: the optimistic one only.
    assert!(r.clone().into_mp_mc().is_err());
    let m = r
        .clone()
        .into_mp_opt()
        .ok()
        .expect("multi producer, optimistic consumer");
    let mut out = [0u64; 3];
    assert_eq!(m.dequeue_bulk(&mut out).n, 0, "only two entries left");
    assert_eq!(
        m.dequeue_burst(&mut out),
        crate::Dequeued { n: 2, available: 0 }
    );
    assert_eq!(&out[..2], &[4, 5]);
    assert!(r.empty());
    // Peek and zero-copy need a claim held across calls, which this mode never has.
    assert!(matches!(
        r.dequeue_bulk_start(&mut out),
        Err(Error::ModeUnsupported {
            mode: SyncMode::Optimistic,
            ..
        })
    ));
    assert!(matches!(
        r.dequeue_zc_burst_start(1),
        Err(Error::ModeUnsupported { .. })
    ));
    // A zero-copy enqueue would write slots with plain stores that a losing optimistic
    // consumer may be reading; refused even where the producer side allows it.
    let (_m2, sp) = make::<u64>(8, RingFlags::SP_ENQ | RingFlags::MC_OPT_DEQ);
    assert!(matches!(
        sp.enqueue_zc_burst_start(1),
        Err(Error::ModeUnsupported {
            side: "consumer",
            mode: SyncMode::Optimistic,
            ..
        })
    ));
    assert!(matches!(
        sp.enqueue_zc_bulk_start(1),
        Err(Error::ModeUnsupported { .. })
    ));
    // A peek enqueue copies through the ring, atomically: allowed.
    let p = sp.enqueue_bulk_start(2).unwrap();
    assert_eq!(p.finish(&[11, 12]), 2);
    assert_eq!(sp.dequeue(), Some(11));
    r.enqueue_bulk(&[7, 8, 9]);
    assert_eq!(r.dequeue(), Some(7));
    let mut text = Vec::new();
    r.dump(&mut text).unwrap();
    dump_has(
        text,
        &[
            "cons: sync=Optimistic head=6 tail=6",
            "prod: sync=Multi head=8 tail=8",
            "used=2",
        ],
    );
}

#[test]
fn optimistic_consumer_refuses_other_shapes_and_modes() {
    fn refused<T: Copy>(flags: RingFlags) {
        let len = Ring::<u64>::memsize(8, RingFlags::empty()).unwrap() * 2;
        let mem = Mem::new(len);
        // SAFETY: a fresh exclusive block; the call fails before using it.
        let r = unsafe { Ring::<T>::init_in(mem.ptr, len, "opt", 8, flags) };
        assert!(
            matches!(r, Err(Error::BadFlags { .. })),
            "{flags:?} with {} bytes: {:?}",
            std::mem::size_of::<T>(),
            r.err()
        );
    }
    // Not one aligned 8-byte word.
    refused::<u32>(RingFlags::MC_OPT_DEQ);
    refused::<[u32; 2]>(RingFlags::MC_OPT_DEQ);
    refused::<[u64; 2]>(RingFlags::MC_OPT_DEQ);
    // Two consumer modes at once.
    refused::<u64>(RingFlags::MC_OPT_DEQ | RingFlags::SC_DEQ);
    refused::<u64>(RingFlags::MC_OPT_DEQ | RingFlags::MC_RTS_DEQ);
    refused::<u64>(RingFlags::MC_OPT_DEQ | RingFlags::MC_HTS_DEQ);
    // Attaching with a misaligned 8-byte type is refused too (the size check passes).
    let (m, r) = make::<u64>(8, RingFlags::MC_OPT_DEQ);
    // SAFETY: the block holds a live ring; the attach is refused before any access.
    let a = unsafe { Ring::<[u32; 2]>::attach(m.ptr, m.layout.size()) };
    assert!(matches!(a, Err(Error::BadFlags { .. })), "{:?}", a.err());
    // SAFETY: as above, and `u64` is the type the ring was made for.
    let b = unsafe { Ring::<u64>::attach(m.ptr, m.layout.size()) }.unwrap();
    assert_eq!(b.cons_sync(), SyncMode::Optimistic);
    drop((b, r));
}
