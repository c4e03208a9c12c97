//! `net_virtio`: poll-mode driver for virtio-net 1.x devices over PCI (1af4:1041, and
//! the modern interface of transitional 1af4:1000 devices), through VFIO or UIO.
//!
//! The virtio structures are in [`spec`] (cited by section of the virtio 1.2
//! specification), the PCI transport (capabilities, register windows) in [`transport`],
//! the initialisation state machine in [`init`].
//!
//! # Bring-up
//!
//! Probe opens the device ([`eal::device::Device::open`]: VFIO or UIO by the driver
//! bound now), finds the common, notify, ISR and device configuration structures by
//! their vendor capabilities, maps their BARs, and runs the virtio sequence (reset,
//! ACKNOWLEDGE, DRIVER, feature negotiation, FEATURES_OK, checked) before turning bus
//! mastering on. It reads the MAC, the link state and the number of queue pairs from the
//! device configuration and sets up the control queue. Queue setup programs receiveq
//! / transmitq `q` (virtqueues `2q` / `2q+1`); `start` writes DRIVER_OK, then sets the
//! number of queue pairs (MQ), the receive modes (CTRL_RX) and a changed MAC
//! (CTRL_MAC_ADDR) through the control queue.
//!
//! Features accepted when offered: VERSION_1 (required), ACCESS_PLATFORM, MAC, STATUS,
//! MRG_RXBUF, CTRL_VQ, CTRL_RX, CTRL_MAC_ADDR, MQ, MTU, SPEED_DUPLEX. No offloads, no
//! packed rings (QEMU 7.2 does not offer them by default), no EVENT_IDX: QEMU offers it,
//! but DPDK 22.11's net_virtio does not take it either, and the split ring's `used.flags`
//! NO_NOTIFY already spares most notifications. Doorbell writes are the costly part in a
//! VM (each is an exit into the hypervisor): one per TX burst at most, and on RX only
//! when the device asks (it sets NO_NOTIFY while it has buffers); QEMU's trace counts
//! about 31 per 1000 forwarded packets in testpmd io forwarding, the same as DPDK's
//! driver (PERFORMANCE.md). No ISR or device-config read on the data path.
//!
//! A device without ACCESS_PLATFORM bypasses the IOMMU: its DMA addresses are
//! physical. It is refused under VFIO unless the EAL runs with `--iova-mode pa` (QEMU:
//! give the device `iommu_platform=on` instead).
//!
//! # Threads
//!
//! As in the e1000 driver: control path under the port lock; each queue polled by one
//! thread at a time, touching only its own virtqueue memory and its notify register.
//! No locks, no allocation, no system calls on the data path.
//!
//! # DMA memory
//!
//! Virtqueues and the control buffer are EAL DMA memory (4 KiB aligned, zeroed). RX
//! buffers are mbufs of the queue's pool, posted at their data address minus the
//! 12-byte header (which lands in the headroom); TX writes the header into each mbuf's
//! headroom. virtio 1.x cannot disable a single queue, so releasing any queue of a
//! device that ran resets the whole device first (all DMA stops); after that the port
//! must be closed and probed again to run.
//!
//! # Statistics
//!
//! Queue counters are counted by the bursts. xstats: the negotiated feature bits, the
//! queue pairs, control commands done and refused, notifications sent per virtqueue.
//! virtio has no device drop counter (`imissed` stays 0).

mod ctrl;
mod hw;
mod init;
mod rx;
#[allow(dead_code)] // the spec's full set of bits; not every one is used
pub mod spec;
mod transport;
mod tx;
mod vq;

#[cfg(test)]
mod fake;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use eal::device::{Backend, Device, MmioRegion, PCI_COMMAND, PCI_COMMAND_MEMORY};
use eal::pci::PciDevice;
use eal::Eal;

use crate::driver::{
    DevControl, DriverStats, EthDriver, PciDriver, PciId, RxQueueOps, RxSetup, TxQueueOps, TxSetup,
};
use crate::error::{Error, Result};
use crate::types::{fmt_mac, DescLim, DevCapa, DevInfo, EthConf, Link};

