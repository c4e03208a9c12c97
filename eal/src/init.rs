//! The [`Eal`] handle: initialisation, accessors, memzones, heap, lcores, clean-up.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;

use crate::addr::{Iova, VirtAddr};
use crate::args::{EalArgs, IovaMode, ProcType};
use crate::config::{self, put_str, SharedConfig};
use crate::error::{Error, Result};
use crate::heap::{HeapStats, MemCore};
use crate::hugepage::SysRoots;
use crate::lcore::{self, CpuTopology, LcoreSet};
use crate::memory::{self, Backing, Memory, MemoryRequest, Memseg, MemsegList};
use crate::memzone::{Memzone, MemzoneFlags, ZoneReq};
use crate::pci::{self, PciDevice};
use crate::runtime::RuntimeDir;

/// Knobs that are not EAL command-line options: where the system trees are (tests point
/// them at fakes) and the base-address hint.
#[derive(Clone, Debug)]
pub struct EalOptions {
    /// Base-address hint of the EAL area; `None` = [`memory::DEFAULT_BASE_VIRTADDR`].
    pub base_virtaddr: Option<u64>,
    /// Root for runtime directories; `None` = the default search (see [`crate::runtime`]).
    pub runtime_root: Option<PathBuf>,
    /// `/proc` and `/sys` (hugepages, topology, PCI).
    pub roots: SysRoots,
    /// Where `--no-huge` memory files go (`/dev/shm`).
    pub shm_dir: PathBuf,
}

impl Default for EalOptions {
    fn default() -> Self {
        EalOptions {
            base_virtaddr: None,
            runtime_root: None,
            roots: SysRoots::default(),
            shm_dir: PathBuf::from("/dev/shm"),
        }
    }
}

struct Inner {
    // Field order is drop order: workers stop before memory goes away, memory goes away
    // before the runtime directory and the primary lock.
    lcores: Option<LcoreSet>,
    core: Option<MemCore>,
    runtime: RuntimeDir,
    args: EalArgs,
    pci: Vec<PciDevice>,
}

impl Inner {
    fn core(&self) -> &MemCore {
        self.core.as_ref().expect("core lives until teardown, which needs the last handle")
    }

    fn lcores(&self) -> &LcoreSet {
        self.lcores.as_ref().expect("lcores live until teardown, which needs the last handle")
    }

    fn teardown(&mut self) -> Result<()> {
        if let Some(mut l) = self.lcores.take() {
            l.shutdown();
        }
        let mut first = None;
        if let Some(mut c) = self.core.take() {
            if let Err(e) = c.memory.release() {
                first.get_or_insert(e);
            }
            drop(c);
        }
        if let Err(e) = self.runtime.remove() {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// The environment abstraction layer of one process: memory, memzones, heap, lcores,
/// PCI devices. A cheap-to-clone handle (`Arc` inside), `Send + Sync`. Everything it
/// made is removed when the last handle drops or on [`Eal::cleanup`].
#[derive(Clone)]
pub struct Eal {
    inner: Arc<Inner>,
}

impl fmt::Debug for Eal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Eal")
            .field("file_prefix", &self.file_prefix())
            .field("runtime_dir", &self.runtime_dir())
            .field("base", &self.base_virtaddr())
            .field("len", &self.memory_len())
            .finish_non_exhaustive()
    }
}

impl Eal {
    /// Parse DPDK-style `argv` (`argv[0]` is the program) and initialise. Returns the
    /// handle and the application arguments after `--`.
    pub fn init(argv: &[String]) -> Result<(Eal, Vec<String>)> {
        let (args, rest) = EalArgs::parse(argv)?;
        Ok((Eal::init_with(args)?, rest))
    }

    /// Initialise from parsed arguments with default [`EalOptions`].
    pub fn init_with(args: EalArgs) -> Result<Eal> {
        Eal::init_with_options(args, EalOptions::default())
    }

