//! `fp-e1000test`: the guest half of the e1000 driver tests (`tests/e1000_guest.rs`), run
//! inside the QEMU testbed. It drives the two e1000 NICs (8086:100e) through the ethdev
//! API and the `net_e1000_em` driver while the host test feeds and reads the NICs'
//! datagram sockets. Progress lines (`READY`, `STEP1 OK`, ...) tell the host when to send.
//!
//! ```text
//! fp-e1000test [EAL args] -- suite   # RX (bytes), promiscuous off/on, TX, stats, mbufs
//! fp-e1000test [EAL args] -- fwd N   # forward N frames NIC A -> NIC B, rewriting MACs
//! fp-e1000test [EAL args] -- poll S  # poll for S seconds; exit 3 once the device goes away
//! fp-e1000test [EAL args] -- mp-primary GO N     # set up both NICs, leave them to a
//!                                                # secondary; once file GO exists,
//!                                                # forward N frames A -> B itself
//! fp-e1000test --proc-type secondary [EAL args] -- mp-secondary N  # claim A's RX and
//!                                                # B's TX queue, forward N frames
//! fp-e1000test --proc-type secondary [EAL args] -- mp-claim  # a second claimant of A's
//!                                                # RX queue: must be refused
//! ```
//!
//! The NICs are the PCI devices the EAL allows (`-a`), told apart by MAC: NIC A is
//! 52:54:00:fe:00:00 (testbed socket 0), NIC B 52:54:00:fe:00:01 (socket 1).
//! Exit codes: 0 passed, 1 a check failed (the line says which), 2 bad arguments,
//! 3 the device went away (`poll`).
//!
//! Test frames, addresses, streams and counts come from `testbed::frames`, which the
//! host test uses too.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use eal::Eal;
use testbed::frames::{FWD_DST, MAC_A, MAC_B, N_TX};
use testbed::nic::{self, check_eq, close, xstat, Want, STEP_TIMEOUT};

/// NIC A and B of the e1000 test, one queue pair each.
const WANT: Want<'static> = Want {
    driver: "net_e1000_em",
    macs: [MAC_A, MAC_B],
    pool: ("e1000test", 2047),
    max_pairs: 1,
};

fn suite(eal: &Eal) -> Result<(), String> {
    let p = nic::setup(eal, &WANT)?;
    println!("READY a={} b={}", p.a, p.b);

    // 1. Promiscuous off: own frames arrive intact, foreign ones are filtered.
    // 2. Promiscuous on: foreign frames arrive too.
    let (rx_frames, rx_bytes) = nic::promisc_steps(&p, MAC_A)?;
    pmd::promiscuous_set(p.a, false).map_err(|e| e.to_string())?;

    // 3. TX out of both NICs: first a two-segment packet (dropped, counted), then the
    //    frames the host checks.
    let (tx_bytes_a, tx_bytes_b) = nic::tx_step(&p, [MAC_A, MAC_B])?;
    println!("STEP3 SENT {N_TX} {N_TX}");

    // 4. Statistics: software counters and hardware counters agree with what moved.
    let rx_frames = u64::from(rx_frames);
    let sa = nic::check_stats(&p, rx_frames, rx_bytes, (tx_bytes_a, tx_bytes_b), "hw_")?;
    check_eq("a imissed", sa.imissed, 0)?;
    // Hardware: good packets, and octets from the destination address through the CRC
    // (4 bytes per frame; SDM 13.7.31/13.7.32).
    let n_tx = u64::from(N_TX);
    for (port, side, name, want) in [
        (p.a, "a", "hw_gprc", rx_frames),
        (p.a, "a", "hw_gorc", rx_bytes + 4 * rx_frames),
        (p.a, "a", "hw_gptc", n_tx),
        (p.a, "a", "hw_gotc", tx_bytes_a + 4 * n_tx),
        (p.b, "b", "hw_gptc", n_tx),
        (p.b, "b", "hw_gotc", tx_bytes_b + 4 * n_tx),
        (p.b, "b", "hw_gprc", 0),
        (p.a, "a", "hw_mpc", 0),
    ] {
        check_eq(&format!("{side} {name}"), xstat(port, name)?, want)?;
    }
    // Reading again adds nothing (the counters cleared on the first read).
    check_eq(
        "a hw_gprc after a second read",
        xstat(p.a, "hw_gprc")?,
        rx_frames,
    )?;
    println!("STATS OK rx_frames={rx_frames} rx_bytes={rx_bytes} tx_bytes_a={tx_bytes_a} tx_bytes_b={tx_bytes_b}");

    // 5. Every mbuf back after close.
    close(p)?;
    println!("DONE");
    Ok(())
}

