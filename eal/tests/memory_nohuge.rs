//! `--no-huge` initialisation, clean-up, init failure unwinding and primary exclusion. Each test uses its own `--file-prefix`, so
//! they run in parallel.

use std::path::PathBuf;

use common::{argv, nohuge_argv, prefix, runtime_dirs, shm_files};
use eal::args::{EalArgs, IovaMode, ProcType};
use eal::{Eal, EalOptions, Error, Iova, VirtAddr};

mod common;

#[test]
fn nohuge_init_and_clean_drop() {
    let p = prefix("basic");
    let (e, rest) = Eal::init(&argv(&[
        "--no-huge",
        "-m",
        "16",
        "--no-pci",
        "--file-prefix",
        &p,
        "--",
        "app",
        "-x",
    ]))
    .unwrap();
    assert_eq!(rest, vec!["app".to_string(), "-x".to_string()]);
    assert!(e.memory().no_huge());
    assert!(!e.memory().dma_capable());
    assert_eq!(e.memory().iova_mode(), IovaMode::Va);
    assert_eq!(e.file_prefix(), p);
    assert!(e.pci().devices().is_empty());
    assert_eq!(e.memory().len(), 16 << 20);
    // One contiguous area of 2 MiB memsegs, IOVA = VA.
    let segs = e.memory().memsegs();
    assert_eq!(segs.len(), 8);
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(s.virt, e.memory().base().add(i as u64 * (2 << 20)));
        assert_eq!(s.iova, Iova(s.virt.0));
        assert_eq!(s.page_size, 4096);
    }
    assert_eq!(
        e.memory().virt2iova(e.memory().base().add(12345)),
        Some(Iova(e.memory().base().0 + 12345))
    );
    assert_eq!(e.memory().virt2iova(VirtAddr(8)), None);
    // Files exist while alive.
    let files = shm_files(&p);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0]
        .to_string_lossy()
        .contains(&std::process::id().to_string()));
    let dir = e.runtime_dir().to_path_buf();
    assert!(e.config_path().exists());
    assert_eq!(
        std::fs::metadata(&dir)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap(),
        0o700
    );
    // Lcores came up.
    assert!(e.lcores().count() >= 1);
    assert_eq!(e.lcores().lcore_ids()[0], e.lcores().main_lcore());
    let e2 = e.clone();
    drop(e);
    assert!(dir.exists(), "a clone keeps everything alive");
    drop(e2);
    assert!(!dir.exists(), "runtime dir removed");
    assert!(shm_files(&p).is_empty(), "shm file removed");
}

#[test]
fn cleanup_reports_other_handles_then_succeeds() {
    let p = prefix("cleanup");
    let (e, _) = Eal::init(&nohuge_argv(&p, 4)).unwrap();
    let e2 = e.clone();
    match e.cleanup() {
        Err(Error::InUse { count: 1, .. }) => {}
        r => panic!("expected InUse, got {r:?}"),
    }
    let dir = e2.runtime_dir().to_path_buf();
    assert!(dir.exists(), "a refused cleanup changes nothing");
    e2.cleanup().unwrap();
    assert!(!dir.exists());
    assert!(shm_files(&p).is_empty());
}

#[test]
fn workers_run_jobs_with_eal_memory() {
    let p = prefix("launch");
    let (e, _) = Eal::init(&nohuge_argv(&p, 4)).unwrap();
    for w in e.lcores().worker_ids() {
        let e2 = e.clone();
        e.lcores()
            .remote_launch(w, move || {
                let z = e2.heap().zmalloc(100, 0).unwrap();
                // SAFETY: fresh 100-byte allocation.
                let ok = unsafe { std::slice::from_raw_parts(z.as_ptr(), 100) }
                    .iter()
                    .all(|&b| b == 0);
                // SAFETY: allocated above, not used afterwards.
                unsafe { e2.heap().free(z.as_ptr()).unwrap() };
                if ok {
                    7
                } else {
                    -1
                }
            })
            .unwrap();
    }
    for (l, r) in e.lcores().mp_wait_lcore() {
        assert_eq!(r.unwrap(), 7, "lcore {l}");
    }
    if let Some(&w) = e.lcores().worker_ids().first() {
        assert_eq!(
            e.lcores().socket_of(w).unwrap(),
            e.lcores().socket_of(e.lcores().main_lcore()).unwrap()
        );
    }
}

/// The directory `fp-<tag>-<pid>` under the temp dir, made to hold `file` (a relative
/// path) with `contents`: a fake `/proc` or `/sys` root.
fn fake_root(tag: &str, file: &str, contents: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("fp-{tag}-{}", std::process::id()));
    let file = root.join(file);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, contents).unwrap();
    root
}

