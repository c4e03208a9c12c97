//! A blob's metadata in memory and its translation to and from SPDK's descriptors:
//! parsing a chain's pages (SPDK's `blob_parse_page` rules) and serialising it back
//! into pages (flags first, then xattrs, internal xattrs, then the extents as an RLE
//! list or as an extent table with extent pages, splitting across pages as SPDK does).

use crate::error::{corrupt, Result};
use crate::format::desc::{
    self, Descriptor, Extent, ExtentTableEntry, Flags, Xattr, EXTENTS_PER_EP, FLAG_EXTENT_TABLE,
    FLAG_READ_ONLY, FLAG_THIN_PROV, HEADER,
};
use crate::format::page::DESC_AREA;

/// SPDK's internal xattr naming a blob's parent snapshot (BLOB_SNAPSHOT, "SNAP"),
/// value: the parent's 8-byte blob id.
pub const XATTR_SNAPSHOT: &str = "SNAP";
/// SPDK's internal xattr on a snapshot being made (SNAPSHOT_IN_PROGRESS, "SNAPTMP"),
/// value: the id of the blob it is taken of.
pub const XATTR_SNAPSHOT_IN_PROGRESS: &str = "SNAPTMP";

/// One blob's metadata.
#[derive(Debug, Clone, Default)]
pub struct BlobMd {
    /// Blob id.
    pub id: u64,
    /// Metadata pages of the chain (first = the blob id's page).
    pub pages: Vec<u32>,
    /// Extent pages (one slot per 512 clusters; 0 = none), extent-table blobs only.
    pub extent_pages: Vec<u32>,
    /// Cluster index per blob cluster; 0 = unallocated.
    pub clusters: Vec<u32>,
    /// The flag words.
    pub flags: Flags,
    /// User xattrs, in order.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Internal xattrs, in order.
    pub internal: Vec<(String, Vec<u8>)>,
    /// Clusters given up by a resize or snapshot, freed once the metadata is on disk.
    pub pending_free: Vec<u32>,
    /// Changed since the last sync.
    pub dirty: bool,
    /// Open handles.
    pub open_refs: u32,
}

impl BlobMd {
    /// Thin provisioned.
    pub fn thin(&self) -> bool {
        self.flags.invalid & FLAG_THIN_PROV != 0
    }

    /// Uses an extent table (else an RLE extent list).
    pub fn extent_table(&self) -> bool {
        self.flags.invalid & FLAG_EXTENT_TABLE != 0
    }

    /// Data read-only: SPDK_BLOB_READ_ONLY, or data_ro / invalid bits unknown here.
    pub fn data_ro(&self) -> bool {
        self.flags.data_ro & FLAG_READ_ONLY != 0
            || self.flags.data_ro & !desc::DATA_RO_FLAGS_MASK != 0
    }

    /// Metadata read-only.
    pub fn md_ro(&self) -> bool {
        self.data_ro() || self.flags.md_ro & !desc::MD_RO_FLAGS_MASK != 0
    }

    /// The parent snapshot (internal "SNAP" xattr), if any.
    pub fn parent(&self) -> Option<u64> {
        self.internal_xattr(XATTR_SNAPSHOT).and_then(id_of)
    }

    /// An internal xattr's value.
    pub fn internal_xattr(&self, name: &str) -> Option<&[u8]> {
        self.internal
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Set (or replace) an internal xattr.
    pub fn set_internal(&mut self, name: &str, value: Vec<u8>) {
        match self.internal.iter_mut().find(|(n, _)| n == name) {
            Some(x) => x.1 = value,
            None => self.internal.push((name.to_string(), value)),
        }
        self.flags.invalid |= desc::FLAG_INTERNAL_XATTR;
        self.dirty = true;
    }

    /// Remove an internal xattr.
    pub fn remove_internal(&mut self, name: &str) {
        self.internal.retain(|(n, _)| n != name);
        if self.internal.is_empty() {
            self.flags.invalid &= !desc::FLAG_INTERNAL_XATTR;
        }
        self.dirty = true;
    }

    /// Allocated clusters.
    pub fn allocated(&self) -> impl Iterator<Item = u32> + '_ {
        self.clusters.iter().copied().filter(|&c| c != 0)
    }
}

