//! Heap (malloc family) on a `--no-huge` EAL: alloc, zeroed, aligned, realloc, free,
//! stats, bad frees, concurrent use from worker lcores.

use eal::{Eal, Error, VirtAddr};

mod common;

fn eal(tag: &str, mb: u32) -> Eal {
    common::nohuge_eal(&common::prefix(&format!("hp-{tag}")), mb)
}

#[test]
fn malloc_zmalloc_aligned_free_stats() {
    let e = eal("basic", 8);
    let s0 = e.heap().stats(0).unwrap();
    assert_eq!(s0.heap_size, 8 << 20);
    assert_eq!((s0.alloc_count, s0.free_count, s0.alloc_bytes), (0, 1, 0));
    assert_eq!(e.heap().stats(3), None);
    assert_eq!(e.heap().sockets(), vec![0]);

    let p = e.heap().malloc(1000, 0).unwrap();
    assert_eq!(p.as_ptr() as usize % 64, 0);
    // SAFETY: 1000 bytes we own.
    unsafe { std::ptr::write_bytes(p.as_ptr(), 0xee, 1000) };
    // SAFETY: freed once, not used after.
    unsafe { e.heap().free(p.as_ptr()).unwrap() };
    // The same block comes back dirty from malloc, clean from zmalloc.
    let z = e.heap().zmalloc(1000, 0).unwrap();
    assert_eq!(z, p, "first fit reuses the block");
    // SAFETY: 1000 bytes we own.
    assert!(unsafe { std::slice::from_raw_parts(z.as_ptr(), 1000) }
        .iter()
        .all(|&b| b == 0));
    for align in [64usize, 128, 4096, 1 << 20] {
        let a = e.heap().malloc(100, align).unwrap();
        assert_eq!(a.as_ptr() as usize % align, 0, "align {align}");
        let s = e.heap().stats(0).unwrap();
        assert_eq!(s.alloc_count, 2);
        // SAFETY: ours, freed once.
        unsafe { e.heap().free(a.as_ptr()).unwrap() };
    }
    let s = e.heap().stats(0).unwrap();
    assert_eq!(s.alloc_count, 1);
    assert_eq!(s.alloc_bytes, 1024 + 64);
    assert_eq!(s.free_bytes + s.alloc_bytes, s.heap_size);
    assert!(s.largest_free <= s.free_bytes);
    let on0 = e.heap().malloc_socket(64, 0, Some(0)).unwrap();
    assert!(matches!(
        e.heap().malloc_socket(64, 0, Some(7)),
        Err(Error::OutOfMemory {
            socket: Some(7),
            ..
        })
    ));
    // SAFETY: ours.
    unsafe {
        e.heap().free(on0.as_ptr()).unwrap();
        e.heap().free(z.as_ptr()).unwrap();
    }
    let s = e.heap().stats(0).unwrap();
    assert_eq!(
        (s.alloc_count, s.free_count, s.largest_free),
        (0, 1, (8 << 20) - 64)
    );
    let mut out = Vec::new();
    e.heap().dump(&mut out).unwrap();
    assert!(String::from_utf8(out)
        .unwrap()
        .contains("heap socket 0: size 8388608"));
    e.heap().check().unwrap();
}

#[test]
fn bad_requests_and_bad_frees() {
    let e = eal("bad", 4);
    assert!(matches!(
        e.heap().malloc(0, 0),
        Err(Error::BadSize { len: 0, .. })
    ));
    assert!(matches!(
        e.heap().malloc(64, 3),
        Err(Error::BadAlign { align: 3, .. })
    ));
    assert!(matches!(
        e.heap().malloc(5 << 20, 0),
        Err(Error::OutOfMemory { .. })
    ));
    assert!(matches!(
        e.heap().malloc_dma(64, 0, None),
        Err(Error::NoDma { .. })
    ));
    let p = e.heap().malloc(256, 0).unwrap();
    // SAFETY: every free below is either refused by the heap without touching memory, or
    // frees our own live allocation once.
    unsafe {
        let mut on_stack = 0u64;
        assert!(matches!(
            e.heap().free(&mut on_stack as *mut u64 as *mut u8),
            Err(Error::BadFree { .. })
        ));
        assert!(
            matches!(
                e.heap().free(p.as_ptr().add(64)),
                Err(Error::BadFree { .. })
            ),
            "interior pointer"
        );
        assert!(
            matches!(e.heap().free(p.as_ptr().add(1)), Err(Error::BadFree { .. })),
            "unaligned pointer"
        );
        let z = e
            .memzones()
            .reserve("mz", 64, None, Default::default())
            .unwrap();
        assert!(
            matches!(e.heap().free(z.as_ptr()), Err(Error::BadFree { addr }) if addr == z.addr().0),
            "memzone via free"
        );
        e.heap().free(std::ptr::null_mut()).unwrap();
        e.heap().free(p.as_ptr()).unwrap();
        assert!(
            matches!(e.heap().free(p.as_ptr()), Err(Error::BadFree { .. })),
            "double free"
        );
        assert!(
            e.memzones().lookup("mz").is_some(),
            "refused frees changed nothing"
        );
    }
    e.heap().check().unwrap();
    assert_eq!(e.heap().stats(0).unwrap().alloc_count, 1);
}

