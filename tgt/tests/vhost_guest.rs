//! A QEMU guest's virtio-blk disk served by our vhost-user-blk target, in one guest
//! boot: the Linux driver sees the bdev's size and block size and two queues; data
//! written with O_DIRECT in many sizes (from both vCPUs, so both queues carry I/O)
//! reads back equal in the guest and equals the bdev's bytes read from the host side
//! (through a second, read-only controller on the same bdev); discard and write-zeroes
//! read back as zeroes; and the target killed and restarted while the guest does I/O
//! (QEMU's chardev `reconnect=1`, the inflight area): every guest I/O completes without
//! error and each chunk reads back as written. A second disk on a null bdev is grown
//! with `bdev_null_resize`: the guest's /sys/block/vdb/size follows (the target's
//! config-change message), and I/O to the new sectors and to the first disk goes on.
//!
//! The target's bdev is a malloc disk recreated by `--json` at restart, so the test
//! checks each chunk right after it is written rather than data written before the
//! restart (a file-backed bdev would keep that too).

mod vhost_common;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use testbed::{Guest, GuestOptions};
use vhost_common::*;

const TEST: &str = "vhost_guest";
const MIB: u64 = 64;
const BS: u64 = 4096;
/// The null disk's size before and after the resize.
const NULL_MIB: u64 = 8;
const NULL_GROWN_MIB: u64 = 24;

fn config_json() -> String {
    json!({"subsystems": [
        {"subsystem": "bdev", "config": [
            {"method": "bdev_malloc_create",
             "params": {"name": "Malloc0", "num_blocks": MIB * 1024 * 1024 / BS, "block_size": BS}},
            {"method": "bdev_null_create",
             "params": {"name": "Null0", "num_blocks": NULL_MIB * 1024 * 1024 / BS, "block_size": BS}}]},
        {"subsystem": "vhost_blk", "config": [
            {"method": "vhost_create_blk_controller",
             "params": {"ctrlr": "vg0", "dev_name": "Malloc0"}},
            {"method": "vhost_create_blk_controller",
             "params": {"ctrlr": "vn0", "dev_name": "Null0"}}]}
    ]})
    .to_string()
}

fn start_with_config(dir: &Path, tag: &str) -> Tgt {
    let cfg = dir.join("config.json");
    std::fs::write(&cfg, config_json()).unwrap();
    start_with(dir, tag, &["--json", cfg.to_str().unwrap()])
}

fn sh(g: &mut Guest, cmd: &str) -> String {
    let (rc, out) = g
        .run_timeout(cmd, Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("{TEST}: guest '{cmd}': {e}"));
    assert_eq!(rc, 0, "{TEST}: guest '{cmd}' failed:\n{out}");
    out
}

/// A read-only controller on Malloc0 with our front end on it: the bdev's bytes
/// from the host side.
fn bdev_reader(t: &Tgt, dir: &Path) -> Client {
    ok(
        &t.rpc,
        "vhost_create_blk_controller",
        json!({"ctrlr": "vgcheck", "dev_name": "Malloc0", "readonly": true}),
    );
    let mut c = Client::connect(&dir.join("vgcheck"));
    c.start_queue();
    c
}

