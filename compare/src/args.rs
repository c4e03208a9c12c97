//! Option parsing shared by the subcommands: the value after a flag, numbers in a
//! range, comma-separated lists of them, and the usage errors that name the option.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The usage error for an argument a subcommand does not know (`sub`, when given,
/// names the subcommand in the message).
pub fn unknown_arg(sub: Option<&str>, a: &str) -> Error {
    let pre = sub.map(|s| format!("{s}: ")).unwrap_or_default();
    Error::Usage(format!("{pre}unknown argument '{a}' (see --help)"))
}

/// Pops the value of option `name`.
pub fn value<'a>(it: &mut impl Iterator<Item = &'a String>, name: &str) -> Result<&'a str> {
    it.next()
        .map(String::as_str)
        .ok_or_else(|| Error::Usage(format!("{name} needs a value")))
}

/// Parses `v` as a number of `name` within `ok`.
pub fn number<T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
    name: &str,
    v: &str,
    lo: T,
    hi: T,
) -> Result<T> {
    v.parse::<T>()
        .ok()
        .filter(|x| *x >= lo && *x <= hi)
        .ok_or_else(|| {
            Error::Usage(format!(
                "invalid value '{v}' for {name}: a number from {lo} to {hi}"
            ))
        })
}

/// Pops the value of option `name` and parses it as a number within `lo..=hi`.
pub fn number_arg<'a, T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
    it: &mut impl Iterator<Item = &'a String>,
    name: &str,
    lo: T,
    hi: T,
) -> Result<T> {
    number(name, value(it, name)?, lo, hi)
}

/// Pops the value of option `name`: a comma-separated list of numbers within `lo..=hi`.
pub fn number_list<'a, T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
    it: &mut impl Iterator<Item = &'a String>,
    name: &str,
    lo: T,
    hi: T,
) -> Result<Vec<T>> {
    value(it, name)?
        .split(',')
        .map(|v| number(name, v, lo, hi))
        .collect()
}

/// The options the NVMe comparisons share (`nvme`, `nvmf`): seconds per run, queue
/// depths, and a built SPDK tree.
pub struct DepthOpts {
    pub seconds: u64,
    pub depths: Vec<u32>,
    pub spdk: Option<PathBuf>,
}

impl DepthOpts {
    /// Parses subcommand `sub`'s `--seconds N` (1 to 600, default 5), `--depths A,B,..`
    /// (1 to 1024 each, default 1,32) and `--spdk DIR` (default `spdk`).
    pub fn parse(sub: &str, args: &[String], spdk: Option<PathBuf>) -> Result<DepthOpts> {
        let mut o = DepthOpts {
            seconds: 5,
            depths: vec![1, 32],
            spdk,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--seconds" => o.seconds = number_arg(&mut it, "--seconds", 1, 600)?,
                "--depths" => o.depths = number_list(&mut it, "--depths", 1u32, 1024)?,
                "--spdk" => o.spdk = Some(PathBuf::from(value(&mut it, "--spdk")?)),
                _ => return Err(unknown_arg(Some(sub), a)),
            }
        }
        Ok(o)
    }
}
