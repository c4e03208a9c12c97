//! The `bpf()` system call for `net_af_xdp`: an XSKMAP, an XDP program loaded from
//! instructions we assemble ourselves, and a BPF link attaching it to an interface.
//! Numbers from `linux/bpf.h` and `linux/if_link.h`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: i32 = 0;
const BPF_MAP_UPDATE_ELEM: i32 = 2;
const BPF_MAP_DELETE_ELEM: i32 = 3;
const BPF_PROG_LOAD: i32 = 5;
const BPF_LINK_CREATE: i32 = 28;
/// `BPF_MAP_TYPE_XSKMAP`.
const MAP_TYPE_XSKMAP: u32 = 17;
/// `BPF_PROG_TYPE_XDP`.
const PROG_TYPE_XDP: u32 = 6;
/// `enum bpf_attach_type`: `BPF_XDP`.
const ATTACH_XDP: u32 = 37;
/// `XDP_FLAGS_SKB_MODE`, `XDP_FLAGS_DRV_MODE` (`linux/if_link.h`).
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// `struct bpf_insn`: one eBPF instruction.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    /// `dst_reg:4` (low nibble), `src_reg:4` (high nibble).
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}
const _: () = assert!(std::mem::size_of::<BpfInsn>() == 8);

/// `union bpf_attr`, as bytes: the kernel accepts a shorter attr than its own as long
/// as what it does not know is zero, and reads only the fields of the command.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn name(&mut self, off: usize, name: &str) -> &mut Attr {
        let b = name.as_bytes();
        let n = b.len().min(15);
        self.0[off..off + n].copy_from_slice(&b[..n]);
        self
    }
}

fn bpf(cmd: i32, attr: &mut Attr) -> io::Result<i64> {
    // SAFETY: `attr` is a valid, writable bpf_attr of the size we pass; every pointer
    // stored in it points to memory the caller keeps alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<Attr>() as u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn fd_of(r: i64) -> OwnedFd {
    // SAFETY: a BPF object fd the kernel just returned to us (close-on-exec by default).
    unsafe { OwnedFd::from_raw_fd(r as i32) }
}

/// `BPF_MAP_CREATE` of an XSKMAP (u32 queue id → XSK fd) with `entries` slots.
pub fn xskmap_create(name: &str, entries: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, MAP_TYPE_XSKMAP)
        .u32(4, 4)
        .u32(8, 4)
        .u32(12, entries)
        .name(28, name);
    bpf(BPF_MAP_CREATE, &mut a).map(fd_of)
}

/// `BPF_MAP_UPDATE_ELEM`: `map[key] = value` (u32 key and value: an XSK fd).
pub fn map_update_u32(map: &OwnedFd, key: u32, value: u32) -> io::Result<()> {
    let (k, v) = (key, value);
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32)
        .u64(8, &k as *const u32 as u64)
        .u64(16, &v as *const u32 as u64)
        .u64(24, 0); // BPF_ANY
    bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(drop)
}

/// `BPF_MAP_DELETE_ELEM` of a u32 key.
pub fn map_delete_u32(map: &OwnedFd, key: u32) -> io::Result<()> {
    let k = key;
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32)
        .u64(8, &k as *const u32 as u64);
    bpf(BPF_MAP_DELETE_ELEM, &mut a).map(drop)
}

/// `BPF_PROG_LOAD` of an XDP program (license "GPL": `bpf_redirect_map` is GPL-only).
/// On a verifier refusal the error carries the verifier's log.
pub fn xdp_prog_load(name: &str, insns: &[BpfInsn]) -> io::Result<OwnedFd> {
    let license = c"GPL";
    let mut log = vec![0u8; 64 * 1024];
    let mut a = Attr::new();
    a.u32(0, PROG_TYPE_XDP)
        .u32(4, insns.len() as u32)
        .u64(8, insns.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .u32(24, 1) // log_level
        .u32(28, log.len() as u32)
        .u64(32, log.as_mut_ptr() as u64)
        .name(48, name)
        .u32(68, ATTACH_XDP); // expected_attach_type
    bpf(BPF_PROG_LOAD, &mut a).map(fd_of).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(0);
        if end == 0 {
            e
        } else {
            io::Error::new(
                e.kind(),
                format!("{e}; verifier: {}", String::from_utf8_lossy(&log[..end])),
            )
        }
    })
}

/// `BPF_LINK_CREATE` attaching XDP program `prog` to interface `ifindex` with XDP
/// `flags` (mode). The program stays attached while the returned link fd is open: it
/// goes when we close it or the process dies.
pub fn xdp_link_create(prog: &OwnedFd, ifindex: i32, flags: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, prog.as_raw_fd() as u32)
        .u32(4, ifindex as u32)
        .u32(8, ATTACH_XDP)
        .u32(12, flags);
    bpf(BPF_LINK_CREATE, &mut a).map(fd_of)
}
