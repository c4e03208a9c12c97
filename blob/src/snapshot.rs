//! Snapshots and clones (SPDK's `spdk_bs_create_snapshot`, `spdk_bs_create_clone`,
//! `spdk_bs_inflate_blob`, `spdk_bs_blob_decouple_parent`, and deleting a snapshot
//! with one clone).
//!
//! A snapshot takes the blob's clusters and is read-only; the blob becomes a thin
//! clone of it (internal xattr "SNAP" = the snapshot's id, as SPDK keeps it). Taking
//! one is three metadata writes: the snapshot with the clusters and "SNAPTMP" naming
//! the blob, the blob without them and naming the snapshot, the snapshot without
//! "SNAPTMP". Deleting a snapshot into its one clone marks the snapshot "SNAPRM"
//! first, moves its clusters to the clone, then erases it. A recovery load drops a
//! snapshot still marked "SNAPTMP" whose blob does not name it, and one marked
//! "SNAPRM" that no blob names, so a crash at any step leaves each cluster with one
//! owner.

use crate::error::{Error, Result};
use crate::format::desc::{FLAG_READ_ONLY, FLAG_THIN_PROV};
use crate::md::{BlobMd, XATTR_SNAPSHOT, XATTR_SNAPSHOT_IN_PROGRESS};
use crate::store::Blobstore;

/// SPDK's internal xattr on a snapshot being deleted into its clone
/// (SNAPSHOT_PENDING_REMOVAL, "SNAPRM").
pub const XATTR_SNAPSHOT_PENDING_REMOVAL: &str = "SNAPRM";

impl Blobstore {
    /// Snapshot blob `id`; returns the snapshot's id.
    pub fn create_snapshot(&mut self, id: u64, xattrs: &[(String, Vec<u8>)]) -> Result<u64> {
        let b = self.md(id)?;
        if b.data_ro() {
            return Err(Error::ReadOnly {
                what: "snapshot",
                id,
            });
        }
        if b.dirty {
            self.sync_md(id)?;
        }
        let b = self.md(id)?.clone();
        self.mark_dirty()?;
        let sid = self.alloc_blobid()?;
        let mut s = BlobMd {
            id: sid,
            pages: vec![crate::format::blobid_to_page(sid)],
            clusters: b.clusters.clone(),
            xattrs: xattrs.to_vec(),
            dirty: true,
            ..Default::default()
        };
        s.flags.invalid =
            (b.flags.invalid & crate::format::desc::FLAG_EXTENT_TABLE) | FLAG_THIN_PROV;
        s.flags.data_ro = FLAG_READ_ONLY;
        if let Some(p) = b.parent() {
            s.set_internal(XATTR_SNAPSHOT, p.to_le_bytes().to_vec());
        }
        s.set_internal(XATTR_SNAPSHOT_IN_PROGRESS, id.to_le_bytes().to_vec());
        self.blobs.insert(sid, s);
        if let Err(e) = self.sync_md(sid) {
            self.blobs.remove(&sid);
            let p = crate::format::blobid_to_page(sid);
            self.used_md_pages.clear(p);
            self.used_blobids.clear(p);
            return Err(e);
        }
        {
            let m = self.md_mut(id)?;
            m.clusters.iter_mut().for_each(|c| *c = 0);
            m.flags.invalid |= FLAG_THIN_PROV;
            m.set_internal(XATTR_SNAPSHOT, sid.to_le_bytes().to_vec());
        }
        self.sync_md(id)?;
        self.md_mut(sid)?
            .remove_internal(XATTR_SNAPSHOT_IN_PROGRESS);
        self.sync_md(sid)?;
        Ok(sid)
    }

    /// Clone a read-only blob (a snapshot); returns the clone's id.
    pub fn create_clone(&mut self, snap: u64, xattrs: &[(String, Vec<u8>)]) -> Result<u64> {
        let s = self.md(snap)?;
        if !s.data_ro() {
            return Err(Error::Invalid {
                what: "clone",
                why: format!("blob {snap:#x} is not read-only (a snapshot)"),
            });
        }
        let n = s.clusters.len();
        let et = s.extent_table();
        let mut opts = crate::ops::BlobOpts {
            num_clusters: 0,
            thin_provision: true,
            use_extent_table: et,
            xattrs: xattrs.to_vec(),
        };
        opts.num_clusters = 0;
        let cid = self.create_blob(&opts)?;
        let m = self.md_mut(cid)?;
        m.clusters = vec![0; n];
        m.set_internal(XATTR_SNAPSHOT, snap.to_le_bytes().to_vec());
        self.sync_md(cid)?;
        Ok(cid)
    }

