//! Queue set-up and the admin queue of the initiator, over a blocking socket with
//! timeouts: ICReq/ICResp, Connect, and one admin command at a time (properties,
//! identify, features, keep-alive), plus one Asynchronous Event Request left
//! outstanding whose completion is kept when it arrives (during another command or
//! found by [`Queue::poll_event`]). The control thread of a controller uses it for
//! its admin queue; an I/O queue uses it once to connect, then turns nonblocking.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use nvme::spec::{Cqe, Sqe, Status};

use crate::codec::{encode, Framing, RxBuf, RxPdu};
use crate::error::{Error, Result};
use crate::spec::bytes::{as_bytes, fill_str, zeroed};
use crate::spec::fabrics::{set_sqe_sgl, ConnectCmd, ConnectData, SGL_INCAPSULE, SGL_TRANSPORT};
use crate::spec::pdu::{
    dgst, flags, C2hData, CapsuleCmd, CapsuleResp, CommonHeader, H2cData, IcReq, IcResp, PduType,
    R2t, TermReq,
};

/// Who connects where.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub subnqn: String,
    pub hostnqn: String,
    pub hostid: [u8; 16],
    pub hdgst: bool,
    pub ddgst: bool,
}

/// A connected queue.
pub struct Queue {
    pub sock: TcpStream,
    pub rx: RxBuf,
    pub framing: Framing,
    pub maxh2cdata: usize,
    pub cntlid: u16,
    pub next_cid: u16,
    /// In-capsule data this queue takes.
    pub icd: usize,
    /// The outstanding Asynchronous Event Request's command id.
    pub aer_cid: Option<u16>,
    /// Completion dword 0 of answered AERs not yet taken.
    pub events: Vec<u32>,
}

/// Asynchronous Event Request opcode (NVMe 1.4 figure 139).
const ASYNC_EVENT_REQUEST: u8 = 0x0c;

fn proto(what: &'static str, why: impl Into<String>) -> Error {
    Error::Protocol {
        what,
        why: why.into(),
    }
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        what: what.to_string(),
        source: e,
    }
}

impl Queue {
    /// Read until one PDU is complete.
    pub fn recv(&mut self) -> Result<RxPdu> {
        loop {
            match self.rx.next_pdu(&self.framing) {
                Ok(Some(p)) => {
                    if p.ty == PduType::C2hTermReq {
                        let t: TermReq = p.header();
                        return Err(proto(
                            "talk to the controller",
                            format!("it terminated the connection (status {:#x})", t.fes),
                        ));
                    }
                    return Ok(p);
                }
                Ok(None) => {}
                Err(e) => return Err(proto("receive a PDU", e.to_string())),
            }
            let space = self.rx.space(64 * 1024);
            let n = self
                .sock
                .read(space)
                .map_err(io_err("receive from the controller"))?;
            if n == 0 {
                return Err(proto(
                    "receive a PDU",
                    "the controller closed the connection",
                ));
            }
            self.rx.filled(n);
        }
    }

    /// Keep the completion if it answers the outstanding AER.
    fn take_aer(&mut self, r: &CapsuleResp) -> bool {
        if self.aer_cid != Some(r.cqe.cid) {
            return false;
        }
        self.aer_cid = None;
        if Status(r.cqe.status >> 1).is_success() {
            self.events.push(r.cqe.dw0);
        }
        true
    }

    /// Send an Asynchronous Event Request (unless one is outstanding); its
    /// completion is kept for [`poll_event`](Self::poll_event).
    pub fn submit_aer(&mut self) -> Result<()> {
        if self.aer_cid.is_some() {
            return Ok(());
        }
        let cid = self.next_cid;
        self.next_cid = self.next_cid.wrapping_add(1);
        let mut sqe = Sqe::new(ASYNC_EVENT_REQUEST, 0, 0);
        sqe.set_cid(cid);
        let cap = CapsuleCmd {
            ch: CommonHeader::new(PduType::CapsuleCmd),
            sqe,
        };
        let mut b = Vec::new();
        encode(&mut b, &cap, &[], self.framing.hdgst, false);
        self.send(&b)?;
        self.aer_cid = Some(cid);
        Ok(())
    }

