//! A fake virtio PCI device for unit tests: a common configuration that behaves as the
//! spec says (status, feature selects, queue select), with knobs for the bad states a
//! driver must report clearly (FEATURES_OK never set, a queue of size 0, a reset that
//! never completes), and a fake config space with a capability list.

use std::sync::Mutex;

use super::hw::{check_queue, pow2_floor};
use super::init::{Init, State};
use super::spec::{common as c, feature, status, PciCap, PCI_CAP_ID_VNDR};
use super::transport::{find_caps, Common, Regs};

#[derive(Default)]
struct St {
    status: u8,
    dfsel: u32,
    drfsel: u32,
    offered: u64,
    accepted: u64,
    sel: u16,
    sizes: Vec<u16>,
    enabled: Vec<bool>,
    programmed_size: Vec<u16>,
    /// FEATURES_OK writes are ignored (the device rejects every feature subset).
    refuse_features: bool,
    /// Writing 0 to the status does not reset.
    stuck_reset: bool,
    /// Every read returns all-ones (the device is gone).
    gone: bool,
}

pub(super) struct FakeDev(Mutex<St>);

impl FakeDev {
    pub(super) fn new(offered: u64, sizes: &[u16]) -> FakeDev {
        FakeDev(Mutex::new(St {
            offered,
            sizes: sizes.to_vec(),
            enabled: vec![false; sizes.len()],
            programmed_size: vec![0; sizes.len()],
            ..Default::default()
        }))
    }
    fn st(&self) -> std::sync::MutexGuard<'_, St> {
        self.0.lock().unwrap()
    }
}

impl Regs for FakeDev {
    fn r8(&self, off: u64) -> u8 {
        let s = self.st();
        if s.gone {
            return u8::MAX;
        }
        match off {
            c::DEVICE_STATUS => s.status,
            c::CONFIG_GENERATION => 0,
            _ => 0,
        }
    }
    fn r16(&self, off: u64) -> u16 {
        let s = self.st();
        if s.gone {
            return u16::MAX;
        }
        let q = usize::from(s.sel);
        match off {
            c::NUM_QUEUES => s.sizes.len() as u16,
            c::QUEUE_SIZE => s.sizes.get(q).copied().unwrap_or(0),
            c::QUEUE_ENABLE => u16::from(s.enabled.get(q).copied().unwrap_or(false)),
            c::QUEUE_NOTIFY_OFF => s.sel,
            _ => 0,
        }
    }
    fn r32(&self, off: u64) -> u32 {
        let s = self.st();
        if s.gone {
            return u32::MAX;
        }
        match off {
            c::DEVICE_FEATURE => (s.offered >> (32 * (s.dfsel & 1))) as u32,
            _ => 0,
        }
    }
    fn w8(&self, off: u64, v: u8) {
        let mut s = self.st();
        if off != c::DEVICE_STATUS {
            return;
        }
        if v == 0 {
            if !s.stuck_reset {
                s.status = 0;
                s.accepted = 0;
                s.enabled.iter_mut().for_each(|e| *e = false);
            }
            return;
        }
        let mut v = v;
        if v & status::FEATURES_OK != 0 && (s.refuse_features || s.accepted & !s.offered != 0) {
            v &= !status::FEATURES_OK;
        }
        s.status = v;
    }
    fn w16(&self, off: u64, v: u16) {
        let mut s = self.st();
        let q = usize::from(s.sel);
        match off {
            c::QUEUE_SELECT => s.sel = v,
            c::QUEUE_SIZE if q < s.sizes.len() => s.programmed_size[q] = v,
            c::QUEUE_ENABLE if q < s.sizes.len() => s.enabled[q] = v == 1,
            _ => {}
        }
    }
    fn w32(&self, off: u64, v: u32) {
        let mut s = self.st();
        match off {
            c::DEVICE_FEATURE_SELECT => s.dfsel = v,
            c::DRIVER_FEATURE_SELECT => s.drfsel = v,
            c::DRIVER_FEATURE => {
                let sh = 32 * (s.drfsel & 1);
                s.accepted = (s.accepted & !(0xffff_ffffu64 << sh)) | (u64::from(v) << sh);
            }
            _ => {}
        }
    }
}

fn modern() -> u64 {
    use feature::*;
    [
        VERSION_1,
        ACCESS_PLATFORM,
        NET_MAC,
        NET_STATUS,
        NET_CTRL_VQ,
        NET_MQ,
        NET_MRG_RXBUF,
    ]
    .iter()
    .fold(0, |a, &b| a | bit(b))
}

fn all(f: u64) -> Result<u64, String> {
    Ok(f)
}

