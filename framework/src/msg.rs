//! Messages: boxed closures carried through a multi-producer, single-consumer ring of the
//! ring crate.
//!
//! A message is one `Box<dyn FnOnce() + Send>`: the box is the only allocation per
//! message. Its fat pointer (data + vtable, 16 bytes) is the ring element, so enqueue
//! and dequeue copy two words and take no lock. The ring's consumer side is single
//! (`SC_DEQ`): only the reactor that currently runs the owning thread (or the reactor
//! itself, for its event ring) dequeues; a thread moves between reactors only through
//! events, which order the old reactor's last dequeue before the new one's first (the
//! event ring's release/acquire pair).
//!
//! Producers use the ring's plain multi-producer mode (SPDK's MP/SC message ring): one
//! CAS on the head, then the tail store, which is `SeqCst` because it is the sender's
//! half of the wake-up handshake (`wake`). A sender preempted between the two makes the
//! next sender wait in its tail publication; that wait spins briefly and then sleeps
//! (the ring crate's back-off), so it costs the waiter latency, not a cpu. Measured
//! against RTS (two CASes per send) side by side in the `framework` bench: 0.90 against
//! 1.57 µs per one-way message on a heavily loaded machine.
//!
//! Every message is either run or dropped exactly once: a ring that is dropped with
//! messages still in it drops them (their destructors run).

use std::alloc::Layout;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use ring::{Ring, RingFlags};

use crate::error::{Error, Result};

/// A message: a closure to run once on its target.
pub type Msg = Box<dyn FnOnce() + Send + 'static>;

/// A message as it sits in the ring: the raw fat pointer of its box.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct RawMsg(*mut (dyn FnOnce() + Send + 'static));

const _: () = assert!(size_of::<RawMsg>() == 16);

// SAFETY: a RawMsg is an owned `Box<dyn FnOnce() + Send>` in transit; the closure is
// `Send`, and exactly one side (producer before the enqueue, consumer after the
// dequeue) owns it at any time.
unsafe impl Send for RawMsg {}

impl RawMsg {
    fn from_box(m: Msg) -> RawMsg {
        RawMsg(Box::into_raw(m))
    }

    /// # Safety
    /// `self` came from [`RawMsg::from_box`] and is turned back into a box only once.
    unsafe fn into_box(self) -> Msg {
        // SAFETY: forwarded to the caller.
        unsafe { Box::from_raw(self.0) }
    }
}

/// How many messages one call of [`MsgRing::run_burst`] takes at most.
pub(crate) const BURST: usize = 32;

/// A bounded MPSC queue of messages over a heap-backed ring.
pub(crate) struct MsgRing {
    ring: Ring<RawMsg>,
    mem: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the ring handle is Send + Sync (RawMsg is Send); `mem` is only freed in Drop,
// which has exclusive access. The single-consumer contract is kept by the `unsafe`
// consumer methods' callers.
unsafe impl Send for MsgRing {}
// SAFETY: as above; producers use `&self` with the multi-producer protocol.
unsafe impl Sync for MsgRing {}

impl MsgRing {
    /// A ring holding at least `count` messages (rounded up to a power of two by the
    /// ring crate, less one).
    pub(crate) fn new(name: &str, count: u32) -> Result<MsgRing> {
        let flags = RingFlags::SC_DEQ;
        let len = Ring::<RawMsg>::memsize(count, flags)?;
        let layout =
            Layout::from_size_align(len, ring::RING_ALIGN).map_err(|e| Error::BadValue {
                what: "message ring size",
                why: e.to_string(),
            })?;
        // SAFETY: `layout` has a non-zero size (memsize includes the header).
        let mem = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }).ok_or_else(|| {
            Error::BadValue {
                what: "message ring size",
                why: format!("out of memory for {len} bytes"),
            }
        })?;
        let name: String = name
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(ring::NAME_MAX - 1)
            .collect();
        let name = if name.is_empty() {
            "msg".to_string()
        } else {
            name
        };
        // SAFETY: `mem` is a fresh, exclusive, 128-aligned block of `len` bytes that lives
        // until Drop, after the ring handle is last used. The consumer side is single:
        // every dequeue goes through the `unsafe` methods below, whose callers promise one
        // consumer at a time.
        let ring = match unsafe { Ring::init_in(mem.as_ptr(), len, &name, count, flags) } {
            Ok(r) => r,
            Err(e) => {
                // SAFETY: allocated above with this layout, not used by anything.
                unsafe { std::alloc::dealloc(mem.as_ptr(), layout) };
                return Err(e.into());
            }
        };
        Ok(MsgRing { ring, mem, layout })
    }

    /// Enqueue a message; a full ring hands it back. The publication (the ring's tail
    /// store) is `SeqCst`: it is the sender's half of the wake-up handshake (W1 in
    /// `wake`), so no fence follows it.
    #[inline]
    pub(crate) fn push(&self, m: Msg) -> std::result::Result<(), Msg> {
        let raw = RawMsg::from_box(m);
        match self.ring.enqueue_seqcst(raw) {
            Ok(()) => Ok(()),
            // SAFETY: the enqueue failed, so `raw` is still ours and came from from_box.
            Err(raw) => Err(unsafe { raw.into_box() }),
        }
    }

    /// True when the ring holds no message (a snapshot).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.ring.empty()
    }

    /// Messages in the ring (a snapshot).
    pub(crate) fn len(&self) -> u32 {
        self.ring.count()
    }

    /// Dequeue up to [`BURST`] messages and run them in order; returns how many ran.
    ///
    /// # Safety
    /// No other thread dequeues from this ring during the call.
    #[inline]
    pub(crate) unsafe fn run_burst(&self) -> usize {
        let mut buf = [MaybeUninit::<RawMsg>::uninit(); BURST];
        let n = self.ring.dequeue_burst_uninit(&mut buf).n as usize;
        for slot in &buf[..n] {
            // SAFETY: the first `n` slots were written by the dequeue; each element was
            // enqueued by `push` from a box and is dequeued exactly once.
            let m = unsafe { slot.assume_init().into_box() };
            m();
        }
        n
    }

    /// Dequeue everything and drop it without running it; returns how many.
    ///
    /// # Safety
    /// As [`MsgRing::run_burst`].
    pub(crate) unsafe fn drop_all(&self) -> usize {
        let mut total = 0;
        loop {
            let mut buf = [MaybeUninit::<RawMsg>::uninit(); BURST];
            let n = self.ring.dequeue_burst_uninit(&mut buf).n as usize;
            for slot in &buf[..n] {
                // SAFETY: as in run_burst.
                drop(unsafe { slot.assume_init().into_box() });
            }
            total += n;
            if n == 0 {
                return total;
            }
        }
    }
}

