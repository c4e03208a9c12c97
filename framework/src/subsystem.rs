//! Subsystems (SPDK's `spdk_subsystem`): named parts of an application (bdev, nvmf,
//! vhost, ...) that initialise in dependency order, finish in reverse, and describe their
//! state as RPC calls for `save_config`.
//!
//! Adding one is one call: [`crate::app::App::add_subsystem`]. Init and fini are
//! asynchronous (a subsystem may send messages and wait for answers): each gets a
//! [`Done`] to complete, from any thread; the next subsystem starts on the app thread
//! once it is completed. A failed init stops the sequence and the subsystems already
//! initialised are finished in reverse.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::thread::ThreadHandle;

/// One `{"method": .., "params": ..}` entry of a saved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigCall {
    /// RPC method.
    pub method: String,
    /// Its parameters.
    pub params: Option<Value>,
}

/// Completion of an asynchronous init or fini.
pub struct Done(Box<dyn FnOnce(std::result::Result<(), String>) + Send>);

impl Done {
    pub(crate) fn new<F: FnOnce(std::result::Result<(), String>) + Send + 'static>(f: F) -> Done {
        Done(Box::new(f))
    }

    /// Report success.
    pub fn ok(self) {
        (self.0)(Ok(()))
    }

    /// Report failure.
    pub fn fail(self, why: impl Into<String>) {
        (self.0)(Err(why.into()))
    }

    /// Report a result.
    pub fn complete(self, r: std::result::Result<(), String>) {
        (self.0)(r)
    }
}

/// The RPC methods a subsystem adds (registered before any subsystem initialises).
pub trait RpcRegistrar {
    /// Register `method`; `startup` makes it callable before init (with
    /// `--wait-for-rpc` and from a `--json` file's startup phase) as well as after.
    fn register(
        &self,
        method: &str,
        startup: bool,
        handler: Box<dyn Fn(jsonrpc::Request) + Send + Sync>,
    ) -> Result<()>;
}

/// A part of the application with an orderly start and stop.
pub trait Subsystem: Send + Sync + 'static {
    /// Unique name (the `subsystem` field of a saved configuration).
    fn name(&self) -> &str;
    /// Names of subsystems that must be initialised first.
    fn depends_on(&self) -> Vec<String> {
        Vec::new()
    }
    /// Register RPC methods.
    fn register_rpcs(&self, _rpc: &dyn RpcRegistrar) -> Result<()> {
        Ok(())
    }
    /// Initialise (on the app thread); complete `done` when finished.
    fn init(&self, done: Done) {
        done.ok()
    }
    /// Finish (on the app thread, in reverse order); complete `done` when finished.
    fn fini(&self, done: Done) {
        done.ok()
    }
    /// The calls that recreate the current state, in order.
    fn write_config(&self) -> Vec<ConfigCall> {
        Vec::new()
    }
}

/// Registered subsystems.
#[derive(Default, Clone)]
pub struct Subsystems {
    list: Vec<Arc<dyn Subsystem>>,
}

impl Subsystems {
    /// Add one; a second subsystem with the same name is refused.
    pub fn add(&mut self, s: Arc<dyn Subsystem>) -> Result<()> {
        if self.list.iter().any(|x| x.name() == s.name()) {
            return Err(Error::Subsystem(format!(
                "subsystem '{}' registered twice",
                s.name()
            )));
        }
        self.list.push(s);
        Ok(())
    }

    /// All, in registration order.
    pub fn all(&self) -> &[Arc<dyn Subsystem>] {
        &self.list
    }

