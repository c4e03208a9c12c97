//! A secondary's attach: the primary's files mapped at the primary's addresses.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::path::Path;

use crate::addr::VirtAddr;
use crate::args::IovaMode;
use crate::error::{Error, Result};
use crate::sys::mem as sys;

use super::area::{Backing, Memory, Memseg, MemsegList, VaReservation};

/// What a secondary maps: the primary's area as recorded in the shared config.
#[derive(Clone, Debug)]
pub struct AttachRequest {
    /// Base of the area.
    pub base: VirtAddr,
    /// Length of the area.
    pub len: u64,
    /// Memseg lists with their backing files (ascending address, inside the area).
    pub lists: Vec<MemsegList>,
    /// Every memseg.
    pub memsegs: Vec<Memseg>,
    /// IOVA mode of the primary.
    pub iova_mode: IovaMode,
    /// The primary runs with `--no-huge`.
    pub no_huge: bool,
}

impl Memory {
    /// Secondary: map the primary's files at the primary's addresses (module doc). On
    /// error nothing stays mapped. Never creates, resizes or unlinks a file.
    pub fn attach(req: &AttachRequest) -> Result<Memory> {
        let bad = |why: String| Error::AttachFailed {
            what: "memory".into(),
            why,
        };
        if req.len == 0 || req.lists.is_empty() {
            return Err(bad("the primary recorded no memory".into()));
        }
        for l in &req.lists {
            if l.base.0 < req.base.0 || l.base.0 + l.len > req.base.0 + req.len || l.page_size == 0
            {
                return Err(bad(format!(
                    "memseg list at {} (+{:#x}) lies outside the area",
                    l.base, l.len
                )));
            }
        }
        sys::mmap_reserve_exact(req.base, req.len)?;
        let va = VaReservation {
            base: req.base,
            len: req.len,
        };
        let mut paths = Vec::new();
        for l in &req.lists {
            match &l.backing {
                Backing::Shm { path, offset } => {
                    let f = open_existing(path)?;
                    let size = f
                        .metadata()
                        .map_err(|e| Error::io("stat", path.display().to_string(), e))?
                        .len();
                    if size < offset + l.len {
                        return Err(bad(format!(
                            "{} is {size} bytes, the primary mapped {:#x}",
                            path.display(),
                            offset + l.len
                        )));
                    }
                    // SAFETY: inside our fresh PROT_NONE reservation, unreferenced.
                    unsafe { sys::mmap_fixed_shared(l.base, l.len, f.as_fd(), *offset)? };
                    paths.push(path.clone());
                }
                Backing::Hugetlbfs {
                    dir,
                    stem,
                    first,
                    count,
                } => {
                    if u64::from(*count) * l.page_size != l.len {
                        return Err(bad(format!(
                            "{count} pages of {} do not make {:#x} bytes",
                            l.page_size, l.len
                        )));
                    }
                    for k in 0..u64::from(*count) {
                        let path = dir.join(format!("{stem}{}", u64::from(*first) + k));
                        let f = open_existing(&path)?;
                        // SAFETY: slot `k` of the list, inside our reservation, unreferenced.
                        unsafe {
                            sys::mmap_fixed_shared(
                                l.base.add(k * l.page_size),
                                l.page_size,
                                f.as_fd(),
                                0,
                            )?
                        };
                        paths.push(path);
                    }
                }
            }
        }
        std::mem::forget(va);
        if !req.no_huge {
            // Pin as the primary does; a refusal only costs the pinning (pages of a
            // hugetlbfs file do not move anyway).
            let _ = sys::mlock(req.base, req.len);
        }
        Ok(Memory {
            base: req.base,
            len: req.len,
            lists: req.lists.clone(),
            memsegs: req.memsegs.clone(),
            iova_mode: req.iova_mode,
            no_huge: req.no_huge,
            files: paths,
            mapped: true,
            owns_files: false,
        })
    }
}

fn open_existing(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::AttachFailed {
            what: format!("memory file {}", path.display()),
            why: e.to_string(),
        })
}
