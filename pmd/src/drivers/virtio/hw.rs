//! The device state shared by the driver and its queues: the transport windows, the
//! negotiated features, the life-cycle flags, and queue programming.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use eal::device::Device;

use super::init::Init;
use super::spec::{self, feature, net_cfg};
use super::transport::{Common, Regs, Window};
use super::vq::{Notifier, RingView, Vq};
use crate::drivers::pci_nic;
use crate::error::Error;

/// Driver name (as DPDK's).
pub const NAME: &str = "net_virtio";

/// How long a reset waits for the device to send what TX queues hold.
pub(super) const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

pub(crate) struct Hw {
    pub(super) dev: Device,
    pub(super) addr: String,
    pub(super) common: Common<Window>,
    /// Serialises `queue_select` sequences (control path and queue drop).
    pub(super) cfg_lock: Mutex<()>,
    pub(super) notify: Window,
    pub(super) notify_len: u64,
    pub(super) notify_mult: u32,
    pub(super) device_cfg: Window,
    /// Negotiated features.
    pub(super) features: u64,
    /// Queue pairs the device has (1 without MQ).
    pub(super) max_pairs: u16,
    /// Notifications sent, per virtqueue index.
    pub(super) kicks: Vec<Arc<AtomicU64>>,
    pub(super) gone: AtomicBool,
    /// DRIVER_OK has been written (queues can no longer be added: virtio 1.x has no
    /// per-queue disable).
    pub(super) live: AtomicBool,
    /// The device was reset after going live (a queue was released): it needs a new
    /// probe before it can run again.
    pub(super) was_reset: AtomicBool,
    /// Bursts move packets only while the port is started.
    pub(super) started: AtomicBool,
    /// The TX rings, drained before any reset.
    pub(super) tx_rings: Mutex<Vec<RingView>>,
}

impl Hw {
    #[inline(always)]
    pub(super) fn has(&self, bit: u32) -> bool {
        self.features & feature::bit(bit) != 0
    }

    #[inline(always)]
    pub(super) fn is_gone(&self) -> bool {
        pci_nic::is_gone(&self.gone)
    }

    pub(super) fn mark_gone(&self, why: &str) {
        pci_nic::mark_gone(&self.gone, NAME, &self.addr, why);
    }

    /// The device status; `None` (and marked gone) if it reads all-ones.
    pub(super) fn status(&self) -> Option<u8> {
        let why = "status reads all-ones";
        pci_nic::read_status(&self.gone, NAME, &self.addr, u8::MAX, why, || {
            self.common.status()
        })
    }

    pub(super) fn gone_error(&self, op: &'static str) -> Error {
        pci_nic::gone_error("virtio", &self.addr, op)
    }

    /// Control path: the device is still there and answers (see [`pci_nic::check_alive`]).
    pub(super) fn check_alive(&self) -> bool {
        pci_nic::check_alive(&self.gone, &self.dev, NAME, &self.addr, || {
            self.status().is_some()
        })
    }

    /// `Ok` if the status answers, the "device gone" error of `op` otherwise.
    pub(super) fn answering(&self, op: &'static str) -> Result<(), Error> {
        self.status().map(|_| ()).ok_or_else(|| self.gone_error(op))
    }

    pub(super) fn init_error(&self, step: &'static str, why: String) -> Error {
        Error::DeviceInit {
            addr: self.addr.clone(),
            driver: NAME,
            step,
            why,
        }
    }

    /// Read device-config fields with `f` until `config_generation` is the same before
    /// and after (virtio 4.1.4.3.1: the device may change the config under us).
    pub(super) fn read_config<T>(&self, f: impl Fn(&Window) -> T) -> T {
        loop {
            let g0 = self.common.config_generation();
            let v = f(&self.device_cfg);
            if self.common.config_generation() == g0 || self.is_gone() {
                return v;
            }
        }
    }

    /// The config's link state: up unless STATUS is negotiated and says down.
    pub(super) fn link_up(&self) -> bool {
        !self.has(feature::NET_STATUS)
            || self.read_config(|w| w.r16(net_cfg::STATUS)) & net_cfg::S_LINK_UP != 0
    }

