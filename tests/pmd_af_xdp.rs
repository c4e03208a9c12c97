//! net_af_xdp over veth pairs in a private network namespace: frames both ways checked
//! by a peer AF_PACKET socket, flows spread over several queues, our XDP program gone
//! after close and after the owning process is killed with SIGKILL, and bad devargs
//! refused with errors naming the key.

mod pmd_common;
use pmd_common::*;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(10);

/// True if `ip link show dev iface` in `ns` lists an XDP program.
fn has_xdp(ns: &str, iface: &str) -> bool {
    let o = std::process::Command::new("ip")
        .args([
            "netns", "exec", ns, "ip", "-d", "link", "show", "dev", iface,
        ])
        .output()
        .expect("run ip netns exec");
    assert!(
        o.status.success(),
        "ip -d link show dev {iface} in {ns}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = String::from_utf8_lossy(&o.stdout);
    s.contains("prog/xdp") || s.contains(" xdp")
}

#[test]
fn af_xdp_veth_both_ways_and_detach_on_close() {
    let frames = BothWays {
        inbound: (0..300)
            .map(|i| frame(0x88b5, 9, i as u8, 46 + (i * 37) % 1400))
            .collect(),
        outbound: (0..300)
            .map(|i| frame(0x88b6, 10, i as u8, 46 + (i * 13) % 1400))
            .collect(),
    };
    veth_both_ways(
        "af_xdp_veth_both_ways_and_detach_on_close",
        "xd",
        "net_af_xdp_t,iface={a}",
        frames,
        |ns, port| {
            assert!(has_xdp(ns, "xda"), "our XDP program is attached");
            assert_eq!(xstat(port, "xdp_native"), 1, "veth runs XDP natively");
            assert_eq!(xstat(port, "mbuf_umem"), 1, "the mempool is the UMEM");
        },
        |ns| assert!(!has_xdp(ns, "xda"), "the XDP program is gone after close"),
    );
}

#[test]
fn af_xdp_copy_fallback_for_a_pool_that_cannot_be_the_umem() {
    let test = "af_xdp_copy_fallback_for_a_pool_that_cannot_be_the_umem";
    let Some(ns) = Netns::new(test, "xc") else {
        return;
    };
    ns.veth("xca", "xcb");
    let e = eal("xc");
    // 8 KiB buffers: an mbuf is larger than a page, so no UMEM chunk can hold it.
    let p = mbuf::pktmbuf_pool_create(&e, "xcp", 1023, 0, 0, 8192, None).expect("pool");
    run_with(&ns, &e, &p, move |e, p| {
        let port = pmd::vdev_create(&e, "net_af_xdp_cf,iface=xca").unwrap();
        setup(port, &p, 1, 1);
        assert!(pmd::link_wait_up(port, LIMIT).unwrap().up);
        assert_eq!(xstat(port, "mbuf_umem"), 0, "frames copied: our own UMEM");
        let peer = RawSock::bind("xcb");
        let inbound: Vec<Vec<u8>> = (0..200)
            .map(|i| frame(0x88b5, 9, i as u8, 46 + (i * 37) % 1400))
            .collect();
        let got = peer_to_port(&peer, port, &inbound, 100, LIMIT);
        assert!(
            got == inbound,
            "frames from the peer arrive intact, in order"
        );
        let outbound: Vec<Vec<u8>> = (0..200)
            .map(|i| frame(0x88b6, 10, i as u8, 46 + (i * 13) % 1400))
            .collect();
        let rcv = port_to_peer(&peer, port, &p, &outbound, 32, LIMIT);
        assert!(
            rcv == outbound,
            "our frames reach the peer intact, in order"
        );
        let s = pmd::stats_get(port).unwrap();
        assert_eq!((s.ipackets >= 200, s.opackets, s.oerrors), (true, 200, 0));
        pmd::close(port).unwrap();
    });
    assert_eq!(p.avail_count(), 1023, "every mbuf back in the pool");
}

#[test]
fn af_xdp_tx_seen_by_tshark_and_rx_from_peer() {
    let test = "af_xdp_tx_seen_by_tshark_and_rx_from_peer";
    let Some(ns) = Netns::new(test, "xt") else {
        return;
    };
    ns.veth("xta", "xtb");
    let e = eal("xt");
    let p = pool(&e, "xtp", 511);
    // Our frames captured by tshark on the peer (40 in one burst: more than the kernel
    // sends per copy-mode wakeup); the peer's frames checked by what we receive (on our
    // side native XDP takes frames before any packet tap could see them).
    let port = {
        let (e, _p) = (e.clone(), p.clone());
        ns.run(move || pmd::vdev_create(&e, "net_af_xdp_x,iface=xta").unwrap())
    };
    let Some(out_cap) = Tshark::start(test, &ns, "xtb", 40, "ether proto 0x88b6") else {
        pmd::close(port).unwrap();
        return;
    };
    let got = run_with(&ns, &e, &p, move |_e, p| {
        setup(port, &p, 1, 1);
        assert!(pmd::link_wait_up(port, LIMIT).unwrap().up);
        let ours: Vec<Vec<u8>> = (0..40)
            .map(|i| frame(0x88b6, 10, i as u8, 60 + 10 * i))
            .collect();
        tx_all(port, &p, &ours, LIMIT);
        let peer = RawSock::bind("xtb");
        for i in 0..40 {
            peer.send(&frame(0x88b5, 9, i as u8, 80 + 5 * i));
        }
        let got = rx_until(port, 40, LIMIT, |b| is_ethertype(b, 0x88b5));
        pmd::close(port).unwrap();
        got.iter().map(Vec::len).collect::<Vec<usize>>()
    });
    let sent_by_us: Vec<usize> = (0..40).map(|i| 14 + 60 + 10 * i).collect();
    let sent_to_us: Vec<usize> = (0..40).map(|i| 14 + 80 + 5 * i).collect();
    assert_eq!(
        out_cap.lengths(LIMIT),
        sent_by_us,
        "tshark on the peer saw our 40 frames"
    );
    assert_eq!(got, sent_to_us, "we received the peer's 40 frames");
}

/// A port made by `spec` (with `{a}` for its interface) on `<tag>a` of a veth pair of
/// four queues each way in a namespace made for `test`, four RX and TX queues set up and
/// the link up: `body` gets the port, its pool and a peer socket on `<tag>b`, then the
/// port is closed and the pool must be whole.
fn four_queues(
    test: &str,
    tag: &str,
    spec: &str,
    body: impl FnOnce(&eal::Eal, u16, &mbuf::PktmbufPool, &RawSock) + Send + 'static,
) {
    let Some(ns) = Netns::new(test, tag) else {
        return;
    };
    let (a, b) = (format!("{tag}a"), format!("{tag}b"));
    ns.sh(&format!(
        "ip link add {a} numtxqueues 4 numrxqueues 4 type veth peer name {b} \
         numtxqueues 4 numrxqueues 4 && ip link set {a} up && ip link set {b} up"
    ));
    let e = eal(tag);
    let p = pool(&e, &format!("{tag}p"), 2047);
    let spec = spec.replace("{a}", &a);
    run_with(&ns, &e, &p, move |e, p| {
        let port = pmd::vdev_create(&e, &spec).unwrap();
        setup(port, &p, 4, 4);
        assert!(pmd::link_wait_up(port, LIMIT).unwrap().up);
        body(&e, port, &p, &RawSock::bind(&b));
        pmd::close(port).unwrap();
    });
    assert_eq!(p.avail_count(), 2047, "every mbuf back in the pool");
}

#[test]
fn af_xdp_multi_queue_spreads_flows() {
    let test = "af_xdp_multi_queue_spreads_flows";
    four_queues(
        test,
        "xm",
        "net_af_xdp_m,iface={a},queue_count=4",
        |e, port, p, peer| {
            assert_eq!(
                xstat(port, "mbuf_umem"),
                1,
                "the mempool is each queue's UMEM"
            );
            tx_each_queue(port, p, peer);
            // Mbufs the UMEM does not hold (another pool, two segments) are copied into
            // one of its mbufs on the way out.
            let other = pool(e, "xmo", 63);
            let f1 = frame(0x88b6, 20, 1, 300);
            let f2 = frame(0x88b6, 20, 2, 700);
            let mut chained = mbuf_of(p, &f2[..200]);
            chained.chain(mbuf_of(&other, &f2[200..])).unwrap();
            let mut v = vec![mbuf_of(&other, &f1), chained];
            let t0 = Instant::now();
            while !v.is_empty() && t0.elapsed() < LIMIT {
                pmd::tx_burst(port, 1, &mut v);
            }
            assert!(v.is_empty(), "TX never drained");
            let got = peer.recv_until(2, LIMIT, |b| is_ethertype(b, 0x88b6));
            assert!(got == vec![f1, f2], "copied frames arrive intact");
            assert_eq!(other.avail_count(), 63, "the other pool's mbufs are back");
            let counts = spread_flows(peer, port, 4, 64, LIMIT);
            let used = counts.iter().filter(|&&n| n > 0).count();
            assert!(used >= 2, "64 flows used {used} of 4 queues: {counts:?}");
            // Each socket's kernel counters are xstats, and the frames they say the kernel
            // dropped are what imissed adds up.
            let imissed = pmd::stats_get(port).unwrap().imissed;
            let mut dropped = 0;
            for q in 0..4 {
                for n in ["dropped", "ring_full", "fill_ring_empty", "invalid_descs"] {
                    let v = xstat(port, &format!("rx_q{q}_{n}"));
                    if n == "dropped" || n == "ring_full" {
                        dropped += v;
                    }
                }
                xstat(port, &format!("tx_q{q}_invalid_descs"));
                xstat(port, &format!("tx_q{q}_ring_empty"));
            }
            assert_eq!(
                pmd::stats_get(port).unwrap().imissed,
                dropped,
                "imissed is the sockets' dropped frames (it was {imissed} a moment before)"
            );
        },
    );
}

#[test]
fn af_xdp_shared_umem_over_four_queues() {
    let test = "af_xdp_shared_umem_over_four_queues";
    let spec = "net_af_xdp_s,iface={a},queue_count=4,shared_umem=1";
    four_queues(test, "xs", spec, |_e, port, p, peer| {
        assert_eq!(xstat(port, "shared_umem"), 1, "the queues share one UMEM");
        assert_eq!(xstat(port, "mbuf_umem"), 1, "the mempool is that UMEM");
        assert_eq!(
            xstat(port, "umem_borrowed_queues"),
            3,
            "three queues bound to the first one's UMEM"
        );
        // RX: every frame once and intact on whichever queue its flow hashes to, twice
        // over (the chunks of each queue's region go round the fill ring).
        for _ in 0..2 {
            let counts = spread_flows(peer, port, 4, 200, LIMIT);
            let used = counts.iter().filter(|&&n| n > 0).count();
            assert!(used >= 2, "200 flows used {used} of 4 queues: {counts:?}");
        }
        // TX: each queue sends from its own region of the shared UMEM.
        tx_each_queue(port, p, peer);
    });
}

/// 40 frames of each of the four TX queues of `port` reach `peer` intact; 160 counted.
fn tx_each_queue(port: u16, p: &mbuf::PktmbufPool, peer: &RawSock) {
    let mut sent = Vec::new();
    for q in 0..4u16 {
        let frames: Vec<Vec<u8>> = (0..40)
            .map(|i| frame(0x88b6, 10 + q as u8, i as u8, 60 + 7 * i + q as usize))
            .collect();
        let mut v: Vec<_> = frames.iter().map(|f| mbuf_of(p, f)).collect();
        let t0 = Instant::now();
        while !v.is_empty() && t0.elapsed() < LIMIT {
            pmd::tx_burst(port, q, &mut v);
        }
        assert!(v.is_empty(), "queue {q} never drained its TX burst");
        sent.extend(frames);
    }
    let mut got = peer.recv_until(sent.len(), LIMIT, |b| is_ethertype(b, 0x88b6));
    got.sort();
    sent.sort();
    assert!(got == sent, "the peer got each queue's frames intact");
    assert_eq!(pmd::stats_get(port).unwrap().opackets, 160);
}

#[test]
fn af_xdp_shared_umem_across_ports() {
    let test = "af_xdp_shared_umem_across_ports";
    let Some(ns) = Netns::new(test, "xu") else {
        return;
    };
    ns.veth("xua", "xub");
    let e = eal("xu");
    let p = pool(&e, "xup", 2047);
    run_with(&ns, &e, &p, move |e, p| {
        // Two ports, the two ends of the pair, one mempool: one UMEM (DPDK's
        // shared_umem), registered by port a's socket, port b's bound to it.
        let pa = pmd::vdev_create(&e, "net_af_xdp_ua,iface=xua,shared_umem=1").unwrap();
        let pb = pmd::vdev_create(&e, "net_af_xdp_ub,iface=xub,shared_umem=1").unwrap();
        setup(pa, &p, 1, 1);
        setup(pb, &p, 1, 1);
        assert!(pmd::link_wait_up(pa, LIMIT).unwrap().up);
        assert!(pmd::link_wait_up(pb, LIMIT).unwrap().up);
        assert_eq!(xstat(pa, "umem_borrowed_queues"), 0);
        assert_eq!(xstat(pb, "umem_borrowed_queues"), 1, "b uses a's UMEM");
        for (from, to, et) in [(pa, pb, 0x88b5u16), (pb, pa, 0x88b6)] {
            let frames: Vec<Vec<u8>> = (0..100)
                .map(|i| frame(et, 3, i as u8, 46 + (i * 29) % 1400))
                .collect();
            tx_all(from, &p, &frames, LIMIT);
            let mut got = Vec::new();
            let mut v = Vec::new();
            let t0 = Instant::now();
            while got.len() < frames.len() && t0.elapsed() < LIMIT {
                pmd::rx_burst(to, 0, &mut v, 32);
                got.extend(
                    v.drain(..)
                        .map(|m| bytes_of(&m))
                        .filter(|b| is_ethertype(b, et)),
                );
            }
            assert!(
                got == frames,
                "port {from} to port {to}: frames intact, in order"
            );
        }
        pmd::close(pb).unwrap();
        pmd::close(pa).unwrap();
    });
    assert_eq!(p.avail_count(), 2047, "every mbuf back in the pool");
}

/// Not a test on its own: the child process of `af_xdp_program_gone_after_sigkill`
/// (runs only with `FP_XDP_CHILD_IFACE` set): opens a port, says so, and waits to be
/// killed.
#[test]
fn af_xdp_sigkill_child() {
    let Ok(iface) = std::env::var("FP_XDP_CHILD_IFACE") else {
        return;
    };
    let e = eal("xkc");
    let _port = pmd::vdev_create(&e, &format!("net_af_xdp_k,iface={iface}")).unwrap();
    println!("FP_XDP_ATTACHED");
    std::thread::sleep(Duration::from_secs(60));
    panic!("not killed within 60 s");
}

#[test]
fn af_xdp_program_gone_after_sigkill() {
    let test = "af_xdp_program_gone_after_sigkill";
    let Some(ns) = Netns::new(test, "xk") else {
        return;
    };
    ns.veth("xka", "xkb");
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "af_xdp_sigkill_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FP_XDP_CHILD_IFACE", "xka")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let out = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(out).lines();
    let attached = lines.any(|l| l.map(|l| l.contains("FP_XDP_ATTACHED")).unwrap_or(false));
    assert!(attached, "child never attached");
    assert!(
        has_xdp(ns.name(), "xka"),
        "the child's XDP program is attached"
    );
    // `ip netns exec` execs the program: the child's pid is the test binary's.
    // SAFETY: plain kill of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
    let st = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    let t0 = Instant::now();
    while has_xdp(ns.name(), "xka") && t0.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !has_xdp(ns.name(), "xka"),
        "the XDP program is gone after SIGKILL"
    );
}

