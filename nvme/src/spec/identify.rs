//! Identify data structures (NVMe 1.4 section 5.15.2).

use std::mem::size_of;

use super::pod::Pod;

/// Compile-time check that each listed field of a spec structure is at its byte offset.
macro_rules! assert_offsets {
    ($t:ty: $($f:ident $off:literal),* $(,)?) => {
        $(const _: () = assert!(std::mem::offset_of!($t, $f) == $off);)*
    };
}

/// Identify Controller data structure (NVMe 1.4 section 5.15.2.1, figure 247). 4096
/// bytes. Fields the driver does not use are kept as reserved byte arrays.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IdentifyController {
    /// PCI Vendor ID.
    pub vid: u16,
    /// PCI Subsystem Vendor ID.
    pub ssvid: u16,
    /// Serial Number (ASCII, space padded).
    pub sn: [u8; 20],
    /// Model Number (ASCII, space padded).
    pub mn: [u8; 40],
    /// Firmware Revision.
    pub fr: [u8; 8],
    /// Recommended Arbitration Burst.
    pub rab: u8,
    /// IEEE OUI Identifier.
    pub ieee: [u8; 3],
    /// Controller Multi-Path I/O and Namespace Sharing Capabilities.
    pub cmic: u8,
    /// Maximum Data Transfer Size: `2^mdts` minimum pages (CAP.MPSMIN); 0 = no limit.
    pub mdts: u8,
    /// Controller ID.
    pub cntlid: u16,
    /// Version.
    pub ver: u32,
    /// RTD3 Resume Latency.
    pub rtd3r: u32,
    /// RTD3 Entry Latency.
    pub rtd3e: u32,
    /// Optional Asynchronous Events Supported.
    pub oaes: u32,
    /// Controller Attributes.
    pub ctratt: u32,
    /// Read Recovery Levels Supported.
    pub rrls: u16,
    _rsvd102: [u8; 9],
    /// Controller Type (1 = I/O controller).
    pub cntrltype: u8,
    /// FRU Globally Unique Identifier.
    pub fguid: [u8; 16],
    /// Command Retry Delay Times 1..3.
    pub crdt: [u16; 3],
    _rsvd134: [u8; 122],
    /// Optional Admin Command Support (bit 8: Doorbell Buffer Config).
    pub oacs: u16,
    /// Abort Command Limit (0-based).
    pub acl: u8,
    /// Asynchronous Event Request Limit (0-based).
    pub aerl: u8,
    /// Firmware Updates.
    pub frmw: u8,
    /// Log Page Attributes.
    pub lpa: u8,
    /// Error Log Page Entries (0-based).
    pub elpe: u8,
    /// Number of Power States Support (0-based).
    pub npss: u8,
    /// Admin Vendor Specific Command Configuration.
    pub avscc: u8,
    /// Autonomous Power State Transition Attributes.
    pub apsta: u8,
    /// Warning Composite Temperature Threshold (kelvin).
    pub wctemp: u16,
    /// Critical Composite Temperature Threshold (kelvin).
    pub cctemp: u16,
    _rsvd270: [u8; 10],
    /// Total NVM Capacity (bytes, 128-bit little endian).
    pub tnvmcap: [u8; 16],
    /// Unallocated NVM Capacity.
    pub unvmcap: [u8; 16],
    _rsvd312: [u8; 200],
    /// Submission Queue Entry Size (required 3:0, maximum 7:4, powers of two).
    pub sqes: u8,
    /// Completion Queue Entry Size.
    pub cqes: u8,
    /// Maximum Outstanding Commands.
    pub maxcmd: u16,
    /// Number of Namespaces (highest valid NSID).
    pub nn: u32,
    /// Optional NVM Command Support.
    pub oncs: u16,
    /// Fused Operation Support.
    pub fuses: u16,
    /// Format NVM Attributes.
    pub fna: u8,
    /// Volatile Write Cache.
    pub vwc: u8,
    /// Atomic Write Unit Normal.
    pub awun: u16,
    /// Atomic Write Unit Power Fail.
    pub awupf: u16,
    /// NVM Vendor Specific Command Configuration.
    pub nvscc: u8,
    /// Namespace Write Protection Capabilities.
    pub nwpc: u8,
    /// Atomic Compare & Write Unit.
    pub acwu: u16,
    _rsvd534: u16,
    /// SGL Support.
    pub sgls: u32,
    /// Maximum Number of Allowed Namespaces.
    pub mnan: u32,
    _rsvd544: [u8; 224],
    /// NVM Subsystem NVMe Qualified Name.
    pub subnqn: [u8; 256],
    _rsvd1024: [u8; 1024],
    /// Power State Descriptors (32 x 32 bytes).
    pub psd: [[u8; 32]; 32],
    /// Vendor Specific.
    pub vs: [u8; 1024],
}
const _: () = assert!(size_of::<IdentifyController>() == 4096);
assert_offsets! { IdentifyController:
    mdts 77, oacs 256, tnvmcap 280, sqes 512, nn 516, sgls 536, subnqn 768, psd 2048
}
// SAFETY: repr(C), integers and integer arrays only; the offset asserts above and the
// total size show there is no padding.
unsafe impl Pod for IdentifyController {}

