//! The server over real Unix sockets: protocol errors, stream framing, batches,
//! notifications, concurrency, slow clients and state gating.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Reader, TestServer};
use jsonrpc::{Client, RpcError, State};
use serde_json::{json, Value};

/// A fresh client's `echo` of `v` comes back unchanged (the server still serves).
fn assert_echoes(ts: &TestServer, v: Value) {
    assert_eq!(client(ts).call("echo", Some(v.clone())).unwrap(), v);
}

fn client(ts: &TestServer) -> Client {
    Client::connect(&ts.path, Duration::from_secs(20)).unwrap()
}

/// The strings of a JSON array.
fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

fn err_code(v: &Value) -> i64 {
    v["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no error in {v}"))
}

#[test]
fn malformed_json_gets_parse_error_and_close_then_server_serves() {
    let ts = TestServer::start("malformed");
    let mut r = Reader::new(ts.connect());
    r.send(b"{\"jsonrpc\":\"2.0\",,\"id\":1}");
    let v = r.next().unwrap();
    assert_eq!(err_code(&v), -32700);
    assert_eq!(v["id"], Value::Null);
    assert!(
        r.next().is_none(),
        "connection must close after a parse error"
    );
    // A stray closing bracket is malformed too.
    let mut r = Reader::new(ts.connect());
    r.send(b"] ");
    assert_eq!(err_code(&r.next().unwrap()), -32700);
    assert!(r.next().is_none());
    assert_echoes(&ts, json!({"a": 1}));
}

#[test]
fn invalid_request_objects_get_32600_with_their_id() {
    let ts = TestServer::start("invalid");
    let mut r = Reader::new(ts.connect());
    let v = r.call(&json!({"jsonrpc": "1.0", "method": "echo", "id": 7}));
    assert_eq!((err_code(&v), v["id"].clone()), (-32600, json!(7)));
    let v = r.call(&json!({"jsonrpc": "2.0", "method": 5, "id": "x"}));
    assert_eq!((err_code(&v), v["id"].clone()), (-32600, json!("x")));
    let v = r.call(&json!({"jsonrpc": "2.0", "method": "echo", "params": "s", "id": 1}));
    assert_eq!(err_code(&v), -32600);
    // A bare scalar ends at a delimiter.
    r.send(b"42\n");
    let v = r.next().unwrap();
    assert_eq!((err_code(&v), v["id"].clone()), (-32600, Value::Null));
    let v = r.call(&json!({"jsonrpc": "2.0", "method": "nope", "id": 2}));
    assert_eq!(err_code(&v), -32601);
    assert!(v["error"]["message"].as_str().unwrap().contains("nope"));
    let v = r.call(&json!({"jsonrpc": "2.0", "method": "fail", "id": 3}));
    assert_eq!(err_code(&v), -32602);
    // The connection survives all of these.
    let v = r.call(&json!({"jsonrpc": "2.0", "method": "echo", "params": [1], "id": 4}));
    assert_eq!(v["result"], json!([1]));
}

#[test]
fn ids_of_any_type_are_echoed() {
    let ts = TestServer::start("ids");
    let mut r = Reader::new(ts.connect());
    for id in [
        json!(1),
        json!(-2.5),
        json!("abc"),
        json!(null),
        json!({"k": [1]}),
        json!([true]),
    ] {
        let v = r.call(&json!({"jsonrpc": "2.0", "method": "echo", "params": {"x": 1}, "id": id}));
        assert_eq!(v["id"], id);
        assert_eq!(v["result"], json!({"x": 1}));
        assert_eq!(v["jsonrpc"], "2.0");
    }
}

#[test]
fn client_closing_mid_request_is_dropped_cleanly() {
    let ts = TestServer::start("truncated");
    {
        let mut s = ts.connect();
        s.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":{\"a\":\"xxxx")
            .unwrap();
        ts.wait_connections(1);
    }
    ts.wait_connections(0);
    // A client that leaves with an answer still pending is dropped too.
    {
        let mut s = ts.connect();
        s.write_all(br#"{"jsonrpc":"2.0","method":"echo_later","params":[1],"id":1}"#)
            .unwrap();
    }
    ts.wait_connections(0);
    assert_echoes(&ts, json!([2]));
}

#[test]
fn huge_request_of_16_mib() {
    let ts = TestServer::start("huge");
    let big = "x".repeat(16 << 20);
    let mut c = Client::connect(&ts.path, Duration::from_secs(60)).unwrap();
    let v = c.call("echo", Some(json!({"s": big}))).unwrap();
    assert_eq!(v["s"].as_str().unwrap().len(), 16 << 20);
    assert!(v["s"].as_str().unwrap().bytes().all(|b| b == b'x'));
}

