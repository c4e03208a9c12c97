//! PCI addresses and a read-only scan of the PCI devices the kernel lists in sysfs.
//!
//! [`scan`] reads `<sysfs_root>/bus/pci/devices/*` (`sysfs_root` is `/sys` in production,
//! a fake tree in tests). It **never writes** sysfs: binding devices to vfio-pci, enabling
//! bus mastering and mapping BARs belong to the drivers and setup tools.
//!
//! Contract of the scan:
//! * Devices are filtered by address *before* their attributes are read, so a blocked (or
//!   not allowed) device can never make the scan fail. `no_pci` returns an empty list
//!   without touching sysfs.
//! * Required attributes (`vendor`, `device`, `subsystem_vendor`, `subsystem_device`,
//!   `class`): missing or malformed → [`Error::PciParse`] naming the file.
//! * Optional ones (`numa_node`, `resource`, the `driver` and `iommu_group` links): missing
//!   → `None` / empty; present but malformed → [`Error::PciParse`].
//! * A system without `/sys/bus/pci` (some containers) scans as no devices.
//! * The result is sorted by address. A device can be unplugged between listing and
//!   reading; that shows up as an error for that device's files, not a panic.
//!
//! Everything here is plain data and may be used from any thread.

use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};

/// A PCI function address: `domain:bus:device.function`, printed as `0000:00:02.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PciAddr {
    /// PCI segment (domain). Usually 0; 32 bits because Linux names VMD domains
    /// `10000:` and above.
    pub domain: u32,
    /// Bus number.
    pub bus: u8,
    /// Device number, 0..=31.
    pub dev: u8,
    /// Function number, 0..=7.
    pub func: u8,
}

fn hex_field(s: &str, max_digits: usize) -> Option<u32> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

impl FromStr for PciAddr {
    type Err = Error;

    /// Accepts `DDDD:BB:DD.F` (domain of 1 to 8 hex digits) and the short `BB:DD.F`
    /// (domain 0). Hex digits in either case; bus 1-2 digits, device 1-2 digits (<= 0x1f),
    /// function 1 digit (<= 7).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let err = |why| Error::Parse {
            what: "a PCI address (DDDD:BB:DD.F or BB:DD.F)",
            input: s.to_string(),
            why,
        };
        let (head, func) = s
            .rsplit_once('.')
            .ok_or_else(|| err("no '.' before the function"))?;
        let func = hex_field(func, 1).ok_or_else(|| err("function must be one hex digit"))?;
        if func > 7 {
            return Err(err("function must be 0..7"));
        }
        let parts: Vec<&str> = head.split(':').collect();
        let (domain, bus, dev) = match parts.as_slice() {
            [d, b, v] => (hex_field(d, 8).ok_or_else(|| err("bad domain"))?, *b, *v),
            [b, v] => (0, *b, *v),
            _ => return Err(err("expected two or three ':'-separated fields before '.'")),
        };
        let bus = hex_field(bus, 2).ok_or_else(|| err("bus must be 1-2 hex digits"))?;
        let dev = hex_field(dev, 2).ok_or_else(|| err("device must be 1-2 hex digits"))?;
        if dev > 0x1f {
            return Err(err("device must be 0x00..0x1f"));
        }
        Ok(PciAddr {
            domain,
            bus: bus as u8,
            dev: dev as u8,
            func: func as u8,
        })
    }
}

impl fmt::Display for PciAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.dev, self.func
        )
    }
}

/// `IORESOURCE_IO` in the `resource` file's flags (Linux `include/linux/ioport.h`).
pub const IORESOURCE_IO: u64 = 0x0000_0100;
/// `IORESOURCE_MEM`.
pub const IORESOURCE_MEM: u64 = 0x0000_0200;
/// `IORESOURCE_PREFETCH`.
pub const IORESOURCE_PREFETCH: u64 = 0x0000_2000;
/// `IORESOURCE_MEM_64`.
pub const IORESOURCE_MEM_64: u64 = 0x0010_0000;

