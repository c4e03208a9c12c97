//! The RAID bdev module (SPDK's `bdev_raid`), levels 0 and 1, without an on-disk
//! superblock.
//!
//! - **RAID0** stripes the array over its bases in strips of `strip_size_kb`
//!   ([`layout`]); each base contributes the same whole number of strips (the smallest
//!   base decides). Losing any base takes the array offline: its bdev is unregistered.
//! - **RAID1** mirrors: every write goes to every operational base, a read to one
//!   (round robin per thread; another mirror if it fails). Its size is the smallest
//!   base's. When a base is removed the array keeps serving reads and writes from the
//!   others and reports itself degraded (`bdev_raid_get_bdevs`: `state` stays
//!   `online`, as SPDK says it, with `degraded: true` and fewer operational bases);
//!   it goes offline only with its last base.
//!
//! The bases are claimed by module `raid`. A removed base is given up in three steps:
//! it is marked removed at once (new I/O avoids it), every thread drops its channel to
//! it (a message per channel), then the descriptor closes and the base's removal can
//! finish; I/O already at that base completes there first.
//!
//! A degraded RAID1 saves its removed slots as SPDK names them,
//! `removed_base_bdev_<slot>`; `create` takes such a name (when no bdev has it) as a
//! slot removed from the start, so the saved configuration replays degraded (its size
//! is then the smallest remaining base's: without a superblock nothing else records it).
//!
//! RPC: `bdev_raid_create` (`name`, `raid_level`, `base_bdevs`, `strip_size_kb`,
//! optional `uuid`, `superblock` false), `bdev_raid_delete` (`name`),
//! `bdev_raid_get_bdevs` (`category`: all, online, configuring, offline).

mod io;
pub mod layout;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use framework::subsystem::ConfigCall;
use framework::{thread, ThreadHandle};
use jsonrpc::{Request, RpcError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::bdev::{self, Bdev, BdevInfo, BdevModule, ModuleChannel};
use crate::desc::Descriptor;
use crate::error::{Error, Result};
use crate::io::IoType;
use crate::modules::vbdev;
use crate::uuid::Uuid;
use io::{BaseCh, ChanBases, RaidChannel};

/// The module name.
pub const MODULE: &str = "raid";

/// Supported RAID levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaidLevel {
    /// Striping.
    Raid0,
    /// Mirroring.
    Raid1,
}

impl RaidLevel {
    /// SPDK's spellings: `raid0`/`0`, `raid1`/`1` (any case).
    pub fn parse(s: &str) -> Option<RaidLevel> {
        match s.to_ascii_lowercase().as_str() {
            "raid0" | "0" => Some(RaidLevel::Raid0),
            "raid1" | "1" => Some(RaidLevel::Raid1),
            _ => None,
        }
    }

    /// The name `bdev_raid_get_bdevs` and `save_config` use.
    pub fn name(self) -> &'static str {
        match self {
            RaidLevel::Raid0 => "raid0",
            RaidLevel::Raid1 => "raid1",
        }
    }
}

/// One base of an array.
pub(crate) struct BaseSlot {
    name: String,
    uuid: Uuid,
    desc: Mutex<Option<Arc<Descriptor>>>,
    removed: AtomicBool,
}

/// An array's state, shared by its bdev, its channels and its bases' remove callbacks.
pub(crate) struct RaidShared {
    name: String,
    uuid: Uuid,
    pub(crate) level: RaidLevel,
    strip_size_kb: u32,
    /// RAID0's strip in blocks (0 for RAID1).
    pub(crate) strip_blocks: u64,
    /// Blocks of each base the array uses.
    blocks_per_base: u64,
    pub(crate) bases: Vec<BaseSlot>,
    /// Every thread's channel to the bases. Held while a channel is made and while a
    /// base is marked removed, so no channel can miss a removal.
    chans: Mutex<Vec<(ThreadHandle, Weak<ChanBases>)>>,
    offline: AtomicBool,
}

