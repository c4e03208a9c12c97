//! The non-blocking Unix-socket JSON-RPC 2.0 server.
//!
//! `poll()` does, without blocking: accept new connections, read and frame
//! what they sent, check each request and hand it to its method, gather the
//! answers from the completion queue (answers given inline, later, or from
//! other threads), and write what the sockets take. The server's epoll fd
//! (`as_raw_fd`) holds the listener, the connections and the completion
//! doorbell, so a reactor can sleep on it while the server is idle.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::conn::{Conn, Frame};
use crate::error::{Error, RpcError};
use crate::protocol::{self, Call};
use crate::registry::{Handler, Lookup, Registry, State, StateHandle, StateMask};
use crate::request::{Completions, Request, Responder, Target};
use crate::sys::{self, Epoll, EventFd, Ready};

/// Epoll token of the listening socket.
const TOKEN_LISTENER: u64 = u64::MAX;
/// Epoll token of the completion doorbell.
const TOKEN_DOORBELL: u64 = u64::MAX - 1;
/// Events taken per `poll()`.
const MAX_EVENTS: usize = 64;
/// Default cap on one connection's unframed input and on its unsent output.
pub const DEFAULT_MAX_REQUEST: usize = 64 << 20;

struct Table {
    conns: HashMap<u64, Conn>,
    next_id: u64,
    events: Vec<Ready>,
    /// Out of descriptors: the listener is out of the epoll set since then,
    /// so a pending connection does not make every poll spin. It comes back
    /// when a connection closes or `LISTEN_RETRY` later.
    listen_paused: Option<Instant>,
}

/// How long accepting stays paused after running out of descriptors.
const LISTEN_RETRY: Duration = Duration::from_millis(100);

/// A request checked and ready for its method.
struct Dispatch {
    call: Call,
    conn: u64,
    slot: Option<(u64, usize)>,
}

