//! `mp_server`: the server of DPDK's `examples/multi_process/client_server_mp`. With
//! `-p PORTMASK` it receives from real ports (`--vdev`) and hands the packets to the
//! clients, which transmit them (see `server_ports.rs`). Without ports it creates a
//! packet-mbuf pool and one ring per client, then hands mbufs it made to the clients
//! round-robin (bursts of 32). Every mbuf carries a 64-byte payload with a
//! per-client sequence number and a check pattern (see `common.rs`); clients verify and
//! free them back to the pool.
//!
//! ```text
//! mp_server [EAL options] -- -n CLIENTS [--mbufs TOTAL] [--pool-size N] [--ring-size N]
//!                            [--wait-s S]
//! mp_server [EAL options] --vdev ... -- -n CLIENTS -p PORTMASK [--run-s S] [...]
//! ```
//!
//! With `--mbufs 0` (the default) it runs until killed. With a total it stops sending
//! after that many, waits (up to `--wait-s`, default 600) until every client has
//! received its share, and checks that every mbuf is back in the pool. It prints one
//! line per client and `pool: <avail>/<size> mbufs free`.
//!
//! Clients use the pool's per-lcore caches, so each process needs its own lcore ids
//! (server `-l 0`, clients `--lcores 1@0`, `--lcores 2@1`, ...).
//!
//! Exit status: 0 success, 1 a client reported errors, mbufs are missing, or the wait
//! timed out, 2 bad arguments or setup error.

#[path = "common.rs"]
mod common;
#[path = "server_ports.rs"]
mod server_ports;

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Info, BURST, INFO, INFO_MAGIC, INFO_VERSION, MAX_CLIENTS, PAYLOAD, POOL};
use ferroplane_apps::mp;

use eal::{Eal, MemzoneFlags};
use mbuf::Mbuf;
use ring::{Ring, RingFlags};

struct Opts {
    clients: u32,
    total: u64,
    pool_size: u32,
    ring_size: u32,
    wait: Duration,
    /// `-p`: port mode over the ports of this mask.
    mask: Option<u64>,
    /// `--run-s`: port mode stops after this long (else at stdin's `quit` or end).
    run: Option<Duration>,
}

fn usage() -> String {
    mp::usage("mp_server [EAL options] -- -n CLIENTS [--mbufs TOTAL] [--pool-size N] [--ring-size N] [--wait-s S] [-p PORTMASK [--run-s S]]")
}

fn parse(rest: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        clients: 0,
        total: 0,
        pool_size: 8191,
        ring_size: 1024,
        wait: Duration::from_secs(600),
        mask: None,
        run: None,
    };
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| mp::value_u64(&mut it, name);
        match a.as_str() {
            "-n" => o.clients = val("-n")? as u32,
            "--mbufs" => o.total = val("--mbufs")?,
            "--pool-size" => o.pool_size = val("--pool-size")? as u32,
            "--ring-size" => o.ring_size = val("--ring-size")? as u32,
            "--wait-s" => o.wait = Duration::from_secs(val("--wait-s")?),
            "--run-s" => o.run = Some(Duration::from_secs(val("--run-s")?)),
            "-p" => o.mask = Some(mp::port_mask(it.next().ok_or("'-p' needs a value")?)?),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if o.clients == 0 || o.clients as usize > MAX_CLIENTS {
        return Err(format!(
            "invalid value '{}' for '-n': need 1..={MAX_CLIENTS} clients",
            o.clients
        ));
    }
    Ok(o)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let (eal, rest) = match mp::init_eal("mp_server", &argv, usage) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let o = match mp::app_args("mp_server", parse(&rest)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if !eal.is_primary() {
        eprintln!("mp_server: must be the primary process (drop --proc-type secondary)");
        return ExitCode::from(2);
    }
    let r = match o.mask {
        Some(mask) => server_ports::run(&eal, &o, mask),
        None => run(&eal, &o),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("mp_server: {e}");
            ExitCode::from(2)
        }
    }
}

struct Client {
    ring: Ring<u64>,
    /// Mbufs of this client not yet enqueued (raw, owned by us), FIFO.
    pending: Vec<u64>,
    next_seq: u64,
    quota: u64,
}

