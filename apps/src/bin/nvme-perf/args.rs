//! nvme-perf's command line: SPDK `spdk_nvme_perf`'s flags and transport IDs.

use nvme::kernel::Engine;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    Seq,
    Rand,
}

#[derive(Clone, Debug)]
pub enum Trid {
    Pcie { addr: String, ns: Option<u32> },
    Kernel { path: String, engine: Engine },
}

#[derive(Clone, Debug)]
pub struct Args {
    pub depth: usize,
    pub io_size: usize,
    pub pattern: Pattern,
    pub read_pct: u32,
    pub secs: u64,
    pub warmup: u64,
    pub mask: String,
    pub trids: Vec<Trid>,
    pub latency: u8,
    pub iova_mode: Option<String>,
    pub mem_mb: Option<u64>,
    pub prefix: String,
    pub no_huge: bool,
}

pub fn usage() -> &'static str {
    "usage: nvme-perf -q DEPTH -o IO_SIZE -w read|write|randread|randwrite|rw|randrw [-M READ_PCT] -t SECS [-a WARMUP] [-c MASK] [-L|-LL] -r TRID... [--iova-mode pa|va] [-s MB] [--file-prefix P] [--no-huge]\n  TRID: 'trtype:PCIe traddr:DDDD:BB:DD.F [ns:N]' or 'trtype:kernel path:/dev/nvme0n1 engine:io_uring|libaio|psync'"
}

pub fn parse_trid(s: &str) -> Result<Trid, String> {
    let mut kv = std::collections::HashMap::new();
    for part in s.split_whitespace() {
        let (k, v) = part
            .split_once(':')
            .ok_or_else(|| format!("bad -r '{s}': '{part}' is not key:value"))?;
        kv.insert(k.to_ascii_lowercase(), v.to_string());
    }
    match kv.get("trtype").map(|t| t.to_ascii_lowercase()).as_deref() {
        Some("pcie") => {
            let addr = kv
                .get("traddr")
                .ok_or_else(|| format!("bad -r '{s}': trtype:PCIe needs traddr:"))?
                .clone();
            addr.parse::<eal::pci::PciAddr>()
                .map_err(|e| format!("bad -r '{s}': {e}"))?;
            let ns = match kv.get("ns") {
                Some(n) => Some(
                    n.parse()
                        .map_err(|_| format!("bad -r '{s}': ns:{n} is not a number"))?,
                ),
                None => None,
            };
            Ok(Trid::Pcie { addr, ns })
        }
        Some("kernel") => {
            let path = kv
                .get("path")
                .ok_or_else(|| format!("bad -r '{s}': trtype:kernel needs path:"))?
                .clone();
            let engine = kv
                .get("engine")
                .map(String::as_str)
                .unwrap_or("io_uring")
                .parse()
                .map_err(|e| format!("bad -r '{s}': {e}"))?;
            Ok(Trid::Kernel { path, engine })
        }
        _ => Err(format!("bad -r '{s}': trtype must be PCIe or kernel")),
    }
}

pub fn parse_size(s: &str) -> Option<usize> {
    let (n, m) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1024),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    n.parse::<usize>().ok().map(|v| v * m)
}

/// `v` as a number, or the error line `err`.
fn number<T: std::str::FromStr>(v: String, err: &str) -> Result<T, String> {
    v.parse::<T>().map_err(|_| err.to_string())
}

