//! `net_af_packet`: one AF_PACKET socket per queue pair on a kernel interface, each
//! with a TPACKET_V2 PACKET_MMAP RX ring and TX ring, the sockets of a port joined in a
//! PACKET_FANOUT group (flow hash) so the kernel spreads flows over the RX queues.
//! RX copies frames out of the ring into mbufs; TX copies mbufs into ring frames and
//! kicks the kernel with a nonblocking `sendto`. Keys as DPDK's driver: `iface`,
//! `qpairs`, `blocksz`, `framesz`, `framecnt`, `qdisc_bypass`.
//!
//! Ring protocol (Documentation/networking/packet_mmap.rst): a frame belongs to us when
//! its `tp_status` says so (RX: `TP_STATUS_USER`; TX: not `SEND_REQUEST`/`SENDING`)
//! and to the kernel otherwise; we read the status with Acquire before touching the
//! frame (pairs with the kernel's write barrier before it stores the status) and hand a
//! frame back with a Release store after our last access.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use mbuf::{Mbuf, PktmbufPool};

use super::netif::{copy_out, mbuf_from, NetIf, RxDrop};
use crate::driver::{
    DevControl, DriverStats, EthDriver, QueueStats, RxQueueOps, RxSetup, Tally, TxQueueOps,
    TxSetup, VdevCtx, VdevDriver,
};
use crate::error::{Error, Result};
use crate::sys::{self, Tpacket2Hdr, TpacketReq};
use crate::types::{DevCapa, DevInfo, Link, RssHf, RxOffloads, TxOffloads};

pub const DRIVER: VdevDriver = VdevDriver {
    name: "net_af_packet",
    aliases: &["eth_af_packet"],
    keys: &[
        "iface",
        "qpairs",
        "blocksz",
        "framesz",
        "framecnt",
        "qdisc_bypass",
    ],
    create,
};

/// Where RX frame data starts at the latest: the kernel puts the MAC header at
/// `TPACKET_ALIGN(TPACKET2_HDRLEN + 16) - 14 = 66` for Ethernet.
const RX_DATA_OFF: u32 = 66;
/// `sockaddr_ll` follows the aligned header; `sll_pkttype` is at offset 10 in it.
const SLL_PKTTYPE_OFF: usize = 32 + 10;
const PACKET_OUTGOING: u8 = 4;

/// One socket with its two rings.
struct PacketSock {
    fd: OwnedFd,
    map: sys::Mapping,
    frame_size: u32,
    frame_nr: u32,
    frames_per_block: u32,
    block_size: u32,
    ring_len: usize,
}

impl PacketSock {
    /// Address of frame `i` of the RX (`tx = false`) or TX ring.
    #[inline(always)]
    fn frame(&self, tx: bool, i: u32) -> *mut u8 {
        let off = (i / self.frames_per_block) as usize * self.block_size as usize
            + (i % self.frames_per_block) as usize * self.frame_size as usize
            + if tx { self.ring_len } else { 0 };
        // SAFETY: i < frame_nr, so off < 2 * ring_len = the mapping's length.
        unsafe { self.map.as_ptr().add(off) }
    }
}

#[inline(always)]
fn status(h: *mut Tpacket2Hdr) -> &'static AtomicU32 {
    // SAFETY: `tp_status` is an aligned u32 in the mapping, which lives as long as the
    // `PacketSock` the caller holds an Arc to (the 'static is never observed beyond that);
    // the kernel updates it concurrently, hence atomic access only.
    unsafe { AtomicU32::from_ptr(std::ptr::addr_of_mut!((*h).tp_status)) }
}

struct AfPacket {
    netif: NetIf,
    socks: Vec<Arc<PacketSock>>,
    port: u16,
    framesz: u32,
    kernel_packets: u64,
}

