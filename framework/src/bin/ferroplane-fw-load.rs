//! `ferroplane-fw-load`: a framework app that floods messages between threads until it
//! is stopped (SIGINT/SIGTERM), then prints how many messages were created, run and
//! dropped unrun, and exits 0 only if every message was accounted for exactly once.
//! Used by the shutdown test; also a quick stress tool (`ferroplane-fw-load -m 0x3`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use framework::app::{App, AppOpts};
use framework::{poller, PollStatus, ThreadHandle};

#[derive(Default)]
struct Counts {
    created: AtomicU64,
    ran: AtomicU64,
    dropped: AtomicU64,
}

/// Counted once: as run, or as dropped unrun.
struct Token {
    c: Arc<Counts>,
    ran: bool,
}

impl Token {
    fn new(c: &Arc<Counts>) -> Token {
        c.created.fetch_add(1, Ordering::Relaxed);
        Token {
            c: c.clone(),
            ran: false,
        }
    }
    fn run(mut self) {
        self.ran = true;
        self.c.ran.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        if !self.ran {
            self.c.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn flood(from: &str, to: ThreadHandle, c: Arc<Counts>) {
    let _ = poller::register(from, 0, move || {
        for _ in 0..64 {
            let t = Token::new(&c);
            if to.send_msg(move || t.run()).is_err() {
                break;
            }
        }
        PollStatus::Busy
    });
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let mut opts = match AppOpts::parse(&argv) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ferroplane-fw-load: {e}");
            std::process::exit(2);
        }
    };
    opts.exit_timeout_ms = 300;
    let counts = Arc::new(Counts::default());
    let c2 = counts.clone();
    let stop_os = Arc::new(AtomicBool::new(false));
    let s2 = stop_os.clone();
    let os_sender = Arc::new(std::sync::Mutex::new(None));
    let os2 = os_sender.clone();
    let rc = App::new(opts).run(move |ctx| {
        let fw = ctx.framework();
        let a = fw.spawn_thread("load-a", &[]).unwrap();
        let b = fw.spawn_thread("load-b", &[]).unwrap();
        let (ca, cb) = (c2.clone(), c2.clone());
        let (a2, b2) = (a.clone(), b.clone());
        let _ = a.send_msg(move || flood("to-b", b2, ca));
        let _ = b.send_msg(move || flood("to-a", a2, cb));
        // A sender outside the framework too, until its target is gone.
        let c3 = c2.clone();
        let h = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                let t = Token::new(&c3);
                if let Err(e) = b.send_msg(move || t.run()) {
                    drop(e.msg);
                    if b.is_exited() {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
        });
        *os2.lock().unwrap() = Some(h);
        println!("READY");
    });
    stop_os.store(true, Ordering::Relaxed);
    if let Some(h) = os_sender.lock().unwrap().take() {
        let _ = h.join();
    }
    let rc = match rc {
        Ok(rc) => rc,
        Err(e) => {
            eprintln!("ferroplane-fw-load: {e}");
            std::process::exit(1);
        }
    };
    let (cr, ran, dr) = (
        counts.created.load(Ordering::Relaxed),
        counts.ran.load(Ordering::Relaxed),
        counts.dropped.load(Ordering::Relaxed),
    );
    println!("created={cr} ran={ran} dropped={dr}");
    if cr != ran + dr {
        eprintln!(
            "ferroplane-fw-load: {} message(s) neither ran nor dropped",
            cr - ran - dr
        );
        std::process::exit(3);
    }
    std::process::exit(rc);
}
