//! Lcore threads on the real machine: launches on every worker, return codes, panics
//! reported per lcore while the process goes on, busy and unknown lcores refused, the
//! thread-local lcore id, and real pinning (`sched_getcpu` inside the job).
//!
//! Every test builds its lcore list from the cpus this process may run on (2 on the
//! reference machine: lcore 0 main, lcore 1 worker). A test that needs a worker and finds
//! only one usable cpu says so and returns.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};

use eal::lcore::{lcore_id, CpuTopology, LcoreSet, LcoreState, MAX_LCORE};
use eal::sys::cpu::{sched_getaffinity_current, sched_getcpu};
use eal::Error;
use testkit::Need;

/// Identity lcores over the cpus this process may use, lcore 0 = first cpu as main.
/// Reports a [`Need::Cpus`] skip for `test` and returns `None` when there is only one.
fn setup(test: &str) -> Option<(Vec<(u32, u32)>, CpuTopology)> {
    let topo = CpuTopology::read(Path::new("/sys")).expect("read /sys cpu topology");
    let allowed = sched_getaffinity_current().expect("sched_getaffinity");
    let lcores: Vec<(u32, u32)> = allowed
        .iter()
        .filter(|c| topo.is_online(**c))
        .take(MAX_LCORE)
        .enumerate()
        .map(|(i, &c)| (i as u32, c))
        .collect();
    if lcores.len() < 2 {
        testkit::skip(
            test,
            Need::Cpus,
            format!(
                "only {} usable cpu(s); a worker lcore needs 2",
                lcores.len()
            ),
        );
        return None;
    }
    Some((lcores, topo))
}

/// [`setup`], then the lcore set started with lcore 0 as main.
fn start_main_0(test: &str) -> Option<LcoreSet> {
    let (lcores, topo) = setup(test)?;
    Some(LcoreSet::start(&lcores, 0, &topo).unwrap())
}

/// [`start_main_0`] and its first worker lcore.
fn start_with_worker(test: &str) -> Option<(LcoreSet, u32)> {
    let set = start_main_0(test)?;
    let w = set.worker_ids()[0];
    Some((set, w))
}

/// Two handles on one shared `v`: one for the test, one to move into a job.
fn twin<T>(v: T) -> (Arc<T>, Arc<T>) {
    let a = Arc::new(v);
    let b = Arc::clone(&a);
    (a, b)
}

#[test]
fn launch_on_every_worker_and_collect_codes() {
    let Some((lcores, topo)) = setup("launch_on_every_worker_and_collect_codes") else {
        return;
    };
    let set = LcoreSet::start(&lcores, 0, &topo).unwrap();
    assert_eq!(set.main_lcore(), 0);
    assert_eq!(lcore_id(), Some(0), "calling thread is the main lcore");
    assert_eq!(
        set.lcore_ids(),
        lcores.iter().map(|l| l.0).collect::<Vec<_>>()
    );
    assert_eq!(
        set.worker_ids(),
        lcores[1..].iter().map(|l| l.0).collect::<Vec<_>>()
    );

    for &w in &set.worker_ids() {
        assert_eq!(set.lcore_state(w).unwrap(), LcoreState::Wait);
        let want_cpu = set.cpu_of(w).unwrap();
        set.remote_launch(
            w,
            Box::new(move || {
                // Inside the job: the thread-local id and the cpu it runs on.
                let id = lcore_id().map(|i| i as i32).unwrap_or(-1);
                let cpu = sched_getcpu().map(|c| c as i32).unwrap_or(-2);
                let name = std::thread::current().name().map(String::from);
                if name.as_deref() != Some(format!("lcore-{id}").as_str()) {
                    return -3;
                }
                if cpu != want_cpu as i32 {
                    return -4;
                }
                100 + id
            }),
        )
        .unwrap();
    }
    for (w, r) in set.mp_wait_lcore() {
        assert_eq!(
            r.unwrap(),
            100 + w as i32,
            "lcore {w}: id/name/cpu check inside the job"
        );
        assert_eq!(set.lcore_state(w).unwrap(), LcoreState::Wait);
    }
    // The main lcore's cpu and socket are known too.
    assert_eq!(set.cpu_of(0).unwrap(), lcores[0].1);
    assert_eq!(
        set.socket_of(0).unwrap(),
        topo.get(lcores[0].1).unwrap().numa_node
    );
}

