//! vhost-user-blk controllers (SPDK's `spdk_vhost_blk` controllers): a named socket
//! under the socket directory, a bdev, and a framework thread (placed by the cpumask)
//! that owns everything of the controller: the listening socket and the connection (as
//! framework interrupts), the bdev descriptor and channel, and the queues' pollers.
//!
//! One front end at a time: a second connection while one is up is closed at once. A
//! front end that sends a malformed message (or stalls mid-message for longer than
//! [`MSG_TIMEOUT`]) is disconnected; the controller listens on and serves the next
//! one. Nothing a front end sends affects another controller.

use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bdev::BdevEvent;
use framework::interrupt::{self, Interrupt};
use framework::{thread, PollStatus, ThreadHandle};
use vhost::vhost_user::BackendReqHandler;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::queue::Ctx;
use crate::request::Geometry;
use crate::spec::ID_BYTES;

/// How long a front end may take to send the rest of a message it started.
pub const MSG_TIMEOUT: Duration = Duration::from_secs(2);
/// Queues a controller offers (the front end picks how many it uses).
pub const MAX_QUEUES: u16 = 16;

static SOCKET_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);
static CONTROLLERS: Mutex<Vec<Arc<Controller>>> = Mutex::new(Vec::new());

/// Set the directory the sockets go in (`-S`; default: the working directory).
pub fn set_socket_dir(dir: impl Into<PathBuf>) {
    *SOCKET_DIR.lock().unwrap_or_else(|e| e.into_inner()) = Some(dir.into());
}

/// The socket directory.
pub fn socket_dir() -> PathBuf {
    SOCKET_DIR
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(|| PathBuf::from("."))
}

/// What `vhost_create_blk_controller` takes.
#[derive(Debug, Clone)]
pub struct BlkOpts {
    /// Controller (and socket) name.
    pub name: String,
    /// Bdev name.
    pub bdev: String,
    /// Lcores the controller's thread may run on (empty: any).
    pub cpumask: Vec<u32>,
    /// The mask as given (reported back).
    pub cpumask_text: String,
    /// Refuse writes.
    pub readonly: bool,
}

struct Conn {
    intr: Interrupt,
    dev: Arc<Mutex<Device>>,
}

#[derive(Default)]
struct State {
    listener: Option<UnixListener>,
    listen_intr: Option<Interrupt>,
    ctx: Option<Arc<Ctx>>,
    conn: Option<Conn>,
    connections: u64,
    removed: bool,
}

/// What `vhost_get_controllers` reports of a controller.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// A front end is connected.
    pub connected: bool,
    /// Connections accepted so far.
    pub connections: u64,
    /// The counters of each running queue of this connection.
    pub queues: Vec<crate::queue::QueueCounters>,
    /// Requests refused as malformed on this connection.
    pub bad: u64,
}