/// Trim the space/NUL padding of an ASCII identify field.
pub fn ascii_field(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_end_matches([' ', '\0'])
        .to_string()
}

impl IdentifyController {
    /// Serial number, trimmed.
    pub fn serial(&self) -> String {
        ascii_field(&self.sn)
    }
    /// Model number, trimmed.
    pub fn model(&self) -> String {
        ascii_field(&self.mn)
    }
    /// Firmware revision, trimmed.
    pub fn firmware(&self) -> String {
        ascii_field(&self.fr)
    }
    /// Subsystem NQN, trimmed.
    pub fn subnqn(&self) -> String {
        ascii_field(&self.subnqn)
    }
    /// Total NVM capacity in bytes (low 64 bits of the 128-bit field).
    pub fn tnvmcap(&self) -> u64 {
        u64::from_le_bytes(self.tnvmcap[..8].try_into().unwrap_or([0; 8]))
    }
    /// Maximum data transfer size in bytes given the minimum page size, `None` if
    /// unlimited (MDTS = 0).
    pub fn max_transfer(&self, mps_min: u64) -> Option<u64> {
        (self.mdts != 0).then(|| mps_min << self.mdts.min(20))
    }
}

impl std::fmt::Debug for IdentifyController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentifyController")
            .field("vid", &format_args!("{:#06x}", self.vid))
            .field("serial", &self.serial())
            .field("model", &self.model())
            .field("firmware", &self.firmware())
            .field("mdts", &self.mdts)
            .field("nn", &self.nn)
            .finish_non_exhaustive()
    }
}

/// LBA Format Data Structure (NVM command set, NVMe 1.4 section 5.15.2.2, figure 249):
/// MS bits 15:0, LBADS 23:16 (block size `2^LBADS`), RP 25:24.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LbaFormat(pub u32);
const _: () = assert!(size_of::<LbaFormat>() == 4);
// SAFETY: transparent-like repr(C) over a u32.
unsafe impl Pod for LbaFormat {}

impl LbaFormat {
    /// Metadata bytes per block.
    pub fn ms(self) -> u16 {
        self.0 as u16
    }
    /// LBA data size as a power of two (0 = format not available).
    pub fn lbads(self) -> u8 {
        (self.0 >> 16) as u8
    }
    /// Block size in bytes (0 if the format is not available or the size is absurd).
    pub fn block_size(self) -> u64 {
        match self.lbads() {
            9..=31 => 1 << self.lbads(),
            _ => 0,
        }
    }
    /// Relative Performance (0 best .. 3 degraded).
    pub fn rp(self) -> u8 {
        ((self.0 >> 24) & 3) as u8
    }
}