/// Init of prefix `p` failed with `err`, an `expected` kind of error, and left nothing.
fn assert_refused_cleanly(p: &str, err: &Error, expected: bool) {
    assert!(expected, "unexpected error {err}");
    assert_nothing_left(p);
}

/// No runtime directory and no shm file of prefix `p` is left.
fn assert_nothing_left(p: &str) {
    assert!(runtime_dirs(p).is_empty(), "runtime dir left behind");
    assert!(shm_files(p).is_empty(), "shm file left behind");
}

/// `--no-huge --no-pci` arguments for `prefix` as a `proc_type` process.
fn nohuge_args(prefix: &str, proc_type: ProcType) -> EalArgs {
    EalArgs {
        no_huge: true,
        no_pci: true,
        file_prefix: prefix.to_string(),
        proc_type,
        ..EalArgs::default()
    }
}

#[test]
fn secondary_is_refused_clearly() {
    let p = prefix("secondary");
    let args = nohuge_args(&p, ProcType::Secondary);
    let err = Eal::init_with(args).unwrap_err();
    assert!(matches!(err, Error::NoPrimary { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "no primary process running for file prefix '{p}' (start one first)"
        )),
        "{err}"
    );
    assert!(runtime_dirs(&p).is_empty());
}

#[test]
fn second_primary_same_prefix_refused_in_process() {
    let p = prefix("twice");
    let (e, _) = Eal::init(&nohuge_argv(&p, 4)).unwrap();
    let err = Eal::init(&nohuge_argv(&p, 4)).unwrap_err();
    match &err {
        Error::PrefixInUse { prefix, pid, .. } => {
            assert_eq!(prefix, &p);
            assert_eq!(*pid, std::process::id() as i32);
        }
        other => panic!("expected PrefixInUse, got {other}"),
    }
    // The refused attempt must not have disturbed the live one.
    assert!(e.config_path().exists());
    assert_eq!(shm_files(&p).len(), 1);
    let z = e
        .memzones()
        .reserve("still-works", 64, None, Default::default())
        .unwrap();
    assert_eq!(e.memzones().lookup("still-works"), Some(z));
    // Auto mode attaches as secondary; in the primary's own process the primary's
    // address range is taken, which is refused clearly (real secondaries are separate
    // processes, see tests/multiprocess.rs).
    let auto = nohuge_args(&p, ProcType::Auto);
    let err = Eal::init_with(auto).unwrap_err();
    assert!(matches!(err, Error::AddressTaken { .. }), "{err}");
    assert!(
        e.config_path().exists(),
        "a failed secondary removes nothing"
    );
    assert_eq!(e.memzones().lookup("still-works"), Some(z));
    drop(e);
    // Free again after the first one is gone.
    let (e, _) = Eal::init(&nohuge_argv(&p, 4)).unwrap();
    drop(e);
    assert!(runtime_dirs(&p).is_empty());
}

#[test]
fn init_failure_in_memory_leaves_nothing() {
    let p = prefix("nomem");
    // /dev/shm cannot hold 1 PiB: fails in the memory step, after the runtime dir exists.
    let err = Eal::init(&argv(&[
        "--no-huge",
        "-m",
        &(1u64 << 30).to_string(),
        "--no-pci",
        "--file-prefix",
        &p,
    ]))
    .unwrap_err();
    let expected = matches!(err, Error::NotEnoughMemory { .. } | Error::Os { .. });
    assert_refused_cleanly(&p, &err, expected);
}

