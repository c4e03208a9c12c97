//! I/O devices and per-thread channels (SPDK's `spdk_io_device_register`,
//! `spdk_get_io_channel`, `spdk_put_io_channel`, `spdk_for_each_channel`).
//!
//! An [`IoDevice`] names something many threads use (a bdev, a controller). Each thread
//! that asks for it gets its own [`IoChannel`] with a per-thread context `C`, created
//! lazily by the device's `create` callback on that thread the first time it asks, and
//! shared by every later request on the same thread (reference counted). When the last
//! user drops its handle the channel is destroyed by the device's `destroy` callback, on
//! the same thread, from a message (so a put followed by a get in the same callback
//! reuses the channel, as in SPDK). [`IoDevice::unregister`] refuses new channels and
//! calls its completion, on the unregistering thread, once the last channel is gone.
//!
//! A channel belongs to its framework thread, not to an OS thread: it moves with the
//! thread between reactors. Its context is read with [`IoChannel::ctx`] on that thread
//! only (checked); a handle dropped elsewhere sends its release to the owner.

use std::any::Any;
use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::msg::Msg;
use crate::thread::{self, ChannelEntry, ThreadHandle};

static NEXT_DEVICE: AtomicU64 = AtomicU64::new(1);

type CreateFn<C> = Box<dyn Fn() -> C + Send + Sync>;
type DestroyFn<C> = Box<dyn Fn(C) + Send + Sync>;

struct DevState {
    channels: usize,
    unregistered: bool,
    done: Option<(ThreadHandle, Msg)>,
}

struct Device<C> {
    id: u64,
    name: String,
    create: CreateFn<C>,
    destroy: DestroyFn<C>,
    state: Mutex<DevState>,
}

impl<C> Device<C> {
    fn lock(&self) -> std::sync::MutexGuard<'_, DevState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn channel_gone(&self) {
        let fire = {
            let mut s = self.lock();
            s.channels -= 1;
            if s.channels == 0 && s.unregistered {
                s.done.take()
            } else {
                None
            }
        };
        if let Some((t, m)) = fire {
            let _ = t.send_reliable(m);
        }
    }
}

/// A registered I/O device with per-thread context `C`. Cheap to clone.
pub struct IoDevice<C: Send + 'static>(Arc<Device<C>>);

impl<C: Send + 'static> Clone for IoDevice<C> {
    fn clone(&self) -> Self {
        IoDevice(self.0.clone())
    }
}

/// Register an I/O device: `create` makes a thread's channel context, `destroy`
/// consumes it; both run on the channel's thread.
pub fn register<C, FC, FD>(name: &str, create: FC, destroy: FD) -> IoDevice<C>
where
    C: Send + 'static,
    FC: Fn() -> C + Send + Sync + 'static,
    FD: Fn(C) + Send + Sync + 'static,
{
    IoDevice(Arc::new(Device {
        id: NEXT_DEVICE.fetch_add(1, Ordering::Relaxed),
        name: name.to_string(),
        create: Box::new(create),
        destroy: Box::new(destroy),
        state: Mutex::new(DevState {
            channels: 0,
            unregistered: false,
            done: None,
        }),
    }))
}

struct ChannelInner<C: Send + 'static> {
    dev: Arc<Device<C>>,
    ctx: C,
    refs: Cell<usize>,
}

impl<C: Send + 'static> ChannelEntry for ChannelInner<C> {
    fn device_id(&self) -> u64 {
        self.dev.id
    }
    fn refs(&self) -> usize {
        self.refs.get()
    }
    fn destroy(self: Box<Self>) {
        let ChannelInner { dev, ctx, .. } = *self;
        (dev.destroy)(ctx);
        dev.channel_gone();
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Find the current thread's channel for device `id` (a pointer into its box, stable
/// while the entry stays in the thread's list).
fn find<C: Send + 'static>(id: u64) -> Option<NonNull<ChannelInner<C>>> {
    thread::with_current(|t| {
        t.channels
            .borrow()
            .iter()
            .find(|c| c.device_id() == id)
            .and_then(|c| c.as_any().downcast_ref::<ChannelInner<C>>())
            .map(NonNull::from)
    })
    .flatten()
}

