//! `net_pcap`: RX from pcap files (`rx_pcap=FILE`, one queue each; `infinite_rx=1`
//! replays them forever) or live from an interface (`rx_iface=IF`, an AF_PACKET
//! socket); TX to pcap files (`tx_pcap=FILE`, little-endian microsecond pcap, one record
//! per packet, flushed after every burst) or to an interface (`tx_iface=IF`);
//! `iface=IF` is both. RX files are read and checked whole at probe: a malformed or
//! truncated file is refused there with the offset of the problem. Packets larger than
//! an mbuf chain can hold are counted in `ierrors` and skipped.

use std::fs::File;
use std::io::BufWriter;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use mbuf::{Mbuf, PktmbufPool};

use super::netif::{copy_out, mbuf_from, rx_take, NetIf, RxDrop};
use crate::driver::{
    EthDriver, QueueStats, RxQueueOps, RxSetup, Tally, TxQueueOps, TxSetup, VdevCtx, VdevDriver,
};
use crate::error::{Error, Result};
use crate::pcapfile::{self, Capture, Writer};
use crate::sys;
use crate::types::{DevInfo, TxOffloads};

pub const DRIVER: VdevDriver = VdevDriver {
    name: "net_pcap",
    aliases: &["eth_pcap"],
    keys: &[
        "rx_pcap",
        "tx_pcap",
        "rx_iface",
        "tx_iface",
        "iface",
        "infinite_rx",
    ],
    create,
};

const MAX_FRAME: usize = 65536;

#[derive(Clone)]
enum RxSrc {
    File(Arc<Capture>),
    Iface(Arc<OwnedFd>),
}

#[derive(Clone)]
enum TxDst {
    File(String),
    Iface(Arc<OwnedFd>),
}

struct Pcap {
    rx: Vec<RxSrc>,
    tx: Vec<TxDst>,
    infinite: bool,
    port: u16,
}

fn live_socket(iface: &str) -> Result<Arc<OwnedFd>> {
    let netif = NetIf::open(iface)?;
    let fd = sys::packet_socket(0).map_err(|e| Error::os("open", "an AF_PACKET socket", e))?;
    sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_IGNORE_OUTGOING, &1i32)
        .map_err(|e| Error::os("set", "PACKET_IGNORE_OUTGOING", e))?;
    sys::bind_packet(&fd, netif.index, sys::ETH_P_ALL)
        .map_err(|e| Error::os("bind", format!("to {iface}"), e))?;
    Ok(Arc::new(fd))
}

fn create(ctx: &VdevCtx<'_>) -> Result<Box<dyn EthDriver>> {
    let a = ctx.args;
    let mut rx = Vec::new();
    let mut tx = Vec::new();
    for (k, v) in &a.kv {
        match k.as_str() {
            "rx_pcap" => {
                let b =
                    std::fs::read(v).map_err(|e| Error::os("open", format!("pcap file {v}"), e))?;
                let c = pcapfile::parse(&b).map_err(|why| Error::BadPcap {
                    path: v.clone(),
                    why,
                })?;
                if c.linktype != pcapfile::LINKTYPE_ETHERNET {
                    return Err(Error::BadPcap {
                        path: v.clone(),
                        why: format!("link type {} is not Ethernet (1)", c.linktype),
                    });
                }
                rx.push(RxSrc::File(Arc::new(c)));
            }
            "tx_pcap" => {
                if v.is_empty() {
                    return Err(a.bad(k, v, "empty file name"));
                }
                tx.push(TxDst::File(v.clone()));
            }
            "rx_iface" => rx.push(RxSrc::Iface(live_socket(v)?)),
            "tx_iface" => tx.push(TxDst::Iface(live_socket(v)?)),
            "iface" => {
                let s = live_socket(v)?;
                rx.push(RxSrc::Iface(s.clone()));
                tx.push(TxDst::Iface(s));
            }
            _ => {}
        }
    }
    if rx.len() > crate::types::MAX_QUEUES || tx.len() > crate::types::MAX_QUEUES {
        return Err(a.bad(
            "rx_pcap",
            "",
            &format!(
                "at most {} sources/sinks per direction",
                crate::types::MAX_QUEUES
            ),
        ));
    }
    if rx.is_empty() && tx.is_empty() {
        return Err(a.bad(
            "rx_pcap",
            "",
            "give at least one of rx_pcap, tx_pcap, rx_iface, tx_iface, iface",
        ));
    }
    Ok(Box::new(Pcap {
        rx,
        tx,
        infinite: a.flag("infinite_rx")?,
        port: ctx.port_id,
    }))
}

