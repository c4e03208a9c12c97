//! net_af_packet and net_tap against real kernel interfaces in a private network
//! namespace made by the test (veth pair; TAP device), deleted at the end even on
//! failure. Skipped with a printed reason when not root or `ip` is missing.

mod pmd_common;
use pmd_common::*;

use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(5);

#[test]
fn af_packet_on_veth_both_directions() {
    let Some(ns) = Netns::new("af_packet_on_veth_both_directions", "afp") else {
        return;
    };
    ns.veth("fpa", "fpb");
    let e = eal("afp");
    let p = pool(&e, "afpp", 1023);
    run_with(&ns, &e, &p, move |e, p| {
        let port = pmd::vdev_create(&e, "net_af_packet_t,iface=fpa,qpairs=2,framecnt=256").unwrap();
        let info = pmd::dev_info(port).unwrap();
        assert_eq!(
            (info.max_rx_queues, info.if_name.as_deref()),
            (2, Some("fpa"))
        );
        setup(port, &p, 2, 2);
        assert!(pmd::link_wait_up(port, LIMIT).unwrap().up);
        let peer = RawSock::bind("fpb");

        // kernel side -> ours, over a fanout group of two sockets: every frame arrives
        // once, on one of the two queues, intact (one flow: all on the same queue).
        let sent: Vec<Vec<u8>> = (0..6)
            .map(|i| frame(0x88b5, 9, i as u8, 50 + 200 * i))
            .collect();
        for f in &sent {
            peer.send(f);
        }
        let t0 = std::time::Instant::now();
        let mut per_q = [Vec::new(), Vec::new()];
        let mut v = Vec::new();
        while per_q.iter().map(Vec::len).sum::<usize>() < sent.len() && t0.elapsed() < LIMIT {
            for (q, got) in per_q.iter_mut().enumerate() {
                pmd::rx_burst(port, q as u16, &mut v, 32);
                got.extend(
                    v.drain(..)
                        .map(|m| bytes_of(&m))
                        .filter(|b| b.len() > 13 && b[12..14] == [0x88, 0xb5]),
                );
            }
        }
        let mut all: Vec<Vec<u8>> = per_q.concat();
        all.sort();
        let mut want = sent.clone();
        want.sort();
        assert_eq!(
            all, want,
            "frames from the kernel side arrive intact, each once"
        );
        pmd::close(port).unwrap();

        let port = pmd::vdev_create(&e, "net_af_packet_u,iface=fpa").unwrap();
        setup(port, &p, 1, 1);
        assert!(pmd::link_wait_up(port, LIMIT).unwrap().up);
        for f in &sent {
            peer.send(f);
        }
        let got = rx_until(port, sent.len(), LIMIT, |b| {
            b.len() > 13 && b[12..14] == [0x88, 0xb5]
        });
        assert_eq!(got, sent, "frames from the kernel side arrive intact");

        // ours -> kernel side
        let ours: Vec<Vec<u8>> = (0..6)
            .map(|i| frame(0x88b6, 10, i as u8, 46 + 150 * i))
            .collect();
        let mut v: Vec<mbuf::Mbuf> = ours.iter().map(|f| mbuf_of(&p, f)).collect();
        assert_eq!(pmd::tx_burst(port, 0, &mut v), 6);
        let rcv = peer.recv_until(ours.len(), LIMIT, |b| {
            b.len() > 13 && b[12..14] == [0x88, 0xb6]
        });
        assert_eq!(rcv, ours, "our frames reach the kernel side intact");
        let s = pmd::stats_get(port).unwrap();
        assert!(s.ipackets >= 6 && s.opackets == 6, "{s:?}");

        // MTU: the kernel interface follows, oversize frames are dropped and counted
        pmd::mtu_set(port, 1000).unwrap();
        let mut v = vec![mbuf_of(&p, &frame(0x88b6, 10, 0, 1100))];
        assert_eq!(pmd::tx_burst(port, 0, &mut v), 1);
        assert_eq!(pmd::stats_get(port).unwrap().oerrors, 1);
        pmd::promiscuous_set(port, true).unwrap();
        pmd::set_link_up(port, false).unwrap();
        assert!(!pmd::link_get(port).unwrap().up);
        pmd::set_link_up(port, true).unwrap();
        pmd::close(port).unwrap();
    });
    let out = ns.sh("ip link show fpa");
    assert!(String::from_utf8_lossy(&out.stdout).contains("mtu 1000"));
    assert_eq!(p.avail_count(), 1023);
}

