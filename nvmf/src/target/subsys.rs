//! Subsystems (SPDK's `spdk_nvmf_subsystem`): the discovery subsystem and NVM
//! subsystems with namespaces over bdevs, listen addresses and the host allow list.
//! Adding or removing a namespace bumps the subsystem's namespace generation and
//! records the NSID; each controller reads the changes since its host last read the
//! Changed Namespace List (see [`super::ctrlr`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bdev::{BdevEvent, Descriptor, Uuid};

use crate::error::{Error, Result};
use crate::spec::fabrics::DISCOVERY_NQN;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

static NEXT_NS_KEY: AtomicU64 = AtomicU64::new(1);

/// Namespace changes kept for controllers that have not read them yet; an older
/// reader is told the list overflowed (NVMe 1.4 section 5.14.1.4: the Changed
/// Namespace List holds 1024 NSIDs, else 0xffffffff first).
pub const CHANGED_NS_MAX: usize = 1024;

/// The namespace change record: generation `gen` is the number of changes so far,
/// `log` the last [`CHANGED_NS_MAX`] of them as (generation, NSID).
#[derive(Default)]
struct NsChanges {
    gen: u64,
    log: VecDeque<(u64, u32)>,
}

/// Namespaces changed after some generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedNs {
    /// The NSIDs, ascending, each once (at most [`CHANGED_NS_MAX`]; empty if
    /// `overflow`).
    pub nsids: Vec<u32>,
    /// More changes than the record holds.
    pub overflow: bool,
    /// The generation they bring the reader to.
    pub gen: u64,
}

/// A namespace: an open descriptor of its bdev.
pub struct Namespace {
    /// Namespace id (1-based).
    pub nsid: u32,
    /// The bdev.
    pub bdev_name: String,
    /// Its UUID (the bdev's unless given).
    pub uuid: Uuid,
    /// Block size in bytes.
    pub block_size: u32,
    /// Size in blocks.
    pub num_blocks: u64,
    /// Whether the bdev takes unmap (Dataset Management deallocate).
    pub unmap: bool,
    /// Whether the bdev takes write zeroes.
    pub write_zeroes: bool,
    /// Whether the bdev takes flush.
    pub flush: bool,
    pub(crate) desc: Descriptor,
    /// Process-unique key (poll groups cache a channel per key).
    pub(crate) key: u64,
    pub(crate) removed: AtomicBool,
}

impl Namespace {
    /// Whether the namespace was removed (its channels are being put).
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }
}

/// A host allowed to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Host NQN.
    pub nqn: String,
}

/// What `nvmf_create_subsystem` takes.
#[derive(Debug, Clone, Default)]
pub struct SubsysOpts {
    /// NQN.
    pub nqn: String,
    /// Serial number (20 ASCII characters at most).
    pub serial_number: String,
    /// Model number (40 at most).
    pub model_number: String,
    /// Any host may connect.
    pub allow_any_host: bool,
    /// Namespace limit (0: 32).
    pub max_namespaces: u32,
}

/// A subsystem.
pub struct Subsys {
    /// NQN.
    pub nqn: String,
    /// Serial number.
    pub serial: String,
    /// Model number.
    pub model: String,
    /// Namespace limit (Identify Controller NN).
    pub max_namespaces: u32,
    discovery: bool,
    allow_any_host: AtomicBool,
    hosts: Mutex<Vec<Host>>,
    ns: Mutex<Vec<Arc<Namespace>>>,
    listeners: Mutex<Vec<SocketAddr>>,
    deleted: AtomicBool,
    changes: Mutex<NsChanges>,
}

fn check_nqn(nqn: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::Invalid {
            what: "nqn",
            why: format!("'{nqn}': {why}"),
        })
    };
    if nqn.len() > 223 {
        return bad("longer than 223 bytes");
    }
    if !nqn.starts_with("nqn.") || nqn.len() < 12 {
        return bad("must start with 'nqn.yyyy-mm.' (NVMe 1.4 section 7.9)");
    }
    if !nqn.is_ascii() || nqn.chars().any(|c| c.is_ascii_control()) {
        return bad("must be printable ASCII");
    }
    Ok(())
}

fn check_ascii(what: &'static str, s: &str, max: usize) -> Result<()> {
    if s.len() > max || !s.bytes().all(|c| (0x20..0x7f).contains(&c)) {
        return Err(Error::Invalid {
            what,
            why: format!("'{s}' is not printable ASCII of at most {max} characters"),
        });
    }
    Ok(())
}

