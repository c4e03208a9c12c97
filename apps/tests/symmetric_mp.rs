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

mod netfwd;
use netfwd::*;

use std::process::Command;

use testkit::child::Watched;
use testkit::netns::Netns;

const BIN: &str = env!("CARGO_BIN_EXE_symmetric_mp");
/// The primary inside the namespace: ports on `va0` and `va1`, `procs` queue pairs.
fn primary(ns: &Netns, p: &str, procs: u16) -> Watched {
    primary_with(
        ns,
        p,
        procs,
        &format!("net_af_packet0,iface=va0,qpairs={procs}"),
        &format!("net_af_packet1,iface=va1,qpairs={procs}"),
    )
}

/// The primary inside the namespace with the two ports `vdev0` and `vdev1`.
fn primary_with(ns: &Netns, p: &str, procs: u16, vdev0: &str, vdev1: &str) -> Watched {
    primary_in(ns.command(BIN), p, procs, vdev0, vdev1)
}

/// The primary run by `c` (this binary, in a namespace or not) with ports `vdev0` and
/// `vdev1`, once it forwards.
fn primary_in(mut c: Command, p: &str, procs: u16, vdev0: &str, vdev1: &str) -> Watched {
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
        vdev0,
        "--vdev",
        vdev1,
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

/// Tell `w` to quit; it must exit 0. Its stdout.
fn quit(w: &mut Watched) -> String {
    w.send_line("quit");
    exit_ok(w)
}

/// Quit the secondary (process 1) then the primary: their forwarded counts add up to
/// the `n` frames sent, both carried a share, the pool is whole. The secondary's stdout.
fn finish(pri: &mut Watched, sec: &mut Watched, n: u32) -> String {
    let sout = quit(sec);
    let f1 = forwarded(sec, 1);
    let out = quit(pri);
    assert_shared(forwarded(pri, 0), f1, n);
    assert_pool_whole(&out);
    sout
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
    forwards_each_once(&ns, 0, N);
    assert!(finish(&mut pri, &mut sec, N).contains("symmetric_mp 1: queues released"));
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
    forwards_each_once(&ns, 0, N);

    // kill -9 between bursts of traffic: its queues stay claimed by a dead pid until a
    // new secondary takes them over, which goes on where the dead one stopped (the ring
    // cursors are in the queues' shared words).
    sec.kill();
    let mut sec2 = secondary(&p, 2, 1);
    sec2.expect("forwarding on queue 1");
    forwards_each_once(&ns, N, 2 * N);
    quit(&mut sec2);
    let f2 = forwarded(&mut sec2, 1);
    let out = quit(&mut pri);
    let f0 = forwarded(&mut pri, 0);
    assert!(f2 > 0, "the new secondary forwarded its share of the flows");
    assert!(f0 + f2 <= u64::from(2 * N) && f0 + f2 >= u64::from(N));
    assert_pool_whole(&out);
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
    forwards_each_once(&ns, 0, 500);
    pri.kill();
    let st = sec.wait();
    assert_eq!(st.code(), Some(3), "{} {}", sec.stdout(), sec.stderr());
    assert!(
        sec.stdout().contains("the primary exited; stopping"),
        "{}",
        sec.stdout()
    );
}

#[test]
fn symmetric_mp_tap_two_processes_forward_each_frame_once() {
    let test = "symmetric_mp_tap_two_processes_forward_each_frame_once";
    let Some(ns) = Netns::new(test, "symt") else {
        return;
    };
    let p = prefix("tap");
    // Multi-queue TAP devices made by the primary; the kernel spreads flows over their
    // queues, and the secondary's queue descriptors come over IPC.
    let mut pri = primary_with(&ns, &p, 2, "net_tap0,iface=fpst0", "net_tap1,iface=fpst1");
    let mut sec = secondary(&p, 2, 1);
    sec.expect("forwarding on queue 1");
    const N: u32 = 2000;
    let seen = send_and_collect_on(&ns, "fpst0", "fpst1", 0, N);
    assert_each_once(&seen, 0, N);
    finish(&mut pri, &mut sec, N);
}

#[test]
fn symmetric_mp_secondary_killed_mid_burst_loses_no_mbuf() {
    // net_null ports: every burst has 32 mbufs in the process's hands, so a kill -9
    // lands mid-burst; no namespace needed.
    let p = prefix("midburst");
    let mut pri = primary_in(Command::new(BIN), &p, 2, "net_null0", "net_null1");
    let mut sec = secondary(&p, 2, 1);
    sec.expect("forwarding on queue 1");
    std::thread::sleep(std::time::Duration::from_millis(300));
    sec.kill();
    // A second victim, to take back more than one process's hands.
    let mut sec2 = secondary(&p, 2, 1);
    sec2.expect("forwarding on queue 1");
    std::thread::sleep(std::time::Duration::from_millis(300));
    sec2.kill();
    let out = quit(&mut pri);
    assert!(
        out.contains("took back TX queue 1 of port 0") || out.contains("took back RX queue 1"),
        "the dead secondary's queues were taken back: {out}"
    );
    if let Some(k) = out
        .lines()
        .find_map(|l| l.strip_prefix("pool: took back "))
        .and_then(|l| l.split_whitespace().next())
    {
        let k: u32 = k.parse().expect("count");
        assert!(k <= 2 * 32, "at most one burst per killed process: {k}");
    }
    assert_pool_whole(&out);
}
