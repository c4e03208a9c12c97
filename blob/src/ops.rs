//! Blob operations (SPDK's `spdk_bs_create_blob_ext`, `spdk_bs_open_blob`,
//! `spdk_blob_close`, `spdk_blob_resize`, `spdk_bs_delete_blob`, the xattr calls,
//! `spdk_blob_set_read_only`, `spdk_bs_iter_*`).

use crate::error::{Error, Result};
use crate::format::desc::{self, Flags, FLAG_EXTENT_TABLE, FLAG_READ_ONLY, FLAG_THIN_PROV};
use crate::md::BlobMd;
use crate::store::Blobstore;

/// What `create_blob` takes (SPDK's `spdk_blob_opts`).
#[derive(Debug, Clone)]
pub struct BlobOpts {
    /// Size in clusters.
    pub num_clusters: u64,
    /// Allocate clusters on first write.
    pub thin_provision: bool,
    /// Extent table and extent pages (SPDK's default) or an RLE extent list.
    pub use_extent_table: bool,
    /// User xattrs.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Default for BlobOpts {
    fn default() -> Self {
        BlobOpts {
            num_clusters: 0,
            thin_provision: false,
            use_extent_table: true,
            xattrs: Vec::new(),
        }
    }
}

/// An open blob (from [`Blobstore::open_blob`]); give it back with
/// [`Blobstore::close_blob`].
#[derive(Debug)]
pub struct Blob {
    id: u64,
}

impl Blob {
    /// Its id.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// A blob's properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Id.
    pub id: u64,
    /// Size in clusters.
    pub num_clusters: u64,
    /// Clusters allocated to it.
    pub allocated_clusters: u64,
    /// Thin provisioned.
    pub thin: bool,
    /// Data read-only.
    pub read_only: bool,
    /// Parent snapshot.
    pub parent: Option<u64>,
    /// User xattr names.
    pub xattr_names: Vec<String>,
    /// Open handles.
    pub open_refs: u32,
    /// Metadata pages in its chain.
    pub md_pages: usize,
}

impl Blobstore {
    pub(crate) fn md(&self, id: u64) -> Result<&BlobMd> {
        self.blobs.get(&id).ok_or(Error::NoBlob(id))
    }

    pub(crate) fn md_mut(&mut self, id: u64) -> Result<&mut BlobMd> {
        self.blobs.get_mut(&id).ok_or(Error::NoBlob(id))
    }

    /// Create a blob; its metadata is on the device when this returns.
    pub fn create_blob(&mut self, opts: &BlobOpts) -> Result<u64> {
        let n = usize::try_from(opts.num_clusters)
            .ok()
            .filter(|&n| n <= u32::MAX as usize)
            .ok_or(Error::Invalid {
                what: "create a blob",
                why: format!("{} clusters", opts.num_clusters),
            })?;
        for (name, v) in &opts.xattrs {
            check_xattr(name, v)?;
        }
        if !opts.thin_provision && n as u64 > u64::from(self.info().free_clusters) {
            return Err(Error::NoSpace {
                what: "create a blob",
                resource: "clusters",
            });
        }
        self.mark_dirty()?;
        let id = self.alloc_blobid()?;
        let mut flags = Flags::default();
        if opts.thin_provision {
            flags.invalid |= FLAG_THIN_PROV;
        }
        if opts.use_extent_table {
            flags.invalid |= FLAG_EXTENT_TABLE;
        }
        let mut md = BlobMd {
            id,
            pages: vec![crate::format::blobid_to_page(id)],
            flags,
            xattrs: opts.xattrs.clone(),
            clusters: vec![0; n],
            dirty: true,
            ..Default::default()
        };
        if !opts.thin_provision {
            for c in md.clusters.iter_mut() {
                *c = self.alloc_cluster()?;
            }
        }
        self.blobs.insert(id, md);
        if let Err(e) = self.sync_md(id) {
            if let Some(md) = self.blobs.remove(&id) {
                let cl: Vec<u32> = md.allocated().collect();
                self.free_clusters(&cl);
            }
            let p = crate::format::blobid_to_page(id);
            self.used_md_pages.clear(p);
            self.used_blobids.clear(p);
            return Err(e);
        }
        Ok(id)
    }

    /// Open a blob (refused for invalid flags this version does not know: those
    /// blobs never load).
    pub fn open_blob(&mut self, id: u64) -> Result<Blob> {
        self.md_mut(id)?.open_refs += 1;
        Ok(Blob { id })
    }

    /// Close a blob, syncing its metadata if it changed (as SPDK's close does).
    pub fn close_blob(&mut self, b: Blob) -> Result<()> {
        let md = self.md_mut(b.id)?;
        md.open_refs = md.open_refs.saturating_sub(1);
        if md.dirty {
            self.sync_md(b.id)?;
        }
        Ok(())
    }

    /// Every blob id, ascending (SPDK iterates in blob id order too).
    pub fn blob_ids(&self) -> Vec<u64> {
        self.blobs.keys().copied().collect()
    }

    /// A blob's properties.
    pub fn blob_info(&self, id: u64) -> Result<BlobInfo> {
        let m = self.md(id)?;
        Ok(BlobInfo {
            id,
            num_clusters: m.clusters.len() as u64,
            allocated_clusters: m.allocated().count() as u64,
            thin: m.thin(),
            read_only: m.data_ro(),
            parent: m.parent(),
            xattr_names: m.xattrs.iter().map(|(n, _)| n.clone()).collect(),
            open_refs: m.open_refs,
            md_pages: m.pages.len(),
        })
    }

