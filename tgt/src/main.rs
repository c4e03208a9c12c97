//! `ferroplane-tgt`: the storage target application (SPDK's `spdk_tgt`). It runs the
//! framework app with every subsystem the target has: the framework's own (the
//! scheduler), bdev, lvol and vhost_blk. A new subsystem (nvmf, ...) plugs in with one
//! `app.add_subsystem(..)` line in [`subsystems`].
//!
//! Besides the framework's options it takes SPDK vhost's `-S DIR`: the directory of
//! the vhost-user sockets (default: the working directory).

use framework::app::{args, App, AppOpts};
use framework::Error;

/// Register the target's subsystems.
fn subsystems(app: &mut App) -> framework::Result<()> {
    app.add_subsystem(bdev::BdevSubsystem)?;
    app.add_subsystem(blob::lvol::rpc::LvolSubsystem)?;
    app.add_subsystem(fpvhost::VhostSubsystem)?;
    app.add_subsystem(nvmf::NvmfSubsystem)
}

/// Take the target's own options out of `argv` (SPDK vhost's `-S DIR`).
fn target_options(argv: &mut Vec<String>) -> Result<(), String> {
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].clone();
        let a = a.as_str();
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
    Ok(())
}

fn main() {
    let mut argv: Vec<String> = std::env::args().collect();
    let program = argv
        .first()
        .cloned()
        .unwrap_or_else(|| "ferroplane-tgt".into());
    if let Err(e) = target_options(&mut argv) {
        eprintln!("{program}: {e}");
        std::process::exit(2);
    }
    let opts = match AppOpts::parse(&argv) {
        Ok(o) => o,
        Err(Error::HelpRequested) => {
            print!("{}", args::usage(&program));
            println!("\nTarget options:\n  -S, --vhost-socket-dir DIR  directory of the vhost-user sockets (default: .)");
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
    match app.run(|ctx| {
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
