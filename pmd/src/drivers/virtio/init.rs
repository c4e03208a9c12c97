//! Device initialisation as an explicit state machine (virtio 3.1.1):
//!
//! ```text
//! Start -> Reset -> Acknowledged -> Driver -> FeaturesWritten -> FeaturesOk
//!       (queues are programmed here, by queue setup)          -> DriverOk
//! any step -> Failed (FAILED written to the device, the reason kept)
//! ```
//!
//! Each [`Init::step`] performs one transition and checks what the device answered:
//! reset must read back 0 within [`RESET_TIMEOUT`], the device must offer VERSION_1,
//! and it must keep FEATURES_OK set after the driver writes it (a device that does not
//! accept the subset is refused with a clear error, and FAILED is written).

use std::time::{Duration, Instant};

use super::spec::{feature, status};
use super::transport::{Common, Regs};

/// How long a reset may take to read back 0.
pub(crate) const RESET_TIMEOUT: Duration = Duration::from_secs(1);

/// Where the sequence stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Start,
    Reset,
    Acknowledged,
    Driver,
    FeaturesWritten,
    FeaturesOk,
    DriverOk,
    Failed,
}

impl State {
    pub(crate) fn name(self) -> &'static str {
        match self {
            State::Start => "start",
            State::Reset => "reset",
            State::Acknowledged => "ACKNOWLEDGE",
            State::Driver => "DRIVER",
            State::FeaturesWritten => "features",
            State::FeaturesOk => "FEATURES_OK",
            State::DriverOk => "DRIVER_OK",
            State::Failed => "failed",
        }
    }
}

/// Why a step failed: the step (what was being done) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepError {
    pub step: &'static str,
    pub why: String,
}

/// Which features to accept from those offered; `Err` if the device cannot be driven.
pub(crate) type Chooser<'a> = &'a dyn Fn(u64) -> Result<u64, String>;

/// The sequence over one device's common configuration.
pub(crate) struct Init<'a, R: Regs> {
    c: &'a Common<R>,
    state: State,
    /// Offered by the device (read in `Driver -> FeaturesWritten`).
    pub offered: u64,
    /// Accepted by the driver and, once in `FeaturesOk`, by the device.
    pub features: u64,
}

impl<'a, R: Regs> Init<'a, R> {
    pub(crate) fn new(c: &'a Common<R>) -> Init<'a, R> {
        Init {
            c,
            state: State::Start,
            offered: 0,
            features: 0,
        }
    }

    /// The sequence of a device left in FEATURES_OK with `features` (probe stops there
    /// and queue setup programs the queues); the next step writes DRIVER_OK.
    pub(crate) fn resume_at_features_ok(c: &'a Common<R>, features: u64) -> Init<'a, R> {
        Init {
            c,
            state: State::FeaturesOk,
            offered: 0,
            features,
        }
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> State {
        self.state
    }

    fn fail(&mut self, step: State, why: String) -> StepError {
        // virtio 3.1.1 step 8: on an unrecoverable error, set FAILED.
        if self.c.status() != u8::MAX {
            self.c.set_status(self.c.status() | status::FAILED);
        }
        self.state = State::Failed;
        StepError {
            step: step.name(),
            why,
        }
    }

    /// Reset the device: write 0 and wait until the status reads 0 (virtio 4.1.4.3.2:
    /// the driver must wait for that before reinitialising).
    pub(crate) fn reset(c: &Common<R>) -> Result<(), String> {
        c.set_status(0);
        let t0 = Instant::now();
        loop {
            match c.status() {
                0 => return Ok(()),
                u8::MAX => return Err("the device does not answer (status reads all-ones)".into()),
                s if t0.elapsed() > RESET_TIMEOUT => {
                    return Err(format!(
                        "device status still {s:#x} {} ms after writing 0",
                        RESET_TIMEOUT.as_millis()
                    ))
                }
                _ => std::thread::sleep(Duration::from_micros(100)),
            }
        }
    }

    /// One transition; returns the new state.
    pub(crate) fn step(&mut self, choose: Chooser<'_>) -> Result<State, StepError> {
        let next = match self.state {
            State::Start => {
                if let Err(why) = Self::reset(self.c) {
                    return Err(self.fail(State::Reset, why));
                }
                State::Reset
            }
            State::Reset => {
                self.c.set_status(status::ACKNOWLEDGE);
                State::Acknowledged
            }
            State::Acknowledged => {
                self.c.set_status(status::ACKNOWLEDGE | status::DRIVER);
                State::Driver
            }
            State::Driver => {
                self.offered = self.c.device_features();
                if self.offered == u64::MAX {
                    return Err(self.fail(
                        State::FeaturesWritten,
                        "the device does not answer (features read all-ones)".into(),
                    ));
                }
                if self.offered & feature::bit(feature::VERSION_1) == 0 {
                    return Err(self.fail(
                        State::FeaturesWritten,
                        format!(
                            "the device does not offer VERSION_1 (offers {}): legacy devices are not supported",
                            feature::describe(self.offered)
                        ),
                    ));
                }
                let f = match choose(self.offered) {
                    Ok(f) => f & self.offered,
                    Err(why) => return Err(self.fail(State::FeaturesWritten, why)),
                };
                self.c.set_driver_features(f);
                self.features = f;
                State::FeaturesWritten
            }
            State::FeaturesWritten => {
                let s = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
                self.c.set_status(s);
                // virtio 3.1.1 step 6: re-read; FEATURES_OK still set means accepted.
                let got = self.c.status();
                if got & status::FEATURES_OK == 0 || got == u8::MAX {
                    return Err(self.fail(
                        State::FeaturesOk,
                        format!(
                            "the device did not accept the features {} (status {got:#04x} without FEATURES_OK after writing it)",
                            feature::describe(self.features)
                        ),
                    ));
                }
                State::FeaturesOk
            }
            State::FeaturesOk => {
                self.c.set_status(
                    status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK,
                );
                let got = self.c.status();
                if got & status::DEVICE_NEEDS_RESET != 0 || got & status::DRIVER_OK == 0 {
                    return Err(self.fail(
                        State::DriverOk,
                        format!("device status {got:#04x} after writing DRIVER_OK"),
                    ));
                }
                State::DriverOk
            }
            s @ (State::DriverOk | State::Failed) => s,
        };
        self.state = next;
        Ok(next)
    }

    /// Steps until `target` (or an error).
    pub(crate) fn run_to(&mut self, target: State, choose: Chooser<'_>) -> Result<(), StepError> {
        while self.state != target {
            if matches!(self.state, State::DriverOk | State::Failed) {
                return Err(StepError {
                    step: target.name(),
                    why: format!("cannot reach it from {}", self.state.name()),
                });
            }
            self.step(choose)?;
        }
        Ok(())
    }
}
