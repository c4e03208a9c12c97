//! I/O requests as modules see them: [`IoType`], [`IoStatus`], [`IoVec`] and
//! [`BdevIo`] (SPDK's `spdk_bdev_io`).
//!
//! A module receives a [`BdevIo`] in [`crate::ModuleChannel::submit`] on the submitting
//! thread and must call [`BdevIo::complete`] exactly once, on that same thread (inline or
//! later from a poller or message). Completing with [`IoStatus::NoMem`] hands the request
//! back to the layer, which queues it on the channel and submits it again after another
//! I/O of the channel completes; the submitter never sees `NoMem`.

use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

/// The kinds of I/O (SPDK's `spdk_bdev_io_type`, the ones this layer carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoType {
    /// Read blocks into the iovecs.
    Read,
    /// Write blocks from the iovecs.
    Write,
    /// Set blocks to zero (no data buffer).
    WriteZeroes,
    /// Deallocate blocks (no data buffer; reads after it return unspecified data unless
    /// the module says otherwise: malloc returns zeroes).
    Unmap,
    /// Make written data durable.
    Flush,
    /// Reset the device: queued I/O is aborted, then the module resets.
    Reset,
    /// Compare blocks with the iovecs; [`IoStatus::Miscompare`] if they differ.
    Compare,
    /// Compare blocks with the compare iovecs and, only if equal, write the iovecs, as
    /// one atomic step.
    CompareAndWrite,
}

impl IoType {
    /// All types, in SPDK's `supported_io_types` order.
    pub const ALL: [IoType; 8] = [
        IoType::Read,
        IoType::Write,
        IoType::Unmap,
        IoType::WriteZeroes,
        IoType::Flush,
        IoType::Reset,
        IoType::Compare,
        IoType::CompareAndWrite,
    ];

    /// Its place in [`IoType::ALL`] and in per-type tables.
    #[inline]
    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// Its bit in a set of types (see [`IoTypeSet`]).
    #[inline]
    pub(crate) const fn bit(self) -> u32 {
        1 << self as u32
    }

    /// SPDK's name in `bdev_get_bdevs` → `supported_io_types`.
    pub fn name(self) -> &'static str {
        match self {
            IoType::Read => "read",
            IoType::Write => "write",
            IoType::WriteZeroes => "write_zeroes",
            IoType::Unmap => "unmap",
            IoType::Flush => "flush",
            IoType::Reset => "reset",
            IoType::Compare => "compare",
            IoType::CompareAndWrite => "compare_and_write",
        }
    }

    /// Whether the request changes data (refused on read-only descriptors).
    pub fn writes(self) -> bool {
        matches!(
            self,
            IoType::Write
                | IoType::WriteZeroes
                | IoType::Unmap
                | IoType::CompareAndWrite
                | IoType::Reset
        )
    }

    /// Whether the request carries data buffers (and so may be split).
    pub fn has_data(self) -> bool {
        matches!(
            self,
            IoType::Read | IoType::Write | IoType::Compare | IoType::CompareAndWrite
        )
    }
}

/// A set of [`IoType`]s as one word (bit [`IoType::bit`] per type): what a descriptor
/// may submit is checked with one test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct IoTypeSet(pub(crate) u32);

impl IoTypeSet {
    /// The types for which `f` holds.
    pub(crate) fn from_fn(f: impl Fn(IoType) -> bool) -> IoTypeSet {
        IoTypeSet(IoType::ALL.iter().filter(|t| f(**t)).map(|t| t.bit()).sum())
    }

    /// Whether `t` is in the set.
    #[inline]
    pub(crate) fn contains(self, t: IoType) -> bool {
        self.0 & t.bit() != 0
    }
}

/// How an I/O ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoStatus {
    /// Done.
    Success,
    /// The module failed it.
    Failed,
    /// Compare (or compare-and-write) found different data.
    Miscompare,
    /// Aborted (by a reset).
    Aborted,
    /// Module-side only: out of resources, submit again later (SPDK's
    /// `SPDK_BDEV_IO_STATUS_NOMEM`). Never reported to a submitter.
    NoMem,
}

/// One scatter-gather element: `len` bytes at `base`, memory the submitter owns.
#[derive(Debug, Clone, Copy)]
pub struct IoVec {
    /// Start.
    pub base: *mut u8,
    /// Length in bytes.
    pub len: usize,
}

// SAFETY: an IoVec is an address and a length; the submit contract (`Descriptor::read`
// and friends are `unsafe`) makes the memory valid and untouched by the submitter until
// completion, and the I/O (with its iovecs) stays on the submitting framework thread.
unsafe impl Send for IoVec {}

