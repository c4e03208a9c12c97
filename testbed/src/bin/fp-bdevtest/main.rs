//! fp-bdevtest: the guest half of `tests/nvme_bdev.rs`: the nvme bdev module over our
//! driver, through the bdev API, on a framework app thread.
//!
//! `fp-bdevtest EAL-ARGS -- verify ADDR NAME`: attach the controller at ADDR as NAME
//! (PCIe transport), then on every namespace bdev: write, read back and compare with
//! DMA buffers (passed to the device as is), heap buffers and split iovecs (bounced),
//! a request several times the controller's transfer limit and one of 4 MiB (more
//! commands than a queue pair holds when MDTS is small), compare and miscompare,
//! write-zeroes, and a depth-16 random write/read/compare run (bdevperf's `verify`);
//! then detach. Prints `VERIFY <bdev> ok ...` per bdev and `ALL-VERIFIED`.
//!
//! `... -- perf ADDR NAME NSID DEPTH SECS`: 4 KiB random reads at DEPTH for SECS on
//! `NAMEn<NSID>`; prints `BDEV-PERF iops=<n>`.
//!
//! `... -- hotremove ADDR NAME`: 4 KiB random reads at depth 8 on `NAMEn1` until the
//! device goes away; prints `RUNNING`, then `REMOVE-EVENT` when the descriptor is told,
//! and `UNREGISTERED ok=<n> failed=<n>` once every bdev of the controller is gone.
//!
//! Failures print `FAIL <why>` and exit 1.

mod io;
mod perf;
mod steps;
mod verify;

use std::process::ExitCode;

use bdev::modules::nvme_attach::NvmeTransport;
use bdev::modules::nvme_pcie::{self, PcieTransport};
use eal::Eal;
use framework::{Framework, FrameworkOpts};
use nvme::ControllerOptions;

use crate::io::open_io;
use crate::perf::{hotremove, perf};
use crate::steps::{eal_of, fail, Next, Res, Step, FW};
use crate::verify::verify_steps;

fn main() -> ExitCode {
    let (eal, rest) = match testbed::guest_bin::init_eal("fp-bdevtest") {
        Ok(x) => x,
        Err(code) => return code,
    };
    let ok = matches!(
        (rest.first().map(String::as_str), rest.len()),
        (Some("verify"), 3) | (Some("perf"), 6) | (Some("hotremove"), 3)
    );
    if !ok {
        eprintln!("fp-bdevtest: usage: verify ADDR NAME | perf ADDR NAME NSID DEPTH SECS | hotremove ADDR NAME");
        return ExitCode::from(2);
    }
    let opts = FrameworkOpts {
        interrupt_mode: false,
        ..Default::default()
    };
    let e2 = eal.clone();
    let rc = Framework::run(&eal, opts, move |fw| {
        if let Err(e) = start(&fw, &e2, &rest) {
            fail(&fw, e);
        }
    });
    match rc {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            println!("FAIL framework: {e}");
            ExitCode::FAILURE
        }
    }
}

fn start(fw: &Framework, eal: &Eal, rest: &[String]) -> Res<()> {
    *FW.lock().unwrap_or_else(|e| e.into_inner()) = Some(fw.clone());
    let t = nvme_pcie::register();
    let addr = rest[1].parse().map_err(|e| format!("address: {e}"))?;
    let name = rest[2].clone();
    let bdevs = t
        .attach_pcie(
            &name,
            addr,
            ControllerOptions::default(),
            serde_json::json!({}),
        )
        .map_err(|e| format!("attach: {e}"))?;
    let first = bdevs.first().and_then(|b| bdev::bdev::get(b));
    let j = first
        .and_then(|b| b.module().info_json())
        .unwrap_or_default();
    println!(
        "ATTACHED {name} serial={} max_transfer={}: {}",
        j["nvme"][0]["ctrlr_data"]["serial_number"]
            .as_str()
            .unwrap_or("?")
            .trim(),
        j["nvme"][0]["max_transfer_bytes"],
        bdevs.join(" ")
    );
    match rest[0].as_str() {
        "verify" => {
            let mut steps: Vec<Step> = Vec::new();
            for b in &bdevs {
                steps.extend(verify_steps(b, eal));
            }
            let (t2, n2) = (t.clone(), name.clone());
            steps.push(Box::new(move |next| detach(&t2, &n2, next)));
            steps.push(Box::new(|next| {
                println!("ALL-VERIFIED");
                next.go()
            }));
            Next::start(fw.clone(), steps);
            Ok(())
        }
        "perf" => {
            let nsid: u32 = rest[3].parse().map_err(|_| "bad NSID")?;
            let depth: usize = rest[4].parse().map_err(|_| "bad DEPTH")?;
            let secs: u64 = rest[5].parse().map_err(|_| "bad SECS")?;
            let b = format!("{name}n{nsid}");
            let io = open_io(&b)?;
            let (t2, n2) = (t.clone(), name.clone());
            let steps: Vec<Step> = vec![
                Box::new(move |next| perf(io, eal_of(), depth, secs, next)),
                Box::new(move |next| detach(&t2, &n2, next)),
            ];
            Next::start(fw.clone(), steps);
            Ok(())
        }
        _ => hotremove(fw, &t, &name, &bdevs),
    }
}

fn detach(t: &PcieTransport, name: &str, next: Next) {
    let n = name.to_string();
    t.detach(
        name,
        Box::new(move |r| match r {
            Ok(()) => {
                println!("DETACHED {n}");
                next.go()
            }
            Err(e) => next.fail(format!("detach {n}: {e:?}")),
        }),
    );
}
