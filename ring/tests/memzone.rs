//! Rings in real EAL memzones (`--no-huge`, so no hugepages needed): create, duplicate
//! names, lookup with element-size check, use across threads through a looked-up
//! handle, free. The EAL needs nothing from the machine in this mode, so a failed
//! initialisation fails the test; only a missing hugepage setup, should the EAL ever
//! ask for one, is reported as a skip.

use ring::{Error, Ring, RingFlags};

fn eal(test: &str, prefix: &str) -> Option<eal::Eal> {
    let argv: Vec<String> = [
        "ring-test",
        "--no-huge",
        "-m",
        "64",
        "--file-prefix",
        prefix,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match eal::Eal::init(&argv) {
        Ok((e, _)) => Some(e),
        Err(e @ eal::Error::NoHugepages { .. }) => {
            testkit::skip(test, testkit::Need::Hugepages, e);
            None
        }
        Err(e) => panic!("EAL init with --no-huge failed: {e}"),
    }
}

#[test]
fn create_lookup_free() {
    let Some(eal) = eal(
        "create_lookup_free",
        &format!("ringmz{}", std::process::id()),
    ) else {
        return;
    };
    // SAFETY: multi-producer/consumer ring, no single-side contract; u64 everywhere.
    unsafe {
        let r = Ring::<u64>::create(&eal, "mz_a", 1024, None, RingFlags::empty()).unwrap();
        assert!(eal.memzones().lookup("RG_mz_a").is_some());
        assert_eq!(r.capacity(), 1023);
        assert!(matches!(
            Ring::<u64>::create(&eal, "mz_a", 64, None, RingFlags::empty()),
            Err(Error::Exists(n)) if n == "mz_a"
        ));
        assert!(matches!(
            Ring::<u64>::create(&eal, &"n".repeat(29), 64, None, RingFlags::empty()),
            Err(Error::BadName { .. })
        ));
        assert!(
            Ring::<u64>::create(&eal, &"n".repeat(28), 64, None, RingFlags::empty())
                .unwrap()
                .free()
                .is_ok()
        );
        assert!(matches!(
            Ring::<u64>::create(&eal, "bad", 100, None, RingFlags::empty()),
            Err(Error::NotPowerOfTwo(100))
        ));
        assert!(eal.memzones().lookup("RG_bad").is_none());

        assert!(matches!(
            Ring::<u64>::lookup(&eal, "nope"),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            Ring::<[u64; 2]>::lookup(&eal, "mz_a"),
            Err(Error::ElemSizeMismatch {
                found: 8,
                expected: 16,
                ..
            })
        ));
        let l = Ring::<u64>::lookup(&eal, "mz_a").unwrap();
        assert_eq!(l.as_ptr(), r.as_ptr());

        let n = 200_000u64;
        let prod = {
            let r = r.clone();
            std::thread::spawn(move || {
                let mut i = 0;
                while i < n {
                    i += u64::from(
                        r.enqueue_burst(&[i, i + 1, i + 2, i + 3][..(n - i).min(4) as usize])
                            .n,
                    );
                }
            })
        };
        let mut expect = 0;
        let mut buf = [0u64; 16];
        while expect < n {
            let d = l.dequeue_burst(&mut buf);
            for &v in &buf[..d.n as usize] {
                assert_eq!(v, expect);
                expect += 1;
            }
        }
        prod.join().unwrap();
        let mut dump = Vec::new();
        l.dump(&mut dump).unwrap();
        assert!(String::from_utf8(dump).unwrap().contains("ring <mz_a>"));
        drop(l);
        r.free().unwrap();
        assert!(eal.memzones().lookup("RG_mz_a").is_none());
        assert!(matches!(
            Ring::<u64>::lookup(&eal, "mz_a"),
            Err(Error::NotFound(_))
        ));
    }
}
