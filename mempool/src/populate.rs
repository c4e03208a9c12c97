//! Object memory: reserve the chunks, write every object's header (and debug cookies),
//! run the user's initialiser, and hand every object to the backend.

use eal::{Eal, Iova, VirtAddr};

use crate::cache::BulkBackend;
use crate::header::{ChunkDesc, PoolHeader, MAX_CHUNKS};
use crate::layout::{self, ObjSize};
use crate::memzone::chunk_mz_name;
use crate::ops::Backend;
use crate::{Error, Result};

/// Lay out the object memory for `n` objects of size `sz` in chunks, write every object header, run `init`, and
/// enqueue all objects into the backend.
#[allow(clippy::too_many_arguments)]
pub(crate) fn populate(
    eal: &Eal,
    name: &str,
    n: u32,
    socket: Option<u32>,
    sz: &ObjSize,
    hdr: *mut PoolHeader,
    pool_addr: VirtAddr,
    backend: &Backend,
    init: &mut impl FnMut(u32, VirtAddr),
) -> Result<()> {
    let total = sz.total_size as usize;
    let mut remaining = n as usize;
    let mut first = 0u32;
    let mut want = remaining;
    let mut k = 0usize;
    let mut batch: Vec<VirtAddr> = Vec::with_capacity(256);
    while remaining > 0 {
        if k == MAX_CHUNKS {
            return Err(Error::TooFragmented {
                name: name.into(),
                max: MAX_CHUNKS,
            });
        }
        // Smallest chunk that can still finish within MAX_CHUNKS.
        let min_objs = remaining.div_ceil(MAX_CHUNKS - k);
        let want_n = want.min(remaining);
        // In IOVA = PA mode with hugepages, a chunk must be IOVA-contiguous: objects are
        // laid out back to back, and one straddling two physically distant pages would give
        // a device a buffer that is not contiguous at its IOVA. If no contiguous run is
        // that large, the reservation fails and the chunk is halved below.
        let flags =
            if eal.memory().iova_mode() == eal::args::IovaMode::Pa && !eal.memory().no_huge() {
                eal::MemzoneFlags::IOVA_CONTIG
            } else {
                eal::MemzoneFlags::empty()
            };
        let mz = match eal.memzones().reserve_aligned(
            &chunk_mz_name(name, k),
            want_n * total,
            socket,
            flags,
            layout::CACHE_LINE,
        ) {
            Ok(mz) => mz,
            Err(eal::Error::OutOfMemory { .. } | eal::Error::NotEnoughMemory { .. })
                if want_n / 2 >= min_objs.max(1) =>
            {
                want = want_n / 2;
                continue;
            }
            Err(e) => {
                return Err(Error::Memory {
                    op: "reserve",
                    name: name.into(),
                    source: e,
                })
            }
        };
        let base = mz.addr();
        let contig_iova = if mz.is_iova_contig() && mz.iova().is_valid() {
            Some(mz.iova())
        } else {
            None
        };
        // SAFETY: unpublished header, exclusively ours; k < MAX_CHUNKS.
        unsafe {
            (*hdr).chunks[k] = ChunkDesc {
                addr: base,
                iova: contig_iova.unwrap_or(Iova::BAD),
                len: (want_n * total) as u64,
                first,
                nb_objs: want_n as u32,
            };
            (*hdr).nb_chunks = k as u32 + 1;
        }
        // SAFETY: fresh memzone of want_n * total bytes.
        unsafe { core::ptr::write_bytes(mz.as_ptr::<u8>(), 0, want_n * total) };
        for i in 0..want_n {
            let off = (i * total) as u64 + u64::from(sz.header_size);
            let obj = base.add(off);
            let iova = match contig_iova {
                Some(io) => io.add(off),
                None => eal.memory().virt2iova(obj).unwrap_or(Iova::BAD),
            };
            // SAFETY: the slot lies inside the fresh chunk, laid out by calc_obj_size.
            unsafe { layout::init_obj(obj, pool_addr, iova, sz.elt_size) };
            init(first + i as u32, obj);
            batch.push(obj);
            if batch.len() == batch.capacity() {
                if !backend.enqueue(&batch) {
                    return Err(Error::BackendFull {
                        name: name.into(),
                        n: batch.len(),
                    });
                }
                batch.clear();
            }
        }
        first += want_n as u32;
        remaining -= want_n;
        k += 1;
    }
    if !backend.enqueue(&batch) {
        return Err(Error::BackendFull {
            name: name.into(),
            n: batch.len(),
        });
    }
    Ok(())
}
