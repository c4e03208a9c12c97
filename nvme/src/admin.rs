//! The admin queue: synchronous admin commands (submit, then poll with a timeout,
//! checking CSTS.CFS every millisecond) and Identify.

use std::time::{Duration, Instant};

use eal::device::DmaBuf;
use eal::VirtAddr;

use crate::error::{Error, Result};
use crate::hw::Hw;
use crate::queue::{Cmds, Completion, Done, DoneInner, QueueCore};
use crate::spec::{admin_opc, csts, Sqe};

/// The admin queue pair (queue id 0), used under the controller's admin mutex.
pub(crate) struct Admin {
    pub q: QueueCore,
}

impl Admin {
    /// Run one admin command synchronously.
    pub fn exec(
        &mut self,
        hw: &Hw,
        sqe: Sqe,
        data: Option<(VirtAddr, u64)>,
        timeout: Duration,
    ) -> Result<Completion> {
        let cmds = Cmds::Single {
            sqe,
            data,
            payload: None,
        };
        self.q
            .submit(
                &cmds,
                DoneInner::User(Done::Tag(0)),
                None,
                eal::timer::rdtsc(),
            )
            .map_err(|e| e.0)?;
        self.q.flush();
        let start = Instant::now();
        let mut next_check = Duration::from_millis(1);
        let mut result = None;
        loop {
            self.q.process(8, &mut |_, r| result = Some(r));
            if let Some(r) = result.take() {
                return r;
            }
            let el = start.elapsed();
            if el >= next_check {
                next_check = el + Duration::from_millis(1);
                if hw.csts()? & csts::CFS != 0 {
                    return Err(Error::ControllerFatal {
                        what: format!("run admin command {:#04x}", sqe.opcode()),
                    });
                }
                if el > timeout {
                    return Err(Error::Timeout {
                        what: format!(
                            "complete admin command {:#04x} on {}",
                            sqe.opcode(),
                            hw.addr
                        ),
                        ms: timeout.as_millis() as u64,
                    });
                }
                std::thread::sleep(Duration::from_micros(20));
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// Identify with CNS `cns_` for `nsid` into the first 4 KiB of `buf`.
pub(crate) fn identify(
    hw: &Hw,
    admin: &mut Admin,
    buf: &DmaBuf,
    cns_: u32,
    nsid: u32,
    t: Duration,
) -> Result<()> {
    // SAFETY: 4 KiB of our DMA buffer, no command in flight on it.
    unsafe { std::ptr::write_bytes(buf.as_ptr(), 0, 4096) };
    let mut s = Sqe::new(admin_opc::IDENTIFY, 0, nsid);
    s.cdw10 = cns_;
    admin.exec(hw, s, Some((VirtAddr::from_ptr(buf.as_ptr()), 4096)), t)?;
    Ok(())
}
