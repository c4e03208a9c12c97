//! What the uring and aio channels share: the request slots, completions decided at
//! submit time, resets waiting for the kernel, and the poller that reaps, completes, and
//! pauses itself while nothing is in the kernel (it keeps its reactor awake otherwise).
//!
//! A channel's state sits behind a mutex shared by the channel (submit, on its thread)
//! and its poller (same thread): never contended. I/Os are completed with it released.
//!
//! A channel whose kernel interface signals a descriptor when completions wait (the
//! uring module's eventfd) gives it to [`Channel::new`]: its poller then lets the
//! reactor sleep in interrupt mode with I/O in the kernel, and the descriptor, watched
//! as a framework interrupt, wakes it and runs the same poll. Without one, the poller
//! keeps its reactor awake while I/O is in the kernel.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use framework::interrupt::{self, Interrupt};
use framework::poller::{self, PollerOpts};
use framework::{PollStatus, Poller};

use crate::io::{BdevIo, IoStatus};
use crate::modules::file::Slots;

/// A kernel-backed channel's state.
pub(crate) trait KernelState: Send + 'static {
    /// The shared part.
    fn queue(&mut self) -> &mut Queue;
    /// Enter the kernel if anything is queued, reap, and push what ended to `out`.
    fn poll(&mut self, out: &mut Vec<(BdevIo, IoStatus)>);
    /// Nothing in the kernel, queued for it, or waiting for the poller.
    fn idle(&self) -> bool;
}

/// The part of a channel's state both modules have.
pub(crate) struct Queue {
    pub(crate) slots: Slots,
    /// Completions decided at submit time, delivered by the poller.
    pub(crate) done: Vec<(BdevIo, IoStatus)>,
    /// Resets waiting for the channel's I/O in the kernel to finish.
    pub(crate) resets: Vec<BdevIo>,
    poller: Option<Poller>,
    paused: bool,
}

impl Queue {
    pub(crate) fn new(slots: usize) -> Queue {
        Queue {
            slots: Slots::new(slots),
            done: Vec::new(),
            resets: Vec::new(),
            poller: None,
            paused: false,
        }
    }

    /// Resume the poller if it paused (a submission is coming).
    fn wake(&mut self) {
        if self.paused {
            if let Some(p) = self.poller {
                if p.resume().is_ok() {
                    self.paused = false;
                }
            }
        }
    }

    /// Nothing in a slot or waiting for the poller.
    pub(crate) fn idle(&self) -> bool {
        self.slots.in_use() == 0 && self.done.is_empty() && self.resets.is_empty()
    }

    /// The end of a poll: resets complete once nothing is in the kernel.
    pub(crate) fn end_poll(&mut self, out: &mut Vec<(BdevIo, IoStatus)>) {
        if self.slots.in_use() == 0 {
            out.extend(self.resets.drain(..).map(|io| (io, IoStatus::Success)));
        }
    }

    /// Give slot `i` up before it reached the kernel: its I/O back.
    pub(crate) fn give_back(&mut self, i: u32) -> Option<BdevIo> {
        let io = self.slots.slots[i as usize].finish(false);
        self.slots.release(i);
        io
    }
}

/// How a kernel result ends an I/O.
pub(crate) fn status(ok: bool) -> IoStatus {
    if ok {
        IoStatus::Success
    } else {
        IoStatus::Failed
    }
}

fn lock<S>(st: &Mutex<S>) -> MutexGuard<'_, S> {
    st.lock().unwrap_or_else(|e| e.into_inner())
}

/// Slot `i` could not be handed to the kernel (no room): its I/O goes back to the
/// layer as out of resources, with the state released.
pub(crate) fn refuse<S: KernelState>(mut g: MutexGuard<'_, S>, i: u32) {
    let io = g.queue().give_back(i);
    drop(g);
    if let Some(io) = io {
        io.complete(IoStatus::NoMem);
    }
}

/// A kernel-backed module channel's core: its state, shared with its poller, and the
/// buffer alignment its file wants. Dropping it stops the poller; what never reached the
/// kernel fails (the layer destroys a channel only with nothing outstanding, so
/// normally nothing).
pub(crate) struct Channel<S: KernelState> {
    st: Arc<Mutex<S>>,
    /// Buffer alignment the file wants (1: any).
    pub(crate) align: usize,
    poller: Poller,
    /// The completion descriptor and its interrupt (see the module docs).
    wake: Option<(OwnedFd, Interrupt)>,
}

impl<S: KernelState> Channel<S> {
    /// `state`'s channel, its poller `name` registered on the current thread, and
    /// `wake` (a descriptor readable when completions wait) watched if given.
    pub(crate) fn new(
        name: &str,
        state: S,
        align: usize,
        wake: Option<OwnedFd>,
    ) -> std::result::Result<Self, String> {
        let st = Arc::new(Mutex::new(state));
        let poller = start_poller(name, &st, wake.is_none())?;
        let wake = match wake {
            None => None,
            Some(fd) => {
                let (s2, raw) = (st.clone(), fd.as_raw_fd());
                let mut batch = Vec::new();
                let r = interrupt::register(name, raw, move || {
                    // SAFETY: the channel keeps the descriptor open until it has
                    // unregistered this interrupt (in its drop).
                    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
                    crate::sys::eventfd_drain(fd);
                    poll_once(&s2, &mut batch)
                });
                match r {
                    Ok(i) => Some((fd, i)),
                    Err(e) => {
                        let _ = poller.unregister();
                        return Err(e.to_string());
                    }
                }
            }
        };
        Ok(Channel {
            st,
            align,
            poller,
            wake,
        })
    }

    /// The state, for a submission (the poller resumed if it paused).
    pub(crate) fn begin(&self) -> MutexGuard<'_, S> {
        let mut g = lock(&self.st);
        g.queue().wake();
        g
    }
}

impl<S: KernelState> Drop for Channel<S> {
    fn drop(&mut self) {
        let _ = self.poller.unregister();
        if let Some((fd, i)) = self.wake.take() {
            let _ = i.unregister();
            drop(fd);
        }
        let left: Vec<BdevIo> = {
            let mut g = lock(&self.st);
            let q = g.queue();
            let mut v: Vec<BdevIo> = q.done.drain(..).map(|(io, _)| io).collect();
            v.append(&mut q.resets);
            v
        };
        drop(left);
    }
}

/// One poll: enter the kernel if needed, reap, complete with the state released; the
/// poller paused when nothing is in the kernel.
fn poll_once<S: KernelState>(st: &Mutex<S>, batch: &mut Vec<(BdevIo, IoStatus)>) -> PollStatus {
    {
        let mut g = lock(st);
        g.poll(batch);
        if batch.is_empty() && g.idle() {
            let q = g.queue();
            if let Some(p) = q.poller {
                if p.pause().is_ok() {
                    q.paused = true;
                }
            }
            return PollStatus::Idle;
        }
    }
    let busy = !batch.is_empty();
    for (io, s) in batch.drain(..) {
        io.complete(s);
    }
    busy.into()
}

/// Register the channel's poller on the current thread; `keep_awake` while I/O is in
/// the kernel unless an interrupt wakes the reactor for completions.
fn start_poller<S: KernelState>(
    name: &str,
    st: &Arc<Mutex<S>>,
    keep_awake: bool,
) -> std::result::Result<Poller, String> {
    let s2 = st.clone();
    let mut batch = Vec::new();
    let poller = poller::register_with(name, 0, PollerOpts { keep_awake }, move || {
        poll_once(&s2, &mut batch)
    })
    .map_err(|e| e.to_string())?;
    lock(st).queue().poller = Some(poller);
    Ok(poller)
}
