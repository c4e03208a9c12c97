//! Out of file descriptors: the server stops accepting instead of spinning,
//! and accepts again once a connection closes. Its own test binary, as it
//! lowers this process's descriptor limit.

mod common;

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use jsonrpc::Server;

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(64)
}

#[test]
fn no_spin_when_out_of_descriptors_and_recovery() {
    let path = common::sock_path("fds");
    let s = Server::listen(&path).unwrap();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read one valid rlimit struct.
    unsafe { assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0) };
    let low = libc::rlimit {
        rlim_cur: open_fds() + 12,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    unsafe { assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &low), 0) };
    // Connect until the process runs out (each accepted client costs two
    // fds), then free one spare fd for one more client: the server has none
    // left to accept it with.
    let spare = std::fs::File::open("/dev/null").unwrap();
    let mut clients = Vec::new();
    loop {
        match UnixStream::connect(&path) {
            Ok(c) => clients.push(c),
            Err(_) => break,
        }
        s.poll();
        assert!(clients.len() < 64, "the descriptor limit did not bite");
    }
    s.poll();
    drop(spare);
    clients.push(UnixStream::connect(&path).unwrap());
    let accepted = s.connections();
    assert!(
        accepted < clients.len(),
        "every client was accepted: {accepted}"
    );
    // Pending connections wait, but polling does no work: no spin.
    s.poll();
    assert_eq!(s.poll(), 0);
    // One client leaves: its server end closes and accepting resumes.
    clients.remove(0);
    let t0 = Instant::now();
    while s.connections() != clients.len() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the pending client was never accepted"
        );
        s.poll();
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: as above; restores the original limit.
    unsafe { assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0) };
}
