//! `blobstress FILE LOG SEED [--init]`: a metadata-heavy blobstore workload on an image
//! file (creates, writes that allocate, resizes, snapshots, deletes) that runs until
//! killed, appending to LOG a `B` line before and an `E` line after each operation
//! (the `E` line only once the operation, its metadata sync included, has completed;
//! the journal is fsynced after each `E` line). A `B write` line carries the digest of
//! the region's contents before the write.
//! The crash-consistency test kills it with SIGKILL and checks the store against the
//! log. With `--init` the file is formatted first; otherwise the store is loaded
//! (recovered after a crash).

mod block;

use std::io::Write;

use block::{block, digest, seed_state};

use blob::{BlobOpts, Blobstore, FileDev, InitOpts, LoadOpts};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 4 {
        eprintln!("usage: blobstress FILE LOG SEED [--init]");
        std::process::exit(2);
    }
    let seed: u64 = match a[3].parse() {
        Ok(s) => s,
        Err(_) => {
            eprintln!("blobstress: bad SEED '{}'", a[3]);
            std::process::exit(2);
        }
    };
    let dev = match FileDev::open(std::path::Path::new(&a[1]), 512) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("blobstress: {e}");
            std::process::exit(1);
        }
    };
    let mut bs = if a.get(4).map(String::as_str) == Some("--init") {
        Blobstore::init(
            Box::new(dev),
            &InitOpts {
                cluster_size: 64 * 1024,
                ..Default::default()
            },
        )
    } else {
        Blobstore::load(Box::new(dev), &LoadOpts::default()).map(|(b, _)| b)
    }
    .unwrap_or_else(|e| {
        eprintln!("blobstress: {e}");
        std::process::exit(1);
    });
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&a[2])
        .unwrap_or_else(|e| {
            eprintln!("blobstress: {}: {e}", a[2]);
            std::process::exit(1);
        });
    let mut line = |s: String| {
        // One write(2) per line: a kill leaves whole lines. An `E` line is made
        // durable before the next operation starts.
        let _ = log.write_all(format!("{s}\n").as_bytes());
        if s.starts_with('E') {
            let _ = log.sync_data();
        }
    };
    let mut rng = Rng(seed_state(seed));
    let unit = bs.io_unit_size() as usize;
    let upc = bs.io_units_per_cluster();
    loop {
        let ids = bs.blob_ids();
        let writable: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|&i| bs.blob_info(i).is_ok_and(|x| !x.read_only))
            .collect();
        match rng.below(10) {
            0..=2 if ids.len() < 40 => {
                let n = 1 + rng.below(6);
                let thin = rng.below(2) == 0;
                let rle = rng.below(3) == 0;
                line(format!("B create 0 {n}"));
                match bs.create_blob(&BlobOpts {
                    num_clusters: n,
                    thin_provision: thin,
                    use_extent_table: !rle,
                    xattrs: vec![("n".into(), n.to_le_bytes().to_vec())],
                }) {
                    Ok(id) => line(format!("E create {id} {n}")),
                    Err(_) => continue,
                }
            }
            3..=5 if !writable.is_empty() => {
                let id = writable[rng.below(writable.len() as u64) as usize];
                let n = bs.blob_info(id).map(|x| x.num_clusters).unwrap_or(0);
                let regions = n * upc / 8;
                if regions == 0 {
                    continue;
                }
                let k = rng.below(regions);
                let gen = rng.next();
                let Ok(h) = bs.open_blob(id) else { continue };
                let mut old = vec![0u8; 8 * unit];
                if bs.read(&h, k * 8, &mut old).is_err() {
                    let _ = bs.close_blob(h);
                    continue;
                }
                line(format!("B write {id} {k} {gen} {}", digest(&old)));
                let r = bs.write(&h, k * 8, &block(gen, unit));
                let _ = bs.close_blob(h);
                if r.is_ok() {
                    line(format!("E write {id} {k} {gen}"));
                }
            }
            6 if !writable.is_empty() => {
                let id = writable[rng.below(writable.len() as u64) as usize];
                let n = bs.blob_info(id).map(|x| x.num_clusters).unwrap_or(0) + 1 + rng.below(3);
                line(format!("B resize {id} {n}"));
                let Ok(h) = bs.open_blob(id) else { continue };
                let r = bs.resize(&h, n).and_then(|_| bs.sync_md(id));
                let _ = bs.close_blob(h);
                if r.is_ok() {
                    line(format!("E resize {id} {n}"));
                }
            }
            7 if !writable.is_empty() => {
                let id = writable[rng.below(writable.len() as u64) as usize];
                line(format!("B snap {id}"));
                if let Ok(s) = bs.create_snapshot(id, &[]) {
                    line(format!("E snap {id} {s}"));
                }
            }
            8 | 9 if ids.len() > 4 => {
                let id = ids[rng.below(ids.len() as u64) as usize];
                if bs.clones_of(id).len() > 1 {
                    continue;
                }
                line(format!("B delete {id}"));
                if bs.delete_blob(id).is_ok() {
                    line(format!("E delete {id}"));
                }
            }
            _ => {}
        }
    }
}
