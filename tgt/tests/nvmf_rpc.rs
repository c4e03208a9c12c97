//! NVMe/TCP through a real `ferroplane-tgt` and the `ferroplane-rpc` client, on
//! 127.0.0.1: the target serves a subsystem and the same process attaches to it as
//! an initiator (`bdev_nvme_attach_controller` with rpc.py's flags, digests on).
//! A namespace added by `nvmf_subsystem_add_ns` while attached reaches the
//! initiator as a Namespace Attribute Changed event and becomes bdev `Nvme0n2`;
//! `nvmf_subsystem_remove_ns` takes it away again; detach removes `Nvme0n1`. Bad
//! parameters answer errors.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{ok, rpc_fails, rpc_json, start, tmpdir, wait_exit};
use serde_json::{json, Value};

const NQN: &str = "nqn.2016-06.io.ferroplane:rpc1";

fn bdev_names(sock: &Path) -> Vec<String> {
    ok(sock, "bdev_get_bdevs", Value::Null)
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect()
}

/// Wait up to 20 s for the bdev list to satisfy `f`; the last list.
fn wait_bdevs(sock: &Path, f: impl Fn(&[String]) -> bool) -> (bool, Vec<String>) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let names = bdev_names(sock);
        if f(&names) || Instant::now() > end {
            return (f(&names), names);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `ferroplane-rpc` with the words of `line`; its output (see [`rpc_json`]).
fn run(sock: &Path, line: &str) -> Value {
    rpc_json(sock, &line.split_whitespace().collect::<Vec<_>>())
}

/// `ferroplane-rpc` with the words of `line`, expected to fail; its output.
fn run_fails(sock: &Path, line: &str) -> String {
    rpc_fails(sock, &line.split_whitespace().collect::<Vec<_>>())
}

#[test]
fn attach_over_rpc_and_namespace_events() {
    let dir = tmpdir("nvmfrpc");
    let mut t = start(&dir, "nvmfrpc", &[]);
    let s = t.sock.clone();
    let s = s.as_path();
    let port = 20000 + std::process::id() % 20000;
    ok(s, "framework_wait_init", Value::Null);
    assert_eq!(
        run(s, "bdev_malloc_create -b Malloc0 16 512"),
        json!("Malloc0")
    );
    assert_eq!(
        run(s, "bdev_malloc_create -b Malloc1 8 512"),
        json!("Malloc1")
    );
    run(s, "nvmf_create_transport -t TCP");
    run(s, &format!("nvmf_create_subsystem {NQN} -a -s FPRPC01"));
    run(s, &format!("nvmf_subsystem_add_ns {NQN} Malloc0"));
    run(
        s,
        &format!("nvmf_subsystem_add_listener {NQN} -t tcp -a 127.0.0.1 -s {port}"),
    );

    // rpc.py's flags; the answer is the bdev list, printed as print_array does.
    let host = "nqn.2014-08.org.nvmexpress:uuid:12345678-1234-1234-1234-123456789abc";
    let attached = run(
        s,
        &format!(
            "bdev_nvme_attach_controller -b Nvme0 -t tcp -a 127.0.0.1 -f ipv4 -s {port} \
             -n {NQN} -q {host} --hdgst --ddgst"
        ),
    );
    assert_eq!(attached, json!("Nvme0n1"));
    let b = ok(s, "bdev_get_bdevs", json!({"name": "Nvme0n1"}));
    assert_eq!(b[0]["num_blocks"], json!(32768));
    assert_eq!(
        b[0]["driver_specific"]["nvme"][0]["trid"]["subnqn"],
        json!(NQN)
    );

    // A namespace added while attached becomes a bdev (event, log page, rescan).
    run(s, &format!("nvmf_subsystem_add_ns {NQN} Malloc1 -n 2"));
    let (found, names) = wait_bdevs(s, |n| n.iter().any(|x| x == "Nvme0n2"));
    assert!(found, "Nvme0n2 did not appear: {names:?}\n{}", t.log_text());
    let b = ok(s, "bdev_get_bdevs", json!({"name": "Nvme0n2"}));
    assert_eq!(b[0]["num_blocks"], json!(16384));
    let subs = ok(s, "nvmf_get_subsystems", Value::Null);
    let ns = &subs.as_array().unwrap()[1]["namespaces"];
    assert_eq!(ns.as_array().unwrap().len(), 2, "{subs}");

    // Removed: the bdev goes, the other stays.
    run(s, &format!("nvmf_subsystem_remove_ns {NQN} 2"));
    let (gone, names) = wait_bdevs(s, |n| !n.iter().any(|x| x == "Nvme0n2"));
    assert!(gone, "Nvme0n2 stayed: {names:?}");
    assert!(names.contains(&"Nvme0n1".to_string()), "{names:?}");
    let e = run_fails(s, &format!("nvmf_subsystem_remove_ns {NQN} 2"));
    assert!(e.contains("namespace 2"), "{e}");
    let e = run_fails(s, "nvmf_subsystem_remove_ns nqn.2016-06.io.x:none 1");
    assert!(e.contains("Unable to find subsystem"), "{e}");

    // Refused attaches: an rpc.py parameter we do not take (-p priority), an
    // unreachable port.
    let e = run_fails(
        s,
        &format!(
            "bdev_nvme_attach_controller -b Nvme1 -t tcp -a 127.0.0.1 -s {port} -n {NQN} -p 3"
        ),
    );
    assert!(e.contains("priority"), "{e}");
    let e = run_fails(
        s,
        &format!("bdev_nvme_attach_controller -b Nvme2 -t tcp -a 127.0.0.1 -s 1 -n {NQN}"),
    );
    assert!(e.contains("Nvme2"), "{e}");

    // Detach: its bdevs go.
    run(s, "bdev_nvme_detach_controller Nvme0");
    let (gone, names) = wait_bdevs(s, |n| !n.iter().any(|x| x.starts_with("Nvme0")));
    assert!(gone, "Nvme0's bdevs stayed: {names:?}");
    let e = run_fails(s, "bdev_nvme_detach_controller Nvme0");
    assert!(e.contains("Nvme0"), "{e}");

    t.signal(libc::SIGTERM);
    assert_eq!(wait_exit(&mut t), Some(0), "{}", t.log_text());
    let _ = std::fs::remove_dir_all(&dir);
}
