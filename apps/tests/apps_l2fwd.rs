//! l2fwd end to end between two veth pairs in a private network namespace (made and
//! deleted by the test): the kernel side sends N marked frames into a0, l2fwd forwards
//! a1 → b1 over `net_af_packet`, the kernel side receives them on b0 with the MACs
//! rewritten; l2fwd's final statistics (after SIGINT) agree. Plus argument errors.
//! Skipped with a printed reason when not root or `ip` is missing.

mod apps_testpmd_common;
use apps_testpmd_common::*;

use std::time::Duration;

const ETHERTYPE: u16 = 0x88b5; // IEEE local experimental
const MARK: &[u8] = b"FPL2FWD!";

fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0x02, 0x11, 0x22, 0x33, 0x44, 0x55]; // to a1 (promiscuous anyway)
    f.extend([0x02, 0xaa, 0, 0, 0, 1]);
    f.extend(ETHERTYPE.to_be_bytes());
    f.extend(MARK);
    f.extend(seq.to_be_bytes());
    f.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seq as u8)));
    f
}

fn ours(b: &[u8]) -> Option<u32> {
    (b.len() >= 26 && b[12..14] == ETHERTYPE.to_be_bytes() && &b[14..22] == MARK)
        .then(|| u32::from_be_bytes([b[22], b[23], b[24], b[25]]))
}

/// "Packets sent/received/dropped" of `port` in the last statistics table of `out`.
fn final_stats(out: &str, port: u16) -> (u64, u64, u64) {
    let last = &out[out
        .rfind("Port statistics ====")
        .expect("a statistics table")..];
    let blk = &last[last
        .find(&format!("Statistics for port {port} "))
        .expect("port block")..];
    let blk = &blk[..blk[1..]
        .find("Statistics")
        .map(|i| i + 1)
        .unwrap_or(blk.len())];
    let g = |k: &str| numbers_after(blk, k)[0];
    (
        g("Packets sent:"),
        g("Packets received:"),
        g("Packets dropped:"),
    )
}

#[test]
fn l2fwd_forwards_between_veth_pairs_with_mac_rewrite() {
    forwards_between_veth_pairs(
        "l2fwd_forwards_between_veth_pairs_with_mac_rewrite",
        "l2fwd",
        "net_af_packet",
    );
}

#[test]
fn af_xdp_l2fwd_forwards_between_veth_pairs_with_mac_rewrite() {
    forwards_between_veth_pairs(
        "af_xdp_l2fwd_forwards_between_veth_pairs_with_mac_rewrite",
        "l2xdp",
        "net_af_xdp",
    );
}

/// l2fwd over two `driver` ports on a1 and b1: a0 → a1 → l2fwd → b1 → b0.
fn forwards_between_veth_pairs(test: &str, tag: &str, driver: &str) {
    let Some(ns) = Netns::new(test, tag) else {
        return;
    };
    ns.veth("a0", "a1");
    ns.veth("b0", "b1");
    let b1_mac = ns.mac("b1");
    let pfx = prefix(tag);
    let mut cmd = ns.command(l2fwd());
    cmd.args([
        "--no-huge",
        "--file-prefix",
        &pfx,
        &format!("--vdev={driver}0,iface=a1"),
        &format!("--vdev={driver}1,iface=b1"),
        "--",
        "-p",
        "0x3",
        "-T",
        "1",
    ]);
    let l2 = Proc::spawn(&mut cmd);
    l2.wait_for("Lcore", GUARD);
    l2.wait_for("\ndone\n", GUARD);

    const N: u32 = 200;
    let got = ns.run(move || {
        let tx = RawSock::bind("a0");
        let rx = RawSock::bind("b0");
        for i in 0..N {
            tx.send(&frame(i, 40 + (i as usize * 7) % 600));
        }
        rx.recv_until(N as usize, Duration::from_secs(20), |b| ours(b).is_some())
    });
    // Give l2fwd a moment to publish its counters, then stop it with SIGINT.
    std::thread::sleep(Duration::from_millis(300));
    l2.signal(libc::SIGINT);
    let (st, out) = l2.finish(GUARD);

    assert_eq!(
        got.len(),
        N as usize,
        "all frames arrive on b0 (got {}); l2fwd output:\n{out}",
        got.len()
    );
    let mut seqs: Vec<u32> = got.iter().map(|b| ours(b).unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..N).collect::<Vec<_>>(), "each frame exactly once");
    for b in &got {
        let seq = ours(b).unwrap();
        let want = frame(seq, 40 + (seq as usize * 7) % 600);
        assert_eq!(
            &b[0..6],
            &[0x02, 0, 0, 0, 0, 0x01],
            "destination 02:00:00:00:00:<tx port>"
        );
        assert_eq!(&b[6..12], &b1_mac, "source = b1's MAC");
        assert_eq!(&b[12..], &want[12..], "payload untouched");
    }
    assert!(st.success(), "l2fwd exits 0 after SIGINT ({st}):\n{out}");
    assert!(out.contains("Signal 2 received"), "{out}");
    let (_, rx0, drop0) = final_stats(&out, 0);
    let (tx1, _, drop1) = final_stats(&out, 1);
    assert_eq!(rx0, u64::from(N), "port 0 received N:\n{out}");
    assert_eq!(tx1, u64::from(N), "port 1 sent N:\n{out}");
    assert_eq!((drop0, drop1), (0, 0));
    assert!(
        !out.contains("Warning"),
        "every mbuf back in the pool:\n{out}"
    );
}

