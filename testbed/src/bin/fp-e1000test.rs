//! `fp-e1000test`: the guest half of the e1000 driver tests (`tests/e1000_guest.rs`), run
//! inside the QEMU testbed. It drives the two e1000 NICs (8086:100e) through the ethdev
//! API and the `net_e1000_em` driver while the host test feeds and reads the NICs'
//! datagram sockets. Progress lines (`READY`, `STEP1 OK`, ...) tell the host when to send.
//!
//! ```text
//! fp-e1000test [EAL args] -- suite   # RX (bytes), promiscuous off/on, TX, stats, mbufs
//! fp-e1000test [EAL args] -- fwd N   # forward N frames NIC A -> NIC B, rewriting MACs
//! fp-e1000test [EAL args] -- poll S  # poll for S seconds; exit 3 once the device goes away
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
use mbuf::Mbuf;
use testbed::frames::{
    test_frame, FOREIGN, FWD_DST, HOST, MAC_A, MAC_B, N_FOREIGN2, N_OWN1, N_OWN2, N_TX, S_FOREIGN1,
    S_FOREIGN2, S_OWN1, S_OWN2, S_TXA, S_TXB,
};
use testbed::nic::{
    self, check_eq, close, fail, receive_step, send_all, xstat, Want, STEP_TIMEOUT,
};

/// The two e1000s (8086:100e) of the testbed, one queue each.
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
    pmd::promiscuous_set(p.a, false).map_err(|e| e.to_string())?;
    let (own1, other1, bytes1) = receive_step(p.a, MAC_A, S_OWN1, N_OWN1, FOREIGN, S_FOREIGN1)?;
    if other1 != 0 {
        return Err(format!(
            "promiscuous off: {other1} frames to a foreign MAC were received"
        ));
    }
    println!("STEP1 OK own={own1} foreign={other1}");

    // 2. Promiscuous on: foreign frames arrive too.
    pmd::promiscuous_set(p.a, true).map_err(|e| e.to_string())?;
    println!("STEP2 READY");
    let (own2, other2, bytes2) = receive_step(p.a, MAC_A, S_OWN2, N_OWN2, FOREIGN, S_FOREIGN2)?;
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

/// Forward `n` frames from NIC A to NIC B, writing dst = 02:00:00:00:00:01 and src = B's
/// MAC (what l2fwd does), then close and check the pool.
fn fwd(eal: &Eal, n: u64) -> Result<(), String> {
    let p = nic::setup(eal, &WANT)?;
    let mac_b = pmd::mac_addr_get(p.b).map_err(|e| e.to_string())?;
    println!("FWD READY");
    let t0 = Instant::now();
    let mut done = 0u64;
    let mut v = Vec::with_capacity(32);
    while done < n {
        if t0.elapsed() > STEP_TIMEOUT {
            return Err(format!("forwarded {done} of {n}"));
        }
        if pmd::rx_burst(p.a, 0, &mut v, 32) == 0 && v.is_empty() {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        for m in v.iter_mut() {
            let d = m.try_data_mut().ok_or("received mbuf is shared")?;
            d[0..6].copy_from_slice(&FWD_DST);
            d[6..12].copy_from_slice(&mac_b);
        }
        done += u64::from(pmd::tx_burst(p.b, 0, &mut v));
    }
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
fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let (eal, rest) = match Eal::init(&argv) {
        Ok(x) => x,
        Err(eal::Error::HelpRequested) => {
            println!("usage: fp-e1000test [EAL args] -- suite | fwd N | poll SECS");
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
            Ok(s) => nic::poll(&eal, &WANT, "hw_device_gone", s),
            Err(c) => return c,
        },
        other => {
            eprintln!("fp-e1000test: unknown command {other:?} (suite, fwd N, poll SECS)");
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
