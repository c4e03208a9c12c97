//! The driver interface, small as ixy's `IxyDevice`: per-queue `rx_burst`/`tx_burst`
//! ([`RxQueueOps`], [`TxQueueOps`]), and per port `info`, `link`, `stats` plus queue
//! setup and start/stop ([`EthDriver`]); device settings (MAC, MTU, modes) sit behind the
//! optional [`DevControl`]. Also the entry types a driver module exports so the registry
//! ([`crate::registry`]) can pick it by vdev name prefix or PCI id: [`VdevDriver`],
//! [`PciDriver`]. This module imports no driver; driver structs stay private to their
//! modules.

use std::ptr::NonNull;

use eal::pci::PciDevice;
use eal::Eal;
use mbuf::{Mbuf, PktmbufPool};

use crate::error::Result;
use crate::shared::QueueCounters;
use crate::types::{DevInfo, EthConf, Link, RxConf, TxConf};
use crate::vdev::VdevArgs;

/// What RX queue setup hands a driver.
pub struct RxSetup<'a> {
    /// Queue id.
    pub queue: u16,
    /// Descriptors asked for (within the driver's `rx_desc_lim`).
    pub nb_desc: u16,
    /// Queue configuration, port-wide offloads folded in.
    pub conf: &'a RxConf,
    /// The pool received packets come from.
    pub pool: &'a PktmbufPool,
    /// The queue's counters.
    pub stats: QueueStats,
}

/// What TX queue setup hands a driver.
pub struct TxSetup<'a> {
    /// Queue id.
    pub queue: u16,
    /// Descriptors asked for (within the driver's `tx_desc_lim`).
    pub nb_desc: u16,
    /// Queue configuration, port-wide offloads folded in.
    pub conf: &'a TxConf,
    /// The queue's counters.
    pub stats: QueueStats,
}

/// A queue's counters in the port's shared memzone. Handed to a queue at setup; only the
/// thread polling that queue writes through it. Valid until the port is closed (the
/// ethdev layer drops every queue before it frees the memzone).
#[derive(Clone, Copy)]
pub struct QueueStats(NonNull<QueueCounters>);

// SAFETY: points into EAL shared memory that outlives every queue (see type docs); all
// fields are atomics.
unsafe impl Send for QueueStats {}
// SAFETY: as above.
unsafe impl Sync for QueueStats {}

impl QueueStats {
    pub(crate) fn new(p: &QueueCounters) -> QueueStats {
        QueueStats(NonNull::from(p))
    }

    /// Count a receive burst: `t.n` packets of `t.bytes` bytes, `t.errs` dropped.
    #[inline]
    pub fn add_rx(&self, t: &Tally) {
        self.add(t.n as u64, t.bytes);
        if t.errs > 0 {
            self.add_errors(t.errs);
        }
    }

    /// Count a transmit burst: `t.n` packets consumed of which `t.errs` were dropped
    /// (the rest sent, `t.bytes` bytes).
    #[inline]
    pub fn add_tx(&self, t: &Tally) {
        self.add(t.n as u64 - t.errs, t.bytes);
        if t.errs > 0 {
            self.add_errors(t.errs);
        }
    }
}

/// What one burst of a copying driver counted, handed to [`QueueStats::add_rx`] or
/// [`QueueStats::add_tx`] once at its end.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Packets received (RX) or consumed (TX: sent or dropped).
    pub n: usize,
    /// Bytes of the packets received or sent.
    pub bytes: u64,
    /// Packets dropped.
    pub errs: u64,
}

impl std::ops::Deref for QueueStats {
    type Target = QueueCounters;
    #[inline(always)]
    fn deref(&self) -> &QueueCounters {
        // SAFETY: valid for the queue's life (type docs); only atomics behind it.
        unsafe { self.0.as_ref() }
    }
}

/// One RX queue of a driver. Called by one thread at a time (the ethdev layer's queue
/// claim guarantees it).
pub trait RxQueueOps: Send {
    /// Append up to `max` received packets to `out`; return how many. Counts them (and
    /// their bytes, errors, allocation failures) in the queue's [`QueueStats`].
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize;
}

