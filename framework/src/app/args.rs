//! The common command line of framework applications (SPDK's `spdk_app_parse_args`):
//! `-m MASK`, `-r PATH`, `--json FILE`, `--wait-for-rpc`, `-s MB`, `--poll-mode`, and
//! every EAL option (`-l`, `--no-huge`, `--file-prefix`, `--log-level`, ...), which are
//! passed through to the EAL.
//!
//! `-m` is SPDK's core mask (hex, `0x3`, or a list in brackets, `[0-1,3]`), not DPDK's
//! memory size; it becomes the EAL's `-c` / `-l`. SPDK's `-s MB` becomes the EAL's `-m`.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Parsed application options.
#[derive(Debug, Clone, PartialEq)]
pub struct AppOpts {
    /// Program name (argv[0]).
    pub program: String,
    /// Arguments for the EAL, argv[0] first.
    pub eal_argv: Vec<String>,
    /// RPC socket path.
    pub rpc_addr: PathBuf,
    /// `--json FILE`.
    pub json_config: Option<PathBuf>,
    /// `--wait-for-rpc`.
    pub wait_for_rpc: bool,
    /// Sleep when idle (default) or poll (`--poll-mode`).
    pub interrupt_mode: bool,
    /// How long exiting threads may take at stop before their leftovers are dropped
    /// (ms; not a command-line option).
    pub exit_timeout_ms: u64,
}

/// The default RPC socket: `jsonrpc::DEFAULT_SOCKET` (/var/tmp/ferroplane.sock), where
/// `ferroplane-rpc` looks by default.
pub fn default_rpc_addr() -> PathBuf {
    PathBuf::from(jsonrpc::DEFAULT_SOCKET)
}

/// The application options' help text.
pub fn usage(program: &str) -> String {
    format!(
        "Usage: {program} [options]\n\n\
         Application options:\n  \
         -m, --cpumask MASK        core mask: hex (0x3) or list ([0-1,3]); default: all cores\n  \
         -r, --rpc-socket PATH     RPC listen address (default {})\n  \
         --json FILE               load this JSON configuration at start\n  \
         --wait-for-rpc            wait for framework_start_init before initialising subsystems\n  \
         -s, --mem-size MB         memory to reserve, in MB\n  \
         --poll-mode               never sleep when idle (reactors poll all the time)\n  \
         -h, --help                print this help\n\n{}",
        default_rpc_addr().display(),
        eal::args::usage()
    )
}

fn bad(arg: &str, value: &str, why: impl Into<String>) -> Error {
    Error::BadArg {
        arg: arg.into(),
        value: value.into(),
        why: why.into(),
    }
}

/// Turn SPDK's `-m` value into EAL arguments.
fn core_mask_to_eal(v: &str) -> Result<Vec<String>> {
    if let Some(list) = v.strip_prefix('[') {
        let list = list
            .strip_suffix(']')
            .ok_or_else(|| bad("-m", v, "a core list must end with ']'"))?;
        eal::lcore::parse_id_list(list, eal::lcore::MAX_LCORE as u32)
            .map_err(|e| bad("-m", v, e))?;
        return Ok(vec!["-l".into(), list.into()]);
    }
    eal::args::parse_coremask(v).map_err(|e| bad("-m", v, e))?;
    Ok(vec!["-c".into(), v.into()])
}

impl AppOpts {
    /// Parse `argv` (argv[0] is the program).
    pub fn parse(argv: &[String]) -> Result<AppOpts> {
        let program = argv.first().cloned().unwrap_or_else(|| "ferroplane".into());
        let mut o = AppOpts {
            program: program.clone(),
            eal_argv: vec![program],
            rpc_addr: default_rpc_addr(),
            json_config: None,
            wait_for_rpc: false,
            interrupt_mode: true,
            exit_timeout_ms: 5000,
        };
        let mut seen_mask = false;
        let mut i = 1;
        while i < argv.len() {
            let arg = argv[i].as_str();
            i += 1;
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
                _ => (arg, None),
            };
            let mut value = |what: &str| -> Result<String> {
                if let Some(v) = inline.clone() {
                    return Ok(v);
                }
                match argv.get(i) {
                    Some(v) if !v.starts_with("--") => {
                        i += 1;
                        Ok(v.clone())
                    }
                    _ => Err(bad(what, "", "needs a value")),
                }
            };
            match name {
                "-h" | "--help" => return Err(Error::HelpRequested),
                "-m" | "--cpumask" => {
                    if seen_mask {
                        return Err(bad(name, "", "given twice"));
                    }
                    seen_mask = true;
                    let v = value(name)?;
                    o.eal_argv.extend(core_mask_to_eal(&v)?);
                }
                "-r" | "--rpc-socket" => {
                    let v = value(name)?;
                    if v.is_empty() {
                        return Err(bad(name, &v, "empty path"));
                    }
                    o.rpc_addr = PathBuf::from(v);
                }
                "--json" => {
                    let v = value(name)?;
                    if v.is_empty() {
                        return Err(bad(name, &v, "empty path"));
                    }
                    o.json_config = Some(PathBuf::from(v));
                }
                "--wait-for-rpc" => o.wait_for_rpc = true,
                "--poll-mode" => o.interrupt_mode = false,
                "-s" | "--mem-size" => {
                    let v = value(name)?;
                    o.eal_argv.push("-m".into());
                    o.eal_argv.push(v);
                }
                _ => o.eal_argv.push(arg.to_string()),
            }
        }
        // Let the EAL check its part now, for a clear error before anything starts.
        eal::args::EalArgs::parse(&o.eal_argv)?;
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<AppOpts> {
        let v: Vec<String> = std::iter::once("tgt")
            .chain(a.iter().copied())
            .map(String::from)
            .collect();
        AppOpts::parse(&v)
    }

    #[test]
    fn spdk_options_map_to_eal() {
        let o = p(&[
            "-m",
            "0x3",
            "-r",
            "/tmp/x.sock",
            "--json",
            "c.json",
            "--wait-for-rpc",
            "--no-huge",
            "-s",
            "64",
        ])
        .unwrap();
        assert_eq!(o.eal_argv, ["tgt", "-c", "0x3", "--no-huge", "-m", "64"]);
        assert_eq!(o.rpc_addr, PathBuf::from("/tmp/x.sock"));
        assert_eq!(o.json_config, Some(PathBuf::from("c.json")));
        assert!(o.wait_for_rpc && o.interrupt_mode);
        let o = p(&["-m", "[0-1]", "--poll-mode", "--json=a.json"]).unwrap();
        assert_eq!(o.eal_argv, ["tgt", "-l", "0-1"]);
        assert!(!o.interrupt_mode);
        assert_eq!(o.json_config, Some(PathBuf::from("a.json")));
        assert_eq!(p(&[]).unwrap().rpc_addr, default_rpc_addr());
    }

    #[test]
    fn bad_arguments_named() {
        for (args, want) in [
            (&["-m", "zz"][..], "-m"),
            (&["-m", "[0-1"][..], "-m"),
            (&["-r"][..], "-r"),
            (&["--json", "--wait-for-rpc"][..], "--json"),
            (&["-m", "1", "-m", "2"][..], "-m"),
        ] {
            let e = p(args).unwrap_err().to_string();
            assert!(e.contains(want), "{args:?}: {e}");
        }
        assert!(matches!(p(&["-h"]), Err(Error::HelpRequested)));
        assert!(
            p(&["--bogus"]).is_err(),
            "unknown options reach the EAL parser"
        );
    }
}
