//! The e1000 test traffic, shared by the guest program (`fp-e1000test`) and the host
//! test (`tests/e1000_guest.rs`) so both sides build the very same frames.
//!
//! A frame is `dst, src, ethertype 0x88b5` (IEEE local experimental), then `seq`
//! (u32 LE) and `stream`, then byte `j` (from offset 19) = `seq*7 + j*13 + stream`
//! (mod 256). Its length is `60 + (seq*37 + stream*11) mod 1455`, so 60..=1514: every
//! size a standard frame can have comes up.

/// MAC address of the guest's NIC 0 (testbed/run.sh gives it).
pub const MAC_A: [u8; 6] = [0x52, 0x54, 0x00, 0xfe, 0x00, 0x00];
/// MAC address of the guest's NIC 1.
pub const MAC_B: [u8; 6] = [0x52, 0x54, 0x00, 0xfe, 0x00, 0x01];
/// The host test's own address (source of what it sends, destination of what the
/// guest sends).
pub const HOST: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x42];
/// A unicast address nobody has (filtered unless promiscuous).
pub const FOREIGN: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x99];
/// Destination written by the forwarder (l2fwd's default peer address of port 1).
pub const FWD_DST: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

/// MAC address of the first virtio-net NIC the virtio test adds (host socket 2).
pub const VIRTIO_A: [u8; 6] = [0x52, 0x54, 0x00, 0xfe, 0x01, 0x00];
/// MAC address of the second virtio-net NIC (host socket 3).
pub const VIRTIO_B: [u8; 6] = [0x52, 0x54, 0x00, 0xfe, 0x01, 0x01];
/// MAC address of the multi-queue virtio-net NIC (vhost-user, DPDK's net_vhost on the
/// host reflecting frames with its macswap mode).
pub const VIRTIO_MQ: [u8; 6] = [0x52, 0x54, 0x00, 0xfe, 0x01, 0x04];
/// The MAC the virtio test sets on NIC A through the control queue.
pub const VIRTIO_NEW: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x01, 0x77];

/// Stream: host -> NIC A's own MAC, promiscuous off.
pub const S_OWN1: u8 = 1;
/// Stream: host -> the foreign MAC, promiscuous off (filtered).
pub const S_FOREIGN1: u8 = 2;
/// Stream: host -> NIC A's own MAC, promiscuous on.
pub const S_OWN2: u8 = 3;
/// Stream: host -> the foreign MAC, promiscuous on (received).
pub const S_FOREIGN2: u8 = 4;
/// Stream: NIC A -> host.
pub const S_TXA: u8 = 5;
/// Stream: NIC B -> host.
pub const S_TXB: u8 = 6;
/// Stream: host -> NIC A, forwarded out of NIC B by `fp-e1000test fwd`.
pub const S_FWD: u8 = 7;
/// Stream: host -> NIC A, forwarded out of NIC B by l2fwd.
pub const S_L2FWD: u8 = 8;

/// Stream: host -> the MAC set through the control queue (received, promiscuous off).
pub const S_NEWMAC: u8 = 9;
/// Stream: host -> the MAC replaced through the control queue (filtered).
pub const S_OLDMAC: u8 = 10;
/// Stream: host -> NIC A, forwarded out of NIC B by testpmd (io mode: unchanged).
pub const S_TESTPMD: u8 = 11;
/// First stream of the multi-queue check: queue `q` sends stream `S_MQ + q`.
pub const S_MQ: u8 = 20;

/// Frames of [`S_OWN1`] (with the 32 foreign ones, more than fit a 256-entry ring once
/// the second batch comes: the RX ring wraps).
pub const N_OWN1: u32 = 200;
/// Frames of [`S_FOREIGN1`].
pub const N_FOREIGN1: u32 = 32;
/// Frames of [`S_OWN2`].
pub const N_OWN2: u32 = 32;
/// Frames of [`S_FOREIGN2`].
pub const N_FOREIGN2: u32 = 32;
/// Frames sent out of each NIC (more than the 256-entry TX ring).
pub const N_TX: u32 = 300;
/// Frames forwarded by `fp-e1000test fwd`.
pub const N_FWD: u32 = 600;
/// Frames forwarded by l2fwd.
pub const N_L2FWD: u32 = 600;
/// Stream: host -> NIC A, forwarded to NIC B by a secondary process (`fp-e1000test
/// mp-secondary`) on queues it claimed from the primary.
pub const S_MPSEC: u8 = 12;
/// Stream: host -> NIC A, forwarded by the primary on the same queues after the
/// secondary gave them back (`fp-e1000test mp-primary`).
pub const S_MPPRI: u8 = 13;
/// Frames of [`S_MPSEC`] (the 256-entry rings wrap).
pub const N_MPSEC: u32 = 600;
/// Frames of [`S_MPPRI`].
pub const N_MPPRI: u32 = 100;

/// Frame `seq` of `stream` from `src` to `dst` (see the module docs).
pub fn test_frame(dst: [u8; 6], src: [u8; 6], stream: u8, seq: u32) -> Vec<u8> {
    let len = 60 + ((seq as usize * 37 + stream as usize * 11) % 1455);
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.extend_from_slice(&seq.to_le_bytes());
    f.push(stream);
    for j in 19..len {
        f.push((seq as usize * 7 + j * 13 + stream as usize) as u8);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_span_every_ethernet_size_and_carry_their_tag() {
        let lens: Vec<usize> = (0..1455)
            .map(|s| test_frame(MAC_A, HOST, S_OWN1, s).len())
            .collect();
        assert_eq!(lens.iter().min(), Some(&60));
        assert_eq!(lens.iter().max(), Some(&1514));
        let f = test_frame(MAC_B, HOST, S_TXB, 0x01020304);
        assert_eq!(&f[..6], &MAC_B);
        assert_eq!(&f[6..12], &HOST);
        assert_eq!(&f[12..14], &[0x88, 0xb5]);
        assert_eq!(&f[14..18], &[4, 3, 2, 1]);
        assert_eq!(f[18], S_TXB);
        assert_ne!(f, test_frame(MAC_B, HOST, S_TXA, 0x01020304));
    }
}
