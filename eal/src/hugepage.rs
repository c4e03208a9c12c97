//! Hugepage discovery and the logic behind the `ferroplane-hugepages` tool.
//!
//! Discovery reads three places, each under a configurable root ([`SysRoots`]) so that
//! unit tests can run against a fake tree in a temporary directory:
//! - `<proc>/mounts`: hugetlbfs mounts; a mount's page size is its `pagesize=` option, or
//!   the default size (`Hugepagesize:` in `<proc>/meminfo`) when the option is absent;
//! - `<sys>/kernel/mm/hugepages/hugepages-<N>kB/{nr,free,resv,surplus}_hugepages`: the
//!   page sizes the kernel supports and the system-wide pool of each;
//! - `<sys>/devices/system/node/node<M>/hugepages/hugepages-<N>kB/{nr,free,surplus}_hugepages`:
//!   the same per NUMA node.
//!
//! The tool's actions ([`reserve`], [`clear`], [`mount`], [`unmount_all`], [`setup`],
//! [`show`]) write the same files and call `mount(2)`/`umount(2)` through
//! [`crate::sys::mem`]. They change system state and need root on a real system.
//!
//! Everything here is control path and may be called from any thread.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::sys::mem as sys;

/// Where `/proc` and `/sys` are (real system: `/proc` and `/sys`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysRoots {
    /// The procfs root (`/proc`).
    pub proc: PathBuf,
    /// The sysfs root (`/sys`).
    pub sys: PathBuf,
}

impl Default for SysRoots {
    fn default() -> Self {
        SysRoots {
            proc: PathBuf::from("/proc"),
            sys: PathBuf::from("/sys"),
        }
    }
}

impl SysRoots {
    /// `<root>/proc` and `<root>/sys`: a fake tree for tests.
    pub fn under(root: &Path) -> Self {
        SysRoots {
            proc: root.join("proc"),
            sys: root.join("sys"),
        }
    }

    /// True for the real `/proc` + `/sys`.
    pub fn is_real(&self) -> bool {
        *self == SysRoots::default()
    }

    fn global_dir(&self, page_size: u64) -> PathBuf {
        self.sys.join(format!(
            "kernel/mm/hugepages/hugepages-{}kB",
            page_size / 1024
        ))
    }

    fn node_dir(&self, node: u32, page_size: u64) -> PathBuf {
        self.sys.join(format!(
            "devices/system/node/node{node}/hugepages/hugepages-{}kB",
            page_size / 1024
        ))
    }
}

/// A mounted hugetlbfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HugeMount {
    /// Mount point.
    pub path: PathBuf,
    /// Page size of the files in it, bytes.
    pub page_size: u64,
}

/// Per-node hugepage counts of one page size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCount {
    /// NUMA node id.
    pub node: u32,
    /// Pages in the node's pool.
    pub nr: u64,
    /// Pages not in use.
    pub free: u64,
}

/// One hugepage size the kernel supports and its system-wide pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageSizeInfo {
    /// Page size in bytes.
    pub page_size: u64,
    /// `nr_hugepages`.
    pub nr: u64,
    /// `free_hugepages` (includes reserved but not yet faulted pages).
    pub free: u64,
    /// `resv_hugepages`: promised to a mapping, not yet faulted.
    pub resv: u64,
    /// Per NUMA node (empty where the kernel has no node directories).
    pub nodes: Vec<NodeCount>,
}

impl PageSizeInfo {
    /// Pages that a new reservation can still take: `free - resv`.
    pub fn available(&self) -> u64 {
        self.free.saturating_sub(self.resv)
    }

    /// Free pages on `node` (all free pages when per-node counts are unknown).
    pub fn free_on(&self, node: u32) -> u64 {
        if self.nodes.is_empty() {
            return self.available();
        }
        self.nodes
            .iter()
            .find(|n| n.node == node)
            .map(|n| n.free)
            .unwrap_or(0)
    }
}

/// Everything discovery found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HugepageInfo {
    /// The default hugepage size (`Hugepagesize:` in meminfo), if known.
    pub default_size: Option<u64>,
    /// Supported sizes, ascending.
    pub sizes: Vec<PageSizeInfo>,
    /// hugetlbfs mounts in `/proc/mounts` order.
    pub mounts: Vec<HugeMount>,
}