impl IoVec {
    /// The iovec over a mutable slice (the borrow ends here: the submit contract takes
    /// over).
    pub fn from_slice(s: &mut [u8]) -> IoVec {
        IoVec {
            base: s.as_mut_ptr(),
            len: s.len(),
        }
    }
}

/// Total bytes of `iovs`.
pub fn iovs_len(iovs: &[IoVec]) -> usize {
    iovs.iter().map(|v| v.len).sum()
}

/// Append to `out` the sub-list of `iovs` covering bytes `[off, off + len)` (into a
/// recycled list: no allocation once its capacity suffices).
pub(crate) fn iovs_slice_into(
    out: &mut Vec<IoVec>,
    iovs: &[IoVec],
    mut off: usize,
    mut len: usize,
) {
    for v in iovs {
        if len == 0 {
            break;
        }
        if off >= v.len {
            off -= v.len;
            continue;
        }
        let take = (v.len - off).min(len);
        out.push(IoVec {
            base: v.base.wrapping_add(off),
            len: take,
        });
        off = 0;
        len -= take;
    }
}

/// Machine words a completion callback may take to be stored in place.
const CB_WORDS: usize = 6;

/// A completion callback (SPDK's `cb` and `cb_arg`), stored in the I/O object itself
/// when it fits in [`CB_WORDS`] words (a closure over a few handles and numbers), in a
/// box otherwise: the common submit allocates nothing for it.
pub(crate) struct Callback {
    data: MaybeUninit<[usize; CB_WORDS]>,
    /// Moves the closure out of `data` and calls it.
    call: unsafe fn(*mut u8, IoStatus),
    /// Drops the closure in `data` in place.
    drop: unsafe fn(*mut u8),
}

// SAFETY: `Callback::new` only takes `Send` closures; the stored one moves with it.
unsafe impl Send for Callback {}

/// Call the `G` at `p` once, moving it out. # Safety: `p` holds a live `G`, not used after.
unsafe fn call_in_place<G: FnOnce(IoStatus)>(p: *mut u8, s: IoStatus) {
    // SAFETY: the caller's contract: a live, aligned `G` that nobody reads again.
    let g = unsafe { p.cast::<G>().read() };
    g(s)
}

/// Drop the `G` at `p`. # Safety: `p` holds a live `G`, not used after.
unsafe fn drop_in_place<G>(p: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { p.cast::<G>().drop_in_place() }
}

impl Callback {
    /// Store `f` in place if it fits, else boxed.
    pub(crate) fn new<F: FnOnce(IoStatus) + Send + 'static>(f: F) -> Callback {
        if Self::fits::<F>() {
            Self::in_place(f)
        } else {
            Self::in_place(Box::new(f))
        }
    }

    const fn fits<G>() -> bool {
        size_of::<G>() <= size_of::<[usize; CB_WORDS]>() && align_of::<G>() <= align_of::<usize>()
    }

    fn in_place<G: FnOnce(IoStatus) + Send + 'static>(g: G) -> Callback {
        // Only reached with a `G` that fits (a constant per `G`: folded away).
        assert!(Self::fits::<G>(), "callback too large to store in place");
        let mut data = MaybeUninit::<[usize; CB_WORDS]>::uninit();
        // SAFETY: `data` is large and aligned enough for a `G` (asserted above).
        unsafe { data.as_mut_ptr().cast::<G>().write(g) };
        Callback {
            data,
            call: call_in_place::<G>,
            drop: drop_in_place::<G>,
        }
    }

    /// Run the callback.
    pub(crate) fn call(self, s: IoStatus) {
        let mut me = ManuallyDrop::new(self);
        // SAFETY: `data` holds the live closure `call` was made for; `me` is never
        // dropped, so the moved-out closure is not dropped again.
        unsafe { (me.call)(me.data.as_mut_ptr().cast(), s) }
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        // SAFETY: `data` holds the live closure `drop` was made for (a called
        // callback is never dropped: `call` consumes it without running this).
        unsafe { (self.drop)(self.data.as_mut_ptr().cast()) }
    }
}

/// The parent of split children.
pub(crate) struct SplitParent {
    pub(crate) io_type: IoType,
    pub(crate) blocks: u64,
    pub(crate) start_tsc: u64,
    /// (children left, first failure, the caller's callback)
    pub(crate) st: Mutex<(usize, IoStatus, Option<Callback>)>,
}