/// One non-empty line of a device's `resource` file: BARs are indices 0..=5, the
/// expansion ROM 6, bridge windows above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciResource {
    /// Line number in the `resource` file.
    pub index: u32,
    /// First bus address (inclusive).
    pub start: u64,
    /// Last bus address (inclusive).
    pub end: u64,
    /// Linux `IORESOURCE_*` flags.
    pub flags: u64,
}

impl PciResource {
    /// Size in bytes (`end - start + 1`), 0 for an unassigned resource.
    pub fn len(&self) -> u64 {
        if self.end < self.start || (self.start == 0 && self.end == 0) {
            0
        } else {
            self.end - self.start + 1
        }
    }

    /// True when [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Memory-mapped BAR.
    pub fn is_mem(&self) -> bool {
        self.flags & IORESOURCE_MEM != 0
    }

    /// I/O-port BAR.
    pub fn is_io(&self) -> bool {
        self.flags & IORESOURCE_IO != 0
    }

    /// Prefetchable memory.
    pub fn is_prefetchable(&self) -> bool {
        self.flags & IORESOURCE_PREFETCH != 0
    }

    /// 64-bit memory BAR.
    pub fn is_64bit(&self) -> bool {
        self.flags & IORESOURCE_MEM_64 != 0
    }
}

/// One PCI function as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    /// Its address.
    pub addr: PciAddr,
    /// `vendor`.
    pub vendor_id: u16,
    /// `device`.
    pub device_id: u16,
    /// `subsystem_vendor`.
    pub subsystem_vendor_id: u16,
    /// `subsystem_device`.
    pub subsystem_device_id: u16,
    /// `class`: 24 bits, base class << 16 | subclass << 8 | programming interface.
    pub class: u32,
    /// `numa_node`; `-1` or missing → `None`.
    pub numa_node: Option<u32>,
    /// Non-empty lines of `resource`.
    pub resources: Vec<PciResource>,
    /// Name of the bound kernel driver (basename of the `driver` link).
    pub driver: Option<String>,
    /// IOMMU group number (basename of the `iommu_group` link).
    pub iommu_group: Option<u32>,
}

/// PCI base class names (PCI Code and ID Assignment Specification, rev 1.x, section 1).
fn base_class_name(base: u8) -> &'static str {
    match base {
        0x00 => "Unclassified",
        0x01 => "Mass storage",
        0x02 => "Network",
        0x03 => "Display",
        0x04 => "Multimedia",
        0x05 => "Memory",
        0x06 => "Bridge",
        0x07 => "Communication",
        0x08 => "System peripheral",
        0x09 => "Input device",
        0x0a => "Docking station",
        0x0b => "Processor",
        0x0c => "Serial bus",
        0x0d => "Wireless",
        0x0e => "Intelligent I/O",
        0x0f => "Satellite communication",
        0x10 => "Encryption",
        0x11 => "Signal processing",
        0x12 => "Processing accelerator",
        0x13 => "Non-essential instrumentation",
        0x40 => "Coprocessor",
        0xff => "Unassigned",
        _ => "Reserved",
    }
}

/// NVM Express class code: mass storage / non-volatile memory / NVMe programming interface.
pub const CLASS_NVME: u32 = 0x01_08_02;

impl PciDevice {
    /// Base class (bits 23..16 of `class`).
    pub fn base_class(&self) -> u8 {
        (self.class >> 16) as u8
    }

    /// Subclass (bits 15..8).
    pub fn subclass(&self) -> u8 {
        (self.class >> 8) as u8
    }

    /// Programming interface (bits 7..0).
    pub fn prog_if(&self) -> u8 {
        self.class as u8
    }

    /// Human name of the base class: "Network", "Mass storage", ...
    pub fn class_name(&self) -> &'static str {
        base_class_name(self.base_class())
    }

    /// Network controller.
    pub fn is_network(&self) -> bool {
        self.base_class() == 0x02
    }

    /// NVMe controller.
    pub fn is_nvme(&self) -> bool {
        self.class == CLASS_NVME
    }

    /// `vvvv:dddd`, as lspci -n prints it.
    pub fn id_string(&self) -> String {
        format!("{:04x}:{:04x}", self.vendor_id, self.device_id)
    }

    /// The resource with this `index` (BAR number for 0..=5), if non-empty.
    pub fn bar(&self, index: u32) -> Option<&PciResource> {
        self.resources.iter().find(|r| r.index == index)
    }
}

