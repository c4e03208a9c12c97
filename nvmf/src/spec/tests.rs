use nvme::spec::Sqe;

use super::bytes::{as_bytes, read, zeroed};
use super::fabrics::*;
use super::pdu::*;

#[test]
fn connect_fields_round_trip() {
    let c = ConnectCmd {
        recfmt: 0,
        qid: 3,
        sqsize: 127,
        cattr: CATTR_DISABLE_SQFLOW,
        kato: 5000,
    };
    let s = c.to_sqe(9);
    assert_eq!(s.opcode(), FABRICS_OPC);
    assert_eq!(sqe_fctype(&s), fctype::CONNECT);
    assert_eq!(s.cid(), 9);
    assert_eq!(ConnectCmd::from_sqe(&s), c);
    // Byte positions of figure 19: qid at 42, sqsize at 44, cattr at 46, kato at 48.
    let b = as_bytes(&s);
    assert_eq!(u16::from_le_bytes([b[42], b[43]]), 3);
    assert_eq!(u16::from_le_bytes([b[44], b[45]]), 127);
    assert_eq!(b[46], CATTR_DISABLE_SQFLOW);
    assert_eq!(u32::from_le_bytes([b[48], b[49], b[50], b[51]]), 5000);
    assert_eq!(b[4], fctype::CONNECT);
}

#[test]
fn sgl_bytes_are_where_the_spec_puts_them() {
    let mut s = Sqe::new(0x01, 1, 1);
    set_sqe_sgl(&mut s, SGL_TRANSPORT, 0, 4096);
    let b = as_bytes(&s);
    assert_eq!(b[39], SGL_TRANSPORT);
    assert_eq!(u32::from_le_bytes([b[32], b[33], b[34], b[35]]), 4096);
    assert_eq!(sqe_sgl(&s), (SGL_TRANSPORT, 0, 4096));
    assert_eq!(s.cdw0 >> 14 & 3, 1);
    assert_eq!(data_dir(&s), (true, false));
    assert_eq!(data_dir(&Sqe::new(0x02, 1, 1)), (false, true));
    assert_eq!(data_dir(&ConnectCmd::from_sqe(&s).to_sqe(1)), (true, false));
}

#[test]
fn pdu_headers_decode_from_bytes() {
    let mut b = vec![0u8; 24];
    b[0] = PduType::H2cData as u8;
    b[1] = flags::LAST_PDU;
    b[2] = 24;
    b[3] = 24;
    b[4..8].copy_from_slice(&(24u32 + 512).to_le_bytes());
    b[8..10].copy_from_slice(&7u16.to_le_bytes());
    b[10..12].copy_from_slice(&3u16.to_le_bytes());
    b[12..16].copy_from_slice(&4096u32.to_le_bytes());
    b[16..20].copy_from_slice(&512u32.to_le_bytes());
    let h: H2cData = read(&b).unwrap();
    assert_eq!(h.ch.plen, 536);
    assert_eq!((h.cccid, h.ttag, h.datao, h.datal), (7, 3, 4096, 512));
    assert!(read::<H2cData>(&b[..23]).is_none());
    for t in [0u8, 1, 2, 3, 4, 5, 6, 7, 9] {
        let ty = PduType::from_u8(t).unwrap();
        assert!(ty.hlen() >= 24 && ty.hlen() <= MAX_HLEN);
    }
    assert!(PduType::from_u8(8).is_none());
    let d = zeroed::<ConnectData>();
    assert_eq!(as_bytes(&*d).len(), 1024);
}
