//! Ferroplane's QEMU testbed from Rust: boot a guest with an emulated NVMe controller and
//! two e1000 NICs behind a virtual Intel IOMMU, run shell commands in it, exchange
//! Ethernet frames with its NICs.
//!
//! [`Guest::boot`] runs `testbed/run.sh --interactive` (which installs QEMU, busybox and
//! cpio when missing, caches the Debian kernel, builds the release binaries and boots
//! the guest under TCG) and drives the guest's console: [`Guest::run`] sends one command
//! line and returns its exit status and output. Everything the console prints is also
//! appended to a log file ([`GuestOptions::log`]). Dropping the guest powers it off
//! (closing the console ends the guest's command loop), killing the QEMU process group
//! if it does not stop in time.
//!
//! [`FrameSocket`] is the host end of one NIC: QEMU's `-netdev dgram` backend sends each
//! frame the guest transmits as one datagram to `<net dir>/host<N>.sock` and takes
//! frames to deliver from datagrams sent to `<net dir>/guest<N>.sock`. Nothing leaves
//! the machine: these are Unix sockets.
//!
//! One guest uses both cores under TCG: run guests one at a time.
//!
//! [`harness`] has what the guest tests share (the `FP_TESTBED` gate, building the
//! release binaries for the guest, the common shell steps); [`frames`] the e1000 test
//! traffic both the guest program and the host test build; [`guest_bin`] what the guest
//! programs share; [`nic`] the steps the guest halves of the NIC tests share. The
//! programs in `src/bin/`
//! (`fp-devtest`, `fp-e1000test`, `fp-nvmetest`) are the guest halves of the root
//! `tests/testbed_devices.rs`, `tests/e1000_guest.rs` and `tests/nvme_driver.rs`: test
//! helpers copied into the guest's `/fp/bin`, not user tools.

pub mod frames;
pub mod guest_bin;
pub mod harness;
pub mod nic;
pub mod nvmet;

pub use harness::{boot_or_skip, build_release};

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Errors of the testbed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed.
    #[error("failed to {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The guest did not answer in time.
    #[error("failed to {what}: no answer within {secs} s; output so far:\n{output}")]
    Timeout {
        what: String,
        secs: u64,
        output: String,
    },
    /// The guest (QEMU) ended.
    #[error("failed to {what}: the guest ended; output so far:\n{output}")]
    Ended { what: String, output: String },
    /// A command the console cannot carry.
    #[error("failed to run '{0}': commands must be one line")]
    BadCommand(String),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// How to boot.
#[derive(Clone, Debug)]
pub struct GuestOptions {
    /// Serial number QEMU gives the NVMe controller.
    pub nvme_serial: String,
    /// Raw image of namespace 1 (512-byte LBAs); `None`: a fresh 64 MiB file.
    pub nvme_img: Option<PathBuf>,
    /// Directory of the NIC sockets; `None`: a private temporary directory.
    pub net_dir: Option<PathBuf>,
    /// Extra binaries for the guest's `/fp/bin`.
    pub bins: Vec<PathBuf>,
    /// Console log (appended).
    pub log: PathBuf,
    /// Time allowed for building and booting until the guest's shell is ready.
    pub boot_timeout: Duration,
    /// Hard limit for the whole guest life (passed to `run.sh --timeout`).
    pub life_timeout: Duration,
    /// Run `cargo build --release` for the guest binaries first.
    pub build: bool,
    /// Files or directories to copy into the guest: `(host path, guest path)`. ELF files
    /// bring the libraries `ldd` lists.
    pub files: Vec<(PathBuf, String)>,
    /// Guest memory in MiB (`run.sh --mem`).
    pub mem_mb: u32,
    /// Guest memory in a shared memfd, as vhost-user back ends need (`--memfd`).
    pub memfd: bool,
    /// 2 MiB hugepages the guest reserves.
    pub hugepages: u32,
    /// More QEMU arguments (devices, chardevs, netdevs), one element per argument.
    pub qemu_args: Vec<String>,
}

