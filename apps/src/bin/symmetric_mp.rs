//! `symmetric_mp`: DPDK's `examples/multi_process/symmetric_mp`: N processes forward
//! between the same pairs of ports, each on its own queue pair, the ports spreading
//! flows over the queues (AF_PACKET fanout hash, TAP flow hash; RSS where the driver
//! has it).
//!
//! ```text
//! symmetric_mp [EAL options] -- --num-procs N --proc-id I [-p PORTMASK] [--mbufs N]
//!              [--run-s S]
//! ```
//!
//! * The primary (`--proc-type primary`, proc-id 0 as a rule) probes the `--vdev` ports,
//!   creates the pool `MProc_pktmbuf_pool` (per-lcore caches: every process needs lcore
//!   ids of its own, e.g. `--lcores 1@0` for a secondary), gives every port of the mask N RX and N TX queues and starts them.
//! * A secondary attaches to the primary's ports and claims RX and TX queue `proc-id`
//!   of each port of the mask (the primary's own queue is `proc-id` too).
//! * Every process forwards what queue I of port 2k receives to queue I of port 2k+1 and
//!   back, until stdin says `quit` or ends, `--run-s` seconds pass, or (a secondary) the
//!   primary exits. Then it prints `symmetric_mp I: port P rx=.. tx=.. drop=..` per port
//!   and `symmetric_mp I: forwarded F`. The primary then waits for the secondaries'
//!   queues to come back (released, or taken back from a dead process), closes the ports,
//!   waits until no secondary is attached, takes back the mbufs killed secondaries held
//!   (`pool: took back K mbufs ...`) and prints `pool: A/S mbufs free`.
//!
//! Exit status: 0 success, 1 mbufs missing, 2 bad arguments or setup error, 3 the
//! primary exited under a secondary.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferroplane_apps::{mp, mp_end};

use eal::Eal;
use mbuf::{pktmbuf_pool_create, Mbuf, PktmbufPool, MBUF_DEFAULT_BUF_SIZE};

const POOL: &str = "MProc_pktmbuf_pool";
/// Per-lcore cache of the pool. Besides speed it keeps a process's gets and puts off
/// the pool's shared ring in the steady state (a burst's allocations and frees balance in
/// the cache), so a process killed mid-burst is almost never inside a ring operation,
/// which would stall the ring for everyone (as in DPDK).
const CACHE: u32 = 128;
const BURST: u16 = 32;

struct Opts {
    num_procs: u16,
    proc_id: u16,
    mask: u64,
    mbufs: u32,
    run: Option<Duration>,
}

fn usage() -> String {
    mp::usage("symmetric_mp [EAL options] -- --num-procs N --proc-id I [-p PORTMASK] [--mbufs N] [--run-s S]")
}

fn parse(rest: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        num_procs: 0,
        proc_id: u16::MAX,
        mask: u64::MAX,
        mbufs: 4095,
        run: None,
    };
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--num-procs" => {
                o.num_procs = mp::value_u64(&mut it, a)?.min(u64::from(u16::MAX)) as u16
            }
            "--proc-id" => o.proc_id = mp::value_u64(&mut it, a)?.min(u64::from(u16::MAX)) as u16,
            "-p" => o.mask = mp::port_mask(it.next().ok_or("'-p' needs a value")?)?,
            "--mbufs" => o.mbufs = mp::value_u64(&mut it, a)?.min(1 << 24) as u32,
            "--run-s" => o.run = Some(Duration::from_secs(mp::value_u64(&mut it, a)?)),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if o.num_procs == 0 || o.num_procs as usize > pmd::MAX_QUEUES {
        return Err(format!(
            "invalid value '{}' for '--num-procs': need 1..={}",
            o.num_procs,
            pmd::MAX_QUEUES
        ));
    }
    if o.proc_id >= o.num_procs {
        return Err(format!(
            "invalid value '{}' for '--proc-id': need 0..{}",
            o.proc_id, o.num_procs
        ));
    }
    Ok(o)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let (eal, rest) = match mp::init_eal("symmetric_mp", &argv, usage) {
        Ok(x) => x,
        Err(c) => return c,
    };
    let o = match mp::app_args("symmetric_mp", parse(&rest)) {
        Ok(o) => o,
        Err(c) => return c,
    };
    match run(&eal, &o) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("symmetric_mp {}: {e}", o.proc_id);
            ExitCode::from(2)
        }
    }
}

/// The ports of the mask, in pairs.
fn pairs(eal: &Eal, o: &Opts) -> Result<Vec<u16>, String> {
    let ids = if eal.is_primary() {
        pmd::probe_vdevs(eal).map_err(|e| e.to_string())?
    } else {
        pmd::attach_secondary(eal).map_err(|e| e.to_string())?
    };
    mp::port_pairs(ids, o.mask)
}

