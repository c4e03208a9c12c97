//! Physical Region Page lists (NVMe 1.4 section 4.3): how a data buffer is described to
//! the controller.
//!
//! The controller's memory page size is 4 KiB (CC.MPS = 0). PRP1 holds the IOVA of the
//! first byte (any dword-aligned offset into its page); if the transfer ends in the next
//! page PRP2 holds that page's IOVA; if it spans more pages PRP2 points at a PRP list: one
//! 4 KiB page of 8-byte page IOVAs. This driver never chains lists: a command moves at
//! most [`MAX_LIST_ENTRIES`] + 1 pages, so [`crate::qpair`] caps a command at 2 MiB and
//! splits bigger I/O.
//!
//! IOVAs are looked up **per 4 KiB page** through an [`IovaMapper`], never derived by
//! adding an offset to the first page's IOVA: in PA mode two virtually adjacent
//! hugepages are rarely physically adjacent, and a buffer may span them.

use eal::{Eal, Iova, VirtAddr};

use crate::error::{Error, Result};

/// Controller memory page size used by this driver (CC.MPS = 0).
pub const PAGE_SIZE: u64 = 4096;
/// PRP entries in one list page.
pub const MAX_LIST_ENTRIES: usize = (PAGE_SIZE / 8) as usize;
/// The largest transfer one command can describe with one list page, whatever the
/// buffer's offset: PRP1's page plus 512 listed pages, less one page of slack for an
/// unaligned start.
pub const MAX_PRP_TRANSFER: u64 = MAX_LIST_ENTRIES as u64 * PAGE_SIZE;

/// Translates virtual addresses to the IOVAs a device uses.
pub trait IovaMapper: Send + Sync {
    /// IOVA of the byte at `va`, `None` if the device cannot reach it.
    fn iova(&self, va: VirtAddr) -> Option<Iova>;
}

impl IovaMapper for Eal {
    fn iova(&self, va: VirtAddr) -> Option<Iova> {
        self.memory().virt2iova(va).filter(|i| i.is_valid())
    }
}

/// The two PRP fields of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prps {
    /// PRP Entry 1.
    pub prp1: u64,
    /// PRP Entry 2: 0, the second page, or the list's IOVA.
    pub prp2: u64,
    /// Entries written to the list (0 if no list is used).
    pub list_entries: usize,
}

