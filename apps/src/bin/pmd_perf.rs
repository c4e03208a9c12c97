//! `pmd_perf`: io forwarding between the ports made from the `--vdev` arguments, on one
//! core, measured the way DPDK's `testpmd --forward-mode=io` runs: each stream receives a
//! burst on port i and sends it on port i^1 (ports paired 0-1, 2-3, ...), packets the TX
//! side does not take are freed. `--tx-first` primes every port with one TX burst (as
//! testpmd's `--tx-first`), which is what keeps packets circulating for ports that
//! produce none themselves (net_ring loopback, AF_PACKET over a veth pair).
//!
//! Usage: `pmd_perf [EAL options incl. --vdev ...] -- [--seconds S] [--burst B]
//! [--tx-first] [--nb-mbuf N]`. Prints one line per second (`rx-pps`) and a final
//! `pmd_perf: ports=P forwarded=N seconds=S mpps=X` (forwarded = packets sent on all
//! ports; for null ports this equals those received). Build with `--release`.
//!
//! Examples:
//!   pmd_perf --no-huge -l 1 --vdev net_null0 --vdev net_null1 -- --seconds 5
//!   pmd_perf --no-huge -l 1 --vdev net_ring0 --vdev net_ring1 -- --seconds 5 --tx-first
//!   ip netns exec NS pmd_perf --no-huge -l 1 --vdev net_af_packet0,iface=veth0
//!       --vdev net_af_packet1,iface=veth1 -- --seconds 5 --tx-first

use std::process::ExitCode;
use std::time::{Duration, Instant};

use eal::Eal;
use mbuf::{pktmbuf_pool_create, Mbuf, MBUF_DEFAULT_BUF_SIZE};

struct Opts {
    seconds: f64,
    burst: u16,
    tx_first: bool,
    nb_mbuf: u32,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        seconds: 5.0,
        burst: 32,
        tx_first: false,
        nb_mbuf: 8191,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--seconds" => {
                o.seconds = val("--seconds")?
                    .parse()
                    .map_err(|_| "--seconds: not a number".to_string())?
            }
            "--burst" => {
                o.burst = val("--burst")?
                    .parse()
                    .map_err(|_| "--burst: not a number 1..=512".to_string())?
            }
            "--nb-mbuf" => {
                o.nb_mbuf = val("--nb-mbuf")?
                    .parse()
                    .map_err(|_| "--nb-mbuf: not a number".to_string())?
            }
            "--tx-first" => o.tx_first = true,
            x => {
                return Err(format!(
                    "unknown argument '{x}' (see the usage in the source header)"
                ))
            }
        }
    }
    if !o.seconds.is_finite() || o.seconds <= 0.0 || o.burst == 0 || o.burst > 512 {
        return Err("--seconds must be > 0 and --burst in 1..=512".into());
    }
    Ok(o)
}

fn run() -> Result<(), String> {
    let argv: Vec<String> = std::env::args().collect();
    let (eal, rest) = Eal::init(&argv).map_err(|e| format!("EAL: {e}"))?;
    let o = parse(&rest)?;
    let ports = pmd::probe_vdevs(&eal).map_err(|e| e.to_string())?;
    if ports.len() < 2 || ports.len() % 2 != 0 {
        return Err(format!(
            "give an even number (>= 2) of --vdev ports, got {}",
            ports.len()
        ));
    }
    let pool = pktmbuf_pool_create(
        &eal,
        "pmd_perf",
        o.nb_mbuf,
        256,
        0,
        MBUF_DEFAULT_BUF_SIZE,
        None,
    )
    .map_err(|e| e.to_string())?;
    for &p in &ports {
        pmd::configure(p, 1, 1, &pmd::EthConf::default()).map_err(|e| e.to_string())?;
        pmd::rx_queue_setup(p, 0, 1024, None, &pmd::RxConf::default(), &pool)
            .map_err(|e| e.to_string())?;
        pmd::tx_queue_setup(p, 0, 1024, None, &pmd::TxConf::default())
            .map_err(|e| e.to_string())?;
        pmd::start(p).map_err(|e| e.to_string())?;
        let _ = pmd::link_wait_up(p, Duration::from_secs(2));
        pmd::promiscuous_set(p, true).map_err(|e| e.to_string())?;
    }
    let mut rxq: Vec<pmd::RxQueue> = ports
        .iter()
        .map(|&p| pmd::rx_queue(p, 0))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let mut txq: Vec<pmd::TxQueue> = ports
        .iter()
        .map(|&p| pmd::tx_queue(p, 0))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if o.tx_first {
        for t in txq.iter_mut() {
            let mut v: Vec<Mbuf> = Vec::new();
            for i in 0..o.burst {
                let Some(mut m) = Mbuf::alloc(&pool) else {
                    break;
                };
                if let Ok(d) = m.append(64) {
                    d.fill(0);
                    d[..6].copy_from_slice(&[0xff; 6]);
                    d[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, i as u8]);
                    d[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
                }
                v.push(m);
            }
            t.tx_burst(&mut v);
        }
    }
    let n = ports.len();
    let mut bufs: Vec<Vec<Mbuf>> = (0..n)
        .map(|_| Vec::with_capacity(o.burst as usize * 2))
        .collect();
    let mut fwd = 0u64;
    let mut last_fwd = 0u64;
    let t0 = Instant::now();
    let mut tick = t0;
    let end = t0 + Duration::from_secs_f64(o.seconds);
    loop {
        for _ in 0..1024 {
            for i in 0..n {
                let b = &mut bufs[i];
                if rxq[i].rx_burst(b, o.burst) == 0 {
                    continue;
                }
                fwd += u64::from(txq[i ^ 1].tx_burst(b));
                // io forward drops what TX refused, as testpmd does
                b.clear();
            }
        }
        let now = Instant::now();
        if now.duration_since(tick) >= Duration::from_secs(1) {
            let dt = now.duration_since(tick).as_secs_f64();
            println!("rx-pps: {:.0}", (fwd - last_fwd) as f64 / dt);
            last_fwd = fwd;
            tick = now;
        }
        if now >= end {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    drop((rxq, txq));
    let mut st = Vec::new();
    for &p in &ports {
        st.push(pmd::stats_get(p).map_err(|e| e.to_string())?);
        pmd::close(p).map_err(|e| e.to_string())?;
    }
    for (p, s) in ports.iter().zip(&st) {
        println!(
            "port {p}: ipackets={} opackets={} imissed={} oerrors={} rx_nombuf={}",
            s.ipackets, s.opackets, s.imissed, s.oerrors, s.rx_nombuf
        );
    }
    println!(
        "pmd_perf: ports={n} forwarded={fwd} seconds={secs:.3} mpps={:.3}",
        fwd as f64 / secs / 1e6
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pmd_perf: {e}");
            ExitCode::FAILURE
        }
    }
}
