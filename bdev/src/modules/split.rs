//! The split bdev module (SPDK's `vbdev_split`): cuts a base bdev into `split_count`
//! consecutive partitions `<base>p0` .. `<base>p<N-1>`, each `split_size_mb` MiB (or,
//! with 0, an equal share of the base, the remainder unused). Partition `i` starts at
//! block `i * size` of the base; a request is forwarded with its offset moved there.
//!
//! The partitions share one claimed descriptor of the base. Removing the base
//! unregisters every partition (their users get the remove event); the base descriptor
//! closes when the last partition is destructed. `bdev_split_delete` (by base name)
//! unregisters them too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use framework::subsystem::ConfigCall;
use jsonrpc::Request;
use serde::Deserialize;
use serde_json::json;

use crate::bdev::{self, Bdev, BdevInfo, BdevModule, ModuleChannel};
use crate::desc::{BdevIoChannel, Descriptor};
use crate::error::{Error, Result};
use crate::io::{BdevIo, IoType};
use crate::modules::vbdev;
use crate::uuid::Uuid;

/// The module name.
pub const MODULE: &str = "split";

/// The partitions of one base.
struct SplitGroup {
    base_name: String,
    split_count: u32,
    /// As given (0: the base divided evenly).
    split_size_mb: u64,
    parts: Vec<String>,
    base: Mutex<Option<Arc<Descriptor>>>,
    /// Partitions not destructed yet.
    live: AtomicUsize,
}

/// Base name → its partitions' names, while any partition exists.
static GROUPS: Mutex<Option<HashMap<String, Vec<String>>>> = Mutex::new(None);

fn groups() -> MutexGuard<'static, Option<HashMap<String, Vec<String>>>> {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner())
}

struct SplitPart {
    group: Arc<SplitGroup>,
    index: usize,
    /// First block of the partition on the base.
    offset: u64,
}

struct SplitChannel {
    base: Arc<Descriptor>,
    base_ch: BdevIoChannel,
    offset: u64,
}

impl ModuleChannel for SplitChannel {
    fn submit(&self, io: BdevIo) {
        let at = io.offset_blocks() + self.offset;
        vbdev::forward(&self.base, &self.base_ch, io, at);
    }
}

impl SplitGroup {
    fn base(&self) -> Option<Arc<Descriptor>> {
        self.base.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl BdevModule for SplitPart {
    fn module_name(&self) -> &str {
        MODULE
    }

    fn io_type_supported(&self, t: IoType) -> bool {
        self.group
            .base()
            .is_some_and(|d| d.bdev().io_type_supported(t))
    }

    fn create_channel(&self) -> std::result::Result<Box<dyn ModuleChannel>, String> {
        let g = &self.group;
        let base = g
            .base()
            .ok_or_else(|| format!("base bdev '{}' is closed", g.base_name))?;
        let base_ch = base.get_io_channel().map_err(|e| e.to_string())?;
        Ok(Box::new(SplitChannel {
            base,
            base_ch,
            offset: self.offset,
        }))
    }

    fn destruct(&self) {
        let g = &self.group;
        if g.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last partition: close the base, forget the group.
            g.base.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(m) = groups().as_mut() {
                m.remove(&g.base_name);
            }
        }
    }

    fn write_config(&self, _info: &BdevInfo) -> Option<ConfigCall> {
        // One call recreates the whole group: the first partition writes it.
        (self.index == 0).then(|| ConfigCall {
            method: "bdev_split_create".into(),
            params: Some(json!({
                "base_bdev": self.group.base_name,
                "split_count": self.group.split_count,
                "split_size_mb": self.group.split_size_mb,
            })),
        })
    }

    fn info_json(&self) -> Option<serde_json::Value> {
        Some(json!({ "split": {
            "base_bdev": self.group.base_name,
            "offset_blocks": self.offset,
        }}))
    }
}

fn invalid(what: &'static str, why: impl Into<String>) -> Error {
    Error::Invalid {
        what,
        why: why.into(),
    }
}

/// Split `base` into `split_count` partitions of `split_size_mb` MiB (0: equal
/// shares); on a framework thread. Returns the partitions.
pub fn create(base: &str, split_count: u32, split_size_mb: u64) -> Result<Vec<Bdev>> {
    let b = bdev::get(base).ok_or_else(|| Error::NotFound(base.to_string()))?;
    let bi = b.info().clone();
    if split_count == 0 {
        return Err(invalid("split_count", "must be > 0"));
    }
    let size = if split_size_mb == 0 {
        bi.num_blocks / u64::from(split_count)
    } else {
        split_size_mb
            .checked_mul(1 << 20)
            .map(|bytes| bytes / u64::from(bi.block_size))
            .ok_or_else(|| invalid("split_size_mb", format!("{split_size_mb} overflows")))?
    };
    if size == 0 {
        return Err(invalid(
            "split_size_mb",
            format!(
                "partitions of base '{base}' ({} blocks of {}) would be empty",
                bi.num_blocks, bi.block_size
            ),
        ));
    }
    if size
        .checked_mul(u64::from(split_count))
        .is_none_or(|t| t > bi.num_blocks)
    {
        return Err(invalid(
            "split_size_mb",
            format!(
                "{split_count} x {split_size_mb} MiB exceed base '{base}' ({} blocks of {})",
                bi.num_blocks, bi.block_size
            ),
        ));
    }
    let names: Vec<String> = (0..split_count)
        .map(|i| format!("{}p{i}", bi.name))
        .collect();
    if let Some(n) = names.iter().find(|n| bdev::get(n).is_some()) {
        return Err(Error::Exists(n.clone()));
    }
    let reg: Arc<OnceLock<Vec<String>>> = Arc::new(OnceLock::new());
    let r2 = reg.clone();
    let desc = vbdev::open_claimed(base, MODULE, move || {
        for n in r2.get().into_iter().flatten() {
            let _ = bdev::unregister(n, |_| {});
        }
    })?;
    let group = Arc::new(SplitGroup {
        base_name: bi.name.clone(),
        split_count,
        split_size_mb,
        parts: names.clone(),
        base: Mutex::new(Some(desc)),
        live: AtomicUsize::new(0),
    });
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let info = BdevInfo {
            name: n.clone(),
            aliases: Vec::new(),
            uuid: Uuid::random(),
            product_name: "Split Disk".into(),
            block_size: bi.block_size,
            num_blocks: size,
            optimal_io_boundary: bi.optimal_io_boundary,
            write_cache: bi.write_cache,
            max_transfer_blocks: bi.max_transfer_blocks,
        };
        let part = Arc::new(SplitPart {
            group: group.clone(),
            index: i,
            offset: i as u64 * size,
        });
        group.live.fetch_add(1, Ordering::AcqRel);
        match bdev::register(info, part) {
            Ok(v) => out.push(v),
            Err(e) => {
                group.live.fetch_sub(1, Ordering::AcqRel);
                // Undo: the partitions made so far go; the last one closes the base.
                for v in &out {
                    let _ = bdev::unregister(v.name(), |_| {});
                }
                if out.is_empty() {
                    group.base.lock().unwrap_or_else(|e| e.into_inner()).take();
                }
                return Err(e);
            }
        }
    }
    let _ = reg.set(group.parts.clone());
    groups()
        .get_or_insert_with(HashMap::new)
        .insert(bi.name.clone(), group.parts.clone());
    Ok(out)
}

