//! Every system call the drivers make: one safe function per call, each returning
//! `io::Result`. Logic above this module never touches `libc` directly.
//!
//! Constants not exported by the `libc` crate are spelled out here with the kernel header
//! they come from (`linux/if_packet.h`, `linux/if_tun.h`, `linux/sockios.h`).

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

mod bpf;
mod xsk;
pub use bpf::*;
pub use xsk::*;

/// `linux/if_ether.h`: every protocol.
pub const ETH_P_ALL: u16 = 0x0003;
/// `linux/socket.h`.
pub const SOL_PACKET: i32 = 263;
/// `linux/if_packet.h` socket options.
pub const PACKET_ADD_MEMBERSHIP: i32 = 1;
pub const PACKET_RX_RING: i32 = 5;
pub const PACKET_STATISTICS: i32 = 6;
pub const PACKET_VERSION: i32 = 10;
pub const PACKET_TX_RING: i32 = 13;
pub const PACKET_LOSS: i32 = 14;
pub const PACKET_FANOUT: i32 = 18;
pub const PACKET_QDISC_BYPASS: i32 = 20;
pub const PACKET_IGNORE_OUTGOING: i32 = 23;
/// `enum tpacket_versions`.
pub const TPACKET_V2: i32 = 1;
pub const TPACKET_V3: i32 = 2;
/// Fanout mode: by flow hash; flag: defragment first.
pub const PACKET_FANOUT_HASH: u32 = 0;
pub const PACKET_FANOUT_FLAG_DEFRAG: u32 = 0x8000;
/// `tp_status` bits.
pub const TP_STATUS_KERNEL: u32 = 0;
pub const TP_STATUS_USER: u32 = 1;
pub const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
pub const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
pub const TP_STATUS_AVAILABLE: u32 = 0;
pub const TP_STATUS_SEND_REQUEST: u32 = 1;
pub const TP_STATUS_SENDING: u32 = 2;
pub const TP_STATUS_WRONG_FORMAT: u32 = 4;
/// `linux/if_tun.h`.
pub const IFF_TAP: u16 = 0x0002;
pub const IFF_NO_PI: u16 = 0x1000;
pub const IFF_MULTI_QUEUE: u16 = 0x0100;
const TUNSETIFF: u64 = 0x4004_54ca;
/// `linux/sockios.h`.
const SIOCGIFFLAGS: u64 = 0x8913;
const SIOCSIFFLAGS: u64 = 0x8914;
const SIOCGIFMTU: u64 = 0x8921;
const SIOCSIFMTU: u64 = 0x8922;
const SIOCSIFHWADDR: u64 = 0x8924;
const SIOCGIFHWADDR: u64 = 0x8927;
const SIOCGIFINDEX: u64 = 0x8933;
/// `linux/if.h` interface flags.
pub const IFF_UP: u16 = 0x1;
pub const IFF_RUNNING: u16 = 0x40;
pub const IFF_PROMISC: u16 = 0x100;
pub const IFF_ALLMULTI: u16 = 0x200;
/// `IFNAMSIZ`.
pub const IFNAMSIZ: usize = 16;

/// `struct tpacket_req` (`linux/if_packet.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TpacketReq {
    pub block_size: u32,
    pub block_nr: u32,
    pub frame_size: u32,
    pub frame_nr: u32,
}

/// `struct tpacket_req3` (`linux/if_packet.h`): the TPACKET_V3 ring request. For a TX
/// ring the last three fields must be 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TpacketReq3 {
    pub block_size: u32,
    pub block_nr: u32,
    pub frame_size: u32,
    pub frame_nr: u32,
    /// Milliseconds after which the kernel retires a partly filled block.
    pub retire_blk_tov: u32,
    pub sizeof_priv: u32,
    pub feature_req_word: u32,
}

