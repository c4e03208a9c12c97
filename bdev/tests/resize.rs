//! Block-count changes on a real reactor: a null bdev grown by `null::resize` tells
//! its open descriptor (the resize event, on the descriptor's thread, with the new
//! count already visible), I/O past the old end is refused before and accepted after,
//! shrinking is refused while a descriptor is open and allowed once none is, and bad
//! sizes are refused with the bdev unchanged.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bdev::modules::null::{self, NullOpts};
use bdev::{BdevEvent, Error, IoStatus};
use common::{step, Step};
use framework::thread;

const BS: u32 = 4096;
/// 8 MiB.
const BLOCKS: u64 = 2048;

#[test]
fn resize_reaches_open_descriptors_and_range_checks() {
    let Some(eal) = common::eal("resize_reaches_open_descriptors", "0") else {
        return;
    };
    // (thread id, num_blocks seen) per resize event.
    let seen = Arc::new(Mutex::new(Vec::<(u64, u64)>::new()));
    let removes = Arc::new(AtomicU64::new(0));
    let open = Arc::new(Mutex::new(None));
    let (s1, r1, o1) = (seen.clone(), removes.clone(), open.clone());
    let o2 = open.clone();
    let (s3, o3) = (seen.clone(), open.clone());
    let steps: Vec<Step> = vec![
        step(move |next| {
            let b = null::create(NullOpts {
                name: "rs0".into(),
                num_blocks: BLOCKS,
                block_size: BS,
                uuid: None,
            })
            .unwrap();
            let b2 = b.clone();
            let d = bdev::open("rs0", true, move |ev| match ev {
                BdevEvent::Resize => s1
                    .lock()
                    .unwrap()
                    .push((thread::current().unwrap().id(), b2.num_blocks())),
                BdevEvent::Remove => {
                    r1.fetch_add(1, Ordering::AcqRel);
                }
            })
            .unwrap();
            let c = d.get_io_channel().unwrap();
            // Past the end: refused at submission.
            let r = d.read_buf(&c, vec![0; BS as usize], BLOCKS, 1, |_, _| {
                panic!("an out-of-range read completed")
            });
            assert!(
                matches!(
                    r,
                    Err(Error::OutOfRange {
                        num_blocks: BLOCKS,
                        ..
                    })
                ),
                "{r:?}"
            );
            // Bad sizes leave it as it was.
            assert!(matches!(null::resize(&b, 4), Err(Error::Invalid { .. })));
            assert!(matches!(
                null::resize(&b, u64::MAX),
                Err(Error::Invalid { .. })
            ));
            assert!(matches!(
                bdev::notify_blockcnt_change(&b, 0),
                Err(Error::Invalid { .. })
            ));
            // Shrinking with a descriptor open is refused.
            let r = bdev::notify_blockcnt_change(&b, BLOCKS / 2);
            assert!(matches!(r, Err(Error::Invalid { .. })), "{r:?}");
            assert_eq!(b.num_blocks(), BLOCKS);
            // Growing: the count changes at once, the event follows as a message.
            null::resize(&b, 16).unwrap();
            assert_eq!(b.num_blocks(), 2 * BLOCKS);
            *o1.lock().unwrap() = Some((b, d, c));
            next.go();
        }),
        step(move |next| {
            let g = o2.lock().unwrap();
            let (_, d, c) = g.as_ref().unwrap();
            // The new blocks take I/O.
            d.read_buf(
                c,
                vec![0; 8 * BS as usize],
                BLOCKS + 100,
                8,
                move |st, _| {
                    assert_eq!(st, IoStatus::Success);
                    next.go();
                },
            )
            .unwrap();
        }),
        step(move |next| {
            let me = thread::current().unwrap().id();
            assert_eq!(
                *s3.lock().unwrap(),
                vec![(me, 2 * BLOCKS)],
                "one resize event, on the opening thread, with the new count"
            );
            let (b, d, c) = o3.lock().unwrap().take().unwrap();
            // The same size again tells nobody.
            bdev::notify_blockcnt_change(&b, 2 * BLOCKS).unwrap();
            drop(c);
            d.close();
            // With nothing open, shrinking is allowed.
            bdev::notify_blockcnt_change(&b, BLOCKS / 2).unwrap();
            assert_eq!(b.num_blocks(), BLOCKS / 2);
            next.go();
        }),
    ];
    assert_eq!(common::run_steps(&eal, steps), 0);
    assert_eq!(seen.lock().unwrap().len(), 1, "no event after the no-op");
    assert_eq!(removes.load(Ordering::Acquire), 0);
    drop(open);
}
