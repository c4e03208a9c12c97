//! bdevperf's command line: SPDK's bdevperf flags (`-q -o -w -M -t -z -T -C -c`) in
//! front of the framework application's own (`-m`, `--json`, `-r`, `-s`, EAL options).
//! `-c FILE` is SPDK's bdevperf spelling of `--json FILE`.

use framework::app::AppOpts;

/// The I/O pattern (`-w`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Sequential reads.
    Read,
    /// Sequential writes.
    Write,
    /// Random reads.
    RandRead,
    /// Random writes.
    RandWrite,
    /// Sequential, `-M` percent reads.
    Rw,
    /// Random, `-M` percent reads.
    RandRw,
    /// Write, read back, compare.
    Verify,
    /// Verify with a bdev reset every second.
    Reset,
    /// Sequential unmaps.
    Unmap,
    /// Sequential flushes.
    Flush,
    /// Sequential write-zeroes.
    WriteZeroes,
}

impl Workload {
    /// Every name `-w` takes, in SPDK's order.
    pub const NAMES: [&'static str; 11] = [
        "read",
        "write",
        "randread",
        "randwrite",
        "rw",
        "randrw",
        "verify",
        "reset",
        "unmap",
        "flush",
        "write_zeroes",
    ];

    /// Parse a `-w` value.
    pub fn parse(s: &str) -> Option<Workload> {
        use Workload::*;
        Some(match s {
            "read" => Read,
            "write" => Write,
            "randread" => RandRead,
            "randwrite" => RandWrite,
            "rw" => Rw,
            "randrw" => RandRw,
            "verify" => Verify,
            "reset" => Reset,
            "unmap" => Unmap,
            "flush" => Flush,
            "write_zeroes" => WriteZeroes,
            _ => return None,
        })
    }

    /// SPDK's name.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Whether offsets are random.
    pub fn random(self) -> bool {
        matches!(
            self,
            Workload::RandRead | Workload::RandWrite | Workload::RandRw
        )
    }

    /// Whether it writes, reads back and compares.
    pub fn verifies(self) -> bool {
        matches!(self, Workload::Verify | Workload::Reset)
    }
}

/// The test parameters (also what `perform_tests` may override).
#[derive(Debug, Clone, PartialEq)]
pub struct PerfOpts {
    /// `-q`: I/Os in flight per job.
    pub depth: usize,
    /// `-o`: bytes per I/O.
    pub io_size: u64,
    /// `-w`.
    pub workload: Workload,
    /// `-M`: read percentage of rw/randrw.
    pub rw_read_pct: u32,
    /// `-t`: seconds.
    pub seconds: f64,
    /// `-T`: only this bdev.
    pub only_bdev: Option<String>,
    /// `-f`: keep going after a failed I/O (default: the job stops).
    pub continue_on_failure: bool,
}

/// Everything the command line says.
#[derive(Debug, Clone)]
pub struct Cli {
    /// Test parameters.
    pub perf: PerfOpts,
    /// `-z`: wait for `perform_tests`.
    pub wait_rpc: bool,
    /// The framework application's options.
    pub app: AppOpts,
}

/// Help text.
pub fn usage(program: &str) -> String {
    format!(
        "Usage: {program} -q DEPTH -o SIZE -w TYPE -t SECONDS [options]\n\n\
         bdevperf options:\n  \
         -q <depth>     I/Os in flight per job\n  \
         -o <size>      I/O size in bytes (suffixes k, m: 4k)\n  \
         -w <type>      one of {}\n  \
         -M <percent>   read percentage of rw and randrw (0-100)\n  \
         -t <time>      run time in seconds\n  \
         -T <bdev>      only this bdev (default: every bdev)\n  \
         -C             every core runs a job on every bdev (always so here)\n  \
         -f             keep going after a failed I/O\n  \
         -z             wait for the perform_tests RPC before running\n  \
         -c <file>      JSON configuration (same as --json)\n\n{}",
        Workload::NAMES.join(", "),
        framework::app::args::usage(program)
    )
}

