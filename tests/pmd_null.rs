//! net_null and the ethdev API around it: bursts, handles, stats/xstats, link, MTU
//! policy, bad input, and that every mbuf goes back to its pool.

mod pmd_common;
use pmd_common::*;

use mbuf::Mbuf;
use pmd::{EthConf, MqMode, RssHf, RxOffloads, TxOffloads};

#[test]
fn null_rx_tx_stats_and_no_leak() {
    let e = eal("null");
    let p = pool(&e, "nullp", 1023);
    let a = pmd::vdev_create(&e, "net_null_a,size=100").unwrap();
    let b = pmd::vdev_create(&e, "net_null_b,copy=1").unwrap();
    let info = pmd::dev_info(a).unwrap();
    assert_eq!(info.driver_name, "net_null");
    assert_eq!(info.device_name, "net_null_a");
    assert_eq!(info.default_mtu, 1500);
    setup(a, &p, 1, 1);
    setup(b, &p, 1, 1);
    assert!(pmd::link_get(a).unwrap().up);

    let mut v = Vec::new();
    assert_eq!(pmd::rx_burst(a, 0, &mut v, 32), 32);
    assert_eq!(v.len(), 32);
    assert!(v.iter().all(|m| m.pkt_len() == 100 && m.port() == a));
    assert_eq!(pmd::rx_burst(b, 0, &mut v, 8), 8);
    assert!(v[32..]
        .iter()
        .all(|m| m.pkt_len() == 64 && m.data() == [0u8; 64]));
    // io forward a -> b
    assert_eq!(pmd::tx_burst(b, 0, &mut v), 40);
    assert!(v.is_empty());
    let sa = pmd::stats_get(a).unwrap();
    let sb = pmd::stats_get(b).unwrap();
    assert_eq!((sa.ipackets, sa.ibytes), (32, 3200));
    assert_eq!(
        (sb.ipackets, sb.opackets, sb.obytes),
        (8, 40, 32 * 100 + 8 * 64)
    );
    assert_eq!(sb.q_opackets, vec![40]);
    // xstats names line up with values
    let names = pmd::xstats_names(b).unwrap();
    let vals = pmd::xstats(b).unwrap();
    assert_eq!(names.len(), vals.len());
    let i = names.iter().position(|n| n == "tx_q0_packets").unwrap();
    assert_eq!(vals[i].value, 40);
    // the shared memzone says the same
    let sh = pmd::shared::read_port_stats(&e, b).unwrap();
    assert_eq!(
        (sh.name.as_str(), sh.driver.as_str(), sh.stats.opackets),
        ("net_null_b", "net_null", 40)
    );
    assert!(sh.link.up);
    pmd::stats_reset(b).unwrap();
    assert_eq!(pmd::stats_get(b).unwrap().opackets, 0);
    assert_eq!(
        pmd::shared::read_port_stats(&e, b).unwrap().stats.opackets,
        0
    );

    // handles
    let mut rxq = pmd::rx_queue(a, 0).unwrap();
    let mut txq = pmd::tx_queue(b, 0).unwrap();
    assert!(matches!(
        pmd::rx_queue(a, 0),
        Err(pmd::Error::QueueBusy { .. })
    ));
    assert_eq!(
        pmd::rx_burst(a, 0, &mut v, 4),
        0,
        "the handle holds the queue"
    );
    assert!(
        pmd::configure(a, 1, 1, &EthConf::default()).is_err(),
        "started"
    );
    pmd::stop(a).unwrap();
    let err = pmd::rx_queue_setup(a, 0, 512, None, &pmd::RxConf::default(), &p);
    assert!(matches!(err, Err(pmd::Error::QueueBusy { .. })), "{err:?}");
    assert!(matches!(pmd::close(a), Err(pmd::Error::QueueBusy { .. })));
    pmd::start(a).unwrap();
    for _ in 0..10 {
        rxq.rx_burst(&mut v, 32);
        txq.tx_burst(&mut v);
    }
    assert!(v.is_empty());
    drop((rxq, txq));
    assert_eq!(pmd::stats_get(b).unwrap().opackets, 320);

    pmd::close(a).unwrap();
    pmd::close(b).unwrap();
    assert!(pmd::shared::read_port_stats(&e, b).is_err());
    assert_eq!(p.avail_count(), 1023);
}

