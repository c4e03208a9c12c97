//! NVMe/TCP against the Linux kernel in the testbed guest (one boot for the file):
//!
//! 1. The kernel initiator (nvme-tcp, nvme-cli) against `ferroplane-tgt`: discovery
//!    lists our subsystem; a host NQN not on the allow list is refused at Connect;
//!    the allowed host connects, the namespace appears as a block device of the bdev's
//!    size; data written by the kernel (4 KiB in-capsule writes and 128 KiB writes
//!    through R2T/H2CData, O_DIRECT) reads back equal; it is still there, equal, read
//!    through a second, fresh controller (so it is the bdev's bytes, not a cache);
//!    discard (Dataset Management) reads back as zeroes (malloc's unmap); the
//!    controller survives two keep-alive periods; disconnect removes the device.
//! 2. The same with header and data digests on (`nvme connect -g -G`).
//! 3. Namespace events: while the kernel is connected, `nvmf_subsystem_add_ns` makes
//!    the target complete the kernel's Asynchronous Event Request; the kernel reads
//!    the Changed Namespace List, rescans, and `nvmeXn2` appears with the new bdev's
//!    size and takes I/O; `nvmf_subsystem_remove_ns` makes it go again.
//! 4. Our initiator against the Linux kernel target: nvmet-tcp set up through configfs
//!    (any host, namespace 1 over a loop device on a 64 MiB file, port 127.0.0.1:4420
//!    once our target is stopped); our `bdevperf -w verify` attaches with
//!    `bdev_nvme_attach_controller -t tcp` (JSON config), plain and with header and
//!    data digests: it exits 0 with no failures, and the loop device counted the reads
//!    and writes it did.
//!
//! Runs when QEMU can be used or installed (root), otherwise a counted skip (need
//! `guest`); `FP_TESTBED=1` forces, `FP_TESTBED=0` skips (see `testbed::harness`).

use std::path::{Path, PathBuf};
use std::process::Command;

use testbed::{boot_or_skip, build_release, Guest, GuestOptions};

const TEST: &str = "nvmf_guest";
const NQN: &str = "nqn.2016-06.io.ferroplane:cnode1";
const HOST_OK: &str = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555";
const HOST_BAD: &str = "nqn.2014-08.org.nvmexpress:uuid:99999999-8888-7777-6666-555555555555";
const PORT: u16 = 4420;

/// nvme-cli on the host, installed through apt when missing (root).
fn nvme_cli() -> Option<PathBuf> {
    let p = Path::new("/usr/sbin/nvme");
    if !p.exists() && testkit::is_root() {
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-q", "nvme-cli"])
            .status();
    }
    p.exists().then(|| p.to_path_buf())
}

fn rpc(g: &mut Guest, args: &str) -> String {
    g.run_ok(&format!("ferroplane-rpc -s /tmp/t.sock {args}"))
}

/// The block device name (nvmeXnY) of namespace 1 of the connected subsystem `nqn`.
fn block_dev(g: &mut Guest, nqn: &str) -> String {
    // In a subshell: `exit` in the guest's own shell would end its init.
    let out = g.run_ok(&format!(
        "(for i in $(seq 1 50); do for b in /sys/block/nvme*n1; do \
         [ \"$(cat $b/device/subsysnqn 2>/dev/null)\" = {nqn} ] && basename $b && exit 0; \
         done; sleep 0.2; done; echo none)"
    ));
    let dev = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("nvme"))
        .unwrap_or("none");
    if dev == "none" {
        let why = g.run_ok(
            "dmesg | tail -12; for c in /sys/class/nvme/nvme*; do echo $c $(cat $c/state) $(cat $c/subsysnqn); done; \
             nvme list-ns /dev/nvme1 2>&1 | head; nvme id-ns /dev/nvme1 -n 1 2>&1 | head -12; \
             ls /sys/block; grep -v 'nvmf: connection' /tmp/tgt.log | tail -40",
        );
        panic!("no block device for {nqn}:\n{why}");
    }
    dev.to_string()
}

