//! `--vdev` argument strings: `name,key=value,...`, parsed and checked for the driver
//! that takes them.

use crate::error::{Error, Result};

/// A parsed `--vdev` string: `name,key=value,key=value,...` (keys may repeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VdevArgs {
    pub name: String,
    pub kv: Vec<(String, String)>,
}

impl VdevArgs {
    /// Parse `s`. Empty items (a trailing comma) are ignored; an item without `=` is an
    /// error naming it.
    pub fn parse(s: &str) -> Result<VdevArgs> {
        let mut it = s.split(',');
        let name = it.next().unwrap_or("").trim().to_string();
        if name.is_empty() {
            return Err(Error::BadArg {
                dev: s.into(),
                key: "name".into(),
                value: String::new(),
                why: "empty device name".into(),
            });
        }
        let mut kv = Vec::new();
        for item in it {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let Some((k, v)) = item.split_once('=') else {
                return Err(Error::BadArg {
                    dev: name,
                    key: item.into(),
                    value: String::new(),
                    why: "expected key=value".into(),
                });
            };
            kv.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(VdevArgs { name, kv })
    }

    /// Refuse keys outside `valid`.
    pub fn check_keys(&self, valid: &[&str]) -> Result<()> {
        for (k, _) in &self.kv {
            if !valid.contains(&k.as_str()) {
                return Err(Error::UnknownKey {
                    dev: self.name.clone(),
                    key: k.clone(),
                    valid: if valid.is_empty() {
                        "none".into()
                    } else {
                        valid.join(", ")
                    },
                });
            }
        }
        Ok(())
    }

    /// Last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.kv
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.kv
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Parse `key` as a number in `lo..=hi` (decimal or 0x hex), `default` if absent.
    pub fn num(&self, key: &str, default: u64, lo: u64, hi: u64) -> Result<u64> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        let parsed = if let Some(h) = v.strip_prefix("0x") {
            u64::from_str_radix(h, 16)
        } else {
            v.parse::<u64>()
        };
        match parsed {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            Ok(_) => Err(self.bad(key, v, &format!("must be in {lo}..={hi}"))),
            Err(_) => Err(self.bad(key, v, "not a number")),
        }
    }

    /// Parse `key` as 0/1 (also true/false, yes/no).
    pub fn flag(&self, key: &str) -> Result<bool> {
        match self.get(key) {
            None => Ok(false),
            Some("1") | Some("true") | Some("yes") | Some("on") => Ok(true),
            Some("0") | Some("false") | Some("no") | Some("off") => Ok(false),
            Some(v) => Err(self.bad(key, v, "expected 0 or 1")),
        }
    }

    /// A [`Error::BadArg`] for `key`.
    pub fn bad(&self, key: &str, value: &str, why: &str) -> Error {
        Error::BadArg {
            dev: self.name.clone(),
            key: key.into(),
            value: value.into(),
            why: why.into(),
        }
    }
}