/// What the server and its clients share: the pool, the `MProc_info` block (its magic
/// stored last, so clients see it whole) and one ring per client, single producer (the
/// server's main thread) and single consumer (client `i`'s main thread).
pub(crate) fn shared_objects(
    eal: &Eal,
    o: &Opts,
    port_mode: bool,
) -> Result<(mbuf::PktmbufPool, &'static Info, Vec<Ring<u64>>), String> {
    let pool = mbuf::pktmbuf_pool_create(
        eal,
        POOL,
        o.pool_size,
        256,
        0,
        mbuf::MBUF_DEFAULT_BUF_SIZE,
        None,
    )
    .map_err(|e| format!("failed to create mbuf pool {POOL}: {e}"))?;
    let mz = eal
        .memzones()
        .reserve(
            INFO,
            std::mem::size_of::<Info>(),
            None,
            MemzoneFlags::empty(),
        )
        .map_err(|e| format!("failed to reserve {INFO}: {e}"))?;
    let info_ptr = mz.as_ptr::<Info>();
    // SAFETY: a fresh memzone of size_of::<Info>() bytes, 64-aligned; all-zero is a valid
    // Info (atomics and integers); nobody else knows it before the magic is stored. The
    // server never frees the memzone, so it stays mapped for the life of the process.
    let info: &'static Info = unsafe {
        std::ptr::write_bytes(info_ptr, 0, 1);
        (*info_ptr).version = INFO_VERSION;
        (*info_ptr).n_clients = o.clients;
        (*info_ptr).port_mode = u32::from(port_mode);
        &*info_ptr
    };
    let mut rings = Vec::new();
    for i in 0..o.clients {
        // SAFETY: single producer = this thread only; single consumer = the one client
        // process `i` (its main thread), as documented; T = u64 on both sides.
        let ring = unsafe {
            Ring::<u64>::create(
                eal,
                &common::ring_name(i),
                o.ring_size,
                None,
                RingFlags::SP_ENQ | RingFlags::SC_DEQ,
            )
        }
        .map_err(|e| format!("failed to create ring for client {i}: {e}"))?;
        rings.push(ring);
    }
    // Release: pairs with the clients' acquire load of the magic.
    info.magic.store(INFO_MAGIC, Ordering::Release);
    Ok((pool, info, rings))
}

