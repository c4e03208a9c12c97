//! `ferroplane-nvme-identify`: print an NVMe controller's Identify Controller data and each active
//! namespace's Identify Namespace data through our driver, like SPDK's `identify` or
//! `nvme id-ctrl` / `nvme id-ns`.
//!
//! ```text
//! ferroplane-nvme-identify [-r 'trtype:PCIe traddr:0000:00:02.0' | ADDR] [--iova-mode pa|va] [-s MB] [--file-prefix P]
//! ```
//! Without an address, every NVMe controller (class 010802) bound to vfio-pci or
//! uio_pci_generic is shown. Bad arguments: one line, exit 2.

use std::process::ExitCode;

use eal::pci::PciAddr;
use eal::Eal;
use nvme::{Controller, ControllerOptions};

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let mut addr: Option<String> = None;
    let mut eal_argv = vec![
        "ferroplane-nvme-identify".to_string(),
        "-l".into(),
        "0".into(),
    ];
    let mut prefix = format!("ferroplane-nvme-identify-{}", std::process::id());
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].as_str();
        let next = argv.get(i + 1).cloned();
        let need = |v: Option<String>| v.ok_or_else(|| format!("option {a} needs a value"));
        let r: Result<(), String> = match a {
            "-r" => need(next).and_then(|v| {
                i += 1;
                let t = v
                    .split_whitespace()
                    .find_map(|p| p.strip_prefix("traddr:"))
                    .ok_or_else(|| format!("bad -r '{v}': needs traddr:"))?;
                addr = Some(t.to_string());
                Ok(())
            }),
            "--iova-mode" | "-s" => need(next).map(|v| {
                i += 1;
                eal_argv.push(if a == "-s" { "-m".into() } else { a.into() });
                eal_argv.push(v);
            }),
            "--file-prefix" => need(next).map(|v| {
                i += 1;
                prefix = v;
            }),
            "-h" | "--help" => {
                println!("usage: ferroplane-nvme-identify [-r 'trtype:PCIe traddr:ADDR' | ADDR] [--iova-mode pa|va] [-s MB] [--file-prefix P]");
                return ExitCode::SUCCESS;
            }
            s if !s.starts_with('-') && addr.is_none() => {
                addr = Some(s.to_string());
                Ok(())
            }
            other => Err(format!("unknown argument '{other}'")),
        };
        if let Err(e) = r {
            eprintln!("ferroplane-nvme-identify: {e} (see -h)");
            return ExitCode::from(2);
        }
        i += 1;
    }
    let addrs: Vec<PciAddr> = match &addr {
        Some(a) => match a.parse() {
            Ok(p) => vec![p],
            Err(e) => {
                eprintln!("ferroplane-nvme-identify: {e}");
                return ExitCode::from(2);
            }
        },
        None => Vec::new(),
    };
    eal_argv.extend(["--file-prefix".into(), prefix]);
    let eal = match Eal::init(&eal_argv) {
        Ok((e, _)) => e,
        Err(e) => {
            eprintln!("ferroplane-nvme-identify: {e}");
            return ExitCode::from(2);
        }
    };
    let addrs = if addrs.is_empty() {
        eal.pci()
            .devices()
            .iter()
            .filter(|d| {
                d.is_nvme()
                    && d.driver
                        .as_deref()
                        .is_some_and(eal::device::bind::is_userspace_driver)
            })
            .map(|d| d.addr)
            .collect()
    } else {
        addrs
    };
    if addrs.is_empty() {
        eprintln!("ferroplane-nvme-identify: no NVMe controller bound to vfio-pci or uio_pci_generic (bind one with ferroplane-devbind --bind=vfio-pci ADDR)");
        return ExitCode::FAILURE;
    }
    let mut rc = ExitCode::SUCCESS;
    for a in addrs {
        match Controller::open(&eal, a, ControllerOptions::default()) {
            Ok(c) => print_ctrlr(&c),
            Err(e) => {
                eprintln!("ferroplane-nvme-identify: {a}: {e}");
                rc = ExitCode::FAILURE;
            }
        }
    }
    rc
}

