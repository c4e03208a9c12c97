//! The shared harness: installing peers, hugepages (reserve, check before each run,
//! remove DPDK's leftovers, restore), network namespaces, building our apps (now and at
//! `--baseline REV`), running a side with captured output and an error that names it.
//!
//! Everything set up here is undone by `Drop`, so an error part-way through still
//! restores the hugepage reservation, deletes the namespace and removes the baseline's
//! worktree.

use std::fs;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

const HP_DIR: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB";
const HP_MOUNT: &str = "/dev/hugepages";

/// Progress lines go to stderr, the table to stdout.
pub fn say(msg: impl AsRef<str>) {
    eprintln!("== {}", msg.as_ref());
}

/// Is this process root? (Hugepages, namespaces and apt need it.)
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

pub fn need_root(what: &str) -> Result<()> {
    if is_root() {
        Ok(())
    } else {
        Err(Error::Setup(format!(
            "{what} needs root (hugepages, network namespaces, apt-get): run it with sudo"
        )))
    }
}

fn tool_exists(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// Run a setup command, failing with its stderr.
pub fn sh(what: &str, cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("start {what}"), e))?;
    if !out.status.success() {
        return Err(Error::Setup(format!(
            "failed to {what} ({}): {}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 20)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(n)..].join("\n")
}

/// Install Debian packages whose `tools` are missing: one `apt-get update`, then install.
pub fn apt_need(tools: &[&str], packages: &[&str]) -> Result<()> {
    if tools.iter().all(|t| tool_exists(t)) {
        return Ok(());
    }
    need_root("installing packages")?;
    say(format!("installing {} (apt-get)", packages.join(" ")));
    sh(
        "apt-get update",
        Command::new("apt-get").args(["update", "-qq"]),
    )?;
    sh(
        &format!("apt-get install -y {}", packages.join(" ")),
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    match tools.iter().find(|t| !tool_exists(t)) {
        Some(t) => Err(Error::Setup(format!(
            "{t} is still missing after installing {}",
            packages.join(" ")
        ))),
        None => Ok(()),
    }
}

/// Debian's DPDK (dpdk-test and dpdk-testpmd are in dpdk-dev); returns its version.
pub fn dpdk_need() -> Result<String> {
    apt_need(&["dpdk-test", "dpdk-testpmd"], &["dpdk", "dpdk-dev"])?;
    let v = sh(
        "read DPDK's version",
        Command::new("dpkg-query").args(["-W", "-f=${Version}", "dpdk"]),
    )
    .unwrap_or_default();
    Ok(format!("DPDK {}", v.split('-').next().unwrap_or("?")))
}

fn hp_read(f: &str) -> Result<u64> {
    let p = format!("{HP_DIR}/{f}");
    let s = fs::read_to_string(&p).map_err(|e| Error::io(format!("read {p}"), e))?;
    s.trim()
        .parse()
        .map_err(|_| Error::Setup(format!("unexpected content '{}' in {p}", s.trim())))
}

fn hp_write_nr(n: u64) -> Result<()> {
    let p = format!("{HP_DIR}/nr_hugepages");
    fs::write(&p, format!("{n}\n")).map_err(|e| Error::io(format!("write {p}"), e))
}

fn is_mountpoint(p: &str) -> bool {
    fs::read_to_string("/proc/mounts")
        .map(|m| m.lines().any(|l| l.split_whitespace().nth(1) == Some(p)))
        .unwrap_or(false)
}

/// 2 MiB hugepages and hugetlbfs on /dev/hugepages (DPDK's default) for the run; restored
/// on drop (unless kept). Every `--file-prefix` handed out is remembered, and the
/// hugepage files and runtime directory of each are removed after every run: DPDK leaves
/// them behind, and they would starve the next process.
pub struct HugePages {
    old_nr: Option<u64>,
    mounted: bool,
    keep: bool,
    prefixes: Vec<String>,
    serial: u32,
}

impl HugePages {
    /// Make sure `need` pages are free (raising nr_hugepages by what is missing) and
    /// hugetlbfs is mounted.
    pub fn reserve(need: u64, keep: bool) -> Result<HugePages> {
        need_root("reserving hugepages")?;
        let mut hp = HugePages {
            old_nr: None,
            mounted: false,
            keep,
            prefixes: Vec::new(),
            serial: 0,
        };
        if !is_mountpoint(HP_MOUNT) {
            fs::create_dir_all(HP_MOUNT).map_err(|e| Error::io(format!("create {HP_MOUNT}"), e))?;
            sh(
                "mount hugetlbfs on /dev/hugepages",
                Command::new("mount").args(["-t", "hugetlbfs", "nodev", HP_MOUNT]),
            )?;
            hp.mounted = true;
        }
        hp.ensure_free(need, "the comparison")?;
        Ok(hp)
    }

    /// Before a run: at least `need` free pages, raising the reservation if short; the
    /// error names `who`, the side about to run.
    pub fn ensure_free(&mut self, need: u64, who: &str) -> Result<()> {
        let free = hp_read("free_hugepages")?;
        if free >= need {
            return Ok(());
        }
        let nr = hp_read("nr_hugepages")?;
        self.old_nr.get_or_insert(nr);
        let _ = hp_write_nr(nr + need - free);
        let free = hp_read("free_hugepages")?;
        if free < need {
            return Err(Error::Setup(format!(
                "{who}: only {free} free 2 MiB hugepages, {need} needed (others may hold them: \
                 ls /dev/hugepages; free memory and retry)"
            )));
        }
        Ok(())
    }

    /// A fresh EAL `--file-prefix`, remembered for cleanup.
    pub fn prefix(&mut self, side: &str) -> String {
        self.serial += 1;
        let p = format!("fpcmp{}{side}{}", std::process::id(), self.serial);
        self.prefixes.push(p.clone());
        p
    }

    /// Remove the hugepage files (`<prefix>map_*`) and runtime directories
    /// (/var/run/dpdk/<prefix>) of every prefix this run handed out.
    pub fn clean_leftovers(&self) {
        if let Ok(rd) = fs::read_dir(HP_MOUNT) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if self.prefixes.iter().any(|p| {
                    n.strip_prefix(p.as_str())
                        .is_some_and(|r| r.starts_with("map_"))
                }) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        for p in &self.prefixes {
            let _ = fs::remove_dir_all(Path::new("/var/run/dpdk").join(p));
        }
    }
}

impl Drop for HugePages {
    fn drop(&mut self) {
        self.clean_leftovers();
        if self.keep {
            return;
        }
        if self.mounted {
            let _ = Command::new("umount").arg(HP_MOUNT).status();
        }
        if let Some(n) = self.old_nr {
            let _ = hp_write_nr(n);
        }
    }
}

/// A network namespace with veth pairs, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(veths: &[(&str, &str)]) -> Result<Netns> {
        need_root("a network namespace")?;
        let name = format!("fp-compare-{}", std::process::id());
        sh(
            "create a network namespace",
            Command::new("ip").args(["netns", "add", &name]),
        )?;
        let ns = Netns { name };
        let mut script = String::from(
            "ip link set lo up; sysctl -qw net.ipv6.conf.all.disable_ipv6=1; \
             sysctl -qw net.ipv6.conf.default.disable_ipv6=1;",
        );
        // Interface indices 0x100 + 2i and 0x8100 + 2i: DPDK 22.11's net_af_packet names
        // its fanout group (pid ^ ifindex) & 0xffff, and two of its processes started
        // one after the other (pids a few apart) on the two ends of a pair with adjacent
        // indices often computed the same id for different interfaces, which the kernel
        // refuses (PACKET_FANOUT: EINVAL). Indices that differ in bit 15 cannot collide
        // for pids less than 32768 apart.
        for (i, (a, b)) in veths.iter().enumerate() {
            let (ia, ib) = (0x100 + 2 * i, 0x8100 + 2 * i);
            script += &format!(
                " ip link add {a} index {ia} type veth peer name {b} index {ib} && ip link set {a} up && ip link set {b} up;"
            );
        }
        sh(
            "create the veth pair",
            Command::new("ip").args(["netns", "exec", &ns.name, "sh", "-ec", &script]),
        )?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// The repository root (this crate lives in `<root>/compare`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Release build of `bins` of ferroplane-apps in `tree` (target dir `target`, or the
/// default); returns the directory holding them.
/// Programs that are examples of a library crate (built with `--example`, found under
/// `release/examples/`), with their package.
pub const EXAMPLES: &[(&str, &str)] = &[("msg_perf", "ferroplane-framework")];

pub fn build_apps(
    tree: &Path,
    target: Option<&Path>,
    bins: &[&str],
    label: &str,
) -> Result<PathBuf> {
    say(format!("building {} ({label}, release)", bins.join(" ")));
    let mut c = Command::new("cargo");
    c.current_dir(tree)
        .args(["build", "--release", "-q", "-p", "ferroplane-apps"]);
    // The guest-side test programs are binaries of the testbed crate (of the apps crate
    // in older trees, which the baseline may be).
    if bins
        .iter()
        .any(|b| tree.join(format!("testbed/src/bin/{b}.rs")).exists())
    {
        c.args(["-p", "ferroplane-testbed"]);
    }
    // bdevperf is a package of its own.
    if bins.contains(&"bdevperf") && tree.join("bdevperf/Cargo.toml").exists() {
        c.args(["-p", "ferroplane-bdevperf"]);
    }
    // The storage target and the RPC client live in their own packages.
    for (bin, pkg) in [
        ("ferroplane-tgt", "ferroplane-tgt"),
        ("ferroplane-rpc", "ferroplane-jsonrpc"),
    ] {
        if bins.contains(&bin) {
            c.args(["-p", pkg]);
        }
    }
    for b in bins {
        match EXAMPLES.iter().find(|(name, _)| name == b) {
            Some((name, pkg)) => c.args(["-p", pkg, "--example", name]),
            None => c.args(["--bin", b]),
        };
    }
    let target = match target {
        Some(t) => {
            c.env("CARGO_TARGET_DIR", t);
            t.to_path_buf()
        }
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| tree.join("target")),
    };
    let st = c.status().map_err(|e| Error::io("start cargo build", e))?;
    if !st.success() {
        return Err(Error::Setup(format!(
            "failed to build {} for {label} ({st})",
            bins.join(" ")
        )));
    }
    Ok(target.join("release"))
}

/// Our apps at an earlier revision: a detached `git worktree` under /tmp with its own
/// target directory (or `--baseline-target DIR`, kept), both removed on drop.
pub struct Baseline {
    pub rev: String,
    pub bin_dir: PathBuf,
    tree: PathBuf,
    target: PathBuf,
    keep_target: bool,
}

impl Baseline {
    pub fn build(rev: &str, target: Option<&Path>, bins: &[&str]) -> Result<Baseline> {
        let root = repo_root();
        let tree = std::env::temp_dir().join(format!("fp-compare-base-{}", std::process::id()));
        sh(
            &format!("check out '{rev}' in a git worktree"),
            Command::new("git")
                .current_dir(&root)
                .args(["worktree", "add", "--detach", "-q"])
                .arg(&tree)
                .arg(rev),
        )?;
        let keep_target = target.is_some();
        let target = target.map_or_else(|| tree.join("target"), Path::to_path_buf);
        let mut b = Baseline {
            rev: rev.to_string(),
            bin_dir: PathBuf::new(),
            tree,
            target,
            keep_target,
        };
        b.bin_dir = build_apps(&b.tree, Some(&b.target), bins, &format!("ours@{rev}"))?;
        Ok(b)
    }

    pub fn label(&self) -> String {
        format!("ours@{}", self.rev)
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = Command::new("git")
            .current_dir(repo_root())
            .args(["worktree", "remove", "--force"])
            .arg(&self.tree)
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(&self.tree);
        if !self.keep_target {
            let _ = fs::remove_dir_all(&self.target);
        }
        let _ = Command::new("git")
            .current_dir(repo_root())
            .args(["worktree", "prune"])
            .status();
    }
}

/// A private work directory for captured outputs, removed on drop unless kept.
pub struct WorkDir {
    pub path: PathBuf,
    keep: bool,
}

impl WorkDir {
    pub fn new(keep: bool) -> Result<WorkDir> {
        let path = std::env::temp_dir().join(format!("fp-compare-{}", std::process::id()));
        fs::create_dir_all(&path)
            .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
        Ok(WorkDir { path, keep })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            say(format!("raw outputs kept in {}", self.path.display()));
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// What a side printed.
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The side's error with the end of its stderr (or stdout, if stderr is empty).
    pub fn fail(&self, side: &str, why: impl Into<String>) -> Error {
        let err = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        Error::Side {
            side: side.to_string(),
            why: why.into(),
            stderr: tail(err, 15),
        }
    }
}

/// How to run one side.
pub struct Job<'a> {
    /// Names the side in errors ("DPDK dpdk-testpmd", "ours testpmd").
    pub side: &'a str,
    pub cmd: Command,
    /// Lines written to stdin, each after its delay; stdin is closed after the last.
    pub feed: Vec<(Duration, String)>,
    /// Send SIGINT after this long (programs that run until interrupted); their exit
    /// status is then not an error.
    pub interrupt: Option<Duration>,
    pub timeout: Duration,
    /// Where stdout and stderr are saved (`<file>.out`, `<file>.err`).
    pub file: PathBuf,
}

impl<'a> Job<'a> {
    /// A run with nothing fed to stdin and no interrupt: it ends by itself within
    /// `timeout`.
    pub fn new(side: &'a str, cmd: Command, timeout: Duration, file: PathBuf) -> Job<'a> {
        Job {
            side,
            cmd,
            feed: Vec::new(),
            interrupt: None,
            timeout,
            file,
        }
    }
}

/// Our apps' EAL arguments for a one-core run without hugepages or PCI, up to the
/// file prefix, which the caller adds (each run takes its own).
pub const OURS_ONE_CORE_EAL: [&str; 7] = [
    "-m",
    "0x1",
    "--no-huge",
    "-s",
    "256",
    "--no-pci",
    "--file-prefix",
];

/// Send `sig` to `pid`.
fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a pid of a child we spawned and have not reaped yet (the
        // caller still holds its Child), so the pid cannot have been reused.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Run a side to completion; a failure to start, a timeout or (unless interrupted by
/// us) a non-zero exit is an error naming the side with its stderr.
pub fn run(mut job: Job<'_>) -> Result<Output> {
    let out_p = job.file.with_extension("out");
    let err_p = job.file.with_extension("err");
    let fo = fs::File::create(&out_p)
        .map_err(|e| Error::io(format!("create {}", out_p.display()), e))?;
    let fe = fs::File::create(&err_p)
        .map_err(|e| Error::io(format!("create {}", err_p.display()), e))?;
    job.cmd.stdout(fo).stderr(fe).stdin(if job.feed.is_empty() {
        Stdio::null()
    } else {
        Stdio::piped()
    });
    if job.interrupt.is_some() {
        // A side we stop with SIGINT must not inherit SIGINT ignored (a shell starting
        // us in the background ignores it, and a shell script cannot trap a signal
        // ignored on entry): give the child the default disposition.
        // SAFETY: the closure runs in the child between fork and exec and calls only
        // signal(2), which is async-signal-safe, with valid arguments.
        unsafe {
            job.cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
    }
    let mut child = job.cmd.spawn().map_err(|e| Error::Side {
        side: job.side.to_string(),
        why: format!("failed to start ({e})"),
        stderr: String::new(),
    })?;
    let feeder = child.stdin.take().map(|mut stdin| {
        let feed = std::mem::take(&mut job.feed);
        std::thread::spawn(move || {
            for (d, line) in feed {
                std::thread::sleep(d);
                if writeln!(stdin, "{line}").is_err() {
                    break;
                }
            }
        })
    });
    let t0 = Instant::now();
    let mut interrupted = false;
    let status = loop {
        if let Some(st) = child
            .try_wait()
            .map_err(|e| Error::io("wait for a side", e))?
        {
            break Some(st);
        }
        let el = t0.elapsed();
        if let Some(i) = job.interrupt {
            if !interrupted && el >= i {
                signal(child.id(), libc::SIGINT);
                interrupted = true;
            }
        }
        if el >= job.timeout {
            signal(child.id(), libc::SIGKILL);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let out = Output {
        stdout: fs::read_to_string(&out_p).unwrap_or_default(),
        stderr: fs::read_to_string(&err_p).unwrap_or_default(),
    };
    match status {
        None => Err(out.fail(
            job.side,
            format!("did not finish within {} s (killed)", job.timeout.as_secs()),
        )),
        Some(st) if !st.success() && !interrupted => {
            Err(out.fail(job.side, format!("exited with {st}")))
        }
        Some(_) => Ok(out),
    }
}

/// The order of the sides in round `round`: as given in even rounds, reversed in odd
/// ones, so neither side always runs first (the host moves vCPUs over time).
pub fn round_order<T: Copy>(sides: &[T], round: usize) -> Vec<T> {
    let mut v = sides.to_vec();
    if round % 2 == 1 {
        v.reverse();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_alternate() {
        assert_eq!(round_order(&[1, 2, 3], 0), vec![1, 2, 3]);
        assert_eq!(round_order(&[1, 2, 3], 1), vec![3, 2, 1]);
        assert_eq!(round_order(&[1, 2], 2), vec![1, 2]);
    }

    #[test]
    fn tail_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }

    fn cleanup(file: &str) {
        let p = std::env::temp_dir().join(format!("fp-compare-test-{}-{file}", std::process::id()));
        let _ = fs::remove_file(p.with_extension("out"));
        let _ = fs::remove_file(p.with_extension("err"));
    }

    fn job(side: &str, sh_cmd: &str, file: &str) -> Job<'static> {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", sh_cmd]);
        Job::new(
            Box::leak(side.to_string().into_boxed_str()),
            cmd,
            Duration::from_secs(10),
            std::env::temp_dir().join(format!("fp-compare-test-{}-{file}", std::process::id())),
        )
    }

    #[test]
    fn failing_side_is_named_with_its_stderr() {
        let e = run(job(
            "DPDK dpdk-test",
            "echo out; echo 'EAL: cannot reserve memory' >&2; exit 3",
            "f",
        ))
        .err()
        .expect("a failing side is an error");
        let s = e.to_string();
        assert!(s.contains("DPDK dpdk-test"), "{s}");
        assert!(s.contains("cannot reserve memory"), "{s}");
        assert!(s.contains("exit status: 3"), "{s}");
        cleanup("f");
    }

    #[test]
    fn missing_program_is_named() {
        let mut j = job("ours ring_perf", "", "m");
        j.cmd = Command::new("/nonexistent/ring_perf");
        let s = run(j).err().expect("cannot start").to_string();
        assert!(
            s.contains("ours ring_perf") && s.contains("failed to start"),
            "{s}"
        );
        cleanup("m");
    }

    #[test]
    fn feed_and_interrupt() {
        let mut j = job(
            "ours testpmd",
            // The trap goes in first (an interrupt before it would end the shell without
            // printing), and the shell waits in short foreground sleeps, after each of
            // which a pending trapped signal runs (a `wait` builtin is not interrupted
            // the same way by every shell).
            "trap 'echo int; exit 130' INT; read a; echo got $a; while :; do sleep 0.1; done",
            "i",
        );
        j.feed = vec![(Duration::from_millis(10), "start".into())];
        j.interrupt = Some(Duration::from_secs(2));
        let o = run(j).expect("an interrupted side is not a failure");
        assert!(o.stdout.contains("got start"), "{}", o.stdout);
        assert!(o.stdout.contains("int"), "{}", o.stdout);
        cleanup("i");
    }
}