fn md5(g: &mut Guest, cmd: &str) -> String {
    let out = g.run_ok(&format!("{cmd} | md5sum"));
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Connect the allowed host (with `extra` options), check the device, write and read.
fn kernel_round(g: &mut Guest, extra: &str, tag: &str) {
    let out = g.run_ok(&format!(
        "nvme connect -t tcp -a 127.0.0.1 -s {PORT} -n {NQN} --hostnqn={HOST_OK} {extra}"
    ));
    eprintln!("{TEST}: connect ({tag}): {out}");
    let dev = block_dev(g, NQN);
    // 64 MiB of 512-byte blocks.
    let size = g.run_ok(&format!("cat /sys/block/{dev}/size"));
    assert_eq!(size.trim(), "131072", "{dev} size in sectors");
    // 4 KiB writes (in-capsule) at 1 MiB, 128 KiB writes (R2T) at 8 MiB.
    g.run_ok("dd if=/dev/urandom of=/tmp/a bs=4096 count=64 2>/dev/null");
    g.run_ok("dd if=/dev/urandom of=/tmp/b bs=131072 count=16 2>/dev/null");
    g.run_ok(&format!(
        "dd if=/tmp/a of=/dev/{dev} bs=4096 seek=256 oflag=direct conv=notrunc 2>&1"
    ));
    g.run_ok(&format!(
        "dd if=/tmp/b of=/dev/{dev} bs=131072 seek=64 oflag=direct conv=notrunc 2>&1"
    ));
    let (a, b) = (md5(g, "cat /tmp/a"), md5(g, "cat /tmp/b"));
    let a_back = md5(
        g,
        &format!("dd if=/dev/{dev} bs=4096 skip=256 count=64 iflag=direct 2>/dev/null"),
    );
    let b_back = md5(
        g,
        &format!("dd if=/dev/{dev} bs=131072 skip=64 count=16 iflag=direct 2>/dev/null"),
    );
    assert_eq!(a, a_back, "4 KiB writes read back ({tag})");
    assert_eq!(b, b_back, "128 KiB writes read back ({tag})");
    g.run_ok(&format!("nvme disconnect -n {NQN}"));
    let gone = g.run_ok(&format!(
        "sleep 1; ls /sys/block | grep -c '^{dev}$' || true"
    ));
    assert_eq!(gone.trim(), "0", "{dev} still present after disconnect");

    // A fresh controller reads the same bytes: they are in the bdev.
    g.run_ok(&format!(
        "nvme connect -t tcp -a 127.0.0.1 -s {PORT} -n {NQN} --hostnqn={HOST_OK} {extra}"
    ));
    let dev = block_dev(g, NQN);
    let a2 = md5(
        g,
        &format!("dd if=/dev/{dev} bs=4096 skip=256 count=64 iflag=direct 2>/dev/null"),
    );
    let b2 = md5(
        g,
        &format!("dd if=/dev/{dev} bs=131072 skip=64 count=16 iflag=direct 2>/dev/null"),
    );
    assert_eq!(
        (a.as_str(), b.as_str()),
        (a2.as_str(), b2.as_str()),
        "bytes through a new controller ({tag})"
    );
    // Discard (Dataset Management, deallocate) of the 4 KiB area reads back as zeroes.
    let zero = md5(g, "dd if=/dev/zero bs=4096 count=64 2>/dev/null");
    let (st, out) = g
        .run(&format!("blkdiscard -o 1048576 -l 262144 /dev/{dev}"))
        .unwrap();
    if st == 0 {
        let z = md5(
            g,
            &format!("dd if=/dev/{dev} bs=4096 skip=256 count=64 iflag=direct 2>/dev/null"),
        );
        assert_eq!(z, zero, "discarded blocks read as zeroes ({tag})");
    } else {
        panic!("blkdiscard failed ({tag}): {out}");
    }
    g.run_ok(&format!("nvme disconnect -n {NQN}"));
}

/// Wait up to 30 s for `/sys/block/<dev>` to exist (`want`) or not.
fn wait_block(g: &mut Guest, dev: &str, want: bool) -> bool {
    let test = if want { "-e" } else { "! -e" };
    let out = g.run_ok(&format!(
        "(for i in $(seq 1 150); do [ {test} /sys/block/{dev} ] && echo yes && exit 0; \
         sleep 0.2; done; echo no)"
    ));
    out.contains("yes")
}

/// Add namespace 2 by RPC while `dev` (namespace 1) is connected, use it, remove it.
fn namespace_events(g: &mut Guest, dev: &str) {
    let ctrl = dev.rsplit_once('n').map_or(dev, |(c, _)| c);
    let n2 = format!("{ctrl}n2");
    rpc(g, "bdev_malloc_create -b Malloc1 32 512");
    rpc(g, &format!("nvmf_subsystem_add_ns {NQN} Malloc1 -n 2"));
    if !wait_block(g, &n2, true) {
        let why = g.run_ok("ls /sys/block; dmesg | tail -20; tail -20 /tmp/tgt.log");
        panic!("{n2} did not appear after nvmf_subsystem_add_ns:\n{why}");
    }
    let size = g.run_ok(&format!("cat /sys/block/{n2}/size"));
    assert_eq!(size.trim(), "65536", "{n2} size in sectors");
    let dmesg = g.run_ok("dmesg | grep -i 'rescanning namespaces' || true");
    eprintln!("{TEST}: {}", dmesg.trim());
    g.run_ok("dd if=/dev/urandom of=/tmp/c bs=4096 count=16 2>/dev/null");
    g.run_ok(&format!(
        "dd if=/tmp/c of=/dev/{n2} bs=4096 oflag=direct conv=notrunc 2>&1"
    ));
    let back = md5(
        g,
        &format!("dd if=/dev/{n2} bs=4096 count=16 iflag=direct 2>/dev/null"),
    );
    assert_eq!(back, md5(g, "cat /tmp/c"), "{n2} reads back");
    rpc(g, &format!("nvmf_subsystem_remove_ns {NQN} 2"));
    assert!(
        wait_block(g, &n2, false),
        "{n2} stayed after nvmf_subsystem_remove_ns"
    );
    assert!(wait_block(g, dev, true), "{dev} went with namespace 2");
}

/// Set up the kernel's NVMe/TCP target (see `testbed::nvmet`); returns its loop device.
fn kernel_target(g: &mut Guest, nqn: &str, port: u16, mib: u32) -> String {
    let out = g.run_ok(&testbed::nvmet::setup_script(nqn, port, mib));
    testbed::nvmet::loop_device(&out)
        .unwrap_or_else(|| panic!("nvmet-tcp setup named no loop device:\n{out}"))
        .to_string()
}

/// Reads and writes completed by block device `dev` (/sys/block/DEV/stat).
fn block_ios(g: &mut Guest, dev: &str) -> (u64, u64) {
    let out = g.run_ok(&format!("cat /sys/block/{dev}/stat"));
    let f: Vec<u64> = out
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(f.len() >= 5, "/sys/block/{dev}/stat: {out}");
    (f[0], f[4])
}

/// Our bdevperf verify against the kernel target at 127.0.0.1:`port` (digests as
/// asked): it must pass, and the loop device must have served its reads and writes.
fn verify_against_kernel(g: &mut Guest, nqn: &str, port: u16, lo: &str, digests: bool) {
    let tag = if digests { "digests" } else { "plain" };
    let cfg = format!(
        r#"{{"subsystems":[{{"subsystem":"bdev","config":[{{"method":"bdev_nvme_attach_controller","params":{{"name":"Nvme0","trtype":"TCP","adrfam":"IPv4","traddr":"127.0.0.1","trsvcid":"{port}","subnqn":"{nqn}","hdgst":{digests},"ddgst":{digests}}}}}]}}]}}"#
    );
    g.run_ok(&format!("echo '{cfg}' > /tmp/kt.json"));
    let dev = lo.trim_start_matches("/dev/");
    let (r0, w0) = block_ios(g, dev);
    let (st, out) = g
        .run_timeout(
            "bdevperf -m 0x1 --no-huge -s 256 --no-pci --file-prefix kt -r /tmp/bp.sock \
             --json /tmp/kt.json -q 16 -o 4096 -w verify -t 4 2>&1",
            std::time::Duration::from_secs(240),
        )
        .unwrap();
    eprintln!("{TEST}: our bdevperf verify against nvmet-tcp ({tag}):\n{out}");
    assert_eq!(
        st, 0,
        "bdevperf verify against nvmet-tcp failed ({tag}):\n{out}"
    );
    let total = out
        .lines()
        .find(|l| l.trim_start().starts_with("Total"))
        .unwrap_or_else(|| panic!("no Total line ({tag}):\n{out}"));
    let v: Vec<f64> = total
        .split_once(':')
        .map(|(_, r)| {
            r.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(v.len() >= 3, "Total line: {total}");
    assert!(v[0] > 0.0, "no I/O per second ({tag}): {total}");
    assert_eq!(v[2], 0.0, "failed I/O ({tag}): {total}");
    let want = if digests { "on" } else { "off" };
    assert!(
        out.contains(&format!("(header digest {want}, data digest {want})")),
        "the I/O queue's digests are not {want} ({tag}):\n{out}"
    );
    let (r1, w1) = block_ios(g, dev);
    eprintln!(
        "{TEST}: {lo} served {} reads, {} writes ({tag})",
        r1 - r0,
        w1 - w0
    );
    assert!(
        r1 - r0 >= 64 && w1 - w0 >= 64,
        "the kernel target's backing saw {} reads and {} writes ({tag})",
        r1 - r0,
        w1 - w0
    );
}

#[test]
fn kernel_initiator_against_our_target() {
    let Some(nvme) = nvme_cli() else {
        testkit::skip(
            TEST,
            testkit::Need::Tool,
            "nvme-cli is not installed (apt-get install nvme-cli)",
        );
        return;
    };
    let Some(mut g) = boot_or_skip(TEST, || {
        let bins = build_release(&[
            ("ferroplane-tgt", "ferroplane-tgt"),
            ("ferroplane-jsonrpc", "ferroplane-rpc"),
            ("ferroplane-bdevperf", "bdevperf"),
        ]);
        GuestOptions {
            bins,
            files: vec![(nvme, "/usr/sbin/nvme".into())],
            ..Default::default()
        }
    }) else {
        return;
    };
    g.run_ok("fp-modprobe nvme-tcp");
    g.run_ok("ip link set lo up");
    // The EAL keeps its shared files in /dev/shm.
    g.run_ok(
        "mkdir -p /dev/shm && (grep -q ' /dev/shm ' /proc/mounts || mount -t tmpfs none /dev/shm)",
    );
    g.run_ok(
        "(ferroplane-tgt -m 0x3 --no-huge -s 256 --no-pci --file-prefix nvmf --log-level 8 -r /tmp/t.sock >/tmp/tgt.log 2>&1 & echo $! >/tmp/tgt.pid)",
    );
    g.run_ok(
        "(for i in $(seq 1 300); do [ -S /tmp/t.sock ] && exit 0; sleep 0.1; done; cat /tmp/tgt.log; exit 1)",
    );
    rpc(&mut g, "bdev_malloc_create -b Malloc0 64 512");
    rpc(&mut g, "nvmf_create_transport -t TCP");
    rpc(
        &mut g,
        &format!("nvmf_create_subsystem {NQN} -s FP0001 -d FerroplaneTest"),
    );
    rpc(&mut g, &format!("nvmf_subsystem_add_ns {NQN} Malloc0"));
    rpc(&mut g, &format!("nvmf_subsystem_add_host {NQN} {HOST_OK}"));
    rpc(
        &mut g,
        &format!("nvmf_subsystem_add_listener {NQN} -t tcp -a 127.0.0.1 -s {PORT}"),
    );
    rpc(
        &mut g,
        &format!("nvmf_subsystem_add_listener discovery -t tcp -a 127.0.0.1 -s {PORT}"),
    );

    let out = g.run_ok(&format!(
        "nvme discover -t tcp -a 127.0.0.1 -s {PORT} --hostnqn={HOST_OK}"
    ));
    assert!(out.contains(NQN), "discovery lists our subsystem:\n{out}");
    assert!(out.contains("127.0.0.1"), "{out}");
    // Not on the allow list: discovery hides the subsystem, Connect is refused.
    let out = g.run_ok(&format!(
        "nvme discover -t tcp -a 127.0.0.1 -s {PORT} --hostnqn={HOST_BAD}"
    ));
    assert!(
        !out.contains(NQN),
        "discovery shows the subsystem to a refused host:\n{out}"
    );
    let (st, out) = g
        .run(&format!(
            "nvme connect -t tcp -a 127.0.0.1 -s {PORT} -n {NQN} --hostnqn={HOST_BAD}"
        ))
        .unwrap();
    assert_ne!(st, 0, "a host off the allow list connected:\n{out}");
    let log = g.run_ok("cat /tmp/tgt.log");
    assert!(
        log.contains(&format!("host '{HOST_BAD}'")) && log.contains("refused"),
        "{log}"
    );

    kernel_round(&mut g, "", "plain");
    // Digests need the kernel's crc32c cipher, a module nvme-tcp asks the crypto API
    // for (no symbol dependency, so fp-modprobe nvme-tcp does not bring it).
    let (st, out) = g
        .run("fp-modprobe crc32c_generic || fp-modprobe crc32c-generic")
        .unwrap();
    let digests_ok = st == 0;
    if digests_ok {
        kernel_round(&mut g, "-g -G", "digests");
    } else {
        testkit::skip(
            "nvmf_guest digests",
            testkit::Need::Kernel,
            format!("no crc32c module in the guest for the kernel's digests: {out}"),
        );
    }

    // Keep-alive: the kernel sends one every 5 s; a connection held 12 s stays up.
    g.run_ok(&format!(
        "nvme connect -t tcp -a 127.0.0.1 -s {PORT} -n {NQN} --hostnqn={HOST_OK} -i 2"
    ));
    let dev = block_dev(&mut g, NQN);
    g.run_ok("sleep 12");
    g.run_ok(&format!(
        "dd if=/dev/{dev} of=/dev/null bs=4096 count=16 iflag=direct 2>&1"
    ));
    namespace_events(&mut g, &dev);
    let dmesg = g.run_ok("dmesg | grep -iE 'nvme.*(keep-alive|reset|error)' || true");
    assert!(
        !dmesg.contains("keep-alive"),
        "keep-alive trouble:\n{dmesg}"
    );
    let ctrl = g.run_ok(&format!(
        "for c in /sys/class/nvme/nvme*; do [ \"$(cat $c/subsysnqn)\" = {NQN} ] && cat $c/queue_count 2>/dev/null; done; true"
    ));
    eprintln!("{TEST}: queue count {ctrl}");
    g.run_ok(&format!("nvme disconnect -n {NQN}"));
    let stats = rpc(&mut g, "nvmf_get_stats");
    eprintln!("{TEST}: target stats {stats}");
    assert!(
        stats.contains("\"live_commands\": 0"),
        "commands left holding buffers: {stats}"
    );

    // Our initiator against the kernel's target, on the port ours held.
    g.run_ok("kill $(cat /tmp/tgt.pid); sleep 1");
    let knqn = "nqn.2014-08.io.ferroplane:kernel-target";
    let lo = kernel_target(&mut g, knqn, PORT, 64);
    verify_against_kernel(&mut g, knqn, PORT, &lo, false);
    if digests_ok {
        verify_against_kernel(&mut g, knqn, PORT, &lo, true);
    }
    g.shutdown().ok();
}