    /// Initialise. Order: runtime dir + primary lock → memory → shared config → lcores →
    /// PCI scan. Any failure unwinds every earlier step (RAII): no hugepage files, shm
    /// files or runtime directory are left behind.
    pub fn init_with_options(args: EalArgs, opts: EalOptions) -> Result<Eal> {
        match args.proc_type {
            ProcType::Primary => {}
            ProcType::Secondary => {
                return Err(Error::Unsupported { what: "start as a secondary process (--proc-type secondary)".into() })
            }
            ProcType::Auto => {}
        }
        crate::log::set_level(args.log_level);
        let topo = CpuTopology::read(&opts.roots.sys)?;
        let (lcore_list, main_lcore) = args.resolve_lcores(&topo)?;
        let main_cpu = lcore_list.iter().find(|l| l.0 == main_lcore).map(|l| l.1).unwrap_or(0);
        let main_socket = topo.get(main_cpu).map(|c| c.numa_node).unwrap_or(0);

        // 1. Runtime directory and the primary lock.
        let runtime = match RuntimeDir::acquire_primary(&args.file_prefix, opts.runtime_root.as_deref()) {
            Err(Error::PrefixInUse { .. }) if args.proc_type == ProcType::Auto => {
                return Err(Error::Unsupported {
                    what: format!("attach as secondary to the live primary of '{}' (--proc-type auto)", args.file_prefix),
                });
            }
            r => r?,
        };
        let stale = memory::reclaim_stale(&args.file_prefix, &opts.roots, &opts.shm_dir)?;
        if !stale.is_empty() {
            crate::log_notice!("reclaimed {} stale file(s) of a dead primary with prefix '{}'", stale.len(), args.file_prefix);
        }
        if let Some(root) = runtime.path().parent() {
            let swept = crate::runtime::reclaim_dead_prefixes(root, &args.file_prefix, |p| {
                memory::reclaim_stale(p, &opts.roots, &opts.shm_dir)
            });
            if !swept.is_empty() {
                crate::log_notice!("reclaimed the leftovers of {} dead primaries: {}", swept.len(), swept.join(", "));
            }
        }

        // 2. Memory.
        let req = MemoryRequest {
            prefix: args.file_prefix.clone(),
            total: args.mem_mb.map(|m| m << 20),
            socket_mem: args.socket_mem.as_ref().map(|v| v.iter().map(|m| m << 20).collect()),
            huge_dir: args.huge_dir.clone(),
            no_huge: args.no_huge,
            iova_mode: args.iova_mode,
            base_hint: opts.base_virtaddr,
            roots: opts.roots.clone(),
            shm_dir: opts.shm_dir.clone(),
            default_socket: main_socket,
        };
        let memory = Memory::reserve(&req)?;

        // 3. Shared config.
        let file = runtime
            .config_file()
            .ok_or_else(|| Error::io("use", "shared config", std::io::Error::other("lock not held")))?;
        let cfg = SharedConfig::create(file, memory.memsegs(), |b| fill_config(b, &memory, &args.file_prefix))?;
        let core = MemCore { memory, config: cfg };
        core.init_heaps();

        // 4. Lcores.
        let lcores = LcoreSet::start(&lcore_list, main_lcore, &topo)?;

        // 5. PCI.
        let pci = pci::scan(&opts.roots.sys, &args.pci_filter())?;

        crate::log_info!(
            "EAL: prefix '{}', {} MiB at {} ({}), IOVA {:?}, {} lcores, {} PCI devices",
            args.file_prefix,
            core.memory.len() >> 20,
            core.memory.base(),
            if core.memory.no_huge() { "no-huge" } else { "hugepages" },
            core.memory.iova_mode(),
            lcores.count(),
            pci.len()
        );
        Ok(Eal { inner: Arc::new(Inner { lcores: Some(lcores), core: Some(core), runtime, args, pci }) })
    }

