//! The queue against a fake device in plain memory: phases, doorbells, splitting, PRP
//! pages, failures, timeouts.

use super::*;
use crate::spec::io_opc;
use eal::VirtAddr;
use std::sync::Mutex;

/// Identity mapper over plain memory.
pub(crate) struct Identity;
impl IovaMapper for Identity {
    fn iova(&self, va: VirtAddr) -> Option<Iova> {
        Some(Iova(va.0))
    }
}

/// A queue in plain memory with a fake BAR (doorbells are plain memory words).
pub(crate) struct Fake {
    pub q: QueueCore,
    pub sq: *mut Sqe,
    pub cq: *mut Cqe,
    pub pages: *mut u8,
    pub bar: Box<[u32; 2048]>,
    pub dev_sq_head: u16,
    pub dev_cq_tail: u16,
    pub dev_phase: bool,
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

pub(crate) fn fake(entries: u16) -> Fake {
    let n = entries as usize;
    let sq: Vec<Sqe> = vec![Sqe::default(); n];
    let cq: Vec<Cqe> = vec![Cqe::default(); n];
    let pages: Vec<Page> = (0..n - 1).map(|_| Page([0; 4096])).collect();
    let mut sq = sq.into_boxed_slice();
    let mut cq = cq.into_boxed_slice();
    let mut pages = pages.into_boxed_slice();
    let sqp = sq.as_mut_ptr();
    let cqp = cq.as_mut_ptr();
    let pp = pages.as_mut_ptr().cast::<u8>();
    let page_iovas = (0..n - 1)
        .map(|i| Iova(pp as u64 + i as u64 * 4096))
        .collect();
    let mem = QueueMem {
        sq: sqp,
        sq_iova: Iova(sqp as u64),
        cq: cqp,
        cq_iova: Iova(cqp as u64),
        pages: pp,
        page_iovas,
        entries,
        owner: Box::new((sq, cq, pages)),
    };
    let mut bar = Box::new([0u32; 2048]);
    // SAFETY: the boxed array outlives the region (both live in `Fake`, the queue is
    // dropped first as it is declared first).
    let region =
        unsafe { MmioRegion::from_raw(VirtAddr::from_ptr(bar.as_mut_ptr()), 8192, "fake BAR") };
    let q = QueueCore::new(1, mem, &region, 0x1008, 0x100c, Arc::new(Identity)).unwrap();
    Fake {
        q,
        sq: sqp,
        cq: cqp,
        pages: pp,
        bar,
        dev_sq_head: 0,
        dev_cq_tail: 0,
        dev_phase: true,
    }
}

impl Fake {
    pub fn sq_doorbell(&self) -> u32 {
        // SAFETY: plain memory written volatilely by the queue.
        unsafe { std::ptr::read_volatile(&self.bar[0x1008 / 4]) }
    }
    pub fn cq_doorbell(&self) -> u32 {
        // SAFETY: as above.
        unsafe { std::ptr::read_volatile(&self.bar[0x100c / 4]) }
    }
    /// The fake device: fetch every doorbelled SQE.
    pub fn fetch(&mut self) -> Vec<Sqe> {
        let tail = self.sq_doorbell() as u16;
        let mut out = Vec::new();
        while self.dev_sq_head != tail {
            // SAFETY: in range of the SQ ring.
            out.push(unsafe { std::ptr::read_volatile(self.sq.add(self.dev_sq_head as usize)) });
            self.dev_sq_head = (self.dev_sq_head + 1) % self.q.entries();
        }
        out
    }
    /// The fake device: post a completion.
    pub fn post(&mut self, cid: u16, status: Status, dw0: u32) {
        let cqe = Cqe {
            dw0,
            dw1: 0,
            sqhd: self.dev_sq_head,
            sqid: 1,
            cid,
            status: (status.0 << 1) | self.dev_phase as u16,
        };
        // SAFETY: in range of the CQ ring.
        unsafe { std::ptr::write_volatile(self.cq.add(self.dev_cq_tail as usize), cqe) };
        self.dev_cq_tail += 1;
        if self.dev_cq_tail == self.q.entries() {
            self.dev_cq_tail = 0;
            self.dev_phase = !self.dev_phase;
        }
    }
}

type Log = Arc<Mutex<Vec<(u64, std::result::Result<Completion, String>)>>>;

/// The first 4 KiB-aligned address inside `buf` (leave a page of slack for it).
fn page_aligned(buf: &mut [u8]) -> u64 {
    (buf.as_mut_ptr() as u64 + 4095) & !4095
}

fn cb(log: &Log, tag: u64) -> DoneInner {
    let l = log.clone();
    DoneInner::User(Done::callback(move |r| {
        l.lock().unwrap().push((tag, r.map_err(|e| e.to_string())))
    }))
}

fn read_cmd(slba: u64, nlb: u64, max: u64, va: u64) -> Cmds<'static> {
    Cmds::Blocks {
        sqe: Sqe::new(io_opc::READ, 0, 1),
        slba,
        nlb,
        bs: 512,
        max_nlb: max,
        data: Some(VirtAddr(va)),
    }
}