/// Which devices a scan returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PciFilter {
    /// If non-empty, only these addresses.
    pub allow: Vec<PciAddr>,
    /// Never these addresses.
    pub block: Vec<PciAddr>,
    /// No PCI at all: the scan returns nothing and reads nothing.
    pub no_pci: bool,
}

impl PciFilter {
    /// Whether `addr` passes the filter.
    pub fn accepts(&self, addr: &PciAddr) -> bool {
        !self.no_pci
            && (self.allow.is_empty() || self.allow.contains(addr))
            && !self.block.contains(addr)
    }

    /// Allowed addresses that are not in `found` (to report `-a` devices that do not
    /// exist).
    pub fn missing(&self, found: &[PciDevice]) -> Vec<PciAddr> {
        self.allow
            .iter()
            .filter(|a| !found.iter().any(|d| d.addr == **a))
            .copied()
            .collect()
    }
}

/// sysfs attributes are at most a page; anything larger is not an attribute.
const MAX_ATTR: u64 = 64 * 1024;

fn parse_err(path: &Path, why: impl Into<String>) -> Error {
    Error::PciParse {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

fn read_attr(path: &Path) -> Result<Option<String>> {
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path.display().to_string(), e)),
    };
    let mut buf = Vec::new();
    f.by_ref()
        .take(MAX_ATTR + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("read", path.display().to_string(), e))?;
    if buf.len() as u64 > MAX_ATTR {
        return Err(parse_err(path, "file larger than a sysfs attribute can be"));
    }
    String::from_utf8(buf)
        .map(|s| Some(s.trim().to_string()))
        .map_err(|_| parse_err(path, "not UTF-8 text"))
}

fn required(path: &Path) -> Result<String> {
    read_attr(path)?.ok_or_else(|| parse_err(path, "missing"))
}

fn parse_hex(path: &Path, s: &str, max: u64) -> Result<u64> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(|| parse_err(path, format!("'{s}' is not 0x-prefixed hex")))?;
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(parse_err(path, format!("'{s}' is not 0x-prefixed hex")));
    }
    let v = u64::from_str_radix(digits, 16).map_err(|e| parse_err(path, e.to_string()))?;
    if v > max {
        return Err(parse_err(path, format!("{s} exceeds {max:#x}")));
    }
    Ok(v)
}

fn hex_attr(dir: &Path, name: &str, max: u64) -> Result<u64> {
    let p = dir.join(name);
    let s = required(&p)?;
    parse_hex(&p, &s, max)
}

fn link_basename(path: &Path) -> Result<Option<String>> {
    match fs::read_link(path) {
        Ok(target) => {
            let name = target.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
                parse_err(
                    path,
                    format!("link target {} has no name", target.display()),
                )
            })?;
            Ok(Some(name.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read link", path.display().to_string(), e)),
    }
}

fn parse_resources(path: &Path, text: &str) -> Result<Vec<PciResource>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [start, end, flags] = fields.as_slice() else {
            return Err(parse_err(
                path,
                format!("line {}: expected 3 fields, got {}", i + 1, fields.len()),
            ));
        };
        let r = PciResource {
            index: i as u32,
            start: parse_hex(path, start, u64::MAX)?,
            end: parse_hex(path, end, u64::MAX)?,
            flags: parse_hex(path, flags, u64::MAX)?,
        };
        if r.start == 0 && r.end == 0 && r.flags == 0 {
            continue;
        }
        if r.end < r.start {
            return Err(parse_err(path, format!("line {}: end before start", i + 1)));
        }
        out.push(r);
    }
    Ok(out)
}

