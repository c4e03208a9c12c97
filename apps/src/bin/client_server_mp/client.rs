//! `mp_client`: a client of `mp_server` (DPDK's `examples/multi_process/client_server_mp`
//! client): a secondary process that takes mbufs from its ring `MProc_Client_RX_<id>`.
//! With a server in port mode (`mp_server -p`) it attaches to the server's ports, claims
//! TX queue `<id>` of each and transmits every packet on the port paired with the one it
//! came in on (2k ↔ 2k+1); it stops when the server is done and its ring is empty, gives
//! the queues back and prints `mp_client <id>: received R, transmitted T, dropped D`.
//! Otherwise it checks every payload (sequence number in order, client id, check word,
//! pattern), counts, and frees each mbuf back to the pool.
//!
//! ```text
//! mp_client [EAL options] -- -n CLIENT_ID
//! ```
//!
//! `--proc-type secondary` is implied. The pool has per-lcore caches, so the client must
//! run on lcore ids no other process of the group uses (`--lcores 1@0`); it refuses to
//! start otherwise. It stops when the server is done and its ring is empty, or when the
//! primary process dies.
//!
//! Exit status: 0 every mbuf of its share arrived intact, 1 payload errors or a missing
//! share, 2 bad arguments or setup error, 3 the primary process exited.

#[path = "common.rs"]
mod common;

use std::io::Write;
use std::process::ExitCode;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{Info, BURST, INFO, INFO_MAGIC, INFO_VERSION, POOL};
use ferroplane_apps::mp;

use eal::Eal;
use mbuf::{Mbuf, MbufHeader, PktmbufPool};
use ring::Ring;

fn usage() -> String {
    mp::usage("mp_client [EAL options] -- -n CLIENT_ID")
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().collect();
    mp::secondary_by_default(&mut argv);
    let (eal, rest) = match mp::init_eal("mp_client", &argv, usage) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let id = match mp::app_args(
        "mp_client",
        match rest.as_slice() {
            [n, v] if n == "-n" => v
                .parse::<u32>()
                .map_err(|_| format!("invalid value '{v}' for '-n': not a client number")),
            _ => Err("missing '-n CLIENT_ID'".to_string()),
        },
    ) {
        Ok(id) => id,
        Err(code) => return code,
    };
    match run(&eal, id) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("mp_client {id}: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(eal: &Eal, id: u32) -> Result<u8, String> {
    let pool = PktmbufPool::lookup(eal, POOL)
        .map_err(|e| format!("failed to find the mbuf pool (is mp_server running?): {e}"))?;
    if pool.mempool().cache_size() > 0 {
        let mine = eal.lcores().lcore_ids();
        for p in eal
            .processes()
            .iter()
            .filter(|p| p.pid != std::process::id() as i32)
        {
            if let Some(l) = p.lcores.iter().find(|l| mine.contains(l)) {
                return Err(format!(
                    "lcore {l} is also used by process {} ({:?}); the pool's caches are per lcore id, so give this client its own, e.g. --lcores {}@0",
                    p.pid,
                    p.role,
                    id + 1
                ));
            }
        }
    }
    let mz = eal
        .memzones()
        .lookup(INFO)
        .ok_or_else(|| format!("failed to find {INFO} (is mp_server running?)"))?;
    if (mz.len() as usize) < std::mem::size_of::<Info>() {
        return Err(format!("{INFO} is too small"));
    }
    // SAFETY: the memzone holds an Info (size checked; magic and version checked next);
    // every field another process changes is atomic.
    let info: &Info = unsafe { &*mz.as_ptr::<Info>() };
    if info.magic.load(Ordering::Acquire) != INFO_MAGIC || info.version != INFO_VERSION {
        return Err(format!("{INFO} has a bad magic or version"));
    }
    if id >= info.n_clients {
        return Err(format!(
            "client id {id} out of range: the server runs {} client(s)",
            info.n_clients
        ));
    }
    // SAFETY: the ring was created for u64 with a single consumer side; this process's
    // main thread is that one consumer (one client per id).
    let ring = unsafe { Ring::<u64>::lookup(eal, &common::ring_name(id)) }
        .map_err(|e| format!("failed to find my ring: {e}"))?;
    let gone = Arc::new(AtomicBool::new(false));
    let g2 = gone.clone();
    eal.on_primary_exit(move || g2.store(true, Ordering::Release));
    let stat = &info.clients[id as usize];
    stat.pid.store(std::process::id(), Ordering::Relaxed);
    if info.port_mode == 1 {
        return forward(eal, id, info, &ring, &gone);
    }
    println!(
        "mp_client {id}: attached to pid {}, receiving",
        eal.primary_pid()
    );
    let _ = std::io::stdout().flush();

    let mut raw = [0u64; BURST];
    let mut batch: Vec<Mbuf> = Vec::with_capacity(BURST);
    let (mut rx, mut errors, mut expect) = (0u64, 0u64, 0u64);
    loop {
        let n = ring.dequeue_burst(&mut raw).n as usize;
        if n == 0 {
            if info.is_done() && ring.empty() {
                break;
            }
            if gone.load(Ordering::Acquire) {
                eprintln!("mp_client {id}: the primary process exited; stopping after {rx} mbufs");
                return Ok(3);
            }
            std::thread::yield_now();
            continue;
        }
        for m in take_mbufs(&raw[..n]) {
            let Some(m) = m else {
                errors += 1;
                continue;
            };
            if let Err(why) = common::verify(m.data(), expect, id) {
                if errors < 5 {
                    eprintln!("mp_client {id}: {why}");
                }
                errors += 1;
            }
            expect += 1;
            batch.push(m);
        }
        rx += n as u64;
        Mbuf::free_bulk(batch.drain(..));
        stat.rx.store(rx, Ordering::Relaxed);
        stat.errors.store(errors, Ordering::Relaxed);
    }
    let sent = stat.sent.load(Ordering::Relaxed);
    stat.rx.store(rx, Ordering::Relaxed);
    stat.errors.store(errors, Ordering::Relaxed);
    // Release: pairs with the server's acquire; our frees happened before.
    stat.finished.store(1, Ordering::Release);
    println!("mp_client {id}: received {rx} of {sent} mbufs, {errors} errors");
    let _ = std::io::stdout().flush();
    Ok(if errors == 0 && rx == sent { 0 } else { 1 })
}

/// The mbufs behind the words `raw` just dequeued from this client's ring (`None` for
/// a null word).
fn take_mbufs(raw: &[u64]) -> impl Iterator<Item = Option<Mbuf>> + '_ {
    raw.iter().map(|&a| {
        let p = NonNull::new(a as *mut MbufHeader)?;
        // SAFETY: the server enqueued mbufs it gave up with `into_raw`, each once, to
        // this ring only; we are its single consumer and hold a handle to the pool.
        Some(unsafe { Mbuf::from_raw(p) })
    })
}

