//! The channel's dispatch and completion paths: QoS parking and draining, the module
//! hand-off, completion on the submitting thread, the out-of-resources queue and its
//! retries, split children, and the freeze and thaw of a reset.

use super::*;

impl ChanCore {
    /// Send `io` on: held by a reset, queued for QoS budget or behind I/O waiting for
    /// resources, or to the module.
    #[inline]
    pub(super) fn dispatch(&self, io: Box<IoInner>) {
        if !self.slow.get() {
            // Nothing held or queued, no limits: straight to the module.
            self.outstanding.set(self.outstanding.get() + 1);
            return self.to_module(io);
        }
        self.dispatch_slow(io)
    }

    /// [`dispatch`](Self::dispatch) with a reset, QoS or a retry queue in the way.
    #[inline(never)]
    pub(super) fn dispatch_slow(&self, io: Box<IoInner>) {
        let mut st = self.st.borrow_mut();
        if st.frozen {
            st.frozen_q.push_back(io);
            return;
        }
        let limited = matches!(
            io.io_type,
            IoType::Read | IoType::Write | IoType::Compare | IoType::CompareAndWrite
        );
        if limited && (self.qos.active() || !st.qos_queue.is_empty()) {
            let behind = !st.qos_queue.is_empty();
            let bytes = io.num_blocks * u64::from(io.block_size);
            if behind || !self.qos.try_admit(io.io_type, bytes) {
                drop(st);
                self.qos_park(io);
                return;
            }
        }
        drop(st);
        self.dispatch_admitted(io);
    }

    /// Queue a piece for QoS budget; make sure the drain poller runs.
    pub(super) fn qos_park(&self, io: Box<IoInner>) {
        let mut st = self.st.borrow_mut();
        st.qos_queue.push_back(io);
        self.slow.set(true);
        if st.qos_poller.is_some() {
            return;
        }
        let me = CorePtr(NonNull::from(self));
        // The channel unregisters this poller before its core goes (`BdevChannel`'s
        // drop), and the poller unregisters itself once the queue is empty.
        let r = poller::register("bdev_qos_drain", TIMESLICE_US, move || {
            // SAFETY: see above: the core outlives the poller, which runs on the
            // channel's thread.
            let ctx = unsafe { me.get() };
            ctx.qos_drain();
            let mut st = ctx.st.borrow_mut();
            if st.qos_queue.is_empty() {
                if let Some(p) = st.qos_poller.take() {
                    drop(st);
                    let _ = p.unregister();
                }
            }
            PollStatus::Busy
        });
        match r {
            Ok(p) => st.qos_poller = Some(p),
            Err(e) => eal::log_err!("bdev '{}': no QoS drain poller: {e}", self.info.name),
        }
    }

    /// Submit queued pieces while the budget allows (all of them once QoS is off).
    pub(super) fn qos_drain(&self) {
        loop {
            let io = {
                let mut st = self.st.borrow_mut();
                let Some(front) = st.qos_queue.front() else {
                    self.refresh_slow(&st);
                    return;
                };
                let bytes = front.num_blocks * u64::from(front.block_size);
                if !self.qos.try_admit(front.io_type, bytes) {
                    return;
                }
                let io = st.qos_queue.pop_front();
                self.refresh_slow(&st);
                io
            };
            if let Some(io) = io {
                self.dispatch_admitted(io);
            }
        }
    }

    pub(super) fn dispatch_admitted(&self, io: Box<IoInner>) {
        {
            let mut st = self.st.borrow_mut();
            if st.frozen {
                st.frozen_q.push_back(io);
                return;
            }
            if !st.nomem.is_empty() && !st.retrying {
                st.nomem.push_back(io);
                self.slow.set(true);
                return;
            }
        }
        self.outstanding.set(self.outstanding.get() + 1);
        self.to_module(io);
    }

    #[inline]
    pub(super) fn to_module(&self, io: Box<IoInner>) {
        // SAFETY: on the channel's thread; the destructor, the only writer, is not
        // reached while this shared borrow lives (see `module`).
        unsafe { &*self.module.get() }.submit(BdevIo(Some(io)));
    }

    /// A module completed `io` (static: the channel is found through the I/O).
    #[inline]
    pub(super) fn complete(io: Box<IoInner>, status: IoStatus) {
        // Set by `new_io` to the core that made the object; `None` for a direct I/O.
        let Some(core) = io.owner else {
            return crate::io::complete_direct(io, status);
        };
        let core = core.cast::<ChanCore>();
        // SAFETY: the core lives while this object is in use (see the module docs).
        match unsafe { ChanCore::on_own_thread(core) } {
            Some((ctx, now)) => ctx.completed(io, status, now),
            None => Self::complete_elsewhere(core, io, status),
        }
    }

    /// A completion off the submitting thread (a module bug): finish it there.
    #[cold]
    #[inline(never)]
    pub(super) fn complete_elsewhere(core: NonNull<ChanCore>, io: Box<IoInner>, status: IoStatus) {
        // SAFETY: as in `on_own_thread`.
        let owner = unsafe { &*std::ptr::addr_of!((*core.as_ptr()).owner) };
        eal::log_err!("bdev I/O completed off its thread; sent back to it");
        if owner
            .send_msg(move || ChanCore::complete(io, status))
            .is_err()
        {
            eal::log_err!("bdev I/O completed off its thread, whose thread is gone; dropped");
        }
    }

