//! `l2fwd`: the layer-2 forwarding sample, as DPDK's `l2fwd`. Each enabled port's
//! packets leave on its paired port (1st↔2nd, 3rd↔4th enabled port, or `--portmap`; an
//! odd last port forwards to itself), with the MAC addresses rewritten: destination
//! `02:00:00:00:00:<TX port id>`, source the TX port's own MAC (`--no-mac-updating`
//! keeps them). Packets wait in a per-port TX buffer until it holds a burst (32) or
//! 100 µs have passed (`BURST_TX_DRAIN_US`, timed with the TSC); packets the TX queue
//! refuses are freed and counted as dropped.
//!
//! ```text
//! l2fwd [EAL options] -- -p PORTMASK [-q NQ] [-T PERIOD] [--[no-]mac-updating]
//!       [--portmap="(0,1),(2,3)"] [--max-packets N] [--run-time S]
//! ```
//!
//! * `-p`: hex mask of the ports to use (required).
//! * `-q`: RX ports polled per lcore (default 1). Ports go to lcores in id order, the
//!   main lcore included (it also prints the statistics).
//! * `-T`: statistics period in seconds (default 10, 0 disables).
//! * `--portmap`: explicit pairs of port ids.
//! * `--max-packets N` (ferroplane addition): stop once N packets were received on all
//!   ports together; TX buffers are drained first. `--run-time S` (addition): stop after
//!   S seconds. Both let scripts end a run without a signal.
//!
//! SIGINT/SIGTERM stop forwarding cleanly; the final statistics table is printed, ports
//! are closed, and the exit status is 0 (2 for a bad argument, 1 for other failures).
//! Falls back to `--no-huge` with a notice when hugepages are unusable.
//!
//! Ports: the `--vdev` devices first, then the PCI devices the EAL found (`-a`/`-b`),
//! in address order; a PCI device that fails to open is skipped with a warning line.

#[path = "testpmd/sig.rs"]
mod sig;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eal::{Eal, Error as EalError};
use mbuf::{pktmbuf_pool_create, Mbuf, MBUF_DEFAULT_BUF_SIZE};

const MAX_PKT_BURST: usize = 32;
const BURST_TX_DRAIN_US: u64 = 100;
const RX_DESC: u16 = 1024;
const TX_DESC: u16 = 1024;
const MEMPOOL_CACHE: u32 = 256;
const MAX_RX_PER_LCORE: u16 = 16;

#[derive(Debug, PartialEq)]
struct Opts {
    portmask: u64,
    nq: u16,
    period: u64,
    mac_updating: bool,
    portmap: Vec<(u16, u16)>,
    max_packets: Option<u64>,
    run_time: Option<Duration>,
}

fn usage() -> String {
    format!(
        "usage: l2fwd [EAL options] -- -p PORTMASK [-q NQ] [-T PERIOD] [--[no-]mac-updating]\n\
         \x20      [--portmap=\"(0,1),(2,3)\"] [--max-packets N] [--run-time S]\n\
         \x20 -p PORTMASK         hex mask of the ports to use\n\
         \x20 -q NQ               RX ports per lcore (default 1, at most {MAX_RX_PER_LCORE})\n\
         \x20 -T PERIOD           statistics every PERIOD seconds (default 10, 0 disables)\n\
         \x20 --[no-]mac-updating rewrite the MACs (default on)\n\
         \x20 --portmap=PAIRS     forwarding pairs, e.g. \"(0,1),(2,3)\"\n\
         \x20 --max-packets N     (ferroplane) stop after N packets received in all\n\
         \x20 --run-time S        (ferroplane) stop after S seconds\n\n{}",
        eal::args::usage()
    )
}