impl HugepageInfo {
    /// Read mounts, sizes and per-node counts under `roots`.
    pub fn discover(roots: &SysRoots) -> Result<HugepageInfo> {
        let default_size = fs::read_to_string(roots.proc.join("meminfo"))
            .ok()
            .and_then(|t| parse_meminfo_default(&t));
        let mounts_path = roots.proc.join("mounts");
        let mounts_text = fs::read_to_string(&mounts_path)
            .map_err(|e| Error::io("read", mounts_path.display().to_string(), e))?;
        let mounts = parse_mounts(&mounts_text, default_size);

        let mut sizes = Vec::new();
        let gdir = roots.sys.join("kernel/mm/hugepages");
        if let Ok(rd) = fs::read_dir(&gdir) {
            for ent in rd.flatten() {
                let name = ent.file_name();
                let Some(ps) = parse_size_dir(&name.to_string_lossy()) else {
                    continue;
                };
                let p = ent.path();
                sizes.push(PageSizeInfo {
                    page_size: ps,
                    nr: read_u64(&p.join("nr_hugepages"))?,
                    free: read_u64(&p.join("free_hugepages"))?,
                    resv: read_u64(&p.join("resv_hugepages")).unwrap_or(0),
                    nodes: Vec::new(),
                });
            }
        }
        sizes.sort_by_key(|s| s.page_size);

        let ndir = roots.sys.join("devices/system/node");
        if let Ok(rd) = fs::read_dir(&ndir) {
            let mut nodes: Vec<u32> = rd
                .flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("node"))
                        .and_then(|n| n.parse().ok())
                })
                .collect();
            nodes.sort_unstable();
            for node in nodes {
                for s in sizes.iter_mut() {
                    let d = roots.node_dir(node, s.page_size);
                    if !d.exists() {
                        continue;
                    }
                    s.nodes.push(NodeCount {
                        node,
                        nr: read_u64(&d.join("nr_hugepages"))?,
                        free: read_u64(&d.join("free_hugepages"))?,
                    });
                }
            }
        }
        Ok(HugepageInfo {
            default_size,
            sizes,
            mounts,
        })
    }

    /// Pool info for `page_size`.
    pub fn size(&self, page_size: u64) -> Option<&PageSizeInfo> {
        self.sizes.iter().find(|s| s.page_size == page_size)
    }

    /// The hugetlbfs mount holding `dir` (exact mount point match).
    pub fn mount_at(&self, dir: &Path) -> Option<&HugeMount> {
        let canon = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        self.mounts
            .iter()
            .find(|m| m.path == canon || m.path == dir)
    }
}

fn read_u64(p: &Path) -> Result<u64> {
    let t = fs::read_to_string(p).map_err(|e| Error::io("read", p.display().to_string(), e))?;
    t.trim().parse().map_err(|_| {
        Error::io(
            "parse",
            p.display().to_string(),
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not a number"),
        )
    })
}

fn write_u64(p: &Path, v: u64) -> Result<()> {
    fs::write(p, format!("{v}\n")).map_err(|e| Error::io("write", p.display().to_string(), e))
}

/// `hugepages-2048kB` → 2 MiB.
fn parse_size_dir(name: &str) -> Option<u64> {
    let kb: u64 = name
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

/// The `Hugepagesize:` line of `/proc/meminfo`, in bytes.
pub fn parse_meminfo_default(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Hugepagesize:"))?;
    let mut it = line.split_whitespace().skip(1);
    let n: u64 = it.next()?.parse().ok()?;
    match it.next() {
        Some("kB") | None => n.checked_mul(1024),
        _ => None,
    }
}

/// Undo `/proc/mounts` octal escapes (`\040` for space and so on).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// hugetlbfs entries of a `/proc/mounts` text. Mounts without `pagesize=` get
/// `default_size`; those are skipped when the default is unknown.
pub fn parse_mounts(text: &str, default_size: Option<u64>) -> Vec<HugeMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 || f[2] != "hugetlbfs" {
            continue;
        }
        let ps = f[3]
            .split(',')
            .find_map(|o| o.strip_prefix("pagesize="))
            .and_then(parse_size)
            .or(default_size);
        if let Some(page_size) = ps {
            out.push(HugeMount {
                path: PathBuf::from(unescape_mount(f[1])),
                page_size,
            });
        }
    }
    out
}

/// Parse a size: plain bytes, or a number with suffix K/M/G/T (optionally followed by
/// `B`/`iB`, case-insensitive; `kB` as in meminfo). Returns `None` for garbage, zero
/// is allowed. `2M` = 2 MiB.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, suf) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let suf = suf.to_ascii_lowercase();
    let suf = suf
        .strip_suffix("ib")
        .or_else(|| suf.strip_suffix('b'))
        .unwrap_or(&suf);
    let mul: u64 = match suf {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mul)
}

