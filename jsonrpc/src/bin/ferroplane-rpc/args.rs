//! The argument model of one method (a declarative list of positional and
//! flag arguments, as rpc.py declares them with argparse) and the parser that
//! turns a command line into the method's JSON params.
//!
//! Semantics follow argparse where scripts depend on them: `-x VALUE`,
//! `-xVALUE`, `--long VALUE`, `--long=VALUE`, `--` ends the options, a later
//! repeat of an option wins, a token like `-5` is a value (negative number).
//! One deliberate difference: rpc.py sends `false` for every `store_true`
//! flag not given; we leave the key out (every SPDK method reads a missing
//! boolean as false, and the params stay the ones the user wrote).

use serde_json::{Map, Number, Value};

/// How one argument's text becomes a JSON value.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A string value.
    Str,
    /// A base-10 integer value.
    Int,
    /// A floating-point value.
    Float,
    /// One of the listed strings.
    Choice(&'static [&'static str]),
    /// An integer among the listed ones.
    IntChoice(&'static [i64]),
    /// A comma-separated list of strings.
    List,
    /// Takes no value: sets `dest` to this boolean (argparse's store_true,
    /// store_false, or one side of a boolean pair such as `-e`/`-d`).
    Set(bool),
}

impl Kind {
    fn takes_value(self) -> bool {
        !matches!(self, Kind::Set(_))
    }
}

/// One argument. Positional when `names` is empty.
#[derive(Debug)]
pub struct Arg {
    /// Option spellings, e.g. `&["-b", "--name"]`.
    pub names: &'static [&'static str],
    /// Key in the params; `a.b` puts `b` in the object `a` (rpc.py's
    /// `group_as`). A key starting with `_` is input to the method's
    /// `finish` hook and is not sent.
    pub dest: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub help: &'static str,
}

/// A positional argument (required).
pub const fn pos(dest: &'static str, kind: Kind, help: &'static str) -> Arg {
    req(&[], dest, kind, help)
}

/// An optional positional argument (argparse `nargs="?"`).
pub const fn pos_opt(dest: &'static str, kind: Kind, help: &'static str) -> Arg {
    opt(&[], dest, kind, help)
}

/// An option.
pub const fn opt(
    names: &'static [&'static str],
    dest: &'static str,
    kind: Kind,
    help: &'static str,
) -> Arg {
    Arg {
        required: false,
        ..req(names, dest, kind, help)
    }
}

/// A required option.
pub const fn req(
    names: &'static [&'static str],
    dest: &'static str,
    kind: Kind,
    help: &'static str,
) -> Arg {
    Arg {
        names,
        dest,
        kind,
        required: true,
        help,
    }
}

/// A parse failure: the argument it concerns and why.
#[derive(Debug, PartialEq)]
pub struct ArgError(pub String);

/// A positional's name as shown: the last part of its dest.
fn pos_name(a: &Arg) -> &str {
    a.dest
        .trim_start_matches('_')
        .rsplit('.')
        .next()
        .unwrap_or(a.dest)
}

fn arg_label(a: &Arg) -> String {
    if a.names.is_empty() {
        pos_name(a).to_string()
    } else {
        a.names.join("/")
    }
}

fn convert(a: &Arg, text: &str) -> Result<Value, ArgError> {
    let bad = |what: &str| {
        ArgError(format!(
            "argument {}: invalid {what} value: '{text}'",
            arg_label(a)
        ))
    };
    Ok(match a.kind {
        Kind::Str => Value::from(text),
        Kind::Int => Value::from(text.trim().parse::<i64>().map_err(|_| bad("int"))?),
        Kind::Float => {
            let f = text.trim().parse::<f64>().map_err(|_| bad("float"))?;
            Value::Number(Number::from_f64(f).ok_or_else(|| bad("float"))?)
        }
        Kind::Choice(list) => {
            if !list.contains(&text) {
                return Err(ArgError(format!(
                    "argument {}: invalid choice: '{text}' (choose from {})",
                    arg_label(a),
                    list.join(", ")
                )));
            }
            Value::from(text)
        }
        Kind::IntChoice(list) => {
            let n = text.trim().parse::<i64>().map_err(|_| bad("int"))?;
            if !list.contains(&n) {
                let l: Vec<String> = list.iter().map(|n| n.to_string()).collect();
                return Err(ArgError(format!(
                    "argument {}: invalid choice: {n} (choose from {})",
                    arg_label(a),
                    l.join(", ")
                )));
            }
            Value::from(n)
        }
        Kind::List => Value::from(text.split(',').map(str::to_string).collect::<Vec<_>>()),
        Kind::Set(b) => Value::from(b),
    })
}

fn looks_negative_number(t: &str) -> bool {
    t.len() > 1 && t.starts_with('-') && t[1..].parse::<f64>().is_ok()
}