use ctrl::CtrlQueue;
use hw::Hw;
use init::{Init, State};
use spec::{ctrl as cmd, feature, net_cfg};
use transport::{find_caps, Common, Regs, Window};

pub use hw::NAME;

/// PCI ids handled: the modern and the transitional network device.
pub const PCI_IDS: &[PciId] = &[
    PciId {
        vendor: spec::PCI_VENDOR,
        device: spec::PCI_DEVICE_NET_MODERN,
    },
    PciId {
        vendor: spec::PCI_VENDOR,
        device: spec::PCI_DEVICE_NET_TRANSITIONAL,
    },
];

/// The registry entry.
pub const DRIVER: PciDriver = PciDriver {
    name: NAME,
    id_table: PCI_IDS,
    probe,
};

/// Speed reported when the device does not say (as DPDK's virtio driver: 10G).
const DEFAULT_SPEED_MBPS: u32 = 10_000;

/// The features this driver accepts from those `offered`, given whether its IOVAs are
/// physical addresses (`iova_is_pa`).
pub(crate) fn choose_features(offered: u64, iova_is_pa: bool) -> std::result::Result<u64, String> {
    use feature::*;
    let mut want = [
        VERSION_1,
        NET_MAC,
        NET_STATUS,
        NET_MRG_RXBUF,
        NET_CTRL_VQ,
        NET_CTRL_RX,
        NET_CTRL_MAC_ADDR,
        NET_MQ,
        NET_MTU,
        NET_SPEED_DUPLEX,
    ]
    .iter()
    .fold(0u64, |a, &b| a | bit(b));
    if offered & bit(ACCESS_PLATFORM) != 0 {
        // virtio 6.1: a driver that does not accept it may be refused; and the device
        // then translates through the IOMMU, which is what VFIO's IOVAs need.
        want |= bit(ACCESS_PLATFORM);
    } else if !iova_is_pa {
        return Err(
            "the device does not offer ACCESS_PLATFORM, so it bypasses the IOMMU and takes DMA \
             addresses as physical: run with --iova-mode pa (or give QEMU's device iommu_platform=on)"
                .into(),
        );
    }
    if offered & bit(NET_CTRL_VQ) == 0 {
        // virtio 5.1.3.1: these need the control queue.
        want &= !(bit(NET_CTRL_RX) | bit(NET_CTRL_MAC_ADDR) | bit(NET_MQ));
    }
    Ok(want & offered)
}

struct Virtio {
    hw: Arc<Hw>,
    ctrl: Option<Mutex<CtrlQueue>>,
    mac: [u8; 6],
    /// The MAC at probe (a different one is set through the control queue at start).
    dev_mac: [u8; 6],
    mtu_max: u32,
    promisc: bool,
    allmulti: bool,
    nb_pairs: u16,
}