#[test]
fn af_xdp_bad_devargs_name_the_key() {
    let test = "af_xdp_bad_devargs_name_the_key";
    let e = eal("xbad");
    for (spec, key) in [
        ("net_af_xdp_b0", "iface"),
        ("net_af_xdp_b1,iface=lo,shared_umem=2", "shared_umem"),
        (
            "net_af_xdp_b2,iface=lo,force_copy=1,zero_copy=1",
            "zero_copy",
        ),
        ("net_af_xdp_b3,iface=lo,busy_budget=x", "busy_budget"),
        ("net_af_xdp_b4,iface=lo,queue_count=0", "queue_count"),
        ("net_af_xdp_b5,iface=lo,xdp_prog=a.o", "xdp_prog"),
    ] {
        let err = vdev_err(&e, spec);
        assert!(err.contains(&format!("'{key}'")), "{spec}: {err}");
    }
    let Some(ns) = Netns::new(test, "xb") else {
        return;
    };
    ns.veth("xba", "xbb");
    run_with(&ns, &e, &pool(&e, "xbp", 63), move |e, p| {
        let err = vdev_err(&e, "net_af_xdp_q,iface=xba,start_queue=3");
        assert!(
            err.contains("'start_queue'") && err.contains("out of range"),
            "{err}"
        );
        // zero_copy=1 fails where the socket is bound: at RX queue setup (veth has no
        // zero-copy AF_XDP), and the port closes cleanly after.
        let pz = pmd::vdev_create(&e, "net_af_xdp_z,iface=xba,zero_copy=1").unwrap();
        pmd::configure(pz, 1, 1, &pmd::EthConf::default()).unwrap();
        let rx = pmd::RxConf::default();
        let err = pmd::rx_queue_setup(pz, 0, 64, None, &rx, &p).unwrap_err();
        assert!(err.to_string().contains("zero-copy"), "{err}");
        let err = pmd::tx_queue_setup(pz, 0, 64, None, &pmd::TxConf::default()).unwrap_err();
        assert!(err.to_string().contains("set up RX queue first"), "{err}");
        pmd::close(pz).unwrap();
        let err = vdev_err(&e, "net_af_xdp_n,iface=nosuch0");
        assert!(err.contains("nosuch0"), "{err}");
        // A program already on the interface that is not ours is refused, not replaced.
        let p1 = pmd::vdev_create(&e, "net_af_xdp_a,iface=xba").unwrap();
        let err = vdev_err(&e, "net_af_xdp_c,iface=xba,force_copy=1");
        assert!(
            err.contains("already has an XDP program") || err.contains("another XSK"),
            "{err}"
        );
        pmd::close(p1).unwrap();
    });
}
