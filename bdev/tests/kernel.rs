//! The uring and aio modules on real files: data written through the bdev is the file's
//! bytes afterwards, the file's own bytes read back through it, vectored and unaligned
//! buffers (bounced under O_DIRECT), flush, reset, unmap and write-zeroes; on a file
//! system that takes O_DIRECT (/var/tmp) and on one that does not (/dev/shm, buffered);
//! and bad creation parameters.

mod common;

use std::sync::{Arc, Mutex};

use bdev::modules::aio::{self, AioOpts};
use bdev::modules::uring::{self, UringOpts};
use bdev::{BdevIoChannel, Descriptor, Error, IoStatus, IoType, IoVec};
use common::{Next, Step};

const BS: usize = 512;
const BLOCKS: usize = 512;

type Slot = Arc<Mutex<Option<(Descriptor, BdevIoChannel)>>>;

fn with<R>(s: &Slot, f: impl FnOnce(&Descriptor, &BdevIoChannel) -> R) -> R {
    let g = s.lock().unwrap();
    let (d, c) = g.as_ref().expect("opened");
    f(d, c)
}

fn original(k: usize) -> u8 {
    (k.wrapping_mul(31) ^ (k / BS)) as u8
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Uring,
    Aio,
}

fn create(kind: Kind, name: &str, filename: &str, block_size: u32) -> bdev::Result<bdev::Bdev> {
    match kind {
        Kind::Uring => uring::create(UringOpts {
            name: name.into(),
            filename: filename.into(),
            block_size,
            uuid: None,
        }),
        Kind::Aio => aio::create(AioOpts {
            name: name.into(),
            filename: filename.into(),
            block_size,
            readonly: false,
            uuid: None,
        }),
    }
}

/// A 4 KiB-aligned region inside an owned Vec (kept alive by whoever holds the Vec).
fn aligned(len: usize, fill: u8) -> (Vec<u8>, usize) {
    let v = vec![fill; len + 4096];
    let off = (4096 - (v.as_ptr() as usize) % 4096) % 4096;
    (v, off)
}

fn run_module(kind: Kind, dir: &str) {
    let test = format!("data_through_{kind:?}_{}", dir.replace('/', "_"));
    let Some(eal) = common::eal(&test, "0") else {
        return;
    };
    let path = format!("{dir}/fp-bdev-{kind:?}-{}", std::process::id());
    let orig: Vec<u8> = (0..BS * BLOCKS).map(original).collect();
    std::fs::write(&path, &orig).unwrap();
    let name = format!("k{kind:?}{}", dir.replace('/', "_"));
    let b = create(kind, &name, &path, 512).unwrap();
    assert_eq!(b.info().num_blocks, BLOCKS as u64);
    assert_eq!(b.info().block_size, 512);
    for t in [
        IoType::Read,
        IoType::Write,
        IoType::Flush,
        IoType::Reset,
        IoType::WriteZeroes,
        IoType::Unmap,
    ] {
        assert!(b.io_type_supported(t), "{kind:?} {t:?}");
    }
    assert!(!b.io_type_supported(IoType::Compare));

    let slot: Slot = Arc::new(Mutex::new(None));
    let read_back: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
    let s8 = slot.clone();
    let (s1, s2, s3, s4, s5, s6, s7) = (
        slot.clone(),
        slot.clone(),
        slot.clone(),
        slot.clone(),
        slot.clone(),
        slot.clone(),
        slot.clone(),
    );
    let rb = read_back.clone();
    let n1 = name.clone();
    let n2 = name.clone();
    // Reactors sleep as soon as they are idle (the first step), so requests in the
    // kernel complete through the channel's eventfd waking its reactor.
    let steps: Vec<Step> = vec![
        Box::new(move |next: Next| {
            next.framework().set_idle_before_sleep_us(0);
            let d = bdev::open(&n1, true, |_| {}).unwrap();
            let c = d.get_io_channel().unwrap();
            *s1.lock().unwrap() = Some((d, c));
            next.go();
        }),
        // A plain Vec: unaligned for O_DIRECT, so the module bounces it.
        Box::new(move |next: Next| {
            with(&s2, |d, c| {
                d.write_buf(c, vec![0xA1u8; 8 * BS], 16, 8, move |st, _| {
                    assert_eq!(st, IoStatus::Success);
                    next.go();
                })
                .unwrap()
            })
        }),
        // Two aligned iovecs in one request: a vectored write straight from them.
        Box::new(move |next: Next| {
            let (mut a, oa) = aligned(2 * BS, 0xB2);
            let (mut bb, ob) = aligned(2 * BS, 0xC3);
            let iovs = [
                IoVec::from_slice(&mut a[oa..oa + 2 * BS]),
                IoVec::from_slice(&mut bb[ob..ob + 2 * BS]),
            ];
            with(&s3, |d, c| {
                // SAFETY: `a` and `bb` move into the callback (their heap blocks stay put)
                // and are not touched until it runs.
                unsafe {
                    d.writev(c, &iovs, 100, 4, move |st| {
                        drop((a, bb));
                        assert_eq!(st, IoStatus::Success);
                        next.go();
                    })
                }
                .unwrap()
            })
        }),
        Box::new(move |next: Next| {
            with(&s4, |d, c| {
                d.flush(c, 0, BLOCKS as u64, move |st| {
                    assert_eq!(st, IoStatus::Success);
                    next.go();
                })
                .unwrap()
            })
        }),
        Box::new(move |next: Next| {
            with(&s5, |d, c| {
                d.reset(c, move |st| {
                    assert_eq!(st, IoStatus::Success);
                    next.go();
                })
                .unwrap()
            })
        }),
        Box::new(move |next: Next| {
            with(&s6, |d, c| {
                d.write_zeroes(c, 200, 8, move |st| {
                    assert_eq!(st, IoStatus::Success);
                    next.go();
                })
                .unwrap()
            })
        }),
        // A hole punched in a regular file reads as zeroes.
        Box::new(move |next: Next| {
            with(&s8, |d, c| {
                d.unmap(c, 300, 8, move |st| {
                    assert_eq!(st, IoStatus::Success);
                    next.go();
                })
                .unwrap()
            })
        }),
        // Read the first 128 blocks: the file's own bytes around the written ones.
        Box::new(move |next: Next| {
            with(&s7, |d, c| {
                d.read_buf(c, vec![0xEE; 128 * BS], 0, 128, move |st, buf| {
                    assert_eq!(st, IoStatus::Success);
                    *rb.lock().unwrap() = buf;
                    next.go();
                })
                .unwrap()
            })
        }),
        Box::new(move |next: Next| {
            *slot.lock().unwrap() = None;
            bdev::bdev::unregister(&n2, move |r| {
                r.unwrap();
                next.go();
            })
            .unwrap();
        }),
    ];
    assert_eq!(common::run_steps(&eal, steps), 0);
    assert!(bdev::bdev::get(&name).is_none());

    let mut want = orig.clone();
    want[16 * BS..24 * BS].fill(0xA1);
    want[100 * BS..102 * BS].fill(0xB2);
    want[102 * BS..104 * BS].fill(0xC3);
    want[200 * BS..208 * BS].fill(0);
    want[300 * BS..308 * BS].fill(0);
    let file = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(file.len(), want.len());
    if let Some(k) = (0..want.len()).find(|&k| file[k] != want[k]) {
        panic!(
            "{kind:?} on {dir}: file byte {k} is {:#x}, expected {:#x}",
            file[k], want[k]
        );
    }
    let rb = read_back.lock().unwrap();
    assert_eq!(&rb[..], &want[..128 * BS], "{kind:?} read back");
}