    /// Tear everything down now and report the first clean-up error. Fails with
    /// [`Error::InUse`] (doing nothing) while other clones of this handle exist.
    pub fn cleanup(self) -> Result<()> {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => inner.teardown(),
            Err(arc) => Err(Error::InUse { what: "clean up the EAL", count: Arc::strong_count(&arc) - 1 }),
        }
    }

    // ---- configuration ----

    /// The arguments in force.
    pub fn args(&self) -> &EalArgs {
        &self.inner.args
    }

    /// `--file-prefix`.
    pub fn file_prefix(&self) -> &str {
        &self.inner.args.file_prefix
    }

    /// The runtime directory (holds the shared config).
    pub fn runtime_dir(&self) -> &Path {
        self.inner.runtime.path()
    }

    /// The shared config file.
    pub fn config_path(&self) -> PathBuf {
        self.inner.runtime.config_path()
    }

    // ---- memory ----

    /// IOVA mode in force.
    pub fn iova_mode(&self) -> IovaMode {
        self.inner.core().memory.iova_mode()
    }

    /// True if running with `--no-huge`.
    pub fn no_huge(&self) -> bool {
        self.inner.core().memory.no_huge()
    }

    /// True if devices may DMA to EAL memory (hugepage-backed and pinned).
    pub fn dma_capable(&self) -> bool {
        self.inner.core().memory.dma_capable()
    }

    /// Base of the EAL virtual area (the same in every process of the group).
    pub fn base_virtaddr(&self) -> VirtAddr {
        self.inner.core().memory.base()
    }

    /// Length of the EAL virtual area.
    pub fn memory_len(&self) -> u64 {
        self.inner.core().memory.len()
    }

    /// All memsegs, ascending address.
    pub fn memsegs(&self) -> &[Memseg] {
        self.inner.core().memory.memsegs()
    }

    /// Memseg lists (one per socket run).
    pub fn memseg_lists(&self) -> &[MemsegList] {
        self.inner.core().memory.lists()
    }

    /// Files backing EAL memory (hugepage files or the shm file).
    pub fn memory_files(&self) -> &[PathBuf] {
        self.inner.core().memory.files()
    }

    /// IOVA of an address in EAL memory, `None` outside it.
    pub fn virt2iova(&self, va: VirtAddr) -> Option<Iova> {
        self.inner.core().memory.virt2iova(va)
    }

    // ---- lcores ----

    /// Number of lcores (main included).
    pub fn lcore_count(&self) -> usize {
        self.inner.lcores().count()
    }

    /// The main lcore id.
    pub fn main_lcore(&self) -> u32 {
        self.inner.lcores().main_lcore()
    }

    /// Worker lcore ids, ascending.
    pub fn worker_lcores(&self) -> Vec<u32> {
        self.inner.lcores().worker_ids()
    }

    /// All lcore ids, ascending.
    pub fn lcore_ids(&self) -> Vec<u32> {
        self.inner.lcores().lcore_ids()
    }

    /// NUMA socket of an lcore.
    pub fn lcore_socket(&self, lcore: u32) -> Result<u32> {
        self.inner.lcores().socket_of(lcore)
    }

