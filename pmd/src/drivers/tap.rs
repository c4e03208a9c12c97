//! `net_tap`: a kernel TAP interface (`/dev/net/tun`, `IFF_TAP | IFF_NO_PI |
//! IFF_MULTI_QUEUE`), one nonblocking file descriptor per queue pair: RX reads frames
//! the kernel sends out of the interface, TX writes frames the kernel receives on it.
//! Keys: `iface` (default `dtap<port>`), `mac` (`aa:bb:cc:dd:ee:ff`, or `fixed` for
//! DPDK's fixed `00:64:74:61:70:<port>`).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use mbuf::{Mbuf, PktmbufPool};

use super::netif::{mbuf_from, rx_take, NetIf};
use crate::driver::{
    AttachCtx, DevControl, EthDriver, QueueAttach, QueueShare, QueueStats, RxQueueOps, RxSetup,
    Tally, TxQueueOps, TxSetup, VdevCtx, VdevDriver,
};
use crate::error::{Error, Result};
use crate::sys;
use crate::types::{DevCapa, DevInfo, Link, TxOffloads};

pub const DRIVER: VdevDriver = VdevDriver {
    name: "net_tap",
    aliases: &["eth_tap"],
    keys: &["iface", "mac"],
    create,
};

const FLAGS: u16 = sys::IFF_TAP | sys::IFF_NO_PI | sys::IFF_MULTI_QUEUE;
/// Largest frame read (the kernel's TAP limit is 64 KiB).
const MAX_FRAME: usize = 65536;
/// Segments per TX packet written in one `writev`.
const MAX_SEGS: usize = 32;

/// Queues in a secondary process: the queue's TAP descriptor arrives over IPC; no blob.
pub const ATTACH: QueueAttach = QueueAttach {
    rx: |c| {
        let fd = passed_fd(&c)?;
        let pool = c.pool.ok_or_else(|| Error::Mp {
            op: "attach an RX queue of",
            port: c.port,
            why: "no pool recorded for the queue".into(),
        })?;
        Ok(Box::new(TapRx {
            fd,
            pool: pool.clone(),
            port: c.port,
            buf: vec![0; MAX_FRAME],
            stats: c.stats,
        }))
    },
    tx: |c| {
        Ok(Box::new(TapTx {
            fd: passed_fd(&c)?,
            stats: c.stats,
        }))
    },
};

fn passed_fd(c: &AttachCtx<'_>) -> Result<Arc<OwnedFd>> {
    let fd = c.fds.first().ok_or_else(|| Error::Mp {
        op: "attach a queue of",
        port: c.port,
        why: "net_tap: no queue descriptor passed".into(),
    })?;
    fd.try_clone()
        .map(Arc::new)
        .map_err(|e| Error::os("duplicate", "the queue's TAP descriptor", e))
}

struct Tap {
    netif: NetIf,
    fds: Vec<Arc<OwnedFd>>,
    port: u16,
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<std::result::Result<_, _>>()
        .ok()?;
    v.try_into().ok()
}

fn open_queue(name: &str) -> Result<OwnedFd> {
    let fd = sys::tun_open().map_err(|e| Error::os("open", "/dev/net/tun", e))?;
    sys::tun_set_iff(&fd, name, FLAGS)
        .map_err(|e| Error::os("attach", format!("a queue to TAP interface {name}"), e))?;
    Ok(fd)
}

fn create(ctx: &VdevCtx<'_>) -> Result<Box<dyn EthDriver>> {
    let a = ctx.args;
    let name = a
        .get("iface")
        .map(str::to_string)
        .unwrap_or_else(|| format!("dtap{}", ctx.port_id));
    if name.is_empty()
        || name.len() >= sys::IFNAMSIZ
        || name.contains('/')
        || name.contains(char::is_whitespace)
    {
        return Err(a.bad(
            "iface",
            &name,
            &format!(
                "interface names are 1..{} characters without '/' or spaces",
                sys::IFNAMSIZ
            ),
        ));
    }
    let mac =
        match a.get("mac") {
            None => None,
            Some("fixed") => Some([0x00, 0x64, 0x74, 0x61, 0x70, ctx.port_id as u8]),
            Some(m) => Some(parse_mac(m).filter(|m| m[0] & 1 == 0).ok_or_else(|| {
                a.bad("mac", m, "expected a unicast aa:bb:cc:dd:ee:ff or 'fixed'")
            })?),
        };
    let fd = open_queue(&name)?;
    let netif = NetIf::open(&name)?;
    if let Some(m) = mac {
        netif.set_mac(m)?;
    }
    Ok(Box::new(Tap {
        netif,
        fds: vec![Arc::new(fd)],
        port: ctx.port_id,
    }))
}

