//! The steps the guest halves of the NIC tests share (`fp-e1000test`, `fp-virtiotest`):
//! find the two test NICs among the probed ports by MAC, set them up and start them,
//! receive a stream of test frames checking each byte for byte, send frames, read an
//! xstat, close the ports and check that every mbuf came back.
//!
//! Every function returns `Err(line)` for a failed check; the program prints it with
//! [`fail`] and exits 1.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use eal::Eal;
use mbuf::{Mbuf, PktmbufPool};
use pmd::{EthConf, RxConf, TxConf};

use crate::frames::{
    test_frame, FOREIGN, HOST, N_FOREIGN2, N_OWN1, N_OWN2, N_TX, S_FOREIGN1, S_FOREIGN2, S_OWN1,
    S_OWN2, S_TXA, S_TXB,
};

/// Descriptors per queue.
pub const NB_DESC: u16 = 256;
/// How long one step may wait for frames.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(90);

/// The `main` of the NIC programs: start the EAL (printing `usage` for `--help`), run
/// `cmd` on the arguments after `--` (`Err(code)`: bad arguments, already reported),
/// clean the EAL up, and map the outcome to the exit code: 0 passed, 1 a check failed
/// (the `FAIL` line says which), 3 the device went away (`Ok(true)`).
pub fn main(
    prog: &str,
    usage: &str,
    cmd: impl FnOnce(&Eal, &[String]) -> Result<Result<bool, String>, ExitCode>,
) -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let (eal, rest) = match Eal::init(&argv) {
        Ok(x) => x,
        Err(eal::Error::HelpRequested) => {
            println!("usage: {prog} [EAL args] -- {usage}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{prog}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = cmd(&eal, &rest);
    if let Err(e) = eal.cleanup() {
        eprintln!("{prog}: EAL clean-up: {e}");
    }
    match r {
        Err(code) => code,
        Ok(Ok(false)) => ExitCode::SUCCESS,
        Ok(Ok(true)) => {
            eprintln!("{prog}: device gone; stopped cleanly");
            ExitCode::from(3)
        }
        Ok(Err(e)) => fail(e),
    }
}

/// Argument `i` of `rest` as a number (`what` names it), or exit code 2 with a message.
pub fn arg_num(prog: &str, rest: &[String], i: usize, what: &str) -> Result<u64, ExitCode> {
    rest.get(i).and_then(|s| s.parse().ok()).ok_or_else(|| {
        eprintln!("{prog}: '{}' needs a number ({what})", rest[0]);
        ExitCode::from(2)
    })
}

/// Print the failed check (`FAIL <msg>`, which the host test shows) and exit 1.
pub fn fail(msg: String) -> ExitCode {
    println!("FAIL {msg}");
    ExitCode::FAILURE
}

/// The two test NICs, started, and the pool their RX queues take mbufs from.
pub struct Ports {
    pub a: u16,
    pub b: u16,
    pub pool: PktmbufPool,
}

/// What [`setup`] looks for and how it sets the ports up.
pub struct Want<'a> {
    /// Driver name the ports must have.
    pub driver: &'a str,
    /// MACs of NIC A and NIC B.
    pub macs: [[u8; 6]; 2],
    /// Pool name and size.
    pub pool: (&'a str, u32),
    /// Queue pairs per port at most (fewer if the device has fewer).
    pub max_pairs: u16,
}

/// NIC A and NIC B among `ports` (ports of `w.driver` only), by MAC; prints one line
/// per port starting with `what`.
pub fn by_mac(
    ports: &[u16],
    w: &Want<'_>,
    what: &str,
) -> Result<(Option<u16>, Option<u16>), String> {
    let (mut a, mut b) = (None, None);
    for &p in ports {
        let mac = pmd::mac_addr_get(p).map_err(|e| e.to_string())?;
        let info = pmd::dev_info(p).map_err(|e| e.to_string())?;
        println!(
            "{what} {p} {} driver={} mac={} max_rx_queues={}",
            info.device_name,
            info.driver_name,
            pmd::fmt_mac(&mac),
            info.max_rx_queues
        );
        if info.driver_name != w.driver {
            continue;
        }
        if mac == w.macs[0] {
            a = Some(p);
        } else if mac == w.macs[1] {
            b = Some(p);
        }
    }
    Ok((a, b))
}

/// Probe the PCI ports, pick NIC A and B by MAC, make the pool, and set up and start
/// both with `max_pairs` queue pairs (capped by the device), waiting for link up.
pub fn setup(eal: &Eal, w: &Want<'_>) -> Result<Ports, String> {
    let (ports, failed) = pmd::probe_pci(eal);
    if let Some(e) = failed.first() {
        return Err(format!("probe: {e}"));
    }
    let (a, b) = by_mac(&ports, w, "port")?;
    let (Some(a), Some(b)) = (a, b) else {
        return Err(format!(
            "need the two testbed {} NICs ({} and {}); probed ports {ports:?}",
            w.driver,
            pmd::fmt_mac(&w.macs[0]),
            pmd::fmt_mac(&w.macs[1])
        ));
    };
    let pool = mbuf::pktmbuf_pool_create(
        eal,
        w.pool.0,
        w.pool.1,
        32,
        0,
        mbuf::MBUF_DEFAULT_BUF_SIZE,
        None,
    )
    .map_err(|e| format!("pool: {e}"))?;
    for p in [a, b] {
        let pairs = pmd::dev_info(p)
            .map_err(|e| e.to_string())?
            .max_rx_queues
            .min(w.max_pairs);
        let l = start_port(p, pairs, &pool, Duration::from_secs(10))?;
        println!(
            "port {p} link up speed={} full_duplex={} pairs={pairs}",
            l.speed_mbps, l.full_duplex
        );
    }
    Ok(Ports { a, b, pool })
}

/// Configure `port` with `pairs` queue pairs (RX queues taking mbufs from `pool`),
/// start it and wait up to `link_wait` for its link.
pub fn start_port(
    port: u16,
    pairs: u16,
    pool: &PktmbufPool,
    link_wait: Duration,
) -> Result<pmd::Link, String> {
    pmd::configure(port, pairs, pairs, &EthConf::default()).map_err(|e| e.to_string())?;
    for q in 0..pairs {
        pmd::rx_queue_setup(port, q, NB_DESC, None, &RxConf::default(), pool)
            .map_err(|e| e.to_string())?;
        pmd::tx_queue_setup(port, q, NB_DESC, None, &TxConf::default())
            .map_err(|e| e.to_string())?;
    }
    pmd::start(port).map_err(|e| e.to_string())?;
    let l = pmd::link_wait_up(port, link_wait).map_err(|e| e.to_string())?;
    if !l.up {
        return Err(format!("port {port}: link did not come up: {l:?}"));
    }
    Ok(l)
}

/// Stop and close both ports; every mbuf must be back in the pool, which is freed.
pub fn close(p: Ports) -> Result<(), String> {
    for port in [p.a, p.b] {
        pmd::stop(port).map_err(|e| e.to_string())?;
        pmd::close(port).map_err(|e| e.to_string())?;
    }
    free_pool(p.pool)
}

/// Check that every mbuf is back in `pool`, then free it.
pub fn free_pool(pool: PktmbufPool) -> Result<(), String> {
    let (avail, size) = (pool.avail_count(), pool.size());
    println!("pool avail={avail} size={size}");
    if avail != size {
        return Err(format!("{} mbufs not returned to the pool", size - avail));
    }
    pool.free().map_err(|e| format!("free the pool: {e}"))
}

/// Receive on queue 0 of `port` until `own` frames of stream `own_stream` (sent to
/// `mac`) arrived; the host sends the other stream's frames (to `other_mac`) before the
/// last own frame, so by then every frame the NIC accepted has arrived, and nothing may
/// follow. Checks every frame byte for byte; returns (own, other, bytes).
pub fn receive_step(
    port: u16,
    mac: [u8; 6],
    own_stream: u8,
    own: u32,
    other_mac: [u8; 6],
    other_stream: u8,
) -> Result<(u32, u32, u64), String> {
    let t0 = Instant::now();
    let mut seen_own = vec![false; own as usize];
    let (mut n_own, mut n_other, mut bytes) = (0u32, 0u32, 0u64);
    let mut v = Vec::with_capacity(32);
    while n_own < own {
        if t0.elapsed() > STEP_TIMEOUT {
            return Err(format!(
                "stream {own_stream}: {n_own} of {own} frames after {STEP_TIMEOUT:?}"
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
            let dst = if stream == own_stream { mac } else { other_mac };
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

/// Poll both ports of `w` for `secs` seconds, checking the link every 100 ms; once a
/// port is down with its driver's "device gone" xstat (`gone_xstat`) at 1, check that
/// bursts on it move nothing (a TX packet stays with the caller) and return `true`
/// (`GONE` line); `false` if nothing went away.
pub fn poll(eal: &Eal, w: &Want<'_>, gone_xstat: &str, secs: u64) -> Result<bool, String> {
    let p = setup(eal, w)?;
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
                if !l.up && xstat(port, gone_xstat)? == 1 {
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

/// Send `frames` on queue 0 of `port`, retrying while the queue is full.
pub fn send_all(port: u16, frames: &[Vec<u8>], pool: &PktmbufPool) -> Result<(), String> {
    send_all_on(port, 0, frames, pool)
}

/// Send `frames` on queue `queue` of `port`, retrying while the queue is full.
pub fn send_all_on(
    port: u16,
    queue: u16,
    frames: &[Vec<u8>],
    pool: &PktmbufPool,
) -> Result<(), String> {
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
        if pmd::tx_burst(port, queue, &mut pkts) == 0 {
            if t0.elapsed() > STEP_TIMEOUT {
                return Err(format!(
                    "port {port} queue {queue}: {} frames not taken by tx_burst",
                    pkts.len()
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    Ok(())
}

/// The extended statistic `name` of `port`.
pub fn xstat(port: u16, name: &str) -> Result<u64, String> {
    let x = pmd::xstats_by_name(port).map_err(|e| e.to_string())?;
    x.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| format!("no xstat {name}"))
}

/// A failed check unless `got == want`.
pub fn check_eq(what: &str, got: u64, want: u64) -> Result<(), String> {
    if got != want {
        return Err(format!("{what}: {got}, expected {want}"));
    }
    Ok(())
}

/// Steps 1 and 2 of the suites, on NIC A (MAC `mac`): with promiscuous mode off, own
/// frames (stream [`S_OWN1`]) arrive intact and foreign ones ([`S_FOREIGN1`]) are
/// filtered; with it on, the foreign frames ([`S_FOREIGN2`]) arrive too. Leaves
/// promiscuous mode on; returns the frames and bytes received.
pub fn promisc_steps(p: &Ports, mac: [u8; 6]) -> Result<(u32, u64), String> {
    pmd::promiscuous_set(p.a, false).map_err(|e| e.to_string())?;
    let (own1, other1, bytes1) = receive_step(p.a, mac, S_OWN1, N_OWN1, FOREIGN, S_FOREIGN1)?;
    if other1 != 0 {
        return Err(format!(
            "promiscuous off: {other1} frames to a foreign MAC were received"
        ));
    }
    println!("STEP1 OK own={own1} foreign={other1}");
    pmd::promiscuous_set(p.a, true).map_err(|e| e.to_string())?;
    println!("STEP2 READY");
    let (own2, other2, bytes2) = receive_step(p.a, mac, S_OWN2, N_OWN2, FOREIGN, S_FOREIGN2)?;
    check_eq(
        "promiscuous on: foreign frames received",
        u64::from(other2),
        u64::from(N_FOREIGN2),
    )?;
    println!("STEP2 OK own={own2} foreign={other2}");
    Ok((own1 + own2 + other2, bytes1 + bytes2))
}

/// The TX step of the suites: a two-segment packet on A, which the driver does not take
/// apart (consumed, dropped, counted as an error, nothing sent), then [`N_TX`] test
/// frames out of each NIC (streams [`S_TXA`] and [`S_TXB`], sources `macs`). Returns the
/// bytes sent on A and on B.
pub fn tx_step(p: &Ports, macs: [[u8; 6]; 2]) -> Result<(u64, u64), String> {
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
    let mut bytes = [0u64; 2];
    for (i, (port, stream)) in [(p.a, S_TXA), (p.b, S_TXB)].into_iter().enumerate() {
        let frames: Vec<Vec<u8>> = (0..N_TX)
            .map(|s| test_frame(HOST, macs[i], stream, s))
            .collect();
        send_all(port, &frames, &p.pool)?;
        bytes[i] = frames.iter().map(|f| f.len() as u64).sum();
    }
    Ok((bytes[0], bytes[1]))
}

/// The statistics step of the suites, once the last frames had time to leave: A
/// received `rx_frames` frames of `rx_bytes` bytes and sent [`N_TX`] frames of
/// `tx_bytes.0` bytes plus the dropped chained packet (one error); B sent `N_TX` of
/// `tx_bytes.1` and received nothing. Prints A's stats and its xstats whose names start
/// with `xstat_prefix`. Returns A's stats for the driver's own checks.
pub fn check_stats(
    p: &Ports,
    rx_frames: u64,
    rx_bytes: u64,
    tx_bytes: (u64, u64),
    xstat_prefix: &str,
) -> Result<pmd::EthStats, String> {
    std::thread::sleep(Duration::from_millis(500));
    let sa = pmd::stats_get(p.a).map_err(|e| e.to_string())?;
    let sb = pmd::stats_get(p.b).map_err(|e| e.to_string())?;
    println!(
        "STATS a ipackets={} ibytes={} opackets={} obytes={} imissed={} ierrors={} oerrors={} rx_nombuf={}",
        sa.ipackets, sa.ibytes, sa.opackets, sa.obytes, sa.imissed, sa.ierrors, sa.oerrors, sa.rx_nombuf
    );
    println!(
        "XSTATS a {}",
        pmd::xstats_by_name(p.a)
            .map_err(|e| e.to_string())?
            .iter()
            .filter(|(n, _)| n.starts_with(xstat_prefix))
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    check_eq("a ipackets", sa.ipackets, rx_frames)?;
    check_eq("a ibytes", sa.ibytes, rx_bytes)?;
    check_eq("a opackets", sa.opackets, u64::from(N_TX))?;
    check_eq("a obytes", sa.obytes, tx_bytes.0)?;
    check_eq("a ierrors", sa.ierrors, 0)?;
    check_eq("a rx_nombuf", sa.rx_nombuf, 0)?;
    check_eq("a oerrors (the chained packet)", sa.oerrors, 1)?;
    check_eq("b opackets", sb.opackets, u64::from(N_TX))?;
    check_eq("b obytes", sb.obytes, tx_bytes.1)?;
    check_eq("b ipackets", sb.ipackets, 0)?;
    Ok(sa)
}
