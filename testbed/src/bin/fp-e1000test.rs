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
use mbuf::{Mbuf, PktmbufPool};
use pmd::{EthConf, RxConf, TxConf};
use testbed::frames::{
    test_frame, FOREIGN, FWD_DST, HOST, MAC_A, MAC_B, N_FOREIGN2, N_OWN1, N_OWN2, N_TX, S_FOREIGN1,
    S_FOREIGN2, S_OWN1, S_OWN2, S_TXA, S_TXB,
};

const NB_DESC: u16 = 256;
const STEP_TIMEOUT: Duration = Duration::from_secs(90);

fn fail(msg: String) -> ExitCode {
    println!("FAIL {msg}");
    ExitCode::FAILURE
}

struct Ports {
    a: u16,
    b: u16,
    pool: PktmbufPool,
}

/// NIC A and NIC B among `ports` (e1000 ports only), by MAC; prints one line per port
/// starting with `what`.
fn by_mac(ports: &[u16], what: &str) -> Result<(Option<u16>, Option<u16>), String> {
    let (mut a, mut b) = (None, None);
    for &p in ports {
        let mac = pmd::mac_addr_get(p).map_err(|e| e.to_string())?;
        let info = pmd::dev_info(p).map_err(|e| e.to_string())?;
        println!(
            "{what} {p} {} driver={} mac={}",
            info.device_name,
            info.driver_name,
            pmd::fmt_mac(&mac)
        );
        if info.driver_name != "net_e1000_em" {
            continue;
        }
        if mac == MAC_A {
            a = Some(p);
        } else if mac == MAC_B {
            b = Some(p);
        }
    }
    Ok((a, b))
}

fn setup(eal: &Eal) -> Result<Ports, String> {
    let (ports, failed) = pmd::probe_pci(eal);
    if let Some(e) = failed.first() {
        return Err(format!("probe: {e}"));
    }
    let (a, b) = by_mac(&ports, "port")?;
    let (Some(a), Some(b)) = (a, b) else {
        return Err(format!(
            "need the two testbed e1000s ({} and {}); probed ports {ports:?}",
            pmd::fmt_mac(&MAC_A),
            pmd::fmt_mac(&MAC_B)
        ));
    };
    let pool = mbuf::pktmbuf_pool_create(
        eal,
        "e1000test",
        2047,
        32,
        0,
        mbuf::MBUF_DEFAULT_BUF_SIZE,
        None,
    )
    .map_err(|e| format!("pool: {e}"))?;
    for p in [a, b] {
        pmd::configure(p, 1, 1, &EthConf::default()).map_err(|e| e.to_string())?;
        pmd::rx_queue_setup(p, 0, NB_DESC, None, &RxConf::default(), &pool)
            .map_err(|e| e.to_string())?;
        pmd::tx_queue_setup(p, 0, NB_DESC, None, &TxConf::default()).map_err(|e| e.to_string())?;
        pmd::start(p).map_err(|e| e.to_string())?;
        let l = pmd::link_wait_up(p, Duration::from_secs(10)).map_err(|e| e.to_string())?;
        if !l.up {
            return Err(format!("port {p}: link did not come up: {l:?}"));
        }
        println!(
            "port {p} link up speed={} full_duplex={}",
            l.speed_mbps, l.full_duplex
        );
    }
    Ok(Ports { a, b, pool })
}

fn close(p: Ports) -> Result<(), String> {
    for port in [p.a, p.b] {
        pmd::stop(port).map_err(|e| e.to_string())?;
        pmd::close(port).map_err(|e| e.to_string())?;
    }
    let (avail, size) = (p.pool.avail_count(), p.pool.size());
    println!("pool avail={avail} size={size}");
    if avail != size {
        return Err(format!("{} mbufs not returned to the pool", size - avail));
    }
    p.pool.free().map_err(|e| format!("free the pool: {e}"))
}

