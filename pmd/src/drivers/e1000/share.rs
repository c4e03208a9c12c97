//! An e1000 queue driven by another process of the EAL group (multi-process ethdev,
//! [`crate::queue_claim`]), in the model of DPDK's secondary-process e1000.
//!
//! The primary's [`share_queue`] hands over what the secondary cannot find itself: the
//! device ([`eal::device::Device::share`]: VFIO device, container and group fds over
//! `SCM_RIGHTS`, BAR 0's address) and where the queue's ring is (address, IOVA,
//! descriptors). The secondary ([`ATTACH`]) opens the device from that
//! ([`eal::device::Device::attach`]), maps BAR 0 at the primary's address (refused
//! clearly if that range is taken here), and drives the same ring and mbuf slots in EAL
//! memory from the cursors in the queue's shared words. One device object per process
//! serves every queue of the device this process claims.
//!
//! Blob: PCI address length u8 | address | device share length u8 | device share |
//! ring address u64 | ring IOVA u64 | descriptors u16 (little endian).

use std::sync::{Arc, Mutex, Weak};

use eal::device::share::DeviceShare;
use eal::device::Device;
use eal::pci::PciAddr;

use super::hw::{Hw, NAME};
use super::regs::{self, RxDesc, TxDesc};
use super::ring::{Geometry, Ring};
use super::rx::RxQueue;
use super::tx::TxQueue;
use crate::driver::{AttachCtx, QueueAttach, QueueShare, RxQueueOps, TxQueueOps};
use crate::error::{Error, Result};

/// The secondary-process queue constructors of `net_e1000_em`.
pub const ATTACH: QueueAttach = QueueAttach {
    rx: attach_rx,
    tx: attach_tx,
};

/// The devices this process attached to, by PCI address: every queue claimed on one
/// device shares its mapping (BAR 0 can be mapped at the primary's address only once).
static ATTACHED: Mutex<Vec<(String, Weak<Hw>)>> = Mutex::new(Vec::new());

fn mp_err(port: u16, why: String) -> Error {
    Error::Mp {
        op: "take over a queue of",
        port,
        why: format!("{NAME}: {why}"),
    }
}

/// Primary: what another process needs to drive RX (`rx`) or TX queue `q`.
pub(super) fn share_queue(hw: &Hw, rx: bool, q: u16) -> Result<QueueShare> {
    let geo = if rx { &hw.rx_geo } else { &hw.tx_geo };
    let geo = (*geo.lock().unwrap_or_else(|e| e.into_inner())).filter(|_| q == 0);
    let Some(g) = geo else {
        return Err(mp_err(
            u16::MAX,
            format!("{} queue {q} of {} is not set up", dir(rx), hw.addr),
        ));
    };
    let dev = hw.dev.share().map_err(hw.eal_err("share", "the device"))?;
    Ok(QueueShare {
        blob: encode(&hw.addr, &dev.bytes, g),
        fds: dev.fds,
    })
}

fn dir(rx: bool) -> &'static str {
    if rx {
        "RX"
    } else {
        "TX"
    }
}