/// Offsets in `struct tpacket_block_desc` (`version`, `offset_to_priv`, then
/// `struct tpacket_hdr_v1`): the header at the start of every TPACKET_V3 RX block.
pub const V3_BLOCK_STATUS_OFF: usize = 8;
pub const V3_BLOCK_NUM_PKTS_OFF: usize = 12;
pub const V3_BLOCK_FIRST_PKT_OFF: usize = 16;

/// `struct tpacket3_hdr` (`linux/if_packet.h`): the header of every TPACKET_V3 frame
/// (RX frames packed in a block, chained by `tp_next_offset`; TX frames one per slot).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Tpacket3Hdr {
    pub tp_next_offset: u32,
    pub tp_sec: u32,
    pub tp_nsec: u32,
    pub tp_snaplen: u32,
    pub tp_len: u32,
    pub tp_status: u32,
    pub tp_mac: u16,
    pub tp_net: u16,
    /// `hv1`: `struct tpacket_hdr_variant1`.
    pub tp_rxhash: u32,
    pub tp_vlan_tci: u32,
    pub tp_vlan_tpid: u16,
    pub hv1_padding: u16,
    pub tp_padding: [u8; 8],
}
const _: () = assert!(std::mem::size_of::<Tpacket3Hdr>() == 48);
/// `TPACKET3_HDRLEN - sizeof(struct sockaddr_ll)`: where V3 TX frame data starts.
pub const TPACKET3_TX_DATA_OFF: usize = 48;

/// `struct tpacket2_hdr` (`linux/if_packet.h`): the header of every TPACKET_V2 frame.
/// Lives in memory the kernel writes; accessed only through raw pointers (status atomically).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Tpacket2Hdr {
    pub tp_status: u32,
    pub tp_len: u32,
    pub tp_snaplen: u32,
    pub tp_mac: u16,
    pub tp_net: u16,
    pub tp_sec: u32,
    pub tp_nsec: u32,
    pub tp_vlan_tci: u16,
    pub tp_vlan_tpid: u16,
    pub tp_padding: [u8; 4],
}
const _: () = assert!(std::mem::size_of::<Tpacket2Hdr>() == 32);
/// `TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)`: where TX frame data starts (the
/// kernel's default when `PACKET_TX_HAS_OFF` is off).
pub const TPACKET2_TX_DATA_OFF: usize = 32;

/// `struct packet_mreq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PacketMreq {
    pub ifindex: i32,
    pub ty: u16,
    pub alen: u16,
    pub address: [u8; 8],
}
/// `PACKET_MR_PROMISC`.
pub const PACKET_MR_PROMISC: u16 = 1;

/// `struct ifreq`: name + a 24-byte union.
#[repr(C)]
#[derive(Clone, Copy)]
struct IfReq {
    name: [u8; IFNAMSIZ],
    data: [u8; 24],
}
const _: () = assert!(std::mem::size_of::<IfReq>() == 40);

fn ifreq(name: &str) -> io::Result<IfReq> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() >= IFNAMSIZ || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name '{name}'"),
        ));
    }
    let mut r = IfReq {
        name: [0; IFNAMSIZ],
        data: [0; 24],
    };
    r.name[..b.len()].copy_from_slice(b);
    Ok(r)
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: isize) -> io::Result<Option<usize>> {
    if r < 0 {
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        }
    } else {
        Ok(Some(r as usize))
    }
}

/// `socket(domain, ty | SOCK_CLOEXEC, proto)`.
fn socket(domain: i32, ty: i32, proto: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; a non-negative result is a new fd we own.
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(proto))`.
pub fn packet_socket(proto: u16) -> io::Result<OwnedFd> {
    socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto.to_be()))
}

/// `socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)`: a handle for interface ioctls.
pub fn ctl_socket() -> io::Result<OwnedFd> {
    socket(libc::AF_INET, libc::SOCK_DGRAM, 0)
}

/// Marker for plain-data option values (no padding-dependent meaning, no pointers).
///
/// # Safety
/// The type is `#[repr(C)]` or a primitive and every bit pattern is valid.
pub unsafe trait OptVal: Copy {}
// SAFETY: primitives.
unsafe impl OptVal for i32 {}
// SAFETY: primitives.
unsafe impl OptVal for u32 {}
// SAFETY: an array of primitives.
unsafe impl OptVal for [u32; 2] {}
// SAFETY: repr(C) of u32s.
unsafe impl OptVal for TpacketReq {}
// SAFETY: repr(C) of integers.
unsafe impl OptVal for PacketMreq {}
// SAFETY: repr(C) of u32s.
unsafe impl OptVal for TpacketReq3 {}

