//! Listening sockets (SPDK's TCP transport `listen`/acceptor): one per address,
//! shared by every subsystem listening there, watched by an interrupt on the app
//! thread (epoll wakes a sleeping reactor; a busy one looks every millisecond).
//! Accepted connections go to the poll groups round robin.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use framework::interrupt::{self, Interrupt};
use framework::PollStatus;

use super::tgt;
use crate::error::{Error, Result};
use crate::sys;

pub(crate) struct Listener {
    pub(crate) addr: SocketAddr,
    _sock: Arc<TcpListener>,
    intr: Interrupt,
}

/// Listen on `addr` unless already listening (on the app thread).
pub(crate) fn ensure(addr: SocketAddr) -> Result<()> {
    let t = tgt();
    if t.listening_on(addr) {
        return Ok(());
    }
    let sock = Arc::new(sys::listen(addr).map_err(|e| Error::Io {
        what: format!("listen on {addr}"),
        source: e,
    })?);
    let s2 = sock.clone();
    let intr = interrupt::register("nvmf_tcp_acceptor", sock.as_raw_fd(), move || {
        let mut busy = PollStatus::Idle;
        loop {
            match s2.accept() {
                Ok((s, peer)) => {
                    busy = PollStatus::Busy;
                    let t = tgt();
                    let Some(opts) = t.transport() else { continue };
                    match t.pick_group() {
                        Some(g) => {
                            t.accepted.fetch_add(1, Ordering::Relaxed);
                            g.add(s, opts);
                        }
                        None => eal::log_err!("nvmf: no poll group for {peer}"),
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    eal::log_err!("nvmf: accept on {addr} failed: {e}");
                    break;
                }
            }
        }
        busy
    })
    .map_err(|e| Error::Framework {
        what: "watch a listening socket",
        source: Box::new(e),
    })?;
    t.listeners
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Listener {
            addr,
            _sock: sock,
            intr,
        });
    eal::log_notice!("nvmf: NVMe/TCP target listening on {addr}");
    Ok(())
}

/// Stop every listener (on the app thread).
pub(crate) fn stop_all() {
    let l = std::mem::take(&mut *tgt().listeners.lock().unwrap_or_else(|e| e.into_inner()));
    for x in l {
        let _ = x.intr.unregister();
    }
}