/// A Unix-socket JSON-RPC 2.0 server. Every method takes `&self`; the server
/// is `Send + Sync`, but one thread is expected to call `poll()`.
pub struct Server {
    path: PathBuf,
    /// Device and inode of the socket file we bound, to remove only ours.
    file_id: Option<(u64, u64)>,
    listener: UnixListener,
    epoll: Epoll,
    completions: Arc<Completions>,
    registry: Arc<RwLock<Registry>>,
    state: StateHandle,
    table: Mutex<Table>,
    max_request: AtomicUsize,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GetMethodsParams {
    #[serde(default)]
    current: bool,
    #[serde(default)]
    include_aliases: bool,
}

impl Server {
    /// Listens on the Unix socket `path`. Refuses a path where a live server
    /// answers or where a non-socket file lies; removes a stale socket file.
    /// The server starts in [`State::Startup`] with `rpc_get_methods` built in.
    pub fn listen(path: &Path) -> Result<Server, Error> {
        let listen_err = |source| Error::Listen {
            path: path.into(),
            source,
        };
        if sys::socket_file_id(path).map_err(listen_err)?.is_some() {
            match UnixStream::connect(path) {
                Ok(_) => return Err(Error::AddrInUse { path: path.into() }),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path).map_err(listen_err)?;
                }
                Err(e) => return Err(listen_err(e)),
            }
        }
        let listener = UnixListener::bind(path).map_err(listen_err)?;
        let file_id = sys::socket_file_id(path).ok().flatten();
        listener.set_nonblocking(true).map_err(listen_err)?;
        let setup = |what| move |source| Error::Setup { what, source };
        let epoll = Epoll::new().map_err(setup("epoll fd"))?;
        let doorbell = EventFd::new().map_err(setup("eventfd"))?;
        epoll
            .add(listener.as_raw_fd(), sys::EPOLLIN, TOKEN_LISTENER)
            .map_err(setup("epoll fd"))?;
        epoll
            .add(doorbell.raw(), sys::EPOLLIN, TOKEN_DOORBELL)
            .map_err(setup("epoll fd"))?;
        let server = Server {
            path: path.into(),
            file_id,
            listener,
            epoll,
            completions: Arc::new(Completions::new(doorbell)),
            registry: Arc::new(RwLock::new(Registry::default())),
            state: StateHandle::default(),
            table: Mutex::new(Table {
                conns: HashMap::new(),
                next_id: 0,
                events: Vec::new(),
                listen_paused: None,
            }),
            max_request: AtomicUsize::new(DEFAULT_MAX_REQUEST),
        };
        server.register_builtins()?;
        Ok(server)
    }

    fn register_builtins(&self) -> Result<(), Error> {
        // Weak: the registry owns this handler, which must not own the registry.
        let reg: Weak<RwLock<Registry>> = Arc::downgrade(&self.registry);
        let state = self.state.clone();
        self.register("rpc_get_methods", StateMask::ALL, move |req| {
            let p: GetMethodsParams = match req.params() {
                Ok(p) => p,
                Err(e) => return req.respond(Err(e)),
            };
            let Some(reg) = reg.upgrade() else {
                return req.respond(Err(RpcError::internal("server is shutting down")));
            };
            let cur = p.current.then(|| state.get());
            let names = read(&reg).names(cur, p.include_aliases);
            req.respond(Ok(Value::from(names)));
        })
    }

    /// Registers `method`, callable in the states of `allowed`. The handler
    /// runs on the thread that calls `poll()` (or `call_local()`), and must
    /// answer through the request, now or later.
    pub fn register<F>(&self, method: &str, allowed: StateMask, handler: F) -> Result<(), Error>
    where
        F: Fn(Request) + Send + Sync + 'static,
    {
        let h: Handler = Arc::new(handler);
        write(&self.registry).register(method, allowed, h)
    }

    /// Makes `alias` a deprecated second name of the registered `method`
    /// (listed by `rpc_get_methods` with `include_aliases`).
    pub fn register_alias(&self, alias: &str, method: &str) -> Result<(), Error> {
        write(&self.registry).register_alias(alias, method)
    }

    /// Sets the state that methods are checked against.
    pub fn set_state(&self, state: State) {
        self.state.set(state);
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state.get()
    }

    /// A handle on the state for handlers that change it.
    pub fn state_handle(&self) -> StateHandle {
        self.state.clone()
    }

    /// Sets the per-connection cap (default 64 MiB) on a request still being
    /// received and on answers not yet read by the client. A request past it
    /// gets an error and its connection is closed; a client whose unread
    /// answers pass it is not read from until it reads them.
    pub fn set_max_request_size(&self, bytes: usize) {
        self.max_request.store(bytes.max(1), Ordering::Relaxed);
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Registered method names (no aliases), in registration order; only
    /// those callable in `state` if given.
    pub fn methods(&self, state: Option<State>) -> Vec<String> {
        read(&self.registry).names(state, false)
    }

    /// Open client connections.
    pub fn connections(&self) -> usize {
        lock(&self.table).conns.len()
    }

    /// An epoll fd that is readable when `poll()` has work to do.
    pub fn as_raw_fd(&self) -> RawFd {
        self.epoll.raw()
    }

    /// Calls `method` from inside the process, with the same state checks as a
    /// client's call. `done` runs with the answer during a later `poll()`, on
    /// the polling thread.
    pub fn call_local<F>(&self, method: &str, params: Option<Value>, done: F)
    where
        F: FnOnce(Result<Value, RpcError>) + Send + 'static,
    {
        let responder = Responder::new(self.completions.clone(), Target::Local(Box::new(done)));
        self.invoke(method.to_string(), params, responder);
    }

    /// Checks the method and state, then runs the handler (or answers the
    /// error through the responder).
    fn invoke(&self, method: String, params: Option<Value>, responder: Responder) {
        let found = read(&self.registry).lookup(&method);
        match found {
            Lookup::NotFound => responder.respond(Err(RpcError::method_not_found(&method))),
            Lookup::Found { allowed, handler } => {
                let state = self.state();
                if allowed.allows(state) {
                    handler(Request::new(method, params, responder));
                } else {
                    responder.respond(Err(state.refusal()));
                }
            }
        }
    }

    /// Does all work that is ready, without blocking. Returns a count of the
    /// work done (0: idle).
    pub fn poll(&self) -> usize {
        let mut work = 0;
        let mut dispatch = Vec::new();
        {
            let mut t = lock(&self.table);
            if t.listen_paused
                .is_some_and(|at| at.elapsed() >= LISTEN_RETRY)
            {
                self.resume_listener(&mut t);
            }
            let mut events = std::mem::take(&mut t.events);
            // An epoll_wait failure on our own fd (EBADF/EINVAL) cannot occur;
            // with no events the rest of poll still runs.
            let _ = self.epoll.wait(&mut events, MAX_EVENTS, 0);
            for ev in &events {
                work += 1;
                match ev.token {
                    TOKEN_LISTENER => self.accept(&mut t),
                    TOKEN_DOORBELL => {}
                    id => self.read_conn(&mut t, id, ev.events, &mut dispatch),
                }
            }
            t.events = events;
        }
        work += dispatch.len();
        for d in dispatch {
            let target = match d.call.id {
                Some(id) => Target::Conn {
                    conn: d.conn,
                    id,
                    slot: d.slot,
                },
                None => Target::Notification {
                    conn: d.conn,
                    slot: d.slot,
                },
            };
            let responder = Responder::new(self.completions.clone(), target);
            self.invoke(d.call.method, d.call.params, responder);
        }
        let mut done = Vec::new();
        self.completions.drain(&mut done);
        work += done.len();
        let mut local = Vec::new();
        {
            let mut t = lock(&self.table);
            for c in done {
                match c.target {
                    Target::Conn { conn, id, slot } => {
                        if let Some(cn) = t.conns.get_mut(&conn) {
                            cn.pending -= 1;
                            cn.answer(Some(&id), slot, &c.result);
                        }
                    }
                    Target::Notification { conn, slot } => {
                        if let Some(cn) = t.conns.get_mut(&conn) {
                            cn.pending -= 1;
                            cn.answer(None, slot, &c.result);
                        }
                    }
                    Target::Local(f) => local.push((f, c.result)),
                }
            }
            work += self.flush_and_reap(&mut t);
        }
        for (f, r) in local {
            f(r);
        }
        work
    }

    fn accept(&self, t: &mut Table) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let id = t.next_id;
                    t.next_id += 1;
                    let conn = Conn::new(stream);
                    if self
                        .epoll
                        .add(conn.stream.as_raw_fd(), conn.interest, id)
                        .is_ok()
                    {
                        t.conns.insert(id, conn);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if sys::is_resource_exhaustion(&e) => {
                    if self
                        .epoll
                        .modify(self.listener.as_raw_fd(), 0, TOKEN_LISTENER)
                        .is_ok()
                    {
                        t.listen_paused = Some(Instant::now());
                    }
                    break;
                }
                // WouldBlock: all accepted. ECONNABORTED and the like: that
                // one connection is gone; the rest wait for the next poll.
                Err(_) => break,
            }
        }
    }

    fn resume_listener(&self, t: &mut Table) {
        if self
            .epoll
            .modify(self.listener.as_raw_fd(), sys::EPOLLIN, TOKEN_LISTENER)
            .is_ok()
        {
            t.listen_paused = None;
        }
    }

    fn read_conn(&self, t: &mut Table, id: u64, events: u32, dispatch: &mut Vec<Dispatch>) {
        let cap = self.max_request.load(Ordering::Relaxed);
        let Some(conn) = t.conns.get_mut(&id) else {
            return;
        };
        if events & (sys::EPOLLIN | sys::EPOLLRDHUP | sys::EPOLLHUP | sys::EPOLLERR) != 0 {
            let mut frames = Vec::new();
            conn.read_frames(cap, &mut frames);
            for f in frames {
                match f {
                    Frame::Value(v) => route(conn, id, v, dispatch),
                    Frame::Malformed(e) => {
                        conn.answer(Some(&Value::Null), None, &Err(RpcError::parse_error(e)))
                    }
                    Frame::TooLarge => conn.answer(
                        Some(&Value::Null),
                        None,
                        &Err(RpcError::invalid_request(format!(
                            "request larger than the {cap}-byte limit; closing"
                        ))),
                    ),
                }
            }
        }
        if events & (sys::EPOLLHUP | sys::EPOLLERR) != 0 && !conn.detached {
            // Both directions are gone: nobody reads answers any more.
            conn.read_closed = true;
            conn.detached = true;
            let _ = self.epoll.delete(conn.stream.as_raw_fd());
        }
    }

    /// Writes pending output, adjusts epoll interest, drops finished
    /// connections. Returns how many connections wrote something.
    fn flush_and_reap(&self, t: &mut Table) -> usize {
        let cap = self.max_request.load(Ordering::Relaxed);
        let mut work = 0;
        let mut gone = Vec::new();
        for (&id, c) in t.conns.iter_mut() {
            if c.out_len() > 0 && c.flush() > 0 {
                work += 1;
            }
            c.shut_write_if_done();
            if c.finished() {
                gone.push(id);
                continue;
            }
            if c.detached {
                continue;
            }
            let mut want = 0;
            if !c.read_closed && c.out_len() < cap {
                want |= sys::EPOLLIN | sys::EPOLLRDHUP;
            }
            if c.out_len() > 0 {
                want |= sys::EPOLLOUT;
            }
            if want != c.interest && self.epoll.modify(c.stream.as_raw_fd(), want, id).is_ok() {
                c.interest = want;
            }
        }
        let closed = !gone.is_empty();
        for id in gone {
            if let Some(c) = t.conns.remove(&id) {
                if !c.detached {
                    let _ = self.epoll.delete(c.stream.as_raw_fd());
                }
            }
        }
        if closed && t.listen_paused.is_some() {
            self.resume_listener(t);
        }
        work
    }
}

