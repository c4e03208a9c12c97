//! net_af_packet's ring formats over a veth pair in a private network namespace:
//! TPACKET_V3 block rings (many frames per block, blocks wrapping), the forced
//! TPACKET_V2 fallback, flows spread over a fanout group, TX bursts checked by a peer
//! AF_PACKET socket and by tshark, and bad devargs refused naming the key.

mod pmd_common;
use pmd_common::*;

use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

fn spec_has(args: &str, kv: &str) -> bool {
    args.split(',').any(|a| a == kv)
}

fn both_ways(test: &str, tag: &str, args: &str, want_v3: u64) {
    let args = args.to_string();
    // 600 frames of 46..300 bytes in (many per block, the block ring wraps several
    // times), 400 out in bursts of 32 (one sendto each), the TX ring wrapping too.
    let frames = BothWays {
        inbound: (0..600)
            .map(|i| frame(0x88b5, 9, i as u8, 46 + (i * 37) % 255))
            .collect(),
        outbound: (0..400)
            .map(|i| frame(0x88b6, 10, i as u8, 46 + (i * 13) % 1000))
            .collect(),
    };
    let spec = format!("net_af_packet_{tag},iface={{a}},{args}");
    veth_both_ways(
        test,
        tag,
        &spec,
        frames,
        move |_, port| {
            assert_eq!(xstat(port, "tpacket_v3"), want_v3, "ring format");
            let ring = u64::from(spec_has(&args, "tx_ring=1"));
            assert_eq!(xstat(port, "tx_ring"), ring, "TX path");
        },
        |_| {},
    );
}

#[test]
fn af_packet_v3_block_ring_both_ways() {
    both_ways(
        "af_packet_v3_block_ring_both_ways",
        "v3",
        "blocksz=16384,framesz=2048,framecnt=64,qdisc_bypass=1",
        1,
    );
}

/// TX through the TPACKET_V3 TX ring (the default sends with `sendmmsg`).
#[test]
fn af_packet_v3_tx_ring_both_ways() {
    both_ways(
        "af_packet_v3_tx_ring_both_ways",
        "tr",
        "tx_ring=1,framecnt=64",
        1,
    );
}

#[test]
fn af_packet_v2_fallback_both_ways() {
    both_ways(
        "af_packet_v2_fallback_both_ways",
        "v2",
        "tpacket_version=2,framecnt=256,tx_ring=1",
        0,
    );
}

#[test]
fn af_packet_v3_fanout_spreads_flows() {
    let test = "af_packet_v3_fanout_spreads_flows";
    let Some(ns) = Netns::new(test, "fo") else {
        return;
    };
    ns.veth("foa", "fob");
    let e = eal("fo");
    let p = pool(&e, "fop", 1023);
    run_with(&ns, &e, &p, move |e, p| {
        let port = pmd::vdev_create(&e, "net_af_packet_fo,iface=foa,qpairs=2").unwrap();
        setup(port, &p, 2, 2);
        assert!(pmd::link_wait_up(port, LIMIT).unwrap().up);
        let peer = RawSock::bind("fob");
        let counts = spread_flows(&peer, port, 2, 64, LIMIT);
        assert!(
            counts.iter().all(|&n| n > 0),
            "64 flows all landed on one queue: {counts:?}"
        );
        pmd::close(port).unwrap();
    });
}