fn create(ctx: &VdevCtx<'_>) -> Result<Box<dyn EthDriver>> {
    let a = ctx.args;
    let iface = a
        .get("iface")
        .ok_or_else(|| a.bad("iface", "", "required: the interface to attach to"))?
        .to_string();
    let qpairs = a.num("qpairs", 1, 1, crate::types::MAX_QUEUES as u64)? as usize;
    let page = sys::page_size() as u64;
    let blocksz = a.num("blocksz", page, page, 1 << 26)? as u32;
    let framesz = a.num("framesz", 2048, 128, u64::from(blocksz))? as u32;
    let framecnt = a.num("framecnt", 512, 1, 1 << 20)? as u32;
    let bypass = a.flag("qdisc_bypass")?;
    if u64::from(blocksz) % page != 0 {
        return Err(a.bad(
            "blocksz",
            &blocksz.to_string(),
            &format!("must be a multiple of the page size {page}"),
        ));
    }
    if !framesz.is_multiple_of(16) {
        return Err(a.bad(
            "framesz",
            &framesz.to_string(),
            "must be a multiple of 16 (TPACKET_ALIGNMENT)",
        ));
    }
    let fpb = blocksz / framesz;
    if !framecnt.is_multiple_of(fpb) {
        return Err(a.bad(
            "framecnt",
            &framecnt.to_string(),
            &format!("must be a multiple of blocksz/framesz = {fpb}"),
        ));
    }
    let netif = NetIf::open(&iface)?;
    let req = TpacketReq {
        block_size: blocksz,
        block_nr: framecnt / fpb,
        frame_size: framesz,
        frame_nr: framecnt,
    };
    let fanout_id = (std::process::id() as u16) ^ ctx.port_id.rotate_left(8);
    let mut socks = Vec::with_capacity(qpairs);
    for q in 0..qpairs {
        socks.push(Arc::new(
            open_sock(&netif, &req, bypass, fanout_id).map_err(|e| match e {
                Error::Os { op, what, source } => Error::Os {
                    op,
                    what: format!("{what} (queue pair {q} on {iface})"),
                    source,
                },
                e => e,
            })?,
        ));
    }
    Ok(Box::new(AfPacket {
        netif,
        socks,
        port: ctx.port_id,
        framesz,
        kernel_packets: 0,
    }))
}

fn open_sock(netif: &NetIf, req: &TpacketReq, bypass: bool, fanout_id: u16) -> Result<PacketSock> {
    let os = |op: &'static str, what: &str| {
        let what = what.to_string();
        move |e| Error::os(op, what, e)
    };
    // Protocol 0: receive nothing until bound with ETH_P_ALL below, so no frame of
    // another interface slips into the ring first.
    let fd = sys::packet_socket(0).map_err(os("open", "an AF_PACKET socket"))?;
    sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_VERSION, &sys::TPACKET_V2)
        .map_err(os("set", "PACKET_VERSION"))?;
    sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_LOSS, &1i32)
        .map_err(os("set", "PACKET_LOSS"))?;
    if bypass {
        sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_QDISC_BYPASS, &1i32)
            .map_err(os("set", "PACKET_QDISC_BYPASS"))?;
    }
    sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_RX_RING, req)
        .map_err(os("set up", "the PACKET_RX_RING"))?;
    sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_TX_RING, req)
        .map_err(os("set up", "the PACKET_TX_RING"))?;
    let ring_len = req.block_size as usize * req.block_nr as usize;
    let map = sys::mmap_shared(&fd, 2 * ring_len).map_err(os("map", "the packet rings"))?;
    sys::bind_packet(&fd, netif.index, sys::ETH_P_ALL)
        .map_err(os("bind", &format!("to {}", netif.name)))?;
    let fanout =
        u32::from(fanout_id) | (sys::PACKET_FANOUT_HASH | sys::PACKET_FANOUT_FLAG_DEFRAG) << 16;
    sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_FANOUT, &fanout)
        .map_err(os("join", "the PACKET_FANOUT group"))?;
    Ok(PacketSock {
        fd,
        map,
        frame_size: req.frame_size,
        frame_nr: req.frame_nr,
        frames_per_block: req.block_size / req.frame_size,
        block_size: req.block_size,
        ring_len,
    })
}

