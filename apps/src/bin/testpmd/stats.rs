//! Statistics and information blocks, laid out as DPDK testpmd's so its users recognise
//! them (NIC statistics per port with the throughput since the last show, forward
//! statistics per stream and port, accumulated forward statistics).

use std::collections::HashMap;
use std::fmt::Write;
use std::time::Instant;

use crate::fwd::StreamDef;

/// Counters of one port at one moment, for "since last show" rates.
#[derive(Clone, Copy)]
struct Snap {
    at: Instant,
    ipackets: u64,
    opackets: u64,
    ibytes: u64,
    obytes: u64,
}

/// The per-port "last show" snapshots.
#[derive(Default)]
pub struct Throughput {
    last: HashMap<u16, Snap>,
}

/// Rates of one port since the last show.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rates {
    pub rx_pps: u64,
    pub tx_pps: u64,
    pub rx_bps: u64,
    pub tx_bps: u64,
}

impl Throughput {
    /// Forget port `p` (after clear or close).
    pub fn forget(&mut self, p: u16) {
        self.last.remove(&p);
    }

    fn rates(&mut self, p: u16, s: &pmd::EthStats) -> Rates {
        let now = Snap {
            at: Instant::now(),
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
        };
        let r = match self.last.get(&p) {
            Some(l) => {
                let dt = now.at.duration_since(l.at).as_secs_f64();
                if dt > 0.0 {
                    let per = |a: u64, b: u64| (a.saturating_sub(b) as f64 / dt) as u64;
                    Rates {
                        rx_pps: per(now.ipackets, l.ipackets),
                        tx_pps: per(now.opackets, l.opackets),
                        rx_bps: per(now.ibytes, l.ibytes) * 8,
                        tx_bps: per(now.obytes, l.obytes) * 8,
                    }
                } else {
                    Rates::default()
                }
            }
            None => Rates::default(),
        };
        self.last.insert(p, now);
        r
    }

    /// The "NIC statistics for port N" block.
    pub fn port_stats_block(&mut self, p: u16) -> Result<String, pmd::Error> {
        let s = pmd::stats_get(p)?;
        let r = self.rates(p, &s);
        let mut o = String::new();
        let _ = writeln!(
            o,
            "\n  ######################## NIC statistics for port {p:<2} ########################"
        );
        let _ = writeln!(
            o,
            "  RX-packets: {:<10} RX-missed: {:<10} RX-bytes:  {}",
            s.ipackets, s.imissed, s.ibytes
        );
        let _ = writeln!(o, "  RX-errors: {}", s.ierrors);
        let _ = writeln!(o, "  RX-nombuf:  {:<10}", s.rx_nombuf);
        let _ = writeln!(
            o,
            "  TX-packets: {:<10} TX-errors: {:<10} TX-bytes:  {}",
            s.opackets, s.oerrors, s.obytes
        );
        let _ = writeln!(o, "\n  Throughput (since last show)");
        let _ = writeln!(
            o,
            "  Rx-pps: {:>12}          Rx-bps: {:>12}",
            r.rx_pps, r.rx_bps
        );
        let _ = writeln!(
            o,
            "  Tx-pps: {:>12}          Tx-bps: {:>12}",
            r.tx_pps, r.tx_bps
        );
        let _ = writeln!(
            o,
            "  ############################################################################"
        );
        Ok(o)
    }
}

/// The "Infos for port N" block.
pub fn port_info_block(p: u16, state: &str) -> Result<String, pmd::Error> {
    let i = pmd::dev_info(p)?;
    let mac = pmd::mac_addr_get(p)?;
    let l = pmd::link_get(p)?;
    let on = |b: bool| if b { "enabled" } else { "disabled" };
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\n********************* Infos for port {p:<2} *********************"
    );
    let _ = writeln!(o, "MAC address: {}", pmd::fmt_mac(&mac).to_uppercase());
    let _ = writeln!(o, "Device name: {}", i.device_name);
    let _ = writeln!(o, "Driver name: {}", i.driver_name);
    if let Some(ifn) = &i.if_name {
        let _ = writeln!(o, "Kernel interface: {ifn}");
    }
    let _ = writeln!(o, "Port state: {state}");
    let _ = writeln!(o, "Link status: {}", if l.up { "up" } else { "down" });
    let speed = if l.speed_mbps >= 1000 && l.speed_mbps % 1000 == 0 {
        format!("{} Gbps", l.speed_mbps / 1000)
    } else {
        format!("{} Mbps", l.speed_mbps)
    };
    let _ = writeln!(o, "Link speed: {speed}");
    let _ = writeln!(
        o,
        "Link duplex: {}",
        if l.full_duplex {
            "full-duplex"
        } else {
            "half-duplex"
        }
    );
    let _ = writeln!(
        o,
        "Autoneg status: {}",
        if l.autoneg { "On" } else { "Off" }
    );
    let _ = writeln!(o, "MTU: {}", pmd::mtu_get(p)?);
    let _ = writeln!(o, "Promiscuous mode: {}", on(pmd::promiscuous_get(p)?));
    let _ = writeln!(o, "Allmulticast mode: {}", on(pmd::allmulticast_get(p)?));
    let (rxd, txd) = (&i.rx_desc_lim, &i.tx_desc_lim);
    for (label, value) in [
        ("Max possible RX queues", u32::from(i.max_rx_queues)),
        ("Current number of RX queues", i.nb_rx_queues.into()),
        ("Max possible number of RXDs per queue", rxd.max.into()),
        ("Min possible number of RXDs per queue", rxd.min.into()),
        ("Max possible TX queues", i.max_tx_queues.into()),
        ("Current number of TX queues", i.nb_tx_queues.into()),
        ("Max possible number of TXDs per queue", txd.max.into()),
        ("Min possible number of TXDs per queue", txd.min.into()),
        ("Max RX packet length", i.max_rx_pktlen),
    ] {
        let _ = writeln!(o, "{label}: {value}");
    }
    let _ = writeln!(o, "MTU range: {}..={}", i.min_mtu, i.max_mtu);
    Ok(o)
}

