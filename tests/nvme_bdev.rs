//! The nvme bdev module against QEMU's emulated NVMe controllers (testbed/, one boot):
//! the harness's controller (namespace 1 with 512-byte blocks, namespace 2 with 4 KiB
//! blocks) and a second one with MDTS = 1 (8 KiB per command), so a 4 MiB request
//! needs more commands than a queue pair holds.
//!
//! Guest steps, in order:
//! 1. vfio-pci: `fp-bdevtest verify` on both controllers: per namespace bdev, write,
//!    read back and compare through the bdev API with DMA, heap and split buffers,
//!    requests beyond MDTS, compare/miscompare, write-zeroes, a depth-16 random
//!    verify run; then detach.
//! 2. The nvme bdev (through `bdevperf`, as SPDK measures its bdev_nvme) against
//!    nvme-perf on the same device and namespace, 4 KiB random reads at depth 1 and 32,
//!    one core each, alternating rounds (`FP_NVME_BDEV_ROUNDS`, default 3):
//!    IOPS ratios printed, and both sides' queue pair counters per I/O (MMIO doorbell
//!    writes, commands per SQ update, completions per poll) printed and checked.
//! 3. Hot removal over VFIO: the device is unbound under reads; the descriptor gets
//!    the remove event, in-flight I/O fails, every bdev of the controller unregisters,
//!    the program exits 0.
//! 4. uio_pci_generic with `--iova-mode pa`: verify and hot removal again.
//!
//! Runs when QEMU can be used or installed (root), otherwise a counted skip (need
//! `guest`); `FP_TESTBED=1` forces it, `FP_TESTBED=0` skips it.

use std::time::Instant;

use testbed::{boot_or_skip, build_release, Guest, GuestOptions};

const SERIAL: &str = "FPBDEV1";
const MDTS_SERIAL: &str = "FPMDTS1";

fn bt(extra: &str, pfx: &str) -> String {
    format!("fp-bdevtest -l 0 -m 96 --file-prefix {pfx} {extra} --")
}

/// `verify` on controller `addr`.
fn verify(g: &mut Guest, addr: &str, extra: &str, pfx: &str) -> String {
    g.run_ok(&format!("{} verify {addr} Nvme0", bt(extra, pfx)))
}

/// Every expected bdev verified, the run ended detached.
fn verified(out: &str, bdevs: &[&str]) {
    for b in bdevs {
        assert!(out.contains(&format!("VERIFY {b} ok")), "{b}:\n{out}");
        assert!(
            out.contains(&format!("CASE {b} Dma")) && out.contains(&format!("CASE {b} Split")),
            "{out}"
        );
    }
    assert!(out.contains("CASE random-verify"), "{out}");
    assert!(
        out.contains("DETACHED Nvme0") && out.contains("ALL-VERIFIED"),
        "{out}"
    );
    assert!(!out.contains("FAIL"), "{out}");
}

/// Unbind `addr` under `fp-bdevtest hotremove`: remove event, I/O errors, unregistered.
fn hot_remove(g: &mut Guest, addr: &str, extra: &str, pfx: &str) {
    let cmd = format!(
        "L=$(mktemp /tmp/hr.XXXXXX); {} hotremove {addr} Nvme0 > $L 2>&1 & P=$!; k=0; \
         until grep -q RUNNING $L || [ $k -ge 1500 ]; do sleep 0.1; k=$((k+1)); done; sleep 1; \
         echo {addr} > /sys/bus/pci/devices/{addr}/driver/unbind; wait $P; echo hr-rc=$?; cat $L; rm -f $L",
        bt(extra, pfx)
    );
    let (_, out) = g
        .run_timeout(&cmd, std::time::Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.contains("RUNNING"), "never started:\n{out}");
    assert!(out.contains("REMOVE-EVENT"), "no remove event:\n{out}");
    assert!(out.contains("hr-rc=0"), "did not end cleanly:\n{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("UNREGISTERED"))
        .unwrap_or_else(|| panic!("bdevs not unregistered:\n{out}"));
    let failed: u64 = line
        .split("failed=")
        .nth(1)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        failed > 0,
        "no in-flight I/O ended with an error: {line}\n{out}"
    );
    assert_eq!(g.driver_of(addr), "none");
}

