//! Loading a store (SPDK's `spdk_bs_load`): validate the super block, then either
//! trust the masks (clean) or rebuild them by walking every metadata chain (dirty),
//! then read every blob's metadata and check that it agrees with the masks.
//!
//! A load that finds something wrong returns [`Error::Corrupt`] naming it (super
//! block CRC, a metadata page's CRC, a broken next-page chain, overlapping extents, a
//! mask shorter than the device, ...) and has written nothing: a load writes only
//! when the store first changes afterwards.

use std::collections::{BTreeMap, HashMap};

use crate::dev::BlockDevice;
use crate::error::{corrupt, Error, Result};
use crate::format::mask::{Bits, Mask, MaskType};
use crate::format::page::{MdPage, INVALID_MD_PAGE};
use crate::format::super_block::SuperBlock;
use crate::format::{self, BSTYPE_LEN, PAGE_SIZE};
use crate::md::{self, BlobMd, XATTR_SNAPSHOT_IN_PROGRESS};
use crate::snapshot::XATTR_SNAPSHOT_PENDING_REMOVAL;
use crate::store::{mask_pages, Blobstore};

/// What `load` takes.
#[derive(Debug, Clone, Default)]
pub struct LoadOpts {
    /// Expected blobstore type; empty matches any (SPDK's zero wildcard).
    pub bstype: String,
    /// Rebuild the masks even if the store says clean (SPDK's `force_recover`).
    pub force_recover: bool,
}

/// A failed load: the error and the device, given back untouched.
pub type LoadFailure = (Error, Box<dyn BlockDevice>);

/// How the load went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadKind {
    /// Masks read from the device.
    Clean,
    /// Masks rebuilt from the metadata chains.
    Recovered,
}

struct Geometry {
    total_clusters: u32,
    md_clusters: u32,
}

fn check_super(
    sb: &SuperBlock,
    dev: &dyn BlockDevice,
    opts: &LoadOpts,
) -> Result<(SuperBlock, Geometry)> {
    let mut sb = sb.clone();
    let want = format::super_block::bstype(&opts.bstype);
    if want != [0u8; BSTYPE_LEN] && want != sb.bstype {
        return Err(corrupt(format!(
            "super block bstype is '{}', expected '{}'",
            format::super_block::bstype_str(&sb.bstype),
            opts.bstype
        )));
    }
    let dev_size = dev.num_blocks() * u64::from(dev.block_size());
    if sb.size == 0 {
        sb.size = dev_size;
    }
    if sb.size > dev_size {
        return Err(corrupt(format!(
            "super block size {} is larger than the device ({dev_size} bytes)",
            sb.size
        )));
    }
    if sb.io_unit_size == 0 {
        sb.io_unit_size = PAGE_SIZE as u32;
    }
    if sb.md_page_size == 0 {
        sb.md_page_size = PAGE_SIZE as u32;
    }
    if sb.md_page_size != PAGE_SIZE as u32 {
        return Err(corrupt(format!(
            "super block md_page_size {} is not supported (4096 only)",
            sb.md_page_size
        )));
    }
    let bsz = dev.block_size();
    if !sb.io_unit_size.is_multiple_of(bsz) || sb.io_unit_size > sb.md_page_size {
        return Err(corrupt(format!(
            "super block io_unit_size {} does not fit the device's {bsz}-byte blocks",
            sb.io_unit_size
        )));
    }
    let cs = sb.cluster_size;
    if cs == 0 || !cs.is_multiple_of(PAGE_SIZE as u32) {
        return Err(corrupt(format!(
            "super block cluster_size {cs} is not a multiple of 4096"
        )));
    }
    let total = u32::try_from(sb.size / u64::from(cs))
        .map_err(|_| corrupt("super block describes more than 2^32 clusters"))?;
    let dev_pages = dev_size / PAGE_SIZE as u64;
    let (ms, ml) = sb.md;
    let region_ok = |name: &str, (s, l): (u32, u32), need: u32| -> Result<()> {
        let end = u64::from(s) + u64::from(l);
        if s == 0 || end > u64::from(ms) || l < need {
            return Err(corrupt(format!(
                "super block {name} region (start {s}, {l} pages) is outside pages 1..{ms} or shorter than the {need} pages it needs"
            )));
        }
        Ok(())
    };
    if ml == 0 || u64::from(ms) + u64::from(ml) > dev_pages {
        return Err(corrupt(format!(
            "super block metadata region (start {ms}, {ml} pages) is outside the device's {dev_pages} pages"
        )));
    }
    region_ok("used-page mask", sb.used_page_mask, mask_pages(ml))?;
    // The cluster mask's needed length is checked against its content (a shorter mask
    // is named as such).
    region_ok("used-cluster mask", sb.used_cluster_mask, 1)?;
    if sb.used_blobid_mask.1 != 0 {
        region_ok("used-blobid mask", sb.used_blobid_mask, mask_pages(ml))?;
    }
    let pages_per_cluster = u64::from(cs) / PAGE_SIZE as u64;
    let md_clusters = (u64::from(ms) + u64::from(ml)).div_ceil(pages_per_cluster);
    if md_clusters > u64::from(total) {
        return Err(corrupt(format!(
            "super block metadata ({md_clusters} clusters) is larger than the store ({total} clusters)"
        )));
    }
    Ok((
        sb,
        Geometry {
            total_clusters: total,
            md_clusters: md_clusters as u32,
        },
    ))
}

