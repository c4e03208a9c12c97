//! Wire formats of NVMe over Fabrics on TCP, apart from any transport logic:
//! [`pdu`] (NVMe/TCP Transport Specification 1.0, section 3.6: the PDUs),
//! [`fabrics`] (NVMe over Fabrics 1.1, sections 3.3 and 5: Fabrics commands, Connect
//! data, the discovery log page) and [`bytes`] (copying `Pod` structures to and from
//! byte buffers). The NVMe commands, completions and identify structures themselves are
//! the driver's (`nvme::spec`).
//!
//! Multi-byte fields are little endian on the wire; these structures are used as-is,
//! so the crate assumes a little-endian host (checked at compile time in [`bytes`]).

pub mod bytes;
pub mod fabrics;
pub mod pdu;
#[cfg(test)]
mod tests;
