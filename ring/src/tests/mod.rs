//! Single-threaded unit tests on caller-owned heap memory (Miri-friendly: no mmap, no
//! EAL). Multi-thread behaviour is in tests/stress.rs and tests/loom.rs.

use std::alloc::{alloc_zeroed, dealloc, Layout};

use crate::{Error, Ring, RingFlags, SyncMode, RING_ALIGN};

mod optimistic;

/// A heap block aligned like a memzone, freed on drop (after the ring handle).
struct Mem {
    ptr: *mut u8,
    layout: Layout,
}

impl Mem {
    fn new(len: usize) -> Mem {
        let layout = Layout::from_size_align(len.max(1), RING_ALIGN).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        Mem { ptr, layout }
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

fn make<T: Copy>(count: u32, flags: RingFlags) -> (Mem, Ring<T>) {
    let len = Ring::<T>::memsize(count, flags).unwrap();
    let mem = Mem::new(len);
    // SAFETY: a fresh, exclusive, suitably aligned block of `len` bytes; it is returned
    // with the ring and the tests never use the ring after dropping the block.
    let r =
        unsafe { Ring::<T>::init_in(mem.ptr, mem.layout.size(), "test", count, flags) }.unwrap();
    (mem, r)
}

const ALL_MODES: [(RingFlags, SyncMode); 4] = [
    (RingFlags::empty(), SyncMode::Multi),
    (RingFlags::SP_ENQ.union(RingFlags::SC_DEQ), SyncMode::Single),
    (
        RingFlags::MP_RTS_ENQ.union(RingFlags::MC_RTS_DEQ),
        SyncMode::Rts,
    ),
    (
        RingFlags::MP_HTS_ENQ.union(RingFlags::MC_HTS_DEQ),
        SyncMode::Hts,
    ),
];

/// Starting points for the indices: zero and just before the u32 wrap.
const STARTS: [u32; 3] = [0, u32::MAX - 5, u32::MAX];

/// Every mode, every start, and both header layouts (DPDK's and `ONE_LINE`).
fn with_rings<T: Copy>(count: u32, extra: RingFlags, f: impl Fn(&Ring<T>, SyncMode, u32)) {
    for (flags, mode) in ALL_MODES {
        for layout in [RingFlags::empty(), RingFlags::ONE_LINE] {
            for start in STARTS {
                let (_mem, r) = make::<T>(count, flags | extra | layout);
                assert_eq!(r.prod_sync(), mode);
                assert_eq!(r.cons_sync(), mode);
                assert_eq!(r.flags().contains(RingFlags::ONE_LINE), !layout.is_empty());
                // SAFETY: empty and not shared.
                unsafe { r.reset_at(start) };
                f(&r, mode, start);
            }
        }
    }
}

#[test]
fn one_line_puts_both_sides_on_the_producer_line() {
    use std::sync::atomic::{AtomicU64, Ordering};
    // (layout, consumer side's offset, the place it does not use)
    for (layout, cons, unused) in [
        (RingFlags::empty(), 256usize, 160usize),
        (RingFlags::ONE_LINE, 160, 256),
    ] {
        let (mem, r) = make::<u64>(8, layout);
        for i in 0..3 {
            r.enqueue(i).unwrap();
        }
        assert_eq!(r.dequeue(), Some(0));
        // The head (+0) or tail (+24) word at `off`; its high 32 bits are the position.
        let word = |off: usize| {
            let w = mem.ptr.wrapping_add(off).cast::<AtomicU64>();
            // SAFETY: an 8-byte aligned word inside the ring's header, which stays alive;
            // this thread is the only user.
            unsafe { (*w).load(Ordering::Relaxed) }
        };
        assert_eq!(word(128) >> 32, 3, "{layout:?}: producer head");
        assert_eq!(word(128 + 24) >> 32, 3, "{layout:?}: producer tail");
        assert_eq!(word(cons) >> 32, 1, "{layout:?}: consumer head");
        assert_eq!(word(cons + 24) >> 32, 1, "{layout:?}: consumer tail");
        assert_eq!(
            (word(unused), word(unused + 24)),
            (0, 0),
            "{layout:?}: unused place"
        );
        // Another handle finds the consumer side from the header's flags alone.
        // SAFETY: the same live ring, same element type, no single sides.
        let r2 = unsafe { Ring::<u64>::attach(mem.ptr, mem.layout.size()) }.unwrap();
        assert_eq!(r2.dequeue(), Some(1));
        assert_eq!(r.dequeue(), Some(2));
        assert_eq!(r2.dequeue(), None);
    }
}

#[test]
fn geometry_and_errors() {
    assert!(matches!(
        Ring::<usize>::memsize(0, RingFlags::empty()),
        Err(Error::ZeroSize)
    ));
    assert!(matches!(
        Ring::<usize>::memsize(3, RingFlags::empty()),
        Err(Error::NotPowerOfTwo(3))
    ));
    assert!(matches!(
        Ring::<usize>::memsize(1 << 31, RingFlags::empty()),
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(
        Ring::<usize>::memsize(u32::MAX, RingFlags::EXACT_SZ),
        Err(Error::TooLarge { .. })
    ));
    assert!(matches!(
        Ring::<usize>::memsize(1 << 30, RingFlags::EXACT_SZ),
        Err(Error::TooLarge { .. })
    ));
    assert_eq!(
        Ring::<usize>::memsize(1 << 30, RingFlags::empty()).unwrap(),
        384 + (8 << 30)
    );
    assert_eq!(
        Ring::<u64>::memsize(4, RingFlags::empty()).unwrap(),
        384 + 128
    );
    assert_eq!(
        Ring::<[u8; 16]>::memsize(5, RingFlags::EXACT_SZ).unwrap(),
        384 + 128
    );
    assert_eq!(
        Ring::<u8>::memsize(1, RingFlags::empty()).unwrap(),
        384 + 128
    );

    let (_m, r) = make::<u64>(8, RingFlags::empty());
    assert_eq!((r.size(), r.capacity()), (8, 7));
    let (_m, r) = make::<u64>(5, RingFlags::EXACT_SZ);
    assert_eq!((r.size(), r.capacity()), (8, 5));
    let (_m, r) = make::<u64>(8, RingFlags::EXACT_SZ);
    assert_eq!((r.size(), r.capacity()), (16, 8));
}

#[test]
fn bad_flags_names_and_memory() {
    let mem = Mem::new(4096);
    let len = mem.layout.size();
    // SAFETY: (all calls below) `mem` is a fresh exclusive 4096-byte block; each ring
    // made in it is used only while `mem` lives and by this thread only.
    unsafe {
        let e = Ring::<u64>::init_in(
            mem.ptr,
            len,
            "x",
            8,
            RingFlags::SP_ENQ | RingFlags::MP_RTS_ENQ,
        );
        assert!(matches!(e, Err(Error::BadFlags { .. })), "{:?}", e.err());
        let e = Ring::<u64>::init_in(
            mem.ptr,
            len,
            "x",
            8,
            RingFlags::MC_HTS_DEQ | RingFlags::MC_RTS_DEQ,
        );
        assert!(matches!(e, Err(Error::BadFlags { .. })));
        assert!(matches!(
            Ring::<u64>::init_in(mem.ptr, len, "", 8, RingFlags::empty()),
            Err(Error::BadName { .. })
        ));
        let long = "a".repeat(29);
        assert!(matches!(
            Ring::<u64>::init_in(mem.ptr, len, &long, 8, RingFlags::empty()),
            Err(Error::BadName { .. })
        ));
        assert!(Ring::<u64>::init_in(mem.ptr, len, &long[..28], 8, RingFlags::empty()).is_ok());
        assert!(matches!(
            Ring::<u64>::init_in(mem.ptr, 100, "x", 8, RingFlags::empty()),
            Err(Error::BadMemory { .. })
        ));
        assert!(matches!(
            Ring::<u64>::init_in(mem.ptr.add(8), len - 8, "x", 8, RingFlags::empty()),
            Err(Error::BadMemory { .. })
        ));
        assert!(matches!(
            Ring::<u64>::init_in(core::ptr::null_mut(), len, "x", 8, RingFlags::empty()),
            Err(Error::BadMemory { .. })
        ));

        // attach: good, wrong element size, wrong magic, too short.
        let r = Ring::<u64>::init_in(mem.ptr, len, "att", 8, RingFlags::SP_ENQ).unwrap();
        r.enqueue(42).unwrap();
        let r2 = Ring::<u64>::attach(mem.ptr, len).unwrap();
        assert_eq!(r2.name(), "att");
        assert_eq!(r2.prod_sync(), SyncMode::Single);
        assert_eq!(r2.cons_sync(), SyncMode::Multi);
        assert_eq!(r2.dequeue(), Some(42));
        assert!(matches!(
            Ring::<u32>::attach(mem.ptr, len),
            Err(Error::ElemSizeMismatch {
                found: 8,
                expected: 4,
                ..
            })
        ));
        assert!(matches!(
            Ring::<u64>::attach(mem.ptr, 400),
            Err(Error::BadMemory { .. })
        ));
        mem.ptr.write(0xff);
        assert!(matches!(
            Ring::<u64>::attach(mem.ptr, len),
            Err(Error::BadMagic { .. })
        ));
    }
}

#[test]
fn single_elements_fill_and_drain() {
    with_rings::<u64>(8, RingFlags::empty(), |r, _, _| {
        assert!(r.empty());
        for i in 0..7 {
            assert_eq!(r.enqueue(i), Ok(()));
            assert_eq!(r.count(), i as u32 + 1);
        }
        assert!(r.full());
        assert_eq!(r.enqueue(99), Err(99));
        for i in 0..7 {
            assert_eq!(r.dequeue(), Some(i));
        }
        assert_eq!(r.dequeue(), None);
        assert!(r.empty());
        assert_eq!(r.free_count(), 7);
    });
}

#[test]
fn seqcst_enqueue_fills_and_drains_like_enqueue() {
    with_rings::<u64>(8, RingFlags::empty(), |r, _, start| {
        for i in 0..7 {
            assert_eq!(r.enqueue_seqcst(i), Ok(()));
            assert_eq!(r.count(), i as u32 + 1);
        }
        assert!(r.full());
        assert_eq!(r.enqueue_seqcst(99), Err(99));
        for i in 0..7 {
            assert_eq!(r.dequeue(), Some(i), "start {start}");
        }
        assert_eq!(r.dequeue(), None);
        // Mixed with the Release publication, order kept.
        assert_eq!(r.enqueue(1), Ok(()));
        assert_eq!(r.enqueue_seqcst(2), Ok(()));
        assert_eq!(r.enqueue(3), Ok(()));
        assert_eq!(
            (r.dequeue(), r.dequeue(), r.dequeue()),
            (Some(1), Some(2), Some(3))
        );
        assert!(r.empty());
    });
}

#[test]
fn bulk_all_or_nothing_and_burst_partial_across_wrap() {
    with_rings::<u32>(16, RingFlags::empty(), |r, _, start| {
        bulk_burst_rounds(r, start)
    });
}

/// Odd-sized bulk and burst rounds on a 16-slot ring (capacity 15), checking counts,
/// all-or-nothing failures and FIFO order; the copies wrap around the slot array and the
/// positions around zero.
fn bulk_burst_rounds<T: Copy + From<u32> + PartialEq + std::fmt::Debug>(r: &Ring<T>, start: u32) {
    let mut next_in = 0u32;
    let mut next_out = 0u32;
    // Many rounds with odd sizes so that copies wrap around the slot array and the
    // u32 positions wrap around zero.
    for round in 0..40u32 {
        let want = 1 + (round * 7) % 15;
        let objs: Vec<T> = (next_in..next_in + want).map(T::from).collect();
        let before = r.count();
        let e = r.enqueue_bulk(&objs);
        if before + want <= 15 {
            assert_eq!(e.n, want, "start {start} round {round}");
            next_in += want;
            assert!(e.free_space <= r.free_count());
        } else {
            assert_eq!(e.n, 0);
            assert_eq!(r.count(), before, "bulk failure must not change the ring");
            let e = r.enqueue_burst(&objs);
            assert_eq!(e.n, 15 - before);
            assert_eq!(e.free_space, 0);
            next_in += e.n;
        }
        let take = 1 + (round * 5) % 11;
        let mut out = vec![T::from(0); take as usize];
        let have = r.count();
        let d = r.dequeue_bulk(&mut out);
        if have >= take {
            assert_eq!(d.n, take);
            assert!(d.available <= r.count());
        } else {
            assert_eq!(d.n, 0);
            let d = r.dequeue_burst(&mut out);
            assert_eq!(d.n, have);
            assert_eq!(d.available, 0);
        }
        let got = if have >= take { take } else { have };
        for (i, &v) in out[..got as usize].iter().enumerate() {
            assert_eq!(
                v,
                T::from(next_out + i as u32),
                "start {start} round {round}"
            );
        }
        next_out += got;
    }
    let mut rest = vec![T::from(0); 16];
    let d = r.dequeue_burst(&mut rest);
    for (i, &v) in rest[..d.n as usize].iter().enumerate() {
        assert_eq!(v, T::from(next_out + i as u32));
    }
    assert_eq!(next_out + d.n, next_in);
    assert!(r.empty());
}

/// Every run length the pointer-sized copy splits into steps of four and a rest of
/// 0..=3, at every slot offset, so each piece also meets the end of the slot array.
#[test]
fn pointer_sized_runs_of_every_length_at_every_offset() {
    pointer_sized_runs(RingFlags::empty());
}

fn pointer_sized_runs(flags: RingFlags) {
    let (_mem, r) = make::<u64>(64, flags);
    let mut next = 0u64;
    for n in 1..=63u64 {
        for offset in 0..64u32 {
            // SAFETY: empty and not shared.
            unsafe { r.reset_at(offset) };
            let objs: Vec<u64> = (next..next + n).collect();
            assert_eq!(r.enqueue_bulk(&objs).n, n as u32);
            let mut out = vec![u64::MAX; n as usize + 1];
            assert_eq!(r.dequeue_bulk(&mut out[..n as usize]).n, n as u32);
            assert_eq!(&out[..n as usize], &objs[..], "n {n} offset {offset}");
            assert_eq!(out[n as usize], u64::MAX, "wrote past the run (n {n})");
            next += n;
        }
    }
}

#[test]
fn explicit_entry_points() {
    with_rings::<u64>(8, RingFlags::empty(), |r, _, _| {
        // SAFETY: this test is the only thread using the ring.
        unsafe {
            assert_eq!(r.sp_enqueue(1), Ok(()));
            assert_eq!(r.sp_enqueue_bulk(&[2, 3]).n, 2);
            assert_eq!(r.sp_enqueue_burst(&[4, 5, 6, 7, 8, 9]).n, 4);
            assert_eq!(r.sc_dequeue(), Some(1));
            let mut out = [0u64; 3];
            assert_eq!(r.sc_dequeue_bulk(&mut out).n, 3);
            assert_eq!(out, [2, 3, 4]);
            assert_eq!(r.sc_dequeue_burst(&mut out).n, 3);
            assert_eq!(out, [5, 6, 7]);
            assert_eq!(r.sc_dequeue(), None);
        }
        assert_eq!(r.mp_enqueue(10), Ok(()));
        assert_eq!(r.mp_enqueue_bulk(&[11, 12]).n, 2);
        assert_eq!(r.mp_enqueue_bulk(&[0; 5]).n, 0);
        assert_eq!(r.mp_enqueue_burst(&[13, 14, 15, 16, 17, 18]).n, 4);
        assert_eq!(r.mp_enqueue(19), Err(19));
        // Mixing paths on one thread keeps the order (the single path's cached tail is
        // invalidated by the multi path).
        // SAFETY: single thread.
        assert_eq!(unsafe { r.sc_dequeue() }, Some(10));
        assert_eq!(r.mc_dequeue(), Some(11));
        let mut out = [0u64; 2];
        assert_eq!(r.mc_dequeue_bulk(&mut out).n, 2);
        assert_eq!(out, [12, 13]);
        let mut out = [0u64; 8];
        let d = r.mc_dequeue_burst(&mut out);
        assert_eq!(&out[..d.n as usize], &[14, 15, 16]);
        // SAFETY: single thread.
        unsafe {
            assert_eq!(r.sp_enqueue_bulk(&[1, 2, 3, 4, 5, 6, 7]).n, 7);
        }
        assert_eq!(r.mc_dequeue_burst(&mut out).n, 7);
        assert_eq!(&out[..7], &[1, 2, 3, 4, 5, 6, 7]);
    });
}

#[test]
fn multi_call_on_single_side_drops_its_cache() {
    // A side created single caches the other side's tail; an explicit multi call that
    // moves the side must drop that cache, or the next single call computes its room from
    // a tail older than the head and wraps into "plenty".
    let (_m, r) = make::<u64>(8, RingFlags::SP_ENQ | RingFlags::SC_DEQ);
    assert_eq!(r.enqueue(1), Ok(())); // caches cons tail 0
    assert_eq!(r.dequeue(), Some(1));
    assert_eq!(r.mp_enqueue_bulk(&[2, 3, 4, 5, 6, 7, 8]).n, 7);
    assert!(r.full());
    assert_eq!(r.enqueue(9), Err(9));
    let mut out = [0; 8];
    assert_eq!(r.dequeue_burst(&mut out).n, 7);
    assert_eq!(&out[..7], &[2, 3, 4, 5, 6, 7, 8]);
}

#[test]
fn single_call_on_multi_side_reads_the_tail() {
    // A side created multi keeps no cached tail: an explicit single call sees the other
    // side's latest tail every time.
    let (_m, r) = make::<u64>(8, RingFlags::empty());
    // SAFETY: this test is the only thread using the ring.
    unsafe {
        assert_eq!(r.sp_enqueue_bulk(&[1, 2, 3, 4, 5, 6, 7]).n, 7);
        let mut out = [0; 3];
        assert_eq!(r.mc_dequeue_bulk(&mut out).n, 3);
        let e = r.sp_enqueue_bulk(&[8]);
        assert_eq!(
            e,
            crate::Enqueued {
                n: 1,
                free_space: 2
            }
        );
        assert_eq!(r.sc_dequeue_bulk(&mut out).n, 3);
        assert_eq!(out, [4, 5, 6]);
        let e = r.sp_enqueue_bulk(&[9, 10]);
        assert_eq!(
            e,
            crate::Enqueued {
                n: 2,
                free_space: 3
            }
        );
    }
}

#[test]
fn single_side_cache_is_a_lower_bound() {
    let (_m, r) = make::<u64>(8, RingFlags::SP_ENQ | RingFlags::SC_DEQ);
    assert_eq!(r.enqueue_bulk(&[1, 2, 3, 4, 5]).free_space, 2);
    let mut out = [0; 4];
    assert_eq!(
        r.dequeue_bulk(&mut out),
        crate::Dequeued { n: 4, available: 1 }
    );
    // The producer's cached consumer tail is stale: it reports less room than there is,
    // never more, and refreshes when it runs short.
    let e = r.enqueue_bulk(&[6]);
    assert_eq!(e.n, 1);
    assert!(e.free_space <= r.free_count());
    assert_eq!(r.enqueue_bulk(&[7, 8, 9, 10, 11]).n, 5);
    assert!(r.full());
    let mut out = [0; 7];
    assert_eq!(r.dequeue_bulk(&mut out).n, 7);
    assert_eq!(out, [5, 6, 7, 8, 9, 10, 11]);
}

#[test]
fn exact_size_capacity() {
    for (flags, _) in ALL_MODES {
        for count in [1u32, 5, 7, 8, 100] {
            let (_m, r) = make::<u16>(count, flags | RingFlags::EXACT_SZ);
            assert_eq!(r.capacity(), count);
            assert!(r.size().is_power_of_two() && r.size() > count);
            for round in 0..3u16 {
                let objs: Vec<u16> = (0..count as u16).map(|i| i + round).collect();
                assert_eq!(r.enqueue_bulk(&objs).n, count);
                assert!(r.full());
                assert_eq!(r.enqueue(1), Err(1));
                let mut out = vec![0u16; count as usize];
                assert_eq!(r.dequeue_bulk(&mut out).n, count);
                assert_eq!(out, objs);
            }
        }
    }
}

#[test]
fn sixteen_byte_and_odd_elements() {
    #[derive(Clone, Copy, PartialEq, Debug)]
    struct E16(u64, u64);
    with_rings::<E16>(8, RingFlags::empty(), |r, _, _| {
        for k in 0..20u64 {
            let objs = [E16(k, !k), E16(k + 1, !k), E16(k + 2, !k)];
            assert_eq!(r.enqueue_bulk(&objs).n, 3);
            let mut out = [E16(0, 0); 3];
            assert_eq!(r.dequeue_bulk(&mut out).n, 3);
            assert_eq!(out, objs);
        }
    });
    with_rings::<[u8; 3]>(4, RingFlags::EXACT_SZ, |r, _, _| {
        for k in 0..10u8 {
            assert_eq!(
                r.enqueue_burst(&[[k, 1, 2], [k, 3, 4], [k, 5, 6], [k, 7, 8], [9; 3]])
                    .n,
                4
            );
            let mut out = [[0u8; 3]; 5];
            assert_eq!(r.dequeue_burst(&mut out).n, 4);
            assert_eq!(out[3], [k, 7, 8]);
        }
    });
    let (_m, r) = make::<[u64; 16]>(4, RingFlags::empty());
    r.enqueue([7; 16]).unwrap();
    assert_eq!(r.dequeue(), Some([7; 16]));
}

#[test]
fn uninit_dequeue() {
    let (_m, r) = make::<u64>(8, RingFlags::empty());
    r.enqueue_bulk(&[1, 2, 3]);
    let mut out = [core::mem::MaybeUninit::<u64>::uninit(); 4];
    assert_eq!(r.dequeue_bulk_uninit(&mut out).n, 0);
    let d = r.dequeue_burst_uninit(&mut out);
    assert_eq!(d.n, 3);
    // SAFETY: the first three were written.
    let got: Vec<u64> = out[..3]
        .iter()
        .map(|v| unsafe { v.assume_init() })
        .collect();
    assert_eq!(got, [1, 2, 3]);
    r.enqueue_bulk(&[4, 5]);
    assert_eq!(r.dequeue_bulk_uninit(&mut out[..2]).n, 2);
}

#[test]
fn peek_start_finish() {
    with_rings::<u32>(8, RingFlags::empty(), |r, mode, _| {
        let peekable = matches!(mode, SyncMode::Single | SyncMode::Hts);
        let res = r.enqueue_bulk_start(3);
        if !peekable {
            assert!(matches!(res, Err(Error::ModeUnsupported { .. })));
            let mut out = [0u32; 1];
            assert!(matches!(
                r.dequeue_bulk_start(&mut out),
                Err(Error::ModeUnsupported { .. })
            ));
            assert!(matches!(
                r.enqueue_zc_bulk_start(1),
                Err(Error::ModeUnsupported { .. })
            ));
            assert!(matches!(
                r.dequeue_zc_burst_start(1),
                Err(Error::ModeUnsupported { .. })
            ));
            return;
        }
        let p = res.unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p.free_space(), 4);
        // Finish with fewer than reserved: only those are published.
        assert_eq!(p.finish(&[1, 2]), 2);
        assert_eq!(r.count(), 2);
        // Dropped reservation enqueues nothing.
        drop(r.enqueue_burst_start(10).unwrap());
        assert_eq!(r.count(), 2);
        let p = r.enqueue_burst_start(10).unwrap();
        assert_eq!(p.len(), 5);
        assert_eq!(p.finish(&[3, 4, 5, 6, 7, 8]), 5);
        assert!(r.full());
        assert!(r.enqueue_bulk_start(1).unwrap().is_empty());

        let mut out = [0u32; 3];
        let d = r.dequeue_bulk_start(&mut out).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(d.finish(1), 1);
        assert_eq!(r.count(), 6);
        let d = r.dequeue_bulk_start(&mut out).unwrap();
        assert_eq!(out, [2, 3, 4]);
        drop(d);
        let mut big = [0u32; 10];
        assert!(r.dequeue_bulk_start(&mut big).unwrap().is_empty());
        let d = r.dequeue_burst_start(&mut big).unwrap();
        assert_eq!((d.len(), d.available()), (6, 0));
        assert_eq!(&big[..6], &[2, 3, 4, 5, 6, 7]);
        assert_eq!(d.finish(100), 6);
        assert!(r.empty());
    });
}

#[test]
fn zero_copy() {
    with_rings::<u64>(8, RingFlags::empty(), |r, mode, _| {
        if !matches!(mode, SyncMode::Single | SyncMode::Hts) {
            return;
        }
        let mut next = 0u64;
        let mut expect = 0u64;
        for round in 0..12u32 {
            let n = 1 + round % 5;
            let free = r.free_count();
            let mut z = r.enqueue_zc_burst_start(n).unwrap();
            let n = z.len();
            assert_eq!(n, (1 + round % 5).min(free));
            let (a, b) = z.slots();
            assert_eq!((a.len() + b.len()) as u32, n);
            for s in a.iter_mut().chain(b.iter_mut()) {
                s.write(next);
                next += 1;
            }
            // SAFETY: all n slots were written above.
            assert_eq!(unsafe { z.finish(n) }, n);
            let z = r.dequeue_zc_burst_start(7).unwrap();
            let (a, b) = z.slots();
            let got: Vec<u64> = a.iter().chain(b.iter()).copied().collect();
            assert_eq!(got.len() as u32, z.len());
            for v in &got {
                assert_eq!(*v, expect);
                expect += 1;
            }
            // Consume only half; the rest is seen again next round.
            let keep = z.len() / 2;
            let len = z.len();
            let consumed = z.finish(len - keep);
            expect -= u64::from(keep);
            assert_eq!(consumed + keep, got.len() as u32);
        }
        assert!(r.enqueue_zc_bulk_start(100).unwrap().is_empty());
    });
}

#[test]
fn rts_htd_max() {
    let (_m, r) = make::<u64>(64, RingFlags::MP_RTS_ENQ);
    assert_eq!(r.prod_htd_max(), Some(7));
    assert_eq!(r.cons_htd_max(), None);
    assert!(r.set_prod_htd_max(1));
    assert!(!r.set_prod_htd_max(0));
    assert!(!r.set_prod_htd_max(64));
    assert!(!r.set_cons_htd_max(3));
    assert_eq!(r.prod_htd_max(), Some(1));
    for i in 0..63 {
        r.enqueue(i).unwrap();
    }
    assert!(r.full());
}

#[test]
fn dump_text() {
    let (_m, r) = make::<u64>(16, RingFlags::MP_RTS_ENQ | RingFlags::MC_HTS_DEQ);
    r.enqueue_bulk(&[1, 2, 3]);
    let mut out = Vec::new();
    r.dump(&mut out).unwrap();
    dump_has(
        out,
        &[
            "ring <test>",
            "capacity=15",
            "prod: sync=Rts head=3 tail=3 head_cnt=1 tail_cnt=1",
            "cons: sync=Hts head=0 tail=0",
            "used=3",
        ],
    );
}

/// The dump text `out` contains every one of `lines`.
fn dump_has(out: Vec<u8>, lines: &[&str]) {
    let text = String::from_utf8(out).unwrap();
    for l in lines {
        assert!(text.contains(l), "no {l:?} in {text}");
    }
}

#[test]
fn mp_mc_handle_only_for_multi_rings() {
    let (_m, r) = make::<u64>(8, RingFlags::empty());
    let m = r.clone().into_mp_mc().ok().expect("both sides multi");
    assert_eq!(m.enqueue_bulk(&[1, 2, 3, 4, 5, 6, 7, 8]).n, 0);
    assert_eq!(
        m.enqueue_burst(&[1, 2, 3, 4, 5, 6, 7, 8]),
        crate::Enqueued {
            n: 7,
            free_space: 0
        }
    );
    let mut out = [0u64; 8];
    assert_eq!(m.dequeue_bulk(&mut out).n, 0);
    assert_eq!(m.dequeue_bulk(&mut out[..3]).n, 3);
    assert_eq!(&out[..3], &[1, 2, 3]);
    // The plain handle sees the same ring.
    assert_eq!(r.count(), 4);
    assert_eq!(
        m.dequeue_burst(&mut out),
        crate::Dequeued { n: 4, available: 0 }
    );
    assert_eq!(&out[..4], &[4, 5, 6, 7]);
    assert!(m.into_inner().empty());
    for flags in [
        RingFlags::SP_ENQ,
        RingFlags::SC_DEQ,
        RingFlags::MP_RTS_ENQ,
        RingFlags::MC_HTS_DEQ,
    ] {
        let (_m, r) = make::<u64>(8, flags);
        assert!(r.clone().into_mp_opt().is_err(), "{flags:?}");
        assert!(r.into_mp_mc().is_err(), "{flags:?}");
    }
}
