//! The lvol RPC methods with SPDK's names and parameters (bdev_lvol_create_lvstore,
//! bdev_lvol_get_lvstores, bdev_lvol_create, bdev_lvol_snapshot, bdev_lvol_clone,
//! bdev_lvol_resize, bdev_lvol_rename, bdev_lvol_rename_lvstore, bdev_lvol_inflate,
//! bdev_lvol_decouple_parent, bdev_lvol_delete, bdev_lvol_delete_lvstore) and the
//! `lvol` subsystem that registers them, examines new bdevs for stores from its init
//! on, and unloads every store at exit. Each method that
//! does I/O runs on an OS thread of its own and answers from there.

use std::sync::Arc;

use framework::subsystem::{Done, RpcRegistrar, Subsystem};
use framework::{thread, ThreadHandle};
use jsonrpc::{Request, RpcError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::Error;
use crate::lvol::{self, LvolStore, LvsOpts};

/// Add with `app.add_subsystem(LvolSubsystem)`.
pub struct LvolSubsystem;

fn err(e: &Error) -> RpcError {
    match e {
        Error::Invalid { .. } => RpcError::invalid_params(e.to_string()),
        Error::NoBlob(_) => RpcError::new(-19, e.to_string()),
        Error::NoSpace { .. } => RpcError::new(-28, e.to_string()),
        Error::Busy { .. } => RpcError::new(-16, e.to_string()),
        Error::Bdev(b) if matches!(**b, bdev::Error::NotFound(_)) => {
            RpcError::new(-19, e.to_string())
        }
        _ => RpcError::internal(e.to_string()),
    }
}

fn params<T: for<'de> Deserialize<'de>>(r: &Request) -> Result<T, RpcError> {
    let v = r.raw_params().cloned().unwrap_or(Value::Null);
    let v = if v.is_null() { json!({}) } else { v };
    serde_json::from_value(v).map_err(|e| RpcError::invalid_params(format!("{}: {e}", r.method())))
}

/// Run `f` on a new OS thread with the calling framework thread, answer from there.
fn offload<P, F>(r: Request, f: F)
where
    P: for<'de> Deserialize<'de> + Send + 'static,
    F: FnOnce(ThreadHandle, P) -> Result<Value, RpcError> + Send + 'static,
{
    let p: P = match params(&r) {
        Ok(p) => p,
        Err(e) => return r.respond(Err(e)),
    };
    let Some(th) = thread::current() else {
        return r.respond(Err(RpcError::internal("not on a framework thread")));
    };
    let resp = r.into_responder();
    let spawned = std::thread::Builder::new()
        .name("lvol-rpc".into())
        .spawn(move || resp.respond(f(th, p)));
    if let Err(e) = spawned {
        eal::log_err!("lvol rpc: cannot start a thread: {e}");
    }
}

/// A method taking an lvol bdev's `name` and answering `true`.
fn on_lvol(r: Request, f: fn(&Arc<LvolStore>, &str) -> crate::error::Result<()>) {
    offload(r, move |_, p: Name| {
        let (s, l) = lvol_of(&p.name)?;
        f(&s, &l).map_err(|e| err(&e))?;
        Ok(json!(true))
    })
}

fn store_of(uuid: &Option<String>, name: &Option<String>) -> Result<Arc<LvolStore>, RpcError> {
    let key = uuid
        .as_ref()
        .or(name.as_ref())
        .ok_or_else(|| RpcError::invalid_params("give uuid or lvs_name"))?;
    lvol::find(key).ok_or_else(|| RpcError::new(-19, format!("no lvol store '{key}'")))
}

fn lvol_of(name: &str) -> Result<(Arc<LvolStore>, String), RpcError> {
    lvol::find_lvol(name).ok_or_else(|| RpcError::new(-19, format!("no lvol '{name}'")))
}

#[derive(Deserialize)]
struct CreateLvs {
    bdev_name: String,
    lvs_name: String,
    #[serde(default)]
    cluster_sz: Option<u32>,
    #[serde(default)]
    clear_method: Option<String>,
    #[serde(default)]
    num_md_pages_per_cluster_ratio: Option<u32>,
}

#[derive(Deserialize)]
struct ByStore {
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    lvs_name: Option<String>,
}

#[derive(Deserialize)]
struct CreateLvol {
    lvol_name: String,
    size_in_mib: u64,
    #[serde(default)]
    thin_provision: bool,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    lvs_name: Option<String>,
    #[serde(default)]
    clear_method: Option<String>,
}

#[derive(Deserialize)]
struct Snap {
    lvol_name: String,
    snapshot_name: String,
}

#[derive(Deserialize)]
struct CloneP {
    snapshot_name: String,
    clone_name: String,
}

#[derive(Deserialize)]
struct Resize {
    name: String,
    size_in_mib: u64,
}

#[derive(Deserialize)]
struct Name {
    name: String,
}

#[derive(Deserialize)]
struct Rename {
    old_name: String,
    new_name: String,
}

fn lvs_json(s: &LvolStore) -> Value {
    let i = s.info();
    json!({
        "uuid": s.uuid.to_string(),
        "name": s.name(),
        "base_bdev": s.base_bdev,
        "total_data_clusters": i.as_ref().map(|i| i.total_data_clusters),
        "free_clusters": i.as_ref().map(|i| i.free_clusters),
        "block_size": i.as_ref().map(|i| i.io_unit_size),
        "cluster_size": i.as_ref().map(|i| i.cluster_size),
    })
}

type Handler = Box<dyn Fn(Request) + Send + Sync>;

fn methods() -> Vec<(&'static str, Handler)> {
    vec![
        (
            "bdev_lvol_create_lvstore",
            Box::new(|r| {
                offload(r, |th, p: CreateLvs| {
                    if let Some(m) = &p.clear_method {
                        if !matches!(m.as_str(), "none" | "unmap" | "write_zeroes") {
                            return Err(RpcError::invalid_params(format!(
                                "bad clear_method '{m}'"
                            )));
                        }
                    }
                    let s = lvol::create_lvstore(
                        &th,
                        &p.bdev_name,
                        &LvsOpts {
                            name: p.lvs_name,
                            cluster_size: p.cluster_sz.unwrap_or(lvol::DEFAULT_CLUSTER_SIZE),
                            md_pages_per_cluster_ratio: p
                                .num_md_pages_per_cluster_ratio
                                .unwrap_or(100),
                        },
                    )
                    .map_err(|e| err(&e))?;
                    Ok(json!(s.uuid.to_string()))
                })
            }),
        ),
        (
            "bdev_lvol_get_lvstores",
            Box::new(|r| {
                let p: ByStore = match params(&r) {
                    Ok(p) => p,
                    Err(e) => return r.respond(Err(e)),
                };
                let res = if p.uuid.is_some() || p.lvs_name.is_some() {
                    store_of(&p.uuid, &p.lvs_name).map(|s| json!([lvs_json(&s)]))
                } else {
                    Ok(Value::Array(
                        lvol::stores().iter().map(|s| lvs_json(s)).collect(),
                    ))
                };
                r.respond(res)
            }),
        ),
        (
            "bdev_lvol_create",
            Box::new(|r| {
                offload(r, |_, p: CreateLvol| {
                    let _ = p.clear_method;
                    let s = store_of(&p.uuid, &p.lvs_name)?;
                    let u =
                        lvol::create_lvol(&s, &p.lvol_name, p.size_in_mib << 20, p.thin_provision)
                            .map_err(|e| err(&e))?;
                    Ok(json!(u.to_string()))
                })
            }),
        ),
        (
            "bdev_lvol_snapshot",
            Box::new(|r| {
                offload(r, |_, p: Snap| {
                    let (s, l) = lvol_of(&p.lvol_name)?;
                    let u = lvol::snapshot(&s, &l, &p.snapshot_name).map_err(|e| err(&e))?;
                    Ok(json!(u.to_string()))
                })
            }),
        ),
        (
            "bdev_lvol_clone",
            Box::new(|r| {
                offload(r, |_, p: CloneP| {
                    let (s, l) = lvol_of(&p.snapshot_name)?;
                    let u = lvol::clone(&s, &l, &p.clone_name).map_err(|e| err(&e))?;
                    Ok(json!(u.to_string()))
                })
            }),
        ),
        (
            "bdev_lvol_resize",
            Box::new(|r| {
                offload(r, |_, p: Resize| {
                    let (s, l) = lvol_of(&p.name)?;
                    lvol::resize(&s, &l, p.size_in_mib << 20).map_err(|e| err(&e))?;
                    Ok(json!(true))
                })
            }),
        ),
        ("bdev_lvol_delete", Box::new(|r| on_lvol(r, lvol::delete))),
        (
            "bdev_lvol_rename",
            Box::new(|r| {
                offload(r, |_, p: Rename| {
                    let (s, l) = lvol_of(&p.old_name)?;
                    lvol::rename(&s, &l, &p.new_name).map_err(|e| err(&e))?;
                    Ok(json!(true))
                })
            }),
        ),
        (
            "bdev_lvol_rename_lvstore",
            Box::new(|r| {
                offload(r, |_, p: Rename| {
                    let s = lvol::find(&p.old_name).ok_or_else(|| {
                        RpcError::new(-19, format!("no lvol store '{}'", p.old_name))
                    })?;
                    lvol::rename_lvstore(&s, &p.new_name).map_err(|e| err(&e))?;
                    Ok(json!(true))
                })
            }),
        ),
        ("bdev_lvol_inflate", Box::new(|r| on_lvol(r, lvol::inflate))),
        (
            "bdev_lvol_decouple_parent",
            Box::new(|r| on_lvol(r, lvol::decouple_parent)),
        ),
        (
            "bdev_lvol_delete_lvstore",
            Box::new(|r| {
                offload(r, |_, p: ByStore| {
                    let s = store_of(&p.uuid, &p.lvs_name)?;
                    lvol::destroy(&s).map_err(|e| err(&e))?;
                    Ok(json!(true))
                })
            }),
        ),
    ]
}

impl Subsystem for LvolSubsystem {
    fn name(&self) -> &str {
        "lvol"
    }

    fn depends_on(&self) -> Vec<String> {
        vec!["bdev".into()]
    }

    fn register_rpcs(&self, rpc: &dyn RpcRegistrar) -> framework::Result<()> {
        for (m, h) in methods() {
            rpc.register(m, false, h)?;
        }
        Ok(())
    }

    fn init(&self, done: Done) {
        // From now on every new bdev is examined for an lvol store.
        lvol::examine::enable();
        done.ok();
    }

    fn fini(&self, done: Done) {
        // Unloading waits for I/O on this (the app) thread: do it from another.
        let spawned = std::thread::Builder::new()
            .name("lvol-fini".into())
            .spawn(move || {
                for s in lvol::stores() {
                    if let Err(e) = lvol::unload(&s) {
                        eal::log_err!("lvol: unloading store '{}' failed: {e}", s.name());
                    }
                }
                done.ok();
            });
        if let Err(e) = spawned {
            eal::log_err!("lvol fini: cannot start a thread: {e}");
        }
    }
}
