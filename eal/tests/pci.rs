//! PCI scan against a fake sysfs tree built in a temporary directory (several devices, a
//! malformed one, allow/block/no_pci filters) and, read only, against the real /sys.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use eal::pci::{scan, PciAddr, PciDevice, PciFilter};
use eal::Error;
use testkit::tempdir::TempDir;
use testkit::Need;

struct FakeDev<'a> {
    addr: &'a str,
    vendor: &'a str,
    device: &'a str,
    class: &'a str,
    numa: Option<&'a str>,
    resource: Option<&'a str>,
    driver: Option<&'a str>,
    iommu_group: Option<&'a str>,
}

impl<'a> FakeDev<'a> {
    fn new(addr: &'a str, vendor: &'a str, device: &'a str, class: &'a str) -> Self {
        FakeDev {
            addr,
            vendor,
            device,
            class,
            numa: None,
            resource: None,
            driver: None,
            iommu_group: None,
        }
    }
}

/// Lay out a device the way the kernel does: the real directory under
/// devices/pci0000:00/, a symlink to it in bus/pci/devices/, driver and iommu_group links.
fn add_dev(root: &Path, d: &FakeDev) {
    let real = root.join("devices/pci0000:00").join(d.addr);
    fs::create_dir_all(&real).unwrap();
    let w = |name: &str, v: &str| fs::write(real.join(name), format!("{v}\n")).unwrap();
    w("vendor", d.vendor);
    w("device", d.device);
    w("subsystem_vendor", "0x1af4");
    w("subsystem_device", "0x0001");
    w("class", d.class);
    if let Some(n) = d.numa {
        w("numa_node", n);
    }
    if let Some(r) = d.resource {
        fs::write(real.join("resource"), r).unwrap();
    }
    if let Some(drv) = d.driver {
        let drv_dir = root.join("bus/pci/drivers").join(drv);
        fs::create_dir_all(&drv_dir).unwrap();
        symlink(&drv_dir, real.join("driver")).unwrap();
    }
    if let Some(g) = d.iommu_group {
        let gdir = root.join("kernel/iommu_groups").join(g);
        fs::create_dir_all(&gdir).unwrap();
        symlink(&gdir, real.join("iommu_group")).unwrap();
    }
    let bus = root.join("bus/pci/devices");
    fs::create_dir_all(&bus).unwrap();
    symlink(&real, bus.join(d.addr)).unwrap();
}

const RES_NET: &str = "0x00000000febc0000 0x00000000febdffff 0x0000000000040200\n\
0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
0x000000000000c000 0x000000000000c03f 0x0000000000040101\n";

const RES_NVME: &str = "0x0000004000000000 0x0000004000003fff 0x0000000000140204\n";

/// Four good devices (given out of order) plus one with a malformed `vendor`.
fn build_tree() -> TempDir {
    let t = TempDir::new("pci");
    let r = t.path();
    add_dev(
        r,
        &FakeDev {
            numa: Some("0"),
            resource: Some(RES_NVME),
            driver: Some("vfio-pci"),
            iommu_group: Some("12"),
            ..FakeDev::new("0000:03:00.0", "0x8086", "0x0953", "0x010802")
        },
    );
    add_dev(
        r,
        &FakeDev {
            numa: Some("-1"),
            resource: Some(RES_NET),
            driver: Some("e1000"),
            iommu_group: Some("3"),
            ..FakeDev::new("0000:00:03.0", "0x8086", "0x100e", "0x020000")
        },
    );
    // Bare minimum: no numa_node, resource, driver or iommu_group at all.
    add_dev(
        r,
        &FakeDev::new("0000:00:00.0", "0x8086", "0x1237", "0x060000"),
    );
    add_dev(
        r,
        &FakeDev {
            numa: Some("1"),
            ..FakeDev::new("0001:00:01.7", "0x1AF4", "0x1041", "0x020000")
        },
    );
    add_dev(
        r,
        &FakeDev::new("0000:00:05.0", "1af4", "0x1042", "0x010000"),
    ); // no 0x prefix
    t
}

fn pci(s: &str) -> PciAddr {
    s.parse().unwrap()
}

fn addrs(devs: &[PciDevice]) -> Vec<String> {
    devs.iter().map(|d| d.addr.to_string()).collect()
}

