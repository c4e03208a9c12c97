//! Memzone reserve / lookup / free / walk / dump and every refusal, on a `--no-huge` EAL.

use std::collections::HashSet;

use eal::config::MAX_MEMZONE;
use eal::memzone::MEMZONE_NAME_MAX;
use eal::{Eal, Error, MemzoneFlags};

mod common;

fn eal(tag: &str, mb: u32) -> Eal {
    common::nohuge_eal(&common::prefix(&format!("mz-{tag}")), mb)
}

const NONE: MemzoneFlags = MemzoneFlags::empty();

#[test]
fn reserve_lookup_walk_dump_free() {
    let e = eal("basic", 8);
    let a = e.memzones().reserve("zone-a", 1000, None, NONE).unwrap();
    let b = e
        .memzones()
        .reserve_aligned("zone-b", 100, Some(0), NONE, 4096)
        .unwrap();
    assert_eq!(a.name(), "zone-a");
    assert_eq!(a.len(), 1024, "rounded to cache lines");
    assert_eq!(a.addr().0 % 64, 0);
    assert_eq!(b.addr().0 % 4096, 0);
    assert_eq!(b.socket(), 0);
    assert_eq!(a.page_size(), 4096);
    assert_eq!(a.iova(), e.memory().virt2iova(a.addr()).unwrap());
    assert!(
        a.is_iova_contig(),
        "VA mode: virtually contiguous = IOVA contiguous"
    );
    // Disjoint and inside EAL memory.
    assert!(a.addr().0 + a.len() <= b.addr().0 || b.addr().0 + b.len() <= a.addr().0);
    for z in [a, b] {
        assert!(
            z.addr().0 >= e.memory().base().0
                && z.addr().0 + z.len() <= e.memory().base().0 + e.memory().len()
        );
    }
    // Usable memory.
    // SAFETY: the zone is 1024 bytes, ours, not shared with anyone in this test.
    unsafe {
        std::ptr::write_bytes(a.as_ptr::<u8>(), 0xab, 1000);
        assert_eq!(*a.as_ptr::<u8>().add(999), 0xab);
    }
    assert_eq!(e.memzones().lookup("zone-a"), Some(a));
    assert_eq!(e.memzones().lookup("zone-b"), Some(b));
    assert_eq!(e.memzones().lookup("zone-c"), None);
    assert_eq!(e.memzones().lookup(""), None);
    assert_eq!(e.memzones().lookup(&"x".repeat(100)), None);
    let names: Vec<String> = e
        .memzones()
        .walk()
        .iter()
        .map(|z| z.name().to_string())
        .collect();
    assert_eq!(names, vec!["zone-a", "zone-b"]);
    assert_eq!(e.memzones().count(), 2);
    let mut out = Vec::new();
    e.memzones().dump(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("2 memzones"), "{out}");
    assert!(
        out.contains("name:<zone-a>") && out.contains("name:<zone-b>"),
        "{out}"
    );
    e.memzones().free(&a).unwrap();
    assert_eq!(e.memzones().lookup("zone-a"), None);
    // A stale handle is refused, even after the name is reused.
    assert!(matches!(e.memzones().free(&a), Err(Error::NotFound(_))));
    let a2 = e.memzones().reserve("zone-a", 1000, None, NONE).unwrap();
    assert!(matches!(e.memzones().free(&a), Err(Error::NotFound(_))));
    assert_eq!(e.memzones().lookup("zone-a"), Some(a2));
    e.memzones().free(&a2).unwrap();
    e.memzones().free(&b).unwrap();
    assert!(e.memzones().walk().is_empty());
    e.heap().check().unwrap();
    let s = e.heap().stats(0).unwrap();
    assert_eq!(
        (s.alloc_count, s.free_count),
        (0, 1),
        "everything coalesced back"
    );
}

