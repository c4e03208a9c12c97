//! A clean exit leaves no files: packet-mbuf pools release their EAL handle when freed,
//! and when the process's last handle is dropped with no mbuf out (mempool crate docs,
//! "Attachment"). Real EAL (`--no-huge`, unique `--file-prefix` per test).

use std::path::PathBuf;

use eal::Eal;
use mbuf::{pktmbuf_pool_create, Mbuf, PktmbufPool, MBUF_DEFAULT_BUF_SIZE};

/// The EAL of mbuf test `tag` (`--no-huge`, its own prefix) and the files it made.
fn setup(tag: &str) -> (Eal, Vec<PathBuf>) {
    let args = testkit::eal_env::no_huge_args(&format!("mbtd-{tag}"), 64, "0-1");
    let e = Eal::init(&args).expect("EAL init (--no-huge)").0;
    let files = testkit::eal_env::eal_files(e.memory().files(), e.runtime_dir());
    (e, files)
}

/// Allocate single mbufs, a chain and clones, write into them, and free them all.
fn exercise(p: &PktmbufPool) {
    let mut m = Mbuf::alloc(p).expect("alloc");
    m.append(64).expect("room").fill(0xab);
    let mut tail = Mbuf::alloc(p).expect("alloc");
    tail.append(32).expect("room").fill(0xcd);
    m.chain(tail).expect("chain");
    let c = m.clone_in(p).expect("clone");
    assert_eq!(c.pkt_len(), 96);
    let mut bulk: Vec<Option<Mbuf>> = (0..16).map(|_| None).collect();
    Mbuf::alloc_bulk(p, &mut bulk).expect("bulk");
    assert!(bulk.iter().all(Option::is_some));
    assert_eq!(p.in_use_count(), 2 + 2 + 16);
    drop((m, c, bulk));
    assert_eq!(p.in_use_count(), 0);
}

#[test]
fn freed_pktmbuf_pool_leaves_no_files() {
    let (e, files) = setup("freed");
    let p =
        pktmbuf_pool_create(&e, "tdmb", 255, 32, 0, MBUF_DEFAULT_BUF_SIZE, None).expect("create");
    let l = PktmbufPool::lookup(&e, "tdmb").expect("lookup");
    exercise(&l);
    drop(l);
    p.free().expect("free");
    testkit::eal_env::assert_clean_exit(e.cleanup(), &files, "after the pool was freed");
}

#[test]
fn unfreed_pktmbuf_pool_releases_the_eal_when_handles_drop() {
    let (e, files) = setup("unfreed");
    let p =
        pktmbuf_pool_create(&e, "tdmb", 255, 32, 0, MBUF_DEFAULT_BUF_SIZE, None).expect("create");
    let q = p.clone();
    exercise(&q);
    drop(p);
    drop(q);
    testkit::eal_env::assert_clean_exit(
        e.cleanup(),
        &files,
        "with the pool never freed but every handle dropped",
    );
}