/// Describe `[va, va + len)` for the controller. Entries of a PRP list are handed to
/// `put(index, page_iova)` (the caller writes them to the list page whose IOVA is
/// `list_iova`); nothing is written if this returns an error.
///
/// Errors: `len` 0 or the buffer not dword aligned, more than `MAX_LIST_ENTRIES + 1`
/// pages, or a page the mapper cannot translate ([`Error::BadBuffer`]).
pub fn build_prps(
    va: VirtAddr,
    len: u64,
    map: &dyn IovaMapper,
    list_iova: Iova,
    mut put: impl FnMut(usize, u64),
) -> Result<Prps> {
    if len == 0 {
        return Err(Error::BadBuffer {
            why: "zero-length transfer".into(),
        });
    }
    if va.0 & 3 != 0 {
        return Err(Error::BadBuffer {
            why: format!("buffer at {va} is not dword (4-byte) aligned, as PRP entries require"),
        });
    }
    let off = va.0 % PAGE_SIZE;
    let pages = (off + len).div_ceil(PAGE_SIZE);
    if pages > MAX_LIST_ENTRIES as u64 + 1 {
        return Err(Error::BadBuffer {
            why: format!(
                "{len} bytes span {pages} pages; one command takes at most {}",
                MAX_LIST_ENTRIES + 1
            ),
        });
    }
    let page_iova = |i: u64| -> Result<u64> {
        let p = VirtAddr(va.0 - off + i * PAGE_SIZE);
        match map.iova(p) {
            Some(io) if io.0 % PAGE_SIZE == 0 => Ok(io.0),
            Some(io) => Err(Error::BadBuffer { why: format!("page {p} has IOVA {io}, not 4 KiB aligned") }),
            None => Err(Error::BadBuffer {
                why: format!("page {p} has no IOVA (not EAL hugepage memory, or the EAL runs with --no-huge)"),
            }),
        }
    };
    let prp1 = page_iova(0)? + off;
    match pages {
        1 => Ok(Prps {
            prp1,
            prp2: 0,
            list_entries: 0,
        }),
        2 => Ok(Prps {
            prp1,
            prp2: page_iova(1)?,
            list_entries: 0,
        }),
        n => {
            // Translate everything first so a failure writes nothing.
            let mut first_err = None;
            for i in 1..n {
                if let Err(e) = page_iova(i) {
                    first_err = Some(e);
                    break;
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
            for i in 1..n {
                put((i - 1) as usize, page_iova(i)?);
            }
            Ok(Prps {
                prp1,
                prp2: list_iova.0,
                list_entries: (n - 1) as usize,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake mapper: page k of [base, base + n pages) maps to `iovas[k]`.
    struct Fake {
        base: u64,
        iovas: Vec<u64>,
    }

    impl IovaMapper for Fake {
        fn iova(&self, va: VirtAddr) -> Option<Iova> {
            let k = va.0.checked_sub(self.base)? / PAGE_SIZE;
            self.iovas
                .get(k as usize)
                .map(|p| Iova(p + va.0 % PAGE_SIZE))
        }
    }

    fn fake(n: usize) -> Fake {
        // Scrambled, non-contiguous page IOVAs: every page elsewhere.
        Fake {
            base: 0x7000_0000,
            iovas: (0..n as u64)
                .map(|k| 0x10_0000_0000 + ((k * 7919) % 1009) * 0x20_0000)
                .collect(),
        }
    }

    fn run(m: &Fake, off: u64, len: u64) -> Result<(Prps, Vec<(usize, u64)>)> {
        let mut list = Vec::new();
        let p = build_prps(VirtAddr(m.base + off), len, m, Iova(0xabc000), |i, v| {
            list.push((i, v))
        })?;
        Ok((p, list))
    }

    #[test]
    fn single_page() {
        let m = fake(4);
        let (p, l) = run(&m, 0, 4096).unwrap();
        assert_eq!(
            p,
            Prps {
                prp1: m.iovas[0],
                prp2: 0,
                list_entries: 0
            }
        );
        assert!(l.is_empty());
        let (p, _) = run(&m, 512, 3584).unwrap();
        assert_eq!(p.prp1, m.iovas[0] + 512);
        assert_eq!(p.prp2, 0);
    }

    #[test]
    fn two_pages_use_prp2_directly() {
        let m = fake(4);
        let (p, l) = run(&m, 0, 8192).unwrap();
        assert_eq!((p.prp1, p.prp2), (m.iovas[0], m.iovas[1]));
        assert!(l.is_empty());
        // 512 bytes crossing a page boundary.
        let (p, _) = run(&m, 4096 - 256, 512).unwrap();
        assert_eq!((p.prp1, p.prp2), (m.iovas[0] + 3840, m.iovas[1]));
    }

    #[test]
    fn lists_hold_page_iovas_in_order() {
        let m = fake(600);
        for (off, len) in [
            (0u64, 12288u64),
            (100 * 4, 8192),
            (0, 1 << 20),
            (2048, (1 << 20) + 4096),
            (0, MAX_PRP_TRANSFER),
        ] {
            let (p, l) = run(&m, off, len).unwrap();
            let pages = (off % 4096 + len).div_ceil(4096) as usize;
            assert_eq!(p.prp1, m.iovas[0] + off % 4096);
            assert_eq!(p.prp2, 0xabc000);
            assert_eq!(p.list_entries, pages - 1);
            assert_eq!(l.len(), pages - 1);
            for (k, (i, v)) in l.iter().enumerate() {
                assert_eq!(*i, k);
                assert_eq!(*v, m.iovas[k + 1], "entry {k} of off {off} len {len}");
            }
        }
    }

    #[test]
    fn refusals_write_nothing() {
        let m = fake(600);
        assert!(run(&m, 0, 0).is_err());
        assert!(run(&m, 2, 512).is_err()); // not dword aligned
        assert!(run(&m, 4, MAX_PRP_TRANSFER + 4096).is_err()); // 514 pages
        assert!(run(&m, 0, MAX_PRP_TRANSFER + 8192).is_err());
        assert!(run(&m, 4, MAX_PRP_TRANSFER).is_ok()); // 513 pages: PRP1 + a full list
                                                       // Last page unmapped: no list entries written.
        let short = fake(3);
        let mut wrote = 0;
        let e = build_prps(
            VirtAddr(short.base),
            4 * 4096,
            &short,
            Iova(0x1000),
            |_, _| wrote += 1,
        )
        .unwrap_err();
        assert!(matches!(e, Error::BadBuffer { .. }), "{e}");
        assert_eq!(wrote, 0);
        // Unaligned IOVA from the mapper.
        let bad = Fake {
            base: 0x7000_0000,
            iovas: vec![0x1000, 0x2010],
        };
        assert!(build_prps(VirtAddr(bad.base), 8192, &bad, Iova(0), |_, _| ()).is_err());
    }
}
