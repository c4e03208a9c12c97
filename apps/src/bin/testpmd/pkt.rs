//! Packet headers for the generating modes (txonly, flowgen) and software checksums for
//! csum mode: Ethernet II, IPv4 (RFC 791), UDP (RFC 768), TCP (RFC 9293), IPv6
//! (RFC 8200), and the Internet checksum (RFC 1071).

pub const ETH_LEN: usize = 14;
pub const IP4_LEN: usize = 20;
pub const UDP_LEN: usize = 8;
/// Bytes of the Ethernet + IPv4 + UDP headers of generated packets.
pub const HDRS: usize = ETH_LEN + IP4_LEN + UDP_LEN;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// Source and destination of generated packets (RFC 2544's benchmarking range,
/// 198.18.0.0/15, as DPDK's txonly uses), UDP port 9 (discard) both ways.
pub const SRC_IP: u32 = 0xc612_0001; // 198.18.0.1
pub const DST_IP: u32 = 0xc612_0002; // 198.18.0.2
pub const UDP_PORT: u16 = 9;

/// One's-complement sum of `data` as big-endian 16-bit words (odd byte padded), added
/// to `acc` without folding.
#[inline]
pub fn sum16(data: &[u8], mut acc: u64) -> u64 {
    let mut c = data.chunks_exact(2);
    for w in &mut c {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = c.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
}

/// Fold a sum to 16 bits.
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The Internet checksum of `data` (the value to store).
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum16(data, 0))
}