impl RaidShared {
    pub(crate) fn is_removed(&self, i: usize) -> bool {
        self.bases[i].removed.load(Ordering::Acquire)
    }

    fn operational(&self) -> usize {
        (0..self.bases.len())
            .filter(|&i| !self.is_removed(i))
            .count()
    }

    fn state(&self) -> &'static str {
        if self.offline.load(Ordering::Acquire) {
            "offline"
        } else {
            "online"
        }
    }

    fn info(&self) -> Value {
        let n_op = self.operational();
        let list: Vec<Value> = self
            .bases
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let ok = !self.is_removed(i);
                json!({
                    "name": if ok { json!(b.name) } else { Value::Null },
                    // SPDK forgets a removed base's UUID (without a superblock).
                    "uuid": if ok { b.uuid } else { Uuid::default() }.to_string(),
                    "is_configured": ok,
                    "data_offset": 0,
                    "data_size": self.blocks_per_base,
                })
            })
            .collect();
        json!({
            "name": self.name,
            "uuid": self.uuid.to_string(),
            "strip_size_kb": self.strip_size_kb,
            "state": self.state(),
            "raid_level": self.level.name(),
            "superblock": false,
            "degraded": n_op < self.bases.len(),
            "num_base_bdevs": self.bases.len(),
            "num_base_bdevs_discovered": n_op,
            "num_base_bdevs_operational": n_op,
            "base_bdevs_list": list,
        })
    }

    /// Base `i` is going away (on the thread that opened it).
    fn base_removed(self: &Arc<Self>, i: usize) {
        let snapshot = {
            let mut g = self.chans.lock().unwrap_or_else(|e| e.into_inner());
            if self.bases[i].removed.swap(true, Ordering::AcqRel) {
                return;
            }
            g.retain(|(_, w)| w.strong_count() > 0);
            g.clone()
        };
        let keep_going = self.level == RaidLevel::Raid1 && self.operational() > 0;
        if !keep_going {
            // Offline: the array's bdev goes; its destruct closes every base.
            self.offline.store(true, Ordering::Release);
            eal::log_warn!(
                "raid bdev '{}': base '{}' removed, array offline",
                self.name,
                self.bases[i].name
            );
            let _ = bdev::unregister(&self.name, |_| {});
            return;
        }
        eal::log_warn!(
            "raid bdev '{}': base '{}' removed, array degraded ({} of {} operational)",
            self.name,
            self.bases[i].name,
            self.operational(),
            self.bases.len()
        );
        // Each thread drops its channel to the base; the last one closes it.
        let left = Arc::new(AtomicUsize::new(snapshot.len() + 1));
        let me = self.clone();
        let hit = move || {
            if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                me.bases[i]
                    .desc
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
            }
        };
        let hit = Arc::new(hit);
        for (t, w) in snapshot {
            let h2 = hit.clone();
            let r = t.send_msg(move || {
                if let Some(cb) = w.upgrade() {
                    let gone = cb
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_mut(i)
                        .and_then(Option::take);
                    drop(gone);
                }
                h2();
            });
            if r.is_err() {
                // That thread is gone, and its channel with it.
                hit();
            }
        }
        hit();
    }
}

static ARRAYS: Mutex<Vec<Arc<RaidShared>>> = Mutex::new(Vec::new());

fn arrays() -> MutexGuard<'static, Vec<Arc<RaidShared>>> {
    ARRAYS.lock().unwrap_or_else(|e| e.into_inner())
}

struct RaidBdev(Arc<RaidShared>);

impl BdevModule for RaidBdev {
    fn module_name(&self) -> &str {
        MODULE
    }