/// Who hears of a completion.
pub(crate) enum Notify {
    /// The submitter's callback.
    User(Callback),
    /// A split parent counting its children.
    Child(Arc<SplitParent>),
}

/// The body of an I/O (reused through the channel's free list).
pub(crate) struct IoInner {
    pub(crate) io_type: IoType,
    pub(crate) offset_blocks: u64,
    pub(crate) num_blocks: u64,
    pub(crate) block_size: u32,
    pub(crate) iovs: Vec<IoVec>,
    pub(crate) cmp_iovs: Vec<IoVec>,
    pub(crate) start_tsc: u64,
    /// The channel core the I/O belongs to, type-erased (only `done` reads it);
    /// `None` for a direct I/O. Not a counted reference: the channel counts its I/O
    /// objects in use and stays alive while any is (see [`crate::channel`]), and the
    /// pointer is only followed on the channel's own thread (checked).
    pub(crate) owner: Option<NonNull<()>>,
    pub(crate) notify: Option<Notify>,
}

// SAFETY: every field but `owner` is `Send`; `owner` is only dereferenced on the channel's
// thread after a check (`ChanCore::complete`), and the channel outlives the I/O.
unsafe impl Send for IoInner {}

impl IoInner {
    pub(crate) fn empty() -> Box<IoInner> {
        Box::new(IoInner {
            io_type: IoType::Read,
            offset_blocks: 0,
            num_blocks: 0,
            block_size: 0,
            iovs: Vec::new(),
            cmp_iovs: Vec::new(),
            start_tsc: 0,
            owner: None,
            notify: None,
        })
    }
}

/// Free objects the direct path keeps per thread.
const DIRECT_KEEP: usize = 1024;

/// A direct I/O (BdevIo::direct) completed: it has no channel; the object goes back
/// to the thread's direct free list, then the callback runs.
pub(crate) fn complete_direct(mut io: Box<IoInner>, status: IoStatus) {
    let notify = io.notify.take();
    io.iovs.clear();
    io.cmp_iovs.clear();
    DIRECT_FREE.with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < DIRECT_KEEP {
            f.push(io);
        }
    });
    if let Some(Notify::User(cb)) = notify {
        cb.call(status);
    }
}

thread_local! {
    /// Recycled objects of direct I/Os ([`BdevIo::direct`]), per OS thread (as the
    /// layer's per-channel free lists, so the two paths compare fairly).
    #[allow(clippy::vec_box)] // the boxes are handed out as they are
    static DIRECT_FREE: std::cell::RefCell<Vec<Box<IoInner>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// An I/O handed to a module. Complete it exactly once with [`BdevIo::complete`], on
/// the thread it was submitted on; dropping it uncompleted fails it (a module bug, but
/// the submitter still hears of it). Its completion is implemented with the channel
/// it goes back to ([`crate::channel`]), which this module does not name.
pub struct BdevIo(pub(crate) Option<Box<IoInner>>);

impl BdevIo {
    fn inner(&self) -> &IoInner {
        // Present from construction until `complete` or drop consumes it.
        self.0.as_deref().expect("bdev I/O used after completion")
    }

    /// An I/O outside any bdev channel, to drive a module's channel
    /// ([`crate::BdevModule::create_channel`]) directly: no checks, splitting, queueing
    /// or statistics; `cb` gets the module's status as is (including
    /// [`IoStatus::NoMem`]). For module tests and the layer-cost benchmark. Its object
    /// comes from a per-thread free list, as the layer's come from the channel's.
    ///
    /// # Safety
    /// The iovecs must stay valid (and untouched by the caller) until `cb` runs, and the
    /// request must lie within the bdev the module channel serves.
    pub unsafe fn direct<F: FnOnce(IoStatus) + Send + 'static>(
        io_type: IoType,
        offset_blocks: u64,
        num_blocks: u64,
        block_size: u32,
        iovs: &[IoVec],
        cb: F,
    ) -> BdevIo {
        let mut inner = DIRECT_FREE
            .with(|f| f.borrow_mut().pop())
            .unwrap_or_else(IoInner::empty);
        inner.io_type = io_type;
        inner.offset_blocks = offset_blocks;
        inner.num_blocks = num_blocks;
        inner.block_size = block_size;
        inner.iovs.extend_from_slice(iovs);
        // Not timed: no statistics are kept for a direct I/O.
        inner.start_tsc = 0;
        inner.notify = Some(Notify::User(Callback::new(cb)));
        BdevIo(Some(inner))
    }

    /// The kind of request.
    pub fn io_type(&self) -> IoType {
        self.inner().io_type
    }

    /// First block.
    pub fn offset_blocks(&self) -> u64 {
        self.inner().offset_blocks
    }

    /// Number of blocks.
    pub fn num_blocks(&self) -> u64 {
        self.inner().num_blocks
    }

    /// The bdev's block size.
    pub fn block_size(&self) -> u32 {
        self.inner().block_size
    }

    /// Bytes the request covers.
    pub fn len_bytes(&self) -> usize {
        (self.inner().num_blocks * u64::from(self.inner().block_size)) as usize
    }

    /// The data iovecs (read: destination; write and compare: source).
    pub fn iovs(&self) -> &[IoVec] {
        &self.inner().iovs
    }

    /// Compare-and-write only: the data to compare against.
    pub fn compare_iovs(&self) -> &[IoVec] {
        &self.inner().cmp_iovs
    }

    /// Copy the request's data (write, compare) into `dst` (at most its length).
    pub fn copy_out(&self, dst: &mut [u8]) {
        copy_from_iovs(&self.inner().iovs, dst);
    }

    /// Copy the compare data of a compare-and-write into `dst`.
    pub fn copy_out_compare(&self, dst: &mut [u8]) {
        copy_from_iovs(&self.inner().cmp_iovs, dst);
    }

    /// Fill the request's buffers (read) from `src` (at most the buffers' length).
    pub fn copy_in(&self, src: &[u8]) {
        let mut done = 0;
        for v in &self.inner().iovs {
            if done >= src.len() {
                break;
            }
            let n = v.len.min(src.len() - done);
            // SAFETY: the submitter promised (Descriptor::read's contract) that the
            // iovecs are valid for writes and not otherwise accessed until this I/O
            // completes; it has not completed while `self` exists.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr().add(done), v.base, n) };
            done += n;
        }
    }

    /// Zero the request's buffers (a read of unmapped or null blocks).
    pub fn zero_buffers(&self) {
        for v in &self.inner().iovs {
            // SAFETY: as in `copy_in`.
            unsafe { std::ptr::write_bytes(v.base, 0, v.len) };
        }
    }
}

