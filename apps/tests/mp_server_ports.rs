//! `mp_server -p` and two `mp_client`s with real ports, as real processes over veth
//! pairs in a network namespace the test makes: the server (inside the namespace) owns
//! two `net_af_packet` ports, receives what arrives on `va0` and hands it to the clients
//! over their rings; the clients (outside the namespace: their TX sockets come over the
//! EAL's IPC) transmit it on `va1`. Every frame sent on `vb0` arrives once on `vb1`,
//! both clients carry a share, their counts add up, and the pool is whole at the end.
//! Also: a client killed between bursts has its queues taken back by the server, and a
//! client killed with SIGKILL while frames stream through it costs the pool nothing (its
//! ring drained, its TX queue taken back, the mbufs in its hands taken back once no
//! client is attached).
//! Under `--no-huge`; root and `ip` needed. Timeouts are hang guards only.

mod netfwd;
use netfwd::*;

use std::process::Command;

use testkit::child::Watched;
use testkit::netns::Netns;

const SERVER: &str = env!("CARGO_BIN_EXE_mp_server");
const CLIENT: &str = env!("CARGO_BIN_EXE_mp_client");

fn server(ns: &Netns, p: &str, clients: u16) -> Watched {
    let mut c = ns.command(SERVER);
    c.args([
        "--no-huge",
        "-m",
        "64",
        "--no-pci",
        "-l",
        "0",
        "--file-prefix",
        p,
        "--vdev",
        &format!("net_af_packet0,iface=va0,qpairs={clients}"),
        "--vdev",
        &format!("net_af_packet1,iface=va1,qpairs={clients}"),
        "--",
        "-n",
        &clients.to_string(),
        "-p",
        "3",
        "--pool-size",
        "4095",
        "--wait-s",
        "120",
    ]);
    let mut w = Watched::spawn(c, "mp_server", GUARD);
    w.expect("mp_server: forwarding from ports [0, 1]");
    w
}

fn client(p: &str, id: u16) -> Watched {
    let mut c = Command::new(CLIENT);
    c.args([
        "--no-pci",
        "--lcores",
        &format!("{}@0", id + 1),
        "--file-prefix",
        p,
        "--",
        "-n",
        &id.to_string(),
    ]);
    let mut w = Watched::spawn(c, &format!("mp_client {id}"), GUARD);
    w.expect(&format!("mp_client {id}: transmitting on TX queue {id}"));
    w
}

/// `(received, transmitted, dropped)` from a client's last line.
fn counts(w: &Watched, id: u16) -> (u64, u64, u64) {
    let tag = format!("mp_client {id}: received ");
    let out = w.stdout();
    let l = out
        .lines()
        .find_map(|l| l.strip_prefix(&tag))
        .unwrap_or_else(|| panic!("no {tag:?} in {out}"));
    let n: Vec<u64> = l
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("number"))
        .collect();
    (n[0], n[1], n[2])
}

/// The namespace, the server in it and clients 0 and 1 outside; `None` after a counted
/// skip.
fn two_clients(test: &str, tag: &str) -> Option<(Netns, Watched, Watched, Watched)> {
    let ns = net(test, tag)?;
    let p = prefix(tag);
    let srv = server(&ns, &p, 2);
    let c0 = client(&p, 0);
    let c1 = client(&p, 1);
    Some((ns, srv, c0, c1))
}

#[test]
fn mp_server_ports_two_clients_transmit_each_frame_once() {
    let Some((ns, mut srv, mut c0, mut c1)) = two_clients(
        "mp_server_ports_two_clients_transmit_each_frame_once",
        "mps",
    ) else {
        return;
    };
    const N: u32 = 3000;
    forwards_each_once(&ns, 0, N);
    srv.send_line("quit");
    exit_ok(&mut c0);
    exit_ok(&mut c1);
    let (r0, t0, d0) = counts(&c0, 0);
    let (r1, t1, d1) = counts(&c1, 1);
    assert_eq!(
        (d0, d1),
        (0, 0),
        "nothing dropped at the clients' TX queues"
    );
    assert_eq!((r0, r1), (t0, t1));
    assert_shared(t0, t1, N);
    let out = exit_ok(&mut srv);
    assert!(
        out.contains(&format!("client 0: sent={r0} rx={r0} tx={t0} drop=0")),
        "{out}"
    );
    assert_pool_whole(&out);
    assert!(out.contains("mp_server: OK"), "{out}");
}

#[test]
fn mp_server_ports_takes_back_a_killed_clients_queues() {
    let test = "mp_server_ports_takes_back_a_killed_clients_queues";
    let Some(ns) = net(test, "mpk") else {
        return;
    };
    let p = prefix("srvk");
    let mut srv = server(&ns, &p, 1);
    let mut c0 = client(&p, 0);
    const N: u32 = 500;
    forwards_each_once(&ns, 0, N);
    c0.kill();
    // A new client takes the dead one's TX queue over (the server reclaims it at the
    // claim) and goes on.
    let mut c0b = client(&p, 0);
    forwards_each_once(&ns, N, 2 * N);
    srv.send_line("quit");
    exit_ok(&mut c0b);
    let out = exit_ok(&mut srv);
    assert_pool_whole(&out);
}

#[test]
fn mp_server_ports_client_killed_mid_burst_loses_no_mbuf() {
    let Some((ns, mut srv, mut c0, mut c1)) = two_clients(
        "mp_server_ports_client_killed_mid_burst_loses_no_mbuf",
        "mpm",
    ) else {
        return;
    };
    // ring and in its hands.
    kill_mid_stream(&ns, &mut c1);
    srv.send_line("quit");
    exit_ok(&mut c0);
    let out = exit_ok(&mut srv);
    assert!(out.contains("mp_server: client 1 died"), "{out}");
    assert!(
        out.contains("mp_server: took back TX queue 1 of port"),
        "the dead client's TX queue was taken back: {out}"
    );
    assert_pool_whole(&out);
    assert!(out.contains("mp_server: OK"), "{out}");
    let (r0, t0, _) = counts(&c0, 0);
    assert!(
        r0 > 0 && t0 > 0,
        "the live client carried frames: {r0} {t0}"
    );
}