    /// Make virtqueue `index` with at most `want` entries (rounded down to a power of
    /// two, capped by the device's size), and program it into the device.
    pub(super) fn setup_vq(&self, index: u16, want: u16) -> Result<Vq, String> {
        if self.live.load(Ordering::Relaxed) {
            return Err(
                "the device runs already (DRIVER_OK) and virtio 1.x cannot add a queue to it: \
                 close the port and probe it again to change its queues"
                    .into(),
            );
        }
        let _g = self.cfg_lock.lock().unwrap_or_else(|e| e.into_inner());
        let (max, off) = check_queue(&self.common, index, self.notify_mult, self.notify_len)?;
        // A power of two (virtio 2.7 for split queues), at most what the device has.
        let size = pow2_floor(max).min(pow2_floor(want.max(2)));
        let notifier = Notifier {
            window: self.notify.clone(),
            offset: off,
            index,
            kicks: self.kicks[usize::from(index)].clone(),
        };
        let vq = Vq::new(&self.dev, size, notifier)
            .map_err(|e| format!("virtqueue {index}: ring memory: {e}"))?;
        let (d, a, u) = vq.iovas();
        self.common.select(index);
        self.common.program_queue(size, d, a, u);
        Ok(vq)
    }

    /// Write DRIVER_OK (once every queue to be used is programmed).
    pub(super) fn go_live(&self, features: u64) -> Result<(), Error> {
        if self.was_reset.load(Ordering::Relaxed) {
            return Err(self.init_error(
                "DRIVER_OK",
                "the device was reset when its queues were released; close the port and probe it again"
                    .into(),
            ));
        }
        if self.live.load(Ordering::Relaxed) {
            return Ok(());
        }
        let _g = self.cfg_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut init = Init::resume_at_features_ok(&self.common, features);
        init.step(&|f| Ok(f))
            .map_err(|e| self.init_error(e.step, e.why))?;
        self.live.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Stop all DMA by resetting the device if it ran (a queue is being released, the
    /// port closes). The device first gets up to [`DRAIN_LIMIT`] to send what every TX
    /// queue holds (it transmits asynchronously: QEMU from a bottom half after the
    /// notification), and one more notification per queue in case it stopped looking.
    pub(super) fn quiesce(&self) {
        let mut rings = self.tx_rings.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_gone() || !self.live.load(Ordering::Relaxed) {
            rings.clear();
            return;
        }
        for r in rings.iter().filter(|r| !r.drained()) {
            r.notify();
        }
        let t0 = std::time::Instant::now();
        while rings.iter().any(|r| !r.drained()) {
            if t0.elapsed() > DRAIN_LIMIT {
                eal::log_notice!(
                    "{NAME} {}: TX queues not drained after {:?}; resetting anyway",
                    self.addr,
                    DRAIN_LIMIT
                );
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        rings.clear();
        if !self.live.swap(false, Ordering::Relaxed) {
            return;
        }
        let _g = self.cfg_lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(why) = Init::reset(&self.common) {
            self.mark_gone(&why);
        }
        self.was_reset.store(true, Ordering::Relaxed);
    }

    /// Number of virtqueues the kicks table covers.
    pub(super) fn nb_vqs(max_pairs: u16) -> usize {
        usize::from(spec::ctrl_vq(max_pairs)) + 1
    }
}

/// The largest power of two not above `n` (`n` > 0).
pub(super) fn pow2_floor(n: u16) -> u16 {
    1u16 << (15 - n.leading_zeros().min(15))
}

/// Select virtqueue `index` and check it can be used: it exists, has a size, is not
/// enabled yet, and its notify address lies in the notify window. Returns the device's
/// queue size and the notify offset.
pub(super) fn check_queue<R: Regs>(
    c: &Common<R>,
    index: u16,
    notify_mult: u32,
    notify_len: u64,
) -> Result<(u16, u64), String> {
    let nq = c.num_queues();
    if index >= nq {
        return Err(format!(
            "virtqueue {index} does not exist (the device has {nq})"
        ));
    }
    c.select(index);
    let max = c.queue_size();
    if max == 0 || max == u16::MAX {
        return Err(format!(
            "virtqueue {index} reports size {max}: the device does not make it available"
        ));
    }
    if c.queue_enabled() {
        return Err(format!(
            "virtqueue {index} is enabled already (set up twice?)"
        ));
    }
    let off = u64::from(c.queue_notify_off()) * u64::from(notify_mult);
    if off + 2 > notify_len {
        return Err(format!(
            "virtqueue {index}: notify offset {off:#x} outside the {notify_len}-byte notify window"
        ));
    }
    Ok((max, off))
}
