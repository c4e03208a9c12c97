//! One job: one bdev driven from one framework thread (pinned to one core) at a fixed
//! depth until the deadline, every completion timed.
//!
//! Each of the `-q` tasks owns its buffers and cycles: pick an operation and offset,
//! submit, and on completion account the latency and go again, until the run time is
//! over or (without `-f`) an I/O failed; the job ends when its last task is back.
//! `verify` (and `reset`) tasks write a pattern that depends on the offset and on a
//! per-task generation, read the blocks back into a second buffer and compare; a
//! mismatch is recorded with its byte offset and ends the job (as SPDK's bdevperf
//! drains a job on a miscompare). Verify offsets are sequential, so no two tasks ever
//! have the same blocks in flight.
//!
//! The job's state is shared by its callbacks through a single-threaded reference
//! ([`JobRef`]: callbacks run on the submitting thread, so no atomic count or lock per
//! I/O); the layer's modules never complete inside a submit call, so the state borrowed
//! across a submission is never borrowed twice.

use std::alloc::Layout;
use std::cell::{RefCell, RefMut};
use std::rc::Rc;
use std::sync::Arc;

use bdev::{BdevIoChannel, Descriptor, IoStatus, IoType, IoVec};
use framework::{poller, thread, Poller};

use crate::args::{PerfOpts, Workload};

/// A verify miscompare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// First block of the I/O.
    pub offset_blocks: u64,
    /// Byte offset in the bdev of the first differing byte.
    pub byte: u64,
    /// What was written there.
    pub expected: u8,
    /// What was read back.
    pub got: u8,
}

/// What a job did.
#[derive(Debug, Clone, Default)]
pub struct JobResult {
    /// The bdev.
    pub bdev: String,
    /// The core.
    pub core: u32,
    /// Seconds from the first submission to the last completion.
    pub runtime_s: f64,
    /// Completed I/Os (successful or not).
    pub ios: u64,
    /// Failed I/Os.
    pub failed: u64,
    /// Bytes moved by successful I/Os.
    pub bytes: u64,
    /// Latency sum, minimum and maximum in microseconds.
    pub lat_sum_us: f64,
    /// Smallest latency.
    pub lat_min_us: f64,
    /// Largest latency.
    pub lat_max_us: f64,
    /// Verify miscompares (the first ends the job).
    pub mismatches: Vec<Mismatch>,
    /// Why the job could not run or stopped early.
    pub error: Option<String>,
}

impl JobResult {
    /// I/Os per second.
    pub fn iops(&self) -> f64 {
        if self.runtime_s > 0.0 {
            self.ios as f64 / self.runtime_s
        } else {
            0.0
        }
    }

    /// Average latency in microseconds.
    pub fn avg_us(&self) -> f64 {
        if self.ios > 0 {
            self.lat_sum_us / self.ios as f64
        } else {
            0.0
        }
    }
}

/// A 4 KiB-aligned buffer.
struct Buf {
    ptr: *mut u8,
    layout: Layout,
}

impl Buf {
    fn new(len: usize) -> Buf {
        let layout = Layout::from_size_align(len.max(1), 4096).expect("I/O size fits a layout");
        // SAFETY: non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Buf { ptr, layout }
    }