/// Receive on `port` until `own` frames of stream `own_stream` arrived (the host sends
/// the other stream's frames before the last own frame, so by then every frame the NIC
/// accepted has arrived). Checks every frame byte for byte; returns (own, other, bytes).
fn receive_step(
    port: u16,
    mac: [u8; 6],
    own_stream: u8,
    own: u32,
    other_stream: u8,
) -> Result<(u32, u32, u64), String> {
    let t0 = Instant::now();
    let mut seen_own = vec![false; own as usize];
    let (mut n_own, mut n_other, mut bytes) = (0u32, 0u32, 0u64);
    let mut v = Vec::with_capacity(32);
    while n_own < own {
        if t0.elapsed() > STEP_TIMEOUT {
            return Err(format!(
                "stream {own_stream}: {n_own} of {own} frames after {:?}",
                STEP_TIMEOUT
            ));
        }
        v.clear();
        if pmd::rx_burst(port, 0, &mut v, 32) == 0 {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        for m in v.drain(..) {
            let d = m.data();
            if m.nb_segs() != 1 || d.len() < 19 || d[12..14] != [0x88, 0xb5] {
                return Err(format!(
                    "unexpected frame of {} bytes: {:02x?}",
                    d.len(),
                    &d[..d.len().min(20)]
                ));
            }
            let seq = u32::from_le_bytes([d[14], d[15], d[16], d[17]]);
            let stream = d[18];
            let dst = if stream == own_stream { mac } else { FOREIGN };
            let want = test_frame(dst, HOST, stream, seq);
            if d != want.as_slice() {
                return Err(format!(
                    "stream {stream} frame {seq}: {} bytes differ from the {} sent",
                    d.len(),
                    want.len()
                ));
            }
            bytes += d.len() as u64;
            if stream == own_stream && seq < own && !seen_own[seq as usize] {
                seen_own[seq as usize] = true;
                n_own += 1;
            } else if stream == other_stream {
                n_other += 1;
            } else {
                return Err(format!(
                    "frame {seq} of stream {stream} unexpected or duplicated"
                ));
            }
        }
    }
    // Anything still in the ring would be a frame sent after the last own one.
    std::thread::sleep(Duration::from_millis(200));
    v.clear();
    if pmd::rx_burst(port, 0, &mut v, 32) != 0 {
        return Err(format!(
            "{} extra frames after stream {own_stream} ended",
            v.len()
        ));
    }
    Ok((n_own, n_other, bytes))
}

fn send_all(port: u16, frames: &[Vec<u8>], pool: &PktmbufPool) -> Result<(), String> {
    let mut pkts = Vec::with_capacity(frames.len());
    for f in frames {
        let mut m = Mbuf::alloc(pool).ok_or("pool empty")?;
        m.append(f.len() as u16)
            .map_err(|e| e.to_string())?
            .copy_from_slice(f);
        pkts.push(m);
    }
    let t0 = Instant::now();
    while !pkts.is_empty() {
        if pmd::tx_burst(port, 0, &mut pkts) == 0 {
            if t0.elapsed() > STEP_TIMEOUT {
                return Err(format!(
                    "port {port}: {} frames not taken by tx_burst",
                    pkts.len()
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    Ok(())
}

fn xstat(port: u16, name: &str) -> Result<u64, String> {
    let x = pmd::xstats_by_name(port).map_err(|e| e.to_string())?;
    x.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| format!("no xstat {name}"))
}

fn check_eq(what: &str, got: u64, want: u64) -> Result<(), String> {
    if got != want {
        return Err(format!("{what}: {got}, expected {want}"));
    }
    Ok(())
}

fn suite(eal: &Eal) -> Result<(), String> {
    let p = setup(eal)?;
    println!("READY a={} b={}", p.a, p.b);

    // 1. Promiscuous off: own frames arrive intact, foreign ones are filtered.
    pmd::promiscuous_set(p.a, false).map_err(|e| e.to_string())?;
    let (own1, other1, bytes1) = receive_step(p.a, MAC_A, S_OWN1, N_OWN1, S_FOREIGN1)?;
    if other1 != 0 {
        return Err(format!(
            "promiscuous off: {other1} frames to a foreign MAC were received"
        ));
    }
    println!("STEP1 OK own={own1} foreign={other1}");

    // 2. Promiscuous on: foreign frames arrive too.
    pmd::promiscuous_set(p.a, true).map_err(|e| e.to_string())?;
    println!("STEP2 READY");
    let (own2, other2, bytes2) = receive_step(p.a, MAC_A, S_OWN2, N_OWN2, S_FOREIGN2)?;
    check_eq(
        "promiscuous on: foreign frames received",
        u64::from(other2),
        u64::from(N_FOREIGN2),
    )?;
    println!("STEP2 OK own={own2} foreign={other2}");
    pmd::promiscuous_set(p.a, false).map_err(|e| e.to_string())?;

    // 3. TX out of both NICs. First a two-segment packet, which the driver does not
    //    take apart: consumed, dropped, counted as an error, nothing sent.
    let mut chained = Mbuf::alloc(&p.pool).ok_or("pool empty")?;
    chained.append(60).map_err(|e| e.to_string())?.fill(0);
    let mut tail = Mbuf::alloc(&p.pool).ok_or("pool empty")?;
    tail.append(60).map_err(|e| e.to_string())?.fill(0);
    chained.chain(tail).map_err(|_| "chain two mbufs")?;
    let mut one = vec![chained];
    check_eq(
        "tx_burst of a chained packet",
        u64::from(pmd::tx_burst(p.a, 0, &mut one)),
        1,
    )?;
    let fa: Vec<Vec<u8>> = (0..N_TX)
        .map(|s| test_frame(HOST, MAC_A, S_TXA, s))
        .collect();
    let fb: Vec<Vec<u8>> = (0..N_TX)
        .map(|s| test_frame(HOST, MAC_B, S_TXB, s))
        .collect();
    send_all(p.a, &fa, &p.pool)?;
    send_all(p.b, &fb, &p.pool)?;
    println!("STEP3 SENT {N_TX} {N_TX}");

    // 4. Statistics: software counters and hardware counters agree with what moved.
    std::thread::sleep(Duration::from_millis(500)); // let the last frames leave
    let rx_frames = u64::from(own1 + own2 + other2);
    let rx_bytes = bytes1 + bytes2;
    let tx_bytes_a: u64 = fa.iter().map(|f| f.len() as u64).sum();
    let tx_bytes_b: u64 = fb.iter().map(|f| f.len() as u64).sum();
    let sa = pmd::stats_get(p.a).map_err(|e| e.to_string())?;
    let sb = pmd::stats_get(p.b).map_err(|e| e.to_string())?;
    println!(
        "STATS a ipackets={} ibytes={} opackets={} obytes={} imissed={} ierrors={} oerrors={} rx_nombuf={}",
        sa.ipackets, sa.ibytes, sa.opackets, sa.obytes, sa.imissed, sa.ierrors, sa.oerrors, sa.rx_nombuf
    );
    let hw: Vec<(String, u64)> = pmd::xstats_by_name(p.a)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|(n, _)| n.starts_with("hw_"))
        .collect();
    println!(
        "XSTATS a {}",
        hw.iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    check_eq("a ipackets", sa.ipackets, rx_frames)?;
    check_eq("a ibytes", sa.ibytes, rx_bytes)?;
    check_eq("a opackets", sa.opackets, u64::from(N_TX))?;
    check_eq("a obytes", sa.obytes, tx_bytes_a)?;
    check_eq("a imissed", sa.imissed, 0)?;
    check_eq("a ierrors", sa.ierrors, 0)?;
    check_eq("a rx_nombuf", sa.rx_nombuf, 0)?;
    check_eq("a oerrors (the chained packet)", sa.oerrors, 1)?;
    check_eq("b opackets", sb.opackets, u64::from(N_TX))?;
    check_eq("b obytes", sb.obytes, tx_bytes_b)?;
    check_eq("b ipackets", sb.ipackets, 0)?;
    // Hardware: good packets, and octets from the destination address through the CRC
    // (4 bytes per frame; SDM 13.7.31/13.7.32).
    check_eq("a hw_gprc", xstat(p.a, "hw_gprc")?, rx_frames)?;
    check_eq(
        "a hw_gorc",
        xstat(p.a, "hw_gorc")?,
        rx_bytes + 4 * rx_frames,
    )?;
    check_eq("a hw_gptc", xstat(p.a, "hw_gptc")?, u64::from(N_TX))?;
    check_eq(
        "a hw_gotc",
        xstat(p.a, "hw_gotc")?,
        tx_bytes_a + 4 * u64::from(N_TX),
    )?;
    check_eq("b hw_gptc", xstat(p.b, "hw_gptc")?, u64::from(N_TX))?;
    check_eq(
        "b hw_gotc",
        xstat(p.b, "hw_gotc")?,
        tx_bytes_b + 4 * u64::from(N_TX),
    )?;
    check_eq("b hw_gprc", xstat(p.b, "hw_gprc")?, 0)?;
    check_eq("a hw_mpc", xstat(p.a, "hw_mpc")?, 0)?;
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
    let p = setup(eal)?;
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

/// Poll both NICs for `secs` seconds, checking the link every 100 ms. Returns Ok(true)
/// if the device went away (after checking that bursts then move nothing).
fn poll(eal: &Eal, secs: u64) -> Result<bool, String> {
    let p = setup(eal)?;
    println!("POLLING");
    let t0 = Instant::now();
    let mut last = Instant::now();
    let mut v = Vec::with_capacity(32);
    let mut gone = None;
    while t0.elapsed() < Duration::from_secs(secs) {
        for port in [p.a, p.b] {
            v.clear();
            pmd::rx_burst(port, 0, &mut v, 32);
        }
        if last.elapsed() > Duration::from_millis(100) {
            last = Instant::now();
            for port in [p.a, p.b] {
                let l = pmd::link_get(port).map_err(|e| e.to_string())?;
                if !l.up && xstat(port, "hw_device_gone")? == 1 {
                    gone = Some(port);
                }
            }
            if gone.is_some() {
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let Some(port) = gone else {
        close(p)?;
        return Ok(false);
    };
    // Bursts on the gone port move nothing, and a TX packet stays with the caller.
    v.clear();
    let rx = pmd::rx_burst(port, 0, &mut v, 32);
    let mut pkts = vec![Mbuf::alloc(&p.pool).ok_or("pool empty")?];
    pkts[0].append(60).map_err(|e| e.to_string())?.fill(0);
    let tx = pmd::tx_burst(port, 0, &mut pkts);
    println!("GONE port={port} rx={rx} tx={tx} kept={}", pkts.len());
    if rx != 0 || tx != 0 || pkts.len() != 1 {
        return Err("bursts on a gone device moved packets".into());
    }
    drop(pkts);
    drop(v);
    close(p)?;
    Ok(true)
}

/// The multi-process primary: both NICs set up and started, then left idle (no burst
/// here) while a secondary drives their queues; once the file `go` exists (the host
/// makes it after the secondary is gone), forward `n` frames A -> B on the same queues,
/// which go on where the secondary left them; close and check the pool.
fn mp_primary(eal: &Eal, go: &str, n: u64) -> Result<(), String> {
    let p = setup(eal)?;
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
    let (a, b) = by_mac(&ports, "attached port")?;
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
    let argv: Vec<String> = std::env::args().collect();
    let (eal, rest) = match Eal::init(&argv) {
        Ok(x) => x,
        Err(eal::Error::HelpRequested) => {
            println!("usage: fp-e1000test [EAL args] -- suite | fwd N | poll SECS | mp-primary GO N | mp-secondary N | mp-claim");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("fp-e1000test: {e}");
            return ExitCode::FAILURE;
        }
    };
    let num = |i: usize, what: &str| -> Result<u64, ExitCode> {
        rest.get(i).and_then(|s| s.parse().ok()).ok_or_else(|| {
            eprintln!("fp-e1000test: '{}' needs a number ({what})", rest[0]);
            ExitCode::from(2)
        })
    };
    // Ok(true): the device went away (poll).
    let r: Result<bool, String> = match rest.first().map(String::as_str) {
        Some("suite") => suite(&eal).map(|()| false),
        Some("fwd") => match num(1, "frames to forward") {
            Ok(n) => fwd(&eal, n).map(|()| false),
            Err(c) => return c,
        },
        Some("poll") => match num(1, "seconds") {
            Ok(s) => poll(&eal, s),
            Err(c) => return c,
        },
        Some("mp-primary") => match (rest.get(1), num(2, "frames to forward")) {
            (Some(go), Ok(n)) => mp_primary(&eal, go, n).map(|()| false),
            (_, Err(c)) => return c,
            (None, _) => return ExitCode::from(2),
        },
        Some("mp-secondary") => match num(1, "frames to forward") {
            Ok(n) => mp_secondary(&eal, n).map(|()| false),
            Err(c) => return c,
        },
        Some("mp-claim") => mp_claim(&eal).map(|()| false),
        other => {
            eprintln!("fp-e1000test: unknown command {other:?} (suite, fwd N, poll SECS, mp-primary GO N, mp-secondary N, mp-claim)");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = eal.cleanup() {
        eprintln!("fp-e1000test: EAL clean-up: {e}");
    }
    match r {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => {
            eprintln!("fp-e1000test: device gone; stopped cleanly");
            ExitCode::from(3)
        }
        Err(e) => fail(e),
    }
}
