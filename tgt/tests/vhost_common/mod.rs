//! What the vhost tests share: a `ferroplane-tgt` process with its RPC socket and
//! vhost socket directory, and a small vhost-user front end of our own (rust-vmm's
//! `vhost` frontend side for the messages, a memfd as "guest memory", one split
//! virtqueue written by hand), which can drive good requests and write bad
//! descriptor chains.

#![allow(dead_code)]

#[path = "../common/mod.rs"]
mod common;

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vhost::vhost_user::message::{
    VhostUserConfigFlags, VhostUserHeaderFlag, VhostUserInflight, VhostUserProtocolFeatures,
};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vmm_sys_util::eventfd::EventFd;

pub struct Tgt {
    pub child: Child,
    pub rpc: PathBuf,
    pub dir: PathBuf,
}

impl Drop for Tgt {
    fn drop(&mut self) {
        // Only our own child, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fp-vhost-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Start the target with its sockets in `dir` (stderr to `dir/tgt.log`).
pub fn start(dir: &Path, tag: &str) -> Tgt {
    start_with(dir, tag, &[])
}

/// [`start`] with more arguments.
pub fn start_with(dir: &Path, tag: &str, extra: &[&str]) -> Tgt {
    let rpc = dir.join("rpc.sock");
    let _ = std::fs::remove_file(&rpc);
    let prefix = format!("fpvhost-{tag}-{}", std::process::id());
    let log = File::options()
        .create(true)
        .append(true)
        .open(dir.join("tgt.log"))
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ferroplane-tgt"))
        .args([
            "-m",
            "0x1",
            "--no-huge",
            "-s",
            "64",
            "--no-pci",
            "--file-prefix",
            &prefix,
        ])
        .arg("-r")
        .arg(&rpc)
        .arg("-S")
        .arg(dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn ferroplane-tgt");
    let t = Tgt {
        child,
        rpc,
        dir: dir.to_path_buf(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while UnixStream::connect(&t.rpc).is_err() {
        assert!(
            Instant::now() < deadline,
            "ferroplane-tgt did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(&t.rpc, "framework_wait_init", json!({}));
    t
}

/// One JSON-RPC call; the whole answer.
pub fn call(sock: &Path, method: &str, params: Value) -> Value {
    common::call(sock, method, Some(params))
}

pub use common::ok;

/// A call that must fail with JSON-RPC error `code`.
pub fn refused(sock: &Path, method: &str, params: Value, code: i64) {
    let e = call(sock, method, params.clone());
    assert_eq!(e["error"]["code"], code, "{method} {params}: {e}");
}

pub const QSIZE: u16 = 64;
pub const MEM: usize = 16 << 20;
const DESC: u64 = 0;
const AVAIL: u64 = 0x1000;
const USED: u64 = 0x2000;
const HDRS: u64 = 0x3000;
pub const DATA: u64 = 0x10000;
pub const SLOT: u64 = 0x20000;
pub const F_NEXT: u16 = 1;
pub const F_WRITE: u16 = 2;
pub const F_INDIRECT: u16 = 4;

/// Our front end: queue 0 of a controller, "guest memory" a memfd at guest address 0.
pub struct Client {
    pub fe: Frontend,
    mem: *mut u8,
    _memfd: File,
    kick: EventFd,
    call: EventFd,
    avail_idx: u16,
    used_seen: u16,
    /// Kick only when the used ring's flags allow it, as a guest driver does
    /// (VRING_USED_F_NO_NOTIFY; no EVENT_IDX here). Off: always kick.
    pub honour_no_notify: bool,
}

impl Drop for Client {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        unsafe { libc::munmap(self.mem.cast(), MEM) };
    }
}

pub fn features_wanted() -> u64 {
    // VERSION_1, SEG_MAX, BLK_SIZE, FLUSH, MQ, DISCARD, WRITE_ZEROES, INDIRECT,
    // PROTOCOL_FEATURES.
    (1 << 32)
        | (1 << 2)
        | (1 << 6)
        | (1 << 9)
        | (1 << 12)
        | (1 << 13)
        | (1 << 14)
        | (1 << 28)
        | (1 << 30)
}

/// Connect and negotiate features and protocol features.
pub fn negotiate(path: &Path, inflight: bool) -> Frontend {
    let extra = if inflight {
        VhostUserProtocolFeatures::INFLIGHT_SHMFD
    } else {
        VhostUserProtocolFeatures::empty()
    };
    negotiate_proto(path, extra)
}

/// [`negotiate`] with `extra` protocol features on top of CONFIG, MQ and REPLY_ACK.
pub fn negotiate_proto(path: &Path, extra: VhostUserProtocolFeatures) -> Frontend {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A killed target leaves its socket file behind until the next one binds.
    let mut fe = loop {
        match Frontend::connect(path, 16) {
            Ok(fe) => break fe,
            Err(e) if Instant::now() < deadline => {
                eprintln!("connect to {}: {e}; retrying", path.display());
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("connect to {}: {e}", path.display()),
        }
    };
    fe.set_owner().unwrap();
    let offered = fe.get_features().unwrap();
    assert_eq!(
        offered & features_wanted(),
        features_wanted(),
        "offered {offered:#x}"
    );
    fe.set_features(features_wanted()).unwrap();
    let pf = fe.get_protocol_features().unwrap();
    for f in [
        VhostUserProtocolFeatures::CONFIG,
        VhostUserProtocolFeatures::MQ,
        VhostUserProtocolFeatures::REPLY_ACK,
        VhostUserProtocolFeatures::INFLIGHT_SHMFD,
        VhostUserProtocolFeatures::BACKEND_REQ,
    ] {
        assert!(pf.contains(f), "protocol feature {f:?} not offered: {pf:?}");
    }
    let want = VhostUserProtocolFeatures::CONFIG
        | VhostUserProtocolFeatures::MQ
        | VhostUserProtocolFeatures::REPLY_ACK
        | extra;
    fe.set_protocol_features(want).unwrap();
    // Every message waits for the back end's answer (REPLY_ACK), so errors come back
    // to the call that caused them and the target state is settled on return.
    fe.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
    fe
}

impl Client {
    /// Connect and set up queue 0.
    pub fn connect(path: &Path) -> Client {
        Self::connect_opts(path, false)
    }

    /// [`connect`](Self::connect), also negotiating INFLIGHT_SHMFD when `inflight`.
    pub fn connect_opts(path: &Path, inflight: bool) -> Client {
        Self::with_frontend(negotiate(path, inflight))
    }

    /// [`connect`](Self::connect) with `extra` protocol features.
    pub fn connect_proto(path: &Path, extra: VhostUserProtocolFeatures) -> Client {
        Self::with_frontend(negotiate_proto(path, extra))
    }

    fn with_frontend(fe: Frontend) -> Client {
        // SAFETY: a fresh memfd.
        let fd = unsafe { libc::memfd_create(c"fp-test-guest".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: we own fd.
        let memfd = unsafe { File::from_raw_fd(fd) };
        memfd.set_len(MEM as u64).unwrap();
        // SAFETY: a fresh shared mapping of our memfd.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MEM,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                memfd.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let c = Client {
            fe,
            mem: p.cast(),
            _memfd: memfd,
            kick: EventFd::new(libc::EFD_NONBLOCK).unwrap(),
            call: EventFd::new(libc::EFD_NONBLOCK).unwrap(),
            avail_idx: 0,
            used_seen: 0,
            honour_no_notify: false,
        };
        c.fe.set_mem_table(&[c.region()]).unwrap();
        c
    }

    /// Set up and enable queue 0 with ring addresses `uva_base + {0, 0x1000, 0x2000}`.
    pub fn try_start_queue(&mut self, uva_base: u64) -> Result<(), String> {
        self.setup_queue(uva_base, 0)
    }

    /// Queue 0 with its rings at `uva_base + {0, 0x1000, 0x2000}`, from `base`.
    fn setup_queue(&mut self, uva_base: u64, base: u16) -> Result<(), String> {
        let e = |e: vhost::Error| e.to_string();
        self.fe.set_vring_num(0, QSIZE).map_err(e)?;
        let cfg = VringConfigData {
            queue_max_size: QSIZE,
            queue_size: QSIZE,
            flags: 0,
            desc_table_addr: uva_base + DESC,
            used_ring_addr: uva_base + USED,
            avail_ring_addr: uva_base + AVAIL,
            log_addr: None,
        };
        self.fe.set_vring_addr(0, &cfg).map_err(e)?;
        self.fe.set_vring_base(0, base).map_err(e)?;
        self.fe.set_vring_call(0, &self.call).map_err(e)?;
        self.fe.set_vring_kick(0, &self.kick).map_err(e)?;
        self.fe.set_vring_enable(0, true).map_err(e)
    }

    /// Our "guest memory" as one region at guest address 0.
    fn region(&self) -> VhostUserMemoryRegionInfo {
        VhostUserMemoryRegionInfo {
            guest_phys_addr: 0,
            memory_size: MEM as u64,
            userspace_addr: self.mem as u64,
            mmap_offset: 0,
            mmap_handle: self._memfd.as_raw_fd(),
        }
    }

    /// A new connection (after a target restart) over the same memory and ring:
    /// features, the inflight area handed back, the memory table, queue 0 from `base`.
    pub fn reconnect(&mut self, path: &Path, inflight: &VhostUserInflight, fd: &File, base: u16) {
        self.fe = negotiate(path, true);
        self.fe.set_inflight_fd(inflight, fd.as_raw_fd()).unwrap();
        self.fe.set_mem_table(&[self.region()]).unwrap();
        self.setup_queue(self.mem as u64, base).unwrap();
    }

    /// Put `head` on the avail ring without kicking.
    pub fn make_avail(&mut self, head: u16) {
        let slot = AVAIL + 4 + 2 * u64::from(self.avail_idx % QSIZE);
        self.put(slot, head);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.put(AVAIL + 2, self.avail_idx);
    }

    /// Put `heads` on the avail ring with one index update (the back end sees all or
    /// none of them), without kicking.
    pub fn make_avail_all(&mut self, heads: &[u16]) {
        for (i, &h) in heads.iter().enumerate() {
            let slot = AVAIL + 4 + 2 * u64::from(self.avail_idx.wrapping_add(i as u16) % QSIZE);
            self.put(slot, h);
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        self.avail_idx = self.avail_idx.wrapping_add(heads.len() as u16);
        self.put(AVAIL + 2, self.avail_idx);
    }

    /// Kick the back end.
    pub fn kick(&self) {
        self.kick.write(1).unwrap();
    }

    /// Interrupts the back end sent since the last call (the call eventfd's counter).
    pub fn take_calls(&self) -> u64 {
        self.call.read().unwrap_or(0)
    }

    /// Set the used_event field (EVENT_IDX: interrupt once the used index passes it).
    pub fn set_used_event(&self, v: u16) {
        self.put(AVAIL + 4 + 2 * u64::from(QSIZE), v);
    }

    /// Write a used element (as a back end that died right after it would have).
    pub fn fake_used(&mut self, id: u32, len: u32) {
        let idx: u16 = self.get(USED + 2);
        let e = USED + 4 + 8 * u64::from(idx % QSIZE);
        self.put(e, id);
        self.put(e + 4, len);
        self.put(USED + 2, idx.wrapping_add(1));
        self.used_seen = idx.wrapping_add(1);
    }

    /// The used index in the ring.
    pub fn used_idx(&self) -> u16 {
        self.get(USED + 2)
    }

    pub fn start_queue(&mut self) {
        let base = self.mem as u64;
        self.try_start_queue(base).unwrap();
    }

    pub fn uva(&self) -> u64 {
        self.mem as u64
    }

    /// (capacity in sectors, blk_size, seg_max, num_queues) from the config space.
    pub fn config(&mut self) -> (u64, u32, u32, u16) {
        let (_, b) = self
            .fe
            .get_config(0, 60, VhostUserConfigFlags::WRITABLE, &[0u8; 60])
            .unwrap();
        let u32at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        (
            u64::from_le_bytes(b[0..8].try_into().unwrap()),
            u32at(20),
            u32at(12),
            u16::from_le_bytes(b[34..36].try_into().unwrap()),
        )
    }

    pub fn bytes(&mut self, gpa: u64, len: usize) -> &mut [u8] {
        assert!(gpa as usize + len <= MEM);
        // SAFETY: inside our mapping; the tests read and write only what the target does
        // not touch at the time (buffers of completed or not yet published requests).
        unsafe { std::slice::from_raw_parts_mut(self.mem.add(gpa as usize), len) }
    }

    pub fn put<T: Copy>(&self, gpa: u64, v: T) {
        // SAFETY: inside our mapping, aligned by the callers' layout.
        unsafe { std::ptr::write_volatile(self.mem.add(gpa as usize).cast::<T>(), v) }
    }

    pub fn get<T: Copy>(&self, gpa: u64) -> T {
        // SAFETY: as in `put`.
        unsafe { std::ptr::read_volatile(self.mem.add(gpa as usize).cast::<T>()) }
    }

    /// Write descriptor `i` of the table at `table`.
    pub fn desc_at(&self, table: u64, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let d = table + 16 * u64::from(i);
        self.put(d, addr);
        self.put(d + 8, len);
        self.put(d + 12, flags);
        self.put(d + 14, next);
    }

    pub fn desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        self.desc_at(DESC, i, addr, len, flags, next)
    }

    /// Make `head` available and kick.
    pub fn publish(&mut self, head: u16) {
        let slot = AVAIL + 4 + 2 * u64::from(self.avail_idx % QSIZE);
        self.put(slot, head);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.put(AVAIL + 2, self.avail_idx);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        if !self.honour_no_notify || self.get::<u16>(USED) & 1 == 0 {
            self.kick.write(1).unwrap();
        }
    }

    /// The next used element `(id, len)`, waiting up to `secs`.
    pub fn wait_used(&mut self, secs: u64) -> Option<(u32, u32)> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let idx: u16 = self.get(USED + 2);
            if idx != self.used_seen {
                std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
                let e = USED + 4 + 8 * u64::from(self.used_seen % QSIZE);
                let r = (self.get::<u32>(e), self.get::<u32>(e + 4));
                self.used_seen = self.used_seen.wrapping_add(1);
                return Some(r);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Header and status of slot `s`.
    pub fn hdr(&self, s: u16) -> (u64, u64) {
        let h = HDRS + 64 * u64::from(s);
        (h, h + 16)
    }

    /// One request through descriptors 0..3 (header, optional data, status); returns
    /// the status byte and the used length.
    pub fn request(&mut self, type_: u32, sector: u64, data_len: u32, write: bool) -> (u8, u32) {
        let (h, st) = self.hdr(0);
        self.put(h, type_);
        self.put(h + 4, 0u32);
        self.put(h + 8, sector);
        self.put(st, 0xffu8);
        if data_len > 0 {
            self.desc(0, h, 16, F_NEXT, 1);
            self.desc(
                1,
                DATA,
                data_len,
                F_NEXT | if write { 0 } else { F_WRITE },
                2,
            );
            self.desc(2, st, 1, F_WRITE, 0);
        } else {
            self.desc(0, h, 16, F_NEXT, 2);
            self.desc(2, st, 1, F_WRITE, 0);
        }
        self.publish(0);
        let (id, len) = self.wait_used(20).expect("no completion within 20 s");
        assert_eq!(id, 0);
        (self.get(st), len)
    }

    /// Write `data` at `sector`; the status byte.
    pub fn write(&mut self, sector: u64, data: &[u8]) -> u8 {
        self.bytes(DATA, data.len()).copy_from_slice(data);
        self.request(1, sector, data.len() as u32, true).0
    }

    /// Read `len` bytes at `sector`: (status, data).
    pub fn read(&mut self, sector: u64, len: usize) -> (u8, Vec<u8>) {
        self.bytes(DATA, len).fill(0xa5);
        let (s, _) = self.request(0, sector, len as u32, false);
        (s, self.bytes(DATA, len).to_vec())
    }

    /// Read any amount in chunks of at most 64 KiB.
    pub fn read_all(&mut self, sector: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut off = 0;
        while off < len {
            let n = (len - off).min(64 << 10);
            let (s, d) = self.read(sector + (off / 512) as u64, n);
            assert_eq!(s, 0, "read at sector {}", sector + (off / 512) as u64);
            out.extend_from_slice(&d);
            off += n;
        }
        out
    }

    /// Discard (11) or write-zeroes (13) of one range.
    pub fn ranges(&mut self, type_: u32, sector: u64, sectors: u32) -> u8 {
        let seg = DATA;
        self.put(seg, sector);
        self.put(seg + 8, sectors);
        self.put(seg + 12, 0u32);
        self.request(type_, 0, 16, true).0
    }
}

/// A deterministic pattern (xorshift) of `n` bytes.
pub fn pattern(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
