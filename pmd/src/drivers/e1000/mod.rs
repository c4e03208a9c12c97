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

#[allow(dead_code)] // the full register map of the SDM; not every register is used
pub mod regs;
mod rx;
mod tx;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eal::device::{Device, DmaBuf, MmioRegion, PCI_COMMAND, PCI_COMMAND_MEMORY};
use eal::pci::PciDevice;
use eal::Eal;
use mbuf::PktmbufPool;

use crate::driver::{DriverInfo, EthDriver, PciDriver, PciId, QueueStats, RxQueueOps, TxQueueOps};
use crate::{DescLim, DevCapa, Error, Link, Result, RxConf, TxConf};

use regs::DmaPod;

/// Driver name (as DPDK's e1000 "em" driver).
pub const NAME: &str = "net_e1000_em";

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

/// Port id used in errors: the PCI probe does not learn the port id, so errors name the
/// PCI address in their text instead.
const PORT_UNKNOWN: u16 = u16::MAX;

/// Empty RX polls / full TX attempts between two STATUS reads on the data path.
const GONE_CHECK_EVERY: u32 = 1 << 16;

/// The device state shared by the driver and its queues.
pub(crate) struct Hw {
    dev: Device,
    bar: MmioRegion,
    addr: String,
    gone: AtomicBool,
    /// RCTL as last written (control path only; read-modify-write under this lock).
    rctl: Mutex<u32>,
    /// Whether an RX / TX ring is programmed (set by queue setup, cleared by queue drop).
    rx_ring: AtomicBool,
    tx_ring: AtomicBool,
}

impl Hw {
    /// Read a register; a failed access (impossible for offsets below
    /// [`regs::BAR0_MIN_LEN`], checked at probe) reads as all-ones, like a vanished
    /// device.
    #[inline(always)]
    fn rd(&self, off: u64) -> u32 {
        self.bar.read32(off).unwrap_or(u32::MAX)
    }

    /// Write a register, unless the device is gone.
    #[inline(always)]
    fn wr(&self, off: u64, v: u32) {
        if self.is_gone() {
            return;
        }
        // The only possible error is an out-of-range or misaligned offset: every offset
        // is an aligned constant below BAR0_MIN_LEN, which probe checked against the BAR.
        let _ = self.bar.write32(off, v);
    }

    #[inline(always)]
    fn is_gone(&self) -> bool {
        // Relaxed: a flag with no data attached; bursts only need to see it eventually.
        self.gone.load(Ordering::Relaxed)
    }

    fn mark_gone(&self, why: &str) {
        if !self.gone.swap(true, Ordering::Relaxed) {
            eal::log_notice!(
                "{NAME} {}: device gone ({why}); bursts return 0 from now on",
                self.addr
            );
        }
    }

    /// Read STATUS; all-ones means the device no longer answers.
    fn status(&self) -> Option<u32> {
        if self.is_gone() {
            return None;
        }
        let s = self.rd(regs::STATUS);
        if s == u32::MAX {
            self.mark_gone("registers read all-ones");
            return None;
        }
        Some(s)
    }

    fn gone_error(&self, op: &'static str) -> Error {
        Error::Eal {
            op,
            what: format!("e1000 {}", self.addr),
            source: eal::Error::DeviceGone {
                addr: self.addr.clone(),
                why: "the device stopped answering".into(),
            }
            .into(),
        }
    }

    /// Set or clear RCTL bits (control path).
    fn rctl_update(&self, set: u32, clear: u32) {
        let mut r = self.rctl.lock().unwrap_or_else(|e| e.into_inner());
        *r = (*r & !clear) | set;
        self.wr(regs::RCTL, *r);
    }

