//! The NVMe-oF target's RPC methods under SPDK's names and parameters
//! (python/spdk/rpc/nvmf.py): nvmf_create_transport, nvmf_create_subsystem,
//! nvmf_delete_subsystem, nvmf_subsystem_add_ns, nvmf_subsystem_remove_ns,
//! nvmf_subsystem_add_listener,
//! nvmf_subsystem_add_host, nvmf_subsystem_allow_any_host, nvmf_get_subsystems, and
//! nvmf_get_stats (our counters: connections, live commands, controllers). Handlers
//! run on the app thread. Bad parameters answer -32602 naming the parameter.

use std::net::{IpAddr, SocketAddr};

use framework::subsystem::{ConfigCall, RpcRegistrar};
use jsonrpc::{Request, RpcError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::Error;
use crate::target::subsys::{Subsys, SubsysOpts};
use crate::target::{tgt, TransportOpts};

fn rpc_err(e: Error) -> RpcError {
    match e {
        Error::Exists(_) => RpcError::new(-17, e.to_string()),
        Error::NotFound(_) => RpcError::invalid_params(e.to_string()),
        Error::Invalid { .. } | Error::Bdev { .. } => RpcError::invalid_params(e.to_string()),
        _ => RpcError::internal(e.to_string()),
    }
}

fn params<T: for<'de> Deserialize<'de>>(r: &Request) -> Result<T, RpcError> {
    r.params()
}

fn subsystem(nqn: &str) -> Result<std::sync::Arc<Subsys>, RpcError> {
    tgt()
        .subsystem(nqn)
        .ok_or_else(|| RpcError::invalid_params(format!("Unable to find subsystem with NQN {nqn}")))
}

#[derive(Deserialize)]
struct CreateTransport {
    trtype: String,
    #[serde(default)]
    max_queue_depth: Option<u16>,
    #[serde(default)]
    max_io_qpairs_per_ctrlr: Option<u16>,
    #[serde(default)]
    in_capsule_data_size: Option<u32>,
    #[serde(default)]
    max_io_size: Option<u32>,
}

fn create_transport(p: CreateTransport) -> Result<Value, RpcError> {
    if !p.trtype.eq_ignore_ascii_case("tcp") {
        return Err(RpcError::invalid_params(format!(
            "invalid trtype: '{}' (only TCP is supported)",
            p.trtype
        )));
    }
    let d = TransportOpts::default();
    let o = TransportOpts {
        max_queue_depth: p.max_queue_depth.unwrap_or(d.max_queue_depth),
        max_io_qpairs_per_ctrlr: p
            .max_io_qpairs_per_ctrlr
            .unwrap_or(d.max_io_qpairs_per_ctrlr),
        in_capsule_data_size: p.in_capsule_data_size.unwrap_or(d.in_capsule_data_size),
        max_io_size: p.max_io_size.unwrap_or(d.max_io_size),
    };
    if !(2..=4096).contains(&o.max_queue_depth) {
        return Err(RpcError::invalid_params(
            "invalid max_queue_depth: must be 2..=4096",
        ));
    }
    if o.max_io_qpairs_per_ctrlr == 0 {
        return Err(RpcError::invalid_params(
            "invalid max_io_qpairs_per_ctrlr: must be > 0",
        ));
    }
    if !o.in_capsule_data_size.is_multiple_of(16) || o.in_capsule_data_size > 131072 {
        return Err(RpcError::invalid_params(
            "invalid in_capsule_data_size: a multiple of 16, at most 131072",
        ));
    }
    if !o.max_io_size.is_power_of_two() || !(4096..=1 << 20).contains(&o.max_io_size) {
        return Err(RpcError::invalid_params(
            "invalid max_io_size: a power of two from 4096 to 1048576",
        ));
    }
    tgt().create_transport(o).map_err(rpc_err)?;
    Ok(json!(true))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSubsystem {
    nqn: String,
    #[serde(default)]
    serial_number: Option<String>,
    #[serde(default)]
    model_number: Option<String>,
    #[serde(default)]
    allow_any_host: bool,
    #[serde(default)]
    max_namespaces: u32,
    #[serde(default)]
    tgt_name: Option<String>,
    #[serde(default)]
    ana_reporting: bool,
    #[serde(default)]
    min_cntlid: Option<u16>,
    #[serde(default)]
    max_cntlid: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Nqn {
    nqn: String,
    #[serde(default)]
    tgt_name: Option<String>,
}

#[derive(Deserialize)]
struct NsParams {
    bdev_name: String,
    #[serde(default)]
    nsid: u32,
    #[serde(default)]
    uuid: Option<String>,
}

#[derive(Deserialize)]
struct AddNs {
    nqn: String,
    namespace: NsParams,
    #[serde(default)]
    tgt_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveNs {
    nqn: String,
    nsid: u32,
    #[serde(default)]
    tgt_name: Option<String>,
}

#[derive(Deserialize)]
struct ListenAddress {
    trtype: String,
    #[serde(default)]
    adrfam: Option<String>,
    traddr: String,
    trsvcid: String,
}

#[derive(Deserialize)]
struct AddListener {
    nqn: String,
    listen_address: ListenAddress,
    #[serde(default)]
    tgt_name: Option<String>,
    #[serde(default)]
    secure_channel: bool,
}

#[derive(Deserialize)]
struct AddHost {
    nqn: String,
    host: String,
    #[serde(default)]
    tgt_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowAny {
    nqn: String,
    allow_any_host: bool,
    #[serde(default)]
    tgt_name: Option<String>,
}

fn listen_addr(a: &ListenAddress) -> Result<SocketAddr, RpcError> {
    if !a.trtype.eq_ignore_ascii_case("tcp") {
        return Err(RpcError::invalid_params(format!(
            "invalid trtype: '{}' (only TCP is supported)",
            a.trtype
        )));
    }
    let ip: IpAddr = a
        .traddr
        .parse()
        .map_err(|_| RpcError::invalid_params(format!("invalid traddr: '{}'", a.traddr)))?;
    if let Some(f) = &a.adrfam {
        let ok = match f.to_ascii_lowercase().as_str() {
            "ipv4" => ip.is_ipv4(),
            "ipv6" => ip.is_ipv6(),
            _ => false,
        };
        if !ok {
            return Err(RpcError::invalid_params(format!(
                "invalid adrfam: '{f}' for traddr {ip}"
            )));
        }
    }
    let port: u16 = a
        .trsvcid
        .parse()
        .map_err(|_| RpcError::invalid_params(format!("invalid trsvcid: '{}'", a.trsvcid)))?;
    Ok(SocketAddr::new(ip, port))
}

/// `nvmf_get_subsystems` content.
pub fn subsystems_json() -> Value {
    let list: Vec<Value> = tgt()
        .subsystems()
        .iter()
        .map(|s| {
            let la: Vec<Value> = s
                .listeners()
                .iter()
                .map(|a| {
                    json!({
                        "trtype": "TCP",
                        "adrfam": if a.is_ipv4() { "IPv4" } else { "IPv6" },
                        "traddr": a.ip().to_string(),
                        "trsvcid": a.port().to_string(),
                    })
                })
                .collect();
            let hosts: Vec<Value> = s.hosts().iter().map(|h| json!({"nqn": h.nqn})).collect();
            let mut v = json!({
                "nqn": s.nqn,
                "subtype": if s.is_discovery() { "Discovery" } else { "NVMe" },
                "listen_addresses": la,
                "allow_any_host": s.allow_any_host(),
                "hosts": hosts,
            });
            if !s.is_discovery() {
                let ns: Vec<Value> = s
                    .namespaces()
                    .iter()
                    .map(|n| {
                        json!({
                            "nsid": n.nsid,
                            "bdev_name": n.bdev_name,
                            "name": n.bdev_name,
                            "uuid": n.uuid.to_string(),
                        })
                    })
                    .collect();
                v["serial_number"] = json!(s.serial);
                v["model_number"] = json!(s.model);
                v["max_namespaces"] = json!(s.max_namespaces);
                v["namespaces"] = json!(ns);
            }
            v
        })
        .collect();
    json!(list)
}

type Handler = Box<dyn Fn(Request) + Send + Sync>;

fn method<T, F>(f: F) -> Handler
where
    T: for<'de> Deserialize<'de>,
    F: Fn(T) -> Result<Value, RpcError> + Send + Sync + 'static,
{
    Box::new(move |r: Request| {
        let res = params::<T>(&r).and_then(&f);
        r.respond(res)
    })
}

/// Register the methods.
pub fn register(reg: &dyn RpcRegistrar) -> framework::Result<()> {
    let methods: Vec<(&str, Handler)> = vec![
        ("nvmf_create_transport", method(create_transport)),
        (
            "nvmf_create_subsystem",
            method(|p: CreateSubsystem| {
                let _ = (&p.tgt_name, p.ana_reporting, p.min_cntlid, p.max_cntlid);
                let s = Subsys::new(SubsysOpts {
                    nqn: p.nqn,
                    serial_number: p.serial_number.unwrap_or_default(),
                    model_number: p.model_number.unwrap_or_default(),
                    allow_any_host: p.allow_any_host,
                    max_namespaces: p.max_namespaces,
                })
                .map_err(rpc_err)?;
                tgt().add_subsystem(s).map_err(rpc_err)?;
                Ok(json!(true))
            }),
        ),
        (
            "nvmf_delete_subsystem",
            method(|p: Nqn| {
                let _ = &p.tgt_name;
                tgt().delete_subsystem(&p.nqn).map_err(|e| match e {
                    Error::NotFound(_) => RpcError::invalid_params(format!(
                        "Unable to find subsystem with NQN {}",
                        p.nqn
                    )),
                    e => rpc_err(e),
                })?;
                Ok(json!(true))
            }),
        ),
        (
            "nvmf_subsystem_add_ns",
            method(|p: AddNs| {
                let _ = &p.tgt_name;
                let s = subsystem(&p.nqn)?;
                let uuid =
                    match &p.namespace.uuid {
                        Some(u) => Some(bdev::Uuid::parse(u).ok_or_else(|| {
                            RpcError::invalid_params(format!("invalid uuid: '{u}'"))
                        })?),
                        None => None,
                    };
                let nsid = s
                    .add_ns(&p.namespace.bdev_name, p.namespace.nsid, uuid)
                    .map_err(rpc_err)?;
                Ok(json!(nsid))
            }),
        ),
        (
            "nvmf_subsystem_remove_ns",
            method(|p: RemoveNs| {
                let _ = &p.tgt_name;
                let s = subsystem(&p.nqn)?;
                if !s.remove_ns(p.nsid) {
                    return Err(RpcError::invalid_params(format!(
                        "Unable to find namespace {} of subsystem {}",
                        p.nsid, p.nqn
                    )));
                }
                Ok(json!(true))
            }),
        ),
        (
            "nvmf_subsystem_add_listener",
            method(|p: AddListener| {
                let _ = (&p.tgt_name, p.secure_channel);
                let s = subsystem(&p.nqn)?;
                let a = listen_addr(&p.listen_address)?;
                if tgt().transport().is_none() {
                    return Err(RpcError::invalid_params(
                        "Unable to find transport TCP: call nvmf_create_transport first",
                    ));
                }
                crate::target::listen(&s, a).map_err(rpc_err)?;
                Ok(json!(true))
            }),
        ),
        (
            "nvmf_subsystem_add_host",
            method(|p: AddHost| {
                let _ = &p.tgt_name;
                let s = subsystem(&p.nqn)?;
                s.add_host(&p.host).map_err(rpc_err)?;
                tgt()
                    .genctr
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(json!(true))
            }),
        ),
        (
            "nvmf_subsystem_allow_any_host",
            method(|p: AllowAny| {
                let _ = &p.tgt_name;
                let s = subsystem(&p.nqn)?;
                if s.is_discovery() {
                    return Err(RpcError::invalid_params(
                        "invalid nqn: the discovery subsystem always allows any host",
                    ));
                }
                s.set_allow_any_host(p.allow_any_host);
                tgt()
                    .genctr
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(json!(true))
            }),
        ),
        (
            "nvmf_get_subsystems",
            Box::new(|r: Request| r.respond(Ok(subsystems_json()))),
        ),
        (
            "nvmf_get_stats",
            Box::new(|r: Request| {
                let s = tgt().stats();
                r.respond(Ok(json!({
                    "accepted_connections": s.accepted,
                    "closed_connections": s.closed,
                    "live_commands": s.live_cmds,
                    "controllers": s.ctrlrs,
                    "poll_groups": tgt().groups.lock().unwrap_or_else(|e| e.into_inner()).len(),
                })))
            }),
        ),
    ];
    for (name, h) in methods {
        reg.register(name, false, h)?;
    }
    Ok(())
}

/// The calls that recreate the target (`save_config`).
pub fn write_config() -> Vec<ConfigCall> {
    let t = tgt();
    let mut out = Vec::new();
    let Some(o) = t.transport() else {
        return out;
    };
    out.push(ConfigCall {
        method: "nvmf_create_transport".into(),
        params: Some(json!({
            "trtype": "TCP",
            "max_queue_depth": o.max_queue_depth,
            "max_io_qpairs_per_ctrlr": o.max_io_qpairs_per_ctrlr,
            "in_capsule_data_size": o.in_capsule_data_size,
            "max_io_size": o.max_io_size,
        })),
    });
    for s in t.subsystems() {
        if !s.is_discovery() {
            out.push(ConfigCall {
                method: "nvmf_create_subsystem".into(),
                params: Some(json!({
                    "nqn": s.nqn,
                    "serial_number": s.serial,
                    "model_number": s.model,
                    "allow_any_host": s.allow_any_host(),
                    "max_namespaces": s.max_namespaces,
                })),
            });
            for n in s.namespaces() {
                out.push(ConfigCall {
                    method: "nvmf_subsystem_add_ns".into(),
                    params: Some(json!({
                        "nqn": s.nqn,
                        "namespace": {"bdev_name": n.bdev_name, "nsid": n.nsid, "uuid": n.uuid.to_string()},
                    })),
                });
            }
            for h in s.hosts() {
                out.push(ConfigCall {
                    method: "nvmf_subsystem_add_host".into(),
                    params: Some(json!({"nqn": s.nqn, "host": h.nqn})),
                });
            }
        }
        for a in s.listeners() {
            out.push(ConfigCall {
                method: "nvmf_subsystem_add_listener".into(),
                params: Some(json!({
                    "nqn": s.nqn,
                    "listen_address": {
                        "trtype": "TCP",
                        "adrfam": if a.is_ipv4() { "IPv4" } else { "IPv6" },
                        "traddr": a.ip().to_string(),
                        "trsvcid": a.port().to_string(),
                    },
                })),
            });
        }
    }
    out
}