/// Unregister every partition of `base` (on a framework thread); `done` runs on this
/// thread once all are gone.
pub fn delete<D: FnOnce() + Send + 'static>(base: &str, done: D) -> Result<()> {
    let parts = groups()
        .as_ref()
        .and_then(|m| m.get(base).cloned())
        .ok_or_else(|| Error::NotFound(format!("{base} (no split of that base)")))?;
    type Left = (usize, Option<Box<dyn FnOnce() + Send>>);
    let left: Arc<Mutex<Left>> = Arc::new(Mutex::new((parts.len(), Some(Box::new(done)))));
    let hit = move |l: &Arc<Mutex<Left>>| {
        let d = {
            let mut g = l.lock().unwrap_or_else(|e| e.into_inner());
            g.0 -= 1;
            if g.0 == 0 {
                g.1.take()
            } else {
                None
            }
        };
        if let Some(d) = d {
            d();
        }
    };
    for n in parts {
        let l2 = left.clone();
        if bdev::unregister(&n, move |_| hit(&l2)).is_err() {
            // Already going (its base is being removed): not ours to wait for.
            hit(&left);
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateParams {
    base_bdev: String,
    split_count: u32,
    #[serde(default)]
    split_size_mb: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteParams {
    base_bdev: String,
}

/// `bdev_split_create`: answers with the partitions' names.
pub(crate) fn create_rpc(r: Request) {
    let res = (|| {
        let p: CreateParams = crate::rpc_util::params(&r)?;
        create(&p.base_bdev, p.split_count, p.split_size_mb)
            .map(|v| json!(v.iter().map(|b| b.name()).collect::<Vec<_>>()))
            .map_err(|e| crate::rpc_util::rpc_error(&e))
    })();
    r.respond(res)
}

/// `bdev_split_delete`: answers once every partition is gone.
pub(crate) fn delete_rpc(r: Request) {
    let p: DeleteParams = match crate::rpc_util::params(&r) {
        Ok(p) => p,
        Err(e) => return r.respond(Err(e)),
    };
    let resp = Arc::new(Mutex::new(Some(r.into_responder())));
    let r2 = resp.clone();
    let res = delete(&p.base_bdev, move || {
        if let Some(x) = r2.lock().unwrap_or_else(|e| e.into_inner()).take() {
            x.respond(Ok(json!(true)));
        }
    });
    if let Err(e) = res {
        if let Some(x) = resp.lock().unwrap_or_else(|e| e.into_inner()).take() {
            x.respond(Err(crate::rpc_util::rpc_error(&e)));
        }
    }
}
