//! PCI driver registration and id-table matching with a fake driver (no real device of
//! this machine matches a Ferroplane driver today).

mod pmd_common;
use pmd_common::*;

use eal::pci::{PciAddr, PciDevice};
use pmd::{EthDriver, PciDriver, PciId, RxQueueOps, RxSetup, TxQueueOps, TxSetup};

struct Fake;
struct FakeQ;
impl RxQueueOps for FakeQ {
    fn rx_burst(&mut self, _out: &mut Vec<mbuf::Mbuf>, _max: usize) -> usize {
        0
    }
}
impl TxQueueOps for FakeQ {
    fn tx_burst(&mut self, _p: &mut Vec<mbuf::Mbuf>, _max: usize) -> usize {
        0
    }
}
impl EthDriver for Fake {
    fn info(&self) -> pmd::DevInfo {
        pmd::DevInfo::new("net_fake_pci", 1, 1)
    }
    fn rx_queue_setup(&mut self, _s: RxSetup<'_>) -> pmd::Result<Box<dyn RxQueueOps>> {
        Ok(Box::new(FakeQ))
    }
    fn tx_queue_setup(&mut self, _s: TxSetup<'_>) -> pmd::Result<Box<dyn TxQueueOps>> {
        Ok(Box::new(FakeQ))
    }
}

fn dev(bus: u8, vendor: u16, device: u16) -> PciDevice {
    PciDevice {
        addr: PciAddr {
            domain: 0,
            bus,
            dev: 0,
            func: 0,
        },
        vendor_id: vendor,
        device_id: device,
        subsystem_vendor_id: 0,
        subsystem_device_id: 0,
        class: 0x020000,
        numa_node: None,
        resources: Vec::new(),
        driver: None,
        iommu_group: None,
    }
}

// Ids no real driver takes (0xfeed is not an assigned vendor id).
static IDS: [PciId; 2] = [
    PciId {
        vendor: 0xfeed,
        device: 0x0001,
    },
    PciId {
        vendor: 0xfeee,
        device: PciId::ANY,
    },
];

#[test]
fn fake_pci_driver_matches_by_id_table() {
    let e = eal("pci");
    pmd::register_pci_driver(PciDriver {
        name: "net_fake_pci",
        id_table: &IDS,
        probe: |_, _| Ok(Box::new(Fake)),
    });
    assert!(IDS[0].matches(&dev(1, 0xfeed, 0x0001)));
    assert!(!IDS[0].matches(&dev(1, 0xfeed, 0x0002)));
    assert!(IDS[1].matches(&dev(1, 0xfeee, 0x1041)));
    let devs = [
        dev(1, 0xfeed, 0x0001),
        dev(2, 0xfeed, 0x0002),
        dev(3, 0xfeee, 0x1000),
    ];
    let (ports, failed) = pmd::probe_pci_devices(&e, &devs);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(ports.len(), 2, "feed:0002 is not in the table");
    assert_eq!(pmd::port_name(ports[0]).unwrap(), "0000:01:00.0");
    assert_eq!(pmd::dev_info(ports[1]).unwrap().driver_name, "net_fake_pci");
    for p in ports {
        pmd::close(p).unwrap();
    }
    assert!(pmd::unregister_pci_driver("net_fake_pci"));
    assert!(pmd::probe_pci_devices(&e, &devs).0.is_empty());
}

static IDS_FLAKY: [PciId; 1] = [PciId {
    vendor: 0xfeef,
    device: PciId::ANY,
}];

#[test]
fn a_failing_pci_probe_does_not_stop_the_others() {
    let e = eal("pcifail");
    pmd::register_pci_driver(PciDriver {
        name: "net_flaky_pci",
        id_table: &IDS_FLAKY,
        probe: |_, d| {
            if d.addr.bus == 0x12 {
                Err(pmd::Error::Unsupported {
                    port: 0,
                    why: "device 0x12 is broken".into(),
                })
            } else {
                Ok(Box::new(Fake))
            }
        },
    });
    let devs = [
        dev(0x11, 0xfeef, 1),
        dev(0x12, 0xfeef, 1),
        dev(0x13, 0xfeef, 1),
    ];
    let (ports, failed) = pmd::probe_pci_devices(&e, &devs);
    assert_eq!(
        ports.len(),
        2,
        "the devices before and after the broken one"
    );
    assert_eq!(pmd::port_name(ports[1]).unwrap(), "0000:13:00.0");
    assert_eq!(failed.len(), 1);
    let msg = failed[0].to_string();
    assert!(
        msg.contains("0000:12:00.0") && msg.contains("device 0x12 is broken"),
        "{msg}"
    );
    assert_eq!(pmd::port_by_name("0000:12:00.0"), None, "no half-made port");
    for p in ports {
        pmd::close(p).unwrap();
    }
    assert!(pmd::unregister_pci_driver("net_flaky_pci"));
}

#[test]
fn vdev_probe_is_all_or_nothing() {
    let e = eal_with(
        "vdevs",
        &["--vdev=net_null_allornothing", "--vdev=net_bogus7"],
    );
    let err = pmd::probe_vdevs(&e).unwrap_err().to_string();
    assert!(err.contains("net_bogus7"), "{err}");
    assert_eq!(
        pmd::port_by_name("net_null_allornothing"),
        None,
        "the port made before the bad vdev is closed again"
    );
}
