//! The PCIe transport of `bdev_nvme_attach_controller` on the host (no NVMe device is
//! bound here; the guest test `tests/nvme_bdev.rs` attaches real ones): bad addresses
//! and absent devices are clear errors that leave nothing attached, and detaching an
//! unknown controller says so.

mod common;

use std::sync::{Arc, Mutex};

use bdev::modules::nvme_attach::{AttachParams, NvmeTransport};
use bdev::modules::nvme_pcie;
use common::Step;

fn params(name: &str, traddr: &str) -> AttachParams {
    serde_json::from_value(serde_json::json!({
        "name": name, "trtype": "PCIe", "traddr": traddr
    }))
    .unwrap()
}

#[test]
fn pcie_attach_refuses_bad_input_cleanly() {
    let Some(eal) = common::eal("pcie_attach_refuses_bad_input_cleanly", "0") else {
        return;
    };
    let log: Arc<Mutex<Vec<(i32, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let l2 = log.clone();
    let steps: Vec<Step> = vec![Box::new(move |next| {
        let t = nvme_pcie::register();
        for (name, addr) in [("Bad0", "zz"), ("Bad1", "0000:ff:1f.7")] {
            let l3 = l2.clone();
            t.attach(
                params(name, addr),
                Box::new(move |r| {
                    let e = r.expect_err("attach must fail");
                    l3.lock().unwrap().push((e.code, e.message));
                }),
            );
            assert!(!t.owns(name), "{name} left attached");
        }
        let l4 = l2.clone();
        t.detach(
            "Nope",
            Box::new(move |r| {
                let e = r.expect_err("detach of an unknown controller");
                l4.lock().unwrap().push((e.code, e.message));
            }),
        );
        assert!(t.controllers().is_empty());
        assert!(bdev::bdev::list()
            .iter()
            .all(|b| !b.name().starts_with("Bad")));
        next.go()
    })];
    assert_eq!(common::run_steps(&eal, steps), 0);
    let l = log.lock().unwrap();
    assert_eq!(l.len(), 3, "{l:?}");
    assert_eq!(l[0].0, -32602, "{l:?}");
    assert!(l[0].1.contains("traddr") && l[0].1.contains("zz"), "{l:?}");
    assert_eq!(l[1].0, -19, "{l:?}");
    assert!(l[1].1.contains("0000:ff:1f.7"), "{l:?}");
    assert_eq!(l[2].0, -19, "{l:?}");
    assert!(l[2].1.contains("Nope"), "{l:?}");
}
