//! One NVMe/TCP connection of the target: one queue (admin or I/O) of one
//! controller once its Connect succeeded.
//!
//! Life of a command: a CapsuleCmd arrives; host-to-controller data comes in the
//! capsule (SGL data block with offset) or, for a transport SGL, after an R2T in
//! H2CData PDUs (one R2T outstanding per command, at most MAXH2CDATA bytes each);
//! the command runs (admin: at once; I/O: on the bdev, completing through the poll
//! group's completion list); controller-to-host data goes out in C2HData PDUs, then
//! the response capsule (or, with SQ flow control disabled, the last C2HData carries
//! the SUCCESS flag instead).
//!
//! Bad input ends the connection: a PDU the framing refuses (unknown type, wrong
//! header length, oversized, bad digest), a PDU out of sequence (data for no R2T,
//! a command before ICReq or Connect), more commands outstanding than the queue
//! holds. A C2HTermReq with the fatal error status goes out first. Buffers belong to
//! the connection's commands and go with them; a command still at the bdev completes
//! into the group's list and is dropped there when its connection is gone.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nvme::spec::{generic, sct, Cqe, Sqe, Status};

use super::admin::{self, AdminOutcome};
use super::completion::{GroupCtx, IoDone};
use super::ctrlr::Ctrlr;
use super::io::{self, IoOutcome};
use super::{tgt, CmdToken, TransportOpts, ADMIN_IN_CAPSULE};
use crate::codec::{encode, Framing, RxBuf, RxError};
use crate::spec::bytes::{nul_str, read};
use crate::spec::fabrics::{
    data_dir, fctype, sc, sqe_fctype, sqe_sgl, ConnectCmd, ConnectData, PropertyCmd,
    CATTR_DISABLE_SQFLOW, FABRICS_OPC, SGL_INCAPSULE, SGL_TRANSPORT,
};
use crate::spec::pdu::{
    dgst, fes, flags, C2hData, CapsuleCmd, CapsuleResp, CommonHeader, H2cData, IcReq, IcResp,
    PduType, R2t, TermReq, TERM_REQ_MAX_DATA,
};

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// SGL Descriptor Type Invalid, Data SGL Length Invalid (NVMe 1.4 figure 128).
const SC_SGL_TYPE_INVALID: u8 = 0x11;
const SC_SGL_LENGTH_INVALID: u8 = 0x0f;

struct Queue {
    ctrlr: Arc<Ctrlr>,
    qid: u16,
    sqsize: u16,
    sqflow_off: bool,
}

/// A write-direction command waiting for its H2CData.
struct Pending {
    sqe: Sqe,
    buf: Vec<u8>,
    got: usize,
    ttag: u16,
    r2t_end: usize,
    token: CmdToken,
}

enum State {
    /// Waiting for ICReq.
    Init,
    /// Serving.
    Ready,
}

/// A connection.
pub(crate) struct Conn {
    pub(crate) id: u64,
    pub(crate) sock: TcpStream,
    local: SocketAddr,
    pub(crate) peer: SocketAddr,
    rx: RxBuf,
    framing: Framing,
    tx: Vec<u8>,
    tx_off: usize,
    state: State,
    opts: TransportOpts,
    q: Option<Queue>,
    pending: HashMap<u16, Pending>,
    next_ttag: u16,
    /// Commands at the bdev or waiting for data.
    inflight: usize,
    /// Held Asynchronous Event Requests (answered by a notice; dropped with the
    /// controller).
    aers: Vec<u16>,
    sqhd: u16,
    /// Why the connection is closing (set: close once the TermReq is out).
    pub(crate) closing: Option<String>,
    pub(crate) out_armed: bool,
}

impl Conn {
    pub(crate) fn new(sock: TcpStream, opts: TransportOpts) -> std::io::Result<Conn> {
        let local = sock.local_addr()?;
        let peer = sock.peer_addr()?;
        Ok(Conn {
            id: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
            sock,
            local,
            peer,
            rx: RxBuf::new(),
            framing: Framing::initial(),
            tx: Vec::with_capacity(64 * 1024),
            tx_off: 0,
            state: State::Init,
            opts,
            q: None,
            pending: HashMap::new(),
            next_ttag: 0,
            inflight: 0,
            aers: Vec::new(),
            sqhd: 0,
            closing: None,
            out_armed: false,
        })
    }

