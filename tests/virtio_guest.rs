//! The virtio-net poll-mode driver (`net_virtio`) on QEMU's `virtio-net-pci` (modern,
//! `disable-legacy=on`, `iommu_platform=on`, `mq=on`): one guest (testbed/) with four
//! virtio NICs. NICs A and B (00:10.0, 00:11.0) have Unix datagram sockets this test
//! holds as their wires; C and D (00:12.0, 00:13.0) are wired to each other (a frame
//! out of one arrives at the other) for the benchmark.
//!
//! In one boot:
//! * `virtio_suite` over VFIO (IOVA = VA, the device translating through the vIOMMU)
//!   and over uio_pci_generic (`--iova-mode pa`), with `fp-virtiotest suite` in the
//!   guest: frames the host sends into A arrive byte for byte; with promiscuous off (a
//!   control-queue command) frames to a foreign MAC are filtered, with it on they
//!   arrive; after a MAC change through the control queue frames to the new MAC arrive
//!   and frames to the old one are filtered; frames sent out of A and B arrive here
//!   byte for byte and in order (checked here, the peer being QEMU's socket backend and
//!   this test); a chained packet is dropped and counted; the counters match; every mbuf
//!   is back in the pool. UIO in VA mode is refused with the fix named.
//! * `virtio_l2fwd`: the l2fwd sample forwards N frames A -> B (VFIO and UIO); each
//!   arrives here once with l2fwd's MAC rewrite and the rest intact.
//! * `virtio_testpmd_io`: testpmd io forwarding over A and B (VFIO): N frames sent into
//!   A come out of B unchanged, and testpmd's forward statistics say N.
//! * `virtio_unbind`: unbinding A under a polling program makes it stop with exit 3.
//! * `virtio_tshark`: frames A sends are decoded by tshark from a pcap this test writes
//!   of what it received (a dissector we did not write agrees on addresses, type and
//!   length).
//! * `virtio_mq`: a fifth NIC (00:14.0) is a vhost-user device with two queue pairs
//!   whose back end is Debian's `dpdk-testpmd` on the host (`net_vhost`, macswap, one
//!   stream per queue): the driver negotiates MQ, turns both pairs on through the
//!   control queue, and frames sent on TX queue q come back on RX queue q only, MACs
//!   swapped by DPDK and the rest intact (over uio_pci_generic, `--iova-mode pa`: a
//!   vhost-user device without IOTLB bypasses the IOMMU).
//! * `virtio_bench` (when `FP_VIRTIO_BENCH=1`, or always under `FP_REQUIRE=1`): testpmd
//!   io forwarding between C and D with `--tx-first`, our testpmd + `net_virtio` against
//!   Debian's `dpdk-testpmd` + DPDK's `net_virtio` (copied into the guest with the
//!   plugins it needs), alternating rounds, the same pool size (4096 mbufs) on both sides
//!   and DPDK's leftover hugepage files removed after each round; prints the ratio of
//!   forwarded packets/s. `ferroplane-compare virtio` runs the same comparison in a guest
//!   of its own, with more rounds and QEMU-counted doorbell writes.
//!
//! The device's queue pairs: QEMU's datagram backend has one queue, so A and B offer MQ
//! with `max_virtqueue_pairs` = 1; the vhost-user NIC has two.
//!
//! Runs when QEMU can be used or installed (root), otherwise a counted skip (need
//! `guest`). `cargo test --test virtio_guest -- --nocapture`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testbed::frames::{
    test_frame, HOST, N_L2FWD, S_L2FWD, S_NEWMAC, S_OLDMAC, S_TESTPMD, VIRTIO_A, VIRTIO_B,
    VIRTIO_NEW,
};
use testbed::wire::{self, field, fresh_run, send_interleaved};
use testbed::{boot_or_skip, build_release, repo_root, FrameSocket, Guest, GuestOptions};

const A: &str = "0000:00:10.0";
const B: &str = "0000:00:11.0";
const C: &str = "0000:00:12.0";
const D: &str = "0000:00:13.0";
const E: &str = "0000:00:14.0";
/// Frames per queue of the multi-queue check.
const N_MQ: u32 = 100;
/// Frames of the MAC-change step (as fp-virtiotest).
const N_MAC: u32 = 40;
/// Frames testpmd forwards.
const N_TESTPMD: u32 = 400;
/// DPDK's driver plugins the guest needs (loaded with `-d`).
const DPDK_PMDS: &str = "/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0";
/// (dpdk-testpmd links librte_bus_pci itself: loading it again with `-d` registers its
/// tailq twice and DPDK panics.)
const DPDK_PLUGINS: &[&str] = &["librte_mempool_ring.so.23", "librte_net_virtio.so.23"];

