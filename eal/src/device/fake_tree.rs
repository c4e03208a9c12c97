//! A fake kernel tree for the unit tests of device binding and "in use" checks.

use std::fs;

use crate::hugepage::SysRoots;
use crate::pci::PciAddr;
use std::os::unix::fs::symlink;
use testkit::tempdir::TempDir;

/// A fake kernel tree: `<root>/sys` and `<root>/proc` laid out like the kernel's, with
/// an NVMe controller at 00:02.0 (disk nvme0n1, partition nvme0n1p1), an e1000 at
/// 00:03.0 (interface eth0) and a second e1000 at 00:04.0 (eth1).
pub(crate) struct FakeTree {
    /// Keeps the tree alive; removed on drop.
    pub _dir: TempDir,
    pub roots: SysRoots,
}

pub(crate) const NVME: &str = "0000:00:02.0";
pub(crate) const NIC0: &str = "0000:00:03.0";
pub(crate) const NIC1: &str = "0000:00:04.0";

impl FakeTree {
    pub(crate) fn new() -> FakeTree {
        let dir = TempDir::new("bind");
        let roots = SysRoots::under(dir.path());
        let sys = &roots.sys.clone();
        for d in ["nvme", "e1000", "vfio-pci", "uio_pci_generic"] {
            let dd = sys.join("bus/pci/drivers").join(d);
            fs::create_dir_all(&dd).unwrap();
            fs::write(dd.join("bind"), "").unwrap();
            fs::write(dd.join("unbind"), "").unwrap();
            fs::write(dd.join("new_id"), "").unwrap();
        }
        fs::write(sys.join("bus/pci/drivers_probe"), "").unwrap();
        fs::create_dir_all(sys.join("bus/pci/devices")).unwrap();
        fs::create_dir_all(sys.join("class/net")).unwrap();
        fs::create_dir_all(sys.join("class/block")).unwrap();
        fs::create_dir_all(roots.proc.join("net")).unwrap();
        let t = FakeTree { _dir: dir, roots };
        t.add_dev(NVME, "0x1b36", "0x0010", "0x010802", Some("nvme"));
        t.add_dev(NIC0, "0x8086", "0x100e", "0x020000", Some("e1000"));
        t.add_dev(NIC1, "0x8086", "0x100e", "0x020000", Some("e1000"));
        let nv = format!("../../devices/pci0000:00/{NVME}/nvme/nvme0/nvme0n1");
        fs::create_dir_all(
            sys.join("devices/pci0000:00")
                .join(NVME)
                .join("nvme/nvme0/nvme0n1/nvme0n1p1"),
        )
        .unwrap();
        symlink(&nv, sys.join("class/block/nvme0n1")).unwrap();
        symlink(format!("{nv}/nvme0n1p1"), sys.join("class/block/nvme0n1p1")).unwrap();
        // A block device of another controller must not count.
        fs::create_dir_all(sys.join("devices/virtual/block/loop0")).unwrap();
        symlink(
            "../../devices/virtual/block/loop0",
            sys.join("class/block/loop0"),
        )
        .unwrap();
        for (a, i) in [(NIC0, "eth0"), (NIC1, "eth1")] {
            let nd = sys.join("devices/pci0000:00").join(a).join("net").join(i);
            fs::create_dir_all(&nd).unwrap();
            fs::write(nd.join("flags"), "0x1002\n").unwrap();
            symlink(
                format!("../../devices/pci0000:00/{a}/net/{i}"),
                sys.join("class/net").join(i),
            )
            .unwrap();
        }
        fs::write(
            t.roots.proc.join("mounts"),
            "proc /proc proc rw 0 0\n/dev/loop0 /mnt/x ext4 rw 0 0\n",
        )
        .unwrap();
        fs::write(
            t.roots.proc.join("swaps"),
            "Filename Type Size Used Priority\n",
        )
        .unwrap();
        fs::write(
            t.roots.proc.join("net/route"),
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n",
        )
        .unwrap();
        t
    }

    pub(crate) fn add_dev(
        &self,
        addr: &str,
        vendor: &str,
        device: &str,
        class: &str,
        driver: Option<&str>,
    ) {
        let sys = &self.roots.sys;
        let real = sys.join("devices/pci0000:00").join(addr);
        fs::create_dir_all(&real).unwrap();
        for (f, v) in [
            ("vendor", vendor),
            ("device", device),
            ("subsystem_vendor", "0x1af4"),
            ("subsystem_device", "0x1100"),
            ("class", class),
            ("driver_override", "(null)\n"),
        ] {
            fs::write(real.join(f), v).unwrap();
        }
        let ma = format!(
            "pci:v0000{}d0000{}sv00001AF4sd00001100bc{}sc{}i{}\n",
            vendor[2..].to_uppercase(),
            device[2..].to_uppercase(),
            &class[2..4],
            &class[4..6],
            &class[6..8]
        );
        fs::write(real.join("modalias"), ma).unwrap();
        symlink(
            format!("../../../devices/pci0000:00/{addr}"),
            sys.join("bus/pci/devices").join(addr),
        )
        .unwrap();
        if let Some(d) = driver {
            self.set_driver(addr, Some(d));
        }
    }

    /// What the kernel does when a driver takes or drops a device.
    pub(crate) fn set_driver(&self, addr: &str, driver: Option<&str>) {
        let link = self
            .roots
            .sys
            .join("devices/pci0000:00")
            .join(addr)
            .join("driver");
        let _ = fs::remove_file(&link);
        if let Some(d) = driver {
            symlink(format!("../../../bus/pci/drivers/{d}"), link).unwrap();
        }
    }

    pub(crate) fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.roots.sys.join(rel)).unwrap()
    }

    pub(crate) fn addr(s: &str) -> PciAddr {
        s.parse().unwrap()
    }
}