/// The largest blob a store of `total_clusters` loads: thin blobs may be larger than
/// the store (over-provisioning), up to 1024 times it (at least 2^20 clusters).
pub fn max_clusters(total_clusters: u32) -> u64 {
    (u64::from(total_clusters) * 1024).max(1 << 20)
}

/// An 8-byte little-endian blob id value.
pub fn id_of(v: &[u8]) -> Option<u64> {
    let a: [u8; 8] = v.try_into().ok()?;
    Some(u64::from_le_bytes(a))
}

/// What the chain's descriptors say, before extent pages are read.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The blob (clusters from an RLE list, or all 0 for an extent-table blob).
    pub md: BlobMd,
    /// Extent-table blobs: one md page index per 512-cluster slot (0 = none).
    pub ep_slots: Option<Vec<u32>>,
}

/// Parse the descriptors of a blob's chain (pages in order). `total_clusters` bounds
/// cluster indices.
pub fn parse_chain(id: u64, areas: &[Vec<u8>], total_clusters: u32) -> Result<Parsed> {
    let bad = |why: String| corrupt(format!("metadata of blob {id:#x}: {why}"));
    let mut md = BlobMd {
        id,
        ..Default::default()
    };
    let mut rle_found = false;
    let mut et: Option<(u64, Vec<u32>)> = None;
    let mut flags_found = false;
    for (i, area) in areas.iter().enumerate() {
        let descs =
            Descriptor::parse_area(area).map_err(|e| bad(format!("page {i} of the chain: {e}")))?;
        for d in descs {
            match d {
                Descriptor::Padding | Descriptor::Unknown(_) => {}
                Descriptor::Flags(f) => {
                    if f.invalid & !desc::INVALID_FLAGS_MASK != 0 {
                        return Err(bad(format!(
                            "invalid_flags {:#x} has bits this version does not know",
                            f.invalid
                        )));
                    }
                    md.flags = f;
                    flags_found = true;
                }
                Descriptor::Xattr(x) => {
                    let list = if x.internal {
                        &mut md.internal
                    } else {
                        &mut md.xattrs
                    };
                    list.retain(|(n, _)| *n != x.name);
                    list.push((x.name, x.value));
                }
                Descriptor::ExtentRle(ex) => {
                    if et.is_some() {
                        return Err(bad("both an extent RLE list and an extent table".into()));
                    }
                    rle_found = true;
                    for e in ex {
                        if e.cluster_idx != 0 {
                            let end = u64::from(e.cluster_idx) + u64::from(e.length);
                            if end > u64::from(total_clusters) {
                                return Err(bad(format!(
                                    "extent of {} clusters at {} runs past the {total_clusters} clusters",
                                    e.length, e.cluster_idx
                                )));
                            }
                        }
                        if md.clusters.len() as u64 + u64::from(e.length)
                            > max_clusters(total_clusters)
                        {
                            return Err(bad(format!(
                                "extents add up to more than {} clusters",
                                max_clusters(total_clusters)
                            )));
                        }
                        for j in 0..e.length {
                            md.clusters.push(if e.cluster_idx == 0 {
                                0
                            } else {
                                e.cluster_idx + j
                            });
                        }
                    }
                }
                Descriptor::ExtentTable {
                    num_clusters,
                    entries,
                } => {
                    if rle_found {
                        return Err(bad("both an extent RLE list and an extent table".into()));
                    }
                    if num_clusters > max_clusters(total_clusters) {
                        return Err(bad(format!("extent table claims {num_clusters} clusters")));
                    }
                    let t = et.get_or_insert((num_clusters, Vec::new()));
                    if t.0 != num_clusters {
                        return Err(bad(format!(
                            "extent tables disagree on the cluster count ({} vs {num_clusters})",
                            t.0
                        )));
                    }
                    let max_slots = num_clusters.div_ceil(EXTENTS_PER_EP);
                    for e in entries {
                        if e.page_idx != 0 {
                            if e.num_pages != 1 {
                                return Err(bad(format!(
                                    "extent table entry for page {} covers {} pages",
                                    e.page_idx, e.num_pages
                                )));
                            }
                            t.1.push(e.page_idx);
                        } else {
                            if t.1.len() as u64 + u64::from(e.num_pages) > max_slots {
                                return Err(bad("extent table longer than the blob".into()));
                            }
                            t.1.extend(std::iter::repeat_n(0, e.num_pages as usize));
                        }
                        if t.1.len() as u64 > max_slots {
                            return Err(bad("extent table longer than the blob".into()));
                        }
                    }
                }
                Descriptor::ExtentPage { .. } => {
                    return Err(bad("an extent page descriptor inside the chain".into()));
                }
            }
        }
    }
    if !flags_found {
        return Err(bad("no flags descriptor".into()));
    }
    if !md.thin() && md.clusters.contains(&0) {
        return Err(bad("a thick blob with an unallocated cluster".into()));
    }
    let ep_slots = match et {
        Some((n, slots)) => {
            md.clusters = vec![0; n as usize];
            let mut s = slots;
            s.resize(n.div_ceil(EXTENTS_PER_EP) as usize, 0);
            Some(s)
        }
        None => None,
    };
    Ok(Parsed { md, ep_slots })
}

