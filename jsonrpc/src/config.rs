//! SPDK's JSON config format: `{"subsystems": [{"subsystem": NAME, "config":
//! [{"method": M, "params": {..}}, ..] or null}, ..]}`, as written by
//! `save_config` and read by `load_config` and the target's config option.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;

/// A whole config file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JsonConfig {
    pub subsystems: Vec<SubsystemConfig>,
}

/// One subsystem's calls, in the order they are to be replayed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubsystemConfig {
    pub subsystem: String,
    /// `null` in the file for a subsystem with nothing to configure.
    pub config: Option<Vec<MethodCall>>,
}

/// One recorded RPC call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodCall {
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

impl JsonConfig {
    /// Parses a config from text; `path` names it in errors.
    pub fn from_str_named(text: &str, path: &Path) -> Result<JsonConfig, Error> {
        serde_json::from_str(text).map_err(|source| Error::ConfigParse {
            path: path.into(),
            line: source.line(),
            column: source.column(),
            source,
        })
    }

    /// Reads and parses the config file at `path`.
    pub fn load(path: &Path) -> Result<JsonConfig, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.into(),
            source,
        })?;
        Self::from_str_named(&text, path)
    }

    /// The config as pretty JSON with `indent` spaces (SPDK's save_config
    /// default is 2), a trailing newline, fields in a stable order (struct
    /// order; params keys sorted unless serde_json keeps insertion order).
    pub fn to_string_indent(&self, indent: usize) -> String {
        let pad = vec![b' '; indent];
        let fmt = serde_json::ser::PrettyFormatter::with_indent(&pad);
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        // Serialising plain data into a Vec cannot fail.
        let _ = self.serialize(&mut ser);
        out.push(b'\n');
        String::from_utf8(out).unwrap_or_default()
    }

    /// Writes the config to `path` (pretty, 2-space indent).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        std::fs::write(path, self.to_string_indent(2)).map_err(|source| Error::ConfigWrite {
            path: path.into(),
            source,
        })
    }

    /// Every call in file order, with its subsystem.
    pub fn calls(&self) -> impl Iterator<Item = (&str, &MethodCall)> {
        self.subsystems.iter().flat_map(|s| {
            s.config
                .iter()
                .flatten()
                .map(move |c| (s.subsystem.as_str(), c))
        })
    }
}
