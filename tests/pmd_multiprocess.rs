//! Ports shared with a real secondary process (this test binary re-executed,
//! `child_secondary`): the primary (the test) owns a `net_ring`, a `net_null` and a
//! `net_tap` port (the TAP in a namespace the test makes); the secondary attaches to all
//! three, is refused when it tries to configure, start or stop them (the ports keep
//! running), is refused a queue the primary holds, and drives the queues it claimed:
//! tagged mbufs both ways through the ring port's rings, packets from the null port,
//! frames both ways through the TAP descriptors it got over IPC. Every mbuf and frame is
//! checked once and the pool is whole at the end. Under `--no-huge`.

mod pmd_common;
use pmd_common::*;

use std::time::{Duration, Instant};

use mbuf::Mbuf;
use testkit::child::{rerun_test, Watched};

const GUARD: Duration = Duration::from_secs(120);
const POOL: &str = "mpq_pool";
/// Mbufs each way through the ring port.
const N_RING: usize = 300;
/// Frames each way through the TAP port.
const N_TAP: usize = 20;
const TAP_TYPE: u16 = 0x88b5;

fn tagged(p: &mbuf::PktmbufPool, tag: u32) -> Mbuf {
    let mut b = vec![0u8; 64];
    b[..4].copy_from_slice(&tag.to_le_bytes());
    mbuf_of(p, &b)
}

fn tag_of(m: &Mbuf) -> u32 {
    u32::from_le_bytes(bytes_of(m)[..4].try_into().expect("4 bytes"))
}

/// The secondary. Talks to the parent over stdin/stdout lines.
#[test]
#[ignore = "child process of mp_ports_shared_with_a_secondary"]
fn child_secondary() {
    let Some(prefix) = testkit::eal_env::child_prefix(
        "FP_MPQ_PREFIX",
        "child_secondary",
        "mp_ports_shared_with_a_secondary",
    ) else {
        return;
    };
    let argv = testkit::eal_env::secondary_args(&prefix, "1@0");
    let (e, _) = eal::Eal::init(&argv).unwrap();
    let ports = pmd::attach_secondary(&e).unwrap();
    let (ring, null, tap) = (
        pmd::port_by_name("net_ring_mp").unwrap(),
        pmd::port_by_name("net_null_mp").unwrap(),
        pmd::port_by_name("net_tap_mp").unwrap(),
    );
    println!("PORTS {}", ports.len());
    // Changes of a port the primary owns are refused.
    let conf = pmd::EthConf::default();
    for (what, r) in [
        ("configure", pmd::configure(ring, 1, 1, &conf)),
        ("start", pmd::start(ring)),
        ("stop", pmd::stop(ring)),
        ("mtu", pmd::mtu_set(tap, 1000)),
    ] {
        println!("REFUSED {what}: {}", r.unwrap_err());
    }
    // The primary holds a handle on RX queue 0 of the ring port.
    println!(
        "REFUSED claim: {}",
        pmd::queue_claim(ring, true, 0).unwrap_err()
    );
    for (port, rx, q) in [
        (ring, true, 1),
        (ring, false, 0),
        (null, true, 0),
        (tap, true, 0),
        (tap, false, 0),
    ] {
        pmd::queue_claim(port, rx, q).unwrap();
    }
    let pool = mbuf::PktmbufPool::lookup(&e, POOL).unwrap();
    let mut v = Vec::new();
    assert_eq!(pmd::rx_burst(null, 0, &mut v, 32), 32);
    println!("NULL {}", v.len());
    v.clear();
    println!("READY");
    let mut l = String::new();
    std::io::stdin().read_line(&mut l).unwrap();
    assert_eq!(l.trim(), "go");

    // Ring: the primary's TX queue 1 → our RX queue 1, each tag once, in order.
    let t0 = Instant::now();
    let mut tags = Vec::new();
    while tags.len() < N_RING && t0.elapsed() < GUARD {
        pmd::rx_burst(ring, 1, &mut v, 32);
        tags.extend(v.drain(..).map(|m| tag_of(&m)));
    }
    assert_eq!(tags, (0..N_RING as u32).collect::<Vec<_>>());
    // Ring: our TX queue 0 → the primary's RX queue 0.
    let mut out: Vec<Mbuf> = (0..N_RING as u32)
        .map(|t| tagged(&pool, 1_000_000 + t))
        .collect();
    while !out.is_empty() && t0.elapsed() < GUARD {
        pmd::tx_burst(ring, 0, &mut out);
    }
    assert!(out.is_empty());
    // TAP: frames the kernel sends out of the interface arrive on our RX queue; send
    // each back on our TX queue with the ethertype bumped.
    let mut frames = Vec::new();
    while frames.len() < N_TAP && t0.elapsed() < GUARD {
        pmd::rx_burst(tap, 0, &mut v, 32);
        frames.extend(
            v.drain(..)
                .map(|m| bytes_of(&m))
                .filter(|b| b.len() > 14 && b[12..14] == TAP_TYPE.to_be_bytes()),
        );
    }
    assert_eq!(frames.len(), N_TAP);
    let mut back: Vec<Mbuf> = frames
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f[12..14].copy_from_slice(&(TAP_TYPE + 1).to_be_bytes());
            mbuf_of(&pool, &f)
        })
        .collect();
    while !back.is_empty() && t0.elapsed() < GUARD {
        pmd::tx_burst(tap, 0, &mut back);
    }
    println!("DONE {} {}", tags.len(), frames.len());
    l.clear();
    std::io::stdin().read_line(&mut l).unwrap();
    for p in [ring, null, tap] {
        pmd::close(p).unwrap();
    }
    println!("RELEASED");
    std::process::exit(0);
}

