//! Crash consistency: `blobstress` (a real process) runs a metadata-heavy workload on
//! an image file and is killed with SIGKILL at a random moment, several times over;
//! after each kill the store loads (recovering), every operation the log says
//! completed is there with its data, nothing is allocated twice or leaked, and after
//! an unload the store loads clean.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::process::Command;
use std::time::Duration;

use blob::{Blobstore, FileDev, LoadKind, LoadOpts};

mod common;

use common::block::{block, digest};
use common::check_accounting;

#[derive(Default)]
struct Expect {
    /// Blobs that must exist, with their size in clusters.
    live: BTreeMap<u64, u64>,
    /// Deleted for sure.
    gone: HashSet<u64>,
    /// (blob, region) -> the gen of the last completed write there.
    data: HashMap<(u64, u64), u64>,
    /// The blob an unfinished operation touches, whatever it was.
    in_flight: Option<u64>,
    /// An unfinished snapshot or create may have added a blob.
    may_add: bool,
    /// The fields of the unfinished operation's `B` line, if the kill left one.
    open: Option<Vec<String>>,
    /// An unfinished write: its blob and region, its gen, and the digest of what the
    /// region held before it (the region holds exactly one of the two afterwards).
    open_write: Option<((u64, u64), u64, u64)>,
}

fn parse_log(text: &str) -> Expect {
    let mut e = Expect::default();
    let mut open: Option<Vec<String>> = None;
    for l in text.lines() {
        let f: Vec<String> = l.split_whitespace().map(String::from).collect();
        if f.len() < 3 {
            continue;
        }
        let id: u64 = f[2].parse().unwrap();
        match (f[0].as_str(), f[1].as_str()) {
            ("B", _) => open = Some(f.clone()),
            ("E", "create") => {
                // Blob ids are reused after a delete.
                e.gone.remove(&id);
                e.live.insert(id, f[3].parse().unwrap());
                open = None;
            }
            ("E", "write") => {
                let k: u64 = f[3].parse().unwrap();
                e.data.insert((id, k), f[4].parse().unwrap());
                open = None;
            }
            ("E", "resize") => {
                e.live.insert(id, f[3].parse().unwrap());
                open = None;
            }
            ("E", "snap") => {
                let s: u64 = f[3].parse().unwrap();
                e.gone.remove(&s);
                let n = e.live.get(&id).copied().unwrap_or(0);
                e.live.insert(s, n);
                // The snapshot holds what the blob had.
                let copies: Vec<((u64, u64), u64)> = e
                    .data
                    .iter()
                    .filter(|((b, _), _)| *b == id)
                    .map(|((_, k), g)| ((s, *k), *g))
                    .collect();
                e.data.extend(copies);
                open = None;
            }
            ("E", "delete") => {
                e.live.remove(&id);
                e.gone.insert(id);
                e.data.retain(|(b, _), _| *b != id);
                open = None;
            }
            _ => {}
        }
    }
    e.open = open.clone();
    if let Some(f) = open {
        let id: u64 = f[2].parse().unwrap();
        e.in_flight = Some(id);
        match f[1].as_str() {
            "write" => {
                let k: u64 = f[3].parse().unwrap();
                e.open_write = Some(((id, k), f[4].parse().unwrap(), f[5].parse().unwrap()));
            }
            "snap" | "create" => e.may_add = true,
            _ => {}
        }
    }
    e
}

/// What the kill made of the unfinished operation, read from the recovered store: its
/// `E` line if it took effect, `None` if it did not. The store is unloaded after the
/// check, so this outcome is what the next round starts from, while the log alone
/// would forget it (the next round's first `B` line replaces the open one) and expect
/// the state from before it (a delete that happened read as a missing live blob, a
/// write that happened as data no completed write left, a create or snapshot that
/// happened as a blob nobody made).
fn outcome(e: &Expect, bs: &mut Blobstore, ids: &HashSet<u64>, extra: &[u64]) -> Option<String> {
    let f = e.open.as_ref()?;
    let id: u64 = f[2].parse().unwrap();
    match f[1].as_str() {
        "create" => extra.first().map(|x| format!("E create {x} {}", f[3])),
        "snap" => extra.first().map(|x| format!("E snap {id} {x}")),
        "delete" => (!ids.contains(&id)).then(|| format!("E delete {id}")),
        "resize" => {
            let n: u64 = f[3].parse().unwrap();
            (ids.contains(&id) && bs.blob_info(id).unwrap().num_clusters == n)
                .then(|| format!("E resize {id} {n}"))
        }
        "write" => {
            if !ids.contains(&id) {
                return None;
            }
            let (k, gen): (u64, u64) = (f[3].parse().unwrap(), f[4].parse().unwrap());
            let unit = bs.io_unit_size() as usize;
            let h = bs.open_blob(id).unwrap();
            let mut buf = vec![0u8; 8 * unit];
            bs.read(&h, k * 8, &mut buf).unwrap();
            bs.close_blob(h).unwrap();
            (buf == block(gen, unit)).then(|| format!("E write {id} {k} {gen}"))
        }
        other => panic!("unknown operation {other} in the log"),
    }
}

