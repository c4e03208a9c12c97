//! The public enqueue/dequeue calls of [`Ring`], generated once for each family: the
//! mode-following calls (`enqueue`, `dequeue_bulk`...), the explicit multi-thread ones
//! (`mp_*`, `mc_*`) and the explicit single-thread ones (`sp_*`, `sc_*`, `unsafe`). A
//! family differs only in the mode it runs a side with (the side's own, or
//! `ops::as_multi` / `ops::as_single` of it) and in whether its calls are `unsafe`.
//!
//! On an RTS, HTS or optimistic side the explicit calls keep that side's protocol, which
//! is correct for one thread and for many. On a single side the `mp_*`/`mc_*` calls run
//! the multi protocol, which is only correct if no single-mode call runs at the same
//! time (the single-side contract the handle's maker accepted).

use core::mem::MaybeUninit;

use crate::claim::{len_u32, Behavior};
use crate::flags::SyncMode;
use crate::handle::Ring;
use crate::ops::{as_multi, as_single, Dequeued, Enqueued};

/// The side's own mode (the mode-following family).
#[inline(always)]
fn as_created(m: SyncMode) -> SyncMode {
    m
}

/// One family: enqueue of one object, bulk and burst, with the producer mode mapped by
/// `$prod`; dequeue of one object, bulk and burst, with the consumer mode mapped by
/// `$cons`. `[$($q)*]` is the calls' qualifier (`unsafe` or nothing); the attributes
/// after `$prod` / `$cons` go on that side's three calls (their `# Safety` text).
macro_rules! entry_points {
    (
        [$($q:tt)*]
        enqueue $what_p:literal by $prod:path $(, #[$ap:meta])*:
            $one_p:ident, $bulk_p:ident, $burst_p:ident;
        dequeue $what_c:literal by $cons:path $(, #[$ac:meta])*:
            $one_c:ident, $bulk_c:ident, $burst_c:ident;
    ) => {
        #[doc = concat!($what_p, " of one object; hands it back if the ring is full.")]
        $(#[$ap])*
        #[inline]
        pub $($q)* fn $one_p(&self, obj: T) -> Result<(), T> {
            match self.enq($prod(self.prod_mode), &obj, 1, Behavior::Bulk).n {
                0 => Err(obj),
                _ => Ok(()),
            }
        }

        #[doc = concat!($what_p, " of all of `objs` or none (bulk).")]
        $(#[$ap])*
        #[inline]
        pub $($q)* fn $bulk_p(&self, objs: &[T]) -> Enqueued {
            self.enq($prod(self.prod_mode), objs.as_ptr(), len_u32(objs.len()), Behavior::Bulk)
        }

        #[doc = concat!($what_p, " of as many of `objs` (from the front) as fit (burst).")]
        $(#[$ap])*
        #[inline]
        pub $($q)* fn $burst_p(&self, objs: &[T]) -> Enqueued {
            self.enq($prod(self.prod_mode), objs.as_ptr(), len_u32(objs.len()), Behavior::Burst)
        }

        #[doc = concat!($what_c, " of one object, `None` if the ring is empty.")]
        $(#[$ac])*
        #[inline]
        pub $($q)* fn $one_c(&self) -> Option<T> {
            let mut v = MaybeUninit::<T>::uninit();
            match self.deq($cons(self.cons_mode), v.as_mut_ptr(), 1, Behavior::Bulk).n {
                0 => None,
                // SAFETY: one element was copied into `v`.
                _ => Some(unsafe { v.assume_init() }),
            }
        }

        #[doc = concat!($what_c, " of exactly `out.len()` objects into `out`, or none (bulk).")]
        $(#[$ac])*
        #[inline]
        pub $($q)* fn $bulk_c(&self, out: &mut [T]) -> Dequeued {
            self.deq($cons(self.cons_mode), out.as_mut_ptr(), len_u32(out.len()), Behavior::Bulk)
        }

        #[doc = concat!($what_c, " of up to `out.len()` objects into the front of `out` (burst).")]
        $(#[$ac])*
        #[inline]
        pub $($q)* fn $burst_c(&self, out: &mut [T]) -> Dequeued {
            self.deq($cons(self.cons_mode), out.as_mut_ptr(), len_u32(out.len()), Behavior::Burst)
        }
    };
}

impl<T: Copy> Ring<T> {
    entry_points! {
        []
        enqueue "Enqueue (the producer side's own mode)" by as_created:
            enqueue, enqueue_bulk, enqueue_burst;
        dequeue "Dequeue (the consumer side's own mode)" by as_created:
            dequeue, dequeue_bulk, dequeue_burst;
    }

    entry_points! {
        []
        enqueue "Multi-producer enqueue (safe from any number of threads)" by as_multi:
            mp_enqueue, mp_enqueue_bulk, mp_enqueue_burst;
        dequeue "Multi-consumer dequeue (safe from any number of threads)" by as_multi:
            mc_dequeue, mc_dequeue_bulk, mc_dequeue_burst;
    }

    entry_points! {
        [unsafe]
        enqueue "Single-producer enqueue" by as_single,
            #[doc = ""],
            #[doc = "# Safety"],
            #[doc = "No other thread (in any process) enqueues on this ring during the call."]:
            sp_enqueue, sp_enqueue_bulk, sp_enqueue_burst;
        dequeue "Single-consumer dequeue" by as_single,
            #[doc = ""],
            #[doc = "# Safety"],
            #[doc = "No other thread (in any process) dequeues from this ring during the call."]:
            sc_dequeue, sc_dequeue_bulk, sc_dequeue_burst;
    }

    /// [`Ring::dequeue_bulk`] into uninitialised storage; on `n > 0` the first `n`
    /// elements of `out` are initialised.
    #[inline]
    pub fn dequeue_bulk_uninit(&self, out: &mut [MaybeUninit<T>]) -> Dequeued {
        let n = len_u32(out.len());
        self.deq(self.cons_mode, out.as_mut_ptr().cast(), n, Behavior::Bulk)
    }

    /// [`Ring::dequeue_burst`] into uninitialised storage; the first `n` elements of
    /// `out` are initialised.
    #[inline]
    pub fn dequeue_burst_uninit(&self, out: &mut [MaybeUninit<T>]) -> Dequeued {
        let n = len_u32(out.len());
        self.deq(self.cons_mode, out.as_mut_ptr().cast(), n, Behavior::Burst)
    }
}
