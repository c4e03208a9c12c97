//! `vhost`: our vhost-user-blk target against QEMU's `qemu-storage-daemon`, both
//! exporting the same file to one QEMU guest (the testbed crate boots it: TCG, guest
//! memory in a shared memfd), fio inside that one boot:
//!
//! - peer: `qemu-storage-daemon --blockdev driver=file,cache.direct=on,aio=io_uring
//!   --export type=vhost-user-blk` on the file;
//! - ours: `ferroplane-tgt` (`-m 0x1` unless `--tgt-args`) with `bdev_uring_create` on
//!   the same file and `vhost_create_blk_controller`.
//!
//! Both open the file with O_DIRECT and submit through io_uring; the file is on tmpfs
//! by default (`--file`), so the disk is memory and the servers' own cost shows. Each
//! case is fio `--direct=1 --ioengine=libaio --bs=4k` at one depth, on each side's
//! disk in turn (the order alternating between rounds). Values: IOPS, guest-side mean,
//! median and 99th-percentile completion latency (us), and the server process's CPU
//! time per I/O (us: utime + stime from /proc over the run over the I/Os; a polling
//! reactor burns its core whatever the load). The emulator bounds every number;
//! the ratio is the point.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use testbed::{Guest, GuestOptions};

use crate::daemon::{clk_tck, cpu_ticks, rpc, start, start_until, Ready, Target};
use crate::error::{Error, Result};
use crate::harness;
use crate::parse;
use crate::table::{Better, Side, Table};
use crate::Ctx;

pub struct Opts {
    seconds: u64,
    depths: Vec<u32>,
    workloads: Vec<String>,
    file: PathBuf,
    size_mib: u64,
    /// Replaces `-m 0x1` on our target's command line (core placement, `--poll-mode`).
    tgt_args: Vec<String>,
}

impl Opts {
    pub fn parse(args: &[String]) -> Result<Opts> {
        let mut o = Opts {
            seconds: 5,
            depths: vec![1, 32],
            workloads: vec!["randread".into(), "randwrite".into()],
            file: PathBuf::from("/dev/shm/fp-compare-vhost.img"),
            size_mib: 256,
            tgt_args: vec!["-m".into(), "0x1".into()],
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--seconds" => o.seconds = crate::args::number_arg(&mut it, a, 1, 600)?,
                "--depths" => o.depths = crate::args::number_list(&mut it, a, 1u32, 1024)?,
                "--workloads" => {
                    let v = crate::args::value(&mut it, "--workloads")?;
                    o.workloads = v.split(',').map(str::to_string).collect();
                    if let Some(w) = o.workloads.iter().find(|w| {
                        !matches!(w.as_str(), "randread" | "randwrite" | "read" | "write")
                    }) {
                        return Err(Error::Usage(format!(
                            "vhost: unknown workload '{w}': read, write, randread or randwrite"
                        )));
                    }
                }
                "--file" => o.file = PathBuf::from(crate::args::value(&mut it, "--file")?),
                "--size-mib" => {
                    let v = crate::args::value(&mut it, "--size-mib")?;
                    o.size_mib = crate::args::number("--size-mib", v, 16, 4096)?;
                }
                "--tgt-args" => {
                    let v = crate::args::value(&mut it, "--tgt-args")?;
                    o.tgt_args = v.split_whitespace().map(str::to_string).collect();
                }
                _ => return Err(crate::args::unknown_arg(Some("vhost"), a)),
            }
        }
        Ok(o)
    }
}

/// Our bdev's name: also the disk's serial in the guest (the target answers GET_ID
/// with it), which tells the two disks apart.
const BDEV: &str = "Uring0";

/// The shared file, filled with a pattern so reads touch real pages on both sides.
fn make_file(path: &Path, mib: u64) -> Result<()> {
    let mut f = std::fs::File::create(path)
        .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    let chunk: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i * 31 % 251) as u8 | 1)
        .collect();
    for _ in 0..mib {
        f.write_all(&chunk)
            .map_err(|e| Error::io(format!("fill {}", path.display()), e))?;
    }
    Ok(())
}

fn start_qsd(file: &Path, sock: &Path, log: &Path) -> Result<Target> {
    let mut cmd = Command::new("qemu-storage-daemon");
    cmd.arg("--blockdev")
        .arg(format!(
            "driver=file,node-name=f0,filename={},cache.direct=on,aio=io_uring",
            file.display()
        ))
        .arg("--export")
        .arg(format!(
            "type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path={},writable=on,num-queues=1",
            sock.display()
        ));
    start_until(
        &mut cmd,
        sock.to_path_buf(),
        "qemu-storage-daemon",
        log,
        Ready::Exists,
    )
}