impl EthDriver for AfPacket {
    fn info(&self) -> DevInfo {
        let n = self.socks.len() as u16;
        DevInfo {
            capa: DevCapa::MAC_SET | DevCapa::MTU_SET | DevCapa::PROMISC | DevCapa::LINK_SET,
            rx_offload_capa: RxOffloads::VLAN_STRIP,
            tx_offload_capa: TxOffloads::MULTI_SEGS,
            flow_type_rss_offloads: RssHf::IPV4
                | RssHf::IPV6
                | RssHf::NONFRAG_IPV4_TCP
                | RssHf::NONFRAG_IPV4_UDP
                | RssHf::NONFRAG_IPV6_TCP
                | RssHf::NONFRAG_IPV6_UDP,
            max_rx_pktlen: self.framesz - RX_DATA_OFF,
            max_mtu: self.framesz - RX_DATA_OFF - crate::types::ETHER_HDR_LEN,
            if_name: Some(self.netif.name.clone()),
            ..DevInfo::new(DRIVER.name, n, n)
        }
    }

    fn rx_queue_setup(&mut self, s: RxSetup<'_>) -> Result<Box<dyn RxQueueOps>> {
        Ok(Box::new(AfRx {
            s: self.socks[s.queue as usize].clone(),
            next: 0,
            pool: s.pool.clone(),
            port: self.port,
            vlan_strip: s.conf.offloads.contains(RxOffloads::VLAN_STRIP),
            stats: s.stats,
        }))
    }

    fn tx_queue_setup(&mut self, s: TxSetup<'_>) -> Result<Box<dyn TxQueueOps>> {
        Ok(Box::new(AfTx {
            s: self.socks[s.queue as usize].clone(),
            next: 0,
            kick_errors: 0,
            stats: s.stats,
        }))
    }

    fn start(&mut self) -> Result<()> {
        self.netif.set_flag(sys::IFF_UP, true)
    }

    fn link(&mut self) -> Option<Link> {
        Some(self.netif.link())
    }

    fn control(&mut self) -> Option<&mut dyn DevControl> {
        Some(&mut self.netif)
    }

    fn stats(&mut self) -> DriverStats {
        let mut missed = 0;
        for s in &self.socks {
            if let Ok((p, d)) = sys::packet_statistics(s.fd.as_raw_fd()) {
                self.kernel_packets += u64::from(p);
                missed += u64::from(d);
            }
        }
        DriverStats {
            missed,
            xstats: vec![("rx_kernel_packets".into(), self.kernel_packets)],
        }
    }
}

struct AfRx {
    s: Arc<PacketSock>,
    next: u32,
    pool: PktmbufPool,
    port: u16,
    vlan_strip: bool,
    stats: QueueStats,
}

