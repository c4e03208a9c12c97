//! Translation between this process's [`Memory`] and the shared config: what a primary
//! records, what a secondary reads back (validated, never trusted blindly), and the
//! process-table entry of this process.

use std::path::{Path, PathBuf};

use crate::addr::VirtAddr;
use crate::args::IovaMode;
use crate::config::{self, put_str, SharedConfig};
use crate::error::{Error, Result};
use crate::memory::{AttachRequest, Backing, Memory, MemsegList};

pub(super) fn proc_entry(role: u32, lcores: &[(u32, u32)], main: u32) -> config::ProcEntry {
    let mut e = config::ProcEntry {
        pid: std::process::id() as i32,
        role,
        main_lcore: main,
        ..Default::default()
    };
    for &(l, _) in lcores {
        if (l as usize) < crate::lcore::MAX_LCORE {
            e.lcores[(l / 64) as usize] |= 1 << (l % 64);
            e.n_lcores += 1;
        }
    }
    e
}

/// Secondary: what to map, from the primary's config (validated, never trusted blindly).
pub(super) fn attach_request(cfg: &SharedConfig) -> Result<AttachRequest> {
    use std::os::unix::ffi::OsStrExt;
    let bad = |why: String| Error::AttachFailed {
        what: "memory layout in the shared config".into(),
        why,
    };
    let memsegs = cfg.memsegs().to_vec();
    let g = cfg.lock();
    let n = g.n_lists as usize;
    if n == 0 || n > config::MAX_MEMSEG_LISTS {
        return Err(bad(format!("{n} memseg lists")));
    }
    let mut lists = Vec::with_capacity(n);
    for (i, d) in g.lists[..n].iter().enumerate() {
        let segs = d.first_seg as usize..(d.first_seg + d.n_segs) as usize;
        if segs.end > memsegs.len() || segs.start > segs.end {
            return Err(bad(format!(
                "list {i}: memsegs {segs:?} outside the {} recorded",
                memsegs.len()
            )));
        }
        let dir = PathBuf::from(std::ffi::OsStr::from_bytes(config::get_str(&d.file_dir)));
        let stem = String::from_utf8_lossy(config::get_str(&d.file_stem)).into_owned();
        if dir.as_os_str().is_empty() || stem.is_empty() {
            return Err(bad(format!(
                "list {i}: the path of its files did not fit the config (primary's paths too long)"
            )));
        }
        let backing = match d.backing {
            config::BACKING_HUGETLBFS => Backing::Hugetlbfs {
                dir,
                stem,
                first: d.first_file,
                count: d.n_files,
            },
            config::BACKING_SHM => Backing::Shm {
                path: dir.join(stem),
                offset: d.file_off,
            },
            other => return Err(bad(format!("list {i}: unknown backing {other}"))),
        };
        lists.push(MemsegList {
            base: VirtAddr(d.base_va),
            len: d.len,
            page_size: d.page_size,
            socket: d.socket,
            segs,
            backing,
        });
    }
    Ok(AttachRequest {
        base: VirtAddr(g.base_va),
        len: g.va_len,
        lists,
        memsegs,
        iova_mode: if g.iova_mode == 0 {
            IovaMode::Pa
        } else {
            IovaMode::Va
        },
        no_huge: g.flags & config::FLAG_NO_HUGE != 0,
    })
}

pub(super) fn fill_config(b: &mut config::ConfigBody, memory: &Memory, prefix: &str) {
    b.iova_mode = match memory.iova_mode() {
        IovaMode::Pa => 0,
        IovaMode::Va => 1,
    };
    b.flags = if memory.no_huge() {
        config::FLAG_NO_HUGE
    } else {
        config::FLAG_DMA_CAPABLE
    };
    b.base_va = memory.base().0;
    b.va_len = memory.len();
    b.next_serial = 1;
    put_str(&mut b.file_prefix, prefix.as_bytes());
    b.n_lists = memory.lists().len() as u32;
    for (d, l) in b.lists.iter_mut().zip(memory.lists()) {
        d.base_va = l.base.0;
        d.len = l.len;
        d.page_size = l.page_size;
        d.socket = l.socket;
        d.first_seg = l.segs.start as u64;
        d.n_segs = l.segs.len() as u64;
        let (dir, stem) = match &l.backing {
            Backing::Hugetlbfs {
                dir,
                stem,
                first,
                count,
            } => {
                d.backing = config::BACKING_HUGETLBFS;
                d.first_file = *first;
                d.n_files = *count;
                (dir.clone(), stem.clone())
            }
            Backing::Shm { path, offset } => {
                d.backing = config::BACKING_SHM;
                d.file_off = *offset;
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (dir, name)
            }
        };
        // Paths longer than the buffers are recorded empty; a secondary then refuses to
        // attach rather than opening a wrong file.
        use std::os::unix::ffi::OsStrExt;
        put_str(&mut d.file_dir, dir.as_os_str().as_bytes());
        put_str(&mut d.file_stem, stem.as_bytes());
    }
}
