//! Helpers shared by the drivers that sit on kernel interfaces (AF_PACKET, TAP, pcap
//! live capture): interface control through ioctls, and copying frames into and out of
//! mbufs.

use std::os::fd::OwnedFd;

use mbuf::{Mbuf, PktmbufPool};

use crate::{sys, Error, Link, Result};

/// A kernel network interface, controlled through an `AF_INET` datagram socket made in
/// the caller's network namespace.
pub struct NetIf {
    ctl: OwnedFd,
    pub name: String,
    pub index: i32,
}

impl NetIf {
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
