//! `simple_mp`: the multi-process "hello world" after DPDK's `examples/multi_process/
//! simple_mp`: a primary and a secondary exchange text messages through two rings,
//! `PRI_2_SEC` and `SEC_2_PRI`, carrying addresses of message buffers taken from the
//! mempool `MSG_POOL` (the receiver puts each buffer back after printing it).
//!
//! ```text
//! simple_mp [EAL options] --proc-type primary            # creates the rings and the pool
//! simple_mp [EAL options] --proc-type secondary          # looks them up
//!     interactive (stdin): "send <text>", "quit"; every message received is printed as
//!     "received: <text>".
//! simple_mp [EAL options] -- --send N --expect M [--timeout-s S]
//!     non-interactive (tests): send N messages "msg <i> from <role>", receive M and check
//!     they are "msg 0..M-1 from <the other role>" in order, then exit. The primary
//!     finally waits until the secondary has consumed its messages and every buffer is
//!     back in the pool, and prints "pool: <free>/<size> buffers free".
//! ```
//!
//! Exit status: 0 success, 1 a check failed (wrong message, buffers missing, timeout),
//! 2 bad arguments or setup error, 3 the primary exited under a secondary.
//!
//! The pool has no per-lcore cache (messages are rare), so the two processes may use
//! any lcore ids; with a cached pool they would need distinct ones (see the EAL docs).

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ferroplane_apps::mp;

use eal::{Eal, VirtAddr};
use mempool::{Mempool, PoolConfig};
use ring::{Ring, RingFlags};

const PRI_2_SEC: &str = "PRI_2_SEC";
const SEC_2_PRI: &str = "SEC_2_PRI";
const MSG_POOL: &str = "MSG_POOL";
/// Buffer size (DPDK's STR_TOKEN_SIZE): 2 bytes of length, then the text.
const MSG_SIZE: u32 = 128;
const MAX_TEXT: usize = MSG_SIZE as usize - 2;
const POOL_SIZE: u32 = 1024;
const RING_SIZE: u32 = 64;

struct Opts {
    send: Option<u64>,
    expect: Option<u64>,
    timeout: Duration,
}

fn usage() -> String {
    format!(
        "usage: simple_mp [EAL options] [-- --send N --expect M [--timeout-s S]]\n\
         interactive without --send/--expect: type 'send <text>' or 'quit'\n\n{}",
        eal::args::usage()
    )
}

fn parse(rest: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        send: None,
        expect: None,
        timeout: Duration::from_secs(60),
    };
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| mp::value_u64(&mut it, name);
        match a.as_str() {
            "--send" => o.send = Some(val("--send")?),
            "--expect" => o.expect = Some(val("--expect")?),
            "--timeout-s" => o.timeout = Duration::from_secs(val("--timeout-s")?),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(o)
}

struct Link {
    send: Ring<u64>,
    recv: Ring<u64>,
    pool: Mempool,
    role: &'static str,
    peer: &'static str,
}

impl Link {
    fn setup(eal: &Eal) -> Result<Link, String> {
        let err = |what: &str, e: &dyn std::fmt::Display| format!("failed to {what}: {e}");
        let (send, recv, pool) = if eal.is_primary() {
            // SAFETY: both sides of both rings are multi-producer/consumer (no single-side
            // contract) and every process uses them with T = u64.
            let a =
                unsafe { Ring::<u64>::create(eal, PRI_2_SEC, RING_SIZE, None, RingFlags::empty()) }
                    .map_err(|e| err("create ring PRI_2_SEC", &e))?;
            // SAFETY: as above.
            let b =
                unsafe { Ring::<u64>::create(eal, SEC_2_PRI, RING_SIZE, None, RingFlags::empty()) }
                    .map_err(|e| err("create ring SEC_2_PRI", &e))?;
            let cfg = PoolConfig {
                n: POOL_SIZE - 1,
                elt_size: MSG_SIZE,
                ..Default::default()
            };
            let p = Mempool::create(eal, MSG_POOL, &cfg)
                .map_err(|e| err("create mempool MSG_POOL", &e))?;
            (a, b, p)
        } else {
            // SAFETY: as above: created by the primary for u64, multi on both sides.
            let a = unsafe { Ring::<u64>::lookup(eal, SEC_2_PRI) }
                .map_err(|e| err("look up ring SEC_2_PRI", &e))?;
            // SAFETY: as above.
            let b = unsafe { Ring::<u64>::lookup(eal, PRI_2_SEC) }
                .map_err(|e| err("look up ring PRI_2_SEC", &e))?;
            let p =
                Mempool::lookup(eal, MSG_POOL).map_err(|e| err("look up mempool MSG_POOL", &e))?;
            (a, b, p)
        };
        let (role, peer) = if eal.is_primary() {
            ("primary", "secondary")
        } else {
            ("secondary", "primary")
        };
        Ok(Link {
            send,
            recv,
            pool,
            role,
            peer,
        })
    }