    /// An answered AER's completion dword 0, without waiting: what arrived during
    /// other commands, else what the socket holds now.
    pub fn poll_event(&mut self) -> Result<Option<u32>> {
        if self.events.is_empty() && self.aer_cid.is_some() {
            self.sock
                .set_nonblocking(true)
                .map_err(io_err("make the admin socket nonblocking"))?;
            let space = self.rx.space(64 * 1024);
            let r = self.sock.read(space);
            self.sock
                .set_nonblocking(false)
                .map_err(io_err("make the admin socket blocking"))?;
            match r {
                Ok(0) => {
                    return Err(proto(
                        "receive a PDU",
                        "the controller closed the connection",
                    ))
                }
                Ok(n) => self.rx.filled(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(io_err("receive from the controller")(e)),
            }
            while let Some(p) = self
                .rx
                .next_pdu(&self.framing)
                .map_err(|e| proto("receive a PDU", e.to_string()))?
            {
                let ok = p.ty == PduType::CapsuleResp && self.take_aer(&p.header());
                if !ok {
                    return Err(proto(
                        "wait for an event",
                        format!("unexpected {:?} PDU", p.ty),
                    ));
                }
            }
        }
        Ok(if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        })
    }

    fn send(&mut self, b: &[u8]) -> Result<()> {
        self.sock
            .write_all(b)
            .map_err(io_err("send to the controller"))
    }

    /// Run one command: `out` goes in the capsule (or after an R2T when larger than
    /// the queue's in-capsule size), up to `want_in` bytes come back. Returns the
    /// completion and the data.
    pub fn command(&mut self, mut sqe: Sqe, out: &[u8], want_in: usize) -> Result<(Cqe, Vec<u8>)> {
        let cid = self.next_cid;
        self.next_cid = self.next_cid.wrapping_add(1);
        sqe.set_cid(cid);
        let (hd, dd) = (self.framing.hdgst, self.framing.ddgst);
        let inline = !out.is_empty() && out.len() <= self.icd;
        if inline {
            set_sqe_sgl(&mut sqe, SGL_INCAPSULE, 0, out.len() as u32);
        } else {
            let len = if out.is_empty() { want_in } else { out.len() };
            set_sqe_sgl(&mut sqe, SGL_TRANSPORT, 0, len as u32);
        }
        let cap = CapsuleCmd {
            ch: CommonHeader::new(PduType::CapsuleCmd),
            sqe,
        };
        let mut b = Vec::new();
        encode(&mut b, &cap, if inline { out } else { &[] }, hd, dd);
        self.send(&b)?;
        let mut data = vec![0u8; want_in];
        loop {
            let p = self.recv()?;
            match p.ty {
                PduType::C2hData => {
                    let h: C2hData = p.header();
                    let (o, l) = (h.datao as usize, h.datal as usize);
                    if h.cccid != cid || o + l > data.len() || p.data.len() != l {
                        return Err(proto(
                            "receive data",
                            "C2HData outside the command's buffer",
                        ));
                    }
                    data[o..o + l].copy_from_slice(&p.data);
                    if p.flags & flags::SUCCESS != 0 {
                        let cqe = Cqe {
                            cid,
                            ..Default::default()
                        };
                        return Ok((cqe, data));
                    }
                }
                PduType::R2t => {
                    let r: R2t = p.header();
                    let (o, l) = (r.r2to as usize, r.r2tl as usize);
                    if r.cccid != cid || o + l > out.len() {
                        return Err(proto("send data", "R2T outside the command's data"));
                    }
                    let mut b = Vec::new();
                    let chunk = self.maxh2cdata.max(4096);
                    let mut at = o;
                    while at < o + l {
                        let n = chunk.min(o + l - at);
                        let mut h = H2cData {
                            ch: CommonHeader::new(PduType::H2cData),
                            cccid: cid,
                            ttag: r.ttag,
                            datao: at as u32,
                            datal: n as u32,
                            rsvd: 0,
                        };
                        if at + n == o + l {
                            h.ch.flags = flags::LAST_PDU;
                        }
                        encode(&mut b, &h, &out[at..at + n], hd, dd);
                        at += n;
                    }
                    self.send(&b)?;
                }
                PduType::CapsuleResp => {
                    let r: CapsuleResp = p.header();
                    if r.cqe.cid != cid {
                        self.take_aer(&r);
                        continue;
                    }
                    return Ok((r.cqe, data));
                }
                t => return Err(proto("run a command", format!("unexpected {t:?} PDU"))),
            }
        }
    }

