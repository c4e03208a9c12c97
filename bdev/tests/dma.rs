//! A malloc bdev in EAL hugepage memory: the disk is DMA-able (it has an IOVA) and
//! data written through the layer reads back. Takes 8 MiB of hugepages.

mod common;

use std::sync::{Arc, Mutex};

use bdev::modules::malloc::{self, MallocOpts};
use bdev::IoStatus;
use common::{pattern, Step};

#[test]
fn malloc_in_hugepage_memory() {
    let argv: Vec<String> = [
        "bdevdma",
        "-l",
        "0",
        "-m",
        "8",
        "--no-pci",
        "--file-prefix",
        &format!("bddma{}", std::process::id()),
        "--log-level",
        "4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let eal = match eal::Eal::init(&argv) {
        Ok((e, _)) if !e.memory().no_huge() => e,
        Ok(_) => {
            testkit::skip(
                "malloc_in_hugepage_memory",
                testkit::Need::Hugepages,
                "the EAL came up without hugepage memory",
            );
            return;
        }
        Err(e) => {
            testkit::skip(
                "malloc_in_hugepage_memory",
                testkit::Need::Hugepages,
                format!("EAL init with hugepages failed: {e}"),
            );
            return;
        }
    };
    let info = Arc::new(Mutex::new(None));
    let back = Arc::new(Mutex::new(Vec::new()));
    let (i2, b2, e2) = (info.clone(), back.clone(), eal.clone());
    let steps: Vec<Step> = vec![Box::new(move |next| {
        let b = malloc::create(MallocOpts {
            name: "dma0".into(),
            num_blocks: 512,
            block_size: 4096,
            eal: Some(e2),
            ..Default::default()
        })
        .unwrap();
        *i2.lock().unwrap() = b.module().info_json();
        let d = Arc::new(bdev::open("dma0", true, |_| {}).unwrap());
        let c = Arc::new(Mutex::new(d.get_io_channel().unwrap()));
        let (d2, c2) = (d.clone(), c.clone());
        d.write_buf(
            &c.lock().unwrap(),
            pattern(0x31, 100, 4, 4096),
            100,
            4,
            move |st, _| {
                assert_eq!(st, IoStatus::Success);
                let (d3, c3) = (d2.clone(), c2.clone());
                d2.read_buf(
                    &c2.lock().unwrap(),
                    vec![0; 4 * 4096],
                    100,
                    4,
                    move |st, buf| {
                        assert_eq!(st, IoStatus::Success);
                        *b2.lock().unwrap() = buf;
                        drop((c3, d3));
                        bdev::bdev::unregister("dma0", move |r| {
                            r.unwrap();
                            next.go()
                        })
                        .unwrap();
                    },
                )
                .unwrap();
            },
        )
        .unwrap();
    })];
    assert_eq!(common::run_steps(&eal, steps), 0);
    let info = info.lock().unwrap().clone().unwrap();
    assert_eq!(info["malloc"]["dma"], true, "{info}");
    assert_eq!(*back.lock().unwrap(), pattern(0x31, 100, 4, 4096));
}