/// `2097152` → `2M`, `1073741824` → `1G`; non-round sizes in bytes.
pub fn format_size(b: u64) -> String {
    for (shift, s) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if b >= 1 << shift && b.is_multiple_of(1 << shift) {
            return format!("{}{s}", b >> shift);
        }
    }
    format!("{b}")
}

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
    use crate::test_util::TempDir;

    fn fake_tree(t: &TempDir) -> SysRoots {
        let r = SysRoots::under(t.path());
        fs::create_dir_all(&r.proc).unwrap();
        fs::write(
            r.proc.join("meminfo"),
            "MemTotal: 100 kB\nHugepagesize:       2048 kB\n",
        )
        .unwrap();
        fs::write(
            r.proc.join("mounts"),
            "proc /proc proc rw 0 0\n\
             nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n\
             none /mnt/huge\\0401g hugetlbfs rw,pagesize=1024M 0 0\n\
             hugetlbfs /mnt/dflt hugetlbfs rw,relatime 0 0\n",
        )
        .unwrap();
        for (kb, nr, free, resv) in [(2048u64, 64u64, 60u64, 4u64), (1048576, 2, 2, 0)] {
            let g = r.sys.join(format!("kernel/mm/hugepages/hugepages-{kb}kB"));
            fs::create_dir_all(&g).unwrap();
            fs::write(g.join("nr_hugepages"), format!("{nr}\n")).unwrap();
            fs::write(g.join("free_hugepages"), format!("{free}\n")).unwrap();
            fs::write(g.join("resv_hugepages"), format!("{resv}\n")).unwrap();
            for node in 0..2u32 {
                let n = r.sys.join(format!(
                    "devices/system/node/node{node}/hugepages/hugepages-{kb}kB"
                ));
                fs::create_dir_all(&n).unwrap();
                fs::write(n.join("nr_hugepages"), format!("{}\n", nr / 2)).unwrap();
                fs::write(
                    n.join("free_hugepages"),
                    format!("{}\n", free / 2 - node as u64),
                )
                .unwrap();
            }
        }
        r
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("1024M"), Some(1 << 30));
        assert_eq!(parse_size("2048kB"), Some(2 << 20));
        assert_eq!(parse_size("256MiB"), Some(256 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("12Q"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("99999999999999999999T"), None);
        assert_eq!(format_size(2 << 20), "2M");
        assert_eq!(format_size(1 << 30), "1G");
        assert_eq!(format_size(1000), "1000");
    }

    #[test]
    fn discovers_fake_tree() {
        let t = TempDir::new("hp-discover");
        let r = fake_tree(&t);
        let info = HugepageInfo::discover(&r).unwrap();
        assert_eq!(info.default_size, Some(2 << 20));
        assert_eq!(
            info.mounts,
            vec![
                HugeMount {
                    path: "/dev/hugepages".into(),
                    page_size: 2 << 20
                },
                HugeMount {
                    path: "/mnt/huge 1g".into(),
                    page_size: 1 << 30
                },
                HugeMount {
                    path: "/mnt/dflt".into(),
                    page_size: 2 << 20
                },
            ]
        );
        assert_eq!(info.sizes.len(), 2);
        let s2 = info.size(2 << 20).unwrap();
        assert_eq!((s2.nr, s2.free, s2.resv, s2.available()), (64, 60, 4, 56));
        assert_eq!(
            s2.nodes,
            vec![
                NodeCount {
                    node: 0,
                    nr: 32,
                    free: 30
                },
                NodeCount {
                    node: 1,
                    nr: 32,
                    free: 29
                }
            ]
        );
        assert_eq!(s2.free_on(1), 29);
        assert_eq!(s2.free_on(7), 0);
        assert_eq!(info.size(1 << 30).unwrap().nr, 2);
        let text = show(&r).unwrap();
        assert!(text.contains("1    32 29 2M"), "{text}");
        assert!(text.contains("/mnt/huge 1g (pagesize 1G)"), "{text}");
    }

    #[test]
    fn mount_without_default_size_is_skipped() {
        let m = parse_mounts(
            "x /a hugetlbfs rw 0 0\nx /b hugetlbfs rw,pagesize=1G 0 0\nx /c tmpfs rw 0 0\n",
            None,
        );
        assert_eq!(
            m,
            vec![HugeMount {
                path: "/b".into(),
                page_size: 1 << 30
            }]
        );
        assert_eq!(
            parse_meminfo_default("Hugepagesize: 1048576 kB\n"),
            Some(1 << 30)
        );
        assert_eq!(parse_meminfo_default("nothing\n"), None);
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