    /// # Safety
    /// No I/O may be using the buffer.
    unsafe fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: our live block; the caller guarantees no device or module writes it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }

    fn iov(&self) -> IoVec {
        IoVec {
            base: self.ptr,
            len: self.layout.size(),
        }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the job drops its buffers only
        // after every task came back.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

struct Task {
    data: Buf,
    check: Buf,
    gen: u64,
}

/// The pattern word `w` of a verify write at `off` (splitmix64 of the three).
fn pattern_word(off: u64, gen: u64, w: u64) -> u64 {
    let mut z = off
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(gen << 32)
        .wrapping_add(w)
        .wrapping_add(0x6A09_E667_F3BC_C909);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fill `buf` with the pattern of (`off`, `gen`).
pub fn fill_pattern(buf: &mut [u8], off: u64, gen: u64) {
    for (w, chunk) in buf.chunks_mut(8).enumerate() {
        let v = pattern_word(off, gen, w as u64).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// The first differing byte of `got` against `want`, as (index, want, got).
pub fn first_mismatch(want: &[u8], got: &[u8]) -> Option<(usize, u8, u8)> {
    if want == got {
        return None;
    }
    let i = want.iter().zip(got).position(|(a, b)| a != b)?;
    Some((i, want[i], got[i]))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Read,
    Write,
    VerifyWrite,
    VerifyRead,
    Unmap,
    Flush,
    WriteZeroes,
}

struct Job {
    desc: Option<Descriptor>,
    ch: Option<BdevIoChannel>,
    opts: Arc<PerfOpts>,
    block_size: u64,
    io_blocks: u64,
    /// Offsets go up to here (a whole number of I/Os).
    range_blocks: u64,
    next_off: u64,
    rng: u64,
    hz: f64,
    start_tsc: u64,
    end_tsc: u64,
    last_tsc: u64,
    inflight: usize,
    stopping: bool,
    lat_min: u64,
    lat_max: u64,
    lat_sum: u128,
    tasks: Vec<Task>,
    res: JobResult,
    reset_poller: Option<Poller>,
    done: Option<Box<dyn FnOnce(JobResult) + Send>>,
}

// SAFETY: a job is used only on its own framework thread; the raw buffer pointers are
// its own allocations.
unsafe impl Send for Job {}

/// The job's state as its callbacks hold it.
#[derive(Clone)]
struct JobRef(Rc<RefCell<Job>>);

// SAFETY: every clone is made and dropped on the job's framework thread (its callbacks,
// poller and messages run there), whose code never runs on two OS threads at once; a
// move of the thread between reactors hands all of it over through the framework's
// release/acquire handover.
unsafe impl Send for JobRef {}

fn lock(j: &JobRef) -> RefMut<'_, Job> {
    j.0.borrow_mut()
}

impl Job {
    fn rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn next_offset(&mut self) -> u64 {
        let slots = self.range_blocks / self.io_blocks;
        if self.opts.workload.random() {
            (self.rand() % slots) * self.io_blocks
        } else {
            let o = self.next_off;
            self.next_off = (self.next_off + self.io_blocks) % (slots * self.io_blocks);
            o
        }
    }

    fn next_op(&mut self) -> Op {
        match self.opts.workload {
            Workload::Read | Workload::RandRead => Op::Read,
            Workload::Write | Workload::RandWrite => Op::Write,
            Workload::Rw | Workload::RandRw => {
                if (self.rand() % 100) < u64::from(self.opts.rw_read_pct) {
                    Op::Read
                } else {
                    Op::Write
                }
            }
            Workload::Verify | Workload::Reset => Op::VerifyWrite,
            Workload::Unmap => Op::Unmap,
            Workload::Flush => Op::Flush,
            Workload::WriteZeroes => Op::WriteZeroes,
        }
    }

    /// Submit task `t`'s `op` at `off`, timed from `start` (a TSC read just before);
    /// false if the layer refused it.
    fn submit(&mut self, me: &JobRef, t: usize, op: Op, off: u64, start: u64) -> bool {
        let (Some(d), Some(ch)) = (self.desc.as_ref(), self.ch.as_ref()) else {
            return false;
        };
        let j = me.clone();
        let cb = move |st: IoStatus| complete(&j, t, op, off, start, st);
        let n = self.io_blocks;
        let task = &self.tasks[t];
        let r = match op {
            // SAFETY: the task's buffers are its own and untouched until this callback
            // runs (a task has one I/O out at a time); they are freed only after every
            // task came back.
            Op::Read => unsafe { d.readv(ch, &[task.data.iov()], off, n, cb) },
            // SAFETY: as above.
            Op::VerifyRead => unsafe { d.readv(ch, &[task.check.iov()], off, n, cb) },
            // SAFETY: as above.
            Op::Write | Op::VerifyWrite => unsafe { d.writev(ch, &[task.data.iov()], off, n, cb) },
            Op::Unmap => d.unmap(ch, off, n, cb),
            Op::Flush => d.flush(ch, off, n, cb),
            Op::WriteZeroes => d.write_zeroes(ch, off, n, cb),
        };
        match r {
            Ok(()) => true,
            Err(e) => {
                self.fail(format!("submit failed: {e}"));
                false
            }
        }
    }

    fn fail(&mut self, why: String) {
        if self.res.error.is_none() {
            self.res.error = Some(why);
        }
        if !self.opts.continue_on_failure {
            self.stopping = true;
        }
    }

    /// Start task `t`'s next I/O; false if the job is ending.
    fn go(&mut self, me: &JobRef, t: usize, now: u64) -> bool {
        if self.stopping || now >= self.end_tsc {
            return false;
        }
        let op = self.next_op();
        let off = self.next_offset();
        // The completion's TSC read times the next submission too (a TSC read costs
        // tens of nanoseconds in a VM), unless filling a pattern comes in between.
        let mut start = now;
        if op == Op::VerifyWrite {
            let task = &mut self.tasks[t];
            task.gen += 1;
            let gen = task.gen * 1024 + t as u64;
            // SAFETY: the task has no I/O out (it is between two).
            fill_pattern(unsafe { task.data.bytes() }, off, gen);
            start = eal::timer::rdtsc();
        }
        self.submit(me, t, op, off, start)
    }
}

fn complete(j: &JobRef, t: usize, op: Op, off: u64, start: u64, st: IoStatus) {
    let now = eal::timer::rdtsc();
    let mut g = lock(j);
    let lat = now.wrapping_sub(start);
    g.last_tsc = now;
    g.res.ios += 1;
    g.lat_sum += u128::from(lat);
    g.lat_min = g.lat_min.min(lat);
    g.lat_max = g.lat_max.max(lat);
    if st == IoStatus::Success {
        if matches!(op, Op::Read | Op::Write | Op::VerifyRead | Op::VerifyWrite) {
            g.res.bytes += g.io_blocks * g.block_size;
        }
    } else {
        g.res.failed += 1;
        let bdev = g.res.bdev.clone();
        g.fail(format!("{op:?} at block {off} of {bdev} failed: {st:?}"));
    }
    let again;
    if op == Op::VerifyWrite && st == IoStatus::Success && !g.stopping {
        // Read back at once, whatever the clock says: the write is checked.
        let task = &mut g.tasks[t];
        // SAFETY: the task has no I/O out; fill the read buffer with the complement of
        // what is expected so a read that moves no data cannot pass.
        let (want, check) = unsafe { (task.data.bytes(), task.check.bytes()) };
        for (c, w) in check.iter_mut().zip(want.iter()) {
            *c = !*w;
        }
        again = g.submit(j, t, Op::VerifyRead, off, eal::timer::rdtsc());
    } else {
        if op == Op::VerifyRead && st == IoStatus::Success {
            let bs = g.block_size;
            let task = &mut g.tasks[t];
            // SAFETY: the read completed; no I/O uses the task's buffers.
            let (want, got) = unsafe { (task.data.bytes(), task.check.bytes()) };
            if let Some((i, e, r)) = first_mismatch(want, got) {
                let m = Mismatch {
                    offset_blocks: off,
                    byte: off * bs + i as u64,
                    expected: e,
                    got: r,
                };
                let bdev = g.res.bdev.clone();
                g.res.failed += 1;
                g.res.mismatches.push(m.clone());
                // A miscompare always ends the job.
                g.stopping = true;
                if g.res.error.is_none() {
                    g.res.error = Some(format!(
                        "verify mismatch on {bdev}: block {} byte offset {:#x}: wrote {:#04x}, read {:#04x}",
                        m.offset_blocks, m.byte, m.expected, m.got
                    ));
                }
            }
        }
        again = g.go(j, t, now);
    }
    if !again {
        g.inflight -= 1;
        if g.inflight == 0 {
            finish(g);
        }
    }
}

/// Every task is back: release the bdev, report, end the thread.
fn finish(mut g: RefMut<'_, Job>) {
    if let Some(p) = g.reset_poller.take() {
        let _ = p.unregister();
    }
    let end = if g.last_tsc > g.start_tsc {
        g.last_tsc
    } else {
        eal::timer::rdtsc()
    };
    let hz = g.hz;
    let ticks_us = |t: u64| t as f64 * 1e6 / hz;
    g.res.runtime_s = end.wrapping_sub(g.start_tsc) as f64 / hz;
    g.res.lat_sum_us = g.lat_sum as f64 * 1e6 / hz;
    if g.res.ios > 0 {
        g.res.lat_min_us = ticks_us(g.lat_min);
        g.res.lat_max_us = ticks_us(g.lat_max);
    }
    g.ch = None;
    g.desc = None;
    let res = std::mem::take(&mut g.res);
    let done = g.done.take();
    drop(g);
    if let Some(d) = done {
        d(res);
    }
    let _ = thread::exit();
}

/// Run a job on the current framework thread; `done` gets its result (on this thread).
pub fn run(
    bdev_name: &str,
    core: u32,
    opts: Arc<PerfOpts>,
    done: Box<dyn FnOnce(JobResult) + Send>,
) {
    let mut res = JobResult {
        bdev: bdev_name.to_string(),
        core,
        lat_min_us: 0.0,
        ..Default::default()
    };
    let fail = |mut res: JobResult, why: String, done: Box<dyn FnOnce(JobResult) + Send>| {
        res.error = Some(why);
        done(res);
        let _ = thread::exit();
    };
    let w = opts.workload;
    let writes = !matches!(w, Workload::Read | Workload::RandRead | Workload::Flush);
    let desc = match bdev::open(bdev_name, writes, |_| {}) {
        Ok(d) => d,
        Err(e) => return fail(res, format!("cannot open: {e}"), done),
    };
    let b = desc.bdev().clone();
    let bs = u64::from(b.info().block_size);
    if !opts.io_size.is_multiple_of(bs) {
        return fail(
            res,
            format!(
                "I/O size {} is not a multiple of the block size {bs}",
                opts.io_size
            ),
            done,
        );
    }
    let io_blocks = opts.io_size / bs;
    let num = b.info().num_blocks;
    let range = num - num % io_blocks;
    if range == 0 {
        return fail(
            res,
            format!("I/O size {} is larger than the bdev", opts.io_size),
            done,
        );
    }
    if w.verifies() && opts.depth as u64 * io_blocks > range {
        return fail(
            res,
            format!(
                "verify needs -q x -o ({} blocks) within the bdev ({range} blocks)",
                opts.depth as u64 * io_blocks
            ),
            done,
        );
    }
    let needed: &[IoType] = match w {
        Workload::Read | Workload::RandRead => &[IoType::Read],
        Workload::Write | Workload::RandWrite => &[IoType::Write],
        Workload::Rw | Workload::RandRw | Workload::Verify => &[IoType::Read, IoType::Write],
        Workload::Reset => &[IoType::Read, IoType::Write, IoType::Reset],
        Workload::Unmap => &[IoType::Unmap],
        Workload::Flush => &[IoType::Flush],
        Workload::WriteZeroes => &[IoType::WriteZeroes],
    };
    if let Some(t) = needed.iter().find(|t| !b.io_type_supported(**t)) {
        return fail(
            res,
            format!(
                "the {} bdev does not support {}",
                b.module().module_name(),
                t.name()
            ),
            done,
        );
    }
    let ch = match desc.get_io_channel() {
        Ok(c) => c,
        Err(e) => return fail(res, format!("cannot get an I/O channel: {e}"), done),
    };
    let len = opts.io_size as usize;
    let tasks = (0..opts.depth)
        .map(|_| Task {
            data: Buf::new(len),
            check: Buf::new(if w.verifies() { len } else { 1 }),
            gen: 0,
        })
        .collect();
    res.lat_min_us = 0.0;
    let hz = eal::timer::tsc_hz() as f64;
    let start = eal::timer::rdtsc();
    let job = JobRef(Rc::new(RefCell::new(Job {
        desc: Some(desc),
        ch: Some(ch),
        opts: opts.clone(),
        block_size: bs,
        io_blocks,
        range_blocks: range,
        next_off: 0,
        rng: 0x853C_49E6_748F_EA9B ^ (u64::from(core) << 32) ^ start,
        hz,
        start_tsc: start,
        end_tsc: start + (opts.seconds * hz) as u64,
        last_tsc: start,
        inflight: opts.depth,
        stopping: false,
        lat_min: u64::MAX,
        lat_max: 0,
        lat_sum: 0,
        tasks,
        res,
        reset_poller: None,
        done: Some(done),
    })));
    if w == Workload::Reset {
        let j2 = job.clone();
        let p = poller::register("bdevperf_reset", 1_000_000, move || {
            let g = lock(&j2);
            if let (Some(d), Some(ch)) = (g.desc.as_ref(), g.ch.as_ref()) {
                let j3 = j2.clone();
                let r = d.reset(ch, move |st| {
                    if st != IoStatus::Success {
                        lock(&j3).fail(format!("reset failed: {st:?}"));
                    }
                });
                if let Err(e) = r {
                    eal::log_err!("bdevperf: reset not submitted: {e}");
                }
            }
            framework::PollStatus::Busy
        });
        match p {
            Ok(p) => lock(&job).reset_poller = Some(p),
            Err(e) => eal::log_err!("bdevperf: no reset poller: {e}"),
        }
    }
    let mut g = lock(&job);
    let mut back = 0;
    for t in 0..opts.depth {
        if !g.go(&job, t, eal::timer::rdtsc()) {
            back += 1;
        }
    }
    g.inflight -= back;
    if g.inflight == 0 {
        finish(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_depends_on_offset_and_generation() {
        let mut a = vec![0u8; 4096];
        let mut b = vec![0u8; 4096];
        fill_pattern(&mut a, 8, 1);
        fill_pattern(&mut b, 8, 1);
        assert_eq!(a, b);
        assert_eq!(first_mismatch(&a, &b), None);
        fill_pattern(&mut b, 16, 1);
        assert!(first_mismatch(&a, &b).is_some());
        fill_pattern(&mut b, 8, 2);
        assert!(first_mismatch(&a, &b).is_some());
        let mut c = a.clone();
        c[1234] ^= 0x40;
        assert_eq!(
            first_mismatch(&a, &c),
            Some((1234, a[1234], a[1234] ^ 0x40))
        );
    }
}