/// Read one device directory (`<root>/bus/pci/devices/<addr>`).
pub fn read_device(dir: &Path, addr: PciAddr) -> Result<PciDevice> {
    let numa_path = dir.join("numa_node");
    let numa_node = match read_attr(&numa_path)? {
        None => None,
        Some(s) if s == "-1" => None,
        Some(s) => Some(
            s.parse::<u32>()
                .map_err(|_| parse_err(&numa_path, format!("'{s}' is not a node number or -1")))?,
        ),
    };
    let res_path = dir.join("resource");
    let resources = match read_attr(&res_path)? {
        None => Vec::new(),
        Some(t) => parse_resources(&res_path, &t)?,
    };
    let group_path = dir.join("iommu_group");
    let iommu_group = match link_basename(&group_path)? {
        None => None,
        Some(g) => Some(
            g.parse::<u32>()
                .map_err(|_| parse_err(&group_path, format!("group '{g}' is not a number")))?,
        ),
    };
    Ok(PciDevice {
        addr,
        vendor_id: hex_attr(dir, "vendor", 0xffff)? as u16,
        device_id: hex_attr(dir, "device", 0xffff)? as u16,
        subsystem_vendor_id: hex_attr(dir, "subsystem_vendor", 0xffff)? as u16,
        subsystem_device_id: hex_attr(dir, "subsystem_device", 0xffff)? as u16,
        class: hex_attr(dir, "class", 0xff_ffff)? as u32,
        numa_node,
        resources,
        driver: link_basename(&dir.join("driver"))?,
        iommu_group,
    })
}

/// The directory sysfs lists PCI devices in, under `sysfs_root`.
pub fn devices_dir(sysfs_root: &Path) -> PathBuf {
    sysfs_root.join("bus/pci/devices")
}

/// The PCI devices one EAL found at init (after `-a`/`-b`/`--no-pci`), from
/// [`crate::Eal::pci`]. A snapshot: devices are not rescanned.
#[derive(Clone, Debug, Default)]
pub struct PciBus {
    devices: Vec<PciDevice>,
}

impl PciBus {
    /// [`scan`] `sysfs_root` with `filter`.
    pub fn scan(sysfs_root: &Path, filter: &PciFilter) -> Result<PciBus> {
        Ok(PciBus {
            devices: scan(sysfs_root, filter)?,
        })
    }

    /// The devices, sorted by address.
    pub fn devices(&self) -> &[PciDevice] {
        &self.devices
    }

    /// The device at `addr`, if it was found.
    pub fn find(&self, addr: PciAddr) -> Option<&PciDevice> {
        self.devices.iter().find(|d| d.addr == addr)
    }
}

