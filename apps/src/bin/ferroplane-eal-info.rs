//! `ferroplane-eal-info`: initialise the EAL and print what it found: memory (memseg lists, IOVA
//! mode), lcores and their CPUs/NUMA nodes, PCI devices, the heap and memzones.
//!
//! Runs anywhere: with no arguments and no usable hugepages (or no root) it falls back to
//! `--no-huge` with a one-line notice. EAL arguments come first, as in DPDK.

use std::process::ExitCode;

use eal::{Eal, Error};

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let eal = match Eal::init_or_no_huge(&argv) {
        Ok((eal, _rest, fallback)) => {
            if let Some(why) = fallback {
                eprintln!(
                    "ferroplane-eal-info: no usable hugepages ({why}); falling back to --no-huge"
                );
            }
            eal
        }
        Err(Error::HelpRequested) => {
            println!(
                "usage: ferroplane-eal-info [EAL options]\n\n{}",
                eal::args::usage()
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(&e),
    };
    match print_info(&eal) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferroplane-eal-info: failed to write report: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fail(e: &Error) -> ExitCode {
    eprintln!("ferroplane-eal-info: {e}");
    ExitCode::from(2)
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

fn print_info(eal: &Eal) -> std::io::Result<()> {
    use std::io::Write;
    let out = std::io::stdout();
    let mut w = out.lock();
    writeln!(w, "== EAL")?;
    writeln!(w, "file prefix    {}", eal.file_prefix())?;
    writeln!(w, "runtime dir    {}", eal.runtime_dir().display())?;
    writeln!(
        w,
        "memory         {} at {} ({})",
        human(eal.memory().len()),
        eal.memory().base(),
        if eal.memory().no_huge() {
            "--no-huge: shared memory, no device DMA"
        } else {
            "hugepages"
        }
    )?;
    writeln!(
        w,
        "IOVA mode      {:?}, DMA capable: {}",
        eal.memory().iova_mode(),
        eal.memory().dma_capable()
    )?;
    writeln!(
        w,
        "TSC            {:.1} MHz",
        eal::timer::tsc_hz() as f64 / 1e6
    )?;

    writeln!(w, "\n== memseg lists")?;
    for (i, l) in eal.memory().lists().iter().enumerate() {
        writeln!(
            w,
            "list {i}: socket {} base {} len {} page {} segs {}",
            l.socket,
            l.base,
            human(l.len),
            human(l.page_size),
            l.segs.len()
        )?;
    }
    let segs = eal.memory().memsegs();
    for s in segs.iter().take(4) {
        writeln!(
            w,
            "  seg va {} iova {} len {} socket {}",
            s.virt,
            s.iova,
            human(s.len),
            s.socket
        )?;
    }
    if segs.len() > 4 {
        writeln!(w, "  ... {} more", segs.len() - 4)?;
    }

    writeln!(
        w,
        "\n== lcores ({}), main {}",
        eal.lcores().count(),
        eal.lcores().main_lcore()
    )?;
    for l in eal.lcores().lcore_ids() {
        let role = if l == eal.lcores().main_lcore() {
            "main"
        } else {
            "worker"
        };
        writeln!(
            w,
            "lcore {l:3}  {role:6}  socket {}",
            eal.lcores().socket_of(l).unwrap_or(0)
        )?;
    }

    writeln!(w, "\n== PCI devices ({})", eal.pci().devices().len())?;
    for d in eal.pci().devices() {
        writeln!(
            w,
            "{}  {}  {:<14} numa {:>2}  driver {:<12} iommu group {}",
            d.addr,
            d.id_string(),
            d.class_name(),
            d.numa_node
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            d.driver.as_deref().unwrap_or("-"),
            d.iommu_group
                .map(|g| g.to_string())
                .unwrap_or_else(|| "-".into())
        )?;
    }

    writeln!(w, "\n== heap")?;
    eal.heap().dump(&mut w)?;
    writeln!(w, "\n== memzones ({})", eal.memzones().count())?;
    eal.memzones().dump(&mut w)?;
    Ok(())
}