    /// [`command`](Self::command), failing unless the status is success.
    pub fn command_ok(
        &mut self,
        what: &'static str,
        sqe: Sqe,
        out: &[u8],
        want_in: usize,
    ) -> Result<(Cqe, Vec<u8>)> {
        let (cqe, d) = self.command(sqe, out, want_in)?;
        let st = Status(cqe.status >> 1);
        if !st.is_success() {
            return Err(proto(
                what,
                format!("status {st} (sct {} sc {:#x})", st.sct(), st.sc()),
            ));
        }
        Ok((cqe, d))
    }
}

/// Connect queue `qid` (0: admin, asking for a new controller; else an I/O queue of
/// `cntlid`) with `sqsize` (0-based) entries.
pub fn connect(
    ep: &Endpoint,
    qid: u16,
    cntlid: u16,
    sqsize: u16,
    kato_ms: u32,
    icd: usize,
    timeout: Duration,
) -> Result<Queue> {
    let sock = TcpStream::connect_timeout(&ep.addr, timeout)
        .map_err(io_err(&format!("connect to {}", ep.addr)))?;
    sock.set_read_timeout(Some(timeout))
        .map_err(io_err("set a socket timeout"))?;
    sock.set_write_timeout(Some(timeout))
        .map_err(io_err("set a socket timeout"))?;
    sock.set_nodelay(true).map_err(io_err("set TCP_NODELAY"))?;
    let mut q = Queue {
        sock,
        rx: RxBuf::new(),
        framing: Framing {
            hdgst: false,
            ddgst: false,
            max_data: 1 << 20,
        },
        maxh2cdata: 0,
        cntlid,
        next_cid: 1,
        icd: 8192,
        aer_cid: None,
        events: Vec::new(),
    };
    let ic = IcReq {
        ch: CommonHeader::new(PduType::IcReq),
        pfv: 0,
        hpda: 0,
        dgst: if ep.hdgst { dgst::HDGST } else { 0 } | if ep.ddgst { dgst::DDGST } else { 0 },
        maxr2t: 0,
        rsvd: [0; 112],
    };
    let mut b = Vec::new();
    encode(&mut b, &ic, &[], false, false);
    q.send(&b)?;
    let p = q.recv()?;
    if p.ty != PduType::IcResp {
        return Err(proto(
            "initialise the connection",
            format!("{:?} instead of ICResp", p.ty),
        ));
    }
    let r: IcResp = p.header();
    if r.cpda != 0 {
        return Err(proto(
            "initialise the connection",
            format!("controller data alignment {} not supported", r.cpda),
        ));
    }
    q.framing.hdgst = r.dgst & dgst::HDGST != 0;
    q.framing.ddgst = r.dgst & dgst::DDGST != 0;
    q.maxh2cdata = r.maxh2cdata as usize;
    if q.maxh2cdata < 4096 {
        return Err(proto(
            "initialise the connection",
            format!("MAXH2CDATA {} below 4096", r.maxh2cdata),
        ));
    }
    let c = ConnectCmd {
        recfmt: 0,
        qid,
        sqsize,
        cattr: 0,
        kato: if qid == 0 { kato_ms } else { 0 },
    };
    let mut d = zeroed::<ConnectData>();
    d.hostid = ep.hostid;
    d.cntlid = if qid == 0 { 0xffff } else { cntlid };
    fill_str(&mut d.subnqn, &ep.subnqn, 0);
    fill_str(&mut d.hostnqn, &ep.hostnqn, 0);
    let data = as_bytes(&*d).to_vec();
    let (cqe, _) = q.command(c.to_sqe(0), &data, 0)?;
    let st = Status(cqe.status >> 1);
    if !st.is_success() {
        return Err(proto(
            "connect",
            format!(
                "refused by {} for {} (sct {} sc {:#x}{})",
                ep.addr,
                ep.subnqn,
                st.sct(),
                st.sc(),
                if st.sct() == 1 && st.sc() == 0x84 {
                    ": host not allowed"
                } else {
                    ""
                }
            ),
        ));
    }
    if qid == 0 {
        q.cntlid = cqe.dw0 as u16;
    }
    q.icd = icd;
    Ok(q)
}
