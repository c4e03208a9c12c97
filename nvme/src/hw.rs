//! Register access to one controller (BAR 0): CSTS with device-gone detection, bounded
//! waits on CSTS, 64-bit register writes.

use std::time::{Duration, Instant};

use eal::device::{Device, MmioRegion};

use crate::error::{Error, Result};
use crate::spec::{csts, reg, Cap};

/// The controller's PCI device, its BAR 0 and the capabilities read at open.
pub(crate) struct Hw {
    pub dev: Device,
    pub bar: MmioRegion,
    pub cap: Cap,
    pub addr: String,
}

impl Hw {
    /// CSTS, with all-ones confirmed as device gone.
    pub fn csts(&self) -> Result<u32> {
        let v = self.bar.read32(reg::CSTS)?;
        if v == u32::MAX {
            match self.dev.check_alive() {
                Err(e) => {
                    return Err(Error::DeviceGone {
                        addr: self.addr.clone(),
                        why: e.to_string(),
                    })
                }
                Ok(()) => {
                    return Err(Error::DeviceGone {
                        addr: self.addr.clone(),
                        why: "CSTS reads all-ones".into(),
                    });
                }
            }
        }
        Ok(v)
    }

    /// Poll CSTS every 200 us until `done` holds, for at most CAP.TO (500 ms at least);
    /// CSTS.CFS fails the wait unless `fatal_ok`.
    pub fn wait_csts(&self, what: &str, fatal_ok: bool, done: impl Fn(u32) -> bool) -> Result<()> {
        let ms = self.cap.timeout_ms().max(500);
        let start = Instant::now();
        loop {
            let v = self.csts()?;
            if done(v) {
                return Ok(());
            }
            if !fatal_ok && v & csts::CFS != 0 {
                return Err(Error::ControllerFatal { what: what.into() });
            }
            if start.elapsed() > Duration::from_millis(ms) {
                return Err(Error::Timeout {
                    what: format!("{what} on {} (CSTS={v:#x})", self.addr),
                    ms,
                });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Write a 64-bit register as two 32-bit halves, low first (NVMe 1.4 section 3.1 allows
/// 32-bit accesses to 64-bit registers).
pub(crate) fn write64(bar: &MmioRegion, off: u64, v: u64) -> Result<()> {
    bar.write32(off, v as u32)?;
    bar.write32(off + 4, (v >> 32) as u32)?;
    Ok(())
}
