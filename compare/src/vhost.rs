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
//!
//! `--variant-args ARGS` starts a second target of ours with other options (a third
//! disk, the table's third side) so two settings meet the daemon in one boot;
//! `--unpin ours|variant` lets every thread of that target run on every cpu (taskset
//! after the start: the EAL pins each lcore to one cpu). For our targets the kicks read
//! and calls written per I/O come from `vhost_get_controllers`. `--strace` adds one
//! untimed round per server at the end under `strace -c -f` (randread, each depth):
//! system calls per I/O, with reads and writes (the eventfd kicks and calls) apart.

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
    /// A second target of ours with these arguments (the third side).
    variant_args: Option<Vec<String>>,
    /// Our targets whose threads may run on every cpu.
    unpin: Vec<Side>,
    /// One untimed round per server under strace -c.
    strace: bool,
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
            variant_args: None,
            unpin: Vec::new(),
            strace: false,
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
                "--variant-args" => {
                    let v = crate::args::value(&mut it, "--variant-args")?;
                    o.variant_args = Some(v.split_whitespace().map(str::to_string).collect());
                }
                "--unpin" => match crate::args::value(&mut it, "--unpin")? {
                    "ours" => o.unpin.push(Side::Ours),
                    "variant" => o.unpin.push(Side::Base),
                    v => {
                        return Err(Error::Usage(format!(
                            "vhost: --unpin '{v}': ours or variant"
                        )))
                    }
                },
                "--strace" => o.strace = true,
                _ => return Err(crate::args::unknown_arg(Some("vhost"), a)),
            }
        }
        if o.unpin.contains(&Side::Base) && o.variant_args.is_none() {
            return Err(Error::Usage(
                "vhost: --unpin variant needs --variant-args".into(),
            ));
        }
        Ok(o)
    }
}

/// Our bdevs' names (ours, the variant): also the disks' serials in the guest (the
/// target answers GET_ID with it), which tell the disks apart.
const BDEVS: [&str; 2] = ["Uring0", "Uring1"];

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
    let mut ours = vec![(Side::Ours, start_ours(ctx, o, &o.tgt_args, 0)?)];
    if let Some(v) = &o.variant_args {
        ours.push((Side::Base, start_ours(ctx, o, v, 1)?));
    }
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
    let mut qemu_args = Vec::new();
    for i in 0..ours.len() {
        let id = format!("vb{i}");
        qemu_args.extend(disk(&id, &work.join(&id)));
    }
    qemu_args.extend(disk("vq", &qsd.sock));
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
        &format!(
            "fp-modprobe virtio_pci virtio_blk && for i in $(seq 50); do \
             [ $(ls -d /sys/block/vd* 2>/dev/null | wc -l) -ge {} ] && break; sleep 0.2; done; \
             for d in /sys/block/vd*; do echo ${{d##*/}} $(cat $d/serial); done",
            ours.len() + 1
        ),
        120,
    )?;
    // Our disks by serial; the daemon's is the one whose serial is none of ours.
    let dev_where = |want: &dyn Fn(Option<&str>) -> bool, what: &str| -> Result<String> {
        out.lines()
            .filter(|l| l.starts_with("vd"))
            .find(|l| want(l.split_whitespace().nth(1)))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_string)
            .ok_or_else(|| Error::Setup(format!("vhost: no guest disk for {what}: {out}")))
    };
    let mut servers = vec![Server {
        side: Side::Peer,
        dev: dev_where(&|s| s.is_none_or(|s| !BDEVS.contains(&s)), "the daemon")?,
        pid: qsd.child.id(),
        rpc: None,
    }];
    for (i, (side, t)) in ours.iter().enumerate() {
        servers.push(Server {
            side: *side,
            dev: dev_where(&|s| s == Some(BDEVS[i]), BDEVS[i])?,
            pid: t.child.id(),
            rpc: Some(t.sock.clone()),
        });
    }
    let load = |when: &str| {
        let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        harness::say(format!("vhost: load average {when}: {}", l.trim()));
    };
    load("before");
    let peer = "qemu-storage-daemon (QEMU 7.2)".to_string();
    let variant = o
        .variant_args
        .as_ref()
        .map(|v| format!("ours ({})", v.join(" ")));
    let mut t = Table::new(
        format!(
            "vhost: {peer} vs ferroplane-tgt ({}), one file ({}) through io_uring with O_DIRECT on all, fio libaio 4 KiB in one QEMU TCG guest",
            o.tgt_args.join(" "),
            o.file.display()
        ),
        peer.clone(),
        variant,
    );
    let sides: Vec<Side> = servers.iter().map(|s| s.side).collect();
    let rpc_bin = ctx.bin(Side::Ours, "ferroplane-rpc");
    for round in 0..ctx.common.repeat {
        for side in harness::round_order(&sides, round) {
            let srv = servers
                .iter()
                .find(|s| s.side == side)
                .expect("a server per side");
            harness::say(format!(
                "round {}/{}: {}",
                round + 1,
                ctx.common.repeat,
                side_label(side, &peer)
            ));
            for w in &o.workloads {
                for &d in &o.depths {
                    let c0 = cpu_ticks(srv.pid);
                    let q0 = srv.queue_counters(&rpc_bin)?;
                    let out = crate::guest::sh(
                        &mut g,
                        &fio_cmd(&srv.dev, w, d, o.seconds),
                        o.seconds + 180,
                    )?;
                    let c1 = cpu_ticks(srv.pid);
                    let q1 = srv.queue_counters(&rpc_bin)?;
                    std::fs::write(ctx.out(&format!("fio-{w}-q{d}"), side, round), &out)
                        .map_err(|e| Error::io("keep fio's output", e))?;
                    let r = fio_result(&out, w, &srv.dev)?;
                    let case = format!("{w} 4KiB qd{d}");
                    let mut rec = |what: &str, unit: &'static str, better: Better, v: f64| {
                        t.record(round, side, &format!("{case} {what}"), unit, better, v)
                    };
                    rec("IOPS", "IOPS", Better::Higher, r.iops);
                    rec("mean latency", "us", Better::Lower, r.lat_us);
                    rec("p50 latency", "us", Better::Lower, r.p50_us);
                    rec("p99 latency", "us", Better::Lower, r.p99_us);
                    let ios = r.iops * o.seconds as f64;
                    if let (Some(a), Some(b)) = (c0, c1) {
                        let cpu_s = b.saturating_sub(a) as f64 / clk_tck();
                        rec("server CPU per I/O", "us", Better::Lower, cpu_s * 1e6 / ios);
                    }
                    if let (Some(a), Some(b)) = (q0, q1) {
                        harness::say(format!(
                            "vhost: {} {case}: {:.2} kicks, {:.2} calls per I/O",
                            side_label(side, &peer),
                            b.0.saturating_sub(a.0) as f64 / ios,
                            b.1.saturating_sub(a.1) as f64 / ios
                        ));
                    }
                }
            }
        }
    }
    load("after");
    if o.strace {
        for srv in &servers {
            for &d in &o.depths {
                strace_round(ctx, &mut g, srv, d, o.seconds, &side_label(srv.side, &peer))?;
            }
        }
    }
    drop(g);
    drop(qsd);
    drop(ours);
    let _ = std::fs::remove_file(&o.file);
    Ok(t)
}

