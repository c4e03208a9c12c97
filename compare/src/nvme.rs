//! `nvme`: our user-space NVMe driver against the kernel's NVMe stack, same guest, same
//! emulated device, one boot of the testbed guest (testbed/run.sh: QEMU TCG, emulated
//! NVMe 1b36:0010), 4 KiB random reads on namespace 1 at each queue depth:
//!
//! - peer: fio 3.33 `--ioengine=io_uring --direct=1` on /dev/nvme0n1 (kernel nvme driver);
//! - ours: `nvme-perf -r 'trtype:PCIe traddr:ADDR ns:1'` (our driver over vfio-pci);
//! - a tool check: `nvme-perf -r 'trtype:kernel path:/dev/nvme0n1 engine:io_uring'`
//!   against fio on the same kernel path (same numbers expected from both tools);
//! - with `--baseline`, nvme-perf of that revision as a third side.
//!
//! Each round binds the controller to the kernel driver for fio and the tool check, and
//! to vfio-pci for our driver, the two phases alternating in order between rounds.
//! Values: IOPS, mean latency (us) and CPU time per I/O (us): fio's usr_cpu + sys_cpu
//! over its I/O count, nvme-perf's getrusage of its worker over its I/O count (a polling
//! driver burns its core whatever the load, so its CPU per I/O is 1/IOPS of that core).
//! The emulator (TCG) bounds every number here; the ratio is the point, not the values.

use std::fmt::Write as _;
use std::fs;

use crate::args::DepthOpts;
use crate::error::{Error, Result};
use crate::guest;
use crate::harness;
use crate::parse::{self, IoResult};
use crate::table::{Better, Side, Table};
use crate::Ctx;

/// The shared options; `spdk` is a built SPDK tree (build/bin/spdk_nvme_perf,
/// build/lib/libspdk_*.so), checked at parse time.
pub struct Opts(DepthOpts);

impl std::ops::Deref for Opts {
    type Target = DepthOpts;
    fn deref(&self) -> &DepthOpts {
        &self.0
    }
}

impl Opts {
    pub fn parse(args: &[String]) -> Result<Opts> {
        let o = DepthOpts::parse("nvme", args, None)?;
        if let Some(d) = &o.spdk {
            if !d.join(SPDK_PERF).is_file() {
                return Err(Error::Usage(format!(
                    "invalid value '{}' for --spdk: no {SPDK_PERF} there (build SPDK first)",
                    d.display()
                )));
            }
        }
        Ok(Opts(o))
    }
}

/// SPDK's perf tool inside a built SPDK tree.
const SPDK_PERF: &str = "build/bin/spdk_nvme_perf";

/// Which program a `@@BENCH` block holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Prog {
    Fio,
    Kernel,
    Ours,
    Base,
    Spdk,
}

impl Prog {
    fn tag(self) -> &'static str {
        match self {
            Prog::Fio => "fio",
            Prog::Kernel => "kernel",
            Prog::Ours => "ours",
            Prog::Base => "base",
            Prog::Spdk => "spdk",
        }
    }
}

/// The guest's shell script: `@@BENCH <round> <prog> <depth>` before each run.
fn guest_script(o: &Opts, rounds: usize, base: bool) -> String {
    // SPDK claims a device with a lock file in /var/tmp, and loads its libraries from its
    // build tree (copied to the same path by run.sh) or /fp/bin.
    let spdk_env = o.spdk.as_ref().map(|d| {
        format!(
            "LD_LIBRARY_PATH={}:/fp/bin OPENSSL_CONF=/fp/bin/openssl.cnf",
            d.join("build/lib").display()
        )
    });
    let s = o.seconds;
    let mut g = String::from(
        "n=0; until [ -e /dev/nvme0n1 ] || [ $n -ge 100 ]; do sleep 0.1; n=$((n+1)); done\n\
         A=$(ferroplane-devbind --status | grep 1b36:0010 | awk '{print $1}')\n\
         dd if=/dev/zero of=/dev/nvme0n1 bs=1M count=256 conv=fsync 2>/dev/null\n\
         kern() { ferroplane-devbind --bind=nvme $A >/dev/null; n=0; \
         until [ -e /dev/nvme0n1 ] || [ $n -ge 100 ]; do sleep 0.1; n=$((n+1)); done; }\n\
         vfio() { ferroplane-devbind --bind=vfio-pci $A >/dev/null; }\n\
         mkdir -p /var/tmp\n",
    );
    for r in 0..rounds {
        let kernel_first = r % 2 == 0;
        let mut vf: Vec<Prog> = vec![Prog::Ours];
        if base {
            vf.push(Prog::Base);
        }
        if o.spdk.is_some() {
            vf.insert(0, Prog::Spdk);
        }
        let vf = harness::round_order(&vf, r);
        let kernel = |g: &mut String| {
            g.push_str("kern\n");
            for d in &o.depths {
                let _ = writeln!(g, "echo '@@BENCH {r} fio {d}'");
                let _ = writeln!(
                    g,
                    "fio --name=rr --filename=/dev/nvme0n1 --ioengine=io_uring --direct=1 --rw=randread --bs=4k \
                     --iodepth={d} --time_based --runtime={s} --ramp_time=1 --output-format=json | tr -d '\\n'; echo"
                );
                let _ = writeln!(g, "echo '@@BENCH {r} kernel {d}'");
                let _ = writeln!(
                    g,
                    "nvme-perf -q {d} -o 4096 -w randread -t {s} -a 1 -s 32 -r 'trtype:kernel path:/dev/nvme0n1 engine:io_uring'"
                );
            }
        };
        let user = |g: &mut String| {
            g.push_str("vfio\n");
            for d in &o.depths {
                for p in &vf {
                    let bin = match (p, &spdk_env) {
                        (Prog::Base, _) => "nvme-perf-base".to_string(),
                        (Prog::Spdk, Some(env)) => format!("{env} spdk_nvme_perf"),
                        _ => "nvme-perf".to_string(),
                    };
                    let _ = writeln!(g, "echo '@@BENCH {r} {} {d}'", p.tag());
                    let _ = writeln!(
                        g,
                        "{bin} -q {d} -o 4096 -w randread -t {s} -a 1 -s 64 -r \"trtype:PCIe traddr:$A ns:1\" 2>&1"
                    );
                }
            }
        };
        if kernel_first {
            kernel(&mut g);
            user(&mut g);
        } else {
            user(&mut g);
            kernel(&mut g);
        }
    }
    g.push_str("echo '@@BENCH end'\n");
    g
}

