//! Poll groups (SPDK's `spdk_nvmf_poll_group`): one framework thread per reactor,
//! each serving the connections handed to it. Its poller drains finished bdev I/O,
//! then asks its epoll set which sockets are ready; an interrupt on the same epoll
//! set wakes the reactor when it sleeps. A timed poller (every 100 ms) enforces
//! keep-alive, closes the queues of dead controllers and puts the bdev channels of
//! removed namespaces.

use std::collections::HashMap;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use framework::interrupt::{self, Interrupt};
use framework::{poller, PollStatus, Poller, ThreadHandle};

use super::completion::{GroupCtx, IoDone};
use super::conn::Conn;
use super::{now_ms, tgt, TransportOpts};
use crate::sys::{self, Epoll};

pub(crate) struct Group {
    conns: HashMap<u64, Conn>,
    ctx: GroupCtx,
    epoll: Epoll,
    events: Vec<(u64, u32)>,
    batch: Vec<IoDone>,
    pollers: Vec<Poller>,
    intr: Option<Interrupt>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A poll group as others see it: its thread and its state.
#[derive(Clone)]
pub(crate) struct GroupHandle {
    pub(crate) thread: ThreadHandle,
    pub(crate) inner: Arc<Mutex<Option<Group>>>,
}

impl GroupHandle {
    /// Hand an accepted socket to the group.
    pub(crate) fn add(&self, s: TcpStream, opts: TransportOpts) {
        let inner = self.inner.clone();
        let r = self.thread.send_msg(move || {
            if let Some(g) = lock(&inner).as_mut() {
                g.add(s, opts);
            }
        });
        if let Err(e) = r {
            eal::log_err!("nvmf: poll group gone, connection dropped: {e}");
        }
    }
}

/// Create the group on the current thread (its pollers and interrupt live here).
pub(crate) fn start() -> crate::Result<GroupHandle> {
    let me = framework::thread::current().ok_or(crate::Error::Framework {
        what: "start a poll group",
        source: Box::new(framework::Error::NotOnThread {
            what: "start a poll group",
        }),
    })?;
    let epoll = Epoll::new().map_err(|e| crate::Error::Io {
        what: "create a poll group's epoll set".into(),
        source: e,
    })?;
    let efd = epoll.fd();
    let inner: Arc<Mutex<Option<Group>>> = Arc::new(Mutex::new(Some(Group {
        conns: HashMap::new(),
        ctx: GroupCtx::new(),
        epoll,
        events: Vec::with_capacity(64),
        batch: Vec::new(),
        pollers: Vec::new(),
        intr: None,
    })));
    let fw = |what: &'static str| {
        move |e| crate::Error::Framework {
            what,
            source: Box::new(e),
        }
    };
    let (i1, i2, i3) = (inner.clone(), inner.clone(), inner.clone());
    let p = poller::register("nvmf_tcp_poll_group", 0, move || {
        lock(&i1).as_mut().map_or(PollStatus::Idle, Group::poll)
    })
    .map_err(fw("register the poll group poller"))?;
    let t = poller::register("nvmf_tcp_timer", 100_000, move || {
        lock(&i2).as_mut().map_or(PollStatus::Idle, Group::timer)
    })
    .map_err(fw("register the poll group timer"))?;
    let it = interrupt::register("nvmf_tcp_sockets", efd, move || {
        lock(&i3).as_mut().map_or(PollStatus::Idle, Group::poll)
    })
    .map_err(fw("register the poll group interrupt"))?;
    if let Some(g) = lock(&inner).as_mut() {
        g.pollers = vec![p, t];
        g.intr = Some(it);
    }
    Ok(GroupHandle { thread: me, inner })
}

/// Stop the group (on its thread): close every connection, put every channel.
pub(crate) fn stop(h: &GroupHandle) {
    let g = lock(&h.inner).take();
    if let Some(mut g) = g {
        for p in g.pollers.drain(..) {
            let _ = p.unregister();
        }
        if let Some(i) = g.intr.take() {
            let _ = i.unregister();
        }
        let ids: Vec<u64> = g.conns.keys().copied().collect();
        for id in ids {
            g.close(id, "target shutting down");
        }
        g.ctx.put_channels();
    }
}

impl Group {
    fn add(&mut self, s: TcpStream, opts: TransportOpts) {
        if let Err(e) = sys::prepare(&s) {
            eal::log_err!("nvmf: accepted socket not usable: {e}");
            return;
        }
        let c = match Conn::new(s, opts) {
            Ok(c) => c,
            Err(e) => {
                eal::log_err!("nvmf: accepted socket has no address: {e}");
                return;
            }
        };
        if let Err(e) = self.epoll.add(c.sock.as_raw_fd(), sys::IN, c.id) {
            eal::log_err!("nvmf: cannot watch a connection: {e}");
            return;
        }
        eal::log_debug!("nvmf: connection {} from {}", c.id, c.peer);
        self.conns.insert(c.id, c);
    }

    fn close(&mut self, id: u64, why: &str) {
        if let Some(mut c) = self.conns.remove(&id) {
            c.flush();
            let _ = self.epoll.remove(c.sock.as_raw_fd());
            let _ = c.sock.shutdown(std::net::Shutdown::Both);
            eal::log_info!("nvmf: connection from {} closed: {why}", c.peer);
            c.release();
            tgt().closed.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn poll(&mut self) -> PollStatus {
        let mut busy = false;
        std::mem::swap(&mut *lock(&self.ctx.done), &mut self.batch);
        for d in self.batch.drain(..) {
            busy = true;
            if let Some(c) = self.conns.get_mut(&d.conn) {
                c.complete_io(d);
            }
        }
        // One send per connection for all the replies of this batch.
        if busy {
            for c in self.conns.values_mut() {
                c.flush();
            }
        }
        if let Err(e) = self.epoll.poll(&mut self.events) {
            eal::log_err!("nvmf: epoll failed: {e}");
        }
        let mut evs = std::mem::take(&mut self.events);
        for &(id, ev) in &evs {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            if ev & sys::IN != 0 || ev & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                busy |= c.on_readable(&mut self.ctx);
            }
            c.flush();
        }
        evs.clear();
        self.events = evs;
        busy |= self.reap();
        if busy {
            PollStatus::Busy
        } else {
            PollStatus::Idle
        }
    }

    /// Close the connections that are closing; arm write interest where output waits.
    fn reap(&mut self) -> bool {
        let mut busy = false;
        let mut gone = Vec::new();
        for c in self.conns.values_mut() {
            if let Some(why) = &c.closing {
                gone.push((c.id, why.clone()));
                continue;
            }
            let want = c.tx_pending();
            if want != c.out_armed {
                let ev = if want { sys::IN | sys::OUT } else { sys::IN };
                if self.epoll.modify(c.sock.as_raw_fd(), ev, c.id).is_ok() {
                    c.out_armed = want;
                }
            }
        }
        for (id, why) in gone {
            busy = true;
            self.close(id, &why);
        }
        busy
    }

    fn timer(&mut self) -> PollStatus {
        let now = now_ms();
        for c in self.conns.values_mut() {
            c.check_timers(now);
        }
        self.reap();
        self.ctx.purge();
        PollStatus::Idle
    }
}