/// The QEMU arguments of the four NICs (sockets 2..=5 in `dir`).
fn nic_args(dir: &Path) -> Vec<String> {
    let d = dir.display();
    let mut v = Vec::new();
    for (i, slot, remote) in [
        (2, 0x10, format!("{d}/host2.sock")),
        (3, 0x11, format!("{d}/host3.sock")),
        (4, 0x12, format!("{d}/guest5.sock")),
        (5, 0x13, format!("{d}/guest4.sock")),
    ] {
        v.push("-netdev".into());
        v.push(format!(
            "dgram,id=v{i},local.type=unix,local.path={d}/guest{i}.sock,remote.type=unix,remote.path={remote}"
        ));
        v.push("-device".into());
        v.push(format!(
            "virtio-net-pci,netdev=v{i},mac=52:54:00:fe:01:0{},addr={slot:#x},disable-legacy=on,iommu_platform=on,mq=on,vectors=4",
            i - 2
        ));
    }
    v
}

struct Nics {
    s0: FrameSocket,
    s1: FrameSocket,
}

/// Frames sent into A per window of [`send_windowed`].
const WINDOW: u32 = 40;

/// Send `count` frames of `stream` into A in windows of [`WINDOW`], collecting each
/// window out of B before sending the next. A forwarder drops what a full TX ring does
/// not take (l2fwd and testpmd count it as dropped), and QEMU's virtio transmits from a
/// bottom half that a loaded host runs late: this checks that every frame goes through,
/// not how many fit. Shows the guest program's log `log` if frames stop coming.
fn send_windowed(g: &mut Guest, n: &Nics, stream: u8, count: u32, log: &str) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    for w in (0..count).step_by(WINDOW as usize) {
        let end = (w + WINDOW).min(count);
        for k in w..end {
            n.s0.send(&test_frame(VIRTIO_A, HOST, stream, k)).unwrap();
        }
        while (got.len() as u32) < end {
            match n.s1.recv(Duration::from_secs(60)).unwrap() {
                Some(f) => got.push(f),
                None => {
                    let (_, out) = g.run(&format!("cat {log}")).unwrap();
                    panic!("{} of {count} frames out of B:\n{out}", got.len());
                }
            }
        }
    }
    got
}

fn eal(tag: &str, extra: &str) -> String {
    format!("fp-virtiotest -l 0 -m 64 --file-prefix {tag} -a {A} -a {B} {extra}")
}

/// The suite through one backend; returns the frames A sent (for tshark).
fn virtio_suite(g: &mut Guest, n: &Nics, tag: &str, extra: &str) -> Vec<Vec<u8>> {
    let t0 = Instant::now();
    let (log, pid) = fresh_run([&n.s0, &n.s1], tag);
    g.run_ok(&format!(
        "{} -- suite > {log} 2>&1 & echo $! > {pid}",
        eal(tag, extra)
    ));
    let out = g.wait_log(&log, "READY", 180);
    assert!(out.contains("driver=net_virtio"), "{out}");
    // QEMU's socket backend has one queue: MQ negotiated, one pair.
    assert_eq!(field(&out, "READY", "max_queue_pairs"), 1, "{out}");

    wire::promisc_steps(g, &log, &n.s0, VIRTIO_A);

    g.wait_log(&log, "STEP3 READY", 60);
    send_interleaved(
        &n.s0,
        (VIRTIO_NEW, S_NEWMAC, N_MAC),
        (VIRTIO_A, S_OLDMAC, N_MAC),
    );
    let out = g.wait_log(&log, "STEP3 OK", 180);
    assert_eq!(field(&out, "STEP3 OK", "own"), u64::from(N_MAC));
    assert_eq!(
        field(&out, "STEP3 OK", "old"),
        0,
        "the old MAC still received"
    );

    let sent_a = wire::expect_tx([&n.s0, &n.s1], [VIRTIO_A, VIRTIO_B]);

    let out = g.wait_log(&log, "DONE", 120);
    assert_eq!(g.wait_exit(&pid, 120), 0, "{out}");
    let (rx_frames, rx_bytes) = wire::promisc_rx();
    wire::check_suite_stats(
        &out,
        rx_frames + u64::from(N_MAC),
        rx_bytes + wire::stream_bytes(S_NEWMAC, N_MAC),
    );
    assert!(field(&out, "XSTATS a", "ctrl_commands") >= 7, "{out}");
    eprintln!("virtio_suite over {tag} passed in {:?}", t0.elapsed());
    sent_a
}

