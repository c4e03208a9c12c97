//! One AF_PACKET socket of a `net_af_packet` port with its PACKET_MMAP rings: the
//! version negotiation (TPACKET_V3, else TPACKET_V2), ring geometry and the atomic view
//! of the status words the kernel shares with us.

use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicU32;

use super::super::netif::NetIf;
use crate::error::{Error, Result};
use crate::sys::{self, TpacketReq, TpacketReq3};

/// How long (ms) the kernel may hold a partly filled TPACKET_V3 block before it hands it
/// to us: the latency bound for a trickle of frames (a full block goes at once).
const V3_RETIRE_TOV_MS: u32 = 1;

/// The ring format the kernel agreed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Version {
    /// Fixed frames, one status word each (RX and TX).
    V2,
    /// RX: variable frames packed in blocks, one status word per block. TX: fixed frames
    /// with a `tpacket3_hdr` each.
    V3,
}

impl Version {
    /// Where a TX frame's data starts.
    pub(super) fn tx_data_off(self) -> usize {
        match self {
            Version::V2 => sys::TPACKET2_TX_DATA_OFF,
            Version::V3 => sys::TPACKET3_TX_DATA_OFF,
        }
    }
    /// Offsets of (`tp_status`, `tp_len`) in a frame header.
    pub(super) fn status_len_off(self) -> (usize, usize) {
        match self {
            Version::V2 => (0, 4),
            Version::V3 => (20, 16),
        }
    }
    /// Where the kernel puts an Ethernet frame's MAC header in an RX frame:
    /// `TPACKET_ALIGN(hdrlen + sizeof(sockaddr_ll)) + 16 - 14`.
    pub(super) fn rx_data_off(self) -> u32 {
        match self {
            Version::V2 => 66,
            Version::V3 => 82,
        }
    }
}

/// One socket with its RX ring and TX ring, both of the same geometry.
pub(super) struct PacketSock {
    pub fd: OwnedFd,
    map: sys::Mapping,
    pub version: Version,
    pub frame_size: u32,
    pub frame_nr: u32,
    frames_per_block: u32,
    pub block_size: u32,
    pub block_nr: u32,
    ring_len: usize,
    /// The socket has a PACKET_TX_RING (mapped after the RX ring); without one it sends
    /// with `sendmmsg` from the mbufs ([`super::tx::TxSend`]).
    pub tx_ring: bool,
}

impl PacketSock {
    /// Address of fixed frame `i` of the RX (`tx = false`, V2 only) or TX ring.
    #[inline(always)]
    pub fn frame(&self, tx: bool, i: u32) -> *mut u8 {
        let off = (i / self.frames_per_block) as usize * self.block_size as usize
            + (i % self.frames_per_block) as usize * self.frame_size as usize
            + if tx { self.ring_len } else { 0 };
        debug_assert!(!tx || self.tx_ring);
        // SAFETY: i < frame_nr, so off < 2 * ring_len = the mapping's length (TX frames
        // are asked for only when the TX ring is mapped).
        unsafe { self.map.as_ptr().add(off) }
    }

    /// Address of RX block `b` (V3).
    #[inline(always)]
    pub fn block(&self, b: u32) -> *mut u8 {
        // SAFETY: b < block_nr, so the block lies inside the RX ring.
        unsafe { self.map.as_ptr().add(b as usize * self.block_size as usize) }
    }
}

/// The status word at `p + off` (a frame's `tp_status`, a block's `block_status`).
#[inline(always)]
pub(super) fn status_word(p: *mut u8, off: usize) -> &'static AtomicU32 {
    // SAFETY: callers pass a frame or block start inside a live ring mapping and the
    // offset of an aligned u32 in its header; the mapping lives as long as the
    // `PacketSock` the caller holds an Arc to (the 'static is never observed beyond
    // that). The kernel updates the word concurrently, hence atomic access only.
    unsafe { AtomicU32::from_ptr(p.add(off).cast()) }
}

/// The ring geometry asked for (checked by `create`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Geometry {
    pub block_size: u32,
    pub frame_size: u32,
    pub frame_nr: u32,
}

