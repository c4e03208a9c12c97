//! AF_XDP socket calls for `net_af_xdp` (`linux/if_xdp.h`): socket, UMEM registration,
//! ring sizes and offsets, ring mappings, bind, wakeups, busy-poll options, statistics, and the
//! ethtool channel query that tells how many queues an interface has.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::{
    cvt, cvt_size, getsockopt, ifreq, ioctl_ifreq, mmap_fd, sendto_empty, setsockopt, socket,
    Mapping, OptVal,
};

const AF_XDP: i32 = 44;
const SOL_XDP: i32 = 283;
const XDP_MMAP_OFFSETS: i32 = 1;
pub const XDP_RX_RING: i32 = 2;
pub const XDP_TX_RING: i32 = 3;
const XDP_UMEM_REG: i32 = 4;
pub const XDP_UMEM_FILL_RING: i32 = 5;
pub const XDP_UMEM_COMPLETION_RING: i32 = 6;
const XDP_STATISTICS: i32 = 7;
const XDP_OPTIONS: i32 = 8;
const XDP_OPTIONS_ZEROCOPY: u32 = 1;
/// `sockaddr_xdp.sxdp_flags`.
pub const XDP_SHARED_UMEM: u16 = 1 << 0;
pub const XDP_COPY: u16 = 1 << 1;
pub const XDP_ZEROCOPY: u16 = 1 << 2;
pub const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
/// Ring `flags` word: the kernel wants a syscall to make progress.
pub const XDP_RING_NEED_WAKEUP: u32 = 1;
/// mmap page offsets of the four rings.
pub const XDP_PGOFF_RX_RING: i64 = 0;
pub const XDP_PGOFF_TX_RING: i64 = 0x8000_0000;
pub const XDP_UMEM_PGOFF_FILL_RING: i64 = 0x1_0000_0000;
pub const XDP_UMEM_PGOFF_COMPLETION_RING: i64 = 0x1_8000_0000;
/// `asm-generic/socket.h` busy-poll options.
const SO_BUSY_POLL: i32 = 46;
const SO_PREFER_BUSY_POLL: i32 = 69;
const SO_BUSY_POLL_BUDGET: i32 = 70;
const SIOCETHTOOL: u64 = 0x8946;
const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// `struct xdp_ring_offset`: where a ring's producer, consumer, descriptors and flags
/// live in its mapping.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XdpRingOffset {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

/// `struct xdp_mmap_offsets`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XdpMmapOffsets {
    pub rx: XdpRingOffset,
    pub tx: XdpRingOffset,
    pub fr: XdpRingOffset,
    pub cr: XdpRingOffset,
}
// SAFETY: repr(C) of integers.
unsafe impl OptVal for XdpMmapOffsets {}

/// `struct xdp_desc`: an RX or TX descriptor (UMEM address, length).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

/// `struct xdp_umem_reg`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XdpUmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}
// SAFETY: repr(C) of integers.
unsafe impl OptVal for XdpUmemReg {}

/// `socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0)`.
pub fn xsk_socket() -> io::Result<OwnedFd> {
    socket(AF_XDP, libc::SOCK_RAW, 0)
}

/// `xdp_umem_reg.flags`: chunks may start anywhere in the UMEM (Linux 5.4); RX
/// descriptors then carry the data's offset from the chunk in their top 16 bits.
pub const XDP_UMEM_UNALIGNED_CHUNK_FLAG: u32 = 1 << 0;
/// Bit position of that offset in a descriptor address (`XSK_UNALIGNED_BUF_OFFSET_SHIFT`).
pub const XSK_UNALIGNED_BUF_OFFSET_SHIFT: u32 = 48;
/// Bytes the kernel keeps free in front of received data in a chunk, after the UMEM
/// headroom (`XDP_PACKET_HEADROOM`).
pub const XDP_PACKET_HEADROOM: u32 = 256;
/// Smallest UMEM chunk the kernel accepts (`XDP_UMEM_MIN_CHUNK_SIZE`).
pub const XDP_UMEM_MIN_CHUNK_SIZE: u32 = 2048;

/// `XDP_UMEM_REG` of `len` bytes at `addr` (page aligned) in chunks of `chunk` bytes,
/// `headroom` bytes left free in front of each chunk's `XDP_PACKET_HEADROOM`, `flags`
/// as `XDP_UMEM_UNALIGNED_CHUNK_FLAG`.
pub fn umem_reg(
    fd: &OwnedFd,
    addr: *mut u8,
    len: usize,
    chunk: u32,
    headroom: u32,
    flags: u32,
) -> io::Result<()> {
    let r = XdpUmemReg {
        addr: addr as u64,
        len: len as u64,
        chunk_size: chunk,
        headroom,
        flags,
        ..Default::default()
    };
    setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &r)
}

/// Set the size of ring `which` (`XDP_RX_RING`, ...).
pub fn ring_size(fd: &OwnedFd, which: i32, entries: u32) -> io::Result<()> {
    setsockopt(fd, SOL_XDP, which, &entries)
}

/// `getsockopt(XDP_MMAP_OFFSETS)`.
pub fn mmap_offsets(fd: &OwnedFd) -> io::Result<XdpMmapOffsets> {
    Ok(getsockopt::<XdpMmapOffsets>(fd.as_raw_fd(), SOL_XDP, XDP_MMAP_OFFSETS)?.0)
}