    fn io_type_supported(&self, t: IoType) -> bool {
        match t {
            IoType::Read | IoType::Write | IoType::Reset => true,
            IoType::Unmap | IoType::WriteZeroes | IoType::Flush => self.0.bases.iter().all(|b| {
                let d = b.desc.lock().unwrap_or_else(|e| e.into_inner());
                d.as_ref().is_none_or(|d| d.bdev().io_type_supported(t))
            }),
            IoType::Compare | IoType::CompareAndWrite => false,
        }
    }

    fn create_channel(&self) -> std::result::Result<Box<dyn ModuleChannel>, String> {
        let sh = &self.0;
        let me = thread::current().ok_or("not on a framework thread")?;
        let mut g = sh.chans.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = Vec::with_capacity(sh.bases.len());
        for (i, b) in sh.bases.iter().enumerate() {
            if sh.is_removed(i) {
                v.push(None);
                continue;
            }
            let d = b.desc.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let Some(desc) = d else {
                v.push(None);
                continue;
            };
            let ch = desc
                .get_io_channel()
                .map_err(|e| format!("base '{}': {e}", b.name))?;
            v.push(Some(BaseCh { desc, ch }));
        }
        let bases = Arc::new(Mutex::new(v));
        g.retain(|(_, w)| w.strong_count() > 0);
        g.push((me, Arc::downgrade(&bases)));
        Ok(Box::new(RaidChannel {
            shared: sh.clone(),
            bases,
            next_read: Cell::new(0),
        }))
    }