/// Sorts one received value into requests to run and errors to answer.
fn route(conn: &mut Conn, id: u64, v: Value, dispatch: &mut Vec<Dispatch>) {
    match v {
        Value::Array(items) if items.is_empty() => conn.answer(
            Some(&Value::Null),
            None,
            &Err(RpcError::invalid_request("empty batch")),
        ),
        Value::Array(items) => {
            let key = conn.begin_batch(items.len());
            for (i, item) in items.into_iter().enumerate() {
                one(conn, id, item, Some((key, i)), dispatch);
            }
        }
        v => one(conn, id, v, None, dispatch),
    }
}

fn one(
    conn: &mut Conn,
    id: u64,
    v: Value,
    slot: Option<(u64, usize)>,
    dispatch: &mut Vec<Dispatch>,
) {
    match protocol::parse_call(v) {
        Ok(call) => {
            conn.pending += 1;
            dispatch.push(Dispatch {
                call,
                conn: id,
                slot,
            });
        }
        Err((e, answer_id)) => conn.answer(answer_id.as_ref(), slot, &Err(e)),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Remove the socket file only if it is still the one we bound.
        if let (Some(ours), Ok(Some(now))) = (self.file_id, sys::socket_file_id(&self.path)) {
            if ours == now {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("path", &self.path)
            .field("state", &self.state())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read(r: &RwLock<Registry>) -> std::sync::RwLockReadGuard<'_, Registry> {
    r.read().unwrap_or_else(|p| p.into_inner())
}

fn write(r: &RwLock<Registry>) -> std::sync::RwLockWriteGuard<'_, Registry> {
    r.write().unwrap_or_else(|p| p.into_inner())
}
