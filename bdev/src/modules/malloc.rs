//! The malloc bdev module (SPDK's `bdev_malloc`): a RAM disk. Every I/O type is
//! supported; unmap and write-zeroes zero the blocks, compare-and-write holds the disk's
//! lock across both halves (so it is atomic against every other I/O of the disk).
//!
//! Memory: given an EAL with hugepage memory ([`MallocOpts::eal`]), the disk is one
//! IOVA-contiguous block of the EAL heap ([`eal::Heap::malloc_dma`]), so a device can
//! DMA to and from it. Without one (or under `--no-huge`, where the heap has no IOVAs)
//! it is anonymous private pages from the kernel, zero-filled and page aligned. The
//! framework app does not hand its EAL to subsystems yet, so bdevs made through RPC
//! use the anonymous pages.
//!
//! Resize ([`resize`], RPC `bdev_malloc_resize`: ours, SPDK has none): the disk grows
//! into a new block of the same kind, the old bytes copied and the new ones zero,
//! swapped in under the disk's lock (I/O of every channel waits for it), then the
//! layer takes the new count and tells open descriptors
//! ([`crate::notify_blockcnt_change`]).

use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use framework::subsystem::ConfigCall;
use memmap2::MmapMut;
use serde_json::json;

use crate::bdev::{self, Bdev, BdevInfo, BdevModule, ModuleChannel};
use crate::error::{Error, Result};
use crate::io::{BdevIo, IoStatus, IoType};
use crate::modules::{Deferred, Disks};
use crate::uuid::Uuid;

/// What `bdev_malloc_create` takes.
#[derive(Debug, Clone, Default)]
pub struct MallocOpts {
    /// Bdev name.
    pub name: String,
    /// Size in blocks.
    pub num_blocks: u64,
    /// Block size (power of two, >= 512).
    pub block_size: u32,
    /// UUID (random if `None`).
    pub uuid: Option<Uuid>,
    /// Split boundary in blocks (0 = none).
    pub optimal_io_boundary: u32,
    /// Largest request in blocks (0 = none); not an SPDK parameter, for tests of
    /// splitting and for modules layered on top.
    pub max_transfer_blocks: u32,
    /// The EAL whose heap holds the blocks (DMA-able) when it has hugepage memory.
    pub eal: Option<eal::Eal>,
}

impl MallocOpts {
    /// `name`, `num_blocks` blocks of `block_size` bytes, the rest default (random UUID,
    /// no boundary, no transfer limit, anonymous memory).
    pub fn new(name: impl Into<String>, num_blocks: u64, block_size: u32) -> MallocOpts {
        MallocOpts {
            name: name.into(),
            num_blocks,
            block_size,
            ..Default::default()
        }
    }
}

/// Where a disk's blocks live.
enum Backing {
    /// Anonymous pages.
    Anon(MmapMut),
    /// EAL heap memory with an IOVA.
    Heap {
        eal: eal::Eal,
        ptr: NonNull<u8>,
        len: usize,
        iova: eal::Iova,
    },
}

// SAFETY: `Heap` owns its allocation exclusively (freed only in Drop); the pointer is
// only dereferenced through `&mut self` (under the disk's mutex).
unsafe impl Send for Backing {}

impl Backing {
    fn bytes(&mut self) -> &mut [u8] {
        match self {
            Backing::Anon(m) => &mut m[..],
            // SAFETY: `ptr` is a live heap block of `len` bytes owned by this Backing,
            // and `&mut self` makes this the only reference to it.
            Backing::Heap { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts_mut(ptr.as_ptr(), *len)
            },
        }
    }

    fn iova(&self) -> Option<eal::Iova> {
        match self {
            Backing::Anon(_) => None,
            Backing::Heap { iova, .. } => Some(*iova),
        }
    }

    fn eal(&self) -> Option<&eal::Eal> {
        match self {
            Backing::Anon(_) => None,
            Backing::Heap { eal, .. } => Some(eal),
        }
    }
}

impl Drop for Backing {
    fn drop(&mut self) {
        if let Backing::Heap { eal, ptr, .. } = self {
            // SAFETY: the block came from this EAL's heap and nothing uses it any more
            // (the disk is destructed after its last channel went).
            if let Err(e) = unsafe { eal.heap().free(ptr.as_ptr()) } {
                eal::log_err!("malloc bdev: freeing its heap memory failed: {e}");
            }
        }
    }
}

fn allocate(name: &str, len: usize, eal: Option<&eal::Eal>) -> Result<Backing> {
    if let Some(eal) = eal.filter(|e| !e.memory().no_huge()) {
        match eal.heap().malloc_dma(len, 4096, None) {
            Ok((ptr, iova)) => {
                return Ok(Backing::Heap {
                    eal: eal.clone(),
                    ptr,
                    len,
                    iova,
                })
            }
            Err(e) => {
                return Err(Error::Create {
                    name: name.to_string(),
                    why: format!("{len} bytes of DMA memory from the EAL heap: {e}"),
                })
            }
        }
    }
    MmapMut::map_anon(len)
        .map(Backing::Anon)
        .map_err(|e| Error::Create {
            name: name.to_string(),
            why: format!("{len} bytes of memory: {e}"),
        })
}

struct MallocDisk {
    mem: Arc<Mutex<Backing>>,
}

