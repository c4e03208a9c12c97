//! `net_e1000_em`: poll-mode driver for the Intel 82540EM Gigabit Ethernet controller
//! (PCI 8086:100e, QEMU's `-device e1000`), registered by PCI id ([`DRIVER`]).
//!
//! Register map and descriptors are in [`regs`], each with its section of Intel's
//! *PCI/PCI-X Family of Gigabit Ethernet Controllers Software Developer's Manual* (8254x
//! SDM). One RX and one TX queue, legacy descriptors, no interrupts, no offloads.
//!
//! # Device access
//!
//! The device is opened with [`eal::device::Device::open`], which picks VFIO (device
//! bound to `vfio-pci`, any IOVA mode) or UIO (`uio_pci_generic`, needs
//! `--iova-mode pa`) by the driver bound now; anything else fails with the
//! `ferroplane-devbind` command that fixes it. Probe quiesces the device before turning
//! bus mastering on (a kernel driver may have left rings programmed), resets it
//! (CTRL.RST), masks every interrupt (IMC), sets the link up (CTRL.SLU | ASDE), reads the
//! MAC from receive address 0 (RAL0/RAH0, or the EEPROM through EERD if RAH0 is not
//! valid), clears the multicast table and the statistics registers (clear on read).
//!
//! # Threads
//!
//! * Control path ([`EthDriver`] methods, queue setup, queue drop): under the ethdev
//!   layer's per-port lock; may sleep (reset, TX drain) and make system calls
//!   (`link` checks that the device is still there through sysfs and VFIO).
//! * Data path: the RX queue is polled by one thread at a time and the TX queue by one
//!   thread at a time (the ethdev layer's queue claim guarantees it); the two may be
//!   different threads. A burst touches only its own ring, its own software state, and
//!   one register (RDT or TDT, written once per burst). No locks, no allocation, no
//!   system calls.
//! * Registers are shared by all of the above: each access is one 32-bit volatile load or
//!   store. RCTL is read-modify-written only on the control path, under a mutex.
//!
//! # DMA memory
//!
//! * Descriptor rings are EAL DMA memory ([`eal::device::Device::dma_alloc`]: hugepage
//!   backed, IOVA-contiguous, zeroed, 4 KiB aligned, which covers the 128-byte alignment
//!   asked for here), `nb_desc * 16` bytes with `nb_desc` a multiple of 8 so RDLEN/TDLEN
//!   are multiples of 128. The device writes them at any time, so they are never behind
//!   `&`/`&mut`: the driver reads and writes descriptors with volatile stores and the
//!   write-back half with an atomic acquire load ([`Ring`]).
//! * RX buffers are mbufs of the queue's pool, posted at `data_iova()` (the buffer after
//!   the 128-byte headroom), 2048 bytes each (RCTL.BSIZE). The pool's data room must be
//!   at least headroom + 2048. With `--iova-mode pa` each buffer must be physically
//!   contiguous; RX queue setup checks every mbuf of the pool once and refuses the pool
//!   otherwise.
//! * TX hands the device `data_iova()` of each packet: packets must be single-segment
//!   mbufs from EAL memory. The mbuf stays in the TX ring until the device reports it
//!   done (DD); then it is freed in a batch. Multi-segment packets are dropped and counted
//!   as errors.
//! * A ring and the mbufs posted in it are freed only after the device was told to stop
//!   using them: dropping a queue disables its direction (RCTL.EN / TCTL.EN, TX waits for
//!   the ring to drain first) before anything is freed.
//!
//! # Secondary processes
//!
//! A queue can be driven by a secondary process that claims it ([`share`]): the
//! descriptor ring and its mbuf slots are EAL memory (same address everywhere), the
//! cursors are the queue's shared driver words, and the secondary opens the device from
//! the primary's descriptors and maps BAR 0 at the primary's address. Only the process
//! that set a queue up disables and frees it.
//!
//! # A device that goes away
//!
//! Register reads that return all-ones, or [`eal::device::Device::check_alive`] failing
//! (checked on every `link` query: VFIO release request, driver unbound, config space
//! gone), mark the device gone. From then on bursts return 0 and move nothing, `link`
//! reports down, `start` fails with [`eal::Error::DeviceGone`], and no register is
//! written. Bursts also check the STATUS register themselves after 65536 consecutive
//! empty polls (RX) or full-ring attempts (TX), so a removed device is noticed even
//! without control-path calls.
//!
//! # Statistics
//!
//! The queue counters (packets, bytes, errors, allocation failures) are counted in
//! software by the bursts. The hardware counters (clear on read) are read and
//! accumulated on every `stats_get`/`xstats` call: MPC is added to `imissed`, and every
//! counter is an xstat named `hw_<register>` (`hw_gprc`, `hw_gorc`, `hw_gptc`, `hw_gotc`,
//! `hw_mpc`, `hw_rnbc`, `hw_crcerrs`, ...). GORC/GOTC count from the destination address
//! through the CRC (SDM 13.7.31), so they exceed the software byte counts by 4 per frame.

