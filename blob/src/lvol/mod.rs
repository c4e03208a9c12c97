//! Logical volumes (SPDK's `lib/lvol` and `module/bdev/lvol`): an lvol store is a
//! blobstore of bstype "LVOLSTORE" on a base bdev whose super blob carries the store's
//! "name" and "uuid" xattrs; each lvol is a blob with "name" and "uuid" xattrs, exposed
//! as a bdev named by its UUID with the alias "LVS/LVOL". Facts from SPDK's lvol.c:
//! the store's "uuid" value is the 36-character lower-case UUID with its terminating
//! zero (37 bytes), its "name" the name with its zero; an lvol's "name" is the
//! 64-byte name buffer (SPDK_LVOL_NAME_MAX) and its "uuid" 37 bytes; the default
//! cluster size is 4 MiB (SPDK_LVS_OPTS_CLUSTER_SZ) and one metadata page per cluster.
//!
//! # Threads
//!
//! Store operations wait for I/O: they run on OS threads of their own (the RPC
//! methods start one per call), serialised by the store's lock. Lvol bdev I/O is
//! handed from the submitting framework thread to the store's I/O worker thread and
//! completed back on the submitting thread by a message.

pub mod rpc;
pub mod vbdev;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bdev::Uuid;
use framework::ThreadHandle;

use crate::bdev_dev::BdevDev;
use crate::error::{Error, Result};
use crate::ops::{Blob, BlobOpts};
use crate::store::{Blobstore, InitOpts};

/// SPDK_LVS_NAME_MAX / SPDK_LVOL_NAME_MAX: names are shorter than 64 bytes.
pub const NAME_MAX: usize = 64;
/// SPDK_LVS_OPTS_CLUSTER_SZ.
pub const DEFAULT_CLUSTER_SIZE: u32 = 4 << 20;
/// The lvol store's bstype.
pub const BSTYPE: &str = "LVOLSTORE";

/// One lvol.
pub struct Lvol {
    /// Its name in the store.
    pub name: String,
    /// Its UUID (the bdev's name).
    pub uuid: Uuid,
    /// Its blob.
    pub blob: Blob,
}

pub(crate) struct Inner {
    pub(crate) bs: Option<Blobstore>,
    pub(crate) lvols: BTreeMap<String, Lvol>,
}

/// An lvol store.
pub struct LvolStore {
    /// Name.
    pub name: String,
    /// UUID.
    pub uuid: Uuid,
    /// The base bdev.
    pub base_bdev: String,
    /// The framework thread the base bdev's I/O runs on.
    pub(crate) thread: ThreadHandle,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) worker: vbdev::Worker,
}

fn registry() -> MutexGuard<'static, Vec<Arc<LvolStore>>> {
    static R: OnceLock<Mutex<Vec<Arc<LvolStore>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Every lvol store.
pub fn stores() -> Vec<Arc<LvolStore>> {
    registry().clone()
}

/// The store with this name or UUID.
pub fn find(name_or_uuid: &str) -> Option<Arc<LvolStore>> {
    registry()
        .iter()
        .find(|s| s.name == name_or_uuid || s.uuid.to_string() == name_or_uuid)
        .cloned()
}

fn inval(what: &'static str, why: impl Into<String>) -> Error {
    Error::Invalid {
        what,
        why: why.into(),
    }
}

fn zstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// An lvol's "name" value: the 64-byte buffer SPDK stores.
fn name_buf(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.resize(NAME_MAX, 0);
    v
}

fn check_name(what: &'static str, n: &str) -> Result<()> {
    if n.is_empty() || n.len() >= NAME_MAX || n.contains('/') {
        return Err(inval(
            what,
            format!("name '{n}' must be 1..63 bytes without '/'"),
        ));
    }
    Ok(())
}

/// What `create_lvstore` takes.
#[derive(Debug, Clone)]
pub struct LvsOpts {
    /// Store name.
    pub name: String,
    /// Cluster size in bytes.
    pub cluster_size: u32,
    /// Metadata pages per 100 clusters.
    pub md_pages_per_cluster_ratio: u32,
}

impl LvolStore {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on the store's blobstore.
    pub(crate) fn with_bs<T>(
        &self,
        f: impl FnOnce(&mut Blobstore, &mut BTreeMap<String, Lvol>) -> Result<T>,
    ) -> Result<T> {
        let mut g = self.lock();
        let Inner { bs, lvols } = &mut *g;
        let bs = bs
            .as_mut()
            .ok_or(inval("use an lvol store", "it is unloaded"))?;
        f(bs, lvols)
    }

    /// Geometry and counters.
    pub fn info(&self) -> Option<crate::store::StoreInfo> {
        self.lock().bs.as_ref().map(|b| b.info())
    }
}