#[test]
fn l2fwd_max_packets_and_run_time_stop_it() {
    // net_null ports produce packets without end: --max-packets stops the run, after
    // the TX buffers are drained, so every packet received was sent (null TX takes all).
    let pfx = prefix("l2max");
    let p = Proc::spawn(std::process::Command::new(l2fwd()).args([
        "--no-huge",
        "--file-prefix",
        &pfx,
        "--vdev=net_null0",
        "--vdev=net_null1",
        "--",
        "-p",
        "3",
        "-T",
        "0",
        "--max-packets",
        "100000",
    ]));
    let (st, out) = p.finish(GUARD);
    assert!(st.success(), "{out}");
    assert!(
        out.contains("(--max-packets 100000), preparing to exit"),
        "{out}"
    );
    let total = |k: &str| numbers_after(&out[out.rfind("Aggregate statistics").unwrap()..], k)[0];
    let (sent, recv, dropped) = (
        total("Total packets sent:"),
        total("Total packets received:"),
        total("Total packets dropped:"),
    );
    assert!(recv >= 100_000, "{out}");
    assert_eq!((sent, dropped), (recv, 0), "{out}");
    assert!(!out.contains("Warning"), "{out}");

    // Two net_ring ports: nothing arrives, --run-time ends the run; an explicit portmap.
    let pfx = prefix("l2rt");
    let p = Proc::spawn(std::process::Command::new(l2fwd()).args([
        "--no-huge",
        "--file-prefix",
        &pfx,
        "--vdev=net_ring0",
        "--vdev=net_ring1",
        "--",
        "-p",
        "3",
        "-T",
        "0",
        "--portmap=(0,1)",
        "--run-time",
        "0.5",
    ]));
    let (st, out) = p.finish(GUARD);
    assert!(st.success(), "{out}");
    assert!(out.contains("Run time over"), "{out}");
    assert!(!out.contains("Warning"), "{out}");
}

#[test]
fn l2fwd_bad_arguments_exit_2_naming_them() {
    for (args, name) in [
        (vec!["--no-huge", "--", "-q", "1"], "-p"),
        (vec!["--no-huge", "--", "-p", "xyz"], "-p"),
        (
            vec!["--no-huge", "--", "-p", "3", "--portmap=(0,"],
            "--portmap",
        ),
        (
            vec!["--no-huge", "--", "-p", "3", "--frobnicate"],
            "--frobnicate",
        ),
        (
            vec!["--no-huge", "--bogus-eal", "--", "-p", "3"],
            "--bogus-eal",
        ),
    ] {
        let o = std::process::Command::new(l2fwd())
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(name), "{args:?}: {err}");
    }
    // A portmask naming a port that does not exist.
    let pfx = prefix("l2bad");
    let o = std::process::Command::new(l2fwd())
        .args([
            "--no-huge",
            "--file-prefix",
            &pfx,
            "--vdev=net_null0",
            "--",
            "-p",
            "0x3",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("port 1 does not exist"));
}