/// A controller.
pub struct Controller {
    opts: BlkOpts,
    path: PathBuf,
    thread: Mutex<Option<ThreadHandle>>,
    state: Arc<Mutex<State>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every controller.
pub fn list() -> Vec<Arc<Controller>> {
    lock(&CONTROLLERS).clone()
}

/// The controller named `name`.
pub fn get(name: &str) -> Option<Arc<Controller>> {
    lock(&CONTROLLERS)
        .iter()
        .find(|c| c.opts.name == name)
        .cloned()
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && n != "."
        && n != ".."
}

/// Create a controller (on a framework thread); `done` runs with the result once its
/// thread has opened the bdev and listens.
pub fn create<D>(opts: BlkOpts, done: D) -> Result<()>
where
    D: FnOnce(Result<()>) + Send + 'static,
{
    if !valid_name(&opts.name) {
        return Err(Error::Invalid {
            what: "create a controller",
            why: format!(
                "name '{}' must be 1-64 letters, digits, '_', '-' or '.'",
                opts.name
            ),
        });
    }
    if bdev::bdev::get(&opts.bdev).is_none() {
        return Err(Error::Bdev {
            what: "create a controller",
            source: Box::new(bdev::Error::NotFound(opts.bdev.clone())),
        });
    }
    let path = socket_dir().join(&opts.name);
    let c = Arc::new(Controller {
        opts,
        path,
        thread: Mutex::new(None),
        state: Arc::new(Mutex::new(State::default())),
    });
    {
        let mut all = lock(&CONTROLLERS);
        if all.iter().any(|x| x.opts.name == c.opts.name) {
            return Err(Error::Exists(c.opts.name.clone()));
        }
        all.push(c.clone());
    }
    let undo = |c: &Arc<Controller>| lock(&CONTROLLERS).retain(|x| !Arc::ptr_eq(x, c));
    let listener = match bind(&c.path) {
        Ok(l) => l,
        Err(e) => {
            undo(&c);
            return Err(e);
        }
    };
    let th = match thread::spawn(&format!("vhost_{}", c.opts.name), &c.opts.cpumask) {
        Ok(t) => t,
        Err(source) => {
            undo(&c);
            let _ = std::fs::remove_file(&c.path);
            return Err(Error::Framework {
                what: "create the controller's thread",
                source: Box::new(source),
            });
        }
    };
    *lock(&c.thread) = Some(th.clone());
    let c2 = c.clone();
    let r = th.send_msg(move || {
        let r = c2.start_on_thread(listener);
        if r.is_err() {
            undo(&c2);
            let _ = std::fs::remove_file(&c2.path);
            c2.stop_on_thread();
            let _ = thread::exit();
        }
        done(r);
    });
    if r.is_err() {
        undo(&c);
        let _ = std::fs::remove_file(&c.path);
        return Err(Error::Invalid {
            what: "create a controller",
            why: "its thread refused the start message".into(),
        });
    }
    Ok(())
}

fn bind(path: &Path) -> Result<UnixListener> {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        // A socket left by a target that died: ours to replace. Anything else is not.
        if m.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        } else {
            return Err(Error::Listen {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a file that is not a socket is in the way",
                ),
            });
        }
    }
    let l = UnixListener::bind(path).map_err(|source| Error::Listen {
        path: path.to_path_buf(),
        source,
    })?;
    l.set_nonblocking(true).map_err(|source| Error::Listen {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(l)
}

/// Delete a controller (on a framework thread); `done` runs once its thread let go
/// of the bdev and the socket is gone.
pub fn delete<D: FnOnce() + Send + 'static>(name: &str, done: D) -> Result<()> {
    let c = {
        let mut all = lock(&CONTROLLERS);
        let pos = all
            .iter()
            .position(|x| x.opts.name == name)
            .ok_or_else(|| Error::NotFound(name.to_string()))?;
        all.remove(pos)
    };
    let _ = std::fs::remove_file(&c.path);
    let th = lock(&c.thread).clone();
    let Some(th) = th else {
        done();
        return Ok(());
    };
    let c2 = c.clone();
    if th
        .send_msg(move || {
            c2.stop_on_thread();
            let _ = thread::exit();
            done();
        })
        .is_err()
    {
        return Err(Error::Invalid {
            what: "delete a controller",
            why: "its thread is gone".into(),
        });
    }
    Ok(())
}

impl Controller {
    /// Options.
    pub fn opts(&self) -> &BlkOpts {
        &self.opts
    }

    /// Socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection state and counters.
    pub fn status(&self) -> Status {
        let st = lock(&self.state);
        let (queues, bad) = st
            .conn
            .as_ref()
            .map_or((Vec::new(), 0), |c| lock(&c.dev).counters());
        Status {
            connected: st.conn.is_some(),
            connections: st.connections,
            queues,
            bad,
        }
    }

    fn start_on_thread(self: &Arc<Self>, listener: UnixListener) -> Result<()> {
        let weak = Arc::downgrade(self);
        let desc = bdev::open(&self.opts.bdev, !self.opts.readonly, move |ev| {
            let Some(c) = weak.upgrade() else { return };
            match ev {
                BdevEvent::Remove => {
                    eal::log_notice!(
                        "vhost {}: bdev '{}' is going away: closing it",
                        c.opts.name,
                        c.opts.bdev
                    );
                    c.drop_bdev();
                }
                BdevEvent::Resize => c.resized(),
            }
        })
        .map_err(|source| Error::Bdev {
            what: "open the controller's bdev",
            source: Box::new(source),
        })?;
        let ch = desc.get_io_channel().map_err(|source| Error::Bdev {
            what: "get a channel to the controller's bdev",
            source: Box::new(source),
        })?;
        let info = desc.bdev().info().clone();
        let blocks = desc.bdev().num_blocks();
        let mut id = [0u8; ID_BYTES];
        let n = info.name.len().min(ID_BYTES);
        id[..n].copy_from_slice(&info.name.as_bytes()[..n]);
        let ctx = Arc::new(Ctx {
            desc,
            ch: Mutex::new(ch),
            geo: Geometry {
                block_size: u64::from(info.block_size),
                num_blocks: blocks,
                readonly: self.opts.readonly,
            },
            num_blocks: AtomicU64::new(blocks),
            id,
            name: self.opts.name.clone(),
        });
        let me = self.clone();
        let intr = interrupt::register(
            &format!("vhost_{}_listen", self.opts.name),
            listener.as_raw_fd(),
            move || {
                me.accept();
                PollStatus::Busy
            },
        )
        .map_err(|source| Error::Framework {
            what: "watch the controller's socket",
            source: Box::new(source),
        })?;
        let mut st = lock(&self.state);
        st.listener = Some(listener);
        st.listen_intr = Some(intr);
        st.ctx = Some(ctx);
        Ok(())
    }

