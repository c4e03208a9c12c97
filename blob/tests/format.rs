//! Byte-exact fixtures of the on-disk structures, each field checked at the offset
//! SPDK's packed structs in lib/blob/blobstore.h give it.

use blob::format::desc::{self, Descriptor, Extent, ExtentTableEntry, Flags, Xattr};
use blob::format::mask::{Bits, Mask, MaskType};
use blob::format::page::{self, MdPage};
use blob::format::super_block::{self, SuperBlock};
use blob::format::{page_crc, PAGE_SIZE};

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

fn sample_super() -> SuperBlock {
    SuperBlock {
        version: 3,
        length: 4096,
        clean: true,
        super_blob: 0x1_0000_0007,
        cluster_size: 1 << 20,
        used_page_mask: (1, 1),
        used_cluster_mask: (2, 1),
        md: (4, 64),
        bstype: super_block::bstype("LVOLSTORE"),
        used_blobid_mask: (3, 1),
        size: 64 << 20,
        io_unit_size: 512,
        md_page_size: 4096,
    }
}

#[test]
fn super_block_fields_at_spdk_offsets() {
    let b = sample_super().encode();
    assert_eq!(b.len(), 4096);
    assert_eq!(&b[0..8], b"SPDKBLOB");
    assert_eq!(u32_at(&b, 8), 3, "version");
    assert_eq!(u32_at(&b, 12), 4096, "length");
    assert_eq!(u32_at(&b, 16), 1, "clean");
    assert_eq!(u64_at(&b, 20), 0x1_0000_0007, "super_blob");
    assert_eq!(u32_at(&b, 28), 1 << 20, "cluster_size");
    assert_eq!((u32_at(&b, 32), u32_at(&b, 36)), (1, 1), "used page mask");
    assert_eq!(
        (u32_at(&b, 40), u32_at(&b, 44)),
        (2, 1),
        "used cluster mask"
    );
    assert_eq!((u32_at(&b, 48), u32_at(&b, 52)), (4, 64), "md region");
    assert_eq!(&b[56..72], b"LVOLSTORE\0\0\0\0\0\0\0", "bstype");
    assert_eq!((u32_at(&b, 72), u32_at(&b, 76)), (3, 1), "used blobid mask");
    assert_eq!(u64_at(&b, 80), 64 << 20, "size");
    assert_eq!(u32_at(&b, 88), 512, "io_unit_size");
    assert_eq!(u32_at(&b, 92), 4096, "md_page_size");
    assert!(b[96..4092].iter().all(|&x| x == 0), "reserved");
    assert_eq!(u32_at(&b, 4092), crc32c::crc32c(&b[..4092]), "crc");
    assert_eq!(SuperBlock::decode(&b).unwrap(), sample_super());
}

#[test]
fn super_block_rejects_damage_by_name() {
    let good = sample_super().encode();
    let mut b = good.clone();
    b[30] ^= 1;
    let e = SuperBlock::decode(&b).unwrap_err().to_string();
    assert!(e.contains("super block crc"), "{e}");
    let mut b = good.clone();
    b[0] = b'X';
    assert!(SuperBlock::decode(&b)
        .unwrap_err()
        .to_string()
        .contains("signature"));
    let mut b = good.clone();
    b[8] = 4;
    assert!(SuperBlock::decode(&b)
        .unwrap_err()
        .to_string()
        .contains("version"));
    assert!(SuperBlock::decode(&good[..100]).is_err());
}

#[test]
fn md_page_fields_at_spdk_offsets() {
    let mut p = MdPage::new(0x1_0000_0003, 2);
    p.next = 9;
    p.descriptors[0] = 0xAB;
    let b = p.encode();
    assert_eq!(u64_at(&b, 0), 0x1_0000_0003, "id");
    assert_eq!(u32_at(&b, 8), 2, "sequence_num");
    assert_eq!(u32_at(&b, 12), 0, "reserved0");
    assert_eq!(b[16], 0xAB, "descriptors start at 16");
    assert_eq!(page::DESC_AREA, 4072);
    assert_eq!(u32_at(&b, 4088), 9, "next");
    assert_eq!(u32_at(&b, 4092), page_crc(&b), "crc");
    assert_eq!(MdPage::decode(&b).unwrap(), p);
    let mut bad = b.clone();
    bad[2000] ^= 0x10;
    assert!(MdPage::decode(&bad)
        .unwrap_err()
        .to_string()
        .contains("crc"));
    assert_eq!(MdPage::new(1, 0).next, u32::MAX, "SPDK_INVALID_MD_PAGE");
}

