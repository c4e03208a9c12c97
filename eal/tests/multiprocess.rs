//! Multi-process with real processes: the test process is the primary (or kills one),
//! children are this test binary re-executed with `FP_MP_ROLE` naming what to do
//! (`child_main`). Every test uses its own `--file-prefix`, under `--no-huge`; one test
//! runs on real hugepages when root (and says why it skips otherwise).
//!
//! Timeouts here are hang guards only (generous); nothing asserts a duration.

use std::fs;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::{
    argv, child_env, main_only_argv, main_only_eal, prefix, secondary_argv, shm_files, HugePages,
};
use eal::args::ProcType;
use eal::mp::Message;
use eal::{Eal, Error, Memzone, MemzoneFlags};
use testkit::child::{rerun_test, Watched};

mod common;

const GUARD: Duration = Duration::from_secs(120);

/// This test binary re-executed as `role` (see `child_main`) on prefix `p`.
fn kid(role: &str, p: &str, env: &[(&str, String)]) -> Watched {
    let mut c = rerun_test("child_main");
    c.env("FP_MP_ROLE", role)
        .env("FP_MP_PREFIX", p)
        .envs(env.iter().map(|(k, v)| (k, v)));
    Watched::spawn(c, role, GUARD)
}

// ---------------------------------------------------------------------------------
// Child side
// ---------------------------------------------------------------------------------

fn fill(addr: *mut u8, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: callers pass a memzone of at least `len` bytes that only this test
        // writes.
        unsafe { addr.add(i).write_volatile(seed.wrapping_add(i as u8)) };
    }
}

/// Reserve memzone `name` of `len` bytes and [`fill`] it from `seed`.
fn filled_zone(e: &Eal, name: &str, len: usize, seed: u8) -> Memzone {
    let z = e
        .memzones()
        .reserve(name, len, None, MemzoneFlags::empty())
        .unwrap();
    fill(z.as_ptr(), len, seed);
    z
}

fn check(addr: *const u8, len: usize, seed: u8) -> bool {
    // SAFETY: as in `fill`.
    (0..len).all(|i| unsafe { addr.add(i).read_volatile() } == seed.wrapping_add(i as u8))
}

fn stdin_eof() {
    let mut s = String::new();
    let _ = std::io::stdin().read_to_string(&mut s);
}

