//! The NVMe driver against QEMU's emulated NVMe controller (testbed/, one boot), over
//! VFIO and over UIO (`--iova-mode pa`), plus the kernel's nvme driver as a peer.
//!
//! Guest steps, in order:
//! 1. kernel nvme driver: writes random data at a known offset (peer check, direction
//!    kernel -> ours); `nvme-perf` with its kernel io_uring back end runs for a second.
//! 2. vfio-pci: `nvme-identify` shows QEMU's model, our serial and the namespace sizes
//!    (image size / block size); `nvme_guest_check check` runs every driver check
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
//! Runs when QEMU is usable or installable (root); prints why and returns otherwise.
//! `FP_TESTBED=0` skips. The host-only part (nvme-perf's argument errors) always runs.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use testbed::{can_boot, repo_root, Guest, GuestOptions};

const SERIAL: &str = "FPNVME7";
const NS1_BYTES: u64 = 48 << 20;
const NS2_BYTES: u64 = 16 << 20; // run.sh's default second image

fn build(args: &[&str]) {
    let st = Command::new(env!("CARGO"))
        .args(["build", "--release", "-q"])
        .args(args)
        .current_dir(repo_root())
        .status()
        .expect("run cargo build");
    assert!(st.success(), "cargo build {args:?} failed");
}

