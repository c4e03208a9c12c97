//! testpmd's application arguments (after the EAL's `--`), with DPDK's names and
//! defaults where DPDK has them. `--name=value` and `--name value` both work. Any error
//! names the argument; `main` prints it on one line and exits 2.

use std::time::Duration;

use crate::fwd::Mode;

/// Most packets per burst (DPDK's `MAX_PKT_BURST`).
pub const MAX_BURST: u16 = 512;
/// Most segments in `--txpkts` (DPDK's `RTE_MAX_SEGS_PER_PKT` is 255; 8 is plenty here).
pub const MAX_TXSEGS: usize = 8;
/// Smallest txonly packet: Ethernet (14) + IPv4 (20) + UDP (8).
pub const MIN_TXPKT: u32 = 42;

/// Parsed application options.
#[derive(Debug, Clone, PartialEq)]
pub struct Opts {
    pub interactive: bool,
    pub auto_start: bool,
    pub tx_first: bool,
    pub mode: Mode,
    pub nb_cores: u16,
    pub rxq: u16,
    pub txq: u16,
    pub rxd: u16,
    pub txd: u16,
    pub burst: u16,
    pub txpkts: Vec<u16>,
    /// 0 = no periodic statistics.
    pub stats_period: u64,
    pub eth_peers: Vec<(u16, [u8; 6])>,
    /// `None`: sized from ports, queues and descriptors.
    pub total_num_mbufs: Option<u32>,
    pub mbcache: u32,
    /// Ferroplane addition: forward this long, print the statistics and exit.
    pub run_time: Option<Duration>,
    /// UDP flows of flowgen mode.
    pub flowgen_flows: u32,
    /// Processes sharing the ports (DPDK's `--num-procs`): each forwards on its share of
    /// the `--rxq`/`--txq` queues.
    pub num_procs: u16,
    /// This process's index among them (DPDK's `--proc-id`).
    pub proc_id: u16,
    pub help: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            interactive: false,
            auto_start: false,
            tx_first: false,
            mode: Mode::Io,
            nb_cores: 1,
            rxq: 1,
            txq: 1,
            rxd: 1024,
            txd: 1024,
            burst: 32,
            txpkts: vec![64],
            stats_period: 0,
            eth_peers: Vec::new(),
            total_num_mbufs: None,
            mbcache: 250,
            run_time: None,
            flowgen_flows: 1024,
            num_procs: 1,
            proc_id: 0,
            help: false,
        }
    }
}

pub fn usage() -> String {
    "usage: testpmd [EAL options] -- [options]\n\
     \n\
     options (DPDK testpmd's names):\n\
     \x20 -i, --interactive          run the command line (prompt 'testpmd> ')\n\
     \x20 -a, --auto-start           start forwarding at once in interactive mode\n\
     \x20 --tx-first                 send one burst on every stream before forwarding\n\
     \x20 --forward-mode=MODE        io|mac|macswap|rxonly|txonly|csum|flowgen (default io)\n\
     \x20 --nb-cores=N               forwarding lcores (default 1)\n\
     \x20 --rxq=N, --txq=N           queues per port (default 1)\n\
     \x20 --rxd=N, --txd=N           descriptors per queue (default 1024)\n\
     \x20 --burst=N                  packets per burst, 1..=512 (default 32)\n\
     \x20 --txpkts=L[,L...]          segment lengths of txonly/flowgen packets (default 64)\n\
     \x20 --stats-period=S           print port statistics every S seconds (non-interactive)\n\
     \x20 --eth-peer=N,XX:XX:XX:XX:XX:XX  destination MAC for port N (mac, txonly, csum, flowgen)\n\
     \x20 --total-num-mbufs=N        mbufs in the pool (default: sized from ports and queues)\n\
     \x20 --mbcache=N                per-lcore mbuf cache (default 250)\n\
     \x20 --flowgen-flows=N          UDP flows in flowgen mode (default 1024)\n\
     \x20 --run-time=S               (ferroplane) forward S seconds, print statistics, exit\n\
     \x20 -h, --help                 this text\n\
     \n\
     With no arguments at all testpmd forwards (io) between two net_null ports for 5 s\n\
     (falling back to --no-huge when hugepages are unusable) and prints the throughput.\n"
        .to_string()
}

fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.trim()
        .parse::<T>()
        .map_err(|_| format!("invalid value '{v}' for {name}: not a number in range"))
}

fn ranged(name: &str, v: &str, lo: u64, hi: u64) -> Result<u64, String> {
    let n: u64 = num(name, v)?;
    if n < lo || n > hi {
        return Err(format!(
            "invalid value '{v}' for {name}: must be in {lo}..={hi}"
        ));
    }
    Ok(n)
}

/// Parse a MAC `XX:XX:XX:XX:XX:XX`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(parts) {
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

/// Parse `--txpkts`/`set txpkts` segment lengths.
pub fn parse_txpkts(v: &str) -> Result<Vec<u16>, String> {
    let mut segs = Vec::new();
    for p in v.split(',') {
        let n = ranged("--txpkts", p, 1, u64::from(mbuf::MBUF_DEFAULT_DATAROOM))? as u16;
        segs.push(n);
    }
    if segs.len() > MAX_TXSEGS {
        return Err(format!(
            "invalid value '{v}' for --txpkts: at most {MAX_TXSEGS} segments"
        ));
    }
    let total: u32 = segs.iter().map(|&s| u32::from(s)).sum();
    if total < MIN_TXPKT {
        return Err(format!(
            "invalid value '{v}' for --txpkts: total length {total} is below {MIN_TXPKT} (Ethernet + IPv4 + UDP headers)"
        ));
    }
    Ok(segs)
}

/// Parse the application arguments (those after `--`).
pub fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        let (name, inline) = match a.strip_prefix("--") {
            Some(body) => match body.split_once('=') {
                Some((n, v)) => (format!("--{n}"), Some(v.to_string())),
                None => (a.to_string(), None),
            },
            None => (a.to_string(), None),
        };
        // Flags first: they take no value.
        let flag = |o: &mut Opts| -> Option<()> {
            match name.as_str() {
                "-i" | "--interactive" => o.interactive = true,
                "-a" | "--auto-start" => o.auto_start = true,
                "--tx-first" => o.tx_first = true,
                "-h" | "--help" => o.help = true,
                _ => return None,
            }
            Some(())
        };
        if flag(&mut o).is_some() {
            if let Some(v) = inline {
                return Err(format!(
                    "invalid value '{v}' for {name}: this option takes no value"
                ));
            }
            continue;
        }
        let known = [
            "--forward-mode",
            "--nb-cores",
            "--rxq",
            "--txq",
            "--rxd",
            "--txd",
            "--burst",
            "--txpkts",
            "--stats-period",
            "--eth-peer",
            "--total-num-mbufs",
            "--mbcache",
            "--run-time",
            "--flowgen-flows",
            "--num-procs",
            "--proc-id",
        ];
        if !known.contains(&name.as_str()) {
            return Err(format!(
                "unknown argument '{a}' (testpmd -- --help lists the options)"
            ));
        }
        let v = match inline {
            Some(v) => v,
            None => match args.get(i) {
                Some(v) => {
                    i += 1;
                    v.clone()
                }
                None => return Err(format!("argument {name} needs a value")),
            },
        };
        let n = name.as_str();
        match n {
            "--forward-mode" => {
                o.mode = Mode::parse(&v).ok_or_else(|| {
                    format!(
                        "invalid value '{v}' for --forward-mode: expected one of {}",
                        Mode::names()
                    )
                })?
            }
            "--nb-cores" => o.nb_cores = ranged(n, &v, 1, 128)? as u16,
            "--rxq" => o.rxq = ranged(n, &v, 1, pmd::MAX_QUEUES as u64)? as u16,
            "--txq" => o.txq = ranged(n, &v, 1, pmd::MAX_QUEUES as u64)? as u16,
            "--rxd" => o.rxd = ranged(n, &v, 1, 16384)? as u16,
            "--txd" => o.txd = ranged(n, &v, 1, 16384)? as u16,
            "--burst" => o.burst = ranged(n, &v, 1, u64::from(MAX_BURST))? as u16,
            "--txpkts" => o.txpkts = parse_txpkts(&v)?,
            "--stats-period" => o.stats_period = ranged(n, &v, 0, 86_400)?,
            "--eth-peer" => {
                let (p, m) = v.split_once(',').ok_or_else(|| {
                    format!("invalid value '{v}' for --eth-peer: expected N,XX:XX:XX:XX:XX:XX")
                })?;
                let p = ranged(n, p, 0, pmd::MAX_PORTS as u64 - 1)? as u16;
                let m = parse_mac(m).ok_or_else(|| {
                    format!("invalid value '{v}' for --eth-peer: bad MAC address")
                })?;
                o.eth_peers.push((p, m));
            }
            "--total-num-mbufs" => o.total_num_mbufs = Some(ranged(n, &v, 1024, 16 << 20)? as u32),
            "--mbcache" => o.mbcache = ranged(n, &v, 0, 512)? as u32,
            "--run-time" => {
                let s: f64 = num(n, &v)?;
                if !s.is_finite() || s <= 0.0 || s > 1e6 {
                    return Err(format!(
                        "invalid value '{v}' for --run-time: seconds, more than 0"
                    ));
                }
                o.run_time = Some(Duration::from_secs_f64(s));
            }
            "--flowgen-flows" => o.flowgen_flows = ranged(n, &v, 1, 1 << 20)? as u32,
            "--num-procs" => o.num_procs = ranged(n, &v, 1, pmd::MAX_QUEUES as u64)? as u16,
            "--proc-id" => o.proc_id = ranged(n, &v, 0, pmd::MAX_QUEUES as u64 - 1)? as u16,
            _ => unreachable!("checked against `known`"),
        }
    }
    if o.proc_id >= o.num_procs {
        return Err(format!(
            "invalid value '{}' for --proc-id: must be below --num-procs={}",
            o.proc_id, o.num_procs
        ));
    }
    if o.rxq % o.num_procs != 0 || o.txq % o.num_procs != 0 {
        return Err(format!(
            "invalid value '{}' for --num-procs: --rxq={} and --txq={} must be multiples of it",
            o.num_procs, o.rxq, o.txq
        ));
    }
    Ok(o)
}

