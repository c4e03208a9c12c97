//! The NVMe driver against QEMU's emulated NVMe controller (testbed/, one boot), over
//! VFIO and over UIO (`--iova-mode pa`), plus the kernel's nvme driver as a peer.
//!
//! Guest steps, in order:
//! 1. kernel nvme driver: writes random data at a known offset (peer check, direction
//!    kernel -> ours); `nvme-perf` with its kernel io_uring back end runs for a second.
//! 2. vfio-pci: `ferroplane-nvme-identify` shows QEMU's model, our serial and the namespace sizes
//!    (image size / block size); `fp-nvmetest check` runs every driver check
//!    (identify fields, write/read patterns 512 B .. > MDTS on both namespaces, buffers
//!    across a 2 MiB hugepage boundary, write zeroes and deallocate reading back as
//!    DLFEAT says, flush, LBA out of range as a typed error, compare and miscompare,
//!    queue full, per-thread queue pairs, reset with I/O outstanding, tagged raw I/O);
//!    our driver reads the kernel's data back identically and writes data of its own;
//!    `nvme-perf` on two cores; a hot unbind under a running `nvme-perf` ends it with
//!    "device gone" (exit 3), not a crash.
//! 3. uio_pci_generic with `--iova-mode pa`: the same checks, identify, hot unbind.
//! 4. kernel nvme driver again: it reads what our driver wrote identically.
//!
//! Runs when QEMU can be used or installed (root), otherwise a counted skip (need
//! `guest`); `FP_TESTBED=1` forces it, `FP_TESTBED=0` skips it (see `testbed::harness`).
//! The host-only part (nvme-perf's argument errors) always runs.

use std::process::Command;
use std::time::Instant;

use testbed::{boot_or_skip, build_release, Guest, GuestOptions};

const SERIAL: &str = "FPNVME7";
const NS1_BYTES: u64 = 48 << 20;
const NS2_BYTES: u64 = 16 << 20; // run.sh's default second image

/// `fp-nvmetest` with its EAL arguments (`extra` added) and file prefix `pfx`.
fn chk(extra: &str, pfx: &str) -> String {
    format!("fp-nvmetest -l 0 -m 96 --file-prefix {pfx} {extra} --")
}

/// Run every driver check of `fp-nvmetest` over `backend` and check each passed.
fn run_checks(g: &mut Guest, nvme: &str, extra: &str, pfx: &str, backend: &str) {
    let out = g.run_ok(&format!(
        "{} check {nvme} {SERIAL} {NS1_BYTES} {NS2_BYTES}",
        chk(extra, pfx)
    ));
    for name in [
        "identify",
        "patterns-ns1",
        "patterns-ns2",
        "hugepage-boundary",
        "zeroes-ns1",
        "zeroes-ns2",
        "flush",
        "lba-out-of-range",
        "compare",
        "queue-full",
        "per-thread-qpairs",
        "reset",
        "raw-tagged",
    ] {
        assert!(
            out.contains(&format!("CHECK {name} ok")),
            "check {name} missing over {backend}:\n{out}"
        );
    }
    assert!(
        out.contains(&format!("ALL-CHECKS-PASSED backend={backend}")),
        "{out}"
    );
}

/// Start nvme-perf for a long run, unbind the device under it: exit 3 with "device gone".
fn hot_unbind(g: &mut Guest, nvme: &str, extra: &str) {
    g.unbind_under(
        &format!("nvme-perf -q 8 -o 4096 -w randread -t 120 -s 48 --file-prefix hu {extra} -r 'trtype:PCIe traddr:{nvme}'"),
        "Launching workers",
        nvme,
    );
}

fn perf_total_iops(out: &str) -> f64 {
    testbed::harness::perf_total_iops(out).unwrap_or(0.0)
}

#[test]
fn nvme_perf_bad_args_exit_2() {
    let bin = &build_release(&[("ferroplane-apps", "nvme-perf")])[0];
    const PCIE: &str = "trtype:PCIe traddr:0000:00:02.0";
    for (flags, trid, word) in [
        ("-q 8 -o 4096 -w bogus -t 1", PCIE, "-w"),
        ("-o 4096 -w read -t 1", PCIE, "-q"),
        ("-q 8 -o 4096 -w rw -t 1", PCIE, "-M"),
        ("-q 8 -o 4096 -w read -t 1", "trtype:PCIe traddr:zz", "zz"),
        (
            "-q 8 -o 4096 -w read -t 1",
            "trtype:kernel path:/x engine:aio",
            "aio",
        ),
    ] {
        let o = Command::new(bin)
            .args(flags.split(' '))
            .args(["-r", trid])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flags} -r {trid}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{flags} -r {trid}: {err}");
        assert!(err.contains(word), "{flags} -r {trid}: {err}");
    }
}

