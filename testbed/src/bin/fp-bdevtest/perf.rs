//! `perf` and `hotremove`: slots of random 4 KiB reads, for a time or until the
//! device goes away.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use bdev::modules::nvme_pcie::PcieTransport;
use bdev::{BdevEvent, IoStatus, IoType};
use eal::timer::{rdtsc, tsc_hz};
use eal::Eal;
use framework::{poller, thread, Framework, PollStatus};
use nvme::IoBuf;

use crate::io::{new_job, submit, Buf, Io, SharedIo, SharedJob};
use crate::steps::{eal_of, fail, the_fw, Next, Res};

/// The hot-removal watch poller, unregistered (from a message) before the app stops.
static WATCH: Mutex<Option<framework::Poller>> = Mutex::new(None);

fn stop_watch(fw: &Framework, rc: i32) {
    let fw = fw.clone();
    let me = thread::current().expect("on a framework thread");
    let _ = me.send_msg(move || {
        if let Some(p) = WATCH.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = p.unregister();
        }
        fw.shutdown(rc);
    });
}

/// 4 KiB random reads at `depth` for `secs` seconds.
pub fn perf(io: SharedIo, eal: Eal, depth: usize, secs: u64, next: Next) {
    let job = new_job(u64::MAX, Some(next));
    let end = rdtsc() + secs * tsc_hz();
    job.lock().unwrap_or_else(|e| e.into_inner()).running = depth;
    for _ in 0..depth {
        let b = match IoBuf::alloc(&eal, 4096) {
            Ok(b) => b,
            Err(e) => return fail(&the_fw(), e),
        };
        read_cycle(io.clone(), job.clone(), Buf::Dma(b), Some(end));
    }
}

/// One slot of random 4 KiB reads: until `end`, or forever (hot removal).
fn read_cycle(io: SharedIo, job: SharedJob, buf: Buf, end: Option<u64>) {
    let (bs, blocks) = {
        let g = io.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_ref() {
            Some(o) => (o.bs, o.blocks),
            None => return perf_slot_end(&job),
        }
    };
    if end.is_some_and(|e| rdtsc() >= e) {
        return perf_slot_end(&job);
    }
    let n = 4096u64.div_ceil(bs as u64);
    let off = (job.lock().unwrap_or_else(|e| e.into_inner()).rand() % (blocks / n)) * n;
    let (io2, j2) = (io.clone(), job.clone());
    let r = submit(&io, IoType::Read, off, n, buf, move |st, b| {
        {
            let mut j = j2.lock().unwrap_or_else(|e| e.into_inner());
            if st == IoStatus::Success {
                j.ok += 1;
            } else {
                j.failed += 1;
                j.first_err.get_or_insert(format!("read at {off}: {st:?}"));
            }
        }
        if st == IoStatus::Success {
            read_cycle(io2, j2, b, end);
        } else {
            perf_slot_end(&j2);
        }
    });
    if r.is_err() {
        perf_slot_end(&job);
    }
}

fn perf_slot_end(job: &SharedJob) {
    let mut j = job.lock().unwrap_or_else(|e| e.into_inner());
    j.running -= 1;
    if j.running > 0 {
        return;
    }
    let secs = (rdtsc() - j.t0) as f64 / tsc_hz() as f64;
    let (ok, failed, e) = (j.ok, j.failed, j.first_err.take());
    let next = j.next.take();
    drop(j);
    if let Some(n) = next {
        match e {
            Some(e) => n.fail(format!("perf: {failed} failed, first: {e}")),
            None => {
                println!(
                    "BDEV-PERF iops={:.0} ios={ok} secs={secs:.2}",
                    ok as f64 / secs
                );
                n.go()
            }
        }
    }
}

pub fn hotremove(fw: &Framework, _t: &PcieTransport, name: &str, bdevs: &[String]) -> Res<()> {
    let b = format!("{name}n1");
    let io: SharedIo = Arc::new(Mutex::new(None));
    let removed = Arc::new(Mutex::new(false));
    let (io2, r2) = (io.clone(), removed.clone());
    let me = thread::current().ok_or("not on a thread")?;
    let desc = bdev::open(&b, false, move |ev| {
        if ev == BdevEvent::Remove {
            println!("REMOVE-EVENT");
            let _ = std::io::stdout().flush();
            *r2.lock().unwrap_or_else(|e| e.into_inner()) = true;
            // Close from a message: put the channel, then the descriptor.
            let io3 = io2.clone();
            let _ = me.send_msg(move || drop(io3.lock().unwrap_or_else(|e| e.into_inner()).take()));
        }
    })
    .map_err(|e| format!("open {b}: {e}"))?;
    let ch = desc.get_io_channel().map_err(|e| e.to_string())?;
    let info = desc.bdev().info().clone();
    *io.lock().unwrap_or_else(|e| e.into_inner()) = Some(Io {
        desc,
        ch,
        bs: info.block_size as usize,
        blocks: info.num_blocks,
        name: b.clone(),
    });
    let job = new_job(u64::MAX, None);
    job.lock().unwrap_or_else(|e| e.into_inner()).running = 8;
    let eal = eal_of();
    for _ in 0..8 {
        let buf = IoBuf::alloc(&eal, 4096).map_err(|e| e.to_string())?;
        read_cycle(io.clone(), job.clone(), Buf::Dma(buf), None);
    }
    let bdevs = bdevs.to_vec();
    let fw2 = fw.clone();
    let t0 = rdtsc();
    let mut said_running = false;
    let mut finished = false;
    let p = poller::register("hotremove_watch", 50_000, move || {
        if finished {
            return PollStatus::Idle;
        }
        let (ok, failed) = {
            let j = job.lock().unwrap_or_else(|e| e.into_inner());
            (j.ok, j.failed)
        };
        if !said_running && ok > 100 {
            said_running = true;
            println!("RUNNING ok={ok}");
            let _ = std::io::stdout().flush();
        }
        let gone = bdevs.iter().all(|n| bdev::bdev::get(n).is_none());
        if gone && *removed.lock().unwrap_or_else(|e| e.into_inner()) {
            finished = true;
            println!("UNREGISTERED ok={ok} failed={failed}");
            let _ = std::io::stdout().flush();
            stop_watch(&fw2, 0);
        } else if rdtsc() - t0 > 150 * tsc_hz() {
            finished = true;
            println!("FAIL no removal seen (ok={ok} failed={failed})");
            stop_watch(&fw2, 1);
        }
        PollStatus::Busy
    })
    .map_err(|e| e.to_string())?;
    // Lives until the app exits.
    *WATCH.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
    Ok(())
}