#[test]
fn af_packet_v3_tx_seen_by_tshark() {
    let test = "af_packet_v3_tx_seen_by_tshark";
    let Some(ns) = Netns::new(test, "ts") else {
        return;
    };
    ns.veth("tsa", "tsb");
    let Some(cap) = Tshark::start(test, &ns, "tsb", 50, "ether proto 0x88b6") else {
        return;
    };
    let e = eal("ts");
    let p = pool(&e, "tsp", 255);
    run_with(&ns, &e, &p, move |e, p| {
        let port = pmd::vdev_create(&e, "net_af_packet_ts,iface=tsa,qdisc_bypass=1").unwrap();
        setup(port, &p, 1, 1);
        assert!(pmd::link_wait_up(port, LIMIT).unwrap().up);
        let ours: Vec<Vec<u8>> = (0..50)
            .map(|i| frame(0x88b6, 10, i as u8, 100 + i))
            .collect();
        tx_all(port, &p, &ours, LIMIT);
        pmd::close(port).unwrap();
    });
    let want: Vec<usize> = (0..50).map(|i| 14 + 100 + i).collect();
    assert_eq!(
        cap.lengths(LIMIT),
        want,
        "tshark saw our 50 frames, in order, at their lengths"
    );
}

/// Chained mbufs leave as one frame each, through `sendmmsg` (one iovec per segment)
/// and through the TX ring (segments copied into one frame).
#[test]
fn af_packet_chained_mbufs_leave_whole() {
    let test = "af_packet_chained_mbufs_leave_whole";
    let Some(ns) = Netns::new(test, "ch") else {
        return;
    };
    ns.veth("cha", "chb");
    let e = eal("ch");
    let p = pool(&e, "chp", 255);
    run_with(&ns, &e, &p, move |e, p| {
        let peer = RawSock::bind("chb");
        for (k, ring) in [0, 1].into_iter().enumerate() {
            let spec = format!("net_af_packet_ch{k},iface=cha,tx_ring={ring}");
            let port = pmd::vdev_create(&e, &spec).unwrap();
            setup(port, &p, 1, 1);
            assert!(pmd::link_wait_up(port, LIMIT).unwrap().up);
            let frames: Vec<Vec<u8>> = (0..20)
                .map(|i| frame(0x88b6, 10 + k as u8, i as u8, 90 + 11 * i))
                .collect();
            let mut v: Vec<mbuf::Mbuf> = frames
                .iter()
                .map(|f| {
                    // Three segments: header, 30 bytes, the rest.
                    let mut m = mbuf_of(&p, &f[..14]);
                    m.chain(mbuf_of(&p, &f[14..44])).unwrap();
                    m.chain(mbuf_of(&p, &f[44..])).unwrap();
                    assert_eq!(m.nb_segs(), 3);
                    m
                })
                .collect();
            let t0 = std::time::Instant::now();
            while !v.is_empty() && t0.elapsed() < LIMIT {
                pmd::tx_burst(port, 0, &mut v);
            }
            assert!(v.is_empty(), "tx_ring={ring}: TX never drained");
            let got = peer.recv_until(frames.len(), LIMIT, |b| {
                is_ethertype(b, 0x88b6) && b[6..12] == frames[0][6..12]
            });
            assert!(
                got == frames,
                "tx_ring={ring}: every chain left whole, in order"
            );
            pmd::close(port).unwrap();
        }
    });
    assert_eq!(p.avail_count(), 255, "every segment back in the pool");
}

#[test]
fn af_packet_v3_bad_devargs_name_the_key() {
    let e = eal("afbad");
    for (spec, key) in [
        ("net_af_packet_b0", "iface"),
        (
            "net_af_packet_b1,iface=lo,tpacket_version=4",
            "tpacket_version",
        ),
        ("net_af_packet_b2,iface=lo,framesz=100", "framesz"),
        ("net_af_packet_b3,iface=lo,blocksz=5000", "blocksz"),
        ("net_af_packet_b4,iface=lo,framecnt=3", "framecnt"),
        (
            "net_af_packet_b5,iface=lo,qdisc_bypass=maybe",
            "qdisc_bypass",
        ),
        ("net_af_packet_b6,iface=lo,qpairs=0", "qpairs"),
        ("net_af_packet_b8,iface=lo,tx_ring=2", "tx_ring"),
        ("net_af_packet_b7,iface=lo,queues=2", "queues"),
    ] {
        let err = vdev_err(&e, spec);
        assert!(err.contains(&format!("'{key}'")), "{spec}: {err}");
    }
}