    /// `io` came back from the module (on the channel's thread).
    #[inline]
    pub(super) fn completed(&self, io: Box<IoInner>, status: IoStatus, now: u64) {
        self.outstanding.set(self.outstanding.get() - 1);
        if status == IoStatus::NoMem {
            return self.park_nomem(io);
        }
        self.finish(io, status, now);
        if self.slow.get() {
            self.retry_queued();
        }
    }

    /// The module is out of resources for `io`: queue it for a retry.
    #[cold]
    #[inline(never)]
    pub(super) fn park_nomem(&self, io: Box<IoInner>) {
        let schedule = {
            let mut st = self.st.borrow_mut();
            st.nomem.push_back(io);
            self.slow.set(true);
            if st.retrying {
                st.nomem_in_retry = true;
            }
            let s = self.outstanding.get() == 0 && !st.retry_msg_pending;
            if s {
                st.retry_msg_pending = true;
            }
            s
        };
        if schedule {
            self.schedule_retry();
        }
    }

    /// Account, recycle and notify.
    #[inline]
    pub(super) fn finish(&self, mut io: Box<IoInner>, status: IoStatus, now: u64) {
        let notify = io.notify.take();
        let (t, blocks, start) = (io.io_type, io.num_blocks, io.start_tsc);
        self.recycle(io);
        match notify {
            Some(Notify::User(cb)) => {
                self.count(t, blocks, start, now, status == IoStatus::Success);
                cb.call(status);
            }
            Some(Notify::Child(p)) => self.child_done(&p, status, now),
            None => {}
        }
    }

    /// A child of a split request completed: the parent completes with the last.
    #[inline(never)]
    pub(super) fn child_done(&self, p: &SplitParent, status: IoStatus, now: u64) {
        let last = {
            let mut g = p.st.lock().unwrap_or_else(|e| e.into_inner());
            g.0 -= 1;
            if status != IoStatus::Success && g.1 == IoStatus::Success {
                g.1 = status;
            }
            if g.0 == 0 {
                g.2.take().map(|cb| (cb, g.1))
            } else {
                None
            }
        };
        if let Some((cb, st)) = last {
            let ok = st == IoStatus::Success;
            self.count(p.io_type, p.blocks, p.start_tsc, now, ok);
            cb.call(st);
        }
    }

    /// Resubmit what waits in the out-of-resources queue (once per completion; a
    /// nested completion does not recurse into a second pass).
    pub(super) fn retry_queued(&self) {
        {
            let mut st = self.st.borrow_mut();
            if st.retrying || st.nomem.is_empty() || st.frozen {
                return;
            }
            st.retrying = true;
            st.nomem_in_retry = false;
        }
        let n = self.st.borrow().nomem.len();
        for _ in 0..n {
            let io = {
                let mut st = self.st.borrow_mut();
                if st.nomem_in_retry {
                    break;
                }
                let Some(io) = st.nomem.pop_front() else {
                    break;
                };
                io
            };
            self.outstanding.set(self.outstanding.get() + 1);
            self.to_module(io);
        }
        let mut st = self.st.borrow_mut();
        st.retrying = false;
        self.refresh_slow(&st);
    }

    /// Nothing is outstanding to trigger a retry: retry from a message on the
    /// channel's thread (the module may have freed resources by then). Queued objects
    /// are in use, so the channel outlives the message.
    pub(super) fn schedule_retry(&self) {
        let me = CorePtr(NonNull::from(self));
        let r = self.owner.send_msg(move || {
            // SAFETY: the queued I/O objects keep the channel alive (in use), and the
            // message runs on the channel's thread.
            let ctx = unsafe { me.get() };
            ctx.st.borrow_mut().retry_msg_pending = false;
            ctx.retry_queued();
        });
        if r.is_err() {
            eal::log_err!("bdev: could not schedule an out-of-resources retry");
        }
    }

    /// A reset starts: hold new I/O, fail what waits for resources or QoS budget
    /// with `Aborted`.
    pub(crate) fn freeze(&self) {
        self.st.borrow_mut().frozen = true;
        self.slow.set(true);
        loop {
            let io = {
                let mut st = self.st.borrow_mut();
                match st.nomem.pop_front() {
                    Some(io) => Some(io),
                    None => st.qos_queue.pop_front(),
                }
            };
            let Some(io) = io else {
                break;
            };
            self.finish(io, IoStatus::Aborted, thread::last_tsc());
        }
    }

    /// Whether a reset holds new I/O.
    pub(crate) fn is_frozen(&self) -> bool {
        self.st.borrow().frozen
    }

    /// I/Os at the module (a reset waits for every channel's to reach 0).
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.get()
    }

    /// The reset is done: submit what was held, in order.
    pub(crate) fn thaw(&self) {
        let held = {
            let mut st = self.st.borrow_mut();
            st.frozen = false;
            self.refresh_slow(&st);
            std::mem::take(&mut st.frozen_q)
        };
        for io in held {
            self.dispatch(io);
        }
        self.retry_queued();
    }
}
