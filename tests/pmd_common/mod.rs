//! Helpers shared by the `pmd_*` integration tests.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use eal::Eal;
use mbuf::{pktmbuf_pool_create, Mbuf, PktmbufPool, MBUF_DEFAULT_BUF_SIZE};

/// A `--no-huge` EAL with a unique prefix.
pub fn eal(tag: &str) -> Eal {
    eal_with(tag, &[])
}

/// As [`eal`], with more EAL arguments (e.g. `--vdev=...`).
pub fn eal_with(tag: &str, extra: &[&str]) -> Eal {
    let mut argv = testkit::eal_env::no_huge_args(&format!("pmd-{tag}"), 64, "0");
    argv.extend(extra.iter().map(|s| s.to_string()));
    Eal::init(&argv).expect("EAL init (--no-huge)").0
}

pub fn pool(e: &Eal, name: &str, n: u32) -> PktmbufPool {
    pktmbuf_pool_create(e, name, n, 0, 0, MBUF_DEFAULT_BUF_SIZE, None).expect("pool")
}

/// An mbuf holding `bytes`.
pub fn mbuf_of(p: &PktmbufPool, bytes: &[u8]) -> Mbuf {
    let mut m = Mbuf::alloc(p).expect("alloc");
    m.append(bytes.len() as u16)
        .expect("room")
        .copy_from_slice(bytes);
    m
}

/// All bytes of a packet.
pub fn bytes_of(m: &Mbuf) -> Vec<u8> {
    let mut v = Vec::new();
    for s in m.segments() {
        v.extend_from_slice(s);
    }
    v
}

/// An Ethernet frame: broadcast destination, source 02:..:src, `ethertype`, then `len`
/// payload bytes derived from `seed`.
pub fn frame(ethertype: u16, src: u8, seed: u8, len: usize) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend([0x02, 0x00, 0x00, 0x00, 0x00, src]);
    f.extend(ethertype.to_be_bytes());
    f.extend((0..len).map(|i| seed.wrapping_add(i as u8).wrapping_mul(7)));
    f
}

/// Configure `port` with one RX and one TX queue (as asked) and start it.
pub fn setup(port: u16, p: &PktmbufPool, nrx: u16, ntx: u16) {
    pmd::configure(port, nrx, ntx, &pmd::EthConf::default()).expect("configure");
    for q in 0..nrx {
        pmd::rx_queue_setup(port, q, 512, None, &pmd::RxConf::default(), p).expect("rx setup");
    }
    for q in 0..ntx {
        pmd::tx_queue_setup(port, q, 512, None, &pmd::TxConf::default()).expect("tx setup");
    }
    pmd::start(port).expect("start");
}

