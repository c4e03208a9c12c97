//! NVMe register and data-structure definitions, NVM Express Base Specification 1.4
//! (June 2019). Every structure the device reads or writes is `#[repr(C)]`, its size is
//! checked at compile time, and it implements [`Pod`] so it may be copied to and from
//! DMA memory with volatile accesses ([`read_volatile_pod`], [`write_volatile_pod`]).
//!
//! Nothing here touches a device; the driver ([`crate::ctrlr`], [`crate::qpair`]) does.

mod command;
mod entry;
mod identify;
mod pod;
mod regs;
mod status;
#[cfg(test)]
mod tests;

pub use command::*;
pub use entry::*;
pub use identify::*;
pub use pod::*;
pub use regs::*;
pub use status::*;
