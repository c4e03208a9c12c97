//! `ferroplane-devbind`: show PCI devices and their drivers, bind them to vfio-pci,
//! uio_pci_generic or back to a kernel driver, unbind them.
//!
//! ```text
//! ferroplane-devbind --status
//! ferroplane-devbind --bind=vfio-pci 0000:00:02.0 [ADDR...] [--force]
//! ferroplane-devbind -u 0000:00:02.0 [ADDR...] [--force]
//! ```
//!
//! Devices in use (a network interface that is up with routes, a mounted or swap block
//! device) are refused unless `--force`. Bad arguments: one line naming the argument,
//! exit 2. A failed bind or unbind: one line per device, exit 1. `--sysfs-root` and
//! `--proc-root` point the tool at a fake tree (tests).

use std::path::PathBuf;
use std::process::ExitCode;

use eal::device::bind;
use eal::hugepage::SysRoots;
use eal::pci::{self, PciAddr, PciDevice, PciFilter};

const USAGE: &str =
    "usage: ferroplane-devbind [--status | --bind=DRIVER ADDR... | -u ADDR...] [--force]
  -s, --status           list network, crypto, storage and other PCI devices with their drivers
  -b, --bind=DRIVER      bind ADDR... to DRIVER (vfio-pci, uio_pci_generic or a kernel driver)
  -u, --unbind           unbind ADDR... from their drivers
      --force            change the driver even of a device that is in use
      --sysfs-root=DIR   sysfs root (default /sys), --proc-root=DIR procfs root (default /proc)";

enum Action {
    Status,
    Bind(String),
    Unbind,
}

struct Cli {
    action: Action,
    addrs: Vec<PciAddr>,
    force: bool,
    roots: SysRoots,
}

fn bad(msg: String) -> Result<Cli, (String, u8)> {
    Err((msg, 2))
}

fn parse(args: &[String]) -> Result<Cli, (String, u8)> {
    let mut action = None;
    let mut addrs = Vec::new();
    let mut force = false;
    let mut roots = SysRoots::default();
    let mut i = 0;
    let set = |a: &mut Option<Action>, v: Action, name: &str| -> Result<(), (String, u8)> {
        if a.is_some() {
            return Err((
                format!("ferroplane-devbind: '{name}' conflicts with an earlier action"),
                2,
            ));
        }
        *a = Some(v);
        Ok(())
    };
    while i < args.len() {
        let a = &args[i];
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String, (String, u8)> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            i += 1;
            args.get(i)
                .cloned()
                .ok_or_else(|| (format!("ferroplane-devbind: '{name}' needs a value"), 2))
        };
        match key {
            "-h" | "--help" => return Err((USAGE.to_string(), 0)),
            "-s" | "--status" => set(&mut action, Action::Status, key)?,
            "-b" | "--bind" => {
                let d = value(key)?;
                if d.is_empty() || d.contains('/') {
                    return bad(format!(
                        "ferroplane-devbind: invalid driver name '{d}' for --bind"
                    ));
                }
                set(&mut action, Action::Bind(d), key)?
            }
            "-u" | "--unbind" => set(&mut action, Action::Unbind, key)?,
            "--force" => force = true,
            "--sysfs-root" => roots.sys = PathBuf::from(value(key)?),
            "--proc-root" => roots.proc = PathBuf::from(value(key)?),
            s if s.starts_with('-') => {
                return bad(format!(
                    "ferroplane-devbind: unknown option '{a}' (see --help)"
                ))
            }
            s => match s.parse::<PciAddr>() {
                Ok(p) => addrs.push(p),
                Err(e) => return bad(format!("ferroplane-devbind: {e}")),
            },
        }
        i += 1;
    }
    let Some(action) = action else {
        return bad(
            "ferroplane-devbind: no action given: use --status, --bind=DRIVER or -u (see --help)"
                .into(),
        );
    };
    match action {
        Action::Status if !addrs.is_empty() => {
            return bad(format!(
                "ferroplane-devbind: unexpected address '{}' with --status",
                addrs[0]
            ))
        }
        Action::Bind(_) | Action::Unbind if addrs.is_empty() => {
            return bad("ferroplane-devbind: no PCI address given to bind or unbind".into())
        }
        _ => {}
    }
    Ok(Cli {
        action,
        addrs,
        force,
        roots,
    })
}

fn group_of(d: &PciDevice) -> usize {
    match (d.base_class(), d.subclass()) {
        (0x02, _) => 0,
        (0x10, _) | (0x0b, 0x40) | (0x12, _) => 1,
        (0x01, _) => 2,
        _ => 3,
    }
}

