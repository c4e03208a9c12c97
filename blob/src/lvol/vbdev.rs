//! Lvol bdevs (SPDK's `vbdev_lvol`): each lvol is a bdev named by its UUID with the
//! alias "LVS/LVOL", block size = the store's I/O unit. A submit runs on its framework
//! thread through that thread's base channel when the clusters are in place
//! ([`super::io_path`]); otherwise it goes to the store's worker OS thread (blob
//! metadata waits for the base bdev), which completes it back on the submitting thread
//! with a message. No completion runs inside its own submit.

use std::sync::{Arc, Weak};

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use bdev::{BdevInfo, BdevIo, BdevIoChannel, BdevModule, IoStatus, IoType, ModuleChannel, Uuid};
use crossbeam_channel::{unbounded, Sender};
use framework::{thread, ThreadHandle};

use crate::error::{Error, Result};
use crate::lvol::io_path::{self, Fast, LvolData, LvolFacts};
use crate::lvol::{Geometry, Lvol, LvolStore};
use crate::store::Blobstore;

type Job = Box<dyn FnOnce() + Send>;

/// A store's I/O worker: one OS thread running jobs in order; it ends when the store
/// (the last sender) goes.
pub(crate) struct Worker {
    tx: Sender<Job>,
}

impl Worker {
    pub(crate) fn start(name: &str) -> Result<Worker> {
        let (tx, rx) = unbounded::<Job>();
        std::thread::Builder::new()
            .name(format!("lvs-{name}"))
            .spawn(move || {
                for j in rx {
                    j();
                }
            })
            .map_err(|e| Error::Io {
                what: "start the lvol store's worker thread".into(),
                why: e.to_string(),
            })?;
        Ok(Worker { tx })
    }

    fn send(&self, j: Job) -> bool {
        self.tx.send(j).is_ok()
    }
}

struct LvolBdev {
    store: Weak<LvolStore>,
    blob: u64,
    read_only: bool,
    data: Arc<LvolData>,
}

struct LvolChannel {
    store: Weak<LvolStore>,
    blob: u64,
    read_only: bool,
    data: Arc<LvolData>,
    /// This thread's channel of the base bdev (`None` if the store is gone).
    base_ch: Option<BdevIoChannel>,
}

pub(crate) fn complete_on(th: ThreadHandle, io: BdevIo, st: IoStatus) {
    if let Err(e) = th.send_msg(move || io.complete(st)) {
        eal::log_err!(
            "lvol: the submitting thread is gone; I/O dropped: {:?}",
            e.reason
        );
    }
}

fn do_io(s: &LvolStore, blob: u64, read_only: bool, io: &BdevIo) -> IoStatus {
    let t = io.io_type();
    if t.writes() && read_only && t != IoType::Reset {
        return IoStatus::Failed;
    }
    let r = s.with_bs(|bs, lvols| {
        let Some(l) = lvols.values().find(|l| l.blob.id() == blob) else {
            return Err(Error::NoBlob(blob));
        };
        match t {
            IoType::Read => {
                let mut buf = vec![0u8; io.len_bytes()];
                bs.read(&l.blob, io.offset_blocks(), &mut buf)?;
                io.copy_in(&buf);
            }
            IoType::Write => {
                let mut buf = vec![0u8; io.len_bytes()];
                io.copy_out(&mut buf);
                bs.write(&l.blob, io.offset_blocks(), &buf)?;
            }
            IoType::WriteZeroes => {
                let buf = vec![0u8; io.len_bytes()];
                bs.write(&l.blob, io.offset_blocks(), &buf)?;
            }
            _ => {}
        }
        Ok(())
    });
    match r {
        Ok(()) => IoStatus::Success,
        Err(e) => {
            eal::log_err!("lvol: {} failed: {e}", t.name());
            IoStatus::Failed
        }
    }
}

impl ModuleChannel for LvolChannel {
    fn submit(&self, io: BdevIo) {
        let Some(th) = thread::current() else {
            // Submits always run on a framework thread; nothing to complete on.
            return;
        };
        let Some(s) = self.store.upgrade() else {
            complete_on(th, io, IoStatus::Failed);
            return;
        };
        let (blob, ro) = (self.blob, self.read_only);
        let io = match &self.base_ch {
            Some(ch) => match io_path::try_fast(&self.data, &s.base, ch, &th, io) {
                Fast::Done => return,
                Fast::Worker(io) => io,
            },
            None => io,
        };
        s.worker_ios.fetch_add(1, Ordering::Relaxed);
        let s2 = s.clone();
        let th2 = th.clone();
        let job: Job = Box::new(move || {
            let st = do_io(&s2, blob, ro, &io);
            complete_on(th2, io, st);
        });
        if !s.worker.send(job) {
            eal::log_err!("lvol: the store's worker is gone");
        }
    }
}

