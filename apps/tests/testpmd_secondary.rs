//! `testpmd --proc-type=secondary` next to a primary testpmd, as real processes over
//! veth pairs in a network namespace the test makes (DPDK's `--num-procs`/`--proc-id`):
//! the primary owns two `net_af_packet` ports with two queue pairs each and forwards on
//! queue 0, the secondary (outside the namespace) claims queue 1 and forwards on it.
//! Every frame sent on `vb0` arrives once on `vb1`, the two processes' own counts add up
//! to what was sent, both carry a share, and the primary finds every mbuf back at exit.
//! Also: a secondary killed with SIGKILL while frames stream through it costs the pool
//! nothing (the primary takes its queues back, then the mbufs it held).
//! Under `--no-huge`; root and `ip` needed. Timeouts are hang guards only.

mod netfwd;
use netfwd::*;

use std::process::Command;

use testkit::child::Watched;
use testkit::netns::Netns;

const TESTPMD: &str = env!("CARGO_BIN_EXE_testpmd");

/// `(rx, tx)` from "Forwarded by this process: RX-packets: X TX-packets: Y".
fn own_counts(w: &Watched) -> (u64, u64) {
    let out = w.stdout();
    let l = out
        .lines()
        .find_map(|l| l.strip_prefix("Forwarded by this process: RX-packets: "))
        .unwrap_or_else(|| panic!("no per-process count in {out}"));
    let (rx, tx) = l.split_once(" TX-packets: ").expect("both counts");
    (
        rx.trim().parse().expect("rx"),
        tx.trim().parse().expect("tx"),
    )
}

/// The primary inside the namespace: two `net_af_packet` ports with two queue pairs,
/// forwarding on queue 0.
fn primary(ns: &Netns, p: &str) -> Watched {
    let mut c = ns.command(TESTPMD);
    c.args([
        "--no-huge",
        "-m",
        "128",
        "--no-pci",
        "-l",
        "0",
        "--file-prefix",
        p,
        "--vdev",
        "net_af_packet0,iface=va0,qpairs=2",
        "--vdev",
        "net_af_packet1,iface=va1,qpairs=2",
        "--",
        "--rxq=2",
        "--txq=2",
        "--num-procs=2",
        "--proc-id=0",
        "--total-num-mbufs=4096",
    ]);
    let mut pri = Watched::spawn(c, "testpmd primary", GUARD);
    pri.expect("io packet forwarding - ports=2");
    pri
}

/// The secondary outside the namespace, forwarding on queue 1.
fn secondary(p: &str) -> Watched {
    let mut c = Command::new(TESTPMD);
    c.args([
        "--proc-type=secondary",
        "--no-pci",
        "--lcores",
        "1@0",
        "--file-prefix",
        p,
        "--",
        "--rxq=2",
        "--txq=2",
        "--num-procs=2",
        "--proc-id=1",
    ]);
    let mut sec = Watched::spawn(c, "testpmd secondary", GUARD);
    let l = sec.expect("Port 0:");
    assert!(l.contains("RX queues 1..2, TX queues 1..2"), "{l}");
    sec.expect("io packet forwarding - ports=2");
    sec
}

/// The namespace, the primary in it and the secondary outside; `None` after a counted
/// skip.
fn start(test: &str, tag: &str) -> Option<(Netns, Watched, Watched)> {
    let ns = net(test, tag)?;
    let p = prefix(tag);
    let pri = primary(&ns, &p);
    let sec = secondary(&p);
    Some((ns, pri, sec))
}

#[test]
fn testpmd_secondary_forwards_on_its_queues() {
    let Some((ns, mut pri, mut sec)) = start("testpmd_secondary_forwards_on_its_queues", "tps")
    else {
        return;
    };
    const N: u32 = 3000;
    forwards_each_once(&ns, 0, N);

    sec.send_line("");
    exit_ok(&mut sec);
    let (r1, t1) = own_counts(&sec);
    pri.send_line("");
    let out = exit_ok(&mut pri);
    let (r0, t0) = own_counts(&pri);
    assert_eq!((r0, r1), (t0, t1), "io forwarding sends what it receives");
    assert_shared(r0, r1, N);
    assert!(!out.contains("not returned"), "{out}");
}

#[test]
fn testpmd_secondary_killed_mid_burst_loses_no_mbuf() {
    let Some((ns, mut pri, mut sec)) =
        start("testpmd_secondary_killed_mid_burst_loses_no_mbuf", "tpk")
    else {
        return;
    };
    kill_mid_stream(&ns, &mut sec);
    pri.send_line("");
    let out = exit_ok(&mut pri);
    assert!(
        out.contains("testpmd: took back RX queue 1 of port")
            && out.contains("testpmd: took back TX queue 1 of port"),
        "the dead secondary's queues were taken back: {out}"
    );
    assert!(!out.contains("not returned"), "{out}");
}