fn probe(eal: &Eal, pci: &PciDevice) -> Result<Box<dyn EthDriver>> {
    let addr = pci.addr.to_string();
    let what = format!("virtio {addr}");
    let err = |op: &'static str| {
        let what = what.clone();
        move |source: eal::Error| Error::Eal {
            op,
            what,
            source: source.into(),
        }
    };
    let perr = |why: String| Error::PciProbe {
        addr: addr.clone(),
        driver: NAME.into(),
        why,
    };
    if !eal.memory().dma_capable() {
        return Err(Error::Eal {
            op: "probe",
            what,
            source: eal::Error::NoDma {
                why: "the EAL runs without hugepages (--no-huge); a NIC needs pinned DMA memory"
                    .into(),
            }
            .into(),
        });
    }
    let dev = Device::open(eal, pci.addr).map_err(err("open"))?;
    let cmd_reg = dev
        .config_read16(PCI_COMMAND)
        .map_err(err("read the command register of"))?;
    if cmd_reg & PCI_COMMAND_MEMORY == 0 {
        dev.config_write16(PCI_COMMAND, cmd_reg | PCI_COMMAND_MEMORY)
            .map_err(err("enable memory decoding of"))?;
    }
    let caps = find_caps(&mut |off, buf| dev.config_read(off, buf).map_err(|e| e.to_string()))
        .map_err(perr)?;
    let mut bars: Vec<(u8, MmioRegion)> = Vec::new();
    let mut window = |cap: &spec::PciCap, what: &str| -> Result<Window> {
        let bar = match bars.iter().find(|(i, _)| *i == cap.bar) {
            Some((_, b)) => b.clone(),
            None => {
                let b = dev.bar(u32::from(cap.bar)).map_err(err("map a BAR of"))?;
                bars.push((cap.bar, b.clone()));
                b
            }
        };
        Window::new(bar, u64::from(cap.offset), u64::from(cap.length)).ok_or_else(|| {
            perr(format!(
                "the {what} structure ({:#x} + {:#x}) is outside BAR {}",
                cap.offset, cap.length, cap.bar
            ))
        })
    };
    let common = Common {
        regs: window(&caps.common, "common configuration")?,
    };
    let notify = window(&caps.notify, "notification")?;
    let _isr = window(&caps.isr, "ISR")?;
    let device_cfg = window(&caps.device, "device configuration")?;

    let iova_is_pa =
        dev.backend() == Backend::Uio || eal.memory().iova_mode() == eal::args::IovaMode::Pa;
    let init_err = |e: init::StepError| Error::DeviceInit {
        addr: addr.clone(),
        driver: NAME,
        step: e.step,
        why: e.why,
    };
    let mut init = Init::new(&common);
    init.run_to(State::FeaturesOk, &|o| choose_features(o, iova_is_pa))
        .map_err(init_err)?;
    let (offered, features) = (init.offered, init.features);
    common.no_config_vector();
    dev.enable_bus_master()
        .map_err(err("enable bus mastering of"))?;

    let has = |b: u32| features & feature::bit(b) != 0;
    let max_pairs = if has(feature::NET_MQ) {
        let p = device_cfg.r16(net_cfg::MAX_VIRTQUEUE_PAIRS);
        if !(cmd::MQ_VQ_PAIRS_MIN..=cmd::MQ_VQ_PAIRS_MAX).contains(&p) {
            return Err(perr(format!(
                "max_virtqueue_pairs is {p}, outside 1..=32768"
            )));
        }
        p
    } else {
        1
    };
    let nq = common.num_queues();
    let need = 2 * u32::from(max_pairs) + u32::from(has(feature::NET_CTRL_VQ));
    if u32::from(nq) < need {
        return Err(perr(format!(
            "the device has {nq} virtqueues, {max_pairs} pairs{} need {need}",
            if has(feature::NET_CTRL_VQ) {
                " and a control queue"
            } else {
                ""
            }
        )));
    }
    let hw = Arc::new(Hw {
        dev,
        addr: addr.clone(),
        common,
        cfg_lock: Mutex::new(()),
        notify_len: u64::from(caps.notify.length),
        notify,
        notify_mult: caps.notify_off_multiplier,
        device_cfg,
        features,
        max_pairs,
        kicks: (0..Hw::nb_vqs(max_pairs))
            .map(|_| Arc::new(AtomicU64::new(0)))
            .collect(),
        gone: AtomicBool::new(false),
        live: AtomicBool::new(false),
        was_reset: AtomicBool::new(false),
        started: AtomicBool::new(false),
        tx_rings: Mutex::new(Vec::new()),
    });
    let mac = if has(feature::NET_MAC) {
        hw.read_config(|w| {
            let mut m = [0u8; 6];
            for (i, b) in m.iter_mut().enumerate() {
                *b = w.r8(net_cfg::MAC + i as u64);
            }
            m
        })
    } else {
        // virtio 5.1.5: without MAC the driver picks one: locally administered, from the
        // PCI address so it is stable.
        [0x02, 0, pci.addr.bus, pci.addr.dev, pci.addr.func, 0]
    };
    let mtu_max = if has(feature::NET_MTU) {
        u32::from(hw.read_config(|w| w.r16(net_cfg::MTU))).max(68)
    } else {
        1500
    };
    let ctrl = if has(feature::NET_CTRL_VQ) {
        Some(Mutex::new(
            CtrlQueue::new(&hw).map_err(|why| hw.init_error("control queue", why))?,
        ))
    } else {
        None
    };
    eal::log_info!(
        "{NAME} {addr}: MAC {} via {:?}, {max_pairs} queue pair(s), features {} (offered {})",
        fmt_mac(&mac),
        hw.dev.backend(),
        feature::describe(features),
        feature::describe(offered)
    );
    Ok(Box::new(Virtio {
        hw,
        ctrl,
        mac,
        dev_mac: mac,
        mtu_max: mtu_max.min(1500),
        promisc: false,
        allmulti: false,
        nb_pairs: 1,
    }))
}