#[test]
fn names_sizes_alignments_are_checked() {
    let e = eal("edges", 8);
    let max = "n".repeat(MEMZONE_NAME_MAX);
    assert_eq!(MEMZONE_NAME_MAX, 31);
    e.memzones().reserve(&max, 64, None, NONE).unwrap();
    assert!(matches!(
        e.memzones().reserve(&"n".repeat(32), 64, None, NONE),
        Err(Error::BadName { max: 31, .. })
    ));
    assert!(matches!(
        e.memzones().reserve("", 64, None, NONE),
        Err(Error::BadName { .. })
    ));
    assert!(matches!(
        e.memzones().reserve("nul\0x", 64, None, NONE),
        Err(Error::BadName { .. })
    ));
    assert!(
        matches!(e.memzones().reserve(&max, 64, None, NONE), Err(Error::Exists(n)) if n == max)
    );
    assert!(matches!(
        e.memzones().reserve("zero", 0, None, NONE),
        Err(Error::BadSize { len: 0, .. })
    ));
    assert!(matches!(
        e.memzones().reserve_aligned("al", 64, None, NONE, 96),
        Err(Error::BadAlign { align: 96, .. })
    ));
    assert!(matches!(
        e.memzones()
            .reserve_bounded("bd", 4096, None, NONE, 64, 1024),
        Err(Error::BadAlign { bound: 1024, .. })
    ));
    assert!(matches!(
        e.memzones()
            .reserve_bounded("bd", 100, None, NONE, 64, 1000),
        Err(Error::BadAlign { .. })
    ));
    assert!(matches!(
        e.memzones().reserve("huge", usize::MAX, None, NONE),
        Err(Error::BadSize { .. })
    ));
    // Exhaustion: more than the 8 MiB there is.
    assert!(matches!(
        e.memzones().reserve("big", 9 << 20, None, NONE),
        Err(Error::OutOfMemory { .. })
    ));
    // No memory on socket 5.
    assert!(matches!(
        e.memzones().reserve("s5", 64, Some(5), NONE),
        Err(Error::OutOfMemory {
            socket: Some(5),
            ..
        })
    ));
    // --no-huge: no DMA, and no 2M/1G pages.
    assert!(matches!(
        e.memzones().reserve("dma", 64, None, MemzoneFlags::DMA),
        Err(Error::NoDma { .. })
    ));
    assert!(matches!(
        e.memzones().reserve("2m", 64, None, MemzoneFlags::SIZE_2MB),
        Err(Error::OutOfMemory { .. })
    ));
    // IOVA_CONTIG is satisfiable (VA mode).
    let c = e
        .memzones()
        .reserve("contig", 3 << 20, None, MemzoneFlags::IOVA_CONTIG)
        .unwrap();
    assert!(c.is_iova_contig());
    assert_eq!(c.flags(), MemzoneFlags::IOVA_CONTIG);
    // Failed attempts left nothing behind.
    assert_eq!(e.memzones().count(), 2);
    e.heap().check().unwrap();
}

#[test]
fn bounded_zones_do_not_cross() {
    let e = eal("bound", 8);
    for i in 0..200 {
        let z = e
            .memzones()
            .reserve_bounded(&format!("b{i}"), 3000, None, NONE, 64, 4096)
            .unwrap();
        assert_eq!(
            z.addr().0 / 4096,
            (z.addr().0 + 2999) / 4096,
            "{z:?} crosses a 4 KiB boundary"
        );
    }
    let big = e
        .memzones()
        .reserve_bounded("b-big", 1 << 20, None, NONE, 0, 1 << 20)
        .unwrap();
    assert_eq!(
        big.addr().0 % (1 << 20),
        0,
        "a zone as large as its bound must start on it"
    );
    e.heap().check().unwrap();
}

#[test]
fn exhaustion_then_free_makes_room() {
    let e = eal("exhaust", 4);
    let mut zones = Vec::new();
    let mut i = 0;
    loop {
        match e.memzones().reserve(&format!("z{i}"), 64 << 10, None, NONE) {
            Ok(z) => zones.push(z),
            Err(Error::OutOfMemory { .. }) => break,
            Err(other) => panic!("unexpected {other}"),
        }
        i += 1;
    }
    // 4 MiB / (64 KiB + 64 B header): 63 zones fit.
    assert_eq!(zones.len(), 63);
    e.heap().check().unwrap();
    e.memzones().free(&zones[10]).unwrap();
    e.memzones().reserve("again", 64 << 10, None, NONE).unwrap();
    assert!(matches!(
        e.memzones().reserve("more", 64 << 10, None, NONE),
        Err(Error::OutOfMemory { .. })
    ));
}

#[test]
fn table_full_at_max_memzone() {
    let e = eal("full", 4);
    for i in 0..MAX_MEMZONE {
        e.memzones()
            .reserve(&format!("t{i}"), 64, None, NONE)
            .unwrap_or_else(|err| panic!("zone {i}: {err}"));
    }
    assert_eq!(e.memzones().count(), 2560);
    assert!(
        matches!(e.memzones().reserve("one-more", 64, None, NONE), Err(Error::TableFull(n)) if n == "one-more")
    );
    let z = e.memzones().lookup("t100").unwrap();
    e.memzones().free(&z).unwrap();
    e.memzones().reserve("one-more", 64, None, NONE).unwrap();
    e.heap().check().unwrap();
}

#[test]
fn concurrent_reservations_are_distinct() {
    let e = eal("threads", 16);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                let mut v = Vec::new();
                for i in 0..200 {
                    let z = e
                        .memzones()
                        .reserve(&format!("th{t}-{i}"), 64 + i * 8, None, NONE)
                        .unwrap();
                    v.push(z);
                    if i % 3 == 0 {
                        let z = v.pop().unwrap();
                        e.memzones().free(&z).unwrap();
                    }
                }
                v
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().unwrap());
    }
    let walked = e.memzones().walk();
    assert_eq!(walked.len(), all.len());
    let names: HashSet<String> = walked.iter().map(|z| z.name().to_string()).collect();
    for z in &all {
        assert!(names.contains(z.name()), "{} missing from walk", z.name());
    }
    let mut ranges: Vec<(u64, u64)> = walked
        .iter()
        .map(|z| (z.addr().0, z.addr().0 + z.len()))
        .collect();
    ranges.sort();
    for w in ranges.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlapping zones {w:?}");
    }
    e.heap().check().unwrap();
}