fn value(out: &str, key: &str) -> f64 {
    out.split(key)
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

/// IOPS of nvme-perf's or bdevperf's `Total` line (bdevperf indents it).
fn perf_total_iops(out: &str) -> f64 {
    let lines: Vec<&str> = out.lines().map(str::trim_start).collect();
    testbed::harness::perf_total_iops(&lines.join("\n"))
        .unwrap_or_else(|| panic!("no Total line:\n{out}"))
}

/// bdevperf's configuration: controller `Nvme0` over PCIe at `addr`.
fn bdevperf_config(addr: &str) -> String {
    format!(
        r#"{{"subsystems": [{{"subsystem": "bdev", "config": [{{"method": "bdev_nvme_attach_controller", "params": {{"name": "Nvme0", "trtype": "PCIe", "traddr": "{addr}"}}}}]}}]}}"#
    )
}

/// The queue pair counters both programs print with `FP_NVME_QSTATS=1` (the
/// driver's `QueueStats`), summed over runs.
#[derive(Default)]
struct QStats {
    runs: usize,
    v: [u64; 8],
}

const QSTAT_KEYS: [&str; 8] = [
    "sqes=",
    "sq_batches=",
    "sq_mmio=",
    "cq_batches=",
    "cq_mmio=",
    "polls=",
    "busy_polls=",
    "cqes=",
];

impl QStats {
    fn add(&mut self, out: &str) {
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| l.contains(" qpair ") && l.contains("sq_mmio="))
            .collect();
        assert!(!lines.is_empty(), "no queue pair counters:\n{out}");
        for l in lines {
            for (k, v) in QSTAT_KEYS.iter().zip(self.v.iter_mut()) {
                *v += value(l, k) as u64;
            }
        }
        self.runs += 1;
    }

    /// The invariants of the counters: every run counted, commands completed, no more
    /// MMIO writes than updates, no more updates than commands or busy polls.
    fn check(&self, runs: usize) {
        let [sqes, sqb, sqm, cqb, cqm, polls, busy, cqes] = self.v;
        assert_eq!(self.runs, runs);
        assert!(cqes > 0 && sqes >= cqes, "{:?}", self.v);
        assert!(sqm <= sqb && sqb <= sqes, "{:?}", self.v);
        assert!(cqm <= cqb && cqb <= busy && busy <= polls, "{:?}", self.v);
    }

    fn per_io(&self) -> String {
        let [sqes, sqb, sqm, _cqb, cqm, polls, busy, cqes] = self.v.map(|x| x as f64);
        format!(
            "{cqes:.0} I/Os: MMIO doorbells SQ {:.3} CQ {:.3}, commands per SQ update {:.2}, completions per busy poll {:.2}, polls {:.2}",
            sqm / cqes,
            cqm / cqes,
            sqes / sqb,
            cqes / busy,
            polls / cqes
        )
    }
}