    /// Run `f` on worker `lcore` (which must be idle). Collect the result with
    /// [`wait_lcore`](Self::wait_lcore).
    pub fn remote_launch<F>(&self, lcore: u32, f: F) -> Result<()>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        self.inner.lcores().remote_launch(lcore, Box::new(f))
    }

    /// Wait for the job on `lcore` and return its result.
    pub fn wait_lcore(&self, lcore: u32) -> Result<i32> {
        self.inner.lcores().wait_lcore(lcore)
    }

    /// Wait for every worker.
    pub fn mp_wait_lcore(&self) -> Vec<(u32, Result<i32>)> {
        self.inner.lcores().mp_wait_lcore()
    }

    fn preferred_socket(&self) -> Option<u32> {
        lcore::lcore_id().and_then(|l| self.inner.lcores().socket_of(l).ok())
    }

    // ---- PCI ----

    /// PCI devices found at init (after `-a`/`-b`/`--no-pci`).
    pub fn pci_devices(&self) -> &[PciDevice] {
        &self.inner.pci
    }

    // ---- memzones ----

    /// Reserve a memzone (cache-line aligned, no boundary).
    pub fn memzone_reserve(&self, name: &str, len: usize, socket: Option<u32>, flags: MemzoneFlags) -> Result<Memzone> {
        self.memzone_reserve_bounded(name, len, socket, flags, 0, 0)
    }

    /// Reserve a memzone aligned to `align` (a power of two; 0 = 64).
    pub fn memzone_reserve_aligned(
        &self,
        name: &str,
        len: usize,
        socket: Option<u32>,
        flags: MemzoneFlags,
        align: usize,
    ) -> Result<Memzone> {
        self.memzone_reserve_bounded(name, len, socket, flags, align, 0)
    }

    /// Reserve a memzone aligned to `align` that does not cross a multiple of `bound`
    /// (a power of two ≥ `len`; 0 = none).
    pub fn memzone_reserve_bounded(
        &self,
        name: &str,
        len: usize,
        socket: Option<u32>,
        flags: MemzoneFlags,
        align: usize,
        bound: usize,
    ) -> Result<Memzone> {
        self.inner.core().memzone_reserve(ZoneReq { name, len, socket, flags, align, bound }, self.preferred_socket())
    }

    /// Find a memzone by name.
    pub fn memzone_lookup(&self, name: &str) -> Option<Memzone> {
        self.inner.core().memzone_lookup(name)
    }

    /// Free a memzone. A stale handle gets [`Error::NotFound`].
    pub fn memzone_free(&self, z: &Memzone) -> Result<()> {
        self.inner.core().memzone_free(z)
    }

    /// Every memzone.
    pub fn memzone_walk(&self) -> Vec<Memzone> {
        self.inner.core().memzone_walk()
    }

    /// Number of memzones.
    pub fn memzone_count(&self) -> usize {
        self.inner.core().memzone_count()
    }

    /// Print every memzone.
    pub fn memzone_dump(&self, w: &mut dyn Write) -> std::io::Result<()> {
        self.inner.core().memzone_dump(w)
    }

    // ---- heap ----

    /// Allocate `size` bytes aligned to `align` (0 = 64), preferably on the calling
    /// lcore's socket.
    pub fn malloc(&self, size: usize, align: usize) -> Result<NonNull<u8>> {
        self.inner.core().malloc(size, align, None, self.preferred_socket(), false)
    }

    /// [`malloc`](Self::malloc), zero-filled.
    pub fn zmalloc(&self, size: usize, align: usize) -> Result<NonNull<u8>> {
        self.inner.core().malloc(size, align, None, self.preferred_socket(), true)
    }

    /// Allocate on `socket` (any socket if `None`).
    pub fn malloc_socket(&self, size: usize, align: usize, socket: Option<u32>) -> Result<NonNull<u8>> {
        self.inner.core().malloc(size, align, socket, self.preferred_socket(), false)
    }

    /// Zero-filled [`malloc_socket`](Self::malloc_socket).
    pub fn zmalloc_socket(&self, size: usize, align: usize, socket: Option<u32>) -> Result<NonNull<u8>> {
        self.inner.core().malloc(size, align, socket, self.preferred_socket(), true)
    }

    /// Zero-filled, IOVA-contiguous memory a device may DMA to; returns the pointer and
    /// its IOVA. [`Error::NoDma`] under `--no-huge`. Free with [`free`](Self::free).
    pub fn malloc_dma(&self, size: usize, align: usize, socket: Option<u32>) -> Result<(NonNull<u8>, Iova)> {
        let p = self.inner.core().malloc_dma(size, align, socket, self.preferred_socket())?;
        let iova = self.virt2iova(VirtAddr::from_ptr(p.as_ptr())).unwrap_or(Iova::BAD);
        Ok((p, iova))
    }

    /// Resize an allocation (allocate, copy, free). A null `ptr` is `malloc`.
    ///
    /// # Safety
    /// `ptr` must be null or a live pointer from this EAL's heap, and nothing may use it
    /// after a successful call.
    pub unsafe fn realloc(&self, ptr: *mut u8, size: usize, align: usize) -> Result<NonNull<u8>> {
        if ptr.is_null() {
            return self.malloc(size, align);
        }
        let old = self.inner.core().alloc_len(ptr).ok_or(Error::BadFree { addr: ptr as usize as u64 })?;
        let new = self.malloc(size, align)?;
        // SAFETY: both are live, distinct heap blocks of at least `min(old, size)` bytes.
        unsafe { std::ptr::copy_nonoverlapping(ptr, new.as_ptr(), (old as usize).min(size)) };
        // SAFETY: forwarded caller contract: `ptr` is a live heap pointer, now unused.
        unsafe { self.free(ptr)? };
        Ok(new)
    }

    /// Return memory to the heap. Null is accepted and ignored. Pointers the heap did not
    /// hand out (or already took back) are refused with [`Error::BadFree`] where the
    /// inline header shows it.
    ///
    /// # Safety
    /// Nothing may use the allocation after the call.
    pub unsafe fn free(&self, ptr: *mut u8) -> Result<()> {
        self.inner.core().free(ptr)
    }

    /// Heap statistics of `socket`, `None` if it has no memory.
    pub fn heap_stats(&self, socket: u32) -> Option<HeapStats> {
        self.inner.core().stats(socket)
    }

    /// Sockets that have EAL memory.
    pub fn heap_sockets(&self) -> Vec<u32> {
        self.inner.core().sockets()
    }

    /// Print heap statistics per socket.
    pub fn heap_dump(&self, w: &mut dyn Write) -> std::io::Result<()> {
        self.inner.core().dump(w)
    }

    /// Verify every heap invariant (block tiling, boundary tags, free list); `Err`
    /// describes the first violation. For tests and debugging; takes the lock.
    pub fn heap_check(&self) -> std::result::Result<(), String> {
        self.inner.core().check()
    }
}

