//! Device access in a real (emulated) machine: one QEMU guest (testbed/) with an NVMe
//! controller (1b36:0010) and two e1000 NICs (8086:100e) behind a virtual Intel IOMMU.
//!
//! Checks, in one boot: `ferroplane-devbind --status` finds the devices by class and id;
//! bad arguments exit 2; an in-use NIC is refused unless `--force`; the NVMe controller
//! is bound to vfio-pci, opened through `eal::device` (VFIO), its CAP/VS read from BAR 0
//! (VS = 1.4.0), an Identify Controller admin command returns QEMU's model and our
//! serial (DMA through the IOMMU, MSI-X wake-up through an eventfd), a register reader
//! notices an unbind (exit 3, "device gone") instead of crashing; the same through
//! uio_pci_generic with `--iova-mode pa`; back to the kernel nvme driver, whose two
//! namespaces have 512- and 4096-byte blocks; and frames pass both ways between the
//! host and a guest NIC through the datagram socket.
//!
//! Runs when QEMU can be used or installed (root), otherwise a counted skip (need
//! `guest`); `FP_TESTBED=1` forces it, `FP_TESTBED=0` skips it (see `testbed::harness`).

use std::time::{Duration, Instant};

use testbed::{boot_or_skip, FrameSocket, Guest, GuestOptions};

const SERIAL: &str = "FPSERIAL42";

fn eal(prefix: &str, extra: &str) -> String {
    format!("fp-devtest -l 0 -m 16 --file-prefix {prefix} {extra} --")
}

/// Start a register watcher, unbind the device under it: exit 3 with "device gone".
fn unbind_under_reader(g: &mut Guest, nvme: &str, eal_args: &str) {
    g.unbind_under(&format!("{eal_args} watch {nvme} 120"), "watching", nvme);
}