#[test]
fn uring_data_is_the_files_bytes_direct() {
    run_module(Kind::Uring, "/var/tmp");
}

#[test]
fn uring_data_is_the_files_bytes_buffered() {
    run_module(Kind::Uring, "/dev/shm");
}

#[test]
fn aio_data_is_the_files_bytes_direct() {
    run_module(Kind::Aio, "/var/tmp");
}

#[test]
fn aio_data_is_the_files_bytes_buffered() {
    run_module(Kind::Aio, "/dev/shm");
}

#[test]
fn bad_parameters_are_clear_errors() {
    let dir = format!("/var/tmp/fp-bdev-bad-{}", std::process::id());
    std::fs::create_dir_all(&dir).unwrap();
    let file = format!("{dir}/f");
    std::fs::write(&file, vec![0u8; 64 * 1024]).unwrap();
    let tiny = format!("{dir}/tiny");
    std::fs::write(&tiny, [0u8; 100]).unwrap();
    for kind in [Kind::Uring, Kind::Aio] {
        let n = format!("bad{kind:?}");
        let e = create(kind, &n, &format!("{dir}/missing"), 512).unwrap_err();
        assert!(
            matches!(e, Error::Create { .. }) && e.to_string().contains("No such file"),
            "{e}"
        );
        let e = create(kind, &n, &file, 1000).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Invalid {
                    what: "block_size",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("power of two"), "{e}");
        let e = create(kind, &n, &file, 0).unwrap_err();
        assert!(
            e.to_string().contains("give block_size"),
            "regular file without a block size: {e}"
        );
        let e = create(kind, &n, &tiny, 512).unwrap_err();
        assert!(e.to_string().contains("smaller than one block"), "{e}");
        let e = create(kind, "", &file, 512).unwrap_err();
        assert!(matches!(e, Error::Invalid { what: "name", .. }), "{e}");
        let e = create(kind, &n, &dir, 512).unwrap_err();
        assert!(e.to_string().contains(&n), "a directory: {e}");
        assert!(bdev::bdev::get(&n).is_none(), "nothing registered");
    }
    // A name in use (by a bdev of either module) is refused by the other.
    let b = create(Kind::Uring, "dupname", &file, 4096).unwrap();
    assert_eq!(b.info().num_blocks, 16);
    let e = create(Kind::Aio, "dupname", &file, 512).unwrap_err();
    assert!(matches!(e, Error::Exists(ref n) if n == "dupname"), "{e}");
    let e = create(Kind::Uring, "dupname", &file, 512).unwrap_err();
    assert!(matches!(e, Error::Exists(_)), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
