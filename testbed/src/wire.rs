//! The host halves of the NIC tests (`tests/e1000_guest.rs`, `tests/virtio_guest.rs`):
//! what the test sends into the NICs' datagram sockets, what it expects out of them, and
//! how it reads the guest programs' output (`key=value` lines, l2fwd's statistics).
//! The guest halves are in [`crate::nic`].

use std::time::Duration;

use crate::frames::{
    test_frame, FOREIGN, HOST, N_FOREIGN1, N_FOREIGN2, N_OWN1, N_OWN2, N_TX, S_FOREIGN1,
    S_FOREIGN2, S_OWN1, S_OWN2, S_TXA, S_TXB,
};
use crate::{FrameSocket, Guest};

/// Empty both sockets of what a previous run left; the guest log and pid files of run
/// `tag`.
pub fn fresh_run(s: [&FrameSocket; 2], tag: &str) -> (String, String) {
    for s in s {
        s.drain().unwrap();
    }
    (format!("/tmp/{tag}.log"), format!("/tmp/{tag}.pid"))
}

/// Send frames `(dst, stream, count)` of `own` and `other` interleaved, the last one an
/// own frame.
pub fn send_interleaved(s: &FrameSocket, own: ([u8; 6], u8, u32), other: ([u8; 6], u8, u32)) {
    for i in 0..own.2.max(other.2) {
        if i < other.2 {
            s.send(&test_frame(other.0, HOST, other.1, i)).unwrap();
        }
        if i < own.2 {
            s.send(&test_frame(own.0, HOST, own.1, i)).unwrap();
        }
    }
}

/// Receive `n` frames on `s` and compare them, in order, with `want(seq)`; returns them.
pub fn expect_frames(
    s: &FrameSocket,
    n: u32,
    what: &str,
    want: impl Fn(u32) -> Vec<u8>,
) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for seq in 0..n {
        let f = s
            .recv(Duration::from_secs(60))
            .unwrap()
            .unwrap_or_else(|| panic!("{what}: frame {seq} of {n} never arrived"));
        let w = want(seq);
        assert_eq!(f.len(), w.len(), "{what}: frame {seq} length");
        assert!(f == w, "{what}: frame {seq} differs from what was sent");
        all.push(f);
    }
    all
}

/// The number after `key=` on the first line of `out` starting with `line`.
pub fn field(out: &str, line: &str, key: &str) -> u64 {
    let l = out
        .lines()
        .find(|l| l.starts_with(line))
        .unwrap_or_else(|| panic!("no '{line}' line:\n{out}"));
    l.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in '{l}'"))
}

/// The guest program's `pool avail=A size=S` line says every mbuf came back.
pub fn check_pool(out: &str) {
    assert_eq!(
        field(out, "pool", "avail"),
        field(out, "pool", "size"),
        "mbufs leaked:\n{out}"
    );
}

/// Bytes of frames `0..n` of `stream`.
pub fn stream_bytes(stream: u8, n: u32) -> u64 {
    (0..n)
        .map(|k| test_frame(HOST, HOST, stream, k).len() as u64)
        .sum()
}

/// The host half of [`crate::nic::promisc_steps`] on NIC A (MAC `mac`, socket `s`) of
/// the guest program logging to `log`.
pub fn promisc_steps(g: &mut Guest, log: &str, s: &FrameSocket, mac: [u8; 6]) {
    send_interleaved(s, (mac, S_OWN1, N_OWN1), (FOREIGN, S_FOREIGN1, N_FOREIGN1));
    let out = g.wait_log(log, "STEP1 OK", 180);
    assert_eq!(field(&out, "STEP1 OK", "own"), u64::from(N_OWN1));
    assert_eq!(
        field(&out, "STEP1 OK", "foreign"),
        0,
        "promiscuous off let foreign frames in"
    );
    g.wait_log(log, "STEP2 READY", 60);
    send_interleaved(s, (mac, S_OWN2, N_OWN2), (FOREIGN, S_FOREIGN2, N_FOREIGN2));
    let out = g.wait_log(log, "STEP2 OK", 180);
    assert_eq!(
        field(&out, "STEP2 OK", "foreign"),
        u64::from(N_FOREIGN2),
        "promiscuous on lost foreign frames"
    );
}

/// The frames and bytes [`promisc_steps`] has NIC A receive.
pub fn promisc_rx() -> (u64, u64) {
    (
        u64::from(N_OWN1 + N_OWN2 + N_FOREIGN2),
        stream_bytes(S_OWN1, N_OWN1)
            + stream_bytes(S_OWN2, N_OWN2)
            + stream_bytes(S_FOREIGN2, N_FOREIGN2),
    )
}

