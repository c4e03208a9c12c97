//! `ferroplane-tgt`: the storage target application (SPDK's `spdk_tgt`). It runs the
//! framework app with every subsystem the target has: the framework's own (the
//! scheduler) and bdev. A new subsystem (bdev, vhost, nvmf) plugs in with one
//! `app.add_subsystem(..)` line in [`subsystems`].

use framework::app::{args, App, AppOpts};
use framework::Error;

/// Register the target's subsystems.
fn subsystems(app: &mut App) -> framework::Result<()> {
    app.add_subsystem(bdev::BdevSubsystem)
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let program = argv
        .first()
        .cloned()
        .unwrap_or_else(|| "ferroplane-tgt".into());
    let opts = match AppOpts::parse(&argv) {
        Ok(o) => o,
        Err(Error::HelpRequested) => {
            print!("{}", args::usage(&program));
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