    /// Give blob `id` its own copy of every cluster it reads through, and cut it from
    /// its parent: it is a plain thick blob afterwards.
    pub fn inflate(&mut self, id: u64) -> Result<()> {
        self.copy_from_parents(id, true)?;
        let m = self.md_mut(id)?;
        m.flags.invalid &= !FLAG_THIN_PROV;
        if m.parent().is_some() {
            m.remove_internal(XATTR_SNAPSHOT);
        }
        m.dirty = true;
        self.sync_md(id)
    }

    /// Copy the clusters blob `id` reads from its immediate parent, then make the
    /// parent's parent its parent (or none). It stays thin.
    pub fn decouple_parent(&mut self, id: u64) -> Result<()> {
        let Some(p) = self.md(id)?.parent() else {
            return Err(Error::Invalid {
                what: "decouple a blob",
                why: format!("blob {id:#x} has no parent"),
            });
        };
        let pclusters = self.md(p)?.clusters.clone();
        let grand = self.md(p)?.parent();
        self.mark_dirty()?;
        let n = self.md(id)?.clusters.len();
        for ci in 0..n {
            if self.md(id)?.clusters[ci] == 0 && pclusters.get(ci).is_some_and(|&c| c != 0) {
                let c = self.copy_up(id, ci)?;
                self.md_mut(id)?.clusters[ci] = c;
            }
        }
        let m = self.md_mut(id)?;
        match grand {
            Some(g) => m.set_internal(XATTR_SNAPSHOT, g.to_le_bytes().to_vec()),
            None => m.remove_internal(XATTR_SNAPSHOT),
        }
        self.sync_md(id)
    }

    fn copy_from_parents(&mut self, id: u64, all: bool) -> Result<()> {
        self.mark_dirty()?;
        let n = self.md(id)?.clusters.len();
        for ci in 0..n {
            if self.md(id)?.clusters[ci] != 0 {
                continue;
            }
            if all || self.resolve(id, ci).is_some() {
                let c = self.copy_up(id, ci)?;
                self.md_mut(id)?.clusters[ci] = c;
            }
        }
        self.md_mut(id)?.dirty = true;
        Ok(())
    }

    /// Deleting snapshot `snap` whose only clone is `clone`: the clone takes the
    /// snapshot's clusters it does not have and its parent; the caller erases the
    /// snapshot afterwards (its cluster list is emptied here).
    pub(crate) fn merge_snapshot_into_clone(&mut self, snap: u64, clone: u64) -> Result<()> {
        self.mark_dirty()?;
        {
            let s = self.md_mut(snap)?;
            s.set_internal(XATTR_SNAPSHOT_PENDING_REMOVAL, snap.to_le_bytes().to_vec());
        }
        self.sync_md(snap)?;
        let s = self.md(snap)?.clone();
        let mut moved = vec![false; s.clusters.len()];
        {
            let c = self.md_mut(clone)?;
            for (i, &sc) in s.clusters.iter().enumerate() {
                if sc != 0 && c.clusters.get(i) == Some(&0) {
                    c.clusters[i] = sc;
                    moved[i] = true;
                }
            }
            match s.parent() {
                Some(g) => c.set_internal(XATTR_SNAPSHOT, g.to_le_bytes().to_vec()),
                None => c.remove_internal(XATTR_SNAPSHOT),
            }
            c.dirty = true;
        }
        self.sync_md(clone)?;
        // The snapshot keeps only the clusters the clone did not take (freed with it).
        let s = self.md_mut(snap)?;
        for (i, m) in moved.into_iter().enumerate() {
            if m {
                s.clusters[i] = 0;
            }
        }
        Ok(())
    }
}