impl Drop for MsgRing {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other handle to this ring exists (the ring handle is
        // private and never cloned), so this is the only consumer.
        unsafe { self.drop_all() };
        // SAFETY: allocated in `new` with `self.layout`; the ring handle is not used
        // after this point (it is dropped right after, and its drop touches no memory
        // of the ring: the backing is `Caller`).
        unsafe { std::alloc::dealloc(self.mem.as_ptr(), self.layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Count(Arc<AtomicUsize>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn runs_in_order_and_drops_leftovers() {
        let r = MsgRing::new("t", 8).unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        for i in 0..5 {
            let s = seen.clone();
            r.push(Box::new(move || s.lock().unwrap().push(i)))
                .map_err(|_| ())
                .unwrap();
        }
        assert_eq!(r.len(), 5);
        // SAFETY: single-threaded test: the only consumer.
        assert_eq!(unsafe { r.run_burst() }, 5);
        assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        let drops = Arc::new(AtomicUsize::new(0));
        let mut refused = 0;
        for _ in 0..20 {
            let c = Count(drops.clone());
            if let Err(m) = r.push(Box::new(move || drop(c))) {
                refused += 1;
                drop(m);
            }
        }
        assert!(refused > 0, "an 8-slot ring took 20 messages");
        assert_eq!(drops.load(Ordering::Relaxed), refused);
        drop(r);
        assert_eq!(
            drops.load(Ordering::Relaxed),
            20,
            "leftover messages not dropped"
        );
    }

    /// The single-thread cost of one message, for instruction counting: `N` sends (box,
    /// push, the wake-up check of `Wake::kick`) received in bursts. Run under
    /// `valgrind --tool=callgrind` with two values of `FP_MSG_COST_N` and take the
    /// difference of the totals over the difference of `N`.
    #[test]
    #[ignore = "a harness for instruction counts, run by hand"]
    fn send_receive_cost_harness() {
        let n: usize = std::env::var("FP_MSG_COST_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        // `FP_MSG_COST_OLD` set: the earlier send path, for a before/after count.
        let release_then_fence = std::env::var_os("FP_MSG_COST_OLD").is_some();
        let r = MsgRing::new("cost", 1024).unwrap();
        let wake = crate::wake::Wake::new().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let mut sent = 0;
        while sent < n {
            let k = (n - sent).min(BURST);
            for _ in 0..k {
                let c = ran.clone();
                let m: Msg = Box::new(move || {
                    c.fetch_add(1, Ordering::Relaxed);
                });
                if release_then_fence {
                    // The earlier sender: Release publication, then a SeqCst fence.
                    let raw = RawMsg::from_box(m);
                    assert!(r.ring.enqueue(raw).is_ok());
                    std::sync::atomic::fence(Ordering::SeqCst);
                } else {
                    r.push(m).map_err(|_| ()).unwrap();
                }
                wake.kick();
            }
            sent += k;
            // SAFETY: single-threaded test: the only consumer.
            assert_eq!(unsafe { r.run_burst() }, k);
        }
        assert_eq!(ran.load(Ordering::Relaxed), n);
    }
}
