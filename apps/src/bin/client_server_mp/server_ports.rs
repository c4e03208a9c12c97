//! `mp_server -p PORTMASK`: the server with real ports, as DPDK's client_server_mp: it
//! receives from every port of the mask and hands the packets to the clients
//! round-robin over their rings; each client transmits what it gets on the paired port
//! (2k ↔ 2k+1) on TX queue `client id`, which the server set up for it. Ports get as
//! many RX queues as TX queues and the server polls them all (DPDK's server uses one RX
//! queue; AF_PACKET and TAP ports spread flows over every queue pair they have, so a
//! queue nobody polled would keep its share).
//!
//! Runs until stdin says `quit` or ends, or `--run-s` seconds pass; then it sets `done`,
//! waits for the clients to drain their rings and give their queues back. A client that
//! died (even killed mid-burst) costs the pool nothing: its TX queue is taken back, what
//! is left in its ring is freed here, and once no client is attached the mbufs it held
//! in its hands are taken back too (`ferroplane_apps::mp_end`). Then the pool is checked.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::BURST;
use crate::Opts;
use ferroplane_apps::{mp, mp_end};

use eal::Eal;
use mbuf::Mbuf;

fn setup_ports(ports: &[u16], clients: u16, pool: &mbuf::PktmbufPool) -> Result<(), String> {
    for &p in ports {
        let s = |e: pmd::Error| format!("port {p}: {e}");
        let info = pmd::dev_info(p).map_err(s)?;
        pmd::configure(p, clients, clients, &pmd::EthConf::default()).map_err(s)?;
        for q in 0..clients {
            let d = 512u16.clamp(info.rx_desc_lim.min, info.rx_desc_lim.max);
            pmd::rx_queue_setup(p, q, d, None, &pmd::RxConf::default(), pool).map_err(s)?;
            let d = 512u16.clamp(info.tx_desc_lim.min, info.tx_desc_lim.max);
            pmd::tx_queue_setup(p, q, d, None, &pmd::TxConf::default()).map_err(s)?;
        }
        pmd::start(p).map_err(s)?;
        let _ = pmd::promiscuous_set(p, true);
    }
    Ok(())
}

pub(crate) fn run(eal: &Eal, o: &Opts, mask: u64) -> Result<bool, String> {
    let ids = pmd::probe_vdevs(eal).map_err(|e| e.to_string())?;
    let ports = mp::port_pairs(ids, mask)?;
    let n = o.clients as usize;
    let (pool, info, rings) = crate::shared_objects(eal, o, true)?;
    setup_ports(&ports, o.clients as u16, &pool)?;
    println!("mp_server: forwarding from ports {ports:?} to {n} client(s)");
    let _ = std::io::stdout().flush();

    let stop = mp::stdin_stop("mp-server-stdin");
    let deadline = o.run.map(|d| Instant::now() + d);
    let mut v: Vec<Mbuf> = Vec::with_capacity(BURST);
    let mut per: Vec<Vec<u64>> = vec![Vec::with_capacity(BURST); n];
    let mut sent = vec![0u64; n];
    let (mut rr, mut rx_total, mut ring_drops) = (0usize, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        let mut got = 0;
        for &p in &ports {
            for q in 0..o.clients as u16 {
                let k = pmd::rx_burst(p, q, &mut v, BURST as u16);
                got += k;
                rx_total += u64::from(k);
                for m in v.drain(..) {
                    per[rr].push(m.into_raw().as_ptr() as u64);
                    rr = (rr + 1) % n;
                }
            }
        }
        for (i, batch) in per.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let done = rings[i].enqueue_burst(batch).n as usize;
            sent[i] += done as u64;
            info.clients[i].sent.store(sent[i], Ordering::Relaxed);
            for &a in &batch[done..] {
                // SAFETY: addresses we made with `into_raw` just above and did not enqueue.
                drop(unsafe { Mbuf::from_raw(std::ptr::NonNull::new_unchecked(a as *mut _)) });
                ring_drops += 1;
            }
            batch.clear();
        }
        if got == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    // Release: pairs with Info::is_done; every `sent` and enqueue above is visible.
    info.done.store(1, Ordering::Release);
    println!("mp_server: received {rx_total}, {ring_drops} dropped at full client rings; waiting for the clients");
    let _ = std::io::stdout().flush();

    let until = Instant::now() + o.wait;
    let mut ok = true;
    let alive = |i: usize| {
        let pid = info.clients[i].pid.load(Ordering::Relaxed) as i32;
        pid <= 0 || eal::sys::mem::process_exists(pid)
    };
    // Wait for every live client to finish; dead ones are dealt with below.
    loop {
        let waiting: Vec<usize> = (0..n)
            .filter(|&i| info.clients[i].finished.load(Ordering::Acquire) == 0 && alive(i))
            .collect();
        if waiting.is_empty() {
            break;
        }
        if Instant::now() > until {
            eprintln!("mp_server: client(s) {waiting:?} did not finish");
            ok = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let dead: Vec<usize> = (0..n)
        .filter(|&i| info.clients[i].finished.load(Ordering::Acquire) == 0 && !alive(i))
        .collect();
    for &i in &dead {
        // The ring's only consumer is gone: what it did not take is ours to free.
        let mut left = 0u64;
        let mut buf = [0u64; BURST];
        loop {
            let k = rings[i].dequeue_burst(&mut buf).n as usize;
            if k == 0 {
                break;
            }
            for &a in &buf[..k] {
                // SAFETY: addresses the server made with `into_raw` and enqueued; the
                // client that would have taken them is dead, so nobody else owns them.
                drop(unsafe { Mbuf::from_raw(std::ptr::NonNull::new_unchecked(a as *mut _)) });
            }
            left += k as u64;
        }
        println!(
            "mp_server: client {i} died (pid {}); freed {left} mbufs left in its ring",
            info.clients[i].pid.load(Ordering::Relaxed)
        );
    }
    mp_end::close_ports("mp_server", &ports, Duration::from_secs(30))?;
    for (i, c) in info.clients[..n].iter().enumerate() {
        let (s, rx, tx, d) = (
            c.sent.load(Ordering::Relaxed),
            c.rx.load(Ordering::Relaxed),
            c.tx.load(Ordering::Relaxed),
            c.drops.load(Ordering::Relaxed),
        );
        println!("client {i}: sent={s} rx={rx} tx={tx} drop={d}");
        ok &= s == rx || dead.contains(&i);
    }
    // SAFETY: forwarding has stopped with nothing in hand (`v` and the batches are
    // empty after the loop) and the ports are closed.
    unsafe { mp_end::take_back_mbufs(eal, &pool, Duration::from_secs(30)) }?;
    println!("pool: {}/{} mbufs free", pool.avail_count(), pool.size());
    ok &= pool.avail_count() == pool.size() && rings.iter().all(|r| r.empty());
    println!("mp_server: {}", if ok { "OK" } else { "FAILED" });
    let _ = std::io::stdout().flush();
    Ok(ok)
}