#[test]
fn init_walks_every_state_to_driver_ok() {
    let dev = Common {
        regs: FakeDev::new(modern(), &[256, 256, 64]),
    };
    let mut i = Init::new(&dev);
    let mut seen = vec![i.state()];
    while i.state() != State::FeaturesOk {
        seen.push(i.step(&all).unwrap());
    }
    assert_eq!(
        seen,
        [
            State::Start,
            State::Reset,
            State::Acknowledged,
            State::Driver,
            State::FeaturesWritten,
            State::FeaturesOk
        ]
    );
    assert_eq!(i.offered, modern());
    assert_eq!(
        dev.regs.st().accepted,
        modern(),
        "features written to the device"
    );
    assert_eq!(
        dev.status(),
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK
    );
    assert_eq!(i.step(&all).unwrap(), State::DriverOk);
    assert_ne!(dev.status() & status::DRIVER_OK, 0);
}

#[test]
fn a_device_that_never_sets_features_ok_is_a_clear_error() {
    let dev = Common {
        regs: FakeDev::new(modern(), &[256, 256]),
    };
    dev.regs.st().refuse_features = true;
    let mut i = Init::new(&dev);
    let e = i.run_to(State::FeaturesOk, &all).unwrap_err();
    assert_eq!(e.step, "FEATURES_OK");
    assert!(e.why.contains("did not accept the features"), "{}", e.why);
    assert!(e.why.contains("VERSION_1"), "names the features: {}", e.why);
    assert_eq!(i.state(), State::Failed);
    assert_ne!(
        dev.status() & status::FAILED,
        0,
        "FAILED written to the device"
    );
    // No way on from Failed.
    assert!(i.run_to(State::DriverOk, &all).is_err());
}

#[test]
fn a_legacy_only_device_a_stuck_reset_and_a_gone_device_are_refused() {
    let legacy = Common {
        regs: FakeDev::new(feature::bit(feature::NET_MAC), &[256, 256]),
    };
    let e = Init::new(&legacy)
        .run_to(State::FeaturesOk, &all)
        .unwrap_err();
    assert_eq!(e.step, "features");
    assert!(e.why.contains("VERSION_1"), "{}", e.why);

    let stuck = Common {
        regs: FakeDev::new(modern(), &[256, 256]),
    };
    stuck.regs.st().status = status::DRIVER_OK;
    stuck.regs.st().stuck_reset = true;
    let e = Init::new(&stuck)
        .run_to(State::FeaturesOk, &all)
        .unwrap_err();
    assert_eq!(e.step, "reset");
    assert!(e.why.contains("still"), "{}", e.why);

    let gone = Common {
        regs: FakeDev::new(modern(), &[256, 256]),
    };
    gone.regs.st().gone = true;
    let e = Init::new(&gone)
        .run_to(State::FeaturesOk, &all)
        .unwrap_err();
    assert!(e.why.contains("all-ones"), "{}", e.why);
}

#[test]
fn features_the_chooser_refuses_stop_the_sequence() {
    let dev = Common {
        regs: FakeDev::new(
            modern() & !feature::bit(feature::ACCESS_PLATFORM),
            &[256, 256],
        ),
    };
    let e = Init::new(&dev)
        .run_to(State::FeaturesOk, &|o| super::choose_features(o, false))
        .unwrap_err();
    assert_eq!(e.step, "features");
    assert!(e.why.contains("ACCESS_PLATFORM"), "{}", e.why);
    assert_ne!(dev.status() & status::FAILED, 0);
}

#[test]
fn queue_size_zero_and_missing_queues_are_clear_errors() {
    let dev = Common {
        regs: FakeDev::new(modern(), &[256, 0, 64]),
    };
    Init::new(&dev).run_to(State::FeaturesOk, &all).unwrap();
    let e = check_queue(&dev, 1, 4, 4096).unwrap_err();
    assert!(e.contains("virtqueue 1 reports size 0"), "{e}");
    let e = check_queue(&dev, 3, 4, 4096).unwrap_err();
    assert!(e.contains("does not exist"), "{e}");
    let e = check_queue(&dev, 2, 4096, 4096).unwrap_err();
    assert!(e.contains("notify offset"), "{e}");
    assert_eq!(check_queue(&dev, 0, 4, 4096).unwrap(), (256, 0));
    assert_eq!(check_queue(&dev, 2, 4, 4096).unwrap(), (64, 8));
    // Programming then enabling a queue makes a second setup an error.
    dev.select(0);
    dev.program_queue(128, 0x1000, 0x2000, 0x3000);
    assert_eq!(dev.regs.st().programmed_size[0], 128);
    let e = check_queue(&dev, 0, 4, 4096).unwrap_err();
    assert!(e.contains("enabled already"), "{e}");
}

