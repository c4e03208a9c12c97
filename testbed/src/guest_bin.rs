//! What the guest-side programs in `src/bin/` share: starting the EAL from their own
//! command line.

use std::process::ExitCode;

use eal::Eal;

/// Starts the EAL from this process's arguments; returns it and the arguments after
/// `--`. On failure prints `<prog>: <why>` on stderr and gives the exit code (2, a usage
/// or set-up error) for `main` to return.
pub fn init_eal(prog: &str) -> Result<(Eal, Vec<String>), ExitCode> {
    let argv: Vec<String> = std::env::args().collect();
    Eal::init(&argv).map_err(|e| {
        eprintln!("{prog}: {e}");
        ExitCode::from(2)
    })
}