fn setup_primary(o: &Opts, ports: &[u16], pool: &PktmbufPool) -> Result<(), String> {
    let n = o.num_procs;
    for &p in ports {
        let info = pmd::dev_info(p).map_err(|e| e.to_string())?;
        let mut conf = pmd::EthConf::default();
        if n > 1 && !info.flow_type_rss_offloads.is_empty() {
            conf.mq_mode = pmd::MqMode::Rss;
            conf.rss.hf = info.flow_type_rss_offloads;
        }
        pmd::configure(p, n, n, &conf).map_err(|e| e.to_string())?;
        for q in 0..n {
            let d = 512u16.clamp(info.rx_desc_lim.min, info.rx_desc_lim.max);
            pmd::rx_queue_setup(p, q, d, None, &pmd::RxConf::default(), pool)
                .map_err(|e| e.to_string())?;
            let d = 512u16.clamp(info.tx_desc_lim.min, info.tx_desc_lim.max);
            pmd::tx_queue_setup(p, q, d, None, &pmd::TxConf::default())
                .map_err(|e| e.to_string())?;
        }
        pmd::start(p).map_err(|e| e.to_string())?;
        let _ = pmd::promiscuous_set(p, true);
    }
    Ok(())
}

#[derive(Default, Clone, Copy)]
struct PortCount {
    rx: u64,
    tx: u64,
    drop: u64,
}

fn run(eal: &Eal, o: &Opts) -> Result<ExitCode, String> {
    let ports = pairs(eal, o)?;
    let id = o.proc_id;
    let pool = if eal.is_primary() {
        let p = pktmbuf_pool_create(eal, POOL, o.mbufs, CACHE, 0, MBUF_DEFAULT_BUF_SIZE, None)
            .map_err(|e| format!("failed to create the mbuf pool: {e}"))?;
        setup_primary(o, &ports, &p)?;
        p
    } else {
        let p = PktmbufPool::lookup(eal, POOL)
            .map_err(|e| format!("failed to look up the mbuf pool: {e}"))?;
        for &port in &ports {
            for rx in [true, false] {
                pmd::queue_claim(port, rx, id).map_err(|e| e.to_string())?;
            }
        }
        p
    };
    println!(
        "symmetric_mp {id}: forwarding on queue {id} of ports {ports:?} ({})",
        if eal.is_primary() {
            "primary"
        } else {
            "secondary"
        }
    );

    let stop = mp::stdin_stop("symmetric-stdin");
    let deadline = o.run.map(|d| Instant::now() + d);
    let mut counts = vec![PortCount::default(); ports.len()];
    let mut v: Vec<Mbuf> = Vec::with_capacity(BURST as usize);
    let mut primary_gone = false;
    let mut polls = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let mut moved = 0;
        for (i, &p) in ports.iter().enumerate() {
            let peer_i = i ^ 1;
            let n = pmd::rx_burst(p, id, &mut v, BURST);
            if n == 0 {
                continue;
            }
            moved += n;
            counts[i].rx += u64::from(n);
            let sent = pmd::tx_burst(ports[peer_i], id, &mut v);
            counts[peer_i].tx += u64::from(sent);
            counts[peer_i].drop += v.len() as u64;
            v.clear(); // frees what the TX ring did not take
        }
        polls = polls.wrapping_add(1);
        if moved == 0 || polls.is_multiple_of(1024) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            if !eal.is_primary() && !eal.primary_alive() {
                primary_gone = true;
                break;
            }
            if moved == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    let mut fwd = 0;
    for (i, &p) in ports.iter().enumerate() {
        let c = counts[i];
        fwd += c.tx;
        println!(
            "symmetric_mp {id}: port {p} rx={} tx={} drop={}",
            c.rx, c.tx, c.drop
        );
    }
    println!("symmetric_mp {id}: forwarded {fwd}");
    if primary_gone {
        println!("symmetric_mp {id}: the primary exited; stopping");
        return Ok(ExitCode::from(3));
    }
    if !eal.is_primary() {
        for &p in &ports {
            pmd::close(p).map_err(|e| e.to_string())?;
        }
        println!("symmetric_mp {id}: queues released");
        return Ok(ExitCode::SUCCESS);
    }
    finish_primary(eal, &ports, &pool)
}

/// Primary: wait for every secondary's queue to come back (released, or its process
/// gone), close the ports, wait for the secondaries to be gone, take back the mbufs dead
/// ones held, and check the pool.
fn finish_primary(eal: &Eal, ports: &[u16], pool: &PktmbufPool) -> Result<ExitCode, String> {
    let limit = Duration::from_secs(600);
    mp_end::close_ports("symmetric_mp 0", ports, limit)?;
    // SAFETY: forwarding has stopped with nothing in hand (every burst ends with its
    // vector cleared) and every port is closed.
    unsafe { mp_end::take_back_mbufs(eal, pool, limit) }?;
    let (a, s) = (pool.avail_count(), pool.size());
    println!("pool: {a}/{s} mbufs free");
    Ok(if a == s {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