impl Virtio {
    fn command(&self, class: u8, command: u8, data: &[u8]) -> Result<()> {
        let Some(c) = &self.ctrl else {
            return Err(self
                .hw
                .init_error("control", "the device has no control queue".into()));
        };
        if self.hw.status().is_none() {
            return Err(self.hw.gone_error("send a control command to"));
        }
        let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
        c.command(class, command, data)
            .map_err(|why| self.hw.init_error("control command", why))
    }

    fn live(&self) -> bool {
        self.hw.live.load(Ordering::Relaxed)
    }

    /// Set the receive mode `what` (its flag `flag`, control command `command`) to `on`,
    /// through the control queue once live. Without CTRL_RX the device receives
    /// everything (QEMU resets to promiscuous): only "on" can be honoured.
    fn set_rx_mode(
        &mut self,
        what: &str,
        command: u8,
        flag: fn(&mut Virtio) -> &mut bool,
        on: bool,
    ) -> Result<()> {
        let ctrl_rx = self.hw.has(feature::NET_CTRL_RX);
        if !ctrl_rx && !on {
            return Err(self.hw.init_error(
                "control",
                format!("the device does not offer CTRL_RX: {what} cannot be turned off"),
            ));
        }
        *flag(self) = on;
        if ctrl_rx && self.live() {
            self.command(cmd::CLASS_RX, command, &[u8::from(on)])?;
        }
        Ok(())
    }

    /// Push the receive modes to the device (after DRIVER_OK).
    fn apply_rx_modes(&self) -> Result<()> {
        if self.hw.has(feature::NET_CTRL_RX) {
            self.command(cmd::CLASS_RX, cmd::RX_PROMISC, &[u8::from(self.promisc)])?;
            self.command(cmd::CLASS_RX, cmd::RX_ALLMULTI, &[u8::from(self.allmulti)])?;
        }
        Ok(())
    }
}

impl EthDriver for Virtio {
    fn info(&self) -> DevInfo {
        let lim = DescLim {
            min: 2,
            max: spec::VQ_MAX_SIZE,
            align: 1,
        };
        let mut capa = DevCapa::MTU_SET;
        if self.hw.has(feature::NET_CTRL_RX) {
            capa |= DevCapa::PROMISC;
        }
        if self.hw.has(feature::NET_CTRL_MAC_ADDR) {
            capa |= DevCapa::MAC_SET;
        }
        let pairs = self.hw.max_pairs.min(crate::types::MAX_QUEUES as u16);
        DevInfo {
            rx_desc_lim: lim,
            tx_desc_lim: lim,
            capa,
            max_rx_pktlen: self.mtu_max + 14,
            min_mtu: 68,
            max_mtu: self.mtu_max,
            ..DevInfo::new(NAME, pairs, pairs)
        }
    }