fn virtio_l2fwd(g: &mut Guest, n: &Nics, tag: &str, extra: &str) {
    let t0 = Instant::now();
    let (log, pid) = fresh_run([&n.s0, &n.s1], tag);
    g.run_ok(&format!(
        "( l2fwd -l 0-1 -m 64 --file-prefix {tag} -a {A} -a {B} {extra} -- -p 0x3 -T 0 --max-packets {N_L2FWD} \
         > {log} 2>&1; rc=$?; echo L2FWD-EXIT rc=$rc >> {log}; exit $rc ) & echo $! > {pid}"
    ));
    let out = g.wait_log(&log, "Lcore 1: RX port", 180);
    assert!(!out.contains("L2FWD-EXIT"), "l2fwd ended early:\n{out}");
    let (pa, pb) = (
        wire::l2fwd_port(&out, VIRTIO_A),
        wire::l2fwd_port(&out, VIRTIO_B),
    );
    let dst = [0x02, 0, 0, 0, 0, pb as u8];
    let got = send_windowed(g, n, S_L2FWD, N_L2FWD, &log);
    wire::check_forwarded(&got, N_L2FWD, (VIRTIO_A, S_L2FWD), "l2fwd", |w| {
        w[0..6].copy_from_slice(&dst);
        w[6..12].copy_from_slice(&VIRTIO_B);
    });
    let rc = g.wait_exit(&pid, 120);
    let (_, out) = g.run(&format!("cat {log}")).unwrap();
    assert_eq!(rc, 0, "l2fwd exit status:\n{out}");
    assert_eq!(
        n.s1.drain().unwrap() + n.s0.drain().unwrap(),
        0,
        "extra frames"
    );
    wire::check_l2fwd_stats(&out, pa, pb, N_L2FWD);
    eprintln!(
        "virtio_l2fwd over {tag}: {N_L2FWD} frames port {pa} -> port {pb} in {:?}",
        t0.elapsed()
    );
}

