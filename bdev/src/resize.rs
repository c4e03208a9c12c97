//! Block-count changes (SPDK's `spdk_bdev_notify_blockcnt_change` and
//! `SPDK_BDEV_EVENT_RESIZE`): a module whose device changed size tells the layer, which
//! takes the new count for its range checks ([`Bdev::num_blocks`]) and delivers
//! [`BdevEvent::Resize`] to every open descriptor on that descriptor's thread.
//!
//! As in SPDK, a bdev may shrink only while no descriptor is open (an open user could
//! have I/O in flight past the new end); growing is always allowed. The null module's
//! `bdev_null_resize` (SPDK's name and parameters: `name`, `new_size` in MiB, grow
//! only) is the RPC that uses it, and so is `bdev_malloc_resize` (ours: SPDK has no
//! malloc resize RPC; the same parameters, see [`crate::modules::malloc::resize`]).
//! `bdev_uring_rescan {name}` (SPDK's) takes up the size a uring bdev's file has now.
//! Their handlers are in [`crate::resize_rpc`].

use std::sync::atomic::Ordering;

use crate::bdev::{Bdev, BdevEvent};
use crate::error::{Error, Result};

/// Set `b`'s block count to `num_blocks` and tell its open descriptors. Refused when
/// the count is 0 or overflows the byte size, when `b` is being removed, and when it
/// would shrink with descriptors open. Setting the count it has is a no-op.
pub fn notify_blockcnt_change(b: &Bdev, num_blocks: u64) -> Result<()> {
    let bs = u64::from(b.info().block_size);
    if num_blocks == 0 || num_blocks.checked_mul(bs).is_none() {
        return Err(Error::Invalid {
            what: "num_blocks",
            why: format!("{num_blocks} blocks of {bs} bytes"),
        });
    }
    let descs = {
        let st = b.0.lock();
        if st.removing {
            return Err(Error::Removed {
                what: "resize",
                name: b.name().to_string(),
            });
        }
        let old = b.num_blocks();
        if num_blocks == old {
            return Ok(());
        }
        if num_blocks < old && !st.descs.is_empty() {
            return Err(Error::Invalid {
                what: "num_blocks",
                why: format!(
                    "bdev '{}' cannot shrink from {old} to {num_blocks} blocks while {} \
                     descriptor(s) are open",
                    b.name(),
                    st.descs.len()
                ),
            });
        }
        // Pairs with the Acquire load in `Bdev::num_blocks`: a user told of the
        // change reads the new count.
        b.0.blockcnt.store(num_blocks, Ordering::Release);
        st.descs.clone()
    };
    eal::log_notice!(
        "bdev '{}': block count now {num_blocks} ({} descriptor(s) told)",
        b.name(),
        descs.len()
    );
    for d in descs {
        // A descriptor whose thread is gone is being torn down; nothing to tell.
        let _ = d.notify(BdevEvent::Resize);
    }
    Ok(())
}

/// The block count of `new_size_mib` MiB on `b`, refused unless whole blocks and at
/// least the current count (the grow-only resize RPCs).
pub(crate) fn grown_blocks(b: &Bdev, new_size_mib: u64) -> Result<u64> {
    let bs = u64::from(b.info().block_size);
    let bytes = new_size_mib
        .checked_mul(1 << 20)
        .filter(|n| n % bs == 0)
        .ok_or_else(|| Error::Invalid {
            what: "new_size",
            why: format!("{new_size_mib} MiB is not a whole number of {bs}-byte blocks"),
        })?;
    let blocks = bytes / bs;
    if blocks < b.num_blocks() {
        return Err(Error::Invalid {
            what: "new_size",
            why: format!(
                "{new_size_mib} MiB is below the current {} blocks of {bs} bytes",
                b.num_blocks()
            ),
        });
    }
    Ok(blocks)
}