/// Forward statistics of one port over a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortFwd {
    pub rx: u64,
    pub rx_dropped: u64,
    pub tx: u64,
    pub tx_dropped: u64,
    pub bad_ip: u64,
    pub bad_l4: u64,
}

/// Per-port forward statistics: RX/TX packets and RX drops from the port counters since
/// the session started, TX drops (packets the TX queue refused) and bad checksums from
/// the streams.
pub fn port_fwd(
    ports: &[u16],
    base: &[(u16, pmd::EthStats)],
    streams: &[StreamDef],
) -> Vec<(u16, PortFwd)> {
    ports
        .iter()
        .map(|&p| {
            let mut f = PortFwd::default();
            if let Ok(now) = pmd::stats_get(p) {
                let b = base
                    .iter()
                    .find(|(q, _)| *q == p)
                    .map(|(_, s)| s.clone())
                    .unwrap_or_default();
                f.rx = now.ipackets.saturating_sub(b.ipackets);
                f.rx_dropped = now.imissed.saturating_sub(b.imissed);
                f.tx = now.opackets.saturating_sub(b.opackets);
            }
            for s in streams {
                if s.tx_port == p {
                    f.tx_dropped += s.stats.dropped.load(std::sync::atomic::Ordering::Relaxed);
                }
                if s.rx_port == p {
                    f.bad_ip += s.stats.bad_ip.load(std::sync::atomic::Ordering::Relaxed);
                    f.bad_l4 += s.stats.bad_l4.load(std::sync::atomic::Ordering::Relaxed);
                }
            }
            (p, f)
        })
        .collect()
}

/// The "show fwd stats all" / end-of-forwarding report.
/// `  RX-packets: N  RX-dropped: D  RX-total: N+D` (or TX), as testpmd prints it.
fn totals_line(o: &mut String, dir: &str, n: u64, dropped: u64) {
    let _ = writeln!(
        o,
        "  {dir}-packets: {n:<14} {dir}-dropped: {dropped:<14} {dir}-total: {}",
        n + dropped
    );
}

pub fn fwd_stats_block(per_port: &[(u16, PortFwd)], streams: &[StreamDef], csum: bool) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let mut o = String::new();
    for s in streams {
        let st = &s.stats;
        let _ = writeln!(
            o,
            "\n  ------- Forward Stats for RX Port={:>2}/Queue={:>2} -> TX Port={:>2}/Queue={:>2} -------",
            s.rx_port, s.rx_queue, s.tx_port, s.tx_queue
        );
        let _ = writeln!(
            o,
            "  RX-packets: {:<14} TX-packets: {:<14} TX-dropped: {}",
            st.rx.load(Relaxed),
            st.tx.load(Relaxed),
            st.dropped.load(Relaxed)
        );
        if csum {
            let _ = writeln!(
                o,
                "  RX- bad IP checksum: {:<14} Rx- bad L4 checksum: {}",
                st.bad_ip.load(Relaxed),
                st.bad_l4.load(Relaxed)
            );
        }
    }
    let mut acc = PortFwd::default();
    for (p, f) in per_port {
        let _ = writeln!(
            o,
            "\n  ---------------------- Forward statistics for port {p:<2} ----------------------"
        );
        totals_line(&mut o, "RX", f.rx, f.rx_dropped);
        if csum {
            let _ = writeln!(
                o,
                "  Bad-ipcsum: {:<14} Bad-l4csum: {:<14}",
                f.bad_ip, f.bad_l4
            );
        }
        totals_line(&mut o, "TX", f.tx, f.tx_dropped);
        let _ = writeln!(
            o,
            "  ----------------------------------------------------------------------------"
        );
        acc.rx += f.rx;
        acc.rx_dropped += f.rx_dropped;
        acc.tx += f.tx;
        acc.tx_dropped += f.tx_dropped;
    }
    let _ = writeln!(
        o,
        "\n  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++"
    );
    totals_line(&mut o, "RX", acc.rx, acc.rx_dropped);
    totals_line(&mut o, "TX", acc.tx, acc.tx_dropped);
    let _ = writeln!(
        o,
        "  ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++"
    );
    o
}
