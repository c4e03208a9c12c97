//! Benchmark, run on request (`cargo test -p ferroplane-tgt --test vhost_bench --
//! --ignored --nocapture`): in one guest boot, fio (4 KiB random read and write, depth 1
//! and 32, libaio, O_DIRECT) against a disk served by our target and one served by
//! QEMU's qemu-storage-daemon, alternating round by round, printing IOPS, mean
//! guest-side latency and our/their ratios.
//!
//! Both disks live in host RAM: ours is a malloc bdev (there is no file bdev yet), the
//! daemon's a file in the page cache (`cache.direct=off`). Under TCG the emulator bounds
//! both; the ratio is the point, and the machine is shared, so numbers move.

mod vhost_common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use testbed::{Guest, GuestOptions};
use vhost_common::*;

const TEST: &str = "vhost_bench";
const OURS_MIB: u64 = 256;
const QSD_MIB: u64 = 192;

struct Qsd(Child);
impl Drop for Qsd {
    fn drop(&mut self) {
        // Only our own child, by PID.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fio(g: &mut Guest, dev: &str, rw: &str, depth: u32, secs: u32) -> (f64, f64) {
    let cmd = format!(
        "fio --name=b --filename={dev} --direct=1 --ioengine=libaio --rw={rw} --bs=4k \
         --iodepth={depth} --runtime={secs} --time_based --size=128M --randrepeat=0 \
         --output-format=json --output=/tmp/f.json >/dev/null && tr -d '\\n' < /tmp/f.json; echo"
    );
    let (rc, out) = g
        .run_timeout(&cmd, Duration::from_secs(u64::from(secs) + 120))
        .unwrap_or_else(|e| panic!("{TEST}: {e}"));
    assert_eq!(rc, 0, "{TEST}: fio failed: {out}");
    let start = out
        .find('{')
        .unwrap_or_else(|| panic!("{TEST}: no fio JSON: {out}"));
    let v: Value = serde_json::from_str(out[start..].trim())
        .unwrap_or_else(|e| panic!("{TEST}: fio JSON: {e}: {out}"));
    let side = if rw.contains("read") { "read" } else { "write" };
    let j = &v["jobs"][0][side];
    let iops = j["iops"].as_f64().unwrap_or(0.0);
    let lat_us = j["lat_ns"]["mean"].as_f64().unwrap_or(0.0) / 1000.0;
    assert!(iops > 0.0, "{TEST}: fio on {dev} did no I/O: {out}");
    (iops, lat_us)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

#[test]
#[ignore = "benchmark: boots a guest for several minutes; run with --ignored"]
fn ours_against_qemu_storage_daemon() {
    if !testkit::need_tool(TEST, "qemu-storage-daemon") || !testkit::need_tool(TEST, "fio") {
        return;
    }
    let dir = tmpdir("bench");
    let t = start(&dir, "bench");
    ok(
        &t.rpc,
        "bdev_malloc_create",
        json!({"name": "Malloc0", "num_blocks": OURS_MIB * 2048, "block_size": 512}),
    );
    ok(
        &t.rpc,
        "vhost_create_blk_controller",
        json!({"ctrlr": "vb0", "dev_name": "Malloc0"}),
    );
    let img = dir.join("qsd.img");
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(QSD_MIB << 20))
        .unwrap();
    let qsock = dir.join("qsd.sock");
    let qsd = Qsd(
        Command::new("qemu-storage-daemon")
            .arg("--blockdev")
            .arg(format!(
                "driver=file,node-name=f0,filename={},cache.direct=off",
                img.display()
            ))
            .arg("--export")
            .arg(format!(
                "type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path={},writable=on,num-queues=1",
                qsock.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start qemu-storage-daemon"),
    );
    for _ in 0..100 {
        if qsock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(qsock.exists(), "{TEST}: qemu-storage-daemon did not listen");
    let fio_bin = Path::new("/usr/bin/fio").to_path_buf();
    let Some(mut g) = testbed::boot_or_skip(TEST, || GuestOptions {
        memfd: true,
        mem_mb: 512,
        files: vec![(fio_bin, "/fp/bin/fio".into())],
        qemu_args: vec![
            "-chardev".into(),
            format!("socket,id=vb0,path={}", dir.join("vb0").display()),
            "-device".into(),
            "vhost-user-blk-pci,chardev=vb0,num-queues=1".into(),
            "-chardev".into(),
            format!("socket,id=vb1,path={}", qsock.display()),
            "-device".into(),
            "vhost-user-blk-pci,chardev=vb1,num-queues=1".into(),
        ],
        ..Default::default()
    }) else {
        return;
    };
    let (rc, out) = g.run("fp-modprobe virtio_pci virtio_blk && sleep 1 && cat /sys/block/vda/size /sys/block/vdb/size").unwrap();
    assert_eq!(rc, 0, "{out}");
    let sizes: Vec<u64> = out
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let (ours, theirs) = if sizes.first() == Some(&(OURS_MIB * 2048)) {
        ("/dev/vda", "/dev/vdb")
    } else {
        ("/dev/vdb", "/dev/vda")
    };
    let cases = [
        ("randread", 1),
        ("randread", 32),
        ("randwrite", 1),
        ("randwrite", 32),
    ];
    let rounds = 3;
    let mut res: Vec<[(Vec<f64>, Vec<f64>); 2]> =
        cases.iter().map(|_| Default::default()).collect();
    for round in 0..rounds {
        for (ci, (rw, d)) in cases.iter().enumerate() {
            // Alternate which side goes first.
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for side in order {
                let dev = if side == 0 { ours } else { theirs };
                let (iops, lat) = fio(&mut g, dev, rw, *d, 5);
                eprintln!(
                    "{TEST}: round {round} {rw} qd{d} {}: {iops:.0} IOPS, {lat:.1} us",
                    if side == 0 {
                        "ferroplane"
                    } else {
                        "qemu-storage-daemon"
                    }
                );
                res[ci][side].0.push(iops);
                res[ci][side].1.push(lat);
            }
        }
    }
    println!("\n| 4 KiB, {rounds} rounds (median) | ferroplane IOPS | qsd IOPS | ratio | ferroplane lat us | qsd lat us |");
    println!("|---|---|---|---|---|---|");
    for (ci, (rw, d)) in cases.iter().enumerate() {
        let (oi, ti) = (median(res[ci][0].0.clone()), median(res[ci][1].0.clone()));
        let (ol, tl) = (median(res[ci][0].1.clone()), median(res[ci][1].1.clone()));
        println!(
            "| {rw} depth {d} | {oi:.0} | {ti:.0} | {:.2}x | {ol:.1} | {tl:.1} |",
            oi / ti
        );
    }
    drop(g);
    drop(qsd);
    drop(t);
    let _ = std::fs::remove_dir_all(&dir);
}