/// True if the socket runs in zero-copy mode (`XDP_OPTIONS`).
pub fn is_zero_copy(fd: &OwnedFd) -> io::Result<bool> {
    let (v, _) = getsockopt::<u32>(fd.as_raw_fd(), SOL_XDP, XDP_OPTIONS)?;
    Ok(v & XDP_OPTIONS_ZEROCOPY != 0)
}

/// `struct xdp_statistics` (`linux/if_xdp.h`): the socket's drop and error counters
/// since it was made. Kernels before 5.9 fill only the first three fields (the rest stay
/// 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStatistics {
    /// Frames dropped for reasons other than the two below.
    pub rx_dropped: u64,
    /// RX descriptors the kernel found invalid.
    pub rx_invalid_descs: u64,
    /// TX descriptors the kernel found invalid.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the TX ring empty.
    pub tx_ring_empty_descs: u64,
}
const _: () = assert!(std::mem::size_of::<XdpStatistics>() == 48);
// SAFETY: repr(C) of u64s.
unsafe impl OptVal for XdpStatistics {}

/// `getsockopt(XDP_STATISTICS)`.
pub fn statistics(fd: &OwnedFd) -> io::Result<XdpStatistics> {
    Ok(getsockopt::<XdpStatistics>(fd.as_raw_fd(), SOL_XDP, XDP_STATISTICS)?.0)
}

/// Map a ring of `len` bytes at page offset `pgoff`.
pub fn mmap_ring(fd: &OwnedFd, len: usize, pgoff: i64) -> io::Result<Mapping> {
    mmap_fd(fd, len, pgoff, libc::MAP_POPULATE)
}

/// Anonymous private memory of `len` bytes (a UMEM), zeroed, unmapped on drop.
pub fn mmap_anon(len: usize) -> io::Result<Mapping> {
    // SAFETY: a fresh anonymous mapping; aliases nothing.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    Mapping::from_mmap(p, len)
}

/// `bind(fd, sockaddr_xdp { ifindex, queue, flags, shared_umem_fd })`. With
/// `share = Some(owner)` the socket uses the UMEM registered on `owner`
/// (`XDP_SHARED_UMEM`; the kernel refuses any other flag then: the owner's mode holds).
pub fn xsk_bind(
    fd: &OwnedFd,
    ifindex: i32,
    queue: u32,
    flags: u16,
    share: Option<&OwnedFd>,
) -> io::Result<()> {
    #[repr(C)]
    struct SockaddrXdp {
        family: u16,
        flags: u16,
        ifindex: u32,
        queue_id: u32,
        shared_umem_fd: u32,
    }
    let sa = SockaddrXdp {
        family: AF_XDP as u16,
        flags: match share {
            Some(_) => XDP_SHARED_UMEM,
            None => flags,
        },
        ifindex: ifindex as u32,
        queue_id: queue,
        shared_umem_fd: share.map_or(0, |o| o.as_raw_fd() as u32),
    };
    // SAFETY: `sa` is a valid sockaddr_xdp of the given length.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const SockaddrXdp).cast(),
            std::mem::size_of::<SockaddrXdp>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Wake the kernel's RX side (fill ring refilled): a nonblocking zero-length `recvfrom`.
pub fn xsk_wake_rx(fd: RawFd) -> io::Result<()> {
    // SAFETY: no buffers.
    let r = unsafe {
        libc::recvfrom(
            fd,
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    cvt_size(r).map(drop)
}

/// Wake the kernel's TX side: a nonblocking zero-length `sendto`. `Ok(true)`: the
/// kernel stopped early (EAGAIN: it sends at most a batch per call in copy mode) and
/// descriptors remain; EBUSY/ENOBUFS (busy, try later) are `Ok(false)`, not errors.
pub fn xsk_wake_tx(fd: RawFd) -> io::Result<bool> {
    match sendto_empty(fd) {
        Ok(()) => Ok(false),
        Err(e) => match e.raw_os_error() {
            Some(libc::EAGAIN) => Ok(true),
            Some(libc::EBUSY | libc::ENOBUFS | libc::EINTR) => Ok(false),
            _ => Err(e),
        },
    }
}

/// Preferred busy polling with `budget` packets per poll (`SO_PREFER_BUSY_POLL`,
/// `SO_BUSY_POLL` 20 µs, `SO_BUSY_POLL_BUDGET`), as DPDK's driver sets it.
pub fn busy_poll(fd: &OwnedFd, budget: u32) -> io::Result<()> {
    setsockopt(fd, libc::SOL_SOCKET, SO_PREFER_BUSY_POLL, &1i32)?;
    setsockopt(fd, libc::SOL_SOCKET, SO_BUSY_POLL, &20i32)?;
    setsockopt(fd, libc::SOL_SOCKET, SO_BUSY_POLL_BUDGET, &(budget as i32))
}

/// `ETHTOOL_GCHANNELS`: the interface's RX queue count (rx + combined channels).
pub fn rx_queue_count(ctl: &OwnedFd, name: &str) -> io::Result<u32> {
    let mut ch = [0u32; 9];
    ch[0] = ETHTOOL_GCHANNELS;
    let mut r = ifreq(name)?;
    r.data[..8].copy_from_slice(&(ch.as_mut_ptr() as u64).to_ne_bytes());
    ioctl_ifreq(ctl.as_raw_fd(), SIOCETHTOOL, &mut r)?;
    // rx_count + combined_count
    Ok(ch[5] + ch[8])
}