static DISKS: Disks<MallocDisk> = Disks::new();

/// Grow malloc bdev `b` to `new_size_mib` MiB (`bdev_malloc_resize`): whole blocks,
/// not below the current size. The disk's memory is replaced by a larger block holding
/// the old bytes (zeros after them); open descriptors get the resize event. A failed
/// allocation leaves the disk as it was.
pub fn resize(b: &Bdev, new_size_mib: u64) -> Result<()> {
    let blocks = crate::resize::grown_blocks(b, new_size_mib)?;
    let disk = DISKS.of(b).ok_or_else(|| Error::Invalid {
        what: "name",
        why: format!("bdev '{}' is not a malloc bdev", b.name()),
    })?;
    let bytes = blocks * u64::from(b.info().block_size);
    let len = usize::try_from(bytes).map_err(|_| Error::Invalid {
        what: "new_size",
        why: format!("{bytes} bytes do not fit in memory"),
    })?;
    {
        let mut m = disk.mem.lock().unwrap_or_else(|e| e.into_inner());
        let old = m.bytes().len();
        if len > old {
            let mut grown = allocate(b.name(), len, m.eal())?;
            let dst = grown.bytes();
            dst[..old].copy_from_slice(m.bytes());
            // Heap blocks are not zeroed on allocation; anonymous pages are.
            dst[old..].fill(0);
            *m = grown;
        }
    }
    crate::resize::notify_blockcnt_change(b, blocks)
}

struct MallocChannel {
    mem: Arc<Mutex<Backing>>,
    done: Deferred,
}

fn range(io: &BdevIo) -> (usize, usize) {
    let bs = io.block_size() as usize;
    (io.offset_blocks() as usize * bs, io.len_bytes())
}

impl ModuleChannel for MallocChannel {
    fn submit(&self, io: BdevIo) {
        let (off, len) = range(&io);
        let st = {
            let mut m = self.mem.lock().unwrap_or_else(|e| e.into_inner());
            // The layer checked the range against the disk's size.
            let blocks = &mut m.bytes()[off..off + len];
            match io.io_type() {
                IoType::Read => {
                    io.copy_in(blocks);
                    IoStatus::Success
                }
                IoType::Write => {
                    io.copy_out(blocks);
                    IoStatus::Success
                }
                IoType::WriteZeroes | IoType::Unmap => {
                    blocks.fill(0);
                    IoStatus::Success
                }
                IoType::Flush | IoType::Reset => IoStatus::Success,
                IoType::Compare => {
                    let mut want = vec![0u8; len];
                    io.copy_out(&mut want);
                    if want == blocks {
                        IoStatus::Success
                    } else {
                        IoStatus::Miscompare
                    }
                }
                IoType::CompareAndWrite => {
                    let mut want = vec![0u8; len];
                    io.copy_out_compare(&mut want);
                    if want == blocks {
                        io.copy_out(blocks);
                        IoStatus::Success
                    } else {
                        IoStatus::Miscompare
                    }
                }
            }
        };
        self.done.push(io, st);
    }
}

impl BdevModule for MallocDisk {
    fn module_name(&self) -> &str {
        "malloc"
    }
    fn io_type_supported(&self, _t: IoType) -> bool {
        true
    }
    fn create_channel(&self) -> std::result::Result<Box<dyn ModuleChannel>, String> {
        Ok(Box::new(MallocChannel {
            mem: self.mem.clone(),
            done: Deferred::new("bdev_malloc")?,
        }))
    }
    fn info_json(&self) -> Option<serde_json::Value> {
        let m = self.mem.lock().unwrap_or_else(|e| e.into_inner());
        Some(json!({ "malloc": { "dma": m.iova().is_some() } }))
    }
    fn write_config(&self, info: &BdevInfo) -> Option<ConfigCall> {
        let params = json!({
            "num_blocks": info.num_blocks,
            "block_size": info.block_size,
            "optimal_io_boundary": info.optimal_io_boundary,
        });
        super::create_call("bdev_malloc_create", info, params)
    }
}

/// Create and register a malloc bdev.
pub fn create(opts: MallocOpts) -> Result<Bdev> {
    let info = BdevInfo {
        name: opts.name.clone(),
        aliases: Vec::new(),
        uuid: opts.uuid.unwrap_or_else(Uuid::random),
        product_name: "Malloc disk".into(),
        block_size: opts.block_size,
        num_blocks: opts.num_blocks,
        optimal_io_boundary: opts.optimal_io_boundary,
        write_cache: true,
        max_transfer_blocks: opts.max_transfer_blocks,
    };
    info.validate()?;
    if bdev::get(&info.name).is_some() {
        return Err(Error::Exists(info.name));
    }
    let bytes = info.num_blocks * u64::from(info.block_size);
    let len = usize::try_from(bytes).map_err(|_| Error::Invalid {
        what: "num_blocks",
        why: format!("{bytes} bytes do not fit in memory"),
    })?;
    let mem = allocate(&info.name, len, opts.eal.as_ref())?;
    let disk = Arc::new(MallocDisk {
        mem: Arc::new(Mutex::new(mem)),
    });
    let b = bdev::register(info, disk.clone())?;
    DISKS.add(&disk);
    Ok(b)
}