    fn configure(
        &mut self,
        nb_rxq: u16,
        nb_txq: u16,
        _conf: &EthConf,
    ) -> std::result::Result<(), String> {
        if nb_rxq != nb_txq {
            return Err(format!(
                "virtio-net queues come in pairs: {nb_rxq} RX and {nb_txq} TX queues asked, give as many of each"
            ));
        }
        if nb_rxq > self.hw.max_pairs {
            return Err(format!(
                "{nb_rxq} queue pairs asked, the device has {}",
                self.hw.max_pairs
            ));
        }
        self.nb_pairs = nb_rxq;
        Ok(())
    }

    fn rx_queue_setup(&mut self, s: RxSetup<'_>) -> Result<Box<dyn RxQueueOps>> {
        self.hw.answering("set up an RX queue of")?;
        Ok(Box::new(rx::RxQueue::new(self.hw.clone(), s)?))
    }

    fn tx_queue_setup(&mut self, s: TxSetup<'_>) -> Result<Box<dyn TxQueueOps>> {
        self.hw.answering("set up a TX queue of")?;
        Ok(Box::new(tx::TxQueue::new(self.hw.clone(), s)?))
    }

    fn start(&mut self) -> Result<()> {
        if !self.hw.check_alive() {
            return Err(self.hw.gone_error("start"));
        }
        let first = !self.live();
        self.hw.go_live(self.hw.features)?;
        if first {
            if self.hw.has(feature::NET_MQ) {
                // virtio 5.1.6.5.6.1: the device uses only the first pair until told.
                self.command(
                    cmd::CLASS_MQ,
                    cmd::MQ_VQ_PAIRS_SET,
                    &self.nb_pairs.max(1).to_le_bytes(),
                )?;
            }
            if self.mac != self.dev_mac {
                self.command(cmd::CLASS_MAC, cmd::MAC_ADDR_SET, &self.mac)?;
            }
            self.apply_rx_modes()?;
        }
        self.hw.started.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        // virtio 1.x has no way to pause a queue short of a reset; the queues stay
        // programmed and bursts stop moving packets until `start`.
        self.hw.started.store(false, Ordering::Relaxed);
        Ok(())
    }

    fn link(&mut self) -> Option<Link> {
        if !self.hw.check_alive() {
            return Some(Link::default());
        }
        let s = self.hw.status().unwrap_or(0);
        let up = s & spec::status::DEVICE_NEEDS_RESET == 0 && self.hw.link_up();
        let (speed, duplex) = if self.hw.has(feature::NET_SPEED_DUPLEX) {
            self.hw
                .read_config(|w| (w.r32(net_cfg::SPEED), w.r8(net_cfg::DUPLEX)))
        } else {
            (net_cfg::SPEED_UNKNOWN, net_cfg::DUPLEX_FULL)
        };
        let speed = if speed == net_cfg::SPEED_UNKNOWN || speed == 0 {
            DEFAULT_SPEED_MBPS
        } else {
            speed
        };
        Some(Link {
            speed_mbps: if up { speed } else { 0 },
            full_duplex: duplex != 0,
            autoneg: false,
            up,
        })
    }

    fn stats(&mut self) -> DriverStats {
        let mut x = vec![
            ("features".to_string(), self.hw.features),
            ("max_queue_pairs".to_string(), u64::from(self.hw.max_pairs)),
            ("device_gone".to_string(), u64::from(self.hw.is_gone())),
        ];
        if let Some(c) = &self.ctrl {
            let c = c.lock().unwrap_or_else(|e| e.into_inner());
            x.push(("ctrl_commands".to_string(), c.done));
            x.push(("ctrl_refused".to_string(), c.refused));
        }
        for (i, k) in self.hw.kicks.iter().enumerate() {
            let i = i as u16;
            let name = if i == spec::ctrl_vq(self.hw.max_pairs) {
                "ctrl_notifications".to_string()
            } else if i.is_multiple_of(2) {
                format!("rx_q{}_notifications", i / 2)
            } else {
                format!("tx_q{}_notifications", i / 2)
            };
            if i / 2 < self.nb_pairs || i == spec::ctrl_vq(self.hw.max_pairs) {
                // Relaxed: a statistic.
                x.push((name, k.load(Ordering::Relaxed)));
            }
        }
        DriverStats {
            missed: 0,
            xstats: x,
        }
    }