impl Subsys {
    /// The discovery subsystem (any host may use it).
    pub(crate) fn discovery() -> Subsys {
        Subsys {
            nqn: DISCOVERY_NQN.into(),
            serial: String::new(),
            model: String::new(),
            max_namespaces: 0,
            discovery: true,
            allow_any_host: AtomicBool::new(true),
            hosts: Mutex::new(Vec::new()),
            ns: Mutex::new(Vec::new()),
            listeners: Mutex::new(Vec::new()),
            deleted: AtomicBool::new(false),
            changes: Mutex::new(NsChanges::default()),
        }
    }

    /// An NVM subsystem (checked, not yet added to the target).
    pub fn new(o: SubsysOpts) -> Result<Subsys> {
        check_nqn(&o.nqn)?;
        if o.nqn == DISCOVERY_NQN {
            return Err(Error::Exists(format!("subsystem {}", o.nqn)));
        }
        let serial = if o.serial_number.is_empty() {
            "00000000000000000000".to_string()
        } else {
            o.serial_number
        };
        let model = if o.model_number.is_empty() {
            "Ferroplane NVMe-oF".to_string()
        } else {
            o.model_number
        };
        check_ascii("serial_number", &serial, 20)?;
        check_ascii("model_number", &model, 40)?;
        let max_namespaces = if o.max_namespaces == 0 {
            32
        } else {
            o.max_namespaces
        };
        if max_namespaces > 1024 {
            return Err(Error::Invalid {
                what: "max_namespaces",
                why: format!("{max_namespaces} is above 1024"),
            });
        }
        Ok(Subsys {
            nqn: o.nqn,
            serial,
            model,
            max_namespaces,
            discovery: false,
            allow_any_host: AtomicBool::new(o.allow_any_host),
            hosts: Mutex::new(Vec::new()),
            ns: Mutex::new(Vec::new()),
            listeners: Mutex::new(Vec::new()),
            deleted: AtomicBool::new(false),
            changes: Mutex::new(NsChanges::default()),
        })
    }

    /// Whether this is the discovery subsystem.
    pub fn is_discovery(&self) -> bool {
        self.discovery
    }

    /// Whether it was deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Whether any host may connect.
    pub fn allow_any_host(&self) -> bool {
        self.allow_any_host.load(Ordering::Acquire)
    }

    /// Let any host connect (or only listed ones).
    pub fn set_allow_any_host(&self, on: bool) {
        self.allow_any_host.store(on, Ordering::Release);
    }

    /// Add `nqn` to the allow list.
    pub fn add_host(&self, nqn: &str) -> Result<()> {
        check_nqn(nqn)?;
        let mut h = lock(&self.hosts);
        if h.iter().any(|x| x.nqn == nqn) {
            return Err(Error::Exists(format!("host {nqn} of {}", self.nqn)));
        }
        h.push(Host { nqn: nqn.into() });
        Ok(())
    }

    /// The allow list.
    pub fn hosts(&self) -> Vec<Host> {
        lock(&self.hosts).clone()
    }

    /// Whether `hostnqn` may connect.
    pub fn host_allowed(&self, hostnqn: &str) -> bool {
        self.allow_any_host() || lock(&self.hosts).iter().any(|h| h.nqn == hostnqn)
    }

    /// Listen addresses.
    pub fn listeners(&self) -> Vec<SocketAddr> {
        lock(&self.listeners).clone()
    }

    pub(crate) fn add_listener(&self, a: SocketAddr) -> Result<()> {
        let mut l = lock(&self.listeners);
        if l.contains(&a) {
            return Err(Error::Exists(format!("listener {a} of {}", self.nqn)));
        }
        l.push(a);
        Ok(())
    }

    /// Whether a host that reached us at `local` may use this subsystem (the
    /// discovery subsystem answers on every port).
    pub fn reachable_at(&self, local: SocketAddr) -> bool {
        self.discovery
            || lock(&self.listeners).iter().any(|l| {
                l.port() == local.port() && (l.ip().is_unspecified() || l.ip() == local.ip())
            })
    }

    /// The namespaces.
    pub fn namespaces(&self) -> Vec<Arc<Namespace>> {
        lock(&self.ns).clone()
    }

    /// Namespace `nsid`.
    pub fn namespace(&self, nsid: u32) -> Option<Arc<Namespace>> {
        lock(&self.ns).iter().find(|n| n.nsid == nsid).cloned()
    }

