//! Field decoding checks against hand-built values.

use super::*;

#[test]
fn cap_fields() {
    // QEMU-like: MQES 0x7ff, CQR, TO 0xf, DSTRD 0, CSS NVM, MPSMAX 4 (64 KiB).
    let cap = Cap(0x7ff | (1 << 16) | (0xf << 24) | (1 << 37) | (4 << 52));
    assert_eq!(cap.max_queue_entries(), 2048);
    assert!(cap.cqr());
    assert_eq!(cap.timeout_ms(), 7500);
    assert_eq!(cap.dstrd(), 0);
    assert_eq!(cap.css(), 1);
    assert_eq!(cap.mps_min(), 4096);
    assert_eq!(cap.mps_max(), 65536);
    assert_eq!(cap.sq_doorbell(0), 0x1000);
    assert_eq!(cap.cq_doorbell(0), 0x1004);
    assert_eq!(cap.sq_doorbell(3), 0x1018);
    // A stride of 2 (16-byte doorbells).
    let cap = Cap(2 << 32);
    assert_eq!(cap.sq_doorbell(1), 0x1000 + 2 * 16);
    assert_eq!(cap.cq_doorbell(1), 0x1000 + 3 * 16);
}

#[test]
fn sqe_fields() {
    let mut s = Sqe::new(io_opc::READ, 0x1234, 7);
    assert_eq!(s.opcode(), 0x02);
    assert_eq!(s.cid(), 0x1234);
    s.set_cid(9);
    assert_eq!((s.cid(), s.opcode()), (9, 0x02));
    s.set_lba_range(0x1_2345_6789, 8);
    assert_eq!((s.cdw10, s.cdw11, s.cdw12), (0x2345_6789, 1, 7));
}

#[test]
fn status_fields() {
    let cqe = Cqe {
        status: (0x0285 << 1) | 1 | (1 << 15),
        ..Default::default()
    };
    assert!(cqe.phase());
    let st = cqe.status();
    assert_eq!((st.sct(), st.sc()), (2, 0x85));
    assert!(st.dnr());
    assert_eq!(st.name(), "compare failure");
    assert!(Status::new(0, 0).is_success());
    assert_eq!(Status::new(0, 0x80).name(), "LBA out of range");
    assert_eq!(Status::new(5, 1).name(), "unknown status");
}

#[test]
fn lba_format() {
    let f = LbaFormat(12 << 16);
    assert_eq!((f.block_size(), f.ms(), f.rp()), (4096, 0, 0));
    assert_eq!(LbaFormat(0).block_size(), 0);
    assert_eq!(LbaFormat(63 << 16).block_size(), 0);
}