impl<C: Send + 'static> IoDevice<C> {
    /// The name given at registration.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The current thread's channel, created on first use.
    pub fn get_channel(&self) -> Result<IoChannel<C>> {
        let owner = thread::current().ok_or(Error::NotOnThread {
            what: "get an I/O channel",
        })?;
        // As SPDK: no channel at all (not even an existing one) once unregistering.
        if self.0.lock().unregistered {
            return Err(Error::DeviceUnregistered(self.0.name.clone()));
        }
        if let Some(p) = find::<C>(self.0.id) {
            // SAFETY: the entry lives in the current thread's channel list, which only
            // this OS thread touches while the thread is current.
            let inner = unsafe { p.as_ref() };
            inner.refs.set(inner.refs.get() + 1);
            return Ok(IoChannel {
                ptr: p,
                owner,
                _c: PhantomData,
            });
        }
        {
            let mut s = self.0.lock();
            if s.unregistered {
                return Err(Error::DeviceUnregistered(self.0.name.clone()));
            }
            s.channels += 1;
        }
        // No borrow held: `create` may itself get channels of other devices.
        let ctx = (self.0.create)();
        let b = Box::new(ChannelInner {
            dev: self.0.clone(),
            ctx,
            refs: Cell::new(1),
        });
        let p = NonNull::from(&*b);
        thread::with_current(|t| t.channels.borrow_mut().push(b));
        Ok(IoChannel {
            ptr: p,
            owner,
            _c: PhantomData,
        })
    }

    /// Run `f` with the context of every channel of this device, one thread after the
    /// other on each channel's thread, then `done` on the calling thread.
    pub fn for_each_channel<F, D>(&self, f: F, done: D) -> Result<()>
    where
        F: Fn(&C) + Send + Sync + 'static,
        D: FnOnce() + Send + 'static,
    {
        let id = self.0.id;
        thread::for_each_thread(
            move || {
                if let Some(p) = find::<C>(id) {
                    // SAFETY: as in get_channel; the entry is not freed during `f`
                    // (destruction happens only in a later message).
                    f(&unsafe { p.as_ref() }.ctx);
                }
            },
            done,
        )
    }

    /// Refuse new channels and run `done` on the calling thread once every channel is
    /// destroyed (at once if none exists).
    pub fn unregister<D: FnOnce() + Send + 'static>(&self, done: D) -> Result<()> {
        let me = thread::current().ok_or(Error::NotOnThread {
            what: "unregister an I/O device",
        })?;
        let fire = {
            let mut s = self.0.lock();
            if s.unregistered {
                return Err(Error::DeviceUnregistered(self.0.name.clone()));
            }
            s.unregistered = true;
            if s.channels == 0 {
                Some(Box::new(done) as Msg)
            } else {
                s.done = Some((me.clone(), Box::new(done)));
                None
            }
        };
        if let Some(m) = fire {
            let _ = me.send_reliable(m);
        }
        Ok(())
    }

    /// Live channels (all threads).
    pub fn channel_count(&self) -> usize {
        self.0.lock().channels
    }
}

/// One user's reference to a thread's channel. Dropping it puts the reference.
pub struct IoChannel<C: Send + 'static> {
    ptr: NonNull<ChannelInner<C>>,
    owner: ThreadHandle,
    _c: PhantomData<C>,
}

// SAFETY: the handle may travel with its framework thread between OS threads (pollers
// and messages are `Send`). Every access to the entry checks that the calling OS thread
// currently runs the owning framework thread (`ctx`, `clone`), and a drop elsewhere is
// forwarded to the owner as a message; so the entry is only touched by its thread.
unsafe impl<C: Send + 'static> Send for IoChannel<C> {}

struct SendPtr<C: Send + 'static>(NonNull<ChannelInner<C>>);
// SAFETY: carried to the owning thread and only dereferenced there (`put`).
unsafe impl<C: Send + 'static> Send for SendPtr<C> {}

fn on_owner(owner: &ThreadHandle) -> bool {
    thread::is_current(owner)
}

impl<C: Send + 'static> IoChannel<C> {
    /// The per-thread context. Panics if called off the channel's thread (that would be
    /// a data race on the context, a programming error like a double `RefCell` borrow).
    pub fn ctx(&self) -> &C {
        assert!(
            on_owner(&self.owner),
            "I/O channel of '{}' used off its thread {}",
            // SAFETY: reading the immutable device name; the entry is alive while
            // this handle holds a reference.
            unsafe { self.ptr.as_ref() }.dev.name,
            self.owner.id()
        );
        // SAFETY: on the owning thread (checked); the entry lives while refs > 0.
        &unsafe { self.ptr.as_ref() }.ctx
    }

    /// Whether the calling thread is the channel's (where [`ctx`](Self::ctx) may be
    /// used).
    pub fn on_owner_thread(&self) -> bool {
        on_owner(&self.owner)
    }

    /// The thread the channel belongs to.
    pub fn thread(&self) -> &ThreadHandle {
        &self.owner
    }

    /// Another reference (on the channel's thread; `None` elsewhere).
    pub fn try_clone(&self) -> Option<IoChannel<C>> {
        if !on_owner(&self.owner) {
            return None;
        }
        // SAFETY: on the owning thread; the entry is alive.
        let inner = unsafe { self.ptr.as_ref() };
        inner.refs.set(inner.refs.get() + 1);
        Some(IoChannel {
            ptr: self.ptr,
            owner: self.owner.clone(),
            _c: PhantomData,
        })
    }
}

/// Put one reference; at zero, destroy from a message (unless re-got meanwhile).
fn put<C: Send + 'static>(p: NonNull<ChannelInner<C>>, owner: ThreadHandle) {
    // SAFETY: called on the owning thread with a reference still counted.
    let inner = unsafe { p.as_ref() };
    let left = inner.refs.get() - 1;
    inner.refs.set(left);
    if left > 0 {
        return;
    }
    let id = inner.dev.id;
    let m: Msg = Box::new(move || {
        let entry = thread::with_current(|t| {
            let mut chans = t.channels.borrow_mut();
            let pos = chans
                .iter()
                .position(|c| c.device_id() == id && c.refs() == 0)?;
            Some(chans.swap_remove(pos))
        })
        .flatten();
        if let Some(e) = entry {
            e.destroy();
        }
    });
    // Refused only if the thread exited, which destroyed its channels already.
    let _ = owner.send_reliable(m);
}

impl<C: Send + 'static> Drop for IoChannel<C> {
    fn drop(&mut self) {
        let owner = self.owner.clone();
        if on_owner(&owner) {
            put(self.ptr, owner);
        } else {
            let p = SendPtr(self.ptr);
            let o2 = owner.clone();
            let _ = owner.send_reliable(Box::new(move || {
                let p = p;
                put(p.0, o2);
            }));
        }
    }
}