#[test]
fn phase_wraps_and_doorbells_batch() {
    // A 4-entry queue: 3 commands at most.
    let (mut f, log, mut buf) = (fake(4), Log::default(), vec![0u8; 4096 * 4]);
    let va = page_aligned(&mut buf);
    let mut none = |_: u64, _: Result<Completion>| {};
    // Several rounds so the CQ wraps (and the phase flips) more than once.
    let mut tag = 0;
    for round in 0..5 {
        for _ in 0..3 {
            f.q.submit(&read_cmd(tag, 1, 8, va), cb(&log, tag), None, 0)
                .map_err(|e| e.0)
                .unwrap();
            tag += 1;
        }
        // Not visible before the flush.
        let before = f.sq_doorbell();
        assert_eq!(f.fetch().len(), 0);
        f.q.flush();
        assert_ne!(f.sq_doorbell(), before, "round {round}");
        let cmds = f.fetch();
        assert_eq!(cmds.len(), 3);
        // Queue full: all 3 slots busy.
        let e =
            f.q.submit(&read_cmd(0, 1, 8, va), cb(&log, 99), None, 0)
                .map_err(|e| e.0)
                .unwrap_err();
        assert!(matches!(e, Error::QueueFull { depth: 3 }), "{e}");
        for c in &cmds {
            assert_eq!(c.opcode(), io_opc::READ);
            f.post(c.cid(), Status::SUCCESS, 7);
        }
        // Process only 2 first: the doorbell moves once, to the 2nd entry.
        assert_eq!(f.q.process(2, &mut none), 2);
        let h = f.cq_doorbell();
        assert_eq!(f.q.process(16, &mut none), 1);
        assert_eq!(f.cq_doorbell(), (h + 1) % 4);
        assert_eq!(f.q.process(16, &mut none), 0);
        assert_eq!(f.q.outstanding_cmds(), 0);
    }
    let l = log.lock().unwrap();
    assert_eq!(l.len(), 15);
    for (i, (t, r)) in l.iter().enumerate() {
        assert_eq!(*t, i as u64);
        assert_eq!(r.as_ref().unwrap().cdw0, 7);
    }
}

#[test]
fn stale_phase_entries_are_not_consumed() {
    let mut f = fake(8);
    let mut none = |_: u64, _: Result<Completion>| {};
    // An entry with the wrong phase (as left by a previous lap) is not a completion.
    // SAFETY: slot 0 of the CQ.
    unsafe {
        std::ptr::write_volatile(
            f.cq,
            Cqe {
                cid: 0,
                status: 0,
                ..Default::default()
            },
        )
    };
    assert_eq!(f.q.process(8, &mut none), 0);
    // A completion for a command id nobody submitted is ignored, not a crash.
    f.post(5, Status::SUCCESS, 0);
    assert_eq!(f.q.process(8, &mut none), 1);
    assert_eq!(f.q.outstanding_cmds(), 0);
}

