//! Pluggable backends ("mempool ops") that hold the free objects, and the process-local
//! table that finds them by name.
//!
//! A backend keeps its state in shared memory it allocates itself ([`MempoolOps::alloc`]
//! returns its address, recorded in the pool header as `pool_data` with the ops name);
//! every process then makes its own handle to it with [`MempoolOps::attach`]. The
//! built-in backends:
//!
//! | name | state | thread rule |
//! |------|-------|-------------|
//! | `ring_mp_mc` (default) | a `ring::Ring<VirtAddr>` in memzone `MPB_<pool>`, multi-producer/multi-consumer (optimistic consumers, `MC_OPT_DEQ`), both sides on one line | any threads, any processes |
//! | `ring_sp_sc` | the same ring with `SP_ENQ \| SC_DEQ` | one thread at a time uses the whole pool (creation is `unsafe`) |
//! | `stack` | a spinlock-protected LIFO in memzone `MPB_<pool>` ([`crate::stack`]) | any threads, any processes |
//!
//! Further backends are registered with [`register_ops`]; a process that attaches to a pool
//! must have registered the pool's backend under the same name first. The built-ins get
//! static dispatch on the hot path; registered ones are called through a trait object, as
//! DPDK calls its ops through a function table.

use std::sync::Mutex;

use eal::{Eal, VirtAddr};
use ring::{MpMcRing, MpOptRing, Ring, RingFlags};

use crate::cache::BulkBackend;
use crate::memzone::{backend_mz_name, mz_free, mz_reserve};
use crate::stack::{stack_memsize, Stack, StackShared};
use crate::{Error, PoolFlags, Result};

/// Longest backend name.
pub const OPS_NAME_MAX: usize = 31;
/// How many backends (built-in plus registered) one process can know.
pub const OPS_MAX: usize = 16;

/// What [`MempoolOps::alloc`] is told about the pool.
#[derive(Debug, Clone, Copy)]
pub struct OpsConfig<'a> {
    /// The pool's name (backends derive their memzone names from it).
    pub pool_name: &'a str,
    /// Number of objects the backend must be able to hold at once.
    pub n: u32,
    /// NUMA socket for the backend's memory, `None` for any.
    pub socket: Option<u32>,
    /// The pool's flags.
    pub flags: PoolFlags,
}

/// A backend type: allocates, attaches to and frees the shared state that holds free objects.
///
/// # Safety
/// The pool's correctness (no object handed out twice, none lost) rests on the handles
/// this trait makes: [`OpsHandle::enqueue_bulk`] and [`OpsHandle::dequeue_bulk`] must be
/// all-or-nothing, must hand out exactly the objects enqueued (no duplicates, no
/// inventions), must be safe to call from every thread and process that the backend's
/// [`thread_safe`](MempoolOps::thread_safe) answer allows, and the state must hold at
/// least `OpsConfig::n` objects.
pub unsafe trait MempoolOps: Send + Sync + 'static {
    /// The name pools select the backend by (at most [`OPS_NAME_MAX`] bytes).
    fn name(&self) -> &'static str;

    /// False if only one thread at a time may use a pool on this backend (then creating
    /// or looking up such a pool is `unsafe`).
    fn thread_safe(&self) -> bool {
        true
    }

    /// Create the shared state for a new pool; return its address (recorded in the pool
    /// header) and length in bytes.
    fn alloc(&self, eal: &Eal, cfg: &OpsConfig<'_>) -> Result<(VirtAddr, u64)>;

    /// Make this process's handle to state made by `alloc` (here or in another process).
    /// The handle lives as long as the process (a detached pool keeps it): it must not
    /// keep an [`Eal`] clone, or the EAL could never tear down.
    ///
    /// # Safety
    /// `pool_data`/`len` are what `alloc` of this backend returned, for a pool that is
    /// not freed while the handle lives.
    unsafe fn attach(
        &self,
        eal: &Eal,
        pool_name: &str,
        pool_data: VirtAddr,
        len: u64,
    ) -> Result<Box<dyn OpsHandle>>;

    /// Release the shared state. No handle to it is used afterwards (any process).
    /// The default frees the memzone named after the pool that this crate's ring and
    /// stack backends reserve in `alloc`; a backend keeping its state elsewhere
    /// overrides it.
    ///
    /// # Safety
    /// As `attach`, and the state is not used by anyone any more.
    unsafe fn free(&self, eal: &Eal, pool_name: &str, pool_data: VirtAddr) -> Result<()> {
        let _ = pool_data;
        free_backend(eal, self.name(), pool_name)
    }
}