/// Grow the null disk under the running guest: the guest sees the new size (the
/// config-change interrupt, no rescan asked for), and I/O to the new sectors and to
/// the first disk goes on.
fn resize_reaches_the_guest(g: &mut Guest, t: &Tgt) {
    let sectors = |mib: u64| (mib * 1024 * 1024 / 512).to_string();
    sh(
        g,
        "for i in $(seq 50); do [ -b /dev/vdb ] && break; sleep 0.2; done; [ -b /dev/vdb ]",
    );
    assert_eq!(
        sh(g, "cat /sys/block/vdb/size").trim(),
        sectors(NULL_MIB),
        "the null disk before the resize"
    );
    // Held open with I/O going to it while it grows.
    sh(
        g,
        "( for i in $(seq 200); do dd if=/dev/vdb of=/dev/null bs=4096 count=16 \
           iflag=direct 2>/dev/null || { echo FAIL > /tmp/bg; exit 1; }; done; \
           echo DONE > /tmp/bg ) & true",
    );
    assert_eq!(
        ok(
            &t.rpc,
            "bdev_null_resize",
            json!({"name": "Null0", "new_size": NULL_GROWN_MIB})
        ),
        true
    );
    let size = sh(
        g,
        &format!(
            "for i in $(seq 150); do [ $(cat /sys/block/vdb/size) = {} ] && break; sleep 0.2; done; \
             cat /sys/block/vdb/size",
            sectors(NULL_GROWN_MIB)
        ),
    );
    assert_eq!(
        size.trim(),
        sectors(NULL_GROWN_MIB),
        "{TEST}: the guest's size after bdev_null_resize"
    );
    let notice = sh(g, "dmesg | grep -i 'vdb.*new size' || true");
    eprintln!("{TEST}: guest kernel: {}", notice.trim());
    // The new sectors take writes and reads (dd reports every block moved).
    let first_new = NULL_MIB * 1024 * 1024 / 4096;
    let out = sh(
        g,
        &format!(
            "dd if=/fp/pat.bin of=/dev/vdb bs=4096 count=256 seek={first_new} oflag=direct 2>&1 && \
             dd if=/dev/vdb of=/dev/null bs=4096 count=256 skip={} iflag=direct 2>&1",
            (NULL_GROWN_MIB * 1024 * 1024 / 4096) - 256
        ),
    );
    assert_eq!(
        out.matches("256+0 records out").count(),
        2,
        "{TEST}: I/O past the old end: {out}"
    );
    let bg = sh(
        g,
        "for i in $(seq 300); do [ -s /tmp/bg ] && break; sleep 0.2; done; cat /tmp/bg",
    );
    assert_eq!(bg.trim(), "DONE", "{TEST}: reads running across the resize");
    // The first disk is untouched and still serves.
    sh(
        g,
        "dd if=/fp/pat.bin of=/dev/vda bs=4096 count=16 seek=4000 oflag=direct 2>/dev/null && \
         dd if=/dev/vda of=/tmp/r bs=4096 count=16 skip=4000 iflag=direct 2>/dev/null && \
         dd if=/fp/pat.bin of=/tmp/w bs=4096 count=16 2>/dev/null && cmp /tmp/r /tmp/w",
    );
    assert_eq!(
        sh(g, "cat /sys/block/vda/size").trim(),
        sectors(MIB),
        "the first disk keeps its size"
    );
}

