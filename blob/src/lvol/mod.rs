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
//! Store operations (metadata) wait for I/O: they run on OS threads of their own (the
//! RPC methods start one per call), serialised by the store's lock. Lvol bdev I/O runs
//! on the submitting framework thread through that thread's channel of the base bdev
//! ([`io_path`]); only a write that needs a cluster allocated (or copied from a
//! parent), or I/O while a snapshot freezes the lvol, goes to the store's worker
//! thread, which takes the store's lock like any metadata change and completes the
//! I/O back on the submitting thread by a message.

pub mod examine;
pub(crate) mod io_path;
pub mod rpc;
pub mod vbdev;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use bdev::Uuid;
use framework::ThreadHandle;

use crate::bdev_dev::{BdevDev, Open};
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
    /// Its published cluster map and I/O gate.
    pub(crate) data: Arc<io_path::LvolData>,
}

pub(crate) struct Inner {
    pub(crate) bs: Option<Blobstore>,
    pub(crate) lvols: BTreeMap<String, Lvol>,
}

/// An lvol store.
pub struct LvolStore {
    /// Name (changed by [`rename_lvstore`]).
    name: Mutex<String>,
    /// UUID.
    pub uuid: Uuid,
    /// The base bdev.
    pub base_bdev: String,
    /// The framework thread the base bdev's I/O runs on.
    pub(crate) thread: ThreadHandle,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) worker: vbdev::Worker,
    /// The store's descriptor of the base bdev: lvol channels get their base channels
    /// from it.
    pub(crate) base: Open,
    /// Lvol I/O requests the worker thread ran (the rest ran on their own threads).
    pub(crate) worker_ios: AtomicU64,
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
        .find(|s| s.name() == name_or_uuid || s.uuid.to_string() == name_or_uuid)
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

/// A string xattr value up to its first zero.
pub(crate) fn from_zstr(v: &[u8]) -> String {
    String::from_utf8_lossy(&v[..v.iter().position(|&c| c == 0).unwrap_or(v.len())]).into_owned()
}

