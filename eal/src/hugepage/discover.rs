//! Hugepage discovery: hugetlbfs mounts, the page sizes the kernel supports and the pool
//! of each, system-wide and per NUMA node.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

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

    pub(crate) fn global_dir(&self, page_size: u64) -> PathBuf {
        self.sys.join(format!(
            "kernel/mm/hugepages/hugepages-{}kB",
            page_size / 1024
        ))
    }

    pub(crate) fn node_dir(&self, node: u32, page_size: u64) -> PathBuf {
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

pub(crate) fn read_u64(p: &Path) -> Result<u64> {
    let t = fs::read_to_string(p).map_err(|e| Error::io("read", p.display().to_string(), e))?;
    t.trim().parse().map_err(|_| {
        Error::io(
            "parse",
            p.display().to_string(),
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not a number"),
        )
    })
}

pub(crate) fn write_u64(p: &Path, v: u64) -> Result<()> {
    fs::write(p, format!("{v}\n")).map_err(|e| Error::io("write", p.display().to_string(), e))
}

/// `hugepages-2048kB` → 2 MiB.
pub(crate) fn parse_size_dir(name: &str) -> Option<u64> {
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
pub(crate) fn unescape_mount(s: &str) -> String {
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
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use testkit::tempdir::TempDir;

    pub(crate) fn fake_tree(t: &TempDir) -> SysRoots {
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
}