/// "`dir`-packets: N" of the "Forward statistics for port `port`" block in testpmd's
/// last report.
fn testpmd_stat(out: &str, port: u16, dir: &str) -> u64 {
    let head = format!("Forward statistics for port {port} ");
    let at = out
        .rfind(&head)
        .unwrap_or_else(|| panic!("no '{head}':\n{out}"));
    let key = format!("{dir}-packets:");
    out[at..]
        .lines()
        .skip(1)
        .find_map(|l| l.trim().strip_prefix(&key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} for port {port}:\n{}", &out[at..]))
}

fn virtio_testpmd_io(g: &mut Guest, n: &Nics, tag: &str) {
    let t0 = Instant::now();
    let (log, pid) = fresh_run([&n.s0, &n.s1], tag);
    g.run_ok(&format!(
        "testpmd -l 0-1 -m 128 --file-prefix {tag} -a {A} -a {B} -- --forward-mode=io --nb-cores=1 \
         --stats-period=5 > {log} 2>&1 < /dev/null & echo $! > {pid}"
    ));
    let out = g.wait_log(&log, "io packet forwarding", 180);
    assert!(
        out.contains("Port 0: 52:54:00:FE:01:00"),
        "port 0 is A:\n{out}"
    );
    let got = send_windowed(g, n, S_TESTPMD, N_TESTPMD, &log);
    wire::check_forwarded(&got, N_TESTPMD, (VIRTIO_A, S_TESTPMD), "testpmd io", |_| {});
    std::thread::sleep(Duration::from_millis(300));
    g.run_ok(&format!("kill -INT $(cat {pid})"));
    let rc = g.wait_exit(&pid, 120);
    let (_, out) = g.run(&format!("cat {log}")).unwrap();
    assert_eq!(rc, 0, "testpmd exit status:\n{out}");
    assert_eq!(testpmd_stat(&out, 0, "RX"), u64::from(N_TESTPMD), "{out}");
    assert_eq!(testpmd_stat(&out, 1, "TX"), u64::from(N_TESTPMD), "{out}");
    assert_eq!(
        n.s1.drain().unwrap(),
        0,
        "testpmd sent more than N frames out of B"
    );
    eprintln!(
        "virtio_testpmd_io over {tag}: {N_TESTPMD} frames A -> B unchanged in {:?}",
        t0.elapsed()
    );
}

fn virtio_unbind(g: &mut Guest, tag: &str, extra: &str) {
    wire::unbind_under_poll(g, &format!("{} -- poll 150", eal(tag, extra)), A);
    eprintln!("virtio_unbind over {tag}: exit 3, no crash");
}

/// Write `frames` as a pcap (LINKTYPE_ETHERNET) and let tshark decode them.
fn virtio_tshark(frames: &[Vec<u8>]) {
    if !testkit::on_path("tshark") {
        testkit::skip(
            "virtio_tshark",
            testkit::Need::Tool,
            "tshark is not installed",
        );
        return;
    }
    let path = std::env::temp_dir().join(format!("fp-virtio-{}.pcap", std::process::id()));
    // pcap global header: magic, version 2.4, zone 0, sigfigs 0, snaplen, Ethernet.
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 65535, 1] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    for fr in frames {
        for v in [0u32, 0, fr.len() as u32, fr.len() as u32] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f.extend_from_slice(fr);
    }
    std::fs::write(&path, &f).unwrap();
    let out = std::process::Command::new("tshark")
        .args(["-r"])
        .arg(&path)
        .args([
            "-T",
            "fields",
            "-e",
            "eth.src",
            "-e",
            "eth.dst",
            "-e",
            "eth.type",
            "-e",
            "frame.len",
        ])
        .output()
        .expect("run tshark");
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        frames.len(),
        "tshark decoded every frame:\n{text}"
    );
    for (k, l) in lines.iter().enumerate() {
        let c: Vec<&str> = l.split('\t').collect();
        assert_eq!(c[0], "52:54:00:fe:01:00", "frame {k} source per tshark");
        assert_eq!(
            c[1], "02:00:00:00:00:42",
            "frame {k} destination per tshark"
        );
        assert_eq!(c[2], "0x88b5", "frame {k} type per tshark");
        assert_eq!(
            c[3],
            frames[k].len().to_string(),
            "frame {k} length per tshark"
        );
    }
    eprintln!(
        "virtio_tshark: tshark decoded {} frames sent by net_virtio",
        frames.len()
    );
}

/// The median of the per-second forwarded rates in a testpmd log with
/// `--stats-period 1` (sum of both ports' Rx-pps per period), skipping the first two.
fn median_pps(out: &str) -> Option<f64> {
    let pps: Vec<u64> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Rx-pps:"))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect();
    let mut sums: Vec<u64> = pps.chunks_exact(2).map(|c| c[0] + c[1]).skip(2).collect();
    if sums.len() < 3 {
        return None;
    }
    sums.sort_unstable();
    Some(sums[sums.len() / 2] as f64)
}

fn bench_round(g: &mut Guest, ours: bool, secs: u64, k: usize) -> f64 {
    let tag = format!("b{}{k}", if ours { "o" } else { "d" });
    let log = format!("/tmp/{tag}.log");
    // Time to start on top of the measured seconds: EAL, pool and probe take several
    // seconds under TCG on a loaded host.
    let run = secs + 10;
    let cmd = if ours {
        format!(
            "timeout -s INT {run} testpmd -l 0-1 -m 128 --file-prefix {tag} -a {C} -a {D} -- \
             --forward-mode=io --nb-cores=1 --tx-first --stats-period=1 --total-num-mbufs=4096 > {log} 2>&1 < /dev/null; true"
        )
    } else {
        let plugins: String = DPDK_PLUGINS
            .iter()
            .map(|p| format!(" -d /dpdk/{p}"))
            .collect();
        format!(
            "timeout -s INT {run} dpdk-testpmd -l 0-1 -m 128 --file-prefix {tag} -a {C} -a {D}{plugins} -- \
             --forward-mode=io --nb-cores=1 --tx-first --stats-period=1 --total-num-mbufs=4096 > {log} 2>&1 < /dev/null; true"
        )
    };
    g.run_timeout(&cmd, Duration::from_secs(run + 120)).unwrap();
    // DPDK leaves its hugepage files behind (a new --file-prefix each round): they would
    // starve the next round of hugepages.
    let (_, out) = g
        .run(&format!(
            "cat {log}; rm -f {log}; rm -rf /dev/hugepages/* /var/run/dpdk"
        ))
        .unwrap();
    // What each side counted, for the record (forwarded and dropped packets, and the
    // per-second rates).
    let acc: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.contains("Accumulated forward statistics"))
        .take(3)
        .chain(out.lines().filter(|l| l.trim().starts_with("Rx-pps:")))
        .collect();
    eprintln!("virtio_bench {tag}:\n{}", acc.join("\n"));
    let side = if ours {
        "ours (net_virtio, testpmd)"
    } else {
        "DPDK 22.11 net_virtio, dpdk-testpmd"
    };
    median_pps(&out).unwrap_or_else(|| panic!("{side}: no forwarding rates in its output:\n{out}"))
}

