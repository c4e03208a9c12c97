//! The I/O engines: one worker per lcore keeps DEPTH requests in flight on each of its
//! targets (a queue pair of our driver, or a kernel block device through io_uring,
//! libaio or psync) until the deadline, and records each completion.

use eal::timer::{rdtsc, tsc_hz};
use eal::VirtAddr;
use nvme::kernel::KernelDev;
use nvme::{Done, Error, Namespace, QPair, Reap};

use crate::args::{Args, Pattern};
use crate::stats::Stats;

/// One target a worker drives.
pub enum Target {
    Pcie {
        qp: Box<QPair>,
        ns: Namespace,
        addr: String,
    },
    Kernel(KernelDev),
}

impl Target {
    pub fn name(&self) -> String {
        match self {
            Target::Pcie { ns, addr, .. } => format!("PCIE ({addr}) NSID {}", ns.id),
            Target::Kernel(k) => format!("KERNEL ({} {:?})", k.path(), k.engine()),
        }
    }
    pub fn size(&self) -> u64 {
        match self {
            Target::Pcie { ns, .. } => ns.size_bytes(),
            Target::Kernel(k) => k.size(),
        }
    }
}

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub struct Worker {
    pub target: Target,
    pub stats: Stats,
    pub bufs: Vec<VirtAddr>,
    pub start: Vec<u64>,
    pub is_read: Vec<bool>,
    pub rng: Rng,
    pub next_off: u64,
    pub slots: u64,
}

/// Submit slot `slot`'s next I/O; its latency counts from `start` (TSC).
pub fn submit_one(w: &mut Worker, slot: usize, a: &Args, start: u64) -> Result<(), Error> {
    let off = match a.pattern {
        Pattern::Seq => {
            let o = w.next_off;
            w.next_off = (w.next_off + 1) % w.slots;
            o
        }
        Pattern::Rand => w.rng.next() % w.slots,
    } * a.io_size as u64;
    let read = a.read_pct == 100 || (a.read_pct > 0 && (w.rng.next() % 100) < a.read_pct as u64);
    w.is_read[slot] = read;
    w.start[slot] = start;
    let va = w.bufs[slot];
    match &mut w.target {
        Target::Pcie { qp, ns, .. } => {
            let lba = off / ns.block_size;
            let nlb = a.io_size as u64 / ns.block_size;
            // SAFETY: slot `slot`'s buffer is EAL memory owned by this worker for the whole
            // run and not touched until this request's tag comes back.
            unsafe {
                if read {
                    qp.read_raw(ns, lba, nlb, va, Done::Tag(slot as u64))
                } else {
                    qp.write_raw(ns, lba, nlb, va, Done::Tag(slot as u64))
                }
            }
        }
        // SAFETY: as above.
        Target::Kernel(k) => unsafe { k.submit(!read, off, va.as_ptr(), a.io_size, slot as u64) },
    }
}

/// Run one worker (one lcore) over its targets until the deadline.
pub fn run_worker(mut ws: Vec<Worker>, a: &Args) -> Vec<Stats> {
    let hz = tsc_hz();
    let t0 = rdtsc();
    let warm_end = t0 + a.warmup * hz;
    let end = warm_end + a.secs * hz;
    let mut measuring = a.warmup == 0;
    let mut cpu0 = nvme::sys::thread_cpu_time().unwrap_or_default();
    let mut m0 = t0;
    // (slot, TSC at its completion): the slot's next I/O counts from there.
    let mut done_slots: Vec<(usize, u64)> = Vec::with_capacity(a.depth);
    for w in ws.iter_mut() {
        for s in 0..a.depth {
            if let Err(e) = submit_one(w, s, a, rdtsc()) {
                w.stats.error = Some(e.to_string());
                break;
            }
        }
    }
    let mut active = ws.iter().filter(|w| w.stats.error.is_none()).count();
    while active > 0 {
        let now = rdtsc();
        if !measuring && now >= warm_end {
            measuring = true;
            m0 = now;
            cpu0 = nvme::sys::thread_cpu_time().unwrap_or_default();
            for w in ws.iter_mut() {
                w.stats.reset();
            }
        }
        let stop = now >= end;
        for w in ws.iter_mut() {
            if w.stats.error.is_some() {
                continue;
            }
            done_slots.clear();
            let mut err = None;
            let io = a.io_size;
            let stats = &mut w.stats;
            let start = &w.start;
            let mut on_done = |tag: u64, r: Result<usize, Error>| {
                let slot = tag as usize;
                match r {
                    Ok(_) => {
                        let now = rdtsc();
                        stats.record(now.wrapping_sub(start[slot]), io);
                        done_slots.push((slot, now));
                    }
                    Err(e) => {
                        if matches!(e, Error::DeviceGone { .. }) {
                            stats.gone = true;
                        }
                        err.get_or_insert(e.to_string());
                    }
                }
            };
            match &mut w.target {
                Target::Pcie { qp, .. } => {
                    qp.process_completions_with(Reap::All, |t, r| on_done(t, r.map(|_| io)));
                }
                Target::Kernel(k) => {
                    if let Err(e) = k.flush().and_then(|_| k.reap(1, &mut on_done)) {
                        err.get_or_insert(e.to_string());
                    }
                }
            }
            if let Some(e) = err {
                w.stats.error = Some(e);
                active -= 1;
                continue;
            }
            if !stop {
                // Each resubmission's latency starts when its slot's previous I/O was
                // seen complete, as when SPDK's perf resubmits inside the completion
                // callback: the host's time between the two (the rest of the batch,
                // this loop) is part of an I/O's latency, so the average over the run
                // is depth / IOPS (Little's law) instead of leaving that time out.
                for &(s, t) in done_slots.iter() {
                    if let Err(e) = submit_one(w, s, a, t) {
                        if matches!(e, Error::DeviceGone { .. }) {
                            w.stats.gone = true;
                        }
                        w.stats.error = Some(e.to_string());
                        break;
                    }
                }
                if w.stats.error.is_some() {
                    active -= 1;
                }
            }
        }
        if stop {
            break;
        }
    }
    let m1 = rdtsc();
    let cpu1 = nvme::sys::thread_cpu_time().unwrap_or_default();
    // Drain what is still in flight so buffers are free before they are released.
    let drain_end = rdtsc() + 5 * hz;
    for w in ws.iter_mut() {
        loop {
            let outstanding = match &mut w.target {
                Target::Pcie { qp, .. } => {
                    qp.process_completions(Reap::All);
                    qp.outstanding()
                }
                Target::Kernel(k) => {
                    let r = k.flush().and_then(|_| k.reap(1, |_, _| {}));
                    if r.is_err() {
                        break;
                    }
                    k.inflight()
                }
            };
            if outstanding == 0 || rdtsc() > drain_end || w.stats.gone {
                break;
            }
        }
    }
    let n = ws.len() as u32;
    ws.into_iter()
        .map(|w| {
            let mut s = w.stats;
            s.elapsed_tsc = m1 - m0;
            s.cpu = (cpu1.0 + cpu1.1).saturating_sub(cpu0.0 + cpu0.1) / n.max(1);
            s.cpu_user = cpu1.0.saturating_sub(cpu0.0) / n.max(1);
            s
        })
        .collect()
}