/// Parses `tokens` against `args` into a flat map keyed by `dest`.
/// `Ok(None)` means help was asked for.
pub fn parse(args: &[Arg], tokens: &[String]) -> Result<Option<Map<String, Value>>, ArgError> {
    let mut out = Map::new();
    let mut seen = vec![false; args.len()];
    let positionals: Vec<usize> = (0..args.len())
        .filter(|&i| args[i].names.is_empty())
        .collect();
    let mut next_pos = 0;
    let mut only_positional = false;
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].as_str();
        i += 1;
        if !only_positional && t == "--" {
            only_positional = true;
            continue;
        }
        if !only_positional && t.starts_with('-') && t != "-" && !looks_negative_number(t) {
            if t == "-h" || t == "--help" {
                return Ok(None);
            }
            // --long=value, -xVALUE, or a bare option name.
            let (name, inline) =
                if let Some((n, v)) = t.split_once('=').filter(|_| t.starts_with("--")) {
                    (n.to_string(), Some(v.to_string()))
                } else if !t.starts_with("--") && t.len() > 2 {
                    (t[..2].to_string(), Some(t[2..].to_string()))
                } else {
                    (t.to_string(), None)
                };
            let Some(k) = args.iter().position(|a| a.names.contains(&name.as_str())) else {
                return Err(ArgError(format!("unrecognized argument: {t}")));
            };
            let a = &args[k];
            let value = if a.kind.takes_value() {
                let text = match inline {
                    Some(v) => v,
                    None => {
                        let next = tokens
                            .get(i)
                            .filter(|n| !n.starts_with('-') || looks_negative_number(n));
                        let Some(next) = next else {
                            return Err(ArgError(format!(
                                "argument {}: expected one argument",
                                arg_label(a)
                            )));
                        };
                        i += 1;
                        next.clone()
                    }
                };
                convert(a, &text)?
            } else {
                if inline.is_some() {
                    return Err(ArgError(format!(
                        "argument {}: ignored explicit argument",
                        arg_label(a)
                    )));
                }
                convert(a, "")?
            };
            seen[k] = true;
            out.insert(a.dest.to_string(), value);
            continue;
        }
        let Some(&k) = positionals.get(next_pos) else {
            return Err(ArgError(format!("unrecognized arguments: {t}")));
        };
        next_pos += 1;
        seen[k] = true;
        out.insert(args[k].dest.to_string(), convert(&args[k], t)?);
    }
    let missing: Vec<String> = (0..args.len())
        .filter(|&k| args[k].required && !seen[k])
        .map(|k| arg_label(&args[k]))
        .collect();
    if !missing.is_empty() {
        return Err(ArgError(format!(
            "the following arguments are required: {}",
            missing.join(", ")
        )));
    }
    Ok(Some(out))
}

/// Turns the flat map into params: dotted keys become nested objects and
/// `_` keys (hook inputs) are dropped.
pub fn nest(flat: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in flat {
        if k.starts_with('_') {
            continue;
        }
        match k.split_once('.') {
            Some((outer, inner)) => {
                let slot = out
                    .entry(outer.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = slot {
                    m.insert(inner.to_string(), v);
                }
            }
            None => {
                out.insert(k, v);
            }
        }
    }
    out
}

/// A usage text for `-h`.
pub fn usage(method: &str, help: &str, args: &[Arg]) -> String {
    let mut s = format!("usage: ferroplane-rpc {method}");
    for a in args {
        let meta = pos_name(a).to_uppercase();
        let body = if a.names.is_empty() {
            pos_name(a).to_string()
        } else if a.kind.takes_value() {
            format!("{} {meta}", a.names[0])
        } else {
            a.names[0].to_string()
        };
        if a.required {
            s.push_str(&format!(" {body}"));
        } else {
            s.push_str(&format!(" [{body}]"));
        }
    }
    s.push_str(&format!("\n\n{help}\n"));
    if !args.is_empty() {
        s.push('\n');
    }
    for a in args {
        let label = if a.names.is_empty() {
            pos_name(a).to_string()
        } else {
            a.names.join(", ")
        };
        s.push_str(&format!("  {label:<32} {}\n", a.help));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARGS: &[Arg] = &[
        opt(&["-b", "--name"], "name", Kind::Str, ""),
        pos("_size", Kind::Float, ""),
        pos("block_size", Kind::Int, ""),
        opt(&["-d", "--flag"], "flag", Kind::Set(true), ""),
        opt(&["-t"], "addr.trtype", Kind::Choice(&["tcp", "rdma"]), ""),
        opt(&["--off"], "on", Kind::Set(false), ""),
    ];

    fn p(t: &[&str]) -> Result<Option<Map<String, Value>>, ArgError> {
        parse(ARGS, &t.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn forms() {
        let m = p(&["-bM0", "64", "--flag", "512", "-t", "tcp", "--off"])
            .unwrap()
            .unwrap();
        assert_eq!(
            Value::Object(nest(m)),
            json!({"name": "M0", "block_size": 512, "flag": true, "addr": {"trtype": "tcp"}, "on": false})
        );
        let m = p(&["--name=x", "--", "-1.5", "4"]).unwrap().unwrap();
        assert_eq!(m["_size"], json!(-1.5));
        assert_eq!(p(&["-h"]).unwrap(), None);
    }

    #[test]
    fn errors_name_the_argument() {
        assert!(p(&["64"]).unwrap_err().0.contains("required: block_size"));
        assert!(p(&["64", "x"])
            .unwrap_err()
            .0
            .contains("block_size: invalid int value: 'x'"));
        assert!(p(&["64", "1", "-b"])
            .unwrap_err()
            .0
            .contains("-b/--name: expected one argument"));
        assert!(p(&["64", "1", "-q"])
            .unwrap_err()
            .0
            .contains("unrecognized argument: -q"));
        assert!(p(&["64", "1", "3"])
            .unwrap_err()
            .0
            .contains("unrecognized arguments: 3"));
        assert!(p(&["64", "1", "-t", "fc"])
            .unwrap_err()
            .0
            .contains("invalid choice: 'fc'"));
    }
}
