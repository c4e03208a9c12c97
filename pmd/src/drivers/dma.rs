//! What the PCI drivers share about DMA memory.

use mbuf::PktmbufPool;

/// Check that every mbuf of `pool` has a buffer whose IOVA range is contiguous and
/// matches what the EAL records (PA mode: hugepages need not be physically adjacent).
pub(crate) fn check_pool_iova(pool: &PktmbufPool) -> std::result::Result<(), String> {
    let mut bad = None;
    let mp = pool.mempool();
    let e = mp.eal().clone();
    mp.obj_iter(|_, obj| {
        if bad.is_some() {
            return;
        }
        // SAFETY: `obj` is an object of the live pool, i.e. an initialised mbuf header;
        // we only read fields fixed at pool creation (buffer address, IOVA, length).
        let h = unsafe { &*obj.as_ptr::<mbuf::MbufHeader>() };
        let len = u64::from(h.buf_len);
        if len == 0 {
            return;
        }
        let first = e.memory().virt2iova(h.buf_addr);
        let last = e.memory().virt2iova(h.buf_addr.add(len - 1));
        if first != Some(h.buf_iova) || last != Some(h.buf_iova.add(len - 1)) {
            bad = Some(format!(
                "mbuf buffer at {} (IOVA {}) is not IOVA-contiguous over {len} bytes",
                h.buf_addr, h.buf_iova
            ));
        }
    });
    bad.map_or(Ok(()), Err)
}