/// Apply one extent page (slot `slot`) to an extent-table blob.
pub fn apply_extent_page(
    md: &mut BlobMd,
    slot: usize,
    area: &[u8],
    total_clusters: u32,
) -> Result<()> {
    let id = md.id;
    let bad = |why: String| corrupt(format!("extent page {slot} of blob {id:#x}: {why}"));
    let descs = Descriptor::parse_area(area).map_err(|e| bad(e.to_string()))?;
    let Some(Descriptor::ExtentPage {
        start_cluster_idx,
        clusters,
    }) = descs.into_iter().next()
    else {
        return Err(bad("does not start with an extent page descriptor".into()));
    };
    let start = slot as u64 * EXTENTS_PER_EP;
    if u64::from(start_cluster_idx) != start {
        return Err(bad(format!(
            "starts at cluster {start_cluster_idx}, expected {start}"
        )));
    }
    if clusters.len() as u64 > EXTENTS_PER_EP
        || start + clusters.len() as u64 > md.clusters.len() as u64
    {
        return Err(bad(format!("{} entries run past the blob", clusters.len())));
    }
    for (i, c) in clusters.into_iter().enumerate() {
        if c >= total_clusters {
            return Err(bad(format!(
                "cluster {c} is past the {total_clusters} clusters"
            )));
        }
        md.clusters[start as usize + i] = c;
    }
    Ok(())
}

/// Descriptor areas for a blob's chain, and for extent-table blobs the extent pages'
/// areas (by slot; `None` for a slot with nothing allocated). `ep_pages` gives each
/// needed slot its md page index (the caller allocates them).
pub struct Serialized {
    /// One area per chain page.
    pub chain: Vec<Vec<u8>>,
    /// Extent page areas by slot.
    pub extent_pages: Vec<Option<Vec<u8>>>,
}

/// Which extent-page slots hold an allocated cluster.
pub fn needed_ep_slots(md: &BlobMd) -> Vec<bool> {
    md.clusters
        .chunks(EXTENTS_PER_EP as usize)
        .map(|c| c.iter().any(|&x| x != 0))
        .collect()
}

struct Packer {
    pages: Vec<Vec<u8>>,
}

