//! testpmd as a real process: the no-argument main job; an interactive session driven
//! through stdin (commands, their output, bad commands, quit); argument errors;
//! generated traffic checked by the kernel side of a veth pair (txonly/flowgen packets
//! with valid IPv4/UDP checksums, csum mode fixing bad checksums); txonly in one
//! process → rxonly in another over a veth pair, counts reconciled with the kernel's
//! counters. The veth tests run in a private network namespace made and deleted by the
//! test, and are skipped with a printed reason when not root or `ip` is missing.

mod apps_testpmd_common;
use apps_testpmd_common::*;

use std::process::Command;
use std::time::{Duration, Instant};

/// The number after `key` in the last "Accumulated forward statistics" block.
fn accumulated(out: &str, key: &str) -> u64 {
    let i = out
        .rfind("Accumulated forward statistics")
        .unwrap_or_else(|| panic!("no accumulated block:\n{out}"));
    numbers_after(&out[i..], key)[0]
}

fn throughput_mpps(out: &str) -> Option<f64> {
    let l = out.lines().find(|l| l.starts_with("Throughput: RX "))?;
    l["Throughput: RX ".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn no_arguments_runs_the_main_job() {
    let p = Proc::spawn(&mut Command::new(testpmd()));
    let (st, out) = p.finish(Duration::from_secs(120));
    assert!(st.success(), "exit 0 expected ({st}):\n{out}");
    let mpps = throughput_mpps(&out).unwrap_or_else(|| panic!("a throughput line:\n{out}"));
    assert!(mpps > 0.0, "{out}");
    assert!(out.contains("using two net_null ports"), "{out}");
    assert!(accumulated(&out, "TX-packets:") > 0, "{out}");
    assert_eq!(
        accumulated(&out, "RX-packets:"),
        accumulated(&out, "TX-packets:"),
        "io over null ports sends all it receives"
    );
    assert!(
        !out.contains("Warning"),
        "every mbuf back in its pool:\n{out}"
    );
    assert!(out.contains("Bye..."));
}

fn spawn_interactive(tag: &str, vdevs: &[&str], extra: &[&str]) -> Proc {
    let pfx = prefix(tag);
    let mut c = Command::new(testpmd());
    c.args(["--no-huge", "-m", "128", "--file-prefix", &pfx, "-l", "0-1"]);
    for v in vdevs {
        c.arg(format!("--vdev={v}"));
    }
    c.args(["--", "-i"]).args(extra);
    Proc::spawn(&mut c)
}

/// Poll `show port stats N` until `key` of the port is at least `min` (hang guard).
fn stats_until(p: &mut Proc, port: u16, key: &str, min: u64) -> u64 {
    let t0 = Instant::now();
    loop {
        let o = p.cmd(&format!("show port stats {port}"));
        let v = numbers_after(&o, key)[0];
        if v >= min {
            return v;
        }
        assert!(t0.elapsed() < GUARD, "port {port} {key} stuck at {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn interactive_session_over_stdin() {
    let mut p = spawn_interactive("tpi", &["net_null0", "net_null1"], &["--nb-cores=1"]);

    let o = p.cmd("show port info all");
    assert!(
        o.contains("Infos for port 0") && o.contains("Infos for port 1"),
        "{o}"
    );
    assert!(
        o.contains("Driver name: net_null") && o.contains("Link status: up"),
        "{o}"
    );

    let o = p.cmd("set fwd mac");
    assert!(o.contains("Set mac packet forwarding mode"), "{o}");
    let o = p.cmd("show config fwd");
    assert!(
        o.contains("mac packet forwarding")
            && o.contains("RX P=0/Q=0 -> TX P=1/Q=0 peer=02:00:00:00:00:01"),
        "{o}"
    );

    let o = p.cmd("start");
    assert!(
        o.contains("mac packet forwarding - ports=2 - cores=1 - streams=2"),
        "{o}"
    );
    let o = p.cmd("start");
    assert!(o.contains("already started"), "{o}");
    let o = p.cmd("set fwd io");
    assert!(o.contains("Please stop forwarding first"), "{o}");
    stats_until(&mut p, 0, "RX-packets:", 1000);
    stats_until(&mut p, 1, "TX-packets:", 1000);
    let o = p.cmd("show port stats all");
    assert!(
        o.contains("NIC statistics for port 0")
            && o.contains("Throughput (since last show)")
            && o.contains("Rx-pps:"),
        "{o}"
    );

    let o = p.cmd("stop");
    assert!(
        o.contains("Forward statistics for port 0")
            && o.contains("Accumulated forward statistics for all ports"),
        "{o}"
    );
    let rx = accumulated(&o, "RX-packets:");
    let tx = accumulated(&o, "TX-packets:");
    assert!(
        rx > 0 && tx == rx,
        "null TX takes every packet: rx {rx} tx {tx}\n{o}"
    );
    // The same numbers again from "show fwd stats all" after the stop.
    let o = p.cmd("show fwd stats all");
    assert_eq!(
        (
            accumulated(&o, "RX-packets:"),
            accumulated(&o, "TX-packets:")
        ),
        (rx, tx)
    );

    let o = p.cmd("clear port stats all");
    assert!(o.contains("NIC statistics for port 0 cleared"), "{o}");
    let o = p.cmd("show port stats 0");
    assert_eq!(numbers_after(&o, "RX-packets:")[0], 0, "{o}");

    // Bad input: a message, and the session goes on.
    for (cmd, want) in [
        ("frobnicate", "Command not found"),
        ("show port stats 7", "Bad arguments"),
        ("set fwd warp", "Bad arguments"),
        ("set burst 0", "Bad arguments"),
        ("set txpkts 10", "Bad arguments"),
        ("port stop", "Bad arguments"),
        ("start now", "Bad arguments"),
        // Settings, then port control: stopped ports do not forward; closed ones
        // cannot start again.
        ("set burst 64", "set to 64"),
        ("set txpkts 40,24", "2 segments, 64 bytes"),
        ("help", "show port stats all|N"),
        ("port stop 1", "Port 1: stopped"),
        ("show config fwd", "ports=1"),
        ("port start 1", "Port 1: started"),
        ("port close 1", "Port 1: closed"),
        ("port start 1", "cannot be started again"),
    ] {
        let o = p.cmd(cmd);
        assert!(o.contains(want), "{cmd}: {o}");
    }

    // txonly on the remaining port (forwards to itself): generated packets go out.
    p.cmd("set fwd txonly");
    p.cmd("start");
    stats_until(&mut p, 0, "TX-packets:", 1000);
    let o = p.cmd("stop");
    assert!(accumulated(&o, "TX-packets:") >= 1000, "{o}");

    p.quit();
    let (st, out) = p.finish(GUARD);
    assert!(st.success(), "quit exits 0 ({st}):\n{out}");
    assert!(out.contains("Bye..."), "{out}");
    assert!(
        !out.contains("Warning"),
        "every mbuf back in its pool:\n{out}"
    );
}

#[test]
fn interactive_tx_first_over_ring_ports_and_eof_exit() {
    // net_ring ports make no packets: `start tx_first` puts one burst per stream in
    // flight and io forwarding keeps them circulating. End of input quits cleanly.
    let mut p = spawn_interactive("tpr", &["net_ring0", "net_ring1"], &["--burst=16"]);
    p.cmd("start tx_first");
    stats_until(&mut p, 0, "RX-packets:", 10_000);
    let o = p.cmd("stop");
    let (rx, tx) = (
        accumulated(&o, "RX-packets:"),
        accumulated(&o, "TX-packets:"),
    );
    assert!(rx >= 10_000, "{o}");
    // Every packet received was sent on; the 2 x 16 primed ones are sent but may still
    // wait in a ring at the stop.
    assert!(tx >= rx && tx - rx <= 32, "rx {rx} tx {tx}\n{o}");
    p.close_stdin();
    let (st, out) = p.finish(GUARD);
    assert!(st.success(), "{out}");
    assert!(
        !out.contains("Warning"),
        "packets left in the rings go back to the pool at close:\n{out}"
    );
}

#[test]
fn sigint_stops_batch_forwarding_with_final_stats() {
    let pfx = prefix("tps");
    let p = Proc::spawn(Command::new(testpmd()).args([
        "--no-huge",
        "--file-prefix",
        &pfx,
        "--vdev=net_null0",
        "--vdev=net_null1",
        "--",
        "--stats-period=1",
        "--forward-mode=macswap",
    ]));
    p.wait_for("NIC statistics for port 1", GUARD);
    p.signal(libc::SIGINT);
    let (st, out) = p.finish(GUARD);
    assert!(st.success(), "{out}");
    assert!(out.contains("Signal 2 received"), "{out}");
    assert!(accumulated(&out, "TX-packets:") > 0, "{out}");
    assert!(throughput_mpps(&out).is_some(), "{out}");
    assert!(!out.contains("Warning"), "{out}");
}

#[test]
fn bad_arguments_exit_2_naming_them() {
    for (args, name) in [
        (
            vec!["--no-huge", "--", "--forward-mode=warp"],
            "--forward-mode",
        ),
        (vec!["--no-huge", "--", "--burst=0"], "--burst"),
        (vec!["--no-huge", "--", "--txpkts=20"], "--txpkts"),
        (vec!["--no-huge", "--", "--eth-peer=0,01:02"], "--eth-peer"),
        (vec!["--no-huge", "--", "--nb-cores"], "--nb-cores"),
        (vec!["--no-huge", "--", "--warp-drive"], "--warp-drive"),
        (vec!["--no-huge", "--lcores=zz", "--"], "--lcores"),
        (vec!["--no-huge", "--vdev=net_bogus0", "--"], "net_bogus0"),
    ] {
        let o = Command::new(testpmd()).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(name), "{args:?}: {err}");
    }
}

// ---------------------------------------------------------------------------------
// Over real interfaces
// ---------------------------------------------------------------------------------

/// Check a captured IPv4/UDP frame with an independent checksum implementation;
/// returns (source IP, source port).
fn check_udp(b: &[u8]) -> (u32, u16) {
    assert!(b.len() >= 42 && b[12..14] == [0x08, 0x00], "IPv4 frame");
    let ip = &b[14..34];
    assert_eq!(ip[0], 0x45);
    assert_eq!(inet_sum(&[ip]), 0xffff, "IPv4 header checksum");
    let tot = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    assert_eq!(tot, b.len() - 14, "IPv4 total length");
    assert_eq!(ip[9], 17);
    let udp = &b[34..14 + tot];
    assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
    let len = (udp.len() as u16).to_be_bytes();
    let pseudo = [&ip[12..20], &[0, 17], &len[..]].concat();
    assert_eq!(inet_sum(&[&pseudo, udp]), 0xffff, "UDP checksum");
    (
        u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]),
        u16::from_be_bytes([udp[0], udp[1]]),
    )
}

fn is_udp_from_testpmd(b: &[u8]) -> bool {
    b.len() >= 42
        && b[12..14] == [0x08, 0x00]
        && b[14 + 9] == 17
        && b[14 + 16..14 + 20] == [198, 18, 0, 2]
}

#[test]
fn txonly_and_flowgen_packets_are_valid_on_the_wire() {
    let Some(ns) = Netns::new("txonly_and_flowgen_packets_are_valid_on_the_wire", "tpgen") else {
        return;
    };
    ns.veth("g0", "g1");
    let g1 = ns.mac("g1");
    for (mode, txpkts) in [("txonly", "30,34"), ("flowgen", "100")] {
        let pfx = prefix(&format!("tpg-{mode}"));
        let mut c = ns.command(testpmd());
        c.args([
            "--no-huge",
            "--file-prefix",
            &pfx,
            "-l",
            "0-1",
            "--vdev=net_af_packet0,iface=g1",
            "--",
        ]);
        c.args([
            format!("--forward-mode={mode}"),
            format!("--txpkts={txpkts}"),
            "--eth-peer=0,02:00:00:00:00:77".into(),
        ]);
        c.args(["--run-time=2", "--flowgen-flows=64"]);
        let p = Proc::spawn(&mut c);
        p.wait_for("packet forwarding - ports=1", GUARD);
        let got = ns.run(|| {
            RawSock::bind("g0").recv_until(300, Duration::from_secs(20), is_udp_from_testpmd)
        });
        let (st, out) = p.finish(GUARD);
        assert!(st.success(), "{out}");
        assert!(!out.contains("Warning"), "{out}");
        assert!(
            got.len() >= 300,
            "{mode}: generated frames reach the kernel side:\n{out}"
        );
        let mut flows = std::collections::HashSet::new();
        let want_len: usize = txpkts.split(',').map(|l| l.parse::<usize>().unwrap()).sum();
        for b in &got {
            assert_eq!(b.len(), want_len, "{mode}: --txpkts total length");
            assert_eq!(&b[0..6], &[2, 0, 0, 0, 0, 0x77], "destination = --eth-peer");
            assert_eq!(&b[6..12], &g1, "source = the port's MAC");
            flows.insert(check_udp(b));
        }
        if mode == "txonly" {
            assert_eq!(flows.len(), 1, "txonly sends one flow");
        } else {
            assert!(
                flows.len() > 1 && flows.len() <= 64,
                "flowgen varies source IP/port over 64 flows: {}",
                flows.len()
            );
        }
    }
}

#[test]
fn csum_mode_counts_and_fixes_bad_checksums() {
    let Some(ns) = Netns::new("csum_mode_counts_and_fixes_bad_checksums", "tpcs") else {
        return;
    };
    ns.veth("c0", "c1");
    let pfx = prefix("tpcs");
    let mut c = ns.command(testpmd());
    c.args([
        "--no-huge",
        "--file-prefix",
        &pfx,
        "-l",
        "0-1",
        "--vdev=net_af_packet0,iface=c1",
        "--",
        "-i",
        "--forward-mode=csum",
    ]);
    let mut p = Proc::spawn(&mut c);
    p.cmd("start");
    const N: usize = 50;
    let got = ns.run(|| {
        let s = RawSock::bind("c0");
        for i in 0..N {
            // A valid UDP frame (built here), then damage: even i the IPv4 checksum,
            // i % 3 == 0 the UDP checksum.
            let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
            let payload: Vec<u8> = (0..30).map(|k| (k * 3 + i) as u8).collect();
            let udp_len = 8 + payload.len() as u16;
            let mut ip = vec![
                0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, i as u8,
            ];
            ip[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
            let c = !inet_sum(&[&ip]);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            let mut udp = vec![0x30, 0x39, 0x00, 0x35];
            udp.extend(udp_len.to_be_bytes());
            udp.extend([0, 0]);
            udp.extend(&payload);
            let pseudo = [&ip[12..20], &[0, 17], &udp_len.to_be_bytes()[..]].concat();
            let c = !inet_sum(&[&pseudo, &udp]);
            udp[6..8].copy_from_slice(&c.to_be_bytes());
            if i % 2 == 0 {
                ip[10] ^= 0xff;
            }
            if i % 3 == 0 {
                udp[8] ^= 0x01; // payload changed, checksum now wrong
            }
            f.extend(&ip);
            f.extend(&udp);
            s.send(&f);
        }
        s.recv_until(N, Duration::from_secs(20), |b| {
            b.len() > 34
                && b[12..14] == [8, 0]
                && b[26..29] == [10, 0, 0]
                && b[6..12] != [2, 0, 0, 0, 0, 2]
        })
    });
    let o = p.cmd("stop");
    p.quit();
    let (st, out) = p.finish(GUARD);
    assert!(st.success(), "{out}");
    assert_eq!(
        got.len(),
        N,
        "every frame comes back out of the csum stream, once:\n{out}"
    );
    for b in &got {
        check_udp(b);
    }
    let bad_ip = (0..N).filter(|i| i % 2 == 0).count() as u64;
    let bad_l4 = (0..N).filter(|i| i % 3 == 0).count() as u64;
    assert_eq!(numbers_after(&o, "Bad-ipcsum:")[0], bad_ip, "{o}");
    assert_eq!(numbers_after(&o, "Bad-l4csum:")[0], bad_l4, "{o}");
}

#[test]
fn txonly_to_rxonly_across_a_veth_pair() {
    let Some(ns) = Netns::new("txonly_to_rxonly_across_a_veth_pair", "tprx") else {
        return;
    };
    ns.veth("v0", "v1");
    let spawn = |tag: &str, iface: &str, mode: &str, main: &str| {
        let pfx = prefix(tag);
        let mut c = ns.command(testpmd());
        c.args([
            "--no-huge",
            "-m",
            "128",
            "--file-prefix",
            &pfx,
            "-l",
            "0-1",
            "--main-lcore",
            main,
        ]);
        c.arg(format!("--vdev=net_af_packet0,iface={iface}"));
        c.args(["--", "-i", &format!("--forward-mode={mode}")]);
        Proc::spawn(&mut c)
    };
    let mut rx = spawn("tprx-r", "v1", "rxonly", "1");
    let mut tx = spawn("tprx-t", "v0", "txonly", "0");
    rx.cmd("start");
    tx.cmd("start");
    stats_until(&mut rx, 0, "RX-packets:", 20_000);
    let o = tx.cmd("stop");
    let sent = accumulated(&o, "TX-packets:");
    // Wait until the receiver has seen everything still in flight (its count stops
    // moving), then stop it.
    let mut last = u64::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let n = numbers_after(&rx.cmd("show port stats 0"), "RX-packets:")[0];
        if n == last {
            break;
        }
        last = n;
    }
    let o = rx.cmd("stop");
    let got = accumulated(&o, "RX-packets:");
    let missed = accumulated(&o, "RX-dropped:");
    rx.quit();
    tx.quit();
    let (s1, out_rx) = rx.finish(GUARD);
    let (s2, out_tx) = tx.finish(GUARD);
    assert!(s1.success() && s2.success(), "{out_rx}\n{out_tx}");
    assert!(!out_rx.contains("Warning") && !out_tx.contains("Warning"));

    let k = |i: &str, c: &str| ns.counter(i, c);
    let (v0_tx, v0_txdrop, v1_rx, v1_rxdrop) = (
        k("v0", "tx_packets"),
        k("v0", "tx_dropped"),
        k("v1", "rx_packets"),
        k("v1", "rx_dropped"),
    );
    let report = format!(
        "txonly sent {sent}; rxonly got {got}, socket drops {missed}; kernel v0 tx {v0_tx} (dropped {v0_txdrop}), v1 rx {v1_rx} (dropped {v1_rxdrop})"
    );
    eprintln!("{report}");
    assert!(sent > 0 && got > 0, "{report}");
    // Every frame testpmd sent was counted by the kernel on v0 (sent or dropped there);
    // every frame v1 received reached the rxonly socket (received, or dropped by its
    // full ring: testpmd's RX-dropped); frames lost on the wire between the two ends
    // are within what the kernel counts as dropped on v1.
    assert_eq!(v0_tx + v0_txdrop, sent, "{report}");
    assert_eq!(got + missed, v1_rx, "{report}");
    assert!(v1_rx <= v0_tx && v0_tx - v1_rx <= v1_rxdrop, "{report}");
}

#[test]
fn af_xdp_testpmd_io_forwarding_between_veth_pairs() {
    let Some(ns) = Netns::new("af_xdp_testpmd_io_forwarding_between_veth_pairs", "tpxdp") else {
        return;
    };
    ns.veth("a0", "a1");
    ns.veth("b0", "b1");
    let pfx = prefix("tpxdp");
    let mut c = ns.command(testpmd());
    c.args(["--no-huge", "-m", "128", "--file-prefix", &pfx, "-l", "0-1"]);
    c.args(["--vdev=net_af_xdp0,iface=a1", "--vdev=net_af_xdp1,iface=b1"]);
    c.args(["--", "-i", "--forward-mode=io"]);
    let mut p = Proc::spawn(&mut c);
    p.cmd("start");
    const N: usize = 300;
    let frame = |i: usize| {
        let mut f = vec![0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x02, 0xaa, 0, 0, 0, 1];
        f.extend(0x88b5u16.to_be_bytes());
        f.extend((i as u32).to_be_bytes());
        f.extend((0..40 + i % 500).map(|j| (j as u8) ^ (i as u8)));
        f
    };
    let sent: Vec<Vec<u8>> = (0..N).map(frame).collect();
    let to_send = sent.clone();
    let mut got = ns.run(move || {
        let tx = RawSock::bind("a0");
        let rx = RawSock::bind("b0");
        for f in &to_send {
            tx.send(f);
        }
        rx.recv_until(N, Duration::from_secs(20), |b| {
            b.len() > 13 && b[12..14] == [0x88, 0xb5]
        })
    });
    let o = p.cmd("stop");
    p.quit();
    let (st, out) = p.finish(GUARD);
    assert!(st.success(), "{out}");
    got.sort();
    let mut want = sent;
    want.sort();
    assert_eq!(
        got.len(),
        N,
        "every frame forwarded a1 -> b1 (io mode):\n{o}"
    );
    assert_eq!(got, want, "io forwarding leaves frames untouched");
    assert!(accumulated(&o, "TX-packets:") >= N as u64, "{o}");
    assert!(!out.contains("Warning"), "{out}");
}

#[test]
fn another_process_reads_a_running_testpmds_port_stats() {
    // testpmd is the primary; this test process attaches as a secondary and reads the
    // ports' shared counters (pmd::shared, what proc-info builds on), and `proc-info`
    // itself lists testpmd's ports' memzones and its mbuf pool.
    let pfx = prefix("tpmp");
    let mut p = Proc::spawn(Command::new(testpmd()).args([
        "--no-huge",
        "-m",
        "128",
        "--file-prefix",
        &pfx,
        "-l",
        "0-1",
        "--vdev=net_null0",
        "--vdev=net_null1",
        "--",
        "-i",
    ]));
    p.cmd("start");
    stats_until(&mut p, 1, "TX-packets:", 1000);
    p.cmd("stop");
    let o = p.cmd("show port stats all");
    let (rx, tx) = (
        numbers_after(&o, "RX-packets:"),
        numbers_after(&o, "TX-packets:"),
    );

    let argv: Vec<String> = [
        "t",
        "--proc-type",
        "secondary",
        "--file-prefix",
        &pfx,
        "--lcores",
        "127@0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (eal, _) = eal::Eal::init(&argv).expect("attach to testpmd as a secondary");
    for port in 0..2u16 {
        let s = pmd::shared::read_port_stats(&eal, port).expect("shared port data");
        assert_eq!(
            (s.name.as_str(), s.driver.as_str()),
            (["net_null0", "net_null1"][port as usize], "net_null")
        );
        assert_eq!(
            (s.stats.ipackets, s.stats.opackets),
            (rx[port as usize], tx[port as usize]),
            "port {port}:\n{o}"
        );
        assert!(s.stats.ipackets > 0);
    }
    drop(eal);

    let pi = env!("CARGO_BIN_EXE_proc-info");
    let out = Command::new(pi)
        .args(["--file-prefix", &pfx, "--", "--memzones", "--mempools"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("name=ETH_P0") && text.contains("name=ETH_P1"),
        "{text}"
    );
    assert!(text.contains("mempool name=mb_pool_0"), "{text}");
    let help = Command::new(pi).args(["--", "--help"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("--stats"),
        "proc-info --help lists --stats"
    );
    let out = Command::new(pi)
        .args(["--file-prefix", &pfx, "--", "--stats"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for port in 0..2usize {
        let want = format!("ipackets={} opackets={}", rx[port], tx[port]);
        assert!(
            text.contains(&want),
            "proc-info --stats shows testpmd's port {port} counters ({want}):\n{text}"
        );
    }
    assert!(
        text.contains("name=net_null0 driver=net_null") && text.contains("name=net_null1"),
        "{text}"
    );
    p.quit();
    let (st, out) = p.finish(GUARD);
    assert!(st.success(), "{out}");
}