impl BdevModule for LvolBdev {
    fn module_name(&self) -> &str {
        "lvol"
    }
    fn io_type_supported(&self, t: IoType) -> bool {
        matches!(
            t,
            IoType::Read | IoType::Write | IoType::WriteZeroes | IoType::Flush | IoType::Reset
        )
    }
    fn create_channel(&self) -> std::result::Result<Box<dyn ModuleChannel>, String> {
        let base_ch = match self.store.upgrade() {
            Some(s) => {
                let g = s.base.lock().unwrap_or_else(|e| e.into_inner());
                let (d, _) = g.as_ref().ok_or("the lvol store's base is closed")?;
                Some(d.get_io_channel().map_err(|e| e.to_string())?)
            }
            None => None,
        };
        Ok(Box::new(LvolChannel {
            store: self.store.clone(),
            blob: self.blob,
            read_only: self.read_only,
            data: self.data.clone(),
            base_ch,
        }))
    }
    fn info_json(&self) -> Option<serde_json::Value> {
        let s = self.store.upgrade()?;
        // SPDK's fields; a clone names its snapshot, a snapshot its clones.
        let LvolFacts {
            thin,
            allocated,
            base_snapshot: base,
            clones,
        } = self.data.facts();
        let mut v = serde_json::json!({
            "lvol_store_uuid": s.uuid.to_string(),
            "base_bdev": s.base_bdev,
            "blobid": self.blob,
            "thin_provision": thin,
            "num_allocated_clusters": allocated,
            "snapshot": self.read_only,
            "clone": base.is_some(),
        });
        if let Some(b) = base {
            v["base_snapshot"] = serde_json::json!(b);
        }
        if self.read_only {
            v["clones"] = serde_json::json!(clones);
        }
        Some(serde_json::json!({ "lvol": v }))
    }
}

/// Publish every lvol's cluster map and facts as the metadata says now (under the
/// store's lock, after every change).
pub(crate) fn publish(bs: &Blobstore, lvols: &BTreeMap<String, Lvol>) {
    let name_of = |id: u64| {
        lvols
            .values()
            .find(|l| l.blob.id() == id)
            .map(|l| l.name.clone())
    };
    for l in lvols.values() {
        let id = l.blob.id();
        let (Ok(m), Ok(i)) = (bs.cluster_map(id), bs.blob_info(id)) else {
            continue;
        };
        l.data.publish(m);
        l.data.publish_facts(LvolFacts {
            thin: i.thin,
            allocated: i.allocated_clusters,
            base_snapshot: i.parent.and_then(name_of),
            clones: bs.clones_of(id).into_iter().filter_map(name_of).collect(),
        });
    }
}

/// Register the bdev of lvol `name` with UUID `uuid` (its name; the alias is
/// "LVS/LVOL", as SPDK's `_create_lvol_disk`).
pub(crate) fn register(s: &Arc<LvolStore>, name: &str, uuid: Uuid, g: &Geometry) -> Result<()> {
    let info = BdevInfo {
        name: uuid.to_string(),
        aliases: vec![format!("{}/{name}", s.name())],
        uuid,
        product_name: "Logical Volume".into(),
        block_size: g.block_size,
        num_blocks: g.blocks,
        optimal_io_boundary: 0,
        write_cache: false,
        max_transfer_blocks: 0,
    };
    bdev::bdev::register(
        info,
        Arc::new(LvolBdev {
            store: Arc::downgrade(s),
            blob: g.blob,
            read_only: g.read_only,
            data: g.data.clone(),
        }),
    )?;
    Ok(())
}

/// Unregister bdev `name` on framework thread `th` and wait until it is gone (from
/// an OS thread, never `th` itself).
pub(crate) fn unregister_wait(th: &ThreadHandle, name: &str) -> Result<()> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let n = name.to_string();
    let tx2 = tx.clone();
    th.send_msg(move || {
        if let Err(e) = bdev::bdev::unregister(&n, move |r| {
            let _ = tx2.send(r.map_err(Error::from));
        }) {
            let _ = tx.send(Err(e.into()));
        }
    })
    .map_err(|e| Error::Io {
        what: format!("unregister bdev '{name}'"),
        why: format!("framework thread gone: {:?}", e.reason),
    })?;
    rx.recv().map_err(|_| Error::Io {
        what: format!("unregister bdev '{name}'"),
        why: "no answer".into(),
    })?
}