#[test]
fn nvme_driver_in_guest() {
    let t0 = Instant::now();
    let img = std::env::temp_dir().join(format!("fp-nvme-test-{}.img", std::process::id()));
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(NS1_BYTES))
        .expect("create namespace image");
    let opts = || GuestOptions {
        nvme_serial: SERIAL.into(),
        nvme_img: Some(img.clone()),
        bins: build_release(&[
            ("ferroplane-apps", "nvme-perf"),
            ("ferroplane-apps", "ferroplane-nvme-identify"),
            ("ferroplane-testbed", "fp-nvmetest"),
        ]),
        ..Default::default()
    };
    let Some(mut g) = boot_or_skip("nvme_driver_in_guest", opts) else {
        let _ = std::fs::remove_file(&img);
        return;
    };

    let nvme = g
        .devices(&["1b36:0010"])
        .first()
        .expect("NVMe controller listed")
        .0
        .clone();

    // --- 1. kernel driver: peer data, kernel back end of nvme-perf ---
    g.run_ok(
        "n=0; until [ -e /dev/nvme0n1 ] || [ $n -ge 100 ]; do sleep 0.1; n=$((n+1)); done; \
         dd if=/dev/urandom of=/tmp/k.bin bs=4096 count=64 2>/dev/null && \
         dd if=/tmp/k.bin of=/dev/nvme0n1 bs=4096 seek=1000 conv=fsync 2>/dev/null && sync",
    );
    let out = g.run_ok("nvme-perf -q 4 -o 4096 -w randread -t 1 -s 32 -r 'trtype:kernel path:/dev/nvme0n1 engine:io_uring'");
    assert!(
        out.contains("KERNEL (/dev/nvme0n1 IoUring) from core  0")
            && out.contains("CPU time per I/O"),
        "{out}"
    );
    assert!(perf_total_iops(&out) > 0.0, "{out}");

    // --- 2. VFIO ---
    g.run_ok(&format!("ferroplane-devbind --bind=vfio-pci {nvme}"));
    let out = g.run_ok(&format!(
        "ferroplane-nvme-identify -s 32 -r 'trtype:PCIe traddr:{nvme}'"
    ));
    assert!(
        out.contains(&format!("Serial Number:                         {SERIAL}")),
        "{out}"
    );
    assert!(
        out.contains("Model Number:                          QEMU NVMe Ctrl"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Size (NSZE):                         {} blocks",
            NS1_BYTES / 512
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Size (NSZE):                         {} blocks",
            NS2_BYTES / 4096
        )),
        "{out}"
    );
    assert!(
        out.contains("Data Size:   512")
            && out.contains("Data Size:  4096")
            && out.contains("(in use)"),
        "{out}"
    );
    run_checks(&mut g, &nvme, "", "c1", "Vfio");
    // Peer, kernel -> ours: 64 x 4 KiB written by the kernel at byte 4096000 = LBA 8000.
    g.run_ok(&format!(
        "{} read-file {nvme} 1 8000 262144 /tmp/ours.bin && cmp /tmp/ours.bin /tmp/k.bin",
        chk("", "c2")
    ));
    // Ours writes data for the kernel to read later: LBA 30000 = byte 15360000 = 4 KiB block 3750.
    g.run_ok(&format!("dd if=/dev/urandom of=/tmp/o.bin bs=4096 count=64 2>/dev/null && {} write-file {nvme} 1 30000 /tmp/o.bin", chk("", "c3")),
    );
    // nvme-perf on two cores, both namespaces: a line per namespace and core (reads
    // only: ns 1 holds the peer data).
    let out = g.run_ok(&format!(
        "nvme-perf -q 8 -o 4096 -w randread -t 1 -c 0x3 -s 64 -L -r 'trtype:PCIe traddr:{nvme}'"
    ));
    for ns in [1, 2] {
        for core in [0, 1] {
            assert!(
                out.contains(&format!("PCIE ({nvme}) NSID {ns} from core  {core}")),
                "ns {ns} core {core}:\n{out}"
            );
        }
    }
    assert!(
        out.contains("Summary latency data") && out.contains("CPU time per I/O"),
        "{out}"
    );
    assert!(perf_total_iops(&out) > 0.0, "{out}");
    hot_unbind(&mut g, &nvme, "");

    // --- 3. UIO (physical addresses) ---
    g.run_ok(&format!("ferroplane-devbind --bind=uio_pci_generic {nvme}"));
    let out = g.run_ok(&format!(
        "ferroplane-nvme-identify --iova-mode pa -s 32 {nvme}"
    ));
    assert!(out.contains("(Uio)") && out.contains(SERIAL), "{out}");
    run_checks(&mut g, &nvme, "--iova-mode pa", "c4", "Uio");
    g.run_ok(&format!(
        "{} read-file {nvme} 1 30000 262144 /tmp/ours2.bin && cmp /tmp/ours2.bin /tmp/o.bin",
        chk("--iova-mode pa", "c5")
    ));
    let out = g.run_ok(&format!("nvme-perf -q 16 -o 8192 -w randrw -M 50 -t 1 -s 48 --iova-mode pa -r 'trtype:PCIe traddr:{nvme} ns:2'"));
    assert!(
        out.contains(&format!("PCIE ({nvme}) NSID 2 from core  0")) && !out.contains("NSID 1 from"),
        "{out}"
    );
    hot_unbind(&mut g, &nvme, "--iova-mode pa");

    // --- 4. the kernel reads what our driver wrote ---
    g.run_ok(&format!("ferroplane-devbind --bind=nvme {nvme}"));
    g.run_ok("n=0; until [ -e /dev/nvme0n1 ] || [ $n -ge 100 ]; do sleep 0.1; n=$((n+1)); done; \
         dd if=/dev/nvme0n1 of=/tmp/back.bin bs=4096 skip=3750 count=64 iflag=direct 2>/dev/null || \
         dd if=/dev/nvme0n1 of=/tmp/back.bin bs=4096 skip=3750 count=64 2>/dev/null; cmp /tmp/back.bin /tmp/o.bin",
    );

    g.shutdown().unwrap();
    let _ = std::fs::remove_file(&img);
    eprintln!("nvme: nvme_driver_in_guest took {:?}", t0.elapsed());
}
