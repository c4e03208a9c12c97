//! The multi-process apps as real processes: `mp_server` + two `mp_client`s pass 10
//! million mbufs with every payload checked and every mbuf back in the pool; `proc-info`
//! against a primary (this test process) whose objects it must list exactly;
//! `simple_mp` in batch and interactive mode; `kill -9` of the server mid-run (clients
//! stop with status 3) and a restart that reclaims the crash's files; no primary → clear
//! error. All under `--no-huge` (the EAL's own tests cover hugepages).
//!
//! Timeouts are hang guards only; nothing asserts a duration.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use testkit::child::Watched;

use eal::{Eal, MemzoneFlags};
use mempool::{Mempool, PoolConfig};
use ring::{Ring, RingFlags};

const GUARD: Duration = Duration::from_secs(600);

fn prefix(tag: &str) -> String {
    format!("t-app-{tag}-{}", std::process::id())
}

const SERVER: &str = env!("CARGO_BIN_EXE_mp_server");
/// EAL arguments of a `--no-huge` primary on lcore 0.
const PRIMARY: &str = "--no-huge -m 64 --no-pci -l 0";
const CLIENT: &str = env!("CARGO_BIN_EXE_mp_client");
const PROC_INFO: &str = env!("CARGO_BIN_EXE_proc-info");
const SIMPLE_MP: &str = env!("CARGO_BIN_EXE_simple_mp");

/// Start `bin` with the EAL arguments `eal`, `--file-prefix p`, and after `--` the
/// application arguments `app` (each string split at spaces; `app` may be empty).
fn spawn(bin: &str, eal: &str, p: &str, app: &str) -> Watched {
    let mut args: Vec<&str> = eal.split_whitespace().collect();
    args.extend(["--file-prefix", p]);
    if !app.is_empty() {
        args.push("--");
        args.extend(app.split_whitespace());
    }
    let mut cmd = Command::new(bin);
    cmd.args(&args);
    let name = std::path::Path::new(bin)
        .file_name()
        .map_or(bin.into(), |n| n.to_string_lossy());
    Watched::spawn(cmd, &name, GUARD)
}

/// An `mp_client` for client ring `n`, on the lcore mapping `lcores` (`ID@CPU`).
fn client(p: &str, lcores: &str, n: u32) -> Watched {
    spawn(
        CLIENT,
        &format!("--no-pci --lcores {lcores}"),
        p,
        &format!("-n {n}"),
    )
}

fn shm_files(prefix: &str) -> Vec<PathBuf> {
    let pat = format!("ferroplane-{prefix}-");
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&pat))
        .map(|e| e.path())
        .collect()
}

#[test]
fn ten_million_mbufs_through_two_clients_all_checked_and_returned() {
    let p = prefix("10m");
    let mut srv = spawn(SERVER, PRIMARY, &p, "-n 2 --mbufs 10000000");
    srv.expect("sending 10000000 mbufs");
    let mut c0 = client(&p, "1@0", 0);
    let mut c1 = client(&p, "2@1", 1);
    for c in [&mut c0, &mut c1] {
        let st = c.wait();
        assert!(
            st.success(),
            "{st:?} stdout {} stderr {}",
            c.stdout(),
            c.stderr()
        );
    }
    assert!(
        c0.stdout()
            .contains("mp_client 0: received 5000000 of 5000000 mbufs, 0 errors"),
        "{}",
        c0.stdout()
    );
    assert!(
        c1.stdout()
            .contains("mp_client 1: received 5000000 of 5000000 mbufs, 0 errors"),
        "{}",
        c1.stdout()
    );
    let st = srv.wait();
    let out = srv.stdout();
    assert!(st.success(), "{st:?} stdout {out} stderr {}", srv.stderr());
    assert!(
        out.contains("client 0: sent=5000000 rx=5000000 errors=0"),
        "{out}"
    );
    assert!(
        out.contains("client 1: sent=5000000 rx=5000000 errors=0"),
        "{out}"
    );
    // Checked by the primary after the clients exited: every mbuf back in the pool.
    assert!(out.contains("pool: 8191/8191 mbufs free"), "{out}");
    assert!(out.contains("mp_server: OK"), "{out}");
    // Not asserted: that the server's files are gone. A process that created or looked
    // up a mempool never tears its EAL down today (the mempool crate keeps an `Eal`
    // clone in a leaked per-process registry entry), so they stay until the next
    // primary sweeps them; reported as a known gap.
}

