//! Helpers shared by the drivers that sit on kernel interfaces (AF_PACKET, TAP, pcap
//! live capture): interface control through ioctls, and copying frames into and out of
//! mbufs.

use std::os::fd::OwnedFd;

use mbuf::{Mbuf, PktmbufPool};

use crate::driver::{DevControl, QueueStats, Tally};
use crate::error::{Error, Result};
use crate::sys;
use crate::types::Link;

/// A kernel network interface, controlled through an `AF_INET` datagram socket made in
/// the caller's network namespace.
pub struct NetIf {
    ctl: OwnedFd,
    pub name: String,
    pub index: i32,
}

impl NetIf {
    /// Open the interface named by the required devarg `iface` (AF_PACKET, AF_XDP).
    pub fn from_args(a: &crate::vdev::VdevArgs) -> Result<NetIf> {
        let iface = a
            .get("iface")
            .ok_or_else(|| a.bad("iface", "", "required: the interface to attach to"))?;
        NetIf::open(iface)
    }

    /// Open interface `name`; [`Error::NoSuchInterface`] if it does not exist here.
    pub fn open(name: &str) -> Result<NetIf> {
        if name.is_empty() || name.len() >= sys::IFNAMSIZ {
            return Err(Error::NoSuchInterface { iface: name.into() });
        }
        let ctl = sys::ctl_socket().map_err(|e| Error::os("open", "a control socket", e))?;
        let index = match sys::if_index(&ctl, name) {
            Ok(i) => i,
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                return Err(Error::NoSuchInterface { iface: name.into() })
            }
            Err(e) => return Err(Error::os("look up", format!("interface {name}"), e)),
        };
        Ok(NetIf {
            ctl,
            name: name.into(),
            index,
        })
    }

    /// The interface's RX queue count (ethtool channels), `None` if the driver does not
    /// tell.
    pub fn rx_queues(&self) -> Option<u32> {
        sys::rx_queue_count(&self.ctl, &self.name).ok()
    }

    fn flags(&self) -> Result<u16> {
        sys::if_flags(&self.ctl, &self.name)
            .map_err(|e| Error::os("get flags of", self.name.clone(), e))
    }

    /// Set or clear interface flag bits.
    pub fn set_flag(&self, bit: u16, on: bool) -> Result<()> {
        let f = self.flags()?;
        let nf = if on { f | bit } else { f & !bit };
        if nf != f {
            sys::set_if_flags(&self.ctl, &self.name, nf)
                .map_err(|e| Error::os("set flags of", self.name.clone(), e))?;
        }
        Ok(())
    }

    /// Link as the kernel sees it: up when administratively up and running (carrier).
    /// Speed is reported as 10 Gb/s (virtual interfaces have none).
    pub fn link(&self) -> Link {
        let f = self.flags().unwrap_or(0);
        Link {
            speed_mbps: 10_000,
            full_duplex: true,
            autoneg: false,
            up: f & sys::IFF_UP != 0 && f & sys::IFF_RUNNING != 0,
        }
    }

    pub fn mac(&self) -> Result<[u8; 6]> {
        sys::if_hwaddr(&self.ctl, &self.name)
            .map_err(|e| Error::os("get MAC of", self.name.clone(), e))
    }

    pub fn set_mac(&self, m: [u8; 6]) -> Result<()> {
        sys::set_if_hwaddr(&self.ctl, &self.name, m)
            .map_err(|e| Error::os("set MAC of", self.name.clone(), e))
    }

    pub fn set_mtu(&self, m: u32) -> Result<()> {
        sys::set_if_mtu(&self.ctl, &self.name, m)
            .map_err(|e| Error::os("set MTU of", self.name.clone(), e))
    }
}

/// A kernel interface's settings are the port's (TAP, AF_PACKET): link up/down is the
/// interface's `IFF_UP`, the receive modes its `IFF_PROMISC`/`IFF_ALLMULTI`.
impl DevControl for NetIf {
    fn set_link(&mut self, up: bool) -> Result<()> {
        self.set_flag(sys::IFF_UP, up)
    }

    fn set_promiscuous(&mut self, on: bool) -> Result<()> {
        self.set_flag(sys::IFF_PROMISC, on)
    }

    fn set_allmulticast(&mut self, on: bool) -> Result<()> {
        self.set_flag(sys::IFF_ALLMULTI, on)
    }

    fn mac(&mut self) -> Option<[u8; 6]> {
        NetIf::mac(self).ok()
    }

    fn set_mac(&mut self, mac: [u8; 6]) -> Result<()> {
        NetIf::set_mac(self, mac)
    }

    fn set_mtu(&mut self, mtu: u32) -> Result<()> {
        NetIf::set_mtu(self, mtu)
    }
}

/// Why a received frame did not become an mbuf.
pub enum RxDrop {
    /// The pool ran dry.
    NoMbuf,
    /// The frame needs more segments than an mbuf chain can hold.
    TooBig,
}

/// Copy the concatenation of `parts` into a fresh mbuf (chaining more segments if it
/// does not fit in one), tagged with `port`.
pub fn mbuf_from(
    pool: &PktmbufPool,
    port: u16,
    parts: &[&[u8]],
) -> std::result::Result<Mbuf, RxDrop> {
    let mut head = Mbuf::alloc(pool).ok_or(RxDrop::NoMbuf)?;
    head.set_port(port);
    let mut cur: Option<Mbuf> = None; // segment being filled when not the head
    for p in parts {
        let mut p: &[u8] = p;
        while !p.is_empty() {
            let seg = cur.as_mut().unwrap_or(&mut head);
            let room = seg.tailroom() as usize;
            if room == 0 {
                let next = Mbuf::alloc(pool).ok_or(RxDrop::NoMbuf)?;
                if let Some(done) = cur.replace(next) {
                    head.chain(done).map_err(|_| RxDrop::TooBig)?;
                }
                continue;
            }
            let k = room.min(p.len());
            match seg.append(k as u16) {
                Ok(d) => d.copy_from_slice(&p[..k]),
                Err(_) => return Err(RxDrop::TooBig),
            }
            p = &p[k..];
        }
    }
    if let Some(done) = cur {
        head.chain(done).map_err(|_| RxDrop::TooBig)?;
    }
    Ok(head)
}

/// Copy a packet's bytes (all segments) into `dst`; returns the length, or `None` if
/// it does not fit.
pub fn copy_out(m: &Mbuf, dst: &mut [u8]) -> Option<usize> {
    let len = m.pkt_len() as usize;
    if len > dst.len() {
        return None;
    }
    let mut off = 0;
    for s in m.segments() {
        dst[off..off + s.len()].copy_from_slice(s);
        off += s.len();
    }
    Some(off)
}

/// Hand one frame copied into an mbuf (or why it was not) to a receive burst: a packet
/// is appended to `out` and counted in `t`, a frame too big for a chain counted as an
/// error. Returns false when the pool ran dry (counted in `nombuf`): the burst ends.
#[inline]
pub fn rx_take(
    r: std::result::Result<Mbuf, RxDrop>,
    out: &mut Vec<Mbuf>,
    t: &mut Tally,
    stats: &QueueStats,
) -> bool {
    match r {
        Ok(m) => {
            t.bytes += u64::from(m.pkt_len());
            out.push(m);
            t.n += 1;
            true
        }
        Err(RxDrop::NoMbuf) => {
            stats.add_nombuf(1);
            false
        }
        Err(RxDrop::TooBig) => {
            t.errs += 1;
            true
        }
    }
}
