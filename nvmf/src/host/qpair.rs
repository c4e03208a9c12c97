//! An I/O queue of the initiator, one per bdev channel (so per submitting thread):
//! connected once with a blocking handshake (bounded by a timeout), then served by a
//! poller on its thread over the nonblocking socket. Reads take a transport SGL and
//! come back in C2HData; writes up to the in-capsule size go in the capsule, larger
//! ones after the controller's R2T in H2CData PDUs. A queue whose connection drops
//! fails its outstanding I/O and reconnects (every reconnect delay) once the
//! controller is back; I/O submitted meanwhile fails.
//!
//! Completions are collected under the queue's lock and delivered after it is
//! released: a completion callback may submit again (bdevperf does) on this queue.

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bdev::{BdevIo, IoStatus, IoType};
use framework::{poller, PollStatus, Poller};
use nvme::spec::{io_opc, Sqe, Status, DSM_ATTR_DEALLOCATE};

use super::ctrlr::HostCtrlr;
use super::setup::{connect, Queue};
use crate::codec::encode;
use crate::spec::fabrics::{set_sqe_sgl, SGL_INCAPSULE, SGL_TRANSPORT};
use crate::spec::pdu::{
    flags, C2hData, CapsuleCmd, CapsuleResp, CommonHeader, H2cData, PduType, R2t,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Req {
    io: BdevIo,
    buf: Vec<u8>,
    read: bool,
}

struct Live {
    q: Queue,
    tx: Vec<u8>,
    tx_off: usize,
    gen: u64,
}

type Slot = Arc<Mutex<Option<crate::Result<Live>>>>;

pub(crate) struct QpairState {
    ctrlr: Arc<HostCtrlr>,
    /// A connect under way on a helper thread (the handshake blocks; a reactor must
    /// not, it may be serving the very target we connect to).
    connecting: Option<Slot>,
    /// I/O submitted while connecting.
    queued: Vec<BdevIo>,
    nsid: u32,
    qid: u16,
    live: Option<Live>,
    reqs: Vec<Option<Req>>,
    free: Vec<u16>,
    failed: Vec<BdevIo>,
    /// Finished I/O, completed once the lock is released.
    done: Vec<(BdevIo, IoStatus)>,
    next_try: Instant,
}

/// Run `f` on the state, then complete what it finished, outside the lock.
fn with_state<R>(state: &Mutex<QpairState>, f: impl FnOnce(&mut QpairState) -> R) -> R {
    let (r, done) = {
        let mut s = lock(state);
        let r = f(&mut s);
        (r, std::mem::take(&mut s.done))
    };
    for (io, st) in done {
        io.complete(st);
    }
    r
}

/// A channel's queue (dropped on its thread: the poller goes, the socket closes, the
/// queue id returns).
pub(crate) struct Qpair {
    state: Arc<Mutex<QpairState>>,
    poller: Option<Poller>,
}

fn open_queue(c: &HostCtrlr, qid: u16) -> crate::Result<Live> {
    let gen = c.gen.load(Ordering::Acquire);
    let q = connect(
        &c.ep,
        qid,
        c.cntlid.load(Ordering::Acquire),
        c.info.sqsize,
        0,
        c.info.icd,
        Duration::from_secs(2),
    )?;
    crate::sys::prepare(&q.sock).map_err(|e| crate::Error::Io {
        what: "make an I/O queue nonblocking".into(),
        source: e,
    })?;
    q.sock
        .set_read_timeout(None)
        .and_then(|_| q.sock.set_write_timeout(None))
        .map_err(|e| crate::Error::Io {
            what: "clear socket timeouts".into(),
            source: e,
        })?;
    Ok(Live {
        q,
        tx: Vec::with_capacity(64 * 1024),
        tx_off: 0,
        gen,
    })
}

impl Qpair {
    /// Connect an I/O queue of `c` for namespace `nsid` on the current thread.
    pub(crate) fn new(c: Arc<HostCtrlr>, nsid: u32) -> Result<Qpair, String> {
        let qid = c.take_qid().ok_or_else(|| {
            format!(
                "controller {}: all {} I/O queues are in use",
                c.name, c.info.io_queues
            )
        })?;
        let depth = usize::from(c.info.sqsize);
        let state = Arc::new(Mutex::new(QpairState {
            ctrlr: c.clone(),
            connecting: None,
            queued: Vec::new(),
            nsid,
            qid,
            live: None,
            reqs: (0..depth).map(|_| None).collect(),
            free: (0..depth as u16).rev().collect(),
            failed: Vec::new(),
            done: Vec::new(),
            next_try: Instant::now(),
        }));
        lock(&state).start_connect();
        let s2 = state.clone();
        // Keep the reactor awake: replies arrive on a socket this poller reads.
        let opts = poller::PollerOpts { keep_awake: true };
        let poller = poller::register_with("nvme_tcp_qpair", 0, opts, move || {
            with_state(&s2, QpairState::poll)
        })
        .map_err(|e| {
            c.put_qid(qid);
            e.to_string()
        })?;
        Ok(Qpair {
            state,
            poller: Some(poller),
        })
    }

    /// Start `io`.
    pub(crate) fn submit(&self, io: BdevIo) {
        with_state(&self.state, |s| s.submit(io));
    }
}

impl Drop for Qpair {
    fn drop(&mut self) {
        if let Some(p) = self.poller.take() {
            let _ = p.unregister();
        }
        with_state(&self.state, |s| {
            s.drop_conn(IoStatus::Aborted);
            let q = std::mem::take(&mut s.queued);
            s.failed.extend(q);
            for io in std::mem::take(&mut s.failed) {
                s.done.push((io, IoStatus::Failed));
            }
            s.ctrlr.put_qid(s.qid);
        });
    }
}

impl QpairState {
    fn drop_conn(&mut self, st: IoStatus) {
        self.live = None;
        for r in self.reqs.iter_mut() {
            if let Some(r) = r.take() {
                self.failed.push(r.io);
            }
        }
        let _ = st;
        self.free = (0..self.reqs.len() as u16).rev().collect();
        self.next_try = Instant::now() + self.ctrlr.reconnect_delay;
    }

    fn start_connect(&mut self) {
        let slot: Slot = Arc::new(Mutex::new(None));
        let (s2, c, qid) = (slot.clone(), self.ctrlr.clone(), self.qid);
        let r = std::thread::Builder::new()
            .name("nvme_tcp_connect".into())
            .spawn(move || {
                let r = open_queue(&c, qid);
                *lock(&s2) = Some(r);
            });
        match r {
            Ok(_) => self.connecting = Some(slot),
            Err(e) => {
                eal::log_err!("nvme tcp: no thread to connect a queue: {e}");
                self.next_try = Instant::now() + self.ctrlr.reconnect_delay;
            }
        }
    }

    /// A connect finished: serve, or fail what waited and retry later.
    fn connect_done(&mut self) -> bool {
        let Some(slot) = &self.connecting else {
            return false;
        };
        let Some(r) = lock(slot).take() else {
            return false;
        };
        self.connecting = None;
        match r {
            Ok(l) => {
                eal::log_info!(
                    "nvme tcp {}: I/O queue {} connected (header digest {}, data digest {})",
                    self.ctrlr.name,
                    self.qid,
                    on_off(l.q.framing.hdgst),
                    on_off(l.q.framing.ddgst)
                );
                self.live = Some(l);
                for io in std::mem::take(&mut self.queued) {
                    self.submit(io);
                }
            }
            Err(e) => {
                eal::log_info!(
                    "nvme tcp {}: I/O queue {} connect failed: {e}",
                    self.ctrlr.name,
                    self.qid
                );
                self.failed.append(&mut self.queued);
                self.next_try = Instant::now() + self.ctrlr.reconnect_delay;
            }
        }
        true
    }

    fn submit(&mut self, io: BdevIo) {
        let Some(live) = self.live.as_mut() else {
            if self.connecting.is_some() {
                self.queued.push(io);
            } else {
                self.failed.push(io);
            }
            return;
        };
        let Some(cid) = self.free.pop() else {
            // Out of command slots: the bdev layer queues it and tries again.
            self.done.push((io, IoStatus::NoMem));
            return;
        };
        let bs = u64::from(io.block_size());
        let (slba, nlb) = (io.offset_blocks(), io.num_blocks());
        let len = io.len_bytes();
        let (hd, dd) = (live.q.framing.hdgst, live.q.framing.ddgst);
        let mut sqe;
        let mut inline: Vec<u8> = Vec::new();
        let mut buf = Vec::new();
        let mut read = false;
        match io.io_type() {
            IoType::Read => {
                sqe = Sqe::new(io_opc::READ, cid, self.nsid);
                sqe.set_lba_range(slba, nlb as u32);
                set_sqe_sgl(&mut sqe, SGL_TRANSPORT, 0, len as u32);
                buf = vec![0u8; len];
                read = true;
            }
            IoType::Write => {
                sqe = Sqe::new(io_opc::WRITE, cid, self.nsid);
                sqe.set_lba_range(slba, nlb as u32);
                buf = vec![0u8; len];
                io.copy_out(&mut buf);
                if len <= live.q.icd {
                    set_sqe_sgl(&mut sqe, SGL_INCAPSULE, 0, len as u32);
                    inline = std::mem::take(&mut buf);
                } else {
                    set_sqe_sgl(&mut sqe, SGL_TRANSPORT, 0, len as u32);
                }
            }
            IoType::WriteZeroes => {
                sqe = Sqe::new(io_opc::WRITE_ZEROES, cid, self.nsid);
                sqe.set_lba_range(slba, nlb as u32);
            }
            IoType::Flush => sqe = Sqe::new(io_opc::FLUSH, cid, self.nsid),
            IoType::Unmap => {
                sqe = Sqe::new(io_opc::DATASET_MANAGEMENT, cid, self.nsid);
                sqe.cdw11 = DSM_ATTR_DEALLOCATE;
                let mut r = Vec::with_capacity(16);
                r.extend_from_slice(&0u32.to_le_bytes());
                r.extend_from_slice(&(nlb as u32).to_le_bytes());
                r.extend_from_slice(&slba.to_le_bytes());
                set_sqe_sgl(&mut sqe, SGL_INCAPSULE, 0, 16);
                inline = r;
            }
            _ => {
                self.free.push(cid);
                self.failed.push(io);
                return;
            }
        }
        let _ = bs;
        let cap = CapsuleCmd {
            ch: CommonHeader::new(PduType::CapsuleCmd),
            sqe,
        };
        encode(&mut live.tx, &cap, &inline, hd, dd);
        self.reqs[usize::from(cid)] = Some(Req { io, buf, read });
    }

    fn finish(&mut self, cid: u16, ok: bool) {
        let Some(r) = self.reqs.get_mut(usize::from(cid)).and_then(Option::take) else {
            return;
        };
        self.free.push(cid);
        if ok && r.read {
            r.io.copy_in(&r.buf);
        }
        let st = if ok {
            IoStatus::Success
        } else {
            IoStatus::Failed
        };
        self.done.push((r.io, st));
    }

    fn handle(&mut self) -> Result<bool, String> {
        let mut busy = false;
        loop {
            let Some(live) = self.live.as_mut() else {
                return Ok(busy);
            };
            let p = match live.q.rx.next_pdu(&live.q.framing) {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(busy),
                Err(e) => return Err(format!("bad PDU from the controller: {e}")),
            };
            busy = true;
            match p.ty {
                PduType::CapsuleResp => {
                    let r: CapsuleResp = p.header();
                    let ok = Status(r.cqe.status >> 1).is_success();
                    self.finish(r.cqe.cid, ok);
                }
                PduType::C2hData => {
                    let h: C2hData = p.header();
                    let Some(Some(r)) = self.reqs.get_mut(usize::from(h.cccid)) else {
                        return Err(format!("C2HData for unknown command {}", h.cccid));
                    };
                    let (o, l) = (h.datao as usize, h.datal as usize);
                    if !r.read || o + l > r.buf.len() || p.data.len() != l {
                        return Err("C2HData outside the command's buffer".into());
                    }
                    r.buf[o..o + l].copy_from_slice(&p.data);
                    if p.flags & flags::SUCCESS != 0 {
                        self.finish(h.cccid, true);
                    }
                }
                PduType::R2t => {
                    let t: R2t = p.header();
                    let Some(Some(r)) = self.reqs.get(usize::from(t.cccid)) else {
                        return Err(format!("R2T for unknown command {}", t.cccid));
                    };
                    let (o, l) = (t.r2to as usize, t.r2tl as usize);
                    if r.read || o + l > r.buf.len() {
                        return Err("R2T outside the command's data".into());
                    }
                    let chunk = live.q.maxh2cdata;
                    let (hd, dd) = (live.q.framing.hdgst, live.q.framing.ddgst);
                    let mut at = o;
                    while at < o + l {
                        let n = chunk.min(o + l - at);
                        let mut h = H2cData {
                            ch: CommonHeader::new(PduType::H2cData),
                            cccid: t.cccid,
                            ttag: t.ttag,
                            datao: at as u32,
                            datal: n as u32,
                            rsvd: 0,
                        };
                        if at + n == o + l {
                            h.ch.flags = flags::LAST_PDU;
                        }
                        encode(&mut live.tx, &h, &r.buf[at..at + n], hd, dd);
                        at += n;
                    }
                }
                PduType::C2hTermReq => {
                    return Err("the controller terminated the connection".into())
                }
                t => return Err(format!("unexpected {t:?} PDU")),
            }
        }
    }

    fn io(&mut self) -> Result<bool, String> {
        let mut busy = false;
        let Some(live) = self.live.as_mut() else {
            return Ok(false);
        };
        while live.tx_off < live.tx.len() {
            match live.q.sock.write(&live.tx[live.tx_off..]) {
                Ok(0) => return Err("connection closed".into()),
                Ok(n) => {
                    live.tx_off += n;
                    busy = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("send failed: {e}")),
            }
        }
        if live.tx_off == live.tx.len() {
            live.tx.clear();
            live.tx_off = 0;
        }
        for _ in 0..8 {
            let space = live.q.rx.space(64 * 1024);
            match live.q.sock.read(space) {
                Ok(0) => return Err("the controller closed the connection".into()),
                Ok(n) => {
                    live.q.rx.filled(n);
                    busy = true;
                    if n < 64 * 1024 {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("receive failed: {e}")),
            }
        }
        Ok(busy)
    }

    fn poll(&mut self) -> PollStatus {
        let mut busy = false;
        for io in std::mem::take(&mut self.failed) {
            busy = true;
            self.done.push((io, IoStatus::Failed));
        }
        busy |= self.connect_done();
        if self.live.is_none() {
            if self.connecting.is_none()
                && self.ctrlr.connected.load(Ordering::Acquire)
                && Instant::now() >= self.next_try
            {
                self.start_connect();
            }
            return if busy {
                PollStatus::Busy
            } else {
                PollStatus::Idle
            };
        }
        let gen_now = self.ctrlr.gen.load(Ordering::Acquire);
        let stale = self.live.as_ref().is_some_and(|l| l.gen != gen_now);
        let r = if stale {
            Err("the controller reconnected".to_string())
        } else {
            self.io().and_then(|b| Ok(b | self.handle()?))
        };
        match r {
            Ok(b) => busy |= b,
            Err(e) => {
                eal::log_err!(
                    "nvme tcp {}: I/O queue {} dropped: {e}",
                    self.ctrlr.name,
                    self.qid
                );
                self.drop_conn(IoStatus::Failed);
                busy = true;
            }
        }
        // Flush what handling queued (H2CData) in the same turn.
        if let Some(l) = self.live.as_ref() {
            if l.tx_off < l.tx.len() {
                if let Err(e) = self.io() {
                    eal::log_err!(
                        "nvme tcp {}: I/O queue {} dropped: {e}",
                        self.ctrlr.name,
                        self.qid
                    );
                    self.drop_conn(IoStatus::Failed);
                }
            }
        }
        if busy {
            PollStatus::Busy
        } else {
            PollStatus::Idle
        }
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}