fn parse_portmap(v: &str) -> Result<Vec<(u16, u16)>, String> {
    let bad = || format!("invalid value '{v}' for --portmap: expected \"(A,B),(C,D)\"");
    let mut out = Vec::new();
    let mut rest = v.trim();
    while !rest.is_empty() {
        let r = rest.strip_prefix('(').ok_or_else(bad)?;
        let (inner, tail) = r.split_once(')').ok_or_else(bad)?;
        let (a, b) = inner.split_once(',').ok_or_else(bad)?;
        let a: u16 = a.trim().parse().map_err(|_| bad())?;
        let b: u16 = b.trim().parse().map_err(|_| bad())?;
        if usize::from(a.max(b)) >= pmd::MAX_PORTS {
            return Err(format!(
                "invalid value '{v}' for --portmap: port ids are 0..{}",
                pmd::MAX_PORTS
            ));
        }
        out.push((a, b));
        rest = tail.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        portmask: 0,
        nq: 1,
        period: 10,
        mac_updating: true,
        portmap: Vec::new(),
        max_packets: None,
        run_time: None,
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => match a {
                s if s.len() > 2 && s.starts_with('-') && !s.starts_with("--") => {
                    (s[..2].to_string(), Some(s[2..].to_string()))
                }
                s => (s.to_string(), None),
            },
        };
        match name.as_str() {
            "--mac-updating" | "--no-mac-updating" => {
                if inline.is_some() {
                    return Err(format!("invalid argument '{a}': {name} takes no value"));
                }
                o.mac_updating = name == "--mac-updating";
                continue;
            }
            "-h" | "--help" => return Err(String::new()),
            "-p" | "-q" | "-T" | "--portmap" | "--max-packets" | "--run-time" => {}
            _ => return Err(format!("unknown argument '{a}'")),
        }
        let v = match inline {
            Some(v) => v,
            None => {
                let v = args
                    .get(i)
                    .ok_or_else(|| format!("argument {name} needs a value"))?
                    .clone();
                i += 1;
                v
            }
        };
        let badv = |why: &str| format!("invalid value '{v}' for {name}: {why}");
        match name.as_str() {
            "-p" => {
                let h = v.trim_start_matches("0x").trim_start_matches("0X");
                o.portmask = u64::from_str_radix(h, 16).map_err(|_| badv("not a hex mask"))?;
                if o.portmask == 0 {
                    return Err(badv("no port selected"));
                }
            }
            "-q" => {
                o.nq = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_RX_PER_LCORE).contains(n))
                    .ok_or_else(|| badv(&format!("must be 1..={MAX_RX_PER_LCORE}")))?
            }
            "-T" => {
                o.period = v
                    .parse()
                    .ok()
                    .filter(|n| *n <= 86_400)
                    .ok_or_else(|| badv("seconds, 0..=86400"))?
            }
            "--portmap" => o.portmap = parse_portmap(&v)?,
            "--max-packets" => {
                o.max_packets = Some(
                    v.parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| badv("a count above 0"))?,
                )
            }
            "--run-time" => {
                let s: f64 = v.parse().map_err(|_| badv("seconds"))?;
                if !s.is_finite() || s <= 0.0 || s > 1e6 {
                    return Err(badv("seconds, more than 0"));
                }
                o.run_time = Some(Duration::from_secs_f64(s));
            }
            _ => unreachable!("filtered above"),
        }
    }
    if o.portmask == 0 {
        return Err("missing -p PORTMASK".into());
    }
    Ok(o)
}

/// Per-port counters: `rx` written by the lcore polling the port, `tx`/`dropped` by the
/// lcore sending on it (one each, as pairs are one-to-one). Relaxed: statistics only.
#[derive(Default)]
#[repr(align(64))]
struct PortStats {
    tx: AtomicU64,
    rx: AtomicU64,
    dropped: AtomicU64,
}

struct Shared {
    stats: Vec<PortStats>,
    stop: AtomicBool,
}

/// One RX port as an lcore sees it.
struct RxPort {
    port: u16,
    rx: pmd::RxQueue,
    /// Index of the destination's TX buffer in the lcore's list.
    dst: usize,
}

struct TxBuf {
    port: u16,
    tx: pmd::TxQueue,
    buf: Vec<Mbuf>,
    /// Destination MAC and source MAC written into forwarded packets.
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
}

struct LcoreWork {
    rx: Vec<RxPort>,
    tx: Vec<TxBuf>,
    mac_updating: bool,
    shared: Arc<Shared>,
}

