//! The blobstore (SPDK's `struct spdk_blob_store`): the geometry from the super
//! block, the three in-memory masks, every blob's metadata, and the metadata writes.
//!
//! # Consistency on the device
//!
//! * The super block says `clean = 1` only between an unload (masks written first)
//!   and the next metadata change: before its first change after a load the store
//!   writes the super block with `clean = 0`, so a crash leaves a store that the next
//!   load recovers by walking every metadata chain ([`crate::load`]).
//! * A blob's metadata sync writes its chain's continuation pages and extent pages to
//!   metadata pages not in use, then its first page in place (one 4 KiB write, the
//!   commit point), then frees the pages of the previous version. A crash at any point
//!   leaves either the old or the new version reachable, never a mix.
//! * Clusters a blob gives up are freed only once the metadata without them is on the
//!   device; clusters it takes are referenced by metadata synced before the write that
//!   needed them completes. So no cluster is ever referenced twice, and one referenced
//!   by no synced metadata is free again after a crash.
//!
//! # Threads
//!
//! A `Blobstore` is one object used through `&mut self`: metadata operations are
//! serialised by whoever owns it (a `Mutex`, or the single thread that runs it). Its
//! device may be the bdev layer ([`crate::bdev_dev::BdevDev`]), whose I/O runs on a
//! framework thread while the caller waits.

use std::collections::BTreeMap;

use crate::dev::BlockDevice;
use crate::error::{Error, Result};
use crate::format::mask::{Bits, Mask, MaskType};
use crate::format::page::{MdPage, INVALID_MD_PAGE};
use crate::format::super_block::{bstype, SuperBlock};
use crate::format::{self, BLOBID_INVALID, BSTYPE_LEN, PAGE_SIZE};
use crate::md::{self, BlobMd};

/// SPDK's default cluster size (SPDK_BLOB_OPTS_CLUSTER_SZ): 1 MiB.
pub const DEFAULT_CLUSTER_SIZE: u32 = 1024 * 1024;

/// What `init` takes (SPDK's `spdk_bs_opts`, the fields that shape the format).
#[derive(Debug, Clone)]
pub struct InitOpts {
    /// Cluster size in bytes: a multiple of 4 KiB.
    pub cluster_size: u32,
    /// Blobstore type (up to 16 bytes; empty = none).
    pub bstype: String,
    /// Metadata pages; `None` = one per cluster, as SPDK's default.
    pub num_md_pages: Option<u32>,
}

impl Default for InitOpts {
    fn default() -> Self {
        InitOpts {
            cluster_size: DEFAULT_CLUSTER_SIZE,
            bstype: String::new(),
            num_md_pages: None,
        }
    }
}

/// The store's geometry and counters (what `blobcli -s bs` shows).
#[derive(Debug, Clone)]
pub struct StoreInfo {
    /// Cluster size, bytes.
    pub cluster_size: u32,
    /// I/O unit, bytes.
    pub io_unit_size: u32,
    /// Metadata page size, bytes.
    pub md_page_size: u32,
    /// All clusters.
    pub total_clusters: u32,
    /// Clusters not holding metadata.
    pub total_data_clusters: u32,
    /// Free clusters.
    pub free_clusters: u32,
    /// Metadata region start and length, pages.
    pub md_start: u32,
    /// Metadata pages.
    pub md_len: u32,
    /// Blobstore type.
    pub bstype: String,
    /// The super blob, if set.
    pub super_blob: Option<u64>,
    /// Blobs.
    pub blobs: usize,
}

/// A loaded blobstore.
pub struct Blobstore {
    pub(crate) dev: Box<dyn BlockDevice>,
    pub(crate) sb: SuperBlock,
    pub(crate) block_size: u32,
    pub(crate) total_clusters: u32,
    pub(crate) md_clusters: u32,
    pub(crate) used_md_pages: Bits,
    pub(crate) used_blobids: Bits,
    pub(crate) used_clusters: Bits,
    pub(crate) blobs: BTreeMap<u64, BlobMd>,
    /// The super block on the device says clean.
    pub(crate) clean_on_disk: bool,
    /// Root pages of blobs dropped by recovery, zeroed at the next metadata change.
    pub(crate) stale_roots: Vec<u32>,
}

