//! `ferroplane-rpc`: the target's command-line client, used like SPDK's
//! scripts/rpc.py:
//!
//! ```text
//! ferroplane-rpc [-s SOCK] [-t TIMEOUT] [-r RETRIES] [-v] [--dry-run] METHOD [args]
//! ferroplane-rpc [global options] call METHOD ['<json params>']
//! ferroplane-rpc [global options] < script    (one command per line, as rpc.py)
//! ```
//!
//! Exit status: 0 success, 1 the call failed (error printed), 2 bad arguments.

mod args;
mod config_cmds;
mod script;
mod table;

use std::io::IsTerminal;
use std::time::Duration;

use jsonrpc::{Client, Error};
use serde_json::{Map, Value};

use table::{Print, Run};

/// Global options (before the method name).
pub struct Global {
    socket: String,
    timeout: f64,
    retries: u32,
    verbose: bool,
    dry_run: bool,
}

/// How a command ended.
pub enum Fail {
    /// Bad arguments: one line, exit 2.
    Usage(String),
    /// The call failed: message printed, exit 1.
    Call(String),
}

const USAGE: &str =
    "usage: ferroplane-rpc [-s SOCK] [-t TIMEOUT] [-r RETRIES] [-v] [--dry-run] METHOD [args]
       ferroplane-rpc [options] call METHOD ['<json params>']
       ferroplane-rpc [options] < script   (one command per line)
       ferroplane-rpc METHOD -h            (the method's arguments)";

fn parse_global(argv: &[String]) -> Result<(Global, usize), Fail> {
    let mut g = Global {
        socket: jsonrpc::DEFAULT_SOCKET.to_string(),
        timeout: 60.0,
        retries: 0,
        verbose: false,
        dry_run: false,
    };
    let mut i = 0;
    while i < argv.len() {
        let t = argv[i].as_str();
        let value = |i: usize| {
            argv.get(i + 1)
                .cloned()
                .ok_or_else(|| Fail::Usage(format!("argument {t}: expected one argument")))
        };
        match t {
            "-s" => g.socket = value(i)?,
            "-t" => {
                let v = value(i)?;
                g.timeout = v
                    .parse::<f64>()
                    .ok()
                    .filter(|t| *t > 0.0 && t.is_finite())
                    .ok_or_else(|| {
                        Fail::Usage(format!("argument -t: invalid timeout: '{v}' (seconds > 0)"))
                    })?;
            }
            "-r" => {
                let v = value(i)?;
                g.retries = v
                    .parse()
                    .map_err(|_| Fail::Usage(format!("argument -r: invalid int value: '{v}'")))?;
            }
            // rpc.py's TCP port: meaningless for a Unix socket, accepted for scripts.
            "-p" => {
                value(i)?;
            }
            "--verbose" => {
                value(i)?;
                g.verbose = true;
            }
            "-v" => {
                g.verbose = true;
                i += 1;
                continue;
            }
            "--dry-run" => {
                g.dry_run = true;
                i += 1;
                continue;
            }
            "-h" | "--help" => {
                println!("{USAGE}\n\nmethods:");
                for m in table::all() {
                    println!("  {:<32} {}", m.name, m.help);
                }
                std::process::exit(0);
            }
            _ if t.starts_with('-') => {
                return Err(Fail::Usage(format!("unrecognized argument: {t}")))
            }
            _ => return Ok((g, i)),
        }
        i += 2;
    }
    Ok((g, i))
}

/// A connection made on first use (dry runs and argument errors make none).
pub struct Conn<'a> {
    g: &'a Global,
    client: Option<Client>,
}

impl Conn<'_> {
    /// Calls `method`; an error answer becomes a printed rpc.py-style report.
    pub fn call(&mut self, method: &str, params: Option<Value>) -> Result<Value, Fail> {
        if self.client.is_none() {
            let timeout = Duration::from_secs_f64(self.g.timeout);
            let mut tries = 0;
            self.client = Some(loop {
                match Client::connect(&self.g.socket, timeout) {
                    Ok(c) => break c,
                    Err(_) if tries < self.g.retries => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    Err(e) => return Err(Fail::Call(e.to_string())),
                }
            });
        }
        let client = self
            .client
            .as_mut()
            .ok_or_else(|| Fail::Call("not connected".into()))?;
        if self.g.verbose {
            eprintln!(
                "request: {method} {}",
                params.as_ref().map(Value::to_string).unwrap_or_default()
            );
        }
        let shown = params.clone();
        match client.call(method, params) {
            Ok(v) => {
                if self.g.verbose {
                    eprintln!("response: {v}");
                }
                Ok(v)
            }
            Err(Error::Rpc { error, .. }) => {
                let mut req = match shown {
                    Some(Value::Object(m)) => m,
                    Some(other) => Map::from_iter([("params".to_string(), other)]),
                    None => Map::new(),
                };
                req.insert("method".into(), Value::from(method));
                Err(Fail::Call(format!(
                    "request:\n{}\nGot JSON-RPC error response\nresponse:\n{}",
                    pretty(&Value::Object(req)),
                    pretty(&serde_json::json!({"code": error.code, "message": error.message}))
                )))
            }
            Err(e) => Err(Fail::Call(e.to_string())),
        }
    }
}

pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn print_result(v: &Value, how: Print) {
    match (how, v) {
        (Print::Nothing, _) => {}
        (Print::Json, Value::String(s)) => println!("{s}"),
        (Print::Array, Value::Array(a)) => {
            let words: Vec<String> = a
                .iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            println!("{}", words.join(" "));
        }
        _ => println!("{}", pretty(v)),
    }
}

/// Runs one command line (method and its arguments).
pub fn run_command(g: &Global, conn: &mut Conn<'_>, words: &[String]) -> Result<(), Fail> {
    let Some(method) = words.first() else {
        return Err(Fail::Usage("no method given".into()));
    };
    if method == "call" {
        let Some(name) = words.get(1) else {
            return Err(Fail::Usage(
                "argument METHOD: call needs a method name".into(),
            ));
        };
        let params = match words.get(2) {
            None => None,
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(v @ (Value::Object(_) | Value::Array(_))) => Some(v),
                Ok(_) => {
                    return Err(Fail::Usage(
                        "argument PARAMS: must be a JSON object or array".into(),
                    ))
                }
                Err(e) => return Err(Fail::Usage(format!("argument PARAMS: invalid JSON: {e}"))),
            },
        };
        if let Some(extra) = words.get(3) {
            return Err(Fail::Usage(format!("unrecognized arguments: {extra}")));
        }
        return send(g, conn, name, params, Print::Dict);
    }
    let Some(spec) = table::find(method) else {
        return Err(Fail::Usage(format!(
            "argument METHOD: unknown method '{method}' (see -h; any method: ferroplane-rpc call {method} '<json>')"
        )));
    };
    let flat = match args::parse(spec.args, &words[1..]) {
        Ok(Some(f)) => f,
        Ok(None) => {
            print!("{}", args::usage(spec.name, spec.help, spec.args));
            return Ok(());
        }
        Err(e) => return Err(Fail::Usage(format!("{method}: error: {}", e.0))),
    };
    let mut flat = flat;
    if let Some(f) = spec.finish {
        f(&mut flat).map_err(|e| Fail::Usage(format!("{method}: error: {e}")))?;
    }
    let params = args::nest(flat);
    match spec.run {
        Run::Call => {
            let p = (!params.is_empty()).then_some(Value::Object(params));
            send(g, conn, method, p, spec.print)
        }
        Run::SaveConfig => config_cmds::save_config(conn, &params),
        Run::LoadConfig => config_cmds::load_config(conn, &params),
    }
}

fn send(
    g: &Global,
    conn: &mut Conn<'_>,
    method: &str,
    params: Option<Value>,
    print: Print,
) -> Result<(), Fail> {
    if g.dry_run {
        let mut req = serde_json::json!({"method": method});
        if let Some(p) = params {
            req["params"] = p;
        }
        println!("Request:\n{}", pretty(&req));
        return Ok(());
    }
    let v = conn.call(method, params)?;
    print_result(&v, print);
    Ok(())
}

fn finish(r: Result<(), Fail>) -> ! {
    match r {
        Ok(()) => std::process::exit(0),
        Err(Fail::Usage(msg)) => {
            eprintln!("ferroplane-rpc: {msg}");
            std::process::exit(2)
        }
        Err(Fail::Call(msg)) => {
            eprintln!("{msg}");
            std::process::exit(1)
        }
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (g, at) = match parse_global(&argv) {
        Ok(x) => x,
        Err(e) => finish(Err(e)),
    };
    let mut conn = Conn {
        g: &g,
        client: None,
    };
    if at >= argv.len() {
        if std::io::stdin().is_terminal() {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
        finish(script::run(&g, &mut conn));
    }
    finish(run_command(&g, &mut conn, &argv[at..]))
}