fn copy_from_iovs(iovs: &[IoVec], dst: &mut [u8]) {
    let mut done = 0;
    for v in iovs {
        if done >= dst.len() {
            break;
        }
        let n = v.len.min(dst.len() - done);
        // SAFETY: the submitter promised the iovecs are valid for reads until the I/O
        // completes, and it has not completed (the caller holds the BdevIo).
        unsafe { std::ptr::copy_nonoverlapping(v.base, dst.as_mut_ptr().add(done), n) };
        done += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_crosses_iovecs() {
        let mut a = [0u8; 10];
        let mut b = [0u8; 6];
        let iovs = [IoVec::from_slice(&mut a), IoVec::from_slice(&mut b)];
        let slice = |off, len| {
            let mut v = Vec::new();
            iovs_slice_into(&mut v, &iovs, off, len);
            v
        };
        let s = slice(8, 5);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].len, 2);
        assert_eq!(s[0].base, iovs[0].base.wrapping_add(8));
        assert_eq!(s[1].len, 3);
        assert_eq!(s[1].base, iovs[1].base);
        assert_eq!(iovs_len(&slice(0, 16)), 16);
        assert!(slice(16, 0).is_empty());
    }

    #[test]
    fn callbacks_run_once_in_place_or_boxed() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static RAN: AtomicUsize = AtomicUsize::new(0);
        let small = Arc::new(5u64);
        let s2 = small.clone();
        Callback::new(move |st| {
            assert_eq!(st, IoStatus::Success);
            RAN.fetch_add(*s2 as usize, Ordering::Relaxed);
        })
        .call(IoStatus::Success);
        let big = [7u64; 16];
        let b2 = small.clone();
        let cb = Callback::new(move |st| {
            assert_eq!(st, IoStatus::Failed);
            let _keep = &b2;
            RAN.fetch_add(big.iter().sum::<u64>() as usize, Ordering::Relaxed);
        });
        assert!(!Callback::fits::<[u64; 16]>());
        cb.call(IoStatus::Failed);
        assert_eq!(RAN.load(Ordering::Relaxed), 5 + 7 * 16);
        // Dropped uncalled: the captures are released (the Arc count drops back).
        let b3 = small.clone();
        drop(Callback::new(move |_| drop(b3)));
        assert_eq!(Arc::strong_count(&small), 1);
    }
}
