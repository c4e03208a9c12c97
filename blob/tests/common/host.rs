//! A framework with a malloc bdev for tests that go through the bdev layer.

use std::sync::atomic::{AtomicU32, Ordering};

use bdev::modules::malloc::{self, MallocOpts};
use blob::bdev_dev::BdevDev;
use blob::BlockDevice;

/// An EAL of one lcore without hugepages, or `None` after a counted skip.
pub fn eal(test: &str) -> Option<eal::Eal> {
    static N: AtomicU32 = AtomicU32::new(0);
    let mut argv = testkit::eal_env::no_huge_args(
        &format!("blobt{}", N.fetch_add(1, Ordering::Relaxed)),
        8,
        "0",
    );
    argv.extend(["--no-pci", "--log-level", "4"].map(String::from));
    match eal::Eal::init(&argv) {
        Ok((e, _)) => Some(e),
        Err(e) => {
            testkit::skip(test, testkit::Need::Kernel, format!("EAL init failed: {e}"));
            None
        }
    }
}

/// Run `work` with a malloc bdev `name` of `bytes` (512-byte blocks) holding
/// `image` (zero-filled past it), opened as a blobstore device through the bdev
/// layer; returns `work`'s result and the bdev's contents afterwards.
pub fn with_malloc<T: Send + 'static>(
    eal: &eal::Eal,
    name: &str,
    bytes: u64,
    image: Vec<u8>,
    work: impl FnOnce(Box<dyn BlockDevice>) -> (T, Box<dyn BlockDevice>) + Send + 'static,
) -> (T, Vec<u8>) {
    let n = name.to_string();
    let n2 = name.to_string();
    blob::host::run(
        eal,
        move || {
            malloc::create(MallocOpts {
                name: n,
                num_blocks: bytes / 512,
                block_size: 512,
                ..Default::default()
            })?;
            Ok(())
        },
        move |th| {
            let mut dev: Box<dyn BlockDevice> =
                Box::new(BdevDev::open(&th, &n2).expect("open the malloc bdev"));
            let chunk = 1 << 20;
            for (i, c) in image.chunks(chunk).enumerate() {
                dev.write((i * chunk / 512) as u64, c)
                    .expect("load the image");
            }
            let (t, mut dev) = work(dev);
            let mut out = vec![0u8; bytes as usize];
            for (i, c) in out.chunks_mut(chunk).enumerate() {
                dev.read((i * chunk / 512) as u64, c)
                    .expect("read the image back");
            }
            drop(dev);
            (t, out)
        },
    )
    .expect("framework run")
}
