//! A clean exit leaves no files: packet-mbuf pools release their EAL handle when freed,
//! and when the process's last handle is dropped with no mbuf out (mempool crate docs,
//! "Attachment"). Real EAL (`--no-huge`, unique `--file-prefix` per test).

use std::path::PathBuf;

use eal::Eal;
use mbuf::{pktmbuf_pool_create, Mbuf, PktmbufPool, MBUF_DEFAULT_BUF_SIZE};

fn eal(tag: &str) -> Eal {
    let argv: Vec<String> = [
        "test",
        "--no-huge",
        "-m",
        "64",
        "--file-prefix",
        &format!("mbtd-{tag}-{}", std::process::id()),
        "-l",
        "0-1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Eal::init(&argv).expect("EAL init (--no-huge)").0
}

fn files_of(e: &Eal) -> Vec<PathBuf> {
    let mut f: Vec<PathBuf> = e.memory().files().to_vec();
    assert!(!f.is_empty(), "an EAL under --no-huge has a /dev/shm file");
    f.push(e.runtime_dir().to_path_buf());
    for p in &f {
        assert!(
            p.exists(),
            "{} should exist while the EAL lives",
            p.display()
        );
    }
    f
}

fn assert_gone(files: &[PathBuf]) {
    for p in files {
        assert!(!p.exists(), "{} left behind after cleanup", p.display());
    }
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
    let e = eal("freed");
    let files = files_of(&e);
    let p =
        pktmbuf_pool_create(&e, "tdmb", 255, 32, 0, MBUF_DEFAULT_BUF_SIZE, None).expect("create");
    let l = PktmbufPool::lookup(&e, "tdmb").expect("lookup");
    exercise(&l);
    drop(l);
    p.free().expect("free");
    e.cleanup().expect("cleanup after the pool was freed");
    assert_gone(&files);
}

#[test]
fn unfreed_pktmbuf_pool_releases_the_eal_when_handles_drop() {
    let e = eal("unfreed");
    let files = files_of(&e);
    let p =
        pktmbuf_pool_create(&e, "tdmb", 255, 32, 0, MBUF_DEFAULT_BUF_SIZE, None).expect("create");
    let q = p.clone();
    exercise(&q);
    drop(p);
    drop(q);
    e.cleanup()
        .expect("cleanup with the pool never freed but every handle dropped");
    assert_gone(&files);
}