/// `setsockopt(fd, level, name, &val, sizeof val)`.
pub fn setsockopt<T: OptVal>(fd: &OwnedFd, level: i32, name: i32, val: &T) -> io::Result<()> {
    // SAFETY: `val` is valid for `size_of::<T>()` bytes, which the kernel only reads.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast::<c_void>(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `getsockopt(fd, level, name)` into a zeroed `T`: the value and the length the kernel
/// wrote (an older kernel may fill only a prefix of a grown struct).
pub fn getsockopt<T: OptVal + Default>(fd: RawFd, level: i32, name: i32) -> io::Result<(T, usize)> {
    let mut v = T::default();
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `v` is writable for `len` bytes and any bit pattern is a valid `T`
    // (`OptVal`); the kernel updates `len`.
    cvt(unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut T).cast(), &mut len) })?;
    Ok((v, len as usize))
}

/// `getsockopt(fd, SOL_PACKET, PACKET_STATISTICS)`: (packets, drops) since the last call
/// (the kernel resets the counters on every read).
pub fn packet_statistics(fd: RawFd) -> io::Result<(u32, u32)> {
    let (v, _) = getsockopt::<[u32; 2]>(fd, SOL_PACKET, PACKET_STATISTICS)?;
    Ok((v[0], v[1]))
}

/// `bind(fd, sockaddr_ll { ifindex, protocol })`.
pub fn bind_packet(fd: &OwnedFd, ifindex: i32, proto: u16) -> io::Result<()> {
    // SAFETY: an all-zero sockaddr_ll is valid.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = proto.to_be();
    sa.sll_ifindex = ifindex;
    // SAFETY: `sa` is a valid sockaddr_ll of the given length.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// A shared mapping of a file descriptor (the packet rings); unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory; synchronising access to it is the users' job
// (the ring drivers do it through the frame status word).
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Wrap what `mmap` returned for `len` bytes.
    fn from_mmap(p: *mut c_void, len: usize) -> io::Result<Mapping> {
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned NULL"))?,
            len,
        })
    }
    /// Start of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True for an empty mapping (never: mmap refuses length 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly this range and nobody uses it any more (owners hold
        // the mapping in an Arc next to every pointer into it).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED | extra, fd, off)`.
fn mmap_fd(fd: &OwnedFd, len: usize, off: i64, extra: i32) -> io::Result<Mapping> {
    // SAFETY: a fresh shared mapping chosen by the kernel; it aliases nothing of ours.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | extra,
            fd.as_raw_fd(),
            off,
        )
    };
    Mapping::from_mmap(p, len)
}

/// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)`: the packet rings (no
/// MAP_LOCKED: the kernel pins packet rings itself).
pub fn mmap_shared(fd: &OwnedFd, len: usize) -> io::Result<Mapping> {
    mmap_fd(fd, len, 0, 0)
}

fn ioctl_ifreq(fd: RawFd, req: u64, r: &mut IfReq) -> io::Result<()> {
    // SAFETY: `r` is a valid, writable ifreq for the duration of the call.
    cvt(unsafe { libc::ioctl(fd, req as _, r as *mut IfReq) }).map(drop)
}