/// Split the console log into `(round, prog, depth) -> lines`.
fn blocks(log: &str) -> Vec<((usize, Prog, u32), String)> {
    guest::blocks(log, |w| {
        let prog = match *w.get(1)? {
            "fio" => Prog::Fio,
            "kernel" => Prog::Kernel,
            "ours" => Prog::Ours,
            "base" => Prog::Base,
            "spdk" => Prog::Spdk,
            _ => return None,
        };
        Some((w.first()?.parse().ok()?, prog, w.get(2)?.parse().ok()?))
    })
}

/// The cases of one run against one peer (`group` names it): IOPS, mean latency and,
/// when known, CPU time per I/O.
fn record(t: &mut Table, round: usize, side: Side, d: u32, r: IoResult, group: &str) {
    t.record(
        round,
        side,
        &format!("qd{d} IOPS ({group})"),
        "IOPS",
        Better::Higher,
        r.iops,
    );
    t.record(
        round,
        side,
        &format!("qd{d} mean latency ({group})"),
        "us",
        Better::Lower,
        r.lat_us,
    );
    if let Some(c) = r.cpu_us {
        t.record(
            round,
            side,
            &format!("qd{d} CPU per I/O ({group})"),
            "us",
            Better::Lower,
            c,
        );
    }
}

const VS_FIO: &str = "vs fio, kernel";
const VS_SPDK: &str = "vs SPDK";
const TOOL_CHECK: &str = "nvme-perf on the kernel path vs fio: tool check";