    /// Dependency order (dependencies first; otherwise registration order). Unknown
    /// dependencies and cycles are refused, naming the subsystems involved.
    pub fn ordered(&self) -> Result<Vec<Arc<dyn Subsystem>>> {
        let by_name: HashMap<&str, usize> = self
            .list
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name(), i))
            .collect();
        let deps: Vec<Vec<usize>> = self
            .list
            .iter()
            .map(|s| {
                s.depends_on()
                    .iter()
                    .map(|d| {
                        by_name.get(d.as_str()).copied().ok_or_else(|| {
                            Error::Subsystem(format!(
                                "subsystem '{}' depends on unknown subsystem '{d}'",
                                s.name()
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<_>>()?;
        let mut out = Vec::new();
        let mut done = HashSet::new();
        while out.len() < self.list.len() {
            let next = (0..self.list.len())
                .find(|i| !done.contains(i) && deps[*i].iter().all(|d| done.contains(d)));
            match next {
                Some(i) => {
                    done.insert(i);
                    out.push(self.list[i].clone());
                }
                None => {
                    let stuck: Vec<&str> = (0..self.list.len())
                        .filter(|i| !done.contains(i))
                        .map(|i| self.list[i].name())
                        .collect();
                    return Err(Error::Subsystem(format!(
                        "dependency cycle among: {}",
                        stuck.join(", ")
                    )));
                }
            }
        }
        Ok(out)
    }
}

/// Initialise `list` in order on `app`, then call `done` with the number initialised
/// and the first error (if any).
pub(crate) fn init_all(
    app: ThreadHandle,
    list: Arc<[Arc<dyn Subsystem>]>,
    done: Box<dyn FnOnce(usize, Option<Error>) + Send>,
) {
    init_from(app, list, 0, done);
}

fn init_from(
    app: ThreadHandle,
    list: Arc<[Arc<dyn Subsystem>]>,
    i: usize,
    done: Box<dyn FnOnce(usize, Option<Error>) + Send>,
) {
    let Some(s) = list.get(i).cloned() else {
        done(i, None);
        return;
    };
    let app2 = app.clone();
    let name = s.name().to_string();
    s.init(Done::new(move |r| {
        let app3 = app2.clone();
        let _ = app2.send_reliable(Box::new(move || match r {
            Ok(()) => init_from(app3, list, i + 1, done),
            Err(why) => done(i, Some(Error::SubsystemInit { name, why })),
        }));
    }));
}

/// Finish the first `n` of `list` in reverse on `app`, then call `done`.
pub(crate) fn fini_all(
    app: ThreadHandle,
    list: Arc<[Arc<dyn Subsystem>]>,
    n: usize,
    done: Box<dyn FnOnce() + Send>,
) {
    let Some(i) = n.checked_sub(1) else {
        done();
        return;
    };
    let s = list[i].clone();
    let app2 = app.clone();
    let name = s.name().to_string();
    s.fini(Done::new(move |r| {
        if let Err(why) = r {
            eal::log_err!("subsystem '{name}' failed to finish: {why}");
        }
        let app3 = app2.clone();
        let _ = app2.send_reliable(Box::new(move || fini_all(app3, list, i, done)));
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    struct S(&'static str, &'static [&'static str]);
    impl Subsystem for S {
        fn name(&self) -> &str {
            self.0
        }
        fn depends_on(&self) -> Vec<String> {
            self.1.iter().map(|s| s.to_string()).collect()
        }
    }

    fn names(s: &Subsystems) -> Result<Vec<String>> {
        Ok(s.ordered()?.iter().map(|x| x.name().to_string()).collect())
    }

    #[test]
    fn dependency_order_cycles_and_unknowns() {
        let mut s = Subsystems::default();
        s.add(Arc::new(S("nvmf", &["bdev", "sock"]))).unwrap();
        s.add(Arc::new(S("bdev", &["accel"]))).unwrap();
        s.add(Arc::new(S("sock", &[]))).unwrap();
        s.add(Arc::new(S("accel", &[]))).unwrap();
        assert_eq!(names(&s).unwrap(), ["sock", "accel", "bdev", "nvmf"]);
        assert!(s.add(Arc::new(S("sock", &[]))).is_err());
        let mut c = Subsystems::default();
        c.add(Arc::new(S("a", &["b"]))).unwrap();
        c.add(Arc::new(S("b", &["a"]))).unwrap();
        let e = names(&c).unwrap_err().to_string();
        assert!(
            e.contains("cycle") && e.contains('a') && e.contains('b'),
            "{e}"
        );
        let mut u = Subsystems::default();
        u.add(Arc::new(S("a", &["zz"]))).unwrap();
        assert!(names(&u).unwrap_err().to_string().contains("'zz'"));
    }
}