/// One server as the rounds see it.
struct Server {
    side: Side,
    /// Its disk in the guest.
    dev: String,
    pid: u32,
    /// Its RPC socket (ours only).
    rpc: Option<PathBuf>,
}

impl Server {
    /// Kicks and calls over every queue of every controller (ours only).
    fn queue_counters(&self, rpc_bin: &Path) -> Result<Option<(u64, u64)>> {
        let Some(sock) = &self.rpc else {
            return Ok(None);
        };
        let mut cmd = Command::new(rpc_bin);
        cmd.arg("-s").arg(sock).arg("vhost_get_controllers");
        let out = harness::sh("ferroplane-tgt: rpc vhost_get_controllers", &mut cmd)?;
        let j: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| Error::Setup(format!("vhost_get_controllers answered '{out}': {e}")))?;
        let (mut kicks, mut calls) = (0, 0);
        let queues = j
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["sessions"].as_array())
            .flatten()
            .filter_map(|s| s["queue_requests"].as_array())
            .flatten();
        for q in queues {
            kicks += q["kicks"].as_u64().unwrap_or(0);
            calls += q["calls"].as_u64().unwrap_or(0);
        }
        Ok(Some((kicks, calls)))
    }
}

fn side_label(side: Side, peer: &str) -> String {
    match side {
        Side::Peer => peer.to_string(),
        Side::Ours => "ours".into(),
        Side::Base => "ours (variant)".into(),
    }
}