    /// Put `text` in a buffer and on the send ring. `Ok(false)`: no buffer or ring full
    /// (try again later).
    fn try_send(&self, text: &str) -> Result<bool, String> {
        let b = text.as_bytes();
        if b.len() > MAX_TEXT {
            return Err(format!(
                "message of {} bytes is longer than {MAX_TEXT}",
                b.len()
            ));
        }
        let Ok(buf) = self.pool.get() else {
            return Ok(false);
        };
        let p = buf.as_ptr::<u8>();
        // SAFETY: `buf` is a pool object of MSG_SIZE bytes that we own until the peer
        // takes it off the ring; 2 + b.len() <= MSG_SIZE.
        unsafe {
            p.cast::<[u8; 2]>().write((b.len() as u16).to_le_bytes());
            std::ptr::copy_nonoverlapping(b.as_ptr(), p.add(2), b.len());
        }
        // The ring's release on enqueue publishes the bytes written above.
        if self.send.enqueue(buf.0).is_err() {
            // SAFETY: we took `buf` from this pool above and nobody else saw it.
            unsafe { self.pool.put(buf) }.map_err(|e| format!("failed to return a buffer: {e}"))?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Take one message off the receive ring, copy its text, give the buffer back.
    fn try_recv(&self) -> Result<Option<String>, String> {
        let Some(addr) = self.recv.dequeue() else {
            return Ok(None);
        };
        let buf = VirtAddr(addr);
        if !self.pool.contains(buf) {
            return Err(format!(
                "received {buf}, which is not a buffer of {MSG_POOL}"
            ));
        }
        let p = buf.as_ptr::<u8>();
        // SAFETY: the sender wrote the buffer before its enqueue (release), our dequeue
        // acquired it, and it is ours until we put it back; the length is bounds-checked.
        let text = unsafe {
            let n = u16::from_le_bytes(p.cast::<[u8; 2]>().read()) as usize;
            if n > MAX_TEXT {
                return Err(format!("buffer {buf} claims {n} bytes"));
            }
            String::from_utf8_lossy(std::slice::from_raw_parts(p.add(2), n)).into_owned()
        };
        // SAFETY: the buffer came from this pool (checked) and we were its only owner.
        unsafe { self.pool.put(buf) }.map_err(|e| format!("failed to return a buffer: {e}"))?;
        Ok(Some(text))
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let (eal, rest) = match mp::init_eal("simple_mp", &argv, usage) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let opts = match mp::app_args("simple_mp", parse(&rest)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let link = match Link::setup(&eal) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "simple_mp: {e}{}",
                if eal.is_primary() {
                    ""
                } else {
                    " (is the primary a simple_mp?)"
                }
            );
            return ExitCode::from(2);
        }
    };
    let primary_gone = Arc::new(AtomicBool::new(false));
    let g2 = primary_gone.clone();
    eal.on_primary_exit(move || g2.store(true, Ordering::Release));
    println!(
        "simple_mp: {} ready (pid {})",
        link.role,
        std::process::id()
    );
    let _ = std::io::stdout().flush();
    let code = if opts.send.is_some() || opts.expect.is_some() {
        run_batch(&eal, &link, &opts, &primary_gone)
    } else {
        run_interactive(&link, &primary_gone)
    };
    if eal.is_primary() {
        // Free the rings and the pool so the EAL can remove its files at exit once
        // nothing holds it (refused while buffers are out; and today the mempool crate
        // keeps an `Eal` clone even after free: the next primary reclaims the files).
        let Link {
            send, recv, pool, ..
        } = link;
        // SAFETY: we are exiting; the secondary stops using them (it notices our exit).
        let _ = unsafe { send.free() };
        // SAFETY: as above.
        let _ = unsafe { recv.free() };
        if let Err(e) = pool.free() {
            eprintln!("simple_mp: {e}");
        }
    }
    ExitCode::from(code)
}

fn run_batch(eal: &Eal, link: &Link, o: &Opts, gone: &AtomicBool) -> u8 {
    let (to_send, to_recv) = (o.send.unwrap_or(0), o.expect.unwrap_or(0));
    let (mut sent, mut got) = (0u64, 0u64);
    let deadline = Instant::now() + o.timeout;
    while sent < to_send || got < to_recv {
        let mut idle = true;
        if sent < to_send {
            match link.try_send(&format!("msg {sent} from {}", link.role)) {
                Ok(true) => {
                    sent += 1;
                    idle = false;
                }
                Ok(false) => {}
                Err(e) => {
                    eprintln!("simple_mp: {e}");
                    return 1;
                }
            }
        }
        match link.try_recv() {
            Ok(Some(t)) => {
                println!("received: {t}");
                let want = format!("msg {got} from {}", link.peer);
                if t != want {
                    eprintln!("simple_mp: expected '{want}', received '{t}'");
                    return 1;
                }
                got += 1;
                idle = false;
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("simple_mp: {e}");
                return 1;
            }
        }
        if idle {
            if gone.load(Ordering::Acquire) {
                eprintln!("simple_mp: the primary process exited; stopping after {sent} sent, {got} received");
                return 3;
            }
            if Instant::now() > deadline {
                eprintln!(
                    "simple_mp: timed out after {sent}/{to_send} sent, {got}/{to_recv} received"
                );
                return 1;
            }
            std::thread::yield_now();
        }
    }
    println!("simple_mp: {} sent {sent}, received {got}", link.role);
    if eal.is_primary() {
        // Our messages consumed and every buffer back (the secondary puts them back).
        while !(link.send.empty() && link.pool.avail_count() == link.pool.size())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        println!(
            "pool: {}/{} buffers free",
            link.pool.avail_count(),
            link.pool.size()
        );
        if link.pool.avail_count() != link.pool.size() {
            return 1;
        }
    }
    let _ = std::io::stdout().flush();
    0
}

fn run_interactive(link: &Link, gone: &AtomicBool) -> u8 {
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for l in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    println!("commands: send <text> | quit");
    let _ = std::io::stdout().flush();
    let mut pending: Option<String> = None;
    loop {
        match rx.try_recv() {
            Ok(line) => {
                let line = line.trim();
                if line == "quit" {
                    return 0;
                } else if let Some(t) = line.strip_prefix("send ") {
                    pending = Some(t.to_string());
                } else if !line.is_empty() {
                    println!("unknown command '{line}' (send <text> | quit)");
                }
            }
            Err(mpsc::TryRecvError::Disconnected) if pending.is_none() => return 0,
            Err(_) => {}
        }
        if let Some(t) = &pending {
            match link.try_send(t) {
                Ok(true) => {
                    println!("sent: {t}");
                    pending = None;
                }
                Ok(false) => {}
                Err(e) => {
                    println!("not sent: {e}");
                    pending = None;
                }
            }
        }
        match link.try_recv() {
            Ok(Some(t)) => println!("received: {t}"),
            Ok(None) => {
                if gone.load(Ordering::Acquire) {
                    eprintln!("simple_mp: the primary process exited; stopping");
                    return 3;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => {
                eprintln!("simple_mp: {e}");
                return 1;
            }
        }
        let _ = std::io::stdout().flush();
    }
}