#[test]
fn kill_9_of_the_server_stops_clients_and_a_restart_reclaims() {
    let p = prefix("kill");
    let mut srv = spawn(SERVER, PRIMARY, &p, "-n 2");
    srv.expect("sending until killed");
    let dead_shm = shm_files(&p);
    assert_eq!(dead_shm.len(), 1);
    // A client on the server's lcore is refused (the pool's caches are per lcore id).
    let mut bad = client(&p, "0@0", 0);
    assert_eq!(bad.wait().code(), Some(2));
    assert!(
        bad.stderr().contains("lcore 0 is also used by process"),
        "{}",
        bad.stderr()
    );
    let mut c0 = client(&p, "1@0", 0);
    let mut c1 = client(&p, "2@1", 1);
    c0.expect("receiving");
    c1.expect("receiving");
    std::thread::sleep(Duration::from_millis(300)); // mid-run
    srv.kill(); // SIGKILL
    for c in [&mut c0, &mut c1] {
        let st = c.wait();
        assert_eq!(
            st.code(),
            Some(3),
            "stdout {} stderr {}",
            c.stdout(),
            c.stderr()
        );
        assert!(
            c.stderr()
                .contains("the primary process exited; stopping after"),
            "{}",
            c.stderr()
        );
    }
    // The crash's memory file may already be gone here: once the clients have exited,
    // any primary starting on this machine sweeps dead prefixes (EAL behaviour; the
    // EAL's own multiprocess test checks that nothing is swept while secondaries live).
    // Restart with the same prefix: the crash's files are reclaimed, a short run works.
    let mut srv = spawn(SERVER, PRIMARY, &p, "-n 1 --mbufs 1000");
    srv.expect("sending 1000 mbufs");
    assert!(!dead_shm[0].exists(), "stale memory file reclaimed");
    let mut c = client(&p, "1@0", 0);
    assert!(c.wait().success(), "{}", c.stderr());
    assert!(srv.wait().success(), "{} {}", srv.stdout(), srv.stderr());
    assert!(srv
        .stdout()
        .contains("client 0: sent=1000 rx=1000 errors=0"));
}

#[test]
fn secondaries_without_a_primary_fail_clearly() {
    let p = prefix("none");
    for (bin, eal, app) in [
        (CLIENT, "--no-pci --lcores 1@0", "-n 0"),
        (PROC_INFO, "--no-pci", ""),
        (SIMPLE_MP, "--proc-type secondary --no-pci", ""),
    ] {
        let mut c = spawn(bin, eal, &p, app);
        let st = c.wait();
        assert_eq!(st.code(), Some(2), "{bin}");
        let e = c.stderr();
        assert!(
            e.contains(&format!(
                "no primary process running for file prefix '{p}' (start one first)"
            )),
            "{bin}: {e}"
        );
        assert_eq!(e.lines().count(), 1, "one clear line: {e}");
    }
}