/// Create an lvol store on `base` (call from an OS thread, not a framework thread;
/// `th` runs the base bdev's I/O). Returns it, registered.
pub fn create_lvstore(th: &ThreadHandle, base: &str, o: &LvsOpts) -> Result<Arc<LvolStore>> {
    check_name("create an lvol store", &o.name)?;
    if find(&o.name).is_some() {
        return Err(inval(
            "create an lvol store",
            format!("lvol store '{}' exists", o.name),
        ));
    }
    let dev = BdevDev::open(th, base)?;
    let total = (crate::dev::BlockDevice::num_blocks(&dev)
        * u64::from(crate::dev::BlockDevice::block_size(&dev)))
        / u64::from(o.cluster_size.max(1));
    let md = (total * u64::from(o.md_pages_per_cluster_ratio) / 100).max(1);
    let mut bs = Blobstore::init(
        Box::new(dev),
        &InitOpts {
            cluster_size: o.cluster_size,
            bstype: BSTYPE.into(),
            num_md_pages: Some(
                u32::try_from(md)
                    .map_err(|_| inval("create an lvol store", "too many metadata pages"))?,
            ),
        },
    )?;
    let uuid = Uuid::random();
    let sb = bs.create_blob(&BlobOpts {
        xattrs: vec![
            ("uuid".into(), zstr(&uuid.to_string())),
            ("name".into(), zstr(&o.name)),
        ],
        ..Default::default()
    })?;
    bs.set_super_blob(Some(sb))?;
    let s = Arc::new(LvolStore {
        name: o.name.clone(),
        uuid,
        base_bdev: base.to_string(),
        thread: th.clone(),
        inner: Mutex::new(Inner {
            bs: Some(bs),
            lvols: BTreeMap::new(),
        }),
        worker: vbdev::Worker::start(&o.name)?,
    });
    registry().push(s.clone());
    Ok(s)
}

/// Create an lvol of `size` bytes (rounded up to clusters) and register its bdev.
/// Returns its UUID.
pub fn create_lvol(s: &Arc<LvolStore>, name: &str, size: u64, thin: bool) -> Result<Uuid> {
    check_name("create an lvol", name)?;
    let uuid = Uuid::random();
    let (id, blocks, bsz) = s.with_bs(|bs, lvols| {
        if lvols.contains_key(name) {
            return Err(inval(
                "create an lvol",
                format!("lvol '{name}' exists in '{}'", s.name),
            ));
        }
        let cs = u64::from(bs.info().cluster_size);
        let id = bs.create_blob(&BlobOpts {
            num_clusters: size.div_ceil(cs),
            thin_provision: thin,
            xattrs: vec![
                ("name".into(), name_buf(name)),
                ("uuid".into(), zstr(&uuid.to_string())),
            ],
            ..Default::default()
        })?;
        let blob = bs.open_blob(id)?;
        lvols.insert(
            name.to_string(),
            Lvol {
                name: name.to_string(),
                uuid,
                blob,
            },
        );
        Ok((
            id,
            size.div_ceil(cs) * cs / u64::from(bs.io_unit_size()),
            bs.io_unit_size(),
        ))
    })?;
    vbdev::register(s, name, uuid, id, blocks, bsz, false)?;
    Ok(uuid)
}

/// Resolve "LVS/LVOL" or an lvol bdev's UUID.
pub fn find_lvol(name: &str) -> Option<(Arc<LvolStore>, String)> {
    if let Some((lvs, lv)) = name.split_once('/') {
        let s = find(lvs)?;
        let ok = s.lock().lvols.contains_key(lv);
        return ok.then(|| (s, lv.to_string()));
    }
    for s in stores() {
        let hit = s
            .lock()
            .lvols
            .values()
            .find(|l| l.uuid.to_string() == name)
            .map(|l| l.name.clone());
        if let Some(n) = hit {
            return Some((s, n));
        }
    }
    None
}

/// Snapshot lvol `lvol` of store `s` as `snap`; returns the snapshot's UUID.
pub fn snapshot(s: &Arc<LvolStore>, lvol: &str, snap: &str) -> Result<Uuid> {
    check_name("snapshot an lvol", snap)?;
    let uuid = Uuid::random();
    let (id, blocks, bsz) = s.with_bs(|bs, lvols| {
        if lvols.contains_key(snap) {
            return Err(inval("snapshot an lvol", format!("lvol '{snap}' exists")));
        }
        let l = lvols
            .get(lvol)
            .ok_or(inval("snapshot an lvol", format!("no lvol '{lvol}'")))?;
        let sid = bs.create_snapshot(
            l.blob.id(),
            &[
                ("name".into(), name_buf(snap)),
                ("uuid".into(), zstr(&uuid.to_string())),
            ],
        )?;
        let blob = bs.open_blob(sid)?;
        let n = bs.blob_info(sid)?.num_clusters * bs.io_units_per_cluster();
        lvols.insert(
            snap.to_string(),
            Lvol {
                name: snap.to_string(),
                uuid,
                blob,
            },
        );
        Ok((sid, n, bs.io_unit_size()))
    })?;
    vbdev::register(s, snap, uuid, id, blocks, bsz, true)?;
    Ok(uuid)
}