fn fill_config(b: &mut config::ConfigBody, memory: &Memory, prefix: &str) {
    b.iova_mode = match memory.iova_mode() {
        IovaMode::Pa => 0,
        IovaMode::Va => 1,
    };
    b.flags = if memory.no_huge() { config::FLAG_NO_HUGE } else { config::FLAG_DMA_CAPABLE };
    b.base_va = memory.base().0;
    b.va_len = memory.len();
    b.next_serial = 1;
    put_str(&mut b.file_prefix, prefix.as_bytes());
    b.n_lists = memory.lists().len() as u32;
    for (d, l) in b.lists.iter_mut().zip(memory.lists()) {
        d.base_va = l.base.0;
        d.len = l.len;
        d.page_size = l.page_size;
        d.socket = l.socket;
        d.first_seg = l.segs.start as u64;
        d.n_segs = l.segs.len() as u64;
        let (dir, stem) = match &l.backing {
            Backing::Hugetlbfs { dir, stem, first, count } => {
                d.backing = config::BACKING_HUGETLBFS;
                d.first_file = *first;
                d.n_files = *count;
                (dir.clone(), stem.clone())
            }
            Backing::Shm { path, offset } => {
                d.backing = config::BACKING_SHM;
                d.file_off = *offset;
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                (dir, name)
            }
        };
        // Paths longer than the buffers are recorded empty; a secondary then refuses to
        // attach (multi-process issue) rather than opening a wrong file.
        use std::os::unix::ffi::OsStrExt;
        put_str(&mut d.file_dir, dir.as_os_str().as_bytes());
        put_str(&mut d.file_stem, stem.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eal_is_send_sync() {
        fn ok<T: Send + Sync + Clone>() {}
        ok::<Eal>();
    }
}
