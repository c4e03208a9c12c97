//! net_ring: the vdev's loopback (DPDK CREATE mode) and eth_from_rings pairs.

mod pmd_common;
use pmd_common::*;

use ring::{Ring, RingFlags};

#[test]
fn vdev_ring_loops_tx_to_rx_per_queue() {
    let e = eal("ringvdev");
    let p = pool(&e, "ringp", 2047);
    let a = pmd::vdev_create(&e, "net_ring_t0").unwrap();
    assert_eq!(pmd::dev_info(a).unwrap().max_rx_queues, 16);
    assert!(e.memzones().lookup("RG_ETH_RXTX0_net_ring_t0").is_some());
    setup(a, &p, 2, 2);
    let frames: Vec<Vec<u8>> = (0..40).map(|i| frame(0x88b5, 1, i as u8, 60 + i)).collect();
    let mut v: Vec<mbuf::Mbuf> = frames.iter().map(|f| mbuf_of(&p, f)).collect();
    assert_eq!(pmd::tx_burst(a, 1, &mut v), 40);
    let mut out = Vec::new();
    assert_eq!(
        pmd::rx_burst(a, 0, &mut out, 64),
        0,
        "queue 0 is a different ring"
    );
    assert_eq!(pmd::rx_burst(a, 1, &mut out, 64), 40);
    for (m, f) in out.iter().zip(&frames) {
        assert_eq!(&bytes_of(m), f);
    }
    // ring full: the rest stays with the caller
    let mut many: Vec<mbuf::Mbuf> = (0..1100).map(|_| mbuf_of(&p, &[1, 2, 3])).collect();
    let n = pmd::tx_burst(a, 0, &mut many) as usize;
    assert_eq!(n, 1023);
    assert_eq!(many.len(), 1100 - 1023);
    let s = pmd::stats_get(a).unwrap();
    assert_eq!(
        (s.opackets, s.ipackets, s.q_ipackets[1]),
        (40 + 1023, 40, 40)
    );
    // Packets only, like DPDK's net_ring: the data path never reads a header.
    assert_eq!((s.ibytes, s.obytes, s.oerrors), (0, 0, 0));
    drop(out);
    // No TX MTU check on a ring port (no wire): a frame over MTU 1500 goes through.
    let big = frame(0x88b5, 1, 7, 1600);
    let mut v = vec![mbuf_of(&p, &big)];
    assert_eq!(pmd::tx_burst(a, 1, &mut v), 1);
    let mut out = Vec::new();
    assert_eq!(pmd::rx_burst(a, 1, &mut out, 8), 1);
    assert_eq!(bytes_of(&out[0]), big);
    assert_eq!(pmd::stats_get(a).unwrap().oerrors, 0);
    drop(out);
    drop(many);
    // close frees what is left in the rings (1023 packets) and the rings
    pmd::close(a).unwrap();
    assert!(e.memzones().lookup("RG_ETH_RXTX0_net_ring_t0").is_none());
    assert_eq!(p.avail_count(), 2047);
}

#[test]
fn eth_from_rings_wires_two_ports() {
    let e = eal("ringpair");
    let p = pool(&e, "pairp", 511);
    // SAFETY: multi-producer/consumer rings; only mbuf addresses go in.
    let (r1, r2) = unsafe {
        (
            Ring::<usize>::create(&e, "fp_r1", 256, None, RingFlags::empty()).unwrap(),
            Ring::<usize>::create(&e, "fp_r2", 256, None, RingFlags::empty()).unwrap(),
        )
    };
    // SAFETY: the rings carry only `into_raw` mbufs of `p`.
    let a = unsafe {
        pmd::eth_from_rings(
            &e,
            "ringA",
            std::slice::from_ref(&r1),
            std::slice::from_ref(&r2),
        )
        .unwrap()
    };
    // SAFETY: as above.
    let b = unsafe {
        pmd::eth_from_rings(
            &e,
            "ringB",
            std::slice::from_ref(&r2),
            std::slice::from_ref(&r1),
        )
        .unwrap()
    };
    setup(a, &p, 1, 1);
    setup(b, &p, 1, 1);
    let f = frame(0x88b5, 3, 9, 200);
    let mut v = vec![mbuf_of(&p, &f), mbuf_of(&p, &f)];
    assert_eq!(pmd::tx_burst(a, 0, &mut v), 2);
    let mut out = Vec::new();
    assert_eq!(pmd::rx_burst(b, 0, &mut out, 32), 2);
    assert_eq!(bytes_of(&out[0]), f);
    // net_ring moves addresses only (as DPDK's): the port field is not stamped.
    assert_eq!(out[0].port(), mbuf::PORT_INVALID);
    assert_eq!(pmd::tx_burst(b, 0, &mut out), 2);
    assert_eq!(pmd::rx_burst(a, 0, &mut out, 32), 2);
    drop(out);
    pmd::close(a).unwrap();
    pmd::close(b).unwrap();
    assert_eq!(r1.count() + r2.count(), 0);
    // SAFETY: no other handles are used afterwards.
    unsafe {
        r1.free().unwrap();
        r2.free().unwrap();
    }
    assert_eq!(p.avail_count(), 511);
}