#[test]
fn init_failure_without_hugepages_names_the_fix() {
    // A fake /proc with no hugetlbfs mount: the hugepage path must refuse with the fix.
    let tmp = fake_root("nohp", "proc/mounts", "proc /proc proc rw 0 0\n");
    let p = prefix("nohp");
    let mut opts = EalOptions::default();
    opts.roots.proc = tmp.join("proc");
    let args = EalArgs {
        no_pci: true,
        file_prefix: p.clone(),
        ..EalArgs::default()
    };
    let err = Eal::init_with_options(args, opts).unwrap_err();
    assert!(matches!(err, Error::NoHugepages { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("ferroplane-hugepages --setup 256M"),
        "{err}"
    );
    assert!(runtime_dirs(&p).is_empty());
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// Fake sysfs whose topology claims cpu 63 is online: arguments validate, memory and the
/// shared config are set up, then pinning a worker to cpu 63 fails. Everything made before
/// must be gone.
#[test]
fn init_failure_after_memory_unwinds_everything() {
    let tmp = fake_root("badcpu", "sys/devices/system/cpu/online", "0,63\n");
    let p = prefix("unwind");
    let mut opts = EalOptions::default();
    opts.roots.sys = tmp.join("sys");
    let args = EalArgs {
        no_huge: true,
        no_pci: true,
        mem_mb: Some(4),
        file_prefix: p.clone(),
        ..EalArgs::default()
    };
    let args = EalArgs {
        lcores: vec![(0, 0), (1, 63)],
        ..args
    };
    let r = Eal::init_with_options(args, opts);
    std::fs::remove_dir_all(&tmp).unwrap();
    let err = r.unwrap_err();
    let expected = matches!(err, Error::LcorePin { .. } | Error::Os { .. });
    assert_refused_cleanly(&p, &err, expected);
}

#[test]
fn init_or_no_huge_falls_back_only_when_memory_was_not_chosen() {
    // Whatever this machine has: either hugepages work (no fallback, hugepage memory) or
    // they do not (fallback with a reason, --no-huge memory). Small -m so a root run with
    // the test script's 512 pages does not exhaust the pool.
    let p = prefix("fallback");
    let (eal, rest, why) =
        Eal::init_or_no_huge(&argv(&["-m", "16", "--file-prefix", &p, "--", "app"])).unwrap();
    assert_eq!(rest, vec!["app".to_string()]);
    match &why {
        Some(w) => {
            assert!(!w.is_empty());
            assert!(
                eal.memory().no_huge(),
                "fell back, so memory must be --no-huge"
            );
        }
        None => assert!(
            !eal.memory().no_huge(),
            "no fallback, so hugepages were used"
        ),
    }
    eal.cleanup().unwrap();

    // The user chose the memory: no fallback, the error comes back as it is.
    let p = prefix("fallback-dir");
    let e = Eal::init_or_no_huge(&argv(&[
        "--huge-dir",
        "/nonexistent-fp",
        "--file-prefix",
        &p,
    ]))
    .unwrap_err();
    assert!(
        !matches!(e, Error::BadArg { .. } | Error::UnknownArg(_)),
        "a missing huge dir is a memory error, not an argument error: {e}"
    );
    assert!(
        runtime_dirs(&p).is_empty() && shm_files(&p).is_empty(),
        "nothing left behind"
    );

    // Argument errors are never papered over.
    let e = Eal::init_or_no_huge(&argv(&["--bogus"])).unwrap_err();
    assert!(
        matches!(e, Error::UnknownArg(ref a) if a == "--bogus"),
        "{e}"
    );
}

/// The cpus each thread of this process named `name` may run on, from
/// `/proc/self/task/TID/status`.
fn task_cpus(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let Ok(st) = std::fs::read_to_string(t.path().join("status")) else {
                continue; // the thread exited meanwhile
            };
            if let Some(v) = st
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            {
                out.push(v.trim().to_string());
            }
        }
    }
    out
}

/// The calling thread's `Cpus_allowed_list`, as the kernel reports it to other readers.
fn own_cpus() -> String {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let st = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
    st.lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn main_lcore_is_pinned_and_released() {
    // On a fresh thread so the harness thread's affinity is never touched.
    std::thread::Builder::new()
        .name("pin-test".into())
        .spawn(|| {
            let before = eal::sys::cpu::sched_getaffinity_current().unwrap();
            let main_cpu = before[before.len() - 1];
            let before_list = own_cpus();
            let p = prefix("pin");
            let l = main_cpu.to_string();
            let av = argv(&[
                "--no-huge",
                "-m",
                "8",
                "--no-pci",
                "-l",
                &l,
                "--file-prefix",
                &p,
            ]);
            let (e, _) = Eal::init(&av).unwrap();
            // Pinned like rte_eal_init's caller...
            assert_eq!(
                eal::sys::cpu::sched_getaffinity_current().unwrap(),
                vec![main_cpu]
            );
            assert_eq!(own_cpus(), main_cpu.to_string());
            // ...while the IPC threads (ours and those of the tests running beside this
            // one, none of which starts an EAL from a pinned thread) kept the whole set.
            // A new thread names itself once it runs, so give the handler a moment.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let mut mp = task_cpus("fp-mp");
            while mp.is_empty() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
                mp = task_cpus("fp-mp");
            }
            assert!(!mp.is_empty(), "no IPC thread found");
            assert!(
                mp.iter().all(|c| *c == before_list),
                "{mp:?} vs {before_list}"
            );
            drop(e);
            assert_eq!(eal::sys::cpu::sched_getaffinity_current().unwrap(), before);

            // pin_main = false leaves the caller alone.
            let (args, _) = EalArgs::parse(&av).unwrap();
            let opts = EalOptions {
                pin_main: false,
                ..EalOptions::default()
            };
            let e = Eal::init_with_options(args, opts).unwrap();
            assert_eq!(eal::sys::cpu::sched_getaffinity_current().unwrap(), before);
            drop(e);
        })
        .unwrap()
        .join()
        .unwrap();
}