/// Check the killed store against the log; returns the `E` line of the unfinished
/// operation if the kill let it take effect (see [`outcome`]).
fn verify(img: &std::path::Path, log: &str, round: usize) -> Option<String> {
    let e = parse_log(log);
    let dev = FileDev::open(img, 512).unwrap();
    let (mut bs, kind) =
        Blobstore::load(Box::new(dev), &LoadOpts::default()).unwrap_or_else(|err| {
            panic!("round {round}: the store does not load after the kill: {err}")
        });
    assert_eq!(kind, LoadKind::Recovered, "a killed store is dirty");
    let ids: HashSet<u64> = bs.blob_ids().into_iter().collect();
    for (&id, &n) in &e.live {
        if e.in_flight == Some(id) {
            continue;
        }
        assert!(
            ids.contains(&id),
            "round {round}: blob {id:#x} whose creation completed is missing"
        );
        assert_eq!(
            bs.blob_info(id).unwrap().num_clusters,
            n,
            "round {round}: size of {id:#x}"
        );
    }
    // Only an unfinished create or snapshot may have added a blob (possibly under the
    // id of a deleted one: ids are reused).
    let extra: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|i| !e.live.contains_key(i))
        .collect();
    let allowed = usize::from(e.may_add);
    assert!(
        extra.len() <= allowed,
        "round {round}: blobs {extra:x?} exist that no completed operation made (deleted ones: {:x?})",
        extra.iter().filter(|i| e.gone.contains(i)).collect::<Vec<_>>()
    );
    let unit = bs.io_unit_size() as usize;
    let mut checked = 0;
    let mut regions: Vec<(u64, u64)> = e.data.keys().copied().collect();
    if let Some((r, _, _)) = e.open_write {
        if !e.data.contains_key(&r) {
            regions.push(r);
        }
    }
    for (id, k) in regions {
        if !ids.contains(&id) {
            // Only the unfinished operation may have taken a blob away: a delete.
            assert!(
                e.in_flight == Some(id) && e.open.as_ref().is_some_and(|f| f[1] == "delete"),
                "round {round}: blob {id:#x} with completed writes is missing"
            );
            continue;
        }
        let h = bs.open_blob(id).unwrap();
        let mut buf = vec![0u8; 8 * unit];
        bs.read(&h, k * 8, &mut buf).unwrap();
        bs.close_blob(h).unwrap();
        // A region holds exactly what its last completed write left; the unfinished
        // write's region holds either that (the digest its `B` line recorded) or the
        // new data, never a mix.
        let ok = match e.open_write {
            Some((r, gen, before)) if r == (id, k) => {
                buf == block(gen, unit) || digest(&buf) == before
            }
            _ => e.data.get(&(id, k)).is_some_and(|&g| buf == block(g, unit)),
        };
        assert!(
            ok,
            "round {round}: data of blob {id:#x} region {k} is not what a completed write left"
        );
        checked += 1;
    }
    let done = outcome(&e, &mut bs, &ids, &extra);
    // No cluster twice (the load refuses that), none leaked.
    let owned = check_accounting(&bs);
    eprintln!(
        "crash round {round}: {} blobs, {checked} regions checked, {} clusters in use",
        ids.len(),
        owned
    );
    bs.unload().unwrap();
    let dev = FileDev::open(img, 512).unwrap();
    let (bs, kind) = Blobstore::load(Box::new(dev), &LoadOpts::default()).unwrap();
    assert_eq!(kind, LoadKind::Clean, "clean after unload");
    // Leave it dirty again so the next round's worker recovers (a load alone writes
    // nothing; its first change marks it dirty).
    drop(bs);
    done
}

#[test]
fn kill_9_mid_workload() {
    let dir = std::env::temp_dir().join(format!("fp-blobcrash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("img");
    let log = dir.join("log");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(32 << 20).unwrap();
    drop(f);
    let exe = env!("CARGO_BIN_EXE_blobstress");
    let delays = [700u64, 1300, 450, 1900, 1000];
    for (round, d) in delays.iter().enumerate() {
        let mut c = Command::new(exe);
        c.arg(&img).arg(&log).arg(format!("{}", 77 + round));
        // (blobstress mixes the seed: each round is a stream of its own.)
        if round == 0 {
            c.arg("--init");
        }
        let mut ch = c.spawn().expect("start blobstress");
        std::thread::sleep(Duration::from_millis(*d));
        if let Ok(Some(st)) = ch.try_wait() {
            panic!("blobstress exited by itself: {st:?}");
        }
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(ch.id() as i32, libc::SIGKILL) };
        assert_eq!(rc, 0);
        let _ = ch.wait();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            text.lines().count() > 5,
            "round {round}: the workload did little ({text})"
        );
        if let Some(l) = verify(&img, &text, round) {
            // The next round's worker appends after this: record the outcome so the
            // log tells the whole history.
            std::fs::OpenOptions::new()
                .append(true)
                .open(&log)
                .and_then(|mut f| f.write_all(format!("{l}\n").as_bytes()))
                .unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