/// A filter allowing `allow` (all if empty) and blocking `block`.
fn filter(allow: &[&str], block: &[&str]) -> PciFilter {
    let addrs = |v: &[&str]| v.iter().map(|a| pci(a)).collect();
    PciFilter {
        allow: addrs(allow),
        block: addrs(block),
        ..Default::default()
    }
}

fn no_bad() -> PciFilter {
    filter(&[], &["0000:00:05.0"])
}

#[test]
fn fake_tree_full_scan_sorted_and_parsed() {
    let t = build_tree();
    let devs = scan(t.path(), &no_bad()).unwrap();
    assert_eq!(
        addrs(&devs),
        [
            "0000:00:00.0",
            "0000:00:03.0",
            "0000:03:00.0",
            "0001:00:01.7"
        ]
    );

    let host = &devs[0];
    assert_eq!((host.vendor_id, host.device_id), (0x8086, 0x1237));
    assert_eq!(host.class_name(), "Bridge");
    assert_eq!(
        (host.numa_node, host.driver.as_deref(), host.iommu_group),
        (None, None, None)
    );
    assert!(host.resources.is_empty());

    let net = &devs[1];
    assert_eq!(net.id_string(), "8086:100e");
    assert_eq!(
        (net.subsystem_vendor_id, net.subsystem_device_id),
        (0x1af4, 0x0001)
    );
    assert!(net.is_network());
    assert_eq!(net.class_name(), "Network");
    assert_eq!(net.numa_node, None, "-1 means no node");
    assert_eq!(net.driver.as_deref(), Some("e1000"));
    assert_eq!(net.iommu_group, Some(3));
    assert_eq!(net.resources.len(), 2);
    let bar0 = net.bar(0).unwrap();
    assert!(bar0.is_mem() && !bar0.is_64bit());
    assert_eq!(
        (bar0.start, bar0.end, bar0.len()),
        (0xfebc0000, 0xfebdffff, 0x20000)
    );
    assert!(net.bar(1).is_none());
    assert!(net.bar(2).unwrap().is_io());
    assert_eq!(net.bar(2).unwrap().len(), 0x40);

    let nvme = &devs[2];
    assert!(nvme.is_nvme());
    assert_eq!(nvme.class_name(), "Mass storage");
    assert_eq!(nvme.class, 0x010802);
    assert_eq!(nvme.numa_node, Some(0));
    assert_eq!(nvme.driver.as_deref(), Some("vfio-pci"));
    assert_eq!(nvme.iommu_group, Some(12));
    assert!(nvme.bar(0).unwrap().is_64bit());
    assert_eq!(nvme.bar(0).unwrap().len(), 0x4000);

    let virtio = &devs[3];
    assert_eq!(
        virtio.addr,
        PciAddr {
            domain: 1,
            bus: 0,
            dev: 1,
            func: 7
        }
    );
    assert_eq!(virtio.vendor_id, 0x1af4, "upper-case hex accepted");
    assert_eq!(virtio.numa_node, Some(1));
}

#[test]
fn malformed_device_is_an_error_naming_the_file() {
    let t = build_tree();
    match scan(t.path(), &PciFilter::default()) {
        Err(Error::PciParse { path, why }) => {
            assert!(path.ends_with("0000:00:05.0/vendor"), "{}", path.display());
            assert!(why.contains("1af4"), "{why}");
        }
        other => panic!("expected PciParse, got {other:?}"),
    }
}

