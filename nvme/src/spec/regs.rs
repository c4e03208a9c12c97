//! Controller registers (NVMe 1.4 section 3.1).

/// Register offsets in BAR 0 (NVMe 1.4 section 3.1, figure 78).
pub mod reg {
    /// Controller Capabilities, 64 bit (3.1.1).
    pub const CAP: u64 = 0x00;
    /// Version (3.1.2).
    pub const VS: u64 = 0x08;
    /// Interrupt Mask Set (3.1.3).
    pub const INTMS: u64 = 0x0c;
    /// Interrupt Mask Clear (3.1.4).
    pub const INTMC: u64 = 0x10;
    /// Controller Configuration (3.1.5).
    pub const CC: u64 = 0x14;
    /// Controller Status (3.1.6).
    pub const CSTS: u64 = 0x1c;
    /// NVM Subsystem Reset (3.1.7).
    pub const NSSR: u64 = 0x20;
    /// Admin Queue Attributes (3.1.8).
    pub const AQA: u64 = 0x24;
    /// Admin Submission Queue base address, 64 bit (3.1.9).
    pub const ASQ: u64 = 0x28;
    /// Admin Completion Queue base address, 64 bit (3.1.10).
    pub const ACQ: u64 = 0x30;
    /// First doorbell (3.1.24): SQ 0 tail.
    pub const DOORBELL_BASE: u64 = 0x1000;
}

/// Controller Capabilities (CAP, NVMe 1.4 section 3.1.1), decoded from the 64-bit value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap(pub u64);

impl Cap {
    /// Maximum Queue Entries Supported, as a count (MQES is 0-based).
    pub fn max_queue_entries(self) -> u32 {
        (self.0 & 0xffff) as u32 + 1
    }
    /// Contiguous Queues Required.
    pub fn cqr(self) -> bool {
        self.0 & (1 << 16) != 0
    }
    /// Timeout (TO): worst-case time for CSTS.RDY to change after CC.EN changes, in
    /// milliseconds (the field counts 500 ms units).
    pub fn timeout_ms(self) -> u64 {
        ((self.0 >> 24) & 0xff) * 500
    }
    /// Doorbell Stride (DSTRD): doorbells are `4 << dstrd` bytes apart.
    pub fn dstrd(self) -> u32 {
        ((self.0 >> 32) & 0xf) as u32
    }
    /// NVM Subsystem Reset Supported.
    pub fn nssrs(self) -> bool {
        self.0 & (1 << 36) != 0
    }
    /// Command Sets Supported (bit 0: NVM command set).
    pub fn css(self) -> u8 {
        ((self.0 >> 37) & 0xff) as u8
    }
    /// Memory Page Size Minimum in bytes (`2^(12 + MPSMIN)`).
    pub fn mps_min(self) -> u64 {
        1 << (12 + ((self.0 >> 48) & 0xf))
    }
    /// Memory Page Size Maximum in bytes (`2^(12 + MPSMAX)`).
    pub fn mps_max(self) -> u64 {
        1 << (12 + ((self.0 >> 52) & 0xf))
    }
    /// Offset of SQ `qid`'s tail doorbell (section 3.1.24).
    pub fn sq_doorbell(self, qid: u16) -> u64 {
        reg::DOORBELL_BASE + (2 * qid as u64) * (4 << self.dstrd())
    }
    /// Offset of CQ `qid`'s head doorbell (section 3.1.25).
    pub fn cq_doorbell(self, qid: u16) -> u64 {
        reg::DOORBELL_BASE + (2 * qid as u64 + 1) * (4 << self.dstrd())
    }
}

/// Version (VS, section 3.1.2): `(major, minor, tertiary)`.
pub fn version(vs: u32) -> (u16, u8, u8) {
    ((vs >> 16) as u16, (vs >> 8) as u8, vs as u8)
}

/// Controller Configuration bits (CC, section 3.1.5).
pub mod cc {
    /// Enable.
    pub const EN: u32 = 1 << 0;
    /// I/O Command Set Selected: NVM command set (000b), bits 6:4.
    pub const CSS_NVM: u32 = 0 << 4;
    /// Memory Page Size shift (bits 10:7): page = 2^(12+MPS).
    pub const MPS_SHIFT: u32 = 7;
    /// Arbitration Mechanism: round robin (000b), bits 13:11.
    pub const AMS_RR: u32 = 0 << 11;
    /// Shutdown Notification (bits 15:14): normal shutdown.
    pub const SHN_NORMAL: u32 = 1 << 14;
    /// I/O Submission Queue Entry Size: 2^6 = 64 bytes, bits 19:16.
    pub const IOSQES_64: u32 = 6 << 16;
    /// I/O Completion Queue Entry Size: 2^4 = 16 bytes, bits 23:20.
    pub const IOCQES_16: u32 = 4 << 20;
}

/// Controller Status bits (CSTS, section 3.1.6).
pub mod csts {
    /// Ready.
    pub const RDY: u32 = 1 << 0;
    /// Controller Fatal Status.
    pub const CFS: u32 = 1 << 1;
    /// Shutdown Status (bits 3:2); 10b = shutdown complete.
    pub const SHST_MASK: u32 = 3 << 2;
    /// Shutdown processing complete.
    pub const SHST_COMPLETE: u32 = 2 << 2;
}