/// `ioctl(SIOCGIFINDEX)`.
pub fn if_index(fd: &OwnedFd, name: &str) -> io::Result<i32> {
    let mut r = ifreq(name)?;
    ioctl_ifreq(fd.as_raw_fd(), SIOCGIFINDEX, &mut r)?;
    Ok(i32::from_ne_bytes(r.data[..4].try_into().expect("4 bytes")))
}

/// `ioctl(SIOCGIFFLAGS)`.
pub fn if_flags(fd: &OwnedFd, name: &str) -> io::Result<u16> {
    let mut r = ifreq(name)?;
    ioctl_ifreq(fd.as_raw_fd(), SIOCGIFFLAGS, &mut r)?;
    Ok(u16::from_ne_bytes([r.data[0], r.data[1]]))
}

/// `ioctl(SIOCSIFFLAGS)`.
pub fn set_if_flags(fd: &OwnedFd, name: &str, flags: u16) -> io::Result<()> {
    let mut r = ifreq(name)?;
    r.data[..2].copy_from_slice(&flags.to_ne_bytes());
    ioctl_ifreq(fd.as_raw_fd(), SIOCSIFFLAGS, &mut r)
}

/// `ioctl(SIOCGIFHWADDR)`.
pub fn if_hwaddr(fd: &OwnedFd, name: &str) -> io::Result<[u8; 6]> {
    let mut r = ifreq(name)?;
    ioctl_ifreq(fd.as_raw_fd(), SIOCGIFHWADDR, &mut r)?;
    Ok(r.data[2..8].try_into().expect("6 bytes"))
}

/// `ioctl(SIOCSIFHWADDR)` with an Ethernet address.
pub fn set_if_hwaddr(fd: &OwnedFd, name: &str, mac: [u8; 6]) -> io::Result<()> {
    let mut r = ifreq(name)?;
    r.data[..2].copy_from_slice(&1u16.to_ne_bytes()); // ARPHRD_ETHER
    r.data[2..8].copy_from_slice(&mac);
    ioctl_ifreq(fd.as_raw_fd(), SIOCSIFHWADDR, &mut r)
}

/// `ioctl(SIOCGIFMTU)`.
pub fn if_mtu(fd: &OwnedFd, name: &str) -> io::Result<u32> {
    let mut r = ifreq(name)?;
    ioctl_ifreq(fd.as_raw_fd(), SIOCGIFMTU, &mut r)?;
    Ok(i32::from_ne_bytes(r.data[..4].try_into().expect("4 bytes")) as u32)
}

/// `ioctl(SIOCSIFMTU)`.
pub fn set_if_mtu(fd: &OwnedFd, name: &str, mtu: u32) -> io::Result<()> {
    let mut r = ifreq(name)?;
    r.data[..4].copy_from_slice(&(mtu as i32).to_ne_bytes());
    ioctl_ifreq(fd.as_raw_fd(), SIOCSIFMTU, &mut r)
}

