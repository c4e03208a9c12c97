//! The XDP program of `net_af_xdp`, assembled here instruction by instruction, and its
//! lifetime on the interface.
//!
//! The program (five instructions, the equivalent of
//! `return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);`) sends every frame
//! of a queue that has an XSK in the XSKMAP to it, and lets the rest through to the
//! kernel stack. It is attached through a BPF link (`BPF_LINK_CREATE`, `BPF_XDP`): the
//! link fd is the only reference that keeps it on the interface, so it goes when the
//! port closes the fd and when the process dies, however it dies. Rule for programs
//! found on the interface: we never replace one. A link cannot outlive its process, so a
//! program already there belongs to someone else (or was attached another way, e.g.
//! `ip link set xdp`): the kernel refuses the link with EBUSY and we report it, naming
//! the way to remove it.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::error::{Error, Result};
use crate::sys::{self, BpfInsn};

/// `bpf_redirect_map` helper id (`enum bpf_func_id`).
const FN_REDIRECT_MAP: i32 = 51;
/// `XDP_PASS`: the action for frames of a queue without an XSK.
const XDP_PASS: i32 = 2;
/// Offset of `rx_queue_index` in `struct xdp_md`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;
/// `BPF_PSEUDO_MAP_FD`: the 64-bit immediate is a map fd.
const PSEUDO_MAP_FD: u8 = 1;

/// The program's instructions, for the XSKMAP `map_fd`.
pub(super) fn redirect_program(map_fd: i32) -> [BpfInsn; 6] {
    let ins = |code: u8, dst: u8, src: u8, off: i16, imm: i32| BpfInsn {
        code,
        regs: dst | src << 4,
        off,
        imm,
    };
    [
        // r2 = *(u32 *)(r1 + rx_queue_index)   BPF_LDX | BPF_MEM | BPF_W
        ins(0x61, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0),
        // r1 = map (ld_imm64, two slots)       BPF_LD | BPF_DW | BPF_IMM
        ins(0x18, 1, PSEUDO_MAP_FD, 0, map_fd),
        ins(0, 0, 0, 0, 0),
        // r3 = XDP_PASS                        BPF_ALU64 | BPF_MOV | BPF_K
        ins(0xb7, 3, 0, 0, XDP_PASS),
        // call bpf_redirect_map                BPF_JMP | BPF_CALL
        ins(0x85, 0, 0, 0, FN_REDIRECT_MAP),
        // exit                                 BPF_JMP | BPF_EXIT
        ins(0x95, 0, 0, 0, 0),
    ]
}

/// How the program runs on the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum XdpMode {
    /// In the driver (native XDP).
    Native,
    /// In the generic (skb) path: interfaces whose driver has no XDP.
    Generic,
}

/// The XSKMAP, the program and the link that keeps it attached. Dropping it detaches
/// the program (closing the link fd) and frees map and program.
pub(super) struct XdpProg {
    pub map: OwnedFd,
    _prog: OwnedFd,
    link: Option<OwnedFd>,
    pub mode: XdpMode,
}

impl XdpProg {
    /// Make the map (`entries` slots: queue ids), load the program and attach it to
    /// `ifindex`, native mode if the driver has it, else generic (logged, and reported
    /// in `xstats` as `xdp_native`).
    pub(super) fn attach(iface: &str, ifindex: i32, entries: u32) -> Result<XdpProg> {
        let map = sys::xskmap_create("fp_xsks", entries)
            .map_err(|e| bpf_err("create", "an XSKMAP", iface, e))?;
        let insns = redirect_program(map.as_raw_fd());
        let prog = sys::xdp_prog_load("fp_xsk_redir", &insns)
            .map_err(|e| bpf_err("load", "the XDP program", iface, e))?;
        let (link, mode) = match sys::xdp_link_create(&prog, ifindex, sys::XDP_FLAGS_DRV_MODE) {
            Ok(l) => (l, XdpMode::Native),
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                eal::log_info!(
                    "pmd: net_af_xdp: {iface} has no native XDP, attaching in generic (skb) mode"
                );
                let l = sys::xdp_link_create(&prog, ifindex, sys::XDP_FLAGS_SKB_MODE)
                    .map_err(|e| link_err(iface, e))?;
                (l, XdpMode::Generic)
            }
            Err(e) => return Err(link_err(iface, e)),
        };
        Ok(XdpProg {
            map,
            _prog: prog,
            link: Some(link),
            mode,
        })
    }

    /// Put the XSK `fd` in slot `queue`.
    pub(super) fn insert(&self, iface: &str, queue: u32, fd: i32) -> Result<()> {
        sys::map_update_u32(&self.map, queue, fd as u32).map_err(|e| {
            bpf_err(
                "insert",
                &format!("the XSK of queue {queue} into the XSKMAP"),
                iface,
                e,
            )
        })
    }

    /// Detach the program now (close the link).
    pub(super) fn detach(&mut self) {
        self.link = None;
    }
}

fn bpf_err(op: &'static str, what: &str, iface: &str, e: std::io::Error) -> Error {
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => " (needs CAP_BPF and CAP_NET_ADMIN, or root)",
        Some(libc::ENOSYS) => " (this kernel has no bpf() system call)",
        _ => "",
    };
    Error::os(op, format!("{what} for {iface}{hint}"), e)
}

fn link_err(iface: &str, e: std::io::Error) -> Error {
    let hint = match e.raw_os_error() {
        Some(libc::EBUSY) | Some(libc::EEXIST) => format!(
            " ({iface} already has an XDP program, which is not ours: ours are attached \
             through BPF links and cannot outlive their process; remove it with \
             `ip link set dev {iface} xdp off` or pick another interface)"
        ),
        Some(libc::EPERM) | Some(libc::EACCES) => {
            " (needs CAP_NET_ADMIN and CAP_BPF, or root)".into()
        }
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => {
            " (the kernel or interface cannot run XDP programs)".into()
        }
        _ => String::new(),
    };
    Error::os("attach", format!("the XDP program to {iface}{hint}"), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_encoding() {
        let p = redirect_program(7);
        assert_eq!(p.len(), 6);
        // ld_imm64 of the map fd, src = BPF_PSEUDO_MAP_FD, dst = r1
        assert_eq!((p[1].code, p[1].regs, p[1].imm), (0x18, 0x11, 7));
        // load of rx_queue_index into r2 from r1
        assert_eq!((p[0].code, p[0].regs, p[0].off), (0x61, 0x12, 16));
        assert_eq!((p[4].code, p[4].imm), (0x85, 51));
        assert_eq!(p[5].code, 0x95);
    }
}