#[test]
fn guest_disk_on_our_target() {
    let dir = tmpdir("guest");
    let pat = pattern(77, 2 << 20);
    std::fs::write(dir.join("pat.bin"), &pat).unwrap();
    let mut tgt = Some(start_with_config(&dir, "guest"));
    let sock = dir.join("vg0");
    let blkdiscard = Path::new("/usr/sbin/blkdiscard");
    let mut files = vec![(dir.join("pat.bin"), "/fp/pat.bin".to_string())];
    if blkdiscard.exists() {
        files.push((blkdiscard.to_path_buf(), "/fp/bin/blkdiscard-z".to_string()));
    }
    let Some(mut g) = testbed::boot_or_skip(TEST, || GuestOptions {
        memfd: true,
        mem_mb: 512,
        files: files.clone(),
        qemu_args: vec![
            "-chardev".into(),
            format!("socket,id=vb0,path={},reconnect=1", sock.display()),
            "-device".into(),
            "vhost-user-blk-pci,chardev=vb0,num-queues=2".into(),
            "-chardev".into(),
            format!(
                "socket,id=vn0,path={},reconnect=1",
                dir.join("vn0").display()
            ),
            "-device".into(),
            "vhost-user-blk-pci,chardev=vn0,num-queues=1".into(),
        ],
        ..Default::default()
    }) else {
        return;
    };
    sh(&mut g, "fp-modprobe virtio_pci virtio_blk");
    sh(
        &mut g,
        "for i in $(seq 50); do [ -b /dev/vda ] && break; sleep 0.2; done; [ -b /dev/vda ]",
    );
    // Size, block size, queues.
    let size = sh(&mut g, "cat /sys/block/vda/size");
    assert_eq!(
        size.trim(),
        (MIB * 1024 * 1024 / 512).to_string(),
        "sectors"
    );
    let lbs = sh(&mut g, "cat /sys/block/vda/queue/logical_block_size");
    assert_eq!(lbs.trim(), BS.to_string(), "logical block size");
    let q = sh(&mut g, "ls /sys/block/vda/mq | wc -l");
    assert_eq!(q.trim(), "2", "queues");

    // Many sizes at their own offsets (bytes), written from both vCPUs.
    let cases: [(u64, u64); 8] = [
        (4096, 0),
        (8192, 1 << 20),
        (12288, 2 << 20),
        (65536, 3 << 20),
        (131072, 4 << 20),
        (524288, 5 << 20),
        (1 << 20, 6 << 20),
        (2 << 20, 8 << 20),
    ];
    let mut cmds = Vec::new();
    for (i, (n, off)) in cases.iter().enumerate() {
        let cpu = i % 2;
        // dd counts in blocks of `bs`: 4 KiB units keep every size expressible.
        cmds.push(format!(
            "taskset -c {cpu} dd if=/fp/pat.bin of=/dev/vda bs=4096 count={} seek={} oflag=direct 2>/dev/null",
            n / 4096,
            off / 4096
        ));
    }
    // Two writers in parallel, one per vCPU (so one per queue).
    let even: Vec<&String> = cmds.iter().step_by(2).collect();
    let odd: Vec<&String> = cmds.iter().skip(1).step_by(2).collect();
    sh(
        &mut g,
        &format!(
            "( {} ) & a=$!; ( {} ); b=$?; wait $a && [ $b = 0 ]",
            even.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" && "),
            odd.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" && ")
        ),
    );
    for (n, off) in cases {
        sh(
            &mut g,
            &format!(
                "dd if=/dev/vda of=/tmp/r bs=4096 count={} skip={} iflag=direct 2>/dev/null && \
                 dd if=/fp/pat.bin of=/tmp/w bs=4096 count={} 2>/dev/null && cmp /tmp/r /tmp/w",
                n / 4096,
                off / 4096,
                n / 4096
            ),
        );
    }
    let list = ok(
        &tgt.as_ref().unwrap().rpc,
        "vhost_get_controllers",
        json!({"name": "vg0"}),
    );
    let per_q = &list[0]["sessions"][0]["queue_requests"];
    let busy: Vec<u64> = per_q
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|q| q["requests"].as_u64().unwrap())
        .collect();
    assert!(
        busy.len() == 2 && busy.iter().all(|&n| n > 0),
        "both queues carried requests: {list}"
    );

    // The bdev's bytes, from the host side.
    {
        let t = tgt.as_ref().unwrap();
        let mut c = bdev_reader(t, &dir);
        for (n, off) in cases {
            let got = c.read_all(off / 512, n as usize);
            assert!(
                got == pat[..n as usize],
                "bdev bytes at {off} ({n} bytes) differ from what the guest wrote"
            );
        }
        // Discard and write-zeroes, then zeroes in the guest and on the bdev.
        sh(
            &mut g,
            &format!("blkdiscard -o {} -l {} /dev/vda", 4 << 20, 131072),
        );
        let zeroes_in_guest = |g: &mut Guest, off: u64, n: u64| {
            sh(
                g,
                &format!(
                    "dd if=/dev/vda of=/tmp/r bs=4096 count={} skip={} iflag=direct 2>/dev/null && \
                     dd if=/dev/zero of=/tmp/w bs=4096 count={} 2>/dev/null && cmp /tmp/r /tmp/w",
                    n / 4096,
                    off / 4096,
                    n / 4096
                ),
            );
        };
        zeroes_in_guest(&mut g, 4 << 20, 131072);
        assert!(
            c.read_all((4 << 20) / 512, 131072).iter().all(|&b| b == 0),
            "discarded"
        );
        if blkdiscard.exists() {
            sh(
                &mut g,
                &format!("blkdiscard-z -z -o {} -l {} /dev/vda", 6 << 20, 1 << 20),
            );
            zeroes_in_guest(&mut g, 6 << 20, 1 << 20);
            assert!(
                c.read_all((6 << 20) / 512, 1 << 20).iter().all(|&b| b == 0),
                "zeroed"
            );
        } else {
            testkit::skip(
                TEST,
                testkit::Need::Tool,
                "write-zeroes: util-linux blkdiscard missing",
            );
        }
        // Untouched neighbours kept their data.
        assert!(
            c.read_all((5 << 20) / 512, 524288) == pat[..524288],
            "neighbour"
        );
        drop(c);
        ok(
            &t.rpc,
            "vhost_delete_controller",
            json!({"ctrlr": "vgcheck"}),
        );
    }

    resize_reaches_the_guest(&mut g, tgt.as_ref().unwrap());

    // Restart the target while the guest writes 64 chunks of 64 KiB one after the
    // other (chunk i from pattern slice i % 32), each dd checked for errors.
    const CHUNKS: u64 = 64;
    const FIRST: u64 = 256;
    sh(
        &mut g,
        &format!(
            "( ( i=0; while [ $i -lt {CHUNKS} ]; do \
               dd if=/fp/pat.bin of=/dev/vda bs=65536 count=1 skip=$((i % 32)) seek=$(({FIRST} + i)) \
                  oflag=direct 2>/dev/null || exit 1; echo $i >> /tmp/progress; i=$((i + 1)); done ); \
               echo \"LOOP-END $?\" ) > /tmp/loop.log 2>&1 & true"
        ),
    );
    // Kill the target once a few chunks are done, start it again (the --json config
    // recreates the bdev and the controller on the same socket).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = sh(&mut g, "cat /tmp/progress 2>/dev/null | wc -l");
        if n.trim().parse::<u64>().unwrap_or(0) >= 8 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{TEST}: the guest made no progress"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    {
        let mut t = tgt.take().unwrap();
        let _ = t.child.kill();
        let _ = t.child.wait();
    }
    let before = sh(&mut g, "cat /tmp/progress | wc -l");
    std::thread::sleep(Duration::from_millis(500));
    let t = start_with_config(&dir, "guest2");
    let out = sh(
        &mut g,
        "for i in $(seq 600); do grep -q LOOP-END /tmp/loop.log && break; sleep 0.5; done; cat /tmp/loop.log",
    );
    assert!(
        out.contains("LOOP-END 0"),
        "{TEST}: guest I/O across the restart: {out}"
    );
    let dmesg = sh(
        &mut g,
        "dmesg | grep -i -E 'I/O error|blk_update_request' || true",
    );
    assert!(
        dmesg.trim().is_empty(),
        "{TEST}: guest saw I/O errors: {dmesg}"
    );
    // The new bdev started empty: chunks completed before the kill are zero; every chunk
    // from the one in flight at the kill on must hold its data (the inflight area made
    // the new target resubmit it), and nothing else may appear.
    let mut c = bdev_reader(&t, &dir);
    let mut kinds = Vec::new();
    for i in 0..CHUNKS {
        let got = c.read_all((FIRST + i) * 65536 / 512, 65536);
        let want = &pat[((i % 32) * 65536) as usize..][..65536];
        kinds.push(if got == want {
            'D'
        } else if got.iter().all(|&b| b == 0) {
            '0'
        } else {
            'X'
        });
    }
    let k: String = kinds.iter().collect();
    eprintln!("{TEST}: chunks after the restart (0 = lost with the malloc bdev, D = data): {k}; {} done before the kill", before.trim());
    let first_d = kinds.iter().position(|&c| c == 'D').unwrap_or(kinds.len());
    assert!(
        !kinds.contains(&'X') && kinds[first_d..].iter().all(|&c| c == 'D'),
        "{TEST}: a chunk lost or corrupted across the restart: {k}"
    );
    assert!(
        first_d > 0 && first_d < kinds.len(),
        "{TEST}: the restart fell outside the writes: {k}"
    );
    drop(c);
    drop(g);
    drop(t);
    let _ = std::fs::remove_dir_all(&dir);
}
