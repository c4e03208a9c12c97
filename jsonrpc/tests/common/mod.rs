//! A test server on a private socket, polled by a background thread that
//! sleeps on the server's epoll fd, and raw-socket helpers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jsonrpc::{RpcError, Server, StateMask};
use serde_json::Value;

pub fn sock_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fp-jsonrpc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}.sock"))
}

/// Waits until `fd` is readable or `ms` pass; returns whether it became readable.
pub fn wait_readable(fd: i32, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n == 1 && p.revents & libc::POLLIN != 0
}

pub struct TestServer {
    pub server: Arc<Server>,
    pub path: PathBuf,
    pub notified: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Registers the test methods: echo (result = params), echo_later (answers
/// from another thread), drop (drops the request), fail (-32602),
/// startup_only, runtime_only, count (counts calls, for notifications).
pub fn register_test_methods(s: &Server, notified: Arc<AtomicUsize>) {
    s.register("echo", StateMask::ALL, |r| {
        let p = r.raw_params().cloned().unwrap_or(Value::Null);
        r.respond(Ok(p))
    })
    .unwrap();
    s.register("echo_later", StateMask::ALL, |r| {
        let p = r.raw_params().cloned().unwrap_or(Value::Null);
        let resp = r.into_responder();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            resp.respond(Ok(p));
        });
    })
    .unwrap();
    s.register("drop", StateMask::ALL, drop).unwrap();
    s.register("fail", StateMask::ALL, |r| {
        r.respond(Err(RpcError::invalid_params("no")))
    })
    .unwrap();
    s.register("startup_only", StateMask::STARTUP, |r| {
        r.respond(Ok(Value::from("s")))
    })
    .unwrap();
    s.register("runtime_only", StateMask::RUNTIME, |r| {
        r.respond(Ok(Value::from("r")))
    })
    .unwrap();
    s.register("count", StateMask::ALL, move |r| {
        notified.fetch_add(1, Ordering::SeqCst);
        r.respond(Ok(Value::Null))
    })
    .unwrap();
}

impl TestServer {
    pub fn start(name: &str) -> TestServer {
        let path = sock_path(name);
        let server = Arc::new(Server::listen(&path).unwrap());
        let notified = Arc::new(AtomicUsize::new(0));
        register_test_methods(&server, notified.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (server.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                if s.poll() == 0 {
                    wait_readable(s.as_raw_fd(), 20);
                }
            }
        });
        TestServer {
            server,
            path,
            notified,
            stop,
            thread: Some(thread),
        }
    }

    pub fn connect(&self) -> UnixStream {
        let c = UnixStream::connect(&self.path).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c
    }

    /// Waits until the server holds `n` connections (or panics after 10 s).
    pub fn wait_connections(&self, n: usize) {
        let t0 = Instant::now();
        while self.server.connections() != n {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "connections stayed {} (want {n})",
                self.server.connections()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads JSON values from a raw stream (one value per call).
pub struct Reader {
    pub stream: UnixStream,
    buf: Vec<u8>,
}

impl Reader {
    pub fn new(stream: UnixStream) -> Reader {
        Reader {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next value, or `None` at EOF.
    pub fn next(&mut self) -> Option<Value> {
        loop {
            let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
            match it.next() {
                Some(Ok(v)) => {
                    let off = it.byte_offset();
                    self.buf.drain(..off);
                    return Some(v);
                }
                Some(Err(e)) if !e.is_eof() => panic!("server sent bad JSON: {e}"),
                _ => {}
            }
            let mut chunk = vec![0u8; 1 << 16];
            let n = self
                .stream
                .read(&mut chunk)
                .expect("read timed out or failed");
            if n == 0 {
                assert!(
                    self.buf.iter().all(|b| b.is_ascii_whitespace()),
                    "EOF inside a response"
                );
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn call(&mut self, req: &Value) -> Value {
        self.send(serde_json::to_string(req).unwrap().as_bytes());
        self.next().expect("connection closed before the response")
    }
}
