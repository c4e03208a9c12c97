//! What a connection needs from its poll group while handling commands: the group's
//! bdev channels and its list of finished bdev I/O. A leaf below `conn`, `io` and
//! `group`, so the group can own connections that submit through it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bdev::BdevIoChannel;
use nvme::spec::Status;

use super::subsys::Namespace;
use super::CmdToken;

/// A finished bdev I/O, waiting in the group's list for its connection.
pub(crate) struct IoDone {
    pub(crate) conn: u64,
    pub(crate) cid: u16,
    pub(crate) status: Status,
    pub(crate) data: Vec<u8>,
    pub(crate) _token: CmdToken,
}

/// What a connection needs from its group while handling commands.
pub(crate) struct GroupCtx {
    channels: HashMap<u64, (Arc<Namespace>, BdevIoChannel)>,
    pub(crate) done: Arc<Mutex<Vec<IoDone>>>,
}

impl GroupCtx {
    pub(crate) fn new() -> GroupCtx {
        GroupCtx {
            channels: HashMap::new(),
            done: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// This thread's channel to `ns` (made on first use).
    pub(crate) fn channel(&mut self, ns: &Arc<Namespace>) -> Option<&BdevIoChannel> {
        if ns.is_removed() {
            return None;
        }
        use std::collections::hash_map::Entry;
        match self.channels.entry(ns.key) {
            Entry::Occupied(e) => Some(&e.into_mut().1),
            Entry::Vacant(v) => match ns.desc.get_io_channel() {
                Ok(ch) => Some(&v.insert((ns.clone(), ch)).1),
                Err(e) => {
                    eal::log_err!("nvmf: no channel to bdev '{}': {e}", ns.bdev_name);
                    None
                }
            },
        }
    }

    /// Put every channel (the group is going).
    pub(crate) fn put_channels(&mut self) {
        self.channels.clear();
    }

    /// Put the channels of removed namespaces.
    pub(crate) fn purge(&mut self) {
        self.channels.retain(|_, (ns, _)| !ns.is_removed());
    }
}
