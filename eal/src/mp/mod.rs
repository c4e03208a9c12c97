//! Multi-process IPC: named messages between the primary and its secondaries, in the
//! model of DPDK's `rte_mp_*` (lib/eal/common/eal_common_proc.c).
//!
//! # Channel
//!
//! Every process of a group binds one Unix `SOCK_DGRAM` socket in the runtime directory
//! ([`crate::runtime`]): the primary `mp_socket`, each secondary `mp_socket_<pid>`. A
//! background thread per process (`fp-mp`) receives on it and dispatches. Sockets are
//! removed when the EAL is torn down; a secondary's socket left behind (a crash, or an
//! EAL that was never torn down) is removed by the primary when it lists its peers and
//! the pid is dead (and by the next primary's start-up clean-up).
//!
//! # Messages
//!
//! A [`Message`] is a name (the action to run on the receiver), a parameter blob and up
//! to [`MAX_FDS`] file descriptors passed with `SCM_RIGHTS` (the receiver gets its own
//! descriptors to the same open files). Limits are DPDK's (lib/eal/include/rte_eal.h,
//! v22.11): `RTE_MP_MAX_NAME_LEN` 64 bytes including the NUL ([`MAX_NAME_LEN`]),
//! `RTE_MP_MAX_PARAM_LEN` 256 bytes ([`MAX_PARAM_LEN`]), `RTE_MP_MAX_FD_NUM` 8
//! ([`MAX_FDS`]). One message is one datagram with a fixed 352-byte wire header (magic,
//! version, kind, sequence number, sender pid); malformed datagrams are dropped.
//!
//! # Who talks to whom
//!
//! As in DPDK: a secondary's [`Mp::sendmsg`] / [`Mp::request_sync`] go to the primary;
//! the primary's go to every live secondary. [`Mp::sendmsg_to`] addresses one peer (for
//! instance the [`Peer`] a handler was given).
//!
//! # Handlers and threads
//!
//! * [`Mp::action_register`] binds a name to a handler `Fn(&Message, &Peer) ->
//!   Option<Message>`. Handlers run on the process's `fp-mp` thread, one at a time, in
//!   arrival order; a slow handler delays every later message of this process.
//! * For a one-way message the return value is ignored. For a request, `Some(reply)` is
//!   sent back; `None`, an unknown action or a handler panic (caught and logged) sends an
//!   "ignore" answer, so the requester does not wait for it and does not count it.
//! * [`Mp::request_sync`] sends a request to each peer, then waits (condition variable)
//!   until every peer that received it answered or the timeout passed; replies that
//!   arrive later are dropped. It may be called from any thread **except** the `fp-mp`
//!   thread itself (a handler waiting for replies that only it could receive would
//!   deadlock): there it fails with [`Error::Ipc`].
//! * Every method takes `&self`; [`Mp`] is `Send + Sync`.
//!
//! # Failure
//!
//! A send to a socket nobody listens on any more (`ECONNREFUSED`, `ENOENT`) is not an
//! error for broadcasts: the peer is skipped and not counted in [`Replies::nb_sent`].
//! Addressed sends ([`Mp::sendmsg_to`]) report it.

mod ipc;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub use ipc::Mp;

/// Longest message name, including the terminating NUL (DPDK `RTE_MP_MAX_NAME_LEN`).
pub const MAX_NAME_LEN: usize = 64;
/// Longest parameter blob (DPDK `RTE_MP_MAX_PARAM_LEN`).
pub const MAX_PARAM_LEN: usize = 256;
/// Most file descriptors per message (DPDK `RTE_MP_MAX_FD_NUM`).
pub const MAX_FDS: usize = crate::sys::ipc::MAX_FDS;

/// File name of the primary's socket in the runtime directory.
pub const PRIMARY_SOCKET: &str = "mp_socket";

