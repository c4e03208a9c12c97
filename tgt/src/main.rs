//! `ferroplane-tgt`: the storage target application (SPDK's `spdk_tgt`). It runs the
//! framework app with every subsystem the target has: the framework's own (the
//! scheduler), bdev, lvol and vhost_blk. A new subsystem (nvmf, ...) plugs in with one
//! `app.add_subsystem(..)` line in [`subsystems`].
//!
//! Besides the framework's options it takes SPDK vhost's `-S DIR`: the directory of
//! the vhost-user sockets (default: the working directory), and `--idle-sleep-us N`:
//! how long an idle reactor polls on before it sleeps (default 200; 0 sleeps at once,
//! as SPDK's interrupt mode does), and `--vhost-notify-window-us N`: how long a
//! vhost queue whose ring is empty polls with guest kicks off (default 0: kicks go
//! back on at once).

use framework::app::{args, App, AppOpts};
use framework::Error;

/// Register the target's subsystems.
fn subsystems(app: &mut App) -> framework::Result<()> {
    app.add_subsystem(bdev::BdevSubsystem)?;
    app.add_subsystem(blob::lvol::rpc::LvolSubsystem)?;
    app.add_subsystem(fpvhost::VhostSubsystem)?;
    app.add_subsystem(nvmf::NvmfSubsystem)
}

/// The microseconds (0 to 1000000) after option `argv[i]`, both taken out of `argv`.
fn take_us(argv: &mut Vec<String>, i: usize) -> Result<u64, String> {
    let a = argv[i].clone();
    let v = argv
        .get(i + 1)
        .cloned()
        .ok_or_else(|| format!("{a}: needs a number"))?;
    let us = v
        .parse::<u64>()
        .ok()
        .filter(|&n| n <= 1_000_000)
        .ok_or_else(|| format!("{a} '{v}': microseconds, 0 to 1000000"))?;
    argv.drain(i..i + 2);
    Ok(us)
}

/// Take the target's own options out of `argv` (SPDK vhost's `-S DIR`,
/// `--idle-sleep-us N`, `--vhost-notify-window-us N`); the idle time, if given.
fn target_options(argv: &mut Vec<String>) -> Result<Option<u64>, String> {
    let mut idle_us = None;
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].clone();
        let a = a.as_str();
        if a == "--vhost-notify-window-us" {
            let us = take_us(argv, i)?;
            fpvhost::set_notify_window_us(us).map_err(|e| format!("{a}: {e}"))?;
            continue;
        }
        if a == "--idle-sleep-us" {
            idle_us = Some(take_us(argv, i)?);
            continue;
        }
        let inline = a.strip_prefix("--vhost-socket-dir=").map(str::to_string);
        if a == "-S" || a == "--vhost-socket-dir" || inline.is_some() {
            let v = match inline {
                Some(v) => {
                    argv.remove(i);
                    v
                }
                None => {
                    if i + 1 >= argv.len() {
                        return Err(format!("{a}: needs a directory"));
                    }
                    let v = argv.remove(i + 1);
                    argv.remove(i);
                    v
                }
            };
            let p = std::path::PathBuf::from(&v);
            if !p.is_dir() {
                return Err(format!("{a} '{v}': not a directory"));
            }
            fpvhost::set_socket_dir(p);
            continue;
        }
        i += 1;
    }
    Ok(idle_us)
}

fn main() {
    let mut argv: Vec<String> = std::env::args().collect();
    let program = argv
        .first()
        .cloned()
        .unwrap_or_else(|| "ferroplane-tgt".into());
    let idle_us = match target_options(&mut argv) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{program}: {e}");
            std::process::exit(2);
        }
    };
    let opts = match AppOpts::parse(&argv) {
        Ok(o) => o,
        Err(Error::HelpRequested) => {
            print!("{}", args::usage(&program));
            println!("\nTarget options:\n  -S, --vhost-socket-dir DIR  directory of the vhost-user sockets (default: .)\n  --idle-sleep-us N           idle polling before a reactor sleeps, us (default 200)\n  --vhost-notify-window-us N  polling of an empty vhost queue before kicks go back on, us (default 0)");
            return;
        }
        Err(e) => {
            eprintln!("{program}: {e}");
            std::process::exit(2);
        }
    };
    let mut app = App::new(opts);
    if let Err(e) = subsystems(&mut app) {
        eprintln!("{program}: {e}");
        std::process::exit(1);
    }
    match app.run(move |ctx| {
        if let Some(us) = idle_us {
            ctx.framework().set_idle_before_sleep_us(us);
        }
        eal::log_notice!(
            "ferroplane-tgt started on {} core(s); RPC at {}",
            ctx.framework().lcores().len(),
            ctx.opts().rpc_addr.display()
        );
    }) {
        Ok(rc) => std::process::exit(rc),
        Err(e) => {
            eprintln!("{program}: {e}");
            std::process::exit(1);
        }
    }
}