#[test]
fn mdts_split_fires_once_with_first_error() {
    let (mut f, log, mut buf) = (fake(16), Log::default(), vec![0u8; 64 * 1024 + 8192]);
    let va = page_aligned(&mut buf);
    // 100 blocks of 512 B, at most 16 blocks (8 KiB) per command: 7 commands.
    f.q.submit(&read_cmd(1000, 100, 16, va), cb(&log, 1), None, 0)
        .map_err(|e| e.0)
        .unwrap();
    f.q.flush();
    let cmds = f.fetch();
    assert_eq!(cmds.len(), 7);
    let mut lba = 1000u64;
    for (i, c) in cmds.iter().enumerate() {
        let slba = c.cdw10 as u64 | ((c.cdw11 as u64) << 32);
        let nlb = (c.cdw12 & 0xffff) + 1;
        assert_eq!(slba, lba);
        assert_eq!(nlb, if i < 6 { 16 } else { 4 });
        assert_eq!(c.prp1, va + (lba - 1000) * 512);
        if nlb == 16 {
            assert_eq!(c.prp2, c.prp1 + 4096, "two pages, PRP2 = second page");
        } else {
            assert_eq!(c.prp2, 0);
        }
        lba += nlb as u64;
    }
    let mut none = |_: u64, _: Result<Completion>| {};
    // Complete out of order, one with LBA out of range.
    for (i, c) in cmds.iter().enumerate().rev() {
        let st = if i == 3 {
            Status::new(0, 0x80)
        } else {
            Status::SUCCESS
        };
        f.post(c.cid(), st, 0);
        f.q.process(1, &mut none);
        assert_eq!(
            log.lock().unwrap().len(),
            usize::from(i == 0),
            "callback only after the last"
        );
    }
    let l = log.lock().unwrap();
    assert!(
        l[0].1.as_ref().unwrap_err().contains("LBA out of range"),
        "{:?}",
        l[0]
    );
}

#[test]
fn prp_list_goes_to_the_tracker_page() {
    let (mut f, log, mut buf) = (fake(4), Log::default(), vec![0u8; 5 * 4096]);
    let va = page_aligned(&mut buf);
    // 16 KiB read: PRP1 + list of 3.
    f.q.submit(&read_cmd(0, 32, 1024, va), cb(&log, 1), None, 0)
        .map_err(|e| e.0)
        .unwrap();
    f.q.flush();
    let c = f.fetch()[0];
    assert_eq!(c.prp1, va);
    let page = f.pages as u64 + c.cid() as u64 * 4096;
    assert_eq!(c.prp2, page);
    for i in 0..3u64 {
        // SAFETY: the tracker page is plain memory.
        let e = unsafe { std::ptr::read_volatile((page as *const u64).add(i as usize)) };
        assert_eq!(e, va + (i + 1) * 4096);
    }
}

#[test]
fn failed_submit_queues_nothing_and_fail_all_completes_everything() {
    let (mut f, log, mut buf) = (fake(8), Log::default(), vec![0u8; 8192]);
    let va = page_aligned(&mut buf);
    // Misaligned buffer: refused, nothing queued.
    let e =
        f.q.submit(&read_cmd(0, 1, 8, va + 2), cb(&log, 1), None, 0)
            .map_err(|e| e.0)
            .unwrap_err();
    assert!(matches!(e, Error::BadBuffer { .. }));
    f.q.flush();
    assert_eq!(f.fetch().len(), 0);
    assert_eq!(f.q.outstanding_cmds(), 0);
    for t in 0..3 {
        f.q.submit(&read_cmd(t, 1, 8, va), cb(&log, t), None, 0)
            .map_err(|e| e.0)
            .unwrap();
    }
    let mut none = |_: u64, _: Result<Completion>| {};
    assert_eq!(f.q.fail_all(&Error::Reset, &mut none), 3);
    f.q.reinit();
    assert_eq!(f.q.outstanding_cmds(), 0);
    let l = log.lock().unwrap();
    assert_eq!(l.len(), 3);
    assert!(l
        .iter()
        .all(|(_, r)| r.as_ref().unwrap_err().contains("reset")));
}