impl Default for GuestOptions {
    fn default() -> Self {
        GuestOptions {
            nvme_serial: "fp-nvme-0001".into(),
            nvme_img: None,
            net_dir: None,
            bins: Vec::new(),
            log: repo_root().join(".testbed-cache/guest-console.log"),
            boot_timeout: Duration::from_secs(600),
            life_timeout: Duration::from_secs(1200),
            build: true,
            files: Vec::new(),
            mem_mb: 1024,
            memfd: false,
            hugepages: 64,
            qemu_args: Vec::new(),
        }
    }
}

/// The workspace root (parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Whether a guest can be booted on this machine: `Ok` or the reason not. QEMU,
/// cpio and busybox must be installed, or we must be root with apt-get to install them.
/// (`FP_TESTBED` is read by [`boot_or_skip`], not here.)
pub fn can_boot() -> Result<(), String> {
    if testkit::on_path("qemu-system-x86_64")
        && testkit::on_path("cpio")
        && Path::new("/bin/busybox").exists()
    {
        return Ok(());
    }
    if testkit::is_root() && testkit::on_path("apt-get") {
        return Ok(());
    }
    Err(
        "qemu-system-x86_64/cpio/busybox-static missing and not root with apt-get to install them"
            .into(),
    )
}

/// A running guest. See the crate docs.
pub struct Guest {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    next_id: u64,
    net_dir: PathBuf,
    _tmp: Option<TempDir>,
    booted_in: Duration,
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Guest {
    /// Build (if asked), boot, and wait for the guest's shell.
    pub fn boot(opts: &GuestOptions) -> Result<Guest> {
        let start = Instant::now();
        let (net_dir, tmp) = match &opts.net_dir {
            Some(d) => (d.clone(), None),
            None => {
                let d = std::env::temp_dir().join(format!("fp-testbed-net-{}", std::process::id()));
                std::fs::create_dir_all(&d).map_err(io(format!("create {}", d.display())))?;
                (d.clone(), Some(TempDir(d)))
            }
        };
        let root = repo_root();
        let mut cmd = Command::new("bash");
        cmd.arg(root.join("testbed/run.sh"))
            .arg("--interactive")
            .args(["--nvme-serial", &opts.nvme_serial])
            .arg("--net-sock")
            .arg(&net_dir)
            .args(["--timeout", &opts.life_timeout.as_secs().to_string()]);
        if let Some(img) = &opts.nvme_img {
            cmd.arg("--nvme-img").arg(img);
        }
        for b in &opts.bins {
            cmd.arg("--bin").arg(b);
        }
        if !opts.build {
            cmd.arg("--no-build");
        }
        for (src, dst) in &opts.files {
            let mut spec = src.clone().into_os_string();
            spec.push(":");
            spec.push(dst);
            cmd.arg("--file").arg(spec);
        }
        cmd.args(["--mem", &opts.mem_mb.to_string()])
            .args(["--hugepages", &opts.hugepages.to_string()]);
        if opts.memfd {
            cmd.arg("--memfd");
        }
        for a in &opts.qemu_args {
            cmd.arg("--qemu-arg").arg(a);
        }
        cmd.current_dir(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        let mut child = cmd.spawn().map_err(io("start testbed/run.sh"))?;
        let stdout = child.stdout.take().ok_or_else(|| Error::Io {
            what: "take the guest console".into(),
            source: std::io::Error::other("no stdout pipe"),
        })?;
        if let Some(dir) = opts.log.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&opts.log)
            .map_err(io(format!("open {}", opts.log.display())))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf)
                            .trim_end_matches(['\n', '\r'])
                            .replace('\r', "");
                        let _ = writeln!(log, "{line}");
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stdin = child.stdin.take();
        let mut g = Guest {
            child,
            stdin,
            lines: rx,
            next_id: 1,
            net_dir,
            _tmp: tmp,
            booted_in: Duration::ZERO,
        };
        g.wait_for("boot the guest", opts.boot_timeout, |l| {
            l.starts_with("@@FP-READY")
        })?;
        g.booted_in = start.elapsed();
        Ok(g)
    }

    /// Time from `boot` to a ready shell (build included).
    pub fn booted_in(&self) -> Duration {
        self.booted_in
    }

    /// The directory of the NIC sockets.
    pub fn net_dir(&self) -> &Path {
        &self.net_dir
    }

    fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&str) -> bool,
    ) -> Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let stop = done(&l);
                    out.push(l);
                    if stop {
                        return Ok(out);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Error::Timeout {
                        what: what.into(),
                        secs: timeout.as_secs(),
                        output: out.join("\n"),
                    })
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Ended {
                        what: what.into(),
                        output: out.join("\n"),
                    })
                }
            }
        }
    }

    /// Run one shell command line in the guest (stdin is /dev/null, stderr goes with
    /// stdout); returns its exit status and output. Default timeout 300 s.
    pub fn run(&mut self, cmd: &str) -> Result<(i32, String)> {
        self.run_timeout(cmd, Duration::from_secs(300))
    }

    /// [`run`](Self::run) with a timeout.
    pub fn run_timeout(&mut self, cmd: &str, timeout: Duration) -> Result<(i32, String)> {
        if cmd.contains('\n') {
            return Err(Error::BadCommand(cmd.into()));
        }
        let id = self.next_id;
        self.next_id += 1;
        let line = format!("{{ {cmd} ; }} </dev/null 2>&1; printf '@@FP-DONE %s %s\\n' {id} $?\n");
        let stdin = self.stdin.as_mut().ok_or_else(|| Error::Ended {
            what: "send a command".into(),
            output: String::new(),
        })?;
        stdin
            .write_all(line.as_bytes())
            .and_then(|_| stdin.flush())
            .map_err(io("send a command to the guest"))?;
        let marker = format!("@@FP-DONE {id} ");
        let mut lines = self.wait_for(&format!("run '{cmd}'"), timeout, |l| l.contains(&marker))?;
        let last = lines.pop().unwrap_or_default();
        let (before, status) = last.split_once(&marker).unwrap_or(("", "255"));
        if !before.is_empty() {
            lines.push(before.to_string());
        }
        let st = status.trim().parse::<i32>().unwrap_or(255);
        Ok((st, lines.join("\n")))
    }

    /// Power the guest off and wait for QEMU to end.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop(Duration::from_secs(60))
    }

    fn stop(&mut self, grace: Duration) -> Result<()> {
        // A serial line has no end-of-file: ask the guest to power off, then close.
        if let Some(mut s) = self.stdin.take() {
            let _ = s.write_all(b"sync; poweroff -f\n").and_then(|_| s.flush());
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Our own process group (run.sh, timeout, qemu), by its id.
        // SAFETY: kill has no memory-safety preconditions; the group id is our child's.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
        Ok(())
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.stop(Duration::from_secs(30));
        }
    }
}

/// The host end of guest NIC `n`'s datagram socket.
pub struct FrameSocket {
    sock: UnixDatagram,
    guest: PathBuf,
}

impl FrameSocket {
    /// Bind `<dir>/host<n>.sock` (QEMU sends the guest's frames there) and address
    /// `<dir>/guest<n>.sock` (QEMU delivers frames sent there to the guest).
    pub fn open(dir: &Path, n: u32) -> Result<FrameSocket> {
        let host = dir.join(format!("host{n}.sock"));
        let _ = std::fs::remove_file(&host);
        let sock = UnixDatagram::bind(&host).map_err(io(format!("bind {}", host.display())))?;
        Ok(FrameSocket {
            sock,
            guest: dir.join(format!("guest{n}.sock")),
        })
    }

    /// Send one Ethernet frame to the guest NIC.
    pub fn send(&self, frame: &[u8]) -> Result<()> {
        self.sock
            .send_to(frame, &self.guest)
            .map_err(io(format!("send a frame to {}", self.guest.display())))?;
        Ok(())
    }

    /// Limit how long [`send`](Self::send) blocks when the guest NIC takes no frames
    /// (QEMU stops reading while the NIC cannot receive); `None` (the default) blocks
    /// until it does.
    pub fn set_send_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.sock
            .set_write_timeout(timeout)
            .map_err(io("set a socket send timeout"))
    }

    /// Throw away every frame waiting on the socket; how many there were.
    pub fn drain(&self) -> Result<usize> {
        let mut n = 0;
        while self.recv(Duration::from_millis(1))?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    /// Receive one frame the guest sent, waiting up to `timeout`; `None` if none came.
    pub fn recv(&self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        self.sock
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(io("set a socket timeout"))?;
        let mut buf = vec![0u8; 65536];
        match self.sock.recv(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::Io {
                what: "receive a frame".into(),
                source: e,
            }),
        }
    }
}