#[test]
fn realloc_keeps_contents() {
    let e = eal("realloc", 4);
    let p = e.heap().malloc(100, 0).unwrap();
    // SAFETY: p is ours with 100 bytes; realloc contract: p not used after success.
    unsafe {
        for i in 0..100 {
            *p.as_ptr().add(i) = i as u8;
        }
        let q = e.heap().realloc(p.as_ptr(), 10_000, 0).unwrap();
        for i in 0..100 {
            assert_eq!(*q.as_ptr().add(i), i as u8);
        }
        let r = e.heap().realloc(q.as_ptr(), 10, 0).unwrap();
        for i in 0..10 {
            assert_eq!(*r.as_ptr().add(i), i as u8);
        }
        assert!(matches!(
            e.heap().realloc(0x10 as *mut u8, 10, 0),
            Err(Error::BadFree { .. })
        ));
        e.heap().free(r.as_ptr()).unwrap();
        let n = e.heap().realloc(std::ptr::null_mut(), 64, 0).unwrap();
        e.heap().free(n.as_ptr()).unwrap();
    }
    assert_eq!(e.heap().stats(0).unwrap().alloc_count, 0);
    e.heap().check().unwrap();
}

#[test]
fn concurrent_alloc_free_on_lcores_and_threads() {
    let e = eal("conc", 16);
    // Worker lcores plus plain threads hammer the heap; every block is tagged with its
    // owner and checked before it is freed.
    let job = |e: Eal, tag: u8| {
        move || {
            let mut live: Vec<(usize, usize)> = Vec::new();
            for i in 0..2000usize {
                let len = 64 + (i * 37) % 3000;
                let p = e.heap().malloc(len, 0).unwrap();
                // SAFETY: our fresh block of `len` bytes.
                unsafe { std::ptr::write_bytes(p.as_ptr(), tag, len) };
                live.push((p.as_ptr() as usize, len));
                if i % 2 == 1 {
                    let (a, l) = live.swap_remove((i * 7) % live.len());
                    // SAFETY: our block, still live.
                    let ok = unsafe { std::slice::from_raw_parts(a as *const u8, l) }
                        .iter()
                        .all(|&b| b == tag);
                    if !ok {
                        return -1;
                    }
                    // SAFETY: ours, freed once.
                    unsafe { e.heap().free(a as *mut u8).unwrap() };
                }
            }
            for (a, _) in live {
                // SAFETY: ours, freed once.
                unsafe { e.heap().free(a as *mut u8).unwrap() };
            }
            0
        }
    };
    let workers = e.lcores().worker_ids();
    for (n, &w) in workers.iter().enumerate() {
        e.lcores()
            .remote_launch(w, job(e.clone(), 1 + n as u8))
            .unwrap();
    }
    let threads: Vec<_> = (0..2u8)
        .map(|t| std::thread::spawn(job(e.clone(), 100 + t)))
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 0);
    }
    for (l, r) in e.lcores().mp_wait_lcore() {
        assert_eq!(r.unwrap(), 0, "lcore {l}");
    }
    e.heap().check().unwrap();
    let s = e.heap().stats(0).unwrap();
    assert_eq!((s.alloc_count, s.free_count), (0, 1));
    let _ = VirtAddr(0);
}