impl std::fmt::Debug for Blobstore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobstore")
            .field("clusters", &self.total_clusters)
            .field("blobs", &self.blobs.len())
            .finish()
    }
}

pub(crate) fn mask_pages(bits: u32) -> u32 {
    Mask::encoded_len(bits).div_ceil(PAGE_SIZE) as u32
}

impl Blobstore {
    /// Format `dev` (SPDK's `spdk_bs_init`): super block at page 0, then the
    /// used-page, used-cluster and used-blobid masks, then the metadata region; the
    /// clusters under all of that are marked used. The metadata area is zeroed; the
    /// super block is written with `clean = 0` (as SPDK does), the masks at unload.
    pub fn init(mut dev: Box<dyn BlockDevice>, opts: &InitOpts) -> Result<Blobstore> {
        let bsz = dev.block_size();
        let inval = |why: String| Error::Invalid {
            what: "initialise a blobstore",
            why,
        };
        if !bsz.is_power_of_two() || !(512..=PAGE_SIZE as u32).contains(&bsz) {
            return Err(inval(format!(
                "block size {bsz} is not a power of two in 512..=4096"
            )));
        }
        let cs = opts.cluster_size;
        if cs == 0 || !cs.is_multiple_of(PAGE_SIZE as u32) {
            return Err(inval(format!(
                "cluster size {cs} is not a multiple of 4096"
            )));
        }
        if opts.bstype.len() > BSTYPE_LEN {
            return Err(inval(format!(
                "bstype '{}' is longer than 16 bytes",
                opts.bstype
            )));
        }
        let size = dev.num_blocks() * u64::from(bsz);
        let total = u32::try_from(size / u64::from(cs))
            .map_err(|_| inval("more than 2^32 clusters".into()))?;
        let md_len = opts.num_md_pages.unwrap_or(total);
        if md_len == 0 {
            return Err(inval("no metadata pages".into()));
        }
        let pages_per_cluster = cs / PAGE_SIZE as u32;
        let page_mask_len = mask_pages(md_len);
        let cluster_mask_len = mask_pages(total);
        let cluster_mask_room = mask_pages(md_len).max(cluster_mask_len);
        let blobid_mask_len = mask_pages(md_len);
        let mut n: u64 = 1;
        let page_mask_start = n as u32;
        n += u64::from(page_mask_len);
        let cluster_mask_start = n as u32;
        n += u64::from(cluster_mask_room);
        let blobid_mask_start = n as u32;
        n += u64::from(blobid_mask_len);
        let md_start = n as u32;
        n += u64::from(md_len);
        let md_clusters = n.div_ceil(u64::from(pages_per_cluster));
        if md_clusters > u64::from(total) {
            return Err(inval(format!(
                "metadata needs {md_clusters} clusters, the device has {total}"
            )));
        }
        let sb = SuperBlock {
            version: format::VERSION,
            length: PAGE_SIZE as u32,
            clean: false,
            super_blob: BLOBID_INVALID,
            cluster_size: cs,
            used_page_mask: (page_mask_start, page_mask_len),
            used_cluster_mask: (cluster_mask_start, cluster_mask_len),
            md: (md_start, md_len),
            bstype: bstype(&opts.bstype),
            used_blobid_mask: (blobid_mask_start, blobid_mask_len),
            size,
            io_unit_size: bsz,
            md_page_size: PAGE_SIZE as u32,
        };
        // Clear the metadata space, in chunks.
        let zero = vec![0u8; 64 * PAGE_SIZE];
        let mut page = 0u64;
        while page < n {
            let k = (n - page).min(64);
            let lbas = PAGE_SIZE as u64 / u64::from(bsz);
            dev.write(page * lbas, &zero[..(k as usize) * PAGE_SIZE])?;
            page += k;
        }
        dev.write(0, &sb.encode())?;
        dev.flush()?;
        let mut used_clusters = Bits::new(total);
        for c in 0..md_clusters as u32 {
            used_clusters.set(c);
        }
        Ok(Blobstore {
            dev,
            sb,
            block_size: bsz,
            total_clusters: total,
            md_clusters: md_clusters as u32,
            used_md_pages: Bits::new(md_len),
            used_blobids: Bits::new(md_len),
            used_clusters,
            blobs: BTreeMap::new(),
            clean_on_disk: false,
            stale_roots: Vec::new(),
        })
    }

