//! Register access and the device state shared by the driver and its queues: one
//! 32-bit volatile load or store per access (through [`MmioRegion`]), and the
//! "device gone" latch.

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use eal::device::{Device, MmioRegion};

use super::regs;
use super::ring::Geometry;
use crate::drivers::pci_nic;
use crate::error::Error;

/// Driver name (as DPDK's e1000 "em" driver).
pub const NAME: &str = "net_e1000_em";

/// The device state shared by the driver and its queues.
pub(crate) struct Hw {
    pub(super) dev: Device,
    pub(super) bar: MmioRegion,
    pub(super) addr: String,
    pub(super) gone: AtomicBool,
    /// RCTL as last written (control path only; read-modify-write under this lock).
    pub(super) rctl: Mutex<u32>,
    /// Whether an RX / TX ring is programmed (set by queue setup, cleared by queue drop).
    pub(super) rx_ring: AtomicBool,
    pub(super) tx_ring: AtomicBool,
    /// Where this process's RX / TX ring is (set by queue setup, cleared by queue drop),
    /// for handing the queue to another process.
    pub(super) rx_geo: Mutex<Option<Geometry>>,
    pub(super) tx_geo: Mutex<Option<Geometry>>,
}

impl Hw {
    /// Read a register; a failed access (impossible for offsets below
    /// [`regs::BAR0_MIN_LEN`], checked at probe) reads as all-ones, like a vanished
    /// device.
    #[inline(always)]
    pub(super) fn rd(&self, off: u64) -> u32 {
        self.bar.read32(off).unwrap_or(u32::MAX)
    }

    /// Write a register, unless the device is gone.
    #[inline(always)]
    pub(super) fn wr(&self, off: u64, v: u32) {
        if self.is_gone() {
            return;
        }
        // The only possible error is an out-of-range or misaligned offset: every offset
        // is an aligned constant below BAR0_MIN_LEN, which probe checked against the BAR.
        let _ = self.bar.write32(off, v);
    }

    #[inline(always)]
    pub(super) fn is_gone(&self) -> bool {
        pci_nic::is_gone(&self.gone)
    }

    pub(super) fn mark_gone(&self, why: &str) {
        pci_nic::mark_gone(&self.gone, NAME, &self.addr, why);
    }

    /// Read STATUS; all-ones means the device no longer answers.
    pub(super) fn status(&self) -> Option<u32> {
        let why = "registers read all-ones";
        pci_nic::read_status(&self.gone, NAME, &self.addr, u32::MAX, why, || {
            self.rd(regs::STATUS)
        })
    }

    pub(super) fn gone_error(&self, op: &'static str) -> Error {
        pci_nic::gone_error("e1000", &self.addr, op)
    }

    /// Control path: the device is still there and answers (see [`pci_nic::check_alive`]).
    pub(super) fn check_alive(&self) -> bool {
        pci_nic::check_alive(&self.gone, &self.dev, NAME, &self.addr, || {
            self.status().is_some()
        })
    }

    /// `Ok` if STATUS answers, the "device gone" error of `op` otherwise.
    pub(super) fn answering(&self, op: &'static str) -> Result<(), Error> {
        self.status().map(|_| ()).ok_or_else(|| self.gone_error(op))
    }

    /// Set or clear RCTL bits (control path).
    pub(super) fn rctl_update(&self, set: u32, clear: u32) {
        let mut r = self.rctl.lock().unwrap_or_else(|e| e.into_inner());
        *r = (*r & !clear) | set;
        self.wr(regs::RCTL, *r);
    }

    /// Wait up to `limit` for TDH to reach TDT (the device sent everything queued).
    pub(super) fn tx_drain(&self, limit: Duration) {
        let t0 = Instant::now();
        while !self.is_gone() && t0.elapsed() < limit {
            let (h, t) = (self.rd(regs::TDH), self.rd(regs::TDT));
            if h == u32::MAX || h == t {
                return;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    /// The device state around a device and its mapped BAR 0.
    pub(super) fn new(dev: Device, bar: MmioRegion, addr: String) -> Hw {
        Hw {
            dev,
            bar,
            addr,
            gone: AtomicBool::new(false),
            rctl: Mutex::new(0),
            rx_ring: AtomicBool::new(false),
            tx_ring: AtomicBool::new(false),
            rx_geo: Mutex::new(None),
            tx_geo: Mutex::new(None),
        }
    }

    pub(super) fn eal_err(&self, op: &'static str, what: &str) -> impl FnOnce(eal::Error) -> Error {
        let what = format!("{what} of e1000 {}", self.addr);
        move |source: eal::Error| Error::Eal {
            op,
            what,
            source: source.into(),
        }
    }
}