#[test]
fn worker_is_pinned_for_its_whole_life() {
    let Some((set, w)) = start_with_worker("worker_is_pinned_for_its_whole_life") else {
        return;
    };
    let cpu = set.cpu_of(w).unwrap();
    set.remote_launch(
        w,
        Box::new(move || {
            // Yield many times: an unpinned thread would sooner or later be moved.
            for _ in 0..2000 {
                std::thread::yield_now();
                if sched_getcpu().ok() != Some(cpu) {
                    return 1;
                }
            }
            match sched_getaffinity_current() {
                Ok(set) if set == [cpu] => 0,
                _ => 2,
            }
        }),
    )
    .unwrap();
    assert_eq!(set.wait_lcore(w).unwrap(), 0);
}

#[test]
fn panicking_job_is_that_lcores_failure_and_lcore_stays_usable() {
    let Some((set, w)) =
        start_with_worker("panicking_job_is_that_lcores_failure_and_lcore_stays_usable")
    else {
        return;
    };
    set.remote_launch(
        w,
        Box::new(|| panic!("job exploded on purpose (expected in test output)")),
    )
    .unwrap();
    match set.wait_lcore(w) {
        Err(Error::LcorePanicked { lcore, msg }) => {
            assert_eq!(lcore, w);
            assert!(msg.contains("exploded on purpose"), "{msg}");
        }
        other => panic!("expected LcorePanicked, got {other:?}"),
    }
    // A formatted (String) panic payload, then a normal job on the same lcore.
    set.remote_launch(w, Box::new(move || panic!("code {}", 42)))
        .unwrap();
    assert!(matches!(set.wait_lcore(w), Err(Error::LcorePanicked { msg, .. }) if msg == "code 42"));
    assert_eq!(set.lcore_state(w).unwrap(), LcoreState::Wait);
    set.remote_launch(w, Box::new(|| lcore_id().map(|i| i as i32).unwrap_or(-1)))
        .unwrap();
    assert_eq!(set.wait_lcore(w).unwrap(), w as i32);
}

#[test]
fn busy_lcore_refused_until_collected() {
    let Some((set, w)) = start_with_worker("busy_lcore_refused_until_collected") else {
        return;
    };
    let (gate, g) = twin(Barrier::new(2));
    set.remote_launch(
        w,
        Box::new(move || {
            g.wait(); // holds the lcore Running until the test releases it
            7
        }),
    )
    .unwrap();
    assert_eq!(set.lcore_state(w).unwrap(), LcoreState::Running);
    let (ran, r2) = twin(AtomicU32::new(0));
    let refused = set.remote_launch(
        w,
        Box::new(move || {
            r2.fetch_add(1, Ordering::Relaxed);
            0
        }),
    );
    assert!(
        matches!(refused, Err(Error::LcoreBusy(l)) if l == w),
        "{refused:?}"
    );
    gate.wait();
    // Finished but uncollected is still busy.
    while set.lcore_state(w).unwrap() == LcoreState::Running {
        std::thread::yield_now();
    }
    assert_eq!(set.lcore_state(w).unwrap(), LcoreState::Finished);
    assert!(matches!(
        set.remote_launch(w, Box::new(|| 0)),
        Err(Error::LcoreBusy(_))
    ));
    assert_eq!(set.wait_lcore(w).unwrap(), 7);
    // Waiting again on an idle lcore returns 0 at once (DPDK semantics).
    assert_eq!(set.wait_lcore(w).unwrap(), 0);
    assert_eq!(ran.load(Ordering::Relaxed), 0, "refused job must never run");
}

#[test]
fn main_and_unknown_lcores_refused() {
    let Some((lcores, topo)) = setup("main_and_unknown_lcores_refused") else {
        return;
    };
    let set = LcoreSet::start(&lcores, 0, &topo).unwrap();
    assert!(matches!(
        set.remote_launch(0, Box::new(|| 0)),
        Err(Error::LcoreBusy(0))
    ));
    assert!(matches!(set.wait_lcore(0), Err(Error::LcoreBusy(0))));
    for bad in [lcores.len() as u32 + 3, MAX_LCORE as u32, u32::MAX] {
        assert!(
            matches!(set.remote_launch(bad, Box::new(|| 0)), Err(Error::BadLcore(b)) if b == bad)
        );
        assert!(matches!(set.wait_lcore(bad), Err(Error::BadLcore(_))));
        assert!(matches!(set.lcore_state(bad), Err(Error::BadLcore(_))));
        assert!(matches!(set.cpu_of(bad), Err(Error::BadLcore(_))));
        assert!(matches!(set.socket_of(bad), Err(Error::BadLcore(_))));
    }
}