    /// Write the masks and mark the super block clean (SPDK's `spdk_bs_unload`), then
    /// give the device back. Refused while a blob is open.
    pub fn unload(mut self) -> Result<Box<dyn BlockDevice>> {
        if let Some(b) = self.blobs.values().find(|b| b.open_refs > 0) {
            return Err(Error::Busy {
                what: "unload the blobstore",
                id: b.id,
                why: "is open".into(),
            });
        }
        self.flush_md()?;
        Ok(self.dev)
    }

    /// Sync every dirty blob, write the masks and a clean super block, keeping the
    /// store loaded (the next metadata change marks it dirty again).
    pub fn flush_md(&mut self) -> Result<()> {
        let ids: Vec<u64> = self
            .blobs
            .values()
            .filter(|b| b.dirty)
            .map(|b| b.id)
            .collect();
        for id in ids {
            self.sync_md(id)?;
        }
        self.mark_dirty()?;
        self.zero_stale_roots()?;
        self.write_masks()?;
        self.dev.flush()?;
        self.sb.clean = true;
        let sb = self.sb.encode();
        self.dev.write(0, &sb)?;
        self.dev.flush()?;
        self.clean_on_disk = true;
        Ok(())
    }

    fn write_masks(&mut self) -> Result<()> {
        let (ps, pl) = self.sb.used_page_mask;
        let (cs, cl) = self.sb.used_cluster_mask;
        let (bs, bl) = self.sb.used_blobid_mask;
        let regions = [
            (MaskType::UsedPages, ps, pl, self.used_md_pages.clone()),
            (MaskType::UsedClusters, cs, cl, self.used_clusters.clone()),
            (MaskType::UsedBlobids, bs, bl, self.used_blobids.clone()),
        ];
        for (t, start, len, bits) in regions {
            if len == 0 {
                continue;
            }
            let mut buf = vec![0u8; len as usize * PAGE_SIZE];
            Mask::encode_into(t, &bits, &mut buf)?;
            self.write_pages(start, &buf)?;
        }
        Ok(())
    }

    /// Before the first metadata change after a load or unload: say dirty on the device.
    pub(crate) fn mark_dirty(&mut self) -> Result<()> {
        if self.clean_on_disk {
            self.sb.clean = false;
            let sb = self.sb.encode();
            self.dev.write(0, &sb)?;
            self.dev.flush()?;
            self.clean_on_disk = false;
        }
        Ok(())
    }

    fn zero_stale_roots(&mut self) -> Result<()> {
        for p in std::mem::take(&mut self.stale_roots) {
            if !self.used_md_pages.get(p) {
                self.write_md_page_raw(p, &vec![0u8; PAGE_SIZE])?;
            }
        }
        Ok(())
    }

    fn lbas_per_page(&self) -> u64 {
        PAGE_SIZE as u64 / u64::from(self.block_size)
    }

    /// Read whole pages from device page `page`.
    pub(crate) fn read_pages(&mut self, page: u32, buf: &mut [u8]) -> Result<()> {
        let lba = u64::from(page) * self.lbas_per_page();
        self.dev.read(lba, buf)
    }

    pub(crate) fn write_pages(&mut self, page: u32, buf: &[u8]) -> Result<()> {
        let lba = u64::from(page) * self.lbas_per_page();
        self.dev.write(lba, buf)
    }