mod hw;
mod init;
#[allow(dead_code)] // the full register map of the SDM; not every register is used
pub mod regs;
mod ring;
mod rx;
mod share;
mod tx;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use eal::device::{Device, PCI_COMMAND, PCI_COMMAND_MEMORY};
use eal::pci::PciDevice;
use eal::Eal;

use crate::driver::{
    DevControl, DriverStats, EthDriver, PciDriver, PciId, QueueShare, RxQueueOps, RxSetup,
    TxQueueOps, TxSetup,
};
use crate::error::{Error, Result};
use crate::types::{fmt_mac, DescLim, DevCapa, DevInfo, Link};

use hw::Hw;
use init::{init_hw, read_mac};

pub use hw::NAME;
pub use share::ATTACH;

/// PCI ids handled: the 82540EM (QEMU's default `e1000` model).
pub const PCI_IDS: &[PciId] = &[PciId {
    vendor: 0x8086,
    device: 0x100e,
}];

/// The registry entry.
pub const DRIVER: PciDriver = PciDriver {
    name: NAME,
    id_table: PCI_IDS,
    probe,
};

// ------------------------------------------------------------------------------------
// The driver
// ------------------------------------------------------------------------------------

/// Hardware counters read on every stats call: (xstat name, low register, high register
/// for 64-bit counters).
const HW_COUNTERS: &[(&str, u64, Option<u64>)] = &[
    ("hw_gprc", regs::GPRC, None),
    ("hw_gptc", regs::GPTC, None),
    ("hw_gorc", regs::GORCL, Some(regs::GORCH)),
    ("hw_gotc", regs::GOTCL, Some(regs::GOTCH)),
    ("hw_tpr", regs::TPR, None),
    ("hw_tpt", regs::TPT, None),
    ("hw_tor", regs::TORL, Some(regs::TORH)),
    ("hw_tot", regs::TOTL, Some(regs::TOTH)),
    ("hw_bprc", regs::BPRC, None),
    ("hw_mprc", regs::MPRC, None),
    ("hw_bptc", regs::BPTC, None),
    ("hw_mptc", regs::MPTC, None),
    ("hw_mpc", regs::MPC, None),
    ("hw_rnbc", regs::RNBC, None),
    ("hw_crcerrs", regs::CRCERRS, None),
    ("hw_algnerrc", regs::ALGNERRC, None),
    ("hw_rxerrc", regs::RXERRC, None),
    ("hw_rlec", regs::RLEC, None),
    ("hw_ruc", regs::RUC, None),
    ("hw_roc", regs::ROC, None),
];

/// Index of MPC in [`HW_COUNTERS`].
const MPC_INDEX: usize = 12;

struct E1000 {
    hw: Arc<Hw>,
    mac: [u8; 6],
    promisc: bool,
    allmulti: bool,
    /// Accumulated hardware counters, in [`HW_COUNTERS`] order.
    totals: [u64; HW_COUNTERS.len()],
    /// MPC already handed to the ethdev layer through `stats`.
    missed_taken: u64,
}