/// Port mode: transmit what the server hands us on the paired port, TX queue `id`.
fn forward(
    eal: &Eal,
    id: u32,
    info: &Info,
    ring: &Ring<u64>,
    gone: &AtomicBool,
) -> Result<u8, String> {
    let ports = pmd::attach_secondary(eal).map_err(|e| e.to_string())?;
    let q = id as u16;
    for &p in &ports {
        pmd::queue_claim(p, false, q).map_err(|e| e.to_string())?;
    }
    println!("mp_client {id}: transmitting on TX queue {q} of ports {ports:?}");
    let _ = std::io::stdout().flush();
    let stat = &info.clients[id as usize];
    let mut raw = [0u64; BURST];
    let mut out: Vec<Vec<Mbuf>> = (0..ports.len())
        .map(|_| Vec::with_capacity(BURST))
        .collect();
    // A client that takes over the id of one that died goes on with its counts.
    let (mut rx, mut tx, mut drops) = (
        stat.rx.load(Ordering::Relaxed),
        stat.tx.load(Ordering::Relaxed),
        stat.drops.load(Ordering::Relaxed),
    );
    loop {
        let n = ring.dequeue_burst(&mut raw).n as usize;
        if n == 0 {
            if info.is_done() && ring.empty() {
                break;
            }
            if gone.load(Ordering::Acquire) {
                eprintln!("mp_client {id}: the primary process exited; stopping after {rx} mbufs");
                return Ok(3);
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
            continue;
        }
        for m in take_mbufs(&raw[..n]) {
            let Some(m) = m else {
                drops += 1;
                continue;
            };
            // The paired port of the one it came in on; unknown ports drop it.
            match ports.iter().position(|&x| x == m.port()) {
                Some(i) => out[i ^ 1].push(m),
                None => drops += 1,
            }
        }
        rx += n as u64;
        for (i, v) in out.iter_mut().enumerate() {
            if v.is_empty() {
                continue;
            }
            tx += u64::from(pmd::tx_burst(ports[i], q, v));
            drops += v.len() as u64;
            v.clear();
        }
        stat.rx.store(rx, Ordering::Relaxed);
        stat.tx.store(tx, Ordering::Relaxed);
        stat.drops.store(drops, Ordering::Relaxed);
    }
    for &p in &ports {
        pmd::close(p).map_err(|e| e.to_string())?;
    }
    stat.rx.store(rx, Ordering::Relaxed);
    stat.tx.store(tx, Ordering::Relaxed);
    stat.drops.store(drops, Ordering::Relaxed);
    // Release: pairs with the server's acquire; our frees and queue release happened
    // before.
    stat.finished.store(1, Ordering::Release);
    println!("mp_client {id}: received {rx}, transmitted {tx}, dropped {drops}");
    let _ = std::io::stdout().flush();
    Ok(0)
}
