//! `symmetric_mp` as real processes over veth pairs in a network namespace the test
//! makes: a primary (inside the namespace, owning two `net_af_packet` ports with two
//! queue pairs each) and a secondary (outside it: its AF_PACKET sockets come from the
//! primary over the EAL's IPC) forward frames from `vb0` to `vb1`. Every frame sent is
//! received once on the far side, the processes' own counts add up to what was sent,
//! flows reach both processes, and the pool is whole at the end. Also: a secondary's
//! refused port changes, a second claimant of a queue refused, a secondary killed with
//! `kill -9` whose queues a new secondary takes over where it stopped, and the
//! primary's death seen by the secondary. Under `--no-huge`; root and `ip` needed.
//!
//! Timeouts are hang guards only; nothing asserts a duration.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use testkit::child::Watched;
use testkit::netns::Netns;
use testkit::rawsock::RawSock;

const BIN: &str = env!("CARGO_BIN_EXE_symmetric_mp");
const GUARD: Duration = Duration::from_secs(300);
const MAGIC: &[u8; 4] = b"FPSY";
/// UDP source ports used: the flows the fanout hash spreads over the queues.
const FLOWS: u16 = 64;

fn prefix(tag: &str) -> String {
    format!("t-sym-{tag}-{}", std::process::id())
}

/// An Ethernet/IPv4/UDP frame of flow `seq % FLOWS` carrying MAGIC and `seq`.
fn frame(seq: u32) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0xb1, 0x02, 0, 0, 0, 0, 0xb0, 0x08, 0x00];
    let udp_len: u16 = 8 + 8 + 32;
    let ip_len = 20 + udp_len;
    f.extend([0x45, 0, (ip_len >> 8) as u8, ip_len as u8, 0, 0, 0x40, 0, 64, 17, 0, 0]);
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
fn seq_of(b: &[u8]) -> Option<u32> {
    let off = 14 + 20 + 8;
    if b.len() < off + 8 || &b[off..off + 4] != MAGIC {
        return None;
    }
    Some(u32::from_be_bytes(b[off + 4..off + 8].try_into().ok()?))
}

/// The primary inside the namespace: ports on `va0` and `va1`, `procs` queue pairs.
fn primary(ns: &Netns, p: &str, procs: u16) -> Watched {
    let mut c = ns.command(BIN);
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
        &format!("net_af_packet0,iface=va0,qpairs={procs}"),
        "--vdev",
        &format!("net_af_packet1,iface=va1,qpairs={procs}"),
        "--",
        "--num-procs",
        &procs.to_string(),
        "--proc-id",
        "0",
    ]);
    let mut w = Watched::spawn(c, "symmetric_mp primary", GUARD);
    w.expect("forwarding on queue 0");
    w
}

/// A secondary outside the namespace, as process `id` of `procs`.
fn secondary(p: &str, procs: u16, id: u16) -> Watched {
    let mut c = Command::new(BIN);
    c.args([
        "--proc-type",
        "secondary",
        "--no-pci",
        "--lcores",
        &format!("{id}@0"),
        "--file-prefix",
        p,
        "--",
        "--num-procs",
        &procs.to_string(),
        "--proc-id",
        &id.to_string(),
    ]);
    Watched::spawn(c, &format!("symmetric_mp {id}"), GUARD)
}

/// The namespace with the two veth pairs; `None` after a counted skip.
fn net(test: &str, tag: &str) -> Option<Netns> {
    let ns = Netns::new(test, tag)?;
    ns.veth("va0", "vb0");
    ns.veth("va1", "vb1");
    Some(ns)
}