    /// Read metadata page `idx` (relative to md_start).
    pub(crate) fn read_md_page(&mut self, idx: u32) -> Result<Vec<u8>> {
        let mut b = vec![0u8; PAGE_SIZE];
        self.read_pages(self.sb.md.0 + idx, &mut b)?;
        Ok(b)
    }

    fn write_md_page_raw(&mut self, idx: u32, b: &[u8]) -> Result<()> {
        self.write_pages(self.sb.md.0 + idx, b)
    }

    fn alloc_md_page(&mut self) -> Result<u32> {
        // Never page 0, even when free (its blob deleted): it is only ever a first
        // page (blob id 0x1_0000_0000), and in an extent table page 0 means "no
        // extent page", so an extent page there would lose its clusters at the
        // next load.
        let p = self.used_md_pages.first_clear(1).ok_or(Error::NoSpace {
            what: "write blob metadata",
            resource: "metadata pages",
        })?;
        self.used_md_pages.set(p);
        Ok(p)
    }

    /// Take a free cluster.
    pub(crate) fn alloc_cluster(&mut self) -> Result<u32> {
        let c = self
            .used_clusters
            .first_clear(self.md_clusters)
            .ok_or(Error::NoSpace {
                what: "allocate a cluster",
                resource: "clusters",
            })?;
        self.used_clusters.set(c);
        Ok(c)
    }

    /// Free clusters (only for clusters no synced metadata references any more).
    pub(crate) fn free_clusters(&mut self, list: &[u32]) {
        for &c in list {
            self.used_clusters.clear(c);
        }
    }

    /// Allocate a blob's first page and blob id (the first metadata page free in both
    /// masks, as SPDK takes them).
    pub(crate) fn alloc_blobid(&mut self) -> Result<u64> {
        let mut from = 0;
        loop {
            let p = self.used_md_pages.first_clear(from).ok_or(Error::NoSpace {
                what: "create a blob",
                resource: "metadata pages",
            })?;
            if !self.used_blobids.get(p) {
                self.used_md_pages.set(p);
                self.used_blobids.set(p);
                return Ok(format::page_to_blobid(p));
            }
            from = p + 1;
        }
    }

    /// Write blob `id`'s metadata (SPDK's `spdk_blob_sync_md`); see the module docs
    /// for the order.
    pub fn sync_md(&mut self, id: u64) -> Result<()> {
        self.mark_dirty()?;
        let b = self.blobs.get(&id).ok_or(Error::NoBlob(id))?;
        let mut md = b.clone();
        // Extent pages: a fresh page for each slot holding an allocated cluster.
        let mut new_pages: Vec<u32> = Vec::new();
        let mut ep = Vec::new();
        if md.extent_table() {
            for need in md::needed_ep_slots(&md) {
                if need {
                    let p = self.alloc_md_page().inspect_err(|_| {
                        self.release_pages(&new_pages);
                    })?;
                    new_pages.push(p);
                    ep.push(p);
                } else {
                    ep.push(0);
                }
            }
        }
        let ser = match md::serialize(&md, &ep) {
            Ok(s) => s,
            Err(e) => {
                self.release_pages(&new_pages);
                return Err(e);
            }
        };
        let root = format::blobid_to_page(id);
        let mut chain = vec![root];
        for _ in 1..ser.chain.len() {
            match self.alloc_md_page() {
                Ok(p) => {
                    new_pages.push(p);
                    chain.push(p);
                }
                Err(e) => {
                    self.release_pages(&new_pages);
                    return Err(e);
                }
            }
        }
        // Extent pages and continuation pages first, the first page last.
        for (slot, area) in ser.extent_pages.iter().enumerate() {
            if let Some(a) = area {
                let mut pg = MdPage::new(id, 0);
                pg.descriptors[..a.len()].copy_from_slice(a);
                self.write_md_page_raw(ep[slot], &pg.encode())?;
            }
        }
        for i in (0..chain.len()).rev() {
            let mut pg = MdPage::new(id, i as u32);
            pg.descriptors[..ser.chain[i].len()].copy_from_slice(&ser.chain[i]);
            pg.next = chain.get(i + 1).copied().unwrap_or(INVALID_MD_PAGE);
            if i == 0 {
                self.dev.flush()?;
            }
            self.write_md_page_raw(chain[i], &pg.encode())?;
        }
        // The old version's pages (other than the root) are free now.
        let old: Vec<u32> = md
            .pages
            .iter()
            .skip(1)
            .chain(md.extent_pages.iter())
            .copied()
            .filter(|&p| p != 0)
            .collect();
        self.release_pages(&old);
        let freed = std::mem::take(&mut md.pending_free);
        self.free_clusters(&freed);
        md.pages = chain;
        md.extent_pages = ep;
        md.dirty = false;
        self.blobs.insert(id, md);
        Ok(())
    }

