//! The control virtqueue (virtio 5.1.6.5): one command at a time, synchronously, on the
//! control path. A command is a three-descriptor chain in one DMA block: the 2-byte
//! class/command header and the command data (device-readable), then the 1-byte `ack`
//! (device-writable). The device is always notified and polled for up to
//! [`CMD_TIMEOUT`].

use std::time::{Duration, Instant};

use eal::device::DmaBuf;

use super::hw::Hw;
use super::spec::{self, ctrl, desc_flags, VirtqDesc};
use super::vq::Vq;

/// How long a command may take.
pub(super) const CMD_TIMEOUT: Duration = Duration::from_secs(2);
/// Entries asked for (QEMU's control queue has 64).
pub(super) const CTRL_QUEUE_SIZE: u16 = 64;

const HDR_OFF: usize = 0;
const DATA_OFF: usize = 64;
const DATA_MAX: usize = 64;
const ACK_OFF: usize = 192;

pub(super) struct CtrlQueue {
    vq: Vq,
    buf: DmaBuf,
    avail_idx: u16,
    /// Commands completed and refused, for the xstats.
    pub(super) done: u64,
    pub(super) refused: u64,
}

impl CtrlQueue {
    pub(super) fn new(hw: &Hw) -> Result<CtrlQueue, String> {
        let vq = hw.setup_vq(spec::ctrl_vq(hw.max_pairs), CTRL_QUEUE_SIZE)?;
        if vq.size < 4 {
            return Err(format!(
                "the control queue has {} entries, a command needs 3",
                vq.size
            ));
        }
        let buf = hw
            .dev
            .dma_alloc(256)
            .map_err(|e| format!("control queue buffer: {e}"))?;
        Ok(CtrlQueue {
            vq,
            buf,
            avail_idx: 0,
            done: 0,
            refused: 0,
        })
    }

    fn put(&self, off: usize, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            // SAFETY: off + i < 256 (offsets and DATA_MAX above), inside the live block;
            // volatile since the device reads it.
            unsafe { std::ptr::write_volatile(self.buf.as_ptr().add(off + i), *b) };
        }
    }

    /// Send `class`/`command` with `data`; `Err` says why it failed (refused, timeout).
    /// Only after DRIVER_OK.
    pub(super) fn command(&mut self, class: u8, command: u8, data: &[u8]) -> Result<(), String> {
        if data.is_empty() || data.len() > DATA_MAX {
            return Err(format!("command data of {} bytes", data.len()));
        }
        self.put(HDR_OFF, &[class, command]);
        self.put(DATA_OFF, data);
        self.put(ACK_OFF, &[0xff]);
        let base = self.buf.iova().0;
        self.vq.write_desc(
            0,
            VirtqDesc {
                addr: base + HDR_OFF as u64,
                len: 2,
                flags: desc_flags::NEXT,
                next: 1,
            },
        );
        self.vq.write_desc(
            1,
            VirtqDesc {
                addr: base + DATA_OFF as u64,
                len: data.len() as u32,
                flags: desc_flags::NEXT,
                next: 2,
            },
        );
        self.vq.write_desc(
            2,
            VirtqDesc {
                addr: base + ACK_OFF as u64,
                len: 1,
                flags: desc_flags::WRITE,
                next: 0,
            },
        );
        self.vq.write_avail(self.avail_idx, 0);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.vq.publish(self.avail_idx);
        self.vq.notify_now();
        let t0 = Instant::now();
        while self.vq.used_idx() != self.avail_idx {
            if t0.elapsed() > CMD_TIMEOUT {
                self.refused += 1;
                return Err(format!(
                    "control command {class}/{command}: no answer within {} ms",
                    CMD_TIMEOUT.as_millis()
                ));
            }
            std::thread::sleep(Duration::from_micros(20));
        }
        let mut ack = [0u8];
        self.buf.read_bytes(ACK_OFF, &mut ack);
        if ack[0] != ctrl::OK {
            self.refused += 1;
            return Err(format!(
                "control command {class}/{command}: the device answered {:#x} (not OK)",
                ack[0]
            ));
        }
        self.done += 1;
        Ok(())
    }
}