#[test]
fn mp_launch_is_all_or_nothing() {
    let Some(set) = start_main_0("mp_launch_is_all_or_nothing") else {
        return;
    };
    let (sum, s) = twin(AtomicU32::new(0));
    set.mp_remote_launch(Arc::new(move |id| {
        s.fetch_add(1, Ordering::Relaxed);
        if lcore_id() == Some(id) {
            id as i32
        } else {
            -1
        }
    }))
    .unwrap();
    let results = set.mp_wait_lcore();
    assert_eq!(results.len(), set.worker_ids().len());
    for (id, r) in results {
        assert_eq!(r.unwrap(), id as i32);
    }
    assert_eq!(sum.load(Ordering::Relaxed) as usize, set.worker_ids().len());

    // One worker busy: nothing is launched anywhere.
    let w = set.worker_ids()[0];
    let (gate, g) = twin(Barrier::new(2));
    set.remote_launch(
        w,
        Box::new(move || {
            g.wait();
            0
        }),
    )
    .unwrap();
    let before = sum.load(Ordering::Relaxed);
    let s = Arc::clone(&sum);
    let r = set.mp_remote_launch(Arc::new(move |_| {
        s.fetch_add(1, Ordering::Relaxed);
        0
    }));
    assert!(matches!(r, Err(Error::LcoreBusy(l)) if l == w), "{r:?}");
    gate.wait();
    assert_eq!(set.wait_lcore(w).unwrap(), 0);
    for (_, r) in set.mp_wait_lcore() {
        assert_eq!(r.unwrap(), 0);
    }
    assert_eq!(
        sum.load(Ordering::Relaxed),
        before,
        "refused mp launch ran somewhere"
    );
}

