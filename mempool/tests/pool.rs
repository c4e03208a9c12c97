//! Mempool integration tests on a real EAL (`--no-huge`, unique `--file-prefix` per test).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use eal::{Eal, VirtAddr};
use mempool::{
    BulkGetPut, CacheRef, Error, GetPutLoop, Mempool, PoolConfig, PoolFlags, CACHE_MAX_SIZE,
};

fn eal(tag: &str) -> Eal {
    let args = testkit::eal_env::no_huge_args(&format!("mp-{tag}"), 128, "0-1");
    Eal::init(&args).expect("EAL init (--no-huge)").0
}

fn cfg(n: u32, elt_size: u32, cache_size: u32) -> PoolConfig<'static> {
    PoolConfig {
        n,
        elt_size,
        cache_size,
        // Counted, so the tests can check the statistics (off by default).
        flags: PoolFlags::STATS,
        ..Default::default()
    }
}

/// Index written into the first 4 bytes of every object at creation.
fn obj_index(o: VirtAddr) -> usize {
    // SAFETY: objects are at least 4 bytes and 64-aligned; the pool is alive.
    unsafe { o.as_ptr::<u32>().read() as usize }
}

fn create_indexed(e: &Eal, name: &str, c: &PoolConfig<'_>) -> Mempool {
    Mempool::create_with_init(e, name, c, |i, o| {
        // SAFETY: fresh object of >= 4 bytes.
        unsafe { o.as_ptr::<u32>().write(i) }
    })
    .expect("create pool")
}

#[test]
fn create_lookup_iterate_dump_free() {
    let e = eal("basic");
    let zones = e.memzones().count();
    let p = create_indexed(&e, "basic", &cfg(1000, 100, 32));
    assert_eq!(p.size(), 1000);
    assert_eq!(p.avail_count(), 1000);
    assert_eq!(p.in_use_count(), 0);
    assert_eq!(p.ops_name(), "ring_mp_mc");
    // every object cache-line aligned, inside the pool, index written by init
    let mut seen = vec![false; 1000];
    let n = p.obj_iter(|i, o| {
        assert_eq!(o.0 % 64, 0, "object {o:?} not cache aligned");
        assert!(p.contains(o));
        assert_eq!(obj_index(o), i as usize);
        assert!(!seen[i as usize]);
        seen[i as usize] = true;
    });
    assert_eq!(n, 1000);
    assert!(seen.iter().all(|&s| s));
    // spread: stride in cache lines is odd (coprime with 4 channels)
    let sz = p.obj_size();
    assert_eq!((sz.total_size / 64) % 2, 1, "{sz:?}");

    let q = Mempool::lookup(&e, "basic").expect("lookup");
    assert_eq!(q.addr(), p.addr());
    assert!(matches!(
        Mempool::lookup(&e, "nope"),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        Mempool::create(&e, "basic", &cfg(10, 8, 0)),
        Err(Error::Exists(_))
    ));

    let o = q.get().unwrap();
    assert_eq!(p.in_use_count(), 1);
    let mut dump = Vec::new();
    p.dump(&mut dump).unwrap();
    let dump = String::from_utf8(dump).unwrap();
    assert!(dump.contains("mempool <basic>"), "{dump}");
    assert!(dump.contains("in_use_count=1"), "{dump}");

    // free refused while another handle exists, then while an object is out
    let r = p.free();
    assert!(matches!(r, Err(Error::InUse { .. })), "{r:?}");
    let r = q.clone().free();
    assert!(matches!(r, Err(Error::InUse { .. })), "{r:?}");
    // SAFETY: `o` came from this pool and is not used after.
    unsafe { q.put(o).unwrap() };
    q.free().expect("free");
    assert!(matches!(
        Mempool::lookup(&e, "basic"),
        Err(Error::NotFound(_))
    ));
    assert_eq!(e.memzones().count(), zones, "memzones leaked");
}

