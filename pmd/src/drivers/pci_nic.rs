//! What the PCI NIC drivers (e1000, virtio) share about a device that can vanish under
//! them (hot unplug, unbind, a VM losing the device): the "gone" latch their queues
//! consult, its log line and error, the control path's liveness check, and the data
//! path's idle-poll counter that spaces out register reads.
//!
//! A register that reads all-ones is how PCI says the device no longer answers; the
//! latch is set once (one log line) and every burst returns 0 from then on. Relaxed
//! throughout: the flag carries no data, and bursts only need to see it eventually.

use std::sync::atomic::{AtomicBool, Ordering};

use eal::device::Device;

use crate::driver::{QueueStats, Tally};
use crate::error::Error;

/// Port id in queue-setup errors: the PCI probe does not learn the port id, so the
/// message names the PCI address instead.
pub(crate) const PORT_UNKNOWN: u16 = u16::MAX;

/// Empty RX polls / full TX attempts between two status-register reads on the data path
/// (a read is an exit to the hypervisor in a VM: rare, not per burst).
pub(crate) const GONE_CHECK_EVERY: u32 = 1 << 16;

/// Whether the latch is set.
#[inline(always)]
pub(crate) fn is_gone(gone: &AtomicBool) -> bool {
    gone.load(Ordering::Relaxed)
}

/// Set the latch; the first time, log why (driver `name`, PCI address `addr`).
pub(crate) fn mark_gone(gone: &AtomicBool, name: &str, addr: &str, why: &str) {
    if !gone.swap(true, Ordering::Relaxed) {
        eal::log_notice!("{name} {addr}: device gone ({why}); bursts return 0 from now on");
    }
}

/// `read()` unless the latch is set or the value is all-ones (`ones`), which sets it.
#[inline]
pub(crate) fn read_status<T: PartialEq>(
    gone: &AtomicBool,
    name: &str,
    addr: &str,
    ones: T,
    why: &str,
    read: impl FnOnce() -> T,
) -> Option<T> {
    if is_gone(gone) {
        return None;
    }
    let v = read();
    if v == ones {
        mark_gone(gone, name, addr, why);
        return None;
    }
    Some(v)
}

/// The error of a control operation `op` on a device that stopped answering (`kind`
/// names the device in the message: "e1000", "virtio").
pub(crate) fn gone_error(kind: &str, addr: &str, op: &'static str) -> Error {
    Error::Eal {
        op,
        what: format!("{kind} {addr}"),
        source: eal::Error::DeviceGone {
            addr: addr.to_string(),
            why: "the device stopped answering".into(),
        }
        .into(),
    }
}

/// The error of setting up queue `queue` (`dir` "RX" or "TX") of the `kind` device at
/// `addr`.
pub(crate) fn queue_error(
    kind: &str,
    addr: &str,
    dir: &'static str,
    queue: u16,
    why: String,
) -> Error {
    Error::BadQueue {
        op: "set up",
        dir,
        port: PORT_UNKNOWN,
        queue,
        why: format!("{kind} {addr}: {why}"),
    }
}

/// The control path's check: the latch is clear, the EAL still has the device (VFIO /
/// UIO), and `status_ok` (a status-register read) answers. Sets the latch otherwise.
pub(crate) fn check_alive(
    gone: &AtomicBool,
    dev: &Device,
    name: &str,
    addr: &str,
    status_ok: impl FnOnce() -> bool,
) -> bool {
    if is_gone(gone) {
        return false;
    }
    if let Err(e) = dev.check_alive() {
        mark_gone(gone, name, addr, &e.to_string());
        return false;
    }
    status_ok()
}

/// Counts idle bursts (nothing received, or no room to send); [`tick`](Self::tick) says
/// when the next one should read the device's status.
#[derive(Default)]
pub(crate) struct IdlePolls(u32);

impl IdlePolls {
    /// A burst that moved packets.
    #[inline(always)]
    pub(crate) fn busy(&mut self) {
        self.0 = 0;
    }

    /// The end of an RX burst: count what it received (`t`, if anything) and whether it
    /// `moved` the ring; true when an idle burst is due a status read (as [`tick`](Self::tick)).
    #[inline(always)]
    pub(crate) fn rx_end(&mut self, moved: bool, stats: &QueueStats, t: &Tally) -> bool {
        if t.n > 0 || t.errs > 0 {
            stats.add_rx(t);
        }
        if moved {
            self.busy();
            return false;
        }
        self.tick()
    }

    /// An idle burst: true once every [`GONE_CHECK_EVERY`] of them in a row.
    #[inline(always)]
    pub(crate) fn tick(&mut self) -> bool {
        self.0 += 1;
        if self.0 >= GONE_CHECK_EVERY {
            self.0 = 0;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_polls_fire_once_per_period() {
        let mut p = IdlePolls::default();
        let fired = (0..3 * GONE_CHECK_EVERY).filter(|_| p.tick()).count();
        assert_eq!(fired, 3);
        for _ in 0..GONE_CHECK_EVERY - 1 {
            assert!(!p.tick());
        }
        p.busy();
        assert!(!p.tick(), "a busy burst restarts the count");
    }

    #[test]
    fn all_ones_sets_the_latch_once() {
        let g = AtomicBool::new(false);
        assert_eq!(read_status(&g, "x", "0:0", u8::MAX, "why", || 7u8), Some(7));
        assert!(!is_gone(&g));
        assert_eq!(read_status(&g, "x", "0:0", u8::MAX, "why", || 0xffu8), None);
        assert!(is_gone(&g));
        assert_eq!(
            read_status(&g, "x", "0:0", u8::MAX, "why", || 7u8),
            None,
            "latched"
        );
        let e = gone_error("virtio", "0000:00:12.0", "start").to_string();
        assert!(e.contains("virtio 0000:00:12.0"), "{e}");
    }
}