fn encode(addr: &str, dev: &[u8], g: Geometry) -> Vec<u8> {
    let mut b = vec![addr.len() as u8];
    b.extend(addr.as_bytes());
    b.push(dev.len() as u8);
    b.extend(dev);
    b.extend(g.va.0.to_le_bytes());
    b.extend(g.iova.0.to_le_bytes());
    b.extend(g.n.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> std::result::Result<(String, Vec<u8>, Geometry), String> {
    let short = || format!("queue description of {} bytes is cut short", b.len());
    let alen = usize::from(*b.first().ok_or_else(short)?);
    let addr = b.get(1..1 + alen).ok_or_else(short)?;
    let addr = std::str::from_utf8(addr)
        .map_err(|_| "PCI address is not text".to_string())?
        .to_string();
    let dlen = usize::from(*b.get(1 + alen).ok_or_else(short)?);
    let at = 2 + alen;
    let dev = b.get(at..at + dlen).ok_or_else(short)?.to_vec();
    let tail = b.get(at + dlen..).ok_or_else(short)?;
    if tail.len() != 18 {
        return Err(short());
    }
    let u64_at = |o: usize| u64::from_le_bytes(tail[o..o + 8].try_into().expect("8 bytes"));
    Ok((
        addr,
        dev,
        Geometry {
            va: eal::VirtAddr(u64_at(0)),
            iova: eal::Iova(u64_at(8)),
            n: u16::from_le_bytes([tail[16], tail[17]]),
        },
    ))
}

/// This process's device object for the device in `c`'s blob: the one made for an
/// earlier claim, or a new one opened from the primary's share.
fn hw_for(c: &mut AttachCtx<'_>, addr: &str, dev: Vec<u8>) -> Result<Arc<Hw>> {
    let mut v = ATTACHED.lock().unwrap_or_else(|e| e.into_inner());
    v.retain(|(_, w)| w.strong_count() > 0);
    if let Some(hw) = v
        .iter()
        .find(|(a, _)| a == addr)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(hw); // the descriptors sent along are duplicates: closed with `c`
    }
    let pci: PciAddr = addr
        .parse()
        .map_err(|_| mp_err(c.port, format!("bad PCI address '{addr}'")))?;
    let eal_err = |op: &'static str| {
        move |source: eal::Error| Error::Eal {
            op,
            what: format!("e1000 {addr} in this secondary process"),
            source: source.into(),
        }
    };
    let device = Device::attach(
        c.eal,
        pci,
        DeviceShare {
            bytes: dev,
            fds: std::mem::take(&mut c.fds),
        },
    )
    .map_err(eal_err("open"))?;
    let bar = device.bar(0).map_err(eal_err("map BAR 0 of"))?;
    if bar.len() < regs::BAR0_MIN_LEN {
        return Err(mp_err(
            c.port,
            format!("BAR 0 of {addr} is {:#x} bytes", bar.len()),
        ));
    }
    let hw = Arc::new(Hw::new(device, bar, addr.to_string()));
    v.push((addr.to_string(), Arc::downgrade(&hw)));
    eal::log_info!(
        "{NAME} {addr}: attached in this process via {:?}, BAR 0 at {}",
        hw.dev.backend(),
        hw.bar.base()
    );
    Ok(hw)
}

/// Decode the blob and find the device and the ring of type `T`.
fn attach_parts<T: regs::DmaPod>(c: &mut AttachCtx<'_>) -> Result<(Arc<Hw>, Ring<T>)> {
    let (addr, dev, g) = decode(c.blob).map_err(|why| mp_err(c.port, why))?;
    let hw = hw_for(c, &addr, dev)?;
    let ring = Ring::<T>::attach(c.eal, g).map_err(|why| mp_err(c.port, why))?;
    Ok((hw, ring))
}

fn attach_rx(mut c: AttachCtx<'_>) -> Result<Box<dyn RxQueueOps>> {
    let (hw, ring) = attach_parts::<RxDesc>(&mut c)?;
    let pool = c
        .pool
        .ok_or_else(|| mp_err(c.port, "the RX queue has no pool recorded".into()))?;
    Ok(Box::new(RxQueue::attach(hw, ring, pool, c.stats)))
}

fn attach_tx(mut c: AttachCtx<'_>) -> Result<Box<dyn TxQueueOps>> {
    let (hw, ring) = attach_parts::<TxDesc>(&mut c)?;
    Ok(Box::new(TxQueue::attach(hw, ring, c.stats)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_round_trip_and_rejects() {
        let g = Geometry {
            va: eal::VirtAddr(0x7f00_0000_1000),
            iova: eal::Iova(0x1_2345_6000),
            n: 256,
        };
        let b = encode("0000:00:03.0", &[1, 2, 3], g);
        assert!(b.len() <= crate::driver::SHARE_BLOB_MAX);
        let (a, d, g2) = decode(&b).unwrap();
        assert_eq!(
            (a.as_str(), d.as_slice(), g2),
            ("0000:00:03.0", &[1u8, 2, 3][..], g)
        );
        for cut in [0, 1, 5, 14, b.len() - 1] {
            assert!(decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = b.clone();
        long.push(0);
        assert!(decode(&long).is_err());
    }
}
