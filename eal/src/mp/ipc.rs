//! The socket, the wire format and the `fp-mp` handler thread (contracts in [`super`]).

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use super::{
    secondary_socket, Message, Peer, Replies, Reply, MAX_FDS, MAX_NAME_LEN, MAX_PARAM_LEN,
    PRIMARY_SOCKET,
};
use crate::error::{Error, Result};
use crate::sys::ipc as sys;

// ---- wire format -------------------------------------------------------------------

/// "FPMP".
const WIRE_MAGIC: u32 = u32::from_le_bytes(*b"FPMP");
const WIRE_VERSION: u16 = 1;
const OFF_NAME: usize = 32;
const OFF_PARAM: usize = OFF_NAME + MAX_NAME_LEN;
/// Bytes of one datagram.
pub(crate) const WIRE_LEN: usize = OFF_PARAM + MAX_PARAM_LEN;
const _: () = assert!(WIRE_LEN == 352);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
enum Kind {
    Msg = 1,
    Req = 2,
    Reply = 3,
    Ignore = 4,
    Wake = 5,
}

impl Kind {
    fn from_u16(v: u16) -> Option<Kind> {
        Some(match v {
            1 => Kind::Msg,
            2 => Kind::Req,
            3 => Kind::Reply,
            4 => Kind::Ignore,
            5 => Kind::Wake,
            _ => return None,
        })
    }
}

/// Encode: magic u32 | version u16 | kind u16 | seq u64 | pid i32 | nfds u32 |
/// param len u32 | rsvd u32 | name [64] (NUL padded) | param [256].
fn encode(kind: Kind, seq: u64, name: &str, param: &[u8], nfds: usize) -> [u8; WIRE_LEN] {
    let mut b = [0u8; WIRE_LEN];
    b[0..4].copy_from_slice(&WIRE_MAGIC.to_ne_bytes());
    b[4..6].copy_from_slice(&WIRE_VERSION.to_ne_bytes());
    b[6..8].copy_from_slice(&(kind as u16).to_ne_bytes());
    b[8..16].copy_from_slice(&seq.to_ne_bytes());
    b[16..20].copy_from_slice(&(std::process::id() as i32).to_ne_bytes());
    b[20..24].copy_from_slice(&(nfds as u32).to_ne_bytes());
    b[24..28].copy_from_slice(&(param.len() as u32).to_ne_bytes());
    // Lengths were checked when the Message was built.
    b[OFF_NAME..OFF_NAME + name.len()].copy_from_slice(name.as_bytes());
    b[OFF_PARAM..OFF_PARAM + param.len()].copy_from_slice(param);
    b
}

struct Decoded {
    kind: Kind,
    seq: u64,
    pid: i32,
    name: String,
    param: Vec<u8>,
    nfds: usize,
}

fn decode(b: &[u8]) -> std::result::Result<Decoded, String> {
    if b.len() != WIRE_LEN {
        return Err(format!(
            "datagram of {} bytes, expected {WIRE_LEN}",
            b.len()
        ));
    }
    let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let u16_at = |o: usize| u16::from_ne_bytes(b[o..o + 2].try_into().expect("2 bytes"));
    if u32_at(0) != WIRE_MAGIC {
        return Err("bad magic".into());
    }
    if u16_at(4) != WIRE_VERSION {
        return Err(format!(
            "wire version {}, expected {WIRE_VERSION}",
            u16_at(4)
        ));
    }
    let kind = Kind::from_u16(u16_at(6)).ok_or_else(|| format!("unknown kind {}", u16_at(6)))?;
    let seq = u64::from_ne_bytes(b[8..16].try_into().expect("8 bytes"));
    let pid = u32_at(16) as i32;
    let nfds = u32_at(20) as usize;
    let plen = u32_at(24) as usize;
    if plen > MAX_PARAM_LEN || nfds > MAX_FDS {
        return Err(format!(
            "param length {plen} or fd count {nfds} out of range"
        ));
    }
    let raw = &b[OFF_NAME..OFF_PARAM];
    let n = raw
        .iter()
        .position(|&c| c == 0)
        .ok_or("name not NUL terminated")?;
    let name = std::str::from_utf8(&raw[..n])
        .map_err(|_| "name not UTF-8")?
        .to_string();
    Ok(Decoded {
        kind,
        seq,
        pid,
        name,
        param: b[OFF_PARAM..OFF_PARAM + plen].to_vec(),
        nfds,
    })
}

// ---- the channel -------------------------------------------------------------------

type Handler = dyn Fn(&Message, &Peer) -> Option<Message> + Send + Sync;