#[test]
fn bad_inputs_are_refused_cleanly() {
    let e = eal("bad");
    let zones = e.memzones().count();
    let err = |r: mempool::Result<Mempool>| r.expect_err("must fail");
    assert!(matches!(
        err(Mempool::create(&e, "z", &cfg(0, 8, 0))),
        Error::ZeroSize { .. }
    ));
    assert!(matches!(
        err(Mempool::create(&e, "z", &cfg(8, 0, 0))),
        Error::ZeroSize { .. }
    ));
    assert!(matches!(
        err(Mempool::create(&e, "z", &cfg(4096, 8, CACHE_MAX_SIZE + 1))),
        Error::CacheTooLarge { .. }
    ));
    // cache 100 needs a flush threshold of 150 <= n
    assert!(matches!(
        err(Mempool::create(&e, "z", &cfg(149, 8, 100))),
        Error::CacheTooLarge { .. }
    ));
    Mempool::create(&e, "z150", &cfg(150, 8, 100))
        .unwrap()
        .free()
        .unwrap();
    assert!(matches!(
        err(Mempool::create(&e, "", &cfg(8, 8, 0))),
        Error::BadName { .. }
    ));
    assert!(matches!(
        err(Mempool::create(&e, &"x".repeat(25), &cfg(8, 8, 0))),
        Error::BadName { .. }
    ));
    assert!(matches!(
        err(Mempool::create(&e, "a b", &cfg(8, 8, 0))),
        Error::BadName { .. }
    ));
    assert!(matches!(
        err(Mempool::create(&e, "z", &cfg(8, u32::MAX, 0))),
        Error::EltTooLarge { .. }
    ));
    let c = PoolConfig {
        ops: "no_such_ops",
        ..cfg(8, 8, 0)
    };
    assert!(matches!(
        err(Mempool::create(&e, "z", &c)),
        Error::UnknownOps(_)
    ));
    let c = PoolConfig {
        ops: "ring_sp_sc",
        ..cfg(8, 8, 0)
    };
    assert!(matches!(
        err(Mempool::create(&e, "z", &c)),
        Error::Backend { .. }
    ));
    let c = PoolConfig {
        flags: PoolFlags::from_bits_retain(0x80),
        ..cfg(8, 8, 0)
    };
    assert!(matches!(
        err(Mempool::create(&e, "z", &c)),
        Error::BadFlags { .. }
    ));
    let big = [0u8; 65];
    let c = PoolConfig {
        private: &big,
        ..cfg(8, 8, 0)
    };
    assert!(matches!(
        err(Mempool::create(&e, "z", &c)),
        Error::Incompatible { .. }
    ));
    // 4 Mi objects of 64 KiB (256 GiB) in a 128 MiB EAL
    let r = err(Mempool::create(&e, "huge", &cfg(4 << 20, 64 << 10, 0)));
    assert!(
        matches!(r, Error::Memory { .. } | Error::TooFragmented { .. }),
        "{r:?}"
    );
    // nothing left behind by any of these
    assert_eq!(e.memzones().count(), zones, "memzones leaked");
    assert!(matches!(
        Mempool::lookup(&e, "huge"),
        Err(Error::NotFound(_))
    ));
    // user cache sizes
    let p = Mempool::create(&e, "okpool", &cfg(64, 8, 0)).unwrap();
    assert!(matches!(p.cache_create(0), Err(Error::BadCacheSize { .. })));
    assert!(matches!(
        p.cache_create(513),
        Err(Error::BadCacheSize { .. })
    ));
    p.free().unwrap();
    assert_eq!(e.memzones().count(), zones);
}

/// Drain every object through `get_bulk`, check they are distinct, one more get fails,
/// put everything back.
fn drain_and_refill(p: &Mempool) {
    let n = p.size() as usize;
    let mut objs = Vec::with_capacity(n);
    let mut chunk = [VirtAddr(0); 7];
    while objs.len() + 7 <= n {
        p.get_bulk(&mut chunk).expect("get 7");
        objs.extend_from_slice(&chunk);
    }
    while objs.len() < n {
        objs.push(p.get().expect("get 1"));
    }
    let mut sorted = objs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), n, "an object was handed out twice");
    assert!(sorted.iter().all(|&o| p.contains(o)));
    assert!(matches!(p.get(), Err(Error::Empty { n: 1 })));
    assert_eq!(p.avail_count(), 0);
    // SAFETY: all objects came from this pool, each once, and are not used after.
    unsafe { p.put_bulk(&objs).unwrap() };
    assert_eq!(p.avail_count(), n as u32);
}