impl EthDriver for Tap {
    fn info(&self) -> DevInfo {
        DevInfo {
            capa: DevCapa::MAC_SET | DevCapa::MTU_SET | DevCapa::PROMISC | DevCapa::LINK_SET,
            tx_offload_capa: TxOffloads::MULTI_SEGS,
            max_rx_pktlen: MAX_FRAME as u32,
            max_mtu: 65521,
            if_name: Some(self.netif.name.clone()),
            ..DevInfo::new(
                DRIVER.name,
                crate::types::MAX_QUEUES as u16,
                crate::types::MAX_QUEUES as u16,
            )
        }
    }

    fn configure(
        &mut self,
        nb_rxq: u16,
        nb_txq: u16,
        _c: &crate::types::EthConf,
    ) -> std::result::Result<(), String> {
        let want = usize::from(nb_rxq.max(nb_txq)).max(1);
        while self.fds.len() < want {
            self.fds.push(Arc::new(
                open_queue(&self.netif.name).map_err(|e| e.to_string())?,
            ));
        }
        Ok(())
    }

    fn rx_queue_setup(&mut self, s: RxSetup<'_>) -> Result<Box<dyn RxQueueOps>> {
        Ok(Box::new(TapRx {
            fd: self.fds[s.queue as usize].clone(),
            pool: s.pool.clone(),
            port: self.port,
            buf: vec![0; MAX_FRAME],
            stats: s.stats,
        }))
    }

    fn tx_queue_setup(&mut self, s: TxSetup<'_>) -> Result<Box<dyn TxQueueOps>> {
        Ok(Box::new(TapTx {
            fd: self.fds[s.queue as usize].clone(),
            stats: s.stats,
        }))
    }

    fn start(&mut self) -> Result<()> {
        self.netif.set_flag(sys::IFF_UP, true)
    }

    fn stop(&mut self) -> Result<()> {
        self.netif.set_flag(sys::IFF_UP, false)
    }

    fn link(&mut self) -> Option<Link> {
        Some(self.netif.link())
    }

    fn share_queue(&mut self, _rx: bool, q: u16) -> Option<Result<QueueShare>> {
        let fd = self.fds.get(q as usize)?;
        Some(
            fd.try_clone()
                .map(|fd| QueueShare {
                    blob: Vec::new(),
                    fds: vec![fd],
                })
                .map_err(|e| Error::os("duplicate", "the queue's TAP descriptor", e)),
        )
    }

    fn control(&mut self) -> Option<&mut dyn DevControl> {
        Some(&mut self.netif)
    }
}

struct TapRx {
    fd: Arc<OwnedFd>,
    pool: PktmbufPool,
    port: u16,
    buf: Vec<u8>,
    stats: QueueStats,
}

impl RxQueueOps for TapRx {
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let mut t = Tally::default();
        while t.n < max {
            let len = match sys::read_nb(self.fd.as_raw_fd(), &mut self.buf) {
                Ok(Some(l)) if l > 0 => l,
                Ok(_) => break,
                Err(_) => {
                    t.errs += 1;
                    break;
                }
            };
            let r = mbuf_from(&self.pool, self.port, &[&self.buf[..len]]);
            if !rx_take(r, out, &mut t, &self.stats) {
                break;
            }
        }
        self.stats.add_rx(&t);
        t.n
    }
}

struct TapTx {
    fd: Arc<OwnedFd>,
    stats: QueueStats,
}

impl TxQueueOps for TapTx {
    fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>, max: usize) -> usize {
        let mut t = Tally::default();
        for m in &pkts[..max] {
            let mut iov = [IoSlice::new(&[]); MAX_SEGS];
            let mut k = 0;
            for s in m.segments() {
                if k == MAX_SEGS {
                    k = MAX_SEGS + 1;
                    break;
                }
                iov[k] = IoSlice::new(s);
                k += 1;
            }
            if k > MAX_SEGS {
                t.errs += 1; // more segments than one writev takes here: dropped
                t.n += 1;
                continue;
            }
            match sys::writev_nb(self.fd.as_raw_fd(), &iov[..k]) {
                Ok(Some(_)) => t.bytes += u64::from(m.pkt_len()),
                Ok(None) => break,     // queue full: the rest stay with the caller
                Err(_) => t.errs += 1, // refused by the kernel (e.g. link down): dropped
            }
            t.n += 1;
        }
        Mbuf::free_bulk(pkts.drain(..t.n));
        self.stats.add_tx(&t);
        t.n
    }
}