    /// The bdev's size changed (on the controller's thread): new range checks and
    /// config space, and the front end told (it re-reads the config and interrupts
    /// the guest).
    fn resized(&self) {
        let st = lock(&self.state);
        let Some(ctx) = &st.ctx else { return };
        let blocks = ctx.desc.bdev().num_blocks();
        ctx.num_blocks.store(blocks, Ordering::Relaxed);
        eal::log_notice!(
            "vhost {}: bdev '{}' now {blocks} blocks",
            self.opts.name,
            self.opts.bdev
        );
        if let Some(conn) = &st.conn {
            match lock(&conn.dev).config_changed() {
                Ok(true) => {}
                Ok(false) => eal::log_warn!(
                    "vhost {}: the front end gave no back-end request channel: the guest \
                     sees the new size only when it reads the config again",
                    self.opts.name
                ),
                Err(e) => eal::log_warn!("vhost {}: {e}", self.opts.name),
            }
        }
    }

    fn accept(self: &Arc<Self>) {
        let (stream, ctx) = {
            let st = lock(&self.state);
            let Some(l) = &st.listener else { return };
            let stream = match l.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    eal::log_warn!("vhost {}: accept: {e}", self.opts.name);
                    return;
                }
            };
            if st.conn.is_some() {
                eal::log_warn!(
                    "vhost {}: a second front end refused (one is connected)",
                    self.opts.name
                );
                return;
            }
            let Some(ctx) = st.ctx.clone() else {
                eal::log_warn!("vhost {}: refused a front end: no bdev", self.opts.name);
                return;
            };
            (stream, ctx)
        };
        if let Err(e) = stream.set_read_timeout(Some(MSG_TIMEOUT)) {
            eal::log_warn!("vhost {}: {e}", self.opts.name);
            return;
        }
        let fd = stream.as_raw_fd();
        let dev = Arc::new(Mutex::new(Device::new(ctx, MAX_QUEUES, self.opts.readonly)));
        let mut handler = BackendReqHandler::from_stream(stream, dev.clone());
        let me = self.clone();
        let dev2 = dev.clone();
        let intr = interrupt::register(&format!("vhost_{}_conn", self.opts.name), fd, move || {
            match lock(&dev2).take_backend_req(fd) {
                Ok(true) => return PollStatus::Busy,
                Ok(false) => {}
                Err(e) => {
                    eal::log_warn!("vhost {}: dropping the front end: {e}", me.opts.name);
                    me.drop_conn();
                    return PollStatus::Busy;
                }
            }
            if let Err(e) = handler.handle_request() {
                match e {
                    vhost::vhost_user::Error::Disconnected
                    | vhost::vhost_user::Error::PartialMessage => {
                        eal::log_notice!("vhost {}: front end disconnected", me.opts.name)
                    }
                    e => eal::log_warn!("vhost {}: dropping the front end: {e}", me.opts.name),
                }
                me.drop_conn();
            }
            PollStatus::Busy
        });
        match intr {
            Ok(intr) => {
                let mut st = lock(&self.state);
                st.conn = Some(Conn { intr, dev });
                st.connections += 1;
                eal::log_notice!("vhost {}: front end connected", self.opts.name);
            }
            Err(e) => eal::log_warn!("vhost {}: watch the connection: {e}", self.opts.name),
        }
    }

    /// Close the connection (on the controller's thread).
    fn drop_conn(&self) {
        let conn = lock(&self.state).conn.take();
        if let Some(c) = conn {
            lock(&c.dev).stop_all();
            let _ = c.intr.unregister();
        }
    }

    fn drop_bdev(&self) {
        self.drop_conn();
        let ctx = {
            let mut st = lock(&self.state);
            st.removed = true;
            st.ctx.take()
        };
        drop(ctx);
    }

    fn stop_on_thread(&self) {
        self.drop_bdev();
        let mut st = lock(&self.state);
        if let Some(i) = st.listen_intr.take() {
            let _ = i.unregister();
        }
        st.listener = None;
    }
}