#[test]
fn every_backend_hands_out_each_object_once() {
    let e = eal("backends");
    for ops in ["ring_mp_mc", "stack", "ring_sp_sc"] {
        for cache in [0u32, 16] {
            let name = format!("be_{ops}_{cache}");
            let c = PoolConfig {
                ops,
                ..cfg(300, 32, cache)
            };
            // SAFETY: only this thread uses the pool (needed for ring_sp_sc).
            let p = unsafe { Mempool::create_unchecked(&e, &name, &c, |_, _| {}) }.expect("create");
            assert_eq!(p.ops_name(), ops);
            drain_and_refill(&p);
            drain_and_refill(&p);
            {
                let s = p.stats();
                assert_eq!(s.get_success_objs, 600, "{ops}: {s:?}");
                assert_eq!(s.put_objs, 600);
                assert_eq!(s.get_fail_bulk, 2);
            }
            if ops == "ring_sp_sc" {
                assert!(matches!(
                    Mempool::lookup(&e, &name),
                    Err(Error::Backend { .. })
                ));
                // SAFETY: still only this thread.
                drop(unsafe { Mempool::lookup_unchecked(&e, &name) }.unwrap());
            }
            p.free().unwrap();
        }
    }
}

#[test]
fn lcore_cache_hits_misses_flush_and_refill() {
    let e = eal("cache");
    assert_eq!(
        eal::lcore::lcore_id(),
        Some(0),
        "the test thread is the main lcore"
    );
    let p = Mempool::create(&e, "cachepool", &cfg(1024, 64, 64)).unwrap();
    let s0 = p.lcore_stats(0).unwrap();
    assert_eq!(s0, Default::default());
    // first get misses and refills half the cache (32) plus what was asked
    let a = p.get().unwrap();
    {
        let s = p.lcore_stats(0).unwrap();
        assert_eq!((s.cache_misses, s.cache_hits), (1, 0));
        assert_eq!((s.backend_dequeue_bulk, s.backend_dequeue_objs), (1, 33));
    }
    assert_eq!(p.lcore_cache_len(0), Some(32));
    assert_eq!(p.avail_count(), 1023);
    // next 32 gets hit
    let mut held = vec![a];
    for _ in 0..32 {
        held.push(p.get().unwrap());
    }
    {
        let s = p.lcore_stats(0).unwrap();
        assert_eq!((s.cache_misses, s.cache_hits), (1, 32));
        assert_eq!((s.get_success_bulk, s.get_success_objs), (33, 33));
    }
    assert_eq!(p.lcore_cache_len(0), Some(0));
    // get 63 more (miss: refill 32 + 63), then put 96 back: 32 + 96 > 96 flushes
    let mut more = vec![VirtAddr(0); 63];
    p.get_bulk(&mut more).unwrap();
    held.extend_from_slice(&more);
    assert_eq!(p.lcore_cache_len(0), Some(32));
    assert_eq!(held.len(), 96);
    // SAFETY: from this pool, not used after.
    unsafe { p.put_bulk(&held[..64]).unwrap() };
    assert_eq!(
        p.lcore_cache_len(0),
        Some(96),
        "up to the threshold stays cached"
    );
    assert_eq!(p.lcore_stats(0).unwrap().backend_enqueue_bulk, 0);
    // SAFETY: as above.
    unsafe { p.put_bulk(&held[64..]).unwrap() };
    {
        let s = p.lcore_stats(0).unwrap();
        assert_eq!(
            (s.backend_enqueue_bulk, s.backend_enqueue_objs),
            (1, 64),
            "flushed to half"
        );
        assert_eq!((s.put_bulk, s.put_objs), (2, 96));
    }
    assert_eq!(p.lcore_cache_len(0), Some(32 + 32));
    assert_eq!(p.avail_count(), 1024);
    // bulk bigger than the cache bypasses it
    let mut big = vec![VirtAddr(0); 200];
    p.get_bulk(&mut big).unwrap();
    assert_eq!(p.lcore_cache_len(0), Some(0));
    // SAFETY: as above.
    unsafe { p.put_bulk(&big).unwrap() };
    assert_eq!(
        p.lcore_cache_len(0),
        Some(0),
        "put > size goes to the backend"
    );
    // a non-EAL thread goes straight to the backend and counts in the shared slot
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(eal::lcore::lcore_id(), None);
            let o = p.get().unwrap();
            // SAFETY: as above.
            unsafe { p.put(o).unwrap() };
        });
    });
    {
        let shared = p.lcore_stats(eal::lcore::MAX_LCORE as u32).unwrap();
        assert_eq!(
            (shared.get_success_objs, shared.put_objs, shared.cache_hits),
            (1, 1, 0)
        );
        let total = p.stats();
        assert_eq!(total.get_success_objs, total.put_objs);
    }
    p.flush_lcore_cache().unwrap();
    assert_eq!(p.lcore_cache_len(0), Some(0));
    assert_eq!(p.avail_count(), 1024);
    p.free().unwrap();
}