#[test]
fn malformed_attributes_each_refused() {
    let cases: &[(&str, &str, &str)] = &[
        ("vendor", "0x10000", "vendor"),
        ("vendor", "", "vendor"),
        ("device", "0xzz", "device"),
        ("class", "0x1000000", "class"),
        ("class", "0x01 08", "class"),
        ("numa_node", "-2", "numa_node"),
        ("numa_node", "zero", "numa_node"),
        ("resource", "0x1 0x2\n", "resource"),
        ("resource", "0x10 0x1 0x200\n", "resource"),
        ("subsystem_vendor", "\u{1F980}", "subsystem_vendor"),
    ];
    for (file, content, want) in cases {
        let t = TempDir::new("pci-bad");
        add_dev(
            t.path(),
            &FakeDev::new("0000:00:02.0", "0x8086", "0x100e", "0x020000"),
        );
        let dev_dir = t.path().join("devices/pci0000:00/0000:00:02.0");
        fs::write(dev_dir.join(file), content).unwrap();
        match scan(t.path(), &PciFilter::default()) {
            Err(Error::PciParse { path, .. }) => {
                assert!(path.ends_with(want), "{file}: {}", path.display())
            }
            other => panic!("{file}={content:?}: expected PciParse, got {other:?}"),
        }
    }
    // Missing required attribute.
    let t = TempDir::new("pci-missing");
    add_dev(
        t.path(),
        &FakeDev::new("0000:00:02.0", "0x8086", "0x100e", "0x020000"),
    );
    fs::remove_file(t.path().join("devices/pci0000:00/0000:00:02.0/class")).unwrap();
    assert!(
        matches!(scan(t.path(), &PciFilter::default()), Err(Error::PciParse { why, .. }) if why == "missing")
    );
    // Non-numeric iommu group and a directory name that is not an address.
    let t = TempDir::new("pci-group");
    add_dev(
        t.path(),
        &FakeDev {
            iommu_group: Some("abc"),
            ..FakeDev::new("0000:00:02.0", "0x8086", "0x100e", "0x020000")
        },
    );
    assert!(matches!(
        scan(t.path(), &PciFilter::default()),
        Err(Error::PciParse { .. })
    ));
    let t = TempDir::new("pci-name");
    fs::create_dir_all(t.path().join("bus/pci/devices/not-an-address")).unwrap();
    assert!(matches!(
        scan(t.path(), &PciFilter::default()),
        Err(Error::PciParse { .. })
    ));
}

#[test]
fn allow_filter() {
    let t = build_tree();
    let f = filter(&["00:03.0", "0001:00:01.7", "00:1f.0"], &[]);
    let devs = scan(t.path(), &f).unwrap();
    assert_eq!(addrs(&devs), ["0000:00:03.0", "0001:00:01.7"]);
    assert_eq!(f.missing(&devs), [pci("0000:00:1f.0")]);
    // Allowing only the malformed device reads it and fails.
    let f = filter(&["00:05.0"], &[]);
    assert!(matches!(scan(t.path(), &f), Err(Error::PciParse { .. })));
}

#[test]
fn block_filter() {
    let t = build_tree();
    let f = filter(&[], &["00:05.0", "03:00.0", "00:1f.0"]);
    assert_eq!(
        addrs(&scan(t.path(), &f).unwrap()),
        ["0000:00:00.0", "0000:00:03.0", "0001:00:01.7"]
    );
}

#[test]
fn no_pci_reads_nothing() {
    // Even a tree that would fail (or a root that does not exist) gives nothing.
    let t = build_tree();
    let f = PciFilter {
        no_pci: true,
        ..Default::default()
    };
    assert!(scan(t.path(), &f).unwrap().is_empty());
    assert!(scan(Path::new("/nonexistent/sys"), &f).unwrap().is_empty());
}

#[test]
fn no_pci_bus_is_empty_not_error() {
    let t = TempDir::new("pci-empty");
    assert!(scan(t.path(), &PciFilter::default()).unwrap().is_empty());
}

/// The real /sys, read only: every device has a parsable address and the vendor id the
/// kernel shows.
#[test]
fn real_sysfs_scan() {
    let dir = Path::new("/sys/bus/pci/devices");
    if !dir.exists() {
        testkit::skip(
            "real_sysfs_scan",
            Need::Kernel,
            format!("{} does not exist: no PCI bus visible here", dir.display()),
        );
        return;
    }
    let devs = scan(Path::new("/sys"), &PciFilter::default()).unwrap();
    let names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(devs.len(), names.len());
    for w in devs.windows(2) {
        assert!(w[0].addr < w[1].addr, "not sorted");
    }
    for d in &devs {
        let name = d.addr.to_string();
        assert!(names.contains(&name), "{name} not listed by the kernel");
        assert_eq!(name.parse::<PciAddr>().unwrap(), d.addr);
        let vendor = fs::read_to_string(dir.join(&name).join("vendor")).unwrap();
        let vendor = u16::from_str_radix(vendor.trim().trim_start_matches("0x"), 16).unwrap();
        assert_eq!(d.vendor_id, vendor, "{name}");
        assert!(d.class <= 0xff_ffff);
        eprintln!(
            "{name} {} class {:06x} ({}) driver {:?} numa {:?} iommu {:?} bars {}",
            d.id_string(),
            d.class,
            d.class_name(),
            d.driver,
            d.numa_node,
            d.iommu_group,
            d.resources.len()
        );
    }
}