impl Blobstore {
    /// Load the store on `dev`.
    pub fn load(dev: Box<dyn BlockDevice>, opts: &LoadOpts) -> Result<(Blobstore, LoadKind)> {
        Loader::run(dev, opts)
    }

    /// Load a store, giving the device back with the error when it fails.
    pub fn try_load(
        dev: Box<dyn BlockDevice>,
        opts: &LoadOpts,
    ) -> std::result::Result<(Blobstore, LoadKind), Box<LoadFailure>> {
        let mut l = Loader::new(dev);
        match l.load(opts) {
            Ok(r) => Ok(r),
            Err(e) => Err(Box::new((
                e,
                l.dev
                    .take()
                    .expect("the loader keeps the device on failure"),
            ))),
        }
    }
}

struct Loader {
    dev: Option<Box<dyn BlockDevice>>,
}

impl Loader {
    fn new(dev: Box<dyn BlockDevice>) -> Loader {
        Loader { dev: Some(dev) }
    }

    fn run(dev: Box<dyn BlockDevice>, opts: &LoadOpts) -> Result<(Blobstore, LoadKind)> {
        Loader::new(dev).load(opts)
    }

    fn load(&mut self, opts: &LoadOpts) -> Result<(Blobstore, LoadKind)> {
        let dev = self.dev.as_mut().expect("device");
        let bsz = dev.block_size();
        if !bsz.is_power_of_two() || !(512..=PAGE_SIZE as u32).contains(&bsz) {
            return Err(Error::Invalid {
                what: "load a blobstore",
                why: format!("block size {bsz} is not a power of two in 512..=4096"),
            });
        }
        if dev.num_blocks() * u64::from(bsz) < PAGE_SIZE as u64 {
            return Err(corrupt("the device is smaller than a super block"));
        }
        let mut page0 = vec![0u8; PAGE_SIZE];
        dev.read(0, &mut page0)?;
        let sb = SuperBlock::decode(&page0)?;
        let (sb, g) = check_super(&sb, dev.as_ref(), opts)?;
        let (_, ml) = sb.md;
        let mut bs = Blobstore {
            dev: self.dev.take().expect("device"),
            sb,
            block_size: bsz,
            total_clusters: g.total_clusters,
            md_clusters: g.md_clusters,
            used_md_pages: Bits::new(ml),
            used_blobids: Bits::new(ml),
            used_clusters: Bits::new(g.total_clusters),
            blobs: BTreeMap::new(),
            clean_on_disk: false,
            stale_roots: Vec::new(),
        };
        let clean = bs.sb.clean && bs.sb.used_blobid_mask.1 != 0 && !opts.force_recover;
        let r = if clean {
            load_clean(&mut bs)
        } else {
            recover(&mut bs)
        };
        match r {
            Ok(()) => {
                bs.clean_on_disk = bs.sb.clean;
                let kind = if clean {
                    LoadKind::Clean
                } else {
                    LoadKind::Recovered
                };
                Ok((bs, kind))
            }
            Err(e) => {
                self.dev = Some(bs.dev);
                Err(e)
            }
        }
    }
}

fn read_mask(bs: &mut Blobstore, t: MaskType, (start, len): (u32, u32)) -> Result<Bits> {
    let mut buf = vec![0u8; len as usize * PAGE_SIZE];
    bs.read_pages(start, &mut buf)?;
    let m = Mask::decode(t, &buf).map_err(|e| corrupt(format!("{t:?} mask: {e}")))?;
    Ok(m.bits)
}