    fn control(&mut self) -> Option<&mut dyn DevControl> {
        Some(self)
    }

    fn close(&mut self) {
        self.hw.started.store(false, Ordering::Relaxed);
        self.hw.quiesce();
    }
}

impl Drop for Virtio {
    fn drop(&mut self) {
        // The control queue's memory goes with us: the device must not use it any more.
        self.hw.quiesce();
    }
}

impl DevControl for Virtio {
    fn set_link(&mut self, _up: bool) -> Result<()> {
        // The link follows the host side; a virtio driver cannot switch it.
        Ok(())
    }

    fn set_promiscuous(&mut self, on: bool) -> Result<()> {
        self.set_rx_mode("promiscuous mode", cmd::RX_PROMISC, |v| &mut v.promisc, on)
    }

    fn set_allmulticast(&mut self, on: bool) -> Result<()> {
        self.set_rx_mode("all-multicast", cmd::RX_ALLMULTI, |v| &mut v.allmulti, on)
    }

    fn mac(&mut self) -> Option<[u8; 6]> {
        Some(self.mac)
    }

    fn set_mac(&mut self, mac: [u8; 6]) -> Result<()> {
        if !self.hw.has(feature::NET_CTRL_MAC_ADDR) {
            return Err(self.hw.init_error(
                "control",
                "the device does not offer CTRL_MAC_ADDR: its MAC cannot be changed".into(),
            ));
        }
        if self.live() {
            self.command(cmd::CLASS_MAC, cmd::MAC_ADDR_SET, &mac)?;
        }
        self.mac = mac;
        Ok(())
    }

    fn set_mtu(&mut self, mtu: u32) -> Result<()> {
        // Frames up to the MTU fit one receive buffer; the ethdev layer checked `mtu`
        // against `max_mtu`.
        let _ = mtu;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_table_takes_virtio_net_only() {
        assert!(PCI_IDS.iter().any(|id| id.matches_ids(0x1af4, 0x1041)));
        assert!(PCI_IDS.iter().any(|id| id.matches_ids(0x1af4, 0x1000)));
        assert!(
            !PCI_IDS.iter().any(|id| id.matches_ids(0x1af4, 0x1042)),
            "virtio-blk"
        );
        assert!(
            !PCI_IDS.iter().any(|id| id.matches_ids(0x1af4, 0x1001)),
            "legacy blk"
        );
        assert!(!PCI_IDS.iter().any(|id| id.matches_ids(0x8086, 0x100e)));
    }

    #[test]
    fn features_are_chosen_as_documented() {
        use feature::*;
        let all = u64::MAX;
        let f = choose_features(all, false).unwrap();
        for b in [
            VERSION_1,
            ACCESS_PLATFORM,
            NET_MAC,
            NET_MRG_RXBUF,
            NET_MQ,
            NET_CTRL_VQ,
        ] {
            assert_ne!(f & bit(b), 0, "bit {b}");
        }
        for b in [
            RING_PACKED,
            RING_EVENT_IDX,
            NET_CSUM,
            NET_GUEST_CSUM,
            NET_CTRL_VLAN,
        ] {
            assert_eq!(f & bit(b), 0, "bit {b}");
        }
        // Without a control queue, nothing that needs one.
        let f = choose_features(all & !bit(NET_CTRL_VQ), false).unwrap();
        assert_eq!(
            f & (bit(NET_MQ) | bit(NET_CTRL_RX) | bit(NET_CTRL_MAC_ADDR)),
            0
        );
        // A device that bypasses the IOMMU needs physical IOVAs.
        let e = choose_features(all & !bit(ACCESS_PLATFORM), false).unwrap_err();
        assert!(e.contains("--iova-mode pa"), "{e}");
        assert!(choose_features(all & !bit(ACCESS_PLATFORM), true).is_ok());
    }
}