    /// Cluster indices of a blob (0 = unallocated), for tests and tools.
    pub fn blob_clusters(&self, id: u64) -> Result<Vec<u32>> {
        Ok(self.md(id)?.clusters.clone())
    }

    fn writable_md(&mut self, b: &Blob, what: &'static str) -> Result<&mut BlobMd> {
        let m = self.md_mut(b.id)?;
        if m.md_ro() {
            return Err(Error::ReadOnly { what, id: b.id });
        }
        Ok(m)
    }

    /// Resize to `num_clusters` (SPDK's `spdk_blob_resize`): growing a thick blob
    /// takes clusters now (all or none); shrinking gives clusters up once the metadata
    /// is synced. Marks the metadata dirty (call [`sync_md`](Self::sync_md)).
    pub fn resize(&mut self, b: &Blob, num_clusters: u64) -> Result<()> {
        let n = usize::try_from(num_clusters)
            .ok()
            .filter(|&n| n <= u32::MAX as usize)
            .ok_or(Error::Invalid {
                what: "resize a blob",
                why: format!("{num_clusters} clusters"),
            })?;
        let (thin, cur) = {
            let m = self.writable_md(b, "resize")?;
            if m.data_ro() {
                return Err(Error::ReadOnly {
                    what: "resize",
                    id: b.id,
                });
            }
            (m.thin(), m.clusters.len())
        };
        self.mark_dirty()?;
        if n > cur && !thin {
            let need = (n - cur) as u64;
            if need > u64::from(self.info().free_clusters) {
                return Err(Error::NoSpace {
                    what: "resize a blob",
                    resource: "clusters",
                });
            }
            let mut got = Vec::with_capacity(n - cur);
            for _ in cur..n {
                got.push(self.alloc_cluster()?);
            }
            self.md_mut(b.id)?.clusters.extend(got);
        } else {
            let m = self.md_mut(b.id)?;
            if n < cur {
                let gone: Vec<u32> = m.clusters.drain(n..).filter(|&c| c != 0).collect();
                m.pending_free.extend(gone);
            } else {
                m.clusters.resize(n, 0);
            }
        }
        self.md_mut(b.id)?.dirty = true;
        Ok(())
    }

    /// Delete a closed blob (SPDK's `spdk_bs_delete_blob`). A snapshot with one clone
    /// is merged into the clone first (see [`crate::snapshot`]); with more, refused.
    pub fn delete_blob(&mut self, id: u64) -> Result<()> {
        let m = self.md(id)?;
        if m.open_refs > 0 {
            return Err(Error::Busy {
                what: "delete a blob",
                id,
                why: "is open".into(),
            });
        }
        let clones = self.clones_of(id);
        match clones.len() {
            0 => {}
            1 => self.merge_snapshot_into_clone(id, clones[0])?,
            n => {
                return Err(Error::Busy {
                    what: "delete a blob",
                    id,
                    why: format!("is a snapshot with {n} clones"),
                })
            }
        }
        let md = self.blobs.remove(&id).ok_or(Error::NoBlob(id))?;
        if let Err(e) = self.erase_md(&md) {
            self.blobs.insert(id, md);
            return Err(e);
        }
        if self.sb.super_blob == id {
            self.set_super_blob(None)?;
        }
        Ok(())
    }

    /// Set a user xattr (in memory; synced by `sync_md` or close).
    pub fn set_xattr(&mut self, b: &Blob, name: &str, value: &[u8]) -> Result<()> {
        check_xattr(name, value)?;
        let m = self.writable_md(b, "set an xattr")?;
        match m.xattrs.iter_mut().find(|(n, _)| n == name) {
            Some(x) => x.1 = value.to_vec(),
            None => m.xattrs.push((name.to_string(), value.to_vec())),
        }
        m.dirty = true;
        Ok(())
    }

    /// Remove a user xattr.
    pub fn remove_xattr(&mut self, b: &Blob, name: &str) -> Result<()> {
        let m = self.writable_md(b, "remove an xattr")?;
        let before = m.xattrs.len();
        m.xattrs.retain(|(n, _)| n != name);
        if m.xattrs.len() == before {
            return Err(Error::Invalid {
                what: "remove an xattr",
                why: format!("blob {:#x} has no xattr '{name}'", b.id),
            });
        }
        m.dirty = true;
        Ok(())
    }

    /// A user xattr's value.
    pub fn get_xattr(&self, id: u64, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .md(id)?
            .xattrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone()))
    }

    /// Make a blob read-only (SPDK's `spdk_blob_set_read_only`: the data_ro flag).
    pub fn set_read_only(&mut self, b: &Blob) -> Result<()> {
        let m = self.writable_md(b, "set read-only")?;
        m.flags.data_ro |= FLAG_READ_ONLY;
        m.dirty = true;
        Ok(())
    }

    /// The blobs whose parent is `id`.
    pub fn clones_of(&self, id: u64) -> Vec<u64> {
        self.blobs
            .values()
            .filter(|b| b.parent() == Some(id))
            .map(|b| b.id)
            .collect()
    }
}

fn check_xattr(name: &str, value: &[u8]) -> Result<()> {
    if name.is_empty() || name.len() + value.len() + desc::XATTR_FIXED > 4072 - 29 {
        return Err(Error::Invalid {
            what: "set an xattr",
            why: format!(
                "name '{name}' ({} bytes) and value ({} bytes) must be non-empty and fit a metadata page",
                name.len(),
                value.len()
            ),
        });
    }
    Ok(())
}