impl Opts {
    /// The RX and TX queues this process forwards on (its share, `--num-procs`).
    pub fn my_queues(&self) -> (std::ops::Range<u16>, std::ops::Range<u16>) {
        let (kr, kt) = (self.rxq / self.num_procs, self.txq / self.num_procs);
        let i = self.proc_id;
        (i * kr..(i + 1) * kr, i * kt..(i + 1) * kt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Opts, String> {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn dpdk_style_options() {
        let o = p(&[
            "-i",
            "--forward-mode=macswap",
            "--nb-cores",
            "2",
            "--txpkts=40,24",
            "--eth-peer=1,02:00:00:00:00:09",
            "--burst=64",
        ])
        .unwrap();
        assert!(o.interactive);
        assert_eq!(o.mode, Mode::MacSwap);
        assert_eq!(o.nb_cores, 2);
        assert_eq!(o.txpkts, vec![40, 24]);
        assert_eq!(o.eth_peers, vec![(1, [2, 0, 0, 0, 0, 9])]);
        assert_eq!(o.burst, 64);
    }

    #[test]
    fn bad_arguments_name_themselves() {
        assert!(p(&["--forward-mode=bogus"])
            .unwrap_err()
            .contains("--forward-mode"));
        assert!(p(&["--burst=0"]).unwrap_err().contains("--burst"));
        assert!(p(&["--burst"]).unwrap_err().contains("--burst"));
        assert!(p(&["--txpkts=10,10"]).unwrap_err().contains("--txpkts"));
        assert!(p(&["--eth-peer=0,zz"]).unwrap_err().contains("--eth-peer"));
        assert!(p(&["--what"]).unwrap_err().contains("--what"));
        assert!(p(&["--tx-first=1"]).unwrap_err().contains("--tx-first"));
        assert!(p(&["--run-time=-1"]).unwrap_err().contains("--run-time"));
        assert!(p(&["--num-procs=2", "--proc-id=2"])
            .unwrap_err()
            .contains("--proc-id"));
        assert!(p(&["--num-procs=2", "--rxq=3", "--txq=2"])
            .unwrap_err()
            .contains("--num-procs"));
        let o = p(&["--num-procs=2", "--proc-id=1", "--rxq=4", "--txq=2"]).unwrap();
        assert_eq!(o.my_queues(), (2..4, 1..2));
    }
}