impl EthDriver for Pcap {
    fn info(&self) -> DevInfo {
        DevInfo {
            tx_offload_capa: TxOffloads::MULTI_SEGS,
            max_rx_pktlen: MAX_FRAME as u32,
            max_mtu: 65521,
            ..DevInfo::new(DRIVER.name, self.rx.len() as u16, self.tx.len() as u16)
        }
    }

    fn rx_queue_setup(&mut self, s: RxSetup<'_>) -> Result<Box<dyn RxQueueOps>> {
        let src = self.rx[s.queue as usize].clone();
        Ok(Box::new(PcapRx {
            src,
            next: 0,
            infinite: self.infinite,
            pool: s.pool.clone(),
            port: self.port,
            buf: Vec::new(),
            stats: s.stats,
        }))
    }

    fn tx_queue_setup(&mut self, s: TxSetup<'_>) -> Result<Box<dyn TxQueueOps>> {
        let dst = match &self.tx[s.queue as usize] {
            TxDst::File(p) => {
                let f = File::create(p)
                    .map_err(|e| Error::os("create", format!("pcap file {p}"), e))?;
                let w = Writer::new(BufWriter::with_capacity(1 << 16, f))
                    .map_err(|e| Error::os("write", format!("pcap file {p}"), e))?;
                Sink::File(w)
            }
            TxDst::Iface(fd) => Sink::Iface(fd.clone(), vec![0; MAX_FRAME]),
        };
        Ok(Box::new(PcapTx {
            dst,
            stats: s.stats,
        }))
    }
}

struct PcapRx {
    src: RxSrc,
    next: usize,
    infinite: bool,
    pool: PktmbufPool,
    port: u16,
    buf: Vec<u8>,
    stats: QueueStats,
}

impl RxQueueOps for PcapRx {
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let mut t = Tally::default();
        while t.n < max {
            let r = match &self.src {
                RxSrc::File(c) => {
                    if self.next >= c.records.len() {
                        if !self.infinite || c.records.is_empty() {
                            break;
                        }
                        self.next = 0;
                    }
                    let rec = &c.records[self.next];
                    let r = mbuf_from(&self.pool, self.port, &[&rec.data]);
                    if !matches!(r, Err(RxDrop::NoMbuf)) {
                        self.next += 1;
                    }
                    r
                }
                RxSrc::Iface(fd) => {
                    if self.buf.is_empty() {
                        self.buf = vec![0; MAX_FRAME];
                    }
                    match sys::recv_nb(fd.as_raw_fd(), &mut self.buf) {
                        Ok(Some(len)) if len <= MAX_FRAME => {
                            mbuf_from(&self.pool, self.port, &[&self.buf[..len]])
                        }
                        Ok(Some(_)) => Err(RxDrop::TooBig),
                        Ok(None) => break,
                        Err(_) => {
                            t.errs += 1;
                            break;
                        }
                    }
                }
            };
            if !rx_take(r, out, &mut t, &self.stats) {
                break;
            }
        }
        self.stats.add_rx(&t);
        t.n
    }
}

enum Sink {
    File(Writer<BufWriter<File>>),
    Iface(Arc<OwnedFd>, Vec<u8>),
}

struct PcapTx {
    dst: Sink,
    stats: QueueStats,
}

impl TxQueueOps for PcapTx {
    fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>, max: usize) -> usize {
        let mut t = Tally::default();
        match &mut self.dst {
            Sink::File(w) => {
                let (sec, nsec) = sys::realtime();
                for m in &pkts[..max] {
                    let mut parts: [&[u8]; 16] = [&[]; 16];
                    let mut k = 0;
                    let mut ok = true;
                    for s in m.segments() {
                        if k == parts.len() {
                            ok = false;
                            break;
                        }
                        parts[k] = s;
                        k += 1;
                    }
                    t.n += 1;
                    if !ok || w.write_parts(sec, nsec / 1000, &parts[..k]).is_err() {
                        t.errs += 1;
                        continue;
                    }
                    t.bytes += u64::from(m.pkt_len());
                }
                if w.flush().is_err() {
                    t.errs += 1;
                }
            }
            Sink::Iface(fd, buf) => {
                for m in &pkts[..max] {
                    let Some(len) = copy_out(m, buf) else {
                        t.errs += 1;
                        t.n += 1;
                        continue;
                    };
                    match sys::send_nb(fd.as_raw_fd(), &buf[..len]) {
                        Ok(Some(_)) => t.bytes += len as u64,
                        Ok(None) => break,
                        Err(_) => t.errs += 1,
                    }
                    t.n += 1;
                }
            }
        }
        Mbuf::free_bulk(pkts.drain(..t.n));
        t.errs = t.errs.min(t.n as u64);
        self.stats.add_tx(&t);
        t.n
    }
}
