//! The actions of the `ferroplane-hugepages` tool: reserve and clear pages, mount and
//! unmount hugetlbfs, show the state. They write sysfs and call `mount(2)`/`umount(2)`
//! through [`crate::sys::mem`], so they change system state and need root on a real
//! system; under a fake [`SysRoots`] they only write files.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::sys::mem as sys;

use super::discover::{format_size, parse_size, read_u64, write_u64, HugepageInfo, SysRoots};

/// Set the pool of `page_size` pages (on `node`, or system-wide) to `count` pages and
/// read back what the kernel granted. Fails with [`Error::NotEnoughMemory`] when the
/// kernel granted fewer.
pub fn reserve_pages(
    roots: &SysRoots,
    page_size: u64,
    node: Option<u32>,
    count: u64,
) -> Result<u64> {
    let dir = match node {
        Some(n) => roots.node_dir(n, page_size),
        None => roots.global_dir(page_size),
    };
    if !dir.exists() {
        return Err(Error::BadArg {
            arg: "--pagesize".into(),
            value: format_size(page_size),
            why: format!(
                "{} does not exist (page size or node not supported)",
                dir.display()
            ),
        });
    }
    let f = dir.join("nr_hugepages");
    write_u64(&f, count)?;
    let got = read_u64(&f)?;
    if got < count {
        return Err(Error::NotEnoughMemory {
            kind: "hugepage",
            requested: count * page_size,
            available: got * page_size,
        });
    }
    Ok(got)
}

/// Reserve `bytes` of hugepages (rounded up to whole pages) of `page_size` (default: the
/// default hugepage size) on `node` or system-wide. Sets the pool to that size.
pub fn reserve(
    roots: &SysRoots,
    bytes: u64,
    page_size: Option<u64>,
    node: Option<u32>,
) -> Result<u64> {
    let info = HugepageInfo::discover(roots)?;
    let ps = pick_page_size(&info, page_size)?;
    reserve_pages(roots, ps, node, bytes.div_ceil(ps))
}

