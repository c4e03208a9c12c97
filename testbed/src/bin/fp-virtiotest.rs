//! `fp-virtiotest`: the guest half of the virtio-net driver tests (`tests/virtio_guest.rs`),
//! run inside the QEMU testbed. It drives two virtio-net NICs (1af4:1041) through the
//! ethdev API and the `net_virtio` driver while the host test feeds and reads the NICs'
//! datagram sockets. Progress lines (`READY`, `STEP1 OK`, ...) tell the host when to send.
//!
//! ```text
//! fp-virtiotest [EAL args] -- suite   # RX (bytes), promiscuous off/on and a MAC change
//!                                     # through the control queue, TX, stats, mbufs
//! fp-virtiotest [EAL args] -- poll S  # poll for S seconds; exit 3 once the device goes away
//! fp-virtiotest [EAL args] -- mq K    # the multi-queue NIC: K frames out of every TX
//!                                     # queue, each back (MACs swapped by the peer) on
//!                                     # the RX queue of the same index
//! ```
//!
//! The NICs are the PCI devices the EAL allows (`-a`), told apart by MAC: NIC A is
//! `testbed::frames::VIRTIO_A` (host socket 2), NIC B `VIRTIO_B` (socket 3). Each is set up
//! with as many queue pairs as the device has (up to 4); every check runs on queue 0.
//! Exit codes: 0 passed, 1 a check failed (the line says which), 2 bad arguments, 3 the
//! device went away (`poll`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use eal::Eal;
use testbed::frames::{
    test_frame, HOST, N_TX, S_MQ, S_NEWMAC, S_OLDMAC, VIRTIO_A, VIRTIO_B, VIRTIO_MQ, VIRTIO_NEW,
};
use testbed::nic::{self, check_eq, close, receive_step, xstat, Want, STEP_TIMEOUT};

/// Frames of the MAC-change step (each stream).
const N_MAC: u32 = 40;

/// NIC A and B of the virtio test, as many queue pairs as the device has (up to 4).
const WANT: Want<'static> = Want {
    driver: "net_virtio",
    macs: [VIRTIO_A, VIRTIO_B],
    pool: ("virtiotest", 4095),
    max_pairs: 4,
};

fn suite(eal: &Eal) -> Result<(), String> {
    let p = nic::setup(eal, &WANT)?;
    let ctrl0 = xstat(p.a, "ctrl_commands")?;
    println!(
        "READY a={} b={} max_queue_pairs={} ctrl_commands={ctrl0}",
        p.a,
        p.b,
        xstat(p.a, "max_queue_pairs")?
    );

    // 1. Promiscuous off (a control command): own frames arrive intact, foreign ones
    //    are filtered by the device.
    // 2. Promiscuous on: foreign frames arrive too.
    let (rx12, bytes12) = nic::promisc_steps(&p, VIRTIO_A)?;

    // 3. A new MAC through the control queue, promiscuous off: frames to the new MAC
    //    arrive, frames to the old one are filtered. Then the old MAC again.
    pmd::promiscuous_set(p.a, false).map_err(|e| e.to_string())?;
    pmd::mac_addr_set(p.a, VIRTIO_NEW).map_err(|e| e.to_string())?;
    println!("STEP3 READY");
    let (own3, other3, bytes3) =
        receive_step(p.a, VIRTIO_NEW, S_NEWMAC, N_MAC, VIRTIO_A, S_OLDMAC)?;
    check_eq(
        "old MAC after a MAC change: frames received",
        u64::from(other3),
        0,
    )?;
    pmd::mac_addr_set(p.a, VIRTIO_A).map_err(|e| e.to_string())?;
    println!("STEP3 OK own={own3} old={other3}");

    // 4. TX out of both NICs: first a two-segment packet (dropped, counted), then the
    //    frames the host checks.
    let (tx_bytes_a, tx_bytes_b) = nic::tx_step(&p, [VIRTIO_A, VIRTIO_B])?;
    println!("STEP4 SENT {N_TX} {N_TX}");

    // 5. Statistics.
    let rx_frames = u64::from(rx12 + own3);
    let rx_bytes = bytes12 + bytes3;
    nic::check_stats(&p, rx_frames, rx_bytes, (tx_bytes_a, tx_bytes_b), "")?;
    // promiscuous off, on, off; MAC set twice; plus what start sent.
    check_eq(
        "a control commands after start",
        xstat(p.a, "ctrl_commands")? - ctrl0,
        5,
    )?;
    check_eq("a control commands refused", xstat(p.a, "ctrl_refused")?, 0)?;
    println!("STATS OK rx_frames={rx_frames} rx_bytes={rx_bytes} tx_bytes_a={tx_bytes_a} tx_bytes_b={tx_bytes_b}");

    close(p)?;
    println!("DONE");
    Ok(())
}

