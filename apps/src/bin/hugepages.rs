//! `ferroplane-hugepages`: show, reserve, clear, mount and unmount hugepages (like
//! dpdk-hugepages.py). The logic lives in `eal::hugepage`; this is argument plumbing.
//!
//! Exit codes: 0 success, 1 failure (including "not root"), 2 bad arguments.

use std::process::ExitCode;

use eal::hugepage::{tool_usage, SysRoots, ToolArgs};
use eal::Error;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let t = match ToolArgs::parse(&args) {
        Ok(t) => t,
        Err(Error::HelpRequested) => {
            print!("{}", tool_usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ferroplane-hugepages: {e}");
            return ExitCode::from(2);
        }
    };
    if t.changes_state() && eal::sys::mem::geteuid() != 0 {
        eprintln!("ferroplane-hugepages: changing hugepage reservations or mounts needs root; run it with sudo");
        return ExitCode::from(1);
    }
    match t.run(&SysRoots::default()) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e @ Error::BadArg { .. }) => {
            eprintln!("ferroplane-hugepages: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("ferroplane-hugepages: {e}");
            ExitCode::from(1)
        }
    }
}