#[test]
fn mp_ports_shared_with_a_secondary() {
    let test = "mp_ports_shared_with_a_secondary";
    let Some(ns) = Netns::new(test, "mpq") else {
        return;
    };
    let e = eal("mpq");
    let prefix = format!("pmd-mpq-{}", std::process::id());
    let p = pmd_common::pool(&e, POOL, 2047);
    run_with(&ns, &e, &p, move |e, p| {
        let ring = pmd::vdev_create(&e, "net_ring_mp").unwrap();
        setup(ring, &p, 2, 2);
        let null = pmd::vdev_create(&e, "net_null_mp").unwrap();
        setup(null, &p, 1, 1);
        let tap = pmd::vdev_create(&e, "net_tap_mp,iface=fpmtap").unwrap();
        setup(tap, &p, 1, 1);
        assert!(pmd::link_wait_up(tap, GUARD).unwrap().up);
        let mut rxq0 = pmd::rx_queue(ring, 0).unwrap();

        let mut c = rerun_test("child_secondary");
        c.env("FP_MPQ_PREFIX", &prefix);
        let mut ch = Watched::spawn(c, "secondary", GUARD);
        assert_eq!(ch.expect("PORTS"), "3");
        for what in ["configure", "start", "stop", "mtu"] {
            let err = ch.expect(&format!("REFUSED {what}:"));
            assert!(
                err.contains("belongs to the primary process")
                    && err.contains(&std::process::id().to_string()),
                "{what}: {err}"
            );
        }
        let err = ch.expect("REFUSED claim:");
        assert!(
            err.contains("RX queue 0 of port 0: it is driven by the primary process"),
            "{err}"
        );
        assert_eq!(ch.expect("NULL"), "32");
        ch.expect("READY");
        // The ports kept running through the refused calls.
        assert!(pmd::link_get(ring).unwrap().up);
        assert_eq!(
            pmd::stats_get(null).unwrap().q_ipackets[0],
            32,
            "the secondary's bursts count in the shared counters"
        );
        // A queue the secondary drives gives the primary nothing; close is refused.
        let mut v = Vec::new();
        assert_eq!(pmd::rx_burst(ring, 1, &mut v, 32), 0);
        assert!(pmd::close(ring).is_err());

        let mut out: Vec<Mbuf> = (0..N_RING as u32).map(|t| tagged(&p, t)).collect();
        let t0 = Instant::now();
        while !out.is_empty() && t0.elapsed() < GUARD {
            pmd::tx_burst(ring, 1, &mut out);
        }
        let peer = RawSock::bind("fpmtap");
        let sent: Vec<Vec<u8>> = (0..N_TAP)
            .map(|i| frame(TAP_TYPE, 7, i as u8, 60 + i * 10))
            .collect();
        ch.send_line("go");
        for f in &sent {
            peer.send(f);
        }
        let mut tags = Vec::new();
        while tags.len() < N_RING && t0.elapsed() < GUARD {
            rxq0.rx_burst(&mut v, 32);
            tags.extend(v.drain(..).map(|m| tag_of(&m)));
        }
        assert_eq!(
            tags,
            (1_000_000..1_000_000 + N_RING as u32).collect::<Vec<_>>()
        );
        let back = peer.recv_until(N_TAP, GUARD, |b| {
            b.len() > 14 && b[12..14] == (TAP_TYPE + 1).to_be_bytes()
        });
        let want: Vec<Vec<u8>> = sent
            .iter()
            .map(|f| {
                let mut f = f.clone();
                f[12..14].copy_from_slice(&(TAP_TYPE + 1).to_be_bytes());
                f
            })
            .collect();
        assert_eq!(back, want, "frames through the secondary's TAP queues");
        assert_eq!(ch.expect("DONE"), format!("{N_RING} {N_TAP}"));
        ch.send_line("quit");
        ch.expect("RELEASED");
        let st = ch.wait();
        assert!(st.success(), "{st:?} {}", ch.stderr());
        // Back to the primary: its own bursts work again on the released queue.
        let mut out = vec![tagged(&p, 7)];
        assert_eq!(pmd::tx_burst(ring, 1, &mut out), 1);
        assert_eq!(pmd::rx_burst(ring, 1, &mut v, 32), 1);
        v.clear();
        drop(rxq0);
        for port in [ring, null, tap] {
            pmd::close(port).unwrap();
        }
    });
    assert_eq!(p.avail_count(), 2047, "every mbuf back in the pool");
}