pub fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut depth = None;
    let mut io_size = None;
    let mut workload = None;
    let mut read_pct = None;
    let mut secs = None;
    let mut warmup = 0;
    let mut mask = "0x1".to_string();
    let mut trids = Vec::new();
    let mut latency = 0;
    let mut iova_mode = None;
    let mut mem_mb = None;
    let mut prefix = format!("nvme-perf-{}", std::process::id());
    let mut no_huge = false;
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].as_str();
        let mut val = || -> Result<String, String> {
            i += 1;
            argv.get(i)
                .cloned()
                .ok_or_else(|| format!("option {a} needs a value"))
        };
        match a {
            "-q" => depth = Some(number::<usize>(val()?, "-q: not a number")?),
            "-o" => {
                io_size = Some(parse_size(&val()?).ok_or("-o: not a size (bytes, or with k/m)")?)
            }
            "-w" => workload = Some(val()?),
            "-M" => read_pct = Some(number::<u32>(val()?, "-M: not a number")?),
            "-t" => secs = Some(number::<u64>(val()?, "-t: not a number of seconds")?),
            "-a" => warmup = number::<u64>(val()?, "-a: not a number of seconds")?,
            "-c" => mask = val()?,
            "-r" => trids.push(parse_trid(&val()?)?),
            "-L" => latency = 1,
            "-LL" => latency = 2,
            "--iova-mode" => iova_mode = Some(val()?),
            "-s" => mem_mb = Some(number::<u64>(val()?, "-s: not a number of MiB")?),
            "--file-prefix" => prefix = val()?,
            "--no-huge" => no_huge = true,
            "-h" | "--help" => return Err("help".into()),
            other => return Err(format!("unknown option '{other}'")),
        }
        i += 1;
    }
    let depth = depth.ok_or("missing -q (queue depth)")?;
    let io_size = io_size.ok_or("missing -o (I/O size)")?;
    let w = workload.ok_or("missing -w (workload)")?;
    let secs = secs.ok_or("missing -t (seconds)")?;
    if depth == 0 || depth > 4095 {
        return Err(format!("-q {depth}: must be 1..=4095"));
    }
    if io_size == 0 || io_size % 512 != 0 {
        return Err(format!("-o {io_size}: must be a positive multiple of 512"));
    }
    if secs == 0 {
        return Err("-t 0: must be at least 1 second".into());
    }
    let (pattern, pct) = match w.as_str() {
        "read" => (Pattern::Seq, 100),
        "write" => (Pattern::Seq, 0),
        "randread" => (Pattern::Rand, 100),
        "randwrite" => (Pattern::Rand, 0),
        "rw" | "randrw" => {
            let p = read_pct.ok_or(format!("-w {w} needs -M (read percentage)"))?;
            if p > 100 {
                return Err(format!("-M {p}: must be 0..=100"));
            }
            (
                if w == "rw" {
                    Pattern::Seq
                } else {
                    Pattern::Rand
                },
                p,
            )
        }
        other => {
            return Err(format!(
                "-w '{other}': must be read, write, randread, randwrite, rw or randrw"
            ))
        }
    };
    if trids.is_empty() {
        return Err("missing -r (transport id)".into());
    }
    if let Some(m) = &iova_mode {
        if m != "pa" && m != "va" {
            return Err(format!("--iova-mode '{m}': must be pa or va"));
        }
    }
    Ok(Args {
        depth,
        io_size,
        pattern,
        read_pct: pct,
        secs,
        warmup,
        mask,
        trids,
        latency,
        iova_mode,
        mem_mb,
        prefix,
        no_huge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        let v: Vec<String> = std::iter::once("nvme-perf")
            .chain(s.split(' '))
            .map(String::from)
            .collect();
        parse_args(&v)
    }

    #[test]
    fn parses_spdk_style_flags() {
        let a = args(
            "-q 32 -o 4096 -w randrw -M 70 -t 5 -a 1 -c 0x3 -LL -r trtype:PCIe_traddr:0000:00:02.0",
        )
        .err();
        assert!(a.is_some(), "underscore-joined trid must be refused");
        let v: Vec<String> = [
            "nvme-perf",
            "-q",
            "32",
            "-o",
            "4k",
            "-w",
            "randrw",
            "-M",
            "70",
            "-t",
            "5",
            "-c",
            "0x3",
            "-LL",
            "-r",
            "trtype:PCIe traddr:0000:00:02.0 ns:2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let a = parse_args(&v).unwrap();
        assert_eq!(
            (a.depth, a.io_size, a.read_pct, a.secs, a.latency),
            (32, 4096, 70, 5, 2)
        );
        assert!(matches!(&a.trids[0], Trid::Pcie { addr, ns: Some(2) } if addr == "0000:00:02.0"));
        let v: Vec<String> = [
            "nvme-perf",
            "-q",
            "1",
            "-o",
            "512",
            "-w",
            "read",
            "-t",
            "1",
            "-r",
            "trtype:kernel path:/dev/nvme0n1 engine:libaio",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert!(matches!(
            &parse_args(&v).unwrap().trids[0],
            Trid::Kernel {
                engine: Engine::Libaio,
                ..
            }
        ));
    }

    #[test]
    fn bad_args_name_the_problem() {
        for (s, word) in [
            ("-q 0 -o 4096 -w read -t 1 -r x", "-r"),
            ("-o 4096 -w read -t 1", "-q"),
            ("-q 1 -o 100 -w read -t 1", "-o"),
            ("-q 1 -o 4096 -w rw -t 1", "-M"),
            ("-q 1 -o 4096 -w bogus -t 1", "-w"),
            ("-q 1 -o 4096 -w read -t 1 --frob", "--frob"),
            ("-q 1 -o 4096 -w read", "-t"),
        ] {
            let e = args(s).unwrap_err();
            assert!(e.contains(word), "{s}: {e}");
        }
    }
}