#[test]
fn jobs_can_launch_on_other_lcores_from_any_thread() {
    let Some((set, w)) = start_with_worker("jobs_can_launch_on_other_lcores_from_any_thread")
    else {
        return;
    };
    // A plain thread (no lcore id) launches and waits: LcoreSet is Send + Sync.
    let (_set, s2) = twin(set); // the test keeps one handle to the end
    let code = std::thread::spawn(move || {
        assert_eq!(lcore_id(), None);
        s2.remote_launch(w, Box::new(|| 5)).unwrap();
        s2.wait_lcore(w).unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(code, 5);
}

#[test]
fn many_launches_every_result_once() {
    let Some(set) = start_main_0("many_launches_every_result_once") else {
        return;
    };
    for round in 0..500i32 {
        for &w in &set.worker_ids() {
            set.remote_launch(w, Box::new(move || round * 1000 + w as i32))
                .unwrap();
        }
        for (w, r) in set.mp_wait_lcore() {
            assert_eq!(r.unwrap(), round * 1000 + w as i32);
        }
    }
}

#[test]
fn shutdown_joins_and_clears_main_id() {
    let Some((mut set, w)) = start_with_worker("shutdown_joins_and_clears_main_id") else {
        return;
    };
    let (done, d) = twin(AtomicU32::new(0));
    set.remote_launch(
        w,
        Box::new(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            d.store(1, Ordering::Release); // pairs with the Acquire load after shutdown
            0
        }),
    )
    .unwrap();
    set.shutdown(); // waits for the running job
    assert_eq!(
        done.load(Ordering::Acquire),
        1,
        "shutdown returned before the job ended"
    );
    assert_eq!(lcore_id(), None);
    assert!(matches!(
        set.remote_launch(w, Box::new(|| 0)),
        Err(Error::BadLcore(_))
    ));
    set.shutdown(); // idempotent
}

#[test]
fn pin_failure_names_the_cpu() {
    // A topology that claims a cpu this process cannot use: the kernel refuses the pin.
    let allowed = sched_getaffinity_current().unwrap();
    let Some(ghost) = (0..1000u32).rev().find(|c| !allowed.contains(c)) else {
        testkit::skip(
            "pin_failure_names_the_cpu",
            Need::Cpus,
            "every cpu number below 1000 is usable here: no unusable cpu to pin to",
        );
        return;
    };
    let main_cpu = allowed[0];
    let topo = CpuTopology::flat(&[main_cpu, ghost]);
    match LcoreSet::start(&[(0, main_cpu), (1, ghost)], 0, &topo) {
        Err(e @ Error::LcorePin { lcore: 1, cpu, .. }) => {
            assert_eq!(cpu, ghost);
            assert!(e.to_string().contains(&format!("cpu {ghost}")), "{e}");
        }
        other => panic!("expected LcorePin for cpu {ghost}, got {other:?}"),
    }
    assert_eq!(
        lcore_id(),
        None,
        "failed start must not mark the caller as main"
    );
}

#[test]
fn lcore_id_is_none_outside_lcores() {
    assert_eq!(std::thread::spawn(lcore_id).join().unwrap(), None);
}

mod fake_topology {
    use std::fs;
    use std::path::Path;

    use eal::lcore::{CpuInfo, CpuTopology};
    use eal::Error;
    use testkit::tempdir::TempDir;

    fn put(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    /// 2 packages x 2 cores, cpu 3 offline, NUMA node per package.
    fn two_sockets() -> TempDir {
        let t = TempDir::new("topo");
        let r = t.path();
        put(r, "devices/system/cpu/online", "0-2,4\n");
        put(r, "devices/system/cpu/possible", "0-4\n");
        for (cpu, core, pkg) in [(0, 0, 0), (1, 1, 0), (2, 0, 1), (3, 1, 1), (4, 1, 1)] {
            put(
                r,
                &format!("devices/system/cpu/cpu{cpu}/topology/core_id"),
                &format!("{core}\n"),
            );
            put(
                r,
                &format!("devices/system/cpu/cpu{cpu}/topology/physical_package_id"),
                &format!("{pkg}\n"),
            );
        }
        put(r, "devices/system/node/online", "0-1\n");
        put(r, "devices/system/node/has_cpu", "0-1\n");
        put(r, "devices/system/node/node0/cpulist", "0-1\n");
        put(r, "devices/system/node/node1/cpulist", "2-4\n");
        t
    }

    #[test]
    fn reads_cores_packages_nodes() {
        let t = two_sockets();
        let topo = CpuTopology::read(t.path()).unwrap();
        assert_eq!(topo.online(), [0, 1, 2, 4]);
        assert_eq!(
            topo.get(2),
            Some(&CpuInfo {
                cpu: 2,
                core_id: 0,
                package_id: 1,
                numa_node: 1
            })
        );
        assert_eq!(
            topo.get(4),
            Some(&CpuInfo {
                cpu: 4,
                core_id: 1,
                package_id: 1,
                numa_node: 1
            })
        );
        assert_eq!(topo.get(0).unwrap().numa_node, 0);
        assert!(!topo.is_online(3));
        assert_eq!(topo.numa_nodes(), [0, 1]);
        assert_eq!(topo.cpus_on_node(1), [2, 4]);
    }

    #[test]
    fn no_node_dir_means_node_0_and_missing_ids_fall_back() {
        let t = TempDir::new("topo");
        put(t.path(), "devices/system/cpu/online", "0-1\n");
        put(
            t.path(),
            "devices/system/cpu/cpu0/topology/physical_package_id",
            "-1\n",
        );
        let topo = CpuTopology::read(t.path()).unwrap();
        assert_eq!(
            topo.cpus(),
            [
                CpuInfo {
                    cpu: 0,
                    core_id: 0,
                    package_id: 0,
                    numa_node: 0
                },
                CpuInfo {
                    cpu: 1,
                    core_id: 1,
                    package_id: 0,
                    numa_node: 0
                },
            ]
        );
    }

    #[test]
    fn malformed_files_name_the_file() {
        for (rel, content) in [
            ("devices/system/cpu/online", "0-x\n"),
            ("devices/system/cpu/online", "\n"),
            ("devices/system/cpu/online", "2-1\n"),
            ("devices/system/cpu/cpu1/topology/core_id", "one\n"),
            (
                "devices/system/cpu/cpu1/topology/physical_package_id",
                "-7\n",
            ),
            ("devices/system/node/node1/cpulist", "2-\n"),
        ] {
            let t = two_sockets();
            put(t.path(), rel, content);
            match CpuTopology::read(t.path()) {
                Err(Error::TopologyParse { path, .. }) => {
                    assert!(path.ends_with(rel), "{}", path.display())
                }
                other => panic!("{rel}={content:?}: expected TopologyParse, got {other:?}"),
            }
        }
        // No online file at all: an OS error naming it.
        let t = TempDir::new("topo");
        match CpuTopology::read(t.path()) {
            Err(e @ Error::Os { .. }) => assert!(e.to_string().contains("online"), "{e}"),
            other => panic!("expected Os error, got {other:?}"),
        }
    }
}

#[test]
fn last_handle_dropped_inside_a_job_does_not_deadlock() {
    let Some((set, w)) = start_with_worker("last_handle_dropped_inside_a_job_does_not_deadlock")
    else {
        return;
    };
    let (set, mine) = twin(set);
    let (tx, rx) = std::sync::mpsc::channel();
    let (gate, g) = twin(Barrier::new(2));
    set.remote_launch(
        w,
        Box::new(move || {
            g.wait();
            drop(mine); // the last handle: shutdown runs on this very worker
            tx.send(lcore_id()).unwrap();
            0
        }),
    )
    .unwrap();
    drop(set);
    gate.wait();
    assert_eq!(rx.recv().unwrap(), Some(w));
}