#[test]
fn nvme_bdev_in_guest() {
    let t0 = Instant::now();
    let mdts_img = std::env::temp_dir().join(format!("fp-bdev-mdts-{}.img", std::process::id()));
    std::fs::File::create(&mdts_img)
        .and_then(|f| f.set_len(16 << 20))
        .expect("create the MDTS controller's image");
    let opts = || GuestOptions {
        nvme_serial: SERIAL.into(),
        bins: build_release(&[
            ("ferroplane-apps", "nvme-perf"),
            ("ferroplane-testbed", "fp-bdevtest"),
            ("ferroplane-bdevperf", "bdevperf"),
        ]),
        qemu_args: vec![
            "-drive".into(),
            format!("file={},if=none,id=nvmdts,format=raw", mdts_img.display()),
            "-device".into(),
            format!("nvme,serial={MDTS_SERIAL},drive=nvmdts,mdts=1"),
        ],
        ..Default::default()
    };
    let Some(mut g) = boot_or_skip("nvme_bdev_in_guest", opts) else {
        let _ = std::fs::remove_file(&mdts_img);
        return;
    };
    let ctrls: Vec<String> = g
        .devices(&["1b36:0010"])
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(ctrls.len(), 2, "two NVMe controllers: {ctrls:?}");
    for a in &ctrls {
        g.bind(a, "vfio-pci");
    }

    // --- 1. verify over VFIO, both controllers ---
    let mut main = None;
    for a in &ctrls {
        let out = verify(&mut g, a, "", "bv");
        if out.contains(&format!("serial={MDTS_SERIAL}")) {
            assert!(out.contains("max_transfer=8192"), "MDTS 1 is 8 KiB:\n{out}");
            verified(&out, &["Nvme0n1"]);
            // 4 MiB in 8 KiB commands: 512 commands through a 255-command queue pair.
            assert!(
                out.contains("CASE Nvme0n1 Dma 8192 blocks at 5000 ok"),
                "{out}"
            );
        } else {
            assert!(out.contains(&format!("serial={SERIAL}")), "{out}");
            verified(&out, &["Nvme0n1", "Nvme0n2"]);
            main = Some(a.clone());
        }
    }
    let nvme = main.expect("the harness's controller");

    // --- 2. the bdev against nvme-perf, same device and namespace, alternating ---
    let rounds: usize = std::env::var("FP_NVME_BDEV_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for depth in [1, 32] {
        let (mut ours, mut peer) = (Vec::new(), Vec::new());
        let (mut ours_q, mut peer_q) = (QStats::default(), QStats::default());
        for round in 0..rounds {
            let bdev = |g: &mut Guest, q: &mut QStats| {
                let out = g.run_ok(&format!(
                    "echo '{}' > /tmp/nvbdev.json; FP_NVME_QSTATS=1 bdevperf -m 0x1 -s 96 --file-prefix bq -r /tmp/bq.sock --json /tmp/nvbdev.json -q {depth} -o 4096 -w randread -t 2 -T Nvme0n1 2>&1",
                    bdevperf_config(&nvme)
                ));
                q.add(&out);
                perf_total_iops(&out)
            };
            let perf = |g: &mut Guest, q: &mut QStats| {
                let out = g.run_ok(&format!(
                    "FP_NVME_QSTATS=1 nvme-perf -q {depth} -o 4096 -w randread -t 2 -s 96 --file-prefix np -r 'trtype:PCIe traddr:{nvme} ns:1' 2>&1"
                ));
                q.add(&out);
                perf_total_iops(&out)
            };
            // Alternate which side goes first.
            if round % 2 == 0 {
                ours.push(bdev(&mut g, &mut ours_q));
                peer.push(perf(&mut g, &mut peer_q));
            } else {
                peer.push(perf(&mut g, &mut peer_q));
                ours.push(bdev(&mut g, &mut ours_q));
            }
        }
        let ratios: Vec<String> = ours
            .iter()
            .zip(&peer)
            .map(|(o, p)| format!("{:.2}", o / p))
            .collect();
        let (o, p) = (
            ours.iter().sum::<f64>() / ours.len() as f64,
            peer.iter().sum::<f64>() / peer.len() as f64,
        );
        eprintln!(
            "nvme bdev vs nvme-perf, 4 KiB randread depth {depth}: bdev {ours:.0?} IOPS, nvme-perf {peer:.0?} IOPS, ratio {:.2}, rounds [{}]",
            o / p,
            ratios.join(", ")
        );
        eprintln!("  per I/O, depth {depth}, bdev:      {}", ours_q.per_io());
        eprintln!("  per I/O, depth {depth}, nvme-perf: {}", peer_q.per_io());
        assert!(o > 0.0 && p > 0.0);
        for q in [&ours_q, &peer_q] {
            q.check(rounds);
        }
    }

    // --- 3. hot removal over VFIO ---
    hot_remove(&mut g, &nvme, "", "bh");

    // --- 4. UIO with physical addresses ---
    g.bind(&nvme, "uio_pci_generic");
    let out = verify(&mut g, &nvme, "--iova-mode pa", "bu");
    verified(&out, &["Nvme0n1", "Nvme0n2"]);
    hot_remove(&mut g, &nvme, "--iova-mode pa", "bhu");

    g.shutdown().unwrap();
    let _ = std::fs::remove_file(&mdts_img);
    eprintln!("nvme: nvme_bdev_in_guest took {:?}", t0.elapsed());
}