fn flush(t: &mut TxBuf, st: &[PortStats]) {
    if t.buf.is_empty() {
        return;
    }
    let n = t.tx.tx_burst(&mut t.buf);
    let s = &st[usize::from(t.port)];
    s.tx.fetch_add(u64::from(n), Ordering::Relaxed);
    if !t.buf.is_empty() {
        s.dropped.fetch_add(t.buf.len() as u64, Ordering::Relaxed);
        Mbuf::free_bulk(t.buf.drain(..));
    }
}

impl LcoreWork {
    /// The main loop. `hook` runs every drain period on the main lcore; `true` stops.
    fn run(mut self, mut hook: Option<&mut dyn FnMut() -> bool>) -> i32 {
        let drain = eal::timer::tsc_hz().div_ceil(1_000_000) * BURST_TX_DRAIN_US;
        let mut prev = eal::timer::rdtsc();
        let mut pkts: Vec<Mbuf> = Vec::with_capacity(MAX_PKT_BURST);
        let st = &self.shared.stats;
        loop {
            let cur = eal::timer::rdtsc();
            if cur.wrapping_sub(prev) > drain {
                for t in self.tx.iter_mut() {
                    flush(t, st);
                }
                prev = cur;
                if let Some(h) = hook.as_mut() {
                    if h() {
                        self.shared.stop.store(true, Ordering::Relaxed);
                    }
                }
                // Relaxed: a stop request needs no data with it; the final counters are
                // read after wait_lcore.
                if self.shared.stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            for r in self.rx.iter_mut() {
                let n = r.rx.rx_burst(&mut pkts, MAX_PKT_BURST as u16);
                if n == 0 {
                    continue;
                }
                st[usize::from(r.port)]
                    .rx
                    .fetch_add(u64::from(n), Ordering::Relaxed);
                let t = &mut self.tx[r.dst];
                for mut m in pkts.drain(..) {
                    if self.mac_updating {
                        if let Some(d) = m.try_data_mut() {
                            if d.len() >= 12 {
                                d[0..6].copy_from_slice(&t.dst_mac);
                                d[6..12].copy_from_slice(&t.src_mac);
                            }
                        }
                    }
                    t.buf.push(m);
                    if t.buf.len() >= MAX_PKT_BURST {
                        flush(t, st);
                    }
                }
            }
        }
        for t in self.tx.iter_mut() {
            flush(t, st);
        }
        0
    }
}

fn print_stats(ports: &[u16], st: &[PortStats]) {
    use std::fmt::Write;
    let mut o = String::new();
    if sig::isatty(1) {
        o.push_str("\x1b[2J\x1b[1;1H");
    }
    let (mut tx, mut rx, mut dr) = (0u64, 0u64, 0u64);
    let _ = write!(o, "\nPort statistics ====================================");
    for &p in ports {
        let s = &st[usize::from(p)];
        let (t, r, d) = (
            s.tx.load(Ordering::Relaxed),
            s.rx.load(Ordering::Relaxed),
            s.dropped.load(Ordering::Relaxed),
        );
        let _ = write!(
            o,
            "\nStatistics for port {p} ------------------------------\nPackets sent: {t:>24}\nPackets received: {r:>20}\nPackets dropped: {d:>21}"
        );
        tx += t;
        rx += r;
        dr += d;
    }
    let _ = write!(
        o,
        "\nAggregate statistics ===============================\nTotal packets sent: {tx:>18}\nTotal packets received: {rx:>14}\nTotal packets dropped: {dr:>15}\n===================================================="
    );
    println!("{o}");
}

fn init_eal(argv: &[String]) -> Result<(Eal, Vec<String>), ExitCode> {
    match Eal::init_or_no_huge(argv) {
        Ok((eal, rest, fallback)) => {
            if let Some(why) = fallback {
                println!("l2fwd: no usable hugepages ({why}); falling back to --no-huge");
            }
            Ok((eal, rest))
        }
        Err(EalError::HelpRequested) => {
            print!("{}", usage());
            Err(ExitCode::SUCCESS)
        }
        Err(
            e @ (EalError::BadArg { .. } | EalError::UnknownArg(_) | EalError::MissingValue(_)),
        ) => {
            eprintln!("l2fwd: {e}");
            Err(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("l2fwd: failed to initialise the EAL: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let app_args: Vec<String> = argv
        .iter()
        .position(|a| a == "--")
        .map(|i| argv[i + 1..].to_vec())
        .unwrap_or_default();
    let opts = match parse(&app_args) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("l2fwd: {e}");
            return ExitCode::from(2);
        }
    };
    let (eal, _) = match init_eal(&argv) {
        Ok(r) => r,
        Err(c) => return c,
    };
    let _term = sig::TermGuard::save();
    if let Err(e) = sig::install() {
        eprintln!("l2fwd: failed to install the SIGINT/SIGTERM handler: {e}");
        return ExitCode::FAILURE;
    }
    match run(&eal, &opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("l2fwd: {e}");
            ExitCode::from(code)
        }
    }
}

type Fail = (u8, String);

fn f1(e: impl std::fmt::Display) -> Fail {
    (1, e.to_string())
}

/// Destination of every enabled port.
fn pairs(enabled: &[u16], portmap: &[(u16, u16)]) -> Result<Vec<(u16, u16)>, Fail> {
    if portmap.is_empty() {
        let mut out = Vec::new();
        for c in enabled.chunks(2) {
            match *c {
                [a, b] => out.extend([(a, b), (b, a)]),
                [a] => {
                    println!(
                        "Notice: odd number of ports in portmask: port {a} forwards to itself."
                    );
                    out.push((a, a));
                }
                _ => unreachable!("chunks of 2"),
            }
        }
        return Ok(out);
    }
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &(a, b) in portmap {
        for p in [a, b] {
            if !enabled.contains(&p) {
                return Err((
                    2,
                    format!("invalid value for --portmap: port {p} is not enabled in the portmask"),
                ));
            }
            if out.iter().any(|(s, _)| *s == p) {
                return Err((
                    2,
                    format!("invalid value for --portmap: port {p} appears twice"),
                ));
            }
        }
        out.push((a, b));
        if a != b {
            out.push((b, a));
        }
    }
    for &p in enabled {
        if !out.iter().any(|(s, _)| *s == p) {
            return Err((
                2,
                format!("invalid value for --portmap: enabled port {p} is in no pair"),
            ));
        }
    }
    Ok(out)
}

fn run(eal: &Eal, o: &Opts) -> Result<(), Fail> {
    let mut all = pmd::probe_vdevs(eal).map_err(|e| (2, e.to_string()))?;
    // PCI devices after the vdevs; one that cannot be opened is skipped with a warning
    // and the others still become ports.
    let (pci, failed) = pmd::probe_pci(eal);
    all.extend(pci);
    for e in failed {
        println!("l2fwd: warning: skipping a PCI device: {e}");
    }
    if all.is_empty() {
        return Err((
            1,
            "no Ethernet ports: bind a NIC to vfio-pci/uio_pci_generic (-a ADDR) or give a --vdev \
             (e.g. --vdev=net_af_packet0,iface=eth0)"
                .into(),
        ));
    }
    for bit in 0..64u16 {
        if o.portmask & (1 << bit) != 0 && !all.contains(&bit) {
            return Err((
                2,
                format!("invalid value for -p: port {bit} does not exist (ports: {all:?})"),
            ));
        }
    }
    let enabled: Vec<u16> = all
        .iter()
        .copied()
        .filter(|&p| p < 64 && o.portmask & (1 << p) != 0)
        .collect();
    let dst = pairs(&enabled, &o.portmap)?;
    let lcores = eal.lcores().lcore_ids();
    let need = enabled.len().div_ceil(usize::from(o.nq));
    if need > lcores.len() {
        return Err((
            2,
            format!(
                "{} ports at -q {} need {need} lcores, the EAL has {}",
                enabled.len(),
                o.nq,
                lcores.len()
            ),
        ));
    }
    let nb_mbufs = (enabled.len() as u32
        * (u32::from(RX_DESC)
            + u32::from(TX_DESC)
            + MAX_PKT_BURST as u32
            + lcores.len() as u32 * MEMPOOL_CACHE))
        .max(8192);
    let pool = pktmbuf_pool_create(
        eal,
        "mbuf_pool",
        nb_mbufs,
        MEMPOOL_CACHE,
        0,
        MBUF_DEFAULT_BUF_SIZE,
        None,
    )
    .map_err(f1)?;

    let mut macs = std::collections::HashMap::new();
    for &p in &enabled {
        println!("Initializing port {p}... ");
        pmd::configure(p, 1, 1, &pmd::EthConf::default()).map_err(f1)?;
        let info = pmd::dev_info(p).map_err(f1)?;
        let rxd = RX_DESC.clamp(info.rx_desc_lim.min, info.rx_desc_lim.max);
        let txd = TX_DESC.clamp(info.tx_desc_lim.min, info.tx_desc_lim.max);
        pmd::rx_queue_setup(p, 0, rxd, None, &pmd::RxConf::default(), &pool).map_err(f1)?;
        pmd::tx_queue_setup(p, 0, txd, None, &pmd::TxConf::default()).map_err(f1)?;
        pmd::start(p).map_err(f1)?;
        if let Err(e) = pmd::promiscuous_set(p, true) {
            println!("l2fwd: port {p}: promiscuous mode not set: {e}");
        }
        let mac = pmd::mac_addr_get(p).map_err(f1)?;
        println!(
            "Port {p}, MAC address: {}",
            pmd::fmt_mac(&mac).to_uppercase()
        );
        macs.insert(p, mac);
    }
    print!("\nChecking link status");
    for &p in &enabled {
        let l = pmd::link_wait_up(p, Duration::from_secs(3)).map_err(f1)?;
        print!(
            "\nPort {p} Link {}",
            if l.up {
                format!("up at {} Mbps", l.speed_mbps)
            } else {
                "down".into()
            }
        );
    }
    println!("\ndone");

    let shared = Arc::new(Shared {
        stats: (0..pmd::MAX_PORTS).map(|_| PortStats::default()).collect(),
        stop: AtomicBool::new(false),
    });
    // Ports to lcores, in id order, NQ per lcore.
    let mut works: Vec<(u32, LcoreWork)> = Vec::new();
    for (li, chunk) in enabled.chunks(usize::from(o.nq)).enumerate() {
        let lc = lcores[li];
        let mut w = LcoreWork {
            rx: Vec::new(),
            tx: Vec::new(),
            mac_updating: o.mac_updating,
            shared: shared.clone(),
        };
        for &p in chunk {
            let d = dst
                .iter()
                .find(|(s, _)| *s == p)
                .map(|(_, d)| *d)
                .expect("every enabled port has a pair");
            let ti = match w.tx.iter().position(|t| t.port == d) {
                Some(i) => i,
                None => {
                    w.tx.push(TxBuf {
                        port: d,
                        tx: pmd::tx_queue(d, 0).map_err(f1)?,
                        buf: Vec::with_capacity(MAX_PKT_BURST),
                        dst_mac: [0x02, 0, 0, 0, 0, d as u8],
                        src_mac: macs[&d],
                    });
                    w.tx.len() - 1
                }
            };
            w.rx.push(RxPort {
                port: p,
                rx: pmd::rx_queue(p, 0).map_err(f1)?,
                dst: ti,
            });
            println!("Lcore {lc}: RX port {p} TX port {d}");
        }
        works.push((lc, w));
    }

    // Launch the workers; the main lcore runs its own share (if any) and the control.
    let main = eal.lcores().main_lcore();
    let mut main_work = None;
    let mut launched = Vec::new();
    let mut launch_err = None;
    for (lc, w) in works {
        if lc == main {
            main_work = Some(w);
        } else if let Err(e) = eal.lcores().remote_launch(lc, move || w.run(None)) {
            launch_err = Some(format!("failed to launch lcore {lc}: {e}"));
            break;
        } else {
            launched.push(lc);
        }
    }
    let t0 = Instant::now();
    let period = Duration::from_secs(o.period);
    let mut next = t0 + period;
    let st = shared.clone();
    let ports = enabled.clone();
    let (max_packets, run_time) = (o.max_packets, o.run_time);
    let mut control = move || -> bool {
        let now = Instant::now();
        if !period.is_zero() && now >= next {
            print_stats(&ports, &st.stats);
            next = now + period;
        }
        if sig::quit_requested() {
            println!(
                "\n\nSignal {} received, preparing to exit...",
                sig::last_signal()
            );
            return true;
        }
        if let Some(m) = max_packets {
            let rx: u64 = ports
                .iter()
                .map(|&p| st.stats[usize::from(p)].rx.load(Ordering::Relaxed))
                .sum();
            if rx >= m {
                println!("\n\nReceived {rx} packets (--max-packets {m}), preparing to exit...");
                return true;
            }
        }
        if run_time.is_some_and(|r| now.duration_since(t0) >= r) {
            println!("\n\nRun time over, preparing to exit...");
            return true;
        }
        false
    };
    if launch_err.is_some() {
        shared.stop.store(true, Ordering::Relaxed);
    } else {
        match main_work {
            Some(w) => {
                w.run(Some(&mut control));
            }
            None => {
                while !control() {
                    std::thread::sleep(Duration::from_micros(BURST_TX_DRAIN_US));
                }
                shared.stop.store(true, Ordering::Relaxed);
            }
        }
    }
    let mut failed = launch_err;
    for lc in launched {
        match eal.lcores().wait_lcore(lc) {
            Ok(0) => {}
            Ok(rc) => failed = Some(format!("lcore {lc} returned {rc}")),
            Err(e) => failed = Some(format!("lcore {lc}: {e}")),
        }
    }
    print_stats(&enabled, &shared.stats);
    for &p in &enabled {
        print!("Closing port {p}...");
        pmd::stop(p).map_err(f1)?;
        pmd::close(p).map_err(f1)?;
        println!(" Done");
    }
    let (size, avail) = (pool.size(), pool.avail_count());
    if avail != size {
        println!(
            "Warning: {} of {size} mbufs not returned to pool 'mbuf_pool'",
            size - avail
        );
    }
    println!("Bye...");
    match failed {
        Some(e) => Err(f1(e)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Opts, String> {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options() {
        let o = p(&[
            "-p",
            "0x3",
            "-q",
            "2",
            "-T",
            "0",
            "--no-mac-updating",
            "--portmap=(0,1)",
            "--max-packets",
            "10",
        ])
        .unwrap();
        assert_eq!(o.portmask, 3);
        assert_eq!((o.nq, o.period, o.mac_updating), (2, 0, false));
        assert_eq!(o.portmap, vec![(0, 1)]);
        assert_eq!(o.max_packets, Some(10));
        let o = p(&["-pf", "-T5"]).unwrap();
        assert_eq!((o.portmask, o.period), (0xf, 5));
        assert_eq!(parse_portmap("(0,1),(2,3)").unwrap(), vec![(0, 1), (2, 3)]);
    }

    #[test]
    fn bad_options_name_themselves() {
        assert!(p(&[]).unwrap_err().contains("-p"));
        assert!(p(&["-p", "zz"]).unwrap_err().contains("-p"));
        assert!(p(&["-p", "3", "-q", "0"]).unwrap_err().contains("-q"));
        assert!(p(&["-p", "3", "--portmap=(0;1)"])
            .unwrap_err()
            .contains("--portmap"));
        assert!(p(&["-p", "3", "--bogus"]).unwrap_err().contains("--bogus"));
    }

    #[test]
    fn pairing() {
        assert_eq!(
            pairs(&[0, 1, 2, 3], &[]).unwrap(),
            vec![(0, 1), (1, 0), (2, 3), (3, 2)]
        );
        assert_eq!(
            pairs(&[0, 1, 2], &[]).unwrap(),
            vec![(0, 1), (1, 0), (2, 2)]
        );
        assert_eq!(
            pairs(&[0, 1, 2, 3], &[(0, 3), (1, 2)]).unwrap(),
            vec![(0, 3), (3, 0), (1, 2), (2, 1)]
        );
        assert!(pairs(&[0, 1], &[(0, 2)]).is_err());
        assert!(pairs(&[0, 1, 2], &[(0, 1)]).is_err());
    }
}