/// A process's handle to one backend state (see [`MempoolOps`] for the rules).
pub trait OpsHandle: Send + Sync {
    /// Enqueue all of `objs` or none; true on success.
    fn enqueue_bulk(&self, objs: &[VirtAddr]) -> bool;
    /// Dequeue exactly `out.len()` objects or none; true on success.
    fn dequeue_bulk(&self, out: &mut [VirtAddr]) -> bool;
    /// Objects held now (a snapshot).
    fn count(&self) -> u32;
}

// ------------------------------------------------------------------------------------
// Built-ins
// ------------------------------------------------------------------------------------

fn reserve_backend(
    eal: &Eal,
    ops: &str,
    cfg: &OpsConfig<'_>,
    len: usize,
    align: usize,
) -> Result<eal::memzone::Memzone> {
    mz_reserve(eal, &backend_mz_name(cfg.pool_name), len, cfg.socket, align).map_err(|e| {
        Error::BackendSource {
            op: "allocate",
            ops: ops.into(),
            name: cfg.pool_name.into(),
            source: Box::new(e),
        }
    })
}

fn free_backend(eal: &Eal, ops: &str, pool: &str) -> Result<()> {
    mz_free(eal, &backend_mz_name(pool)).map_err(|e| Error::BackendSource {
        op: "free",
        ops: ops.into(),
        name: pool.into(),
        source: Box::new(e),
    })
}

/// The ring backends (`ring_mp_mc`, `ring_sp_sc`).
#[derive(Debug)]
pub struct RingOps {
    single: bool,
}

/// `ring_mp_mc`: multi-producer/multi-consumer ring (the default backend).
pub static RING_MP_MC: RingOps = RingOps { single: false };
/// `ring_sp_sc`: single-producer/single-consumer ring.
pub static RING_SP_SC: RingOps = RingOps { single: true };
/// `stack`: spinlock-protected LIFO.
pub static STACK: StackOps = StackOps;

impl RingOps {
    /// The multi ring keeps both sides on one cache line (`RingFlags::ONE_LINE`): every
    /// thread of a pool both gets and puts, and a multi side reads the other side's tail
    /// on every call anyway, so one line per operation instead of two (two cores without
    /// a cache: about 1.3 times the default layout's rate, DESIGN.md). Its consumers are
    /// optimistic (`RingFlags::MC_OPT_DEQ`): a get of up to four objects copies them
    /// before it claims them, so nothing sits between its claim and its tail store
    /// (two cores without a cache, dpdk-test's autotest: that group from 1.26 to 1.58 of
    /// DPDK's rate, DESIGN.md); larger gets claim first, as before. The single ring
    /// keeps DPDK's layout: its sides cache the other tail, and a pool that one thread
    /// fills and another drains is a pipeline, where the one line costs (0.6 at bulk 1).
    fn flags(&self) -> RingFlags {
        if self.single {
            RingFlags::EXACT_SZ | RingFlags::SP_ENQ | RingFlags::SC_DEQ
        } else {
            RingFlags::EXACT_SZ | RingFlags::ONE_LINE | RingFlags::MC_OPT_DEQ
        }
    }

