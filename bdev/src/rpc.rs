//! The bdev RPC methods under SPDK's names and parameters: bdev_malloc_create,
//! bdev_malloc_delete, bdev_malloc_resize (ours, [`crate::resize_rpc`]), bdev_uring_create,
//! bdev_uring_delete, bdev_uring_rescan ([`crate::resize_rpc`]), bdev_aio_create,
//! bdev_aio_delete, bdev_nvme_attach_controller and bdev_nvme_detach_controller (the
//! transports register in [`crate::modules::nvme_attach`]), bdev_null_create, bdev_null_delete,
//! bdev_null_resize ([`crate::resize_rpc`]),
//! bdev_passthru_create/delete, bdev_split_create/delete, bdev_raid_create/delete,
//! bdev_raid_get_bdevs, bdev_get_bdevs,
//! bdev_get_iostat, bdev_set_qos_limit. Handlers run on the app thread (the RPC
//! server's poller), so they may open, register and unregister directly.
//!
//! Errors: malformed or out-of-range parameters are `-32602` (invalid params) with a
//! message naming the parameter; an unknown bdev is `-19` (ENODEV, as SPDK answers)
//! and a name in use `-17` (EEXIST).

use std::sync::{Arc, Mutex};

use framework::subsystem::RpcRegistrar;
use jsonrpc::{Request, RpcError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::bdev::{self, Bdev};
use crate::error::Error;
use crate::io::IoType;
use crate::modules::aio::{self, AioOpts};
use crate::modules::malloc::{self, MallocOpts};
use crate::modules::null::{self, NullOpts};
use crate::modules::uring::{self, UringOpts};
use crate::qos::QosValues;
use crate::rpc_util::{delete, params, parse_uuid};

pub use crate::rpc_util::rpc_error;

static AUTO_NAME: Mutex<u32> = Mutex::new(0);

fn auto_name(prefix: &str) -> String {
    let mut n = AUTO_NAME.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let name = format!("{prefix}{}", *n);
        *n += 1;
        if bdev::get(&name).is_none() {
            return name;
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MallocCreate {
    #[serde(default)]
    name: Option<String>,
    num_blocks: u64,
    block_size: u32,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    optimal_io_boundary: u32,
    // rpc.py's metadata and placement parameters: accepted at their "none" values
    // only (this layer has no metadata yet).
    #[serde(default)]
    md_size: u32,
    #[serde(default)]
    md_interleave: bool,
    #[serde(default)]
    dif_type: u32,
    #[serde(default)]
    dif_is_head_of_md: bool,
    #[serde(default)]
    dif_pi_format: u32,
    #[serde(default)]
    physical_block_size: u32,
    #[serde(default)]
    numa_id: Option<i64>,
}

impl MallocCreate {
    fn check(&self) -> Result<(), RpcError> {
        if self.physical_block_size != 0
            && (self.physical_block_size < self.block_size
                || !self.physical_block_size.is_power_of_two())
        {
            return Err(RpcError::invalid_params(format!(
                "invalid physical_block_size: {} is not a power of two >= block_size {}",
                self.physical_block_size, self.block_size
            )));
        }
        if self.md_size != 0 || self.md_interleave || self.dif_type != 0 || self.dif_is_head_of_md {
            return Err(RpcError::invalid_params(
                "invalid md_size/dif_type: metadata and protection information are not supported",
            ));
        }
        if self.dif_pi_format != 0 || self.numa_id.is_some_and(|n| n >= 0) {
            return Err(RpcError::invalid_params(
                "invalid dif_pi_format/numa_id: not supported (leave them out)",
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NullCreate {
    name: String,
    num_blocks: u64,
    block_size: u32,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    md_size: u32,
    #[serde(default)]
    dif_type: u32,
    #[serde(default)]
    dif_is_head_of_md: bool,
    #[serde(default)]
    dif_pi_format: u32,
    #[serde(default)]
    physical_block_size: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UringCreate {
    name: String,
    filename: String,
    #[serde(default)]
    block_size: u32,
    #[serde(default)]
    uuid: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AioCreate {
    name: String,
    filename: String,
    #[serde(default)]
    block_size: u32,
    #[serde(default)]
    readonly: bool,
    // SPDK's rpc.py sends it (preallocate on write-zeroes); this module always uses
    // fallocate for write-zeroes on regular files, so both values are accepted.
    #[serde(default)]
    fallocate: bool,
    #[serde(default)]
    uuid: Option<String>,
}

fn uring_create(r: Request) {
    let p: UringCreate = match params(&r) {
        Ok(p) => p,
        Err(e) => return r.respond(Err(e)),
    };
    let res = parse_uuid(p.uuid.as_deref()).and_then(|uuid| {
        uring::create(UringOpts {
            name: p.name,
            filename: p.filename,
            block_size: p.block_size,
            uuid,
        })
        .map(|b| json!(b.name()))
        .map_err(|e| rpc_error(&e))
    });
    r.respond(res)
}

fn aio_create(r: Request) {
    let p: AioCreate = match params(&r) {
        Ok(p) => p,
        Err(e) => return r.respond(Err(e)),
    };
    let _ = p.fallocate;
    let res = parse_uuid(p.uuid.as_deref()).and_then(|uuid| {
        aio::create(AioOpts {
            name: p.name,
            filename: p.filename,
            block_size: p.block_size,
            readonly: p.readonly,
            uuid,
        })
        .map(|b| json!(b.name()))
        .map_err(|e| rpc_error(&e))
    });
    r.respond(res)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaybeName {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    timeout: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IostatParams {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    per_channel: bool,
    #[serde(default)]
    reset_mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetQos {
    name: String,
    #[serde(default)]
    rw_ios_per_sec: Option<u64>,
    #[serde(default)]
    rw_mbytes_per_sec: Option<u64>,
    #[serde(default)]
    r_mbytes_per_sec: Option<u64>,
    #[serde(default)]
    w_mbytes_per_sec: Option<u64>,
}

/// One bdev as `bdev_get_bdevs` describes it (SPDK's fields).
pub fn bdev_json(b: &Bdev) -> Value {
    let i = b.info();
    let q = b.qos().get();
    let mut types = serde_json::Map::new();
    for t in IoType::ALL {
        types.insert(t.name().into(), json!(b.io_type_supported(t)));
    }
    for t in [
        "nvme_admin",
        "nvme_io",
        "zcopy",
        "abort",
        "seek_hole",
        "seek_data",
        "copy",
    ] {
        types.insert(t.into(), json!(false));
    }
    json!({
        "name": i.name,
        "aliases": b.aliases(),
        "product_name": i.product_name,
        "block_size": i.block_size,
        "num_blocks": b.num_blocks(),
        "uuid": i.uuid.to_string(),
        "assigned_rate_limits": {
            "rw_ios_per_sec": q.rw_ios_per_sec,
            "rw_mbytes_per_sec": q.rw_mbytes_per_sec,
            "r_mbytes_per_sec": q.r_mbytes_per_sec,
            "w_mbytes_per_sec": q.w_mbytes_per_sec,
        },
        "claimed": b.claimed_by().is_some(),
        "zoned": false,
        "supported_io_types": types,
        "driver_specific": b.module().info_json().unwrap_or_else(|| json!({})),
        "optimal_io_boundary": i.optimal_io_boundary,
        "write_cache": i.write_cache,
        "md_size": 0,
        "dif_type": 0,
        "enabled_dif_check_types": {"reftag": false, "apptag": false, "guard": false},
        "memory_domains": [],
    })
}

fn iostat(r: Request) {
    let p: IostatParams = match params(&r) {
        Ok(p) => p,
        Err(e) => return r.respond(Err(e)),
    };
    if p.reset_mode.as_deref().is_some_and(|m| m != "none") {
        return r.respond(Err(RpcError::invalid_params(
            "invalid reset_mode: only 'none' is supported (statistics are never reset)",
        )));
    }
    if p.per_channel {
        let Some(b) = p.name.as_deref().and_then(bdev::get) else {
            return r.respond(Err(RpcError::invalid_params(
                "per_channel needs the name of an existing bdev",
            )));
        };
        let resp = Arc::new(Mutex::new(Some(r.into_responder())));
        let r2 = resp.clone();
        let name = b.name().to_string();
        let res = b.get_channel_iostats(move |chans| {
            let channels: Vec<Value> = chans
                .iter()
                .map(|(tid, s)| {
                    let mut v = s.to_json(&name);
                    if let Some(o) = v.as_object_mut() {
                        o.remove("name");
                        o.insert("thread_id".into(), json!(tid));
                    }
                    v
                })
                .collect();
            if let Some(x) = r2.lock().unwrap_or_else(|e| e.into_inner()).take() {
                x.respond(Ok(json!({
                    "tick_rate": eal::timer::tsc_hz(),
                    "ticks": eal::timer::rdtsc(),
                    "name": name,
                    "channels": channels,
                })));
            }
        });
        if let Err(e) = res {
            if let Some(x) = resp.lock().unwrap_or_else(|e| e.into_inner()).take() {
                x.respond(Err(rpc_error(&e)));
            }
        }
        return;
    }
    let list = match &p.name {
        Some(n) => match bdev::get(n) {
            Some(b) => vec![b],
            None => return r.respond(Err(rpc_error(&Error::NotFound(n.clone())))),
        },
        None => bdev::list(),
    };
    let resp = r.into_responder();
    let out = Arc::new(Mutex::new(Vec::new()));
    next_iostat(list, 0, out, resp);
}

/// Visit the bdevs one after another (each visit is asynchronous), then answer.
fn next_iostat(list: Vec<Bdev>, i: usize, out: Arc<Mutex<Vec<Value>>>, resp: jsonrpc::Responder) {
    let Some(b) = list.get(i).cloned() else {
        let bdevs = std::mem::take(&mut *out.lock().unwrap_or_else(|e| e.into_inner()));
        return resp.respond(Ok(json!({
            "tick_rate": eal::timer::tsc_hz(),
            "ticks": eal::timer::rdtsc(),
            "bdevs": bdevs,
        })));
    };
    let resp = Arc::new(Mutex::new(Some(resp)));
    let (r2, o2, l2) = (resp.clone(), out.clone(), list.clone());
    let name = b.name().to_string();
    let res = b.get_iostat(move |s| {
        o2.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(s.to_json(&name));
        if let Some(x) = r2.lock().unwrap_or_else(|e| e.into_inner()).take() {
            next_iostat(l2, i + 1, o2, x);
        }
    });
    if let Err(e) = res {
        if let Some(x) = resp.lock().unwrap_or_else(|e| e.into_inner()).take() {
            x.respond(Err(rpc_error(&e)));
        }
    }
}

type Handler = Box<dyn Fn(Request) + Send + Sync>;

/// Register the methods.
pub fn register(reg: &dyn RpcRegistrar) -> framework::Result<()> {
    let methods: Vec<(&str, Handler)> = vec![
        (
            "bdev_malloc_create",
            Box::new(|r: Request| {
                let p: MallocCreate = match params(&r) {
                    Ok(p) => p,
                    Err(e) => return r.respond(Err(e)),
                };
                let res = (|| {
                    p.check()?;
                    let uuid = parse_uuid(p.uuid.as_deref())?;
                    let name = p.name.clone().unwrap_or_else(|| auto_name("Malloc"));
                    malloc::create(MallocOpts {
                        name,
                        num_blocks: p.num_blocks,
                        block_size: p.block_size,
                        uuid,
                        optimal_io_boundary: p.optimal_io_boundary,
                        max_transfer_blocks: 0,
                        eal: None,
                    })
                    .map(|b| json!(b.name()))
                    .map_err(|e| rpc_error(&e))
                })();
                r.respond(res)
            }),
        ),
        ("bdev_malloc_delete", Box::new(|r| delete(r, "malloc"))),
        (
            "bdev_malloc_resize",
            Box::new(crate::resize_rpc::malloc_resize),
        ),
        (
            "bdev_nvme_attach_controller",
            Box::new(crate::modules::nvme_attach::attach_rpc),
        ),
        (
            "bdev_nvme_detach_controller",
            Box::new(crate::modules::nvme_attach::detach_rpc),
        ),
        (
            "bdev_null_create",
            Box::new(|r: Request| {
                let p: NullCreate = match params(&r) {
                    Ok(p) => p,
                    Err(e) => return r.respond(Err(e)),
                };
                let res = (|| {
                    if p.md_size != 0 || p.dif_type != 0 {
                        return Err(RpcError::invalid_params(
                            "invalid md_size/dif_type: metadata is not supported",
                        ));
                    }
                    let _ = (p.dif_is_head_of_md, p.dif_pi_format, p.physical_block_size);
                    let uuid = parse_uuid(p.uuid.as_deref())?;
                    null::create(NullOpts {
                        name: p.name.clone(),
                        num_blocks: p.num_blocks,
                        block_size: p.block_size,
                        uuid,
                    })
                    .map(|b| json!(b.name()))
                    .map_err(|e| rpc_error(&e))
                })();
                r.respond(res)
            }),
        ),
        ("bdev_null_delete", Box::new(|r| delete(r, "null"))),
        ("bdev_null_resize", Box::new(crate::resize_rpc::null_resize)),
        ("bdev_uring_create", Box::new(uring_create)),
        ("bdev_uring_delete", Box::new(|r| delete(r, "uring"))),
        (
            "bdev_uring_rescan",
            Box::new(crate::resize_rpc::uring_rescan),
        ),
        ("bdev_aio_create", Box::new(aio_create)),
        ("bdev_aio_delete", Box::new(|r| delete(r, "aio"))),
        (
            "bdev_passthru_create",
            Box::new(crate::modules::passthru::create_rpc),
        ),
        (
            "bdev_passthru_delete",
            Box::new(crate::modules::passthru::delete_rpc),
        ),
        (
            "bdev_split_create",
            Box::new(crate::modules::split::create_rpc),
        ),
        (
            "bdev_split_delete",
            Box::new(crate::modules::split::delete_rpc),
        ),
        (
            "bdev_raid_create",
            Box::new(crate::modules::raid::create_rpc),
        ),
        (
            "bdev_raid_delete",
            Box::new(crate::modules::raid::delete_rpc),
        ),
        (
            "bdev_raid_get_bdevs",
            Box::new(crate::modules::raid::get_bdevs_rpc),
        ),
        (
            "bdev_get_bdevs",
            Box::new(|r: Request| {
                let p: MaybeName = match params(&r) {
                    Ok(p) => p,
                    Err(e) => return r.respond(Err(e)),
                };
                let _ = p.timeout;
                let res = match &p.name {
                    Some(n) => match bdev::get(n) {
                        Some(b) => Ok(json!([bdev_json(&b)])),
                        None => Err(rpc_error(&Error::NotFound(n.clone()))),
                    },
                    None => Ok(Value::Array(bdev::list().iter().map(bdev_json).collect())),
                };
                r.respond(res)
            }),
        ),
        ("bdev_get_iostat", Box::new(iostat)),
        (
            "bdev_set_qos_limit",
            Box::new(|r: Request| {
                let p: SetQos = match params(&r) {
                    Ok(p) => p,
                    Err(e) => return r.respond(Err(e)),
                };
                let Some(b) = bdev::get(&p.name) else {
                    return r.respond(Err(rpc_error(&Error::NotFound(p.name))));
                };
                let given = [
                    p.rw_ios_per_sec,
                    p.rw_mbytes_per_sec,
                    p.r_mbytes_per_sec,
                    p.w_mbytes_per_sec,
                ];
                if given.iter().all(Option::is_none) {
                    return r.respond(Err(RpcError::invalid_params(
                        "bdev_set_qos_limit: give at least one of rw_ios_per_sec, \
                         rw_mbytes_per_sec, r_mbytes_per_sec, w_mbytes_per_sec",
                    )));
                }
                let old = b.qos().get();
                let v = QosValues {
                    rw_ios_per_sec: p.rw_ios_per_sec.unwrap_or(old.rw_ios_per_sec),
                    rw_mbytes_per_sec: p.rw_mbytes_per_sec.unwrap_or(old.rw_mbytes_per_sec),
                    r_mbytes_per_sec: p.r_mbytes_per_sec.unwrap_or(old.r_mbytes_per_sec),
                    w_mbytes_per_sec: p.w_mbytes_per_sec.unwrap_or(old.w_mbytes_per_sec),
                };
                r.respond(
                    b.set_qos_limits(v)
                        .map(|_| json!(true))
                        .map_err(|e| rpc_error(&e)),
                )
            }),
        ),
    ];
    for (name, h) in methods {
        reg.register(name, false, h)?;
    }
    Ok(())
}