#[test]
fn stopped_port_and_bad_queues_keep_mbufs() {
    let e = eal("stopped");
    let p = pool(&e, "stp", 255);
    let a = pmd::vdev_create(&e, "net_null_s").unwrap();
    // not configured: bursts return 0
    let mut v: Vec<Mbuf> = (0..4)
        .map(|i| mbuf_of(&p, &frame(0x88b5, 1, i, 50)))
        .collect();
    assert_eq!(pmd::tx_burst(a, 0, &mut v), 0);
    assert_eq!(pmd::rx_burst(a, 0, &mut v, 4), 0);
    assert!(pmd::start(a).is_err());
    setup(a, &p, 1, 1);
    pmd::stop(a).unwrap();
    assert!(!pmd::link_get(a).unwrap().up);
    assert_eq!(pmd::tx_burst(a, 0, &mut v), 0);
    assert_eq!(
        v.len(),
        4,
        "a stopped port leaves the packets with the caller"
    );
    assert_eq!(pmd::rx_burst(a, 0, &mut v, 8), 0);
    pmd::start(a).unwrap();
    // out-of-range ids
    assert_eq!(pmd::tx_burst(a, 5, &mut v), 0);
    assert_eq!(pmd::tx_burst(999, 0, &mut v), 0);
    assert_eq!(pmd::rx_burst(a, 16, &mut v, 8), 0);
    assert_eq!(v.len(), 4);
    assert!(matches!(
        pmd::rx_queue(a, 3),
        Err(pmd::Error::BadQueue { .. })
    ));
    assert!(matches!(
        pmd::dev_info(999),
        Err(pmd::Error::NoSuchPort { .. })
    ));
    pmd::stop(a).unwrap();
    assert!(matches!(
        pmd::rx_queue_setup(a, 7, 512, None, &pmd::RxConf::default(), &p),
        Err(pmd::Error::BadQueue { .. })
    ));
    pmd::start(a).unwrap();

    // MTU policy: frames over MTU + 14 are freed, counted in oerrors, and consumed.
    pmd::mtu_set(a, 100).unwrap();
    assert_eq!(pmd::mtu_get(a).unwrap(), 100);
    assert!(pmd::mtu_set(a, 10).is_err());
    let mut w = vec![
        mbuf_of(&p, &frame(0x88b5, 1, 0, 100)), // 114 bytes: ok
        mbuf_of(&p, &frame(0x88b5, 1, 0, 101)), // 115: over
        mbuf_of(&p, &frame(0x88b5, 1, 0, 20)),
    ];
    assert_eq!(pmd::tx_burst(a, 0, &mut w), 3);
    let s = pmd::stats_get(a).unwrap();
    assert_eq!((s.opackets, s.oerrors), (2, 1));
    assert!(w.is_empty());

    drop(v);
    pmd::close(a).unwrap();
    assert_eq!(p.avail_count(), 255);
}