fn run(eal: &Eal, o: &Opts) -> Result<bool, String> {
    let (pool, info, rings) = shared_objects(eal, o, false)?;
    let clients: Vec<Client> = rings
        .into_iter()
        .zip(0u64..)
        .map(|(ring, i)| Client {
            ring,
            pending: Vec::with_capacity(BURST),
            next_seq: 0,
            quota: if o.total == 0 {
                u64::MAX
            } else {
                o.total / u64::from(o.clients) + u64::from(i < o.total % u64::from(o.clients))
            },
        })
        .collect();
    let mut clients = clients;
    println!(
        "mp_server: pool {POOL} ({} mbufs), {} client ring(s) of {}, sending {}",
        pool.size(),
        o.clients,
        o.ring_size,
        if o.total == 0 {
            "until killed".to_string()
        } else {
            format!("{} mbufs", o.total)
        }
    );
    let _ = std::io::stdout().flush();

    let start = Instant::now();
    let mut last_report = Instant::now();
    let mut batch: Vec<Option<Mbuf>> = (0..BURST).map(|_| None).collect();
    loop {
        let mut all_done = true;
        let mut progressed = false;
        for (i, c) in clients.iter_mut().enumerate() {
            if c.pending.is_empty() && c.next_seq < c.quota {
                let n = (c.quota - c.next_seq).min(BURST as u64) as usize;
                if Mbuf::alloc_bulk(&pool, &mut batch[..n]).is_ok() {
                    for slot in &mut batch[..n] {
                        let mut m = slot.take().expect("alloc_bulk filled every slot");
                        let p = m
                            .append(PAYLOAD)
                            .map_err(|e| format!("failed to append payload: {e}"))?;
                        common::fill(p, c.next_seq, i as u32);
                        c.next_seq += 1;
                        c.pending.push(m.into_raw().as_ptr() as u64);
                    }
                }
            }
            if !c.pending.is_empty() {
                // Mode-following burst: this ring's producer side is single, and we are
                // its only producer.
                let r = c.ring.enqueue_burst(&c.pending);
                if r.n > 0 {
                    c.pending.drain(..r.n as usize);
                    progressed = true;
                }
            }
            info.clients[i]
                .sent
                .store(c.next_seq - c.pending.len() as u64, Ordering::Relaxed);
            if !(c.pending.is_empty() && c.next_seq >= c.quota) {
                all_done = false;
            }
        }
        if all_done {
            break;
        }
        if !progressed {
            std::thread::yield_now();
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            last_report = Instant::now();
            let sent: u64 = clients
                .iter()
                .map(|c| c.next_seq - c.pending.len() as u64)
                .sum();
            let rx: u64 = info
                .clients
                .iter()
                .map(|c| c.rx.load(Ordering::Relaxed))
                .sum();
            println!("mp_server: sent {sent}, clients received {rx}");
            let _ = std::io::stdout().flush();
        }
    }
    // Release: pairs with Info::is_done; every `sent` and enqueue above is visible.
    info.done.store(1, Ordering::Release);
    let total: u64 = clients.iter().map(|c| c.next_seq).sum();
    println!(
        "mp_server: all {total} mbufs enqueued in {:.2?}; waiting for the clients",
        start.elapsed()
    );
    let _ = std::io::stdout().flush();

    let deadline = Instant::now() + o.wait;
    let mut ok = true;
    loop {
        let finished = info.clients[..o.clients as usize]
            .iter()
            .all(|c| c.finished.load(Ordering::Acquire) == 1);
        let dead: Vec<usize> = (0..o.clients as usize)
            .filter(|&i| {
                let c = &info.clients[i];
                let pid = c.pid.load(Ordering::Relaxed) as i32;
                c.finished.load(Ordering::Acquire) == 0
                    && pid > 0
                    && !eal::sys::mem::process_exists(pid)
            })
            .collect();
        if finished {
            break;
        }
        if !dead.is_empty() {
            eprintln!("mp_server: client(s) {dead:?} exited before receiving their share");
            ok = false;
            break;
        }
        if Instant::now() > deadline {
            eprintln!("mp_server: timed out waiting for the clients");
            ok = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for (i, c) in info.clients[..o.clients as usize].iter().enumerate() {
        let (sent, rx, err) = (
            c.sent.load(Ordering::Relaxed),
            c.rx.load(Ordering::Relaxed),
            c.errors.load(Ordering::Relaxed),
        );
        println!("client {i}: sent={sent} rx={rx} errors={err}");
        ok &= sent == rx && err == 0;
    }
    // Rings empty; every mbuf back (lcore caches of the clients included).
    let until = Instant::now() + Duration::from_secs(10);
    while pool.avail_count() != pool.size() && Instant::now() < until && ok {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("pool: {}/{} mbufs free", pool.avail_count(), pool.size());
    // Let the clients exit before we do, so the EAL can remove the shared files at once
    // (it leaves them to secondaries that are still attached).
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until
        && info.clients[..o.clients as usize].iter().any(|c| {
            let pid = c.pid.load(Ordering::Relaxed) as i32;
            pid > 0 && eal::sys::mem::process_exists(pid)
        })
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    ok &= pool.avail_count() == pool.size() && clients.iter().all(|c| c.ring.empty());
    println!("mp_server: {}", if ok { "OK" } else { "FAILED" });
    let _ = std::io::stdout().flush();
    // Give the objects back, so the EAL can tear down and remove its files at exit once
    // nothing holds it (today the mempool crate keeps an `Eal` clone even after free,
    // so the files stay until the next primary reclaims them).
    for c in clients {
        // SAFETY: the clients have exited (or we are failing anyway); nobody uses the
        // rings any more.
        let _ = unsafe { c.ring.free() };
    }
    if let Err(e) = pool.free() {
        eprintln!("mp_server: {e}; the shared files stay until the next primary reclaims them");
    }
    Ok(ok)
}