/// One TX queue of a driver. Called by one thread at a time.
pub trait TxQueueOps: Send {
    /// Take up to `max` packets from the front of `pkts` (removing them, in order) and
    /// return how many were taken; the rest stay in `pkts`, untouched. Taken packets are
    /// sent, or dropped and counted as errors. Counts in the queue's [`QueueStats`].
    fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>, max: usize) -> usize;
}

/// A device driver: control path only. Every method runs under the port's control lock.
/// Methods must not touch queue objects they handed out (those belong to the ethdev
/// layer's queue slots and may be in use on an lcore).
pub trait EthDriver: Send {
    /// What the device is and can do: the driver fills [`DevInfo::new`]'s defaults in;
    /// the ethdev layer sets the device name, the configured queue counts and the
    /// default MTU, and caps the queue counts at [`MAX_QUEUES`](crate::MAX_QUEUES).
    fn info(&self) -> DevInfo;
    /// Whether the ethdev layer drops TX frames longer than MTU + Ethernet header
    /// (counted in `oerrors`) before the driver sees them. On for drivers with a wire or
    /// a file behind them; `net_ring` turns it off, as DPDK's net_ring does not check
    /// either, so its data path never reads an mbuf header.
    fn tx_mtu_check(&self) -> bool {
        true
    }
    /// Check and apply a configuration (the ethdev layer already checked queue counts
    /// and offloads against [`info`](Self::info)). `Err` carries the reason.
    fn configure(
        &mut self,
        _nb_rxq: u16,
        _nb_txq: u16,
        _conf: &EthConf,
    ) -> std::result::Result<(), String> {
        Ok(())
    }
    /// Make an RX queue.
    fn rx_queue_setup(&mut self, s: RxSetup<'_>) -> Result<Box<dyn RxQueueOps>>;
    /// Make a TX queue.
    fn tx_queue_setup(&mut self, s: TxSetup<'_>) -> Result<Box<dyn TxQueueOps>>;
    /// Start the device.
    fn start(&mut self) -> Result<()> {
        Ok(())
    }
    /// Stop the device.
    fn stop(&mut self) -> Result<()> {
        Ok(())
    }
    /// The device's own link state; `None` for software ports (the ethdev layer then
    /// reports up while started and not set down).
    fn link(&mut self) -> Option<Link> {
        None
    }
    /// What the device counted itself since the last call (the queue counters are the
    /// bursts' own, in [`QueueStats`]).
    fn stats(&mut self) -> DriverStats {
        DriverStats::default()
    }
    /// The device's settings (MAC, MTU, link and receive modes), for drivers with a
    /// device or kernel interface behind them; `None` (software ports) makes the ethdev
    /// layer keep those settings itself.
    fn control(&mut self) -> Option<&mut dyn DevControl> {
        None
    }
    /// Release device resources (queues are already dropped).
    fn close(&mut self) {}
    /// What another process of the EAL group needs to drive RX (`rx`) or TX queue `q`
    /// itself: driver parameters and file descriptors (sent over the EAL's IPC with
    /// `SCM_RIGHTS`). The driver's [`QueueAttach`] builds the queue from it there.
    /// `None`: the driver cannot share its queues with another process.
    fn share_queue(&mut self, _rx: bool, _q: u16) -> Option<Result<QueueShare>> {
        None
    }
}

/// What [`EthDriver::share_queue`] hands another process: parameter bytes (at most
/// [`SHARE_BLOB_MAX`]) and descriptors (at most [`eal::mp::MAX_FDS`]).
#[derive(Debug, Default)]
pub struct QueueShare {
    pub blob: Vec<u8>,
    pub fds: Vec<std::os::fd::OwnedFd>,
}

/// Largest [`QueueShare::blob`] (what fits in one IPC reply next to its header).
pub const SHARE_BLOB_MAX: usize = 160;

/// What a secondary process's queue constructor gets ([`QueueAttach`]).
pub struct AttachCtx<'a> {
    pub eal: &'a Eal,
    pub port: u16,
    pub queue: u16,
    /// The primary's [`QueueShare`]: blob and descriptors.
    pub blob: &'a [u8],
    pub fds: Vec<std::os::fd::OwnedFd>,
    /// RX: the pool the primary set the queue up with (looked up by name).
    pub pool: Option<&'a PktmbufPool>,
    /// The queue's counters in the port's shared memzone.
    pub stats: QueueStats,
}

/// A driver's constructors of queues in a secondary process, from what the primary's
/// [`EthDriver::share_queue`] sent.
#[derive(Clone, Copy)]
pub struct QueueAttach {
    pub rx: fn(AttachCtx<'_>) -> Result<Box<dyn RxQueueOps>>,
    pub tx: fn(AttachCtx<'_>) -> Result<Box<dyn TxQueueOps>>,
}

/// Statistics a driver reads from its device (see [`EthDriver::stats`]).
#[derive(Debug, Default, Clone)]
pub struct DriverStats {
    /// Frames the device or kernel dropped since the last call; added to `imissed`.
    pub missed: u64,
    /// Driver-specific extended statistics (name, value), running totals.
    pub xstats: Vec<(String, u64)>,
}

/// A device's settings. Every method runs under the port's control lock.
pub trait DevControl {
    /// Bring the link up or down.
    fn set_link(&mut self, up: bool) -> Result<()>;
    /// Promiscuous mode on the device.
    fn set_promiscuous(&mut self, on: bool) -> Result<()>;
    /// All-multicast mode on the device.
    fn set_allmulticast(&mut self, on: bool) -> Result<()>;
    /// The device's own MAC, if it can tell (else the ethdev layer picks one).
    fn mac(&mut self) -> Option<[u8; 6]>;
    /// Set the device's MAC.
    fn set_mac(&mut self, mac: [u8; 6]) -> Result<()>;
    /// Set the device's MTU.
    fn set_mtu(&mut self, mtu: u32) -> Result<()>;
}

// ------------------------------------------------------------------------------------
// Registry entries
// ------------------------------------------------------------------------------------

/// What a vdev driver's constructor gets.
pub struct VdevCtx<'a> {
    pub eal: &'a Eal,
    pub args: &'a VdevArgs,
    /// Port id the device will get (for unique names: fanout ids, MACs).
    pub port_id: u16,
}

/// A virtual-device driver, matched by name prefix.
pub struct VdevDriver {
    /// Driver name, also the main prefix (`net_null`).
    pub name: &'static str,
    /// Other accepted prefixes (`eth_null`).
    pub aliases: &'static [&'static str],
    /// Keys the driver takes.
    pub keys: &'static [&'static str],
    /// Make the driver.
    pub create: fn(&VdevCtx<'_>) -> Result<Box<dyn EthDriver>>,
}

/// A (vendor, device) pair a PCI driver handles; [`PciId::ANY`] in either field matches
/// every value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciId {
    pub vendor: u16,
    pub device: u16,
}

impl PciId {
    /// Wildcard.
    pub const ANY: u16 = 0xffff;

    /// True if `dev` is matched.
    pub fn matches(&self, dev: &PciDevice) -> bool {
        self.matches_ids(dev.vendor_id, dev.device_id)
    }

    /// True if a device with these ids is matched.
    pub fn matches_ids(&self, vendor: u16, device: u16) -> bool {
        (self.vendor == Self::ANY || self.vendor == vendor)
            && (self.device == Self::ANY || self.device == device)
    }
}

/// A PCI driver: a name, the ids it takes, and a probe that makes the driver for one
/// device.
#[derive(Clone, Copy)]
pub struct PciDriver {
    pub name: &'static str,
    pub id_table: &'static [PciId],
    pub probe: fn(&Eal, &PciDevice) -> Result<Box<dyn EthDriver>>,
}