#[test]
fn request_past_the_cap_gets_an_error_and_close() {
    let ts = TestServer::start("cap");
    ts.server.set_max_request_size(1 << 20);
    let mut r = Reader::new(ts.connect());
    let big = format!(
        r#"{{"jsonrpc":"2.0","method":"echo","params":["{}"],"id":1}}"#,
        "y".repeat(2 << 20)
    );
    // The server may close while we still write: ignore a write error.
    let _ = r.stream.write_all(big.as_bytes());
    let v = r.next().unwrap();
    assert_eq!((err_code(&v), v["id"].clone()), (-32600, Value::Null));
    assert!(r.next().is_none());
    assert_echoes(&ts, json!([1]));
}

#[test]
fn batches() {
    let ts = TestServer::start("batch");
    let mut r = Reader::new(ts.connect());
    let v = r.call(&json!([
        {"jsonrpc": "2.0", "method": "echo", "params": [1], "id": "a"},
        {"jsonrpc": "2.0", "method": "count"},
        {"foo": "bar"},
        {"jsonrpc": "2.0", "method": "nope", "id": "c"},
        {"jsonrpc": "2.0", "method": "echo_later", "params": [2], "id": "d"},
        1
    ]));
    let arr = v.as_array().expect("a batch gets an array");
    assert_eq!(arr.len(), 5, "the notification gets no member: {v}");
    let by_id = |id: Value| arr.iter().find(|m| m["id"] == id).cloned().unwrap();
    assert_eq!(by_id(json!("a"))["result"], json!([1]));
    assert_eq!(err_code(&by_id(json!("c"))), -32601);
    assert_eq!(by_id(json!("d"))["result"], json!([2]));
    assert_eq!(
        arr.iter()
            .filter(|m| m["id"].is_null() && err_code(m) == -32600)
            .count(),
        2
    );
    // An empty batch is one invalid request, not an array.
    let v = r.call(&json!([]));
    assert_eq!(err_code(&v), -32600);
    // A batch of notifications only gets nothing: the next answer is the echo's.
    r.send(br#"[{"jsonrpc":"2.0","method":"count"},{"jsonrpc":"2.0","method":"count"}]"#);
    let v = r.call(&json!({"jsonrpc": "2.0", "method": "echo", "params": [9], "id": 9}));
    assert_eq!(v["id"], 9);
    assert_eq!(ts.notified.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[test]
fn notification_gets_no_response_but_runs() {
    let ts = TestServer::start("notify");
    let mut r = Reader::new(ts.connect());
    r.send(br#"{"jsonrpc":"2.0","method":"count"}{"jsonrpc":"2.0","method":"nope"}"#);
    let v = r.call(&json!({"jsonrpc": "2.0", "method": "echo", "params": [1], "id": 1}));
    assert_eq!(v["id"], 1);
    assert_eq!(ts.notified.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A null id is a request, not a notification.
    let v = r.call(&json!({"jsonrpc": "2.0", "method": "echo", "params": [2], "id": null}));
    assert_eq!(
        (v["id"].clone(), v["result"].clone()),
        (Value::Null, json!([2]))
    );
}

#[test]
fn pipelined_and_split_requests() {
    let ts = TestServer::start("pipeline");
    let mut r = Reader::new(ts.connect());
    let mut all = String::new();
    for i in 0..100 {
        all.push_str(&format!(
            r#"{{"jsonrpc":"2.0","method":"echo","params":[{i}],"id":{i}}}"#
        ));
        if i % 3 == 0 {
            all.push('\n');
        }
    }
    r.send(all.as_bytes());
    let mut seen = [false; 100];
    for _ in 0..100 {
        let v = r.next().unwrap();
        let id = v["id"].as_u64().unwrap() as usize;
        assert_eq!(v["result"], json!([id]));
        assert!(!seen[id]);
        seen[id] = true;
    }
    // One request a byte at a time.
    let one = br#"{"jsonrpc":"2.0","method":"echo","params":{"k":"a}\"b"},"id":"z"}"#;
    for b in one {
        r.stream.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    let v = r.next().unwrap();
    assert_eq!(
        (v["id"].clone(), v["result"].clone()),
        (json!("z"), json!({"k": "a}\"b"}))
    );
}

#[test]
fn concurrent_32_clients_200_requests_each() {
    let ts = TestServer::start("concurrent");
    let threads: Vec<_> = (0..32)
        .map(|c| {
            let path = ts.path.clone();
            std::thread::spawn(move || {
                let s = std::os::unix::net::UnixStream::connect(&path).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let mut r = Reader::new(s);
                // Send all 200 first (half answered later from other threads),
                // then match every answer to its id exactly once.
                let mut out = String::new();
                for i in 0..200 {
                    let m = if i % 2 == 0 { "echo" } else { "echo_later" };
                    out.push_str(&format!(
                        r#"{{"jsonrpc":"2.0","method":"{m}","params":{{"c":{c},"i":{i}}},"id":"{c}-{i}"}}"#
                    ));
                }
                r.send(out.as_bytes());
                let mut seen = [false; 200];
                for _ in 0..200 {
                    let v = r.next().unwrap();
                    let i = v["result"]["i"].as_u64().unwrap() as usize;
                    assert_eq!(v["result"]["c"], c);
                    assert_eq!(v["id"], format!("{c}-{i}"));
                    assert!(!seen[i], "answer {i} twice");
                    seen[i] = true;
                }
                assert!(seen.iter().all(|s| *s));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn slow_client_does_not_block_others() {
    let ts = TestServer::start("slow");
    ts.server.set_max_request_size(2 << 20);
    let payload = "p".repeat(64 << 10);
    let mut slow = ts.connect();
    let writer = {
        let mut w = slow.try_clone().unwrap();
        let payload = payload.clone();
        std::thread::spawn(move || {
            // 200 x 64 KiB of answers, far more than the socket buffers and
            // the server's 2 MiB output cap; this blocks until the client reads.
            for i in 0..200 {
                let req = format!(
                    r#"{{"jsonrpc":"2.0","method":"echo","params":["{payload}"],"id":{i}}}"#
                );
                w.write_all(req.as_bytes()).unwrap();
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // Others are served while the slow client reads nothing.
    for i in 0..20 {
        assert_echoes(&ts, json!([i]));
    }
    // Now the slow client reads: every answer arrives.
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut got = 0;
    while got < 200 {
        let n = slow.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {got} answers");
        buf.extend_from_slice(&chunk[..n]);
        let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
        let mut off = 0;
        while let Some(Ok(v)) = it.next() {
            assert_eq!(v["id"], got);
            assert_eq!(v["result"][0].as_str().unwrap().len(), payload.len());
            got += 1;
            off = it.byte_offset();
        }
        buf.drain(..off);
    }
    writer.join().unwrap();
}

#[test]
fn state_gating() {
    let ts = TestServer::start("state");
    let mut c = client(&ts);
    assert_eq!(c.call("startup_only", None).unwrap(), json!("s"));
    let e = c.call("runtime_only", None).unwrap_err();
    let e = e.rpc_error().unwrap();
    assert_eq!(e.code, RpcError::INVALID_STATE);
    assert!(e
        .message
        .starts_with("Method may only be called after framework is initialized"));
    ts.server.set_state(State::Runtime);
    assert_eq!(c.call("runtime_only", None).unwrap(), json!("r"));
    let e = c.call("startup_only", None).unwrap_err();
    assert_eq!(e.rpc_error().unwrap().code, -1);
    assert!(e
        .rpc_error()
        .unwrap()
        .message
        .starts_with("Method may only be called before"));
}

#[test]
fn rpc_get_methods_and_aliases() {
    let ts = TestServer::start("methods");
    ts.server.register_alias("echo_old", "echo").unwrap();
    let mut c = client(&ts);
    let all = c.call("rpc_get_methods", None).unwrap();
    let names = strings(&all);
    assert!(names.contains(&"rpc_get_methods") && names.contains(&"runtime_only"));
    assert!(!names.contains(&"echo_old"));
    let cur = c
        .call(
            "rpc_get_methods",
            Some(json!({"current": true, "include_aliases": true})),
        )
        .unwrap();
    let cur = strings(&cur);
    assert!(cur.contains(&"echo_old") && cur.contains(&"startup_only"));
    assert!(!cur.contains(&"runtime_only"));
    assert_eq!(c.call("echo_old", Some(json!([5]))).unwrap(), json!([5]));
    let e = c
        .call("rpc_get_methods", Some(json!({"bogus": 1})))
        .unwrap_err();
    assert_eq!(e.rpc_error().unwrap().code, -32602);
    let m = ts.server.methods(Some(State::Runtime));
    assert!(m.contains(&"runtime_only".to_string()) && !m.contains(&"startup_only".to_string()));
}

#[test]
fn dropped_responder_answers_internal_error() {
    let ts = TestServer::start("dropped");
    let e = client(&ts).call("drop", None).unwrap_err();
    assert_eq!(e.rpc_error().unwrap().code, -32603);
}

#[test]
fn typed_params() {
    let ts = TestServer::start("typed");
    #[derive(serde::Deserialize)]
    struct P {
        n: u32,
    }
    ts.server
        .register("double", jsonrpc::StateMask::ALL, |r| {
            let res = r.params::<P>().map(|p| json!(p.n * 2));
            r.respond(res)
        })
        .unwrap();
    let mut c = client(&ts);
    assert_eq!(c.call("double", Some(json!({"n": 21}))).unwrap(), json!(42));
    let e = c.call("double", Some(json!({"n": "x"}))).unwrap_err();
    assert_eq!(e.rpc_error().unwrap().code, -32602);
    let e = c.call("double", None).unwrap_err();
    assert_eq!(e.rpc_error().unwrap().code, -32602);
}
