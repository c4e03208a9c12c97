//! The cpu topology from sysfs (online cpus, cores, packages, NUMA nodes) and the id-list
//! syntax of sysfs and `-l`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use crate::error::{Error, Result};

/// Largest cpu number accepted from sysfs (sanity bound against a corrupt tree).
const MAX_CPU_ID: u32 = 1 << 16;

/// Parse a Linux/DPDK id list such as `0-3,5,7-8` (as in sysfs `online`/`cpulist` files and
/// `-l`). Returns the ids in the order written (ranges ascending), duplicates kept; every id
/// must be `< limit`. An empty or all-whitespace string is the empty list. The error string
/// says which element is wrong.
pub fn parse_id_list(s: &str, limit: u32) -> std::result::Result<Vec<u32>, String> {
    let s = s.trim();
    let mut out = Vec::new();
    if s.is_empty() {
        return Ok(out);
    }
    let num = |t: &str| -> std::result::Result<u32, String> {
        let t = t.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("'{t}' is not a number"));
        }
        match t.parse::<u32>() {
            Ok(n) if n < limit => Ok(n),
            _ => Err(format!("{t} is out of range (ids are 0..{limit})")),
        }
    };
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("range '{}' runs backwards", part.trim()));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    Ok(out)
}

/// Where one cpu sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuInfo {
    /// Cpu number (as in `cpuN`).
    pub cpu: u32,
    /// Physical core id within its package (`topology/core_id`); hyperthreads share it.
    pub core_id: u32,
    /// Package (socket) id (`topology/physical_package_id`; `-1` or missing → 0).
    pub package_id: u32,
    /// NUMA node (`node/nodeN/cpulist`; no node directory → 0). This is what DPDK calls the
    /// lcore's "socket id".
    pub numa_node: u32,
}

/// The online cpus of the machine and where each sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuTopology {
    cpus: Vec<CpuInfo>,
}

fn read_trimmed(path: &Path) -> Result<String> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::io("read", path.display().to_string(), e))
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path.display().to_string(), e)),
    }
}

