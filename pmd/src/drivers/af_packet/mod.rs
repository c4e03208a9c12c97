//! `net_af_packet`: one AF_PACKET socket per queue pair on a kernel interface, each
//! with a PACKET_MMAP RX ring and TX ring, the sockets of a port joined in a
//! PACKET_FANOUT group (flow hash) so the kernel spreads flows over the RX queues.
//!
//! * RX ([`rx`]): TPACKET_V3 block rings where the kernel has them (many frames per
//!   block, one status check per block, the block retired when its last frame is
//!   consumed), TPACKET_V2 frame rings where `PACKET_VERSION` refuses V3. Frames are
//!   copied into mbufs.
//! * TX ([`tx`]): one nonblocking `sendmmsg` per burst straight from the mbufs (no TX
//!   ring); or (`tx_ring=1`, DPDK's way) mbufs copied into the frames of a TX ring, one
//!   `sendto` per burst.
//!   `qdisc_bypass=1` sends straight to the driver (`PACKET_QDISC_BYPASS`).
//!
//! Keys as DPDK's driver: `iface`, `qpairs`, `blocksz`, `framesz`, `framecnt`,
//! `qdisc_bypass`; and ours: `tpacket_version` (3, the default: V3 if the kernel has it,
//! else V2; 2: V2 always), for the fallback path, and `tx_ring` (0, the default:
//! `sendmmsg`; 1: a TX ring).

mod ring;
mod rx;
mod tx;

use std::os::fd::AsRawFd;
use std::sync::Arc;

use super::netif::NetIf;
use crate::driver::{
    AttachCtx, DevControl, DriverStats, EthDriver, QueueAttach, QueueShare, RxQueueOps, RxSetup,
    TxQueueOps, TxSetup, VdevCtx, VdevDriver,
};
use crate::error::{Error, Result};
use crate::sys;
use crate::types::{DevCapa, DevInfo, Link, RssHf, RxOffloads, TxOffloads};
use ring::{open_sock, Geometry, PacketSock, Version};

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
        "tpacket_version",
        "tx_ring",
    ],
    create,
};

/// Queues in a secondary process: the queue pair's socket arrives as a descriptor, its
/// rings are mapped again ([`PacketSock::attach`]); the ring cursors are in the queue's
/// shared words, so the walk goes on where the last owner left it. The blob is the
/// socket's [`PacketSock::share_blob`] and a VLAN-strip flag (RX).
pub const ATTACH: QueueAttach = QueueAttach {
    rx: |c| {
        let (s, vlan_strip) = attach_sock(&c)?;
        let pool = c.pool.ok_or_else(|| Error::Mp {
            op: "attach an RX queue of",
            port: c.port,
            why: "no pool recorded for the queue".into(),
        })?;
        let com = rx::RxCommon {
            pool: pool.clone(),
            port: c.port,
            vlan_strip,
            stats: c.stats,
        };
        Ok(match s.version {
            Version::V3 => Box::new(rx::RxV3::new(s, com)),
            Version::V2 => Box::new(rx::RxV2::new(s, com)),
        })
    },
    tx: |c| Ok(tx_queue(attach_sock(&c)?.0, c.stats)),
};

/// The TX queue of a socket: through its TX ring if it has one, else `sendmmsg`.
fn tx_queue(s: Arc<PacketSock>, stats: crate::driver::QueueStats) -> Box<dyn TxQueueOps> {
    if s.tx_ring {
        Box::new(tx::Tx::new(s, stats))
    } else {
        Box::new(tx::TxSend::new(s, stats))
    }
}

fn attach_sock(c: &AttachCtx<'_>) -> Result<(Arc<PacketSock>, bool)> {
    let bad = |why: String| Error::Mp {
        op: "attach a queue of",
        port: c.port,
        why: format!("net_af_packet: {why}"),
    };
    let mut fds = c.fds.iter();
    let fd = fds
        .next()
        .ok_or_else(|| bad("no socket descriptor passed".into()))?
        .try_clone()
        .map_err(|e| bad(format!("duplicate the socket descriptor: {e}")))?;
    let (geo, flag) = c.blob.split_at(c.blob.len().saturating_sub(1));
    let s = PacketSock::attach(fd, geo).map_err(bad)?;
    Ok((Arc::new(s), flag.first() == Some(&1)))
}

struct AfPacket {
    netif: NetIf,
    socks: Vec<Arc<PacketSock>>,
    /// VLAN stripping asked for per RX queue (sent along when a queue is shared).
    vlan_strip: Vec<bool>,
    port: u16,
    framesz: u32,
    kernel_packets: u64,
}