/// This test process is the primary; proc-info must list exactly its objects.
#[test]
fn proc_info_lists_the_primarys_objects() {
    let p = prefix("pinfo");
    let (e, _) = Eal::init(
        &[
            "t",
            "--no-huge",
            "-m",
            "32",
            "--no-pci",
            "-l",
            "0",
            "--file-prefix",
            &p,
        ]
        .map(String::from),
    )
    .unwrap();
    // SAFETY: multi on both sides, nobody enqueues; T = u64 / [u8; 16].
    let r1 = unsafe { Ring::<u64>::create(&e, "rx_ring", 1024, None, RingFlags::empty()) }.unwrap();
    // SAFETY: as above.
    let r2 =
        unsafe { Ring::<[u8; 16]>::create(&e, "wide", 256, None, RingFlags::empty()) }.unwrap();
    for i in 0..10u64 {
        r1.enqueue(i).unwrap();
    }
    let pool = Mempool::create(
        &e,
        "objs",
        &PoolConfig {
            n: 511,
            elt_size: 200,
            cache_size: 32,
            ..Default::default()
        },
    )
    .unwrap();
    let held = pool.get().unwrap();
    let z = e
        .memzones()
        .reserve("plain", 5000, None, MemzoneFlags::empty())
        .unwrap();

    let mut pi = spawn(PROC_INFO, "--no-pci", &p, "");
    let st = pi.wait();
    assert!(st.success(), "{st:?} {}", pi.stderr());
    let out = pi.stdout();
    let lines: Vec<&str> = out.lines().collect();
    let of = |kind: &str| -> Vec<&str> {
        lines
            .iter()
            .copied()
            .filter(|l| l.starts_with(&format!("{kind} ")))
            .collect()
    };

    // Memzones: exactly ours, same names, addresses and lengths.
    let mz = of("memzone");
    let mine = e.memzones().walk();
    assert_eq!(mz.len(), mine.len(), "{out}");
    for m in &mine {
        let want = format!(
            "memzone name={} addr={} iova={} len={} ",
            m.name(),
            m.addr(),
            m.iova(),
            m.len()
        );
        assert!(
            mz.iter().any(|l| l.starts_with(&want)),
            "missing {want} in {out}"
        );
    }
    assert!(mz
        .iter()
        .any(|l| l.contains(&format!("name=plain addr={}", z.addr()))));
    // Rings, with their counts.
    let rings = of("ring");
    assert_eq!(rings.len(), ring_memzones(&e), "{out}");
    assert_eq!(
        rings.len(),
        2,
        "the pool's backend lives in MPB_objs, not RG_: {out}"
    );
    assert!(rings.contains(&"ring name=rx_ring size=1024 capacity=1023 used=10 free=1013 elem_size=8 prod=Multi cons=Multi"), "{out}");
    assert!(
        rings
            .iter()
            .any(|l| l
                .starts_with("ring name=wide size=256 capacity=255 used=0 free=255 elem_size=16 ")),
        "{out}"
    );
    // Mempools.
    let pools = of("mempool");
    assert_eq!(pools.len(), 1, "{out}");
    let want = format!(
        "mempool name=objs size=511 elt_size=200 cache_size=32 avail={} in_use={} ops={}",
        pool.avail_count(),
        pool.in_use_count(),
        pool.ops_name()
    );
    assert_eq!(pools[0], want, "{out}");
    assert!(pool.in_use_count() >= 1);
    // Processes: us (primary) and proc-info itself on lcore 127.
    let procs = of("process");
    assert_eq!(procs.len(), 2, "{out}");
    assert_eq!(
        procs[0],
        format!(
            "process pid={} role=primary main_lcore=0 lcores=0",
            std::process::id()
        )
    );
    assert!(
        procs[1].contains("role=secondary main_lcore=127 lcores=127"),
        "{out}"
    );
    // Selecting one section prints only it.
    let mut pi = spawn(PROC_INFO, "--no-pci", &p, "--mempools");
    assert!(pi.wait().success());
    assert!(
        pi.stdout().contains("== mempools (1) ==") && !pi.stdout().contains("memzone name="),
        "{}",
        pi.stdout()
    );
    // proc-info left nothing behind and did not disturb the primary.
    assert_eq!(e.processes().len(), 1);
    // SAFETY: taken from this pool above.
    unsafe { pool.put(held).unwrap() };
    drop((r1, r2));
}

/// Memzones that hold rings (`RG_<name>`).
fn ring_memzones(e: &Eal) -> usize {
    e.memzones()
        .walk()
        .iter()
        .filter(|z| z.name().starts_with("RG_"))
        .count()
}

#[test]
fn simple_mp_batch_and_interactive() {
    let p = prefix("smp");
    let mut pri = spawn(
        SIMPLE_MP,
        "--no-huge -m 16 --no-pci -l 0",
        &p,
        "--send 500 --expect 500",
    );
    pri.expect("primary ready");
    let mut sec = spawn(
        SIMPLE_MP,
        "--proc-type secondary --no-pci --lcores 1@0",
        &p,
        "--send 500 --expect 500",
    );
    assert!(sec.wait().success(), "{} {}", sec.stdout(), sec.stderr());
    assert!(pri.wait().success(), "{} {}", pri.stdout(), pri.stderr());
    assert!(sec.stdout().contains("received: msg 499 from primary"));
    assert!(pri.stdout().contains("received: msg 499 from secondary"));
    assert!(
        pri.stdout().contains("pool: 1023/1023 buffers free"),
        "{}",
        pri.stdout()
    );

    // Interactive, as the DPDK sample is used.
    let p = prefix("smpi");
    let mut pri = spawn(SIMPLE_MP, "--no-huge -m 16 --no-pci -l 0", &p, "");
    pri.expect("primary ready");
    let mut sec = spawn(
        SIMPLE_MP,
        "--proc-type secondary --no-pci --lcores 1@0",
        &p,
        "",
    );
    sec.expect("secondary ready");
    pri.send_line("send hello secondary");
    assert_eq!(sec.expect("received:"), "hello secondary");
    sec.send_line("send hello primary");
    assert_eq!(pri.expect("received:"), "hello primary");
    sec.send_line("quit");
    assert!(sec.wait().success());
    pri.send_line("quit");
    assert!(pri.wait().success());
}