    /// # Safety
    /// As [`MempoolOps::attach`].
    unsafe fn attach_ring(
        &self,
        pool_name: &str,
        pool_data: VirtAddr,
        len: u64,
    ) -> Result<Ring<VirtAddr>> {
        // SAFETY: forwarded: the memory is the live ring made by `alloc` for `VirtAddr`
        // elements; the single-side contract was accepted by whoever created or looked up
        // the pool (the `unsafe` constructors, since `thread_safe` is false for sp/sc).
        unsafe { Ring::<VirtAddr>::attach(pool_data.as_ptr::<u8>(), len as usize) }.map_err(|e| {
            Error::BackendSource {
                op: "attach",
                ops: self.name().into(),
                name: pool_name.into(),
                source: Box::new(e),
            }
        })
    }
}

// SAFETY: a ring bulk operation is all-or-nothing and moves exactly the elements enqueued;
// the multi-producer/consumer ring is safe from any thread and process; the sp/sc one
// reports `thread_safe() == false`; EXACT_SZ gives capacity exactly `n`.
unsafe impl MempoolOps for RingOps {
    fn name(&self) -> &'static str {
        if self.single {
            "ring_sp_sc"
        } else {
            "ring_mp_mc"
        }
    }

    fn thread_safe(&self) -> bool {
        !self.single
    }

    fn alloc(&self, eal: &Eal, cfg: &OpsConfig<'_>) -> Result<(VirtAddr, u64)> {
        let flags = self.flags();
        let len = Ring::<VirtAddr>::memsize(cfg.n, flags).map_err(|e| Error::BackendSource {
            op: "size",
            ops: self.name().into(),
            name: cfg.pool_name.into(),
            source: Box::new(e),
        })?;
        let mz = reserve_backend(eal, self.name(), cfg, len, ring::RING_ALIGN)?;
        // SAFETY: the memzone is fresh, 128-aligned, `len` bytes, and lives until `free`.
        // Single-side contract: see `attach_ring`. `VirtAddr` is a `repr(transparent)`
        // u64, so it has no padding, as `MC_OPT_DEQ` requires.
        let r = unsafe {
            Ring::<VirtAddr>::init_in(
                mz.as_ptr::<u8>(),
                len,
                &backend_mz_name(cfg.pool_name),
                cfg.n,
                flags,
            )
        };
        match r {
            Ok(_) => Ok((mz.addr(), len as u64)),
            Err(e) => {
                let _ = free_backend(eal, self.name(), cfg.pool_name);
                Err(Error::BackendSource {
                    op: "initialise",
                    ops: self.name().into(),
                    name: cfg.pool_name.into(),
                    source: Box::new(e),
                })
            }
        }
    }

    unsafe fn attach(
        &self,
        _eal: &Eal,
        pool_name: &str,
        pool_data: VirtAddr,
        len: u64,
    ) -> Result<Box<dyn OpsHandle>> {
        // SAFETY: forwarded contract.
        let r = unsafe { self.attach_ring(pool_name, pool_data, len) }?;
        Ok(Box::new(RingHandle(r)))
    }
}

struct RingHandle(Ring<VirtAddr>);

impl OpsHandle for RingHandle {
    fn enqueue_bulk(&self, objs: &[VirtAddr]) -> bool {
        self.0.enqueue_bulk(objs).n != 0 || objs.is_empty()
    }
    fn dequeue_bulk(&self, out: &mut [VirtAddr]) -> bool {
        self.0.dequeue_bulk(out).n != 0 || out.is_empty()
    }
    fn count(&self) -> u32 {
        self.0.count()
    }
}

/// The `stack` backend.
#[derive(Debug)]
pub struct StackOps;