fn print_ctrlr(c: &Controller) {
    let d = c.data();
    let cap = c.cap();
    let (maj, min, ter) = c.version();
    println!("=====================================================");
    println!(
        "NVMe Controller at {} [{:04x}:{:04x}] ({:?})",
        c.addr(),
        c.device().info().vendor_id,
        c.device().info().device_id,
        c.device().backend()
    );
    println!("=====================================================");
    println!("Controller Capabilities/Features");
    println!("================================");
    println!("Vendor ID:                             {:04x}", d.vid);
    println!("Subsystem Vendor ID:                   {:04x}", d.ssvid);
    println!("Serial Number:                         {}", d.serial());
    println!("Model Number:                          {}", d.model());
    println!("Firmware Version:                      {}", d.firmware());
    println!("NVMe Specification Version (VS):       {maj}.{min}.{ter}");
    println!("Controller ID:                         {}", d.cntlid);
    println!("Subsystem NQN:                         {}", d.subnqn());
    match d.max_transfer(cap.mps_min()) {
        Some(m) => println!(
            "Max Data Transfer Size:                {m} (MDTS {})",
            d.mdts
        ),
        None => println!("Max Data Transfer Size:                Unlimited"),
    }
    println!("Number of Namespaces (NN):             {}", d.nn);
    println!(
        "Max Queue Entries (CAP.MQES+1):        {}",
        cap.max_queue_entries()
    );
    println!(
        "Doorbell Stride:                       {} bytes",
        4u32 << cap.dstrd()
    );
    println!(
        "Timeout (CAP.TO):                      {} ms",
        cap.timeout_ms()
    );
    println!(
        "Memory Page Size Min/Max:              {} / {} bytes",
        cap.mps_min(),
        cap.mps_max()
    );
    println!(
        "I/O Queue Pairs granted:               {}",
        c.io_queues_granted()
    );
    println!("Optional Admin Command Support (OACS): {:#06x}", d.oacs);
    flags(
        d.oacs.into(),
        &[
            ("Security Send/Receive", 1),
            ("Format NVM", 2),
            ("Firmware Activate/Download", 4),
            ("Namespace Management", 8),
            ("Doorbell Buffer Config", nvme::spec::OACS_DBBUF.into()),
        ],
    );
    println!("Optional NVM Command Support (ONCS):   {:#06x}", d.oncs);
    flags(
        d.oncs.into(),
        &[
            ("Compare", nvme::spec::oncs::COMPARE.into()),
            ("Dataset Management", nvme::spec::oncs::DSM.into()),
            ("Write Zeroes", nvme::spec::oncs::WRITE_ZEROES.into()),
        ],
    );
    println!(
        "Volatile Write Cache:                  {}",
        if d.vwc & 1 != 0 {
            "Present"
        } else {
            "Not Present"
        }
    );
    println!(
        "SQ/CQ entry size (required):           {} / {} bytes",
        1u32 << (d.sqes & 15),
        1u32 << (d.cqes & 15)
    );
    println!(
        "Abort Command Limit:                   {}",
        d.acl as u32 + 1
    );
    println!(
        "Total NVM Capacity:                    {} bytes",
        d.tnvmcap()
    );
    println!();
    for ns in c.namespaces() {
        println!("Namespace ID:{}", ns.id);
        println!(
            "  Size (NSZE):                         {} blocks ({} MiB)",
            ns.size_blocks,
            ns.size_bytes() >> 20
        );
        println!(
            "  Capacity (NCAP):                     {} blocks",
            ns.capacity_blocks
        );
        println!(
            "  Utilization (NUSE):                  {} blocks",
            ns.used_blocks
        );
        println!(
            "  Deallocated blocks read as:          {:?} (DLFEAT {:#x})",
            ns.dealloc_read, ns.dlfeat
        );
        println!(
            "  Max blocks per command:              {}",
            ns.max_xfer_blocks
        );
        println!(
            "  Number of LBA Formats:               {}",
            ns.formats.len()
        );
        println!(
            "  Current LBA Format:                  LBA Format #{:02}",
            ns.format_index
        );
        for (i, f) in ns.formats.iter().enumerate() {
            if f.block_size() == 0 {
                continue;
            }
            println!(
                "  LBA Format #{i:02}: Data Size: {:5}  Metadata Size: {:4}  Relative Performance: {}{}",
                f.block_size(),
                f.ms(),
                f.rp(),
                if i == ns.format_index { "  (in use)" } else { "" }
            );
        }
        println!();
    }
}

/// One `  Name: Yes|No` line per `(name, bit)` of a capability field.
fn flags(field: u32, bits: &[(&str, u32)]) {
    for (name, bit) in bits {
        println!("  {:<36} {}", format!("{name}:"), yes(field & bit != 0));
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "Supported"
    } else {
        "Not Supported"
    }
}