struct Pending {
    replies: Vec<Reply>,
    ignored: usize,
}

struct Shared {
    sock: UnixDatagram,
    path: PathBuf,
    dir: PathBuf,
    primary: bool,
    actions: Mutex<HashMap<String, Arc<Handler>>>,
    pending: Mutex<HashMap<u64, Pending>>,
    answered: Condvar,
    stop: AtomicBool,
    seq: AtomicU64,
    thread_id: OnceLock<ThreadId>,
}

/// One process's IPC endpoint: its socket and its `fp-mp` handler thread. Made by
/// [`crate::Eal`] at init; reach it with [`crate::Eal::mp`].
pub struct Mp {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Mp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp")
            .field("socket", &self.shared.path)
            .field("primary", &self.shared.primary)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A handler panic is caught outside any of our locks, so poisoning only follows a
    // bug in this module; the data (maps) stays consistent either way.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// True for errors that mean "nobody listens there any more".
fn is_gone(e: &Error) -> bool {
    matches!(e, Error::Os { source, .. } if matches!(source.raw_os_error(), Some(libc::ECONNREFUSED) | Some(libc::ENOENT)))
}

impl Mp {
    /// Bind this process's socket in `dir` and start the handler thread. The primary
    /// binds `mp_socket`, a secondary `mp_socket_<pid>` (a stale file of that name, left
    /// by a crashed process whose pid we now have, is replaced).
    pub(crate) fn start(dir: &Path, primary: bool) -> Result<Mp> {
        let name = if primary {
            PRIMARY_SOCKET.to_string()
        } else {
            secondary_socket(std::process::id())
        };
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("remove stale", path.display().to_string(), e));
            }
            _ => {}
        }
        let sock = UnixDatagram::bind(&path)
            .map_err(|e| Error::io("bind", format!("IPC socket {}", path.display()), e))?;
        // Backstop for the wake-up datagram sent at shutdown.
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(|e| Error::io("configure", format!("IPC socket {}", path.display()), e))?;
        let shared = Arc::new(Shared {
            sock,
            path: path.clone(),
            dir: dir.to_path_buf(),
            primary,
            actions: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            answered: Condvar::new(),
            stop: AtomicBool::new(false),
            seq: AtomicU64::new(1),
            thread_id: OnceLock::new(),
        });
        let s2 = shared.clone();
        let t = std::thread::Builder::new()
            .name("fp-mp".into())
            .spawn(move || handler_loop(&s2))
            .map_err(|e| {
                let _ = std::fs::remove_file(&path);
                Error::io("start", "IPC handler thread", e)
            })?;
        let _ = shared.thread_id.set(t.thread().id());
        Ok(Mp {
            shared,
            thread: Mutex::new(Some(t)),
        })
    }

    /// This process's socket path.
    pub fn socket_path(&self) -> &Path {
        &self.shared.path
    }

    /// Bind action `name` to `handler` (module doc for when it runs). Refused with
    /// [`Error::Exists`] if the name is bound already.
    pub fn action_register<F>(&self, name: &str, handler: F) -> Result<()>
    where
        F: Fn(&Message, &Peer) -> Option<Message> + Send + Sync + 'static,
    {
        Message::new(name)?;
        let mut a = lock(&self.shared.actions);
        if a.contains_key(name) {
            return Err(Error::Exists(format!("IPC action {name}")));
        }
        a.insert(name.to_string(), Arc::new(handler));
        Ok(())
    }

    /// Unbind action `name`; false if it was not bound. A handler already running
    /// finishes.
    pub fn action_unregister(&self, name: &str) -> bool {
        lock(&self.shared.actions).remove(name).is_some()
    }

    /// The peers a broadcast goes to: the primary (from a secondary), or every live
    /// secondary with a socket in the runtime directory (from the primary; sockets of
    /// dead pids are removed on the way).
    pub fn peers(&self) -> Vec<Peer> {
        if !self.shared.primary {
            return vec![Peer::new(self.shared.dir.join(PRIMARY_SOCKET), 0)];
        }
        let mut v: Vec<Peer> = std::fs::read_dir(&self.shared.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name();
                let pid = n
                    .to_str()?
                    .strip_prefix(PRIMARY_SOCKET)?
                    .strip_prefix('_')?
                    .parse::<i32>()
                    .ok()?;
                if !crate::sys::mem::process_exists(pid) {
                    // Left by a secondary that exited without tearing down its EAL.
                    let _ = std::fs::remove_file(e.path());
                    return None;
                }
                Some(Peer::new(e.path(), pid))
            })
            .collect();
        v.sort_by_key(|p| p.pid());
        v
    }

    /// One-way message to one peer.
    pub fn sendmsg_to(&self, peer: &Peer, msg: &Message) -> Result<()> {
        self.send_raw(peer.path(), Kind::Msg, 0, msg)
            .map_err(|e| Error::Ipc {
                op: "send",
                name: msg.name().into(),
                why: format!("to {}: {e}", peer.path().display()),
            })
    }

    /// One-way message to the primary (from a secondary) or to every secondary (from
    /// the primary). Returns how many peers it was delivered to; peers that are gone are
    /// skipped.
    pub fn sendmsg(&self, msg: &Message) -> Result<usize> {
        let mut n = 0;
        for p in self.peers() {
            match self.send_raw(p.path(), Kind::Msg, 0, msg) {
                Ok(()) => n += 1,
                Err(e) if is_gone(&e) => self.forget_peer(&p),
                Err(e) => {
                    return Err(Error::Ipc {
                        op: "send",
                        name: msg.name().into(),
                        why: e.to_string(),
                    })
                }
            }
        }
        Ok(n)
    }

    /// Send `msg` as a request to the primary (from a secondary) or to every secondary
    /// (from the primary) and wait up to `timeout` for every answer (module doc).
    pub fn request_sync(&self, msg: &Message, timeout: Duration) -> Result<Replies> {
        if self.shared.thread_id.get() == Some(&std::thread::current().id()) {
            return Err(Error::Ipc {
                op: "request",
                name: msg.name().into(),
                why: "called from the IPC handler thread, which is the one that would receive the replies; reply from the handler or request from another thread".into(),
            });
        }
        let seq = self.shared.seq.fetch_add(1, Ordering::Relaxed);
        lock(&self.shared.pending).insert(
            seq,
            Pending {
                replies: Vec::new(),
                ignored: 0,
            },
        );
        let mut sent = 0;
        let mut failure = None;
        for p in self.peers() {
            match self.send_raw(p.path(), Kind::Req, seq, msg) {
                Ok(()) => sent += 1,
                Err(e) if is_gone(&e) => self.forget_peer(&p),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let deadline = Instant::now() + timeout;
        let mut g = lock(&self.shared.pending);
        if failure.is_none() {
            loop {
                let done = g
                    .get(&seq)
                    .is_some_and(|p| p.replies.len() + p.ignored >= sent);
                let now = Instant::now();
                if done || now >= deadline {
                    break;
                }
                g = self
                    .shared
                    .answered
                    .wait_timeout(g, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        let p = g.remove(&seq).unwrap_or(Pending {
            replies: Vec::new(),
            ignored: 0,
        });
        drop(g);
        if let Some(e) = failure {
            return Err(Error::Ipc {
                op: "request",
                name: msg.name().into(),
                why: e.to_string(),
            });
        }
        Ok(Replies {
            nb_sent: sent,
            replies: p.replies,
            nb_ignored: p.ignored,
        })
    }

    fn send_raw(&self, to: &Path, kind: Kind, seq: u64, msg: &Message) -> Result<()> {
        send(&self.shared, to, kind, seq, msg)
    }

    /// A secondary socket that refused a datagram: remove it if its process is dead.
    fn forget_peer(&self, p: &Peer) {
        if self.shared.primary && p.pid() > 0 && !crate::sys::mem::process_exists(p.pid()) {
            let _ = std::fs::remove_file(p.path());
        }
    }

    /// Stop the handler thread and remove the socket. Idempotent.
    pub(crate) fn shutdown(&self) {
        let Some(t) = lock(&self.thread).take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::Release);
        let wake = encode(Kind::Wake, 0, "", &[], 0);
        let _ = sys::send_with_fds(self.shared.sock.as_fd(), &self.shared.path, &wake, &[]);
        if t.thread().id() != std::thread::current().id() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.shared.path);
    }
}

impl Drop for Mp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn send(s: &Shared, to: &Path, kind: Kind, seq: u64, msg: &Message) -> Result<()> {
    let b = encode(kind, seq, msg.name(), msg.param(), msg.fds().len());
    let fds: Vec<BorrowedFd<'_>> = msg.fds().iter().map(|f| f.as_fd()).collect();
    sys::send_with_fds(s.sock.as_fd(), to, &b, &fds)
}

fn handler_loop(s: &Shared) {
    let mut buf = [0u8; WIRE_LEN + 1];
    while !s.stop.load(Ordering::Acquire) {
        let r = match sys::recv_with_fds(s.sock.as_fd(), &mut buf) {
            Ok(r) => r,
            Err(Error::Os { source, .. })
                if matches!(
                    source.raw_os_error(),
                    Some(libc::EAGAIN) | Some(libc::EINTR)
                ) =>
            {
                continue
            }
            Err(e) => {
                crate::log_err!("IPC receive on {}: {e}", s.path.display());
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let d = match decode(&buf[..r.len]) {
            Ok(d) if !r.truncated && d.nfds == r.fds.len() => d,
            Ok(_) => {
                crate::log_warn!(
                    "IPC: dropped a datagram with a truncated body or missing descriptors"
                );
                continue;
            }
            Err(why) => {
                crate::log_warn!("IPC: dropped a malformed datagram: {why}");
                continue;
            }
        };
        let from = r.from.unwrap_or_default();
        let peer = Peer::new(from, d.pid);
        let msg = Message::from_parts(d.name, d.param, r.fds);
        match d.kind {
            Kind::Wake => {}
            Kind::Msg => {
                let _ = run_action(s, &msg, &peer);
            }
            Kind::Req => {
                let reply = run_action(s, &msg, &peer);
                if peer.path().as_os_str().is_empty() {
                    continue;
                }
                let res = match reply {
                    Some(rep) => send(s, peer.path(), Kind::Reply, d.seq, &rep),
                    None => send(
                        s,
                        peer.path(),
                        Kind::Ignore,
                        d.seq,
                        &Message::from_parts(msg.name().into(), Vec::new(), Vec::new()),
                    ),
                };
                if let Err(e) = res {
                    crate::log_warn!(
                        "IPC: could not answer request '{}' from pid {}: {e}",
                        msg.name(),
                        peer.pid()
                    );
                }
            }
            Kind::Reply | Kind::Ignore => {
                let mut g = lock(&s.pending);
                if let Some(p) = g.get_mut(&d.seq) {
                    if d.kind == Kind::Reply {
                        p.replies.push(Reply { msg, peer });
                    } else {
                        p.ignored += 1;
                    }
                    s.answered.notify_all();
                }
                // else: a late answer to a request that timed out; dropped.
            }
        }
    }
}

fn run_action(s: &Shared, msg: &Message, peer: &Peer) -> Option<Message> {
    let h = lock(&s.actions).get(msg.name()).cloned();
    let Some(h) = h else {
        crate::log_debug!("IPC: no action '{}' (from pid {})", msg.name(), peer.pid());
        return None;
    };
    match catch_unwind(AssertUnwindSafe(|| h(msg, peer))) {
        Ok(r) => r,
        Err(_) => {
            crate::log_err!(
                "IPC: handler of '{}' panicked; answered 'ignore'",
                msg.name()
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_and_rejects() {
        let b = encode(Kind::Req, 77, "act", b"xyz", 2);
        let d = decode(&b).unwrap();
        assert_eq!(
            (d.kind, d.seq, d.name.as_str(), d.param.as_slice(), d.nfds),
            (Kind::Req, 77, "act", &b"xyz"[..], 2)
        );
        assert_eq!(d.pid, std::process::id() as i32);
        assert!(decode(&b[..100]).is_err());
        let mut bad = b;
        bad[0] ^= 1;
        assert!(decode(&bad).is_err());
        let mut bad = b;
        bad[24..28].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(decode(&bad).is_err());
        let mut bad = b;
        bad[OFF_NAME..OFF_PARAM].fill(b'a');
        assert!(decode(&bad).is_err());
    }

    #[test]
    fn limits() {
        assert!(Message::new("").is_err());
        assert!(Message::new(&"n".repeat(63)).is_ok());
        assert!(Message::new(&"n".repeat(64)).is_err());
        let m = Message::new("x").unwrap();
        assert!(m.with_param(&[0u8; 257]).is_err());
        let mut m = Message::new("x").unwrap().with_param(&[1u8; 256]).unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        for _ in 0..MAX_FDS {
            m.push_fd_dup(&f).unwrap();
        }
        assert!(m.push_fd_dup(&f).is_err());
    }

    /// Two endpoints in one process (a "primary" and a "secondary" directory entry):
    /// message, request/reply, ignore, fd passing, timeout, handler-thread refusal.
    #[test]
    fn in_process_round_trips() {
        use std::io::{Read, Seek, Write};
        let t = testkit::tempdir::TempDir::new("mp");
        let pri = Mp::start(t.path(), true).unwrap();
        let sec = Mp::start(t.path(), false).unwrap();
        assert_eq!(pri.peers().len(), 1);
        assert_eq!(pri.peers()[0].pid(), std::process::id() as i32);
        let got = Arc::new(Mutex::new(Vec::new()));
        let g2 = got.clone();
        sec.action_register("note", move |m, p| {
            g2.lock()
                .unwrap()
                .push((m.param().to_vec(), p.is_primary()));
            None
        })
        .unwrap();
        assert!(matches!(
            sec.action_register("note", |_, _| None),
            Err(Error::Exists(_))
        ));
        sec.action_register("double", |m, _| {
            let v: Vec<u8> = m.param().iter().map(|b| b * 2).collect();
            Some(Message::new("double").unwrap().with_param(&v).unwrap())
        })
        .unwrap();
        // A handler that reads the passed file and answers with its contents.
        sec.action_register("readfd", |m, _| {
            let mut f = std::fs::File::from(m.fds()[0].try_clone().unwrap());
            let mut s = String::new();
            f.rewind().unwrap();
            f.read_to_string(&mut s).unwrap();
            Some(
                Message::new("readfd")
                    .unwrap()
                    .with_param(s.as_bytes())
                    .unwrap(),
            )
        })
        .unwrap();
        assert_eq!(
            pri.sendmsg(&Message::new("note").unwrap().with_param(b"hi").unwrap())
                .unwrap(),
            1
        );
        let r = pri
            .request_sync(
                &Message::new("double")
                    .unwrap()
                    .with_param(&[1, 2, 3])
                    .unwrap(),
                Duration::from_secs(10),
            )
            .unwrap();
        assert_eq!((r.nb_sent, r.nb_received(), r.nb_ignored), (1, 1, 0));
        assert_eq!(r.replies[0].msg.param(), &[2, 4, 6]);
        assert_eq!(r.replies[0].peer.pid(), std::process::id() as i32);
        assert!(r.complete());
        // Unknown action: answered "ignore", counted as such, no wait for the timeout.
        let r = pri
            .request_sync(&Message::new("nobody").unwrap(), Duration::from_secs(30))
            .unwrap();
        assert_eq!((r.nb_sent, r.nb_received(), r.nb_ignored), (1, 0, 1));
        // Descriptor passing.
        let mut tmp = tempfile_in(t.path());
        tmp.write_all(b"through SCM_RIGHTS").unwrap();
        let mut m = Message::new("readfd").unwrap();
        m.push_fd_dup(&tmp).unwrap();
        let r = pri.request_sync(&m, Duration::from_secs(10)).unwrap();
        assert_eq!(r.replies[0].msg.param(), b"through SCM_RIGHTS");
        // Secondary → primary with no handler there.
        let r = sec
            .request_sync(&Message::new("double").unwrap(), Duration::from_secs(10))
            .unwrap();
        assert_eq!((r.nb_sent, r.nb_ignored), (1, 1));
        assert_eq!(got.lock().unwrap().as_slice(), &[(b"hi".to_vec(), true)]);

        // A request from a handler is refused instead of deadlocking.
        let mut pri = Arc::new(pri);
        let p2 = pri.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        pri.action_register("reenter", move |_, _| {
            let e = p2.request_sync(&Message::new("x").unwrap(), Duration::from_secs(1));
            let _ = tx.lock().unwrap().send(matches!(e, Err(Error::Ipc { .. })));
            None
        })
        .unwrap();
        sec.sendmsg(&Message::new("reenter").unwrap()).unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(20)).unwrap());
        // The closure holds an Arc to `pri`: break the cycle before dropping. The
        // handler thread may still hold its clone of the closure for a moment after
        // the reply was sent, so wait for that clone to go before taking `pri` back.
        assert!(pri.action_unregister("reenter"));
        let t0 = std::time::Instant::now();
        let pri = loop {
            match Arc::try_unwrap(pri) {
                Ok(p) => break p,
                Err(back) => {
                    assert!(
                        t0.elapsed() < Duration::from_secs(20),
                        "handler closure never released"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                    pri = back;
                }
            }
        };

        // Socket files go away with the endpoints.
        let (pp, sp) = (
            pri.socket_path().to_path_buf(),
            sec.socket_path().to_path_buf(),
        );
        drop(sec);
        assert!(!sp.exists());
        // With the secondary gone the broadcast reaches nobody.
        assert_eq!(pri.sendmsg(&Message::new("note").unwrap()).unwrap(), 0);
        let r = pri
            .request_sync(&Message::new("double").unwrap(), Duration::from_secs(1))
            .unwrap();
        assert_eq!(r.nb_sent, 0);
        drop(pri);
        assert!(!pp.exists());
    }

    fn tempfile_in(dir: &Path) -> std::fs::File {
        let p = dir.join("payload");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        std::fs::remove_file(&p).unwrap();
        f
    }
}