/// Forward `n` frames from queue 0 of `a` to queue 0 of `b`, writing dst =
/// 02:00:00:00:00:01 and src = B's MAC (what l2fwd does).
fn forward(a: u16, b: u16, n: u64) -> Result<(), String> {
    let mac_b = pmd::mac_addr_get(b).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut done = 0u64;
    let mut v = Vec::with_capacity(32);
    while done < n {
        if t0.elapsed() > STEP_TIMEOUT {
            return Err(format!("forwarded {done} of {n}"));
        }
        if pmd::rx_burst(a, 0, &mut v, 32) == 0 && v.is_empty() {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        for m in v.iter_mut() {
            let d = m.try_data_mut().ok_or("received mbuf is shared")?;
            d[0..6].copy_from_slice(&FWD_DST);
            d[6..12].copy_from_slice(&mac_b);
        }
        done += u64::from(pmd::tx_burst(b, 0, &mut v));
    }
    Ok(())
}

/// Forward `n` frames from NIC A to NIC B ([`forward`]), then close and check the pool.
fn fwd(eal: &Eal, n: u64) -> Result<(), String> {
    let p = nic::setup(eal, &WANT)?;
    println!("FWD READY");
    forward(p.a, p.b, n)?;
    let done = n;
    std::thread::sleep(Duration::from_millis(500));
    let sa = pmd::stats_get(p.a).map_err(|e| e.to_string())?;
    let sb = pmd::stats_get(p.b).map_err(|e| e.to_string())?;
    println!(
        "FWD forwarded={done} a_ipackets={} b_opackets={}",
        sa.ipackets, sb.opackets
    );
    check_eq("a ipackets", sa.ipackets, n)?;
    check_eq("b opackets", sb.opackets, n)?;
    close(p)?;
    println!("DONE");
    Ok(())
}

/// The multi-process primary: both NICs set up and started, then left idle (no burst
/// here) while a secondary drives their queues; once the file `go` exists (the host
/// makes it after the secondary is gone), forward `n` frames A -> B on the same queues,
/// which go on where the secondary left them; close and check the pool.
fn mp_primary(eal: &Eal, go: &str, n: u64) -> Result<(), String> {
    let p = nic::setup(eal, &WANT)?;
    println!("MP READY");
    let t0 = Instant::now();
    while !std::path::Path::new(go).exists() {
        if t0.elapsed() > Duration::from_secs(600) {
            return Err(format!("{go} never appeared"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Queues a secondary held when it died come back here (none when it gave them back).
    let back = pmd::reclaim_dead_queues();
    println!("MP RECLAIMED queues={}", back.len());
    println!("PRIMARY FWD READY");
    forward(p.a, p.b, n)?;
    std::thread::sleep(Duration::from_millis(500));
    let sa = pmd::stats_get(p.a).map_err(|e| e.to_string())?;
    let sb = pmd::stats_get(p.b).map_err(|e| e.to_string())?;
    // The counters are the port's shared ones: both processes' frames are in them.
    println!(
        "MP STATS a_ipackets={} b_opackets={} a_ierrors={} b_oerrors={}",
        sa.ipackets, sb.opackets, sa.ierrors, sb.oerrors
    );
    close(p)?;
    println!("DONE");
    Ok(())
}

/// A secondary's view of the two testbed NICs: (A, B) by MAC.
fn attach_ports(eal: &Eal) -> Result<(u16, u16), String> {
    let ports = pmd::attach_secondary(eal).map_err(|e| format!("attach: {e}"))?;
    let (a, b) = nic::by_mac(&ports, &WANT, "attached port")?;
    a.zip(b)
        .ok_or_else(|| format!("the primary has no ports with the testbed MACs: {ports:?}"))
}

/// A secondary lets go of the primary's ports (and the queues it claimed on them).
fn detach(ports: [u16; 2]) -> Result<(), String> {
    for p in ports {
        pmd::close(p).map_err(|e| format!("detach from port {p}: {e}"))?;
    }
    Ok(())
}

/// The multi-process secondary: claim A's RX queue and B's TX queue from the primary,
/// forward `n` frames, give the queues back.
fn mp_secondary(eal: &Eal, n: u64) -> Result<(), String> {
    let (a, b) = attach_ports(eal)?;
    pmd::queue_claim(a, true, 0).map_err(|e| format!("claim RX of A: {e}"))?;
    pmd::queue_claim(b, false, 0).map_err(|e| format!("claim TX of B: {e}"))?;
    println!("SEC READY pid={}", std::process::id());
    forward(a, b, n)?;
    // Let the device read what was queued before the TX queue changes hands.
    std::thread::sleep(Duration::from_millis(300));
    pmd::queue_release(a, true, 0).map_err(|e| format!("release RX of A: {e}"))?;
    pmd::queue_release(b, false, 0).map_err(|e| format!("release TX of B: {e}"))?;
    println!("SEC DONE forwarded={n}");
    detach([a, b])
}

/// A second claimant of A's RX queue while the first secondary holds it: refused.
fn mp_claim(eal: &Eal) -> Result<(), String> {
    let (a, b) = attach_ports(eal)?;
    let r = match pmd::queue_claim(a, true, 0) {
        Err(e @ pmd::Error::QueueOwned { .. }) => {
            println!("REFUSED {e}");
            Ok(())
        }
        Err(e) => Err(format!("the claim failed for another reason: {e}")),
        Ok(()) => Err("a second process was given RX queue 0 of NIC A".into()),
    };
    detach([a, b])?;
    r
}

fn main() -> ExitCode {
    const PROG: &str = "fp-e1000test";
    const USAGE: &str = "suite | fwd N | poll SECS | mp-primary GO N | mp-secondary N | mp-claim";
    nic::main(PROG, USAGE, |eal, rest| {
        let num = |i, what| nic::arg_num(PROG, rest, i, what);
        Ok(match rest.first().map(String::as_str) {
            Some("suite") => suite(eal).map(|()| false),
            Some("fwd") => fwd(eal, num(1, "frames to forward")?).map(|()| false),
            Some("poll") => nic::poll(eal, &WANT, "hw_device_gone", num(1, "seconds")?),
            Some("mp-primary") => {
                let go = rest.get(1).ok_or(ExitCode::from(2))?;
                mp_primary(eal, go, num(2, "frames to forward")?).map(|()| false)
            }
            Some("mp-secondary") => mp_secondary(eal, num(1, "frames to forward")?).map(|()| false),
            Some("mp-claim") => mp_claim(eal).map(|()| false),
            other => {
                eprintln!("{PROG}: unknown command {other:?} ({USAGE})");
                return Err(ExitCode::from(2));
            }
        })
    })
}