impl RxQueueOps for AfRx {
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let mut t = Tally::default();
        while t.n < max {
            let f = self.s.frame(false, self.next);
            let h = f.cast::<Tpacket2Hdr>();
            let st = status(h).load(Ordering::Acquire); // pairs with the kernel's barrier
            if st & sys::TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the frame is ours until we store TP_STATUS_KERNEL; header fields are
            // plain integers inside the frame.
            let hdr = unsafe { std::ptr::read_volatile(h) };
            // SAFETY: inside the frame (the sockaddr_ll after the aligned header).
            let pkttype = unsafe { f.add(SLL_PKTTYPE_OFF).read_volatile() };
            let (mac, snap) = (hdr.tp_mac as usize, hdr.tp_snaplen as usize);
            let mut give_back = true;
            if pkttype == PACKET_OUTGOING {
                // A frame this host sent on the interface (not one it received): skip.
            } else if mac + snap > self.s.frame_size as usize
                || hdr.tp_len as usize > snap
                || snap < 14
            {
                t.errs += 1; // truncated to the frame size, or nonsense offsets
            } else {
                // SAFETY: bounds checked against the frame; the kernel does not write a frame
                // it has handed to us (status USER) until we give it back below.
                let d = unsafe { std::slice::from_raw_parts(f.add(mac), snap) };
                let vlan = st & sys::TP_STATUS_VLAN_VALID != 0 && hdr.tp_vlan_tci != 0;
                let r = if vlan && !self.vlan_strip {
                    let tpid = if st & sys::TP_STATUS_VLAN_TPID_VALID != 0 && hdr.tp_vlan_tpid != 0
                    {
                        hdr.tp_vlan_tpid
                    } else {
                        0x8100
                    };
                    let mut tag = [0u8; 4];
                    tag[..2].copy_from_slice(&tpid.to_be_bytes());
                    tag[2..].copy_from_slice(&hdr.tp_vlan_tci.to_be_bytes());
                    mbuf_from(&self.pool, self.port, &[&d[..12], &tag, &d[12..]])
                } else {
                    mbuf_from(&self.pool, self.port, &[d])
                };
                match r {
                    Ok(mut m) => {
                        if vlan && self.vlan_strip {
                            m.set_vlan_tci(hdr.tp_vlan_tci);
                            m.set_ol_flags(
                                m.ol_flags()
                                    | mbuf::OlFlags::RX_VLAN
                                    | mbuf::OlFlags::RX_VLAN_STRIPPED,
                            );
                        }
                        t.bytes += u64::from(m.pkt_len());
                        out.push(m);
                        t.n += 1;
                    }
                    Err(RxDrop::NoMbuf) => {
                        // Leave the frame in the ring for the next poll.
                        self.stats.add_nombuf(1);
                        give_back = false;
                    }
                    Err(RxDrop::TooBig) => t.errs += 1,
                }
            }
            if !give_back {
                break;
            }
            // Release: our reads of the frame happen before the kernel reuses it.
            status(h).store(sys::TP_STATUS_KERNEL, Ordering::Release);
            self.next = if self.next + 1 == self.s.frame_nr {
                0
            } else {
                self.next + 1
            };
        }
        self.stats.add_rx(&t);
        t.n
    }
}

struct AfTx {
    s: Arc<PacketSock>,
    next: u32,
    kick_errors: u64,
    stats: QueueStats,
}

impl TxQueueOps for AfTx {
    fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>, max: usize) -> usize {
        let room = self.s.frame_size as usize - sys::TPACKET2_TX_DATA_OFF;
        let mut t = Tally::default();
        for m in &pkts[..max] {
            let f = self.s.frame(true, self.next);
            let h = f.cast::<Tpacket2Hdr>();
            let st = status(h).load(Ordering::Acquire); // pairs with the kernel's release
            if st & (sys::TP_STATUS_SEND_REQUEST | sys::TP_STATUS_SENDING) != 0 {
                break; // ring full
            }
            t.n += 1;
            // SAFETY: the frame is ours (status AVAILABLE); `room` t.bytes after the data offset
            // lie inside it.
            let dst =
                unsafe { std::slice::from_raw_parts_mut(f.add(sys::TPACKET2_TX_DATA_OFF), room) };
            let Some(len) = copy_out(m, dst) else {
                t.errs += 1; // larger than a ring frame: dropped
                continue;
            };
            // SAFETY: our frame; plain header field.
            unsafe { std::ptr::addr_of_mut!((*h).tp_len).write_volatile(len as u32) };
            // Release: the frame contents are written before the kernel sees the request.
            status(h).store(sys::TP_STATUS_SEND_REQUEST, Ordering::Release);
            t.bytes += len as u64;
            self.next = if self.next + 1 == self.s.frame_nr {
                0
            } else {
                self.next + 1
            };
        }
        // A failed kick (link down, device gone) leaves the frames requested: they go
        // with a later kick.
        if t.n > t.errs as usize && sys::kick_tx(self.s.fd.as_raw_fd()).is_err() {
            self.kick_errors += 1;
        }
        Mbuf::free_bulk(pkts.drain(..t.n));
        self.stats.add_tx(&t);
        t.n
    }
}
