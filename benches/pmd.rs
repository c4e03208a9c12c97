//! Ethdev benchmarks: one io-forward step of 32 packets (rx_burst on one port, tx_burst on
//! another) for net_null and net_ring, through queue handles and through the (port,
//! queue) functions. Run with `cargo bench --bench pmd`; the EAL runs `--no-huge` on
//! lcore 0 (the bench thread). Side-by-side numbers against DPDK: `ferroplane-compare pmd`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eal::Eal;
use mbuf::{pktmbuf_pool_create, Mbuf, PktmbufPool, MBUF_DEFAULT_BUF_SIZE};

fn setup() -> (Eal, PktmbufPool) {
    let argv = testkit::eal_env::no_huge_args("bench-pmd", 256, "0");
    let (eal, _) = Eal::init(&argv).expect("EAL init (--no-huge)");
    let pool = pktmbuf_pool_create(&eal, "bench_pmd", 8191, 256, 0, MBUF_DEFAULT_BUF_SIZE, None)
        .expect("mbuf pool");
    (eal, pool)
}

fn port(eal: &Eal, pool: &PktmbufPool, spec: &str) -> u16 {
    let p = pmd::vdev_create(eal, spec).expect("vdev");
    pmd::configure(p, 1, 1, &pmd::EthConf::default()).expect("configure");
    pmd::rx_queue_setup(p, 0, 1024, None, &pmd::RxConf::default(), pool).expect("rx");
    pmd::tx_queue_setup(p, 0, 1024, None, &pmd::TxConf::default()).expect("tx");
    pmd::start(p).expect("start");
    p
}

fn benches(c: &mut Criterion) {
    let (eal, pool) = setup();
    let mut g = c.benchmark_group("pmd");
    g.throughput(Throughput::Elements(32));

    let (a, b) = (
        port(&eal, &pool, "net_null_ba"),
        port(&eal, &pool, "net_null_bb"),
    );
    let mut v: Vec<Mbuf> = Vec::with_capacity(64);
    g.bench_function("null_fwd32_by_id", |it| {
        it.iter(|| {
            pmd::rx_burst(a, 0, &mut v, 32);
            pmd::tx_burst(b, 0, &mut v);
            v.clear();
        })
    });
    {
        let (mut rx, mut tx) = (pmd::rx_queue(a, 0).unwrap(), pmd::tx_queue(b, 0).unwrap());
        g.bench_function("null_fwd32_handle", |it| {
            it.iter(|| {
                rx.rx_burst(&mut v, 32);
                tx.tx_burst(&mut v);
                v.clear();
            })
        });
    }

    // net_ring: 32 packets loop through the port's own ring (TX then RX, same queue).
    let r = port(&eal, &pool, "net_ring_b0");
    let (mut rx, mut tx) = (pmd::rx_queue(r, 0).unwrap(), pmd::tx_queue(r, 0).unwrap());
    let mut w: Vec<Mbuf> = (0..32).filter_map(|_| Mbuf::alloc(&pool)).collect();
    g.bench_function("ring_tx32_rx32_handle", |it| {
        it.iter(|| {
            tx.tx_burst(&mut w);
            rx.rx_burst(&mut w, 32);
        })
    });
    drop((rx, tx));
    g.finish();
    drop(w);
    for p in [a, b, r] {
        pmd::close(p).expect("close");
    }
}

criterion_group!(group, benches);
criterion_main!(group);