    fn destruct(&self) {
        self.0.offline.store(true, Ordering::Release);
        for b in &self.0.bases {
            b.desc.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
        arrays().retain(|a| !Arc::ptr_eq(a, &self.0));
    }

    fn write_config(&self, _info: &BdevInfo) -> Option<ConfigCall> {
        let sh = &self.0;
        // A removed base keeps its slot under SPDK's placeholder name, which
        // `create` takes back as a slot removed from the start: the degraded array
        // replays degraded.
        let bases: Vec<String> = (0..sh.bases.len())
            .map(|i| {
                if sh.is_removed(i) {
                    removed_slot_name(i)
                } else {
                    sh.bases[i].name.clone()
                }
            })
            .collect();
        // SPDK's fields: strip_size_kb only when not 0, no superblock (false).
        let mut params = json!({
            "name": sh.name,
            "uuid": sh.uuid.to_string(),
            "raid_level": sh.level.name(),
            "base_bdevs": bases,
        });
        if sh.strip_size_kb != 0 {
            params["strip_size_kb"] = json!(sh.strip_size_kb);
        }
        Some(ConfigCall {
            method: "bdev_raid_create".into(),
            params: Some(params),
        })
    }

    fn info_json(&self) -> Option<Value> {
        Some(json!({ "raid": self.0.info() }))
    }
}

fn invalid(what: &'static str, why: impl Into<String>) -> Error {
    Error::Invalid {
        what,
        why: why.into(),
    }
}

/// The name SPDK's `save_config` gives slot `i` of an array whose base was removed.
fn removed_slot_name(i: usize) -> String {
    format!("removed_base_bdev_{i}")
}

/// What `bdev_raid_create` takes.
#[derive(Debug, Clone)]
pub struct RaidOpts {
    /// The array's bdev name.
    pub name: String,
    /// Level.
    pub level: RaidLevel,
    /// Base bdev names, in order.
    pub base_bdevs: Vec<String>,
    /// RAID0's strip in KiB (a power of two, at least a block); 0 for RAID1.
    pub strip_size_kb: u32,
    /// UUID (random if `None`).
    pub uuid: Option<Uuid>,
}

/// Create an array over existing bases and register its bdev (on a framework thread,
/// which receives the bases' remove events).
pub fn create(o: RaidOpts) -> Result<Bdev> {
    if o.name.is_empty() {
        return Err(invalid("name", "empty"));
    }
    if bdev::get(&o.name).is_some() {
        return Err(Error::Exists(o.name));
    }
    let min = match o.level {
        RaidLevel::Raid0 => 1,
        RaidLevel::Raid1 => 2,
    };
    if o.base_bdevs.len() < min {
        return Err(invalid(
            "base_bdevs",
            format!("{} needs at least {min} base bdevs", o.level.name()),
        ));
    }
    for (i, n) in o.base_bdevs.iter().enumerate() {
        if o.base_bdevs[..i].contains(n) {
            return Err(invalid("base_bdevs", format!("'{n}' is listed twice")));
        }
    }
    // RAID1 slot `i` named "removed_base_bdev_<i>" (no such bdev) is removed from
    // the start, as a degraded array's saved configuration says.
    let slots: Vec<Option<Bdev>> = o
        .base_bdevs
        .iter()
        .enumerate()
        .map(|(i, n)| match bdev::get(n) {
            Some(b) => Ok(Some(b)),
            None if o.level == RaidLevel::Raid1 && *n == removed_slot_name(i) => Ok(None),
            None => Err(Error::NotFound(n.clone())),
        })
        .collect::<Result<_>>()?;
    let bases: Vec<Bdev> = slots.iter().flatten().cloned().collect();
    if bases.is_empty() {
        return Err(invalid("base_bdevs", "every slot is a removed base"));
    }
    let bs = bases[0].info().block_size;
    if let Some(b) = bases.iter().find(|b| b.info().block_size != bs) {
        return Err(invalid(
            "base_bdevs",
            format!(
                "block sizes differ: '{}' has {}, '{}' has {bs}",
                b.name(),
                b.info().block_size,
                bases[0].name()
            ),
        ));
    }
    let min_blocks = bases.iter().map(|b| b.info().num_blocks).min().unwrap_or(0);
    let (strip_blocks, per_base) = match o.level {
        RaidLevel::Raid1 => {
            if o.strip_size_kb != 0 {
                return Err(invalid(
                    "strip_size_kb",
                    "raid1 has no strips: leave it out or give 0",
                ));
            }
            (0, min_blocks)
        }
        RaidLevel::Raid0 => {
            let bytes = u64::from(o.strip_size_kb) * 1024;
            if o.strip_size_kb == 0 || !o.strip_size_kb.is_power_of_two() || bytes < u64::from(bs) {
                return Err(invalid(
                    "strip_size_kb",
                    format!(
                        "{} is not a power of two of at least one block ({bs} bytes)",
                        o.strip_size_kb
                    ),
                ));
            }
            let sb = bytes / u64::from(bs);
            let per = min_blocks / sb * sb;
            if per == 0 {
                return Err(invalid(
                    "strip_size_kb",
                    format!(
                        "a strip of {sb} blocks exceeds the smallest base ({min_blocks} blocks)"
                    ),
                ));
            }
            (sb, per)
        }
    };
    let num_blocks = match o.level {
        RaidLevel::Raid0 => per_base * bases.len() as u64,
        RaidLevel::Raid1 => per_base,
    };
    // Open and claim every base; a failure closes (unclaims) the ones done so far.
    let me: Arc<OnceLock<Weak<RaidShared>>> = Arc::new(OnceLock::new());
    let mut slot_list = Vec::new();
    for (i, b) in slots.iter().enumerate() {
        let Some(b) = b else {
            slot_list.push(BaseSlot {
                name: removed_slot_name(i),
                uuid: Uuid::default(),
                desc: Mutex::new(None),
                removed: AtomicBool::new(true),
            });
            continue;
        };
        let m2 = me.clone();
        let d = vbdev::open_claimed(b.name(), MODULE, move || {
            if let Some(sh) = m2.get().and_then(Weak::upgrade) {
                sh.base_removed(i);
            }
        })?;
        slot_list.push(BaseSlot {
            name: b.name().to_string(),
            uuid: b.info().uuid,
            desc: Mutex::new(Some(d)),
            removed: AtomicBool::new(false),
        });
    }
    let uuid = o.uuid.unwrap_or_else(Uuid::random);
    let shared = Arc::new(RaidShared {
        name: o.name.clone(),
        uuid,
        level: o.level,
        strip_size_kb: o.strip_size_kb,
        strip_blocks,
        blocks_per_base: per_base,
        bases: slot_list,
        chans: Mutex::new(Vec::new()),
        offline: AtomicBool::new(false),
    });
    let _ = me.set(Arc::downgrade(&shared));
    let info = BdevInfo {
        name: o.name.clone(),
        aliases: Vec::new(),
        uuid,
        product_name: "Raid Volume".into(),
        block_size: bs,
        num_blocks,
        optimal_io_boundary: strip_blocks as u32,
        write_cache: bases.iter().any(|b| b.info().write_cache),
        max_transfer_blocks: 0,
    };
    match bdev::register(info, Arc::new(RaidBdev(shared.clone()))) {
        Ok(b) => {
            arrays().push(shared);
            Ok(b)
        }
        Err(e) => {
            for b in &shared.bases {
                b.desc.lock().unwrap_or_else(|e| e.into_inner()).take();
            }
            Err(e)
        }
    }
}

/// The arrays' descriptions (`bdev_raid_get_bdevs`), filtered by `category`.
pub fn get_bdevs(category: &str) -> Result<Vec<Value>> {
    let want = |s: &str| match category {
        "all" => Ok(true),
        "online" | "offline" => Ok(s == category),
        "configuring" => Ok(false),
        other => Err(invalid(
            "category",
            format!("'{other}': expected all, online, configuring or offline"),
        )),
    };
    let mut out = Vec::new();
    for a in arrays().iter() {
        if want(a.state())? {
            out.push(a.info());
        }
    }
    // An unknown category is an error even with no arrays.
    want("")?;
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateParams {
    name: String,
    raid_level: String,
    base_bdevs: BaseList,
    #[serde(default)]
    strip_size_kb: u32,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    superblock: bool,
}

/// rpc.py sends a list; older scripts a space-separated string.
#[derive(Deserialize)]
#[serde(untagged)]
enum BaseList {
    List(Vec<String>),
    Words(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Category {
    #[serde(default = "all")]
    category: String,
}

fn all() -> String {
    "all".into()
}

/// `bdev_raid_create`.
pub(crate) fn create_rpc(r: Request) {
    let res = (|| {
        let p: CreateParams = crate::rpc_util::params(&r)?;
        if p.superblock {
            return Err(RpcError::invalid_params(
                "invalid superblock: on-disk superblocks are not supported (give false)",
            ));
        }
        let level = RaidLevel::parse(&p.raid_level).ok_or_else(|| {
            RpcError::invalid_params(format!(
                "invalid raid_level: '{}' (supported: raid0, raid1)",
                p.raid_level
            ))
        })?;
        let base_bdevs = match p.base_bdevs {
            BaseList::List(v) => v,
            BaseList::Words(s) => s.split_whitespace().map(str::to_string).collect(),
        };
        let uuid = crate::rpc_util::parse_uuid(p.uuid.as_deref())?;
        create(RaidOpts {
            name: p.name,
            level,
            base_bdevs,
            strip_size_kb: p.strip_size_kb,
            uuid,
        })
        .map(|_| json!(true))
        .map_err(|e| crate::rpc_util::rpc_error(&e))
    })();
    r.respond(res)
}

/// `bdev_raid_delete`.
pub(crate) fn delete_rpc(r: Request) {
    crate::rpc_util::delete(r, MODULE)
}

/// `bdev_raid_get_bdevs`.
pub(crate) fn get_bdevs_rpc(r: Request) {
    let res = (|| {
        let p: Category = crate::rpc_util::params(&r)?;
        get_bdevs(&p.category)
            .map(Value::Array)
            .map_err(|e| crate::rpc_util::rpc_error(&e))
    })();
    r.respond(res)
}