#[test]
fn configure_checks_queues_offloads_rss() {
    let e = eal("conf");
    let a = pmd::vdev_create(&e, "net_null_c,no-rx=1").unwrap();
    assert!(matches!(
        pmd::configure(a, 17, 1, &EthConf::default()),
        Err(pmd::Error::Unsupported { .. })
    ));
    assert!(pmd::configure(a, 0, 0, &EthConf::default()).is_err());
    let bad = EthConf {
        rx_offloads: RxOffloads::TCP_LRO,
        ..Default::default()
    };
    let err = pmd::configure(a, 1, 1, &bad).unwrap_err().to_string();
    assert!(err.contains("TCP_LRO"), "{err}");
    let bad = EthConf {
        tx_offloads: TxOffloads::TCP_TSO,
        ..Default::default()
    };
    assert!(pmd::configure(a, 1, 1, &bad).is_err());
    let rss = EthConf {
        mq_mode: MqMode::Rss,
        rss: pmd::RssConf {
            key: None,
            hf: RssHf::IPV4,
        },
        ..Default::default()
    };
    pmd::configure(a, 4, 4, &rss).unwrap();
    assert_eq!(pmd::dev_info(a).unwrap().nb_rx_queues, 4);
    let p = pool(&e, "confp", 127);
    for q in 0..4 {
        pmd::rx_queue_setup(a, q, 256, None, &Default::default(), &p).unwrap();
        pmd::tx_queue_setup(a, q, 256, None, &Default::default()).unwrap();
    }
    pmd::start(a).unwrap();
    let mut v = Vec::new();
    assert_eq!(pmd::rx_burst(a, 2, &mut v, 32), 0, "no-rx");
    // modes and MAC
    pmd::promiscuous_set(a, true).unwrap();
    assert!(pmd::promiscuous_get(a).unwrap());
    pmd::allmulticast_set(a, true).unwrap();
    assert!(pmd::allmulticast_get(a).unwrap());
    pmd::mac_addr_set(a, [0x02, 1, 2, 3, 4, 5]).unwrap();
    assert_eq!(pmd::mac_addr_get(a).unwrap(), [0x02, 1, 2, 3, 4, 5]);
    assert!(pmd::mac_addr_set(a, [0x01, 0, 0, 0, 0, 1]).is_err());
    assert_eq!(
        pmd::shared::read_port_stats(&e, a).unwrap().mac,
        [0x02, 1, 2, 3, 4, 5]
    );
    pmd::set_link_up(a, false).unwrap();
    assert!(!pmd::link_get(a).unwrap().up);
    pmd::set_link_up(a, true).unwrap();
    assert!(
        pmd::link_wait_up(a, std::time::Duration::from_secs(1))
            .unwrap()
            .up
    );
    pmd::close(a).unwrap();
    assert_eq!(p.avail_count(), 127);
}

#[test]
fn bad_vdev_strings_are_named() {
    let e = eal("badvdev");
    // Each bad string, and the words its error must contain.
    let cases: [(&str, &[&str]); 7] = [
        ("net_bogus0", &["net_bogus0", "net_null"]),
        ("net_null9,sizee=3", &["'sizee'", "size"]),
        ("net_null9,size=0", &["size"]),
        ("net_null9,size=abc", &["not a number"]),
        ("net_null9,copy", &["key=value"]),
        ("net_af_packet9,iface=fp-no-such-if0", &["fp-no-such-if0"]),
        ("net_af_packet9", &["iface"]),
    ];
    for (spec, words) in cases {
        let err = vdev_err(&e, spec);
        assert!(words.iter().all(|w| err.contains(w)), "{spec}: {err}");
    }
    // a name in use
    let a = pmd::vdev_create(&e, "net_null_dup").unwrap();
    assert!(matches!(
        pmd::vdev_create(&e, "net_null_dup"),
        Err(pmd::Error::NameInUse(_))
    ));
    // rx pool too small for size
    let p = pktmbuf_small(&e);
    let b = pmd::vdev_create(&e, "net_null_big,size=2000").unwrap();
    pmd::configure(b, 1, 1, &EthConf::default()).unwrap();
    assert!(pmd::rx_queue_setup(b, 0, 64, None, &Default::default(), &p).is_err());
    pmd::close(a).unwrap();
    pmd::close(b).unwrap();
}

fn pktmbuf_small(e: &eal::Eal) -> mbuf::PktmbufPool {
    mbuf::pktmbuf_pool_create(e, "small", 63, 0, 0, 128 + 512, None).unwrap()
}

#[test]
fn probe_vdevs_from_eal_args() {
    let e = eal_with(
        "probe",
        &["--vdev", "net_null_p0,size=128", "--vdev=net_ring_p1"],
    );
    let ports = pmd::probe_vdevs(&e).unwrap();
    assert_eq!(ports.len(), 2);
    assert_eq!(pmd::dev_info(ports[0]).unwrap().driver_name, "net_null");
    assert_eq!(pmd::dev_info(ports[1]).unwrap().driver_name, "net_ring");
    assert_eq!(pmd::port_by_name("net_ring_p1"), Some(ports[1]));
    for p in ports {
        pmd::close(p).unwrap();
    }
}