/// Start one target of ours with `args`, a uring bdev `BDEVS[i]` on the file and
/// controller `vb{i}` on it.
fn start_ours(ctx: &Ctx, o: &Opts, args: &[String], i: usize) -> Result<Target> {
    let work = ctx.work().to_path_buf();
    let rpc_bin = ctx.bin(Side::Ours, "ferroplane-rpc");
    let sock = work.join(format!("tgt{i}.sock"));
    let mut cmd = Command::new(ctx.bin(Side::Ours, "ferroplane-tgt"));
    cmd.args(args)
        .args(["--no-huge", "-s", "256", "--no-pci", "--file-prefix"])
        .arg(format!("fpcmpvhost{}x{i}", std::process::id()))
        .arg("-r")
        .arg(&sock)
        .arg("-S")
        .arg(&work);
    let t = start(
        &mut cmd,
        sock,
        "ferroplane-tgt",
        &work.join(format!("tgt{i}.log")),
    )?;
    let side = if i == 0 { Side::Ours } else { Side::Base };
    if o.unpin.contains(&side) {
        // Every thread of the process (-a) on every cpu the machine has.
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mask = format!("0-{}", n - 1);
        harness::sh(
            "taskset: unpin our target",
            Command::new("taskset")
                .args(["-a", "-c", "-p", &mask])
                .arg(t.child.id().to_string()),
        )?;
    }
    let file = o.file.display().to_string();
    let end = Instant::now() + Duration::from_secs(30);
    // The target answers RPCs before its subsystems are up: retry the first call.
    loop {
        let args = ["bdev_uring_create", &file, BDEVS[i], "4096"];
        match rpc(&rpc_bin, &t.sock, &args, "ferroplane-tgt") {
            Ok(()) => break,
            Err(e) if Instant::now() > end => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    let name = format!("vb{i}");
    rpc(
        &rpc_bin,
        &t.sock,
        &["vhost_create_blk_controller", &name, BDEVS[i]],
        "ferroplane-tgt",
    )?;
    Ok(t)
}

fn fio_cmd(dev: &str, w: &str, depth: u32, seconds: u64) -> String {
    format!(
        "fio --name=b --filename=/dev/{dev} --direct=1 --ioengine=libaio \
         --rw={w} --bs=4k --iodepth={depth} --runtime={seconds} --time_based \
         --randrepeat=0 --output-format=json --output=/tmp/f.json >/dev/null \
         && tr -d '\\n' < /tmp/f.json; echo"
    )
}

fn fio_result(out: &str, w: &str, dev: &str) -> Result<parse::FioDir> {
    let dir = if w.contains("read") { "read" } else { "write" };
    parse::fio_json_dir(out, dir)
        .filter(|r| r.iops > 0.0)
        .ok_or_else(|| Error::Side {
            side: format!("fio on {dev}"),
            why: "printed no result".into(),
            stderr: harness::tail(out, 15),
        })
}

/// One untimed randread at `depth` on `srv` with `strace -c -f` attached to the server:
/// system calls per I/O, in total and for read, write and io_uring_enter.
fn strace_round(
    ctx: &Ctx,
    g: &mut Guest,
    srv: &Server,
    depth: u32,
    seconds: u64,
    label: &str,
) -> Result<()> {
    let file = ctx.out(&format!("strace-q{depth}"), srv.side, 0);
    let mut st = Command::new("strace")
        .args(["-c", "-f", "-o"])
        .arg(&file)
        .arg("-p")
        .arg(srv.pid.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| Error::io("start strace", e))?;
    // strace attaches asynchronously; give it a moment before the I/O starts.
    std::thread::sleep(Duration::from_millis(500));
    let res = crate::guest::sh(
        g,
        &fio_cmd(&srv.dev, "randread", depth, seconds),
        seconds + 300,
    );
    // SAFETY: kill(2) on our own child's pid, which we have not waited for yet.
    unsafe { libc::kill(st.id() as i32, libc::SIGINT) };
    let _ = st.wait();
    let r = fio_result(&res?, "randread", &srv.dev)?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| Error::io(format!("read {}", file.display()), e))?;
    let ios = r.iops * seconds as f64;
    let calls = |name: &str| {
        text.lines()
            .map(str::split_whitespace)
            .filter_map(|f| {
                let f: Vec<&str> = f.collect();
                (f.last() == Some(&name))
                    .then(|| f.get(f.len().checked_sub(2)?)?.parse::<f64>().ok())?
            })
            .next()
            .unwrap_or(0.0)
    };
    // "total" lines hold calls before "total", and an errors column may be empty.
    let total = text
        .lines()
        .find(|l| l.trim_end().ends_with("total"))
        .and_then(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(3).and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    harness::say(format!(
        "vhost strace: {label} randread qd{depth}: {:.0} IOPS under strace, per I/O: {:.2} syscalls \
         ({:.2} read, {:.2} write, {:.2} io_uring_enter, {:.2} epoll_wait, {:.2} ppoll); {}",
        r.iops,
        total / ios,
        calls("read") / ios,
        calls("write") / ios,
        calls("io_uring_enter") / ios,
        calls("epoll_wait") / ios,
        calls("ppoll") / ios,
        file.display()
    ));
    Ok(())
}