/// Send frames `from..to` on `vb0` (paced in bursts so no ring overflows) and collect
/// what arrives on `vb1` until every one came or the guard passed, then a little longer
/// to see duplicates. Returns how often each sequence number arrived.
fn send_and_collect(ns: &Netns, from: u32, to: u32) -> HashMap<u32, u32> {
    ns.run(move || {
        let tx = RawSock::bind("vb0");
        let rx = RawSock::bind("vb1");
        for s in from..to {
            tx.send(&frame(s));
            if (s - from) % 32 == 31 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let want = (to - from) as usize;
        let mut got = rx.recv_until(want, GUARD, |b| seq_of(b).is_some());
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

fn assert_each_once(seen: &HashMap<u32, u32>, from: u32, to: u32) {
    let missing: Vec<u32> = (from..to).filter(|s| !seen.contains_key(s)).take(10).collect();
    let dup: Vec<(&u32, &u32)> = seen.iter().filter(|(_, &n)| n != 1).take(10).collect();
    let foreign: Vec<&u32> = seen.keys().filter(|s| !(from..to).contains(*s)).take(10).collect();
    assert!(
        missing.is_empty() && dup.is_empty() && foreign.is_empty(),
        "frames {from}..{to}: missing {missing:?}, duplicated {dup:?}, foreign {foreign:?}"
    );
}

/// What process `id` said it forwarded (`symmetric_mp ID: forwarded N`), after it
/// exited.
fn forwarded(w: &mut Watched, id: u16) -> u64 {
    let tag = format!("symmetric_mp {id}: forwarded ");
    let out = w.stdout();
    let v = out
        .lines()
        .find_map(|l| l.strip_prefix(&tag))
        .unwrap_or_else(|| panic!("no {tag:?} in {out}"));
    v.trim()
        .parse()
        .unwrap_or_else(|_| panic!("forwarded count {v:?}"))
}

fn quit(w: &mut Watched) -> std::process::ExitStatus {
    w.send_line("quit");
    w.wait()
}

#[test]
fn symmetric_mp_two_processes_forward_each_frame_once() {
    let test = "symmetric_mp_two_processes_forward_each_frame_once";
    let Some(ns) = net(test, "sym2") else {
        return;
    };
    let p = prefix("two");
    let mut pri = primary(&ns, &p, 2);
    let mut sec = secondary(&p, 2, 1);
    sec.expect("forwarding on queue 1");
    const N: u32 = 4000;
    let seen = send_and_collect(&ns, 0, N);
    assert_each_once(&seen, 0, N);
    let st = quit(&mut sec);
    assert!(st.success(), "{st:?} {} {}", sec.stdout(), sec.stderr());
    let f1 = forwarded(&mut sec, 1);
    assert!(sec.stdout().contains("symmetric_mp 1: queues released"));
    let st = quit(&mut pri);
    let f0 = forwarded(&mut pri, 0);
    let out = pri.stdout();
    assert!(st.success(), "{st:?} {out} {}", pri.stderr());
    assert_eq!(f0 + f1, u64::from(N), "per-process counts add up to what was sent");
    assert!(
        f0 > 0 && f1 > 0,
        "{FLOWS} flows spread over both processes: primary {f0}, secondary {f1}"
    );
    assert!(out.contains("pool: 4095/4095 mbufs free"), "{out}");
}

#[test]
fn symmetric_mp_killed_secondary_queues_taken_over_pool_whole() {
    let test = "symmetric_mp_killed_secondary_queues_taken_over_pool_whole";
    let Some(ns) = net(test, "symk") else {
        return;
    };
    let p = prefix("kill");
    let mut pri = primary(&ns, &p, 2);
    let mut sec = secondary(&p, 2, 1);
    sec.expect("forwarding on queue 1");

    // A second claimant of the same queues is refused, naming the holder.
    let mut dup = secondary(&p, 2, 1);
    let st = dup.wait();
    assert_eq!(st.code(), Some(2), "{}", dup.stdout());
    let err = dup.stderr();
    assert!(
        err.contains("queue 1 of port 0: it is driven by process")
            && err.contains(&sec.id().to_string()),
        "{err}"
    );

    const N: u32 = 1000;
    let seen = send_and_collect(&ns, 0, N);
    assert_each_once(&seen, 0, N);

    // kill -9 between bursts of traffic: its queues stay claimed by a dead pid until a
    // new secondary takes them over, which goes on where the dead one stopped (the ring
    // cursors are in the queues' shared words).
    sec.kill();
    let mut sec2 = secondary(&p, 2, 1);
    sec2.expect("forwarding on queue 1");
    let seen = send_and_collect(&ns, N, 2 * N);
    assert_each_once(&seen, N, 2 * N);
    let st = quit(&mut sec2);
    assert!(st.success(), "{st:?} {} {}", sec2.stdout(), sec2.stderr());
    let f2 = forwarded(&mut sec2, 1);
    let st = quit(&mut pri);
    let f0 = forwarded(&mut pri, 0);
    let out = pri.stdout();
    assert!(st.success(), "{st:?} {out} {}", pri.stderr());
    assert!(f2 > 0, "the new secondary forwarded its share of the flows");
    assert!(f0 + f2 <= u64::from(2 * N) && f0 + f2 >= u64::from(N));
    assert!(out.contains("pool: 4095/4095 mbufs free"), "{out}");
}

#[test]
fn symmetric_mp_primary_death_stops_the_secondary() {
    let test = "symmetric_mp_primary_death_stops_the_secondary";
    let Some(ns) = net(test, "symd") else {
        return;
    };
    let p = prefix("death");
    let mut pri = primary(&ns, &p, 2);
    let mut sec = secondary(&p, 2, 1);
    sec.expect("forwarding on queue 1");
    let seen = send_and_collect(&ns, 0, 500);
    assert_each_once(&seen, 0, 500);
    pri.kill();
    let st = sec.wait();
    assert_eq!(st.code(), Some(3), "{} {}", sec.stdout(), sec.stderr());
    assert!(
        sec.stdout().contains("the primary exited; stopping"),
        "{}",
        sec.stdout()
    );
}