/// File name of a secondary's socket.
pub fn secondary_socket(pid: u32) -> String {
    format!("{PRIMARY_SOCKET}_{pid}")
}

/// One IPC message: name, parameter bytes and file descriptors.
#[derive(Debug)]
pub struct Message {
    name: String,
    param: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Message {
    /// A message for action `name` (1..=63 bytes, no NUL) with no parameter.
    pub fn new(name: &str) -> Result<Message> {
        if name.is_empty() || name.len() >= MAX_NAME_LEN || name.contains('\0') {
            return Err(Error::BadMessage {
                name: name.into(),
                why: format!("name must be 1..={} bytes without NUL", MAX_NAME_LEN - 1),
            });
        }
        Ok(Message {
            name: name.into(),
            param: Vec::new(),
            fds: Vec::new(),
        })
    }

    /// Set the parameter (at most [`MAX_PARAM_LEN`] bytes).
    pub fn with_param(mut self, param: &[u8]) -> Result<Message> {
        if param.len() > MAX_PARAM_LEN {
            return Err(Error::BadMessage {
                name: self.name,
                why: format!("param is {} bytes, at most {MAX_PARAM_LEN}", param.len()),
            });
        }
        self.param = param.to_vec();
        Ok(self)
    }

    /// Attach a file descriptor (at most [`MAX_FDS`]); it is sent with `SCM_RIGHTS`.
    pub fn push_fd(&mut self, fd: OwnedFd) -> Result<()> {
        if self.fds.len() >= MAX_FDS {
            return Err(Error::BadMessage {
                name: self.name.clone(),
                why: format!("more than {MAX_FDS} file descriptors"),
            });
        }
        self.fds.push(fd);
        Ok(())
    }

    /// [`push_fd`](Self::push_fd) with a duplicate of a borrowed descriptor.
    pub fn push_fd_dup(&mut self, fd: impl AsFd) -> Result<()> {
        let owned = fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io("duplicate", "file descriptor", e))?;
        self.push_fd(owned)
    }

    /// The action name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parameter bytes.
    pub fn param(&self) -> &[u8] {
        &self.param
    }

    /// The descriptors (received ones are owned by this message and closed with it).
    pub fn fds(&self) -> &[OwnedFd] {
        &self.fds
    }

    /// Take the descriptors out of the message.
    pub fn take_fds(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.fds)
    }

    pub(crate) fn from_parts(name: String, param: Vec<u8>, fds: Vec<OwnedFd>) -> Message {
        Message { name, param, fds }
    }
}

/// The other end of a message: its socket path and pid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    path: PathBuf,
    pid: i32,
}

impl Peer {
    pub(crate) fn new(path: PathBuf, pid: i32) -> Peer {
        Peer { path, pid }
    }

    /// Socket path of the peer.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Pid of the peer (0 if not known: the primary's socket before it has spoken).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// True if this is the primary's socket.
    pub fn is_primary(&self) -> bool {
        self.path.file_name().is_some_and(|n| n == PRIMARY_SOCKET)
    }
}

/// One answer to a request.
#[derive(Debug)]
pub struct Reply {
    /// The reply message.
    pub msg: Message,
    /// Who sent it.
    pub peer: Peer,
}

/// The outcome of [`Mp::request_sync`] (DPDK's `struct rte_mp_reply`).
#[derive(Debug, Default)]
pub struct Replies {
    /// Peers the request was delivered to.
    pub nb_sent: usize,
    /// Replies received in time (peers that answered "ignore" are not in it).
    pub replies: Vec<Reply>,
    /// Peers that answered "ignore" (no handler, or the handler returned `None`).
    pub nb_ignored: usize,
}

impl Replies {
    /// Replies received.
    pub fn nb_received(&self) -> usize {
        self.replies.len()
    }

    /// True if every peer that got the request answered (reply or ignore) in time.
    pub fn complete(&self) -> bool {
        self.replies.len() + self.nb_ignored == self.nb_sent
    }
}