#[test]
fn timeouts_are_found_and_reported() {
    let (mut f, log, mut buf) = (fake(8), Log::default(), vec![0u8; 8192]);
    let va = page_aligned(&mut buf);
    f.q.timeout_ms = 5;
    f.q.submit(&read_cmd(0, 1, 8, va), cb(&log, 1), None, 100)
        .map_err(|e| e.0)
        .unwrap();
    f.q.submit(&read_cmd(1, 1, 8, va), cb(&log, 2), None, 500)
        .map_err(|e| e.0)
        .unwrap();
    assert!(f.q.expired(150, 100).is_empty());
    let ex = f.q.expired(250, 100);
    assert_eq!(ex.len(), 1);
    assert!(!ex[0].1);
    f.q.mark_abort_sent(ex[0].0, 250);
    assert!(f.q.expired(300, 100).is_empty());
    assert_eq!(f.q.expired(700, 100).len(), 2);
    f.q.flush();
    f.fetch();
    // The aborted command completes with "abort requested": reported as a timeout.
    f.post(ex[0].0, Status::new(0, 0x07), 0);
    let mut none = |_: u64, _: Result<Completion>| {};
    f.q.process(8, &mut none);
    let l = log.lock().unwrap();
    assert!(
        l[0].1.as_ref().unwrap_err().contains("within 5 ms"),
        "{:?}",
        l[0]
    );
}

#[test]
fn requests_larger_than_the_queue_go_in_as_slots_free() {
    // 4 entries: 3 command ids. A read of 100 blocks at 16 per command needs 7.
    let (mut f, log, mut buf) = (fake(4), Log::default(), vec![0u8; 64 * 1024 + 8192]);
    let va = page_aligned(&mut buf);
    f.q.submit(&read_cmd(1000, 100, 16, va), cb(&log, 1), None, 0)
        .map_err(|e| e.0)
        .unwrap();
    // A one-command request submitted after it queues behind it (order is kept).
    f.q.submit(&read_cmd(5000, 1, 16, va), cb(&log, 2), None, 0)
        .map_err(|e| e.0)
        .unwrap();
    assert_eq!(f.q.outstanding_reqs(), 2);
    f.q.flush();
    let mut seen = Vec::new();
    let mut none = |_: u64, _: Result<Completion>| {};
    for _round in 0..10 {
        let cmds = f.fetch();
        assert!(cmds.len() <= 3, "never more than the queue's ids in flight");
        if cmds.is_empty() {
            break;
        }
        for c in &cmds {
            let slba = c.cdw10 as u64 | ((c.cdw11 as u64) << 32);
            seen.push((slba, (c.cdw12 & 0xffff) + 1));
            f.post(c.cid(), Status::SUCCESS, 0);
        }
        // Reaping frees ids: the waiting commands go in and are doorbelled at once.
        f.q.process(16, &mut none);
    }
    let lbas: Vec<u64> = seen.iter().map(|s| s.0).collect();
    assert_eq!(
        lbas,
        vec![1000, 1016, 1032, 1048, 1064, 1080, 1096, 5000],
        "split commands in order, then the request queued behind"
    );
    assert_eq!(seen[6].1, 4);
    let l = log.lock().unwrap();
    assert_eq!(l.len(), 2);
    assert_eq!(l[0].0, 1);
    assert_eq!(l[0].1.as_ref().unwrap().commands, 7);
    assert_eq!(l[1].0, 2);
    assert_eq!(f.q.outstanding_reqs(), 0);
    assert_eq!(f.q.outstanding_cmds(), 0);
}

#[test]
fn queued_request_with_a_bad_buffer_is_refused_whole() {
    let (mut f, log) = (fake(4), Log::default());
    // 7 commands, the buffer not dword aligned: refused before anything is queued.
    let e =
        f.q.submit(&read_cmd(0, 100, 16, 0x1001), cb(&log, 1), None, 0)
            .map_err(|e| e.0)
            .unwrap_err();
    assert!(matches!(e, Error::BadBuffer { .. }), "{e}");
    assert_eq!(f.q.outstanding_reqs(), 0);
    f.q.flush();
    assert!(f.fetch().is_empty());
}

