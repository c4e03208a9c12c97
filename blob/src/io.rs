//! Blob reads and writes in I/O units (SPDK's `spdk_blob_io_read` / `_write`).
//!
//! A read of an unallocated cluster reads through to the parent snapshot (and its
//! parent, ...) or returns zeros. The first write to an unallocated cluster of a thin
//! blob or clone takes a free cluster, fills it with what a read gave before (the
//! parent's data or zeros) overlaid with the new data, and syncs the blob's metadata
//! before the write returns, so a completed write is never lost to a crash.

use crate::error::{Error, Result};
use crate::ops::Blob;
use crate::store::Blobstore;

/// Where each cluster of a blob's data lives right now, for a data path that runs
/// outside the store (an lvol channel on its framework thread): what [`Blobstore::read`]
/// and [`Blobstore::write`] would resolve, taken at one moment.
#[derive(Debug, Clone, Default)]
pub struct ClusterMap {
    /// Per blob cluster: the device block of its first I/O unit and whether the blob
    /// owns it (`false`: a parent's, read-only here); `None`: unallocated anywhere
    /// (reads zeros).
    pub clusters: Vec<Option<(u64, bool)>>,
    /// I/O units per cluster.
    pub units_per_cluster: u64,
    /// Device blocks per I/O unit.
    pub blocks_per_unit: u64,
    /// The blob's data is read-only.
    pub read_only: bool,
}

impl Blobstore {
    /// Blob `id`'s [`ClusterMap`] as the metadata says now.
    pub fn cluster_map(&self, id: u64) -> Result<ClusterMap> {
        let m = self.md(id)?;
        let clusters = (0..m.clusters.len())
            .map(|ci| {
                self.resolve(id, ci)
                    .map(|c| (u64::from(c) * self.lbas_per_cluster(), m.clusters[ci] != 0))
            })
            .collect();
        Ok(ClusterMap {
            clusters,
            units_per_cluster: self.io_units_per_cluster(),
            blocks_per_unit: self.lbas_per_unit(),
            read_only: m.data_ro(),
        })
    }

    fn lbas_per_cluster(&self) -> u64 {
        u64::from(self.sb.cluster_size / self.block_size)
    }

    fn lbas_per_unit(&self) -> u64 {
        u64::from(self.sb.io_unit_size / self.block_size)
    }

    fn check_io(&self, id: u64, offset: u64, len: usize, what: &'static str) -> Result<u64> {
        let unit = u64::from(self.sb.io_unit_size);
        let m = self.md(id)?;
        let units = len as u64 / unit;
        let size = m.clusters.len() as u64 * self.io_units_per_cluster();
        if !(len as u64).is_multiple_of(unit) || offset.checked_add(units).is_none_or(|e| e > size)
        {
            return Err(Error::Invalid {
                what,
                why: format!(
                    "{len} bytes at io unit {offset}: not whole {unit}-byte units or past the blob's {size} units"
                ),
            });
        }
        Ok(units)
    }

    /// Where cluster `ci` of blob `id` lives: the blob's own cluster, a parent's, or
    /// nowhere (zeros).
    pub(crate) fn resolve(&self, id: u64, ci: usize) -> Option<u32> {
        let mut cur = Some(id);
        let mut hops = 0;
        while let Some(b) = cur.and_then(|i| self.blobs.get(&i)) {
            match b.clusters.get(ci) {
                Some(&c) if c != 0 => return Some(c),
                None => return None,
                _ => {}
            }
            hops += 1;
            if hops > self.blobs.len() {
                return None;
            }
            cur = b.parent();
        }
        None
    }

    /// Read cluster data of blob `id` into `buf` from unit `u` of cluster `ci`.
    fn read_cluster_part(&mut self, id: u64, ci: usize, u: u64, buf: &mut [u8]) -> Result<()> {
        match self.resolve(id, ci) {
            Some(c) => {
                let lba = u64::from(c) * self.lbas_per_cluster() + u * self.lbas_per_unit();
                self.dev.read(lba, buf)
            }
            None => {
                buf.fill(0);
                Ok(())
            }
        }
    }