#[test]
fn user_cache_binds_to_its_pool_and_flushes_on_drop() {
    let e = eal("ucache");
    let p = Mempool::create(&e, "up", &cfg(512, 16, 0)).unwrap();
    let q = Mempool::create(&e, "uq", &cfg(64, 16, 0)).unwrap();
    let mut c = p.cache_create(64).unwrap();
    assert_eq!(c.flush_threshold(), 96);
    let mut objs = [VirtAddr(0); 10];
    p.get_bulk_with(&mut objs, Some(&mut c)).unwrap();
    assert_eq!(c.len(), 32, "refilled to half");
    assert_eq!(
        p.avail_count(),
        512 - 42,
        "objects in a user cache count as in use"
    );
    assert!(matches!(
        q.get_bulk_with(&mut objs, Some(&mut c)),
        Err(Error::ForeignCache { .. })
    ));
    // SAFETY: from pool p, not used after.
    unsafe { p.put_bulk_with(&objs, Some(&mut c)).unwrap() };
    assert_eq!(c.len(), 42);
    assert!(
        matches!(p.clone().free(), Err(Error::InUse { .. })),
        "the cache holds a handle"
    );
    drop(c);
    assert_eq!(p.avail_count(), 512);
    p.free().unwrap();
    q.free().unwrap();
}