fn run_ok(g: &mut Guest, cmd: &str) -> String {
    let (st, out) = g
        .run_timeout(cmd, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert_eq!(st, 0, "'{cmd}' failed with {st}:\n{out}");
    out
}

fn driver_of(g: &mut Guest, addr: &str) -> String {
    let (_, out) = g
        .run(&format!(
            "basename $(readlink /sys/bus/pci/devices/{addr}/driver) 2>/dev/null || echo none"
        ))
        .unwrap();
    out.trim().to_string()
}

fn checks_pass(out: &str, backend: &str) {
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

/// Start nvme-perf for a long run, unbind the device under it, expect exit 3 + "device gone".
fn hot_unbind(g: &mut Guest, nvme: &str, extra: &str) {
    // A fresh log per call, created before nvme-perf starts (see testbed_devices.rs:
    // a reused name lets the wait match the previous run's marker).
    let cmd = format!(
        "L=$(mktemp /tmp/p.XXXXXX); nvme-perf -q 8 -o 4096 -w randread -t 120 -s 48 --file-prefix hu {extra} -r 'trtype:PCIe traddr:{nvme}' > $L 2>&1 & PP=$!; n=0; \
         until grep -q 'Launching workers' $L || [ $n -ge 600 ]; do sleep 0.1; n=$((n+1)); done; sleep 1; \
         echo {nvme} > /sys/bus/pci/devices/{nvme}/driver/unbind; wait $PP; echo perf-rc=$?; cat $L; rm -f $L"
    );
    let (_, out) = g.run_timeout(&cmd, Duration::from_secs(200)).unwrap();
    assert!(
        out.contains("Launching workers"),
        "nvme-perf never started:\n{out}"
    );
    assert!(
        out.contains("perf-rc=3"),
        "nvme-perf did not end with exit 3 (device gone):\n{out}"
    );
    assert!(out.contains("device gone"), "{out}");
    assert_eq!(driver_of(g, nvme), "none");
}

fn perf_total_iops(out: &str) -> f64 {
    out.lines()
        .find(|l| l.starts_with("Total"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn nvme_perf_bad_args_exit_2() {
    build(&["-p", "ferroplane-apps", "--bin", "nvme-perf"]);
    let bin = repo_root().join("target/release/nvme-perf");
    for (args, word) in [
        (
            vec![
                "-q",
                "8",
                "-o",
                "4096",
                "-w",
                "bogus",
                "-t",
                "1",
                "-r",
                "trtype:PCIe traddr:0000:00:02.0",
            ],
            "-w",
        ),
        (
            vec![
                "-o",
                "4096",
                "-w",
                "read",
                "-t",
                "1",
                "-r",
                "trtype:PCIe traddr:0000:00:02.0",
            ],
            "-q",
        ),
        (
            vec![
                "-q",
                "8",
                "-o",
                "4096",
                "-w",
                "rw",
                "-t",
                "1",
                "-r",
                "trtype:PCIe traddr:0000:00:02.0",
            ],
            "-M",
        ),
        (
            vec![
                "-q",
                "8",
                "-o",
                "4096",
                "-w",
                "read",
                "-t",
                "1",
                "-r",
                "trtype:PCIe traddr:zz",
            ],
            "zz",
        ),
        (
            vec![
                "-q",
                "8",
                "-o",
                "4096",
                "-w",
                "read",
                "-t",
                "1",
                "-r",
                "trtype:kernel path:/x engine:aio",
            ],
            "aio",
        ),
    ] {
        let o = Command::new(&bin).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(word), "{args:?}: {err}");
    }
}

#[test]
fn nvme_driver_in_guest() {
    if let Err(why) = can_boot() {
        eprintln!("SKIP nvme_driver_in_guest: cannot boot the QEMU testbed here: {why}");
        return;
    }
    let t0 = Instant::now();
    build(&[
        "-p",
        "ferroplane-apps",
        "--bin",
        "nvme-perf",
        "--bin",
        "nvme-identify",
    ]);
    build(&["-p", "ferroplane-nvme", "--example", "nvme_guest_check"]);
    let root = repo_root();
    let img = std::env::temp_dir().join(format!("fp-nvme-test-{}.img", std::process::id()));
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(NS1_BYTES))
        .expect("create namespace image");
    let bins: Vec<PathBuf> = [
        "target/release/nvme-perf",
        "target/release/nvme-identify",
        "target/release/examples/nvme_guest_check",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    let opts = GuestOptions {
        nvme_serial: SERIAL.into(),
        nvme_img: Some(img.clone()),
        bins,
        ..Default::default()
    };
    let mut g = Guest::boot(&opts).expect("boot the testbed guest");
    eprintln!("nvme: guest ready after {:?}", g.booted_in());

    let status = run_ok(&mut g, "ferroplane-devbind --status");
    let nvme = status
        .lines()
        .find(|l| l.contains("1b36:0010"))
        .and_then(|l| l.split_whitespace().next())
        .expect("NVMe controller listed")
        .to_string();
    let chk = |extra: &str, pfx: &str| {
        format!("nvme_guest_check -l 0 -m 96 --file-prefix {pfx} {extra} --")
    };

    // --- 1. kernel driver: peer data, kernel back end of nvme-perf ---
    run_ok(
        &mut g,
        "n=0; until [ -e /dev/nvme0n1 ] || [ $n -ge 100 ]; do sleep 0.1; n=$((n+1)); done; \
         dd if=/dev/urandom of=/tmp/k.bin bs=4096 count=64 2>/dev/null && \
         dd if=/tmp/k.bin of=/dev/nvme0n1 bs=4096 seek=1000 conv=fsync 2>/dev/null && sync",
    );
    let out = run_ok(&mut g, "nvme-perf -q 4 -o 4096 -w randread -t 1 -s 32 -r 'trtype:kernel path:/dev/nvme0n1 engine:io_uring'");
    assert!(
        out.contains("KERNEL (/dev/nvme0n1 IoUring) from core  0")
            && out.contains("CPU time per I/O"),
        "{out}"
    );
    assert!(perf_total_iops(&out) > 0.0, "{out}");

    // --- 2. VFIO ---
    run_ok(
        &mut g,
        &format!("ferroplane-devbind --bind=vfio-pci {nvme}"),
    );
    let out = run_ok(
        &mut g,
        &format!("nvme-identify -s 32 -r 'trtype:PCIe traddr:{nvme}'"),
    );
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
    let out = run_ok(
        &mut g,
        &format!(
            "{} check {nvme} {SERIAL} {NS1_BYTES} {NS2_BYTES}",
            chk("", "c1")
        ),
    );
    checks_pass(&out, "Vfio");
    // Peer, kernel -> ours: 64 x 4 KiB written by the kernel at byte 4096000 = LBA 8000.
    run_ok(
        &mut g,
        &format!(
            "{} read-file {nvme} 1 8000 262144 /tmp/ours.bin && cmp /tmp/ours.bin /tmp/k.bin",
            chk("", "c2")
        ),
    );
    // Ours writes data for the kernel to read later: LBA 30000 = byte 15360000 = 4 KiB block 3750.
    run_ok(
        &mut g,
        &format!("dd if=/dev/urandom of=/tmp/o.bin bs=4096 count=64 2>/dev/null && {} write-file {nvme} 1 30000 /tmp/o.bin", chk("", "c3")),
    );
    // nvme-perf on two cores, both namespaces: a line per namespace and core (reads
    // only: ns 1 holds the peer data).
    let out = run_ok(&mut g, &format!("nvme-perf -q 8 -o 4096 -w randread -t 1 -c 0x3 -s 64 -L -r 'trtype:PCIe traddr:{nvme}'"));
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
    run_ok(
        &mut g,
        &format!("ferroplane-devbind --bind=uio_pci_generic {nvme}"),
    );
    let out = run_ok(
        &mut g,
        &format!("nvme-identify --iova-mode pa -s 32 {nvme}"),
    );
    assert!(out.contains("(Uio)") && out.contains(SERIAL), "{out}");
    let out = run_ok(
        &mut g,
        &format!(
            "{} check {nvme} {SERIAL} {NS1_BYTES} {NS2_BYTES}",
            chk("--iova-mode pa", "c4")
        ),
    );
    checks_pass(&out, "Uio");
    run_ok(
        &mut g,
        &format!(
            "{} read-file {nvme} 1 30000 262144 /tmp/ours2.bin && cmp /tmp/ours2.bin /tmp/o.bin",
            chk("--iova-mode pa", "c5")
        ),
    );
    let out = run_ok(&mut g, &format!("nvme-perf -q 16 -o 8192 -w randrw -M 50 -t 1 -s 48 --iova-mode pa -r 'trtype:PCIe traddr:{nvme} ns:2'"));
    assert!(
        out.contains(&format!("PCIE ({nvme}) NSID 2 from core  0")) && !out.contains("NSID 1 from"),
        "{out}"
    );
    hot_unbind(&mut g, &nvme, "--iova-mode pa");

    // --- 4. the kernel reads what our driver wrote ---
    run_ok(&mut g, &format!("ferroplane-devbind --bind=nvme {nvme}"));
    run_ok(
        &mut g,
        "n=0; until [ -e /dev/nvme0n1 ] || [ $n -ge 100 ]; do sleep 0.1; n=$((n+1)); done; \
         dd if=/dev/nvme0n1 of=/tmp/back.bin bs=4096 skip=3750 count=64 iflag=direct 2>/dev/null || \
         dd if=/dev/nvme0n1 of=/tmp/back.bin bs=4096 skip=3750 count=64 2>/dev/null; cmp /tmp/back.bin /tmp/o.bin",
    );

    g.shutdown().unwrap();
    let _ = std::fs::remove_file(&img);
    eprintln!("nvme: nvme_driver_in_guest took {:?}", t0.elapsed());
}
