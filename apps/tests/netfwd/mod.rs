//! What the forwarding tests over veth pairs share: tagged IPv4/UDP frames of many
//! flows, the namespace with two veth pairs, sending on `vb0` and collecting on `vb1`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use testkit::child::Watched;
use testkit::netns::Netns;
use testkit::rawsock::RawSock;

/// Hang guard for every wait.
pub const GUARD: Duration = Duration::from_secs(300);
pub const MAGIC: &[u8; 4] = b"FPSY";
/// UDP source ports used: the flows the fanout hash spreads over the queues.
pub const FLOWS: u16 = 64;

pub fn prefix(tag: &str) -> String {
    format!("t-sym-{tag}-{}", std::process::id())
}

/// An Ethernet/IPv4/UDP frame of flow `seq % FLOWS` carrying MAGIC and `seq`.
pub fn frame(seq: u32) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0xb1, 0x02, 0, 0, 0, 0, 0xb0, 0x08, 0x00];
    let udp_len: u16 = 8 + 8 + 32;
    let ip_len = 20 + udp_len;
    f.extend([
        0x45,
        0,
        (ip_len >> 8) as u8,
        ip_len as u8,
        0,
        0,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ]);
    f.extend([10, 9, 0, 1, 10, 9, 0, 2]);
    let sport = 10_000 + (seq as u16 % FLOWS);
    f.extend(sport.to_be_bytes());
    f.extend(9u16.to_be_bytes());
    f.extend(udp_len.to_be_bytes());
    f.extend([0, 0]);
    f.extend(MAGIC);
    f.extend(seq.to_be_bytes());
    f.extend((0..32u8).map(|i| i ^ seq as u8));
    f
}

/// The sequence number of one of our frames.
pub fn seq_of(b: &[u8]) -> Option<u32> {
    let off = 14 + 20 + 8;
    if b.len() < off + 8 || &b[off..off + 4] != MAGIC {
        return None;
    }
    Some(u32::from_be_bytes(b[off + 4..off + 8].try_into().ok()?))
}

/// The namespace with the two veth pairs; `None` after a counted skip.
pub fn net(test: &str, tag: &str) -> Option<Netns> {
    let ns = Netns::new(test, tag)?;
    ns.veth("va0", "vb0");
    ns.veth("va1", "vb1");
    Some(ns)
}

/// Send frames `from..to` on `vb0` (paced in bursts so no ring overflows) and collect
/// what arrives on `vb1` until every one came or the guard passed, then a little longer
/// to see duplicates. Returns how often each sequence number arrived.
pub fn send_and_collect(ns: &Netns, from: u32, to: u32) -> HashMap<u32, u32> {
    send_and_collect_on(ns, "vb0", "vb1", from, to)
}

/// [`send_and_collect`] with other interfaces: send on `tx_if`, collect on `rx_if`.
pub fn send_and_collect_on(
    ns: &Netns,
    tx_if: &'static str,
    rx_if: &'static str,
    from: u32,
    to: u32,
) -> HashMap<u32, u32> {
    collect(ns, tx_if, rx_if, from, to, GUARD)
}

/// Send frames `from..to` on `vb0` while `during` runs on this thread (after `delay`),
/// and collect what arrives on `vb1` (waiting at most `wait` for frames a killed process
/// lost). Returns how often each sequence number arrived.
pub fn send_while(
    ns: &Netns,
    from: u32,
    to: u32,
    delay: Duration,
    wait: Duration,
    during: impl FnOnce(),
) -> HashMap<u32, u32> {
    std::thread::scope(|sc| {
        let h = sc.spawn(|| collect(ns, "vb0", "vb1", from, to, wait));
        std::thread::sleep(delay);
        during();
        h.join().expect("sender thread")
    })
}

/// Stream frames through the forwarders (`vb0` -> `vb1`) and kill `victim` with
/// SIGKILL 400 ms in, mid-stream: frames may be lost with it, none may arrive twice.
pub fn kill_mid_stream(ns: &Netns, victim: &mut Watched) {
    const N: u32 = 20_000;
    let seen = send_while(
        ns,
        0,
        N,
        Duration::from_millis(400),
        Duration::from_secs(20),
        || victim.kill(),
    );
    assert_none_twice(&seen, 0, N);
}

/// Frames that arrived more than once, or that were never sent: none may.
fn assert_none_twice(seen: &HashMap<u32, u32>, from: u32, to: u32) {
    let bad: Vec<(&u32, &u32)> = seen
        .iter()
        .filter(|(s, &n)| n != 1 || !(from..to).contains(*s))
        .take(10)
        .collect();
    assert!(
        bad.is_empty(),
        "frames {from}..{to}: duplicated or foreign {bad:?}"
    );
}

fn collect(
    ns: &Netns,
    tx_if: &'static str,
    rx_if: &'static str,
    from: u32,
    to: u32,
    wait: Duration,
) -> HashMap<u32, u32> {
    ns.run(move || {
        let tx = RawSock::bind(tx_if);
        let rx = RawSock::bind(rx_if);
        for s in from..to {
            tx.send(&frame(s));
            if (s - from) % 32 == 31 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let want = (to - from) as usize;
        let mut got = rx.recv_until(want, wait, |b| seq_of(b).is_some());
        got.extend(rx.recv_until(usize::MAX, Duration::from_millis(300), |b| {
            seq_of(b).is_some()
        }));
        let mut seen = HashMap::new();
        for b in got {
            *seen.entry(seq_of(&b).expect("kept")).or_insert(0) += 1;
        }
        seen
    })
}

/// [`send_and_collect`], then [`assert_each_once`].
pub fn forwards_each_once(ns: &Netns, from: u32, to: u32) {
    assert_each_once(&send_and_collect(ns, from, to), from, to);
}

/// Wait for `w` to exit, assert it succeeded (its output in the message) and return
/// its stdout.
pub fn exit_ok(w: &mut Watched) -> String {
    let st = w.wait();
    let out = w.stdout();
    assert!(st.success(), "{st:?} {out} {}", w.stderr());
    out
}

/// The two processes' forwarded counts `a` and `b` add up to the `n` frames sent, and
/// each carried a share (the flows spread over both).
pub fn assert_shared(a: u64, b: u64, n: u32) {
    assert_eq!(
        a + b,
        u64::from(n),
        "the processes' counts add up to what was sent"
    );
    assert!(a > 0 && b > 0, "both processes carried a share: {a} {b}");
}

/// The app's last words say all 4095 mbufs of its pool are free again.
pub fn assert_pool_whole(out: &str) {
    assert!(out.contains("pool: 4095/4095 mbufs free"), "{out}");
}

pub fn assert_each_once(seen: &HashMap<u32, u32>, from: u32, to: u32) {
    let missing: Vec<u32> = (from..to)
        .filter(|s| !seen.contains_key(s))
        .take(10)
        .collect();
    let dup: Vec<(&u32, &u32)> = seen.iter().filter(|(_, &n)| n != 1).take(10).collect();
    let foreign: Vec<&u32> = seen
        .keys()
        .filter(|s| !(from..to).contains(*s))
        .take(10)
        .collect();
    assert!(
        missing.is_empty() && dup.is_empty() && foreign.is_empty(),
        "frames {from}..{to}: missing {missing:?}, duplicated {dup:?}, foreign {foreign:?}"
    );
}