fn virtio_bench(g: &mut Guest) {
    g.bind(C, "vfio-pci");
    g.bind(D, "vfio-pci");
    g.run_ok("mkdir -p /var/run /var/tmp /tmp");
    let (mut o, mut d) = (Vec::new(), Vec::new());
    for k in 0..3 {
        o.push(bench_round(g, true, 14, k));
        d.push(bench_round(g, false, 14, k));
        eprintln!(
            "virtio_bench round {k}: ours {:.0} pps, DPDK {:.0} pps",
            o[k], d[k]
        );
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mo, md) = (med(&mut o), med(&mut d));
    assert!(
        mo > 0.0 && md > 0.0,
        "a side forwarded nothing: ours {mo}, DPDK {md}"
    );
    eprintln!(
        "virtio_bench: testpmd io forwarding over two virtio-net ports (TCG guest, wired back to back): \
         ours {mo:.0} pps, DPDK {md:.0} pps, ratio ours/DPDK = {:.2}",
        mo / md
    );
}

/// Debian's dpdk-testpmd on the host as the vhost-user back end of NIC E: two queues,
/// macswap, one stream per queue. Stopped (SIGINT, then SIGKILL) on drop.
struct VhostPeer {
    child: Child,
    log: PathBuf,
}

impl VhostPeer {
    fn start(dir: &Path) -> Option<VhostPeer> {
        if !testkit::on_path("dpdk-testpmd") {
            testkit::skip(
                "virtio_mq",
                testkit::Need::Tool,
                "dpdk-testpmd (Debian package dpdk) is the vhost-user peer: apt-get install dpdk",
            );
            return None;
        }
        let sock = dir.join("vhost.sock");
        let log = dir.join("vhost-peer.log");
        let child = Command::new("dpdk-testpmd")
            .args(["-l", "0-1", "--no-huge", "-m", "512", "--no-pci"])
            .arg(format!("--file-prefix=fpvhost{}", std::process::id()))
            .arg(format!(
                "--vdev=net_vhost0,iface={},queues=2",
                sock.display()
            ))
            .args([
                "--",
                "--forward-mode=macswap",
                "--port-topology=loop",
                "--rxq=2",
                "--txq=2",
                "--nb-cores=1",
                "--total-num-mbufs=8192",
            ])
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("vhost-peer.err")).unwrap(),
            ))
            .spawn()
            .expect("start dpdk-testpmd");
        let mut p = VhostPeer { child, log };
        let t0 = Instant::now();
        while !sock.exists() {
            if let Ok(Some(st)) = p.child.try_wait() {
                panic!("dpdk-testpmd (vhost peer) ended with {st}:\n{}", p.output());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "no vhost socket:\n{}",
                p.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(p)
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn qemu_args(dir: &Path) -> Vec<String> {
        [
            "-chardev".to_string(),
            format!("socket,id=vu0,path={}/vhost.sock", dir.display()),
            "-netdev".into(),
            "vhost-user,id=v6,chardev=vu0,queues=2".into(),
            "-device".into(),
            "virtio-net-pci,netdev=v6,mac=52:54:00:fe:01:04,addr=0x14,disable-legacy=on,mq=on,vectors=6".into(),
        ]
        .into()
    }
}

impl Drop for VhostPeer {
    fn drop(&mut self) {
        // Our own child, by its pid.
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn virtio_mq(g: &mut Guest, peer: &VhostPeer) {
    let t0 = Instant::now();
    g.bind(E, "uio_pci_generic");
    let (st, out) = g
        .run_timeout(
            &format!(
                "fp-virtiotest -l 0 -m 64 --file-prefix mq -a {E} --iova-mode pa -- mq {N_MQ}"
            ),
            Duration::from_secs(300),
        )
        .unwrap();
    assert_eq!(
        st,
        0,
        "multi-queue check:\n{out}\nvhost peer:\n{}",
        peer.output()
    );
    assert!(out.contains("MQ READY") && out.contains("pairs=2"), "{out}");
    let l = out
        .lines()
        .find(|l| l.starts_with("MQ OK"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        l.contains(&format!("q_ipackets=[{N_MQ}, {N_MQ}]"))
            && l.contains(&format!("q_opackets=[{N_MQ}, {N_MQ}]")),
        "{l}"
    );
    wire::check_pool(&out);
    eprintln!(
        "virtio_mq: 2 queue pairs, {N_MQ} frames each way per queue through DPDK's vhost peer, in {:?}",
        t0.elapsed()
    );
}

#[test]
fn virtio_guest() {
    let t0 = Instant::now();
    let net_dir = std::env::temp_dir().join(format!("fp-virtio-net-{}", std::process::id()));
    std::fs::create_dir_all(&net_dir).unwrap();
    let bench = std::env::var("FP_VIRTIO_BENCH").is_ok_and(|v| v == "1");
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    if bench {
        files.push((
            "/usr/bin/dpdk-testpmd".into(),
            "/fp/bin/dpdk-testpmd".into(),
        ));
        for p in DPDK_PLUGINS {
            files.push((Path::new(DPDK_PMDS).join(p), format!("/dpdk/{p}")));
        }
        for (f, _) in &files {
            assert!(f.exists(), "{} missing: apt-get install dpdk", f.display());
        }
    }
    let peer = VhostPeer::start(&net_dir);
    let mut qemu_args = nic_args(&net_dir);
    if peer.is_some() {
        qemu_args.extend(VhostPeer::qemu_args(&net_dir));
    }
    let opts = || GuestOptions {
        bins: build_release(&[
            ("ferroplane-testbed", "fp-virtiotest"),
            ("ferroplane-apps", "l2fwd"),
            ("ferroplane-apps", "testpmd"),
        ]),
        log: repo_root().join(".testbed-cache/virtio-console.log"),
        net_dir: Some(net_dir.clone()),
        qemu_args,
        // vhost-user needs the guest memory shared with the back end.
        memfd: peer.is_some(),
        hugepages: 192,
        files,
        ..Default::default()
    };
    let Some(mut g) = boot_or_skip("virtio_guest", opts) else {
        let _ = std::fs::remove_dir_all(&net_dir);
        return;
    };
    let mut nics: Vec<String> = g.devices(&["1af4:1041"]).into_iter().map(|d| d.0).collect();
    nics.sort();
    let want: &[&str] = if peer.is_some() {
        &[A, B, C, D, E]
    } else {
        &[A, B, C, D]
    };
    assert_eq!(nics, want, "the virtio NICs");
    let n = Nics {
        s0: FrameSocket::open(g.net_dir(), 2).expect("bind host socket of NIC A"),
        s1: FrameSocket::open(g.net_dir(), 3).expect("bind host socket of NIC B"),
    };
    n.s0.set_send_timeout(Some(Duration::from_secs(60)))
        .unwrap();

    // --- VFIO, IOVA = VA (the device translates through the vIOMMU) ---
    g.bind(A, "vfio-pci");
    g.bind(B, "vfio-pci");
    let sent_a = virtio_suite(&mut g, &n, "sv", "");
    virtio_tshark(&sent_a);
    virtio_l2fwd(&mut g, &n, "lv", "");
    virtio_testpmd_io(&mut g, &n, "tv");
    virtio_unbind(&mut g, "pv", "");

    // --- UIO, IOVA = PA ---
    g.bind(A, "uio_pci_generic");
    g.bind(B, "uio_pci_generic");
    let (st, out) = g.run(&format!("{} -- suite", eal("su0", ""))).unwrap();
    assert_ne!(st, 0, "UIO in VA mode must be refused:\n{out}");
    assert!(
        out.contains("--iova-mode pa"),
        "the error names the fix:\n{out}"
    );
    virtio_suite(&mut g, &n, "su", "--iova-mode pa");
    virtio_l2fwd(&mut g, &n, "lu", "--iova-mode pa");

    if let Some(p) = &peer {
        virtio_mq(&mut g, p);
    }

    if bench {
        virtio_bench(&mut g);
    } else {
        eprintln!("virtio_guest: benchmark not run (FP_VIRTIO_BENCH=1 runs it)");
    }
    g.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&net_dir);
    eprintln!("virtio_guest: took {:?}", t0.elapsed());
}
