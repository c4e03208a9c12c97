//! net_af_packet's ring formats over a veth pair in a private network namespace:
//! TPACKET_V3 block rings (many frames per block, blocks wrapping), the forced
//! TPACKET_V2 fallback, flows spread over a fanout group, TX bursts checked by a peer
//! AF_PACKET socket and by tshark, and bad devargs refused naming the key.

mod pmd_common;
use pmd_common::*;

use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(10);

fn xstat(port: u16, name: &str) -> u64 {
    pmd::xstats_by_name(port)
        .unwrap()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no xstat {name}"))
        .1
}

/// An IPv4/UDP frame of flow `flow` (source port), `len` payload bytes.
fn udp_frame(flow: u16, seq: u8, len: usize) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend([0x02, 0, 0, 0, 0, 9]);
    f.extend([0x08, 0x00]);
    let tot = (20 + 8 + len) as u16;
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    ip[2..4].copy_from_slice(&tot.to_be_bytes());
    let sum = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend(ip);
    f.extend((1000 + flow).to_be_bytes());
    f.extend(7777u16.to_be_bytes());
    f.extend(((8 + len) as u16).to_be_bytes());
    f.extend([0, 0]);
    f.extend((0..len).map(|i| seq.wrapping_add(i as u8)));
    f
}

/// Send `sent` from the peer in rounds of `round`, receiving on queue 0 of `port` in
/// between; returns what queue 0 got of ethertype 0x88b5.
fn kernel_to_port(peer: &RawSock, port: u16, sent: &[Vec<u8>], round: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    for chunk in sent.chunks(round) {
        for f in chunk {
            peer.send(f);
        }
        let want = got.len() + chunk.len();
        got.extend(rx_until(port, chunk.len(), LIMIT, |b| {
            b.len() > 13 && b[12..14] == [0x88, 0xb5]
        }));
        assert_eq!(got.len(), want, "frames lost");
    }
    got
}

fn both_ways(test: &str, tag: &str, args: &str, want_v3: u64) {
    let Some(ns) = Netns::new(test, tag) else {
        return;
    };
    let (a, b) = (format!("{tag}a"), format!("{tag}b"));
    ns.veth(&a, &b);
    let e = eal(tag);
    let p = pool(&e, &format!("{tag}p"), 2047);
    let spec = format!("net_af_packet_{tag},iface={a},{args}");
    ns.run_with(&e, &p, move |e, p| {
        let port = pmd::vdev_create(&e, &spec).unwrap();
        setup(port, &p, 1, 1);
        assert!(pmd::link_wait_up(port, LIMIT).unwrap().up);
        assert_eq!(xstat(port, "tpacket_v3"), want_v3, "ring format");
        let peer = RawSock::bind(&b);
        // 600 frames of 46..300 bytes: many per block, the block ring wraps several times.
        let sent: Vec<Vec<u8>> = (0..600)
            .map(|i| frame(0x88b5, 9, i as u8, 46 + (i * 37) % 255))
            .collect();
        let got = kernel_to_port(&peer, port, &sent, 100);
        assert_eq!(
            got, sent,
            "frames from the kernel side arrive intact, in order"
        );

        // ours -> kernel side, bursts of 32 (one sendto each), ring wrapping too.
        let ours: Vec<Vec<u8>> = (0..400)
            .map(|i| frame(0x88b6, 10, i as u8, 46 + (i * 13) % 1000))
            .collect();
        let mut rcv = Vec::new();
        for chunk in ours.chunks(32) {
            let mut v: Vec<mbuf::Mbuf> = chunk.iter().map(|f| mbuf_of(&p, f)).collect();
            let t0 = Instant::now();
            while !v.is_empty() && t0.elapsed() < LIMIT {
                pmd::tx_burst(port, 0, &mut v);
            }
            assert!(v.is_empty(), "TX ring never drained");
            rcv.extend(peer.recv_until(chunk.len(), LIMIT, |b| {
                b.len() > 13 && b[12..14] == [0x88, 0xb6]
            }));
        }
        assert_eq!(
            rcv, ours,
            "our frames reach the kernel side intact, in order"
        );
        let s = pmd::stats_get(port).unwrap();
        assert_eq!((s.ipackets >= 600, s.opackets, s.oerrors), (true, 400, 0));
        pmd::close(port).unwrap();
    });
    assert_eq!(p.avail_count(), 2047, "every mbuf back in the pool");
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

#[test]
fn af_packet_v2_fallback_both_ways() {
    both_ways(
        "af_packet_v2_fallback_both_ways",
        "v2",
        "tpacket_version=2,framecnt=256",
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
    ns.run_with(&e, &p, move |e, p| {
        let port = pmd::vdev_create(&e, "net_af_packet_fo,iface=foa,qpairs=2").unwrap();
        setup(port, &p, 2, 2);
        assert!(pmd::link_wait_up(port, LIMIT).unwrap().up);
        let peer = RawSock::bind("fob");
        let sent: Vec<Vec<u8>> = (0..64u16).map(|fl| udp_frame(fl, fl as u8, 40)).collect();
        for f in &sent {
            peer.send(f);
        }
        let t0 = Instant::now();
        let mut per_q = [Vec::new(), Vec::new()];
        let mut v = Vec::new();
        while per_q.iter().map(Vec::len).sum::<usize>() < sent.len() && t0.elapsed() < LIMIT {
            for (q, got) in per_q.iter_mut().enumerate() {
                pmd::rx_burst(port, q as u16, &mut v, 32);
                got.extend(
                    v.drain(..)
                        .map(|m| bytes_of(&m))
                        .filter(|b| b.len() > 37 && b[36..38] == 7777u16.to_be_bytes()),
                );
            }
        }
        assert!(
            !per_q[0].is_empty() && !per_q[1].is_empty(),
            "64 flows all landed on one queue: {} / {}",
            per_q[0].len(),
            per_q[1].len()
        );
        let mut all = per_q.concat();
        all.sort();
        let mut want = sent.clone();
        want.sort();
        assert_eq!(all, want, "each frame arrives once");
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
    ns.run_with(&e, &p, move |e, p| {
        let port = pmd::vdev_create(&e, "net_af_packet_ts,iface=tsa,qdisc_bypass=1").unwrap();
        setup(port, &p, 1, 1);
        assert!(pmd::link_wait_up(port, LIMIT).unwrap().up);
        let mut v: Vec<mbuf::Mbuf> = (0..50)
            .map(|i| mbuf_of(&p, &frame(0x88b6, 10, i as u8, 100 + i)))
            .collect();
        let t0 = Instant::now();
        while !v.is_empty() && t0.elapsed() < LIMIT {
            pmd::tx_burst(port, 0, &mut v);
        }
        assert!(v.is_empty());
        pmd::close(port).unwrap();
    });
    let want: Vec<usize> = (0..50).map(|i| 14 + 100 + i).collect();
    assert_eq!(
        cap.lengths(LIMIT),
        want,
        "tshark saw our 50 frames, in order, at their lengths"
    );
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
        ("net_af_packet_b7,iface=lo,queues=2", "queues"),
    ] {
        let err = vdev_err(&e, spec);
        assert!(err.contains(&format!("'{key}'")), "{spec}: {err}");
    }
}