/// Clone snapshot `snap` as `clone`; returns the clone's UUID.
pub fn clone(s: &Arc<LvolStore>, snap: &str, clone: &str) -> Result<Uuid> {
    check_name("clone an lvol", clone)?;
    let uuid = Uuid::random();
    let (id, blocks, bsz) = s.with_bs(|bs, lvols| {
        if lvols.contains_key(clone) {
            return Err(inval("clone an lvol", format!("lvol '{clone}' exists")));
        }
        let l = lvols
            .get(snap)
            .ok_or(inval("clone an lvol", format!("no lvol '{snap}'")))?;
        let cid = bs.create_clone(
            l.blob.id(),
            &[
                ("name".into(), name_buf(clone)),
                ("uuid".into(), zstr(&uuid.to_string())),
            ],
        )?;
        let blob = bs.open_blob(cid)?;
        let n = bs.blob_info(cid)?.num_clusters * bs.io_units_per_cluster();
        lvols.insert(
            clone.to_string(),
            Lvol {
                name: clone.to_string(),
                uuid,
                blob,
            },
        );
        Ok((cid, n, bs.io_unit_size()))
    })?;
    vbdev::register(s, clone, uuid, id, blocks, bsz, false)?;
    Ok(uuid)
}

/// Resize lvol `lvol` to `size` bytes (rounded up to clusters). Its bdev is
/// registered again with the new size, so it must not be open.
pub fn resize(s: &Arc<LvolStore>, lvol: &str, size: u64) -> Result<()> {
    let (uuid, id) = s.with_bs(|_, lvols| {
        let l = lvols
            .get(lvol)
            .ok_or(inval("resize an lvol", format!("no lvol '{lvol}'")))?;
        Ok((l.uuid, l.blob.id()))
    })?;
    let bdev_name = uuid.to_string();
    if let Some(b) = bdev::bdev::get(&bdev_name) {
        if b.open_descs() > 0 {
            return Err(Error::Busy {
                what: "resize an lvol",
                id,
                why: format!("its bdev '{bdev_name}' is open (the bdev layer keeps a bdev's size while open)"),
            });
        }
    }
    let (blocks, bsz) = s.with_bs(|bs, lvols| {
        let l = lvols
            .get(lvol)
            .ok_or(inval("resize an lvol", format!("no lvol '{lvol}'")))?;
        let cs = u64::from(bs.info().cluster_size);
        bs.resize(&l.blob, size.div_ceil(cs))?;
        bs.sync_md(id)?;
        Ok((
            size.div_ceil(cs) * cs / u64::from(bs.io_unit_size()),
            bs.io_unit_size(),
        ))
    })?;
    vbdev::unregister_wait(&s.thread, &bdev_name)?;
    vbdev::register(s, lvol, uuid, id, blocks, bsz, false)?;
    Ok(())
}

/// Delete lvol `lvol` (its bdev first).
pub fn delete(s: &Arc<LvolStore>, lvol: &str) -> Result<()> {
    let uuid = s.with_bs(|bs, lvols| {
        let l = lvols
            .get(lvol)
            .ok_or(inval("delete an lvol", format!("no lvol '{lvol}'")))?;
        let n = bs.clones_of(l.blob.id()).len();
        if n > 1 {
            return Err(Error::Busy {
                what: "delete an lvol",
                id: l.blob.id(),
                why: format!("is a snapshot with {n} clones"),
            });
        }
        Ok(l.uuid)
    })?;
    if bdev::bdev::get(&uuid.to_string()).is_some() {
        vbdev::unregister_wait(&s.thread, &uuid.to_string())?;
    }
    s.with_bs(|bs, lvols| {
        let l = lvols
            .remove(lvol)
            .ok_or(inval("delete an lvol", format!("no lvol '{lvol}'")))?;
        let id = l.blob.id();
        bs.close_blob(l.blob)?;
        bs.delete_blob(id)
    })
}

/// Unload a store (its lvol bdevs unregistered first) and forget it.
pub fn unload(s: &Arc<LvolStore>) -> Result<()> {
    close_all(s)?;
    let bs = s.lock().bs.take();
    if let Some(bs) = bs {
        drop(bs.unload()?);
    }
    registry().retain(|x| !Arc::ptr_eq(x, s));
    Ok(())
}

fn close_all(s: &Arc<LvolStore>) -> Result<()> {
    let names: Vec<(String, Uuid)> = s
        .lock()
        .lvols
        .values()
        .map(|l| (l.name.clone(), l.uuid))
        .collect();
    for (_, u) in &names {
        if bdev::bdev::get(&u.to_string()).is_some() {
            vbdev::unregister_wait(&s.thread, &u.to_string())?;
        }
    }
    s.with_bs(|bs, lvols| {
        for (_, l) in std::mem::take(lvols) {
            bs.close_blob(l.blob)?;
        }
        Ok(())
    })
}

/// Destroy a store: its lvols and their bdevs go, the super block is erased (as
/// SPDK's `spdk_lvs_destroy`), the base bdev is released.
pub fn destroy(s: &Arc<LvolStore>) -> Result<()> {
    close_all(s)?;
    let bs = s.lock().bs.take();
    if let Some(bs) = bs {
        let mut dev = bs.unload()?;
        dev.write(0, &vec![0u8; crate::format::PAGE_SIZE])?;
        dev.flush()?;
    }
    registry().retain(|x| !Arc::ptr_eq(x, s));
    Ok(())
}