/// Poll RX queue 0 of `port` until `want` packets that `keep` accepts arrived or `limit`
/// passed (a bound, not a timing assertion); other packets are freed.
pub fn rx_until(
    port: u16,
    want: usize,
    limit: Duration,
    keep: impl Fn(&[u8]) -> bool,
) -> Vec<Vec<u8>> {
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut v = Vec::new();
    while got.len() < want && t0.elapsed() < limit {
        pmd::rx_burst(port, 0, &mut v, 32);
        for m in v.drain(..) {
            let b = bytes_of(&m);
            if keep(&b) {
                got.push(b);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    got
}

/// The error `pmd::vdev_create` gives for `spec`, as text (panics if it succeeds).
pub fn vdev_err(e: &Eal, spec: &str) -> String {
    match pmd::vdev_create(e, spec) {
        Ok(port) => panic!("{spec} was accepted as port {port}"),
        Err(err) => err.to_string(),
    }
}

/// Run `prog` with `args`; panics with its stderr unless it exits 0.
pub fn run_ok(prog: &str, args: &[&str]) -> Output {
    let o = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {prog}: {e}"));
    assert!(
        o.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

pub use testkit::netns::Netns;
#[allow(unused_imports)] // not every pmd_* test sends frames by hand
pub use testkit::rawsock::RawSock;

/// [`Netns::run`] `f` with clones of the EAL and the pool.
pub fn run_with<R: Send + 'static>(
    ns: &Netns,
    e: &Eal,
    p: &PktmbufPool,
    f: impl FnOnce(Eal, PktmbufPool) -> R + Send + 'static,
) -> R {
    let (e, p) = (e.clone(), p.clone());
    ns.run(move || f(e, p))
}

/// A tshark capture of `count` frames matching a capture filter on an interface of a
/// namespace, started and ready (tshark said "Capturing on") when `start` returns.
pub struct Tshark {
    child: std::process::Child,
    file: std::path::PathBuf,
    /// Kept open: tshark reports on stderr as it exits.
    _err: std::process::ChildStderr,
}

impl Tshark {
    /// `None` (skip reported) when tshark is missing.
    pub fn start(
        test: &str,
        ns: &Netns,
        iface: &str,
        count: usize,
        filter: &str,
    ) -> Option<Tshark> {
        use std::io::Read;
        if !testkit::need_tool(test, "tshark") {
            return None;
        }
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = std::env::temp_dir().join(format!("fp-{test}-{}-{n}.pcap", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns.name(),
                "tshark",
                "-q",
                "-i",
                iface,
                "-c",
            ])
            .arg(count.to_string())
            .arg("-w")
            .arg(&file)
            .args(["-f", filter])
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn tshark");
        let mut err = child.stderr.take().expect("stderr");
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains("Capturing on") {
            let n = err.read(&mut buf).expect("read tshark stderr");
            assert!(n > 0, "tshark quit: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        // tshark says "Capturing on" before dumpcap has the interface open: wait for the
        // capture file header, which dumpcap writes once it captures.
        let t0 = Instant::now();
        while std::fs::metadata(&file).map_or(true, |m| m.len() == 0)
            && t0.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Tshark {
            child,
            file,
            _err: err,
        })
    }

    /// Wait (up to `limit`) for the capture to finish; the captured frames' lengths in
    /// order (fewer than asked if tshark timed out: the caller's comparison fails).
    pub fn lengths(mut self, limit: Duration) -> Vec<usize> {
        let t0 = Instant::now();
        let ok = loop {
            if let Some(s) = self.child.try_wait().expect("wait tshark") {
                break s.success();
            }
            if t0.elapsed() > limit {
                // The whole group: tshark and the dumpcap it runs.
                // SAFETY: plain kill of the process group we made for our child.
                unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
                let _ = self.child.wait();
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !ok {
            eprintln!("tshark did not capture its count of frames in time");
        }
        let o = run_ok(
            "tshark",
            &[
                "-r",
                self.file.to_str().expect("path"),
                "-T",
                "fields",
                "-e",
                "frame.len",
            ],
        );
        let _ = std::fs::remove_file(&self.file);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| l.trim().parse().expect("a length"))
            .collect()
    }
}

/// The value of `port`'s extended statistic `name` (panics if there is none).
pub fn xstat(port: u16, name: &str) -> u64 {
    pmd::xstats_by_name(port)
        .unwrap()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no xstat {name}"))
        .1
}

/// UDP destination port of [`udp_frame`]s, which tells them from other traffic.
pub const UDP_TEST_PORT: u16 = 7777;

/// An IPv4/UDP frame of flow `flow` (source port 1000 + flow, destination
/// [`UDP_TEST_PORT`]) with `len` payload bytes derived from `seq`: flows are what RSS
/// and fanout hash.
pub fn udp_frame(flow: u16, seq: u8, len: usize) -> Vec<u8> {
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
    f.extend(UDP_TEST_PORT.to_be_bytes());
    f.extend(((8 + len) as u16).to_be_bytes());
    f.extend([0, 0]);
    f.extend((0..len).map(|i| seq.wrapping_add(i as u8)));
    f
}

/// Whether `b` is an Ethernet frame of `ethertype`.
pub fn is_ethertype(b: &[u8], ethertype: u16) -> bool {
    b.len() > 13 && b[12..14] == ethertype.to_be_bytes()
}

/// Transmit `frames` on queue 0 of `port` until all are taken (panics after `limit`).
pub fn tx_all(port: u16, p: &PktmbufPool, frames: &[Vec<u8>], limit: Duration) {
    let mut v: Vec<Mbuf> = frames.iter().map(|f| mbuf_of(p, f)).collect();
    let t0 = Instant::now();
    while !v.is_empty() && t0.elapsed() < limit {
        pmd::tx_burst(port, 0, &mut v);
    }
    assert!(v.is_empty(), "TX never drained");
}

/// Send `sent` from `peer` in rounds of `round`, receiving on queue 0 of `port` in
/// between; returns what queue 0 got of `sent`'s ethertype (asserting none was lost).
pub fn peer_to_port(
    peer: &RawSock,
    port: u16,
    sent: &[Vec<u8>],
    round: usize,
    limit: Duration,
) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    for chunk in sent.chunks(round) {
        for f in chunk {
            peer.send(f);
        }
        let want = got.len() + chunk.len();
        let et = u16::from_be_bytes([chunk[0][12], chunk[0][13]]);
        got.extend(rx_until(port, chunk.len(), limit, |b| is_ethertype(b, et)));
        assert_eq!(got.len(), want, "frames lost");
    }
    got
}

/// Transmit `ours` on queue 0 of `port` in bursts of `burst`, receiving each burst on
/// `peer`; returns what the peer got of `ours`' ethertype.
pub fn port_to_peer(
    peer: &RawSock,
    port: u16,
    p: &PktmbufPool,
    ours: &[Vec<u8>],
    burst: usize,
    limit: Duration,
) -> Vec<Vec<u8>> {
    let mut rcv = Vec::new();
    for chunk in ours.chunks(burst) {
        tx_all(port, p, chunk, limit);
        let et = u16::from_be_bytes([chunk[0][12], chunk[0][13]]);
        rcv.extend(peer.recv_until(chunk.len(), limit, |b| is_ethertype(b, et)));
    }
    rcv
}

/// Send one [`udp_frame`] per flow `0..flows` from `peer` and poll `queues` RX queues of
/// `port` until all arrived or `limit` passed; checks that each arrived exactly once
/// and returns how many each queue got.
pub fn spread_flows(
    peer: &RawSock,
    port: u16,
    queues: u16,
    flows: u16,
    limit: Duration,
) -> Vec<usize> {
    let sent: Vec<Vec<u8>> = (0..flows).map(|fl| udp_frame(fl, fl as u8, 40)).collect();
    for f in &sent {
        peer.send(f);
    }
    let t0 = Instant::now();
    let mut per_q = vec![Vec::new(); usize::from(queues)];
    let mut v = Vec::new();
    while per_q.iter().map(Vec::len).sum::<usize>() < sent.len() && t0.elapsed() < limit {
        for (q, got) in per_q.iter_mut().enumerate() {
            pmd::rx_burst(port, q as u16, &mut v, 32);
            got.extend(
                v.drain(..)
                    .map(|m| bytes_of(&m))
                    .filter(|b| b.len() > 37 && b[36..38] == UDP_TEST_PORT.to_be_bytes()),
            );
        }
    }
    let counts: Vec<usize> = per_q.iter().map(Vec::len).collect();
    let mut all = per_q.concat();
    all.sort();
    let mut want = sent;
    want.sort();
    assert_eq!(all, want, "each frame arrives once: {counts:?}");
    counts
}

/// The frames of [`veth_both_ways`]: `inbound` sent by the peer to the port (in rounds
/// of 100), `outbound` transmitted by the port (in bursts of 32).
pub struct BothWays {
    pub inbound: Vec<Vec<u8>>,
    pub outbound: Vec<Vec<u8>>,
}

/// A port made by `spec` (with `{a}` replaced by the port's interface) on one end of a
/// veth pair `<tag>a`/`<tag>b` in a namespace made for `test`: `started` runs once its
/// link is up (with the namespace's name), then `frames` go both ways and are checked
/// intact and in order against a peer AF_PACKET socket on `<tag>b`, the counters are
/// checked, the port is closed, `closed` runs, and the pool is whole at the end.
pub fn veth_both_ways(
    test: &str,
    tag: &str,
    spec: &str,
    frames: BothWays,
    started: impl FnOnce(&str, u16) + Send + 'static,
    closed: impl FnOnce(&str) + Send + 'static,
) {
    const LIMIT: Duration = Duration::from_secs(10);
    let Some(ns) = Netns::new(test, tag) else {
        return;
    };
    let (a, b) = (format!("{tag}a"), format!("{tag}b"));
    ns.veth(&a, &b);
    let e = eal(tag);
    let p = pool(&e, &format!("{tag}p"), 2047);
    let spec = spec.replace("{a}", &a);
    let nsn = ns.name().to_string();
    run_with(&ns, &e, &p, move |e, p| {
        let port = pmd::vdev_create(&e, &spec).unwrap();
        setup(port, &p, 1, 1);
        assert!(pmd::link_wait_up(port, LIMIT).unwrap().up);
        started(&nsn, port);
        let peer = RawSock::bind(&b);
        let got = peer_to_port(&peer, port, &frames.inbound, 100, LIMIT);
        assert!(
            got == frames.inbound,
            "frames from the kernel side arrive intact, in order"
        );
        let rcv = port_to_peer(&peer, port, &p, &frames.outbound, 32, LIMIT);
        assert!(
            rcv == frames.outbound,
            "our frames reach the kernel side intact, in order"
        );
        let s = pmd::stats_get(port).unwrap();
        let (n_in, n_out) = (frames.inbound.len() as u64, frames.outbound.len() as u64);
        assert_eq!(
            (s.ipackets >= n_in, s.opackets, s.oerrors),
            (true, n_out, 0)
        );
        pmd::close(port).unwrap();
        closed(&nsn);
    });
    assert_eq!(p.avail_count(), 2047, "every mbuf back in the pool");
}