/// The host half of [`crate::nic::tx_step`]: the test frames out of NIC A and B (sources
/// `macs`, sockets `s`), in order, and nothing more. Returns A's frames.
pub fn expect_tx(s: [&FrameSocket; 2], macs: [[u8; 6]; 2]) -> Vec<Vec<u8>> {
    let sent_a = expect_frames(s[0], N_TX, "TX out of NIC A", |k| {
        test_frame(HOST, macs[0], S_TXA, k)
    });
    expect_frames(s[1], N_TX, "TX out of NIC B", |k| {
        test_frame(HOST, macs[1], S_TXB, k)
    });
    assert_eq!(
        s[0].drain().unwrap() + s[1].drain().unwrap(),
        0,
        "more frames than were sent"
    );
    sent_a
}

/// The suite's `STATS a` line (re-checked here) says NIC A received `rx_frames` frames
/// of `rx_bytes` bytes, sent the TX step's frames and counted the chained packet as an
/// error; and the pool is whole.
pub fn check_suite_stats(out: &str, rx_frames: u64, rx_bytes: u64) {
    assert_eq!(field(out, "STATS a", "ipackets"), rx_frames, "{out}");
    assert_eq!(field(out, "STATS a", "ibytes"), rx_bytes, "{out}");
    assert_eq!(
        field(out, "STATS a", "obytes"),
        stream_bytes(S_TXA, N_TX),
        "{out}"
    );
    assert_eq!(
        field(out, "STATS a", "oerrors"),
        1,
        "the chained packet:\n{out}"
    );
    check_pool(out);
}

/// The port id l2fwd gave the NIC with `mac` (its "Port P, MAC address: M" line).
pub fn l2fwd_port(out: &str, mac: [u8; 6]) -> u16 {
    let want = mac
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    out.lines()
        .find_map(|l| {
            let (p, m) = l.strip_prefix("Port ")?.split_once(", MAC address: ")?;
            m.trim()
                .eq_ignore_ascii_case(&want)
                .then(|| p.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("l2fwd printed no port with MAC {want}:\n{out}"))
}

/// "Packets `key`:" of `port` in l2fwd's last statistics table.
pub fn l2fwd_stat(out: &str, port: u16, key: &str) -> u64 {
    let head = format!("Statistics for port {port} ");
    let at = out
        .rfind(&head)
        .unwrap_or_else(|| panic!("no '{head}' block:\n{out}"));
    let prefix = format!("Packets {key}:");
    out[at..]
        .lines()
        .skip(1)
        .take(3)
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no '{prefix}' for port {port}:\n{}", &out[at..]))
}

/// l2fwd's final statistics (`out`): `n` frames received on port `pa` and sent on `pb`,
/// none dropped, nothing the other way; it exited after saying goodbye, pool whole.
pub fn check_l2fwd_stats(out: &str, pa: u16, pb: u16, n: u32) {
    let n = u64::from(n);
    assert!(out.contains("Bye..."), "{out}");
    assert!(
        !out.contains("mbufs not returned"),
        "l2fwd leaked mbufs:\n{out}"
    );
    assert_eq!(
        l2fwd_stat(out, pa, "received"),
        n,
        "rx on A's port {pa}:\n{out}"
    );
    assert_eq!(
        l2fwd_stat(out, pb, "sent"),
        n,
        "tx on B's port {pb}:\n{out}"
    );
    assert_eq!(l2fwd_stat(out, pb, "dropped"), 0, "{out}");
    assert_eq!(l2fwd_stat(out, pb, "received"), 0, "{out}");
    assert_eq!(l2fwd_stat(out, pa, "sent"), 0, "{out}");
}

/// Each of `got` is frame `seq` of `stream` sent from the host to `dst` (each seq once,
/// all `n`), with `fix` applied to what was sent.
pub fn check_forwarded(
    got: &[Vec<u8>],
    n: u32,
    (dst, stream): ([u8; 6], u8),
    what: &str,
    fix: impl Fn(&mut Vec<u8>),
) {
    assert_eq!(got.len(), n as usize, "{what}: frames out of NIC B");
    let mut seen = vec![false; n as usize];
    for (i, f) in got.iter().enumerate() {
        assert!(
            f.len() >= 19 && f[18] == stream,
            "{what}: frame {i} is not one we sent"
        );
        let seq = u32::from_le_bytes([f[14], f[15], f[16], f[17]]);
        assert!(
            seq < n && !seen[seq as usize],
            "{what}: frame {seq} unexpected or twice"
        );
        seen[seq as usize] = true;
        let mut want = test_frame(dst, HOST, stream, seq);
        fix(&mut want);
        assert!(*f == want, "{what}: frame {seq} differs");
    }
}

/// Unbind `addr` under `program` (a `poll` of the NIC programs): it stops with exit
/// 3, bursts on the gone port move nothing, the pool is whole.
pub fn unbind_under_poll(g: &mut Guest, program: &str, addr: &str) {
    let out = g.unbind_under(program, "POLLING", addr);
    assert!(
        out.contains("rx=0 tx=0 kept=1"),
        "bursts on the gone port:\n{out}"
    );
    check_pool(&out);
}