/// Scan `<sysfs_root>/bus/pci/devices`, keep what `filter` accepts, read each kept device,
/// sort by address. See the module docs for the error contract.
pub fn scan(sysfs_root: &Path, filter: &PciFilter) -> Result<Vec<PciDevice>> {
    if filter.no_pci {
        return Ok(Vec::new());
    }
    let dir = devices_dir(sysfs_root);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::log_debug!("no {}: no PCI devices", dir.display());
            return Ok(Vec::new());
        }
        Err(e) => return Err(Error::io("list", dir.display().to_string(), e)),
    };
    let mut addrs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir.display().to_string(), e))?;
        let name = entry.file_name();
        let addr = name
            .to_str()
            .and_then(|n| n.parse::<PciAddr>().ok())
            .ok_or_else(|| parse_err(&entry.path(), "directory name is not a PCI address"))?;
        if filter.accepts(&addr) {
            addrs.push((addr, entry.path()));
        }
    }
    addrs.sort_by_key(|(a, _)| *a);
    addrs
        .into_iter()
        .map(|(addr, path)| read_device(&path, addr))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> PciAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addr_forms() {
        assert_eq!(
            a("0000:00:02.0"),
            PciAddr {
                domain: 0,
                bus: 0,
                dev: 2,
                func: 0
            }
        );
        assert_eq!(a("00:02.0"), a("0000:00:02.0"));
        assert_eq!(
            a("0001:af:1f.7"),
            PciAddr {
                domain: 1,
                bus: 0xaf,
                dev: 0x1f,
                func: 7
            }
        );
        assert_eq!(a("10000:01:00.1").domain, 0x10000);
        assert_eq!(a("0000:AF:00.0").bus, 0xaf);
        assert_eq!(a("0:0:0.0"), PciAddr::default());
        for s in ["0000:00:02.0", "0001:af:1f.7", "10000:01:00.1"] {
            assert_eq!(a(s).to_string(), s);
        }
        assert_eq!(a("2:3.4").to_string(), "0000:02:03.4");
    }

    #[test]
    fn bad_addrs() {
        for s in [
            "",
            ".",
            "0000:00:02",
            "0000:00:02.8",
            "0000:00:20.0",
            "0000:100:00.0",
            "00.0",
            "1:2:3:4.0",
            "0000:00:02.0 ",
            " 0000:00:02.0",
            "000000000:00:00.0",
            "0000:0g:00.0",
            "0000:00:02.",
            "0000::02.0",
            "é:00:02.0",
            "0000:00:02.00",
            "+0:00:02.0",
            "0000:-1:02.0",
        ] {
            let e = s.parse::<PciAddr>();
            assert!(e.is_err(), "{s:?} accepted as {e:?}");
        }
        let e = "0000:00:02.9".parse::<PciAddr>().unwrap_err();
        assert!(e.to_string().contains("0000:00:02.9"));
    }

    #[test]
    fn ordering_is_numeric() {
        let mut v = [
            a("0001:00:00.0"),
            a("0000:10:00.0"),
            a("0000:02:00.1"),
            a("0000:02:00.0"),
        ];
        v.sort();
        let s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        assert_eq!(
            s,
            [
                "0000:02:00.0",
                "0000:02:00.1",
                "0000:10:00.0",
                "0001:00:00.0"
            ]
        );
    }

    #[test]
    fn resources_parse() {
        let p = Path::new("x/resource");
        let t = "0x0000004000080000 0x00000040000fffff 0x0000000000140204\n\
                 0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                 0x000000000000c000 0x000000000000c03f 0x0000000000040101\n";
        let r = parse_resources(p, t).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].index, 0);
        assert_eq!(r[0].len(), 0x80000);
        assert!(r[0].is_mem() && r[0].is_64bit() && !r[0].is_io());
        assert_eq!(r[1].index, 2);
        assert!(r[1].is_io());
        assert_eq!(r[1].len(), 0x40);
        assert!(parse_resources(p, "0x1 0x2").is_err());
        assert!(parse_resources(p, "0x10 0x1 0x200").is_err());
        assert!(parse_resources(p, "1 2 3").is_err());
        assert!(parse_resources(p, "0x 0x1 0x2").is_err());
        assert!(parse_resources(p, "0x11112222333344445 0x1 0x2").is_err());
    }

    #[test]
    fn class_helpers() {
        let d = PciDevice {
            addr: PciAddr::default(),
            vendor_id: 0x8086,
            device_id: 0x100e,
            subsystem_vendor_id: 0,
            subsystem_device_id: 0,
            class: 0x020000,
            numa_node: None,
            resources: vec![],
            driver: None,
            iommu_group: None,
        };
        assert_eq!(d.class_name(), "Network");
        assert!(d.is_network() && !d.is_nvme());
        assert_eq!(d.id_string(), "8086:100e");
        let n = PciDevice {
            class: CLASS_NVME,
            ..d
        };
        assert_eq!(n.class_name(), "Mass storage");
        assert!(n.is_nvme());
        assert_eq!((n.base_class(), n.subclass(), n.prog_if()), (1, 8, 2));
    }

    #[test]
    fn filter_rules() {
        let (x, y) = (a("00:01.0"), a("00:02.0"));
        assert!(PciFilter::default().accepts(&x));
        let f = PciFilter {
            allow: vec![x],
            ..Default::default()
        };
        assert!(f.accepts(&x) && !f.accepts(&y));
        let f = PciFilter {
            block: vec![x],
            ..Default::default()
        };
        assert!(!f.accepts(&x) && f.accepts(&y));
        let f = PciFilter {
            allow: vec![x],
            block: vec![],
            no_pci: true,
        };
        assert!(!f.accepts(&x));
    }
}