fn load_clean(bs: &mut Blobstore) -> Result<()> {
    let ml = bs.sb.md.1;
    let pages = read_mask(bs, MaskType::UsedPages, bs.sb.used_page_mask)?;
    if pages.len() != ml {
        return Err(corrupt(format!(
            "used-page mask holds {} bits, the metadata region has {ml} pages",
            pages.len()
        )));
    }
    let clusters = read_mask(bs, MaskType::UsedClusters, bs.sb.used_cluster_mask)?;
    if clusters.len() < bs.total_clusters {
        return Err(corrupt(format!(
            "used-cluster mask holds {} bits, shorter than the device's {} clusters",
            clusters.len(),
            bs.total_clusters
        )));
    }
    let ids = read_mask(bs, MaskType::UsedBlobids, bs.sb.used_blobid_mask)?;
    if ids.len() != ml {
        return Err(corrupt(format!(
            "used-blobid mask holds {} bits, the metadata region has {ml} pages",
            ids.len()
        )));
    }
    let mut uc = Bits::new(bs.total_clusters);
    for c in clusters.iter_set().filter(|&c| c < bs.total_clusters) {
        uc.set(c);
    }
    for c in 0..bs.md_clusters {
        if !uc.get(c) {
            return Err(corrupt(format!(
                "used-cluster mask leaves metadata cluster {c} free"
            )));
        }
    }
    for p in ids.iter_set() {
        if !pages.get(p) {
            return Err(corrupt(format!(
                "used-blobid mask names page {p}, which the used-page mask says is free"
            )));
        }
    }
    bs.used_md_pages = pages;
    bs.used_blobids = ids;
    bs.used_clusters = uc;
    let roots: Vec<u32> = bs.used_blobids.iter_set().collect();
    let mut owner: HashMap<u32, u64> = HashMap::new();
    for p in roots {
        let md = read_blob(bs, p, true)?;
        claim_clusters(bs, &md, &mut owner, true)?;
        bs.blobs.insert(md.id, md);
    }
    Ok(())
}

/// Read blob at root page `root` (chain, then extent pages), checking each page.
/// `masks_trusted`: every page must be marked used in the used-page mask.
fn read_blob(bs: &mut Blobstore, root: u32, masks_trusted: bool) -> Result<BlobMd> {
    let id = format::page_to_blobid(root);
    let ml = bs.sb.md.1;
    let mut areas = Vec::new();
    let mut pages = Vec::new();
    let mut cur = root;
    loop {
        if pages.len() as u32 > ml || pages.contains(&cur) {
            return Err(corrupt(format!(
                "broken next-page chain of blob {id:#x}: page {cur} repeats (a loop)"
            )));
        }
        if masks_trusted && !bs.used_md_pages.get(cur) {
            return Err(corrupt(format!(
                "broken next-page chain of blob {id:#x}: page {cur} is free in the used-page mask"
            )));
        }
        let raw = bs.read_md_page(cur)?;
        let pg = MdPage::decode(&raw).map_err(|e| {
            if pages.is_empty() {
                corrupt(format!("metadata page {cur} (first page of blob {id:#x}): {e}"))
            } else {
                corrupt(format!(
                    "broken next-page chain of blob {id:#x}: metadata page {cur} (sequence {}): {e}",
                    pages.len()
                ))
            }
        })?;
        if pg.id != id || pg.sequence_num as usize != pages.len() {
            return Err(corrupt(format!(
                "broken next-page chain of blob {id:#x}: page {cur} holds blob {:#x} sequence {}, expected sequence {}",
                pg.id,
                pg.sequence_num,
                pages.len()
            )));
        }
        pages.push(cur);
        areas.push(pg.descriptors);
        if pg.next == INVALID_MD_PAGE {
            break;
        }
        if pg.next >= ml {
            return Err(corrupt(format!(
                "broken next-page chain of blob {id:#x}: page {cur} points to page {}, past the {ml} metadata pages",
                pg.next
            )));
        }
        cur = pg.next;
    }
    let parsed = md::parse_chain(id, &areas, bs.total_clusters)?;
    let mut blob = parsed.md;
    blob.pages = pages;
    if let Some(slots) = parsed.ep_slots {
        for (slot, &p) in slots.iter().enumerate() {
            if p == 0 {
                continue;
            }
            if p >= ml || (masks_trusted && !bs.used_md_pages.get(p)) {
                return Err(corrupt(format!(
                    "extent table of blob {id:#x} names page {p}, outside the metadata region or free"
                )));
            }
            let raw = bs.read_md_page(p)?;
            let pg = MdPage::decode(&raw).map_err(|e| {
                corrupt(format!(
                    "metadata page {p} (extent page of blob {id:#x}): {e}"
                ))
            })?;
            // SPDK's check (bs_load_cur_extent_page_valid): CRC, sequence 0, one extent
            // page descriptor. The id may name another blob: a snapshot takes over the
            // extent pages of the blob it was taken of as they are.
            if pg.sequence_num != 0 {
                return Err(corrupt(format!(
                    "extent page {p} of blob {id:#x} has sequence {}, not 0",
                    pg.sequence_num
                )));
            }
            md::apply_extent_page(&mut blob, slot, &pg.descriptors, bs.total_clusters)?;
        }
        if !blob.thin() && blob.clusters.contains(&0) {
            return Err(corrupt(format!(
                "metadata of blob {id:#x}: a thick blob with an unallocated cluster"
            )));
        }
        blob.extent_pages = slots;
    }
    Ok(blob)
}