/// A command-line error: the flag and why.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgError {
    /// `-h`.
    Help,
    /// A bad or missing value.
    Bad(String),
}

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgError::Help => write!(f, "help requested"),
            ArgError::Bad(s) => write!(f, "{s}"),
        }
    }
}

fn bad(s: String) -> ArgError {
    ArgError::Bad(s)
}

/// A size with an optional k/m/g suffix (powers of 1024, as SPDK's capacity parser).
pub fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, mul) = match v.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (v, 1u64),
        Some((i, _)) => {
            let mul = match v[i..].to_ascii_lowercase().as_str() {
                "k" | "kb" | "kib" => 1 << 10,
                "m" | "mb" | "mib" => 1 << 20,
                "g" | "gb" | "gib" => 1 << 30,
                _ => return None,
            };
            (&v[..i], mul)
        }
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

fn positive_int(flag: &str, v: &str) -> Result<u64, ArgError> {
    match v.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(bad(format!(
            "invalid {flag} value '{v}': expected a positive integer"
        ))),
    }
}

/// Parse `argv` (argv[0] is the program).
pub fn parse(argv: &[String]) -> Result<Cli, ArgError> {
    let program = argv.first().cloned().unwrap_or_else(|| "bdevperf".into());
    let (mut depth, mut size, mut workload, mut mix, mut secs) = (None, None, None, None, None);
    let (mut wait_rpc, mut only, mut keep_going) = (false, None, false);
    let mut rest = vec![program];
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].as_str();
        i += 1;
        let takes = matches!(a, "-q" | "-o" | "-w" | "-M" | "-t" | "-T" | "-c");
        let v = if takes {
            match argv.get(i) {
                Some(v) => {
                    i += 1;
                    v.clone()
                }
                None => return Err(bad(format!("option {a} needs a value"))),
            }
        } else {
            String::new()
        };
        match a {
            "-h" | "--help" => return Err(ArgError::Help),
            "-q" => depth = Some(positive_int("-q (queue depth)", &v)? as usize),
            "-o" => {
                size = Some(
                    parse_size(&v).filter(|&n| n > 0).ok_or_else(|| {
                        bad(format!("invalid -o (I/O size) value '{v}': expected a positive size such as 4096 or 4k"))
                    })?,
                )
            }
            "-w" => {
                workload = Some(Workload::parse(&v).ok_or_else(|| {
                    bad(format!(
                        "invalid -w (workload) value '{v}': must be one of {}",
                        Workload::NAMES.join(", ")
                    ))
                })?)
            }
            "-M" => match v.parse::<u32>() {
                Ok(n) if n <= 100 => mix = Some(n),
                _ => {
                    return Err(bad(format!(
                        "invalid -M (read percentage) value '{v}': expected 0 to 100"
                    )))
                }
            },
            "-t" => match v.parse::<f64>() {
                Ok(t) if t > 0.0 && t.is_finite() => secs = Some(t),
                _ => {
                    return Err(bad(format!(
                        "invalid -t (time) value '{v}': expected a positive number of seconds"
                    )))
                }
            },
            "-T" => only = Some(v),
            "-c" => {
                rest.push("--json".into());
                rest.push(v);
            }
            "-z" => wait_rpc = true,
            "-C" => {}
            "-f" => keep_going = true,
            _ => rest.push(a.to_string()),
        }
    }
    let depth = depth.ok_or_else(|| bad("missing -q (queue depth) operand".into()))?;
    let io_size = size.ok_or_else(|| bad("missing -o (I/O size) operand".into()))?;
    let workload = workload.ok_or_else(|| bad("missing -w (workload) operand".into()))?;
    let seconds = secs.ok_or_else(|| bad("missing -t (time) operand".into()))?;
    let rw_read_pct = match (workload, mix) {
        (Workload::Rw | Workload::RandRw, Some(m)) => m,
        (Workload::Rw | Workload::RandRw, None) => {
            return Err(bad(format!(
                "-w {} needs -M (read percentage, 0-100)",
                workload.name()
            )))
        }
        (_, Some(_)) => {
            return Err(bad(format!(
                "-M applies only to -w rw and randrw, not {}",
                workload.name()
            )))
        }
        (Workload::Read | Workload::RandRead, None) => 100,
        (_, None) => 0,
    };
    let mut app = AppOpts::parse(&rest).map_err(|e| match e {
        framework::Error::HelpRequested => ArgError::Help,
        e => bad(e.to_string()),
    })?;
    // bdevperf measures: its reactors poll, as SPDK's do.
    app.interrupt_mode = false;
    Ok(Cli {
        perf: PerfOpts {
            depth,
            io_size,
            workload,
            rw_read_pct,
            seconds,
            only_bdev: only,
            continue_on_failure: keep_going,
        },
        wait_rpc,
        app,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &str) -> Result<Cli, ArgError> {
        let v: Vec<String> = std::iter::once("bdevperf")
            .chain(a.split_whitespace())
            .map(String::from)
            .collect();
        parse(&v)
    }

    #[test]
    fn spdk_flags() {
        let c = p("-q 32 -o 4k -w randrw -M 70 -t 2 -m 0x1 -c cfg.json -z --no-huge").unwrap();
        assert_eq!(c.perf.depth, 32);
        assert_eq!(c.perf.io_size, 4096);
        assert_eq!(c.perf.workload, Workload::RandRw);
        assert_eq!(c.perf.rw_read_pct, 70);
        assert_eq!(c.perf.seconds, 2.0);
        assert!(c.wait_rpc);
        assert_eq!(
            c.app.json_config.as_deref(),
            Some(std::path::Path::new("cfg.json"))
        );
        assert_eq!(c.app.eal_argv, ["bdevperf", "-c", "0x1", "--no-huge"]);
        assert!(!c.app.interrupt_mode);
        let c = p("-q 1 -o 512 -w verify -t 1 --json x.json").unwrap();
        assert_eq!(c.perf.rw_read_pct, 0);
        assert!(c.perf.workload.verifies());
        for (i, n) in Workload::NAMES.iter().enumerate() {
            let w = Workload::parse(n).unwrap();
            assert_eq!((w as usize, w.name()), (i, *n));
        }
    }

    #[test]
    fn bad_flags_named() {
        for (args, want) in [
            ("-o 4096 -w read -t 1", "missing -q"),
            ("-q 0 -o 4096 -w read -t 1", "-q"),
            ("-q x -o 4096 -w read -t 1", "-q"),
            ("-q 1 -o 0 -w read -t 1", "-o"),
            ("-q 1 -o 4q -w read -t 1", "-o"),
            ("-q 1 -o 4096 -w scan -t 1", "must be one of"),
            ("-q 1 -o 4096 -w rw -t 1", "needs -M"),
            ("-q 1 -o 4096 -w rw -M 101 -t 1", "-M"),
            ("-q 1 -o 4096 -w read -M 50 -t 1", "-M applies only"),
            ("-q 1 -o 4096 -w read -t -1", "-t"),
            ("-q 1 -o 4096 -w read", "missing -t"),
            ("-q 1 -o 4096 -w read -t 1 -m zz", "-m"),
            ("-q 1 -o 4096 -w read -t", "needs a value"),
        ] {
            match p(args) {
                Err(ArgError::Bad(e)) => assert!(e.contains(want), "{args}: {e}"),
                other => panic!("{args}: {other:?}"),
            }
        }
        assert_eq!(p("-h").unwrap_err(), ArgError::Help);
        assert_eq!(parse_size("64K"), Some(65536));
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("k"), None);
    }
}