fn topo_err(path: &Path, why: impl Into<String>) -> Error {
    Error::TopologyParse {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

impl CpuTopology {
    /// Read the topology under `sysfs_root` (`/sys` in production; a fake tree in tests):
    ///
    /// * `devices/system/cpu/online` — required;
    /// * `devices/system/cpu/cpuN/topology/{core_id,physical_package_id}` — a missing file
    ///   gives `core_id = N` / `package_id = 0`; `-1` (some platforms) gives 0;
    /// * `devices/system/node/nodeM/cpulist` — no `node` directory (kernel without NUMA)
    ///   puts every cpu on node 0, as does a cpu listed in no node.
    ///
    /// Malformed contents give [`Error::TopologyParse`] naming the file. Read only.
    pub fn read(sysfs_root: &Path) -> Result<CpuTopology> {
        let cpu_dir = sysfs_root.join("devices/system/cpu");
        let online_path = cpu_dir.join("online");
        let online = parse_id_list(&read_trimmed(&online_path)?, MAX_CPU_ID)
            .map_err(|why| topo_err(&online_path, why))?;
        if online.is_empty() {
            return Err(topo_err(&online_path, "no online cpus"));
        }

        let node_of = Self::read_nodes(&sysfs_root.join("devices/system/node"))?;

        let mut cpus = Vec::with_capacity(online.len());
        for cpu in online.into_iter().collect::<BTreeSet<_>>() {
            let topo = cpu_dir.join(format!("cpu{cpu}/topology"));
            let read_id = |name: &str, default: u32| -> Result<u32> {
                let p = topo.join(name);
                match read_optional(&p)? {
                    None => Ok(default),
                    Some(s) if s == "-1" => Ok(0),
                    Some(s) => s
                        .parse::<u32>()
                        .map_err(|_| topo_err(&p, format!("'{s}' is not an id"))),
                }
            };
            cpus.push(CpuInfo {
                cpu,
                core_id: read_id("core_id", cpu)?,
                package_id: read_id("physical_package_id", 0)?,
                numa_node: node_of.get(&cpu).copied().unwrap_or(0),
            });
        }
        Ok(CpuTopology { cpus })
    }

    fn read_nodes(node_dir: &Path) -> Result<BTreeMap<u32, u32>> {
        let mut map = BTreeMap::new();
        let entries = match fs::read_dir(node_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(map),
            Err(e) => return Err(Error::io("list", node_dir.display().to_string(), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", node_dir.display().to_string(), e))?;
            let name = entry.file_name();
            let Some(node) = name
                .to_str()
                .and_then(|n| n.strip_prefix("node"))
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue; // "online", "possible", "has_cpu", ... are not nodes
            };
            let p = entry.path().join("cpulist");
            let Some(list) = read_optional(&p)? else {
                continue;
            };
            for cpu in parse_id_list(&list, MAX_CPU_ID).map_err(|why| topo_err(&p, why))? {
                map.insert(cpu, node);
            }
        }
        Ok(map)
    }

    /// A topology from explicit entries (tests, or callers that know better than sysfs).
    /// Sorted by cpu; a repeated cpu keeps its first entry.
    pub fn from_cpus(mut cpus: Vec<CpuInfo>) -> CpuTopology {
        cpus.sort_by_key(|c| c.cpu);
        cpus.dedup_by_key(|c| c.cpu);
        CpuTopology { cpus }
    }

    /// The given cpus, each its own core, all on package 0 / node 0.
    pub fn flat(cpus: &[u32]) -> CpuTopology {
        Self::from_cpus(
            cpus.iter()
                .map(|&cpu| CpuInfo {
                    cpu,
                    core_id: cpu,
                    package_id: 0,
                    numa_node: 0,
                })
                .collect(),
        )
    }

    /// All online cpus, ascending.
    pub fn cpus(&self) -> &[CpuInfo] {
        &self.cpus
    }

    /// Online cpu numbers, ascending.
    pub fn online(&self) -> Vec<u32> {
        self.cpus.iter().map(|c| c.cpu).collect()
    }

    /// Whether `cpu` is online.
    pub fn is_online(&self, cpu: u32) -> bool {
        self.get(cpu).is_some()
    }

    /// The entry of `cpu`, if online.
    pub fn get(&self, cpu: u32) -> Option<&CpuInfo> {
        self.cpus
            .binary_search_by_key(&cpu, |c| c.cpu)
            .ok()
            .map(|i| &self.cpus[i])
    }

    /// NUMA nodes that have online cpus, ascending.
    pub fn numa_nodes(&self) -> Vec<u32> {
        self.cpus
            .iter()
            .map(|c| c.numa_node)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// Online cpus on `node`, ascending.
    pub fn cpus_on_node(&self, node: u32) -> Vec<u32> {
        self.cpus
            .iter()
            .filter(|c| c.numa_node == node)
            .map(|c| c.cpu)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys;

    #[test]
    fn id_lists() {
        assert_eq!(parse_id_list("0-3,5", 128).unwrap(), vec![0, 1, 2, 3, 5]);
        assert_eq!(parse_id_list("7", 128).unwrap(), vec![7]);
        assert_eq!(parse_id_list(" 1 , 2-2 \n", 128).unwrap(), vec![1, 2]);
        assert_eq!(parse_id_list("", 128).unwrap(), Vec::<u32>::new());
        assert_eq!(parse_id_list("3,1", 128).unwrap(), vec![3, 1]);
        for bad in [
            "3-1",
            "a",
            "1,",
            ",1",
            "1-",
            "-1",
            "128",
            "1--2",
            "0x1",
            "1-99999999999",
            "١",
        ] {
            assert!(parse_id_list(bad, 128).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn real_topology_matches_affinity() {
        let t = CpuTopology::read(Path::new("/sys")).unwrap();
        assert!(!t.cpus().is_empty());
        // Every cpu this process may use is online.
        for cpu in sys::cpu::sched_getaffinity_current().unwrap() {
            assert!(t.is_online(cpu), "cpu {cpu} allowed but not online: {t:?}");
        }
        assert!(!t.numa_nodes().is_empty());
    }

    #[test]
    fn from_cpus_sorts_and_dedups() {
        let t = CpuTopology::from_cpus(vec![
            CpuInfo {
                cpu: 3,
                core_id: 1,
                package_id: 0,
                numa_node: 1,
            },
            CpuInfo {
                cpu: 1,
                core_id: 0,
                package_id: 0,
                numa_node: 0,
            },
            CpuInfo {
                cpu: 3,
                core_id: 9,
                package_id: 9,
                numa_node: 9,
            },
        ]);
        assert_eq!(t.online(), vec![1, 3]);
        assert_eq!(t.get(3).unwrap().core_id, 1);
        assert_eq!(t.numa_nodes(), vec![0, 1]);
        assert_eq!(t.cpus_on_node(1), vec![3]);
        assert!(t.get(2).is_none());
    }
}