pub fn run(ctx: &mut Ctx, o: &Opts) -> Result<Table> {
    if ctx.common.baseline.is_some() {
        return Err(Error::Usage(
            "vhost: --baseline is not supported (one guest serves two disks)".into(),
        ));
    }
    harness::apt_need(
        &["fio", "qemu-storage-daemon", "qemu-system-x86_64"],
        &["fio", "qemu-system-common", "qemu-system-x86"],
    )?;
    testbed::can_boot().map_err(|e| Error::Setup(format!("vhost: no guest: {e}")))?;
    ctx.build(&["ferroplane-tgt", "ferroplane-rpc"])?;
    harness::say(format!(
        "vhost: filling {} ({} MiB)",
        o.file.display(),
        o.size_mib
    ));
    make_file(&o.file, o.size_mib)?;
    let work = ctx.work().to_path_buf();
    let rpc_bin = ctx.bin(Side::Ours, "ferroplane-rpc");
    let sock = work.join("tgt.sock");
    let mut cmd = Command::new(ctx.bin(Side::Ours, "ferroplane-tgt"));
    cmd.args(&o.tgt_args)
        .args(["--no-huge", "-s", "256", "--no-pci", "--file-prefix"])
        .arg(format!("fpcmpvhost{}", std::process::id()))
        .arg("-r")
        .arg(&sock)
        .arg("-S")
        .arg(&work);
    let ours = start(&mut cmd, sock, "ferroplane-tgt", &work.join("tgt.log"))?;
    let file = o.file.display().to_string();
    let end = Instant::now() + Duration::from_secs(30);
    // The target answers RPCs before its subsystems are up: retry the first call.
    loop {
        let args = ["bdev_uring_create", &file, BDEV, "4096"];
        match rpc(&rpc_bin, &ours.sock, &args, "ferroplane-tgt") {
            Ok(()) => break,
            Err(e) if Instant::now() > end => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    rpc(
        &rpc_bin,
        &ours.sock,
        &["vhost_create_blk_controller", "vb0", BDEV],
        "ferroplane-tgt",
    )?;
    let qsd = start_qsd(&o.file, &work.join("qsd.sock"), &work.join("qsd.log"))?;
    let fio = PathBuf::from("/usr/bin/fio");
    let disk = |id: &str, path: &Path| {
        [
            "-chardev".to_string(),
            format!("socket,id={id},path={}", path.display()),
            "-device".to_string(),
            format!("vhost-user-blk-pci,chardev={id},num-queues=1"),
        ]
    };
    let mut qemu_args = disk("vb0", &work.join("vb0")).to_vec();
    qemu_args.extend(disk("vb1", &qsd.sock));
    harness::say("vhost: booting the guest (QEMU TCG)");
    let mut g = Guest::boot(&GuestOptions {
        memfd: true,
        mem_mb: 512,
        files: vec![(fio, "/fp/bin/fio".into())],
        qemu_args,
        log: work.join("guest.log"),
        ..Default::default()
    })
    .map_err(|e| Error::Setup(format!("vhost: guest boot: {e}")))?;
    let out = crate::guest::sh(
        &mut g,
        "fp-modprobe virtio_pci virtio_blk && for i in $(seq 50); do [ -b /dev/vdb ] && break; \
         sleep 0.2; done; for d in vda vdb; do echo $d $(cat /sys/block/$d/serial); done",
        120,
    )?;
    let ours_dev = out
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(BDEV))
        .and_then(|l| l.split_whitespace().next())
        .ok_or_else(|| Error::Setup(format!("vhost: no guest disk with serial {BDEV}: {out}")))?
        .to_string();
    let peer_dev = if ours_dev == "vda" { "vdb" } else { "vda" };
    let load = |when: &str| {
        let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        harness::say(format!("vhost: load average {when}: {}", l.trim()));
    };
    load("before");
    let peer = "qemu-storage-daemon (QEMU 7.2)".to_string();
    let mut t = ctx.table(
        format!(
            "vhost: {peer} vs ferroplane-tgt ({}), one file ({}) through io_uring with O_DIRECT on both, fio libaio 4 KiB in one QEMU TCG guest",
            o.tgt_args.join(" "),
            o.file.display()
        ),
        peer.clone(),
    );
    for round in 0..ctx.common.repeat {
        for side in harness::round_order(&[Side::Peer, Side::Ours], round) {
            crate::ring::say_round(ctx, round, side, &peer);
            let (dev, pid) = match side {
                Side::Peer => (peer_dev, qsd.child.id()),
                _ => (ours_dev.as_str(), ours.child.id()),
            };
            for w in &o.workloads {
                for &d in &o.depths {
                    let cmd = format!(
                        "fio --name=b --filename=/dev/{dev} --direct=1 --ioengine=libaio \
                         --rw={w} --bs=4k --iodepth={d} --runtime={} --time_based \
                         --randrepeat=0 --output-format=json --output=/tmp/f.json >/dev/null \
                         && tr -d '\\n' < /tmp/f.json; echo",
                        o.seconds
                    );
                    let c0 = cpu_ticks(pid);
                    let out = crate::guest::sh(&mut g, &cmd, o.seconds + 180)?;
                    let c1 = cpu_ticks(pid);
                    std::fs::write(ctx.out(&format!("fio-{w}-q{d}"), side, round), &out)
                        .map_err(|e| Error::io("keep fio's output", e))?;
                    let dir = if w.contains("read") { "read" } else { "write" };
                    let r = parse::fio_json_dir(&out, dir)
                        .filter(|r| r.iops > 0.0)
                        .ok_or_else(|| Error::Side {
                            side: format!("fio on {dev}"),
                            why: "printed no result".into(),
                            stderr: harness::tail(&out, 15),
                        })?;
                    let case = format!("{w} 4KiB qd{d}");
                    let mut rec = |what: &str, unit: &'static str, better: Better, v: f64| {
                        t.record(round, side, &format!("{case} {what}"), unit, better, v)
                    };
                    rec("IOPS", "IOPS", Better::Higher, r.iops);
                    rec("mean latency", "us", Better::Lower, r.lat_us);
                    rec("p50 latency", "us", Better::Lower, r.p50_us);
                    rec("p99 latency", "us", Better::Lower, r.p99_us);
                    if let (Some(a), Some(b)) = (c0, c1) {
                        let ios = r.iops * o.seconds as f64;
                        let cpu_s = b.saturating_sub(a) as f64 / clk_tck();
                        rec("server CPU per I/O", "us", Better::Lower, cpu_s * 1e6 / ios);
                    }
                }
            }
        }
    }
    load("after");
    drop(g);
    drop(qsd);
    drop(ours);
    let _ = std::fs::remove_file(&o.file);
    Ok(t)
}