/// Poll both NICs for `secs` seconds, checking the link every 100 ms. Ok(true) if the
/// device went away (after checking that bursts then move nothing).
/// The multi-queue NIC (MAC [`VIRTIO_MQ`]) with every queue pair it has: `k` frames
/// out of each TX queue `q` (stream `S_MQ + q`); the peer (DPDK's vhost port in macswap
/// mode, one stream per queue) sends each back on its queue `q`, so RX queue `q` must
/// receive exactly the `k` frames of stream `S_MQ + q`, MACs swapped, the rest intact.
fn mq(eal: &Eal, k: u32) -> Result<(), String> {
    let (ports, failed) = pmd::probe_pci(eal);
    if let Some(e) = failed.first() {
        return Err(format!("probe: {e}"));
    }
    let port = ports
        .iter()
        .copied()
        .find(|&p| pmd::mac_addr_get(p).is_ok_and(|m| m == VIRTIO_MQ))
        .ok_or_else(|| format!("no port with MAC {}", pmd::fmt_mac(&VIRTIO_MQ)))?;
    let pairs = pmd::dev_info(port)
        .map_err(|e| e.to_string())?
        .max_rx_queues;
    if pairs < 2 {
        return Err(format!("the multi-queue NIC offers {pairs} queue pair(s)"));
    }
    let pool = mbuf::pktmbuf_pool_create(
        eal,
        "virtiomq",
        4095,
        32,
        0,
        mbuf::MBUF_DEFAULT_BUF_SIZE,
        None,
    )
    .map_err(|e| format!("pool: {e}"))?;
    nic::start_port(port, pairs, &pool, Duration::from_secs(30))?;
    println!("MQ READY port={port} pairs={pairs}");
    for q in 0..pairs {
        let frames: Vec<Vec<u8>> = (0..k)
            .map(|s| test_frame(HOST, VIRTIO_MQ, S_MQ + q as u8, s))
            .collect();
        nic::send_all_on(port, q, &frames, &pool)?;
    }
    let mut got = vec![vec![false; k as usize]; usize::from(pairs)];
    let mut n = vec![0u32; usize::from(pairs)];
    let t0 = Instant::now();
    let mut v = Vec::with_capacity(32);
    while n.iter().any(|&c| c < k) {
        if t0.elapsed() > STEP_TIMEOUT {
            return Err(format!("received per RX queue {n:?}, expected {k} each"));
        }
        let mut any = false;
        for q in 0..pairs {
            v.clear();
            if pmd::rx_burst(port, q, &mut v, 32) == 0 {
                continue;
            }
            any = true;
            for m in v.drain(..) {
                let d = m.data();
                if d.len() < 19 {
                    return Err(format!("RX queue {q}: a {}-byte frame", d.len()));
                }
                let seq = u32::from_le_bytes([d[14], d[15], d[16], d[17]]);
                let stream = d[18];
                if stream != S_MQ + q as u8 || seq >= k || got[usize::from(q)][seq as usize] {
                    return Err(format!(
                        "RX queue {q}: frame {seq} of stream {stream} (queue {} sent it) unexpected here or twice",
                        stream.wrapping_sub(S_MQ)
                    ));
                }
                if d != test_frame(VIRTIO_MQ, HOST, stream, seq).as_slice() {
                    return Err(format!(
                        "RX queue {q}: frame {seq} differs beyond the MAC swap"
                    ));
                }
                got[usize::from(q)][seq as usize] = true;
                n[usize::from(q)] += 1;
            }
        }
        if !any {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let st = pmd::stats_get(port).map_err(|e| e.to_string())?;
    println!(
        "MQ OK pairs={pairs} per_queue={k} q_ipackets={:?} q_opackets={:?}",
        &st.q_ipackets[..usize::from(pairs)],
        &st.q_opackets[..usize::from(pairs)]
    );
    for q in 0..usize::from(pairs) {
        check_eq("RX queue packets", st.q_ipackets[q], u64::from(k))?;
        check_eq("TX queue packets", st.q_opackets[q], u64::from(k))?;
    }
    // A polling back end (DPDK's vhost) sets NO_NOTIFY, so few notifications are sent.
    println!(
        "MQ notifications rx_q0={} tx_q0={} rx_q1={} tx_q1={}",
        xstat(port, "rx_q0_notifications")?,
        xstat(port, "tx_q0_notifications")?,
        xstat(port, "rx_q1_notifications")?,
        xstat(port, "tx_q1_notifications")?
    );
    pmd::stop(port).map_err(|e| e.to_string())?;
    pmd::close(port).map_err(|e| e.to_string())?;
    nic::free_pool(pool)?;
    println!("DONE");
    Ok(())
}

fn main() -> ExitCode {
    const PROG: &str = "fp-virtiotest";
    const USAGE: &str = "suite | poll SECS | mq K";
    nic::main(PROG, USAGE, |eal, rest| {
        let num = |i, what| nic::arg_num(PROG, rest, i, what);
        Ok(match rest.first().map(String::as_str) {
            Some("suite") => suite(eal).map(|()| false),
            Some("mq") => {
                let k = num(1, "frames per queue")?;
                let k = u32::try_from(k).map_err(|_| ExitCode::from(2))?;
                mq(eal, k).map(|()| false)
            }
            Some("poll") => nic::poll(eal, &WANT, "device_gone", num(1, "seconds")?),
            other => {
                eprintln!("{PROG}: unknown command {other:?} ({USAGE})");
                return Err(ExitCode::from(2));
            }
        })
    })
}
