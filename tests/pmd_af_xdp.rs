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

fn xstat(port: u16, name: &str) -> u64 {
    pmd::xstats_by_name(port)
        .unwrap()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no xstat {name}"))
        .1
}

/// True if `ip link show dev iface` in `ns` lists an XDP program.
fn has_xdp(ns: &Netns, iface: &str) -> bool {
    let o = ns.sh(&format!("ip -d link show dev {iface}"));
    let s = String::from_utf8_lossy(&o.stdout);
    s.contains("prog/xdp") || s.contains(" xdp")
}

/// An IPv4/UDP frame of flow `flow` (source port).
fn udp_frame(flow: u16, len: usize) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend([0x02, 0, 0, 0, 0, 9, 0x08, 0x00]);
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
    f.extend((0..len).map(|i| flow as u8 ^ i as u8));
    f
}

#[test]
fn af_xdp_veth_both_ways_and_detach_on_close() {
    let test = "af_xdp_veth_both_ways_and_detach_on_close";
    let Some(ns) = Netns::new(test, "xd") else {
        return;
    };
    ns.veth("xda", "xdb");
    let e = eal("xd");
    let p = pool(&e, "xdp", 2047);
    let nsn = ns.name.clone();
    ns.run_with(&e, &p, move |e, p| {
        let port = pmd::vdev_create(&e, "net_af_xdp_t,iface=xda").unwrap();
        let ns = Netns { name: nsn };
        assert!(has_xdp(&ns, "xda"), "our XDP program is attached");
        setup(port, &p, 1, 1);
        assert!(pmd::link_wait_up(port, LIMIT).unwrap().up);
        assert_eq!(xstat(port, "xdp_native"), 1, "veth runs XDP natively");
        let peer = RawSock::bind("xdb");
        let sent: Vec<Vec<u8>> = (0..300)
            .map(|i| frame(0x88b5, 9, i as u8, 46 + (i * 37) % 1400))
            .collect();
        let mut got = Vec::new();
        for chunk in sent.chunks(100) {
            for f in chunk {
                peer.send(f);
            }
            got.extend(rx_until(port, chunk.len(), LIMIT, |b| {
                b.len() > 13 && b[12..14] == [0x88, 0xb5]
            }));
        }
        assert_eq!(
            got, sent,
            "frames from the kernel side arrive intact, in order"
        );

        let ours: Vec<Vec<u8>> = (0..300)
            .map(|i| frame(0x88b6, 10, i as u8, 46 + (i * 13) % 1400))
            .collect();
        let mut rcv = Vec::new();
        for chunk in ours.chunks(32) {
            let mut v: Vec<mbuf::Mbuf> = chunk.iter().map(|f| mbuf_of(&p, f)).collect();
            let t0 = Instant::now();
            while !v.is_empty() && t0.elapsed() < LIMIT {
                pmd::tx_burst(port, 0, &mut v);
            }
            assert!(v.is_empty(), "TX never drained");
            rcv.extend(peer.recv_until(chunk.len(), LIMIT, |b| {
                b.len() > 13 && b[12..14] == [0x88, 0xb6]
            }));
        }
        assert_eq!(
            rcv, ours,
            "our frames reach the kernel side intact, in order"
        );
        let s = pmd::stats_get(port).unwrap();
        assert_eq!((s.ipackets >= 300, s.opackets, s.oerrors), (true, 300, 0));
        pmd::close(port).unwrap();
        assert!(!has_xdp(&ns, "xda"), "the XDP program is gone after close");
        std::mem::forget(ns); // the outer handle deletes the namespace
    });
    assert_eq!(p.avail_count(), 2047, "every mbuf back in the pool");
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
    let got = ns.run_with(&e, &p, move |_e, p| {
        setup(port, &p, 1, 1);
        assert!(pmd::link_wait_up(port, LIMIT).unwrap().up);
        let mut v: Vec<mbuf::Mbuf> = (0..40)
            .map(|i| mbuf_of(&p, &frame(0x88b6, 10, i as u8, 60 + 10 * i)))
            .collect();
        let t0 = Instant::now();
        while !v.is_empty() && t0.elapsed() < LIMIT {
            pmd::tx_burst(port, 0, &mut v);
        }
        assert!(v.is_empty());
        let peer = RawSock::bind("xtb");
        for i in 0..40 {
            peer.send(&frame(0x88b5, 9, i as u8, 80 + 5 * i));
        }
        let got = rx_until(port, 40, LIMIT, |b| {
            b.len() > 13 && b[12..14] == [0x88, 0xb5]
        });
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

#[test]
fn af_xdp_multi_queue_spreads_flows() {
    let test = "af_xdp_multi_queue_spreads_flows";
    let Some(ns) = Netns::new(test, "xm") else {
        return;
    };
    ns.sh("ip link add xma numtxqueues 4 numrxqueues 4 type veth peer name xmb numtxqueues 4 numrxqueues 4 && ip link set xma up && ip link set xmb up");
    let e = eal("xm");
    let p = pool(&e, "xmp", 2047);
    ns.run_with(&e, &p, move |e, p| {
        let port = pmd::vdev_create(&e, "net_af_xdp_m,iface=xma,queue_count=4").unwrap();
        setup(port, &p, 4, 4);
        assert!(pmd::link_wait_up(port, LIMIT).unwrap().up);
        let peer = RawSock::bind("xmb");
        let sent: Vec<Vec<u8>> = (0..64u16).map(|fl| udp_frame(fl, 40)).collect();
        for f in &sent {
            peer.send(f);
        }
        let t0 = Instant::now();
        let mut per_q = vec![Vec::new(); 4];
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
        let used = per_q.iter().filter(|q| !q.is_empty()).count();
        let counts: Vec<usize> = per_q.iter().map(Vec::len).collect();
        assert!(used >= 2, "64 flows used {used} of 4 queues: {counts:?}");
        let mut all = per_q.concat();
        all.sort();
        let mut want = sent.clone();
        want.sort();
        assert_eq!(all, want, "each frame arrives once: {counts:?}");
        pmd::close(port).unwrap();
    });
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
        .args(["netns", "exec", &ns.name])
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
    assert!(has_xdp(&ns, "xka"), "the child's XDP program is attached");
    // `ip netns exec` execs the program: the child's pid is the test binary's.
    // SAFETY: plain kill of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
    let st = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    let t0 = Instant::now();
    while has_xdp(&ns, "xka") && t0.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !has_xdp(&ns, "xka"),
        "the XDP program is gone after SIGKILL"
    );
}

#[test]
fn af_xdp_bad_devargs_name_the_key() {
    let test = "af_xdp_bad_devargs_name_the_key";
    let e = eal("xbad");
    for (spec, key) in [
        ("net_af_xdp_b0", "iface"),
        ("net_af_xdp_b1,iface=lo,shared_umem=1", "shared_umem"),
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
    ns.run_with(&e, &pool(&e, "xbp", 63), move |e, _p| {
        let err = vdev_err(&e, "net_af_xdp_q,iface=xba,start_queue=3");
        assert!(
            err.contains("'start_queue'") && err.contains("out of range"),
            "{err}"
        );
        let err = vdev_err(&e, "net_af_xdp_z,iface=xba,zero_copy=1");
        assert!(err.contains("zero-copy"), "{err}");
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
