//! Introspection: statistics, object iteration and the human-readable dump (DPDK's
//! `rte_mempool_dump`).

use std::io::Write;

use eal::VirtAddr;

use crate::stats::{MempoolStats, StatsShared};
use crate::{Error, Pool, Result};

impl Pool {
    /// Statistics summed over all lcores (and non-EAL threads).
    pub fn stats(&self) -> MempoolStats {
        let mut t = MempoolStats::default();
        for s in &self.hdr().stats {
            t += s.snapshot();
        }
        t
    }

    /// Statistics of lcore `lcore`; `MAX_LCORE` gives the non-EAL-thread slot.
    pub fn lcore_stats(&self, lcore: u32) -> Option<MempoolStats> {
        self.hdr()
            .stats
            .get(lcore as usize)
            .map(StatsShared::snapshot)
    }

    /// Call `f(index, obj)` for every object (in use or not), in address order within each
    /// chunk; returns the number of objects.
    pub fn obj_iter(&self, mut f: impl FnMut(u32, VirtAddr)) -> u32 {
        let h = self.hdr();
        let mut n = 0;
        for c in h.chunks() {
            for i in 0..c.nb_objs {
                let obj = c
                    .addr
                    .add(u64::from(i) * u64::from(self.total_size) + u64::from(self.header_size));
                f(c.first + i, obj);
                n += 1;
            }
        }
        n
    }

    /// Number of memory chunks holding the objects.
    pub fn nb_chunks(&self) -> u32 {
        self.hdr().nb_chunks
    }

    /// Write a human-readable description to `w`.
    pub fn dump(&self, w: &mut dyn Write) -> Result<()> {
        self.dump_inner(w).map_err(|e| Error::Dump {
            name: self.name.clone(),
            source: e,
        })
    }

    fn dump_inner(&self, w: &mut dyn Write) -> std::io::Result<()> {
        let h = self.hdr();
        writeln!(w, "mempool <{}>@{}", self.name, self.addr)?;
        writeln!(w, "  flags={:#x} ({:?})", h.flags, self.flags())?;
        writeln!(
            w,
            "  ops={} pool_data={} ({} bytes)",
            self.ops_name(),
            h.pool_data,
            h.pool_data_len
        )?;
        writeln!(w, "  socket={}", h.socket)?;
        writeln!(w, "  size={}", h.size)?;
        writeln!(
            w,
            "  header_size={} elt_size={} trailer_size={} total_obj_size={} (channels={})",
            h.header_size, h.elt_size, h.trailer_size, h.total_size, h.channels
        )?;
        writeln!(w, "  debug_cookies={}", h.layout & 1 != 0)?;
        writeln!(w, "  nb_mem_chunks={}", h.nb_chunks)?;
        for c in h.chunks() {
            writeln!(
                w,
                "    chunk va={} iova={} len={} objs={}+{}",
                c.addr, c.iova, c.len, c.first, c.nb_objs
            )?;
        }
        writeln!(w, "  private_data_size={}", h.private_len)?;
        writeln!(
            w,
            "  cache_size={} flush_threshold={}",
            h.cache_size, h.flush_threshold
        )?;
        let mut cached = 0;
        for (l, c) in self.lcore_caches().iter().enumerate() {
            let len = c.len();
            if len > 0 {
                writeln!(w, "    cache_count[{l}]={len}")?;
                cached += len;
            }
        }
        writeln!(w, "    total_cache_count={cached}")?;
        writeln!(w, "  common_pool_count={}", self.backend.count())?;
        writeln!(
            w,
            "  avail_count={} in_use_count={}",
            self.avail_count(),
            self.in_use_count()
        )?;
        if !self.stats_on {
            writeln!(w, "  stats: off (create with PoolFlags::STATS to count)")?;
            return Ok(());
        }
        let s = self.stats();
        writeln!(w, "  stats:")?;
        writeln!(
            w,
            "    get_success_bulk={} get_success_objs={}",
            s.get_success_bulk, s.get_success_objs
        )?;
        writeln!(
            w,
            "    get_fail_bulk={} get_fail_objs={}",
            s.get_fail_bulk, s.get_fail_objs
        )?;
        writeln!(w, "    put_bulk={} put_objs={}", s.put_bulk, s.put_objs)?;
        writeln!(
            w,
            "    cache_hits={} cache_misses={}",
            s.cache_hits, s.cache_misses
        )?;
        writeln!(
            w,
            "    backend_dequeue_bulk={} backend_dequeue_objs={}",
            s.backend_dequeue_bulk, s.backend_dequeue_objs
        )?;
        writeln!(
            w,
            "    backend_enqueue_bulk={} backend_enqueue_objs={}",
            s.backend_enqueue_bulk, s.backend_enqueue_objs
        )?;
        Ok(())
    }
}
