//! How a multi-process app's primary ends (`symmetric_mp`, `mp_server -p`, `testpmd`):
//! take back the queues of secondaries that died ([`pmd::reclaim_dead_queues`]), close
//! its ports once every secondary gave its queues back or died ([`close_ports`]), then,
//! once no other process is attached, take back the mbufs dead processes held in their
//! hands ([`take_back_mbufs`]), so a secondary killed mid-burst costs the pool nothing.

use std::time::{Duration, Instant};

use eal::Eal;
use mbuf::PktmbufPool;

/// Print one line per queue taken back from a dead secondary, `NAME: took back RX queue
/// Q of port P from dead process PID`; returns how many.
pub fn reclaim_dead(name: &str) -> usize {
    let back = pmd::reclaim_dead_queues();
    for r in &back {
        println!(
            "{name}: took back {} queue {} of port {} from dead process {}",
            if r.rx { "RX" } else { "TX" },
            r.queue,
            r.port,
            r.pid
        );
    }
    back.len()
}

/// Primary: stop and close `ports`, waiting up to `limit` for secondaries to give their
/// queues back; queues of secondaries that die meanwhile are taken back
/// ([`reclaim_dead`]). Prints `NAME: waiting for secondaries: WHY` when the reason
/// changes. An error names the ports still in use after `limit`.
pub fn close_ports(name: &str, ports: &[u16], limit: Duration) -> Result<(), String> {
    let t0 = Instant::now();
    for &p in ports {
        let _ = pmd::stop(p);
    }
    let mut open = ports.to_vec();
    let mut last = String::new();
    loop {
        reclaim_dead(name);
        let mut busy = None;
        open.retain(|&p| match pmd::close(p) {
            Ok(()) => false,
            Err(e) => {
                busy = Some(e.to_string());
                true
            }
        });
        let Some(e) = busy else {
            return Ok(());
        };
        if t0.elapsed() > limit {
            return Err(format!("ports {open:?} still in use: {e}"));
        }
        if e != last {
            println!("{name}: waiting for secondaries: {e}");
            last = e;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Primary, with its ports closed and no mbuf in hand: wait up to `limit` until no
/// other process of the group is attached, then take back every mbuf of `pool` still
/// out (held by processes that died), printing `pool: took back K mbufs held by
/// processes that died` when K > 0. Returns K; an error if secondaries stay attached.
///
/// # Safety
/// No thread of this process holds an mbuf of `pool`, gets or puts one during the call:
/// forwarding has stopped and every port with queues filled from `pool` is closed.
pub unsafe fn take_back_mbufs(
    eal: &Eal,
    pool: &PktmbufPool,
    limit: Duration,
) -> Result<u32, String> {
    let t0 = Instant::now();
    while eal.processes().len() > 1 {
        if t0.elapsed() > limit {
            return Err(format!(
                "{} secondary process(es) still attached; mbufs they hold cannot be taken back",
                eal.processes().len() - 1
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: this process holds and uses no mbuf (caller contract) and every other
    // process of the group is gone (the EAL's process table), so nobody gets, puts or
    // holds an mbuf of the pool during the call.
    let back = unsafe { pool.take_back_all_out() }.map_err(|e| e.to_string())?;
    if back > 0 {
        println!("pool: took back {back} mbufs held by processes that died");
    }
    Ok(back)
}