#[test]
fn queue_sizes_round_to_powers_of_two() {
    assert_eq!(pow2_floor(256), 256);
    assert_eq!(pow2_floor(1000), 512);
    assert_eq!(pow2_floor(1), 1);
    assert_eq!(pow2_floor(u16::MAX), 32768);
}

/// A config space with a capability list, as QEMU lays out a modern virtio-net device.
fn config_space(caps: &[(u8, PciCap, Option<u32>)]) -> Vec<u8> {
    let mut cs = vec![0u8; 256];
    cs[0x06] = 0x10; // status: capability list
    let mut at = 0x40usize;
    cs[0x34] = at as u8;
    for (k, (id, cap, mult)) in caps.iter().enumerate() {
        let len = if mult.is_some() { 20 } else { 16 };
        let next = if k + 1 == caps.len() { 0 } else { at + 24 };
        cs[at] = *id;
        cs[at + 1] = next as u8;
        cs[at + 2] = len;
        cs[at + 3] = cap.cfg_type;
        cs[at + 4] = cap.bar;
        cs[at + 8..at + 12].copy_from_slice(&cap.offset.to_le_bytes());
        cs[at + 12..at + 16].copy_from_slice(&cap.length.to_le_bytes());
        if let Some(m) = mult {
            cs[at + 16..at + 20].copy_from_slice(&m.to_le_bytes());
        }
        at += 24;
    }
    cs
}

fn cap(t: u8, off: u32, len: u32) -> PciCap {
    PciCap {
        cfg_type: t,
        bar: 4,
        offset: off,
        length: len,
        ..Default::default()
    }
}

fn reader(cs: Vec<u8>) -> impl FnMut(u64, &mut [u8]) -> Result<(), String> {
    move |off, buf| {
        let o = off as usize;
        buf.copy_from_slice(cs.get(o..o + buf.len()).ok_or("beyond config space")?);
        Ok(())
    }
}

#[test]
fn capabilities_are_found_in_the_list() {
    use super::spec::cfg_type::*;
    let cs = config_space(&[
        (0x11, cap(0, 0, 0), None), // MSI-X, skipped
        (PCI_CAP_ID_VNDR, cap(COMMON, 0x0000, 0x38), None),
        (PCI_CAP_ID_VNDR, cap(ISR, 0x1000, 4), None),
        (PCI_CAP_ID_VNDR, cap(DEVICE, 0x2000, 0x20), None),
        (PCI_CAP_ID_VNDR, cap(NOTIFY, 0x3000, 0x1000), Some(4)),
        (PCI_CAP_ID_VNDR, cap(PCI_CFG, 0, 0), None),
    ]);
    let l = find_caps(&mut reader(cs)).unwrap();
    assert_eq!((l.common.offset, l.common.length), (0, 0x38));
    assert_eq!(l.isr.offset, 0x1000);
    assert_eq!(l.device.offset, 0x2000);
    assert_eq!((l.notify.offset, l.notify_off_multiplier), (0x3000, 4));
}

#[test]
fn missing_or_looping_capabilities_are_errors() {
    use super::spec::cfg_type::*;
    let no_notify = config_space(&[
        (PCI_CAP_ID_VNDR, cap(COMMON, 0, 0x38), None),
        (PCI_CAP_ID_VNDR, cap(ISR, 0x1000, 4), None),
        (PCI_CAP_ID_VNDR, cap(DEVICE, 0x2000, 0x20), None),
    ]);
    let e = find_caps(&mut reader(no_notify)).unwrap_err();
    assert!(e.contains("notification"), "{e}");

    let short_common = config_space(&[
        (PCI_CAP_ID_VNDR, cap(COMMON, 0, 0x20), None),
        (PCI_CAP_ID_VNDR, cap(ISR, 0x1000, 4), None),
        (PCI_CAP_ID_VNDR, cap(DEVICE, 0x2000, 0x20), None),
        (PCI_CAP_ID_VNDR, cap(NOTIFY, 0x3000, 0x1000), Some(4)),
    ]);
    let e = find_caps(&mut reader(short_common)).unwrap_err();
    assert!(e.contains("common configuration is 32 bytes"), "{e}");

    let mut looping = config_space(&[(PCI_CAP_ID_VNDR, cap(COMMON, 0, 0x38), None)]);
    looping[0x41] = 0x40;
    let e = find_caps(&mut reader(looping)).unwrap_err();
    assert!(e.contains("malformed"), "{e}");

    let mut none = vec![0u8; 256];
    none[0x06] = 0;
    let e = find_caps(&mut reader(none)).unwrap_err();
    assert!(e.contains("no PCI capability list"), "{e}");
}
