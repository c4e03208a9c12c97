//! save_config and load_config as rpc.py does them, on the client side:
//! saving asks each subsystem for its config; loading replays the calls in
//! the states that allow them, calling framework_start_init to move on.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

use jsonrpc::config::{JsonConfig, MethodCall, SubsystemConfig};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::{Conn, Fail};

#[derive(Deserialize)]
struct SubsystemInfo {
    subsystem: String,
    #[serde(default)]
    depends_on: Vec<String>,
}

fn bad_answer(method: &str, e: impl std::fmt::Display) -> Fail {
    Fail::Call(format!("{method} gave an unexpected answer: {e}"))
}

pub fn save_config(conn: &mut Conn<'_>, params: &Map<String, Value>) -> Result<(), Fail> {
    let indent = params.get("indent").and_then(Value::as_i64).unwrap_or(2);
    let subs: Vec<SubsystemInfo> =
        serde_json::from_value(conn.call("framework_get_subsystems", None)?)
            .map_err(|e| bad_answer("framework_get_subsystems", e))?;
    // Each subsystem with all it depends on (the list is in init order).
    let mut deps: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for s in &subs {
        let mut set = BTreeSet::from([s.subsystem.as_str()]);
        for d in &s.depends_on {
            if let Some(dd) = deps.get(d.as_str()) {
                set.extend(dd.iter().copied());
            }
            set.insert(d.as_str());
        }
        deps.insert(s.subsystem.as_str(), set);
    }
    let wanted: Option<BTreeSet<&str>> = match params.get("subsystems").and_then(Value::as_str) {
        None => None,
        Some(list) => {
            let mut set = BTreeSet::new();
            for name in list.split(',') {
                let d = deps.get(name).ok_or_else(|| {
                    Fail::Usage(format!(
                        "argument -s/--subsystems: unknown subsystem '{name}'"
                    ))
                })?;
                set.extend(d.iter().copied());
            }
            Some(set)
        }
    };
    let mut cfg = JsonConfig::default();
    for s in &subs {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.contains(s.subsystem.as_str()))
        {
            continue;
        }
        let c = conn.call("framework_get_config", Some(json!({"name": s.subsystem})))?;
        let config: Option<Vec<MethodCall>> =
            serde_json::from_value(c).map_err(|e| bad_answer("framework_get_config", e))?;
        cfg.subsystems.push(SubsystemConfig {
            subsystem: s.subsystem.clone(),
            config,
        });
    }
    if indent < 0 {
        println!("{}", serde_json::to_string(&cfg).unwrap_or_default());
    } else {
        print!("{}", cfg.to_string_indent(indent as usize));
    }
    Ok(())
}

fn read_config(params: &Map<String, Value>) -> Result<JsonConfig, Fail> {
    let load_err = |e: jsonrpc::Error| Fail::Call(e.to_string());
    match params.get("json_conf").and_then(Value::as_str) {
        Some(arg) if Path::new(arg).exists() => JsonConfig::load(Path::new(arg)).map_err(load_err),
        Some(text) => {
            JsonConfig::from_str_named(text, Path::new("<-j argument>")).map_err(load_err)
        }
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Fail::Call(format!("failed to read the config from stdin: {e}")))?;
            JsonConfig::from_str_named(&text, Path::new("<stdin>")).map_err(load_err)
        }
    }
}

fn methods(conn: &mut Conn<'_>, current: bool, aliases: bool) -> Result<BTreeSet<String>, Fail> {
    let v = conn.call(
        "rpc_get_methods",
        Some(json!({"current": current, "include_aliases": aliases})),
    )?;
    serde_json::from_value(v).map_err(|e| bad_answer("rpc_get_methods", e))
}

pub fn load_config(conn: &mut Conn<'_>, params: &Map<String, Value>) -> Result<(), Fail> {
    let aliases = params
        .get("include_aliases")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let cfg = read_config(params)?;
    let mut pending: Vec<Vec<MethodCall>> = cfg
        .subsystems
        .into_iter()
        .filter_map(|s| s.config)
        .filter(|c| !c.is_empty())
        .collect();
    let known = methods(conn, false, aliases)?;
    if pending.is_empty() {
        if known.contains("framework_start_init") {
            conn.call("framework_start_init", None)?;
        }
        return Ok(());
    }
    if let Some(c) = pending
        .iter()
        .flatten()
        .find(|c| !known.contains(&c.method))
    {
        return Err(Fail::Call(format!(
            "unknown method {} was included in the config",
            c.method
        )));
    }
    while !pending.is_empty() {
        let allowed = methods(conn, true, aliases)?;
        let mut progressed = false;
        for calls in pending.iter_mut() {
            let mut keep = Vec::new();
            for c in calls.drain(..) {
                if allowed.contains(&c.method) {
                    conn.call(&c.method, c.params)?;
                    progressed = true;
                } else {
                    keep.push(c);
                }
            }
            *calls = keep;
        }
        pending.retain(|c| !c.is_empty());
        if allowed.contains("framework_start_init") {
            conn.call("framework_start_init", None)?;
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    if !pending.is_empty() {
        println!("Some configs were skipped because the RPC state that can call them passed over.");
    }
    Ok(())
}