#[test]
fn fail_all_ends_queued_requests_too() {
    let (mut f, log, mut buf) = (fake(4), Log::default(), vec![0u8; 64 * 1024 + 8192]);
    let va = page_aligned(&mut buf);
    f.q.submit(&read_cmd(0, 100, 16, va), cb(&log, 1), None, 0)
        .map_err(|e| e.0)
        .unwrap();
    let mut none = |_: u64, _: Result<Completion>| {};
    assert_eq!(f.q.fail_all(&Error::Reset, &mut none), 1);
    let l = log.lock().unwrap();
    assert_eq!(l.len(), 1);
    assert!(l[0].1.is_err());
    assert_eq!(f.q.outstanding_cmds(), 0);
    assert_eq!(f.q.outstanding_reqs(), 0);
}

#[test]
fn deferred_cq_doorbell_follows_the_next_sq_doorbell() {
    let (mut f, log, mut buf) = (fake(8), Log::default(), vec![0u8; 8192]);
    let va = page_aligned(&mut buf);
    f.q.defer_cq_doorbell = true;
    let mut none = |_: u64, _: Result<Completion>| {};
    f.q.submit(&read_cmd(0, 1, 8, va), cb(&log, 1), None, 0)
        .map_err(|e| e.0)
        .unwrap();
    f.q.flush();
    let c = f.fetch();
    f.post(c[0].cid(), Status::SUCCESS, 0);
    let cq0 = f.cq_doorbell();
    assert_eq!(f.q.process(8, &mut none), 1);
    assert_eq!(log.lock().unwrap().len(), 1, "the callback ran");
    assert_eq!(f.cq_doorbell(), cq0, "head doorbell owed, not written yet");
    // The resubmission's SQ doorbell and the owed CQ doorbell go out in the next flush.
    f.q.submit(&read_cmd(1, 1, 8, va), cb(&log, 2), None, 0)
        .map_err(|e| e.0)
        .unwrap();
    let sq0 = f.sq_doorbell();
    f.q.flush();
    assert_ne!(f.sq_doorbell(), sq0);
    assert_eq!(f.cq_doorbell(), 1);
    // Nothing owed: a flush writes nothing more.
    f.q.flush();
    assert_eq!(f.cq_doorbell(), 1);
}

#[test]
fn shadow_doorbells_ring_mmio_only_past_the_event_index() {
    let (mut f, log, mut buf) = (fake(8), Log::default(), vec![0u8; 8192]);
    let va = page_aligned(&mut buf);
    let mut words = Box::new([0u32; 4]);
    f.q.defer_cq_doorbell = true;
    f.q.set_shadow(Some(crate::dbbuf::Shadow::in_memory(&mut words)));
    let mut none = |_: u64, _: Result<Completion>| {};
    let wp = words.as_mut_ptr();
    // SAFETY: the boxed words outlive the queue's use of them in this test; read
    // volatile as the queue writes them through raw pointers.
    let w = |i: usize| unsafe { std::ptr::read_volatile(wp.add(i)) };
    // EventIdx 0: moving the tail 0 -> 1 passes it, so the MMIO doorbell rings.
    f.q.submit(&read_cmd(0, 1, 8, va), cb(&log, 1), None, 0)
        .map_err(|e| e.0)
        .unwrap();
    f.q.flush();
    assert_eq!((w(0), f.sq_doorbell()), (1, 1));
    let first = f.fetch();
    assert_eq!(first.len(), 1);
    // The controller asks to hear only after tail 5: 1 -> 2 updates the shadow alone.
    // SAFETY: words 2 and 3 (SQ and CQ EventIdx) of the boxed array, written as the
    // device would.
    unsafe {
        std::ptr::write_volatile(wp.add(2), 5);
        std::ptr::write_volatile(wp.add(3), 5);
    }
    f.q.submit(&read_cmd(1, 1, 8, va), cb(&log, 2), None, 0)
        .map_err(|e| e.0)
        .unwrap();
    f.q.flush();
    assert_eq!((w(0), f.sq_doorbell()), (2, 1), "shadow moved, no MMIO");
    // The CQ head 0 -> 1 is before its EventIdx 5 as well: shadow only.
    f.post(first[0].cid(), Status::SUCCESS, 0);
    assert_eq!(f.q.process(8, &mut none), 1);
    f.q.flush();
    assert_eq!((w(1), f.cq_doorbell()), (1, 0));
    assert_eq!(log.lock().unwrap().len(), 1);
}
