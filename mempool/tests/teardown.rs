//! A clean exit leaves no files: pools release their EAL handle when freed, and when the
//! process's last handle is dropped with no object out (crate docs, "Attachment").
//! Real EAL (`--no-huge`, unique `--file-prefix` per test).

use std::path::PathBuf;

use eal::{Eal, VirtAddr};
use mempool::{Mempool, Pool, PoolConfig};

/// A `--no-huge` EAL of its own for test `tag`, and its files (which exist now).
fn setup(tag: &str) -> (Eal, Vec<PathBuf>) {
    let args = testkit::eal_env::no_huge_args(&format!("mptd-{tag}"), 64, "0-1");
    let e = Eal::init(&args).expect("EAL init (--no-huge)").0;
    let files = testkit::eal_env::eal_files(e.memory().files(), e.runtime_dir());
    (e, files)
}

fn cfg(ops: &str, cache: u32) -> PoolConfig<'_> {
    PoolConfig {
        n: 256,
        elt_size: 64,
        cache_size: cache,
        ops,
        ..Default::default()
    }
}

/// Get and put a few objects on this (non-EAL) thread and on an EAL lcore, so both the
/// backend and an lcore cache hold objects.
fn exercise(e: &Eal, p: &Mempool) {
    let mut objs = [VirtAddr(0); 8];
    p.get_bulk(&mut objs).expect("get");
    // SAFETY: handed out just above, not used afterwards.
    unsafe { p.put_bulk(&objs) }.expect("put");
    let q = p.clone();
    let worker = e.lcores().lcore_ids().into_iter().find(|&l| l != 0);
    if let Some(l) = worker {
        e.lcores()
            .remote_launch(l, move || {
                let mut o = [VirtAddr(0); 4];
                q.get_bulk(&mut o).expect("lcore get");
                // SAFETY: handed out just above.
                unsafe { q.put_bulk(&o) }.expect("lcore put");
                0
            })
            .expect("launch");
        assert_eq!(e.lcores().wait_lcore(l).expect("wait"), 0);
    }
    assert_eq!(p.in_use_count(), 0);
}

#[test]
fn freed_pools_leave_no_files() {
    let (e, files) = setup("freed");
    for (i, (ops, cache)) in [("ring_mp_mc", 32), ("stack", 0), ("stack", 16)]
        .into_iter()
        .enumerate()
    {
        let name = format!("td{i}");
        let p = Mempool::create(&e, &name, &cfg(ops, cache)).expect("create");
        let l = Mempool::lookup(&e, &name).expect("lookup");
        exercise(&e, &p);
        drop(l);
        p.free().expect("free");
    }
    testkit::eal_env::assert_clean_exit(e.cleanup(), &files, "after every pool was freed");
}

#[test]
fn unfreed_pools_release_the_eal_when_the_last_handle_drops() {
    let (e, files) = setup("unfreed");
    let p = Mempool::create(&e, "keep0", &cfg("ring_mp_mc", 32)).expect("create");
    let s = Mempool::create(&e, "keep1", &cfg("stack", 0)).expect("create");
    exercise(&e, &p);
    exercise(&e, &s);
    let addr = p.addr();
    let l = Mempool::lookup(&e, "keep0").expect("lookup");
    drop(p);
    // One handle left: still attached, objects still findable from their pool address.
    // SAFETY: `l` is a handle of the pool.
    assert!(unsafe { Pool::from_addr(addr) }.is_some());
    drop(l);
    // SAFETY: the result is only tested for None: a detached pool is not read.
    let stale = unsafe { Pool::from_addr(addr) };
    assert!(stale.is_none(), "a detached pool must not be found");
    // A lookup re-attaches the same view; dropping it detaches again.
    let again = Mempool::lookup(&e, "keep0").expect("lookup after detach");
    assert!(again.attached());
    assert_eq!(again.in_use_count(), 0);
    exercise(&e, &again);
    drop(again);
    drop(s);
    testkit::eal_env::assert_clean_exit(
        e.cleanup(),
        &files,
        "with pools never freed but every handle dropped",
    );
}

#[test]
fn objects_out_at_last_drop_keep_the_pool_attached() {
    let (e, files) = setup("out");
    let p = Mempool::create(&e, "out0", &cfg("ring_mp_mc", 0)).expect("create");
    let o = p.get().expect("get");
    let addr = p.addr();
    drop(p);
    // Rule broken on purpose: the object outlives the last handle. The pool stays
    // attached, so the object's memory stays mapped and it can still be put back.
    // SAFETY: we hold an object of the pool.
    let pool = unsafe { Pool::from_addr(addr) }.expect("still attached with an object out");
    assert!(pool.attached());
    let e2 = e.clone();
    match e.cleanup() {
        Err(eal::Error::InUse { count, .. }) => assert!(count >= 2, "count {count}"),
        other => panic!("cleanup must be refused while the pool keeps the EAL: {other:?}"),
    }
    // SAFETY: `o` came from this pool and is not used afterwards.
    unsafe { pool.put(o) }.expect("put back");
    // Re-look up and drop with nothing out: the pool detaches and the EAL can go.
    drop(Mempool::lookup(&e2, "out0").expect("lookup"));
    testkit::eal_env::assert_clean_exit(
        e2.cleanup(),
        &files,
        "once every object is back and handles dropped",
    );
}