pub fn run(ctx: &mut Ctx, o: &Opts) -> Result<Table> {
    harness::apt_need(&["fio"], &["fio"])?;
    ctx.build(&["nvme-perf", "ferroplane-devbind", "fp-devtest"])?;
    let work = ctx.work().to_path_buf();
    let img = work.join("ns1.img");
    let f =
        fs::File::create(&img).map_err(|e| Error::io(format!("create {}", img.display()), e))?;
    f.set_len(256 << 20)
        .map_err(|e| Error::io(format!("size {}", img.display()), e))?;
    let base = ctx.sides().contains(&Side::Base);
    let rounds = ctx.common.repeat;
    let log = work.join("console.log");
    let fio = which("fio")
        .ok_or_else(|| Error::Setup("fio is not on PATH after installing it".into()))?;
    let per_run = o.seconds + 15;
    let per_round = 3 + u64::from(base) + u64::from(o.spdk.is_some());
    let runs = rounds as u64 * o.depths.len() as u64 * per_round;
    let timeout = 300 + runs * per_run * 2;
    let mut cmd = guest::run_sh(&log, timeout);
    cmd.arg("--nvme-img")
        .arg(&img)
        .arg("--bin")
        .arg(&fio)
        .arg("--bin")
        .arg(ctx.bin(Side::Ours, "nvme-perf"));
    if let Some(d) = &o.spdk {
        // The perf binary and every SPDK library (some are dlopen'ed, so ldd misses
        // them); run.sh copies what ldd lists for each, found through LD_LIBRARY_PATH.
        cmd.arg("--bin").arg(d.join(SPDK_PERF));
        let lib = d.join("build/lib");
        let rd = fs::read_dir(&lib).map_err(|e| Error::io(format!("list {}", lib.display()), e))?;
        for e in rd.flatten() {
            // Shared objects only: the build tree also holds static archives, which
            // are no use in the guest (and ldd refuses them).
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("libspdk_") && n.contains(".so") {
                cmd.arg("--bin").arg(e.path());
            }
        }
        // Not an ELF file: copied as a plain file (run.sh's --bin runs ldd on it).
        cmd.arg("--file")
            .arg("/usr/lib/ssl/openssl.cnf:/fp/bin/openssl.cnf");
        let ld = std::env::var("LD_LIBRARY_PATH").unwrap_or_default();
        cmd.env("LD_LIBRARY_PATH", format!("{}:{ld}", lib.display()));
    }
    if base {
        let b = work.join("nvme-perf-base");
        fs::copy(ctx.bin(Side::Base, "nvme-perf"), &b)
            .map_err(|e| Error::io("copy the baseline's nvme-perf", e))?;
        cmd.arg("--bin").arg(&b);
    }
    harness::say(format!(
        "booting the testbed guest: {runs} runs of {} s (+1 s warm-up), timeout {timeout} s",
        o.seconds
    ));
    let text = guest::run(cmd, guest_script(o, rounds, base), &log, timeout, &work)?;
    let peer = if o.spdk.is_some() { "peer" } else { "fio" };
    let mut t = ctx.table(
        "nvme: 4 KiB random read, namespace 1, one core, QEMU TCG guest, emulated NVMe; peers: \
         fio io_uring on the kernel nvme driver, SPDK spdk_nvme_perf over vfio-pci (with --spdk)",
        peer,
    );
    for ((r, p, d), buf) in blocks(&text) {
        let (parsed, name) = match p {
            Prog::Fio => (parse::fio_json(&buf), "fio io_uring"),
            Prog::Kernel => (parse::nvme_perf(&buf), "nvme-perf (kernel path)"),
            Prog::Ours => (parse::nvme_perf(&buf), "ours nvme-perf (PCIe)"),
            Prog::Base => (parse::nvme_perf(&buf), "baseline nvme-perf (PCIe)"),
            Prog::Spdk => (parse::nvme_perf(&buf), "SPDK spdk_nvme_perf (PCIe)"),
        };
        let v = parsed.ok_or_else(|| Error::Side {
            side: format!("{name}, round {}, depth {d}", r + 1),
            why: "printed nothing parseable".into(),
            stderr: harness::tail(&buf, 15),
        })?;
        let tool_check = format!("qd{d} IOPS ({TOOL_CHECK})");
        match p {
            Prog::Fio => {
                record(&mut t, r, Side::Peer, d, v, VS_FIO);
                t.record(r, Side::Peer, &tool_check, "IOPS", Better::Higher, v.iops);
            }
            Prog::Kernel => t.record(r, Side::Ours, &tool_check, "IOPS", Better::Higher, v.iops),
            Prog::Spdk => record(&mut t, r, Side::Peer, d, v, VS_SPDK),
            Prog::Ours | Prog::Base => {
                let side = if p == Prog::Ours {
                    Side::Ours
                } else {
                    Side::Base
                };
                record(&mut t, r, side, d, v, VS_FIO);
                if o.spdk.is_some() {
                    record(&mut t, r, side, d, v, VS_SPDK);
                }
            }
        }
    }
    Ok(t)
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_alternates_phases_and_marks_runs() {
        let mut o = Opts(DepthOpts {
            seconds: 2,
            depths: vec![1, 32],
            spdk: None,
        });
        let g = guest_script(&o, 2, true);
        let marks: Vec<&str> = g.lines().filter(|l| l.contains("@@BENCH")).collect();
        assert_eq!(marks.len(), 2 * 2 * 4 + 1);
        assert!(!g.contains("spdk_nvme_perf"));
        // Round 0: kernel phase first; round 1: the vfio phase first, base before ours.
        let first0 = marks.iter().position(|l| l.contains("@@BENCH 0 ")).unwrap();
        assert!(marks[first0].contains(" fio 1"));
        let first1 = marks.iter().position(|l| l.contains("@@BENCH 1 ")).unwrap();
        assert!(marks[first1].contains(" base 1"), "{}", marks[first1]);
        assert!(g.contains("nvme-perf-base -q 32"));
        o.0.spdk = Some(std::path::PathBuf::from("/opt/spdk"));
        let g = guest_script(&o, 1, false);
        assert!(g.contains(
            "LD_LIBRARY_PATH=/opt/spdk/build/lib:/fp/bin OPENSSL_CONF=/fp/bin/openssl.cnf spdk_nvme_perf -q 1"
        ));
        assert_eq!(g.matches("@@BENCH 0 spdk").count(), 2);
    }

    #[test]
    fn blocks_split_by_marker() {
        let log = "boot\r\n@@BENCH 0 fio 1\r\n{json}\n@@BENCH 0 ours 1\nTotal : 1 2 3\n@@BENCH end\nafter\n";
        let b = blocks(log);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].0, (0, Prog::Fio, 1));
        assert_eq!(b[0].1, "{json}\n");
        assert_eq!(b[1].0, (0, Prog::Ours, 1));
        assert_eq!(b[1].1, "Total : 1 2 3\n");
    }
}
