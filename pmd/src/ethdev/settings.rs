//! Port settings: link, receive modes, MAC, MTU (control path).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::port::{frame_limit, with_port, PortCtl, PortSlot, State};
use crate::driver::DevControl;
use crate::error::{Error, Result};
use crate::shared::PortShared;
use crate::types::{fmt_mac, DevInfo, Link};

fn software_link(c: &PortCtl, started: bool) -> Link {
    Link {
        speed_mbps: 10_000,
        full_duplex: true,
        autoneg: false,
        up: started && c.link_admin_up,
    }
}

pub(super) fn update_link(c: &mut PortCtl, started: bool) -> Link {
    if c.remote.is_some() {
        // A secondary reads the primary's view; it never writes the shared word.
        return PortShared::link_of(c.shared().link.load(Ordering::Relaxed));
    }
    let l = c.driver.link().unwrap_or_else(|| software_link(c, started));
    c.shared()
        .link
        .store(PortShared::link_word(&l), Ordering::Relaxed);
    l
}

/// Current link state (also written to the shared memzone).
pub fn link_get(port: u16) -> Result<Link> {
    with_port!(port, "get link of", |_s, c| {
        let started = c.state == State::Started;
        Ok(update_link(c, started))
    })
}

/// Poll the link every 10 ms until it is up or `timeout` passes; returns the last state.
pub fn link_wait_up(port: u16, timeout: Duration) -> Result<Link> {
    let t0 = Instant::now();
    loop {
        let l = link_get(port)?;
        if l.up || t0.elapsed() >= timeout {
            return Ok(l);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Set the link up or down (devices: the interface flag; software ports: a flag).
pub fn set_link_up(port: u16, up: bool) -> Result<()> {
    with_port!(port, "set link of", |_s, c| {
        c.primary_only("set link of", port)?;
        c.on_device(|d| d.set_link(up))?;
        c.link_admin_up = up;
        let started = c.state == State::Started;
        update_link(c, started);
        Ok(())
    })
}

/// Switch a receive mode: on the device first (`dev`), then in the port state (`flag`).
fn set_mode(
    port: u16,
    op: &'static str,
    on: bool,
    dev: fn(&mut dyn DevControl, bool) -> Result<()>,
    flag: fn(&mut PortCtl) -> &mut bool,
) -> Result<()> {
    with_port!(port, op, |_s, c| {
        c.primary_only(op, port)?;
        c.on_device(|d| dev(d, on))?;
        *flag(c) = on;
        Ok(())
    })
}

/// Promiscuous mode on/off.
pub fn promiscuous_set(port: u16, on: bool) -> Result<()> {
    set_mode(
        port,
        "set promiscuous mode of",
        on,
        |d, on| d.set_promiscuous(on),
        |c| &mut c.promisc,
    )
}

/// Promiscuous mode state.
pub fn promiscuous_get(port: u16) -> Result<bool> {
    with_port!(port, "get promiscuous mode of", |_s, c| Ok(c.promisc))
}

/// All-multicast mode on/off.
pub fn allmulticast_set(port: u16, on: bool) -> Result<()> {
    set_mode(
        port,
        "set all-multicast mode of",
        on,
        |d, on| d.set_allmulticast(on),
        |c| &mut c.allmulti,
    )
}

/// All-multicast mode state.
pub fn allmulticast_get(port: u16) -> Result<bool> {
    with_port!(port, "get all-multicast mode of", |_s, c| Ok(c.allmulti))
}

/// The port's MAC address.
pub fn mac_addr_get(port: u16) -> Result<[u8; 6]> {
    with_port!(port, "get MAC of", |_s, c| Ok(c.mac))
}

/// Set the port's MAC address (unicast only).
pub fn mac_addr_set(port: u16, mac: [u8; 6]) -> Result<()> {
    with_port!(port, "set MAC of", |_s, c| {
        c.primary_only("set MAC of", port)?;
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(Error::BadState {
                op: "set MAC of",
                port,
                why: format!("{} is not a unicast address", fmt_mac(&mac)),
            });
        }
        c.on_device(|d| d.set_mac(mac))?;
        c.mac = mac;
        c.shared().set_mac(mac);
        Ok(())
    })
}

pub(super) fn check_mtu(port: u16, i: &DevInfo, mtu: u32) -> Result<()> {
    if mtu < i.min_mtu || mtu > i.max_mtu {
        return Err(Error::Unsupported {
            port,
            why: format!("MTU {mtu} outside {}..={}", i.min_mtu, i.max_mtu),
        });
    }
    Ok(())
}

pub(super) fn apply_mtu(s: &PortSlot, c: &mut PortCtl, mtu: u32) -> Result<()> {
    c.on_device(|d| d.set_mtu(mtu))?;
    c.mtu = mtu;
    c.shared().mtu.store(mtu, Ordering::Relaxed);
    s.frame_max
        .store(frame_limit(c.driver.tx_mtu_check(), mtu), Ordering::Relaxed);
    Ok(())
}

/// The port's MTU.
pub fn mtu_get(port: u16) -> Result<u32> {
    with_port!(port, "get MTU of", |_s, c| Ok(c.mtu))
}

/// Set the MTU. TX frames longer than MTU + 14 (Ethernet header; VLAN-tagged frames need
/// an MTU 4 higher) are dropped by `tx_burst`: freed, counted in `oerrors`, and counted
/// as consumed in its return value. Drivers without a wire may opt out of that check
/// (`EthDriver::tx_mtu_check`; only `net_ring` does, like DPDK's).
pub fn mtu_set(port: u16, mtu: u32) -> Result<()> {
    with_port!(port, "set MTU of", |s, c| {
        c.primary_only("set MTU of", port)?;
        let i = c.driver.info();
        check_mtu(port, &i, mtu)?;
        apply_mtu(s, c, mtu)
    })
}