fn pick_page_size(info: &HugepageInfo, page_size: Option<u64>) -> Result<u64> {
    let ps = page_size
        .or(info.default_size)
        .or(info.sizes.first().map(|s| s.page_size))
        .ok_or_else(|| Error::NoHugepages {
            why: "the kernel lists no hugepage sizes".into(),
        })?;
    if info.size(ps).is_none() {
        return Err(Error::BadArg {
            arg: "--pagesize".into(),
            value: format_size(ps),
            why: format!(
                "not supported here (supported: {})",
                info.sizes
                    .iter()
                    .map(|s| format_size(s.page_size))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(ps)
}

/// Set every hugepage pool (system-wide and per node) to zero. Pages still in use by
/// files in a hugetlbfs stay allocated until those files are removed.
pub fn clear(roots: &SysRoots) -> Result<()> {
    let info = HugepageInfo::discover(roots)?;
    for s in &info.sizes {
        for n in &s.nodes {
            write_u64(&roots.node_dir(n.node, s.page_size).join("nr_hugepages"), 0)?;
        }
        write_u64(&roots.global_dir(s.page_size).join("nr_hugepages"), 0)?;
    }
    Ok(())
}

/// Mount hugetlbfs at `dir` (created if missing) with `page_size` (kernel default if
/// `None`). Does nothing if a hugetlbfs of that size is already mounted there.
pub fn mount(roots: &SysRoots, dir: &Path, page_size: Option<u64>) -> Result<()> {
    let info = HugepageInfo::discover(roots)?;
    if let Some(m) = info.mount_at(dir) {
        if page_size.is_none() || page_size == Some(m.page_size) {
            return Ok(());
        }
    }
    fs::create_dir_all(dir).map_err(|e| Error::io("create", dir.display().to_string(), e))?;
    sys::mount_hugetlbfs(dir, page_size)
}

/// Unmount every hugetlbfs listed in `<proc>/mounts`; returns the mount points.
pub fn unmount_all(roots: &SysRoots) -> Result<Vec<PathBuf>> {
    let info = HugepageInfo::discover(roots)?;
    let mut done = Vec::new();
    for m in info.mounts.iter().rev() {
        sys::umount(&m.path)?;
        done.push(m.path.clone());
    }
    Ok(done)
}

/// The conventional mount point used by `--setup` and `--mount` without a directory.
pub const DEFAULT_MOUNT: &str = "/dev/hugepages";

/// `--setup SIZE`: clear all pools, reserve `bytes` of `page_size` pages, mount at
/// [`DEFAULT_MOUNT`].
pub fn setup(
    roots: &SysRoots,
    bytes: u64,
    page_size: Option<u64>,
    node: Option<u32>,
) -> Result<()> {
    clear(roots)?;
    let ps = pick_page_size(&HugepageInfo::discover(roots)?, page_size)?;
    reserve_pages(roots, ps, node, bytes.div_ceil(ps))?;
    mount(roots, Path::new(DEFAULT_MOUNT), Some(ps))
}

/// Human-readable report: sizes, per-node totals and free, mounts.
pub fn show(roots: &SysRoots) -> Result<String> {
    let info = HugepageInfo::discover(roots)?;
    let mut s = String::new();
    let _ = writeln!(s, "Node Pages Free Size");
    for ps in &info.sizes {
        if ps.nodes.is_empty() {
            let _ = writeln!(
                s,
                "-    {} {} {}",
                ps.nr,
                ps.free,
                format_size(ps.page_size)
            );
        }
        for n in &ps.nodes {
            let _ = writeln!(
                s,
                "{:<4} {} {} {}",
                n.node,
                n.nr,
                n.free,
                format_size(ps.page_size)
            );
        }
    }
    if let Some(d) = info.default_size {
        let _ = writeln!(s, "Default page size: {}", format_size(d));
    }
    if info.mounts.is_empty() {
        let _ = writeln!(s, "Hugepages mounted on: (none)");
    } else {
        for m in &info.mounts {
            let _ = writeln!(
                s,
                "Hugepages mounted on {} (pagesize {})",
                m.path.display(),
                format_size(m.page_size)
            );
        }
    }
    Ok(s)
}

/// The parsed command line of `ferroplane-hugepages`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolArgs {
    /// `--show` (also the action when nothing else is asked).
    pub show: bool,
    /// `--clear`.
    pub clear: bool,
    /// `--unmount`.
    pub unmount: bool,
    /// `--reserve SIZE`.
    pub reserve: Option<u64>,
    /// `--mount [DIR]` (`Some(None)`: default directory).
    pub mount: Option<Option<PathBuf>>,
    /// `--setup SIZE`.
    pub setup: Option<u64>,
    /// `-p/--pagesize`.
    pub page_size: Option<u64>,
    /// `-n/--node`.
    pub node: Option<u32>,
}

/// Usage text of the tool.
pub fn tool_usage() -> String {
    "usage: ferroplane-hugepages [--show] [--clear] [--unmount] [--reserve SIZE] [--mount [DIR]]\n\
     \x20                           [--setup SIZE] [-p|--pagesize 2M|1G] [-n|--node N]\n\
     \x20 --show           list hugepage sizes, per-node totals/free and hugetlbfs mounts\n\
     \x20 --reserve SIZE   set the pool to SIZE (e.g. 256M, 2G) of --pagesize pages, on --node if given\n\
     \x20 --clear          release all reserved hugepages (pages in use stay in use)\n\
     \x20 --mount [DIR]    mount hugetlbfs at DIR (default /dev/hugepages) with --pagesize\n\
     \x20 --unmount        unmount every hugetlbfs\n\
     \x20 --setup SIZE     --clear, then --reserve SIZE, then --mount /dev/hugepages\n\
     Actions run in the order unmount, clear, reserve/setup, mount, show.\n"
        .to_string()
}

impl ToolArgs {
    /// Parse arguments (without the program name). Errors name the bad argument.
    pub fn parse(args: &[String]) -> Result<ToolArgs> {
        let mut t = ToolArgs::default();
        let mut i = 0;
        let size_arg = |arg: &str, v: Option<&String>| -> Result<u64> {
            let v = v.ok_or_else(|| Error::MissingValue(arg.to_string()))?;
            match parse_size(v) {
                Some(n) if n > 0 => Ok(n),
                _ => Err(Error::BadArg {
                    arg: arg.into(),
                    value: v.clone(),
                    why: "expected a size like 256M or 2G".into(),
                }),
            }
        };
        while i < args.len() {
            let a = args[i].as_str();
            let (key, inline) = match a.split_once('=') {
                Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
                _ => (a, None),
            };
            let next = |i: &mut usize| -> Option<String> {
                if inline.is_some() {
                    return inline.clone();
                }
                *i += 1;
                args.get(*i).cloned()
            };
            match key {
                "-s" | "--show" => t.show = true,
                "-c" | "--clear" => t.clear = true,
                "-u" | "--unmount" => t.unmount = true,
                "-h" | "--help" => return Err(Error::HelpRequested),
                "-r" | "--reserve" => t.reserve = Some(size_arg(key, next(&mut i).as_ref())?),
                "--setup" => t.setup = Some(size_arg(key, next(&mut i).as_ref())?),
                "-p" | "--pagesize" => t.page_size = Some(size_arg(key, next(&mut i).as_ref())?),
                "-n" | "--node" => {
                    let v = next(&mut i).ok_or_else(|| Error::MissingValue(key.into()))?;
                    t.node = Some(v.parse().map_err(|_| Error::BadArg {
                        arg: key.into(),
                        value: v.clone(),
                        why: "expected a NUMA node number".into(),
                    })?);
                }
                "-m" | "--mount" => {
                    if let Some(v) = inline.clone() {
                        t.mount = Some(Some(PathBuf::from(v)));
                    } else if let Some(v) = args.get(i + 1).filter(|v| !v.starts_with('-')) {
                        t.mount = Some(Some(PathBuf::from(v)));
                        i += 1;
                    } else {
                        t.mount = Some(None);
                    }
                }
                _ => return Err(Error::UnknownArg(a.to_string())),
            }
            i += 1;
        }
        if t.setup.is_some() && t.reserve.is_some() {
            return Err(Error::BadArg {
                arg: "--setup".into(),
                value: format_size(t.setup.unwrap_or(0)),
                why: "cannot be combined with --reserve".into(),
            });
        }
        if t == (ToolArgs {
            page_size: t.page_size,
            node: t.node,
            ..ToolArgs::default()
        }) {
            t.show = true;
        }
        Ok(t)
    }

    /// True if any action changes system state (needs root on a real system).
    pub fn changes_state(&self) -> bool {
        self.clear
            || self.unmount
            || self.reserve.is_some()
            || self.mount.is_some()
            || self.setup.is_some()
    }

    /// Run the actions in order (unmount, clear, reserve/setup, mount, show); returns
    /// the text to print.
    pub fn run(&self, roots: &SysRoots) -> Result<String> {
        let mut out = String::new();
        if self.unmount {
            for p in unmount_all(roots)? {
                let _ = writeln!(out, "unmounted {}", p.display());
            }
        }
        if self.clear {
            clear(roots)?;
            let _ = writeln!(out, "cleared all hugepage pools");
        }
        if let Some(b) = self.setup {
            setup(roots, b, self.page_size, self.node)?;
            let _ = writeln!(
                out,
                "reserved {} and mounted hugetlbfs at {DEFAULT_MOUNT}",
                format_size(b)
            );
        }
        if let Some(b) = self.reserve {
            let n = reserve(roots, b, self.page_size, self.node)?;
            let _ = writeln!(out, "reserved {n} pages ({})", format_size(b));
        }
        if let Some(m) = &self.mount {
            let dir = m.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_MOUNT));
            mount(roots, &dir, self.page_size)?;
            let _ = writeln!(out, "mounted hugetlbfs at {}", dir.display());
        }
        if self.show {
            out.push_str(&show(roots)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hugepage::discover::tests::fake_tree;
    use testkit::tempdir::TempDir;

    #[test]
    fn show_lists_pools_and_mounts() {
        let t = TempDir::new("hp-show");
        let r = fake_tree(&t);
        let text = show(&r).unwrap();
        assert!(text.contains("1    32 29 2M"), "{text}");
        assert!(text.contains("/mnt/huge 1g (pagesize 1G)"), "{text}");
    }

    #[test]
    fn reserve_and_clear_write_sysfs() {
        let t = TempDir::new("hp-reserve");
        let r = fake_tree(&t);
        // 10M of default 2M pages → 5 pages system-wide.
        assert_eq!(reserve(&r, 10 << 20, None, None).unwrap(), 5);
        assert_eq!(
            read_u64(&r.global_dir(2 << 20).join("nr_hugepages")).unwrap(),
            5
        );
        // Rounds up; per node.
        assert_eq!(
            reserve(&r, (1 << 30) + 1, Some(1 << 30), Some(1)).unwrap(),
            2
        );
        assert_eq!(
            read_u64(&r.node_dir(1, 1 << 30).join("nr_hugepages")).unwrap(),
            2
        );
        // Unsupported page size and node.
        assert!(matches!(
            reserve(&r, 1 << 20, Some(64 << 10), None),
            Err(Error::BadArg { .. })
        ));
        assert!(matches!(
            reserve(&r, 1 << 20, None, Some(9)),
            Err(Error::BadArg { .. })
        ));
        clear(&r).unwrap();
        for ps in [2u64 << 20, 1 << 30] {
            assert_eq!(read_u64(&r.global_dir(ps).join("nr_hugepages")).unwrap(), 0);
            for n in 0..2 {
                assert_eq!(
                    read_u64(&r.node_dir(n, ps).join("nr_hugepages")).unwrap(),
                    0
                );
            }
        }
    }

    #[test]
    fn tool_args() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            ToolArgs::parse(&[]).unwrap(),
            ToolArgs {
                show: true,
                ..Default::default()
            }
        );
        let t = ToolArgs::parse(&s(&["--setup", "256M", "-p", "2M", "-n", "0"])).unwrap();
        assert_eq!(
            (t.setup, t.page_size, t.node, t.show),
            (Some(256 << 20), Some(2 << 20), Some(0), false)
        );
        assert!(t.changes_state());
        let t = ToolArgs::parse(&s(&["--mount", "--show"])).unwrap();
        assert_eq!(t.mount, Some(None));
        let t = ToolArgs::parse(&s(&["--mount", "/mnt/x", "--reserve=1G"])).unwrap();
        assert_eq!(
            (t.mount, t.reserve),
            (Some(Some("/mnt/x".into())), Some(1 << 30))
        );
        assert!(
            matches!(ToolArgs::parse(&s(&["--bogus"])), Err(Error::UnknownArg(a)) if a == "--bogus")
        );
        assert!(matches!(
            ToolArgs::parse(&s(&["--reserve"])),
            Err(Error::MissingValue(_))
        ));
        assert!(
            matches!(ToolArgs::parse(&s(&["--reserve", "lots"])), Err(Error::BadArg { arg, .. }) if arg == "--reserve")
        );
        assert!(matches!(
            ToolArgs::parse(&s(&["-n", "x"])),
            Err(Error::BadArg { .. })
        ));
        assert!(matches!(
            ToolArgs::parse(&s(&["-h"])),
            Err(Error::HelpRequested)
        ));
        assert!(matches!(
            ToolArgs::parse(&s(&["--setup", "1G", "--reserve", "1G"])),
            Err(Error::BadArg { .. })
        ));
    }

    #[test]
    fn tool_runs_against_fake_tree() {
        let t = TempDir::new("hp-tool");
        let r = fake_tree(&t);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let out = ToolArgs::parse(&s(&["--clear", "--reserve", "8M", "--show"]))
            .unwrap()
            .run(&r)
            .unwrap();
        assert!(out.contains("reserved 4 pages"), "{out}");
        assert_eq!(
            read_u64(&r.global_dir(2 << 20).join("nr_hugepages")).unwrap(),
            4
        );
        assert_eq!(
            read_u64(&r.global_dir(1 << 30).join("nr_hugepages")).unwrap(),
            0
        );
    }
}
