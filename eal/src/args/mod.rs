//! EAL command-line options, parsed the way DPDK applications take them.
//!
//! `prog [EAL options] -- [application options]`. [`EalArgs::parse`] is pure: it reads
//! only its argument slice (no sysfs, no environment), so every rule can be tested with
//! tables. Whatever depends on the machine (are the cpus online, do the NUMA nodes exist)
//! is checked by [`EalArgs::validate`] against a [`CpuTopology`], which the EAL reads
//! from sysfs and tests build by hand.
//!
//! Syntax follows getopt as DPDK uses it: `--opt value` and `--opt=value` for long
//! options; `-l value` and the glued `-lvalue` for short ones. A value is the next argument
//! unless that starts with `--` (then the option is reported as missing its value). Short
//! options are not clustered (`-hx` is unknown). Parsing stops at `--`; everything after it
//! is returned untouched as the application's arguments (without the program name). A
//! non-option word before `--` is an error, as is any repeated single-valued option.
//!
//! Errors name the argument: [`Error::UnknownArg`], [`Error::MissingValue`],
//! [`Error::BadArg`] (bad value or a forbidden combination), [`Error::HelpRequested`]
//! for `-h`/`--help`. Parsing never panics, whatever the strings.
//!
//! Option meanings and exclusions follow DPDK's EAL parameters guide
//! (doc/guides/linux_gsg/linux_eal_parameters.rst); the code is our own.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::lcore::{CpuTopology, MAX_LCORE};
use crate::log::Level;
use crate::pci::{PciAddr, PciFilter};

mod lcores;

pub use lcores::{parse_coremask, parse_lcores, MAX_CPU};

/// Role of this process in a multi-process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcType {
    /// Owns and initializes the shared memory (the default, as in DPDK).
    #[default]
    Primary,
    /// Attaches to a running primary's memory.
    Secondary,
    /// Primary if no live primary holds the file prefix, else secondary.
    Auto,
}

/// Which addresses devices use for DMA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IovaMode {
    /// Physical addresses (needs root to read /proc/self/pagemap).
    Pa,
    /// Virtual addresses through the IOMMU (vfio).
    Va,
}

/// Most NUMA nodes `--socket-mem` may list (DPDK's default `RTE_MAX_NUMA_NODES`).
pub const MAX_NUMA_NODES: usize = 32;
/// Largest memory amount in MB accepted by `-m` or one `--socket-mem` entry (1 PiB);
/// keeps `mb << 20` far from overflow.
pub const MAX_MEM_MB: u64 = 1 << 30;
/// Longest `--file-prefix`.
pub const MAX_PREFIX_LEN: usize = 64;

/// Parsed EAL options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalArgs {
    /// `(lcore id, cpu)` pairs, sorted by lcore id. Empty = every online cpu (below
    /// `MAX_LCORE`), lcore id = cpu. From `-l`/`--lcores` or `-c`.
    pub lcores: Vec<(u32, u32)>,
    /// `--main-lcore`; `None` = the lowest lcore id.
    pub main_lcore: Option<u32>,
    /// `-m`: total memory in MB.
    pub mem_mb: Option<u64>,
    /// `--socket-mem`: MB per NUMA node, node 0 first.
    pub socket_mem: Option<Vec<u64>>,
    /// `--huge-dir`: the hugetlbfs mount to use.
    pub huge_dir: Option<PathBuf>,
    /// `--no-huge`: anonymous memory instead of hugepages.
    pub no_huge: bool,
    /// `--file-prefix`: names this EAL instance's shared files. Default `ferroplane`.
    pub file_prefix: String,
    /// `--proc-type`.
    pub proc_type: ProcType,
    /// `-a` / `--allow`: only these PCI devices.
    pub allow: Vec<PciAddr>,
    /// Device arguments given after a comma in `-a ADDR,key=val,...` (only for entries
    /// that had some), in command-line order.
    pub allow_args: Vec<(PciAddr, String)>,
    /// `-b` / `--block`: never these PCI devices.
    pub block: Vec<PciAddr>,
    /// `--vdev`: raw `name,key=val,...` strings.
    pub vdevs: Vec<String>,
    /// `--no-pci`.
    pub no_pci: bool,
    /// `--iova-mode`; `None` = let the EAL choose.
    pub iova_mode: Option<IovaMode>,
    /// `--log-level`.
    pub log_level: Level,
    /// `-n`: memory channels (a hint; accepted for DPDK command-line compatibility).
    pub mem_channels: Option<u32>,
}