    /// Wait up to `limit` for TDH to reach TDT (the device sent everything queued).
    fn tx_drain(&self, limit: Duration) {
        let t0 = Instant::now();
        while !self.is_gone() && t0.elapsed() < limit {
            let (h, t) = (self.rd(regs::TDH), self.rd(regs::TDT));
            if h == u32::MAX || h == t {
                return;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    fn eal_err(&self, op: &'static str, what: &str) -> impl FnOnce(eal::Error) -> Error {
        let what = format!("{what} of e1000 {}", self.addr);
        move |source: eal::Error| Error::Eal {
            op,
            what,
            source: source.into(),
        }
    }
}

// ------------------------------------------------------------------------------------
// Descriptor rings in DMA memory
// ------------------------------------------------------------------------------------

/// `n` descriptors of type `T` in DMA memory. The device reads and writes them at any
/// time, so they are only ever accessed through raw pointers: whole-descriptor volatile
/// stores by the driver (only to descriptors the device does not own), and an atomic
/// acquire load of the write-back half (bytes 8..16).
pub(crate) struct Ring<T: DmaPod> {
    mem: DmaBuf,
    n: u16,
    _t: std::marker::PhantomData<T>,
}

impl<T: DmaPod> Ring<T> {
    fn new(hw: &Hw, n: u16, what: &str) -> Result<Ring<T>> {
        let bytes = usize::from(n) * std::mem::size_of::<T>();
        let mem = hw
            .dev
            .dma_alloc(bytes)
            .map_err(hw.eal_err("allocate", what))?;
        if !(mem.as_ptr() as usize).is_multiple_of(regs::RING_ALIGN) || mem.len() < bytes {
            return Err(Error::Eal {
                op: "allocate",
                what: format!("{what} of e1000 {}", hw.addr),
                source: eal::Error::NoDma {
                    why: format!("ring memory is not {}-byte aligned", regs::RING_ALIGN),
                }
                .into(),
            });
        }
        Ok(Ring {
            mem,
            n,
            _t: std::marker::PhantomData,
        })
    }

    #[inline(always)]
    fn slot(&self, i: u16) -> *mut T {
        debug_assert!(i < self.n);
        // SAFETY: i < n and the buffer holds n descriptors (checked in `new`).
        unsafe { self.mem.as_ptr().cast::<T>().add(usize::from(i)) }
    }

    /// Overwrite descriptor `i` (one the device does not own).
    #[inline(always)]
    fn write(&self, i: u16, d: T) {
        // SAFETY: in bounds (`slot`), aligned (ring aligned, 16-byte descriptors), memory
        // alive while `self` is; volatile because the device reads it.
        unsafe { std::ptr::write_volatile(self.slot(i), d) };
    }

    /// The write-back half (bytes 8..16) of descriptor `i`, as one atomic load.
    ///
    /// Acquire: the device writes the status byte (DD) after the rest of the descriptor
    /// and the packet data (SDM 3.2.3 / 3.3.3); loading DD with acquire keeps the
    /// compiler and CPU from moving later reads of the buffer before it. Pairs with the
    /// device's DMA write, which x86 makes visible in order.
    #[inline(always)]
    fn load_hi(&self, i: u16) -> u64 {
        // SAFETY: bytes 8..16 of an in-bounds 16-byte descriptor in a ring aligned to
        // 128: 8-byte aligned, alive while `self` is. Every access to it is atomic or
        // volatile (never `&`), and our own volatile writes happen on this same thread.
        unsafe {
            AtomicU64::from_ptr(self.slot(i).cast::<u8>().add(8).cast::<u64>())
                .load(Ordering::Acquire)
        }
    }

    fn iova(&self) -> eal::Iova {
        self.mem.iova()
    }

    fn bytes(&self) -> u32 {
        u32::from(self.n) * std::mem::size_of::<T>() as u32
    }
}

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
    /// MPC already handed to the ethdev layer through `take_missed`.
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
    let hw = Arc::new(Hw {
        dev,
        bar,
        addr: addr.clone(),
        gone: AtomicBool::new(false),
        rctl: Mutex::new(0),
        rx_ring: AtomicBool::new(false),
        tx_ring: AtomicBool::new(false),
    });
    init_hw(&hw)?;
    hw.dev
        .enable_bus_master()
        .map_err(err("enable bus mastering of"))?;
    let mac = read_mac(&hw)?;
    eal::log_info!(
        "{NAME} {addr}: MAC {} via {:?}",
        crate::fmt_mac(&mac),
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

/// Quiesce, reset and set up the device (SDM 14.3 general configuration). Runs before
/// bus mastering is enabled, so rings left by a previous driver cannot be used.
fn init_hw(hw: &Hw) -> Result<()> {
    // Stop receive and transmit first, and mask interrupts (SDM 14.5 advises masking
    // before a global reset).
    hw.wr(regs::IMC, u32::MAX);
    hw.wr(regs::RCTL, 0);
    hw.wr(regs::TCTL, 0);
    if hw.rd(regs::STATUS) == u32::MAX {
        hw.mark_gone("registers read all-ones at probe");
        return Err(hw.gone_error("probe"));
    }
    // Global reset; the bit clears itself (SDM 13.4.1: RST). Wait before touching
    // registers again.
    let ctrl = hw.rd(regs::CTRL);
    hw.wr(regs::CTRL, ctrl | regs::ctrl::RST);
    std::thread::sleep(Duration::from_millis(1));
    let t0 = Instant::now();
    loop {
        let c = hw.rd(regs::CTRL);
        if c == u32::MAX {
            hw.mark_gone("registers read all-ones during reset");
            return Err(hw.gone_error("reset"));
        }
        if c & regs::ctrl::RST == 0 {
            break;
        }
        if t0.elapsed() > Duration::from_millis(100) {
            return Err(Error::PciProbe {
                addr: hw.addr.clone(),
                driver: NAME.into(),
                why: "CTRL.RST did not clear within 100 ms".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    hw.wr(regs::IMC, u32::MAX);
    let _ = hw.rd(regs::ICR); // clear pending causes (clear on read)

    // Some implementations (QEMU's) do not reset every register on CTRL.RST: put the ones
    // we rely on into a known state explicitly.
    hw.wr(regs::RCTL, 0);
    hw.wr(regs::TCTL, 0);
    for (base, len, head, tail) in [
        (regs::RDBAL, regs::RDLEN, regs::RDH, regs::RDT),
        (regs::TDBAL, regs::TDLEN, regs::TDH, regs::TDT),
    ] {
        hw.wr(base, 0);
        hw.wr(base + 4, 0);
        hw.wr(len, 0);
        hw.wr(head, 0);
        hw.wr(tail, 0);
    }
    hw.wr(regs::RDTR, 0);
    hw.wr(regs::RADV, 0);
    hw.wr(regs::TIDV, 0);
    // No flow control (SDM 14.3: write 0 to FCAL, FCAH, FCT, FCTTV when not used).
    for r in [regs::FCAL, regs::FCAH, regs::FCT, regs::FCTTV] {
        hw.wr(r, 0);
    }

    // Link: set link up, let the MAC follow the PHY's speed (SDM 14.3, 8.6.x: SLU with
    // ASDE for copper), no forced speed/duplex, no resets, no VLAN mode.
    let c = hw.rd(regs::CTRL);
    let clear = regs::ctrl::LRST
        | regs::ctrl::PHY_RST
        | regs::ctrl::ILOS
        | regs::ctrl::FRCSPD
        | regs::ctrl::FRCDPLX
        | regs::ctrl::VME;
    hw.wr(
        regs::CTRL,
        (c & !clear) | regs::ctrl::SLU | regs::ctrl::ASDE,
    );

    // Empty multicast table (SDM 14.4), then clear the statistics by reading them.
    for i in 0..regs::MTA_LEN {
        hw.wr(regs::MTA + 4 * i, 0);
    }
    let mut r = regs::STATS_FIRST;
    while r <= regs::STATS_LAST {
        let _ = hw.rd(r);
        r += 4;
    }
    Ok(())
}

/// Read one EEPROM word through EERD (SDM 13.4.4, 5.3.1).
fn eeprom_word(hw: &Hw, word: u32) -> Option<u16> {
    hw.wr(
        regs::EERD,
        (word << regs::eerd::ADDR_SHIFT) | regs::eerd::START,
    );
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(10) {
        let v = hw.rd(regs::EERD);
        if v == u32::MAX {
            return None;
        }
        if v & regs::eerd::DONE != 0 {
            return Some((v >> regs::eerd::DATA_SHIFT) as u16);
        }
        std::hint::spin_loop();
    }
    None
}

/// The MAC from RAL0/RAH0, or from EEPROM words 0..3 (SDM 5.6.1 "Ethernet Address"),
/// which is then written to RAL0/RAH0.
fn read_mac(hw: &Hw) -> Result<[u8; 6]> {
    if let Some(m) = regs::ra_to_mac(hw.rd(regs::ral(0)), hw.rd(regs::rah(0))) {
        if m != [0; 6] && m != [0xff; 6] {
            return Ok(m);
        }
    }
    let mut m = [0u8; 6];
    for w in 0..3u32 {
        let v = eeprom_word(hw, w).ok_or_else(|| Error::PciProbe {
            addr: hw.addr.clone(),
            driver: NAME.into(),
            why: "no valid receive address 0 and the EEPROM read (EERD) did not complete".into(),
        })?;
        m[2 * w as usize..2 * w as usize + 2].copy_from_slice(&v.to_le_bytes());
    }
    let (lo, hi) = regs::mac_to_ra(m);
    hw.wr(regs::ral(0), lo);
    hw.wr(regs::rah(0), hi);
    Ok(m)
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

    fn check_alive(&self) -> bool {
        if self.hw.is_gone() {
            return false;
        }
        if let Err(e) = self.hw.dev.check_alive() {
            self.hw.mark_gone(&e.to_string());
            return false;
        }
        self.hw.status().is_some()
    }
}

impl EthDriver for E1000 {
    fn name(&self) -> &'static str {
        NAME
    }

    fn info(&self) -> DriverInfo {
        let lim = DescLim {
            min: regs::DESC_MIN,
            max: regs::DESC_MAX,
            align: regs::DESC_ALIGN,
        };
        DriverInfo {
            max_rx_queues: 1,
            max_tx_queues: 1,
            rx_desc_lim: lim,
            tx_desc_lim: lim,
            capa: DevCapa::MAC_SET | DevCapa::PROMISC,
            max_rx_pktlen: regs::MAX_FRAME,
            min_mtu: 68,
            max_mtu: regs::MAX_FRAME - 18,
            ..DriverInfo::default()
        }
    }

    fn rx_queue_setup(
        &mut self,
        q: u16,
        nb_desc: u16,
        _conf: &RxConf,
        pool: &PktmbufPool,
        stats: QueueStats,
    ) -> Result<Box<dyn RxQueueOps>> {
        if self.hw.status().is_none() {
            return Err(self.hw.gone_error("set up an RX queue of"));
        }
        Ok(Box::new(rx::RxQueue::new(
            self.hw.clone(),
            q,
            nb_desc,
            pool,
            stats,
        )?))
    }

    fn tx_queue_setup(
        &mut self,
        q: u16,
        nb_desc: u16,
        _conf: &TxConf,
        stats: QueueStats,
    ) -> Result<Box<dyn TxQueueOps>> {
        if self.hw.status().is_none() {
            return Err(self.hw.gone_error("set up a TX queue of"));
        }
        Ok(Box::new(tx::TxQueue::new(
            self.hw.clone(),
            q,
            nb_desc,
            stats,
        )?))
    }

    fn start(&mut self) -> Result<()> {
        if !self.check_alive() {
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
        if !self.check_alive() {
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

    fn take_missed(&mut self) -> u64 {
        self.refresh_counters();
        let m = self.totals[MPC_INDEX];
        let d = m.wrapping_sub(self.missed_taken);
        self.missed_taken = m;
        d
    }

    fn xstats(&mut self) -> Vec<(String, u64)> {
        self.refresh_counters();
        let mut v: Vec<(String, u64)> = HW_COUNTERS
            .iter()
            .zip(self.totals)
            .map(|(&(n, _, _), t)| (n.to_string(), t))
            .collect();
        v.push(("hw_device_gone".to_string(), u64::from(self.hw.is_gone())));
        v
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
        let mk = |vendor, device| PciDevice {
            addr: "0000:00:03.0".parse().unwrap(),
            vendor_id: vendor,
            device_id: device,
            subsystem_vendor_id: 0,
            subsystem_device_id: 0,
            class: 0x020000,
            numa_node: None,
            resources: Vec::new(),
            driver: None,
            iommu_group: None,
        };
        assert!(PCI_IDS.iter().any(|id| id.matches(&mk(0x8086, 0x100e))));
        assert!(
            !PCI_IDS.iter().any(|id| id.matches(&mk(0x8086, 0x10d3))),
            "e1000e is another driver"
        );
        assert!(!PCI_IDS.iter().any(|id| id.matches(&mk(0x1af4, 0x1000))));
    }
}