/// An lvol's "name" and "uuid" xattrs.
fn lvol_xattrs(name: &str, uuid: Uuid) -> Vec<(String, Vec<u8>)> {
    vec![
        ("name".into(), name_buf(name)),
        ("uuid".into(), zstr(&uuid.to_string())),
    ]
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

/// What an lvol's bdev is made of.
pub(crate) struct Geometry {
    pub(crate) blob: u64,
    pub(crate) blocks: u64,
    pub(crate) block_size: u32,
    pub(crate) read_only: bool,
    pub(crate) data: Arc<io_path::LvolData>,
}

/// Open blob `id` as lvol `name` of the store and say what its bdev is.
pub(crate) fn add_lvol(
    bs: &mut Blobstore,
    lvols: &mut BTreeMap<String, Lvol>,
    name: &str,
    uuid: Uuid,
    id: u64,
) -> Result<Geometry> {
    let i = bs.blob_info(id)?;
    let data = Arc::new(io_path::LvolData::default());
    data.publish(bs.cluster_map(id)?);
    let blob = bs.open_blob(id)?;
    lvols.insert(
        name.to_string(),
        Lvol {
            name: name.to_string(),
            uuid,
            blob,
            data: data.clone(),
        },
    );
    Ok(Geometry {
        blob: id,
        blocks: i.num_clusters * bs.io_units_per_cluster(),
        block_size: bs.io_unit_size(),
        read_only: i.read_only,
        data,
    })
}

impl LvolStore {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Its name.
    pub fn name(&self) -> String {
        self.name.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Its lvols' names, in order.
    pub fn lvol_names(&self) -> Vec<String> {
        self.lock().lvols.keys().cloned().collect()
    }

    /// Run `f` on the store's blobstore, then publish every lvol's cluster map and
    /// facts (before the lock goes: no I/O sees metadata newer than its map, see
    /// [`io_path`]). Never call it on a framework thread: the lock is held across base
    /// I/O that framework threads complete.
    pub(crate) fn with_bs<T>(
        &self,
        f: impl FnOnce(&mut Blobstore, &mut BTreeMap<String, Lvol>) -> Result<T>,
    ) -> Result<T> {
        let mut g = self.lock();
        let Inner { bs, lvols } = &mut *g;
        let bs = bs
            .as_mut()
            .ok_or(inval("use an lvol store", "it is unloaded"))?;
        let r = f(bs, lvols);
        vbdev::publish(bs, lvols);
        r
    }

    /// Lvol I/O requests that went to the store's worker thread (writes that needed
    /// a cluster, I/O while frozen) since the store was attached.
    pub fn worker_ios(&self) -> u64 {
        self.worker_ios.load(Ordering::Relaxed)
    }

    /// Run `f` on lvol `lvol` of the store (`what` names the operation in errors).
    fn with_lvol<T>(
        &self,
        what: &'static str,
        lvol: &str,
        f: impl FnOnce(&mut Blobstore, &Lvol) -> Result<T>,
    ) -> Result<T> {
        self.with_bs(|bs, lvols| {
            let l = lvols
                .get(lvol)
                .ok_or(inval(what, format!("no lvol '{lvol}'")))?;
            f(bs, l)
        })
    }

    /// Geometry and counters.
    pub fn info(&self) -> Option<crate::store::StoreInfo> {
        self.lock().bs.as_ref().map(|b| b.info())
    }
}

/// Open `base` on `th` for a store: read-write, claimed, and when the base goes away
/// the store the slot names is closed ([`base_removed`]).
pub(crate) fn open_base(th: &ThreadHandle, base: &str) -> Result<(BdevDev, BaseSlot)> {
    let slot: Arc<OnceLock<Weak<LvolStore>>> = Arc::new(OnceLock::new());
    let s2 = slot.clone();
    let dev = BdevDev::open_with(
        th,
        base,
        true,
        Box::new(move || {
            if let Some(s) = s2.get().and_then(Weak::upgrade) {
                base_removed(s);
            }
        }),
    )?;
    let open = dev.shared();
    Ok((dev, BaseSlot { store: slot, open }))
}

/// What [`open_base`] gives [`attach`] besides the device: the slot its removal
/// callback reads the store from, and the descriptor for the lvol channels.
pub(crate) struct BaseSlot {
    store: Arc<OnceLock<Weak<LvolStore>>>,
    open: Open,
}

/// Register a store made or loaded on `bs` (its name and UUID unused).
pub(crate) fn attach(
    th: &ThreadHandle,
    base: &str,
    name: &str,
    uuid: Uuid,
    bs: Blobstore,
    slot: &BaseSlot,
) -> Result<Arc<LvolStore>> {
    let mut reg = registry();
    if reg.iter().any(|s| s.name() == name || s.uuid == uuid) {
        return Err(inval(
            "attach an lvol store",
            format!("lvol store '{name}' ({uuid}) exists"),
        ));
    }
    let s = Arc::new(LvolStore {
        name: Mutex::new(name.to_string()),
        uuid,
        base_bdev: base.to_string(),
        thread: th.clone(),
        inner: Mutex::new(Inner {
            bs: Some(bs),
            lvols: BTreeMap::new(),
        }),
        worker: vbdev::Worker::start(name)?,
        base: slot.open.clone(),
        worker_ios: AtomicU64::new(0),
    });
    let _ = slot.store.set(Arc::downgrade(&s));
    reg.push(s.clone());
    Ok(s)
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
    let (dev, slot) = open_base(th, base)?;
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
    attach(th, base, &o.name, uuid, bs, &slot)
}

/// Make lvol `name` with `make` (which creates its blob with the given xattrs), open
/// it and register its bdev. Returns its UUID.
fn new_lvol(
    s: &Arc<LvolStore>,
    what: &'static str,
    name: &str,
    make: impl FnOnce(&mut Blobstore, &BTreeMap<String, Lvol>, Vec<(String, Vec<u8>)>) -> Result<u64>,
) -> Result<Uuid> {
    check_name(what, name)?;
    let uuid = Uuid::random();
    let g = s.with_bs(|bs, lvols| {
        if lvols.contains_key(name) {
            return Err(inval(
                what,
                format!("lvol '{name}' exists in '{}'", s.name()),
            ));
        }
        let id = make(bs, lvols, lvol_xattrs(name, uuid))?;
        add_lvol(bs, lvols, name, uuid, id)
    })?;
    vbdev::register(s, name, uuid, &g)?;
    Ok(uuid)
}

fn blob_of(what: &'static str, lvols: &BTreeMap<String, Lvol>, name: &str) -> Result<u64> {
    lvols
        .get(name)
        .map(|l| l.blob.id())
        .ok_or(inval(what, format!("no lvol '{name}'")))
}

/// Create an lvol of `size` bytes (rounded up to clusters) and register its bdev.
/// Returns its UUID.
pub fn create_lvol(s: &Arc<LvolStore>, name: &str, size: u64, thin: bool) -> Result<Uuid> {
    new_lvol(s, "create an lvol", name, |bs, _, xattrs| {
        let cs = u64::from(bs.info().cluster_size);
        bs.create_blob(&BlobOpts {
            num_clusters: size.div_ceil(cs),
            thin_provision: thin,
            xattrs,
            ..Default::default()
        })
    })
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
/// The lvol's I/O is frozen meanwhile (SPDK freezes the blob's I/O for a snapshot):
/// the snapshot takes its clusters.
pub fn snapshot(s: &Arc<LvolStore>, lvol: &str, snap: &str) -> Result<Uuid> {
    const W: &str = "snapshot an lvol";
    let data = s.with_lvol(W, lvol, |_, l| Ok(l.data.clone()))?;
    data.freeze();
    let r = new_lvol(s, W, snap, |bs, lvols, xattrs| {
        bs.create_snapshot(blob_of(W, lvols, lvol)?, &xattrs)
    });
    data.thaw();
    r
}

/// Clone snapshot `snap` as `clone`; returns the clone's UUID.
pub fn clone(s: &Arc<LvolStore>, snap: &str, clone: &str) -> Result<Uuid> {
    const W: &str = "clone an lvol";
    new_lvol(s, W, clone, |bs, lvols, xattrs| {
        bs.create_clone(blob_of(W, lvols, snap)?, &xattrs)
    })
}

/// The registered bdev of lvol `uuid`.
fn lvol_bdev(what: &'static str, uuid: Uuid) -> Result<bdev::Bdev> {
    bdev::bdev::get(&uuid.to_string()).ok_or(inval(what, format!("no bdev '{uuid}'")))
}

/// Replace alias `old` of `b` with `new` (SPDK's rename callbacks: del, then add).
fn swap_alias(b: &bdev::Bdev, old: &str, new: &str) -> Result<()> {
    bdev::bdev::alias_del(b, old)?;
    if let Err(e) = bdev::bdev::alias_add(b, new) {
        let _ = bdev::bdev::alias_add(b, old);
        return Err(e.into());
    }
    Ok(())
}

/// Resize lvol `lvol` to `size` bytes (rounded up to clusters; SPDK's
/// `vbdev_lvol_resize`): the blob is resized and synced, then the bdev layer takes
/// the new block count and tells every open descriptor (a resize event). Growing is
/// allowed while the bdev is open; shrinking, as in the bdev layer, only while not.
pub fn resize(s: &Arc<LvolStore>, lvol: &str, size: u64) -> Result<()> {
    const W: &str = "resize an lvol";
    let (uuid, id, cur, cs, upc) = s.with_lvol(W, lvol, |bs, l| {
        let i = bs.blob_info(l.blob.id())?;
        Ok((
            l.uuid,
            l.blob.id(),
            i.num_clusters,
            u64::from(bs.info().cluster_size),
            bs.io_units_per_cluster(),
        ))
    })?;
    let n = size.div_ceil(cs);
    let b = lvol_bdev(W, uuid)?;
    if n < cur && b.open_descs() > 0 {
        return Err(Error::Busy {
            what: W,
            id,
            why: format!("shrinking while its bdev '{uuid}' is open"),
        });
    }
    s.with_lvol(W, lvol, |bs, l| {
        bs.resize(&l.blob, n)?;
        bs.sync_md(l.blob.id())
    })?;
    if n != cur {
        bdev::resize::notify_blockcnt_change(&b, n * upc)?;
    }
    Ok(())
}

/// Rename lvol `lvol` to `new` (SPDK's `spdk_lvol_rename` and `vbdev_lvol_rename`):
/// the "name" xattr is synced, then the bdev's "LVS/LVOL" alias changes in place; the
/// bdev stays registered and its descriptors open.
pub fn rename(s: &Arc<LvolStore>, lvol: &str, new: &str) -> Result<()> {
    const W: &str = "rename an lvol";
    check_name(W, new)?;
    if lvol == new {
        return Ok(());
    }
    let uuid = s.with_bs(|bs, lvols| {
        if lvols.contains_key(new) {
            return Err(inval(W, format!("lvol '{new}' exists")));
        }
        let mut l = lvols
            .remove(lvol)
            .ok_or(inval(W, format!("no lvol '{lvol}'")))?;
        if let Err(e) = bs
            .set_xattr(&l.blob, "name", &name_buf(new))
            .and_then(|()| bs.sync_md(l.blob.id()))
        {
            lvols.insert(lvol.to_string(), l);
            return Err(e);
        }
        l.name = new.to_string();
        let u = l.uuid;
        lvols.insert(new.to_string(), l);
        Ok(u)
    })?;
    let lvs = s.name();
    swap_alias(
        &lvol_bdev(W, uuid)?,
        &format!("{lvs}/{lvol}"),
        &format!("{lvs}/{new}"),
    )
}

/// Rename store `s` to `new` (SPDK's `spdk_lvs_rename`: the super blob's "name" xattr,
/// then every lvol bdev's alias in place, open or not).
pub fn rename_lvstore(s: &Arc<LvolStore>, new: &str) -> Result<()> {
    const W: &str = "rename an lvol store";
    check_name(W, new)?;
    let old = s.name();
    if old == new {
        return Ok(());
    }
    if find(new).is_some() {
        return Err(inval(W, format!("lvol store '{new}' exists")));
    }
    s.with_bs(|bs, _| {
        let sb = bs
            .info()
            .super_blob
            .ok_or(inval(W, "the store has no super blob"))?;
        let b = bs.open_blob(sb)?;
        let r = bs.set_xattr(&b, "name", &zstr(new));
        bs.close_blob(b)?;
        r
    })?;
    *s.name.lock().unwrap_or_else(|e| e.into_inner()) = new.to_string();
    let lvols: Vec<(String, Uuid)> = s
        .lock()
        .lvols
        .values()
        .map(|l| (l.name.clone(), l.uuid))
        .collect();
    for (n, u) in &lvols {
        if let Some(b) = bdev::bdev::get(&u.to_string()) {
            swap_alias(&b, &format!("{old}/{n}"), &format!("{new}/{n}"))?;
        }
    }
    Ok(())
}

/// Inflate lvol `lvol` (SPDK's `spdk_lvol_inflate`): it gets its own copy of every
/// cluster and no parent.
pub fn inflate(s: &Arc<LvolStore>, lvol: &str) -> Result<()> {
    s.with_lvol("inflate an lvol", lvol, |bs, l| bs.inflate(l.blob.id()))
}

/// Decouple lvol `lvol` from its parent (SPDK's `spdk_lvol_decouple_parent`): it
/// copies the clusters it reads from its parent and takes the parent's parent.
pub fn decouple_parent(s: &Arc<LvolStore>, lvol: &str) -> Result<()> {
    s.with_lvol("decouple an lvol's parent", lvol, |bs, l| {
        bs.decouple_parent(l.blob.id())
    })
}

/// Delete lvol `lvol` (its bdev first).
pub fn delete(s: &Arc<LvolStore>, lvol: &str) -> Result<()> {
    const W: &str = "delete an lvol";
    let uuid = s.with_lvol(W, lvol, |bs, l| {
        let n = bs.clones_of(l.blob.id()).len();
        if n > 1 {
            return Err(Error::Busy {
                what: W,
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
            .ok_or(inval(W, format!("no lvol '{lvol}'")))?;
        let id = l.blob.id();
        bs.close_blob(l.blob)?;
        bs.delete_blob(id)
    })
}

/// Unregister every lvol bdev of `s` and take its blobstore out of it (`None` if
/// already taken), its lvols closed (`sync`: their metadata written).
fn close_all(s: &Arc<LvolStore>, sync: bool) -> Result<Option<Blobstore>> {
    let uuids: Vec<Uuid> = s.lock().lvols.values().map(|l| l.uuid).collect();
    for u in &uuids {
        if bdev::bdev::get(&u.to_string()).is_some() {
            vbdev::unregister_wait(&s.thread, &u.to_string())?;
        }
    }
    let mut g = s.lock();
    let lvols = std::mem::take(&mut g.lvols);
    let Some(mut bs) = g.bs.take() else {
        return Ok(None);
    };
    drop(g);
    for (_, l) in lvols {
        if sync {
            bs.close_blob(l.blob)?;
        }
    }
    Ok(Some(bs))
}

fn forget(s: &Arc<LvolStore>) {
    registry().retain(|x| !Arc::ptr_eq(x, s));
}

/// Unload a store (its lvol bdevs unregistered first) and forget it.
pub fn unload(s: &Arc<LvolStore>) -> Result<()> {
    let r = close_all(s, true).and_then(|bs| match bs {
        Some(bs) => bs.unload().map(drop),
        None => Ok(()),
    });
    forget(s);
    r
}

/// Destroy a store: its lvols and their bdevs go, the super block is erased (as
/// SPDK's `spdk_lvs_destroy`), the base bdev is released.
pub fn destroy(s: &Arc<LvolStore>) -> Result<()> {
    let r = close_all(s, true).and_then(|bs| {
        if let Some(bs) = bs {
            let mut dev = bs.unload()?;
            dev.write(0, &vec![0u8; crate::format::PAGE_SIZE])?;
            dev.flush()?;
        }
        Ok(())
    });
    forget(s);
    r
}

/// The base bdev of `s` is going away (SPDK's `vbdev_lvs_hotremove_cb`; called on the
/// base's framework thread): on an OS thread of its own, its lvol bdevs are
/// unregistered (their descriptors get remove events), then the store is closed
/// without writing (the base refuses I/O once its removal has started; metadata is
/// on the device after every change, so the next load recovers the masks) and
/// forgotten, which releases the base.
pub(crate) fn base_removed(s: Arc<LvolStore>) {
    let spawned = std::thread::Builder::new()
        .name("lvs-remove".into())
        .spawn(move || {
            eal::log_notice!(
                "lvol: base bdev '{}' of store '{}' is going away: closing the store",
                s.base_bdev,
                s.name()
            );
            match close_all(&s, false) {
                Ok(bs) => drop(bs),
                Err(e) => eal::log_err!("lvol: closing store '{}' failed: {e}", s.name()),
            }
            forget(&s);
        });
    if let Err(e) = spawned {
        eal::log_err!("lvol: cannot start a thread to close a store: {e}");
    }
}