fn probe(eal: &Eal, pci: &PciDevice) -> Result<Box<dyn EthDriver>> {
    let addr = pci.addr.to_string();
    let what = format!("e1000 {addr}");
    let err = |op: &'static str| {
        let what = what.clone();
        move |source: eal::Error| Error::Eal {
            op,
            what,
            source: source.into(),
        }
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
    // Registers answer only with memory decoding on; bus mastering comes after the
    // device is quiesced (below).
    let cmd = dev
        .config_read16(PCI_COMMAND)
        .map_err(err("read the command register of"))?;
    if cmd & PCI_COMMAND_MEMORY == 0 {
        dev.config_write16(PCI_COMMAND, cmd | PCI_COMMAND_MEMORY)
            .map_err(err("enable memory decoding of"))?;
    }
    let bar = dev.bar(0).map_err(err("map BAR 0 of"))?;
    if bar.len() < regs::BAR0_MIN_LEN {
        return Err(Error::PciProbe {
            addr,
            driver: NAME.into(),
            why: format!(
                "BAR 0 is {:#x} bytes, an 8254x has at least {:#x}",
                bar.len(),
                regs::BAR0_MIN_LEN
            ),
        });
    }
    let hw = Arc::new(Hw::new(dev, bar, addr.clone()));
    init_hw(&hw)?;
    hw.dev
        .enable_bus_master()
        .map_err(err("enable bus mastering of"))?;
    let mac = read_mac(&hw)?;
    eal::log_info!(
        "{NAME} {addr}: MAC {} via {:?}",
        fmt_mac(&mac),
        hw.dev.backend()
    );
    Ok(Box::new(E1000 {
        hw,
        mac,
        promisc: false,
        allmulti: false,
        totals: [0; HW_COUNTERS.len()],
        missed_taken: 0,
    }))
}

impl E1000 {
    /// RCTL filter bits for the current modes (SDM 13.4.22: UPE, MPE).
    fn mode_bits(&self) -> u32 {
        let mut b = 0;
        if self.promisc {
            b |= regs::rctl::UPE | regs::rctl::MPE;
        }
        if self.allmulti {
            b |= regs::rctl::MPE;
        }
        b
    }

    fn apply_modes(&self) -> Result<()> {
        if self.hw.status().is_none() {
            return Err(self.hw.gone_error("set the receive filter of"));
        }
        self.hw
            .rctl_update(self.mode_bits(), regs::rctl::UPE | regs::rctl::MPE);
        Ok(())
    }

    /// Read every hardware counter (clear on read) into the totals.
    fn refresh_counters(&mut self) {
        if self.hw.status().is_none() {
            return;
        }
        for (t, &(_, lo, hi)) in self.totals.iter_mut().zip(HW_COUNTERS) {
            // 64-bit counters: low first, then high (reading high clears both; SDM 13.7).
            let v = match hi {
                Some(h) => u64::from(self.hw.rd(lo)) | u64::from(self.hw.rd(h)) << 32,
                None => u64::from(self.hw.rd(lo)),
            };
            *t = t.wrapping_add(v);
        }
    }
}