    /// The controller, once connected.
    pub(crate) fn ctrlr(&self) -> Option<&Arc<Ctrlr>> {
        self.q.as_ref().map(|q| &q.ctrlr)
    }

    /// Whether this is an admin queue.
    pub(crate) fn is_admin(&self) -> bool {
        self.q.as_ref().is_some_and(|q| q.qid == 0)
    }

    /// Bytes waiting to go out.
    pub(crate) fn tx_pending(&self) -> bool {
        self.tx_off < self.tx.len()
    }

    /// Write what the socket takes now.
    pub(crate) fn flush(&mut self) {
        while self.tx_off < self.tx.len() {
            match self.sock.write(&self.tx[self.tx_off..]) {
                Ok(0) => {
                    self.fail("peer closed");
                    return;
                }
                Ok(n) => self.tx_off += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.tx.clear();
                    self.tx_off = 0;
                    self.fail(&format!("send failed: {e}"));
                    return;
                }
            }
        }
        self.tx.clear();
        self.tx_off = 0;
    }

    fn fail(&mut self, why: &str) {
        if self.closing.is_none() {
            self.closing = Some(why.to_string());
        }
    }

    /// End the connection with a C2HTermReq (`hdr`: the offending PDU's header).
    fn terminate(&mut self, fes_: u16, fei: u32, hdr: &[u8], why: String) {
        if self.closing.is_some() {
            return;
        }
        let t = TermReq {
            ch: CommonHeader::new(PduType::C2hTermReq),
            fes: fes_,
            fei: fei.to_le_bytes(),
            rsvd: [0; 10],
        };
        let n = hdr.len().min(TERM_REQ_MAX_DATA);
        encode(&mut self.tx, &t, &hdr[..n], false, false);
        self.closing = Some(why);
    }

    /// Read and handle what arrived. Returns whether anything was done.
    pub(crate) fn on_readable(&mut self, g: &mut GroupCtx) -> bool {
        let mut busy = false;
        for _ in 0..8 {
            if self.closing.is_some() {
                break;
            }
            let space = self.rx.space(64 * 1024);
            match self.sock.read(space) {
                Ok(0) => {
                    self.fail("peer closed the connection");
                    break;
                }
                Ok(n) => {
                    busy = true;
                    self.rx.filled(n);
                    self.process(g);
                    if n < 64 * 1024 {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(&format!("receive failed: {e}"));
                    break;
                }
            }
        }
        busy
    }

    fn process(&mut self, g: &mut GroupCtx) {
        while self.closing.is_none() {
            let p = match self.rx.next_pdu(&self.framing) {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(e) => {
                    let hdr: Vec<u8> = Vec::new();
                    self.bad_pdu(e, &hdr);
                    return;
                }
            };
            match (&self.state, p.ty) {
                (State::Init, PduType::IcReq) => self.on_icreq(p.header()),
                (State::Ready, PduType::CapsuleCmd) => {
                    let h: CapsuleCmd = p.header();
                    self.on_capsule(h.sqe, p.data, g);
                }
                (State::Ready, PduType::H2cData) => {
                    let h: H2cData = p.header();
                    let hb = p.header_bytes(24).to_vec();
                    self.on_h2c(h, p.flags, p.data, &hb, g);
                }
                (_, PduType::H2cTermReq) => {
                    let t: TermReq = p.header();
                    self.fail(&format!(
                        "host terminated the connection (status {:#x})",
                        t.fes
                    ));
                }
                (_, ty) => {
                    let hb = p.header_bytes(ty.hlen()).to_vec();
                    self.terminate(
                        fes::PDU_SEQUENCE_ERROR,
                        0,
                        &hb,
                        format!("unexpected {ty:?} PDU"),
                    );
                }
            }
        }
    }

    fn bad_pdu(&mut self, e: RxError, hdr: &[u8]) {
        self.terminate(e.fes(), e.fei(), hdr, format!("bad PDU: {e}"));
    }

    fn on_icreq(&mut self, r: IcReq) {
        if r.pfv != 0 || r.hpda != 0 {
            let why = if r.pfv != 0 {
                format!("PDU format version {} not supported", r.pfv)
            } else {
                format!("host PDU data alignment {} not supported", r.hpda)
            };
            let fei = if r.pfv != 0 { 8 } else { 10 };
            self.terminate(
                fes::UNSUPPORTED_PARAMETER,
                fei,
                crate::spec::bytes::as_bytes(&r),
                why,
            );
            return;
        }
        let hd = r.dgst & dgst::HDGST != 0;
        let dd = r.dgst & dgst::DDGST != 0;
        let resp = IcResp {
            ch: CommonHeader::new(PduType::IcResp),
            pfv: 0,
            cpda: 0,
            dgst: r.dgst & (dgst::HDGST | dgst::DDGST),
            maxh2cdata: self.opts.max_io_size,
            rsvd: [0; 112],
        };
        encode(&mut self.tx, &resp, &[], false, false);
        self.framing = Framing {
            hdgst: hd,
            ddgst: dd,
            max_data: (self.opts.max_io_size as usize)
                .max(self.opts.in_capsule_data_size as usize)
                .max(ADMIN_IN_CAPSULE as usize),
        };
        self.state = State::Ready;
    }

    fn queue_limit(&self) -> usize {
        self.q.as_ref().map_or(1, |q| usize::from(q.sqsize) + 1)
    }

    fn on_capsule(&mut self, sqe: Sqe, data: Vec<u8>, g: &mut GroupCtx) {
        let cid = sqe.cid();
        if let Some(q) = &self.q {
            self.sqhd = (self.sqhd + 1) % (q.sqsize + 1);
        }
        if self.inflight + self.aers.len() >= self.queue_limit() + 4 {
            let b = crate::spec::bytes::as_bytes(&sqe).to_vec();
            self.terminate(
                fes::PDU_SEQUENCE_ERROR,
                0,
                &b,
                format!("more than {} commands outstanding", self.queue_limit()),
            );
            return;
        }
        if self.q.is_none() && !(sqe.opcode() == FABRICS_OPC && sqe_fctype(&sqe) == fctype::CONNECT)
        {
            let b = crate::spec::bytes::as_bytes(&sqe).to_vec();
            self.terminate(
                fes::PDU_SEQUENCE_ERROR,
                0,
                &b,
                "a command before Connect".into(),
            );
            return;
        }
        let (h2c, _) = data_dir(&sqe);
        let (ty, off, len) = sqe_sgl(&sqe);
        let len = len as usize;
        if !h2c || len == 0 {
            if !data.is_empty() {
                return self.reply(
                    cid,
                    Status::new(sct::GENERIC, SC_SGL_LENGTH_INVALID),
                    0,
                    &[],
                );
            }
            return self.execute(sqe, Vec::new(), CmdToken::new(), g);
        }
        match ty {
            SGL_INCAPSULE => {
                let cap = if self.is_admin() || self.q.is_none() {
                    ADMIN_IN_CAPSULE as usize
                } else {
                    self.opts.in_capsule_data_size as usize
                };
                if off != 0 || data.len() != len || len > cap {
                    return self.reply(
                        cid,
                        Status::new(sct::GENERIC, SC_SGL_LENGTH_INVALID),
                        0,
                        &[],
                    );
                }
                self.execute(sqe, data, CmdToken::new(), g)
            }
            SGL_TRANSPORT => {
                if len > self.opts.max_io_size as usize || !data.is_empty() {
                    return self.reply(
                        cid,
                        Status::new(sct::GENERIC, SC_SGL_LENGTH_INVALID),
                        0,
                        &[],
                    );
                }
                if self.pending.contains_key(&cid) {
                    return self.reply(
                        cid,
                        Status::new(sct::GENERIC, generic::CID_CONFLICT),
                        0,
                        &[],
                    );
                }
                let ttag = self.next_ttag;
                self.next_ttag = self.next_ttag.wrapping_add(1);
                let chunk = len.min(self.opts.max_io_size as usize);
                self.pending.insert(
                    cid,
                    Pending {
                        sqe,
                        buf: vec![0; len],
                        got: 0,
                        ttag,
                        r2t_end: chunk,
                        token: CmdToken::new(),
                    },
                );
                self.inflight += 1;
                self.send_r2t(cid, ttag, 0, chunk);
            }
            _ => self.reply(cid, Status::new(sct::GENERIC, SC_SGL_TYPE_INVALID), 0, &[]),
        }
    }

    fn send_r2t(&mut self, cid: u16, ttag: u16, off: usize, len: usize) {
        let r = R2t {
            ch: CommonHeader::new(PduType::R2t),
            cccid: cid,
            ttag,
            r2to: off as u32,
            r2tl: len as u32,
            rsvd: 0,
        };
        encode(&mut self.tx, &r, &[], self.framing.hdgst, false);
    }

    fn on_h2c(&mut self, h: H2cData, fl: u8, data: Vec<u8>, hb: &[u8], g: &mut GroupCtx) {
        let Some(p) = self.pending.get_mut(&h.cccid) else {
            return self.terminate(
                fes::INVALID_HEADER_FIELD,
                8,
                hb,
                format!("H2CData for command {} which awaits none", h.cccid),
            );
        };
        if p.ttag != h.ttag {
            return self.terminate(
                fes::INVALID_HEADER_FIELD,
                10,
                hb,
                "H2CData with a wrong transfer tag".into(),
            );
        }
        let off = h.datao as usize;
        let len = h.datal as usize;
        if off != p.got || off + len > p.r2t_end || data.len() != len {
            return self.terminate(
                fes::DATA_OUT_OF_RANGE,
                12,
                hb,
                format!("H2CData offset {off} length {len} outside the R2T"),
            );
        }
        p.buf[off..off + len].copy_from_slice(&data);
        p.got += len;
        if p.got < p.r2t_end {
            return;
        }
        if fl & flags::LAST_PDU == 0 {
            return self.terminate(
                fes::INVALID_HEADER_FIELD,
                1,
                hb,
                "H2CData filled the R2T without LAST_PDU".into(),
            );
        }
        if p.got < p.buf.len() {
            let next = (p.buf.len() - p.got).min(self.opts.max_io_size as usize);
            p.r2t_end = p.got + next;
            let (ttag, got) = (p.ttag, p.got);
            return self.send_r2t(h.cccid, ttag, got, next);
        }
        let p = self
            .pending
            .remove(&h.cccid)
            .expect("pending command just seen");
        self.inflight -= 1;
        self.execute(p.sqe, p.buf, p.token, g);
    }

    fn execute(&mut self, sqe: Sqe, data: Vec<u8>, token: CmdToken, g: &mut GroupCtx) {
        let cid = sqe.cid();
        if sqe.opcode() == FABRICS_OPC {
            return self.fabrics(sqe, &data);
        }
        let Some(q) = &self.q else { return };
        let ctrlr = q.ctrlr.clone();
        if q.qid == 0 {
            eal::log_debug!(
                "nvmf: controller {} admin opcode {:#x} cid {cid} cdw10 {:#x} nsid {}",
                ctrlr.cntlid,
                sqe.opcode(),
                sqe.cdw10,
                sqe.nsid
            );
            ctrlr.keep_alive();
            match admin::execute(&ctrlr, &sqe, &data) {
                AdminOutcome::Reply { status, dw0, data } => self.reply(cid, status, dw0, &data),
                AdminOutcome::Hold => self.aers.push(cid),
            }
            drop(token);
            return;
        }
        match io::submit(&ctrlr, &sqe, data, g, self.id, token) {
            IoOutcome::Reply(st) => self.reply(cid, st, 0, &[]),
            IoOutcome::Submitted => self.inflight += 1,
        }
    }

    fn fabrics(&mut self, sqe: Sqe, data: &[u8]) {
        let cid = sqe.cid();
        match sqe_fctype(&sqe) {
            fctype::CONNECT => {
                let (st, dw0) = self.connect(&sqe, data);
                self.reply(cid, st, dw0, &[]);
            }
            fctype::PROPERTY_GET | fctype::PROPERTY_SET if self.is_admin() => {
                let p = PropertyCmd::from_sqe(&sqe);
                let c = self.ctrlr().expect("admin queue has a controller").clone();
                if sqe_fctype(&sqe) == fctype::PROPERTY_GET {
                    match c.get_property(p.offset, p.eight) {
                        Some(v) => {
                            self.reply2(cid, Status::SUCCESS, v as u32, (v >> 32) as u32, &[])
                        }
                        None => self.reply(
                            cid,
                            Status::new(sct::GENERIC, generic::INVALID_FIELD),
                            0,
                            &[],
                        ),
                    }
                } else if c.set_property(p.offset, p.eight, p.value) {
                    self.reply(cid, Status::SUCCESS, 0, &[]);
                } else {
                    self.reply(
                        cid,
                        Status::new(sct::GENERIC, generic::INVALID_FIELD),
                        0,
                        &[],
                    );
                }
            }
            fctype::DISCONNECT => self.reply(cid, Status::SUCCESS, 0, &[]),
            _ => self.reply(
                cid,
                Status::new(sct::GENERIC, generic::INVALID_OPCODE),
                0,
                &[],
            ),
        }
    }

    /// Connect (NVMe over Fabrics 1.1 section 3.3): (status, DW0).
    fn connect(&mut self, sqe: &Sqe, data: &[u8]) -> (Status, u32) {
        let invalid = |iattr: u32, ipo: u32| {
            (
                Status::new(sct::COMMAND_SPECIFIC, sc::CONNECT_INVALID_PARAM),
                iattr | ipo << 16,
            )
        };
        if self.q.is_some() {
            return (
                Status::new(sct::GENERIC, generic::COMMAND_SEQUENCE_ERROR),
                0,
            );
        }
        let c = ConnectCmd::from_sqe(sqe);
        if c.recfmt != 0 {
            return (
                Status::new(sct::COMMAND_SPECIFIC, sc::CONNECT_INCOMPATIBLE_FORMAT),
                0,
            );
        }
        let Some(d) = read::<ConnectData>(data) else {
            return (Status::new(sct::GENERIC, SC_SGL_LENGTH_INVALID), 0);
        };
        let subnqn = nul_str(&d.subnqn);
        let hostnqn = nul_str(&d.hostnqn);
        let t = tgt();
        let Some(s) = t.subsystem(&subnqn).filter(|s| s.reachable_at(self.local)) else {
            eal::log_info!("nvmf: {} asked for unknown subsystem '{subnqn}'", self.peer);
            return invalid(1, 256);
        };
        if !s.host_allowed(&hostnqn) {
            eal::log_info!("nvmf: host '{hostnqn}' ({}) refused by {subnqn}", self.peer);
            return (
                Status::new(sct::COMMAND_SPECIFIC, sc::CONNECT_INVALID_HOST),
                1 | 512 << 16,
            );
        }
        if c.sqsize == 0 || c.sqsize >= self.opts.max_queue_depth {
            return invalid(0, 44);
        }
        let ctrlr = if c.qid == 0 {
            if d.cntlid != 0xffff {
                return invalid(1, 16);
            }
            let Some(id) = t.alloc_cntlid() else {
                return (
                    Status::new(sct::COMMAND_SPECIFIC, sc::CONNECT_CTRLR_BUSY),
                    0,
                );
            };
            let kato = if s.is_discovery() && c.kato == 0 {
                0
            } else {
                c.kato
            };
            let ctrlr = Arc::new(Ctrlr::new(id, s, hostnqn, d.hostid, kato, self.opts));
            t.ctrlrs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, ctrlr.clone());
            ctrlr
        } else {
            let found = t
                .ctrlrs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&d.cntlid)
                .cloned();
            let Some(ctrlr) = found.filter(|x| Arc::ptr_eq(&x.subsys, &s) && x.hostnqn == hostnqn)
            else {
                return invalid(1, 16);
            };
            if s.is_discovery() || !ctrlr.add_io_queue(c.qid) {
                return invalid(0, 42);
            }
            ctrlr
        };
        let dw0 = u32::from(ctrlr.cntlid);
        self.q = Some(Queue {
            ctrlr,
            qid: c.qid,
            sqsize: c.sqsize,
            sqflow_off: c.cattr & CATTR_DISABLE_SQFLOW != 0,
        });
        self.sqhd = 1 % (c.sqsize + 1);
        (Status::SUCCESS, dw0)
    }

    fn reply(&mut self, cid: u16, st: Status, dw0: u32, data: &[u8]) {
        self.reply2(cid, st, dw0, 0, data)
    }

    /// Send `data` (controller to host) and the completion.
    fn reply2(&mut self, cid: u16, st: Status, dw0: u32, dw1: u32, data: &[u8]) {
        let (hd, dd) = (self.framing.hdgst, self.framing.ddgst);
        let success_flag = st.is_success() && self.q.as_ref().is_some_and(|q| q.sqflow_off);
        if st.is_success() && !data.is_empty() {
            let chunk = self.opts.max_io_size as usize;
            let n = data.len().div_ceil(chunk);
            for (i, part) in data.chunks(chunk).enumerate() {
                let mut h = C2hData {
                    ch: CommonHeader::new(PduType::C2hData),
                    cccid: cid,
                    datao: (i * chunk) as u32,
                    datal: part.len() as u32,
                    ..Default::default()
                };
                if i + 1 == n {
                    h.ch.flags = flags::LAST_PDU;
                    if success_flag {
                        h.ch.flags |= flags::SUCCESS;
                    }
                }
                encode(&mut self.tx, &h, part, hd, dd);
            }
            if success_flag {
                return;
            }
        }
        let (sqid, sqhd) = self.q.as_ref().map_or((0, 0), |q| (q.qid, self.sqhd));
        let r = CapsuleResp {
            ch: CommonHeader::new(PduType::CapsuleResp),
            cqe: Cqe {
                dw0,
                dw1,
                sqhd,
                sqid,
                cid,
                status: st.0 << 1,
            },
        };
        encode(&mut self.tx, &r, &[], hd, false);
    }

    /// A bdev I/O of this connection finished.
    pub(crate) fn complete_io(&mut self, d: IoDone) {
        self.inflight = self.inflight.saturating_sub(1);
        if self.closing.is_none() {
            self.reply(d.cid, d.status, 0, &d.data);
        }
    }

    /// Before the connection goes: release its queue.
    pub(crate) fn release(&mut self) {
        if let Some(q) = self.q.take() {
            if q.qid == 0 {
                q.ctrlr.kill("its admin queue closed");
            } else {
                q.ctrlr.remove_io_queue(q.qid);
            }
        }
        self.pending.clear();
        self.aers.clear();
    }

    /// Close if the controller is gone or its keep-alive expired; answer a held AER
    /// with a notice the controller owes.
    pub(crate) fn check_timers(&mut self, now: u64) {
        let Some(q) = &self.q else { return };
        let notice = if q.qid == 0 && !self.aers.is_empty() && self.closing.is_none() {
            q.ctrlr.take_ns_notice()
        } else {
            None
        };
        if let Some(dw0) = notice {
            let cid = self.aers.remove(0);
            self.reply(cid, Status::SUCCESS, dw0, &[]);
            self.flush();
        }
        let Some(q) = &self.q else { return };
        if q.ctrlr.is_dead() {
            self.fail("controller gone");
        } else if q.qid == 0 && q.ctrlr.ka_expired(now) {
            let c = q.ctrlr.clone();
            c.kill("keep-alive timeout");
            self.fail("keep-alive timeout");
        }
    }
}