impl Packer {
    fn room(&self) -> usize {
        DESC_AREA - self.pages.last().map_or(0, |p| p.len())
    }
    fn push(&mut self, d: &[u8]) {
        if d.len() > self.room() {
            self.pages.push(Vec::new());
        }
        self.pages.last_mut().expect("a page").extend_from_slice(d);
    }
    fn new_page(&mut self) {
        self.pages.push(Vec::new());
    }
}

/// Serialise `md` (with `ep_pages[slot]` the md page of each needed extent page).
pub fn serialize(md: &BlobMd, ep_pages: &[u32]) -> Result<Serialized> {
    let mut p = Packer {
        pages: vec![Vec::new()],
    };
    p.push(&Descriptor::Flags(md.flags).encode());
    for (internal, list) in [(false, &md.xattrs), (true, &md.internal)] {
        for (n, v) in list {
            let d = Descriptor::Xattr(Xattr {
                internal,
                name: n.clone(),
                value: v.clone(),
            })
            .encode();
            if d.len() > DESC_AREA {
                return Err(crate::Error::Invalid {
                    what: "serialise an xattr",
                    why: format!("'{n}' takes {} bytes, more than a page", d.len()),
                });
            }
            p.push(&d);
        }
    }
    let mut extent_pages = Vec::new();
    if md.extent_table() {
        let n = md.clusters.len() as u64;
        // Entries: allocated pages one by one, runs of unallocated slots together.
        let mut entries: Vec<ExtentTableEntry> = Vec::new();
        for &pg in ep_pages {
            match entries.last_mut() {
                Some(e) if pg == 0 && e.page_idx == 0 => e.num_pages += 1,
                _ => entries.push(ExtentTableEntry {
                    page_idx: pg,
                    num_pages: 1,
                }),
            }
        }
        let mut rest = &entries[..];
        loop {
            let fixed = HEADER + 8;
            if p.room() < fixed + desc::ET_ENTRY_LEN.min(if rest.is_empty() { 0 } else { 8 }) {
                p.new_page();
            }
            let fit = ((p.room() - fixed) / desc::ET_ENTRY_LEN).min(rest.len());
            p.push(
                &Descriptor::ExtentTable {
                    num_clusters: n,
                    entries: rest[..fit].to_vec(),
                }
                .encode(),
            );
            rest = &rest[fit..];
            if rest.is_empty() {
                break;
            }
            p.new_page();
        }
        for (slot, &pg) in ep_pages.iter().enumerate() {
            if pg == 0 {
                extent_pages.push(None);
                continue;
            }
            let start = slot * EXTENTS_PER_EP as usize;
            let end = (start + EXTENTS_PER_EP as usize).min(md.clusters.len());
            extent_pages.push(Some(
                Descriptor::ExtentPage {
                    start_cluster_idx: start as u32,
                    clusters: md.clusters[start..end].to_vec(),
                }
                .encode(),
            ));
        }
    } else {
        let mut runs: Vec<Extent> = Vec::new();
        for &c in &md.clusters {
            match runs.last_mut() {
                Some(r) if r.cluster_idx == 0 && c == 0 => r.length += 1,
                Some(r) if r.cluster_idx != 0 && c != 0 && r.cluster_idx + r.length == c => {
                    r.length += 1
                }
                _ => runs.push(Extent {
                    cluster_idx: c,
                    length: 1,
                }),
            }
        }
        let mut rest = &runs[..];
        while !rest.is_empty() {
            if p.room() < HEADER + desc::EXTENT_LEN {
                p.new_page();
            }
            let fit = ((p.room() - HEADER) / desc::EXTENT_LEN).min(rest.len());
            p.push(&Descriptor::ExtentRle(rest[..fit].to_vec()).encode());
            rest = &rest[fit..];
        }
    }
    Ok(Serialized {
        chain: p.pages,
        extent_pages,
    })
}