/// Record the blob's clusters; a cluster claimed twice, inside the metadata area, or
/// (clean load) free in the mask is an error.
fn claim_clusters(
    bs: &mut Blobstore,
    md: &BlobMd,
    owner: &mut HashMap<u32, u64>,
    mask_trusted: bool,
) -> Result<()> {
    for c in md.allocated() {
        if c < bs.md_clusters {
            return Err(corrupt(format!(
                "blob {:#x} references cluster {c}, inside the metadata area",
                md.id
            )));
        }
        if let Some(o) = owner.insert(c, md.id) {
            return Err(corrupt(format!(
                "overlapping extents: cluster {c} belongs to blob {o:#x} and blob {:#x}",
                md.id
            )));
        }
        if mask_trusted {
            if !bs.used_clusters.get(c) {
                return Err(corrupt(format!(
                    "blob {:#x} references cluster {c}, which the used-cluster mask says is free",
                    md.id
                )));
            }
        } else {
            bs.used_clusters.set(c);
        }
    }
    Ok(())
}

/// Dirty load: find every blob's first page by scanning the metadata region (a page
/// with a good CRC, sequence 0 and the id of its own index), walk its chain, and
/// rebuild all three masks.
fn recover(bs: &mut Blobstore) -> Result<()> {
    let ml = bs.sb.md.1;
    bs.used_md_pages = Bits::new(ml);
    bs.used_blobids = Bits::new(ml);
    bs.used_clusters = Bits::new(bs.total_clusters);
    for c in 0..bs.md_clusters {
        bs.used_clusters.set(c);
    }
    let mut roots = Vec::new();
    let batch = 64u32;
    let mut i = 0;
    while i < ml {
        let n = batch.min(ml - i);
        let mut buf = vec![0u8; n as usize * PAGE_SIZE];
        bs.read_pages(bs.sb.md.0 + i, &mut buf)?;
        for k in 0..n {
            let pg = &buf[k as usize * PAGE_SIZE..(k as usize + 1) * PAGE_SIZE];
            if !MdPage::crc_ok(pg) {
                continue;
            }
            let Ok(p) = MdPage::decode(pg) else { continue };
            if p.sequence_num == 0 && p.id == format::page_to_blobid(i + k) {
                roots.push(i + k);
            }
        }
        i += n;
    }
    let mut blobs = Vec::new();
    for r in roots {
        let md = read_blob(bs, r, false)?;
        blobs.push(md);
    }
    // A snapshot whose taking did not finish (its blob does not name it as parent yet)
    // is dropped: its clusters still belong to that blob.
    // Likewise a snapshot being deleted into its clone ("SNAPRM") that no blob names
    // any more: the clone has its clusters.
    let ids: HashMap<u64, Option<u64>> = blobs.iter().map(|b| (b.id, b.parent())).collect();
    let mut owner = HashMap::new();
    let mut settled = Vec::new();
    for mut b in blobs {
        let unfinished = b
            .internal_xattr(XATTR_SNAPSHOT_IN_PROGRESS)
            .and_then(md::id_of)
            .is_some_and(|of| ids.get(&of).copied().flatten() != Some(b.id));
        let removed = b.internal_xattr(XATTR_SNAPSHOT_PENDING_REMOVAL).is_some()
            && !ids.values().any(|p| *p == Some(b.id));
        if unfinished || removed {
            bs.stale_roots.push(format::blobid_to_page(b.id));
            continue;
        }
        // A snapshot kept although it carries a mark (its taking stopped after its
        // blob named it, or its deletion before its clone took over) loses the mark,
        // on the device too (below, as SPDK's load does): left there, a later delete
        // or snapshot of its clone would make the next recovery drop it as unfinished.
        if b.internal_xattr(XATTR_SNAPSHOT_IN_PROGRESS).is_some()
            || b.internal_xattr(XATTR_SNAPSHOT_PENDING_REMOVAL).is_some()
        {
            b.remove_internal(XATTR_SNAPSHOT_IN_PROGRESS);
            b.remove_internal(XATTR_SNAPSHOT_PENDING_REMOVAL);
            b.dirty = true;
            settled.push(b.id);
        }
        for &p in b
            .pages
            .iter()
            .chain(b.extent_pages.iter().filter(|&&p| p != 0))
        {
            if bs.used_md_pages.get(p) {
                return Err(corrupt(format!(
                    "metadata page {p} is claimed by two chains (blob {:#x} and another)",
                    b.id
                )));
            }
            bs.used_md_pages.set(p);
        }
        bs.used_blobids.set(format::blobid_to_page(b.id));
        claim_clusters(bs, &b, &mut owner, false)?;
        bs.blobs.insert(b.id, b);
    }
    // The masks are whole now: the metadata of the settled snapshots can be written.
    for id in settled {
        bs.sync_md(id)?;
    }
    Ok(())
}