/// Which devices of a group a status section lists.
type Section = Box<dyn Fn(&PciDevice) -> bool>;

const GROUPS: [&str; 4] = ["Network", "Crypto", "Storage", "Other"];

fn modules_alias(roots: &SysRoots) -> Option<String> {
    let rel = std::fs::read_to_string(roots.proc.join("sys/kernel/osrelease")).ok()?;
    std::fs::read_to_string(format!("/lib/modules/{}/modules.alias", rel.trim())).ok()
}

fn line(roots: &SysRoots, d: &PciDevice, aliases: Option<&str>) -> String {
    let mut s = format!(
        "{} '{} {}' {}",
        d.addr,
        d.class_name(),
        d.id_string(),
        format_args!("class={:06x}", d.class)
    );
    if let Ok(ifs) = bind::net_interfaces(&roots.sys, d.addr) {
        if !ifs.is_empty() {
            s.push_str(&format!(" if={}", ifs.join(",")));
        }
    }
    if let Some(drv) = &d.driver {
        s.push_str(&format!(" drv={drv}"));
    }
    let unused = bind::candidate_drivers(&roots.sys, d.addr, aliases).unwrap_or_default();
    s.push_str(&format!(" unused={}", unused.join(",")));
    if let Ok(why) = bind::in_use(roots, d.addr) {
        if !why.is_empty() {
            s.push_str(" *Active*");
        }
    }
    s
}

fn status(roots: &SysRoots) -> Result<String, String> {
    let devs = pci::scan(&roots.sys, &PciFilter::default()).map_err(|e| e.to_string())?;
    let aliases = modules_alias(roots);
    let mut out = String::new();
    for (g, gname) in GROUPS.iter().enumerate() {
        let in_group: Vec<&PciDevice> = devs.iter().filter(|d| group_of(d) == g).collect();
        if in_group.is_empty() {
            continue;
        }
        let sections: [(&str, Section); 3] = [
            (
                "using a user-space driver",
                Box::new(|d| d.driver.as_deref().is_some_and(bind::is_userspace_driver)),
            ),
            (
                "using a kernel driver",
                Box::new(|d| {
                    d.driver
                        .as_deref()
                        .is_some_and(|x| !bind::is_userspace_driver(x))
                }),
            ),
            ("with no driver", Box::new(|d| d.driver.is_none())),
        ];
        for (title, pred) in sections.iter() {
            let ds: Vec<&&PciDevice> = in_group.iter().filter(|d| pred(d)).collect();
            if ds.is_empty() {
                continue;
            }
            let head = format!("{gname} devices {title}");
            out.push_str(&format!("\n{head}\n{}\n", "=".repeat(head.len())));
            for d in ds {
                out.push_str(&line(roots, d, aliases.as_deref()));
                out.push('\n');
            }
        }
    }
    if devs.is_empty() {
        out.push_str("no PCI devices found\n");
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match parse(&args) {
        Ok(c) => c,
        Err((msg, code)) => {
            if code == 0 {
                println!("{msg}");
            } else {
                eprintln!("{msg}");
            }
            return ExitCode::from(code);
        }
    };
    match &cli.action {
        Action::Status => match status(&cli.roots) {
            Ok(s) => {
                print!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ferroplane-devbind: {e}");
                ExitCode::FAILURE
            }
        },
        Action::Bind(drv) => for_each_addr(&cli.addrs, |a| {
            Ok(match bind::bind(&cli.roots, a, drv, cli.force)? {
                bind::BindOutcome::AlreadyBound => format!("{a}: already bound to {drv}"),
                bind::BindOutcome::Bound { previous } => format!(
                    "{a}: bound to {drv} (was {})",
                    previous.as_deref().unwrap_or("no driver")
                ),
            })
        }),
        Action::Unbind => for_each_addr(&cli.addrs, |a| {
            Ok(match bind::unbind(&cli.roots, a, cli.force)? {
                Some(d) => format!("{a}: unbound from {d}"),
                None => format!("{a}: had no driver"),
            })
        }),
    }
}

/// Apply `op` to every address, printing its line or its error; exit 1 if any failed
/// (the others are still done).
fn for_each_addr(
    addrs: &[PciAddr],
    mut op: impl FnMut(PciAddr) -> Result<String, eal::Error>,
) -> ExitCode {
    let mut failed = false;
    for &a in addrs {
        match op(a) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("ferroplane-devbind: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