impl StackOps {
    fn check(pool_name: &str, pool_data: VirtAddr, len: u64) -> Result<Stack> {
        let bad = |why: String| Error::Backend {
            op: "attach",
            ops: "stack".into(),
            name: pool_name.into(),
            why,
        };
        if !pool_data.0.is_multiple_of(64) || (len as usize) < core::mem::size_of::<StackShared>() {
            return Err(bad(format!(
                "state at {pool_data:?} of {len} bytes is misaligned or short"
            )));
        }
        // SAFETY: caller of `attach` guarantees the state is live for the pool's lifetime;
        // aligned and long enough for the header (checked above).
        let hdr = unsafe { &*pool_data.as_ptr::<StackShared>() };
        hdr.validate().map_err(bad)?;
        if (stack_memsize(hdr.capacity()) as u64) > len {
            return Err(bad("capacity larger than the memory".into()));
        }
        // SAFETY: as above: a validated stack whose `len` bytes stay mapped for the pool's
        // lifetime (the `attach` contract).
        unsafe { Stack::from_raw(pool_data.as_ptr::<StackShared>()) }
            .ok_or_else(|| bad("null state address".into()))
    }
}

// SAFETY: push/pop are all-or-nothing under one lock shared by every process (the lock
// word is in the shared state); capacity is exactly `n`.
unsafe impl MempoolOps for StackOps {
    fn name(&self) -> &'static str {
        "stack"
    }

    fn alloc(&self, eal: &Eal, cfg: &OpsConfig<'_>) -> Result<(VirtAddr, u64)> {
        let len = stack_memsize(cfg.n);
        let mz = reserve_backend(eal, self.name(), cfg, len, 64)?;
        // SAFETY: fresh 64-aligned memzone of `len` bytes, unshared until the pool is
        // published.
        unsafe { StackShared::init_in(mz.as_ptr::<u8>(), cfg.n) };
        Ok((mz.addr(), len as u64))
    }

    unsafe fn attach(
        &self,
        _eal: &Eal,
        pool_name: &str,
        pool_data: VirtAddr,
        len: u64,
    ) -> Result<Box<dyn OpsHandle>> {
        let s = Self::check(pool_name, pool_data, len)?;
        Ok(Box::new(StackHandle(s)))
    }
}

struct StackHandle(Stack);

impl OpsHandle for StackHandle {
    fn enqueue_bulk(&self, objs: &[VirtAddr]) -> bool {
        self.0.push_bulk(objs)
    }
    fn dequeue_bulk(&self, out: &mut [VirtAddr]) -> bool {
        self.0.pop_bulk(out)
    }
    fn count(&self) -> u32 {
        self.0.count()
    }
}

// ------------------------------------------------------------------------------------
// Process-local table
// ------------------------------------------------------------------------------------

static BUILTIN: [&dyn MempoolOps; 3] = [&RING_MP_MC, &RING_SP_SC, &STACK];
static REGISTERED: Mutex<Vec<&'static dyn MempoolOps>> = Mutex::new(Vec::new());

/// Register a backend under its [`name`](MempoolOps::name) in this process.
///
/// Every process that uses pools on this backend must register it before creating or
/// looking them up. Refused if the name is taken, too long, or the table is full.
pub fn register_ops(ops: &'static dyn MempoolOps) -> Result<()> {
    let name = ops.name();
    let err = |why| Error::OpsRegister {
        name: name.into(),
        why,
    };
    if name.is_empty() || name.len() > OPS_NAME_MAX {
        return Err(err("name must be 1..=31 bytes"));
    }
    let mut reg = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
    if BUILTIN.iter().chain(reg.iter()).any(|o| o.name() == name) {
        return Err(err("name already registered"));
    }
    if BUILTIN.len() + reg.len() >= OPS_MAX {
        return Err(err("ops table full"));
    }
    reg.push(ops);
    Ok(())
}

/// The backend registered under `name` in this process.
pub fn ops_by_name(name: &str) -> Result<&'static dyn MempoolOps> {
    if let Some(o) = BUILTIN.iter().find(|o| o.name() == name) {
        return Ok(*o);
    }
    let reg = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
    reg.iter()
        .find(|o| o.name() == name)
        .copied()
        .ok_or_else(|| Error::UnknownOps(name.into()))
}