fn create(ctx: &VdevCtx<'_>) -> Result<Box<dyn EthDriver>> {
    let a = ctx.args;
    let netif = NetIf::from_args(a)?;
    let qpairs = a.num("qpairs", 1, 1, crate::types::MAX_QUEUES as u64)? as usize;
    let page = sys::page_size() as u64;
    let blocksz = a.num("blocksz", page, page, 1 << 26)? as u32;
    let framesz = a.num("framesz", 2048, 128, u64::from(blocksz))? as u32;
    let framecnt = a.num("framecnt", 512, 1, 1 << 20)? as u32;
    let bypass = a.flag("qdisc_bypass")?;
    let allow_v3 = a.num("tpacket_version", 3, 2, 3)? == 3;
    let tx_ring = a.num("tx_ring", 0, 0, 1)? == 1;
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
    let g = Geometry {
        block_size: blocksz,
        frame_size: framesz,
        frame_nr: framecnt,
    };
    let fanout_id = (std::process::id() as u16) ^ ctx.port_id.rotate_left(8);
    let mut socks = Vec::with_capacity(qpairs);
    for q in 0..qpairs {
        socks.push(Arc::new(
            open_sock(&netif, g, bypass, fanout_id, allow_v3, tx_ring).map_err(|e| match e {
                Error::Os { op, what, source } => Error::Os {
                    op,
                    what: format!("{what} (queue pair {q} on {})", netif.name),
                    source,
                },
                e => e,
            })?,
        ));
    }
    Ok(Box::new(AfPacket {
        netif,
        vlan_strip: vec![false; socks.len()],
        socks,
        port: ctx.port_id,
        framesz,
        kernel_packets: 0,
    }))
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
            max_rx_pktlen: self.framesz - self.version().rx_data_off(),
            max_mtu: self.framesz - self.version().rx_data_off() - crate::types::ETHER_HDR_LEN,
            if_name: Some(self.netif.name.clone()),
            ..DevInfo::new(DRIVER.name, n, n)
        }
    }

    fn rx_queue_setup(&mut self, s: RxSetup<'_>) -> Result<Box<dyn RxQueueOps>> {
        let sock = self.socks[s.queue as usize].clone();
        let vlan_strip = s.conf.offloads.contains(RxOffloads::VLAN_STRIP);
        self.vlan_strip[s.queue as usize] = vlan_strip;
        let c = rx::RxCommon {
            pool: s.pool.clone(),
            port: self.port,
            vlan_strip,
            stats: s.stats,
        };
        Ok(match sock.version {
            Version::V3 => Box::new(rx::RxV3::new(sock, c)),
            Version::V2 => Box::new(rx::RxV2::new(sock, c)),
        })
    }

    fn tx_queue_setup(&mut self, s: TxSetup<'_>) -> Result<Box<dyn TxQueueOps>> {
        Ok(tx_queue(self.socks[s.queue as usize].clone(), s.stats))
    }

    fn start(&mut self) -> Result<()> {
        self.netif.set_flag(sys::IFF_UP, true)
    }

    fn link(&mut self) -> Option<Link> {
        Some(self.netif.link())
    }

    fn share_queue(&mut self, rx: bool, q: u16) -> Option<Result<QueueShare>> {
        let s = self.socks.get(q as usize)?;
        let mut blob = s.share_blob();
        blob.push(u8::from(rx && self.vlan_strip[q as usize]));
        Some(
            s.fd.try_clone()
                .map(|fd| QueueShare {
                    blob,
                    fds: vec![fd],
                })
                .map_err(|e| Error::os("duplicate", "the queue's AF_PACKET socket", e)),
        )
    }

    fn control(&mut self) -> Option<&mut dyn DevControl> {
        Some(&mut self.netif)
    }

    fn stats(&mut self) -> DriverStats {
        let v3 = u64::from(self.version() == Version::V3);
        let mut missed = 0;
        for s in &self.socks {
            if let Ok((p, d)) = sys::packet_statistics(s.fd.as_raw_fd()) {
                self.kernel_packets += u64::from(p);
                missed += u64::from(d);
            }
        }
        DriverStats {
            missed,
            xstats: vec![
                ("rx_kernel_packets".into(), self.kernel_packets),
                ("tpacket_v3".into(), v3),
                (
                    "tx_ring".into(),
                    u64::from(self.socks.first().is_some_and(|s| s.tx_ring)),
                ),
            ],
        }
    }
}

impl AfPacket {
    /// The ring format of the port's sockets (all the same: one kernel).
    fn version(&self) -> Version {
        self.socks.first().map_or(Version::V2, |s| s.version)
    }
}