#[test]
fn tap_frames_and_ping() {
    let test = "tap_frames_and_ping";
    if !testkit::need_tool(test, "ping") {
        return;
    }
    let Some(ns) = Netns::new(test, "tap") else {
        return;
    };
    let e = eal("tap");
    let p = pool(&e, "tapp", 511);
    let nsname = ns.name().to_string();
    run_with(&ns, &e, &p, move |e, p| {
        let port = pmd::vdev_create(&e, "net_tap_t,iface=fptap0,mac=02:00:00:aa:bb:cc").unwrap();
        assert_eq!(
            pmd::mac_addr_get(port).unwrap(),
            [2, 0, 0, 0xaa, 0xbb, 0xcc]
        );
        setup(port, &p, 1, 1);
        assert!(pmd::link_wait_up(port, LIMIT).unwrap().up);
        let o = std::process::Command::new("ip")
            .args(["addr", "add", "10.201.0.1/24", "dev", "fptap0"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let peer = RawSock::bind("fptap0");

        // kernel -> ours: a raw frame sent on the TAP interface comes out of our RX
        let f = frame(0x88b5, 5, 1, 300);
        peer.send(&f);
        let got = rx_until(port, 1, LIMIT, |b| {
            b.len() > 13 && b[12..14] == [0x88, 0xb5]
        });
        assert_eq!(got, vec![f]);

        // ping makes the kernel ARP for 10.201.0.2 through the TAP: we see the request
        let ping = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &nsname,
                "ping",
                "-c",
                "3",
                "-i",
                "0.2",
                "-W",
                "1",
                "10.201.0.2",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let arp = rx_until(port, 1, LIMIT, |b| {
            b.len() >= 42 && b[12..14] == [0x08, 0x06] && b[38..42] == [10, 201, 0, 2]
        });
        // `ip netns exec` exits 1 both when ping gets no reply (expected: nothing answers
        // the ARP) and when ping cannot be run; its stderr tells them apart.
        let pinged = ping.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&pinged.stderr);
        assert!(
            !err.contains("exec of"),
            "ping did not run in the namespace (scripts/test.sh installs iputils-ping): {err}"
        );
        assert_eq!(
            arp.len(),
            1,
            "no ARP request for 10.201.0.2 seen on the TAP"
        );
        assert_eq!(
            &arp[0][28..32],
            &[10, 201, 0, 1],
            "sender IP of the ARP request"
        );

        // ours -> kernel
        let ours = frame(0x88b6, 6, 2, 500);
        let mut v = vec![mbuf_of(&p, &ours)];
        assert_eq!(pmd::tx_burst(port, 0, &mut v), 1);
        let rcv = peer.recv_until(1, LIMIT, |b| b.len() > 13 && b[12..14] == [0x88, 0xb6]);
        assert_eq!(rcv, vec![ours]);
        pmd::close(port).unwrap();
    });
    assert_eq!(p.avail_count(), 511);
}

#[test]
fn pcap_live_iface_on_veth() {
    let Some(ns) = Netns::new("pcap_live_iface_on_veth", "pcl") else {
        return;
    };
    ns.veth("fpc", "fpd");
    let e = eal("pcl");
    let p = pool(&e, "pclp", 255);
    run_with(&ns, &e, &p, move |e, p| {
        let port = pmd::vdev_create(&e, "net_pcap_live,iface=fpc").unwrap();
        setup(port, &p, 1, 1);
        let peer = RawSock::bind("fpd");
        let f = frame(0x88b5, 3, 3, 700);
        peer.send(&f);
        assert_eq!(
            rx_until(port, 1, LIMIT, |b| b.len() > 13
                && b[12..14] == [0x88, 0xb5]),
            vec![f]
        );
        let g = frame(0x88b6, 3, 4, 90);
        let mut v = vec![mbuf_of(&p, &g)];
        assert_eq!(pmd::tx_burst(port, 0, &mut v), 1);
        assert_eq!(
            peer.recv_until(1, LIMIT, |b| b.len() > 13 && b[12..14] == [0x88, 0xb6]),
            vec![g]
        );
        pmd::close(port).unwrap();
    });
    assert_eq!(p.avail_count(), 255);
}