/// Identify Namespace data structure (NVM command set, NVMe 1.4 section 5.15.2.2,
/// figure 245). 4096 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IdentifyNamespace {
    /// Namespace Size in logical blocks.
    pub nsze: u64,
    /// Namespace Capacity.
    pub ncap: u64,
    /// Namespace Utilization.
    pub nuse: u64,
    /// Namespace Features (bit 0: thin provisioning; bit 2: DAE; bit 3: UIDREUSE).
    pub nsfeat: u8,
    /// Number of LBA Formats (0-based).
    pub nlbaf: u8,
    /// Formatted LBA Size: bits 3:0 index of the format in use, bit 4 metadata at end
    /// of LBA.
    pub flbas: u8,
    /// Metadata Capabilities.
    pub mc: u8,
    /// End-to-end Data Protection Capabilities.
    pub dpc: u8,
    /// End-to-end Data Protection Type Settings.
    pub dps: u8,
    /// Namespace Multi-path I/O and Sharing Capabilities.
    pub nmic: u8,
    /// Reservation Capabilities.
    pub rescap: u8,
    /// Format Progress Indicator.
    pub fpi: u8,
    /// Deallocate Logical Block Features: bits 2:0 what a deallocated block reads as
    /// (000b not reported, 001b all zeroes, 010b all ones), bit 3 Write Zeroes may
    /// deallocate, bit 4 guard field.
    pub dlfeat: u8,
    /// Namespace Atomic Write Unit Normal.
    pub nawun: u16,
    /// Namespace Atomic Write Unit Power Fail.
    pub nawupf: u16,
    /// Namespace Atomic Compare & Write Unit.
    pub nacwu: u16,
    /// Namespace Atomic Boundary Size Normal.
    pub nabsn: u16,
    /// Namespace Atomic Boundary Offset.
    pub nabo: u16,
    /// Namespace Atomic Boundary Size Power Fail.
    pub nabspf: u16,
    /// Namespace Optimal I/O Boundary.
    pub noiob: u16,
    /// NVM Capacity (bytes, 128-bit).
    pub nvmcap: [u8; 16],
    /// Namespace Preferred Write Granularity.
    pub npwg: u16,
    /// Namespace Preferred Write Alignment.
    pub npwa: u16,
    /// Namespace Preferred Deallocate Granularity.
    pub npdg: u16,
    /// Namespace Preferred Deallocate Alignment.
    pub npda: u16,
    /// Namespace Optimal Write Size.
    pub nows: u16,
    _rsvd74: [u8; 18],
    /// ANA Group Identifier.
    pub anagrpid: u32,
    _rsvd96: [u8; 3],
    /// Namespace Attributes.
    pub nsattr: u8,
    /// NVM Set Identifier.
    pub nvmsetid: u16,
    /// Endurance Group Identifier.
    pub endgid: u16,
    /// Namespace Globally Unique Identifier.
    pub nguid: [u8; 16],
    /// IEEE Extended Unique Identifier.
    pub eui64: [u8; 8],
    /// LBA Format Support 0..=15.
    pub lbaf: [LbaFormat; 16],
    _rsvd192: [u8; 192],
    /// Vendor Specific.
    pub vs: [u8; 3712],
}
const _: () = assert!(size_of::<IdentifyNamespace>() == 4096);
assert_offsets! { IdentifyNamespace:
    dlfeat 33, nvmcap 48, anagrpid 92, nguid 104, lbaf 128
}
// SAFETY: repr(C), integers and integer arrays only; offsets and total size checked.
unsafe impl Pod for IdentifyNamespace {}

impl IdentifyNamespace {
    /// Index of the LBA format in use (FLBAS bits 3:0).
    pub fn flbas_index(&self) -> usize {
        (self.flbas & 0xf) as usize
    }
    /// The LBA format in use.
    pub fn lba_format(&self) -> LbaFormat {
        self.lbaf[self.flbas_index()]
    }
    /// What deallocated blocks read as (DLFEAT bits 2:0).
    pub fn dealloc_read_value(&self) -> DeallocRead {
        match self.dlfeat & 7 {
            1 => DeallocRead::Zeroes,
            2 => DeallocRead::Ones,
            _ => DeallocRead::NotReported,
        }
    }
}

impl std::fmt::Debug for IdentifyNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentifyNamespace")
            .field("nsze", &self.nsze)
            .field("ncap", &self.ncap)
            .field("flbas", &self.flbas)
            .field("dlfeat", &self.dlfeat)
            .finish_non_exhaustive()
    }
}

/// What a deallocated logical block reads as (DLFEAT bits 2:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeallocRead {
    /// 000b: not reported.
    NotReported,
    /// 001b: all bytes 0x00.
    Zeroes,
    /// 010b: all bytes 0xff.
    Ones,
}