/// `open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)`.
pub fn tun_open() -> io::Result<OwnedFd> {
    let path = c"/dev/net/tun";
    // SAFETY: valid NUL-terminated path; a non-negative result is a new fd we own.
    let fd = cvt(unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `ioctl(TUNSETIFF)`: attach the tun fd to interface `name` (created if missing) with
/// `flags`; returns the interface name the kernel chose.
pub fn tun_set_iff(fd: &OwnedFd, name: &str, flags: u16) -> io::Result<String> {
    let mut r = ifreq(name)?;
    r.data[..2].copy_from_slice(&flags.to_ne_bytes());
    ioctl_ifreq(fd.as_raw_fd(), TUNSETIFF, &mut r)?;
    let end = r.name.iter().position(|&b| b == 0).unwrap_or(IFNAMSIZ);
    Ok(String::from_utf8_lossy(&r.name[..end]).into_owned())
}

/// `poll` one fd for input; true if readable before `timeout_ms`.
pub fn poll_in(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = cvt(unsafe { libc::poll(&mut p, 1, timeout_ms) })?;
    Ok(n > 0 && p.revents & libc::POLLIN != 0)
}

/// Nonblocking `read`; `Ok(None)` when nothing is ready.
pub fn read_nb(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is writable for its length.
    cvt_size(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// Nonblocking `writev`; `Ok(None)` when the fd would block.
pub fn writev_nb(fd: RawFd, bufs: &[std::io::IoSlice<'_>]) -> io::Result<Option<usize>> {
    let n = bufs.len().min(libc::UIO_MAXIOV as usize) as libc::c_int;
    // SAFETY: IoSlice is ABI-compatible with iovec; each is readable for its length.
    cvt_size(unsafe { libc::writev(fd, bufs.as_ptr().cast(), n) })
}

/// `recv(fd, buf, MSG_DONTWAIT | MSG_TRUNC)`: the frame's real length (may exceed
/// `buf.len()`, then the copy was truncated); `Ok(None)` when nothing is queued.
pub fn recv_nb(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is writable for its length.
    cvt_size(unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
        )
    })
}

/// `send(fd, buf, MSG_DONTWAIT)`; `Ok(None)` when the socket would block.
pub fn send_nb(fd: RawFd, buf: &[u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is readable for its length.
    cvt_size(unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) })
}

/// `sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0)`: the kick of a PACKET_MMAP TX ring
/// and of an XSK's TX ring.
fn sendto_empty(fd: RawFd) -> io::Result<()> {
    // SAFETY: no buffers are passed.
    let r = unsafe {
        libc::sendto(
            fd,
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    cvt(r as libc::c_int).map(drop)
}

/// Ask the kernel to transmit the frames marked `TP_STATUS_SEND_REQUEST` in a
/// PACKET_MMAP TX ring.
pub fn kick_tx(fd: RawFd) -> io::Result<()> {
    match sendto_empty(fd) {
        Ok(()) => Ok(()),
        // EAGAIN: would block; ENOBUFS: the qdisc is full. The frames stay requested
        // and go with the next kick.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EAGAIN | libc::ENOBUFS | libc::EINTR)
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Most frames one [`sendmmsg_nb`] call takes.
pub const SENDMMSG_MAX: usize = 64;

/// `sendmmsg(fd, msgs, n, MSG_DONTWAIT)` on a bound packet socket without a TX ring:
/// frame `k` is the concatenation of `iovs[frames[k].0..frames[k].1]` (at most
/// [`SENDMMSG_MAX`] frames). Returns how many frames the kernel took (it stops at the
/// first it refuses; that one's error is returned if it is the first).
pub fn sendmmsg_nb(
    fd: RawFd,
    iovs: &[io::IoSlice<'_>],
    frames: &[(u16, u16)],
) -> io::Result<usize> {
    // SAFETY: an all-zero mmsghdr is valid (null name and control, no iovecs).
    let mut msgs: [libc::mmsghdr; SENDMMSG_MAX] = unsafe { std::mem::zeroed() };
    let n = frames.len().min(SENDMMSG_MAX);
    for (m, &(a, b)) in msgs.iter_mut().zip(&frames[..n]) {
        let seg = &iovs[usize::from(a)..usize::from(b)];
        // IoSlice is ABI-compatible with iovec; the kernel only reads through it.
        m.msg_hdr.msg_iov = seg.as_ptr() as *mut libc::iovec;
        m.msg_hdr.msg_iovlen = seg.len();
    }
    // SAFETY: `n` initialised headers whose iovecs point into `iovs`, readable for the
    // call; no names or control buffers.
    let r = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as u32, libc::MSG_DONTWAIT) };
    cvt(r).map(|r| r as usize)
}

/// `sysconf(_SC_PAGESIZE)`.
pub fn page_size() -> usize {
    // SAFETY: plain query.
    let r = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if r > 0 {
        r as usize
    } else {
        4096
    }
}

/// `clock_gettime(CLOCK_REALTIME)` as (seconds, nanoseconds), for pcap timestamps.
pub fn realtime() -> (u64, u32) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}