    /// Read `buf.len()` bytes (whole I/O units) from I/O unit `offset`.
    pub fn read(&mut self, b: &Blob, offset: u64, buf: &mut [u8]) -> Result<()> {
        let units = self.check_io(b.id(), offset, buf.len(), "read a blob")?;
        let usz = self.sb.io_unit_size as usize;
        for p in cluster_parts(self.io_units_per_cluster(), offset, units) {
            let part = &mut buf[p.done as usize * usz..(p.done + p.n) as usize * usz];
            self.read_cluster_part(b.id(), p.ci, p.within, part)?;
        }
        Ok(())
    }

    /// Write `buf` (whole I/O units) at I/O unit `offset`.
    pub fn write(&mut self, b: &Blob, offset: u64, buf: &[u8]) -> Result<()> {
        let id = b.id();
        let units = self.check_io(id, offset, buf.len(), "write a blob")?;
        if self.md(id)?.data_ro() {
            return Err(Error::ReadOnly { what: "write", id });
        }
        let usz = self.sb.io_unit_size as usize;
        let mut allocated = false;
        for p in cluster_parts(self.io_units_per_cluster(), offset, units) {
            let (ci, within) = (p.ci, p.within);
            let part = &buf[p.done as usize * usz..(p.done + p.n) as usize * usz];
            let own = self.md(id)?.clusters[ci];
            if own != 0 {
                let lba = u64::from(own) * self.lbas_per_cluster() + within * self.lbas_per_unit();
                self.dev.write(lba, part)?;
            } else {
                self.mark_dirty()?;
                let c = self.alloc_cluster()?;
                let r = self.fill_new_cluster(id, ci, c, within, part);
                if let Err(e) = r {
                    self.free_clusters(&[c]);
                    return Err(e);
                }
                let m = self.md_mut(id)?;
                m.clusters[ci] = c;
                m.dirty = true;
                allocated = true;
            }
        }
        if allocated {
            self.sync_md(id)?;
        }
        Ok(())
    }

    /// Write a newly taken cluster `c` for cluster `ci` of `id`: the old contents
    /// (read through the parents, or zeros) with `part` at unit `within`.
    fn fill_new_cluster(
        &mut self,
        id: u64,
        ci: usize,
        c: u32,
        within: u64,
        part: &[u8],
    ) -> Result<()> {
        let cs = self.sb.cluster_size as usize;
        let mut whole = vec![0u8; cs];
        self.read_cluster_part(id, ci, 0, &mut whole)?;
        let o = within as usize * self.sb.io_unit_size as usize;
        whole[o..o + part.len()].copy_from_slice(part);
        self.dev
            .write(u64::from(c) * self.lbas_per_cluster(), &whole)
    }

    /// Copy cluster `ci` of `id` (as read) into a new cluster of its own.
    pub(crate) fn copy_up(&mut self, id: u64, ci: usize) -> Result<u32> {
        let c = self.alloc_cluster()?;
        if let Err(e) = self.fill_new_cluster(id, ci, c, 0, &[]) {
            self.free_clusters(&[c]);
            return Err(e);
        }
        Ok(c)
    }
}

/// The part of a request that falls in one cluster.
pub struct ClusterPart {
    /// I/O units of the request before it.
    pub done: u64,
    /// The cluster's index in the blob.
    pub ci: usize,
    /// Its first unit within the cluster.
    pub within: u64,
    /// Its length in units.
    pub n: u64,
}

/// Split `units` I/O units from unit `offset` at cluster boundaries (`upc` units per
/// cluster).
pub fn cluster_parts(upc: u64, offset: u64, units: u64) -> impl Iterator<Item = ClusterPart> {
    let mut done = 0u64;
    std::iter::from_fn(move || {
        if done >= units {
            return None;
        }
        let u = offset + done;
        let within = u % upc;
        let p = ClusterPart {
            done,
            ci: (u / upc) as usize,
            within,
            n: (upc - within).min(units - done),
        };
        done += p.n;
        Some(p)
    })
}