    /// Add a namespace over bdev `bdev_name` (on a framework thread: the descriptor's
    /// remove event arrives there and removes the namespace). `nsid` 0 picks the
    /// lowest free id.
    pub fn add_ns(self: &Arc<Self>, bdev_name: &str, nsid: u32, uuid: Option<Uuid>) -> Result<u32> {
        if self.discovery {
            return Err(Error::Invalid {
                what: "nqn",
                why: "the discovery subsystem has no namespaces".into(),
            });
        }
        let mut ns = lock(&self.ns);
        let nsid = if nsid == 0 {
            (1..=self.max_namespaces)
                .find(|i| !ns.iter().any(|n| n.nsid == *i))
                .ok_or_else(|| Error::Invalid {
                    what: "nsid",
                    why: format!(
                        "all {} namespaces of {} are used",
                        self.max_namespaces, self.nqn
                    ),
                })?
        } else {
            nsid
        };
        if nsid > self.max_namespaces {
            return Err(Error::Invalid {
                what: "nsid",
                why: format!("{nsid} is above max_namespaces {}", self.max_namespaces),
            });
        }
        if ns.iter().any(|n| n.nsid == nsid) {
            return Err(Error::Exists(format!("namespace {nsid} of {}", self.nqn)));
        }
        let weak: Weak<Subsys> = Arc::downgrade(self);
        let desc = bdev::open(bdev_name, true, move |ev| {
            if ev == BdevEvent::Remove {
                if let Some(s) = weak.upgrade() {
                    s.remove_ns(nsid);
                }
            }
        })
        .map_err(|e| Error::Bdev {
            what: format!("open bdev '{bdev_name}'"),
            source: Box::new(e),
        })?;
        let b = desc.bdev().clone();
        let info = b.info();
        let n = Namespace {
            nsid,
            bdev_name: info.name.clone(),
            uuid: uuid.unwrap_or(info.uuid),
            block_size: info.block_size,
            num_blocks: info.num_blocks,
            unmap: b.io_type_supported(bdev::IoType::Unmap),
            write_zeroes: b.io_type_supported(bdev::IoType::WriteZeroes),
            flush: b.io_type_supported(bdev::IoType::Flush),
            desc,
            key: NEXT_NS_KEY.fetch_add(1, Ordering::Relaxed),
            removed: AtomicBool::new(false),
        };
        ns.push(Arc::new(n));
        ns.sort_by_key(|n| n.nsid);
        drop(ns);
        self.note_ns_change(nsid);
        Ok(nsid)
    }

    /// Remove namespace `nsid`; its descriptor closes once the poll groups have put
    /// their channels.
    pub fn remove_ns(&self, nsid: u32) -> bool {
        let mut ns = lock(&self.ns);
        let Some(i) = ns.iter().position(|n| n.nsid == nsid) else {
            return false;
        };
        let n = ns.remove(i);
        n.removed.store(true, Ordering::Release);
        drop(ns);
        self.note_ns_change(nsid);
        true
    }

    fn note_ns_change(&self, nsid: u32) {
        let mut c = lock(&self.changes);
        c.gen += 1;
        let g = c.gen;
        c.log.push_back((g, nsid));
        if c.log.len() > CHANGED_NS_MAX {
            c.log.pop_front();
        }
    }

    /// Namespace changes so far (add or remove).
    pub fn ns_gen(&self) -> u64 {
        lock(&self.changes).gen
    }

    /// The namespaces changed after generation `since`.
    pub fn changed_since(&self, since: u64) -> ChangedNs {
        let c = lock(&self.changes);
        let kept_from = c.log.front().map_or(c.gen + 1, |&(g, _)| g);
        if since + 1 < kept_from {
            return ChangedNs {
                nsids: Vec::new(),
                overflow: true,
                gen: c.gen,
            };
        }
        let mut nsids: Vec<u32> = c
            .log
            .iter()
            .filter(|&&(g, _)| g > since)
            .map(|&(_, n)| n)
            .collect();
        nsids.sort_unstable();
        nsids.dedup();
        ChangedNs {
            nsids,
            overflow: false,
            gen: c.gen,
        }
    }

    pub(crate) fn shut_down(&self) {
        self.deleted.store(true, Ordering::Release);
        for n in std::mem::take(&mut *lock(&self.ns)) {
            n.removed.store(true, Ordering::Release);
        }
    }
}