/// Stress: the two EAL lcores (per-lcore caches) and two plain threads (user caches, and
/// no cache) get and put random bulks; a bitmap proves no object is ever out twice, and
/// every object is back at the end.
#[test]
fn stress_lcores_and_threads_account_for_every_object() {
    let e = eal("stress");
    const N: u32 = 2048;
    for ops in ["stack", "ring_mp_mc"] {
        let name = format!("st_{ops}");
        let p = create_indexed(
            &e,
            &name,
            &PoolConfig {
                ops,
                ..cfg(N, 64, 128)
            },
        );
        let out: Arc<Vec<AtomicBool>> = Arc::new((0..N).map(|_| AtomicBool::new(false)).collect());
        let ops_done = Arc::new(AtomicU64::new(0));

        fn worker(
            p: Mempool,
            out: Arc<Vec<AtomicBool>>,
            done: Arc<AtomicU64>,
            seed: u32,
            mode: u8,
        ) -> i32 {
            let mut cache = (mode == 1).then(|| p.cache_create(64).unwrap());
            let mut held: Vec<VirtAddr> = Vec::new();
            let mut x = seed | 1;
            let mut buf = [VirtAddr(0); 48];
            for _ in 0..30_000 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let k = (x % 48) as usize + 1;
                if x & 0x8000 != 0 && held.len() < 400 {
                    let r = match mode {
                        0 => p.get_bulk(&mut buf[..k]),
                        1 => p.get_bulk_with(&mut buf[..k], cache.as_mut()),
                        _ => p.get_bulk_with(&mut buf[..k], None),
                    };
                    if let Err(e) = &r {
                        assert!(matches!(e, Error::Empty { .. }), "get failed with {e}");
                    }
                    if r.is_ok() {
                        for &o in &buf[..k] {
                            let was = out[obj_index(o)].swap(true, Ordering::Relaxed);
                            assert!(!was, "object {} handed out twice", obj_index(o));
                        }
                        held.extend_from_slice(&buf[..k]);
                    }
                } else if held.len() >= k {
                    let at = held.len() - k;
                    for &o in &held[at..] {
                        let was = out[obj_index(o)].swap(false, Ordering::Relaxed);
                        assert!(was, "object {} put but not out", obj_index(o));
                    }
                    // SAFETY: each object came from p and is put once.
                    unsafe {
                        match mode {
                            0 => p.put_bulk(&held[at..]),
                            1 => p.put_bulk_with(&held[at..], cache.as_mut()),
                            _ => p.put_bulk_with(&held[at..], None),
                        }
                    }
                    .unwrap();
                    held.truncate(at);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            for &o in &held {
                assert!(out[obj_index(o)].swap(false, Ordering::Relaxed));
            }
            // SAFETY: as above.
            unsafe { p.put_bulk(&held) }.unwrap();
            if mode == 0 {
                p.flush_lcore_cache().unwrap();
            }
            0
        }

        let workers = e.lcores().worker_ids();
        assert!(!workers.is_empty(), "-l 0-1 gives one worker");
        for &w in &workers {
            let (p, o, d) = (p.clone(), out.clone(), ops_done.clone());
            e.lcores()
                .remote_launch(w, move || worker(p, o, d, 0x9e37_79b9 ^ w, 0))
                .unwrap();
        }
        std::thread::scope(|s| {
            for mode in [1u8, 2] {
                let (p, o, d) = (p.clone(), out.clone(), ops_done.clone());
                s.spawn(move || worker(p, o, d, 0x1234_5678 + u32::from(mode), mode));
            }
            // and the main lcore itself
            worker(p.clone(), out.clone(), ops_done.clone(), 0xdead_beef, 0);
        });
        for &w in &workers {
            assert_eq!(
                e.lcores()
                    .wait_lcore(w)
                    .expect("worker finished without panic"),
                0
            );
        }
        assert_eq!(
            ops_done.load(Ordering::Relaxed),
            30_000 * (3 + workers.len() as u64)
        );
        assert!(out.iter().all(|b| !b.load(Ordering::Relaxed)));
        if p.avail_count() != N {
            let mut d = Vec::new();
            p.dump(&mut d).unwrap();
            eprintln!("{}", String::from_utf8_lossy(&d));
        }
        assert_eq!(p.avail_count(), N, "{ops}: every object back");
        {
            let s = p.stats();
            assert_eq!(s.get_success_objs, s.put_objs, "{s:?}");
            assert!(s.cache_hits > 0 && s.cache_misses > 0, "{s:?}");
        }
        p.free().unwrap();
    }
}

#[cfg(debug_assertions)]
#[test]
fn debug_cookies_catch_double_free_foreign_and_overrun() {
    let e = eal("cookies");
    let p = Mempool::create(&e, "ck", &cfg(16, 40, 0)).unwrap();
    let q = Mempool::create(&e, "ck2", &cfg(16, 40, 0)).unwrap();
    let o = p.get().unwrap();
    // SAFETY: deliberately breaks the put contract to see it caught; the
    // debug checks refuse before anything is enqueued.
    unsafe {
        p.put(o).unwrap();
        let r = p.put(o);
        assert!(matches!(r, Err(Error::DoubleFree { .. })), "{r:?}");
        // a double free inside one bulk is caught and nothing is put
        let a = p.get().unwrap();
        let r = p.put_bulk(&[a, a]);
        assert!(matches!(r, Err(Error::DoubleFree { .. })), "{r:?}");
        assert_eq!(p.avail_count(), 15);
        p.put(a).unwrap();
        // foreign object
        let f = q.get().unwrap();
        let r = p.put(f);
        assert!(matches!(r, Err(Error::ForeignObject { .. })), "{r:?}");
        let r = p.put(VirtAddr(f.0 + 8));
        assert!(matches!(r, Err(Error::ForeignObject { .. })), "{r:?}");
        q.put(f).unwrap();
        // overrun into the trailer cookie
        let b = p.get().unwrap();
        b.as_ptr::<u8>().add(40).write(0x55);
        let r = p.put(b);
        assert!(
            matches!(
                r,
                Err(Error::Corrupted {
                    which: "trailer",
                    ..
                })
            ),
            "{r:?}"
        );
        assert_eq!(p.avail_count(), 15, "the corrupted object stays out");
    }
    q.free().unwrap();
    assert!(matches!(p.free(), Err(Error::InUse { .. })));
}

#[cfg(not(debug_assertions))]
#[test]
fn debug_cookies_catch_double_free_foreign_and_overrun() {
    testkit::skip(
        "debug_cookies_catch_double_free_foreign_and_overrun",
        testkit::Need::Build,
        "cookie checks exist only in debug builds (cfg(debug_assertions))",
    );
}

#[test]
fn cache_ref_resolves_the_cache_once() {
    let e = eal("cref");
    let p = Mempool::create(&e, "crefpool", &cfg(1024, 64, 64)).unwrap();
    let c = p.lcore_cache(); // the test thread is the main lcore, 0
    let a = c.get().unwrap();
    assert_eq!((c.cache_len(), p.lcore_cache_len(0)), (32, Some(32)));
    let mut v = vec![VirtAddr(0); 8];
    c.get_bulk(&mut v).unwrap();
    assert_eq!(c.cache_len(), 24);
    // The plain calls use the same cache, and the handle sees what they did.
    let b = p.get().unwrap();
    assert_eq!(c.cache_len(), 23);
    // SAFETY: all from this pool, each put once, not used after.
    unsafe {
        c.put_bulk(&v).unwrap();
        c.put(a).unwrap();
        p.put(b).unwrap();
    }
    assert_eq!(c.cache_len(), 33);
    let s = p.lcore_stats(0).unwrap();
    assert_eq!(
        (s.get_success_objs, s.put_objs, s.cache_misses),
        (10, 10, 1)
    );
    // All or nothing through the handle too.
    let mut huge = vec![VirtAddr(0); 2000];
    assert!(matches!(
        c.get_bulk(&mut huge),
        Err(Error::Empty { n: 2000 })
    ));
    assert_eq!(p.avail_count(), 1024);
    // On a thread that is not an EAL lcore the handle goes straight to the backend and
    // counts in the shared slot.
    std::thread::scope(|s| {
        s.spawn(|| {
            let c = p.lcore_cache();
            let o = c.get().unwrap();
            assert_eq!(c.cache_len(), 0);
            // SAFETY: as above.
            unsafe { c.put(o).unwrap() };
        });
    });
    let shared = p.lcore_stats(eal::lcore::MAX_LCORE as u32).unwrap();
    assert_eq!((shared.get_success_objs, shared.put_objs), (1, 1));
    // A user cache is checked once, when the handle is made.
    let q = Mempool::create(&e, "crefother", &cfg(64, 64, 0)).unwrap();
    let mut uc = p.cache_create(32).unwrap();
    assert!(matches!(
        q.user_cache(&mut uc),
        Err(Error::ForeignCache { .. })
    ));
    {
        let h = p.user_cache(&mut uc).unwrap();
        let o = h.get().unwrap();
        assert_eq!(h.cache_len(), 16, "refilled to half of 32");
        // SAFETY: as above.
        unsafe { h.put(o).unwrap() };
    }
    assert_eq!(uc.len(), 17);
    uc.flush().unwrap();
    drop(uc);
    p.flush_lcore_cache().unwrap();
    assert_eq!(p.avail_count(), 1024);
    q.free().unwrap();
    p.free().unwrap();
}

/// Loop bodies for `CacheRef::run`: one get, one put, or the name of the path taken.
struct Get<'v>(&'v mut [VirtAddr]);
struct Put<'v>(&'v [VirtAddr]);
struct PathOf;