/// Names of every backend known to this process, built-ins first.
pub fn ops_names() -> Vec<&'static str> {
    let reg = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
    BUILTIN.iter().chain(reg.iter()).map(|o| o.name()).collect()
}

/// This process's handle to a pool's backend: static dispatch for the built-ins.
pub(crate) enum Backend {
    /// `ring_mp_mc` as this version makes it: multi producers, optimistic consumers,
    /// both protocols compiled in (no per-call mode dispatch).
    RingMpOpt(MpOptRing<VirtAddr>),
    /// `ring_mp_mc` with a plain multi consumer side (a ring laid out by hand, or by a
    /// build before the optimistic consumer), MP/MC compiled in.
    RingMpMc(MpMcRing<VirtAddr>),
    /// `ring_sp_sc`: mode-following calls.
    Ring(Ring<VirtAddr>),
    Stack(Stack),
    Custom(Box<dyn OpsHandle>),
}

impl Backend {
    /// # Safety
    /// As [`MempoolOps::attach`].
    pub(crate) unsafe fn attach(
        ops: &'static dyn MempoolOps,
        eal: &Eal,
        pool_name: &str,
        pool_data: VirtAddr,
        len: u64,
    ) -> Result<Backend> {
        let name = ops.name();
        if name == RING_MP_MC.name() {
            // SAFETY: forwarded contract.
            let r = unsafe { RING_MP_MC.attach_ring(pool_name, pool_data, len) }?;
            // A multi producer side and an optimistic (this version) or multi consumer
            // side; anything else is treated as a plain ring (still correct, one dispatch
            // more).
            Ok(match r.into_mp_opt() {
                Ok(m) => Backend::RingMpOpt(m),
                Err(r) => match r.into_mp_mc() {
                    Ok(m) => Backend::RingMpMc(m),
                    Err(r) => Backend::Ring(r),
                },
            })
        } else if name == RING_SP_SC.name() {
            // SAFETY: forwarded contract.
            Ok(Backend::Ring(unsafe {
                RING_SP_SC.attach_ring(pool_name, pool_data, len)
            }?))
        } else if name == STACK.name() {
            Ok(Backend::Stack(StackOps::check(pool_name, pool_data, len)?))
        } else {
            // SAFETY: forwarded contract.
            Ok(Backend::Custom(unsafe {
                ops.attach(eal, pool_name, pool_data, len)
            }?))
        }
    }

    #[inline]
    pub(crate) fn count(&self) -> u32 {
        match self {
            Backend::RingMpOpt(r) => r.count(),
            Backend::RingMpMc(r) => r.count(),
            Backend::Ring(r) => r.count(),
            Backend::Stack(s) => s.count(),
            Backend::Custom(h) => h.count(),
        }
    }
}

impl BulkBackend for Backend {
    #[inline(always)]
    fn enqueue(&self, objs: &[VirtAddr]) -> bool {
        match self {
            Backend::RingMpOpt(r) => r.enqueue_bulk(objs).n != 0 || objs.is_empty(),
            Backend::RingMpMc(r) => r.enqueue_bulk(objs).n != 0 || objs.is_empty(),
            Backend::Ring(r) => r.enqueue_bulk(objs).n != 0 || objs.is_empty(),
            Backend::Stack(s) => s.push_bulk(objs),
            Backend::Custom(h) => h.enqueue_bulk(objs),
        }
    }

    #[inline(always)]
    fn dequeue(&self, out: &mut [VirtAddr]) -> bool {
        match self {
            Backend::RingMpOpt(r) => r.dequeue_bulk(out).n != 0 || out.is_empty(),
            Backend::RingMpMc(r) => r.dequeue_bulk(out).n != 0 || out.is_empty(),
            Backend::Ring(r) => r.dequeue_bulk(out).n != 0 || out.is_empty(),
            Backend::Stack(s) => s.pop_bulk(out),
            Backend::Custom(h) => h.dequeue_bulk(out),
        }
    }
}