/// Open a socket on `netif` with rings of `g`, TPACKET_V3 if the kernel has it, else
/// TPACKET_V2 (`allow_v3 = false` forces V2), a TX ring if `tx_ring`, join fanout group
/// `fanout_id`.
pub(super) fn open_sock(
    netif: &NetIf,
    g: Geometry,
    bypass: bool,
    fanout_id: u16,
    allow_v3: bool,
    tx_ring: bool,
) -> Result<PacketSock> {
    let os = |op: &'static str, what: &str| {
        let what = what.to_string();
        move |e| Error::os(op, what, e)
    };
    // Protocol 0: receive nothing until bound with ETH_P_ALL below, so no frame of
    // another interface slips into the ring first.
    let fd = sys::packet_socket(0).map_err(os("open", "an AF_PACKET socket"))?;
    let v3 = allow_v3
        && match sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_VERSION, &sys::TPACKET_V3) {
            Ok(()) => true,
            // A kernel without TPACKET_V3 refuses the version: fall back to V2.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => false,
            Err(e) => return Err(Error::os("set", "PACKET_VERSION (TPACKET_V3)", e)),
        };
    if !v3 {
        sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_VERSION, &sys::TPACKET_V2)
            .map_err(os("set", "PACKET_VERSION (TPACKET_V2)"))?;
    }
    sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_LOSS, &1i32)
        .map_err(os("set", "PACKET_LOSS"))?;
    if bypass {
        sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_QDISC_BYPASS, &1i32)
            .map_err(os("set", "PACKET_QDISC_BYPASS"))?;
    }
    let fpb = g.block_size / g.frame_size;
    let block_nr = g.frame_nr / fpb;
    if v3 {
        let rx = TpacketReq3 {
            block_size: g.block_size,
            block_nr,
            frame_size: g.frame_size,
            frame_nr: g.frame_nr,
            retire_blk_tov: V3_RETIRE_TOV_MS,
            sizeof_priv: 0,
            feature_req_word: 0,
        };
        sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_RX_RING, &rx)
            .map_err(os("set up", "the TPACKET_V3 PACKET_RX_RING"))?;
        let tx = TpacketReq3 {
            retire_blk_tov: 0,
            ..rx
        };
        if tx_ring {
            sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_TX_RING, &tx)
                .map_err(os("set up", "the TPACKET_V3 PACKET_TX_RING"))?;
        }
    } else {
        let req = TpacketReq {
            block_size: g.block_size,
            block_nr,
            frame_size: g.frame_size,
            frame_nr: g.frame_nr,
        };
        sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_RX_RING, &req)
            .map_err(os("set up", "the PACKET_RX_RING"))?;
        if tx_ring {
            sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_TX_RING, &req)
                .map_err(os("set up", "the PACKET_TX_RING"))?;
        }
    }
    let ring_len = g.block_size as usize * block_nr as usize;
    let rings = 1 + usize::from(tx_ring);
    let map = sys::mmap_shared(&fd, rings * ring_len).map_err(os("map", "the packet rings"))?;
    sys::bind_packet(&fd, netif.index, sys::ETH_P_ALL)
        .map_err(os("bind", &format!("to {}", netif.name)))?;
    let fanout =
        u32::from(fanout_id) | (sys::PACKET_FANOUT_HASH | sys::PACKET_FANOUT_FLAG_DEFRAG) << 16;
    sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_FANOUT, &fanout)
        .map_err(os("join", "the PACKET_FANOUT group"))?;
    Ok(PacketSock {
        fd,
        map,
        version: if v3 { Version::V3 } else { Version::V2 },
        frame_size: g.frame_size,
        frame_nr: g.frame_nr,
        frames_per_block: fpb,
        block_size: g.block_size,
        block_nr,
        ring_len,
        tx_ring,
    })
}

/// Bytes of [`PacketSock::share_blob`].
const BLOB_LEN: usize = 14;

impl PacketSock {
    /// What another process needs besides the descriptor to map the same rings:
    /// version (2 or 3), block size, frame size, frame count (LE u32s), TX ring (0/1).
    pub fn share_blob(&self) -> Vec<u8> {
        let mut b = vec![if self.version == Version::V3 { 3 } else { 2 }];
        for v in [self.block_size, self.frame_size, self.frame_nr] {
            b.extend(v.to_le_bytes());
        }
        b.push(u8::from(self.tx_ring));
        b
    }

    /// The same socket in another process: map its rings again from the passed
    /// descriptor (the ring memory is the kernel's; every mapping of it sees the same
    /// frames, so no address needs to match).
    pub fn attach(fd: OwnedFd, blob: &[u8]) -> std::result::Result<PacketSock, String> {
        if blob.len() < BLOB_LEN {
            return Err(format!(
                "ring parameters of {} bytes, expected {BLOB_LEN}",
                blob.len()
            ));
        }
        let u = |o: usize| u32::from_le_bytes(blob[o..o + 4].try_into().expect("4 bytes"));
        let version = match blob[0] {
            3 => Version::V3,
            2 => Version::V2,
            v => return Err(format!("TPACKET version {v}")),
        };
        let (block_size, frame_size, frame_nr) = (u(1), u(5), u(9));
        if frame_size == 0 || block_size < frame_size || frame_nr == 0 {
            return Err(format!(
                "ring geometry {block_size}/{frame_size}/{frame_nr} is not one"
            ));
        }
        let fpb = block_size / frame_size;
        let block_nr = frame_nr / fpb;
        let tx_ring = match blob[13] {
            0 => false,
            1 => true,
            v => return Err(format!("TX ring flag {v}")),
        };
        let ring_len = block_size as usize * block_nr as usize;
        let rings = 1 + usize::from(tx_ring);
        let map =
            sys::mmap_shared(&fd, rings * ring_len).map_err(|e| format!("map the rings: {e}"))?;
        Ok(PacketSock {
            fd,
            map,
            version,
            frame_size,
            frame_nr,
            frames_per_block: fpb,
            block_size,
            block_nr,
            ring_len,
            tx_ring,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devnull() -> OwnedFd {
        std::fs::File::open("/dev/null")
            .expect("open /dev/null")
            .into()
    }

    /// What another process sends is checked before anything is mapped.
    #[test]
    fn shared_ring_parameters_are_checked() {
        let blob = |v: u8, b: u32, f: u32, n: u32| {
            let mut x = vec![v];
            for w in [b, f, n] {
                x.extend(w.to_le_bytes());
            }
            x.push(1);
            x
        };
        let err = |b: &[u8]| PacketSock::attach(devnull(), b).err().expect("refused");
        assert!(err(&[3, 0, 0]).contains("3 bytes, expected 14"));
        let mut bad_tx = blob(3, 4096, 2048, 8);
        bad_tx[13] = 7;
        assert!(err(&bad_tx).contains("TX ring flag 7"));
        assert!(err(&blob(4, 4096, 2048, 8)).contains("TPACKET version 4"));
        assert!(err(&blob(3, 4096, 0, 8)).contains("is not one"));
        assert!(err(&blob(2, 1024, 2048, 8)).contains("is not one"));
        // Well formed, but /dev/null cannot be mapped as packet rings.
        assert!(err(&blob(3, 4096, 2048, 8)).contains("map the rings"));
    }
}