#[test]
fn descriptor_encodings() {
    // Flags: type 3, length 24, three u64.
    let f = Descriptor::Flags(Flags {
        invalid: desc::FLAG_THIN_PROV | desc::FLAG_EXTENT_TABLE,
        data_ro: desc::FLAG_READ_ONLY,
        md_ro: 2,
    })
    .encode();
    assert_eq!(f.len(), 29);
    assert_eq!(f[0], 3);
    assert_eq!(u32_at(&f, 1), 24);
    assert_eq!(u64_at(&f, 5), 0b101);
    assert_eq!(u64_at(&f, 13), 1);
    assert_eq!(u64_at(&f, 21), 2);
    // Xattr: type 2, length = 4 + name + value, u16 lengths, name then value.
    let x = Descriptor::Xattr(Xattr {
        internal: false,
        name: "name".into(),
        value: b"lvs0\0".to_vec(),
    })
    .encode();
    assert_eq!(x[0], 2);
    assert_eq!(u32_at(&x, 1), 4 + 4 + 5);
    assert_eq!(u16::from_le_bytes([x[5], x[6]]), 4);
    assert_eq!(u16::from_le_bytes([x[7], x[8]]), 5);
    assert_eq!(&x[9..13], b"name");
    assert_eq!(&x[13..], b"lvs0\0");
    let xi = Descriptor::Xattr(Xattr {
        internal: true,
        name: "SNAP".into(),
        value: 7u64.to_le_bytes().to_vec(),
    })
    .encode();
    assert_eq!(xi[0], 4, "internal xattr type");
    // RLE: type 1, pairs of u32.
    let r = Descriptor::ExtentRle(vec![
        Extent {
            cluster_idx: 5,
            length: 3,
        },
        Extent {
            cluster_idx: 0,
            length: 2,
        },
    ])
    .encode();
    assert_eq!(r[0], 1);
    assert_eq!(u32_at(&r, 1), 16);
    assert_eq!((u32_at(&r, 5), u32_at(&r, 9)), (5, 3));
    assert_eq!((u32_at(&r, 13), u32_at(&r, 17)), (0, 2));
    // Extent table: type 5, u64 num_clusters, then (page_idx, num_pages).
    let t = Descriptor::ExtentTable {
        num_clusters: 1000,
        entries: vec![ExtentTableEntry {
            page_idx: 12,
            num_pages: 1,
        }],
    }
    .encode();
    assert_eq!(t[0], 5);
    assert_eq!(u32_at(&t, 1), 16);
    assert_eq!(u64_at(&t, 5), 1000);
    assert_eq!((u32_at(&t, 13), u32_at(&t, 17)), (12, 1));
    // Extent page: type 6, u32 start, u32 per cluster.
    let e = Descriptor::ExtentPage {
        start_cluster_idx: 512,
        clusters: vec![9, 0, 11],
    }
    .encode();
    assert_eq!(e[0], 6);
    assert_eq!(u32_at(&e, 1), 16);
    assert_eq!(u32_at(&e, 5), 512);
    assert_eq!((u32_at(&e, 9), u32_at(&e, 13), u32_at(&e, 17)), (9, 0, 11));
    assert_eq!(desc::EXTENTS_PER_EP, 512);
    // All of them parse back from one area, ended by a zero padding descriptor.
    let mut area = vec![0u8; page::DESC_AREA];
    let mut o = 0;
    for d in [&f, &x, &xi, &r] {
        area[o..o + d.len()].copy_from_slice(d);
        o += d.len();
    }
    let got = Descriptor::parse_area(&area).unwrap();
    assert_eq!(got.len(), 4);
    assert!(matches!(&got[3], Descriptor::ExtentRle(v) if v.len() == 2));
    // A length running past the area is an error, not a panic.
    let mut bad = vec![0u8; page::DESC_AREA];
    bad[0] = 2;
    bad[1..5].copy_from_slice(&5000u32.to_le_bytes());
    assert!(Descriptor::parse_area(&bad).is_err());
}

#[test]
fn mask_encoding() {
    let mut bits = Bits::new(20);
    bits.set(0);
    bits.set(9);
    bits.set(19);
    let mut region = vec![0xFFu8; PAGE_SIZE];
    Mask::encode_into(MaskType::UsedClusters, &bits, &mut region).unwrap();
    assert_eq!(region[0], 1, "type: used clusters");
    assert_eq!(u32_at(&region, 1), 20, "length in bits");
    assert_eq!(region[5], 0b0000_0001);
    assert_eq!(region[6], 0b0000_0010);
    assert_eq!(region[7], 0b0000_1000);
    assert!(region[8..].iter().all(|&x| x == 0));
    let m = Mask::decode(MaskType::UsedClusters, &region).unwrap();
    assert_eq!(m.bits, bits);
    assert!(Mask::decode(MaskType::UsedPages, &region).is_err());
}
