//! Bdev access: an open descriptor and channel, request buffers of three kinds, data
//! patterns, and the state shared by the slots of a multi-request job.

use std::sync::{Arc, Mutex};

use bdev::{BdevIoChannel, Descriptor, IoStatus, IoType, IoVec};
use eal::timer::rdtsc;
use eal::Eal;
use nvme::IoBuf;

use crate::steps::{Next, Res};

/// An open bdev: descriptor and this thread's channel.
pub struct Io {
    pub desc: Descriptor,
    pub ch: BdevIoChannel,
    pub bs: usize,
    pub blocks: u64,
    pub name: String,
}

pub type SharedIo = Arc<Mutex<Option<Io>>>;

pub fn open_io(name: &str) -> Res<SharedIo> {
    let desc = bdev::open(name, true, |_| {}).map_err(|e| format!("open {name}: {e}"))?;
    let ch = desc
        .get_io_channel()
        .map_err(|e| format!("channel {name}: {e}"))?;
    let (bs, blocks) = (
        desc.bdev().info().block_size as usize,
        desc.bdev().info().num_blocks,
    );
    Ok(Arc::new(Mutex::new(Some(Io {
        desc,
        ch,
        bs,
        blocks,
        name: name.to_string(),
    }))))
}

/// Data memory of one request, kept alive (moved into the callback) until it ends.
pub enum Buf {
    /// EAL memory with IOVAs: goes to the device as is.
    Dma(IoBuf),
    /// Plain heap memory: bounced by the module.
    Heap(Vec<u8>),
    /// Two iovecs of uneven length: bounced.
    Split(Vec<u8>, Vec<u8>),
}

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Dma,
    Heap,
    Split,
}

impl Buf {
    pub fn new(kind: Kind, data: &[u8], eal: &Eal) -> Res<Buf> {
        Ok(match kind {
            Kind::Dma => {
                let mut b = IoBuf::alloc(eal, data.len()).map_err(|e| e.to_string())?;
                b.as_mut_slice().copy_from_slice(data);
                Buf::Dma(b)
            }
            Kind::Heap => Buf::Heap(data.to_vec()),
            Kind::Split => {
                let cut = data.len() / 3 + 100;
                Buf::Split(data[..cut].to_vec(), data[cut..].to_vec())
            }
        })
    }

    pub fn iovs(&mut self) -> Vec<IoVec> {
        match self {
            Buf::Dma(b) => vec![IoVec::from_slice(b.as_mut_slice())],
            Buf::Heap(v) => vec![IoVec::from_slice(v)],
            Buf::Split(a, b) => vec![IoVec::from_slice(a), IoVec::from_slice(b)],
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Buf::Dma(b) => b.as_slice().to_vec(),
            Buf::Heap(v) => v.clone(),
            Buf::Split(a, b) => [a.as_slice(), b.as_slice()].concat(),
        }
    }
}

/// Submit `t` over `buf`; `cb` gets the status and the buffer back.
pub fn submit<F>(io: &SharedIo, t: IoType, off: u64, n: u64, mut buf: Buf, cb: F) -> Res<()>
where
    F: FnOnce(IoStatus, Buf) + Send + 'static,
{
    let g = io.lock().unwrap_or_else(|e| e.into_inner());
    let io = g.as_ref().ok_or("the bdev is closed")?;
    let iovs = buf.iovs();
    let done = move |s| cb(s, buf);
    // SAFETY: the iovecs point into `buf`'s heap blocks, which move (without moving
    // their memory) into the callback and are not touched until it runs.
    let r = unsafe {
        match t {
            IoType::Read => io.desc.readv(&io.ch, &iovs, off, n, done),
            IoType::Write => io.desc.writev(&io.ch, &iovs, off, n, done),
            _ => io.desc.comparev(&io.ch, &iovs, off, n, done),
        }
    };
    r.map_err(|e| format!("{} submit {t:?} {off}+{n}: {e}", io.name))
}

/// Block `b`'s bytes for seed `seed`: every 8-byte word says (seed, block, word).
pub fn pattern(seed: u64, first: u64, n: u64, bs: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n as usize * bs);
    for b in first..first + n {
        for w in 0..bs / 8 {
            let x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (b << 16) ^ w as u64;
            v.extend_from_slice(&x.to_le_bytes());
        }
    }
    v
}

/// The first differing byte, as a message.
pub fn differs(name: &str, off: u64, bs: usize, want: &[u8], got: &[u8]) -> Option<String> {
    let i = want.iter().zip(got).position(|(a, b)| a != b)?;
    Some(format!(
        "{name}: data differs at byte {i} (block {}): wrote {:#x}, read {:#x}",
        off + (i / bs) as u64,
        want[i],
        got[i]
    ))
}

/// State of a multi-slot job.
pub struct Job {
    pub rng: u64,
    pub left: u64,
    pub running: usize,
    pub ok: u64,
    pub failed: u64,
    pub first_err: Option<String>,
    pub next: Option<Next>,
    pub t0: u64,
}

impl Job {
    pub fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

pub type SharedJob = Arc<Mutex<Job>>;

pub fn new_job(left: u64, next: Option<Next>) -> SharedJob {
    Arc::new(Mutex::new(Job {
        rng: 0x2545_f491_4f6c_dd1d,
        left,
        running: 0,
        ok: 0,
        failed: 0,
        first_err: None,
        next,
        t0: rdtsc(),
    }))
}