    fn release_pages(&mut self, pages: &[u32]) {
        for &p in pages {
            self.used_md_pages.clear(p);
        }
    }

    /// Remove a blob's metadata from the device: its first page is zeroed (the commit
    /// point), then its pages and clusters are free.
    pub(crate) fn erase_md(&mut self, md: &BlobMd) -> Result<()> {
        self.mark_dirty()?;
        let root = format::blobid_to_page(md.id);
        self.write_md_page_raw(root, &vec![0u8; PAGE_SIZE])?;
        let mut pages: Vec<u32> = md.pages.clone();
        pages.extend(md.extent_pages.iter().copied().filter(|&p| p != 0));
        pages.push(root);
        self.release_pages(&pages);
        self.used_blobids.clear(root);
        let cl: Vec<u32> = md
            .allocated()
            .chain(md.pending_free.iter().copied())
            .collect();
        self.free_clusters(&cl);
        Ok(())
    }

    /// Geometry and counters.
    pub fn info(&self) -> StoreInfo {
        StoreInfo {
            cluster_size: self.sb.cluster_size,
            io_unit_size: self.sb.io_unit_size,
            md_page_size: self.sb.md_page_size,
            total_clusters: self.total_clusters,
            total_data_clusters: self.total_clusters - self.md_clusters,
            free_clusters: self.total_clusters - self.used_clusters.count(),
            md_start: self.sb.md.0,
            md_len: self.sb.md.1,
            bstype: format::super_block::bstype_str(&self.sb.bstype),
            super_blob: (self.sb.super_blob != BLOBID_INVALID).then_some(self.sb.super_blob),
            blobs: self.blobs.len(),
        }
    }

    /// The raw super block as held in memory.
    pub fn super_block(&self) -> &SuperBlock {
        &self.sb
    }

    /// Set (or clear with `None`) the super blob; written with the super block now.
    pub fn set_super_blob(&mut self, id: Option<u64>) -> Result<()> {
        if let Some(i) = id {
            if !self.blobs.contains_key(&i) {
                return Err(Error::NoBlob(i));
            }
        }
        self.mark_dirty()?;
        self.sb.super_blob = id.unwrap_or(BLOBID_INVALID);
        let sb = self.sb.encode();
        self.dev.write(0, &sb)?;
        Ok(())
    }

    /// Used-cluster mask (tests compare it against what the blobs reference).
    pub fn used_clusters(&self) -> &Bits {
        &self.used_clusters
    }

    /// Used metadata pages.
    pub fn used_md_pages(&self) -> &Bits {
        &self.used_md_pages
    }

    /// Clusters under the metadata.
    pub fn md_clusters(&self) -> u32 {
        self.md_clusters
    }

    /// Cluster size in I/O units.
    pub fn io_units_per_cluster(&self) -> u64 {
        u64::from(self.sb.cluster_size / self.sb.io_unit_size)
    }

    /// Bytes per I/O unit.
    pub fn io_unit_size(&self) -> u32 {
        self.sb.io_unit_size
    }
}