#[test]
fn testbed_devices() {
    let t0 = Instant::now();
    let opts = || GuestOptions {
        nvme_serial: SERIAL.into(),
        ..Default::default()
    };
    let Some(mut g) = boot_or_skip("testbed_devices", opts) else {
        return;
    };

    // --- status: find devices by class and id ---
    let status = g.run_ok("ferroplane-devbind --status");
    let nvmes = g.devices(&["1b36:0010", "class=010802"]);
    let nics = g.devices(&["8086:100e", "class=02"]);
    assert_eq!(nvmes.len(), 1, "NVMe controller not listed:\n{status}");
    assert_eq!(nics.len(), 2, "two e1000 not listed:\n{status}");
    let nvme = nvmes[0].0.clone();
    assert!(
        nvmes[0].1.contains("drv=nvme") && nvmes[0].1.contains("vfio-pci"),
        "{status}"
    );
    assert!(
        status.contains("Storage devices using a kernel driver")
            && status.contains("Network devices"),
        "{status}"
    );

    // --- bad arguments: one line naming it, exit 2 ---
    for (args, word) in [
        ("--bogus", "--bogus"),
        ("--bind=vfio-pci 00:zz.0", "00:zz.0"),
        ("--bind=vfio-pci", "no PCI address"),
    ] {
        let (st, out) = g.run(&format!("ferroplane-devbind {args}")).unwrap();
        assert_eq!(st, 2, "{args}: {out}");
        assert_eq!(out.trim().lines().count(), 1, "{args}: {out}");
        assert!(out.contains(word), "{args}: {out}");
    }

    // --- not bound: the error names the fix ---
    let (st, out) = g.run(&format!("{} regs {nvme}", eal("t0", ""))).unwrap();
    assert_ne!(st, 0);
    assert!(
        out.contains(&format!("ferroplane-devbind --bind=vfio-pci {nvme}")),
        "{out}"
    );

    // --- in-use NIC refused unless --force, then back to e1000 ---
    let nic = nics[0].0.clone();
    let iface = nics[0]
        .1
        .split("if=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("NIC interface name")
        .to_string();
    g.run_ok(&format!(
        "ip link set {iface} up && ip route add 192.0.2.0/24 dev {iface}"
    ));
    let (st, out) = g
        .run(&format!("ferroplane-devbind --bind=vfio-pci {nic}"))
        .unwrap();
    assert_eq!(st, 1, "{out}");
    assert!(
        out.contains("in use") && out.contains("--force") && out.contains(&iface),
        "{out}"
    );
    assert_eq!(g.driver_of(&nic), "e1000");
    g.run_ok(&format!("ferroplane-devbind --force --bind=vfio-pci {nic}"));
    assert_eq!(g.driver_of(&nic), "vfio-pci");
    g.run_ok(&format!("ferroplane-devbind --bind=e1000 {nic}"));
    assert_eq!(g.driver_of(&nic), "e1000");

    // --- VFIO ---
    let out = g.run_ok(&format!("ferroplane-devbind --bind=vfio-pci {nvme}"));
    assert!(out.contains("bound to vfio-pci (was nvme)"), "{out}");
    assert_eq!(g.driver_of(&nvme), "vfio-pci");
    let out = g.run_ok(&format!("ferroplane-devbind --bind=vfio-pci {nvme}"));
    assert!(out.contains("already bound"), "{out}");
    let out = g.run_ok(&format!("{} regs {nvme}", eal("t1", "")));
    assert!(
        out.contains("backend=Vfio") && out.contains("version=1.4.0"),
        "{out}"
    );
    let out = g.run_ok(&format!("{} identify {nvme} --irq", eal("t1", "")));
    assert!(
        out.contains(&format!("serial='{SERIAL}'")) && out.contains("model='QEMU NVMe Ctrl'"),
        "{out}"
    );
    let irqs: u64 = out
        .split("irq=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(
        irqs >= 1,
        "no MSI-X interrupt seen through the eventfd:\n{out}"
    );
    // PA mode through VFIO works too (IOVA = physical address mapped 1:1).
    let out = g.run_ok(&format!("{} identify {nvme}", eal("t1", "--iova-mode pa")));
    assert!(out.contains(&format!("serial='{SERIAL}'")), "{out}");
    let out = g.run_ok(&format!("{} reset {nvme}", eal("t1", "")));
    assert!(out.contains("reset="), "{out}");
    unbind_under_reader(&mut g, &nvme, &eal("w1", ""));

    // --- UIO ---
    g.run_ok(&format!("ferroplane-devbind --bind=uio_pci_generic {nvme}"));
    assert_eq!(g.driver_of(&nvme), "uio_pci_generic");
    let (st, out) = g.run(&format!("{} regs {nvme}", eal("t2", ""))).unwrap();
    assert_ne!(st, 0, "{out}");
    assert!(out.contains("--iova-mode pa"), "{out}");
    let out = g.run_ok(&format!("{} regs {nvme}", eal("t2", "--iova-mode pa")));
    assert!(
        out.contains("backend=Uio") && out.contains("version=1.4.0"),
        "{out}"
    );
    let out = g.run_ok(&format!("{} identify {nvme}", eal("t2", "--iova-mode pa")));
    assert!(
        out.contains(&format!("serial='{SERIAL}'")) && out.contains("model='QEMU NVMe Ctrl'"),
        "{out}"
    );
    unbind_under_reader(&mut g, &nvme, &eal("w2", "--iova-mode pa"));

    // --- back to the kernel driver; both namespaces with their block sizes ---
    g.run_ok(&format!("ferroplane-devbind --bind=nvme {nvme}"));
    assert_eq!(g.driver_of(&nvme), "nvme");
    let out = g.run_ok("n=0; until [ -e /sys/block/nvme0n2 ] || [ $n -ge 100 ]; do sleep 0.1; n=$((n+1)); done; \
         cat /sys/block/nvme0n1/queue/logical_block_size /sys/block/nvme0n2/queue/logical_block_size",
    );
    let sizes: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(sizes, ["512", "4096"], "{out}");

    // --- frames through a NIC's datagram socket, both ways ---
    let iface1 = nics[1]
        .1
        .split("if=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("NIC 1 interface")
        .to_string();
    let sock = FrameSocket::open(g.net_dir(), 1).expect("bind host socket of NIC 1");
    g.run_ok(&format!("ip link set {iface1} up"));
    // The guest kernel sends IPv6 neighbour/router solicitations on its own once up.
    let mut got = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.is_none() && Instant::now() < deadline {
        got = sock.recv(Duration::from_secs(1)).unwrap();
    }
    let frame = got.expect("no frame from the guest NIC within 30 s");
    assert!(frame.len() >= 14);
    assert_eq!(
        &frame[6..12],
        &[0x52, 0x54, 0x00, 0xfe, 0x00, 0x01],
        "source MAC of NIC 1"
    );
    let rx = |g: &mut Guest| -> u64 {
        let (_, o) = g
            .run(&format!(
                "cat /sys/class/net/{iface1}/statistics/rx_packets"
            ))
            .unwrap();
        o.trim().parse().unwrap_or(0)
    };
    let before = rx(&mut g);
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&[0x52, 0x54, 0x00, 0xfe, 0x00, 0x01]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x42]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    for _ in 0..3 {
        sock.send(&f).unwrap();
    }
    // e1000 refreshes its counters from the hardware every 2 s (watchdog): poll.
    let mut after = rx(&mut g);
    let deadline = Instant::now() + Duration::from_secs(20);
    while after < before + 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        after = rx(&mut g);
    }
    assert!(
        after >= before + 3,
        "guest NIC counted {before} -> {after} received frames"
    );

    g.shutdown().unwrap();
    eprintln!("testbed: testbed_devices took {:?}", t0.elapsed());
}
