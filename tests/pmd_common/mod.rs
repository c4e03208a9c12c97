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
    let pfx = format!("pmd-{tag}-{}", std::process::id());
    let argv: Vec<String> = [
        "test",
        "--no-huge",
        "-m",
        "64",
        "--file-prefix",
        &pfx,
        "-l",
        "0",
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect();
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

/// A private network namespace, deleted on drop (also when the test fails).
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// `ip netns add fp-test-<pid>-<tag>` for `test`; `None`, after reporting the skip
    /// through `testkit::skip`, if not root, `ip` is missing or the namespace cannot be
    /// made.
    pub fn new(test: &str, tag: &str) -> Option<Netns> {
        if !testkit::need_root(test) || !testkit::need_tool(test, "ip") {
            return None;
        }
        let name = format!("fp-test-{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let o = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("run ip");
        if !o.status.success() {
            testkit::skip(
                test,
                testkit::Need::Netns,
                format!(
                    "ip netns add failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
            );
            return None;
        }
        let ns = Netns { name };
        ns.sh("ip link set lo up; sysctl -qw net.ipv6.conf.all.disable_ipv6=1; sysctl -qw net.ipv6.conf.default.disable_ipv6=1");
        Some(ns)
    }

    /// Make a veth pair `a`/`b` inside the namespace, both up.
    pub fn veth(&self, a: &str, b: &str) {
        self.sh(&format!(
            "ip link add {a} type veth peer name {b} && ip link set {a} up && ip link set {b} up"
        ));
    }

    /// Run a shell command inside the namespace; panics with its stderr if it fails.
    pub fn sh(&self, cmd: &str) -> Output {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", cmd])
            .output()
            .expect("run ip netns exec");
        assert!(
            o.status.success(),
            "`{cmd}` in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    /// Run `f` on a new thread that has entered the namespace (setns CLONE_NEWNET), so
    /// every socket, TAP device and ioctl it makes lives there.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns file");
            use std::os::fd::AsRawFd;
            // SAFETY: a valid namespace fd; affects only this thread.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Netns {
    /// [`run`](Self::run) `f` with clones of the EAL and the pool.
    pub fn run_with<R: Send + 'static>(
        &self,
        e: &Eal,
        p: &PktmbufPool,
        f: impl FnOnce(Eal, PktmbufPool) -> R + Send + 'static,
    ) -> R {
        let (e, p) = (e.clone(), p.clone());
        self.run(move || f(e, p))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A raw AF_PACKET socket bound to `iface` (in the calling thread's namespace).
pub struct RawSock(std::os::fd::OwnedFd);

impl RawSock {
    pub fn bind(iface: &str) -> RawSock {
        let ctl = pmd::sys::ctl_socket().expect("ctl socket");
        let idx = pmd::sys::if_index(&ctl, iface).expect("ifindex");
        let fd = pmd::sys::packet_socket(pmd::sys::ETH_P_ALL).expect("packet socket");
        pmd::sys::bind_packet(&fd, idx, pmd::sys::ETH_P_ALL).expect("bind");
        RawSock(fd)
    }

    pub fn send(&self, b: &[u8]) {
        use std::os::fd::AsRawFd;
        let n = pmd::sys::send_nb(self.0.as_raw_fd(), b)
            .expect("send")
            .expect("sent");
        assert_eq!(n, b.len());
    }

    /// Frames `keep` accepts, until `want` or `limit`.
    pub fn recv_until(
        &self,
        want: usize,
        limit: Duration,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Vec<Vec<u8>> {
        use std::os::fd::AsRawFd;
        let t0 = Instant::now();
        let mut buf = vec![0u8; 65536];
        let mut got = Vec::new();
        while got.len() < want && t0.elapsed() < limit {
            if !pmd::sys::poll_in(self.0.as_raw_fd(), 50).expect("poll") {
                continue;
            }
            while let Some(n) = pmd::sys::recv_nb(self.0.as_raw_fd(), &mut buf).expect("recv") {
                if keep(&buf[..n]) {
                    got.push(buf[..n].to_vec());
                }
            }
        }
        got
    }
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
            .args(["netns", "exec", &ns.name, "tshark", "-q", "-i", iface, "-c"])
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