/// Build a generated packet's bytes: Ethernet (`dst`, `src`), IPv4 198.18.0.1 →
/// 198.18.0.2 TTL 64, UDP 9 → 9, payload bytes `i as u8`, `len` bytes in all
/// (`len >= HDRS`). Both checksums are correct.
pub fn udp_packet(len: usize, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    assert!(len >= HDRS, "packet length below the headers");
    let mut p = vec![0u8; len];
    p[0..6].copy_from_slice(&dst);
    p[6..12].copy_from_slice(&src);
    p[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let ip = &mut p[ETH_LEN..ETH_LEN + IP4_LEN];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((len - ETH_LEN) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = PROTO_UDP;
    ip[12..16].copy_from_slice(&SRC_IP.to_be_bytes());
    ip[16..20].copy_from_slice(&DST_IP.to_be_bytes());
    let c = checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let u = ETH_LEN + IP4_LEN;
    p[u..u + 2].copy_from_slice(&UDP_PORT.to_be_bytes());
    p[u + 2..u + 4].copy_from_slice(&UDP_PORT.to_be_bytes());
    p[u + 4..u + 6].copy_from_slice(&((len - u) as u16).to_be_bytes());
    for (i, b) in p[HDRS..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let c = l4_checksum_v4(&p[ETH_LEN..ETH_LEN + IP4_LEN], &p[u..], PROTO_UDP);
    p[u + 6..u + 8].copy_from_slice(&c.to_be_bytes());
    p
}

/// UDP/TCP checksum over IPv4 (pseudo header from `ip`), with the checksum field of
/// `l4` taken as it is (zero it first to compute, keep it to verify: then 0 means good).
pub fn l4_checksum_v4(ip: &[u8], l4: &[u8], proto: u8) -> u16 {
    l4_checksum(&ip[12..20], l4, proto)
}

/// UDP/TCP checksum over IPv6 (pseudo header from `ip`, the 40-byte fixed header).
pub fn l4_checksum_v6(ip: &[u8], l4: &[u8], proto: u8) -> u16 {
    l4_checksum(&ip[8..40], l4, proto)
}

/// The L4 checksum with a pseudo header of `addrs` (source then destination address),
/// `proto` and the L4 length; a UDP checksum that comes out 0 is sent as 0xffff (RFC 768).
#[inline]
fn l4_checksum(addrs: &[u8], l4: &[u8], proto: u8) -> u16 {
    let acc = sum16(addrs, 0) + u64::from(proto) + l4.len() as u64;
    let c = !fold(sum16(l4, acc));
    if proto == PROTO_UDP && c == 0 {
        0xffff
    } else {
        c
    }
}

/// Flow variation of flowgen mode: precomputed partial sums so that each packet's
/// source address and source port change with two folds, not a pass over the payload.
#[derive(Clone)]
pub struct FlowTemplate {
    /// The txonly packet (UDP 9 -> 9 from 198.18.0.1), checksums correct.
    pub bytes: Vec<u8>,
    /// IPv4 header sum without source address and checksum.
    ip_sum: u64,
    /// UDP sum (pseudo header, header, payload) without source address, source port and
    /// checksum.
    udp_sum: u64,
}

impl FlowTemplate {
    pub fn new(len: usize, dst: [u8; 6], src: [u8; 6]) -> FlowTemplate {
        let packet = udp_packet(len, dst, src);
        let mut bytes = packet.clone();
        let u = ETH_LEN + IP4_LEN;
        bytes[ETH_LEN + 10..ETH_LEN + 12].fill(0);
        bytes[ETH_LEN + 12..ETH_LEN + 16].fill(0);
        bytes[u..u + 2].fill(0);
        bytes[u + 6..u + 8].fill(0);
        let ip_sum = sum16(&bytes[ETH_LEN..u], 0);
        let mut udp_sum = sum16(&bytes[ETH_LEN + 16..ETH_LEN + 20], 0);
        udp_sum += u64::from(PROTO_UDP) + (len - u) as u64;
        udp_sum = sum16(&bytes[u..], udp_sum);
        FlowTemplate {
            bytes: packet,
            ip_sum,
            udp_sum,
        }
    }

    /// Write the headers of flow `flow` into `hdr` (the first [`HDRS`] bytes).
    #[inline]
    pub fn headers(&self, flow: u32, hdr: &mut [u8; HDRS]) {
        hdr.copy_from_slice(&self.bytes[..HDRS]);
        let sip = SRC_IP.wrapping_add(flow);
        let sport = 1024 + (flow % 60_000) as u16;
        let s = u64::from(sip >> 16) + u64::from(sip & 0xffff);
        let ipc = !fold(self.ip_sum + s);
        let mut uc = !fold(self.udp_sum + s + u64::from(sport));
        if uc == 0 {
            uc = 0xffff;
        }
        let u = ETH_LEN + IP4_LEN;
        hdr[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&ipc.to_be_bytes());
        hdr[ETH_LEN + 12..ETH_LEN + 16].copy_from_slice(&sip.to_be_bytes());
        hdr[u..u + 2].copy_from_slice(&sport.to_be_bytes());
        hdr[u + 6..u + 8].copy_from_slice(&uc.to_be_bytes());
    }
}

/// What csum mode found in one packet.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CsumResult {
    pub bad_ip: bool,
    pub bad_l4: bool,
    /// The packet was IPv4/IPv6 with checksums that were (re)computed.
    pub fixed: bool,
}

/// Verify the IPv4 header checksum and the UDP/TCP checksum of an Ethernet frame (VLAN
/// tags skipped), then store correct values. Frames that are not IP, are fragments,
/// or are truncated are left alone. Works on a linear frame.
pub fn csum_fix(f: &mut [u8]) -> CsumResult {
    let mut r = CsumResult::default();
    if f.len() < ETH_LEN {
        return r;
    }
    let mut off = 12;
    let mut et = u16::from_be_bytes([f[off], f[off + 1]]);
    while (et == ETHERTYPE_VLAN || et == ETHERTYPE_QINQ) && f.len() >= off + 6 {
        off += 4;
        et = u16::from_be_bytes([f[off], f[off + 1]]);
    }
    let l3 = off + 2;
    match et {
        ETHERTYPE_IPV4 => {
            if f.len() < l3 + IP4_LEN {
                return r;
            }
            let ihl = usize::from(f[l3] & 0x0f) * 4;
            let tot = usize::from(u16::from_be_bytes([f[l3 + 2], f[l3 + 3]]));
            if f[l3] >> 4 != 4 || ihl < IP4_LEN || tot < ihl || f.len() < l3 + tot {
                return r;
            }
            r.bad_ip = fold(sum16(&f[l3..l3 + ihl], 0)) != 0xffff;
            f[l3 + 10..l3 + 12].fill(0);
            let c = checksum(&f[l3..l3 + ihl]);
            f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
            r.fixed = true;
            let frag = u16::from_be_bytes([f[l3 + 6], f[l3 + 7]]);
            if frag & 0x3fff != 0 {
                return r; // a fragment: no whole L4 datagram here
            }
            let proto = f[l3 + 9];
            let (ip, l4) = f[l3..l3 + tot].split_at_mut(ihl);
            r.bad_l4 = l4_fix(l4, proto, |l4, p| l4_checksum_v4(ip, l4, p));
        }
        ETHERTYPE_IPV6 => {
            if f.len() < l3 + 40 {
                return r;
            }
            let plen = usize::from(u16::from_be_bytes([f[l3 + 4], f[l3 + 5]]));
            if f.len() < l3 + 40 + plen {
                return r;
            }
            let proto = f[l3 + 6];
            r.fixed = true;
            let (ip, l4) = f[l3..l3 + 40 + plen].split_at_mut(40);
            r.bad_l4 = l4_fix(l4, proto, |l4, p| l4_checksum_v6(ip, l4, p));
        }
        _ => {}
    }
    r
}

/// Verify and rewrite the checksum of a UDP or TCP segment; true if it was bad.
fn l4_fix(l4: &mut [u8], proto: u8, ck: impl Fn(&[u8], u8) -> u16) -> bool {
    let at = match proto {
        PROTO_UDP if l4.len() >= UDP_LEN => 6,
        PROTO_TCP if l4.len() >= 20 => 16,
        _ => return false,
    };
    let stored = u16::from_be_bytes([l4[at], l4[at + 1]]);
    l4[at..at + 2].fill(0);
    let good = ck(l4, proto);
    // UDP over IPv4 may carry 0 = "no checksum"; that is not an error.
    let bad = !(proto == PROTO_UDP && stored == 0) && stored != good;
    l4[at..at + 2].copy_from_slice(&good.to_be_bytes());
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
        assert_eq!(
            fold(sum16(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0)),
            0xddf2
        );
    }

    #[test]
    fn generated_packets_verify_and_flows_match_full_computation() {
        let p = udp_packet(64, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let mut q = p.clone();
        let r = csum_fix(&mut q);
        assert_eq!(
            r,
            CsumResult {
                bad_ip: false,
                bad_l4: false,
                fixed: true
            }
        );
        assert_eq!(p, q, "correct checksums are kept");
        let t = FlowTemplate::new(100, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        assert_eq!(
            t.bytes,
            udp_packet(100, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        );
        for flow in [0u32, 1, 77, 59_999, 60_000, 1 << 20] {
            let mut h = [0u8; HDRS];
            t.headers(flow, &mut h);
            let mut full = t.bytes.clone();
            full[..HDRS].copy_from_slice(&h);
            let before = full.clone();
            let r = csum_fix(&mut full);
            assert!(!r.bad_ip && !r.bad_l4, "flow {flow}");
            assert_eq!(before, full);
        }
    }

    #[test]
    fn bad_checksums_are_counted_and_fixed() {
        let mut p = udp_packet(80, [2; 6], [4; 6]);
        p[ETH_LEN + 10] ^= 0x55;
        p[HDRS - 1] ^= 0x11;
        let r = csum_fix(&mut p);
        assert!(r.bad_ip && r.bad_l4);
        let r = csum_fix(&mut p);
        assert!(!r.bad_ip && !r.bad_l4, "fixed on the first pass");
        // truncated or non-IP frames are left alone
        let mut short = p[..30].to_vec();
        assert_eq!(csum_fix(&mut short), CsumResult::default());
    }
}
