//! virtio-blk structures and numbers (VIRTIO 1.2, section 5.2 "Block Device") and the
//! vhost-user feature bits we offer. Plain data: no driver logic here.

use vm_memory::ByteValued;

/// Device feature bits (VIRTIO 1.2, 5.2.3).
pub mod feature {
    /// Maximum size of any single segment is in `size_max`.
    pub const BLK_SIZE_MAX: u64 = 1;
    /// Maximum number of segments in a request is in `seg_max`.
    pub const BLK_SEG_MAX: u64 = 2;
    /// The device is read-only.
    pub const BLK_RO: u64 = 5;
    /// Block size of the disk is in `blk_size`.
    pub const BLK_BLK_SIZE: u64 = 6;
    /// Cache flush command support.
    pub const BLK_FLUSH: u64 = 9;
    /// Device supports multiqueue (`num_queues`).
    pub const BLK_MQ: u64 = 12;
    /// Device can support discard.
    pub const BLK_DISCARD: u64 = 13;
    /// Device can support write zeroes.
    pub const BLK_WRITE_ZEROES: u64 = 14;
    /// Indirect descriptor tables (VIRTIO 1.2, 2.7.5.3).
    pub const RING_INDIRECT_DESC: u64 = 28;
    /// used_event / avail_event notification suppression (VIRTIO 1.2, 2.7.7).
    pub const RING_EVENT_IDX: u64 = 29;
    /// vhost-user: the back end speaks protocol features (vhost-user spec).
    pub const VHOST_USER_PROTOCOL_FEATURES: u64 = 30;
    /// VIRTIO 1.0 or later (VIRTIO 1.2, 6).
    pub const VERSION_1: u64 = 32;
}

/// Request types (VIRTIO 1.2, 5.2.6).
pub mod req {
    /// Read.
    pub const IN: u32 = 0;
    /// Write.
    pub const OUT: u32 = 1;
    /// Flush.
    pub const FLUSH: u32 = 4;
    /// Device id string (20 bytes).
    pub const GET_ID: u32 = 8;
    /// Discard.
    pub const DISCARD: u32 = 11;
    /// Write zeroes.
    pub const WRITE_ZEROES: u32 = 13;
}

/// Status bytes (VIRTIO 1.2, 5.2.6).
pub mod status {
    /// Success.
    pub const OK: u8 = 0;
    /// Device or driver error.
    pub const IOERR: u8 = 1;
    /// Request unsupported by the device.
    pub const UNSUPP: u8 = 2;
}

/// virtio-blk counts sectors of 512 bytes whatever the block size (5.2.6).
pub const SECTOR_SIZE: u64 = 512;
/// The id string of `VIRTIO_BLK_T_GET_ID` is 20 bytes (5.2.6).
pub const ID_BYTES: usize = 20;

/// `struct virtio_blk_req`'s header (5.2.6): type, reserved (ioprio), sector.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct ReqHeader {
    /// `VIRTIO_BLK_T_*`.
    pub type_: u32,
    /// Reserved (Linux puts the I/O priority here).
    pub reserved: u32,
    /// First 512-byte sector.
    pub sector: u64,
}
const _: () = assert!(std::mem::size_of::<ReqHeader>() == 16);
// SAFETY: plain integers, no padding (16 bytes checked above), any bit pattern valid.
unsafe impl ByteValued for ReqHeader {}

/// `struct virtio_blk_discard_write_zeroes` (5.2.6): one range of a discard or
/// write-zeroes request.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardSegment {
    /// First 512-byte sector.
    pub sector: u64,
    /// Number of sectors.
    pub num_sectors: u32,
    /// Bit 0: unmap (write zeroes only).
    pub flags: u32,
}
const _: () = assert!(std::mem::size_of::<DiscardSegment>() == 16);
// SAFETY: plain integers, no padding (16 bytes checked above), any bit pattern valid.
unsafe impl ByteValued for DiscardSegment {}

/// `struct virtio_blk_config` up to `write_zeroes_may_unmap` and its padding (5.2.4),
/// little-endian on x86 as the spec requires.
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct BlkConfig {
    /// Size in 512-byte sectors.
    pub capacity: u64,
    /// Largest segment in bytes (`SIZE_MAX`).
    pub size_max: u32,
    /// Most segments per request (`SEG_MAX`).
    pub seg_max: u32,
    /// Geometry: cylinders.
    pub cylinders: u16,
    /// Geometry: heads.
    pub heads: u8,
    /// Geometry: sectors.
    pub sectors: u8,
    /// Logical block size (`BLK_SIZE`).
    pub blk_size: u32,
    /// Topology: log2 of physical blocks per logical block.
    pub physical_block_exp: u8,
    /// Topology: offset of the first aligned logical block.
    pub alignment_offset: u8,
    /// Topology: suggested minimum I/O size in blocks.
    pub min_io_size: u16,
    /// Topology: optimal I/O size in blocks.
    pub opt_io_size: u32,
    /// Writeback cache mode (`CONFIG_WCE`).
    pub writeback: u8,
    /// Padding.
    pub unused0: u8,
    /// Number of request queues (`MQ`).
    pub num_queues: u16,
    /// Largest discard in sectors.
    pub max_discard_sectors: u32,
    /// Most segments of one discard.
    pub max_discard_seg: u32,
    /// Discard alignment in sectors.
    pub discard_sector_alignment: u32,
    /// Largest write-zeroes in sectors.
    pub max_write_zeroes_sectors: u32,
    /// Most segments of one write-zeroes.
    pub max_write_zeroes_seg: u32,
    /// Whether write-zeroes may deallocate.
    pub write_zeroes_may_unmap: u8,
    /// Padding.
    pub unused1: [u8; 3],
}
const _: () = assert!(std::mem::size_of::<BlkConfig>() == 60);
// SAFETY: packed plain integers (60 bytes checked above), any bit pattern valid.
unsafe impl ByteValued for BlkConfig {}
