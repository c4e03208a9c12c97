//! The method table: names, the states each method is allowed in, handlers
//! and aliases (SPDK keeps old names of renamed methods as deprecated aliases).

use std::collections::HashMap;
use std::ops::BitOr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use crate::error::{Error, RpcError};
use crate::request::Request;

/// The application's RPC state (SPDK's `SPDK_RPC_STARTUP` / `SPDK_RPC_RUNTIME`):
/// before `framework_start_init` the target is in `Startup`, after it in `Runtime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Startup = 0,
    Runtime = 1,
}

impl State {
    /// The error for a method called while the server is in this state: SPDK's code,
    /// and messages that begin as SPDK's do, so scripts that match on them keep working.
    pub fn refusal(self) -> RpcError {
        let msg = match self {
            State::Startup => {
                "Method may only be called after framework is initialized using \
                 framework_start_init RPC."
            }
            State::Runtime => {
                "Method may only be called before framework is initialized: start the \
                 target with --wait-for-rpc and call it before framework_start_init."
            }
        };
        RpcError::new(RpcError::INVALID_STATE, msg)
    }

    fn bit(self) -> u32 {
        match self {
            State::Startup => StateMask::STARTUP.0,
            State::Runtime => StateMask::RUNTIME.0,
        }
    }
}

/// A shared handle on the server's state, for handlers that change it (e.g.
/// `framework_start_init`) without holding the server itself (a handler
/// owning an `Arc<Server>` would be a reference cycle: the server would
/// never drop nor remove its socket file).
#[derive(Clone, Debug, Default)]
pub struct StateHandle(Arc<AtomicU8>);

impl StateHandle {
    /// Sets the state that methods are checked against.
    pub fn set(&self, state: State) {
        // Relaxed: the flag orders no other data; a request dispatched
        // concurrently with the change sees one state or the other.
        self.0.store(state as u8, Ordering::Relaxed);
    }

    /// The current state.
    pub fn get(&self) -> State {
        if self.0.load(Ordering::Relaxed) == State::Startup as u8 {
            State::Startup
        } else {
            State::Runtime
        }
    }
}

/// The set of states a method may be called in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StateMask(u32);

impl StateMask {
    pub const STARTUP: StateMask = StateMask(1 << 0);
    pub const RUNTIME: StateMask = StateMask(1 << 1);
    pub const ALL: StateMask = StateMask(Self::STARTUP.0 | Self::RUNTIME.0);

    /// Whether a method with this mask may be called in `state`.
    pub fn allows(self, state: State) -> bool {
        self.0 & state.bit() != 0
    }
}

impl BitOr for StateMask {
    type Output = StateMask;
    fn bitor(self, rhs: StateMask) -> StateMask {
        StateMask(self.0 | rhs.0)
    }
}

/// A method handler as stored: shared, callable from the polling thread.
pub type Handler = Arc<dyn Fn(Request) + Send + Sync>;

struct Entry {
    name: String,
    allowed: StateMask,
    handler: Handler,
    /// For an alias: the index of the method it names.
    alias_of: Option<usize>,
    /// An alias warns once on stderr when first called.
    warned: AtomicBool,
}

/// What a lookup found.
pub enum Lookup {
    Found {
        allowed: StateMask,
        handler: Handler,
    },
    NotFound,
}

/// Methods in registration order, with a name index.
#[derive(Default)]
pub struct Registry {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
}

impl Registry {
    pub fn register(
        &mut self,
        method: &str,
        allowed: StateMask,
        handler: Handler,
    ) -> Result<(), Error> {
        if method.is_empty() {
            return Err(Error::Register {
                method: method.into(),
                why: "empty name",
            });
        }
        if self.index.contains_key(method) {
            return Err(Error::Register {
                method: method.into(),
                why: "already registered",
            });
        }
        self.index.insert(method.into(), self.entries.len());
        self.entries.push(Entry {
            name: method.into(),
            allowed,
            handler,
            alias_of: None,
            warned: AtomicBool::new(false),
        });
        Ok(())
    }

    /// Makes `alias` another (deprecated) name of the existing method `method`.
    pub fn register_alias(&mut self, alias: &str, method: &str) -> Result<(), Error> {
        let Some(&base) = self.index.get(method) else {
            return Err(Error::Register {
                method: alias.into(),
                why: "aliased method does not exist",
            });
        };
        if self.entries[base].alias_of.is_some() {
            return Err(Error::Register {
                method: alias.into(),
                why: "cannot alias an alias",
            });
        }
        if alias.is_empty() || self.index.contains_key(alias) {
            return Err(Error::Register {
                method: alias.into(),
                why: "name empty or already registered",
            });
        }
        let (allowed, handler) = (
            self.entries[base].allowed,
            self.entries[base].handler.clone(),
        );
        self.index.insert(alias.into(), self.entries.len());
        self.entries.push(Entry {
            name: alias.into(),
            allowed,
            handler,
            alias_of: Some(base),
            warned: AtomicBool::new(false),
        });
        Ok(())
    }

    pub fn lookup(&self, method: &str) -> Lookup {
        let Some(&i) = self.index.get(method) else {
            return Lookup::NotFound;
        };
        let e = &self.entries[i];
        if let Some(base) = e.alias_of {
            // Relaxed: the flag only limits a warning to one print.
            if !e.warned.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "jsonrpc: method {} is deprecated, use {} instead",
                    e.name, self.entries[base].name
                );
            }
        }
        Lookup::Found {
            allowed: e.allowed,
            handler: e.handler.clone(),
        }
    }

    /// Names in registration order; aliases only if asked; only those allowed
    /// in `state` if one is given.
    pub fn names(&self, state: Option<State>, include_aliases: bool) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| include_aliases || e.alias_of.is_none())
            .filter(|e| state.is_none_or(|s| e.allowed.allows(s)))
            .map(|e| e.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h() -> Handler {
        Arc::new(|_r: Request| {})
    }

    #[test]
    fn masks_and_aliases() {
        let mut r = Registry::default();
        r.register("a", StateMask::STARTUP, h()).unwrap();
        r.register("b", StateMask::ALL, h()).unwrap();
        assert!(r.register("a", StateMask::ALL, h()).is_err());
        r.register_alias("old_b", "b").unwrap();
        assert!(r.register_alias("x", "old_b").is_err());
        assert!(r.register_alias("y", "missing").is_err());
        assert_eq!(r.names(None, false), ["a", "b"]);
        assert_eq!(r.names(None, true), ["a", "b", "old_b"]);
        assert_eq!(r.names(Some(State::Runtime), true), ["b", "old_b"]);
        assert!((StateMask::STARTUP | StateMask::RUNTIME) == StateMask::ALL);
        assert!(
            matches!(r.lookup("old_b"), Lookup::Found { allowed, .. } if allowed == StateMask::ALL)
        );
        assert!(matches!(r.lookup("zz"), Lookup::NotFound));
    }
}