impl Default for EalArgs {
    fn default() -> Self {
        EalArgs {
            lcores: Vec::new(),
            main_lcore: None,
            mem_mb: None,
            socket_mem: None,
            huge_dir: None,
            no_huge: false,
            file_prefix: "ferroplane".to_string(),
            proc_type: ProcType::Primary,
            allow: Vec::new(),
            allow_args: Vec::new(),
            block: Vec::new(),
            vdevs: Vec::new(),
            no_pci: false,
            iova_mode: None,
            log_level: Level::default(),
            mem_channels: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Opt {
    Lcores,
    Coremask,
    MainLcore,
    Mem,
    MemChannels,
    SocketMem,
    HugeDir,
    NoHuge,
    FilePrefix,
    ProcType,
    Allow,
    Block,
    Vdev,
    NoPci,
    IovaMode,
    LogLevel,
    Help,
}

struct Spec {
    short: Option<char>,
    long: Option<&'static str>,
    metavar: Option<&'static str>,
    opt: Opt,
    help: &'static str,
}

const SPECS: &[Spec] = &[
    Spec {
        short: Some('l'),
        long: Some("lcores"),
        metavar: Some("LIST"),
        opt: Opt::Lcores,
        help: "lcores to run on: '0-3,5' (lcore = cpu) or 'LCORES@CPU' such as '(0-3)@1,4@2'",
    },
    Spec {
        short: Some('c'),
        long: None,
        metavar: Some("MASK"),
        opt: Opt::Coremask,
        help: "hex mask of lcores (lcore = cpu), '0x' optional; exclusive with -l",
    },
    Spec {
        short: None,
        long: Some("main-lcore"),
        metavar: Some("ID"),
        opt: Opt::MainLcore,
        help: "lcore that runs the application thread (default: the lowest)",
    },
    Spec {
        short: Some('m'),
        long: None,
        metavar: Some("MB"),
        opt: Opt::Mem,
        help: "memory to reserve, in MB; exclusive with --socket-mem",
    },
    Spec {
        short: Some('n'),
        long: None,
        metavar: Some("N"),
        opt: Opt::MemChannels,
        help: "number of memory channels (hint)",
    },
    Spec {
        short: None,
        long: Some("socket-mem"),
        metavar: Some("MB,MB,.."),
        opt: Opt::SocketMem,
        help: "memory per NUMA node in MB, node 0 first",
    },
    Spec {
        short: None,
        long: Some("huge-dir"),
        metavar: Some("DIR"),
        opt: Opt::HugeDir,
        help: "hugetlbfs mount to use",
    },
    Spec {
        short: None,
        long: Some("no-huge"),
        metavar: None,
        opt: Opt::NoHuge,
        help: "use anonymous memory instead of hugepages (no DMA in PA mode)",
    },
    Spec {
        short: None,
        long: Some("file-prefix"),
        metavar: Some("NAME"),
        opt: Opt::FilePrefix,
        help: "name of this instance's shared files ([A-Za-z0-9_-], default 'ferroplane')",
    },
    Spec {
        short: None,
        long: Some("proc-type"),
        metavar: Some("TYPE"),
        opt: Opt::ProcType,
        help: "primary, secondary or auto (default primary)",
    },
    Spec {
        short: Some('a'),
        long: Some("allow"),
        metavar: Some("ADDR[,ARGS]"),
        opt: Opt::Allow,
        help: "use only this PCI device (repeatable); exclusive with -b",
    },
    Spec {
        short: Some('b'),
        long: Some("block"),
        metavar: Some("ADDR"),
        opt: Opt::Block,
        help: "never use this PCI device (repeatable)",
    },
    Spec {
        short: None,
        long: Some("vdev"),
        metavar: Some("NAME[,ARGS]"),
        opt: Opt::Vdev,
        help: "add a virtual device (repeatable)",
    },
    Spec {
        short: None,
        long: Some("no-pci"),
        metavar: None,
        opt: Opt::NoPci,
        help: "do not scan or use PCI devices",
    },
    Spec {
        short: None,
        long: Some("iova-mode"),
        metavar: Some("pa|va"),
        opt: Opt::IovaMode,
        help: "DMA addresses: physical (pa) or virtual through the IOMMU (va)",
    },
    Spec {
        short: None,
        long: Some("log-level"),
        metavar: Some("LEVEL"),
        opt: Opt::LogLevel,
        help: "1..8, a name (emergency..debug) or TYPE:LEVEL (only the level is used)",
    },
    Spec {
        short: Some('h'),
        long: Some("help"),
        metavar: None,
        opt: Opt::Help,
        help: "print this help",
    },
];

/// Options that may be given more than once.
fn repeatable(o: Opt) -> bool {
    matches!(
        o,
        Opt::Allow | Opt::Block | Opt::Vdev | Opt::LogLevel | Opt::NoHuge | Opt::NoPci
    )
}

/// The EAL options' help text.
pub fn usage() -> String {
    let mut s =
        String::from("Usage: PROGRAM [EAL options] -- [application options]\n\nEAL options:\n");
    for sp in SPECS {
        let mut names = String::new();
        if let Some(c) = sp.short {
            names.push('-');
            names.push(c);
            if let Some(m) = sp.metavar {
                let _ = write!(names, " {m}");
            }
        }
        if let Some(l) = sp.long {
            if !names.is_empty() {
                names.push_str(", ");
            }
            let _ = write!(names, "--{l}");
            if let Some(m) = sp.metavar {
                let _ = write!(names, " {m}");
            }
        }
        let _ = writeln!(s, "  {names:<30} {}", sp.help);
    }
    s
}

fn bad(arg: &str, value: &str, why: impl Into<String>) -> Error {
    Error::BadArg {
        arg: arg.to_string(),
        value: value.to_string(),
        why: why.into(),
    }
}

fn parse_dec<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_mb(arg: &str, s: &str) -> Result<u64> {
    let mb: u64 = parse_dec(s).ok_or_else(|| bad(arg, s, "not a number of MB"))?;
    if mb > MAX_MEM_MB {
        return Err(bad(arg, s, format!("more than {MAX_MEM_MB} MB")));
    }
    Ok(mb)
}

fn valid_prefix(s: &str) -> bool {
    (1..=MAX_PREFIX_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn parse_log_level(s: &str) -> std::result::Result<Level, String> {
    // `type:level` (or the older `type,level`): only the level matters here.
    let level = match s.rsplit_once(':').or_else(|| s.rsplit_once(',')) {
        Some((ty, lvl)) => {
            if ty.is_empty() {
                return Err("empty log type before ':'".into());
            }
            lvl
        }
        None => s,
    };
    level.parse::<Level>().map_err(|e| e.to_string())
}

impl EalArgs {
    /// Parse `argv` (`argv[0]` is the program name and is skipped; an empty `argv` gives
    /// the defaults). Returns the options and the arguments after `--`. See the module docs.
    pub fn parse(argv: &[String]) -> Result<(EalArgs, Vec<String>)> {
        let mut a = EalArgs::default();
        let mut app = Vec::new();
        // (option, how it was spelled, its value) for the cross-checks at the end.
        let mut given: Vec<(Opt, String, String)> = Vec::new();
        let mut i = 1;
        while i < argv.len() {
            let arg = argv[i].as_str();
            i += 1;
            if arg == "--" {
                app = argv[i..].to_vec();
                break;
            }
            let (spec, name, inline): (&Spec, String, Option<&str>) =
                if let Some(body) = arg.strip_prefix("--") {
                    let (n, v) = match body.split_once('=') {
                        Some((n, v)) => (n, Some(v)),
                        None => (body, None),
                    };
                    let spec = SPECS
                        .iter()
                        .find(|s| s.long == Some(n))
                        .ok_or_else(|| Error::UnknownArg(arg.to_string()))?;
                    (spec, format!("--{n}"), v)
                } else if let Some(body) = arg.strip_prefix('-') {
                    let mut chars = body.chars();
                    let c = chars
                        .next()
                        .ok_or_else(|| Error::UnknownArg(arg.to_string()))?;
                    let rest = chars.as_str();
                    let spec = SPECS
                        .iter()
                        .find(|s| s.short == Some(c))
                        .ok_or_else(|| Error::UnknownArg(arg.to_string()))?;
                    if spec.metavar.is_none() && !rest.is_empty() {
                        return Err(Error::UnknownArg(arg.to_string()));
                    }
                    (spec, format!("-{c}"), (!rest.is_empty()).then_some(rest))
                } else {
                    return Err(Error::UnknownArg(arg.to_string()));
                };

            let value: String = if spec.metavar.is_some() {
                match inline {
                    Some(v) => v.to_string(),
                    None => match argv.get(i) {
                        Some(v) if !v.starts_with("--") => {
                            i += 1;
                            v.clone()
                        }
                        _ => return Err(Error::MissingValue(name)),
                    },
                }
            } else {
                if let Some(v) = inline {
                    return Err(bad(&name, v, "this option takes no value"));
                }
                String::new()
            };

            if !repeatable(spec.opt) && given.iter().any(|(o, _, _)| *o == spec.opt) {
                return Err(bad(&name, &value, "given more than once"));
            }
            a.apply(spec.opt, &name, &value)?;
            given.push((spec.opt, name, value));
        }
        a.cross_check(&given)?;
        Ok((a, app))
    }

    fn apply(&mut self, opt: Opt, name: &str, v: &str) -> Result<()> {
        match opt {
            Opt::Help => return Err(Error::HelpRequested),
            Opt::Lcores => self.lcores = parse_lcores(v).map_err(|why| bad(name, v, why))?,
            Opt::Coremask => self.lcores = parse_coremask(v).map_err(|why| bad(name, v, why))?,
            Opt::MainLcore => {
                let id: u32 = parse_dec(v).ok_or_else(|| bad(name, v, "not an lcore id"))?;
                if id as usize >= MAX_LCORE {
                    return Err(bad(name, v, format!("lcore ids are 0..{MAX_LCORE}")));
                }
                self.main_lcore = Some(id);
            }
            Opt::Mem => {
                let mb = parse_mb(name, v)?;
                if mb == 0 {
                    return Err(bad(name, v, "must be more than 0"));
                }
                self.mem_mb = Some(mb);
            }
            Opt::MemChannels => {
                let n: u32 = parse_dec(v).ok_or_else(|| bad(name, v, "not a number"))?;
                if !(1..=64).contains(&n) {
                    return Err(bad(name, v, "must be 1..64"));
                }
                self.mem_channels = Some(n);
            }
            Opt::SocketMem => {
                let list = v
                    .split(',')
                    .map(|p| parse_mb(name, p))
                    .collect::<Result<Vec<u64>>>()?;
                if list.len() > MAX_NUMA_NODES {
                    return Err(bad(
                        name,
                        v,
                        format!("more than {MAX_NUMA_NODES} NUMA nodes"),
                    ));
                }
                if list.iter().all(|&m| m == 0) {
                    return Err(bad(name, v, "asks for no memory at all"));
                }
                self.socket_mem = Some(list);
            }
            Opt::HugeDir => {
                if v.is_empty() {
                    return Err(bad(name, v, "empty path"));
                }
                self.huge_dir = Some(PathBuf::from(v));
            }
            Opt::NoHuge => self.no_huge = true,
            Opt::NoPci => self.no_pci = true,
            Opt::FilePrefix => {
                if !valid_prefix(v) {
                    return Err(bad(
                        name,
                        v,
                        format!("must be 1..={MAX_PREFIX_LEN} characters of [A-Za-z0-9_-]"),
                    ));
                }
                self.file_prefix = v.to_string();
            }
            Opt::ProcType => {
                self.proc_type = match v {
                    "primary" => ProcType::Primary,
                    "secondary" => ProcType::Secondary,
                    "auto" => ProcType::Auto,
                    _ => return Err(bad(name, v, "must be primary, secondary or auto")),
                }
            }
            Opt::IovaMode => {
                self.iova_mode = Some(match v {
                    "pa" => IovaMode::Pa,
                    "va" => IovaMode::Va,
                    _ => return Err(bad(name, v, "must be pa or va")),
                })
            }
            Opt::LogLevel => {
                self.log_level = parse_log_level(v).map_err(|why| bad(name, v, why))?
            }
            Opt::Allow => {
                let (addr_s, dev_args) = match v.split_once(',') {
                    Some((a, rest)) => (a, Some(rest)),
                    None => (v, None),
                };
                let addr: PciAddr = addr_s
                    .parse()
                    .map_err(|e: Error| bad(name, v, e.to_string()))?;
                if self.allow.contains(&addr) {
                    return Err(bad(name, v, format!("device {addr} given twice")));
                }
                if let Some(args) = dev_args {
                    if args.is_empty() {
                        return Err(bad(name, v, "empty device arguments after ','"));
                    }
                    self.allow_args.push((addr, args.to_string()));
                }
                self.allow.push(addr);
            }
            Opt::Block => {
                let addr: PciAddr = v.parse().map_err(|e: Error| bad(name, v, e.to_string()))?;
                if self.block.contains(&addr) {
                    return Err(bad(name, v, format!("device {addr} given twice")));
                }
                self.block.push(addr);
            }
            Opt::Vdev => {
                let dev_name = v.split(',').next().unwrap_or("");
                if dev_name.is_empty()
                    || !dev_name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(bad(name, v, "device name must be non-empty [A-Za-z0-9_]"));
                }
                self.vdevs.push(v.to_string());
            }
        }
        Ok(())
    }

    fn cross_check(&self, given: &[(Opt, String, String)]) -> Result<()> {
        let find = |o: Opt| given.iter().find(|(g, _, _)| *g == o);
        if let (Some(_), Some((_, n, v))) = (find(Opt::Lcores), find(Opt::Coremask)) {
            return Err(bad(n, v, "-l/--lcores and -c are exclusive"));
        }
        if let (Some(_), Some((_, n, v))) = (find(Opt::Mem), find(Opt::SocketMem)) {
            return Err(bad(n, v, "-m and --socket-mem are exclusive"));
        }
        if let (Some(_), Some((_, n, v))) = (find(Opt::NoHuge), find(Opt::SocketMem)) {
            return Err(bad(n, v, "--socket-mem cannot be used with --no-huge"));
        }
        if let (Some(_), Some((_, n, v))) = (find(Opt::NoHuge), find(Opt::HugeDir)) {
            return Err(bad(n, v, "--huge-dir cannot be used with --no-huge"));
        }
        if let (Some(_), Some((_, n, v))) = (find(Opt::Allow), find(Opt::Block)) {
            return Err(bad(n, v, "-a/--allow and -b/--block are exclusive"));
        }
        if let (Some(main), false) = (self.main_lcore, self.lcores.is_empty()) {
            if !self.lcores.iter().any(|&(l, _)| l == main) {
                let (n, v) = find(Opt::MainLcore)
                    .map(|(_, n, v)| (n.as_str(), v.as_str()))
                    .unwrap_or(("--main-lcore", ""));
                return Err(bad(n, v, "main lcore is not in the lcore list"));
            }
        }
        Ok(())
    }

    /// Check the options against the machine: every cpu named by `-l`/`-c` is online,
    /// `--main-lcore` (when no list was given) is an online cpu, and `--socket-mem` asks
    /// nothing of NUMA nodes that have no online cpu. Errors are [`Error::BadArg`] naming
    /// the option.
    pub fn validate(&self, topo: &CpuTopology) -> Result<()> {
        let online = topo.online();
        for &(l, c) in &self.lcores {
            if !topo.is_online(c) {
                return Err(bad(
                    "-l",
                    &format!("{l}@{c}"),
                    format!("cpu {c} is not online (online cpus: {online:?})"),
                ));
            }
        }
        if self.lcores.is_empty() {
            if let Some(m) = self.main_lcore {
                if !topo.is_online(m) {
                    return Err(bad(
                        "--main-lcore",
                        &m.to_string(),
                        format!("no -l given, so lcores are the online cpus {online:?}, and {m} is not one"),
                    ));
                }
            }
        }
        if let Some(sm) = &self.socket_mem {
            let nodes = topo.numa_nodes();
            for (node, &mb) in sm.iter().enumerate() {
                if mb > 0 && !nodes.contains(&(node as u32)) {
                    return Err(bad(
                        "--socket-mem",
                        &format!("{mb} for node {node}"),
                        format!("NUMA node {node} has no online cpus (nodes: {nodes:?})"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// [`validate`](Self::validate), then the lcores to start and the main lcore: the
    /// given list, or every online cpu below `MAX_LCORE` as its own lcore; the main lcore
    /// is `--main-lcore` or the lowest id.
    pub fn resolve_lcores(&self, topo: &CpuTopology) -> Result<(Vec<(u32, u32)>, u32)> {
        self.validate(topo)?;
        let lcores: Vec<(u32, u32)> = if self.lcores.is_empty() {
            topo.online()
                .into_iter()
                .filter(|&c| (c as usize) < MAX_LCORE)
                .map(|c| (c, c))
                .collect()
        } else {
            self.lcores.clone()
        };
        let main = match (self.main_lcore, lcores.first()) {
            (Some(m), _) => m,
            (None, Some(&(l, _))) => l,
            (None, None) => {
                return Err(bad(
                    "-l",
                    "",
                    format!("no online cpu below {MAX_LCORE} to run on"),
                ));
            }
        };
        Ok((lcores, main))
    }

    /// The PCI filter these options describe.
    pub fn pci_filter(&self) -> PciFilter {
        PciFilter {
            allow: self.allow.clone(),
            block: self.block.clone(),
            no_pci: self.no_pci,
        }
    }

    /// Device arguments given with `-a` for `addr`, if any.
    pub fn device_args(&self, addr: &PciAddr) -> Option<&str> {
        self.allow_args
            .iter()
            .find(|(a, _)| a == addr)
            .map(|(_, s)| s.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_lists_every_option() {
        let u = usage();
        for sp in SPECS {
            if let Some(l) = sp.long {
                assert!(u.contains(&format!("--{l}")), "{l} missing");
            }
            if let Some(c) = sp.short {
                assert!(u.contains(&format!("-{c}")), "{c} missing");
            }
        }
    }
}
