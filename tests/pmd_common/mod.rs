//! Helpers shared by the `pmd_*` integration tests.
#![allow(dead_code)]

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