impl EthDriver for E1000 {
    fn info(&self) -> DevInfo {
        let lim = DescLim {
            min: regs::DESC_MIN,
            max: regs::DESC_MAX,
            align: regs::DESC_ALIGN,
        };
        DevInfo {
            rx_desc_lim: lim,
            tx_desc_lim: lim,
            capa: DevCapa::MAC_SET | DevCapa::PROMISC,
            max_rx_pktlen: regs::MAX_FRAME,
            min_mtu: 68,
            max_mtu: regs::MAX_FRAME - 18,
            ..DevInfo::new(NAME, 1, 1)
        }
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
        self.hw.wr(regs::IMC, u32::MAX);
        if self.hw.tx_ring.load(Ordering::Relaxed) {
            // SDM 14.5: TIPG, then TCTL with EN, PSP, CT = 0x0F, COLD = 0x40 (full duplex).
            self.hw.wr(regs::TIPG, regs::tipg::DEFAULT);
            self.hw.wr(
                regs::TCTL,
                regs::tctl::EN
                    | regs::tctl::PSP
                    | regs::tctl::CT_DEFAULT << regs::tctl::CT_SHIFT
                    | regs::tctl::COLD_FULL_DUPLEX << regs::tctl::COLD_SHIFT,
            );
        }
        if self.hw.rx_ring.load(Ordering::Relaxed) {
            // SDM 14.4: EN, broadcast accept, strip CRC, 2048-byte buffers, filter modes.
            let base =
                regs::rctl::EN | regs::rctl::BAM | regs::rctl::SECRC | regs::rctl::BSIZE_2048;
            let mut r = self.hw.rctl.lock().unwrap_or_else(|e| e.into_inner());
            *r = base | self.mode_bits();
            self.hw.wr(regs::RCTL, *r);
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        // Let the device finish what is queued for TX, then stop both directions. The
        // rings and their mbufs stay: `start` resumes where we were.
        self.hw.tx_drain(Duration::from_millis(100));
        self.hw.wr(regs::TCTL, 0);
        self.hw.rctl_update(0, regs::rctl::EN);
        Ok(())
    }

    fn link(&mut self) -> Option<Link> {
        if !self.hw.check_alive() {
            return Some(Link::default());
        }
        let s = self.hw.status().unwrap_or(0);
        let up = s & regs::status::LU != 0;
        Some(Link {
            speed_mbps: if up { regs::speed_mbps(s) } else { 0 },
            full_duplex: s & regs::status::FD != 0,
            autoneg: true,
            up,
        })
    }

    fn stats(&mut self) -> DriverStats {
        self.refresh_counters();
        let m = self.totals[MPC_INDEX];
        let missed = m.wrapping_sub(self.missed_taken);
        self.missed_taken = m;
        let mut xstats: Vec<(String, u64)> = HW_COUNTERS
            .iter()
            .zip(self.totals)
            .map(|(&(n, _, _), t)| (n.to_string(), t))
            .collect();
        xstats.push(("hw_device_gone".to_string(), u64::from(self.hw.is_gone())));
        DriverStats { missed, xstats }
    }

    fn control(&mut self) -> Option<&mut dyn DevControl> {
        Some(self)
    }

    fn share_queue(&mut self, rx: bool, q: u16) -> Option<Result<QueueShare>> {
        Some(share::share_queue(&self.hw, rx, q))
    }

    fn close(&mut self) {
        // Queues are dropped already (their rings are disabled and freed). Leave the
        // device quiet: receive and transmit off, interrupts masked.
        if self.hw.is_gone() {
            return;
        }
        self.hw.wr(regs::IMC, u32::MAX);
        self.hw.rctl_update(0, u32::MAX);
        self.hw.wr(regs::TCTL, 0);
    }
}

impl DevControl for E1000 {
    fn set_link(&mut self, _up: bool) -> Result<()> {
        // The link follows the wire (CTRL.SLU is set at probe); nothing to switch.
        Ok(())
    }

    fn set_promiscuous(&mut self, on: bool) -> Result<()> {
        self.promisc = on;
        self.apply_modes()
    }

    fn set_allmulticast(&mut self, on: bool) -> Result<()> {
        self.allmulti = on;
        self.apply_modes()
    }

    fn mac(&mut self) -> Option<[u8; 6]> {
        Some(self.mac)
    }

    fn set_mac(&mut self, mac: [u8; 6]) -> Result<()> {
        if self.hw.status().is_none() {
            return Err(self.hw.gone_error("set the MAC of"));
        }
        // SDM 13.5.2/13.5.3: low register first, then high with Address Valid.
        let (lo, hi) = regs::mac_to_ra(mac);
        self.hw.wr(regs::rah(0), 0);
        self.hw.wr(regs::ral(0), lo);
        self.hw.wr(regs::rah(0), hi);
        self.mac = mac;
        Ok(())
    }

    fn set_mtu(&mut self, mtu: u32) -> Result<()> {
        // Frames up to 1518 bytes fit a 2048-byte buffer without LPE; the ethdev layer
        // already checked `mtu` against `max_mtu`.
        let _ = mtu;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_table_is_consistent() {
        assert_eq!(HW_COUNTERS[MPC_INDEX].0, "hw_mpc");
        assert_eq!(HW_COUNTERS[MPC_INDEX].1, regs::MPC);
        let mut names: Vec<_> = HW_COUNTERS.iter().map(|c| c.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), HW_COUNTERS.len(), "duplicate xstat names");
        for &(_, lo, hi) in HW_COUNTERS {
            assert!((regs::STATS_FIRST..=regs::STATS_LAST).contains(&lo));
            assert!(lo.is_multiple_of(4));
            if let Some(h) = hi {
                assert_eq!(h, lo + 4, "high half follows the low half");
            }
        }
    }

    #[test]
    fn id_table_matches_the_82540em_only() {
        assert!(PCI_IDS.iter().any(|id| id.matches_ids(0x8086, 0x100e)));
        assert!(
            !PCI_IDS.iter().any(|id| id.matches_ids(0x8086, 0x10d3)),
            "e1000e is another driver"
        );
        assert!(!PCI_IDS.iter().any(|id| id.matches_ids(0x1af4, 0x1000)));
    }
}