/// Dispatcher of the child roles (run only as a child).
#[test]
#[ignore = "child process of the multiprocess tests"]
fn child_main() {
    let Some(role) = child_env("FP_MP_ROLE", "child_main", "a multiprocess test") else {
        return;
    };
    let p = std::env::var("FP_MP_PREFIX").unwrap();
    let code = match role.as_str() {
        "sec_basic" => sec_basic(&p),
        "sec_try" => match Eal::init(&secondary_argv(&p)) {
            Ok((e, _)) => {
                println!("ATTACHED {:?}", e.proc_type());
                0
            }
            Err(e) => {
                eprintln!("ERR: {e}");
                3
            }
        },
        "auto" => {
            let (e, _) = Eal::init(&argv(&[
                "--proc-type",
                "auto",
                "--no-huge",
                "-m",
                "4",
                "--no-pci",
                "--lcores",
                "1@0",
                "--file-prefix",
                &p,
            ]))
            .unwrap();
            println!("ROLE {:?}", e.proc_type());
            0
        }
        "sec_ipc" => sec_ipc(&p),
        "pri_hold" => {
            let e = main_only_eal(&p, 16);
            filled_zone(&e, "held", 4096, 9);
            println!("READY {}", e.memory().files()[0].display());
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        "sec_wait" => {
            let (e, _) = Eal::init(&secondary_argv(&p)).unwrap();
            let (tx, rx) = mpsc::channel();
            e.on_primary_exit(move || {
                let _ = tx.send(());
            });
            assert!(e.primary_alive());
            println!("READY");
            if rx.recv_timeout(GUARD).is_err() {
                eprintln!("watcher never fired");
                std::process::exit(1);
            }
            let z = e.memzones().lookup("held").unwrap();
            let ok = !e.primary_alive() && check(z.as_ptr(), 4096, 9);
            println!("PRIMARY GONE memory still readable: {ok}");
            if ok {
                42
            } else {
                1
            }
        }
        "sec_linger" => {
            let (_e, _) = Eal::init(&secondary_argv(&p)).unwrap();
            println!("READY");
            stdin_eof();
            0
        }
        "sec_huge" => {
            let (e, _) = Eal::init(&secondary_argv(&p)).unwrap();
            let z = e.memzones().lookup("huge_mz").unwrap();
            let ok = !e.memory().no_huge()
                && check(z.as_ptr(), z.len() as usize, 77)
                && e.memory().memsegs().iter().all(|m| m.page_size == 2 << 20);
            fill(z.as_ptr(), z.len() as usize, 78);
            println!("HUGE {ok}");
            0
        }
        other => panic!("unknown role {other}"),
    };
    std::process::exit(code);
}

fn sec_basic(p: &str) -> i32 {
    let (e, _) = Eal::init(&secondary_argv(p)).unwrap();
    let want_addr: u64 = std::env::var("FP_MZ_ADDR").unwrap().parse().unwrap();
    let want_base: u64 = std::env::var("FP_BASE").unwrap().parse().unwrap();
    assert_eq!(e.proc_type(), ProcType::Secondary);
    assert!(!e.is_primary());
    assert_eq!(e.primary_pid(), std::os::unix::process::parent_id() as i32);
    assert!(e.primary_alive());
    assert_eq!(
        e.memory().base().0,
        want_base,
        "mapped at the primary's address"
    );
    assert_eq!(e.lcores().lcore_ids(), vec![1]);
    // The primary's memzone, at the same address, with the primary's bytes.
    let z = e
        .memzones()
        .lookup("from_primary")
        .expect("memzone visible");
    assert_eq!(z.addr().0, want_addr);
    assert!(check(z.as_ptr(), 8192, 3), "primary's pattern");
    // Write through: the primary checks this after we exit.
    fill(z.as_ptr(), 8192, 4);
    filled_zone(&e, "from_secondary", 4096, 5);
    // The heap works here too (same lock, same arenas).
    let m = e.heap().zmalloc(1000, 0).unwrap();
    // SAFETY: fresh allocation of 1000 bytes.
    unsafe { std::ptr::write_bytes(m.as_ptr(), 0xab, 1000) };
    e.heap().check().unwrap();
    // The process table shows both, the primary on lcore 0 and us on lcore 1.
    let procs = e.processes();
    assert_eq!(procs.len(), 2, "{procs:?}");
    assert_eq!(
        (procs[0].role, procs[0].lcores.clone()),
        (ProcType::Primary, vec![0])
    );
    assert_eq!(
        (procs[1].pid, procs[1].lcores.clone()),
        (std::process::id() as i32, vec![1])
    );
    // Left allocated on purpose: the primary frees it by address.
    println!("HEAP {}", m.as_ptr() as usize);
    println!("OK");
    0
}

fn sec_ipc(p: &str) -> i32 {
    let (e, _) = Eal::init(&secondary_argv(p)).unwrap();
    e.mp()
        .action_register("reverse", |m, peer| {
            assert!(peer.is_primary());
            let mut v = m.param().to_vec();
            v.reverse();
            Some(Message::new("reverse").unwrap().with_param(&v).unwrap())
        })
        .unwrap();
    e.mp()
        .action_register("readfd", |m, _| {
            let fd = m.fds()[0].try_clone().unwrap();
            let text = std::io::read_to_string(fs::File::from(fd)).unwrap();
            let reply = Message::new("readfd").unwrap();
            Some(reply.with_param(text.as_bytes()).unwrap())
        })
        .unwrap();
    e.mp()
        .action_register("note", |m, _| {
            println!("NOTE {}", String::from_utf8_lossy(m.param()));
            None
        })
        .unwrap();
    // Secondary → primary request.
    let r = e
        .mp()
        .request_sync(
            &Message::new("ping").unwrap().with_param(b"abc").unwrap(),
            GUARD,
        )
        .unwrap();
    assert_eq!((r.nb_sent, r.replies.len()), (1, 1));
    assert!(r.replies[0].peer.is_primary());
    println!("PONG {}", String::from_utf8_lossy(r.replies[0].msg.param()));
    println!("READY");
    stdin_eof();
    0
}

// ---------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------

#[test]
fn secondary_attaches_shares_memzones_heap_and_leaves_primary_files() {
    let p = prefix("mp-basic");
    let e = main_only_eal(&p, 16);
    let z = filled_zone(&e, "from_primary", 8192, 3);
    let files_before = e.memory().files().to_vec();
    let mut k = kid(
        "sec_basic",
        &p,
        &[
            ("FP_MZ_ADDR", z.addr().0.to_string()),
            ("FP_BASE", e.memory().base().0.to_string()),
        ],
    );
    let heap_ptr: usize = k.expect("HEAP").parse().unwrap();
    k.expect("OK");
    let st = k.wait();
    assert!(st.success(), "{st:?}: {}", k.stderr());
    assert!(
        check(z.as_ptr(), 8192, 4),
        "the secondary's writes are visible"
    );
    let z2 = e
        .memzones()
        .lookup("from_secondary")
        .expect("secondary's memzone");
    assert!(check(z2.as_ptr(), 4096, 5));
    // The secondary's heap allocation is a real block of the shared heap.
    // SAFETY: the secondary allocated it and exited; nobody else uses it.
    unsafe { e.heap().free(heap_ptr as *mut u8).unwrap() };
    e.heap().check().unwrap();
    // Its exit removed only its own traces.
    assert_eq!(e.processes().len(), 1);
    assert_eq!(e.memory().files(), files_before.as_slice());
    assert!(
        files_before.iter().all(|f| f.exists()),
        "secondary left the primary's files"
    );
    assert!(e.config_path().exists());
    let sockets: Vec<String> = fs::read_dir(e.runtime_dir())
        .unwrap()
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mp_socket"))
        .collect();
    assert_eq!(
        sockets,
        vec!["mp_socket".to_string()],
        "the secondary removed its socket"
    );
    let dir = e.runtime_dir().to_path_buf();
    drop(e);
    assert!(!dir.exists());
    assert!(shm_files(&p).is_empty());
}

#[test]
fn ipc_between_processes_with_fds() {
    let p = prefix("mp-ipc");
    let e = main_only_eal(&p, 16);
    e.mp()
        .action_register("ping", |m, peer| {
            assert!(!peer.is_primary());
            let mut v = b"pong:".to_vec();
            v.extend_from_slice(m.param());
            Some(Message::new("ping").unwrap().with_param(&v).unwrap())
        })
        .unwrap();
    let mut k = kid("sec_ipc", &p, &[]);
    assert_eq!(k.expect("PONG"), "pong:abc");
    k.expect("READY");
    // Primary → all secondaries (one here).
    let r = e
        .mp()
        .request_sync(
            &Message::new("reverse")
                .unwrap()
                .with_param(b"12345")
                .unwrap(),
            GUARD,
        )
        .unwrap();
    assert_eq!((r.nb_sent, r.replies.len()), (1, 1), "{r:?}");
    assert_eq!(r.replies[0].msg.param(), b"54321");
    assert_eq!(r.replies[0].peer.pid(), k.id() as i32);
    // A file descriptor crosses the process boundary.
    let path = e.runtime_dir().join("fd-payload");
    fs::write(&path, "sent as SCM_RIGHTS").unwrap();
    let f = fs::File::open(&path).unwrap();
    fs::remove_file(&path).unwrap(); // only the descriptor is left
    let mut m = Message::new("readfd").unwrap();
    m.push_fd_dup(&f).unwrap();
    let r = e.mp().request_sync(&m, GUARD).unwrap();
    assert_eq!(r.replies[0].msg.param(), b"sent as SCM_RIGHTS");
    // No handler → "ignore", not a wait for the timeout.
    let r = e
        .mp()
        .request_sync(&Message::new("unknown").unwrap(), GUARD)
        .unwrap();
    assert_eq!((r.nb_sent, r.replies.len(), r.nb_ignored), (1, 0, 1));
    // One-way.
    assert_eq!(
        e.mp()
            .sendmsg(
                &Message::new("note")
                    .unwrap()
                    .with_param(b"one-way")
                    .unwrap()
            )
            .unwrap(),
        1
    );
    assert_eq!(k.expect("NOTE"), "one-way");
    k.close_stdin();
    assert!(k.wait().success(), "{}", k.stderr());
    // Gone: broadcasts reach nobody.
    assert_eq!(e.mp().sendmsg(&Message::new("note").unwrap()).unwrap(), 0);
}

#[test]
fn secondary_without_primary_fails_clearly() {
    let p = prefix("mp-nopri");
    let mut k = kid("sec_try", &p, &[]);
    let st = k.wait();
    assert_eq!(st.code(), Some(3), "{}", k.stdout());
    let err = k.stderr();
    assert!(
        err.contains(&format!(
            "no primary process running for file prefix '{p}' (start one first)"
        )),
        "{err}"
    );
    // And after a primary has come and gone (its config left behind by nobody).
    drop(main_only_eal(&p, 16));
    let mut k = kid("sec_try", &p, &[]);
    assert_eq!(k.wait().code(), Some(3));
    assert!(
        k.stderr().contains("no primary process running"),
        "{}",
        k.stderr()
    );
}

#[test]
fn version_mismatch_is_refused_naming_both_versions() {
    let p = prefix("mp-ver");
    let e = main_only_eal(&p, 16);
    let cfg = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(e.config_path())
        .unwrap();
    let mut orig = [0u8; 4];
    cfg.read_exact_at(&mut orig, eal::config::VERSION_OFFSET)
        .unwrap();
    assert_eq!(u32::from_ne_bytes(orig), eal::config::VERSION);
    cfg.write_all_at(&99u32.to_ne_bytes(), eal::config::VERSION_OFFSET)
        .unwrap();
    let mut k = kid("sec_try", &p, &[]);
    assert_eq!(k.wait().code(), Some(3));
    let err = k.stderr();
    assert!(
        err.contains("layout version 99")
            && err.contains(&format!("version {}", eal::config::VERSION)),
        "{err}"
    );
    // Restored: attaching works.
    cfg.write_all_at(&orig, eal::config::VERSION_OFFSET)
        .unwrap();
    let mut k = kid("sec_try", &p, &[]);
    assert!(k.wait().success(), "{}", k.stderr());
    assert!(k.stdout().contains("ATTACHED Secondary"), "{}", k.stdout());
    // A corrupt magic is refused too.
    let mut m = [0u8; 8];
    cfg.read_exact_at(&mut m, 0).unwrap();
    cfg.write_all_at(&[0xee; 8], 0).unwrap();
    let mut k = kid("sec_try", &p, &[]);
    assert_eq!(k.wait().code(), Some(3));
    assert!(k.stderr().contains("bad magic"), "{}", k.stderr());
    cfg.write_all_at(&m, 0).unwrap();
}

#[test]
fn auto_attaches_to_a_live_primary_else_becomes_primary() {
    let p = prefix("mp-auto");
    let mut k = kid("auto", &p, &[]);
    assert!(k.wait().success(), "{}", k.stderr());
    assert!(k.stdout().contains("ROLE Primary"), "{}", k.stdout());
    let _e = main_only_eal(&p, 16);
    let mut k = kid("auto", &p, &[]);
    assert!(k.wait().success(), "{}", k.stderr());
    assert!(k.stdout().contains("ROLE Secondary"), "{}", k.stdout());
}

/// kill -9 of the primary: a watching secondary notices and stops (status 42 here); a
/// new primary is refused while a secondary of the dead one is still attached, and
/// starts (reclaiming the dead primary's files) once it has gone.
#[test]
fn primary_death_is_noticed_and_restart_waits_for_secondaries() {
    let p = prefix("mp-death");
    let mut pri = kid("pri_hold", &p, &[]);
    let dead_file = PathBuf::from(pri.expect("READY"));
    assert!(dead_file.exists());
    let mut linger = kid("sec_linger", &p, &[]);
    linger.expect("READY");
    let mut watch = kid("sec_wait", &p, &[]);
    watch.expect("READY");
    // A second primary while the first lives: refused.
    match Eal::init(&main_only_argv(&p, 4)) {
        Err(Error::PrefixInUse { pid, .. }) => assert_eq!(pid as u32, pri.id()),
        other => panic!("expected PrefixInUse, got {other:?}"),
    }
    pri.kill(); // SIGKILL
    let st = watch.wait();
    assert_eq!(
        st.code(),
        Some(42),
        "stdout {} stderr {}",
        watch.stdout(),
        watch.stderr()
    );
    assert!(watch
        .stdout()
        .contains("PRIMARY GONE memory still readable: true"));
    // The lingering secondary still maps the dead primary's files: a new primary refuses.
    match Eal::init(&main_only_argv(&p, 4)) {
        Err(Error::SecondariesAlive { pids, .. }) => {
            assert_eq!(pids, vec![linger.id() as i32])
        }
        other => panic!("expected SecondariesAlive, got {other:?}"),
    }
    assert!(dead_file.exists(), "the refused primary reclaimed nothing");
    linger.close_stdin();
    assert!(linger.wait().success(), "{}", linger.stderr());
    // Now the restart reclaims the crash's leftovers.
    let e = main_only_eal(&p, 16);
    assert!(!dead_file.exists(), "stale memory file reclaimed");
    assert_eq!(shm_files(&p), e.memory().files().to_vec());
    assert!(e.memzones().lookup("held").is_none(), "fresh config");
    assert_eq!(e.processes().len(), 1);
}

#[test]
fn dead_lock_holder_is_taken_over() {
    let p = prefix("mp-steal");
    let e = main_only_eal(&p, 16);
    let mut c = Command::new("true").spawn().unwrap();
    let dead = c.id();
    c.wait().unwrap();
    e.debug_force_config_lock_holder(dead);
    // Would spin forever without the takeover.
    let z = e
        .memzones()
        .reserve("after_steal", 64, None, MemzoneFlags::empty())
        .unwrap();
    assert_eq!(e.memzones().lookup("after_steal"), Some(z));
    assert_eq!(e.config_lock_steals(), 1);
    e.heap().check().unwrap();
}

/// When root: the same attach on real 2 MiB hugepages in a private hugetlbfs mount
/// (pages reserved and the pool restored afterwards).
#[test]
fn secondary_on_real_hugepages() {
    let Some(hp) = HugePages::take("secondary_on_real_hugepages", 8) else {
        return;
    };
    let mnt = &hp.mnt;
    let p = prefix("mp-huge");
    let mnt_s = mnt.display().to_string();
    let (e, _) = Eal::init(&argv(&[
        "-m",
        "8",
        "--huge-dir",
        &mnt_s,
        "--no-pci",
        "-l",
        "0",
        "--file-prefix",
        &p,
    ]))
    .unwrap();
    assert!(!e.memory().no_huge());
    let z = e
        .memzones()
        .reserve("huge_mz", 3 << 20, None, MemzoneFlags::empty())
        .unwrap();
    fill(z.as_ptr(), z.len() as usize, 77);
    let mut k = kid("sec_huge", &p, &[]);
    assert_eq!(k.expect("HUGE"), "true", "{}", k.stderr());
    assert!(k.wait().success(), "{}", k.stderr());
    assert!(
        check(z.as_ptr(), z.len() as usize, 78),
        "the secondary wrote through its hugepage mapping"
    );
    let files = e.memory().files().to_vec();
    assert!(files.iter().all(|f| f.starts_with(mnt) && f.exists()));
    drop(e);
    assert!(files.iter().all(|f| !f.exists()));
    drop(hp);
}
