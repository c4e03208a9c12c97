//! The start-up plumbing of the multi-process apps (`simple_mp`, `symmetric_mp`,
//! `mp_server`, `mp_client`, `proc-info`): EAL arguments a secondary implies, EAL
//! initialisation with the apps' shared conventions (`-h` prints the usage and exits 0;
//! a bad argument or a failed attach prints one line naming it and exits 2), the port
//! mask and its pairs, and the stop flag read from stdin.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use eal::{Eal, Error};

/// Whether an EAL argument of `argv` (before `--`; `argv[0]` is the program) is one of
/// `names`, as `NAME VALUE` or `NAME=VALUE`.
pub fn eal_arg_given(argv: &[String], names: &[&str]) -> bool {
    let end = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    argv[..end].iter().any(|a| {
        names
            .iter()
            .any(|n| a == n || a.strip_prefix(n).is_some_and(|r| r.starts_with('=')))
    })
}

/// Insert `--proc-type secondary` after the program name unless `--proc-type` is given:
/// the client programs attach to a running primary by default.
pub fn secondary_by_default(argv: &mut Vec<String>) {
    if !eal_arg_given(argv, &["--proc-type"]) {
        argv.splice(1..1, ["--proc-type".to_string(), "secondary".to_string()]);
    }
}

/// Initialise the EAL from `argv` for the program `name`: `Ok((eal, app arguments))`,
/// or the exit code to return after `-h` (usage on stdout, 0) or an error (one line
/// `name: error` on stderr, 2).
pub fn init_eal(
    name: &str,
    argv: &[String],
    usage: impl FnOnce() -> String,
) -> Result<(Eal, Vec<String>), ExitCode> {
    match Eal::init(argv) {
        Ok(x) => Ok(x),
        Err(Error::HelpRequested) => {
            println!("{}", usage());
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            Err(ExitCode::from(2))
        }
    }
}

/// The application's arguments as `parse_result` gives them, or the exit code after one
/// line `name: error (see -h)` on stderr (2).
pub fn app_args<T>(name: &str, parse_result: Result<T, String>) -> Result<T, ExitCode> {
    parse_result.map_err(|e| {
        eprintln!("{name}: {e} (see -h)");
        ExitCode::from(2)
    })
}

/// A usage text: `usage: SYNOPSIS`, a blank line, then the EAL options.
pub fn usage(synopsis: &str) -> String {
    format!("usage: {synopsis}\n\n{}", eal::args::usage())
}

/// The number after the option `name` (the next of `it`): an error line names a missing
/// or non-numeric value.
pub fn value_u64<'a>(it: &mut impl Iterator<Item = &'a String>, name: &str) -> Result<u64, String> {
    let v = it.next().ok_or_else(|| format!("'{name}' needs a value"))?;
    v.parse()
        .map_err(|_| format!("invalid value '{v}' for '{name}': not a number"))
}

/// The value of `-p`: a hex port mask, `0x` optional.
pub fn port_mask(v: &str) -> Result<u64, String> {
    u64::from_str_radix(v.trim_start_matches("0x"), 16)
        .map_err(|_| format!("invalid value '{v}' for '-p': not a hex port mask"))
}

/// The ports of `ids` in `mask`, which must make an even, non-zero number (forwarding
/// pairs 2k <-> 2k+1).
pub fn port_pairs(ids: Vec<u16>, mask: u64) -> Result<Vec<u16>, String> {
    let ports: Vec<u16> = ids
        .into_iter()
        .filter(|&p| p < 64 && mask & (1 << p) != 0)
        .collect();
    if ports.is_empty() || !ports.len().is_multiple_of(2) {
        return Err(format!(
            "need an even, non-zero number of ports in the mask, have {ports:?}"
        ));
    }
    Ok(ports)
}

/// A stop flag set when stdin says `quit` or ends, from a reader thread named `thread`
/// (it may stay blocked on a read until exit; it only sets the flag).
pub fn stdin_stop(thread: &str) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let _ = std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            for l in std::io::stdin().lock().lines() {
                match l {
                    Ok(l) if l.trim() != "quit" => continue,
                    _ => break,
                }
            }
            s2.store(true, Ordering::Relaxed);
        });
    stop
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn port_masks_and_pairs() {
        assert_eq!(port_mask("0x3"), Ok(3));
        assert_eq!(port_mask("f"), Ok(15));
        assert!(port_mask("zz").unwrap_err().contains("'-p'"));
        assert_eq!(port_pairs(vec![0, 1, 2, 3], 0b1010), Ok(vec![1, 3]));
        assert!(port_pairs(vec![0, 1, 2], 0b111).is_err());
        assert!(port_pairs(vec![0, 1], 0b100).is_err());
    }

    #[test]
    fn numeric_values_are_checked() {
        let a = argv("7 x");
        let mut it = a.iter();
        assert_eq!(value_u64(&mut it, "-n"), Ok(7));
        assert_eq!(
            value_u64(&mut it, "-n"),
            Err("invalid value 'x' for '-n': not a number".into())
        );
        assert_eq!(value_u64(&mut it, "-n"), Err("'-n' needs a value".into()));
    }

    #[test]
    fn eal_args_are_found_before_the_separator_only() {
        let a = argv("p --lcores=1@0 --file-prefix x -- -l 3");
        assert!(eal_arg_given(&a, &["-l", "--lcores"]));
        assert!(!eal_arg_given(&a, &["-l"]));
        assert!(!eal_arg_given(&a, &["--lcore"]));
        assert!(eal_arg_given(&a, &["--file-prefix"]));
    }

    #[test]
    fn secondary_is_implied_unless_a_proc_type_is_given() {
        let mut a = argv("p --no-pci -- -n 0");
        secondary_by_default(&mut a);
        assert_eq!(a, argv("p --proc-type secondary --no-pci -- -n 0"));
        let mut b = argv("p --proc-type=primary");
        secondary_by_default(&mut b);
        assert_eq!(b, argv("p --proc-type=primary"));
    }
}
