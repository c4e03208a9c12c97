//! The server driven by hand from the test thread: the epoll fd waking for a
//! responder answered elsewhere, local calls, the socket file's life, and the
//! config format.

mod common;

use std::io::Write;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{register_test_methods, sock_path, wait_readable};
use jsonrpc::config::{JsonConfig, MethodCall, SubsystemConfig};
use jsonrpc::{Client, Error, RpcError, Server, State, StateMask};
use serde_json::{json, Value};

/// Polls until `cond` holds (the test thread is the reactor here).
fn poll_until(s: &Server, what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        if s.poll() == 0 {
            wait_readable(s.as_raw_fd(), 10);
        }
    }
}

#[test]
fn responder_from_another_thread_wakes_the_epoll_fd() {
    let path = sock_path("wake");
    let s = Server::listen(&path).unwrap();
    let held: Arc<Mutex<Option<jsonrpc::Responder>>> = Arc::default();
    let h = held.clone();
    s.register("hold", StateMask::ALL, move |r| {
        *h.lock().unwrap() = Some(r.into_responder())
    })
    .unwrap();
    let p = path.clone();
    let caller = std::thread::spawn(move || {
        let mut c = Client::connect(&p, Duration::from_secs(20)).unwrap();
        c.call("hold", Some(json!([1])))
    });
    poll_until(&s, "the request to arrive", || {
        held.lock().unwrap().is_some()
    });
    // Drain everything else: the server is idle and its fd quiet.
    while s.poll() > 0 {}
    assert!(
        !wait_readable(s.as_raw_fd(), 50),
        "idle server's epoll fd is readable"
    );
    let resp = held.lock().unwrap().take().unwrap();
    let answerer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        resp.respond(Ok(json!("late")));
    });
    assert!(
        wait_readable(s.as_raw_fd(), 10_000),
        "answer from another thread did not wake the epoll fd"
    );
    answerer.join().unwrap();
    let mut done = false;
    poll_until(&s, "the answer to reach the client", || {
        done = done || caller.is_finished();
        done
    });
    assert_eq!(caller.join().unwrap().unwrap(), json!("late"));
}

#[test]
fn call_local_runs_with_state_checks_and_answers_in_poll() {
    let path = sock_path("local");
    let s = Server::listen(&path).unwrap();
    register_test_methods(&s, Arc::new(AtomicUsize::new(0)));
    let results: Arc<Mutex<Vec<Result<Value, RpcError>>>> = Arc::default();
    for (m, p) in [
        ("echo", Some(json!({"a": 1}))),
        ("nope", None),
        ("runtime_only", None),
        ("echo_later", Some(json!([3]))),
    ] {
        let r = results.clone();
        s.call_local(m, p, move |res| r.lock().unwrap().push(res));
    }
    assert!(results.lock().unwrap().is_empty(), "done ran before poll");
    poll_until(&s, "four local answers", || {
        results.lock().unwrap().len() == 4
    });
    let r = results.lock().unwrap();
    assert!(r.contains(&Ok(json!({"a": 1}))));
    assert!(r.contains(&Ok(json!([3]))));
    assert!(r
        .iter()
        .any(|x| matches!(x, Err(e) if e.code == RpcError::METHOD_NOT_FOUND)));
    assert!(r
        .iter()
        .any(|x| matches!(x, Err(e) if e.code == RpcError::INVALID_STATE)));
    drop(r);
    s.set_state(State::Runtime);
    let r2 = results.clone();
    s.call_local("runtime_only", None, move |res| {
        r2.lock().unwrap().push(res)
    });
    poll_until(&s, "runtime answer", || results.lock().unwrap().len() == 5);
    assert_eq!(results.lock().unwrap()[4], Ok(json!("r")));
}

#[test]
fn listen_refuses_live_path_replaces_stale_and_cleans_up() {
    let path = sock_path("life");
    let s = Server::listen(&path).unwrap();
    assert!(matches!(
        Server::listen(&path),
        Err(Error::AddrInUse { .. })
    ));
    drop(s);
    assert!(!path.exists(), "socket file left after drop");
    // A stale socket file (bound, then its listener gone) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let s = Server::listen(&path).unwrap();
    let mut c = Client::connect(&path, Duration::from_secs(5)).unwrap();
    let mut methods = None;
    let t0 = Instant::now();
    let caller = std::thread::spawn(move || c.call("rpc_get_methods", None));
    while !caller.is_finished() && t0.elapsed() < Duration::from_secs(10) {
        s.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
    if caller.is_finished() {
        methods = caller.join().unwrap().ok();
    }
    assert_eq!(methods, Some(json!(["rpc_get_methods"])));
    drop(s);
    // A regular file in the way is not deleted.
    std::fs::write(&path, b"keep me").unwrap();
    assert!(matches!(Server::listen(&path), Err(Error::Listen { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn config_round_trip_and_errors_name_the_file() {
    let cfg = JsonConfig {
        subsystems: vec![
            SubsystemConfig {
                subsystem: "bdev".into(),
                config: Some(vec![
                    MethodCall {
                        method: "bdev_malloc_create".into(),
                        params: Some(
                            json!({"name": "Malloc0", "num_blocks": 131072, "block_size": 512}),
                        ),
                    },
                    MethodCall {
                        method: "bdev_wait_for_examine".into(),
                        params: None,
                    },
                ]),
            },
            SubsystemConfig {
                subsystem: "scsi".into(),
                config: None,
            },
        ],
    };
    let path = sock_path("cfg").with_extension("json");
    cfg.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("{\n  \"subsystems\": [\n"),
        "not pretty: {text}"
    );
    assert!(text.contains("\"config\": null"));
    let back = JsonConfig::load(&path).unwrap();
    assert_eq!(back, cfg);
    // Saving the loaded config gives the same bytes (stable order).
    back.save(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    assert_eq!(back.calls().count(), 2);

    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(b"{\n  \"subsystems\": [\n    {\"subsystem\": 5}\n  ]\n}\n")
        .unwrap();
    let e = JsonConfig::load(&path).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(matches!(e, Error::ConfigParse { line: 3, .. }), "{msg}");
    let e = JsonConfig::load(&path.with_extension("missing")).unwrap_err();
    assert!(matches!(e, Error::ConfigRead { .. }));
    std::fs::remove_file(&path).unwrap();
}