impl GetPutLoop for Get<'_> {
    type Output = mempool::Result<()>;
    fn run<P: BulkGetPut>(self, pool: &P) -> Self::Output {
        pool.get_bulk(self.0)
    }
}

impl GetPutLoop for Put<'_> {
    type Output = mempool::Result<()>;
    fn run<P: BulkGetPut>(self, pool: &P) -> Self::Output {
        // SAFETY: the callers below put only objects they got from this pool, once.
        unsafe { pool.put_bulk(self.0) }
    }
}

impl GetPutLoop for PathOf {
    type Output = &'static str;
    fn run<P: BulkGetPut>(self, _: &P) -> &'static str {
        let t = std::any::type_name::<P>();
        t.rsplit("::").next().unwrap_or(t)
    }
}

fn path(c: &CacheRef<'_>) -> &'static str {
    c.run(PathOf)
}

#[test]
fn run_takes_the_path_the_handle_has() {
    let e = eal("split");
    let p = Mempool::create(&e, "splitpool", &cfg(1024, 64, 64)).unwrap();
    let nc = Mempool::create(&e, "splitnc", &cfg(256, 64, 0)).unwrap();
    // A pool with a cache, on an lcore: the cached path, sharing the lcore's cache with
    // the plain calls.
    let c = p.lcore_cache();
    assert_eq!(
        path(&c),
        "Cached<'_, true>",
        "counted pool with cache on lcore 0"
    );
    let mut v = vec![VirtAddr(0); 8];
    c.run(Get(&mut v)).unwrap();
    assert_eq!(
        p.lcore_cache_len(0),
        Some(32),
        "a miss refills to half of 64"
    );
    let o = p.get().unwrap();
    assert_eq!(p.lcore_cache_len(0), Some(31));
    c.run(Put(&v)).unwrap();
    c.run(Put(&[o])).unwrap();
    assert_eq!(p.lcore_cache_len(0), Some(40));
    // All or nothing.
    let mut huge = vec![VirtAddr(0); 2000];
    assert!(matches!(
        c.run(Get(&mut huge)),
        Err(Error::Empty { n: 2000 })
    ));
    let s = p.lcore_stats(0).unwrap();
    assert_eq!((s.get_success_objs, s.put_objs, s.cache_misses), (9, 9, 1));
    // No cache: the direct path, and the objects move in the backend.
    let d = nc.lcore_cache();
    assert_eq!(path(&d), "Direct<'_, true>", "counted pool without cache");
    let mut w = vec![VirtAddr(0); 100];
    d.run(Get(&mut w)).unwrap();
    assert_eq!(nc.avail_count(), 156);
    d.run(Put(&w)).unwrap();
    assert_eq!(nc.avail_count(), 256);
    // Off an lcore a pool with a cache has no cache to use: direct, shared counters.
    std::thread::scope(|s| {
        s.spawn(|| {
            let d = p.lcore_cache();
            assert_eq!(path(&d), "Direct<'_, true>", "non-EAL thread");
            let mut x = [VirtAddr(0); 4];
            d.run(Get(&mut x)).unwrap();
            d.run(Put(&x)).unwrap();
        });
    });
    let shared = p.lcore_stats(eal::lcore::MAX_LCORE as u32).unwrap();
    assert_eq!((shared.get_success_objs, shared.put_objs), (4, 4));
    p.flush_lcore_cache().unwrap();
    assert_eq!(p.avail_count(), 1024);
    // Without STATS the paths are the uncounted ones, and they count nothing.
    let plain = PoolConfig {
        flags: PoolFlags::empty(),
        ..cfg(256, 64, 32)
    };
    let q = Mempool::create(&e, "splitplain", &plain).unwrap();
    let c = q.lcore_cache();
    assert_eq!(
        path(&c),
        "Cached<'_, false>",
        "uncounted pool with cache on lcore 0"
    );
    let mut y = [VirtAddr(0); 8];
    c.run(Get(&mut y)).unwrap();
    assert_eq!(q.avail_count(), 248);
    c.run(Put(&y)).unwrap();
    let qs = q.lcore_stats(0).unwrap();
    assert_eq!(
        (qs.get_success_objs, qs.put_objs, qs.cache_misses),
        (0, 0, 0)
    );
    let qnc = Mempool::create(
        &e,
        "splitplainnc",
        &PoolConfig {
            cache_size: 0,
            ..plain
        },
    )
    .unwrap();
    assert_eq!(path(&qnc.lcore_cache()), "Direct<'_, false>");
    q.flush_lcore_cache().unwrap();
    assert_eq!(q.avail_count(), 256);
    qnc.free().unwrap();
    q.free().unwrap();
    nc.free().unwrap();
    p.free().unwrap();
}

#[test]
fn statistics_are_off_unless_asked_for() {
    let e = eal("nostats");
    let c = PoolConfig {
        flags: PoolFlags::empty(),
        ..cfg(256, 64, 32)
    };
    let p = Mempool::create(&e, "nostats", &c).unwrap();
    assert!(!p.flags().contains(PoolFlags::STATS));
    let mut v = vec![VirtAddr(0); 100];
    p.get_bulk(&mut v).unwrap();
    // SAFETY: from this pool, put once.
    unsafe { p.put_bulk(&v).unwrap() };
    assert_eq!(p.stats(), Default::default(), "nothing counted");
    let mut d = Vec::new();
    p.dump(&mut d).unwrap();
    let d = String::from_utf8(d).unwrap();
    assert!(d.contains("stats: off"), "{d}");
    p.flush_lcore_cache().unwrap();
    p.free().unwrap();
}
