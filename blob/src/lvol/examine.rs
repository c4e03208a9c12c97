//! Finding lvol stores on bdevs (SPDK's `vbdev_lvs_examine` and `spdk_lvs_load`):
//! once [`enable`]d, every bdev registered afterwards is looked at; if its first page
//! is a blobstore super block of bstype "LVOLSTORE", the store is loaded (the base
//! claimed), named from its super blob's "name" and "uuid" xattrs, and each other
//! blob with "name" and "uuid" xattrs becomes an lvol bdev named by its UUID with the
//! alias "LVS/LVOL", as [`crate::lvol::create_lvol`] makes them. A target restarted
//! on the same device finds its stores and volumes this way, SPDK-made ones too.
//!
//! Lvol bdevs themselves are not looked at (a store nested in an lvol is not loaded):
//! reading one at registration would hold it open while its creator resizes or
//! renames it.
//!
//! # Threads
//!
//! The examiner runs on the registering framework thread and hands the reading to an
//! OS thread of its own, which keeps the examination's [`ExamineDone`] until the
//! store and its lvol bdevs are registered (or it found none).

use std::sync::Arc;

use bdev::examine::ExamineDone;
use bdev::{Bdev, Uuid};
use framework::{thread, ThreadHandle};

use crate::bdev_dev::BdevDev;
use crate::dev::BlockDevice;
use crate::error::{Error, Result};
use crate::format::super_block::{bstype_str, SuperBlock};
use crate::format::PAGE_SIZE;
use crate::load::LoadOpts;
use crate::lvol::{self, vbdev, LvolStore, BSTYPE};
use crate::store::Blobstore;

/// Look at every bdev registered from now on (once per process; again is harmless).
pub fn enable() {
    bdev::examine::add_examiner("lvol", Arc::new(examine_bdev));
}

fn examine_bdev(b: Bdev, done: ExamineDone) {
    if b.module().module_name() == "lvol" {
        return;
    }
    let Some(th) = thread::current() else {
        eal::log_err!(
            "lvol examine: bdev '{}' registered off a framework thread; not examined",
            b.name()
        );
        return;
    };
    let name = b.name().to_string();
    let spawned = std::thread::Builder::new()
        .name("lvs-examine".into())
        .spawn(move || {
            let _done = done;
            match load(&th, &name) {
                Ok(Some(s)) => eal::log_notice!(
                    "lvol: store '{}' ({}) loaded from bdev '{name}' with {} lvol(s)",
                    s.name(),
                    s.uuid,
                    s.lock().lvols.len()
                ),
                Ok(None) => {}
                Err(e) => eal::log_err!("lvol: loading the store on bdev '{name}' failed: {e}"),
            }
        });
    if let Err(e) = spawned {
        eal::log_err!("lvol examine: cannot start a thread: {e}");
    }
}

/// Whether bdev `name` starts with a super block of an lvol store (read without a
/// claim; a bdev that cannot be opened or read has none).
fn holds_lvstore(th: &ThreadHandle, name: &str) -> bool {
    let Ok(mut d) = BdevDev::open_read_only(th, name) else {
        return false;
    };
    if d.num_blocks() * u64::from(d.block_size()) < PAGE_SIZE as u64 {
        return false;
    }
    let mut page = vec![0u8; PAGE_SIZE];
    if d.read(0, &mut page).is_err() {
        return false;
    }
    SuperBlock::decode(&page).is_ok_and(|sb| bstype_str(&sb.bstype) == BSTYPE)
}

fn xattr_str(bs: &Blobstore, id: u64, name: &str) -> Result<Option<String>> {
    Ok(bs.get_xattr(id, name)?.map(|v| lvol::from_zstr(&v)))
}

fn corrupt(why: String) -> Error {
    Error::Corrupt { what: why }
}

/// Load the lvol store on bdev `base` (from an OS thread; `th` runs the base's I/O)
/// and register it and its lvol bdevs. `Ok(None)` if the bdev holds no lvol store.
pub fn load(th: &ThreadHandle, base: &str) -> Result<Option<Arc<LvolStore>>> {
    if !holds_lvstore(th, base) {
        return Ok(None);
    }
    let (dev, slot) = lvol::open_base(th, base)?;
    let (bs, kind) = Blobstore::load(
        Box::new(dev),
        &LoadOpts {
            bstype: BSTYPE.into(),
            force_recover: false,
        },
    )?;
    let sb = bs
        .info()
        .super_blob
        .ok_or_else(|| corrupt(format!("lvol store on '{base}' has no super blob")))?;
    let name = xattr_str(&bs, sb, "name")?
        .ok_or_else(|| corrupt(format!("lvol store on '{base}': super blob has no name")))?;
    let uuid = xattr_str(&bs, sb, "uuid")?
        .and_then(|u| Uuid::parse(&u))
        .ok_or_else(|| corrupt(format!("lvol store '{name}' has no valid uuid")))?;
    let s = lvol::attach(th, base, &name, uuid, bs, &slot)?;
    if kind == crate::load::LoadKind::Recovered {
        eal::log_notice!("lvol: store '{name}' was not unloaded cleanly; masks rebuilt");
    }
    let ids: Vec<u64> = s.with_bs(|bs, _| Ok(bs.blob_ids()))?;
    for id in ids.into_iter().filter(|&i| i != sb) {
        let r = s.with_bs(|bs, lvols| {
            let n = xattr_str(bs, id, "name")?;
            let u = xattr_str(bs, id, "uuid")?.and_then(|u| Uuid::parse(&u));
            let (Some(n), Some(u)) = (n, u) else {
                return Ok(None);
            };
            lvol::add_lvol(bs, lvols, &n, u, id).map(|g| Some((n, u, g)))
        });
        match r {
            Ok(Some((n, u, g))) => {
                if let Err(e) = vbdev::register(&s, &n, u, &g) {
                    eal::log_err!("lvol: bdev of lvol '{name}/{n}' not registered: {e}");
                }
            }
            Ok(None) => eal::log_err!(
                "lvol: blob {id:#x} of store '{name}' has no valid name/uuid; skipped"
            ),
            Err(e) => eal::log_err!("lvol: blob {id:#x} of store '{name}': {e}"),
        }
    }
    Ok(Some(s))
}
